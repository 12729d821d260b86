//! The tenancy service and its HTTP API against a real in-process API server over SQLite:
//! squads in the cluster, tokens through the directory, refusals that change nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use slipway_access::bootstrap::PLATFORM;
use slipway_access::{Attributes, Authenticator, Authorizer, Decision, Target, User};
use slipway_apiserver::auth::acting_as;
use slipway_apiserver::{ApiState, bootstrap};
use slipway_clock::{ManualClock, SystemClock};
use slipway_platform_db::Db;
use slipway_store::Store;
use slipway_store_sqlite::SqliteStore;
use slipway_tenancy::{Directory, Tenancy, router};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Rig {
    dir: TempDir,
    /// An administrator's client, for the test's own reads and writes.
    client: kube::Client,
    /// The platform's own: RBAC lets it do only what its role grants.
    platform: kube::Client,
    clock: ManualClock,
    tenancy: Arc<Tenancy>,
    shutdown: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path().join("state.db"), Default::default())
            .await
            .unwrap(),
    );
    let shutdown = CancellationToken::new();
    let state = Arc::new(
        ApiState::new(store, SystemClock::shared(), shutdown.clone())
            .with_authorization(Vec::new()),
    );
    bootstrap(&state).await.unwrap();
    state.authorization.as_ref().unwrap().ready().await;
    let as_user = |name: &str, group: &str| {
        let user = User {
            name: name.to_owned(),
            groups: vec![group.to_owned(), "system:authenticated".to_owned()],
        };
        let router = acting_as(slipway_apiserver::router(Arc::clone(&state)), user);
        kube::Client::new(router, "default")
    };
    let client = as_user("admin", "system:masters");
    let platform = as_user(PLATFORM, "system:authenticated");
    let clock = ManualClock::at_epoch_2026();
    let tenancy = start(&dir, &clock, &platform).await;
    Rig {
        dir,
        client,
        platform,
        clock,
        tenancy,
        shutdown,
    }
}

async fn start(dir: &TempDir, clock: &ManualClock, client: &kube::Client) -> Arc<Tenancy> {
    let db = Db::open(dir.path().join("platform.db"), Arc::new(clock.clone()))
        .await
        .unwrap();
    let directory = Arc::new(Directory::load(&db).await.unwrap());
    Arc::new(Tenancy::start(db, directory, client.clone()).await.unwrap())
}

fn admin() -> User {
    User {
        name: "root".to_owned(),
        groups: vec!["slipway:admins".to_owned()],
    }
}

impl Rig {
    async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.call_as(Some(admin()), method, uri, body).await
    }

    async fn call_as(
        &self,
        user: Option<User>,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.unwrap_or("").to_owned()))
            .unwrap();
        if let Some(user) = user {
            request.extensions_mut().insert(user);
        }
        let response = router(self.tenancy.clone()).oneshot(request).await.unwrap();
        let code = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{uri}: {e}: {}", String::from_utf8_lossy(&bytes)));
        (code, value)
    }

    async fn nothing_recorded(&self) {
        let (_, squads) = self.call(Method::GET, "/slipway/v1/squads", None).await;
        assert_eq!(squads, json!({ "items": [] }));
        let (_, audit) = self.call(Method::GET, "/slipway/v1/audit", None).await;
        assert_eq!(audit, json!({ "items": [] }));
    }

    async fn quota_hard(&self, namespace: &str) -> Value {
        let quota = Api::<ResourceQuota>::namespaced(self.client.clone(), namespace)
            .get("squad-quota")
            .await
            .unwrap();
        serde_json::to_value(quota.spec.unwrap().hard.unwrap()).unwrap()
    }
}

fn assert_status(answer: &(StatusCode, Value), code: u16, reason: &str, mentions: &str) {
    let (status, body) = answer;
    assert_eq!(status.as_u16(), code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(mentions),
        "{message:?} should mention {mentions:?}"
    );
}

#[tokio::test]
async fn a_request_without_a_user_is_401() {
    let rig = rig().await;
    let answer = rig
        .call_as(None, Method::GET, "/slipway/v1/squads", None)
        .await;
    assert_status(&answer, 401, "Unauthorized", "Unauthorized");
}

#[tokio::test]
async fn a_squad_becomes_namespaces_with_quota_limits_and_binding() {
    let rig = rig().await;
    let (code, squad) = rig
        .call(
            Method::POST,
            "/slipway/v1/squads",
            Some(r#"{"name": "web", "namespaces": ["web-staging"]}"#),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{squad}");
    assert_eq!(squad["namespaces"], json!(["web", "web-staging"]));
    assert_eq!(squad["quota"]["hard"]["limits.memory"], "16Gi");
    assert_eq!(squad["limits"]["defaultRequest"]["cpu"], "100m");
    assert_eq!(squad["previews"]["maxTtlSeconds"], 604_800);
    assert_eq!(squad["previews"]["allowPinning"], true);
    assert_eq!(squad["createdAt"], "2026-01-01T00:00:00Z");
    assert_eq!(squad["members"], json!([]));

    for namespace in ["web", "web-staging"] {
        let ns = Api::<Namespace>::all(rig.client.clone())
            .get(namespace)
            .await
            .unwrap();
        assert_eq!(ns.metadata.labels.unwrap()["slipway.dev/squad"], "web");
        assert_eq!(
            rig.quota_hard(namespace).await,
            json!({"limits.cpu": "8", "limits.memory": "16Gi", "pods": "50",
                   "requests.cpu": "4", "requests.memory": "8Gi"})
        );
        let limits = Api::<LimitRange>::namespaced(rig.client.clone(), namespace)
            .get("squad-defaults")
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&limits.spec.unwrap().limits).unwrap(),
            json!([{ "type": "Container",
                     "default": { "cpu": "500m", "memory": "512Mi" },
                     "defaultRequest": { "cpu": "100m", "memory": "128Mi" } }])
        );
        let binding = Api::<RoleBinding>::namespaced(rig.client.clone(), namespace)
            .get("squad-edit")
            .await
            .unwrap();
        let subjects = binding.subjects.unwrap();
        assert_eq!(
            (subjects[0].kind.as_str(), subjects[0].name.as_str()),
            ("Group", "squad:web")
        );
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("ClusterRole", "edit")
        );
    }
    // Applying again converges without error.
    rig.tenancy.reconcile_squad("web").await.unwrap();

    let (_, got) = rig.call(Method::GET, "/slipway/v1/squads/web", None).await;
    assert_eq!(got, squad);
    assert_status(
        &rig.call(
            Method::POST,
            "/slipway/v1/squads",
            Some(r#"{"name": "web"}"#),
        )
        .await,
        409,
        "AlreadyExists",
        "web",
    );
}

#[tokio::test]
async fn a_quota_change_reaches_every_namespace() {
    let rig = rig().await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads",
        Some(r#"{"name": "web", "namespaces": ["web-a", "web-b"]}"#),
    )
    .await;
    let (code, squad) = rig
        .call(
            Method::PUT,
            "/slipway/v1/squads/web/quota",
            Some(r#"{"hard": {"pods": "5", "requests.cpu": "1500m"}}"#),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{squad}");
    for namespace in ["web", "web-a", "web-b"] {
        assert_eq!(
            rig.quota_hard(namespace).await,
            json!({ "pods": "5", "requests.cpu": "1500m" }),
            "{namespace}"
        );
    }
    // A bad quota changes neither the database nor the cluster.
    assert_status(
        &rig.call(
            Method::PUT,
            "/slipway/v1/squads/web/quota",
            Some(r#"{"hard": {"pods": "many"}}"#),
        )
        .await,
        422,
        "Invalid",
        "hard[pods]",
    );
    assert_eq!(rig.quota_hard("web-b").await["pods"], "5");
    let (_, got) = rig.call(Method::GET, "/slipway/v1/squads/web", None).await;
    assert_eq!(got["quota"]["hard"]["pods"], "5");
}

#[tokio::test]
async fn deleting_a_squad_with_work_needs_force() {
    let rig = rig().await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads",
        Some(r#"{"name": "web", "namespaces": ["web-b"]}"#),
    )
    .await;
    let config: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "settings" } })).unwrap();
    Api::<ConfigMap>::namespaced(rig.client.clone(), "web-b")
        .create(&PostParams::default(), &config)
        .await
        .unwrap();

    assert_status(
        &rig.call(Method::DELETE, "/slipway/v1/squads/web", None)
            .await,
        409,
        "Conflict",
        "web-b: configmaps/settings",
    );
    let (code, _) = rig.call(Method::GET, "/slipway/v1/squads/web", None).await;
    assert_eq!(code, StatusCode::OK);

    let (code, body) = rig
        .call(Method::DELETE, "/slipway/v1/squads/web?force=true", None)
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_status(
        &rig.call(Method::GET, "/slipway/v1/squads/web", None).await,
        404,
        "NotFound",
        "web",
    );
    for namespace in ["web", "web-b"] {
        // Without the namespace controller a namespace stays Terminating: deleted is enough.
        let ns = Api::<Namespace>::all(rig.client.clone())
            .get_opt(namespace)
            .await
            .unwrap();
        assert!(
            ns.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()),
            "{namespace} still live"
        );
    }
}

#[tokio::test]
async fn an_empty_squad_is_deleted_without_force() {
    let rig = rig().await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads",
        Some(r#"{"name": "web"}"#),
    )
    .await;
    let (code, body) = rig
        .call(Method::DELETE, "/slipway/v1/squads/web", None)
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "Success");
}

#[tokio::test]
async fn a_namespace_of_someone_else_is_a_conflict_and_nothing_is_written() {
    let rig = rig().await;
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": "taken" } })).unwrap();
    Api::<Namespace>::all(rig.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_status(
        &rig.call(
            Method::POST,
            "/slipway/v1/squads",
            Some(r#"{"name": "web", "namespaces": ["taken"]}"#),
        )
        .await,
        409,
        "Conflict",
        "taken",
    );
    rig.nothing_recorded().await;
    let ns = Api::<Namespace>::all(rig.client.clone())
        .get("taken")
        .await
        .unwrap();
    assert!(ns.metadata.labels.unwrap_or_default().is_empty());
    assert!(
        Api::<Namespace>::all(rig.client.clone())
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let rig = rig().await;
    let cases: &[(Method, &str, &str, u16, &str, &str)] = &[
        (
            Method::POST,
            "/slipway/v1/squads",
            "{",
            400,
            "BadRequest",
            "not valid",
        ),
        (
            Method::POST,
            "/slipway/v1/squads",
            r#"{"name": 3}"#,
            400,
            "BadRequest",
            "not valid",
        ),
        (
            Method::POST,
            "/slipway/v1/squads",
            r#"{"name": "a", "colour": 1}"#,
            400,
            "BadRequest",
            "colour",
        ),
        (
            Method::POST,
            "/slipway/v1/squads",
            r#"{"name": "Web"}"#,
            422,
            "Invalid",
            "name",
        ),
        (
            Method::POST,
            "/slipway/v1/squads",
            r#"{"name": "web", "namespaces": ["a.b"]}"#,
            422,
            "Invalid",
            "namespaces[0]",
        ),
        (
            Method::POST,
            "/slipway/v1/squads",
            r#"{"name": "web", "quota": {"hard": {"pods": "x"}}}"#,
            422,
            "Invalid",
            "quota.hard[pods]",
        ),
        (
            Method::POST,
            "/slipway/v1/squads",
            r#"{"name": "web", "previews": {"ttlSeconds": 999999999}}"#,
            422,
            "Invalid",
            "previews.ttlSeconds",
        ),
        (
            Method::POST,
            "/slipway/v1/users",
            r#"{"name": "Ana"}"#,
            422,
            "Invalid",
            "name",
        ),
        (
            Method::POST,
            "/slipway/v1/users",
            r#"{"admin": true}"#,
            400,
            "BadRequest",
            "name",
        ),
        (
            Method::POST,
            "/slipway/v1/squads/web/members",
            r#"{"user": "ana", "role": "boss"}"#,
            422,
            "Invalid",
            "role",
        ),
        (
            Method::POST,
            "/slipway/v1/squads/web/members",
            r#"{"user": "ana"}"#,
            404,
            "NotFound",
            "web",
        ),
        (
            Method::POST,
            "/slipway/v1/users/ana/tokens",
            r#"{"expiresInSeconds": -1}"#,
            400,
            "BadRequest",
            "not valid",
        ),
        (
            Method::POST,
            "/slipway/v1/users/ana/tokens",
            "",
            404,
            "NotFound",
            "ana",
        ),
        (
            Method::GET,
            "/slipway/v1/audit?limit=lots",
            "",
            400,
            "BadRequest",
            "limit",
        ),
        (
            Method::DELETE,
            "/slipway/v1/squads/web?force=maybe",
            "",
            400,
            "BadRequest",
            "force",
        ),
        (
            Method::DELETE,
            "/slipway/v1/users/ana",
            "",
            404,
            "NotFound",
            "ana",
        ),
        (
            Method::DELETE,
            "/slipway/v1/users/ana/tokens/tok_1",
            "",
            404,
            "NotFound",
            "ana",
        ),
    ];
    for (method, uri, body, code, reason, mentions) in cases {
        let answer = rig.call(method.clone(), uri, Some(body)).await;
        assert_status(&answer, *code, reason, mentions);
    }
    rig.nothing_recorded().await;
    let (_, users) = rig.call(Method::GET, "/slipway/v1/users", None).await;
    assert_eq!(users, json!({ "items": [] }));
}

#[tokio::test]
async fn a_token_authenticates_until_revoked() {
    let rig = rig().await;
    rig.call(
        Method::POST,
        "/slipway/v1/users",
        Some(r#"{"name": "ana"}"#),
    )
    .await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads",
        Some(r#"{"name": "web"}"#),
    )
    .await;
    let (code, _) = rig
        .call(
            Method::POST,
            "/slipway/v1/squads/web/members",
            Some(r#"{"user": "ana", "role": "owner"}"#),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, created) = rig
        .call(
            Method::POST,
            "/slipway/v1/users/ana/tokens",
            Some(r#"{"description": "laptop"}"#),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["description"], "laptop");
    assert_eq!(created["expiresAt"], Value::Null);

    let directory = rig.tenancy.directory();
    let user = directory.authenticate(&secret).unwrap();
    assert_eq!(user.name, "ana");
    assert_eq!(user.groups, ["squad:web", "system:authenticated"]);
    assert_eq!(directory.authenticate("slw_0000"), None);
    assert_eq!(directory.authenticate(&format!("{secret}0")), None);
    assert_eq!(
        directory.authenticate(&secret.replace("slw_", "xyz_")),
        None
    );

    let (_, list) = rig
        .call(Method::GET, "/slipway/v1/users/ana/tokens", None)
        .await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(!list.to_string().contains(&secret));
    let (_, audit) = rig.call(Method::GET, "/slipway/v1/audit", None).await;
    assert!(!audit.to_string().contains(&secret));

    let (code, revoked) = rig
        .call(
            Method::DELETE,
            &format!("/slipway/v1/users/ana/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["revokedAt"], "2026-01-01T00:00:00Z");
    assert_eq!(directory.authenticate(&secret), None);
}

#[tokio::test]
async fn deleting_a_user_ends_their_tokens() {
    let rig = rig().await;
    rig.call(
        Method::POST,
        "/slipway/v1/users",
        Some(r#"{"name": "ana", "admin": true}"#),
    )
    .await;
    let (_, created) = rig
        .call(Method::POST, "/slipway/v1/users/ana/tokens", None)
        .await;
    let secret = created["token"].as_str().unwrap();
    let user = rig.tenancy.directory().authenticate(secret).unwrap();
    assert_eq!(user.groups, ["slipway:admins", "system:authenticated"]);
    let (code, _) = rig
        .call(Method::DELETE, "/slipway/v1/users/ana", None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(rig.tenancy.directory().authenticate(secret), None);
}

#[tokio::test]
async fn a_token_expires_by_the_clock() {
    let rig = rig().await;
    rig.call(
        Method::POST,
        "/slipway/v1/users",
        Some(r#"{"name": "ana"}"#),
    )
    .await;
    let (_, created) = rig
        .call(
            Method::POST,
            "/slipway/v1/users/ana/tokens",
            Some(r#"{"expiresInSeconds": 60}"#),
        )
        .await;
    assert_eq!(created["expiresAt"], "2026-01-01T00:01:00Z");
    let secret = created["token"].as_str().unwrap();
    let directory = rig.tenancy.directory();
    assert!(directory.authenticate(secret).is_some());
    rig.clock.advance(Duration::from_secs(59));
    assert!(directory.authenticate(secret).is_some());
    rig.clock.advance(Duration::from_secs(1));
    assert_eq!(directory.authenticate(secret), None);
}

#[tokio::test]
async fn a_restart_reloads_tokens_and_reapplies_squads() {
    let rig = rig().await;
    rig.call(
        Method::POST,
        "/slipway/v1/users",
        Some(r#"{"name": "ana"}"#),
    )
    .await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads",
        Some(r#"{"name": "web"}"#),
    )
    .await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads/web/members",
        Some(r#"{"user": "ana"}"#),
    )
    .await;
    let (_, created) = rig
        .call(Method::POST, "/slipway/v1/users/ana/tokens", None)
        .await;
    let secret = created["token"].as_str().unwrap();
    // As if the process died before applying: the quota is gone from the cluster.
    Api::<ResourceQuota>::namespaced(rig.client.clone(), "web")
        .delete("squad-quota", &DeleteParams::default())
        .await
        .unwrap();
    rig.tenancy.db().close().await;

    let restarted = start(&rig.dir, &rig.clock, &rig.platform).await;
    let user = restarted.directory().authenticate(secret).unwrap();
    assert_eq!(user.groups, ["squad:web", "system:authenticated"]);
    assert_eq!(rig.quota_hard("web").await["pods"], "50");
}

#[tokio::test]
async fn the_audit_log_is_newest_first_and_limited() {
    let rig = rig().await;
    for name in ["a", "b", "c"] {
        rig.call(
            Method::POST,
            "/slipway/v1/users",
            Some(&format!(r#"{{"name": "{name}"}}"#)),
        )
        .await;
    }
    let (_, audit) = rig
        .call(Method::GET, "/slipway/v1/audit?limit=2", None)
        .await;
    let targets: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["target"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(targets, [("users/c", "root"), ("users/b", "root")]);
}

fn platform(verb: &str, resource: &str, subresource: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.to_owned(),
        target: Target::Resource {
            group: "platform.slipway.dev".to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: String::new(),
            name: name.to_owned(),
        },
    }
}

#[tokio::test]
async fn the_directory_authorizes_only_its_own_cases() {
    let rig = rig().await;
    for body in [r#"{"name": "ana"}"#, r#"{"name": "bob"}"#] {
        rig.call(Method::POST, "/slipway/v1/users", Some(body))
            .await;
    }
    rig.call(
        Method::POST,
        "/slipway/v1/squads",
        Some(r#"{"name": "web"}"#),
    )
    .await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads",
        Some(r#"{"name": "api"}"#),
    )
    .await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads/web/members",
        Some(r#"{"user": "ana", "role": "owner"}"#),
    )
    .await;
    rig.call(
        Method::POST,
        "/slipway/v1/squads/api/members",
        Some(r#"{"user": "ana"}"#),
    )
    .await;
    let directory = rig.tenancy.directory();
    let user = |name: &str| User {
        name: name.to_owned(),
        groups: vec![],
    };
    let allow = Decision::Allow;
    let none = Decision::NoOpinion;
    let core_pods = Attributes {
        verb: "get".to_owned(),
        target: Target::Resource {
            group: String::new(),
            resource: "users".to_owned(),
            subresource: "tokens".to_owned(),
            namespace: String::new(),
            name: "ana".to_owned(),
        },
    };
    let cases = [
        ("ana", platform("create", "users", "tokens", "ana"), &allow),
        ("ana", platform("list", "users", "tokens", "ana"), &allow),
        ("ana", platform("get", "users", "tokens", "ana"), &allow),
        ("ana", platform("delete", "users", "tokens", "ana"), &allow),
        ("ana", platform("update", "users", "tokens", "ana"), &none),
        ("ana", platform("create", "users", "tokens", "bob"), &none),
        ("ana", platform("get", "users", "", "ana"), &allow),
        ("ana", platform("delete", "users", "", "ana"), &none),
        ("ana", platform("get", "users", "", "bob"), &none),
        ("ana", platform("list", "users", "", ""), &none),
        (
            "ana",
            platform("create", "squads", "members", "web"),
            &allow,
        ),
        (
            "ana",
            platform("delete", "squads", "members", "web"),
            &allow,
        ),
        ("ana", platform("list", "squads", "members", "web"), &allow),
        ("ana", platform("update", "squads", "members", "web"), &none),
        ("ana", platform("create", "squads", "members", "api"), &none),
        ("ana", platform("delete", "squads", "", "web"), &none),
        ("ana", platform("create", "squads", "quota", "web"), &none),
        ("bob", platform("create", "squads", "members", "web"), &none),
        ("bob", platform("create", "users", "tokens", "bob"), &allow),
        ("eve", platform("create", "users", "tokens", "eve"), &none),
        // Owners register and remove repositories; members see them.
        ("ana", platform("create", "squads", "repos", "web"), &allow),
        ("ana", platform("delete", "squads", "repos", "web"), &allow),
        ("ana", platform("create", "squads", "repos", "api"), &none),
        ("ana", platform("list", "squads", "repos", "api"), &allow),
        ("bob", platform("list", "squads", "repos", "web"), &none),
        // Members see, extend and destroy their squads' previews.
        ("ana", platform("get", "squads", "previews", "api"), &allow),
        (
            "ana",
            platform("create", "squads", "previews", "api"),
            &allow,
        ),
        (
            "ana",
            platform("delete", "squads", "previews", "api"),
            &allow,
        ),
        (
            "ana",
            platform("update", "squads", "previews", "api"),
            &none,
        ),
        ("bob", platform("get", "squads", "previews", "web"), &none),
        // Anyone may list previews (the answer holds only their squads'); not a stranger.
        ("bob", platform("list", "previews", "", ""), &allow),
        ("bob", platform("create", "previews", "", ""), &none),
        ("eve", platform("list", "previews", "", ""), &none),
        ("ana", core_pods, &none),
        (
            "ana",
            Attributes {
                verb: "get".to_owned(),
                target: Target::NonResource {
                    path: "/slipway/v1/users/ana".to_owned(),
                },
            },
            &none,
        ),
    ];
    for (name, attributes, expected) in cases {
        assert_eq!(
            &directory.authorize(&user(name), &attributes),
            expected,
            "{name} {attributes:?}"
        );
    }
}

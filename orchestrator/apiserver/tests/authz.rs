//! Authorization through `Router::oneshot` on a real SQLite store: RBAC with Kubernetes'
//! messages, escalation prevention, the node authorizer, the component roles and the
//! review APIs kubectl's `auth` commands call.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use slipway_access::User;
use slipway_access::bootstrap::{CONTROLLERS, PLATFORM, SCHEDULER};
use slipway_apiserver::auth::acting_as;
use slipway_apiserver::{ApiState, bootstrap, router};
use slipway_clock::ManualClock;
use slipway_store_sqlite::{Options, SqliteStore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Cluster {
    state: Arc<ApiState>,
    _dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db"), Options::default())
        .await
        .unwrap();
    let state = Arc::new(
        ApiState::new(
            Arc::new(store),
            ManualClock::at_epoch_2026().shared(),
            CancellationToken::new(),
        )
        .with_authorization(Vec::new()),
    );
    bootstrap(&state).await.unwrap();
    state.authorization.as_ref().unwrap().ready().await;
    Cluster { state, _dir: dir }
}

fn user(name: &str, groups: &[&str]) -> User {
    let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    groups.push("system:authenticated".to_owned());
    User {
        name: name.to_owned(),
        groups,
    }
}

fn admin() -> User {
    user("admin", &["system:masters"])
}

impl Cluster {
    fn as_user(&self, user: &User) -> Router {
        acting_as(router(Arc::clone(&self.state)), user.clone())
    }

    async fn call(
        &self,
        who: &User,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.as_user(who).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn create(&self, who: &User, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(who, Method::POST, uri, Some(body)).await
    }

    /// Waits (bounded) until `who` may do `verb` on `uri`'s resource, as RBAC caches
    /// catch up with a binding just written, as Kubernetes' informers do.
    async fn until_allowed(&self, who: &User, spec: Value) {
        for _ in 0..200 {
            let (_, review) = self
                .create(
                    who,
                    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                    json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "spec": spec}),
                )
                .await;
            if review["status"]["allowed"] == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} never became allowed {spec}", who.name);
    }
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn binding(name: &str, kind: &str, role: &str, subject_kind: &str, subject: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": subject_kind, "name": subject}]})
}

/// Squads `payments` (group bound to edit) and `search`, with ana in payments and a
/// namespace admin `olga` in payments.
async fn squads() -> (Cluster, User, User) {
    let cluster = cluster().await;
    let admin = admin();
    for ns in ["payments", "search"] {
        let (code, _) = cluster
            .create(&admin, "/api/v1/namespaces", namespace(ns))
            .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/payments/rolebindings";
    let (code, body) = cluster
        .create(
            &admin,
            rb,
            binding(
                "squad-edit",
                "ClusterRole",
                "edit",
                "Group",
                "squad:payments",
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, _) = cluster
        .create(
            &admin,
            rb,
            binding("olga-admin", "ClusterRole", "admin", "User", "olga"),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let ana = user("ana", &["squad:payments"]);
    let olga = user("olga", &[]);
    cluster
        .until_allowed(&ana, json!({"resourceAttributes": {"namespace": "payments", "verb": "create", "resource": "pods"}}))
        .await;
    cluster
        .until_allowed(&olga, json!({"resourceAttributes": {"namespace": "payments", "verb": "create", "resource": "rolebindings", "group": "rbac.authorization.k8s.io"}}))
        .await;
    (cluster, ana, olga)
}

#[tokio::test]
async fn a_squad_member_works_in_its_namespace_and_is_refused_elsewhere() {
    let (cluster, ana, _) = squads().await;
    let (code, body) = cluster
        .create(&ana, "/api/v1/namespaces/payments/pods", pod("web"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, status) = cluster
        .create(&ana, "/api/v1/namespaces/search/pods", pod("web"))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["code"], 403);
    assert_eq!(
        status["message"],
        r#"pods is forbidden: User "ana" cannot create resource "pods" in API group "" in the namespace "search""#
    );
    // Nothing was written in search.
    let (_, pods) = cluster
        .call(
            &admin(),
            Method::GET,
            "/api/v1/namespaces/search/pods",
            None,
        )
        .await;
    assert_eq!(pods["items"], json!([]));
    // Secrets: readable in payments (edit), not across namespaces, not in search.
    let (code, _) = cluster
        .call(
            &ana,
            Method::GET,
            "/api/v1/namespaces/payments/secrets",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, status) = cluster
        .call(&ana, Method::GET, "/api/v1/secrets", None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        status["message"],
        r#"secrets is forbidden: User "ana" cannot list resource "secrets" in API group "" at the cluster scope"#
    );
    let (code, _) = cluster
        .call(
            &ana,
            Method::GET,
            "/api/v1/namespaces/search/secrets?watch=true",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // Subresources are their own resources: a named one in the message.
    let (code, status) = cluster
        .call(
            &ana,
            Method::GET,
            "/api/v1/namespaces/search/pods/web/log",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        status["message"],
        r#"pods/log "web" is forbidden: User "ana" cannot get resource "pods/log" in API group "" in the namespace "search""#
    );
    // Non-resource paths: discovery yes, metrics no.
    let (code, _) = cluster.call(&ana, Method::GET, "/apis", None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, status) = cluster.call(&ana, Method::GET, "/metrics", None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        status["message"],
        r#"forbidden: User "ana" cannot get path "/metrics""#
    );
    // A request without a user, once authorization is on, is unauthenticated.
    let response = router(Arc::clone(&cluster.state))
        .oneshot(
            Request::get("/api/v1/namespaces")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold() {
    let (cluster, ana, olga) = squads().await;
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/payments/rolebindings";
    // ana (edit) cannot write RBAC at all.
    let (code, _) = cluster
        .create(
            &ana,
            rb,
            binding("mine", "ClusterRole", "view", "User", "ana"),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // olga (admin in payments) may bind what she holds there...
    let (code, body) = cluster
        .create(
            &olga,
            rb,
            binding("viewers", "ClusterRole", "view", "User", "zoe"),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    // ...but not cluster-admin, even though she may create RoleBindings.
    let (code, status) = cluster
        .create(
            &olga,
            rb,
            binding("root", "ClusterRole", "cluster-admin", "User", "olga"),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            r#"rolebindings.rbac.authorization.k8s.io "root" is forbidden: user "olga""#
        ) && message.contains("is attempting to grant RBAC permissions not currently held"),
        "{message}"
    );
    // Nor a Role with more than she holds, nor a ClusterRoleBinding.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "nodes-too"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]}]});
    let (code, _) = cluster
        .create(
            &olga,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/payments/roles",
            role,
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "root"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "olga"}]});
    let (code, _) = cluster
        .create(
            &olga,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            crb,
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // Updating her own binding to a bigger role is refused the same way, and nothing changed.
    let (_, mut viewers) = cluster
        .call(&olga, Method::GET, &format!("{rb}/viewers"), None)
        .await;
    viewers["subjects"][0]["name"] = json!("olga");
    viewers["roleRef"]["name"] = json!("cluster-admin");
    let (code, _) = cluster
        .call(&olga, Method::PUT, &format!("{rb}/viewers"), Some(viewers))
        .await;
    assert!(
        code == StatusCode::FORBIDDEN || code == StatusCode::UNPROCESSABLE_ENTITY,
        "{code}"
    );
    let (_, stored) = cluster
        .call(&admin(), Method::GET, &format!("{rb}/viewers"), None)
        .await;
    assert_eq!(stored["roleRef"]["name"], "view");
    let (_, list) = cluster.call(&admin(), Method::GET, rb, None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    // The platform binds squads to edit without holding edit, through `bind`, and no more.
    let platform = user(PLATFORM, &[]);
    let (code, body) = cluster
        .create(
            &platform,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/search/rolebindings",
            binding("squad-edit", "ClusterRole", "edit", "Group", "squad:search"),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, _) = cluster
        .create(
            &platform,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/search/rolebindings",
            binding(
                "root",
                "ClusterRole",
                "cluster-admin",
                "Group",
                "squad:search",
            ),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn components_hold_only_their_roles() {
    let cluster = cluster().await;
    let admin = admin();
    let (code, _) = cluster
        .create(&admin, "/api/v1/namespaces", namespace("a"))
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"k": "v"}});
    let (code, _) = cluster
        .create(&admin, "/api/v1/namespaces/a/secrets", secret.clone())
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let scheduler = user(SCHEDULER, &[]);
    let controllers = user(CONTROLLERS, &[]);
    let cases = [
        (
            &scheduler,
            Method::GET,
            "/api/v1/namespaces/a/secrets/db",
            StatusCode::FORBIDDEN,
        ),
        (&scheduler, Method::GET, "/api/v1/pods", StatusCode::OK),
        (
            &scheduler,
            Method::POST,
            "/api/v1/namespaces/a/pods",
            StatusCode::FORBIDDEN,
        ),
        (&controllers, Method::GET, "/api/v1/pods", StatusCode::OK),
        (
            &controllers,
            Method::POST,
            "/api/v1/namespaces/a/secrets",
            StatusCode::FORBIDDEN,
        ),
        (
            &controllers,
            Method::POST,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            StatusCode::FORBIDDEN,
        ),
    ];
    for (who, method, uri, want) in cases {
        let body = (method == Method::POST).then(|| secret.clone());
        let (code, status) = cluster.call(who, method.clone(), uri, body).await;
        assert_eq!(code, want, "{} {method} {uri}: {status}", who.name);
    }
}

#[tokio::test]
async fn a_node_reads_only_the_secrets_of_its_own_pods() {
    let cluster = cluster().await;
    let admin = admin();
    let (code, _) = cluster
        .create(&admin, "/api/v1/namespaces", namespace("a"))
        .await;
    assert_eq!(code, StatusCode::CREATED);
    for name in ["mine", "theirs"] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "v"}});
        let (code, _) = cluster
            .create(&admin, "/api/v1/namespaces/a/secrets", secret)
            .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    for (pod_name, node, secret) in [("p1", "n1", "mine"), ("p2", "n2", "theirs")] {
        let mut p = pod(pod_name);
        p["spec"]["nodeName"] = json!(node);
        p["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": secret}}]);
        let (code, body) = cluster.create(&admin, "/api/v1/namespaces/a/pods", p).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
    let n1 = user("system:node:n1", &["system:nodes"]);
    cluster
        .until_allowed(&n1, json!({"resourceAttributes": {"namespace": "a", "verb": "get", "resource": "secrets", "name": "mine"}}))
        .await;
    let (code, _) = cluster
        .call(&n1, Method::GET, "/api/v1/namespaces/a/secrets/mine", None)
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, status) = cluster
        .call(
            &n1,
            Method::GET,
            "/api/v1/namespaces/a/secrets/theirs",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        status["message"],
        r#"secrets "theirs" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "a": no relationship found between node 'n1' and this object"#
    );
    let (code, _) = cluster
        .call(&n1, Method::GET, "/api/v1/namespaces/a/secrets", None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // Its pods' status, yes; another node's pods, no.
    let patch = |name: &str| format!("/api/v1/namespaces/a/pods/{name}/status");
    let body = json!({"status": {"phase": "Running"}});
    let request = |uri: String| {
        Request::patch(uri)
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let mine = cluster
        .as_user(&n1)
        .oneshot(request(patch("p1")))
        .await
        .unwrap();
    assert_eq!(mine.status(), StatusCode::OK);
    let theirs = cluster
        .as_user(&n1)
        .oneshot(request(patch("p2")))
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn reviews_answer_whoami_can_i_and_list() {
    let (cluster, ana, _) = squads().await;
    let (code, review) = cluster
        .create(
            &ana,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(review["status"]["userInfo"]["username"], "ana");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        json!(["squad:payments", "system:authenticated"])
    );

    let can_i = |ns: &str, verb: &str, resource: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}}})
    };
    let ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (_, yes) = cluster
        .create(&ana, ssar, can_i("payments", "create", "deployments"))
        .await;
    assert_eq!(
        yes["status"]["allowed"], false,
        "deployments are in apps, not the core group"
    );
    let mut apps = can_i("payments", "create", "deployments");
    apps["spec"]["resourceAttributes"]["group"] = json!("apps");
    let (_, yes) = cluster.create(&ana, ssar, apps).await;
    assert_eq!(yes["status"]["allowed"], true);
    let (_, no) = cluster
        .create(&ana, ssar, can_i("search", "get", "pods"))
        .await;
    assert_eq!(no["status"]["allowed"], false);
    let (code, status) = cluster.create(&ana, ssar, json!({"spec": {}})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    let (code, _) = cluster.create(&ana, ssar, json!("not a review")).await;
    assert!(code.is_client_error());

    let (code, rules) = cluster
        .create(&ana, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "payments"}}))
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let resource_rules = rules["status"]["resourceRules"].as_array().unwrap();
    assert!(resource_rules.iter().any(|r| {
        r["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("deployments"))
            && r["verbs"].as_array().unwrap().contains(&json!("create"))
    }));
    assert!(
        rules["status"]["nonResourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["nonResourceURLs"]
                .as_array()
                .unwrap()
                .contains(&json!("/api")))
    );
    let (_, elsewhere) = cluster
        .create(
            &ana,
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            json!({"spec": {"namespace": "search"}}),
        )
        .await;
    let elsewhere = elsewhere["status"]["resourceRules"].as_array().unwrap();
    assert!(!elsewhere.iter().any(|r| {
        r["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("deployments"))
    }));

    // Asking about someone else is the administrators'.
    let sar = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let about_ana = json!({"spec": {"user": "ana", "groups": ["squad:payments"], "resourceAttributes": {"namespace": "payments", "verb": "create", "resource": "pods"}}});
    let (code, _) = cluster.create(&ana, sar, about_ana.clone()).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, review) = cluster.create(&admin(), sar, about_ana).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(review["status"]["allowed"], true);
}

#[tokio::test]
async fn default_roles_come_back_after_a_change_unless_pinned() {
    let cluster = cluster().await;
    let admin = admin();
    let uri = "/apis/rbac.authorization.k8s.io/v1/clusterroles/view";
    let (_, mut view) = cluster.call(&admin, Method::GET, uri, None).await;
    view["rules"] = json!([]);
    let (code, _) = cluster.call(&admin, Method::PUT, uri, Some(view)).await;
    assert_eq!(code, StatusCode::OK);
    slipway_apiserver::authz::bootstrap_policy(&cluster.state)
        .await
        .unwrap();
    let (_, view) = cluster.call(&admin, Method::GET, uri, None).await;
    assert!(!view["rules"].as_array().unwrap().is_empty(), "restored");
    let mut pinned = view.clone();
    pinned["rules"] = json!([]);
    pinned["metadata"]["annotations"] =
        json!({"rbac.authorization.kubernetes.io/autoupdate": "false"});
    let (code, _) = cluster.call(&admin, Method::PUT, uri, Some(pinned)).await;
    assert_eq!(code, StatusCode::OK);
    slipway_apiserver::authz::bootstrap_policy(&cluster.state)
        .await
        .unwrap();
    let (_, view) = cluster.call(&admin, Method::GET, uri, None).await;
    assert_eq!(view["rules"], json!([]), "pinned");
}

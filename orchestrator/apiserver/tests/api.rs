//! The API's handlers through `Router::oneshot` on a real SQLite store: the verbs, their
//! Kubernetes semantics and the Status errors clients branch on.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use slipway_apiserver::{ApiState, Limits, bootstrap, router};
use slipway_clock::ManualClock;
use slipway_store_sqlite::{Options, SqliteStore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Api {
    router: Router,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    api_with(Limits::default()).await.0
}

/// The API with the given budgets of requests in flight, and its state to spend them.
async fn api_with(limits: Limits) -> (Api, Arc<ApiState>) {
    api_configured(|state| state.with_limits(limits)).await
}

/// The API with its state as `configure` makes it.
async fn api_configured(configure: impl FnOnce(ApiState) -> ApiState) -> (Api, Arc<ApiState>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db"), Options::default())
        .await
        .unwrap();
    let state = Arc::new(configure(ApiState::new(
        Arc::new(store),
        ManualClock::at_epoch_2026().shared(),
        CancellationToken::new(),
    )));
    bootstrap(&state).await.unwrap();
    let api = Api {
        router: router(Arc::clone(&state)),
        _dir: dir,
    };
    (api, state)
}

#[tokio::test]
async fn past_the_inflight_limit_requests_get_429_and_watches_still_open() {
    let (api, state) = api_with(Limits {
        reads: 1,
        writes: 1,
    })
    .await;
    let busy_write = state.inflight.admit(&Method::POST).unwrap();
    let busy_read = state.inflight.admit(&Method::GET).unwrap();

    let response = api
        .router
        .clone()
        .oneshot(
            Request::post(CM)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(configmap("a").to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_status(&status, 429, "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    let (code, _) = api.get(CM).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "reads are spent too");

    // A watch is long-running and outside the budget.
    let watch = api
        .router
        .clone()
        .oneshot(
            Request::get(format!("{CM}?watch=true"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);

    drop((busy_write, busy_read));
    let (code, created) = api.post(CM, configmap("a")).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (_, list) = api.get(CM).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the refused create wrote nothing"
    );
}

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let body = body.map_or_else(Body::empty, Body::from);
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            uri,
            Some("application/json"),
            Some(body.to_string()),
        )
        .await
    }

    async fn put(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("PUT", uri, Some("application/json"), Some(body.to_string()))
            .await
    }

    async fn patch(&self, uri: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
        self.patch_raw(uri, content_type, &body.to_string()).await
    }

    async fn patch_raw(&self, uri: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
        self.call("PATCH", uri, Some(content_type), Some(body.to_owned()))
            .await
    }

    async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.call("DELETE", uri, None, None).await
    }
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "web"}}, "data": {"a": "1"}})
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

/// Method, path, Content-Type, body and the status code expected.
type BadRequestCase = (
    &'static str,
    String,
    Option<&'static str>,
    Option<String>,
    u16,
);

fn assert_status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

#[tokio::test]
async fn discovery_and_version() {
    let api = api().await;
    let (code, version) = api.get("/version").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(version["minor"], "32");
    let (_, core) = api.get("/api").await;
    assert_eq!(core["kind"], "APIVersions");
    let (_, v1) = api.get("/api/v1").await;
    assert_eq!(v1["kind"], "APIResourceList");
    let (_, apps) = api.get("/apis/apps/v1").await;
    assert_eq!(apps["groupVersion"], "apps/v1");
    let (code, body) = api.get("/apis/nope/v1").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_status(&body, 404, "NotFound");
    let (_, namespaces) = api.get("/api/v1/namespaces").await;
    let names: Vec<&str> = namespaces["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

#[tokio::test]
async fn create_get_update_delete_with_system_fields() {
    let api = api().await;
    let (code, created) = api.post(CM, configmap("web")).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let meta = &created["metadata"];
    assert_eq!(meta["namespace"], "default");
    assert_eq!(meta["creationTimestamp"], "2026-01-01T00:00:00Z");
    assert!(meta["uid"].as_str().unwrap().len() >= 32);
    let rv1 = meta["resourceVersion"].as_str().unwrap().to_owned();

    let (code, got) = api.get(&format!("{CM}/web")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got, created);

    let (code, body) = api.post(CM, configmap("web")).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_status(&body, 409, "AlreadyExists");
    assert_eq!(body["message"], "configmaps \"web\" already exists");

    let mut changed = got.clone();
    changed["data"]["a"] = json!("2");
    changed["metadata"]["uid"] = json!("forged");
    let (code, updated) = api.put(&format!("{CM}/web"), changed.clone()).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["data"]["a"], "2");
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_ne!(updated["metadata"]["resourceVersion"], rv1.as_str());

    // The same stale resourceVersion again is a conflict with Kubernetes' message.
    let (code, body) = api.put(&format!("{CM}/web"), changed).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_status(&body, 409, "Conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );

    let (code, body) = api.delete(&format!("{CM}/web")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["status"], "Success");
    assert_eq!(body["details"]["name"], "web");
    let (code, body) = api.get(&format!("{CM}/web")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "configmaps \"web\" not found");
}

#[tokio::test]
async fn generate_name_and_validation() {
    let api = api().await;
    let (code, created) = api
        .post(
            CM,
            json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"generateName": "cm-"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("cm-") && name.len() == 8, "{name}");

    let (code, body) = api.post(CM, configmap("Not_Valid")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_status(&body, 422, "Invalid");
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");

    let (code, body) = api
        .post(CM, json!({"kind": "ConfigMap", "metadata": {}}))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn bad_input_gets_status_errors() {
    let api = api().await;
    let cases: Vec<BadRequestCase> = vec![
        (
            "POST",
            CM.to_owned(),
            Some("application/json"),
            Some("{not json".into()),
            400,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/json"),
            Some("[1,2]".into()),
            400,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/json"),
            Some(
                json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
                    .to_string(),
            ),
            400,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/json"),
            Some(json!({"kind": "Secret", "metadata": {"name": "x"}}).to_string()),
            400,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/json"),
            Some(
                json!({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}})
                    .to_string(),
            ),
            400,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/vnd.kubernetes.protobuf"),
            Some("k8s".into()),
            400,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/yaml"),
            Some("kind: [ConfigMap".into()),
            400,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/yaml"),
            Some("kind: ConfigMap\nmetadata: {}".into()),
            422,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("text/plain"),
            Some("kind: ConfigMap".into()),
            415,
        ),
        (
            "POST",
            "/api/v1/namespaces/missing/configmaps".to_owned(),
            Some("application/json"),
            Some(configmap("x").to_string()),
            404,
        ),
        ("GET", "/api/v1/widgets".to_owned(), None, None, 404),
        (
            "PUT",
            CM.to_owned(),
            Some("application/json"),
            Some("{}".into()),
            405,
        ),
        (
            "GET",
            format!("{CM}?labelSelector=app+in+(web"),
            None,
            None,
            400,
        ),
        (
            "GET",
            format!("{CM}?fieldSelector=spec.nodeName%3Dx"),
            None,
            None,
            400,
        ),
        ("GET", format!("{CM}?limit=abc"), None, None, 400),
        ("GET", format!("{CM}?continue=garbage"), None, None, 400),
        (
            "PATCH",
            format!("{CM}/none"),
            Some("application/merge-patch+json"),
            Some("{}".into()),
            404,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/json"),
            Some(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
            400,
        ),
        (
            "POST",
            CM.to_owned(),
            Some("application/json"),
            Some("x".repeat(4 * 1024 * 1024)),
            413,
        ),
    ];
    for (method, uri, content_type, body, expected) in cases {
        let mut request = Request::builder().method(method).uri(&uri);
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let response = api
            .router
            .clone()
            .oneshot(
                request
                    .body(body.map_or_else(Body::empty, Body::from))
                    .unwrap(),
            )
            .await
            .unwrap();
        let code = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let status: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{method} {uri}: not a Status: {bytes:?}"));
        assert_eq!(code, expected, "{method} {uri}: {status}");
        assert_eq!(status["kind"], "Status", "{method} {uri}");
        assert_eq!(status["code"], expected, "{method} {uri}");
    }
    // Nothing of the bad writes was stored.
    let (_, list) = api.get(CM).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn patches_of_every_kind() {
    let api = api().await;
    api.post(CM, configmap("web")).await;
    let uri = format!("{CM}/web");
    let (code, merged) = api
        .patch(
            &uri,
            "application/merge-patch+json",
            json!({"data": {"b": "2", "a": null}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{merged}");
    assert_eq!(merged["data"], json!({"b": "2"}));
    let (code, patched) = api
        .patch(
            &uri,
            "application/json-patch+json",
            json!([{"op": "add", "path": "/data/c", "value": "3"}]),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["data"]["c"], "3");
    let (code, body) = api
        .patch(
            &uri,
            "application/json-patch+json",
            json!([{"op": "test", "path": "/data/c", "value": "nope"}]),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // A patch that pins a stale resourceVersion conflicts.
    let (code, body) = api
        .patch(
            &uri,
            "application/merge-patch+json",
            json!({"metadata": {"resourceVersion": "1"}, "data": {"d": "4"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");

    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}, {"name": "side", "image": "side:1"}]}}}});
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let (code, created) = api.post(deployments, deploy).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let (code, patched) = api
        .patch(
            &format!("{deployments}/web"),
            "application/strategic-merge-patch+json",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    let containers = patched["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2, "merged by name, not replaced");
    assert!(containers.iter().any(|c| c["image"] == "web:2"));
    assert_eq!(patched["metadata"]["generation"], 2);

    // Scale: read the view, patch it, and the parent's spec follows.
    let (code, scale) = api.get(&format!("{deployments}/web/scale")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, scale) = api
        .patch(
            &format!("{deployments}/web/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 3}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{scale}");
    assert_eq!(scale["spec"]["replicas"], 3);
    let (_, deployment) = api.get(&format!("{deployments}/web")).await;
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["metadata"]["generation"], 3);

    // Status writes go through /status only.
    let (_, updated) = api
        .patch(
            &format!("{deployments}/web"),
            "application/merge-patch+json",
            json!({"status": {"replicas": 9}}),
        )
        .await;
    assert!(updated["status"]["replicas"].is_null(), "{updated}");
    let (code, updated) = api
        .patch(
            &format!("{deployments}/web/status"),
            "application/merge-patch+json",
            json!({"status": {"replicas": 3}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["status"]["replicas"], 3);
    assert_eq!(
        updated["metadata"]["generation"], 3,
        "status writes never bump generation"
    );
}

#[tokio::test]
async fn list_paging_and_selectors() {
    let api = api().await;
    for i in 0..7 {
        let mut cm = configmap(&format!("cm-{i}"));
        cm["metadata"]["labels"]["parity"] = json!(if i % 2 == 0 { "even" } else { "odd" });
        api.post(CM, cm).await;
    }
    let (_, page) = api.get(&format!("{CM}?limit=3")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let token = page["metadata"]["continue"].as_str().unwrap().to_owned();
    api.delete(&format!("{CM}/cm-5")).await;
    let (_, rest) = api.get(&format!("{CM}?limit=10&continue={token}")).await;
    assert_eq!(
        rest["items"].as_array().unwrap().len(),
        4,
        "pages read the first page's snapshot"
    );
    assert!(rest["metadata"]["continue"].is_null());
    let (_, even) = api.get(&format!("{CM}?labelSelector=parity%3Deven")).await;
    assert_eq!(even["items"].as_array().unwrap().len(), 4);
    let (_, named) = api
        .get(&format!("{CM}?fieldSelector=metadata.name%3Dcm-1"))
        .await;
    assert_eq!(named["items"].as_array().unwrap().len(), 1);
    let (_, all) = api.get("/api/v1/configmaps").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 6);
    assert_eq!(all["kind"], "ConfigMapList");
}

#[tokio::test]
async fn dry_run_persists_nothing() {
    let api = api().await;
    let (code, body) = api
        .post(&format!("{CM}?dryRun=All"), configmap("ghost"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(
        api.get(&format!("{CM}/ghost")).await.0,
        StatusCode::NOT_FOUND
    );
    api.post(CM, configmap("real")).await;
    let (code, _) = api
        .call("DELETE", &format!("{CM}/real?dryRun=All"), None, None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(api.get(&format!("{CM}/real")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn finalizers_hold_deletion_and_namespaces_terminate() {
    let api = api().await;
    let mut cm = configmap("held");
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.post(CM, cm).await;
    let (code, marked) = api.delete(&format!("{CM}/held")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let (code, _) = api
        .patch(
            &format!("{CM}/held"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": ["example.com/hold", "more"]}}),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no new finalizers while deleting"
    );
    let (code, _) = api
        .patch(
            &format!("{CM}/held"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        api.get(&format!("{CM}/held")).await.0,
        StatusCode::NOT_FOUND,
        "the last finalizer removed it"
    );

    let (code, _) = api
        .post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (_, ns) = api.delete("/api/v1/namespaces/team").await;
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    let (code, body) = api
        .post("/api/v1/namespaces/team/configmaps", configmap("late"))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("because it is being terminated")
    );
    let (code, body) = api
        .put(
            "/api/v1/namespaces/team/finalize",
            json!({"metadata": {"name": "team"}, "spec": {"finalizers": []}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        api.get("/api/v1/namespaces/team").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pods_bind_once_and_delete_gracefully_on_a_node() {
    let api = api().await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let (_, created) = api.post(pods, pod).await;
    assert_eq!(created["status"]["phase"], "Pending");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, _) = api
        .post(&format!("{pods}/p/binding"), binding.clone())
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (_, bound) = api.get(&format!("{pods}/p")).await;
    let conditions = bound["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"),
        "binding marks the pod scheduled: {bound}"
    );
    let (code, body) = api.post(&format!("{pods}/p/binding"), binding).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    let (_, on_node) = api
        .get(&format!("{pods}?fieldSelector=spec.nodeName%3Dn1"))
        .await;
    assert_eq!(on_node["items"].as_array().unwrap().len(), 1);

    let (_, marked) = api.delete(&format!("{pods}/p")).await;
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"], 30,
        "{marked}"
    );
    assert_eq!(
        api.get(&format!("{pods}/p")).await.0,
        StatusCode::OK,
        "waits for the node"
    );
    // The node reports its containers stopped during the grace period; that write keeps
    // the pod, which only the node's own delete with grace 0 finishes.
    let (code, reported) = api
        .call(
            "PATCH",
            &format!("{pods}/p/status"),
            Some("application/merge-patch+json"),
            Some(json!({"status": {"phase": "Succeeded"}}).to_string()),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{reported}");
    let (code, kept) = api.get(&format!("{pods}/p")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(kept["status"]["phase"], "Succeeded");
    let (code, gone) = api
        .call(
            "DELETE",
            &format!("{pods}/p?gracePeriodSeconds=0"),
            None,
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(gone["kind"], "Pod", "pods return the deleted object");
    assert_eq!(api.get(&format!("{pods}/p")).await.0, StatusCode::NOT_FOUND);

    // A pod on its way out is not bound.
    let held = json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]},
                      "spec": {"containers": [{"name": "c", "image": "i"}]}});
    api.post(pods, held).await;
    api.delete(&format!("{pods}/held")).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "held"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, body) = api.post(&format!("{pods}/held/binding"), binding).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("is being deleted, cannot be assigned to a host"),
        "{body}"
    );
}

async fn watch_lines(api: &Api, uri: &str, n: usize) -> Vec<Value> {
    let response = api
        .router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut buffer = Vec::new();
    let mut lines = Vec::new();
    while lines.len() < n {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), body.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .unwrap();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(serde_json::from_slice(&line).unwrap());
        }
    }
    lines
}

#[tokio::test]
async fn watch_from_a_version_and_with_selectors() {
    let api = api().await;
    let (_, created) = api.post(CM, configmap("a")).await;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    api.patch(
        &format!("{CM}/a"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await;
    api.delete(&format!("{CM}/a")).await;

    // Booleans read as Kubernetes reads them: Python's client sends `True`.
    for watch in ["true", "True", "1"] {
        let events =
            watch_lines(&api, &format!("{CM}?watch={watch}&resourceVersion={rv}"), 2).await;
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["MODIFIED", "DELETED"], "watch={watch}");
    }
    for not_watch in ["false", "False", "0"] {
        let (code, list) = api.get(&format!("{CM}?watch={not_watch}")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(list["kind"], "ConfigMapList", "watch={not_watch}");
    }

    // Through a selector, leaving the selection reads as a deletion.
    let events = watch_lines(
        &api,
        &format!("{CM}?watch=true&resourceVersion={rv}&labelSelector=app%3Dweb"),
        1,
    )
    .await;
    assert_eq!(events[0]["type"], "DELETED");
    assert_eq!(events[0]["object"]["metadata"]["labels"]["app"], "other");

    // Without a version: the current state as ADDED, and with sendInitialEvents the bookmark.
    api.post(CM, configmap("b")).await;
    let events = watch_lines(&api, &format!("{CM}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"), 2).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "b");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

async fn get_with_accept(api: &Api, uri: &str, accept: &str) -> (StatusCode, Value) {
    let request = Request::get(uri)
        .header(header::ACCEPT, accept)
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn tables_when_kubectl_asks_for_them() {
    let api = api().await;
    api.post(CM, configmap("web")).await;
    let (code, table) = get_with_accept(&api, CM, TABLE_ACCEPT).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(table["kind"], "Table", "{table}");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "web");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(table["metadata"]["resourceVersion"].is_string());

    let (_, one) = get_with_accept(
        &api,
        &format!("{CM}/web?includeObject=Object"),
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(one["rows"][0]["object"]["data"]["a"], "1", "{one}");
    let (code, body) = get_with_accept(
        &api,
        &format!("{CM}?includeObject=Everything"),
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (_, plain) = get_with_accept(&api, CM, "application/json").await;
    assert_eq!(plain["kind"], "ConfigMapList");
}

#[tokio::test]
async fn openapi_documents_are_served_and_cacheable() {
    let api = api().await;
    let (code, index) = api.get("/openapi/v3").await;
    assert_eq!(code, StatusCode::OK);
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = api
        .router
        .clone()
        .oneshot(Request::get(&url).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, immutable"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let document: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        document["paths"]
            .as_object()
            .unwrap()
            .keys()
            .any(|p| p.contains("deployments"))
    );
    assert_eq!(
        api.get("/openapi/v3/apis/nope/v1").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn admission_defaults_validates_and_checks_fields() {
    let api = api().await;
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let deploy = json!({"metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
    let (code, created) = api.post(deployments, deploy.clone()).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["replicas"], 1);
    assert_eq!(created["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        created["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    let mut typo = deploy.clone();
    typo["metadata"]["name"] = json!("typo");
    typo["spec"]["replicaz"] = json!(2);
    let (code, body) = api
        .post(
            &format!("{deployments}?fieldValidation=Strict"),
            typo.clone(),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.replicaz\""),
        "{body}"
    );

    let request = Request::post(deployments)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(typo.to_string()))
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "Warn is the default"
    );
    let warning = response.headers()[header::WARNING]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        warning.starts_with("299 - ") && warning.contains("spec.replicaz"),
        "{warning}"
    );

    let mut mismatched = deploy.clone();
    mismatched["metadata"]["name"] = json!("bad");
    mismatched["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    let (code, body) = api.post(deployments, mismatched).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_status(&body, 422, "Invalid");

    // Replacing with the same manifest, defaults left out, is no spec change.
    let mut same = deploy.clone();
    same["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
    let (code, replaced) = api.put(&format!("{deployments}/web"), same).await;
    assert_eq!(code, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["metadata"]["generation"], 1, "{replaced}");
    let created = replaced;

    let mut moved = created.clone();
    moved["spec"]["selector"]["matchLabels"]["app"] = json!("moved");
    moved["spec"]["template"]["metadata"]["labels"]["app"] = json!("moved");
    let (code, body) = api.put(&format!("{deployments}/web"), moved).await;
    assert_eq!(
        code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "selectors are immutable: {body}"
    );
}

#[tokio::test]
async fn server_side_apply_owns_prunes_and_conflicts() {
    let api = api().await;
    let apply = |manager: &str, force: bool| {
        format!(
            "{CM}/applied?fieldManager={manager}{}",
            if force { "&force=true" } else { "" }
        )
    };
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  labels: {x: y}\ndata:\n  a: '1'\n  b: '2'\n";
    let (code, created) = api
        .patch_raw(&apply("me", false), "application/apply-patch+yaml", yaml)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"], json!({"a": "1", "b": "2"}));
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "me");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["fieldsV1"]["f:data"], json!({"f:a": {}, "f:b": {}}));

    // Re-applying the same configuration changes nothing, not even the version.
    let (code, again) = api
        .patch_raw(&apply("me", false), "application/apply-patch+yaml", yaml)
        .await;
    assert_eq!(code, StatusCode::OK, "{again}");
    assert_eq!(
        again["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // Another writer takes `b` with a merge patch; `c` is theirs alone.
    let (code, patched) = api
        .patch(
            &format!("{CM}/applied?fieldManager=editor"),
            "application/merge-patch+json",
            json!({"data": {"b": "edited", "c": "3"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    let editor = patched["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "editor")
        .expect("the editor owns what it changed");
    assert_eq!(editor["operation"], "Update");
    assert_eq!(editor["fieldsV1"]["f:data"], json!({"f:b": {}, "f:c": {}}));

    // Applying `b` again with the old value conflicts with the editor, by Kubernetes' message.
    let (code, status) = api
        .patch_raw(&apply("me", false), "application/apply-patch+yaml", yaml)
        .await;
    assert_status(&status, 409, "Conflict");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Apply failed with 1 conflict: conflict with \"editor\" using v1 at "),
        "{status}"
    );
    assert_eq!(status["details"]["causes"][0]["field"], ".data.b");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    assert_eq!(code, StatusCode::CONFLICT);

    // Dropping `b` and `x` from the configuration prunes `x` (only ours) but keeps `b`
    // (the editor's now) and `c` (never ours).
    let smaller = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n";
    let (code, pruned) = api
        .patch_raw(&apply("me", false), "application/apply-patch+yaml", smaller)
        .await;
    assert_eq!(code, StatusCode::OK, "{pruned}");
    assert_eq!(pruned["data"], json!({"a": "1", "b": "edited", "c": "3"}));
    assert!(pruned["metadata"].get("labels").is_none(), "{pruned}");

    // Forcing takes a field over: the editor no longer owns `c`.
    let forced_config =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n  c: mine\n";
    let (code, forced) = api
        .patch_raw(
            &apply("me", true),
            "application/apply-patch+yaml",
            forced_config,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{forced}");
    assert_eq!(forced["data"]["c"], "mine");
    let editor = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "editor")
        .unwrap();
    assert_eq!(editor["fieldsV1"]["f:data"], json!({"f:b": {}}));

    let (code, body) = api
        .patch_raw(
            &format!("{CM}/applied"),
            "application/apply-patch+yaml",
            smaller,
        )
        .await;
    assert_eq!(
        code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "fieldManager is required: {body}"
    );
    let (code, body) = api
        .patch_raw(
            &apply("me", false),
            "application/apply-patch+yaml",
            "data: {}",
        )
        .await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "apiVersion and kind are required: {body}"
    );
    let (code, body) = api
        .patch_raw(
            &apply("me", false),
            "application/apply-patch+yaml",
            "kind: [",
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "malformed YAML: {body}");
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn services_get_unique_loopback_cluster_ips_and_node_ports() {
    let api = Arc::new(api().await);
    let services = "/api/v1/namespaces/default/services";
    let ports = json!([{"port": 80}]);

    // Concurrent creates never share an address.
    let creates = (0..20).map(|i| {
        let api = api.clone();
        let ports = ports.clone();
        tokio::spawn(async move {
            api.post(services, service(&format!("s{i}"), json!({"ports": ports})))
                .await
        })
    });
    let mut ips = std::collections::HashSet::new();
    for create in creates {
        let (code, created) = create.await.unwrap();
        assert_eq!(code, StatusCode::CREATED, "{created}");
        let ip = created["spec"]["clusterIP"].as_str().unwrap().to_owned();
        assert!(ip.starts_with("127.100."), "{ip}");
        assert_eq!(created["spec"]["clusterIPs"][0], ip.as_str());
        assert!(ips.insert(ip), "an address was handed out twice");
    }

    let (code, fixed) = api
        .post(
            services,
            service("fixed", json!({"clusterIP": "127.100.9.9", "ports": ports})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{fixed}");
    let (code, body) = api
        .post(
            services,
            service("twin", json!({"clusterIP": "127.100.9.9", "ports": ports})),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already allocated"),
        "{body}"
    );
    let (code, body) = api
        .post(
            services,
            service("outside", json!({"clusterIP": "10.0.0.1", "ports": ports})),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("127.100.0.0/16"),
        "{body}"
    );

    // Deleting releases the address for the next Service.
    api.delete(&format!("{services}/fixed")).await;
    let (code, body) = api
        .post(
            services,
            service("twin", json!({"clusterIP": "127.100.9.9", "ports": ports})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");

    let (code, node_port) = api
        .post(
            services,
            service("np", json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30081}]})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{node_port}");
    let first = node_port["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&first), "{first}");
    assert_eq!(node_port["spec"]["ports"][1]["nodePort"], 30081);
    let (code, body) = api
        .post(
            services,
            service(
                "np2",
                json!({"type": "NodePort", "ports": [{"port": 81, "nodePort": 30081}]}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Headless Services take no address.
    let (_, headless) = api
        .post(
            services,
            service("headless", json!({"clusterIP": "None", "ports": ports})),
        )
        .await;
    assert_eq!(headless["spec"]["clusterIP"], "None");
}

#[tokio::test]
async fn metrics_count_requests_watches_and_store_operations() {
    let api = api().await;
    api.post(CM, configmap("m")).await;
    api.get(&format!("{CM}/m")).await;
    api.get(&format!("{CM}/absent")).await;
    let (code, text) = api.get("/metrics").await;
    assert_eq!(code, StatusCode::OK);
    let text = text.as_str().unwrap();
    for expected in [
        "apiserver_request_total{verb=\"create\",resource=\"configmaps\",code=\"201\"} 1",
        "apiserver_request_total{verb=\"get\",resource=\"configmaps\",code=\"200\"} 1",
        "apiserver_request_total{verb=\"get\",resource=\"configmaps\",code=\"404\"} 1",
        "apiserver_longrunning_requests{verb=\"watch\"} 0",
        "slipway_store_operation_duration_seconds_count{operation=\"create\"}",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test]
async fn quotas_refuse_what_exceeds_them_with_kubernetes_messages() {
    let api = Arc::new(api().await);
    api.post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"configmaps": "3", "pods": "2", "requests.cpu": "1"}}});
    let (code, body) = api
        .post("/api/v1/namespaces/team/resourcequotas", quota)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let configmaps = "/api/v1/namespaces/team/configmaps";

    // Ten concurrent creates against a limit of three: exactly three win.
    let creates = (0..10).map(|i| {
        let api = api.clone();
        tokio::spawn(async move { api.post(configmaps, configmap(&format!("c{i}"))).await })
    });
    let mut created = 0;
    let mut refused = None;
    for create in creates {
        let (code, body) = create.await.unwrap();
        match code {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => refused = Some(body),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 3);
    let refused = refused.unwrap();
    assert_status(&refused, 403, "Forbidden");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.ends_with("is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=3, limited: configmaps=3"),
        "{message}"
    );
    let (_, quota) = api.get("/api/v1/namespaces/team/resourcequotas/q").await;
    assert_eq!(quota["status"]["used"]["configmaps"], "3", "{quota}");

    // Deleting gives the usage back.
    let (_, list) = api.get(configmaps).await;
    let first = list["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    api.delete(&format!("{configmaps}/{first}")).await;
    let (code, body) = api.post(configmaps, configmap("again")).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");

    // Pods must state what a quota tracks.
    let pods = "/api/v1/namespaces/team/pods";
    let pod = |name: &str, cpu: Option<&str>| {
        let resources = cpu.map_or(json!({}), |cpu| json!({"requests": {"cpu": cpu}}));
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "web", "image": "web:1", "resources": resources}]}})
    };
    let (code, body) = api.post(pods, pod("bare", None)).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("failed quota: q: must specify requests.cpu for: web"),
        "{body}"
    );
    let (code, body) = api.post(pods, pod("small", Some("600m"))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = api.post(pods, pod("big", Some("500m"))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().ends_with(
            "requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn service_updates_allocate_and_release_node_ports_and_quota_follows() {
    let api = api().await;
    api.post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    let quota =
        json!({"metadata": {"name": "ports"}, "spec": {"hard": {"services.nodeports": "2"}}});
    api.post("/api/v1/namespaces/team/resourcequotas", quota)
        .await;
    let services = "/api/v1/namespaces/team/services";
    let ports = |n: u16| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"name": format!("p{i}"), "port": 80 + i}))
            .collect()
    };
    let (code, body) = api
        .post(services, service("web", json!({"ports": ports(3)})))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");

    // Turning three ports into node ports exceeds the quota; the service is unchanged.
    let (code, body) = api
        .patch(
            &format!("{services}/web"),
            "application/merge-patch+json",
            json!({"spec": {"type": "NodePort"}}),
        )
        .await;
    assert_status(&body, 403, "Forbidden");
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        body["message"].as_str().unwrap().ends_with(
            "exceeded quota: ports, requested: services.nodeports=3, used: services.nodeports=0, limited: services.nodeports=2"
        ),
        "{body}"
    );
    let (_, web) = api.get(&format!("{services}/web")).await;
    assert_eq!(web["spec"]["type"], "ClusterIP");

    // Two fit; going back to ClusterIP gives them back.
    let (code, body) = api
        .patch(
            &format!("{services}/web"),
            "application/merge-patch+json",
            json!({"spec": {"type": "NodePort", "ports": ports(2)}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // The update allocated node ports, as a create would, and nobody else gets them.
    let taken = body["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port");
    assert!((30000..=32767).contains(&taken), "{body}");
    let claim = |name: &str| {
        service(
            name,
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": taken}]}),
        )
    };
    let (code, body) = api
        .post("/api/v1/namespaces/default/services", claim("thief"))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, quota) = api
        .get("/api/v1/namespaces/team/resourcequotas/ports")
        .await;
    assert_eq!(
        quota["status"]["used"]["services.nodeports"], "2",
        "{quota}"
    );
    let (code, body) = api
        .patch(
            &format!("{services}/web"),
            "application/merge-patch+json",
            json!({"spec": {"type": "ClusterIP"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (_, quota) = api
        .get("/api/v1/namespaces/team/resourcequotas/ports")
        .await;
    assert_eq!(
        quota["status"]["used"]["services.nodeports"], "0",
        "{quota}"
    );
    // Back to ClusterIP: the port is dropped and free again.
    let (_, web) = api.get(&format!("{services}/web")).await;
    assert!(web["spec"]["ports"][0].get("nodePort").is_none(), "{web}");
    let (code, body) = api
        .post("/api/v1/namespaces/default/services", claim("heir"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn limit_ranges_default_and_bound_pods_before_quotas_count_them() {
    let api = api().await;
    api.post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    let range = json!({"metadata": {"name": "defaults"}, "spec": {"limits": [{"type": "Container",
        "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
        "max": {"cpu": "1"}}]}});
    let (code, body) = api.post("/api/v1/namespaces/team/limitranges", range).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi"}}});
    api.post("/api/v1/namespaces/team/resourcequotas", quota)
        .await;

    let pods = "/api/v1/namespaces/team/pods";
    let plain = json!({"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}});
    let (code, pod) = api.post(pods, plain).await;
    assert_eq!(
        code,
        StatusCode::CREATED,
        "a plain manifest is admitted: {pod}"
    );
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "500m", "{pod}");
    assert_eq!(resources["requests"]["memory"], "128Mi", "{pod}");
    let (_, quota) = api.get("/api/v1/namespaces/team/resourcequotas/q").await;
    assert_eq!(quota["status"]["used"]["requests.cpu"], "100m", "{quota}");

    let greedy = json!({"metadata": {"name": "greedy"}, "spec": {"containers": [{"name": "web", "image": "web:1",
        "resources": {"limits": {"cpu": "2"}}}]}});
    let (code, body) = api.post(pods, greedy).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("maximum cpu usage per Container is 1, but limit is 2"),
        "{body}"
    );
}

#[tokio::test]
async fn limit_ranges_default_and_bound_init_containers_like_containers() {
    let api = api().await;
    api.post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    let range = json!({"metadata": {"name": "defaults"}, "spec": {"limits": [{"type": "Container",
        "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}});
    let (code, body) = api.post("/api/v1/namespaces/team/limitranges", range).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");

    let pods = "/api/v1/namespaces/team/pods";
    let plain = json!({"metadata": {"name": "plain"}, "spec": {
        "initContainers": [{"name": "setup", "image": "setup:1"}],
        "containers": [{"name": "web", "image": "web:1"}]}});
    let (code, pod) = api.post(pods, plain).await;
    assert_eq!(code, StatusCode::CREATED, "{pod}");
    assert_eq!(
        pod["spec"]["initContainers"][0]["resources"],
        json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}}),
        "{pod}"
    );

    let greedy = json!({"metadata": {"name": "greedy"}, "spec": {
        "initContainers": [{"name": "setup", "image": "setup:1", "resources": {"limits": {"cpu": "2"}}}],
        "containers": [{"name": "web", "image": "web:1", "resources": {"limits": {"cpu": "3"}}}]}});
    let (code, body) = api.post(pods, greedy).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_status(&body, 403, "Forbidden");
    assert_eq!(
        body["message"],
        "pods \"greedy\" is forbidden: [maximum cpu usage per Container is 1, but limit is 3, \
         maximum cpu usage per Container is 1, but limit is 2]"
    );
}

#[tokio::test]
async fn limit_ranges_bound_what_the_whole_pod_asks_for() {
    let api = api().await;
    api.post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    let ranges = "/api/v1/namespaces/team/limitranges";
    let per_pod = json!({"metadata": {"name": "per-pod"}, "spec": {"limits": [{"type": "Pod",
        "max": {"cpu": "2"}, "min": {"memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "2"}}]}});
    let (code, body) = api.post(ranges, per_pod).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    // Broken too by the pods below, but the first range (by name) that finds anything
    // answers alone.
    let per_container = json!({"metadata": {"name": "then-per-container"}, "spec": {"limits": [{"type": "Container",
        "max": {"cpu": "1"}}]}});
    let (code, body) = api.post(ranges, per_container).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");

    let pods = "/api/v1/namespaces/team/pods";
    let container = |name: &str, cpu_request: &str, cpu_limit: &str, memory: &str| {
        json!({"name": name, "image": "web:1", "resources": {
            "requests": {"cpu": cpu_request, "memory": memory},
            "limits": {"cpu": cpu_limit, "memory": memory}}})
    };
    let big = json!({"metadata": {"name": "big"}, "spec": {"containers": [
        container("a", "250m", "1500m", "256Mi"), container("b", "500m", "1500m", "256Mi")]}});
    let (code, body) = api.post(pods, big).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_status(&body, 403, "Forbidden");
    assert_eq!(
        body["message"],
        "pods \"big\" is forbidden: [minimum memory usage per Pod is 1Gi, but request is 512Mi, \
         maximum cpu usage per Pod is 2, but limit is 3, \
         cpu max limit to request ratio per Pod is 2, but provided ratio is 4.000000]"
    );

    // The init container runs alone, so the pod needs its 3 CPUs, not the sum.
    let setup = json!({"metadata": {"name": "setup"}, "spec": {
        "initContainers": [container("setup", "2", "3", "512Mi")],
        "containers": [container("a", "500m", "1", "512Mi"), container("b", "500m", "1", "512Mi")]}});
    let (code, body) = api.post(pods, setup).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "pods \"setup\" is forbidden: maximum cpu usage per Pod is 2, but limit is 3"
    );

    let fits = json!({"metadata": {"name": "fits"}, "spec": {
        "initContainers": [container("setup", "1", "1", "512Mi")],
        "containers": [container("a", "500m", "1", "512Mi"), container("b", "500m", "1", "512Mi")]}});
    let (code, body) = api.post(pods, fits).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn owner_references_are_validated_and_stored() {
    let api = api().await;
    let mut owned = configmap("owned");
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "1234", "controller": true}]);
    let (code, created) = api.post(CM, owned.clone()).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["ownerReferences"][0]["uid"], "1234");

    owned["metadata"]["name"] = json!("orphan");
    owned["metadata"]["ownerReferences"][0]["uid"] = json!("");
    let (_, status) = api.post(CM, owned).await;
    assert_status(&status, 422, "Invalid");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "metadata.ownerReferences.uid"
    );
}

#[tokio::test]
async fn privileged_containers_need_the_server_to_allow_them() {
    let pod = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "root"},
    "spec": {"containers": [
        {"name": "plain", "image": "busybox"},
        {"name": "root", "image": "busybox", "securityContext": {"privileged": true}},
    ]}});
    let pods = "/api/v1/namespaces/default/pods";
    let api = api().await;
    let (code, body) = api.post(pods, pod.clone()).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["message"],
        "Pod \"root\" is invalid: spec.containers[1].securityContext.privileged: Forbidden: disallowed by cluster policy"
    );
    let deployment = json!({"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "root"},
        "spec": {"selector": {"matchLabels": {"app": "r"}}, "template": {
            "metadata": {"labels": {"app": "r"}},
            "spec": {"containers": [{"name": "root", "image": "busybox",
                                     "securityContext": {"privileged": true}}]}}}});
    let (code, body) = api
        .post("/apis/apps/v1/namespaces/default/deployments", deployment)
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "spec.template.spec.containers[0].securityContext.privileged"
    );

    let (allowed, _) = api_configured(|state| state.with_allow_privileged(true)).await;
    let (code, body) = allowed.post(pods, pod).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

/// A stand-in node agent on loopback answering `/stats/summary` with `summary` to the
/// bearer `token` only; it stops when the test's runtime does.
async fn fake_agent(token: &'static str, summary: Value) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route(
        "/stats/summary",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let summary = summary.clone();
            async move {
                let bearer = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if bearer.as_deref() == Some(&format!("Bearer {token}")) {
                    (StatusCode::OK, summary.to_string())
                } else {
                    (StatusCode::UNAUTHORIZED, String::new())
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// A Node whose agent serves at 127.0.0.1:`port`.
async fn node_at(api: &Api, name: &str, port: u16) {
    let (code, body) = api
        .post(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": name, "labels": {"pool": "a"}}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let mut node = body;
    node["status"] = json!({
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    });
    let (code, body) = api.put(&format!("/api/v1/nodes/{name}/status"), node).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

async fn pod_on(api: &Api, name: &str, node: Option<&str>) -> String {
    let mut spec = json!({"containers": [{"name": "app", "image": "busybox"}]});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    let (code, body) = api
        .post(
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    body["metadata"]["uid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn metrics_api_serves_the_agents_figures() {
    let (api, _state) =
        api_configured(|state| state.with_node_credentials("join".to_owned())).await;
    let web = pod_on(&api, "web", Some("n1")).await;
    let starting = pod_on(&api, "starting", Some("n1")).await;
    pod_on(&api, "elsewhere", Some("gone")).await;
    pod_on(&api, "pending", None).await;
    let cpu = |nano: u64| {
        json!({"time": "2026-01-01T00:00:05Z", "usageNanoCores": nano,
                                 "usageCoreNanoSeconds": 9_000_000_000u64, "windowSeconds": 10.0})
    };
    let port = fake_agent(
        "join",
        json!({
            "node": {"nodeName": "n1", "cpu": cpu(250_000_000),
                     "memory": {"workingSetBytes": 1_073_741_824u64, "usageBytes": 2_147_483_648u64}},
            "pods": [
                {"podRef": {"name": "web", "namespace": "default", "uid": web},
                 "containers": [{"name": "app", "cpu": cpu(2_500_000),
                                 "memory": {"workingSetBytes": 10_485_760, "usageBytes": 20_971_520}}]},
                // Just started: no rate yet, so no figures.
                {"podRef": {"name": "starting", "namespace": "default", "uid": starting},
                 "containers": [{"name": "app", "cpu": {"usageCoreNanoSeconds": 5},
                                 "memory": {"workingSetBytes": 4096}}]},
            ],
        }),
    )
    .await;
    node_at(&api, "n1", port).await;
    // A node whose agent is not there: its pods are left out, the rest still answered.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    node_at(&api, "gone", closed_port).await;

    let base = "/apis/metrics.k8s.io/v1beta1";
    let (code, pods) = api.get(&format!("{base}/namespaces/default/pods")).await;
    assert_eq!(code, StatusCode::OK, "{pods}");
    assert_eq!(pods["kind"], "PodMetricsList");
    assert_eq!(pods["apiVersion"], "metrics.k8s.io/v1beta1");
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pods}");
    let item = &items[0];
    assert_eq!(item["kind"], "PodMetrics");
    assert_eq!(item["metadata"]["name"], "web");
    assert_eq!(item["metadata"]["labels"]["app"], "web");
    assert_eq!(item["timestamp"], "2026-01-01T00:00:05Z");
    assert_eq!(item["window"], "10s");
    assert_eq!(item["containers"][0]["name"], "app");
    assert_eq!(item["containers"][0]["usage"]["cpu"], "2500000n");
    assert_eq!(item["containers"][0]["usage"]["memory"], "10Mi");

    let (_, everywhere) = api.get(&format!("{base}/pods")).await;
    assert_eq!(everywhere["items"].as_array().unwrap().len(), 1);
    let (_, selected) = api
        .get(&format!(
            "{base}/namespaces/default/pods?labelSelector=app%3Dstarting"
        ))
        .await;
    assert_eq!(selected["items"], json!([]));
    let (code, one) = api
        .get(&format!("{base}/namespaces/default/pods/web"))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(one["metadata"]["name"], "web");
    for name in ["starting", "elsewhere", "pending", "nope"] {
        let (code, body) = api
            .get(&format!("{base}/namespaces/default/pods/{name}"))
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{name}: {body}");
        assert_status(&body, 404, "NotFound");
        assert_eq!(
            body["message"],
            format!("podmetrics.metrics.k8s.io \"default/{name}\" not found")
        );
    }

    let (code, nodes) = api.get(&format!("{base}/nodes")).await;
    assert_eq!(code, StatusCode::OK, "{nodes}");
    assert_eq!(nodes["kind"], "NodeMetricsList");
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the unreachable node is left out: {nodes}");
    assert_eq!(items[0]["metadata"]["name"], "n1");
    assert_eq!(items[0]["metadata"]["labels"]["pool"], "a");
    assert_eq!(items[0]["usage"]["cpu"], "250000000n");
    assert_eq!(items[0]["usage"]["memory"], "1Gi");
    let (code, _) = api.get(&format!("{base}/nodes/n1")).await;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = api.get(&format!("{base}/nodes/gone")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        body["message"],
        "nodemetrics.metrics.k8s.io \"gone\" not found"
    );

    let (code, body) = api.post(&format!("{base}/nodes"), json!({})).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_status(&body, 405, "MethodNotAllowed");
    let (code, body) = api.get(&format!("{base}/pods?watch=true")).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (code, body) = api
        .get(&format!("{base}/pods?labelSelector=app+in+(x"))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");

    let (_, group) = api.get(base).await;
    let resources: Vec<(&str, &Value)> = group["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), &r["verbs"]))
        .collect();
    assert_eq!(
        resources,
        [
            ("nodes", &json!(["get", "list"])),
            ("pods", &json!(["get", "list"]))
        ]
    );
}

#[tokio::test]
async fn metrics_api_without_node_credentials_is_unavailable() {
    let api = api().await;
    pod_on(&api, "web", Some("n1")).await;
    let (code, body) = api
        .get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
        .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_status(&body, 503, "ServiceUnavailable");
}

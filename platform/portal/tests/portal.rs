//! The portal's handlers through `Router::oneshot`, against a stub upstream: a small router
//! that serves canned Kubernetes and platform JSON, authenticates two tokens, answers 403
//! for another squad's paths, and records every request it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use slipway_clock::ManualClock;
use slipway_portal::{Options, Portal};
use tower::ServiceExt as _;

const MEMBER: &str = "slw_ana";
const ADMIN: &str = "slw_root";

/// One request the upstream saw.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    authorization: Option<String>,
}

#[derive(Clone, Default)]
struct Upstream {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Tokens revoked since sign-in.
    revoked: Arc<Mutex<Vec<String>>>,
    /// The body of the last request that had one.
    body: Arc<Mutex<Value>>,
    /// How many more replaces of a Deployment conflict, as a changing status makes them.
    conflicts: Arc<Mutex<u32>>,
}

impl Upstream {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn mutations(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method != Method::GET && !s.path.contains("selfsubjectreviews"))
            .collect()
    }

    fn last_body(&self) -> Value {
        self.body.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn revoke(&self, token: &str) {
        if let Ok(mut r) = self.revoked.lock() {
            r.push(token.to_owned());
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Response {
    ok(json!({ "apiVersion": api_version, "kind": kind, "metadata": {}, "items": items }))
}

fn deployment(name: &str, component: &str, ready: i32, desired: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": "web", "uid": format!("uid-{name}"),
            "creationTimestamp": "2025-12-31T22:00:00Z",
            "labels": { "app.kubernetes.io/name": component, "slipway.dev/system": "shop" },
            "annotations": { "deployment.kubernetes.io/revision": "2" }
        },
        "spec": {
            "replicas": desired,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "main", "image": format!("registry.local/{name}:v2") }] }
            }
        },
        "status": { "replicas": desired, "readyReplicas": ready }
    })
}

fn replica_set(revision: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("api-rev{revision}"), "namespace": "web",
            "annotations": { "deployment.kubernetes.io/revision": revision },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": "uid-api", "controller": true }]
        },
        "spec": {
            "selector": { "matchLabels": { "app": "api" } },
            "template": {
                "metadata": { "labels": { "app": "api", "pod-template-hash": format!("h{revision}") } },
                "spec": { "containers": [{ "name": "main", "image": format!("registry.local/api:v{revision}") }] }
            }
        },
        "status": { "replicas": if revision == "2" { 2 } else { 0 } }
    })
}

fn preview() -> Value {
    json!({
        "id": 7, "repo": "acme/shop", "squad": "web", "pr": 42, "namespace": "pr-shop-42",
        "title": "Add the basket", "author": "octocat",
        "prUrl": "https://github.com/acme/shop/pull/42", "sleeping": true,
        "createdAt": "2025-12-31T23:00:00Z",
        "url": "http://pr-shop-42.preview.localhost:8080/",
        "status": {
            "phase": "sleeping", "message": "", "headSha": "0123456789abcdef0123",
            "deployedSha": "0123456789abcdef0123", "expiresAt": "2026-01-01T05:00:00Z",
            "pinned": false
        }
    })
}

async fn serve(State(upstream): State<Upstream>, request: Request<Body>) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Ok(mut seen) = upstream.seen.lock() {
        seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
        });
    }
    let (_, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let (Ok(value), Ok(mut last)) = (
        serde_json::from_slice::<Value>(&bytes),
        upstream.body.lock(),
    ) {
        *last = value;
    }
    let revoked = upstream
        .revoked
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let token = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .filter(|t| !revoked.iter().any(|r| r == t));
    let (user, groups) = match token {
        Some(MEMBER) => ("ana", vec!["squad:web", "system:authenticated"]),
        Some(ADMIN) => ("root", vec!["slipway:admins", "system:authenticated"]),
        _ => return status(401, "Unauthorized", "Unauthorized"),
    };
    let admin = user == "root";
    match (method.as_str(), path.as_str()) {
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews") => ok(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "status": { "userInfo": { "username": user, "groups": groups } }
        })),
        ("GET", "/slipway/v1/squads") => ok(json!({ "items": [squad(), other_squad()] })),
        ("GET", "/slipway/v1/squads/web") => ok(squad()),
        ("GET", "/slipway/v1/squads/ops") => status(
            403,
            "Forbidden",
            "squads.platform.slipway.dev \"ops\" is forbidden: User \"ana\" cannot get resource \"squads\"",
        ),
        ("GET", "/slipway/v1/previews") => ok(json!({ "items": [preview()] })),
        ("GET", "/slipway/v1/squads/web/previews/pr-shop-42") => ok(preview()),
        ("DELETE", "/slipway/v1/squads/web/previews/pr-shop-42") => ok(preview()),
        ("GET", "/slipway/v1/squads/web/repos") => ok(json!({ "items": [{
            "id": 1, "owner": "acme", "name": "shop", "squad": "web", "access": "token",
            "createdAt": "2025-12-30T00:00:00Z"
        }] })),
        ("GET", "/slipway/v1/squads/web/repos/acme/shop") => ok(json!({
            "id": 1, "owner": "acme", "name": "shop", "squad": "web", "access": "token",
            "createdAt": "2025-12-30T00:00:00Z",
            "deliveries": [{
                "delivery": "d-1", "event": "pull_request", "action": "synchronize", "pr": 42,
                "sha": "0123456789abcdef0123", "sender": "octocat",
                "receivedAt": "2025-12-31T23:50:00Z", "processedAt": null
            }],
            "configErrors": [{ "pr": 41, "namespace": "pr-shop-41", "message": ".slipway.yaml:3:1: unknown key \"exposes\"" }]
        })),
        ("GET", "/apis/apps/v1/namespaces/web/deployments") => list(
            "DeploymentList",
            "apps/v1",
            vec![
                deployment("api", "api", 1, 2),
                deployment("front", "<script>alert(1)</script>", 3, 3),
            ],
        ),
        ("GET", "/apis/apps/v1/deployments") if admin => list(
            "DeploymentList",
            "apps/v1",
            vec![deployment("api", "api", 1, 2)],
        ),
        ("GET", "/apis/apps/v1/namespaces/web/deployments/api") => {
            ok(deployment("api", "api", 1, 2))
        }
        ("PATCH", "/apis/apps/v1/namespaces/web/deployments/api/scale") => ok(json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": { "name": "api", "namespace": "web" }, "spec": { "replicas": 3 }
        })),
        ("GET", "/apis/apps/v1/namespaces/web/replicasets") => list(
            "ReplicaSetList",
            "apps/v1",
            ["1", "2"].iter().map(|r| replica_set(r)).collect(),
        ),
        ("GET", "/api/v1/namespaces/web/pods") => list(
            "PodList",
            "v1",
            vec![json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": "api-5d8-x1", "namespace": "web", "labels": { "app": "api" } },
                "spec": { "nodeName": "node-1", "containers": [{ "name": "main", "image": "registry.local/api:v2" }] },
                "status": { "phase": "Running", "containerStatuses": [{
                    "name": "main", "ready": true, "restartCount": 4, "image": "registry.local/api:v2",
                    "imageID": "", "containerID": ""
                }] }
            })],
        ),
        ("GET", "/api/v1/namespaces/web/pods/api-5d8-x1/log") => {
            "listening on :8080\nGET /healthz 200\n".into_response()
        }
        ("PUT", "/apis/apps/v1/namespaces/web/deployments/api") => {
            let conflicted = upstream.conflicts.lock().is_ok_and(|mut left| {
                let conflicted = *left > 0;
                *left = left.saturating_sub(1);
                conflicted
            });
            if conflicted {
                status(409, "Conflict", "the object has been modified")
            } else {
                ok(deployment("api", "api", 1, 2))
            }
        }
        ("GET", "/api/v1/namespaces/web/resourcequotas/squad-quota") => ok(json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": { "name": "squad-quota", "namespace": "web" },
            "spec": { "hard": { "requests.cpu": "4", "requests.memory": "8Gi", "pods": "50" } },
            "status": {
                "hard": { "requests.cpu": "4", "requests.memory": "8Gi", "pods": "50" },
                "used": { "requests.cpu": "1500m", "requests.memory": "2Gi", "pods": "4" }
            }
        })),
        ("GET", "/api/v1/namespaces/web/events") => list(
            "EventList",
            "v1",
            vec![json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": { "name": "api.1", "namespace": "web" },
                "involvedObject": { "kind": "Deployment", "name": "api" },
                "reason": "ScalingReplicaSet", "message": "Scaled up replica set api-5d8 to 2",
                "type": "Normal", "lastTimestamp": "2025-12-31T23:59:00Z"
            })],
        ),
        ("GET", "/api/v1/namespaces/web/services") => list(
            "ServiceList",
            "v1",
            vec![json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "api", "namespace": "web" },
                "spec": { "selector": { "app": "api" }, "ports": [{ "port": 80 }] }
            })],
        ),
        ("GET", "/apis/networking.k8s.io/v1/namespaces/web/ingresses") => list(
            "IngressList",
            "networking.k8s.io/v1",
            vec![json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": { "name": "api", "namespace": "web" },
                "spec": { "rules": [{ "host": "api.web.localhost", "http": { "paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": { "service": { "name": "api", "port": { "number": 80 } } }
                }] } }] }
            })],
        ),
        ("GET", "/api/v1/nodes") if admin => list(
            "NodeList",
            "v1",
            vec![json!({
                "apiVersion": "v1", "kind": "Node", "metadata": { "name": "node-1" },
                "status": {
                    "allocatable": { "cpu": "8", "memory": "16Gi", "pods": "110" },
                    "conditions": [{ "type": "Ready", "status": "True" }]
                }
            })],
        ),
        ("GET", "/api/v1/nodes") => status(
            403,
            "Forbidden",
            "nodes is forbidden: User \"ana\" cannot list resource \"nodes\"",
        ),
        ("GET", "/api/v1/pods") if admin => list("PodList", "v1", vec![]),
        ("GET", "/api/v1/resourcequotas") if admin => list("ResourceQuotaList", "v1", vec![]),
        _ => status(404, "NotFound", &format!("{path} not found")),
    }
}

fn squad() -> Value {
    json!({
        "name": "web", "namespaces": ["web"],
        "quota": { "hard": { "requests.cpu": "4" } },
        "previews": { "max": 3 },
        "members": [{ "user": "ana", "role": "owner" }],
        "createdAt": "2025-12-01T00:00:00Z"
    })
}

/// A squad ana is no member of; the API lists it to her all the same.
fn other_squad() -> Value {
    json!({
        "name": "data", "namespaces": ["data"],
        "quota": { "hard": {} },
        "previews": { "max": 3 },
        "members": [{ "user": "bo", "role": "owner" }],
        "createdAt": "2025-12-01T00:00:00Z"
    })
}

struct Harness {
    portal: Router,
    upstream: Upstream,
    clock: ManualClock,
}

fn harness(secure_cookies: bool) -> Harness {
    let upstream = Upstream::default();
    let router = Router::new().fallback(serve).with_state(upstream.clone());
    let clock = ManualClock::at_epoch_2026();
    let options = Options {
        secure_cookies,
        gateway: Some("http://127.0.0.1:8080".to_owned()),
        clock: Arc::new(clock.clone()),
        ..Options::default()
    };
    Harness {
        portal: Portal::new(router, options).router(),
        upstream,
        clock,
    }
}

struct Answer {
    code: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        self.body
            .split_once(marker)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(value, _)| value.to_owned())
            .unwrap_or_default()
    }
}

impl Harness {
    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .portal
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let code = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_else(|_| Bytes::new());
        Answer {
            code,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, session: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(cookie) = session {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).expect("a request"))
            .await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &str) -> Answer {
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(
            request
                .body(Body::from(form.to_owned()))
                .expect("a request"),
        )
        .await
    }

    /// The sign-in answer for `token`, through the form and its cookie.
    async fn sign_in_answer(&self, token: &str) -> Answer {
        let form = self.get("/signin", None).await;
        assert_eq!(form.code, StatusCode::OK);
        let cookie = form.cookie("slipway_signin").expect("a form cookie");
        let pair = cookie.split(';').next().unwrap_or_default().to_owned();
        let body = format!("csrf={}&token={token}&next=%2F", form.csrf());
        self.post("/signin", Some(&pair), &body).await
    }

    /// Signs in; returns the `Cookie` header value naming the session.
    async fn sign_in(&self, token: &str) -> String {
        let answer = self.sign_in_answer(token).await;
        assert_eq!(answer.code, StatusCode::SEE_OTHER, "{}", answer.body);
        let cookie = answer.cookie("slipway_session").expect("a session cookie");
        cookie.split(';').next().unwrap_or_default().to_owned()
    }

    /// The session's CSRF token, as its pages carry it.
    async fn csrf(&self, session: &str) -> String {
        self.get("/", Some(session)).await.csrf()
    }
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_session_cookie() {
    let h = harness(false);
    let answer = h.sign_in_answer(MEMBER).await;
    assert_eq!(answer.code, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/");
    let cookie = answer.cookie("slipway_session").expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    let id = cookie
        .split(';')
        .next()
        .and_then(|p| p.strip_prefix("slipway_session="))
        .unwrap_or_default();
    assert_eq!(id.len(), 64, "256 random bits as hex");
}

#[tokio::test]
async fn cookies_are_secure_when_served_over_tls() {
    let h = harness(true);
    let form = h.get("/signin", None).await;
    assert!(
        form.cookie("slipway_signin")
            .is_some_and(|c| c.contains("; Secure"))
    );
    let answer = h.sign_in_answer(MEMBER).await;
    let cookie = answer.cookie("slipway_session").expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_wrong_token_shows_the_form_again_with_an_error() {
    let h = harness(false);
    let answer = h.sign_in_answer("slw_nobody").await;
    assert_eq!(answer.code, StatusCode::UNAUTHORIZED);
    assert!(answer.cookie("slipway_session").is_none());
    assert!(answer.body.contains("was not accepted"), "{}", answer.body);
    assert!(answer.body.contains("name=\"token\""));
}

#[tokio::test]
async fn a_sign_in_without_the_form_token_is_refused_before_the_api_is_asked() {
    let h = harness(false);
    let answer = h.post("/signin", None, &format!("token={MEMBER}")).await;
    assert_eq!(answer.code, StatusCode::FORBIDDEN);
    assert!(answer.cookie("slipway_session").is_none());
    assert!(h.upstream.seen().is_empty(), "{:?}", h.upstream.seen());
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_sign_in_and_come_back() {
    let h = harness(false);
    let answer = h.get("/squads/web", None).await;
    assert_eq!(answer.code, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/signin?next=%2Fsquads%2Fweb");
    let form = h.get("/signin?next=%2Fsquads%2Fweb", None).await;
    assert!(form.body.contains("value=\"/squads/web\""), "{}", form.body);
    // An open redirect is never offered back.
    let form = h.get("/signin?next=%2F%2Fevil.example", None).await;
    assert!(
        form.body.contains("name=\"next\" value=\"/\""),
        "{}",
        form.body
    );
    // A form posted after the session ended is not sent back to as a page.
    let posted = h
        .post("/previews/web/pr-shop-1/extend", None, "duration=2d")
        .await;
    assert_eq!(posted.code, StatusCode::SEE_OTHER);
    assert_eq!(posted.location(), "/signin");
}

#[tokio::test]
async fn a_malformed_address_is_a_readable_page() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let answer = h
        .get("/squads/web/services/web/api/logs?pod=p", Some(&session))
        .await;
    assert_eq!(answer.code, StatusCode::BAD_REQUEST);
    assert!(
        answer.body.contains("<h1>Bad request</h1>") && answer.body.contains("container"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn the_api_sees_only_the_signed_in_users_token() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let page = h.get("/squads/web", Some(&session)).await;
    assert_eq!(page.code, StatusCode::OK, "{}", page.body);
    let seen = h.upstream.seen();
    assert!(seen.len() > 3, "{seen:?}");
    for s in &seen {
        assert_eq!(s.authorization.as_deref(), Some("Bearer slw_ana"), "{s:?}");
    }
}

#[tokio::test]
async fn members_see_only_their_own_squads_and_admins_all() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    for path in ["/", "/catalog", "/repos"] {
        let page = h.get(path, Some(&session)).await;
        assert_eq!(page.code, StatusCode::OK, "{path}: {}", page.body);
        assert!(page.body.contains("web"), "{path}: {}", page.body);
        assert!(!page.body.contains("/squads/data"), "{path}: {}", page.body);
    }
    assert!(
        h.upstream.seen().iter().all(|s| !s.path.contains("data")),
        "nothing of squad data is asked for"
    );
    let admin = h.sign_in(ADMIN).await;
    let home = h.get("/", Some(&admin)).await;
    assert!(home.body.contains("/squads/data"), "{}", home.body);
}

#[tokio::test]
async fn a_post_without_or_with_a_wrong_csrf_token_is_refused_and_nothing_changes() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let path = "/squads/web/services/web/api/scale";
    let missing = h.post(path, Some(&session), "replicas=3").await;
    assert_eq!(missing.code, StatusCode::FORBIDDEN);
    let wrong = h
        .post(
            path,
            Some(&session),
            &format!("csrf={}&replicas=3", "0".repeat(64)),
        )
        .await;
    assert_eq!(wrong.code, StatusCode::FORBIDDEN);
    assert!(
        wrong.body.contains("not sent from this site"),
        "{}",
        wrong.body
    );
    let destroy = h
        .post(
            "/previews/web/pr-shop-42/destroy",
            Some(&session),
            "confirm=yes",
        )
        .await;
    assert_eq!(destroy.code, StatusCode::FORBIDDEN);
    assert!(
        h.upstream.mutations().is_empty(),
        "{:?}",
        h.upstream.mutations()
    );
}

#[tokio::test]
async fn scaling_with_the_csrf_token_patches_the_scale_subresource() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let csrf = h.csrf(&session).await;
    let answer = h
        .post(
            "/squads/web/services/web/api/scale",
            Some(&session),
            &format!("csrf={csrf}&replicas=3"),
        )
        .await;
    assert_eq!(answer.code, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location(),
        "/squads/web/services/web/api?done=scaled"
    );
    let mutations = h.upstream.mutations();
    assert_eq!(mutations.len(), 1, "{mutations:?}");
    assert_eq!(mutations[0].method, Method::PATCH);
    assert_eq!(
        mutations[0].path,
        "/apis/apps/v1/namespaces/web/deployments/api/scale"
    );
}

#[tokio::test]
async fn destroying_a_preview_needs_the_confirmation() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let confirm = h
        .get("/previews/web/pr-shop-42/destroy", Some(&session))
        .await;
    assert_eq!(confirm.code, StatusCode::OK);
    assert!(
        confirm.body.contains("name=\"confirm\""),
        "{}",
        confirm.body
    );
    let csrf = confirm.csrf();
    let unconfirmed = h
        .post(
            "/previews/web/pr-shop-42/destroy",
            Some(&session),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(unconfirmed.code, StatusCode::BAD_REQUEST);
    assert!(h.upstream.mutations().is_empty());
    let confirmed = h
        .post(
            "/previews/web/pr-shop-42/destroy",
            Some(&session),
            &format!("csrf={csrf}&confirm=yes"),
        )
        .await;
    assert_eq!(confirmed.code, StatusCode::SEE_OTHER);
    let mutations = h.upstream.mutations();
    assert_eq!(mutations.len(), 1);
    assert_eq!(mutations[0].method, Method::DELETE);
}

#[tokio::test]
async fn the_squad_page_shows_quota_bars_deployments_urls_events_and_previews() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let page = h.get("/squads/web", Some(&session)).await;
    assert_eq!(page.code, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("1500m / 4"), "cpu bar: {body}");
    assert!(body.contains("2Gi / 8Gi"), "memory bar");
    assert!(body.contains("4 / 50"), "pods bar");
    assert!(body.contains("1 / 3"), "previews bar: one open of three");
    assert!(body.contains("value=\"37\""), "1500m of 4 is 37 %");
    assert!(body.contains("1/2"), "api's ready/desired");
    assert!(body.contains("registry.local/api:v2"));
    assert!(
        body.contains("http://api.web.localhost:8080/"),
        "the Ingress URL"
    );
    assert!(
        body.contains("Scaled up replica set api-5d8 to 2"),
        "an event"
    );
    assert!(body.contains("pr-shop-42"), "a preview");
}

#[tokio::test]
async fn the_previews_page_counts_down_and_links_the_pull_request() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let page = h.get("/previews?squad=web", Some(&session)).await;
    assert_eq!(page.code, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains("data-expires=\"2026-01-01T05:00:00Z\""),
        "{body}"
    );
    assert!(body.contains(">5h 0m</time>"), "{body}");
    assert!(body.contains("href=\"https://github.com/acme/shop/pull/42\""));
    assert!(body.contains("Add the basket") && body.contains("octocat"));
    assert!(body.contains("0123456789ab") && !body.contains("0123456789abc<"));
    assert!(
        body.contains("/previews/web/pr-shop-42/wake"),
        "sleeping: a wake button"
    );
    let filtered = h.get("/previews?squad=other", Some(&session)).await;
    assert!(!filtered.body.contains("Add the basket"));
}

#[tokio::test]
async fn a_repos_page_shows_its_deliveries_and_config_errors() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let list = h.get("/repos", Some(&session)).await;
    assert!(
        list.body.contains("href=\"/repos/web/acme/shop\""),
        "{}",
        list.body
    );
    let page = h.get("/repos/web/acme/shop", Some(&session)).await;
    assert_eq!(page.code, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("pull_request.synchronize"), "{body}");
    assert!(body.contains("datetime=\"2025-12-31T23:50:00Z\""));
    assert!(body.contains("10m ago"));
    assert!(body.contains("waiting"));
    assert!(
        body.contains("unknown key &#34;exposes&#34;")
            || body.contains("unknown key &quot;exposes&quot;"),
        "{body}"
    );
}

#[tokio::test]
async fn an_api_refusal_is_a_readable_403_page() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let page = h.get("/squads/ops", Some(&session)).await;
    assert_eq!(page.code, StatusCode::FORBIDDEN);
    assert!(page.body.contains("<h1>Not allowed</h1>"), "{}", page.body);
    assert!(page.body.contains("cannot get resource"));
    for debug in ["Forbidden(", "Api(", "Status {", "Error"] {
        assert!(!page.body.contains(debug), "{debug} in {}", page.body);
    }
    let missing = h.get("/repos/web/acme/gone", Some(&session)).await;
    assert_eq!(missing.code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_cluster_page_is_for_admins() {
    let h = harness(false);
    let member = h.sign_in(MEMBER).await;
    assert_eq!(
        h.get("/cluster", Some(&member)).await.code,
        StatusCode::FORBIDDEN
    );
    let home = h.get("/", Some(&member)).await;
    assert!(!home.body.contains("href=\"/cluster\""));
    let admin = h.sign_in(ADMIN).await;
    let page = h.get("/cluster", Some(&admin)).await;
    assert_eq!(page.code, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("node-1") && page.body.contains("0m / 8"),
        "{}",
        page.body
    );
    assert!(
        h.get("/", Some(&admin))
            .await
            .body
            .contains("1 of 1 nodes ready")
    );
}

#[tokio::test]
async fn an_expired_session_asks_to_sign_in_again() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    assert_eq!(h.get("/", Some(&session)).await.code, StatusCode::OK);
    h.clock.advance(Duration::from_secs(12 * 60 * 60 + 1));
    let answer = h.get("/", Some(&session)).await;
    assert_eq!(answer.code, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/signin");
}

#[tokio::test]
async fn a_revoked_token_ends_the_session() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    h.upstream.revoke(MEMBER);
    let answer = h.get("/squads/web", Some(&session)).await;
    assert_eq!(answer.code, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/signin");
    assert!(
        answer
            .cookie("slipway_session")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    let calls = h.upstream.seen().len();
    // The session is gone: the next page does not even ask the API.
    assert_eq!(h.get("/", Some(&session)).await.code, StatusCode::SEE_OTHER);
    assert_eq!(h.upstream.seen().len(), calls);
}

#[tokio::test]
async fn signing_out_ends_the_session_and_clears_its_cookie() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let csrf = h.csrf(&session).await;
    let refused = h.post("/signout", Some(&session), "").await;
    assert_eq!(
        refused.code,
        StatusCode::FORBIDDEN,
        "sign-out is a form too"
    );
    let answer = h
        .post("/signout", Some(&session), &format!("csrf={csrf}"))
        .await;
    assert_eq!(answer.code, StatusCode::SEE_OTHER);
    let cookie = answer.cookie("slipway_session").expect("a clearing cookie");
    assert!(
        cookie.starts_with("slipway_session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    assert_eq!(h.get("/", Some(&session)).await.code, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn hostile_names_are_escaped() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let page = h.get("/catalog", Some(&session)).await;
    assert_eq!(page.code, StatusCode::OK, "{}", page.body);
    assert!(
        !page.body.contains("<script>alert(1)</script>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<h2 id=\"owner-1\">web</h2>") && page.body.contains("<h3>shop</h3>")
    );
}

#[tokio::test]
async fn assets_are_served_with_cache_headers() {
    let h = harness(false);
    for (path, kind) in [
        ("/assets/slipway.css", "text/css"),
        ("/assets/live.js", "text/javascript"),
    ] {
        let answer = h.get(path, None).await;
        assert_eq!(answer.code, StatusCode::OK);
        let content_type = answer
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        assert!(content_type.is_some_and(|c| c.starts_with(kind)), "{path}");
        assert!(answer.headers.contains_key(header::CACHE_CONTROL));
    }
}

#[tokio::test]
async fn the_service_page_shows_history_pods_and_actions() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let page = h.get("/squads/web/services/web/api", Some(&session)).await;
    assert_eq!(page.code, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("action=\"/squads/web/services/web/api/scale\"")
    );
    let body = &page.body;
    assert!(body.contains("api.web.svc:80"), "{body}");
    assert!(
        body.contains("api-rev1") && body.contains("registry.local/api:v1"),
        "history"
    );
    assert!(
        body.contains("<option value=\"1\">"),
        "revision 1 offered for rollback"
    );
    assert!(
        !body.contains("<option value=\"2\">"),
        "the running revision is not"
    );
    assert!(
        body.contains("api-5d8-x1") && body.contains("node-1"),
        "pods"
    );
    assert!(body.contains("<td class=\"num\">4</td>"), "restarts");
    assert!(body.contains("GET /healthz 200"), "the log tail");
    let follow = h
        .get(
            "/squads/web/services/web/api/logs?pod=api-5d8-x1&container=main",
            Some(&session),
        )
        .await;
    assert_eq!(follow.code, StatusCode::OK);
    assert!(follow.body.contains("listening on :8080"));
    let elsewhere = h
        .get("/squads/web/services/kube-system/api", Some(&session))
        .await;
    assert_eq!(
        elsewhere.code,
        StatusCode::NOT_FOUND,
        "not the squad's namespace"
    );
}

#[tokio::test]
async fn rolling_back_puts_the_revisions_template_back_without_its_hash() {
    let h = harness(false);
    let session = h.sign_in(MEMBER).await;
    let csrf = h.csrf(&session).await;
    let answer = h
        .post(
            "/squads/web/services/web/api/rollback",
            Some(&session),
            &format!("csrf={csrf}&revision=1"),
        )
        .await;
    assert_eq!(answer.code, StatusCode::SEE_OTHER, "{}", answer.body);
    let mutations = h.upstream.mutations();
    assert_eq!(mutations.len(), 1, "{mutations:?}");
    assert_eq!(mutations[0].method, Method::PUT);
    let body = h.upstream.last_body();
    assert_eq!(
        body["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/api:v1"
    );
    assert!(body["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].is_null());
    let unknown = h
        .post(
            "/squads/web/services/web/api/rollback",
            Some(&session),
            &format!("csrf={csrf}&revision=9"),
        )
        .await;
    assert_eq!(unknown.code, StatusCode::NOT_FOUND);

    // A replace that conflicts (the status moved) is read again and retried, a few times.
    let puts = |h: &Harness| {
        h.upstream
            .mutations()
            .iter()
            .filter(|m| m.method == Method::PUT)
            .count()
    };
    let rollback = format!("csrf={csrf}&revision=1");
    let path = "/squads/web/services/web/api/rollback";
    *h.upstream.conflicts.lock().unwrap() = 2;
    let before = puts(&h);
    let answer = h.post(path, Some(&session), &rollback).await;
    assert_eq!(answer.code, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(puts(&h) - before, 3);
    *h.upstream.conflicts.lock().unwrap() = 100;
    let answer = h.post(path, Some(&session), &rollback).await;
    assert_eq!(answer.code, StatusCode::CONFLICT, "{}", answer.body);
}

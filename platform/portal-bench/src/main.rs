//! `slipway-portal-bench`: the time the portal takes to render its heaviest pages (the
//! catalogue, home and a squad page) for an admin of 100 squads holding 2,000 Deployments,
//! beside the floor: a static page (the stylesheet) served by the same router. The API is
//! an in-process stub answering pre-encoded JSON, so the figures are the portal's own work
//! (kube-rs decoding included) and nothing of the API server's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use slipway_bench_support::{Ratio, Row, Sample, print_table};
use slipway_portal::{Options, Portal};
use tower::ServiceExt as _;

const SQUADS: usize = 100;
const DEPLOYMENTS: usize = 2_000;
const TOKEN: &str = "slw_bench";

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 50 } else { 500 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let rows = runtime.block_on(bench(rounds))?;
    println!(
        "portal pages, {SQUADS} squads and {DEPLOYMENTS} Deployments, {rounds} requests each, one at a time"
    );
    println!();
    print_table(&rows, Ratio::Shown);
    Ok(())
}

fn namespace(i: usize) -> String {
    format!("squad-{i:03}")
}

fn deployment(ns: &str, i: usize) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": format!("svc-{i}"), "namespace": ns, "uid": format!("uid-{ns}-{i}"),
            "creationTimestamp": "2025-12-31T22:00:00Z",
            "labels": { "app.kubernetes.io/name": format!("svc-{i}"), "slipway.dev/system": format!("system-{}", i % 4) }
        },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": format!("svc-{i}") } },
            "template": {
                "metadata": { "labels": { "app": format!("svc-{i}") } },
                "spec": { "containers": [{ "name": "main", "image": format!("registry.local/svc-{i}:v1") }] }
            }
        },
        "status": { "replicas": 2, "readyReplicas": 2 }
    })
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": api_version, "kind": kind, "metadata": {}, "items": items })
}

/// Every answer the stub gives, encoded once, by path.
fn answers() -> HashMap<String, Bytes> {
    let per_squad = DEPLOYMENTS / SQUADS;
    let mut answers = HashMap::new();
    let mut put = |path: String, value: Value| {
        answers.insert(path, Bytes::from(value.to_string()));
    };
    let squad = |i: usize| {
        json!({
            "name": namespace(i), "namespaces": [namespace(i)],
            "quota": { "hard": { "requests.cpu": "4" } }, "previews": { "max": 3 },
            "members": [{ "user": "ana", "role": "owner" }, { "user": "bo", "role": "member" }],
        })
    };
    put(
        "/slipway/v1/squads".to_owned(),
        json!({ "items": (0..SQUADS).map(squad).collect::<Vec<_>>() }),
    );
    let mut all = Vec::new();
    for i in 0..SQUADS {
        let ns = namespace(i);
        put(format!("/slipway/v1/squads/{ns}"), squad(i));
        let deployments: Vec<Value> = (0..per_squad).map(|d| deployment(&ns, d)).collect();
        all.extend(deployments.iter().cloned());
        put(
            format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            list("DeploymentList", "apps/v1", deployments),
        );
        put(
            format!("/api/v1/namespaces/{ns}/resourcequotas/squad-quota"),
            json!({
                "apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": { "name": "squad-quota", "namespace": ns },
                "status": {
                    "hard": { "requests.cpu": "4", "requests.memory": "8Gi", "pods": "50" },
                    "used": { "requests.cpu": "1500m", "requests.memory": "2Gi", "pods": "40" }
                }
            }),
        );
        let events = (0..per_squad)
            .map(|d| {
                json!({
                    "apiVersion": "v1", "kind": "Event",
                    "metadata": { "name": format!("e-{d}"), "namespace": ns },
                    "involvedObject": { "kind": "Deployment", "name": format!("svc-{d}") },
                    "reason": "ScalingReplicaSet", "message": "Scaled up", "type": "Normal",
                    "lastTimestamp": "2025-12-31T23:59:00Z"
                })
            })
            .collect();
        put(
            format!("/api/v1/namespaces/{ns}/events"),
            list("EventList", "v1", events),
        );
        let services = (0..per_squad)
            .map(|d| {
                json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": { "name": format!("svc-{d}"), "namespace": ns },
                    "spec": { "selector": { "app": format!("svc-{d}") }, "ports": [{ "port": 80 }] }
                })
            })
            .collect();
        put(
            format!("/api/v1/namespaces/{ns}/services"),
            list("ServiceList", "v1", services),
        );
        put(
            format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"),
            list("IngressList", "networking.k8s.io/v1", vec![]),
        );
    }
    put(
        "/apis/apps/v1/deployments".to_owned(),
        list("DeploymentList", "apps/v1", all),
    );
    let previews = (0..SQUADS * 2)
        .map(|i| {
            json!({
                "repo": "acme/shop", "squad": namespace(i % SQUADS), "pr": i,
                "namespace": format!("pr-shop-{i}"), "title": "A change", "author": "octocat",
                "createdAt": "2025-12-31T23:00:00Z",
                "status": { "phase": "ready", "headSha": "0123456789abcdef", "expiresAt": "2026-01-02T00:00:00Z" }
            })
        })
        .collect::<Vec<_>>();
    put(
        "/slipway/v1/previews".to_owned(),
        json!({ "items": previews }),
    );
    put(
        "/api/v1/nodes".to_owned(),
        list(
            "NodeList",
            "v1",
            vec![json!({
                "apiVersion": "v1", "kind": "Node", "metadata": { "name": "node-1" },
                "status": { "conditions": [{ "type": "Ready", "status": "True" }] }
            })],
        ),
    );
    put(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews".to_owned(),
        json!({ "status": { "userInfo": { "username": "root", "groups": ["slipway:admins"] } } }),
    );
    answers
}

async fn stub(
    State(answers): State<Arc<HashMap<String, Bytes>>>,
    request: Request<Body>,
) -> Response {
    match answers.get(request.uri().path()) {
        Some(body) => (
            [(header::CONTENT_TYPE, "application/json")],
            body.clone(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
        )
            .into_response(),
    }
}

/// One GET through the portal's router; the body is read in full.
async fn get(portal: &Router, path: &str, cookie: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let request = Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())?;
    let response = portal.clone().oneshot(request).await?;
    let code = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((code, body))
}

async fn sign_in(portal: &Router) -> anyhow::Result<String> {
    let form = portal
        .clone()
        .oneshot(Request::get("/signin").body(Body::empty())?)
        .await?;
    let cookie = form
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no sign-in cookie")?
        .to_owned();
    let csrf = cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let request = Request::post("/signin")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}&token={TOKEN}")))?;
    let answer = portal.clone().oneshot(request).await?;
    answer
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("slipway_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .context("sign-in gave no session")
}

async fn sample(
    portal: &Router,
    path: &str,
    cookie: &str,
    rounds: usize,
) -> anyhow::Result<Sample> {
    // One unmeasured request: the first pays for lazy initialisation.
    let (code, _) = get(portal, path, cookie).await?;
    if code != StatusCode::OK {
        bail!("{path} answered {code}");
    }
    let began = Instant::now();
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let (code, body) = get(portal, path, cookie).await?;
        latencies.push(start.elapsed());
        if code != StatusCode::OK || body.is_empty() {
            bail!("{path} answered {code}");
        }
    }
    Ok(Sample::new(latencies, began.elapsed()))
}

async fn bench(rounds: usize) -> anyhow::Result<Vec<Row>> {
    let upstream = Router::new().fallback(stub).with_state(Arc::new(answers()));
    let portal = Portal::new(
        upstream,
        Options {
            gateway: Some("http://127.0.0.1:8080".to_owned()),
            ..Options::default()
        },
    )
    .router();
    let cookie = sign_in(&portal).await?;
    let mut rows = Vec::new();
    for (name, path) in [
        ("catalogue (2,000 Deployments)", "/catalog".to_owned()),
        ("home (100 squads)", "/".to_owned()),
        (
            "squad page (20 Deployments)",
            format!("/squads/{}", namespace(42)),
        ),
    ] {
        let ours = sample(&portal, &path, &cookie, rounds).await?;
        let floor = sample(&portal, "/assets/slipway.css", &cookie, rounds).await?;
        rows.push(Row::new("portal", name, 1, ours, floor));
    }
    Ok(rows)
}

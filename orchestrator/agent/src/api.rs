//! The agent's own HTTP endpoint, which the API server relays `pods/log`, `pods/exec` and
//! `pods/attach` to (as it reaches the kubelet): `GET /containerLogs/{namespace}/{pod}/{container}`
//! with kubectl's log options, the upgraded `/exec/...` and `/attach/...` of [`stream`],
//! and `GET /stats/summary` (the node's and its pods' usage, which `metrics.k8s.io` is
//! served from), behind the node token, compared in constant time.

mod forward;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{Context, stats};

/// kubectl's log options, as the API server passes them on.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogQuery {
    follow: Option<String>,
    tail_lines: Option<i64>,
    since_seconds: Option<i64>,
    since_time: Option<String>,
    timestamps: Option<String>,
    previous: Option<String>,
    limit_bytes: Option<i64>,
}

fn flag(value: Option<&String>) -> bool {
    value.is_some_and(|v| !v.eq_ignore_ascii_case("false") && v != "0")
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code.as_u16()});
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Compares without stopping at the first difference, so timing does not tell how much
/// of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

async fn authorize(State(ctx): State<Arc<Context>>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(token) if same(token.as_bytes(), ctx.config.token.as_bytes()) => {
            next.run(request).await
        }
        _ => status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
    }
}

/// The agent's routes.
pub(crate) fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            axum::routing::get(logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            axum::routing::get(stream::exec).post(stream::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            axum::routing::get(stream::attach).post(stream::attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            axum::routing::get(forward::port_forward).post(forward::port_forward),
        )
        .route(
            "/images",
            axum::routing::get(images).post(import).delete(remove_image),
        )
        .route("/stats/summary", axum::routing::get(summary))
        .layer(middleware::from_fn_with_state(Arc::clone(&ctx), authorize))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(ctx)
}

/// Serves the routes on `listener` until `shutdown`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let served = axum::serve(listener, router(ctx))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "the agent's endpoint stopped");
    }
}

fn json_ok(value: &serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn image_json(image: &slipway_runtime::Image) -> serde_json::Value {
    json!({"name": image.name, "digest": image.digest, "size": image.size})
}

fn runtime_failure(e: &slipway_runtime::Error) -> Response {
    match e {
        slipway_runtime::Error::NotFound(m) => status(StatusCode::NOT_FOUND, "NotFound", m),
        slipway_runtime::Error::Invalid(m) => status(StatusCode::BAD_REQUEST, "BadRequest", m),
        other => status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &other.to_string(),
        ),
    }
}

/// The usage summary; a runtime that cannot read a running container is unavailable,
/// whatever it said, as there was nothing wrong with the request.
async fn summary(State(ctx): State<Arc<Context>>) -> Response {
    let read = ctx
        .stats
        .summary(&ctx.config.node_name, ctx.runtime.as_ref())
        .await;
    let summary = match read {
        Ok(summary) => summary,
        Err(e @ stats::Error::Runtime(_)) => {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &e.to_string(),
            );
        }
        Err(e @ stats::Error::Host(_)) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &e.to_string(),
            );
        }
    };
    match serde_json::to_string(&summary) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("writing the summary: {e}"),
        ),
    }
}

async fn images(State(ctx): State<Arc<Context>>) -> Response {
    match ctx.runtime.images().await {
        Ok(images) => {
            json_ok(&json!({"images": images.iter().map(image_json).collect::<Vec<_>>()}))
        }
        Err(e) => runtime_failure(&e),
    }
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

async fn remove_image(State(ctx): State<Arc<Context>>, Query(named): Query<Named>) -> Response {
    let Some(name) = named.name.filter(|n| !n.is_empty()) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "name the image: ?name=IMAGE",
        );
    };
    let name = slipway_runtime::reference::normalize(&name);
    match ctx.runtime.image(&name).await {
        Ok(Some(image)) => match ctx.runtime.remove_image(&name).await {
            Ok(()) => json_ok(&json!({"images": [image_json(&image)]})),
            Err(e) => runtime_failure(&e),
        },
        Ok(None) => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("image {name} is not on this node"),
        ),
        Err(e) => runtime_failure(&e),
    }
}

/// Imports the archive in the request body: staged as a file under the data directory
/// (containerd reads it from there), removed afterwards.
async fn import(State(ctx): State<Arc<Context>>, body: Body) -> Response {
    use futures::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let dir = ctx.config.data_dir.join("incoming");
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("{}: {e}", dir.display()),
        );
    }
    let path = dir.join(format!(
        "{}.tar",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let staged = async {
        let mut file = tokio::fs::File::create(&path).await?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            file.write_all(&chunk).await?;
        }
        file.flush().await
    }
    .await;
    let answer = match staged {
        Err(e) => status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("receiving the archive: {e}"),
        ),
        Ok(()) => match ctx.runtime.import(&path).await {
            Ok(images) => {
                json_ok(&json!({"images": images.iter().map(image_json).collect::<Vec<_>>()}))
            }
            Err(e) => runtime_failure(&e),
        },
    };
    let _ = tokio::fs::remove_file(&path).await;
    answer
}

/// The log files of one container's attempts, by attempt number, oldest first.
fn attempts(dir: &Path) -> Vec<(i32, PathBuf)> {
    let mut found: Vec<(i32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let number = name.strip_suffix(".log")?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// The pod a request names, or the Status to answer when it cannot be read.
pub(super) async fn read_pod(ctx: &Context, namespace: &str, name: &str) -> Result<Pod, Response> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    match pods.get_opt(name).await {
        Ok(Some(pod)) => Ok(pod),
        Ok(None) => Err(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{name}\" not found"),
        )),
        Err(e) => Err(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!("the agent cannot read the pod: {e}"),
        )),
    }
}

async fn logs(
    State(ctx): State<Arc<Context>>,
    UrlPath((namespace, pod_name, container)): UrlPath<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let pod = match read_pod(&ctx, &namespace, &pod_name).await {
        Ok(pod) => pod,
        Err(answer) => return answer,
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = ctx.config.pod_dir(&uid).join("logs").join(&container);
    let attempts = attempts(&dir);
    let previous = flag(query.previous.as_ref());
    let chosen = if previous {
        attempts.len().checked_sub(2).map(|i| attempts[i].clone())
    } else {
        attempts.last().cloned()
    };
    let Some((_, path)) = chosen else {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
            )
        };
        return status(StatusCode::BAD_REQUEST, "BadRequest", &message);
    };
    let since = match (&query.since_time, query.since_seconds) {
        (Some(time), _) => match time.parse::<jiff::Timestamp>() {
            Ok(t) => Some(SystemTime::from(t)),
            Err(e) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("sinceTime {time:?}: {e}"),
                );
            }
        },
        (None, Some(seconds)) if seconds > 0 => {
            SystemTime::now().checked_sub(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
        }
        _ => None,
    };
    // Following ends when the attempt being read has ended and its file is drained.
    let running = if previous { None } else { ctx.live_log(&path) };
    let options = slipway_logs::ReadOptions {
        tail_lines: query.tail_lines.and_then(|n| u64::try_from(n).ok()),
        since,
        timestamps: flag(query.timestamps.as_ref()),
        limit_bytes: query.limit_bytes.and_then(|n| u64::try_from(n).ok()),
        follow: flag(query.follow.as_ref()) && running.is_some(),
    };
    let stopped = async move {
        if let Some(alive) = running {
            alive.cancelled_owned().await;
        }
    };
    match slipway_logs::read(&path, options, stopped).await {
        Ok(stream) => (
            [(header::CONTENT_TYPE, "text/plain")],
            Body::from_stream(stream),
        )
            .into_response(),
        Err(e) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("reading the log: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime};

    use async_trait::async_trait;
    use axum::http::Request;
    use serde_json::Value;
    use slipway_runtime::faults::{FaultyRuntime, Op};
    use slipway_runtime::{
        Attached, AttachedExec, Container, ContainerConfig, Credentials, Error, Event, ExecConfig,
        Exit, Image, LogTarget, Result, Runtime, Stats,
    };
    use tower::ServiceExt as _;

    use super::*;

    /// A runtime whose running containers, `app-*`, use half a core and 2 MiB, read 10 s
    /// apart each time; every other container has exited.
    #[derive(Default)]
    struct Canned {
        reads: AtomicU64,
    }

    fn unused<T>() -> Result<T> {
        Err(Error::Other("not used by these tests".into()))
    }

    #[async_trait]
    impl Runtime for Canned {
        async fn stats(&self, id: &str) -> Result<Stats> {
            if !id.starts_with("app-") {
                return Err(Error::NotFound(format!("no running task of {id}")));
            }
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(Stats {
                cpu_nanos: n * 5_000_000_000,
                memory_usage_bytes: 3 << 20,
                memory_working_set_bytes: 2 << 20,
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n * 10),
            })
        }
        async fn version(&self) -> Result<String> {
            unused()
        }
        async fn import(&self, _: &std::path::Path) -> Result<Vec<Image>> {
            unused()
        }
        async fn pull(&self, _: &str, _: Option<&Credentials>) -> Result<Image> {
            unused()
        }
        async fn image(&self, _: &str) -> Result<Option<Image>> {
            unused()
        }
        async fn images(&self) -> Result<Vec<Image>> {
            unused()
        }
        async fn remove_image(&self, _: &str) -> Result<()> {
            unused()
        }
        async fn create(&self, _: &ContainerConfig) -> Result<()> {
            unused()
        }
        async fn start(&self, _: &str, _: &LogTarget) -> Result<u32> {
            unused()
        }
        async fn kill(&self, _: &str, _: u32, _: bool) -> Result<()> {
            unused()
        }
        async fn wait(&self, _: &str) -> Result<Exit> {
            unused()
        }
        async fn delete(&self, _: &str) -> Result<()> {
            unused()
        }
        async fn list(&self) -> Result<Vec<Container>> {
            unused()
        }
        async fn exec(&self, _: &str, _: &ExecConfig, _: Duration) -> Result<Exit> {
            unused()
        }
        async fn exec_attached(&self, _: &str, _: &AttachedExec) -> Result<Attached> {
            unused()
        }
        async fn events(&self) -> Result<tokio::sync::mpsc::Receiver<Event>> {
            unused()
        }
    }

    /// A context on `runtime` where pod `ns/web` runs `app` as `app-1` and `sidecar` as
    /// `sidecar-1`.
    fn context(runtime: Arc<dyn Runtime>, dir: &Path) -> Arc<Context> {
        let ctx = Context::for_tests(runtime, dir);
        let pod = Arc::new(stats::Pod {
            namespace: "ns".into(),
            name: "web".into(),
            uid: "uid-web".into(),
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_799_999_000),
        });
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_799_999_001);
        ctx.stats.started("app-1", &pod, "app", started);
        ctx.stats.started("sidecar-1", &pod, "sidecar", started);
        ctx
    }

    async fn get(ctx: &Arc<Context>, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::get("/stats/summary");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = router(Arc::clone(ctx))
            .oneshot(request.body(Body::empty()).expect("a request"))
            .await
            .expect("an answer");
        let code = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("the body");
        (code, serde_json::from_slice(&body).expect("JSON"))
    }

    #[tokio::test]
    async fn the_summary_needs_the_token_and_has_a_rate_from_the_second_reading() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ctx = context(Arc::new(Canned::default()), dir.path());
        let (code, body) = get(&ctx, None).await;
        assert_eq!(
            (code, &body["reason"]),
            (StatusCode::UNAUTHORIZED, &json!("Unauthorized"))
        );
        let (code, _) = get(&ctx, Some("not-the-token")).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);

        let (code, first) = get(&ctx, Some("node-token")).await;
        assert_eq!(code, StatusCode::OK, "{first}");
        assert_eq!(first["node"]["nodeName"], "n1");
        assert!(
            first["node"]["memory"]["workingSetBytes"].as_u64() > Some(0),
            "{first}"
        );
        // The sidecar has exited: the runtime no longer has it, so it is left out.
        assert_eq!(
            first["pods"],
            json!([{
                "podRef": {"name": "web", "namespace": "ns", "uid": "uid-web"},
                "startTime": "2027-01-15T07:43:20Z",
                "containers": [{
                    "name": "app", "startTime": "2027-01-15T07:43:21Z",
                    "cpu": {"time": "2027-01-15T08:00:00Z", "usageCoreNanoSeconds": 0},
                    "memory": {"time": "2027-01-15T08:00:00Z",
                               "workingSetBytes": 2 << 20, "usageBytes": 3 << 20},
                }],
                "cpu": {"time": "2027-01-15T08:00:00Z", "usageCoreNanoSeconds": 0},
                "memory": {"time": "2027-01-15T08:00:00Z",
                           "workingSetBytes": 2 << 20, "usageBytes": 3 << 20},
            }])
        );

        let (code, second) = get(&ctx, Some("node-token")).await;
        assert_eq!(code, StatusCode::OK, "{second}");
        let rated = json!({"time": "2027-01-15T08:00:10Z", "usageNanoCores": 500_000_000,
                           "usageCoreNanoSeconds": 5_000_000_000u64, "windowSeconds": 10.0});
        assert_eq!(second["pods"][0]["containers"][0]["cpu"], rated);
        assert_eq!(second["pods"][0]["cpu"], rated);
    }

    #[tokio::test]
    async fn one_container_that_cannot_be_read_is_left_out_not_the_node() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let faulty = FaultyRuntime::new(Arc::new(Canned::default()));
        faulty.fail_next(Op::Stats, 1);
        let ctx = Context::for_tests(Arc::new(faulty), dir.path());
        let pod = Arc::new(stats::Pod {
            namespace: "ns".into(),
            name: "web".into(),
            uid: "uid-web".into(),
            started: SystemTime::UNIX_EPOCH,
        });
        ctx.stats
            .started("app-1", &pod, "one", SystemTime::UNIX_EPOCH);
        ctx.stats
            .started("app-2", &pod, "two", SystemTime::UNIX_EPOCH);
        let (code, body) = get(&ctx, Some("node-token")).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let containers = body["pods"][0]["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(containers.len(), 1, "{body}");
    }

    #[tokio::test]
    async fn a_runtime_that_cannot_read_makes_the_summary_unavailable() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let faulty = FaultyRuntime::new(Arc::new(Canned::default()));
        faulty.fail_next(Op::Stats, 2);
        let ctx = context(Arc::new(faulty), dir.path());
        let (code, body) = get(&ctx, Some("node-token")).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(
            (&body["kind"], &body["reason"]),
            (&json!("Status"), &json!("ServiceUnavailable"))
        );
    }
}

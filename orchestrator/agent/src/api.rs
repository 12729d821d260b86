//! The agent's own HTTP endpoint, which the API server relays `pods/log`, `pods/exec` and
//! `pods/attach` to (as it reaches the kubelet): `GET /containerLogs/{namespace}/{pod}/{container}`
//! with kubectl's log options, and the upgraded `/exec/...` and `/attach/...` of
//! [`stream`], behind the node token, compared in constant time.

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

use crate::Context;

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

//! `pods/exec`, `pods/attach` and `pods/portforward`: the API server finds the pod's node
//! and relays the upgrade request to that node's agent at the kubelet's paths
//! (`/exec/{ns}/{pod}/{container}`, `/attach/...`, `/portForward/{ns}/{pod}`), as
//! kube-apiserver does; once the agent answers `101 Switching Protocols` the two upgraded
//! connections are spliced until either side closes. The API server never reads the
//! streams, so WebSocket and SPDY pass alike; any other answer passes through as it is.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Ctx;
use super::log::{container, encode_query};
use crate::ApiState;
use crate::path::Target;
use crate::status::{ApiError, ApiResult};

/// The pod subresources relayed as upgraded connections.
const CONNECT: &[&str] = &["exec", "attach", "portforward"];

/// Request headers the agent needs to answer the upgrade (WebSocket's and SPDY's).
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Whether `target` is one of the relayed subresources.
pub(crate) fn is_connect(target: &Target) -> bool {
    target.resource.group.is_empty()
        && target.resource.plural == "pods"
        && target
            .subresource
            .as_deref()
            .is_some_and(|s| CONNECT.contains(&s))
}

/// The query the agent gets, as kube-apiserver builds the kubelet's: the streams as `1`,
/// every `command`, every port.
fn agent_query(subresource: &str, pairs: &[(String, String)]) -> String {
    let mut query = Vec::new();
    for (key, value) in pairs {
        let on = super::is_true(value);
        match (subresource, key.as_str()) {
            ("exec", "command") => query.push(format!("command={}", encode_query(value))),
            ("exec" | "attach", "stdin" | "stdout" | "stderr" | "tty") if on => {
                query.push(format!("{key}=1"));
            }
            ("portforward", "ports") => query.push(format!("port={}", encode_query(value))),
            _ => {}
        }
    }
    query.join("&")
}

/// Relays one `pods/{exec,attach,portforward}` request.
pub(crate) async fn connect(
    state: Arc<ApiState>,
    target: Target,
    mut request: Request,
) -> ApiResult<Response> {
    if request.method() != Method::GET && request.method() != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {}",
            request.method()
        )));
    }
    let subresource = target.subresource.clone().unwrap_or_default();
    let pairs = match request.uri().query() {
        Some(q) => axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
            &format!("/?{q}")
                .parse()
                .map_err(|_| ApiError::bad_request("invalid query string"))?,
        )
        .map(|axum::extract::Query(pairs)| pairs)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?,
        None => Vec::new(),
    };
    let ctx = Ctx {
        state,
        query: pairs.iter().cloned().collect::<HashMap<_, _>>(),
        headers: HeaderMap::new(),
        target,
        user: None,
    };
    let pod = ctx.get().await?;
    let name = ctx.name().to_owned();
    let namespace = ctx.namespace().unwrap_or("default").to_owned();
    let path = if subresource == "portforward" {
        format!(
            "/portForward/{}/{}",
            encode_query(&namespace),
            encode_query(&name)
        )
    } else {
        let container = container(&pod, &name, ctx.param("container"))?;
        format!(
            "/{subresource}/{}/{}/{}",
            encode_query(&namespace),
            encode_query(&name),
            encode_query(&container)
        )
    };
    let (address, credentials) = ctx.agent_of(&pod).await?;
    running(&pod, &name)?;
    let query = agent_query(&subresource, &pairs);
    let url = if query.is_empty() {
        format!("http://{address}{path}")
    } else {
        format!("http://{address}{path}?{query}")
    };
    let mut upstream = axum::http::Request::builder()
        .method(request.method().clone())
        .uri(&url)
        .header(header::AUTHORIZATION, format!("Bearer {credentials}"));
    for name in UPGRADE_HEADERS {
        for value in request.headers().get_all(*name) {
            upstream = upstream.header(*name, value);
        }
    }
    let upstream = upstream
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut answer =
        ctx.state.agents.request(upstream).await.map_err(|e| {
            ApiError::unavailable(format!("cannot reach the agent at {address}: {e}"))
        })?;
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = answer.into_parts();
        let mut relayed = Response::new(Body::new(body));
        *relayed.status_mut() = parts.status;
        *relayed.headers_mut() = parts.headers;
        return Ok(relayed);
    }
    let client = hyper::upgrade::on(&mut request);
    let agent = hyper::upgrade::on(&mut answer);
    tokio::spawn(async move {
        let (client, agent) = match tokio::try_join!(client, agent) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "a streaming upgrade did not complete");
                return;
            }
        };
        let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
            tracing::debug!(error = %e, "a streaming connection ended with an error");
        }
    });
    let mut switching = Response::new(Body::empty());
    *switching.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *switching.headers_mut() = answer.headers().clone();
    Ok(switching)
}

/// Streams reach only a running pod: a pending one has nothing to run them in, a finished
/// one nothing left.
fn running(pod: &Value, name: &str) -> ApiResult<()> {
    match pod["status"]["phase"].as_str().unwrap_or("Pending") {
        "Running" => Ok(()),
        "Succeeded" | "Failed" => Err(ApiError::bad_request(format!(
            "cannot connect to pod {name}: it has completed (phase {})",
            pod["status"]["phase"].as_str().unwrap_or_default()
        ))),
        phase => Err(ApiError::bad_request(format!(
            "pod {name} is not running yet (phase {phase})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_agent_gets_the_kubelets_query() {
        let exec = pairs(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "exit 3"),
            ("container", "web"),
            ("stdin", "true"),
            ("stdout", "true"),
            ("stderr", "false"),
            ("tty", "true"),
        ]);
        assert_eq!(
            agent_query("exec", &exec),
            "command=sh&command=-c&command=exit%203&stdin=1&stdout=1&tty=1"
        );
        assert_eq!(agent_query("attach", &exec), "stdin=1&stdout=1&tty=1");
        assert_eq!(
            agent_query(
                "portforward",
                &pairs(&[("ports", "8080"), ("ports", "9090")])
            ),
            "port=8080&port=9090"
        );
    }

    #[test]
    fn only_running_pods_connect() {
        let phase = |p: &str| serde_json::json!({"status": {"phase": p}});
        assert!(running(&phase("Running"), "p").is_ok());
        let pending = running(&phase("Pending"), "p").expect_err("pending");
        assert_eq!(
            pending.message(),
            "pod p is not running yet (phase Pending)"
        );
        let done = running(&phase("Succeeded"), "p").expect_err("done");
        assert_eq!(
            done.message(),
            "cannot connect to pod p: it has completed (phase Succeeded)"
        );
    }
}

//! `pods/log`: the API server finds the pod's node and relays the request to that node's
//! agent (its InternalIP and kubelet endpoint port from the Node), authenticating with the
//! node credentials, and streams the answer back as it comes, so `kubectl logs -f` follows.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::Ctx;
use crate::objects::{self, decode};
use crate::resources;
use crate::status::{ApiError, ApiResult, from_store};

/// The query parameters of `pods/log` the agent understands; others are not passed on.
const FORWARDED: &[&str] = &[
    "follow",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "previous",
    "limitBytes",
];

/// The container a log request means: the one named, or the pod's only one.
pub(super) fn container(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let containers = names("containers");
    let init = names("initContainers");
    match asked {
        Some(asked) if containers.iter().chain(init.iter()).any(|c| c == asked) => {
            Ok(asked.to_owned())
        }
        Some(asked) => Err(ApiError::bad_request(format!(
            "container {asked} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// Where a node's agent serves logs: `http://<InternalIP>:<kubelet port>`.
pub(crate) fn agent_address(node: &Value) -> Option<String> {
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64()?;
    let ip = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_owned();
    Some(format!("{ip}:{port}"))
}

/// Percent-encodes a path segment or query value.
pub(crate) fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Ctx {
    /// Where the agent of a pod's node serves, and the credentials it accepts.
    pub(super) async fn agent_of(&self, pod: &Value) -> ApiResult<(String, String)> {
        let name = self.name();
        let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        };
        let Some(credentials) = self.state.node_credentials.clone() else {
            return Err(ApiError::unavailable(
                "this API server has no credentials to reach node agents",
            ));
        };
        let nodes = resources::find("", "v1", "nodes")
            .ok_or_else(|| ApiError::internal("nodes are not served"))?;
        let node = self
            .state
            .store
            .get(&objects::key(nodes, None, node_name), None)
            .await
            .map_err(|e| from_store(nodes, node_name, e))?
            .ok_or_else(|| ApiError::not_found(nodes, node_name))?;
        let node = decode(&node)?;
        let Some(address) = agent_address(&node) else {
            return Err(ApiError::unavailable(format!(
                "node {node_name} does not say where its agent serves"
            )));
        };
        Ok((address, credentials))
    }

    /// Serves `GET pods/{name}/log`.
    pub(super) async fn log(&self) -> ApiResult<Response> {
        let pod = self.get().await?;
        let name = self.name().to_owned();
        let namespace = self.namespace().unwrap_or("default").to_owned();
        let container = container(&pod, &name, self.param("container"))?;
        let (address, credentials) = self.agent_of(&pod).await?;
        let mut url = format!(
            "http://{address}/containerLogs/{}/{}/{}",
            encode_query(&namespace),
            encode_query(&name),
            encode_query(&container)
        );
        let query: Vec<String> = FORWARDED
            .iter()
            .filter_map(|key| {
                self.param(key)
                    .map(|v| format!("{key}={}", encode_query(v)))
            })
            .collect();
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        let request = axum::http::Request::get(&url)
            .header(header::AUTHORIZATION, format!("Bearer {credentials}"))
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let response = self.state.agents.request(request).await.map_err(|e| {
            ApiError::unavailable(format!("cannot reach the agent at {address}: {e}"))
        })?;
        let (parts, body) = response.into_parts();
        let mut relayed = Response::new(Body::new(body));
        *relayed.status_mut() = parts.status;
        let content_type = if parts.status == StatusCode::OK {
            header::HeaderValue::from_static("text/plain")
        } else {
            parts
                .headers
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| header::HeaderValue::from_static("application/json"))
        };
        relayed
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        Ok(relayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_named_or_the_only_one() {
        let one = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_eq!(container(&one, "p", None).ok(), Some("web".into()));
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                  "initContainers": [{"name": "setup"}]}});
        let error = container(&two, "p", None).expect_err("ambiguous");
        assert_eq!(
            error.message(),
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [setup]"
        );
        assert_eq!(
            container(&two, "p", Some("setup")).ok(),
            Some("setup".into())
        );
        let error = container(&two, "p", Some("c")).expect_err("unknown");
        assert_eq!(error.message(), "container c is not valid for pod p");
    }

    #[test]
    fn the_agent_address_comes_from_the_node() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        }});
        assert_eq!(agent_address(&node), Some("127.0.0.1:10250".into()));
        assert_eq!(agent_address(&json!({"status": {}})), None);
        assert_eq!(encode_query("a b/c"), "a%20b%2Fc");
    }
}

//! The API server's calls to node agents (where kube-apiserver calls kubelets): where
//! each node's agent listens, from its Node, and one authenticated request to it whose
//! JSON answer or error comes back as a value, so one failing node never hides the others.

use axum::body::Body;
use axum::http::{Method, header};
use serde_json::Value;
use slipway_store::ListOptions;

use crate::ApiState;
use crate::handlers::agent_address;
use crate::objects::{self, decode};
use crate::resources;
use crate::status::{ApiError, ApiResult};

/// A node as the API server reaches it.
pub(crate) struct Node {
    /// Its name.
    pub(crate) name: String,
    /// Where its agent serves, if the Node says.
    pub(crate) address: Option<String>,
}

impl Node {
    /// The Node `object` as the server reaches it.
    pub(crate) fn of(object: &Value) -> Node {
        Node {
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            address: agent_address(object),
        }
    }
}

/// Every Node with where its agent listens.
pub(crate) async fn nodes(state: &ApiState) -> ApiResult<Vec<Node>> {
    let nodes = resources::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let listed = state
        .store
        .list(&objects::prefix(nodes, None), ListOptions::default())
        .await
        .map_err(|e| crate::status::from_store(nodes, "", e))?;
    let mut found = Vec::new();
    for kv in &listed.kvs {
        found.push(Node::of(&decode(kv)?));
    }
    Ok(found)
}

/// The token agents accept from the API server, or 503 when this server has none.
pub(crate) fn credentials(state: &ApiState) -> ApiResult<String> {
    state.node_credentials.clone().ok_or_else(|| {
        ApiError::unavailable("this API server has no credentials to reach node agents")
    })
}

/// A request to the agent at `address`, authenticated with `credentials`.
pub(crate) fn request(
    method: Method,
    address: &str,
    path_and_query: &str,
    credentials: &str,
    body: Body,
) -> ApiResult<axum::http::Request<Body>> {
    axum::http::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path_and_query}"))
        .header(header::AUTHORIZATION, format!("Bearer {credentials}"))
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Sends `request` and reads the JSON answer; any failure is worded for the user.
pub(crate) async fn call(
    state: &ApiState,
    request: axum::http::Request<Body>,
) -> Result<Value, String> {
    let response = state
        .agents
        .request(request)
        .await
        .map_err(|e| format!("cannot reach the agent: {e}"))?;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("reading the agent's answer: {e}"))?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        Err(value["message"]
            .as_str()
            .map_or_else(|| format!("the agent answered {status}"), str::to_owned))
    }
}

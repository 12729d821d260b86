//! `/slipway/v1/images`: container images on every node, as `kind load` does for kind.
//! An archive POSTed here is kept in a temporary file and sent to each node's agent, which
//! imports it into its containerd; listing and removal fan out the same way. Answers list
//! every node's outcome, so one unreachable node does not hide the others'.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::status::{ApiError, ApiResult};
use crate::{ApiState, agents};

/// The routes.
pub(crate) fn router() -> Router<Arc<ApiState>> {
    Router::new().route(
        "/slipway/v1/images",
        axum::routing::get(list).post(import).delete(remove),
    )
}

#[derive(serde::Deserialize)]
struct Named {
    name: Option<String>,
}

/// Sends one request to every node's agent, built by `request`, and gathers the answers.
async fn fan_out(
    state: &ApiState,
    request: impl Fn(&str, &str) -> ApiResult<axum::http::Request<Body>>,
) -> ApiResult<Response> {
    let credentials = agents::credentials(state)?;
    let nodes = agents::nodes(state).await?;
    if nodes.is_empty() {
        return Err(ApiError::unavailable(
            "there are no nodes: start an agent first",
        ));
    }
    let calls = nodes.into_iter().map(|node| {
        let call = match &node.address {
            None => Err(format!(
                "node {} does not say where its agent listens",
                node.name
            )),
            Some(address) => request(address, &credentials).map_err(|e| e.message().to_owned()),
        };
        async move {
            let outcome = match call {
                Err(e) => Err(e),
                Ok(request) => agents::call(state, request).await,
            };
            match outcome {
                Ok(value) => json!({"node": node.name, "images": value["images"]}),
                Err(error) => json!({"node": node.name, "error": error}),
            }
        }
    });
    let results = futures::future::join_all(calls).await;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"kind": "ImageList", "apiVersion": "slipway.dev/v1", "nodes": results}).to_string(),
    )
        .into_response())
}

async fn list(State(state): State<Arc<ApiState>>) -> Response {
    fan_out(&state, |address, credentials| {
        agents::request(Method::GET, address, "/images", credentials, Body::empty())
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

async fn remove(State(state): State<Arc<ApiState>>, Query(named): Query<Named>) -> Response {
    let Some(name) = named.name.filter(|n| !n.is_empty()) else {
        return ApiError::bad_request("name the image to remove: ?name=IMAGE").into_response();
    };
    let query = format!("/images?name={}", crate::handlers::encode_query(&name));
    fan_out(&state, |address, credentials| {
        agents::request(Method::DELETE, address, &query, credentials, Body::empty())
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

async fn import(State(state): State<Arc<ApiState>>, body: Body) -> Response {
    match stage(body).await {
        Ok(file) => {
            let path = file.path().to_owned();
            fan_out(&state, |address, credentials| {
                let opened = std::fs::File::open(&path)
                    .map_err(|e| ApiError::internal(format!("reading the staged archive: {e}")))?;
                let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(opened));
                agents::request(
                    Method::POST,
                    address,
                    "/images",
                    credentials,
                    Body::from_stream(stream),
                )
            })
            .await
            .unwrap_or_else(IntoResponse::into_response)
        }
        Err(e) => e.into_response(),
    }
}

/// Writes the uploaded archive to a temporary file, removed when the answer is sent.
async fn stage(body: Body) -> ApiResult<tempfile::NamedTempFile> {
    let file = tempfile::NamedTempFile::new()
        .map_err(|e| ApiError::internal(format!("cannot stage the archive: {e}")))?;
    let mut out = tokio::fs::File::from_std(
        file.reopen()
            .map_err(|e| ApiError::internal(format!("cannot stage the archive: {e}")))?,
    );
    let mut stream = body.into_data_stream();
    let mut size = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?;
        size += chunk.len();
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("cannot stage the archive: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::internal(format!("cannot stage the archive: {e}")))?;
    if size == 0 {
        return Err(ApiError::bad_request(
            "the request body is empty: send an OCI-layout or docker save archive",
        ));
    }
    Ok(file)
}

//! The two sides of every row: the API server over HTTP, and its floor, a fresh bare Store
//! of the same backend type doing the same work in the same process. The difference is
//! what routing, JSON, admission and HTTP cost.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde::de::IgnoredAny;
use slipway_store::{ListOptions, Store};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::Api;

/// A watcher that hears nothing for this long has lost its stream.
const WATCH_IDLE: Duration = Duration::from_secs(30);

/// Objects per page of a paged list, as client-go's reflector asks.
pub(crate) const PAGE: usize = 500;

/// The `data` of every ConfigMap: the size of a small Kubernetes object.
const PAYLOAD_BYTES: usize = 1000;

#[derive(Clone)]
pub(crate) enum Target {
    Api(Arc<Api>),
    Bare(Arc<dyn Store>),
}

/// What a benchmark needs of a list response; items are skipped, not built.
#[derive(Deserialize)]
struct ListBody {
    metadata: ListMeta,
    items: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: String,
    #[serde(rename = "continue", default)]
    next: Option<String>,
}

fn config_map(namespace: &str, name: &str) -> Bytes {
    let payload = "x".repeat(PAYLOAD_BYTES);
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"{namespace}"}},"data":{{"payload":"{payload}"}}}}"#
    )
    .into()
}

fn collection(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/configmaps")
}

/// The floor stores under the API server's own key layout, so key lengths and ordering match.
fn prefix(namespace: &str) -> String {
    format!("/registry/core/configmaps/{namespace}/")
}

impl Target {
    /// Makes `namespace` exist; the bare store has no namespaces to make.
    pub(crate) async fn namespace(&self, namespace: &str) -> anyhow::Result<()> {
        if let Target::Api(api) = self {
            let body = format!(
                r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{namespace}"}}}}"#
            );
            api.call(
                Method::POST,
                "/api/v1/namespaces",
                body.into(),
                StatusCode::CREATED,
            )
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn create(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        let object = config_map(namespace, name);
        match self {
            Target::Api(api) => {
                api.call(
                    Method::POST,
                    &collection(namespace),
                    object,
                    StatusCode::CREATED,
                )
                .await?;
            }
            Target::Bare(store) => {
                store
                    .create(&format!("{}{name}", prefix(namespace)), object, None)
                    .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn get(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        match self {
            Target::Api(api) => {
                let path = format!("{}/{name}", collection(namespace));
                api.call(Method::GET, &path, Bytes::new(), StatusCode::OK)
                    .await?;
            }
            Target::Bare(store) => {
                let key = format!("{}{name}", prefix(namespace));
                anyhow::ensure!(store.get(&key, None).await?.is_some(), "{key} missing");
            }
        }
        Ok(())
    }

    /// Lists the namespace whole, or in pages of `page` following continue tokens, and
    /// returns how many objects it saw. A whole list over HTTP is read but not parsed,
    /// so its figure is the server's cost, not the benchmark's JSON parser's.
    pub(crate) async fn list(
        &self,
        namespace: &str,
        page: Option<usize>,
    ) -> anyhow::Result<Option<usize>> {
        match (self, page) {
            (Target::Api(api), None) => {
                api.call(
                    Method::GET,
                    &collection(namespace),
                    Bytes::new(),
                    StatusCode::OK,
                )
                .await?;
                Ok(None)
            }
            (Target::Api(api), Some(limit)) => {
                let mut seen = 0;
                let mut next: Option<String> = None;
                loop {
                    let mut path = format!("{}?limit={limit}", collection(namespace));
                    if let Some(token) = &next {
                        path.push_str("&continue=");
                        path.push_str(&escape(token));
                    }
                    let body = api
                        .call(Method::GET, &path, Bytes::new(), StatusCode::OK)
                        .await?;
                    let list: ListBody = serde_json::from_slice(&body)?;
                    seen += list.items.len();
                    match list.metadata.next.filter(|t| !t.is_empty()) {
                        Some(token) => next = Some(token),
                        None => return Ok(Some(seen)),
                    }
                }
            }
            (Target::Bare(store), limit) => {
                let mut seen = 0;
                let mut options = ListOptions {
                    limit,
                    ..ListOptions::default()
                };
                loop {
                    let list = store.list(&prefix(namespace), options.clone()).await?;
                    seen += list.kvs.len();
                    if !list.more {
                        return Ok(Some(seen));
                    }
                    // Later pages read at the first page's revision, as the API server does.
                    options.revision = Some(list.revision);
                    options.start_after = list.kvs.last().map(|kv| kv.key.clone());
                }
            }
        }
    }

    /// The revision a watch of `namespace` starts after, so it sees only later writes.
    pub(crate) async fn revision(&self, namespace: &str) -> anyhow::Result<i64> {
        match self {
            Target::Api(api) => {
                let path = format!("{}?limit=1", collection(namespace));
                let body = api
                    .call(Method::GET, &path, Bytes::new(), StatusCode::OK)
                    .await?;
                let list: ListBody = serde_json::from_slice(&body)?;
                Ok(list.metadata.resource_version.parse()?)
            }
            Target::Bare(store) => Ok(store.revision().await?),
        }
    }

    /// Starts one watcher of `namespace` after `revision`; its task returns the arrival
    /// time of each of the next `writes` events.
    pub(crate) async fn watch(
        &self,
        namespace: &str,
        revision: i64,
        writes: usize,
    ) -> anyhow::Result<JoinHandle<anyhow::Result<Vec<Instant>>>> {
        match self {
            Target::Api(api) => {
                let path = format!(
                    "{}?watch=true&resourceVersion={revision}",
                    collection(namespace)
                );
                let mut body = api.watch(&path).await?;
                Ok(tokio::spawn(async move {
                    let mut arrivals = Vec::with_capacity(writes);
                    while arrivals.len() < writes {
                        let frame = match tokio::time::timeout(WATCH_IDLE, body.frame()).await {
                            Ok(Some(frame)) => frame?,
                            Ok(None) => anyhow::bail!("watch ended after {}", arrivals.len()),
                            Err(_) => anyhow::bail!("watch idle after {}", arrivals.len()),
                        };
                        let now = Instant::now();
                        // One event per line; a line is delivered when its newline arrives.
                        if let Some(data) = frame.data_ref() {
                            let lines = data.iter().filter(|b| **b == b'\n').count();
                            arrivals.extend(std::iter::repeat_n(now, lines));
                        }
                    }
                    Ok(arrivals)
                }))
            }
            Target::Bare(store) => {
                let mut stream = store.watch(&prefix(namespace), revision).await?;
                Ok(tokio::spawn(async move {
                    let mut arrivals = Vec::with_capacity(writes);
                    while arrivals.len() < writes {
                        match tokio::time::timeout(WATCH_IDLE, stream.next()).await {
                            Ok(Some(Ok(_))) => arrivals.push(Instant::now()),
                            other => {
                                anyhow::bail!("watch stopped after {}: {other:?}", arrivals.len())
                            }
                        }
                    }
                    Ok(arrivals)
                }))
            }
        }
    }
}

/// Percent-encodes a continue token for a query string; tokens are opaque.
fn escape(token: &str) -> String {
    token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

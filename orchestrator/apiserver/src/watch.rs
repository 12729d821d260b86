//! Watch: a chunked stream of JSON lines (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) from the Store's watch, with selectors applied the way Kubernetes does — an
//! object that stops matching is reported as deleted, one that starts matching as added.

use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use slipway_clock::SharedClock;
use slipway_store::{Error as StoreError, Event, ListOptions, Revision};
use slipway_tables::IncludeObject;
use tokio::sync::mpsc;

use crate::filter::Filter;
use crate::handlers::{Ctx, with_type};
use crate::objects::{self, decode};
use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult, from_store};

/// How often an idle watch with bookmarks allowed tells the client how far it has seen.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// Lines buffered per watcher; a slow client holds back only its own watch.
const LINE_BUFFER: usize = 64;

/// Serves `GET <collection>?watch=true`.
pub(crate) async fn serve(ctx: &Ctx) -> ApiResult<Response> {
    let resource = ctx.resource();
    let filter = ctx.filter()?;
    let prefix = objects::prefix(resource, ctx.target.namespace.as_deref());
    let bookmarks = ctx.flag("allowWatchBookmarks");
    let send_initial = ctx.flag("sendInitialEvents");
    if send_initial && !bookmarks {
        return Err(ApiError::unprocessable(
            "sendInitialEvents requires allowWatchBookmarks=true",
        ));
    }
    let timeout = match ctx.param("timeoutSeconds") {
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}"))
        })?)),
        None => None,
    };
    let rv = ctx.param("resourceVersion").filter(|rv| !rv.is_empty());
    let store = ctx.state.store.clone();
    let render = Render {
        resource,
        table: ctx.table_format()?,
        clock: ctx.state.clock.clone(),
    };

    // No resourceVersion (or "0"), or an explicit request for them: the current state
    // first, as ADDED events, then changes after it.
    let (initial, from) = if send_initial || matches!(rv, None | Some("0")) {
        let mut initial = Vec::new();
        let mut start_after = None;
        let mut revision = None;
        loop {
            let page = store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        limit: Some(500),
                        start_after: start_after.clone(),
                    },
                )
                .await
                .map_err(|e| from_store(resource, "", e))?;
            revision = Some(page.revision);
            for kv in &page.kvs {
                let object = decode(kv)?;
                if filter.matches(&object) {
                    initial.push(object);
                }
            }
            if !page.more {
                break;
            }
            start_after = page.kvs.last().map(|kv| kv.key.clone());
        }
        (initial, revision.unwrap_or_default())
    } else {
        (
            Vec::new(),
            objects::parse_resource_version(rv.unwrap_or("0"))?,
        )
    };

    let (tx, rx) = mpsc::channel::<Bytes>(LINE_BUFFER);
    let shutdown = ctx.state.shutdown.clone();
    let watch = match store.watch(&prefix, from).await {
        Ok(watch) => Ok(watch),
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => Err(ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        ))),
        Err(e) => return Err(from_store(resource, "", e)),
    };
    let open = ctx.state.metrics.watch_opened();
    tokio::spawn(async move {
        let _open = open;
        let mut stream = match watch {
            Ok(stream) => stream,
            Err(expired) => {
                // Kubernetes answers an expired start with an ERROR event, not an HTTP 410,
                // once the watch has been accepted.
                let _ = tx.send(line("ERROR", expired.to_status())).await;
                return;
            }
        };
        for object in initial {
            if tx.send(render.line("ADDED", object)).await.is_err() {
                return;
            }
        }
        let mut last = from;
        if send_initial {
            let mut mark = bookmark(resource, last);
            mark["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
            if tx.send(line("BOOKMARK", mark)).await.is_err() {
                return;
            }
        }
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.reset();
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                () = &mut deadline => return,
                () = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(line("BOOKMARK", bookmark(resource, last))).await.is_err() {
                        return;
                    }
                    continue;
                }
                next = stream.next() => next,
            };
            let event = match next {
                Some(Ok(event)) => event,
                Some(Err(StoreError::Compacted {
                    requested,
                    compacted,
                })) => {
                    let expired = ApiError::expired(format!(
                        "too old resource version: {requested} ({compacted})"
                    ));
                    let _ = tx.send(line("ERROR", expired.to_status())).await;
                    return;
                }
                Some(Err(e)) => {
                    let error = from_store(resource, "", e);
                    let _ = tx.send(line("ERROR", error.to_status())).await;
                    return;
                }
                None => return,
            };
            last = event.revision();
            match translate(&filter, &event) {
                Ok(Some((kind, object))) => {
                    if tx.send(render.line(kind, object)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    let _ = tx.send(line("ERROR", error.to_status())).await;
                    return;
                }
            }
        }
    });

    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// How a watch's objects are written: as themselves or as one-row Tables.
struct Render {
    resource: &'static ResourceType,
    table: Option<IncludeObject>,
    clock: SharedClock,
}

impl Render {
    fn line(&self, kind: &str, object: Value) -> Bytes {
        let object = with_type(self.resource, object);
        match self.table {
            None => line(kind, object),
            Some(include) => line(
                kind,
                slipway_tables::table(
                    self.resource.group,
                    self.resource.kind,
                    &[object],
                    Value::Null,
                    include,
                    self.clock.now(),
                ),
            ),
        }
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({ "type": kind, "object": object }))
        .expect("a JSON value always serializes");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(resource: &ResourceType, revision: Revision) -> Value {
    json!({
        "kind": resource.kind,
        "apiVersion": resource.api_version(),
        "metadata": { "resourceVersion": revision.to_string() },
    })
}

/// A store event as the client sees it through its selectors.
fn translate(filter: &Filter, event: &Event) -> ApiResult<Option<(&'static str, Value)>> {
    Ok(match event {
        Event::Put { kv, prev: None } => {
            let object = decode(kv)?;
            filter.matches(&object).then_some(("ADDED", object))
        }
        Event::Put {
            kv,
            prev: Some(prev),
        } => {
            let object = decode(kv)?;
            if filter.is_everything() {
                return Ok(Some(("MODIFIED", object)));
            }
            let before = decode(prev)?;
            match (filter.matches(&before), filter.matches(&object)) {
                (true, true) => Some(("MODIFIED", object)),
                (false, true) => Some(("ADDED", object)),
                (true, false) => Some(("DELETED", object)),
                (false, false) => None,
            }
        }
        Event::Delete { revision, prev } => {
            let mut object = decode(prev)?;
            objects::set_resource_version(&mut object, *revision);
            filter.matches(&object).then_some(("DELETED", object))
        }
    })
}

//! The task event stream: one subscription kept open across containerd restarts, known to
//! be live before it is handed out, its envelopes turned into [`Event`]s.

use std::sync::Arc;
use std::time::Duration;

use containerd_client::events::{TaskExit, TaskOom};
use containerd_client::services::v1::{PublishRequest, SubscribeRequest};
use containerd_client::tonic::codec::Streaming;
use containerd_client::types::Envelope;
use prost::Message;
use slipway_runtime::{Error, Event, Exit, Result};
use tokio::sync::mpsc;

use crate::grpc::{Conn, to_system_time};

/// Our own topic, published to until the subscription delivers it: containerd sends no
/// response headers before the first event, so only an event proves the stream is open.
const PING_TOPIC: &str = "/slipway/ping";
const PING_TYPE: &str = "types.slipway.dev/Ping";
const PING_EVERY: Duration = Duration::from_millis(20);
/// How long opening a subscription may take before we call containerd unavailable.
const OPEN: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const BUFFER: usize = 1024;

pub(crate) async fn subscribe(conn: Arc<Conn>) -> Result<mpsc::Receiver<Event>> {
    let stream = open(&conn).await?;
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(forward(conn, stream, tx));
    Ok(rx)
}

async fn forward(conn: Arc<Conn>, mut stream: Streaming<Envelope>, tx: mpsc::Sender<Event>) {
    loop {
        let received = tokio::select! {
            () = tx.closed() => return,
            received = stream.message() => received,
        };
        match received {
            Ok(Some(envelope)) => {
                if let Some(event) = event_of(&envelope)
                    && tx.send(event).await.is_err()
                {
                    return;
                }
            }
            Ok(None) | Err(_) => {
                let Some(reopened) = reopen(&conn, &tx).await else {
                    return;
                };
                stream = reopened;
                if tx.send(Event::Resync).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Subscribes again, backing off, until it works or nobody listens any more.
async fn reopen(conn: &Conn, tx: &mpsc::Sender<Event>) -> Option<Streaming<Envelope>> {
    let mut backoff = BACKOFF_MIN;
    loop {
        tokio::select! {
            () = tx.closed() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        match open(conn).await {
            Ok(stream) => return Some(stream),
            Err(e) => {
                tracing::debug!("resubscribing to containerd events: {e}");
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn open(conn: &Conn) -> Result<Streaming<Envelope>> {
    let namespace = conn.namespace();
    let filters = vec![
        format!("topic~=\"/tasks/\",namespace=={namespace}"),
        format!("topic==\"{PING_TOPIC}\",namespace=={namespace}"),
    ];
    let call = conn.call("events.Subscribe");
    let request = call.stream_req(SubscribeRequest { filters });
    let mut client = conn.events();
    let mut subscribing = tokio::spawn(async move { client.subscribe(request).await });
    let opened = tokio::time::timeout(OPEN, async {
        loop {
            ping(conn).await;
            tokio::select! {
                joined = &mut subscribing => {
                    return match joined {
                        Ok(Ok(response)) => Ok(response.into_inner()),
                        Ok(Err(status)) => Err(call.error(&status)),
                        Err(e) => Err(Error::Other(format!("events.Subscribe: {e}"))),
                    };
                }
                () = tokio::time::sleep(PING_EVERY) => {}
            }
        }
    })
    .await;
    opened.unwrap_or_else(|_| {
        subscribing.abort();
        Err(Error::Unavailable(format!(
            "events.Subscribe: no event within {OPEN:?}"
        )))
    })
}

/// A failed ping only means the subscription is not proven yet: the loop pings again.
async fn ping(conn: &Conn) {
    let call = conn.call("events.Publish").deadline(Duration::from_secs(2));
    let published = call
        .run(conn.events().publish(call.req(PublishRequest {
            topic: PING_TOPIC.to_owned(),
            event: Some(prost_types::Any {
                type_url: PING_TYPE.to_owned(),
                value: Vec::new(),
            }),
        })))
        .await;
    if let Err(e) = published {
        tracing::debug!("pinging containerd's event stream: {e}");
    }
}

/// containerd's type URLs here are bare message names (`containerd.events.TaskExit`),
/// which `Any::to_msg` refuses, so the payload is decoded by hand.
fn event_of(envelope: &Envelope) -> Option<Event> {
    let any = envelope.event.as_ref()?;
    match envelope.topic.as_str() {
        "/tasks/exit" => {
            let exit = TaskExit::decode(any.value.as_slice()).ok()?;
            Some(Event::Exit {
                container: exit.container_id,
                process: exit.id,
                exit: Exit {
                    status: exit.exit_status,
                    at: to_system_time(exit.exited_at.as_ref()),
                },
            })
        }
        "/tasks/oom" => {
            let oom = TaskOom::decode(any.value.as_slice()).ok()?;
            Some(Event::Oom {
                container: oom.container_id,
            })
        }
        _ => None,
    }
}

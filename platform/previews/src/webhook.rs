//! `POST /webhooks/github`: a delivery is checked against its repository's secret, stored
//! (deduplicated by hook and delivery id) together with the preview it wakes, and only then
//! acknowledged; the work happens in the reconciler, after the answer.
//!
//! Deliveries arriving together are stored together: one task writes whatever has queued
//! while its last transaction committed in one transaction (group commit), so a burst costs
//! one sync to disk rather than one per delivery, and each is still answered only once its
//! row is on disk.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use slipway_github::webhook::{self, Payload};
use slipway_platform_db::{Error as DbError, NewDelivery, Recorded};
use slipway_tenancy::http::ApiError;

use crate::{Previews, commands, naming};

/// The path GitHub delivers to.
pub const PATH: &str = "/webhooks/github";

/// GitHub's own cap on a delivery's payload.
const MAX_BODY: usize = 25 * 1024 * 1024;

/// The webhook route; it needs no bearer token (the signature is the credential).
pub fn router(previews: Arc<Previews>) -> Router {
    Router::new()
        .route(PATH, post(deliver))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(previews)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(code: StatusCode, message: &str) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// Actions after which a preview a user destroyed comes back: new code, or a reopen.
fn revives(action: Option<&str>) -> bool {
    matches!(action, Some("opened" | "reopened" | "synchronize"))
}

async fn deliver(
    State(previews): State<Arc<Previews>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let bad = |message: &str| ApiError::bad_request(message.to_owned());
    let event =
        header(&headers, "x-github-event").ok_or_else(|| bad("X-GitHub-Event is missing"))?;
    let delivery = header(&headers, "x-github-delivery")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| bad("X-GitHub-Delivery is missing"))?;
    let parsed = webhook::parse(event, &body)
        .map_err(|e| bad(&format!("the payload is not a GitHub event: {e}")))?;
    let repo_ref = parsed
        .repo
        .clone()
        .ok_or_else(|| bad("the payload names no repository"))?;
    let repo = match previews.db().repo(&repo_ref.owner, &repo_ref.name).await {
        Ok(repo) => repo,
        Err(DbError::NotFound { .. }) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("repository {repo_ref} is not registered with slipway"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let secrets = previews.db().repo_secrets(repo.id).await?;
    if let Err(e) = webhook::verify_signature(
        secrets.webhook_secret.as_bytes(),
        &body,
        header(&headers, "x-hub-signature-256"),
    ) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            format!("webhook signature: {e}"),
        ));
    }
    let mut record = NewDelivery {
        hook: header(&headers, "x-github-hook-id")
            .unwrap_or_default()
            .to_owned(),
        delivery: delivery.to_owned(),
        event: event.to_owned(),
        action: parsed.action.clone(),
        repo_id: Some(repo.id),
        pr: None,
        head_sha: None,
        sender: parsed.sender.clone(),
        comment: None,
        revives: false,
        namespaces: [String::new(), String::new()],
    };
    match &parsed.payload {
        Payload::PullRequest {
            number, head_sha, ..
        } => {
            record.pr = Some(*number);
            record.head_sha = Some(head_sha.clone());
            record.revives = revives(parsed.action.as_deref());
        }
        Payload::IssueComment {
            number,
            on_pull_request: true,
            body,
            author,
            ..
        } if parsed.action.as_deref() == Some("created") && !commands::parse(body).is_empty() => {
            record.pr = Some(*number);
            record.comment = Some(body.clone());
            record.sender = Some(author.clone());
        }
        _ => {}
    }
    if let Some(pr) = record.pr {
        record.namespaces = naming::namespaces(&repo.name, repo.id, pr);
    }
    let recorded = previews.recorder().record(record).await.map_err(|e| {
        tracing::error!(error = %e, "storing a webhook delivery");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the delivery could not be stored; GitHub may redeliver it",
        )
    })?;
    match recorded {
        Recorded::Duplicate => Ok(answer(
            StatusCode::OK,
            "duplicate delivery; already handled",
        )),
        Recorded::Stored { preview } => {
            if let Some(id) = preview {
                previews.enqueue(id);
            }
            let message = match (&parsed.payload, preview) {
                (Payload::Ping { .. }, _) => "pong",
                (_, Some(_)) => "accepted",
                (_, None) => "stored; nothing to do",
            };
            Ok(answer(StatusCode::ACCEPTED, message))
        }
    }
}

type Job = (
    NewDelivery,
    tokio::sync::oneshot::Sender<Result<Recorded, String>>,
);

/// The most deliveries one transaction stores.
const BATCH: usize = 256;

/// Stores deliveries by group commit; see the module docs. Its task ends when the
/// recorder is dropped.
#[derive(Debug)]
pub(crate) struct Recorder {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl Recorder {
    pub(crate) fn start(db: slipway_platform_db::Db) -> Recorder {
        let (jobs, mut queued) = tokio::sync::mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(first) = queued.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match queued.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let (deliveries, replies): (Vec<NewDelivery>, Vec<_>) = batch.into_iter().unzip();
                match db.record_deliveries(&deliveries).await {
                    Ok(answers) => {
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Recorder { jobs }
    }

    /// Stores `delivery` (with the others queued now) and answers once it is on disk.
    pub(crate) async fn record(&self, delivery: NewDelivery) -> Result<Recorded, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send((delivery, reply))
            .map_err(|_| "the delivery writer stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the delivery writer stopped".to_owned())?
    }
}

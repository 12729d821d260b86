//! Repositories and previews in the platform API, under `/slipway/v1/`. The API server has
//! authenticated and authorized each request (the platform's directory lets squad members
//! see their squad's repositories and previews, and owners register repositories); answers
//! never carry a secret, and every error is a Kubernetes `Status`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;
use slipway_platform_db::{NewRepo, Phase, Preview};
use slipway_tenancy::http::{Answer, ApiError, Caller, Params, body, json};
use slipway_tenancy::squad_group;

use crate::Previews;

/// The routes over `previews`.
pub fn router(previews: Arc<Previews>) -> Router {
    Router::new()
        .route(
            "/slipway/v1/squads/{name}/repos",
            get(list_repos).post(add_repo),
        )
        .route(
            "/slipway/v1/squads/{name}/repos/{owner}/{repo}",
            get(get_repo).delete(remove_repo),
        )
        .route("/slipway/v1/previews", get(list_previews))
        .route(
            "/slipway/v1/squads/{name}/previews/{namespace}",
            get(get_preview).delete(destroy_preview),
        )
        .route(
            "/slipway/v1/squads/{name}/previews/{namespace}/extend",
            post(extend_preview),
        )
        .route(
            "/slipway/v1/squads/{name}/previews/{namespace}/wake",
            post(wake_preview),
        )
        .route(
            "/slipway/v1/previews/{namespace}/touch",
            post(touch_preview),
        )
        .with_state(previews)
}

/// A preview as the API shows it: the record plus what the CLI's and the portal's columns
/// need at the top.
fn show(preview: &Preview) -> serde_json::Value {
    let mut value = serde_json::to_value(preview).unwrap_or_default();
    // An extension is the expiry from the moment it is asked for; the reconciler's next
    // pass writes it into the status.
    if let Some(until) = preview.extended_until
        && !preview.status.pinned
        && preview.status.expires_at.is_none_or(|at| at < until)
    {
        value["status"]["expiresAt"] = json!(until);
    }
    value["url"] = json!(preview.status.url);
    value["title"] = json!(preview.status.title);
    value["author"] = json!(preview.status.author);
    value["prUrl"] = json!(preview.status.pr_url);
    value["sleeping"] = json!(preview.status.phase == Phase::Sleeping);
    value
}

/// The newest deliveries a repository's page shows.
const DELIVERIES_SHOWN: u32 = 20;

/// The squad's repository `owner/name`, or 404 (also for another squad's).
async fn repo_of(
    previews: &Previews,
    squad: &str,
    owner: &str,
    name: &str,
) -> Result<slipway_platform_db::Repo, ApiError> {
    let repo = previews.db().repo(owner, name).await?;
    if repo.squad != squad {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("repos \"{owner}/{name}\" not found in squad {squad:?}"),
        ));
    }
    Ok(repo)
}

/// One repository with its newest deliveries and the config errors its open previews
/// report.
async fn get_repo(
    State(previews): State<Arc<Previews>>,
    Params((squad, owner, name)): Params<(String, String, String)>,
) -> Answer {
    let repo = repo_of(&previews, &squad, &owner, &name).await?;
    let deliveries = previews.db().deliveries(repo.id, DELIVERIES_SHOWN).await?;
    let config_errors: Vec<_> = previews
        .db()
        .previews()
        .await?
        .into_iter()
        .filter(|p| {
            p.repo_id == repo.id && p.status.phase == Phase::Failed && p.status.config_error
        })
        .map(|p| {
            json!({
                "pr": p.pr,
                "namespace": p.namespace,
                "sha": p.status.head_sha,
                "message": p.status.message,
            })
        })
        .collect();
    let mut value = serde_json::to_value(&repo).unwrap_or_default();
    value["deliveries"] = json!(deliveries);
    value["configErrors"] = json!(config_errors);
    json(StatusCode::OK, &value)
}

async fn list_repos(
    State(previews): State<Arc<Previews>>,
    Params(squad): Params<String>,
) -> Answer {
    let items: Vec<_> = previews
        .db()
        .repos()
        .await?
        .into_iter()
        .filter(|r| r.squad == squad)
        .collect();
    json(StatusCode::OK, &json!({ "items": items }))
}

async fn add_repo(
    State(previews): State<Arc<Previews>>,
    Caller(user): Caller,
    Params(squad): Params<String>,
    bytes: Bytes,
) -> Answer {
    let new: NewRepo = body(&bytes)?;
    let repo = previews.db().add_repo(&user.name, &squad, &new).await?;
    json(StatusCode::CREATED, &repo)
}

async fn remove_repo(
    State(previews): State<Arc<Previews>>,
    Caller(user): Caller,
    Params((squad, owner, name)): Params<(String, String, String)>,
) -> Answer {
    let repo = repo_of(&previews, &squad, &owner, &name).await?;
    previews
        .db()
        .remove_repo(&user.name, &repo.owner, &repo.name)
        .await?;
    json(
        StatusCode::OK,
        &json!({ "kind": "Status", "apiVersion": "v1", "status": "Success" }),
    )
}

async fn list_previews(State(previews): State<Arc<Previews>>, Caller(user): Caller) -> Answer {
    let all = slipway_tenancy::is_admin(&user);
    let items: Vec<_> = previews
        .db()
        .previews()
        .await?
        .iter()
        .filter(|p| all || user.groups.contains(&squad_group(&p.squad)))
        .map(show)
        .collect();
    json(StatusCode::OK, &json!({ "items": items }))
}

/// The squad's preview in `namespace`, or 404 (also for another squad's, which is not
/// this caller's business).
async fn preview_of(
    previews: &Previews,
    squad: &str,
    namespace: &str,
) -> Result<Preview, ApiError> {
    let preview = previews.db().preview_by_namespace(namespace).await?;
    if preview.squad != squad {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("previews \"{namespace}\" not found in squad {squad:?}"),
        ));
    }
    Ok(preview)
}

async fn get_preview(
    State(previews): State<Arc<Previews>>,
    Params((squad, namespace)): Params<(String, String)>,
) -> Answer {
    let preview = preview_of(&previews, &squad, &namespace).await?;
    json(StatusCode::OK, &show(&preview))
}

async fn destroy_preview(
    State(previews): State<Arc<Previews>>,
    Caller(user): Caller,
    Params((squad, namespace)): Params<(String, String)>,
) -> Answer {
    let preview = preview_of(&previews, &squad, &namespace).await?;
    previews
        .db()
        .request_destroy(&user.name, preview.id)
        .await?;
    previews.enqueue(preview.id);
    let preview = previews.db().preview(preview.id).await?;
    json(StatusCode::ACCEPTED, &show(&preview))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Extend {
    /// `12h`, `2d`; the squad's TTL if left out.
    #[serde(default)]
    duration: Option<String>,
}

async fn extend_preview(
    State(previews): State<Arc<Previews>>,
    Caller(user): Caller,
    Params((squad, namespace)): Params<(String, String)>,
    bytes: Bytes,
) -> Answer {
    let request: Extend = body(&bytes)?;
    let preview = preview_of(&previews, &squad, &namespace).await?;
    let policy = previews.db().squad(&squad).await?.previews;
    let wanted = match request.duration.as_deref() {
        None => Duration::from_secs(policy.ttl_seconds),
        Some(text) => slipway_preview_config::parse_duration(text)
            .map_err(|e| ApiError::invalid("duration", e))?,
    };
    let maximum = Duration::from_secs(policy.max_ttl_seconds);
    if wanted > maximum {
        return Err(ApiError::invalid(
            "duration",
            format!(
                "{} is more than squad {squad:?} allows ({}h)",
                request.duration.unwrap_or_default(),
                policy.max_ttl_seconds / 3600
            ),
        ));
    }
    if preview.status.phase == Phase::Destroyed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "previews \"{namespace}\" is destroyed; push to the pull request to bring it back"
            ),
        ));
    }
    let now = Timestamp::try_from(previews.clock.now()).unwrap_or(Timestamp::UNIX_EPOCH);
    let until = crate::reconcile::plus(now, wanted);
    previews
        .db()
        .extend_preview(&user.name, preview.id, until)
        .await?;
    previews.enqueue(preview.id);
    let preview = previews.db().preview(preview.id).await?;
    json(StatusCode::OK, &show(&preview))
}

/// A member wakes a sleeping preview (as a request through the gateway would): its idle
/// clock restarts too.
async fn wake_preview(
    State(previews): State<Arc<Previews>>,
    Params((squad, namespace)): Params<(String, String)>,
) -> Answer {
    let preview = preview_of(&previews, &squad, &namespace).await?;
    previews.db().touch_preview(&namespace).await?;
    let preview = previews.db().preview(preview.id).await?;
    if preview.generation != preview.status.observed {
        previews.enqueue(preview.id);
    }
    json(StatusCode::OK, &show(&preview))
}

/// A gateway saw a request for the preview in `namespace` (nodes call this): the idle clock
/// restarts, and a sleeping preview wakes.
async fn touch_preview(
    State(previews): State<Arc<Previews>>,
    Params(namespace): Params<String>,
) -> Answer {
    let Some(id) = previews.db().touch_preview(&namespace).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("previews \"{namespace}\" not found"),
        ));
    };
    let preview = previews.db().preview(id).await?;
    if preview.generation != preview.status.observed {
        previews.enqueue(id);
    }
    json(StatusCode::OK, &json!({ "phase": preview.status.phase }))
}

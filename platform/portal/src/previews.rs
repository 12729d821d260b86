//! Preview environments across my squads, filterable by squad, repository and status, and
//! their actions: extend, wake, and destroy after a confirmation.

use askama::Template;
use axum::body::Bytes;
use axum::extract::Path;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api;
use crate::page::{Chrome, Ctx, Page, PageError, Query, done, render};
use crate::platform::{List, Preview};
use crate::view;

/// A preview as a row.
pub(crate) struct PreviewRow {
    pub(crate) squad: String,
    pub(crate) namespace: String,
    pub(crate) repo: String,
    pub(crate) pr: u64,
    pub(crate) pr_url: Option<String>,
    pub(crate) title: String,
    pub(crate) author: String,
    pub(crate) sha: String,
    pub(crate) phase: String,
    pub(crate) level: &'static str,
    pub(crate) message: String,
    pub(crate) url: Option<String>,
    pub(crate) created: String,
    /// RFC 3339, for the live countdown.
    pub(crate) expires_at: Option<String>,
    pub(crate) expires_in: String,
    pub(crate) sleeping: bool,
}

impl PreviewRow {
    pub(crate) fn new(p: &Preview, now: Timestamp) -> PreviewRow {
        let expires_in = match (p.status.pinned, p.status.expires_at) {
            (true, _) => "pinned".to_owned(),
            (false, Some(at)) => view::remaining(now, at),
            (false, None) => "-".to_owned(),
        };
        PreviewRow {
            squad: p.squad.clone(),
            namespace: p.namespace.clone(),
            repo: p.repo.clone(),
            pr: p.pr,
            // Only GitHub's own links become links; anything else stays text.
            pr_url: p
                .pr_url
                .clone()
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            title: p.title.clone().unwrap_or_default(),
            author: p.author.clone().unwrap_or_default(),
            sha: view::short_sha(p.sha()).to_owned(),
            phase: p.status.phase.clone(),
            level: view::phase_level(&p.status.phase),
            message: p.status.message.clone(),
            url: p
                .url
                .clone()
                .filter(|u| u.starts_with("http://") || u.starts_with("https://")),
            created: view::age(now, p.created_at),
            expires_at: p
                .status
                .expires_at
                .filter(|_| !p.status.pinned)
                .map(|at| at.to_string()),
            expires_in,
            sleeping: p.is_sleeping(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Filters {
    squad: String,
    repo: String,
    status: String,
    /// What the last action did, shown once.
    done: String,
}

#[derive(Template)]
#[template(path = "previews.html")]
struct PreviewsPage {
    chrome: Option<Chrome>,
    previews: Vec<PreviewRow>,
    squads: Vec<String>,
    repos: Vec<String>,
    statuses: Vec<String>,
    filters: Filters,
    notice: Option<&'static str>,
}

pub(crate) async fn page(ctx: Ctx, Query(filters): Query<Filters>) -> Page {
    let all = ctx.get::<List<Preview>>(api::path(&["previews"])).await?;
    let now = ctx.now();
    let mut squads: Vec<String> = all.items.iter().map(|p| p.squad.clone()).collect();
    let mut repos: Vec<String> = all.items.iter().map(|p| p.repo.clone()).collect();
    let mut statuses: Vec<String> = all.items.iter().map(|p| p.status.phase.clone()).collect();
    for list in [&mut squads, &mut repos, &mut statuses] {
        list.sort();
        list.dedup();
    }
    let previews = all
        .items
        .iter()
        .filter(|p| filters.squad.is_empty() || p.squad == filters.squad)
        .filter(|p| filters.repo.is_empty() || p.repo == filters.repo)
        .filter(|p| {
            if filters.status.is_empty() {
                p.is_open()
            } else {
                p.status.phase == filters.status
            }
        })
        .map(|p| PreviewRow::new(p, now))
        .collect();
    let notice = match filters.done.as_str() {
        "extended" => Some("The preview was extended."),
        "woken" => Some("The preview is waking up."),
        "destroyed" => Some("The preview is being destroyed."),
        _ => None,
    };
    render(&PreviewsPage {
        chrome: Some(ctx.chrome("previews")),
        previews,
        squads,
        repos,
        statuses,
        filters,
        notice,
    })
}

#[derive(Deserialize)]
struct ExtendForm {
    duration: String,
}

pub(crate) async fn extend(
    ctx: Ctx,
    Path((squad, namespace)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let form: ExtendForm = ctx.form(&body)?;
    let body = json!({ "duration": form.duration });
    let _: Value = ctx
        .platform(
            http::Method::POST,
            api::path(&["squads", &squad, "previews", &namespace, "extend"]),
            Some(&body),
        )
        .await?;
    done("/previews?done=extended")
}

#[derive(Deserialize)]
struct Empty {}

pub(crate) async fn wake(
    ctx: Ctx,
    Path((squad, namespace)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let Empty {} = ctx.form(&body)?;
    let _: Value = ctx
        .platform(
            http::Method::POST,
            api::path(&["squads", &squad, "previews", &namespace, "wake"]),
            None,
        )
        .await?;
    done("/previews?done=woken")
}

#[derive(Template)]
#[template(path = "confirm_destroy.html")]
struct ConfirmDestroy {
    chrome: Option<Chrome>,
    preview: PreviewRow,
}

/// The confirmation step: what is about to go, and a form that says so.
pub(crate) async fn confirm_destroy(
    ctx: Ctx,
    Path((squad, namespace)): Path<(String, String)>,
) -> Page {
    let preview: Preview = ctx
        .get(api::path(&["squads", &squad, "previews", &namespace]))
        .await?;
    render(&ConfirmDestroy {
        chrome: Some(ctx.chrome("previews")),
        preview: PreviewRow::new(&preview, ctx.now()),
    })
}

#[derive(Deserialize)]
struct DestroyForm {
    #[serde(default)]
    confirm: Option<String>,
}

pub(crate) async fn destroy(
    ctx: Ctx,
    Path((squad, namespace)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let form: DestroyForm = ctx.form(&body)?;
    if form.confirm.as_deref() != Some("yes") {
        return Err(PageError::BadRequest(
            "Tick the confirmation box to destroy the preview.".to_owned(),
        ));
    }
    let _: Value = ctx
        .platform(
            http::Method::DELETE,
            api::path(&["squads", &squad, "previews", &namespace]),
            None,
        )
        .await?;
    done("/previews?done=destroyed")
}

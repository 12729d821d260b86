//! Repositories registered for previews: the list across my squads with a form to register
//! one, and a repository's last webhook deliveries and current config errors.

use askama::Template;
use axum::body::Bytes;
use axum::extract::Path;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api;
use crate::page::{Chrome, Ctx, Page, PageError, Query, done, render};
use crate::platform::{ConfigError, Delivery, List, Repo};
use crate::view;

#[derive(Template)]
#[template(path = "repos.html")]
struct ReposPage {
    chrome: Option<Chrome>,
    repos: Vec<RepoRow>,
    squads: Vec<String>,
    notice: Option<&'static str>,
}

struct RepoRow {
    squad: String,
    full_name: String,
    href: String,
    access: String,
    age: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Done {
    done: String,
}

pub(crate) async fn page(ctx: Ctx, Query(done): Query<Done>) -> Page {
    let squads = ctx.my_squads().await?;
    let lists = futures::future::try_join_all(
        squads
            .iter()
            .map(|s| ctx.get::<List<Repo>>(api::path(&["squads", &s.name, "repos"]))),
    )
    .await?;
    let now = ctx.now();
    let repos = lists
        .into_iter()
        .flat_map(|l| l.items)
        .map(|r| RepoRow {
            href: format!(
                "/repos/{}/{}/{}",
                api::encode(&r.squad),
                api::encode(&r.owner),
                api::encode(&r.name)
            ),
            full_name: format!("{}/{}", r.owner, r.name),
            age: view::age(now, r.created_at),
            squad: r.squad,
            access: r.access,
        })
        .collect();
    render(&ReposPage {
        chrome: Some(ctx.chrome("repos")),
        repos,
        squads: squads.into_iter().map(|s| s.name).collect(),
        notice: (done.done == "added").then_some("The repository is registered."),
    })
}

#[derive(Deserialize)]
struct RegisterForm {
    squad: String,
    repository: String,
    webhook_secret: String,
    github_token: String,
}

/// Registers `owner/name` for the squad's previews, with a GitHub token.
pub(crate) async fn register(ctx: Ctx, body: Bytes) -> Page {
    let form: RegisterForm = ctx.form(&body)?;
    let Some((owner, name)) = form
        .repository
        .trim()
        .split_once('/')
        .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
    else {
        return Err(PageError::BadRequest(
            "The repository must be written OWNER/NAME.".to_owned(),
        ));
    };
    let body = json!({
        "owner": owner,
        "name": name,
        "webhookSecret": form.webhook_secret,
        "access": { "token": form.github_token },
    });
    let _: Value = ctx
        .platform(
            http::Method::POST,
            api::path(&["squads", &form.squad, "repos"]),
            Some(&body),
        )
        .await?;
    done("/repos?done=added")
}

#[derive(Template)]
#[template(path = "repo.html")]
struct RepoPage {
    chrome: Option<Chrome>,
    squad: String,
    full_name: String,
    access: String,
    deliveries: Vec<DeliveryRow>,
    config_errors: Vec<ConfigError>,
}

struct DeliveryRow {
    /// RFC 3339, for `<time datetime>`.
    at: String,
    age: String,
    event: String,
    pr: String,
    sha: String,
    sender: String,
    result: &'static str,
    level: &'static str,
}

fn delivery_row(d: &Delivery, now: Timestamp) -> DeliveryRow {
    let event = match &d.action {
        Some(action) => format!("{}.{action}", d.event),
        None => d.event.clone(),
    };
    let (result, level) = if d.processed_at.is_some() {
        ("processed", "ok")
    } else {
        ("waiting", "warn")
    };
    DeliveryRow {
        at: d.received_at.map(|t| t.to_string()).unwrap_or_default(),
        age: view::age(now, d.received_at),
        event,
        pr: d.pr.map(|n| format!("#{n}")).unwrap_or_default(),
        sha: d
            .sha
            .as_deref()
            .map(view::short_sha)
            .unwrap_or_default()
            .to_owned(),
        sender: d.sender.clone().unwrap_or_default(),
        result,
        level,
    }
}

pub(crate) async fn detail(
    ctx: Ctx,
    Path((squad, owner, name)): Path<(String, String, String)>,
) -> Page {
    let repo: Repo = ctx
        .get(api::path(&["squads", &squad, "repos", &owner, &name]))
        .await?;
    let now = ctx.now();
    render(&RepoPage {
        chrome: Some(ctx.chrome("repos")),
        full_name: format!("{}/{}", repo.owner, repo.name),
        squad,
        access: repo.access,
        deliveries: repo
            .deliveries
            .iter()
            .map(|d| delivery_row(d, now))
            .collect(),
        config_errors: repo.config_errors,
    })
}

//! `slipway demo pr open|push|close|list`: pull requests on the demo repository of
//! `slipway up`'s built-in fake GitHub. Each change is delivered to the platform's own
//! webhook endpoint, signed as GitHub signs it, and then followed until the preview is
//! ready (or gone) with its URL.

use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::Value;

use super::Target;
use super::api::Api;
use super::table;
use crate::exit::Failure;

const PULLS: &str = "/slipway/v1/demo/pulls";

#[derive(Debug, Subcommand)]
pub(crate) enum DemoCommand {
    /// Pull requests on the demo repository (`slipway up` only).
    #[command(
        subcommand,
        after_help = "Example:\n  slipway demo pr open && slipway demo pr close 1"
    )]
    Pr(PrCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrCommand {
    /// Open a pull request; its preview environment is deployed and its URL printed.
    ///
    /// Example: slipway demo pr open
    Open(Follow),
    /// Push a new commit to an open pull request; its preview rolls to it.
    ///
    /// Example: slipway demo pr push 1
    Push {
        /// The pull request's number
        number: u64,
        #[command(flatten)]
        follow: Follow,
    },
    /// Close a pull request; its preview environment is destroyed.
    ///
    /// Example: slipway demo pr close 1
    Close {
        /// The pull request's number
        number: u64,
        #[command(flatten)]
        follow: Follow,
    },
    /// List the demo repository's pull requests.
    ///
    /// Example: slipway demo pr list
    List {
        #[command(flatten)]
        target: Target,
    },
}

/// Whether and how long to follow the preview after a change.
#[derive(Debug, clap::Args)]
pub(crate) struct Follow {
    /// Return once GitHub's delivery is accepted, without waiting for the preview
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the preview: 90s, 5m
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = super::parse::duration)]
    timeout: u64,
    #[command(flatten)]
    target: Target,
}

pub(crate) async fn run(command: DemoCommand) -> Result<(), Failure> {
    let DemoCommand::Pr(command) = command;
    let (change, follow) = match command {
        PrCommand::List { target } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let pulls = pulls(&api).await?;
            let rows: Vec<Vec<String>> = table::items(&pulls)
                .iter()
                .map(|p| {
                    vec![
                        format!("#{}", p["number"]),
                        if p["open"] == true { "open" } else { "closed" }.to_owned(),
                        table::text(p, "headSha"),
                    ]
                })
                .collect();
            if rows.is_empty() {
                say!(
                    "no pull requests on {}; open one: slipway demo pr open",
                    pulls["repo"].as_str().unwrap_or_default()
                );
            } else {
                print!("{}", table::render(&["PR", "STATE", "HEAD"], &rows));
            }
            return Ok(());
        }
        PrCommand::Open(follow) => (Change::Open, follow),
        PrCommand::Push { number, follow } => (Change::Push(number), follow),
        PrCommand::Close { number, follow } => (Change::Close(number), follow),
    };
    let api = Api::from_kubeconfig(follow.target.kubeconfig)?;
    let known = pulls(&api).await?;
    if let Change::Push(number) | Change::Close(number) = change {
        let pull = table::items(&known)
            .iter()
            .find(|p| p["number"].as_u64() == Some(number));
        match pull {
            None => {
                return Err(Failure::bad_input(format!(
                    "the demo repository has no pull request #{number} (slipway demo pr list)"
                )));
            }
            Some(p) if p["open"] != true => {
                return Err(Failure::bad_input(format!(
                    "pull request #{number} is closed"
                )));
            }
            Some(_) => {}
        }
    }
    let path = match change {
        Change::Open => PULLS.to_owned(),
        Change::Push(number) => format!("{PULLS}/{number}/push"),
        Change::Close(number) => format!("{PULLS}/{number}/close"),
    };
    let answer = api.post(&path, &Value::Null).await?;
    let number = answer["pull"]["number"].as_u64().unwrap_or_default();
    let sha = table::text(&answer["pull"], "headSha");
    let repo = table::text(&answer, "repo");
    deliver(&api, &answer["delivery"]).await?;
    let short = &sha[..sha.len().min(7)];
    match change {
        Change::Open => {
            say!("opened pull request #{number} on {repo} at {short}; delivered to the webhook");
        }
        Change::Push(_) => {
            say!("pushed {short} to pull request #{number}; delivered to the webhook");
        }
        Change::Close(_) => say!("closed pull request #{number}; delivered to the webhook"),
    }
    if follow.no_wait {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(follow.timeout);
    match change {
        Change::Close(_) => until_gone(&api, &repo, number, deadline).await,
        Change::Open | Change::Push(_) => until_ready(&api, &repo, number, &sha, deadline).await,
    }
}

#[derive(Clone, Copy)]
enum Change {
    Open,
    Push(u64),
    Close(u64),
}

/// The demo's pull requests; a server without the demo says so in words.
async fn pulls(api: &Api) -> Result<Value, Failure> {
    api.get_if_there(PULLS).await?.ok_or_else(|| {
        Failure::bad_input(
            "this server runs no demo: it is part of `slipway up` (unless --no-demo)",
        )
    })
}

/// Sends the delivery to the platform's webhook endpoint as GitHub would.
async fn deliver(api: &Api, delivery: &Value) -> Result<(), Failure> {
    let header = |name: &str| delivery[name].as_str().unwrap_or_default().to_owned();
    let request = http::Request::post("/webhooks/github")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "GitHub-Hookshot/slipway-demo")
        .header("x-github-event", header("event"))
        .header("x-github-delivery", header("id"))
        .header("x-hub-signature-256", header("signature"))
        .body(header("payload").into_bytes())
        .map_err(|e| Failure::failed(format!("cannot build the delivery: {e}")))?;
    api.client()
        .request_text(request)
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) => Failure::failed(format!(
                "the webhook endpoint refused the delivery: {}",
                status.message
            )),
            other => Failure::unreachable(format!("cannot reach the webhook endpoint: {other}")),
        })?;
    Ok(())
}

/// The preview of pull request `number`, if there is one.
async fn preview(api: &Api, repo: &str, number: u64) -> Result<Option<Value>, Failure> {
    let list = api.get("/slipway/v1/previews").await?;
    Ok(table::items(&list)
        .iter()
        .find(|p| p["repo"] == repo && p["pr"].as_u64() == Some(number))
        .cloned())
}

/// Follows the preview until it runs `sha`, printing each phase it passes through.
async fn until_ready(
    api: &Api,
    repo: &str,
    number: u64,
    sha: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let mut said = String::new();
    loop {
        if let Some(preview) = preview(api, repo, number).await? {
            let status = &preview["status"];
            let phase = table::text(status, "phase");
            let name = table::text(&preview, "namespace");
            // A preview still ready with the commit before a push is no news.
            let stale = phase == "ready" && status["deployedSha"] != sha;
            if phase != said && !stale {
                say!("  preview {name}: {phase}");
                said = phase.clone();
            }
            if phase == "ready" && status["deployedSha"] == sha {
                say!("preview ready: {}", table::text(&preview, "url"));
                return Ok(());
            }
            if phase == "failed" {
                return Err(Failure::failed(format!(
                    "the preview failed: {}",
                    table::text(status, "message")
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(Failure::failed(format!(
                "the preview of pull request #{number} is not ready yet; see slipway env list"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the preview of pull request `number` is destroyed.
async fn until_gone(api: &Api, repo: &str, number: u64, deadline: Instant) -> Result<(), Failure> {
    loop {
        match preview(api, repo, number).await? {
            Some(p) if p["status"]["phase"] != "destroyed" => {}
            _ => {
                say!("preview of pull request #{number} destroyed");
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(Failure::failed(format!(
                "the preview of pull request #{number} is still there; see slipway env list"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

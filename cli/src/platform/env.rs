//! `slipway env ...`: pull-request preview environments: list them, show one, extend or
//! destroy it, read its logs, open its URL.

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use serde_json::{Value, json};

use super::Target;
use super::api::{Api, path};
use super::parse;
use super::table::{self, Output, text};
use crate::exit::Failure;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum EnvCommand {
    /// List the previews of your squads (every squad's for administrators).
    #[command(after_help = "Example:\n  slipway env list\n  slipway env list --all -o json")]
    List {
        /// Destroyed previews too
        #[arg(long)]
        all: bool,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        target: Target,
    },
    /// Show a preview: its pull request, commit, state, URL, expiry and what it applied.
    #[command(after_help = "Example:\n  slipway env show pr-shop-42")]
    Show {
        #[arg(value_parser = parse::label)]
        name: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        target: Target,
    },
    /// Keep a preview longer: DURATION from now (the squad's TTL if left out), up to the
    /// squad's maximum.
    #[command(after_help = "Example:\n  slipway env extend pr-shop-42 12h")]
    Extend {
        #[arg(value_parser = parse::label)]
        name: String,
        /// As 30m, 12h, 7d or 1d12h
        #[arg(value_parser = parse::duration)]
        duration: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Destroy a preview now; a new push to its pull request brings it back.
    #[command(after_help = "Example:\n  slipway env destroy pr-shop-42")]
    Destroy {
        #[arg(value_parser = parse::label)]
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print the logs of every container of a preview, each line prefixed with its pod and
    /// container.
    #[command(after_help = "Example:\n  slipway env logs pr-shop-42 --tail 50 -f")]
    Logs {
        #[arg(value_parser = parse::label)]
        name: String,
        /// Only the last N lines of each container
        #[arg(long, value_name = "N")]
        tail: Option<i64>,
        /// Keep following the logs
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Print a preview's URL, and open it in a browser when one can be started.
    #[command(after_help = "Example:\n  slipway env open pr-shop-42")]
    Open {
        #[arg(value_parser = parse::label)]
        name: String,
        /// Only print the URL
        #[arg(long)]
        print: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// The preview in namespace `name` among those the caller can see.
async fn find(api: &Api, name: &str) -> Result<Value, Failure> {
    let list = api.get(&path(&["previews"])).await?;
    let found = table::items(&list)
        .iter()
        .find(|p| text(p, "namespace") == name)
        .cloned();
    let Some(preview) = found else {
        return Err(Failure::failed(format!(
            "no preview {name:?} among your squads' (see `slipway env list`)"
        )));
    };
    Ok(preview)
}

fn preview_path(preview: &Value, tail: &[&str]) -> String {
    let squad = text(preview, "squad");
    let namespace = text(preview, "namespace");
    let mut segments = vec!["squads", squad.as_str(), "previews", namespace.as_str()];
    segments.extend_from_slice(tail);
    path(&segments)
}

/// Runs one `slipway env` command.
pub(crate) async fn run(command: EnvCommand) -> Result<(), Failure> {
    match command {
        EnvCommand::List {
            all,
            output,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let mut list = api.get(&path(&["previews"])).await?;
            if !all && let Some(items) = list["items"].as_array_mut() {
                items.retain(|p| p["status"]["phase"] != "destroyed");
            }
            table::print(output, &list, |list| list_table(list, table::now()))?;
        }
        EnvCommand::Show {
            name,
            output,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let preview = find(&api, &name).await?;
            let preview = api.get(&preview_path(&preview, &[])).await?;
            table::print(output, &preview, |p| describe(p, table::now()))?;
        }
        EnvCommand::Extend {
            name,
            duration,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let preview = find(&api, &name).await?;
            let body = match duration {
                Some(seconds) => json!({ "duration": parse::format_duration(seconds) }),
                None => json!({}),
            };
            let answer = api
                .post(&preview_path(&preview, &["extend"]), &body)
                .await?;
            say!(
                "preview {name} now expires at {}",
                answer["status"]["expiresAt"].as_str().unwrap_or("?")
            );
        }
        EnvCommand::Destroy { name, target } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let preview = find(&api, &name).await?;
            api.delete(&preview_path(&preview, &[])).await?;
            say!("preview {name} is being destroyed");
        }
        EnvCommand::Logs {
            name,
            tail,
            follow,
            target,
        } => {
            if tail.is_some_and(|t| t < 0) {
                return Err(Failure::bad_input("--tail must not be negative"));
            }
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            find(&api, &name).await?;
            logs(&api, &name, tail, follow).await?;
        }
        EnvCommand::Open {
            name,
            print,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let preview = find(&api, &name).await?;
            let Some(url) = preview["status"]["url"].as_str().map(str::to_owned) else {
                return Err(Failure::failed(format!(
                    "preview {name} has no URL ({})",
                    preview["status"]["phase"].as_str().unwrap_or("unknown")
                )));
            };
            say!("{url}");
            if !print {
                open(&url);
            }
        }
    }
    Ok(())
}

/// Starts a browser on `url` if the desktop has an opener; silently does nothing otherwise
/// (the URL was printed).
fn open(url: &str) {
    let has_display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if has_display {
        let _ = std::process::Command::new("xdg-open")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

async fn logs(api: &Api, namespace: &str, tail: Option<i64>, follow: bool) -> Result<(), Failure> {
    let pods = kube::Api::<Pod>::namespaced(api.client().clone(), namespace);
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| Failure::failed(format!("listing the preview's pods: {e}")))?;
    let mut streams = Vec::new();
    for pod in &list.items {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        for container in pod.spec.iter().flat_map(|s| &s.containers) {
            let params = LogParams {
                container: Some(container.name.clone()),
                tail_lines: tail,
                follow,
                ..LogParams::default()
            };
            let prefix = format!("[{pod_name}/{}] ", container.name);
            let lines = pods
                .log_stream(&pod_name, &params)
                .await
                .map_err(|e| {
                    Failure::failed(format!("logs of {pod_name}/{}: {e}", container.name))
                })?
                .lines()
                .map_ok(move |line| format!("{prefix}{line}"));
            streams.push(lines.boxed());
        }
    }
    if streams.is_empty() {
        say!("preview {namespace} has no pods");
        return Ok(());
    }
    let mut all = futures::stream::select_all(streams);
    while let Some(line) = all.next().await {
        match line {
            Ok(line) => say!("{line}"),
            Err(e) => return Err(Failure::failed(format!("reading logs: {e}"))),
        }
    }
    Ok(())
}

fn expires_in(preview: &Value, now: i64) -> String {
    let status = &preview["status"];
    if status["pinned"] == true {
        return "pinned".to_owned();
    }
    match status["expiresAt"].as_str().and_then(table::seconds) {
        Some(at) if at > now => table::human(at - now),
        Some(_) => "expired".to_owned(),
        None => String::new(),
    }
}

fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

fn list_table(list: &Value, now: i64) -> String {
    let rows: Vec<Vec<String>> = table::items(list)
        .iter()
        .map(|p| {
            let status = &p["status"];
            vec![
                text(p, "namespace"),
                text(p, "squad"),
                text(p, "repo"),
                p["pr"].to_string(),
                short(&text(status, "headSha")),
                text(status, "phase"),
                text(status, "url"),
                expires_in(p, now),
            ]
        })
        .collect();
    table::render(
        &[
            "name",
            "squad",
            "repo",
            "pr",
            "sha",
            "status",
            "url",
            "expires-in",
        ],
        &rows,
    )
}

fn describe(p: &Value, now: i64) -> String {
    let status = &p["status"];
    let applied: Vec<String> = status["applied"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{} {}", text(a, "kind"), text(a, "name")))
        .collect();
    let lines = [
        ("Name", text(p, "namespace")),
        ("Squad", text(p, "squad")),
        ("Repository", text(p, "repo")),
        ("Pull request", p["pr"].to_string()),
        ("Branch", text(status, "headRef")),
        ("Head", text(status, "headSha")),
        ("Deployed", text(status, "deployedSha")),
        ("Status", text(status, "phase")),
        ("Message", text(status, "message")),
        ("URL", text(status, "url")),
        ("Expires", text(status, "expiresAt")),
        ("Expires in", expires_in(p, now)),
        ("Fork", status["fork"].to_string()),
        ("Applied", applied.join(", ")),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in lines {
        let value = if value.is_empty() {
            "<none>".to_owned()
        } else {
            value
        };
        out.push_str(&format!("{:width$} {value}\n", format!("{key}:")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_the_columns_users_ask_for() {
        let now = 1_800_000_000;
        let list = json!({ "items": [{
            "namespace": "pr-shop-4", "squad": "web", "repo": "acme/shop", "pr": 4,
            "status": {
                "phase": "ready", "headSha": "0123456789", "url": "http://pr-shop-4.preview.localhost:8080/",
                "expiresAt": "2027-01-15T09:30:00Z", "pinned": false,
            },
        }]});
        let table = list_table(&list, now);
        assert!(
            table.starts_with("NAME        SQUAD   REPO        PR   SHA       STATUS   URL"),
            "{table}"
        );
        assert!(table.contains("pr-shop-4   web     acme/shop   4    0123456   ready    http://pr-shop-4.preview.localhost:8080/   90m"), "{table}");
    }
}

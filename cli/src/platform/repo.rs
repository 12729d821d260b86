//! `slipway repo ...`: the GitHub repositories a squad gets previews for, with the secret
//! their webhooks are signed with and the credentials the platform calls GitHub with.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Target;
use super::api::{Api, path};
use super::parse;
use super::table::{self, Output, text};
use crate::exit::Failure;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RepoCommand {
    /// Register a repository for a squad's previews (squad owners and administrators).
    #[command(after_help = "Examples:\n  \
        slipway repo add acme/shop --squad web --webhook-secret-file hook.secret --token-file gh.token\n  \
        slipway repo add acme/shop --squad web --webhook-secret-file hook.secret \\\n    \
        --app-id 12345 --private-key-file app.pem\n\n\
        Then add a webhook to the repository on GitHub: payload URL https://<server>/webhooks/github,\n\
        content type application/json, the same secret, events \"Pull requests\" and \"Issue comments\".")]
    Add(AddArgs),
    /// List the repositories of a squad, or of every squad you can see.
    #[command(after_help = "Example:\n  slipway repo list --squad web")]
    List {
        /// Only this squad's
        #[arg(long, value_parser = parse::label)]
        squad: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        target: Target,
    },
    /// Stop previews for a repository; refused while it has live previews.
    #[command(after_help = "Example:\n  slipway repo remove acme/shop --squad web")]
    Remove {
        #[arg(value_parser = full_name)]
        repo: (String, String),
        #[arg(long, value_parser = parse::label)]
        squad: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// The repository, as OWNER/NAME
    #[arg(value_parser = full_name)]
    repo: (String, String),
    /// The squad whose previews they are
    #[arg(long, value_parser = parse::label)]
    squad: String,
    /// A file holding the webhook's secret (as set on GitHub)
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: PathBuf,
    /// A file holding a GitHub token with contents:read, pull_requests:write,
    /// issues:write, deployments:write and statuses:write
    #[arg(long, value_name = "FILE", conflicts_with_all = ["app_id", "private_key_file"])]
    token_file: Option<PathBuf>,
    /// A GitHub App's id (with --private-key-file), installed on the repository
    #[arg(long, value_name = "ID", requires = "private_key_file")]
    app_id: Option<u64>,
    /// The GitHub App's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "app_id")]
    private_key_file: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

/// `OWNER/NAME`, each part a GitHub name.
fn full_name(text: &str) -> Result<(String, String), String> {
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 100
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && part != "."
            && part != ".."
    };
    match text.split_once('/') {
        Some((owner, name)) if part_ok(owner) && part_ok(name) => {
            Ok((owner.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{text:?} is not a repository (OWNER/NAME)")),
    }
}

/// A secret from a file, without its trailing newline; empty is bad input.
fn secret(file: &Path, what: &str) -> Result<String, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::bad_input(format!("{what}: cannot read {}: {e}", file.display())))?;
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.trim().is_empty() {
        return Err(Failure::bad_input(format!(
            "{what}: {} is empty",
            file.display()
        )));
    }
    Ok(text)
}

impl AddArgs {
    fn body(&self) -> Result<Value, Failure> {
        let webhook_secret = secret(&self.webhook_secret_file, "--webhook-secret-file")?;
        let access = match (&self.token_file, self.app_id, &self.private_key_file) {
            (Some(file), None, None) => json!({ "token": secret(file, "--token-file")? }),
            (None, Some(app_id), Some(key)) => json!({ "app": {
                "appId": app_id,
                "privateKey": secret(key, "--private-key-file")?,
            }}),
            _ => {
                return Err(Failure::bad_input(
                    "give GitHub credentials: --token-file, or --app-id with --private-key-file",
                ));
            }
        };
        Ok(json!({
            "owner": self.repo.0,
            "name": self.repo.1,
            "webhookSecret": webhook_secret,
            "access": access,
        }))
    }
}

/// The squads whose repositories the caller lists: the one asked for, else every squad for
/// an administrator and the caller's own squads for anyone else.
async fn squads(api: &Api, squad: Option<String>) -> Result<Vec<String>, Failure> {
    if let Some(squad) = squad {
        return Ok(vec![squad]);
    }
    let me = api.whoami_or("the server refused the credentials").await?;
    if me
        .groups
        .iter()
        .any(|g| g == "slipway:admins" || g == "system:masters")
    {
        let list = api.get(&path(&["squads"])).await?;
        return Ok(table::items(&list)
            .iter()
            .map(|s| text(s, "name"))
            .collect());
    }
    Ok(me
        .groups
        .iter()
        .filter_map(|g| g.strip_prefix("squad:"))
        .map(str::to_owned)
        .collect())
}

/// Runs one `slipway repo` command.
pub(crate) async fn run(command: RepoCommand) -> Result<(), Failure> {
    match command {
        RepoCommand::Add(args) => {
            let body = args.body()?;
            let api = Api::from_kubeconfig(args.target.kubeconfig)?;
            api.post(&path(&["squads", &args.squad, "repos"]), &body)
                .await?;
            say!(
                "repository {}/{} added to squad {}; its webhook URL is <server>/webhooks/github",
                args.repo.0,
                args.repo.1,
                args.squad
            );
        }
        RepoCommand::List {
            squad,
            output,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let mut items = Vec::new();
            for squad in squads(&api, squad).await? {
                let list = api.get(&path(&["squads", &squad, "repos"])).await?;
                items.extend(table::items(&list).iter().cloned());
            }
            let list = json!({ "items": items });
            table::print(output, &list, |list| list_table(list, table::now()))?;
        }
        RepoCommand::Remove {
            repo: (owner, name),
            squad,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            api.delete(&path(&["squads", &squad, "repos", &owner, &name]))
                .await?;
            say!("repository {owner}/{name} removed from squad {squad}");
        }
    }
    Ok(())
}

fn list_table(list: &Value, now: i64) -> String {
    let rows: Vec<Vec<String>> = table::items(list)
        .iter()
        .map(|repo| {
            vec![
                format!("{}/{}", text(repo, "owner"), text(repo, "name")),
                text(repo, "squad"),
                text(repo, "access"),
                table::age(repo["createdAt"].as_str(), now),
            ]
        })
        .collect();
    table::render(&["repo", "squad", "access", "age"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_owner_slash_name() {
        assert_eq!(full_name("acme/shop"), Ok(("acme".into(), "shop".into())));
        for bad in [
            "acme",
            "acme/",
            "/shop",
            "a/b/c",
            "acme/../x",
            "ac me/shop",
            "acme/..",
        ] {
            assert!(full_name(bad).is_err(), "{bad}");
        }
    }
}

//! `slipway token ...`: a user's API tokens. The secret is shown once, when it is made;
//! the server keeps only what identifies it.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::Target;
use super::api::{Api, path};
use super::kubeconfig_edit::{self, Entry};
use super::parse;
use super::table::{self, Output, text};
use crate::exit::Failure;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token for a user (yourself by default) and print it, once.
    #[command(
        after_help = "Examples:\n  slipway token create --description 'CI deploys' --expires-in 30d\n  \
        slipway token create --user ana --expires-in 7d --write-kubeconfig ana.kubeconfig"
    )]
    Create(CreateArgs),
    /// List a user's tokens (yourself by default); their secrets are never shown.
    #[command(after_help = "Example:\n  slipway token list --user ana")]
    List {
        /// Whose tokens [default: yours]
        #[arg(long, value_name = "NAME", value_parser = parse::plain_name)]
        user: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a token: every request with it is refused from now on.
    #[command(after_help = "Example:\n  slipway token revoke 3f9c2a --user ana")]
    Revoke {
        /// The token's ID, as `token list` shows it
        #[arg(value_parser = parse::plain_name)]
        id: String,
        /// Whose token [default: yours]
        #[arg(long, value_name = "NAME", value_parser = parse::plain_name)]
        user: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// Whose token [default: yours]
    #[arg(long, value_name = "NAME", value_parser = parse::plain_name)]
    user: Option<String>,
    /// What the token is for, shown by `token list`
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// When the token stops working, as 30m, 12h, 7d or 1d12h [default: the server's]
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    expires_in: Option<u64>,
    /// Also write a kubeconfig for the user with the new token (owner-only)
    #[arg(long, value_name = "PATH")]
    write_kubeconfig: Option<PathBuf>,
    /// Replace the file --write-kubeconfig names if it exists
    #[arg(long, requires = "write_kubeconfig")]
    force: bool,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    target: Target,
}

/// Runs one `slipway token` command.
pub(crate) async fn run(command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Create(args) => create(args).await,
        TokenCommand::List {
            user,
            output,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let user = user_or_caller(&api, user).await?;
            let list = api.get(&path(&["users", &user, "tokens"])).await?;
            table::print(output, &list, |list| list_table(list, table::now()))
        }
        TokenCommand::Revoke { id, user, target } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let user = user_or_caller(&api, user).await?;
            api.delete(&path(&["users", &user, "tokens", &id])).await?;
            say!("token {id} of {user} revoked");
            Ok(())
        }
    }
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    // Refused before the token exists, so a taken path does not leave a token behind.
    if let Some(file) = &args.write_kubeconfig
        && !args.force
        && file.exists()
    {
        return Err(Failure::bad_input(format!(
            "{} exists; pass --force to replace it",
            file.display()
        )));
    }
    let kubeconfig = crate::kubeconfig::locate(args.target.kubeconfig)?;
    let current = crate::kubeconfig::current(&kubeconfig)?;
    let api = Api::new(crate::remote::client(
        &current.server,
        &current.token,
        current.ca_pem.as_deref(),
    )?);
    let user = user_or_caller(&api, args.user).await?;
    let mut body = Map::new();
    if let Some(description) = args.description {
        body.insert("description".into(), description.into());
    }
    if let Some(seconds) = args.expires_in {
        body.insert("expiresInSeconds".into(), seconds.into());
    }
    let created = api
        .post(&path(&["users", &user, "tokens"]), &body.into())
        .await?;
    let id = text(&created, "id");
    let secret = text(&created, "token");
    if secret.is_empty() {
        return Err(Failure::failed(format!(
            "the server made token {id} for {user} but sent no secret; revoke it with \
             `slipway token revoke {id} --user {user}`"
        )));
    }
    if let Some(file) = &args.write_kubeconfig {
        let name = format!("slipway-{user}");
        let entry = Entry {
            name: &name,
            server: &current.server,
            ca_pem: current.ca_pem.as_deref(),
            token: &secret,
        };
        kubeconfig_edit::merge(None, &entry)
            .map_err(|e| Failure::failed(format!("cannot make the kubeconfig: {e}")))
            .and_then(|text| {
                kubeconfig_edit::write_private(file, &text, args.force).map_err(|e| {
                    Failure::failed(format!(
                        "made token {id} for {user} but cannot write {}: {e}; revoke it with \
                         `slipway token revoke {id} --user {user}`",
                        file.display()
                    ))
                })
            })?;
    }
    match args.output {
        Output::Table => say!("{secret}"),
        json_or_yaml => table::print(json_or_yaml, &created, |_| String::new())?,
    }
    // On stderr, so that `TOKEN=$(slipway token create)` captures the token alone.
    let expires = created["expiresAt"].as_str().unwrap_or("never");
    eprintln!("token {id} for {user} (expires {expires}); it will not be shown again, keep it now");
    if let Some(file) = &args.write_kubeconfig {
        eprintln!(
            "wrote {} (context slipway-{user}); use it with --kubeconfig or KUBECONFIG",
            file.display()
        );
    }
    Ok(())
}

/// `user`, or the caller as the server knows them.
async fn user_or_caller(api: &Api, user: Option<String>) -> Result<String, Failure> {
    match user {
        Some(user) => Ok(user),
        None => Ok(api.whoami().await?.username),
    }
}

fn list_table(list: &Value, now: i64) -> String {
    let rows: Vec<Vec<String>> = table::items(list)
        .iter()
        .map(|token| {
            let expires = token["expiresAt"].as_str();
            let status = if token["revokedAt"].as_str().is_some() {
                "revoked"
            } else if expires.and_then(table::seconds).is_some_and(|at| at <= now) {
                "expired"
            } else {
                "active"
            };
            vec![
                text(token, "id"),
                text(token, "description"),
                status.into(),
                expires.unwrap_or("never").into(),
                table::age(token["createdAt"].as_str(), now),
            ]
        })
        .collect();
    table::render(&["ID", "DESCRIPTION", "STATUS", "EXPIRES", "AGE"], &rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_tokens_without_secrets() {
        let list = json!({"items": [
            {"id": "a1", "user": "ana", "description": "CI", "createdAt": "1970-01-01T00:00:00Z",
             "expiresAt": "1970-01-02T00:00:00Z", "revokedAt": null, "token": "never-shown"},
            {"id": "b2", "user": "ana", "createdAt": "1970-01-01T00:00:00Z",
             "expiresAt": "1970-01-01T00:01:00Z"},
            {"id": "c3", "user": "ana", "createdAt": "1970-01-01T00:00:00Z",
             "revokedAt": "1970-01-01T00:01:00Z"},
        ]});
        assert_eq!(
            list_table(&list, 90),
            "ID   DESCRIPTION   STATUS    EXPIRES                AGE\n\
             a1   CI            active    1970-01-02T00:00:00Z   90s\n\
             b2   <none>        expired   1970-01-01T00:01:00Z   90s\n\
             c3   <none>        revoked   never                  90s\n"
        );
    }
}

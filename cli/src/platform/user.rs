//! `slipway user ...`: the people the server knows, and whether they administer it.

use serde_json::{Value, json};

use super::Target;
use super::api::{Api, path};
use super::parse;
use super::table::{self, Output, text};
use crate::exit::Failure;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user; `slipway token create --user NAME` then gives them a token.
    #[command(
        after_help = "Example:\n  slipway user create ana\n  slipway user create root --admin"
    )]
    Create {
        #[arg(value_parser = parse::plain_name)]
        name: String,
        /// Administer the whole server, every squad included
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List the users and their squads.
    #[command(after_help = "Example:\n  slipway user list -o yaml")]
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user, their tokens and their squad memberships.
    #[command(after_help = "Example:\n  slipway user delete ana")]
    Delete {
        #[arg(value_parser = parse::plain_name)]
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Runs one `slipway user` command.
pub(crate) async fn run(command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Create {
            name,
            admin,
            target,
        } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            api.post(&path(&["users"]), &json!({"name": name, "admin": admin}))
                .await?;
            let what = if admin { "admin user" } else { "user" };
            say!("{what} {name} created");
        }
        UserCommand::List { output, target } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            let list = api.get(&path(&["users"])).await?;
            table::print(output, &list, |list| list_table(list, table::now()))?;
        }
        UserCommand::Delete { name, target } => {
            let api = Api::from_kubeconfig(target.kubeconfig)?;
            api.delete(&path(&["users", &name])).await?;
            say!("user {name} deleted");
        }
    }
    Ok(())
}

fn list_table(list: &Value, now: i64) -> String {
    let rows: Vec<Vec<String>> = table::items(list)
        .iter()
        .map(|user| {
            let squads: Vec<String> = user["squads"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| format!("{}({})", text(s, "squad"), text(s, "role")))
                .collect();
            vec![
                text(user, "name"),
                user["admin"].as_bool().unwrap_or_default().to_string(),
                squads.join(","),
                table::age(user["createdAt"].as_str(), now),
            ]
        })
        .collect();
    table::render(&["NAME", "ADMIN", "SQUADS", "AGE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_users_with_their_squads() {
        let list = json!({"items": [
            {"name": "ana", "admin": false, "createdAt": "1970-01-01T00:00:00Z",
             "squads": [{"squad": "web", "role": "owner"}, {"squad": "api", "role": "member"}]},
            {"name": "root", "admin": true, "createdAt": "1970-01-01T00:00:00Z", "squads": []},
        ]});
        assert_eq!(
            list_table(&list, 400),
            "NAME   ADMIN   SQUADS                   AGE\n\
             ana    false   web(owner),api(member)   6m40s\n\
             root   true    <none>                   6m40s\n"
        );
    }
}

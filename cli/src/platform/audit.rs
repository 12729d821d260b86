//! `slipway audit`: who changed squads, users, memberships and tokens, and when, newest
//! first, from the platform's audit log.

use serde_json::Value;

use super::Target;
use super::api::{Api, path};
use super::table::{self, Output, text};
use crate::exit::Failure;

/// The most entries the server gives in one answer.
const MOST: u32 = 1000;

/// The arguments of `slipway audit`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  slipway audit --limit 20\n  slipway audit -o json")]
pub(crate) struct AuditArgs {
    /// How many entries, newest first (at most 1000)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(MOST)))]
    limit: u32,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    target: Target,
}

/// Runs `slipway audit`.
pub(crate) async fn audit(args: AuditArgs) -> Result<(), Failure> {
    let api = Api::from_kubeconfig(args.target.kubeconfig)?;
    let log = api
        .get(&format!("{}?limit={}", path(&["audit"]), args.limit))
        .await?;
    table::print(args.output, &log, entries_table)
}

fn entries_table(log: &Value) -> String {
    let rows: Vec<Vec<String>> = table::items(log)
        .iter()
        .map(|entry| {
            vec![
                text(entry, "at"),
                text(entry, "actor"),
                text(entry, "action"),
                text(entry, "target"),
            ]
        })
        .collect();
    table::render(&["TIME", "ACTOR", "ACTION", "TARGET"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_who_did_what_when() {
        let log = json!({"items": [
            {"id": 2, "at": "2026-11-28T10:00:05Z", "actor": "admin", "action": "squad.create",
             "target": "squads/web", "detail": {}},
            {"id": 1, "at": "2026-11-28T10:00:00Z", "actor": "admin", "action": "user.create",
             "target": "users/ana", "detail": {"admin": false}},
        ]});
        assert_eq!(
            entries_table(&log),
            "TIME                   ACTOR   ACTION         TARGET\n\
             2026-11-28T10:00:05Z   admin   squad.create   squads/web\n\
             2026-11-28T10:00:00Z   admin   user.create    users/ana\n"
        );
    }
}

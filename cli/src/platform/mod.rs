//! `slipway squad|user|token|login|whoami|audit|repo|env|demo`: squads, users and their
//! API tokens, repositories and their preview environments, and the demo's pull requests,
//! through the API server's `/slipway/v1` endpoints with the kubeconfig's credentials.

mod api;
mod audit;
mod demo;
mod env;
mod kubeconfig_edit;
mod login;
mod parse;
mod repo;
mod squad;
mod table;
mod token;
mod user;

use std::path::PathBuf;

pub(crate) use audit::{AuditArgs, audit};
pub(crate) use demo::{DemoCommand, run as demo};
pub(crate) use env::{EnvCommand, run as env};
pub(crate) use login::{LoginArgs, login, whoami};
pub(crate) use repo::{RepoCommand, run as repo};
pub(crate) use squad::{SquadCommand, run as squad};
pub(crate) use table::{Output, human};
pub(crate) use token::{TokenCommand, run as token};
pub(crate) use user::{UserCommand, run as user};

use crate::exit::Failure;

/// Which server a command talks to, and as whom.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The kubeconfig to use [default: $KUBECONFIG, ~/.kube/config, or the admin
    /// kubeconfig of `slipway up`]
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

/// Repeated KEY=VALUE entries as the `hard` object of a quota; a key given twice is bad
/// input rather than a silent last-one-wins.
fn hard(entries: &[(String, String)], what: &str) -> Result<serde_json::Value, Failure> {
    let mut hard = serde_json::Map::new();
    for (key, value) in entries {
        if hard.insert(key.clone(), value.as_str().into()).is_some() {
            return Err(Failure::bad_input(format!("{what}: {key} is given twice")));
        }
    }
    Ok(hard.into())
}

//! `slipway login` and `slipway whoami`: keeping a token in a kubeconfig once the server
//! has accepted it, and asking the server whose token a kubeconfig holds.

use std::path::PathBuf;

use serde_json::json;

use super::Target;
use super::api::Api;
use super::kubeconfig_edit::{self, Entry};
use super::table::{self, Output};
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  slipway login --server https://slipway.example.com:6443 \
    --token-file ~/ana.token --ca-file ca.crt\n  \
    slipway login --server http://127.0.0.1:6443 --token \"$TOKEN\" --context dev"
)]
pub(crate) struct LoginArgs {
    /// The API server, https://HOST:PORT (or http:// on loopback)
    #[arg(long, value_name = "URL")]
    server: String,
    /// Your token (visible to other users of this machine in the process list: prefer
    /// --token-file)
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with = "token_file",
        required_unless_present = "token_file"
    )]
    token: Option<String>,
    /// A file holding your token
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The CA an https:// server's certificate must chain to; it is copied into the
    /// kubeconfig
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The kubeconfig to add the context to [default: $KUBECONFIG, or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The name of the context, cluster and user entries [default: slipway-USER]
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

/// Checks the token with the server, then adds it to the kubeconfig as the current context.
pub(crate) async fn login(args: LoginArgs) -> Result<(), Failure> {
    let token = match (args.token, &args.token_file) {
        (Some(token), _) => token,
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", file.display())))?,
        (None, None) => {
            return Err(Failure::bad_input(
                "a token is needed: --token or --token-file",
            ));
        }
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(Failure::bad_input("the token is empty"));
    }
    if args.context.as_ref().is_some_and(|c| c.trim().is_empty()) {
        return Err(Failure::bad_input("--context is empty"));
    }
    let ca = match &args.ca_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", file.display())))?,
        ),
        None => None,
    };
    let path = write_location(args.kubeconfig)?;
    let api = Api::new(crate::remote::client(&args.server, token, ca.as_deref())?);
    let me = api.whoami_or("the server refused the token").await?;
    let name = args
        .context
        .unwrap_or_else(|| format!("slipway-{}", me.username));
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Failure::bad_input(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let entry = Entry {
        name: &name,
        server: &args.server,
        ca_pem: ca.as_deref(),
        token,
    };
    let merged = kubeconfig_edit::merge(existing.as_deref(), &entry)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    kubeconfig_edit::write_private(&path, &merged, true)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
    say!("logged in to {} as {}", args.server, me.username);
    if !me.groups.is_empty() {
        say!("groups: {}", me.groups.join(", "));
    }
    say!("context {name} in {} is now current", path.display());
    Ok(())
}

/// Where `login` writes: the flag, the first entry of `$KUBECONFIG`, or `~/.kube/config`
/// (made if absent). Never the admin kubeconfig, which the server rewrites.
fn write_location(flag: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(path) = flag {
        return Ok(path);
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|k| std::env::split_paths(&k).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".kube/config"))
        .ok_or_else(|| Failure::bad_input("no HOME to keep ~/.kube/config in: pass --kubeconfig"))
}

/// Prints who the server takes the kubeconfig's token for.
pub(crate) async fn whoami(output: Output, target: Target) -> Result<(), Failure> {
    let api = Api::from_kubeconfig(target.kubeconfig)?;
    let me = api.whoami().await?;
    let value = json!({"username": me.username, "groups": me.groups});
    table::print(output, &value, |_| {
        table::render(
            &["ATTRIBUTE", "VALUE"],
            &[
                vec!["Username".into(), me.username.clone()],
                vec!["Groups".into(), format!("[{}]", me.groups.join(" "))],
            ],
        )
    })
}

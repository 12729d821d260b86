//! Which server, as whom and in which namespace a client command works: `--kubeconfig`
//! (found as every command finds it), `--context` (the current one unless named) and `-n`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_yaml_ng::Value;

use crate::exit::Failure;

/// The kubeconfig, context and namespace flags every client command takes.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The kubeconfig to use [default: $KUBECONFIG, ~/.kube/config, or the admin
    /// kubeconfig of `slipway up`]
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: its current context]
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// The namespace [default: the context's namespace, or default]
    #[arg(short, long, value_name = "NAMESPACE")]
    namespace: Option<String>,
}

/// A connected client and the namespace commands work in.
pub(super) struct Session {
    pub(super) client: kube::Client,
    pub(super) namespace: String,
    /// Whether `-n` named the namespace (an object naming another one is then an error).
    pub(super) namespace_given: bool,
}

impl Target {
    pub(super) fn connect(&self) -> Result<Session, Failure> {
        let path = crate::kubeconfig::locate(self.kubeconfig.clone())?;
        let client = match &self.context {
            None => crate::kubeconfig::client(&path)?,
            Some(name) => named_client(&path, name)?,
        };
        if self.namespace.as_deref().is_some_and(str::is_empty) {
            return Err(Failure::bad_input("--namespace is empty"));
        }
        let namespace = match &self.namespace {
            Some(namespace) => namespace.clone(),
            None => context_namespace(&path, self.context.as_deref())
                .unwrap_or_else(|| "default".to_owned()),
        };
        Ok(Session {
            client,
            namespace,
            namespace_given: self.namespace.is_some(),
        })
    }
}

fn read(path: &Path) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::bad_input(format!(
            "cannot read the kubeconfig {}: {e} (pass --kubeconfig)",
            path.display()
        ))
    })?;
    serde_yaml_ng::from_str(&text)
        .map_err(|e| Failure::bad_input(format!("{} is not a kubeconfig: {e}", path.display())))
}

/// The entry called `name` in the kubeconfig's list `list` (`clusters`, `users`,
/// `contexts`), as its inner mapping (`cluster`, `user`, `context`).
fn entry<'a>(config: &'a Value, list: &str, inner: &str, name: &str) -> Option<&'a Value> {
    config
        .get(list)?
        .as_sequence()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
        .get(inner)
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The namespace the context (the current one unless named) sets, if any; an unreadable
/// kubeconfig has already failed to give a client by now.
fn context_namespace(path: &Path, context: Option<&str>) -> Option<String> {
    let config = read(path).ok()?;
    let name = match context {
        Some(name) => name,
        None => text(&config, "current-context")?,
    };
    let namespace = text(entry(&config, "contexts", "context", name)?, "namespace")?;
    (!namespace.is_empty()).then(|| namespace.to_owned())
}

/// A client of the context called `name`: its cluster's server and CA, its user's token.
fn named_client(path: &Path, name: &str) -> Result<kube::Client, Failure> {
    let shown = path.display();
    let config = read(path)?;
    let context = entry(&config, "contexts", "context", name)
        .ok_or_else(|| Failure::bad_input(format!("{shown}: no context {name:?}")))?;
    let cluster_name = text(context, "cluster").unwrap_or_default();
    let cluster = entry(&config, "clusters", "cluster", cluster_name)
        .ok_or_else(|| Failure::bad_input(format!("{shown}: no cluster {cluster_name:?}")))?;
    let user_name = text(context, "user").unwrap_or_default();
    let user = entry(&config, "users", "user", user_name);
    let token = match (
        user.and_then(|u| text(u, "token")),
        user.and_then(|u| text(u, "tokenFile")),
    ) {
        (Some(token), _) => token.to_owned(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| Failure::bad_input(format!("cannot read {file}: {e}")))?
            .trim()
            .to_owned(),
        (None, None) => {
            return Err(Failure::bad_input(format!(
                "{shown}: user {user_name:?} has no token"
            )));
        }
    };
    let server = text(cluster, "server").ok_or_else(|| {
        Failure::bad_input(format!("{shown}: cluster {cluster_name:?} has no server"))
    })?;
    let ca = match (
        text(cluster, "certificate-authority-data"),
        text(cluster, "certificate-authority"),
    ) {
        (Some(data), _) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Failure::bad_input(format!(
                        "{shown}: certificate-authority-data is not base64 PEM"
                    ))
                })?,
        ),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| Failure::bad_input(format!("cannot read {file}: {e}")))?,
        ),
        (None, None) => None,
    };
    crate::remote::client(server, &token, ca.as_deref())
}

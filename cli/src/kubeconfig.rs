//! The kubeconfig client commands read: `--kubeconfig`, else `$KUBECONFIG`, else
//! `~/.kube/config`, else the admin kubeconfig `slipway up` writes. Its current context
//! gives the server, the CA (inline or a file) and the bearer token.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::exit::Failure;

#[derive(Deserialize)]
struct Config {
    #[serde(rename = "current-context", default)]
    current_context: String,
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(rename = "certificate-authority")]
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct User {
    token: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: String,
}

/// Where the kubeconfig is: the flag, `$KUBECONFIG` (first entry), `~/.kube/config`, or
/// the admin kubeconfig in the default data directory.
pub(crate) fn locate(flag: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(path) = flag {
        return Ok(path);
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|k| std::env::split_paths(&k).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let path = PathBuf::from(home).join(".kube/config");
        if path.exists() {
            return Ok(path);
        }
    }
    Ok(crate::up::default_data_dir()?.join("admin.kubeconfig"))
}

/// What the current context of a kubeconfig names: its server, the CA to verify it by, and
/// the bearer token.
pub(crate) struct Current {
    pub(crate) server: String,
    pub(crate) ca_pem: Option<String>,
    pub(crate) token: String,
}

/// A client of the current context's server.
pub(crate) fn client(path: &Path) -> Result<kube::Client, Failure> {
    let current = current(path)?;
    crate::remote::client(&current.server, &current.token, current.ca_pem.as_deref())
}

/// Reads the current context of the kubeconfig at `path`.
pub(crate) fn current(path: &Path) -> Result<Current, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::bad_input(format!(
            "cannot read the kubeconfig {}: {e} (pass --kubeconfig)",
            path.display()
        ))
    })?;
    let config: Config = serde_yaml_ng::from_str(&text)
        .map_err(|e| Failure::bad_input(format!("{} is not a kubeconfig: {e}", path.display())))?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == config.current_context)
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "{}: the current context {:?} is not defined",
                path.display(),
                config.current_context
            ))
        })?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.value.cluster)
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "{}: no cluster {:?}",
                path.display(),
                context.value.cluster
            ))
        })?;
    let token = config
        .users
        .iter()
        .find(|u| u.name == context.value.user)
        .and_then(|u| u.value.token.clone())
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "{}: user {:?} has no token",
                path.display(),
                context.value.user
            ))
        })?;
    let ca = match (&cluster.value.ca_data, &cluster.value.ca_file) {
        (Some(data), _) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Failure::bad_input(format!(
                        "{}: certificate-authority-data is not base64 PEM",
                        path.display()
                    ))
                })?,
        ),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", file.display())))?,
        ),
        (None, None) => None,
    };
    Ok(Current {
        server: cluster.value.server.clone(),
        ca_pem: ca,
        token,
    })
}

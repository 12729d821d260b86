//! The kubeconfig client commands read: `--kubeconfig`, else `$KUBECONFIG`, else
//! `~/.kube/config`, else the admin kubeconfig `slipway up` writes. Its current context (or
//! one named) gives the server, the CA (inline or a file), the bearer token (inline or a
//! file) and the namespace.

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
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: String,
    #[serde(default)]
    namespace: Option<String>,
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

/// What a context of a kubeconfig names: its server, the CA to verify it by, the bearer
/// token and the namespace, if it sets one.
pub(crate) struct Current {
    pub(crate) server: String,
    pub(crate) ca_pem: Option<String>,
    pub(crate) token: String,
    pub(crate) namespace: Option<String>,
}

impl Current {
    /// A client of the context's server.
    pub(crate) fn client(&self) -> Result<kube::Client, Failure> {
        crate::remote::client(&self.server, &self.token, self.ca_pem.as_deref())
    }
}

/// A client of the current context's server.
pub(crate) fn client(path: &Path) -> Result<kube::Client, Failure> {
    current(path)?.client()
}

/// Reads the current context of the kubeconfig at `path`.
pub(crate) fn current(path: &Path) -> Result<Current, Failure> {
    context(path, None)
}

/// Reads the context called `name` of the kubeconfig at `path`, or its current one.
pub(crate) fn context(path: &Path, name: Option<&str>) -> Result<Current, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::bad_input(format!(
            "cannot read the kubeconfig {}: {e} (pass --kubeconfig)",
            path.display()
        ))
    })?;
    let config: Config = serde_yaml_ng::from_str(&text)
        .map_err(|e| Failure::bad_input(format!("{} is not a kubeconfig: {e}", path.display())))?;
    let wanted = name.unwrap_or(&config.current_context);
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == wanted)
        .ok_or_else(|| {
            Failure::bad_input(match name {
                Some(name) => format!("{}: no context {name:?}", path.display()),
                None => format!(
                    "{}: the current context {wanted:?} is not defined",
                    path.display()
                ),
            })
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
    let user = config
        .users
        .iter()
        .find(|u| u.name == context.value.user)
        .map(|u| &u.value);
    let token = match user.map(|u| (&u.token, &u.token_file)) {
        Some((Some(token), _)) => token.clone(),
        Some((None, Some(file))) => std::fs::read_to_string(file)
            .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", file.display())))?
            .trim()
            .to_owned(),
        _ => {
            return Err(Failure::bad_input(format!(
                "{}: user {:?} has no token",
                path.display(),
                context.value.user
            )));
        }
    };
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
        namespace: context.value.namespace.clone().filter(|n| !n.is_empty()),
    })
}

//! Which server, as whom and in which namespace a client command works: `--kubeconfig`
//! (found as every command finds it), `--context` (the current one unless named) and `-n`.

use std::path::PathBuf;

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
        let context = crate::kubeconfig::context(&path, self.context.as_deref())?;
        if self.namespace.as_deref().is_some_and(str::is_empty) {
            return Err(Failure::bad_input("--namespace is empty"));
        }
        let namespace = match &self.namespace {
            Some(namespace) => namespace.clone(),
            None => context
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
        };
        Ok(Session {
            client: context.client()?,
            namespace,
            namespace_given: self.namespace.is_some(),
        })
    }
}

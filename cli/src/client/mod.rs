//! kubectl-grade client commands (`apply`, `get`, `describe`, `delete`, `logs`, `scale`,
//! `rollout`, `exec`, `port-forward`, `top`) over the Kubernetes API with the kubeconfig's
//! credentials, and what they share: the target, kind resolution by discovery, and failures
//! as exit codes.

mod apply;
mod delete;
mod describe;
mod exec;
mod get;
mod jsonpath;
mod logs;
mod manifest;
mod pods;
mod portforward;
mod resolve;
mod rollout;
mod scale;
mod target;
mod top;

pub(crate) use apply::{ApplyArgs, apply};
pub(crate) use delete::{DeleteArgs, delete};
pub(crate) use describe::{DescribeArgs, describe};
pub(crate) use exec::{ExecArgs, exec};
pub(crate) use get::{GetArgs, get};
pub(crate) use logs::{LogsArgs, logs};
pub(crate) use portforward::{PortForwardArgs, port_forward};
pub(crate) use rollout::{RolloutCommand, rollout};
pub(crate) use scale::{ScaleArgs, scale};
pub(crate) use top::{TopCommand, top};

use crate::exit::Failure;

/// [`Failure::from_kube`] for a request whose answer names its object itself.
fn api_failure(e: kube::Error) -> Failure {
    Failure::from_kube("", e)
}

/// Whether `e` is the server's 404.
fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

/// Splits `KIND[,KIND...] [NAME...]` or `KIND/NAME...` arguments into (kind, name) pairs; a
/// mix of kinds in the slash form is allowed, each name carrying its own kind.
fn kind_and_names(args: &[String]) -> Result<Vec<(String, Option<String>)>, Failure> {
    let Some(first) = args.first() else {
        return Err(Failure::bad_input(
            "name a kind, e.g. pods or deployment/web",
        ));
    };
    if first.contains('/') {
        return args
            .iter()
            .map(|arg| match arg.split_once('/') {
                Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                    Ok((kind.to_owned(), Some(name.to_owned())))
                }
                _ => Err(Failure::bad_input(format!(
                    "{arg:?}: give every object as KIND/NAME once one is"
                ))),
            })
            .collect();
    }
    let names = &args[1..];
    if let Some(bad) = names.iter().find(|n| n.contains('/')) {
        return Err(Failure::bad_input(format!(
            "{bad:?}: a name cannot hold '/' after a kind is given"
        )));
    }
    let kinds: Vec<&str> = first.split(',').collect();
    if kinds.iter().any(|k| k.is_empty()) {
        return Err(Failure::bad_input(format!("{first:?} names an empty kind")));
    }
    if names.is_empty() {
        return Ok(kinds.iter().map(|&k| (k.to_owned(), None)).collect());
    }
    Ok(kinds
        .iter()
        .flat_map(|&kind| {
            names
                .iter()
                .map(move |name| (kind.to_owned(), Some(name.clone())))
        })
        .collect())
}

/// Prints `text` (ending in a newline or not) on stdout as one write.
fn print(text: &str) {
    say!("{}", text.trim_end_matches('\n'));
}

/// A JSON value as a table or description shows it: `<none>` for nothing, strings as they
/// are.
fn or_none(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "<none>".to_owned(),
        serde_json::Value::String(s) if s.is_empty() => "<none>".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|&a| a.to_owned()).collect()
    }

    #[test]
    fn kinds_and_names_come_in_both_forms() {
        let pairs = kind_and_names(&strings(&["po", "a", "b"])).unwrap();
        assert_eq!(
            pairs,
            [
                ("po".to_owned(), Some("a".to_owned())),
                ("po".to_owned(), Some("b".to_owned()))
            ]
        );
        let pairs = kind_and_names(&strings(&["deploy/web", "svc/web"])).unwrap();
        assert_eq!(pairs[1], ("svc".to_owned(), Some("web".to_owned())));
        assert_eq!(
            kind_and_names(&strings(&["pods,svc"])).unwrap(),
            [("pods".to_owned(), None), ("svc".to_owned(), None)]
        );
        let bad_inputs = [
            &["deploy/web", "web"][..],
            &["po", "a/b"][..],
            &["/x"][..],
            &["po,"][..],
            &[][..],
        ];
        for bad in bad_inputs {
            let failure = kind_and_names(&strings(bad)).unwrap_err();
            assert_eq!(failure.code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn not_found_is_the_servers_404() {
        let status = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("pods \"x\" not found", "NotFound")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(is_not_found(&status(404)));
        assert!(!is_not_found(&status(409)));
    }
}

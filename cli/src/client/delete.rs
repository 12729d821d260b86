//! `slipway delete`: objects by kind and name, by label selector, every one of a kind
//! (`--all`), or those a manifest names. Every named object is looked up first, so a
//! missing one changes nothing; then, as kubectl, it waits until they are gone.

use std::path::PathBuf;

use futures::TryStreamExt as _;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, WatchEvent, WatchParams};

use super::resolve::{Catalog, Kind};
use super::target::Target;
use super::{api_failure, is_not_found, kind_and_names, manifest};
use crate::exit::Failure;

/// Delete objects by name, by label selector, or as a manifest names them.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  slipway delete deployment web\n  \
    slipway delete pods -l app=web\n  slipway delete -f web.yaml\n  \
    slipway delete pods --all --grace-period 5 --wait=false")]
pub(crate) struct DeleteArgs {
    /// KIND NAME... or KIND/NAME... (or KIND with -l)
    #[arg(value_name = "KIND [NAME]...")]
    what: Vec<String>,
    /// Delete what these manifests name (repeatable)
    #[arg(
        short,
        long = "filename",
        value_name = "FILE|DIR|-",
        conflicts_with = "what"
    )]
    file: Vec<PathBuf>,
    /// Read directories' subdirectories too
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Delete the objects of KIND with these labels, e.g. app=web
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    selector: Option<String>,
    /// Delete every object of KIND in the namespace
    #[arg(long)]
    all: bool,
    /// Seconds a pod gets to stop [default: -1, the pod's own]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    grace_period: Option<i64>,
    /// Delete at once, without waiting for pods to stop (grace period 0)
    #[arg(long)]
    force: bool,
    /// Wait until the objects are gone
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
        num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    wait: bool,
    /// How long --wait waits (30s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    timeout: String,
    #[command(flatten)]
    target: Target,
}

/// The grace period to ask for: kubectl's rules (-1 is the pod's own), except that
/// `--grace-period=0` without `--force` is refused rather than turned into 1.
fn grace_period(given: Option<i64>, force: bool) -> Result<Option<u32>, Failure> {
    match (given.filter(|n| *n != -1), force) {
        (Some(n), _) if n < 0 => Err(Failure::bad_input(
            "--grace-period must be 0 or more seconds",
        )),
        (Some(0), false) => Err(Failure::bad_input(
            "--grace-period=0 deletes at once: say so with --force",
        )),
        (Some(n), true) if n > 0 => Err(Failure::bad_input(
            "--force deletes at once: it takes no --grace-period above 0",
        )),
        (Some(n), _) => u32::try_from(n)
            .map(Some)
            .map_err(|_| Failure::bad_input("--grace-period is too large")),
        (None, true) => Ok(Some(0)),
        (None, false) => Ok(None),
    }
}

pub(crate) async fn delete(args: DeleteArgs) -> Result<(), Failure> {
    if args.what.is_empty() && args.file.is_empty() {
        return Err(Failure::bad_input(
            "name what to delete: KIND NAME, KIND/NAME, KIND -l SELECTOR, KIND --all or -f FILE",
        ));
    }
    if args.all && !args.file.is_empty() {
        return Err(Failure::bad_input("--all deletes kinds, not what -f names"));
    }
    if args.all && args.selector.is_some() {
        return Err(Failure::bad_input("give -l or --all, not both"));
    }
    let grace = grace_period(args.grace_period, args.force)?;
    let timeout = slipway_preview_config::parse_duration(&args.timeout)
        .map_err(|e| Failure::bad_input(format!("--timeout: {e}")))?;
    let documents = if args.file.is_empty() {
        Vec::new()
    } else {
        manifest::read(&args.file, args.recursive)?
    };
    let session = args.target.connect()?;
    let catalog = Catalog::load(&session.client).await?;
    // Every target as (kind, namespace, name), and those named (not listed) to check.
    let mut targets: Vec<(&Kind, Option<String>, String)> = Vec::new();
    let mut named = Vec::new();
    let namespace_of = |kind: &Kind, named: Option<&str>| -> Option<String> {
        kind.namespaced
            .then(|| named.unwrap_or(&session.namespace).to_owned())
    };
    for document in &documents {
        let kind = catalog.of(document)?;
        named.push(targets.len());
        targets.push((
            kind,
            namespace_of(kind, document.namespace()),
            document.name().to_owned(),
        ));
    }
    if !args.what.is_empty() {
        for (word, name) in kind_and_names(&args.what)? {
            let kind = catalog.find(&word)?;
            let namespace = namespace_of(kind, None);
            let selector = match (&args.selector, args.all) {
                (Some(selector), _) => Some(selector.as_str()),
                (None, true) => Some(""),
                (None, false) => None,
            };
            match (name, selector) {
                (Some(_), Some(_)) => {
                    return Err(Failure::bad_input("give names, or -l or --all, not both"));
                }
                (Some(name), None) => {
                    named.push(targets.len());
                    targets.push((kind, namespace, name));
                }
                (None, Some(selector)) => {
                    let listed = kind
                        .api(&session.client, namespace.as_deref())
                        .list_metadata(&ListParams::default().labels(selector))
                        .await
                        .map_err(api_failure)?;
                    for object in listed.items {
                        let name = object.metadata.name.unwrap_or_default();
                        targets.push((kind, namespace.clone(), name));
                    }
                }
                (None, None) => {
                    return Err(Failure::bad_input(format!(
                        "{word}: name the objects to delete, or select them with -l or --all"
                    )));
                }
            }
        }
    }
    // What a list answered exists; only names are looked up.
    for &i in &named {
        let (kind, namespace, name) = &targets[i];
        kind.api(&session.client, namespace.as_deref())
            .get_metadata(name)
            .await
            .map_err(api_failure)?;
    }
    if targets.is_empty() {
        eprintln!("No resources found");
    }
    let params = DeleteParams {
        grace_period_seconds: grace,
        ..DeleteParams::background()
    };
    if args.force {
        eprintln!(
            "Warning: Immediate deletion does not wait for confirmation that the running \
             resource has been terminated. The resource may continue to run on the cluster \
             indefinitely."
        );
    }
    // The objects still there after their DELETE (finalizers, grace periods), by uid.
    let mut pending = Vec::new();
    for (kind, namespace, name) in &targets {
        let api = kind.api(&session.client, namespace.as_deref());
        match api.delete(name, &params).await {
            Ok(answer) => {
                say!("{} \"{name}\" deleted", kind.label());
                if let Some(uid) = answer.left().and_then(|object| object.metadata.uid) {
                    pending.push((kind, api, name, uid));
                }
            }
            // Gone already, through another target's owner: what was asked has happened.
            Err(e) if is_not_found(&e) => say!("{} \"{name}\" deleted", kind.label()),
            Err(e) => {
                return Err(Failure::from_kube(
                    &format!("{} \"{name}\"", kind.label()),
                    e,
                ));
            }
        }
    }
    if !args.wait || pending.is_empty() {
        return Ok(());
    }
    let waits = pending
        .iter()
        .map(|(_, api, name, uid)| gone(api, name, uid));
    tokio::time::timeout(timeout, futures::future::try_join_all(waits))
        .await
        .map_err(|_| {
            let names: Vec<String> = pending
                .iter()
                .map(|(kind, _, name, _)| format!("{}/{name}", kind.label()))
                .collect();
            Failure::failed(format!(
                "timed out waiting for the deletion of {}",
                names.join(", ")
            ))
        })??;
    Ok(())
}

/// Returns once the object `name` with `uid` is gone (or replaced by a new one of that
/// name), following it with a watch from the revision it was last read at.
async fn gone(api: &Api<DynamicObject>, name: &str, uid: &str) -> Result<(), Failure> {
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    loop {
        let current = match api.get_metadata(name).await {
            Ok(current) => current,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(api_failure(e)),
        };
        if current.metadata.uid.as_deref() != Some(uid) {
            return Ok(());
        }
        let revision = current.metadata.resource_version.unwrap_or_default();
        let events = api
            .watch_metadata(&params, &revision)
            .await
            .map_err(api_failure)?;
        futures::pin_mut!(events);
        while let Some(event) = events.try_next().await.map_err(api_failure)? {
            match event {
                WatchEvent::Deleted(_) => return Ok(()),
                // An expired revision: read the object afresh.
                WatchEvent::Error(_) => break,
                WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Bookmark(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_follow_force() {
        assert_eq!(grace_period(None, false).unwrap(), None);
        assert_eq!(grace_period(Some(-1), false).unwrap(), None);
        assert_eq!(grace_period(None, true).unwrap(), Some(0));
        assert_eq!(grace_period(Some(5), false).unwrap(), Some(5));
        assert_eq!(grace_period(Some(0), true).unwrap(), Some(0));
        for (given, force) in [(Some(-2), false), (Some(0), false), (Some(5), true)] {
            assert_eq!(
                grace_period(given, force).unwrap_err().code(),
                2,
                "{given:?}"
            );
        }
    }
}

//! `slipway delete`: objects by kind and name, by label selector, every one of a kind
//! (`--all`), or those a manifest names. Every named object is looked up first, so a
//! missing one changes nothing; then, as kubectl, it waits until they are gone.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
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
    /// How long --wait waits (30s, 5m) [default: the longest grace period of what is
    /// deleted, plus 60s]
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
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
    let timeout = args
        .timeout
        .as_deref()
        .map(|given| {
            slipway_preview_config::parse_duration(given)
                .map_err(|e| Failure::bad_input(format!("--timeout: {e}")))
        })
        .transpose()?;
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
    // The objects still there after their DELETE (finalizers, grace periods).
    let mut pending = Vec::new();
    for (kind, namespace, name) in &targets {
        let api = kind.api(&session.client, namespace.as_deref());
        match api.delete(name, &params).await {
            Ok(answer) => {
                say!("{} \"{name}\" deleted", kind.label());
                if let Some(left) = answer.left().and_then(|object| Pending::of(object, grace)) {
                    pending.push((kind, api, name, left));
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
    let timeout =
        timeout.unwrap_or_else(|| wait_timeout(pending.iter().map(|(.., left)| left.grace)));
    // Bounded: each wait holds a watch open, and a thousand at once would be a thousand
    // connections.
    let mut waits = futures::stream::iter(pending.iter().enumerate())
        .map(|(i, (_, api, name, left))| async move { gone(api, name, left).await.map(|()| i) })
        .buffer_unordered(CONCURRENT_WAITS);
    let mut still: BTreeSet<usize> = (0..pending.len()).collect();
    let waited = tokio::time::timeout(timeout, async {
        while let Some(i) = waits.try_next().await? {
            still.remove(&i);
        }
        Ok::<(), Failure>(())
    })
    .await;
    match waited {
        Ok(done) => done,
        Err(_) => {
            let names: Vec<String> = still
                .iter()
                .map(|&i| format!("{}/{}", pending[i].0.label(), pending[i].2))
                .collect();
            Err(Failure::failed(format!(
                "timed out waiting for the deletion of {}",
                names.join(", ")
            )))
        }
    }
}

/// How many objects are waited for at once.
const CONCURRENT_WAITS: usize = 16;

/// What `--wait` gives objects beyond their grace period to go: finalizers and the
/// node agent's own stopping take a little longer than the grace period itself.
const WAIT_MARGIN: Duration = Duration::from_secs(60);

/// The default `--timeout`: the longest grace period among what is deleted, plus the
/// margin. kubectl waits up to a week by default; this is never shorter than the pods
/// were given to stop, and still ends if something (a node gone, a finalizer no one
/// removes) holds an object forever.
fn wait_timeout(graces: impl Iterator<Item = u64>) -> Duration {
    Duration::from_secs(graces.max().unwrap_or(0)) + WAIT_MARGIN
}

/// An object its DELETE left in place, to wait for.
struct Pending {
    uid: String,
    /// The grace period it was given, in seconds.
    grace: u64,
    /// A revision at which the answer shows it still existed, to watch from; `None` when
    /// the answer does not prove that and the object must be read first.
    revision: Option<String>,
}

impl Pending {
    /// What the DELETE's answer says about the object, `requested` the grace period
    /// asked for; `None` when the answer shows it is gone already.
    fn of(answer: DynamicObject, requested: Option<u32>) -> Option<Pending> {
        let meta = answer.metadata;
        // Whatever a DELETE leaves in place is marked for deletion.
        meta.deletion_timestamp.as_ref()?;
        let grace = meta.deletion_grace_period_seconds.unwrap_or(0);
        // Finalizers, or a grace period still running that was not cut to 0, hold the
        // object in place. A removed object is answered as it last was, which may carry
        // an earlier deletion's grace period; then only a read tells.
        let held = meta.finalizers.as_ref().is_some_and(|f| !f.is_empty())
            || (grace > 0 && requested != Some(0));
        Some(Pending {
            uid: meta.uid?,
            grace: u64::try_from(grace).unwrap_or(0),
            revision: meta.resource_version.filter(|_| held),
        })
    }
}

/// Returns once the object is gone (or replaced by a new one of its name), following it
/// with a watch from a revision it was seen at: the DELETE's answer's, else a read's.
async fn gone(api: &Api<DynamicObject>, name: &str, left: &Pending) -> Result<(), Failure> {
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let mut revision = left.revision.clone();
    loop {
        let from = match revision.take() {
            Some(from) => from,
            None => {
                let current = match api.get_metadata(name).await {
                    Ok(current) => current,
                    Err(e) if is_not_found(&e) => return Ok(()),
                    Err(e) => return Err(api_failure(e)),
                };
                if current.metadata.uid.as_deref() != Some(left.uid.as_str()) {
                    return Ok(());
                }
                current.metadata.resource_version.unwrap_or_default()
            }
        };
        let events = api
            .watch_metadata(&params, &from)
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

    #[test]
    fn waiting_outlasts_the_longest_grace_period() {
        assert_eq!(wait_timeout([].into_iter()), Duration::from_secs(60));
        assert_eq!(
            wait_timeout([30, 600, 0].into_iter()),
            Duration::from_secs(660)
        );
    }

    #[test]
    fn the_delete_answer_says_what_to_wait_for() {
        let answer = |meta: serde_json::Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": meta}))
            .unwrap()
        };
        let marked = serde_json::json!({"name": "p", "uid": "u", "resourceVersion": "7",
            "deletionTimestamp": "2024-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30});
        // Removed at once: nothing to wait for.
        assert!(Pending::of(answer(serde_json::json!({"name": "p", "uid": "u"})), None).is_none());
        // Held by its grace period: watched from the answer's revision, no read.
        let left = Pending::of(answer(marked.clone()), None).unwrap();
        assert_eq!((left.grace, left.revision.as_deref()), (30, Some("7")));
        // Forced: the answer may be its last state, so it is read first.
        let left = Pending::of(answer(marked), Some(0)).unwrap();
        assert_eq!(left.revision, None);
        let finalized = serde_json::json!({"name": "p", "uid": "u", "resourceVersion": "8",
            "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["x"]});
        let left = Pending::of(answer(finalized), Some(0)).unwrap();
        assert_eq!((left.grace, left.revision.as_deref()), (0, Some("8")));
    }
}

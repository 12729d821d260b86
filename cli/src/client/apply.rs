//! `slipway apply`: server-side apply of manifests (field manager `slipway`), with pruning
//! of labelled objects left out of the set and the server's dry run.

use std::collections::BTreeSet;
use std::path::PathBuf;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::manifest::{self, Document};
use super::resolve::{Catalog, Kind};
use super::target::{Session, Target};
use super::{api_failure, is_not_found};
use crate::exit::Failure;

/// The field manager applies are recorded under.
const MANAGER: &str = "slipway";

/// Create or update objects from manifests by server-side apply.
///
/// Prints one line per object: created, configured, unchanged or pruned.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  slipway apply -f web.yaml\n  \
    slipway apply -R -f manifests/ --prune -l app=web\n  \
    cat web.yaml | slipway apply -f - --dry-run=server")]
pub(crate) struct ApplyArgs {
    /// A manifest file, a directory of them, or - for stdin (repeatable)
    #[arg(short, long = "filename", value_name = "FILE|DIR|-", required = true)]
    file: Vec<PathBuf>,
    /// Read directories' subdirectories too
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Take fields other managers own instead of failing on the conflict
    #[arg(long)]
    force_conflicts: bool,
    /// Delete objects of the applied kinds that carry the -l labels but are not applied
    #[arg(long, requires = "selector")]
    prune: bool,
    /// The label selector for --prune, e.g. app=web
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    selector: Option<String>,
    /// Only `server`: the server checks and answers without storing anything
    #[arg(long, value_name = "server", value_parser = ["server"])]
    dry_run: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// One object ready to apply.
struct Planned<'a> {
    document: &'a Document,
    kind: &'a Kind,
    namespace: Option<String>,
}

pub(crate) async fn apply(args: ApplyArgs) -> Result<(), Failure> {
    let documents = manifest::read(&args.file, args.recursive)?;
    if args.selector.is_some() && !args.prune {
        return Err(Failure::bad_input("-l only selects what --prune deletes"));
    }
    let session = args.target.connect()?;
    let catalog = Catalog::load(&session.client).await?;
    let planned = plan(&session, &catalog, &documents)?;
    let dry_run = args.dry_run.is_some();
    let suffix = if dry_run { " (server dry run)" } else { "" };
    if let (Some(selector), Some(first)) = (&args.selector, planned.first()) {
        // A bad selector is found before anything changes.
        first
            .kind
            .api(&session.client, Some(&session.namespace))
            .list_metadata(&ListParams::default().labels(selector).limit(1))
            .await
            .map_err(api_failure)?;
    }
    let mut params = PatchParams::apply(MANAGER);
    params.force = args.force_conflicts;
    params.dry_run = dry_run;
    for item in &planned {
        let api = item.kind.api(&session.client, item.namespace.as_deref());
        let name = item.document.name();
        let before = match api.get(name).await {
            Ok(object) => Some(object),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(api_failure(e)),
        };
        let after = api
            .patch(name, &params, &Patch::Apply(&item.document.object))
            .await
            .map_err(|e| Failure::from_kube(&item.document.source, e))?;
        let verb = match before {
            None => "created",
            Some(before) if same(&before, &after, &item.document.object) => "unchanged",
            Some(_) => "configured",
        };
        say!("{}/{name} {verb}{suffix}", item.kind.label());
    }
    if args.prune {
        let selector = args.selector.as_deref().unwrap_or_default();
        prune(&session, &planned, selector, dry_run, suffix).await?;
    }
    Ok(())
}

/// Resolves every document's kind and namespace; any that cannot be is bad input.
fn plan<'a>(
    session: &Session,
    catalog: &'a Catalog,
    documents: &'a [Document],
) -> Result<Vec<Planned<'a>>, Failure> {
    documents
        .iter()
        .map(|document| {
            let kind = catalog.of(document)?;
            let namespace = if kind.namespaced {
                match document.namespace() {
                    Some(ns) if session.namespace_given && ns != session.namespace => {
                        return Err(Failure::bad_input(format!(
                            "{}: the namespace from the provided object \"{ns}\" does not match \
                             the namespace \"{}\"",
                            document.source, session.namespace
                        )));
                    }
                    Some(ns) => Some(ns.to_owned()),
                    None => Some(session.namespace.clone()),
                }
            } else {
                None
            };
            Ok(Planned {
                document,
                kind,
                namespace,
            })
        })
        .collect()
}

/// Whether an apply changed nothing it set: the object before and after, seen only
/// through the fields of the manifest (controllers may change others in between).
fn same(
    before: &kube::api::DynamicObject,
    after: &kube::api::DynamicObject,
    manifest: &Value,
) -> bool {
    let seen = |object: &kube::api::DynamicObject| {
        serde_json::to_value(object).map(|value| project(&value, manifest))
    };
    matches!((seen(before), seen(after)), (Ok(a), Ok(b)) if a == b)
}

/// `live` cut down to the keys (and list positions) `shape` has.
fn project(live: &Value, shape: &Value) -> Value {
    match (live, shape) {
        (Value::Object(live), Value::Object(shape)) => shape
            .iter()
            .map(|(key, inner)| {
                let value = live.get(key).map_or(Value::Null, |l| project(l, inner));
                (key.clone(), value)
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        (Value::Array(live), Value::Array(shape)) => Value::Array(
            live.iter()
                .zip(shape)
                .map(|(l, s)| project(l, s))
                .chain((live.len() != shape.len()).then(|| live.len().into()))
                .collect(),
        ),
        _ => live.clone(),
    }
}

/// Deletes the objects of the applied kinds, in the applied namespaces, that carry the
/// selector's labels and were not in this apply.
async fn prune(
    session: &Session,
    planned: &[Planned<'_>],
    selector: &str,
    dry_run: bool,
    suffix: &str,
) -> Result<(), Failure> {
    let applied: BTreeSet<(String, Option<String>, String)> = planned
        .iter()
        .map(|p| {
            (
                p.kind.resource.api_version.clone() + "/" + &p.kind.resource.kind,
                p.namespace.clone(),
                p.document.name().to_owned(),
            )
        })
        .collect();
    let mut scopes: Vec<(&Kind, Option<String>)> = Vec::new();
    for item in planned {
        let scope = (item.kind, item.namespace.clone());
        if !scopes
            .iter()
            .any(|(k, ns)| k.resource == scope.0.resource && *ns == scope.1)
        {
            scopes.push(scope);
        }
    }
    let params = DeleteParams {
        dry_run,
        ..DeleteParams::default()
    };
    for (kind, namespace) in scopes {
        let api = kind.api(&session.client, namespace.as_deref());
        let listed = api
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .map_err(api_failure)?;
        for object in listed.items {
            let name = object.metadata.name.clone().unwrap_or_default();
            let key = (
                kind.resource.api_version.clone() + "/" + &kind.resource.kind,
                namespace.clone(),
                name.clone(),
            );
            if applied.contains(&key) || object.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match api.delete(&name, &params).await {
                Ok(_) => say!("{}/{name} pruned{suffix}", kind.label()),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(api_failure(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_compared_through_the_manifests_fields() {
        let manifest = serde_json::json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"ports": [{"port": 80}]},
        });
        let live = serde_json::json!({
            "metadata": {"name": "web", "labels": {"app": "web", "extra": "1"}, "annotations": {"a": "b"}},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "127.100.0.1"},
            "status": {},
        });
        assert_eq!(project(&live, &manifest), manifest);
        let more_ports = serde_json::json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}});
        assert_ne!(project(&more_ports, &manifest)["spec"], manifest["spec"]);
    }
}

//! `slipway delete`: objects by kind and name, by label selector, or those a manifest
//! names. Every named object is looked up first, so a missing one changes nothing.

use std::path::PathBuf;

use kube::api::{DeleteParams, ListParams};

use super::resolve::{Catalog, Kind};
use super::target::Target;
use super::{api_failure, is_not_found, kind_and_names, manifest};
use crate::exit::Failure;

/// Delete objects by name, by label selector, or as a manifest names them.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  slipway delete deployment web\n  \
    slipway delete pods -l app=web\n  slipway delete -f web.yaml")]
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
    #[command(flatten)]
    target: Target,
}

pub(crate) async fn delete(args: DeleteArgs) -> Result<(), Failure> {
    if args.what.is_empty() && args.file.is_empty() {
        return Err(Failure::bad_input(
            "name what to delete: KIND NAME, KIND/NAME, KIND -l SELECTOR or -f FILE",
        ));
    }
    let documents = if args.file.is_empty() {
        Vec::new()
    } else {
        manifest::read(&args.file, args.recursive)?
    };
    let session = args.target.connect()?;
    let catalog = Catalog::load(&session.client).await?;
    // Every target as (kind, namespace, name).
    let mut targets: Vec<(&Kind, Option<String>, String)> = Vec::new();
    let namespace_of = |kind: &Kind, named: Option<&str>| -> Option<String> {
        kind.namespaced
            .then(|| named.unwrap_or(&session.namespace).to_owned())
    };
    for document in &documents {
        let kind = catalog.of(document)?;
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
            match (name, &args.selector) {
                (Some(_), Some(_)) => {
                    return Err(Failure::bad_input("give names or -l, not both"));
                }
                (Some(name), None) => targets.push((kind, namespace, name)),
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
                        "{word}: name the objects to delete, or select them with -l"
                    )));
                }
            }
        }
    }
    for (kind, namespace, name) in &targets {
        kind.api(&session.client, namespace.as_deref())
            .get_metadata(name)
            .await
            .map_err(api_failure)?;
    }
    if targets.is_empty() {
        eprintln!("No resources found");
    }
    for (kind, namespace, name) in &targets {
        let deleted = kind
            .api(&session.client, namespace.as_deref())
            .delete(name, &DeleteParams::background())
            .await;
        match deleted {
            Ok(_) => say!("{} \"{name}\" deleted", kind.label()),
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
    Ok(())
}

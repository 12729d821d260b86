//! `slipway scale`: sets the replicas of a deployment (or anything with a scale
//! subresource) through that subresource.

use kube::api::{Patch, PatchParams};

use super::resolve::Catalog;
use super::target::Target;
use super::{api_failure, kind_and_names};
use crate::exit::Failure;

/// Set how many replicas a deployment (or replica set, stateful set) wants.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  slipway scale deployment/web --replicas 3")]
pub(crate) struct ScaleArgs {
    /// KIND/NAME or KIND NAME
    #[arg(required = true, value_name = "KIND/NAME")]
    what: Vec<String>,
    /// How many replicas, 0 or more
    #[arg(long, value_name = "N", required = true, allow_hyphen_values = true)]
    replicas: String,
    #[command(flatten)]
    target: Target,
}

/// `--replicas` as a count; anything but a whole number of 0 or more is bad input.
fn replicas(text: &str) -> Result<i32, Failure> {
    text.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        Failure::bad_input(format!(
            "--replicas must be a whole number of 0 or more, not {text:?}"
        ))
    })
}

pub(crate) async fn scale(args: ScaleArgs) -> Result<(), Failure> {
    let replicas = replicas(&args.replicas)?;
    let pairs = kind_and_names(&args.what)?;
    let session = args.target.connect()?;
    let catalog = Catalog::load(&session.client).await?;
    let mut targets = Vec::new();
    for (word, name) in pairs {
        let kind = catalog.find(&word)?;
        let Some(name) = name else {
            return Err(Failure::bad_input(format!(
                "{word}: name the object to scale"
            )));
        };
        if !kind.scalable {
            return Err(Failure::bad_input(format!(
                "{} cannot be scaled",
                kind.label()
            )));
        }
        // Every object is looked up before any is scaled, so a missing one changes nothing.
        let api = kind.api(&session.client, Some(&session.namespace));
        api.get_scale(&name).await.map_err(api_failure)?;
        targets.push((kind, api, name));
    }
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    for (kind, api, name) in targets {
        api.patch_scale(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_failure)?;
        say!("{}/{name} scaled", kind.label());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_whole_and_not_negative() {
        assert_eq!(replicas("0").unwrap(), 0);
        assert_eq!(replicas("12").unwrap(), 12);
        for bad in ["-1", "two", "1.5", "", "99999999999"] {
            assert_eq!(replicas(bad).unwrap_err().code(), 2, "{bad}");
        }
    }
}

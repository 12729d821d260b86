//! A Backstage-style catalogue: components (Deployments labelled `app.kubernetes.io/name`
//! or `slipway.dev/component`) grouped by owner squad and system. Admins' Deployments are
//! listed in one call across namespaces; a member's, one call per squad namespace.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;

use crate::api;
use crate::page::{Chrome, Ctx, Page, render};

const COMPONENT_LABELS: [&str; 2] = ["slipway.dev/component", "app.kubernetes.io/name"];
const SYSTEM_LABELS: [&str; 2] = ["slipway.dev/system", "app.kubernetes.io/part-of"];
const NO_SQUAD: &str = "(no squad)";
const NO_SYSTEM: &str = "(no system)";

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    chrome: Option<Chrome>,
    owners: Vec<Owner>,
    count: usize,
}

struct Owner {
    squad: String,
    systems: Vec<System>,
}

struct System {
    name: String,
    components: Vec<Component>,
}

struct Component {
    name: String,
    href: Option<String>,
    deployment: String,
    namespace: String,
    ready: i32,
    desired: i32,
    level: &'static str,
}

fn label<'a>(d: &'a Deployment, keys: &[&str]) -> Option<&'a str> {
    let labels = d.metadata.labels.as_ref()?;
    keys.iter().find_map(|k| labels.get(*k)).map(String::as_str)
}

pub(crate) async fn page(ctx: Ctx) -> Page {
    let squads = ctx.my_squads().await?;
    let owner_of: HashMap<&str, &str> = squads
        .iter()
        .flat_map(|s| s.namespaces.iter().map(|ns| (ns.as_str(), s.name.as_str())))
        .collect();
    let lp = ListParams::default();
    let deployments: Vec<Deployment> = if ctx.session.is_admin() {
        ctx.list_all::<Deployment>(&lp).await?
    } else {
        futures::future::try_join_all(owner_of.keys().map(|ns| ctx.list_in::<Deployment>(ns, &lp)))
            .await?
            .into_iter()
            .flatten()
            .collect()
    };
    let mut tree: BTreeMap<String, BTreeMap<String, Vec<Component>>> = BTreeMap::new();
    let mut count = 0;
    for d in &deployments {
        let Some(name) = label(d, &COMPONENT_LABELS) else {
            continue;
        };
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let deployment = d.metadata.name.clone().unwrap_or_default();
        let squad = owner_of.get(namespace.as_str()).copied();
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = d
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let level = match (desired, ready) {
            (0, _) => "idle",
            (_, 0) => "bad",
            (d, r) if r < d => "warn",
            _ => "ok",
        };
        let component = Component {
            name: name.to_owned(),
            href: squad.map(|s| {
                format!(
                    "/squads/{}/services/{}/{}",
                    api::encode(s),
                    api::encode(&namespace),
                    api::encode(&deployment)
                )
            }),
            deployment,
            namespace,
            ready,
            desired,
            level,
        };
        count += 1;
        tree.entry(squad.unwrap_or(NO_SQUAD).to_owned())
            .or_default()
            .entry(label(d, &SYSTEM_LABELS).unwrap_or(NO_SYSTEM).to_owned())
            .or_default()
            .push(component);
    }
    let owners = tree
        .into_iter()
        .map(|(squad, systems)| Owner {
            squad,
            systems: systems
                .into_iter()
                .map(|(name, mut components)| {
                    components.sort_by(|a, b| a.name.cmp(&b.name));
                    System { name, components }
                })
                .collect(),
        })
        .collect();
    render(&CatalogPage {
        chrome: Some(ctx.chrome("catalog")),
        owners,
        count,
    })
}

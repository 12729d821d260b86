//! The home page: my squads, my open previews, and the cluster's health at a glance.

use askama::Template;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;

use crate::api;
use crate::page::{Chrome, Ctx, Page, PageError, render};
use crate::platform::{List, Preview, Squad};
use crate::previews::PreviewRow;

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    chrome: Option<Chrome>,
    squads: Vec<Squad>,
    previews: Vec<PreviewRow>,
    health: Health,
}

/// The nodes' readiness, when the caller may list nodes.
pub(crate) enum Health {
    Nodes { ready: usize, total: usize },
    Hidden,
}

pub(crate) async fn page(ctx: Ctx) -> Page {
    let squads = ctx.my_squads();
    let previews = ctx.get::<List<Preview>>(api::path(&["previews"]));
    let lp = ListParams::default();
    let nodes = ctx.list_all::<Node>(&lp);
    let (squads, previews, nodes) = futures::join!(squads, previews, nodes);
    let health = match nodes {
        Ok(nodes) => Health::Nodes {
            ready: nodes.iter().filter(|n| node_ready(n)).count(),
            total: nodes.len(),
        },
        // Members do not see nodes; that is no failure of the page.
        Err(PageError::Api(api::Error::Forbidden(_))) => Health::Hidden,
        Err(e) => return Err(e),
    };
    let now = ctx.now();
    let squads = squads?;
    let previews = previews?
        .items
        .iter()
        .filter(|p| p.is_open())
        .map(|p| PreviewRow::new(p, now))
        .collect();
    render(&Home {
        chrome: Some(ctx.chrome("home")),
        squads,
        previews,
        health,
    })
}

pub(crate) fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

//! The cluster page, for admins: nodes with capacity, what their pods request and their
//! conditions; squads and what their namespaces use of their quotas.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use k8s_openapi::api::core::v1::{Node, Pod, ResourceQuota};
use kube::api::ListParams;
use slipway_model::quantity::ParsedQuantity;

use crate::api;
use crate::page::{Chrome, Ctx, Page, PageError, render};
use crate::platform::{List, Squad};
use crate::view::{self, Bar};

const QUOTA_NAME: &str = "squad-quota";

#[derive(Template)]
#[template(path = "cluster.html")]
struct ClusterPage {
    chrome: Option<Chrome>,
    nodes: Vec<NodeRow>,
    squads: Vec<SquadUse>,
}

struct NodeRow {
    name: String,
    ready: bool,
    bars: Vec<Bar>,
    /// Conditions other than Ready that hold (pressure and the like), and Ready's state.
    conditions: Vec<String>,
    age: String,
}

struct SquadUse {
    name: String,
    namespaces: usize,
    members: usize,
    bars: Vec<Bar>,
}

pub(crate) async fn page(ctx: Ctx) -> Page {
    if !ctx.session.is_admin() {
        return Err(PageError::Forbidden(
            "The cluster page is for platform admins.".to_owned(),
        ));
    }
    let lp = ListParams::default();
    let (nodes, pods, quotas, squads) = futures::try_join!(
        ctx.list_all::<Node>(&lp),
        ctx.list_all::<Pod>(&lp),
        ctx.list_all::<ResourceQuota>(&lp),
        ctx.get::<List<Squad>>(api::path(&["squads"])),
    )?;
    let now = ctx.now();

    // What the pods bound to each node request, summed once over all pods.
    let mut requested: HashMap<&str, [i128; 3]> = HashMap::new();
    for pod in &pods {
        let (Some(spec), phase) = (
            pod.spec.as_ref(),
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        ) else {
            continue;
        };
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(node) = spec.node_name.as_deref() else {
            continue;
        };
        let sums = requested.entry(node).or_default();
        for c in &spec.containers {
            let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            sums[0] += nanos(requests.and_then(|r| r.get("cpu")).map(|q| q.0.as_str()));
            sums[1] += nanos(requests.and_then(|r| r.get("memory")).map(|q| q.0.as_str()));
        }
        sums[2] += 1_000_000_000;
    }
    let mut nodes: Vec<NodeRow> = nodes
        .iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let allocatable = n
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
            let sums = requested.get(name.as_str()).copied().unwrap_or_default();
            let bars = ["cpu", "memory", "pods"]
                .into_iter()
                .zip(sums)
                .filter_map(|(label, used)| {
                    let hard = allocatable?.get(label)?.0.clone();
                    Some(Bar::new(label, &from_nanos(used, label), &hard))
                })
                .collect();
            let conditions = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .filter(|c| c.type_ == "Ready" || c.status == "True")
                .map(|c| format!("{}={}", c.type_, c.status))
                .collect();
            NodeRow {
                ready: crate::home::node_ready(n),
                bars,
                conditions,
                age: view::age(now, view::time(n.metadata.creation_timestamp.as_ref())),
                name,
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));

    let by_namespace: HashMap<&str, &ResourceQuota> = quotas
        .iter()
        .filter(|q| q.metadata.name.as_deref() == Some(QUOTA_NAME))
        .filter_map(|q| Some((q.metadata.namespace.as_deref()?, q)))
        .collect();
    let mut squads: Vec<SquadUse> = squads
        .items
        .iter()
        .map(|s| {
            let quotas: Vec<&ResourceQuota> = s
                .namespaces
                .iter()
                .filter_map(|ns| by_namespace.get(ns.as_str()).copied())
                .collect();
            SquadUse {
                name: s.name.clone(),
                namespaces: s.namespaces.len(),
                members: s.members.len(),
                bars: summed_bars(&quotas),
            }
        })
        .collect();
    squads.sort_by(|a, b| a.name.cmp(&b.name));
    render(&ClusterPage {
        chrome: Some(ctx.chrome("cluster")),
        nodes,
        squads,
    })
}

fn nanos(q: Option<&str>) -> i128 {
    q.and_then(|q| ParsedQuantity::parse(q).ok())
        .map_or(0, |q| q.as_nanos())
}

/// A sum of nanos back as a quantity people read: cores in millicores, bytes in Mi.
fn from_nanos(nanos: i128, label: &str) -> String {
    match label {
        "cpu" => format!("{}m", nanos / 1_000_000),
        "memory" => format!("{}Mi", nanos / 1_000_000_000 / (1 << 20)),
        _ => format!("{}", nanos / 1_000_000_000),
    }
}

/// The bars of several namespaces' quotas, used and hard summed.
fn summed_bars(quotas: &[&ResourceQuota]) -> Vec<Bar> {
    let mut used: BTreeMap<&'static str, i128> = BTreeMap::new();
    let mut hard: BTreeMap<&'static str, i128> = BTreeMap::new();
    for quota in quotas {
        for bar in view::quota_bars(quota) {
            *used.entry(bar.label).or_default() += nanos(Some(&bar.used));
            *hard.entry(bar.label).or_default() += nanos(Some(&bar.hard));
        }
    }
    ["cpu", "memory", "pods"]
        .into_iter()
        .filter_map(|label| {
            let h = *hard.get(label)?;
            let u = used.get(label).copied().unwrap_or(0);
            Some(Bar::new(
                label,
                &from_nanos(u, label),
                &from_nanos(h, label),
            ))
        })
        .collect()
}

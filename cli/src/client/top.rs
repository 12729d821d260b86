//! `slipway top pods|nodes`: the CPU and memory pods and nodes use now, as `kubectl top`
//! shows them, read from the API's `metrics.k8s.io`, which the node agents' summaries feed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use serde::Deserialize;
use slipway_model::quantity::{Format, ParsedQuantity};

use super::target::Target;
use super::{api_failure, print};
use crate::exit::Failure;

const NOTE: &str = "Figures are live: CPU is the rate over the last sampling window of the \
    node agents (about 10 s), memory the working set (what cannot be reclaimed). A pod that \
    just started has no CPU rate yet and is left out until it has.";

/// What rows are sorted by, largest first.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum SortBy {
    Cpu,
    Memory,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopCommand {
    /// The CPU and memory each pod (or container) uses now.
    #[command(after_help = format!(
        "{NOTE}\n\nExample:\n  slipway top pods -A --sort-by=memory\n  slipway top pods web-7d9f --containers"
    ))]
    Pods {
        /// Only this pod
        name: Option<String>,
        /// Pods in every namespace
        #[arg(short = 'A', long, conflicts_with = "name")]
        all_namespaces: bool,
        /// Only pods with these labels, e.g. app=web
        #[arg(short = 'l', long, value_name = "SELECTOR", conflicts_with = "name")]
        selector: Option<String>,
        /// One row per container
        #[arg(long)]
        containers: bool,
        /// Largest first by this figure
        #[arg(long, value_name = "FIGURE")]
        sort_by: Option<SortBy>,
        #[command(flatten)]
        target: Target,
    },
    /// The CPU and memory each node uses now, and how much of its allocatable that is.
    #[command(after_help = format!("{NOTE}\n\nExample:\n  slipway top nodes"))]
    Nodes {
        /// Only this node
        name: Option<String>,
        /// Only nodes with these labels
        #[arg(short = 'l', long, value_name = "SELECTOR", conflicts_with = "name")]
        selector: Option<String>,
        /// Largest first by this figure
        #[arg(long, value_name = "FIGURE")]
        sort_by: Option<SortBy>,
        #[command(flatten)]
        target: Target,
    },
}

/// A pod's figures (`metrics.k8s.io/v1beta1` PodMetrics).
#[derive(Debug, Deserialize)]
struct PodMetrics {
    metadata: ObjectMeta,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Deserialize)]
struct ContainerMetrics {
    name: String,
    usage: BTreeMap<String, Quantity>,
}

/// A node's figures (NodeMetrics).
#[derive(Debug, Deserialize)]
struct NodeMetrics {
    metadata: ObjectMeta,
    usage: BTreeMap<String, Quantity>,
}

#[derive(Debug, Deserialize)]
struct List<T> {
    items: Vec<T>,
}

/// CPU in millicores and memory in bytes, as kubectl rounds them (up).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Figures {
    cpu: i64,
    memory: i64,
}

impl Figures {
    /// The `cpu` and `memory` of a resource list; what is absent or unreadable is 0.
    fn of(list: Option<&BTreeMap<String, Quantity>>) -> Figures {
        Figures::sum(list.into_iter())
    }

    /// The `cpu` and `memory` of resource lists added up exactly and rounded once, as
    /// kubectl adds a pod's containers: 2500000n + 1n is 3m, where rounding each first
    /// would make it 4m. A sum beyond what a quantity holds saturates.
    fn sum<'a>(lists: impl Iterator<Item = &'a BTreeMap<String, Quantity>> + Clone) -> Figures {
        let total = |key: &str| {
            lists
                .clone()
                .filter_map(|list| list.get(key))
                .filter_map(|q| ParsedQuantity::parse(&q.0).ok())
                .try_fold(ParsedQuantity::default(), |sum, q| sum.checked_add(&q))
                .unwrap_or_else(|_| ParsedQuantity::from_value(i64::MAX, Format::DecimalSI))
        };
        Figures {
            cpu: total("cpu").as_milli(),
            memory: total("memory").as_value(),
        }
    }

    fn key(self, sort: SortBy) -> i64 {
        match sort {
            SortBy::Cpu => self.cpu,
            SortBy::Memory => self.memory,
        }
    }
}

fn cpu(milli: i64) -> String {
    format!("{milli}m")
}

fn memory(bytes: i64) -> String {
    format!("{}Mi", bytes / (1 << 20))
}

fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "<unknown>".to_owned();
    }
    format!("{}%", part.saturating_mul(100) / whole)
}

const GROUP: &str = "/apis/metrics.k8s.io/v1beta1";

/// GETs `path` (a list, or one object when `name` is given) from the metrics API.
async fn read<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    path: &str,
    name: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<T>, Failure> {
    let request = kube::core::Request::new(path);
    let built = match name {
        Some(name) => request.get(name, &kube::api::GetParams::default()),
        None => request.list(&labelled(selector)),
    };
    let built = built.map_err(|e| Failure::bad_input(format!("cannot build the request: {e}")))?;
    let answer = match name {
        Some(_) => client.request::<T>(built).await.map(|one| vec![one]),
        None => client
            .request::<List<T>>(built)
            .await
            .map(|list| list.items),
    };
    answer.map_err(|e| match &e {
        kube::Error::Api(status) if status.code == 404 && name.is_none() => Failure::failed(
            "the Metrics API is not available: is the API server older than this CLI?",
        ),
        _ => api_failure(e),
    })
}

pub(crate) async fn top(command: TopCommand) -> Result<(), Failure> {
    match command {
        TopCommand::Pods {
            name,
            all_namespaces,
            selector,
            containers,
            sort_by,
            target,
        } => {
            let session = target.connect()?;
            let path = if all_namespaces {
                format!("{GROUP}/pods")
            } else {
                format!("{GROUP}/namespaces/{}/pods", session.namespace)
            };
            let pods: Vec<PodMetrics> =
                read(&session.client, &path, name.as_deref(), selector.as_deref()).await?;
            if pods.is_empty() {
                // As kubectl's verifyEmptyMetrics: pods without figures are figures not
                // sampled yet, a failure; only no pods at all is an empty answer.
                let listed: Api<Pod> = if all_namespaces {
                    Api::all(session.client.clone())
                } else {
                    Api::namespaced(session.client.clone(), &session.namespace)
                };
                if any(&listed, selector.as_deref()).await? {
                    return Err(Failure::failed(NOT_YET));
                }
                if all_namespaces {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {} namespace.", session.namespace);
                }
                return Ok(());
            }
            print(&pod_table(&pods, all_namespaces, containers, sort_by));
            Ok(())
        }
        TopCommand::Nodes {
            name,
            selector,
            sort_by,
            target,
        } => {
            let session = target.connect()?;
            let figures: Vec<NodeMetrics> = read(
                &session.client,
                &format!("{GROUP}/nodes"),
                name.as_deref(),
                selector.as_deref(),
            )
            .await?;
            let nodes: Api<Node> = Api::all(session.client.clone());
            if figures.is_empty() {
                if any(&nodes, selector.as_deref()).await? {
                    return Err(Failure::failed(NOT_YET));
                }
                eprintln!("No resources found.");
                return Ok(());
            }
            let listed = match &name {
                Some(name) => vec![nodes.get(name).await.map_err(api_failure)?],
                None => {
                    nodes
                        .list(&labelled(selector.as_deref()))
                        .await
                        .map_err(api_failure)?
                        .items
                }
            };
            let allocatable: BTreeMap<String, Figures> = listed
                .into_iter()
                .map(|node| {
                    let figures =
                        Figures::of(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
                    (node.metadata.name.unwrap_or_default(), figures)
                })
                .collect();
            print(&node_table(&figures, &allocatable, sort_by));
            Ok(())
        }
    }
}

/// kubectl's words when objects exist but the metrics API has no figures for them.
const NOT_YET: &str = "metrics not available yet";

fn labelled(selector: Option<&str>) -> ListParams {
    match selector {
        Some(selector) => ListParams::default().labels(selector),
        None => ListParams::default(),
    }
}

/// Whether `api` lists at least one object with the labels; one is all it asks for.
async fn any<K>(api: &Api<K>, selector: Option<&str>) -> Result<bool, Failure>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let page = api
        .list(&labelled(selector).limit(1))
        .await
        .map_err(api_failure)?;
    Ok(!page.items.is_empty())
}

/// kubectl's pod table: NAMESPACE with `-A`, POD and NAME per container with
/// `--containers`, then CPU(cores) and MEMORY(bytes).
fn pod_table(
    pods: &[PodMetrics],
    all_namespaces: bool,
    per_container: bool,
    sort_by: Option<SortBy>,
) -> String {
    let mut rows: Vec<(Figures, Vec<String>)> = Vec::new();
    for pod in pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let mut lead = Vec::new();
        if all_namespaces {
            lead.push(namespace);
        }
        if per_container {
            for container in &pod.containers {
                let figures = Figures::of(Some(&container.usage));
                let mut row = lead.clone();
                row.extend([pod_name.clone(), container.name.clone()]);
                row.extend([cpu(figures.cpu), memory(figures.memory)]);
                rows.push((figures, row));
            }
        } else {
            let figures = Figures::sum(pod.containers.iter().map(|c| &c.usage));
            let mut row = lead;
            row.extend([pod_name, cpu(figures.cpu), memory(figures.memory)]);
            rows.push((figures, row));
        }
    }
    let mut headers = Vec::new();
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    if per_container {
        headers.extend(["POD", "NAME"]);
    } else {
        headers.push("NAME");
    }
    headers.extend(["CPU(cores)", "MEMORY(bytes)"]);
    render(&headers, sorted(rows, sort_by))
}

/// kubectl's node table: use against allocatable.
fn node_table(
    nodes: &[NodeMetrics],
    allocatable: &BTreeMap<String, Figures>,
    sort_by: Option<SortBy>,
) -> String {
    let rows = nodes
        .iter()
        .map(|node| {
            let name = node.metadata.name.clone().unwrap_or_default();
            let used = Figures::of(Some(&node.usage));
            let offered = allocatable.get(&name).copied().unwrap_or_default();
            let row = vec![
                name,
                cpu(used.cpu),
                percent(used.cpu, offered.cpu),
                memory(used.memory),
                percent(used.memory, offered.memory),
            ];
            (used, row)
        })
        .collect();
    render(
        &["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
        sorted(rows, sort_by),
    )
}

/// The rows largest first by `sort_by`, else as the server listed them.
fn sorted(mut rows: Vec<(Figures, Vec<String>)>, sort_by: Option<SortBy>) -> Vec<Vec<String>> {
    if let Some(sort) = sort_by {
        rows.sort_by_key(|(figures, _)| std::cmp::Reverse(figures.key(sort)));
    }
    rows.into_iter().map(|(_, row)| row).collect()
}

/// Columns under their headers, three spaces apart.
fn render(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut all = vec![headers.iter().map(|&h| h.to_owned()).collect()];
    all.extend(rows);
    crate::columns::align(&all, "   ").join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(namespace: &str, name: &str, containers: &[(&str, &str, &str)]) -> PodMetrics {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
            "containers": containers.iter().map(|(name, cpu, memory)| serde_json::json!(
                {"name": name, "usage": {"cpu": cpu, "memory": memory}})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn pods_show_their_containers_sum_rounded_once_as_kubectl_does() {
        let pods = [
            pod(
                "a",
                "web",
                &[("app", "2500000n", "10240Ki"), ("proxy", "1n", "2Mi")],
            ),
            pod("b", "db", &[("pg", "250m", "1Gi")]),
        ];
        let table = pod_table(&pods, true, false, Some(SortBy::Memory));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)",
                "b           db     250m         1024Mi",
                "a           web    3m           12Mi",
            ]
        );
        let table = pod_table(&pods[..1], false, true, None);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "POD   NAME    CPU(cores)   MEMORY(bytes)",
                "web   app     3m           10Mi",
                "web   proxy   1m           2Mi",
            ]
        );
    }

    #[test]
    fn nodes_show_use_against_allocatable() {
        let node: NodeMetrics = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"}, "usage": {"cpu": "500000000n", "memory": "1048576Ki"}}))
        .unwrap();
        let other: NodeMetrics = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n2"}, "usage": {"cpu": "1", "memory": "0"}}))
        .unwrap();
        let allocatable = BTreeMap::from([(
            "n1".to_owned(),
            Figures {
                cpu: 2_000,
                memory: 4 << 30,
            },
        )]);
        let table = node_table(&[node, other], &allocatable, Some(SortBy::Cpu));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME   CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)",
                "n2     1000m        <unknown>   0Mi             <unknown>",
                "n1     500m         25%         1024Mi          25%",
            ]
        );
    }
}

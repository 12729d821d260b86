//! `slipway top pods|nodes`: what pods ask for (requests) and may use at most (limits)
//! against what each node offers (allocatable). The agents report no usage figures (no
//! metrics API, no summary endpoint), so reservations are what can be shown.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use slipway_model::quantity::ParsedQuantity;

use super::target::Target;
use super::{api_failure, print};
use crate::exit::Failure;

const NOTE: &str = "Figures are reservations, not usage: node agents report no usage, so \
    `top` shows the CPU and memory pods request and are limited to, against each node's \
    allocatable.";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopCommand {
    /// Each pod's CPU and memory requests and limits, and its node.
    #[command(after_help = format!("{NOTE}\n\nExample:\n  slipway top pods -A"))]
    Pods {
        /// Pods in every namespace
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Only pods with these labels, e.g. app=web
        #[arg(short = 'l', long, value_name = "SELECTOR")]
        selector: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Each node's allocatable CPU and memory and how much of it pods request.
    #[command(after_help = format!("{NOTE}\n\nExample:\n  slipway top nodes"))]
    Nodes {
        #[command(flatten)]
        target: Target,
    },
}

/// CPU in millicores and memory in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Figures {
    cpu: i64,
    memory: i64,
}

impl Figures {
    fn add(&mut self, other: Figures) {
        self.cpu = self.cpu.saturating_add(other.cpu);
        self.memory = self.memory.saturating_add(other.memory);
    }

    fn max(self, other: Figures) -> Figures {
        Figures {
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
        }
    }

    /// The `cpu` and `memory` of a resource list; what is absent or unreadable is 0.
    fn of(
        list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    ) -> Figures {
        let read = |key: &str| {
            list.and_then(|l| l.get(key))
                .and_then(|q| ParsedQuantity::parse(&q.0).ok())
        };
        Figures {
            cpu: read("cpu").map_or(0, |q| q.as_milli()),
            memory: read("memory").map_or(0, |q| q.as_value()),
        }
    }
}

/// A pod's requests and limits as the scheduler counts them: its containers' sums, or the
/// largest init container's when that is more.
fn reserved(pod: &Pod) -> (Figures, Figures) {
    let Some(spec) = &pod.spec else {
        return (Figures::default(), Figures::default());
    };
    let (mut requests, mut limits) = (Figures::default(), Figures::default());
    for (r, l) in spec.containers.iter().map(container) {
        requests.add(r);
        limits.add(l);
    }
    for (r, l) in spec.init_containers.iter().flatten().map(container) {
        requests = requests.max(r);
        limits = limits.max(l);
    }
    (requests, limits)
}

/// A container's requests and limits.
fn container(container: &k8s_openapi::api::core::v1::Container) -> (Figures, Figures) {
    let resources = container.resources.as_ref();
    (
        Figures::of(resources.and_then(|r| r.requests.as_ref())),
        Figures::of(resources.and_then(|r| r.limits.as_ref())),
    )
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

fn running(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

pub(crate) async fn top(command: TopCommand) -> Result<(), Failure> {
    match command {
        TopCommand::Pods {
            all_namespaces,
            selector,
            target,
        } => {
            let session = target.connect()?;
            let pods: Api<Pod> = if all_namespaces {
                Api::all(session.client.clone())
            } else {
                Api::namespaced(session.client.clone(), &session.namespace)
            };
            let params = match &selector {
                Some(selector) => ListParams::default().labels(selector),
                None => ListParams::default(),
            };
            let listed = pods.list(&params).await.map_err(api_failure)?;
            let mut headers = vec![
                "NAME",
                "CPU(requests)",
                "CPU(limits)",
                "MEMORY(requests)",
                "MEMORY(limits)",
                "NODE",
            ];
            if all_namespaces {
                headers.insert(0, "NAMESPACE");
            }
            let rows: Vec<Vec<String>> = listed
                .items
                .iter()
                .filter(|p| running(p))
                .map(|pod| {
                    let (requests, limits) = reserved(pod);
                    let mut row = vec![
                        pod.metadata.name.clone().unwrap_or_default(),
                        cpu(requests.cpu),
                        cpu(limits.cpu),
                        memory(requests.memory),
                        memory(limits.memory),
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_else(|| "<none>".to_owned()),
                    ];
                    if all_namespaces {
                        row.insert(0, pod.metadata.namespace.clone().unwrap_or_default());
                    }
                    row
                })
                .collect();
            if rows.is_empty() {
                eprintln!("No resources found");
                return Ok(());
            }
            print(&render(&headers, &rows));
            Ok(())
        }
        TopCommand::Nodes { target } => {
            let session = target.connect()?;
            let nodes: Api<Node> = Api::all(session.client.clone());
            let nodes = nodes
                .list(&ListParams::default())
                .await
                .map_err(api_failure)?;
            let pods: Api<Pod> = Api::all(session.client.clone());
            let pods = pods
                .list(&ListParams::default())
                .await
                .map_err(api_failure)?;
            let mut per_node: BTreeMap<String, (Figures, Figures, usize)> = BTreeMap::new();
            for pod in pods.items.iter().filter(|p| running(p)) {
                let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                    continue;
                };
                let (requests, limits) = reserved(pod);
                let entry = per_node.entry(node).or_default();
                entry.0.add(requests);
                entry.1.add(limits);
                entry.2 += 1;
            }
            let headers = [
                "NAME",
                "CPU(requests)",
                "CPU%",
                "MEMORY(requests)",
                "MEMORY%",
                "CPU(limits)",
                "MEMORY(limits)",
                "PODS",
            ];
            let rows: Vec<Vec<String>> = nodes
                .items
                .iter()
                .map(|node| {
                    let name = node.metadata.name.clone().unwrap_or_default();
                    let allocatable =
                        Figures::of(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
                    let (requests, limits, count) =
                        per_node.get(&name).copied().unwrap_or_default();
                    vec![
                        name,
                        cpu(requests.cpu),
                        percent(requests.cpu, allocatable.cpu),
                        memory(requests.memory),
                        percent(requests.memory, allocatable.memory),
                        cpu(limits.cpu),
                        memory(limits.memory),
                        count.to_string(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!("No resources found");
                return Ok(());
            }
            print(&render(&headers, &rows));
            Ok(())
        }
    }
}

/// Columns under their headers, three spaces apart.
fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut all = vec![headers.iter().map(|&h| h.to_owned()).collect()];
    all.extend(rows.iter().cloned());
    crate::columns::align(&all, "   ").join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_reserve_their_containers_sum_or_their_largest_init_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}],
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "0.5", "memory": "64Mi"}}},
                ],
            },
        }))
        .unwrap();
        let (requests, limits) = reserved(&pod);
        assert_eq!(
            requests,
            Figures {
                cpu: 2_000,
                memory: 128 << 20
            }
        );
        assert_eq!(
            limits,
            Figures {
                cpu: 0,
                memory: 128 << 20
            }
        );
        assert_eq!(memory(requests.memory), "128Mi");
        assert_eq!(percent(500, 2_000), "25%");
        assert_eq!(percent(1, 0), "<unknown>");
    }
}

//! `metrics.k8s.io/v1beta1`: the live CPU and memory use of pods and nodes, which `kubectl
//! top` and `slipway top` read. As metrics-server does from kubelets, it is gathered from
//! each node agent's summary (`/stats/summary`), but when asked rather than by scraping,
//! so nothing runs while no one looks. A node that does not answer in time leaves its pods
//! out, as metrics-server leaves out what it could not scrape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_model::quantity::{Format, ParsedQuantity};
use slipway_model::summary::{CpuStats, MemoryStats, Summary};
use slipway_store::ListOptions;

use crate::filter::Filter;
use crate::handlers::json_response;
use crate::objects::{self, decode};
use crate::resources::{self, ResourceType};
use crate::status::{ApiError, ApiResult, from_store};
use crate::{ApiState, agents};

/// The group and version served.
const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// How long one agent may take to answer; past it, its node's figures are left out.
const AGENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The routes.
pub(crate) fn router() -> Router<Arc<ApiState>> {
    let base = "/apis/metrics.k8s.io/v1beta1";
    Router::new()
        .route(&format!("{base}/nodes"), read(list_nodes))
        .route(&format!("{base}/nodes/{{name}}"), read(get_node))
        .route(&format!("{base}/pods"), read(list_all_pods))
        .route(
            &format!("{base}/namespaces/{{namespace}}/pods"),
            read(list_pods),
        )
        .route(
            &format!("{base}/namespaces/{{namespace}}/pods/{{name}}"),
            read(get_pod),
        )
}

/// A GET route; other verbs are refused with a Status, as the figures are read-only.
fn read<H, T>(handler: H) -> MethodRouter<Arc<ApiState>>
where
    H: axum::handler::Handler<T, Arc<ApiState>>,
    T: 'static,
{
    get(handler).fallback(|method: Method| async move {
        ApiError::method_not_allowed(format!(
            "{method} is not supported: metrics are read-only (get, list)"
        ))
        .into_response()
    })
}

/// The query a list may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
    watch: Option<String>,
}

impl ListQuery {
    /// The selectors, checked against the kind the figures are of.
    fn filter(&self, of: &ResourceType) -> ApiResult<Filter> {
        if self
            .watch
            .as_deref()
            .is_some_and(|w| w != "false" && w != "0")
        {
            return Err(ApiError::method_not_allowed(
                "watch is not supported on metrics: list them again",
            ));
        }
        Filter::from_query(
            of,
            self.label_selector.as_deref(),
            self.field_selector.as_deref(),
        )
    }
}

fn served(plural: &str) -> ApiResult<&'static ResourceType> {
    resources::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
}

/// The stored objects of `resource` (in `namespace`, or everywhere) that pass `filter`.
async fn objects_of(
    state: &ApiState,
    resource: &ResourceType,
    namespace: Option<&str>,
    filter: &Filter,
) -> ApiResult<Vec<Value>> {
    let listed = state
        .store
        .list(
            &objects::prefix(resource, namespace),
            ListOptions::default(),
        )
        .await
        .map_err(|e| from_store(resource, "", e))?;
    let mut found = Vec::new();
    for kv in &listed.kvs {
        let object = decode(kv)?;
        if filter.matches(&object) {
            found.push(object);
        }
    }
    Ok(found)
}

/// The summaries of `nodes`, by node name. Nodes that cannot be asked or do not answer
/// in time are left out and logged.
async fn summaries(
    state: &ApiState,
    nodes: Vec<agents::Node>,
) -> ApiResult<HashMap<String, Summary>> {
    let credentials = agents::credentials(state)?;
    let calls = nodes.into_iter().map(|node| {
        let credentials = credentials.clone();
        async move {
            let outcome = summary_of(state, &node, &credentials).await;
            (node.name, outcome)
        }
    });
    let mut found = HashMap::new();
    for (node, outcome) in futures::future::join_all(calls).await {
        match outcome {
            Ok(summary) => {
                found.insert(node, summary);
            }
            Err(error) => tracing::warn!(%node, %error, "no usage figures from the node"),
        }
    }
    Ok(found)
}

/// The summary of one node's agent, or why there is none, worded for the log.
async fn summary_of(
    state: &ApiState,
    node: &agents::Node,
    credentials: &str,
) -> Result<Summary, String> {
    let address = node
        .address
        .as_deref()
        .ok_or("the Node does not say where its agent listens")?;
    let request = agents::request(
        Method::GET,
        address,
        "/stats/summary",
        credentials,
        Body::empty(),
    )
    .map_err(|e| e.message().to_owned())?;
    let answer = tokio::time::timeout(AGENT_TIMEOUT, agents::call(state, request))
        .await
        .map_err(|_| {
            format!(
                "the agent did not answer within {} s",
                AGENT_TIMEOUT.as_secs()
            )
        })??;
    serde_json::from_value(answer).map_err(|e| format!("the summary is not readable: {e}"))
}

/// CPU as metrics-server writes it: nanocores.
fn cpu(nano_cores: u64) -> String {
    format!("{nano_cores}n")
}

/// Memory as metrics-server writes it: a binary SI quantity (`10240Ki`).
fn memory(bytes: u64) -> String {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    ParsedQuantity::from_value(bytes, Format::BinarySI).to_string()
}

/// Usage from one CPU and memory reading, with when it was taken and over how long the
/// rate was measured; `None` while there is no rate yet.
fn usage(cpu_stats: Option<&CpuStats>, memory_stats: Option<&MemoryStats>) -> Option<Reading> {
    let cpu_stats = cpu_stats?;
    let nano_cores = cpu_stats.usage_nano_cores?;
    let working_set = memory_stats?.working_set_bytes?;
    Some(Reading {
        usage: json!({"cpu": cpu(nano_cores), "memory": memory(working_set)}),
        time: cpu_stats.time.clone(),
        window: cpu_stats.window_seconds,
    })
}

struct Reading {
    usage: Value,
    time: Option<String>,
    window: Option<f64>,
}

/// `10s`, `1.5s`: a window as metrics-server writes its duration.
fn window(seconds: Option<f64>) -> String {
    let seconds = seconds.unwrap_or_default();
    let rounded = (seconds * 1000.0).round() / 1000.0;
    format!("{rounded}s")
}

fn metadata(object: &Value, now: &str) -> Value {
    let mut metadata = json!({
        "name": object["metadata"]["name"],
        "creationTimestamp": now,
    });
    if let Some(namespace) = object["metadata"]["namespace"].as_str() {
        metadata["namespace"] = json!(namespace);
    }
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        metadata["labels"] = Value::Object(labels.clone());
    }
    metadata
}

/// A NodeMetrics for `node` from its summary, if it carries a rate.
fn node_metrics(node: &Value, summary: &Summary, now: &str) -> Option<Value> {
    let reading = usage(summary.node.cpu.as_ref(), summary.node.memory.as_ref())?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": metadata(node, now),
        "timestamp": reading.time.unwrap_or_else(|| now.to_owned()),
        "window": window(reading.window),
        "usage": reading.usage,
    }))
}

/// A PodMetrics for `pod` from its node's summary, if every running container of it has a
/// rate (metrics-server leaves out a pod with a container it has no figure for).
fn pod_metrics(pod: &Value, summary: &Summary, now: &str) -> Option<Value> {
    let namespace = pod["metadata"]["namespace"].as_str()?;
    let name = pod["metadata"]["name"].as_str()?;
    let uid = pod["metadata"]["uid"].as_str();
    let stats = summary.pods.iter().find(|p| {
        p.pod_ref.namespace == namespace
            && p.pod_ref.name == name
            && uid.is_none_or(|uid| p.pod_ref.uid.is_empty() || p.pod_ref.uid == uid)
    })?;
    if stats.containers.is_empty() {
        return None;
    }
    let mut containers = Vec::new();
    let (mut time, mut window_seconds) = (None, None);
    for container in &stats.containers {
        let reading = usage(container.cpu.as_ref(), container.memory.as_ref())?;
        time = time.or(reading.time);
        window_seconds = window_seconds.or(reading.window);
        containers.push(json!({"name": container.name, "usage": reading.usage}));
    }
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": metadata(pod, now),
        "timestamp": time.unwrap_or_else(|| now.to_owned()),
        "window": window(window_seconds),
        "containers": containers,
    }))
}

fn list(kind: &str, items: Vec<Value>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}),
    )
}

fn now(state: &ApiState) -> String {
    objects::timestamp(state.clock.now())
}

/// The NodeMetrics of those of `nodes` whose agents answer with a rate.
async fn node_figures(state: &ApiState, nodes: &[Value]) -> ApiResult<Vec<Value>> {
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let summaries = summaries(state, nodes.iter().map(agents::Node::of).collect()).await?;
    let now = now(state);
    Ok(nodes
        .iter()
        .filter_map(|node| {
            let summary = summaries.get(node["metadata"]["name"].as_str()?)?;
            node_metrics(node, summary, &now)
        })
        .collect())
}

/// The PodMetrics of those of `pods` that run and have a rate, asking each of their
/// nodes once.
async fn pod_figures(state: &ApiState, pods: &[Value]) -> ApiResult<Vec<Value>> {
    let mut by_node: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for pod in pods {
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    if by_node.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<agents::Node> = agents::nodes(state)
        .await?
        .into_iter()
        .filter(|node| by_node.contains_key(node.name.as_str()))
        .collect();
    let summaries = summaries(state, wanted).await?;
    let now = now(state);
    let mut items = Vec::new();
    for (node, pods) in by_node {
        let Some(summary) = summaries.get(node) else {
            continue;
        };
        items.extend(
            pods.into_iter()
                .filter_map(|pod| pod_metrics(pod, summary, &now)),
        );
    }
    Ok(items)
}

/// The stored object `name` of `resource`, if there is one.
async fn one(
    state: &ApiState,
    resource: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Option<Value>> {
    let found = state
        .store
        .get(&objects::key(resource, namespace, name), None)
        .await
        .map_err(|e| from_store(resource, name, e))?;
    found.as_ref().map(decode).transpose()
}

async fn list_nodes(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let listed = async {
        let nodes = served("nodes")?;
        let filter = query.filter(nodes)?;
        node_figures(&state, &objects_of(&state, nodes, None, &filter).await?).await
    };
    match listed.await {
        Ok(items) => list("NodeMetricsList", items),
        Err(e) => e.into_response(),
    }
}

async fn get_node(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    let found = async {
        let node = one(&state, served("nodes")?, None, &name).await?;
        node_figures(&state, node.as_slice()).await
    };
    match found.await {
        Ok(items) => first(items, "nodemetrics", &name),
        Err(e) => e.into_response(),
    }
}

async fn list_all_pods(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<ListQuery>,
) -> Response {
    pods_response(&state, None, &query).await
}

async fn list_pods(
    State(state): State<Arc<ApiState>>,
    Path(namespace): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    pods_response(&state, Some(&namespace), &query).await
}

async fn pods_response(state: &ApiState, namespace: Option<&str>, query: &ListQuery) -> Response {
    let listed = async {
        let pods = served("pods")?;
        let filter = query.filter(pods)?;
        pod_figures(state, &objects_of(state, pods, namespace, &filter).await?).await
    };
    match listed.await {
        Ok(items) => list("PodMetricsList", items),
        Err(e) => e.into_response(),
    }
}

async fn get_pod(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let found = async {
        let pod = one(&state, served("pods")?, Some(&namespace), &name).await?;
        pod_figures(&state, pod.as_slice()).await
    };
    match found.await {
        Ok(items) => first(items, "podmetrics", &format!("{namespace}/{name}")),
        Err(e) => e.into_response(),
    }
}

/// The one object asked for, or metrics-server's 404 when there are no figures for it (it
/// does not exist, does not run, or has no rate yet).
fn first(items: Vec<Value>, kind: &str, name: &str) -> Response {
    match items.into_iter().next() {
        Some(item) => json_response(StatusCode::OK, &item),
        None => ApiError::not_found_named(kind, "metrics.k8s.io", name).into_response(),
    }
}

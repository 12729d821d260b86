//! Prometheus metrics at `/metrics`: requests by verb, resource and code with latency
//! histograms, open watches, and the latency of every Store operation (through
//! [`MeteredStore`], which wraps the backend).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use slipway_store::{
    Deleted, KeyValue, LeaseId, ListOptions, ListResult, Result, Revision, Store, WatchStream,
};

/// Histogram bucket bounds in seconds, as Kubernetes' request latency uses.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (bound, count) in BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    /// (verb, resource, code) → latency of those requests.
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// Store operation → latency.
    store: Mutex<BTreeMap<&'static str, Histogram>>,
    watches: AtomicI64,
}

/// Keeps a watch counted as open until dropped.
pub struct OpenWatch(Arc<Metrics>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.watches.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn request(&self, verb: &str, resource: &str, code: u16, took: Duration) {
        let mut requests = self.requests.lock().expect("metrics lock");
        requests
            .entry((verb.to_owned(), resource.to_owned(), code))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Counts a watch as open until the returned guard is dropped.
    pub fn watch_opened(self: &Arc<Self>) -> OpenWatch {
        self.watches.fetch_add(1, Ordering::Relaxed);
        OpenWatch(self.clone())
    }

    fn store_operation(&self, operation: &'static str, took: Duration) {
        let mut store = self.store.lock().expect("metrics lock");
        store
            .entry(operation)
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let requests = self.requests.lock().expect("metrics lock").clone();
        out.push_str("# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), histogram) in &requests {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {}",
                histogram.count
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Time to the response head, by verb, resource and code.\n");
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource, code), histogram) in &requests {
            let labels = format!("verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"");
            histogram.render(&mut out, "apiserver_request_duration_seconds", &labels);
        }
        out.push_str("# HELP apiserver_longrunning_requests Watches open now.\n");
        out.push_str("# TYPE apiserver_longrunning_requests gauge\n");
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests{{verb=\"watch\"}} {}",
            self.watches.load(Ordering::Relaxed)
        );
        out.push_str("# HELP slipway_store_operation_duration_seconds Store operation latency.\n");
        out.push_str("# TYPE slipway_store_operation_duration_seconds histogram\n");
        let store = self.store.lock().expect("metrics lock").clone();
        for (operation, histogram) in &store {
            let labels = format!("operation=\"{operation}\"");
            histogram.render(
                &mut out,
                "slipway_store_operation_duration_seconds",
                &labels,
            );
        }
        out
    }
}

/// A [`Store`] that times every operation into [`Metrics`].
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }

    async fn timed<T>(&self, operation: &'static str, f: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = f.await;
        self.metrics.store_operation(operation, started.elapsed());
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<KeyValue> {
        self.timed("create", self.inner.create(key, value, lease))
            .await
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        self.timed("get", self.inner.get(key, revision)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        self.timed("list", self.inner.list(prefix, options)).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue> {
        self.timed("update", self.inner.update(key, value, expected, lease))
            .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        self.timed("delete", self.inner.delete(key, expected)).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.timed("watch", self.inner.watch(prefix, after)).await
    }

    async fn revision(&self) -> Result<Revision> {
        self.timed("revision", self.inner.revision()).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.timed("compact", self.inner.compact(revision)).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.timed("grant_lease", self.inner.grant_lease(ttl)).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.timed("keep_alive", self.inner.keep_alive(lease)).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.timed("revoke_lease", self.inner.revoke_lease(lease))
            .await
    }
}

/// The verb Kubernetes names a request by, from its method and target.
pub fn verb(method: &axum::http::Method, named: bool, watch: bool) -> &'static str {
    use axum::http::Method;
    match (method, named) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = Arc::new(Metrics::default());
        metrics.request("get", "pods", 200, Duration::from_micros(700));
        metrics.request("get", "pods", 200, Duration::from_millis(30));
        metrics.request("create", "pods", 409, Duration::from_millis(2));
        let watch = metrics.watch_opened();
        let text = metrics.render();
        assert!(
            text.contains("apiserver_request_total{verb=\"get\",resource=\"pods\",code=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",code=\"200\",le=\"0.001\"} 1"), "{text}");
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",code=\"200\",le=\"0.05\"} 2"), "{text}");
        assert!(
            text.contains("apiserver_longrunning_requests{verb=\"watch\"} 1"),
            "{text}"
        );
        drop(watch);
        assert!(
            metrics
                .render()
                .contains("apiserver_longrunning_requests{verb=\"watch\"} 0")
        );
    }
}

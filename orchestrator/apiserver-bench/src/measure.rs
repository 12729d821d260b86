//! Timing helpers: run a bounded number of operations across concurrent clients within a
//! time cap, keep every latency, and print each row of ours beside its floor.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The latencies of a run and how long the whole run took.
pub(crate) struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Sample {
    pub(crate) fn new(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        Sample { latencies, elapsed }
    }

    /// How many operations completed; a time cap may stop a run short of its count.
    pub(crate) fn count(&self) -> usize {
        self.latencies.len()
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The nearest-rank percentile, so p99 of 100 samples is a latency that happened.
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }
}

/// Runs up to `total` operations, `op(i)` for i in 0..total, over `clients` concurrent
/// tasks. No operation starts after `cap`, so the indices done are always 0..count.
pub(crate) async fn concurrent<F, Fut>(
    clients: usize,
    total: usize,
    cap: Duration,
    op: F,
) -> anyhow::Result<Sample>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let op = op.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while began.elapsed() < cap {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let started = Instant::now();
                    op(i).await?;
                    latencies.push(started.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Sample::new(latencies, began.elapsed()))
}

/// Watch delivery: `writes` sequential writes, each timed from its start to its arrival at
/// every watcher. Each receiver yields the arrival time of each write, in write order.
/// Ops/s counts deliveries (writes × watchers).
pub(crate) async fn deliveries<F, Fut>(
    receivers: Vec<JoinHandle<anyhow::Result<Vec<Instant>>>>,
    writes: usize,
    write: F,
) -> anyhow::Result<Sample>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let began = Instant::now();
    let mut sent = Vec::with_capacity(writes);
    for i in 0..writes {
        sent.push(Instant::now());
        write(i).await?;
    }
    let mut latencies = Vec::with_capacity(writes * receivers.len());
    for receiver in receivers {
        let arrivals = receiver.await??;
        latencies.extend(arrivals.iter().zip(&sent).map(|(got, sent)| *got - *sent));
    }
    Ok(Sample::new(latencies, began.elapsed()))
}

/// One line of the table: the API server beside the bare store.
pub(crate) struct Row {
    pub(crate) backend: &'static str,
    pub(crate) operation: String,
    pub(crate) clients: usize,
    pub(crate) ours: Sample,
    pub(crate) floor: Sample,
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// Prints the rows as a Markdown table.
pub(crate) fn print_table(rows: &[Row]) {
    println!(
        "| backend | operation | clients | ops/s | p50 | p99 | floor ops/s | floor p50 | floor p99 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {} |",
            row.backend,
            row.operation,
            row.clients,
            row.ours.per_second(),
            micros(row.ours.percentile(0.50)),
            micros(row.ours.percentile(0.99)),
            row.floor.per_second(),
            micros(row.floor.percentile(0.50)),
            micros(row.floor.percentile(0.99)),
        );
    }
}

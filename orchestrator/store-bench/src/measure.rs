//! Timing helpers: run a bounded number of operations across concurrent clients, keep
//! every latency, and print rows of ours beside the floor.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }
}

/// Runs `total` operations, `op(i)` for i in 0..total, over `clients` concurrent tasks.
pub(crate) async fn concurrent<F, Fut>(
    clients: usize,
    total: usize,
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
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(latencies);
                    }
                    let started = Instant::now();
                    op(i).await?;
                    latencies.push(started.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Sample::new(latencies, began.elapsed()))
}

/// One line of the table: our backend beside its floor.
pub(crate) struct Row {
    backend: &'static str,
    operation: String,
    clients: usize,
    ours: Sample,
    floor: Sample,
}

impl Row {
    pub(crate) fn new(
        backend: &'static str,
        operation: &str,
        clients: usize,
        ours: Sample,
        floor: Sample,
    ) -> Self {
        Row {
            backend,
            operation: operation.to_owned(),
            clients,
            ours,
            floor,
        }
    }
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
        "| backend | operation | clients | ops/s | p50 | p99 | floor ops/s | floor p50 | floor p99 | p50 / floor p50 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {} | {:.2} |",
            row.backend,
            row.operation,
            row.clients,
            row.ours.per_second(),
            micros(row.ours.percentile(0.50)),
            micros(row.ours.percentile(0.99)),
            row.floor.per_second(),
            micros(row.floor.percentile(0.50)),
            micros(row.floor.percentile(0.99)),
            row.ours.percentile(0.50).as_secs_f64() / row.floor.percentile(0.50).as_secs_f64(),
        );
    }
}

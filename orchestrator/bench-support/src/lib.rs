//! What the bench binaries share: run a bounded number of operations across concurrent
//! clients, keep every latency, and print each row of ours beside its floor, either as
//! per-operation latencies or as plain figures.
//!
//! Errors stay generic, so each binary keeps its own error type and this library needs
//! none; an error only has to absorb a task that panicked.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

/// The latencies of a run and how long the whole run took.
pub struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Sample {
    pub fn new(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        Sample { latencies, elapsed }
    }

    /// Several runs of the same measurement as one: all their latencies, their times added.
    pub fn merged(samples: impl IntoIterator<Item = Sample>) -> Self {
        let mut latencies = Vec::new();
        let mut elapsed = Duration::ZERO;
        for sample in samples {
            latencies.extend(sample.latencies);
            elapsed += sample.elapsed;
        }
        Sample::new(latencies, elapsed)
    }

    /// How many operations completed; a time cap may stop a run short of its count.
    pub fn count(&self) -> usize {
        self.latencies.len()
    }

    /// Operations completed per second of the run.
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The nearest-rank percentile, so p99 of 100 samples is a latency that happened.
    pub fn percentile(&self, p: f64) -> Duration {
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
pub async fn concurrent<F, Fut, E>(
    clients: usize,
    total: usize,
    cap: Duration,
    op: F,
) -> Result<Sample, E>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: From<JoinError> + Send + 'static,
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
                Ok::<_, E>(latencies)
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
pub async fn deliveries<F, Fut, E>(
    receivers: Vec<JoinHandle<Result<Vec<Instant>, E>>>,
    writes: usize,
    write: F,
) -> Result<Sample, E>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<JoinError>,
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

/// One line of the table: ours beside its floor.
pub struct Row {
    backend: &'static str,
    operation: String,
    clients: usize,
    ours: Sample,
    floor: Sample,
}

impl Row {
    pub fn new(
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

/// What the table ends with, after the floor's columns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ratio {
    /// The column `p50 / floor p50`.
    Shown,
    /// Nothing.
    Omitted,
    /// The columns `added p50` and `added p99`, ours minus the floor: for a layer that sits
    /// in front of its floor, such as a proxy, whose cost is the difference.
    Added,
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// A difference of latencies, signed.
fn added(ours: Duration, floor: Duration) -> String {
    if ours >= floor {
        format!("+{}", micros(ours - floor))
    } else {
        format!("−{}", micros(floor - ours))
    }
}

/// Prints the rows as a Markdown table.
pub fn print_table(rows: &[Row], ratio: Ratio) {
    let (ratio_head, ratio_align) = match ratio {
        Ratio::Shown => (" p50 / floor p50 |", "---:|"),
        Ratio::Omitted => ("", ""),
        Ratio::Added => (" added p50 | added p99 |", "---:|---:|"),
    };
    println!(
        "| backend | operation | clients | ops/s | p50 | p99 | floor ops/s | floor p50 | floor p99 |{ratio_head}"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|{ratio_align}");
    for row in rows {
        let ours_p50 = row.ours.percentile(0.50);
        let floor_p50 = row.floor.percentile(0.50);
        let ratio_cell = match ratio {
            Ratio::Shown => format!(" {:.2} |", ours_p50.as_secs_f64() / floor_p50.as_secs_f64()),
            Ratio::Omitted => String::new(),
            Ratio::Added => format!(
                " {} | {} |",
                added(ours_p50, floor_p50),
                added(row.ours.percentile(0.99), row.floor.percentile(0.99))
            ),
        };
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {} |{ratio_cell}",
            row.backend,
            row.operation,
            row.clients,
            row.ours.per_second(),
            micros(ours_p50),
            micros(row.ours.percentile(0.99)),
            row.floor.per_second(),
            micros(floor_p50),
            micros(row.floor.percentile(0.99)),
        );
    }
}

/// One line of a figures table: what was measured, what we got, and the floor beside it.
pub struct Figure {
    /// What was measured.
    pub row: String,
    /// Our figure, with its unit.
    pub figure: String,
    /// The floor measured in the same run, with its unit, or `—` when there is none.
    pub floor: String,
}

/// Prints figures as a Markdown table, for benches whose rows are not per-operation
/// latencies.
pub fn print_figures(figures: &[Figure]) {
    println!("| measurement | figure | floor |");
    println!("|---|---:|---:|");
    for figure in figures {
        println!("| {} | {} | {} |", figure.row, figure.figure, figure.floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_are_latencies_that_happened() {
        let sample = Sample::new((1..=100).rev().map(ms).collect(), ms(1));
        assert_eq!(sample.percentile(0.50), ms(50));
        assert_eq!(sample.percentile(0.99), ms(99));
        assert_eq!(sample.percentile(1.0), ms(100));
        let one = Sample::new(vec![ms(7)], ms(1));
        assert_eq!(one.percentile(0.01), ms(7));
        assert_eq!(
            Sample::new(Vec::new(), ms(1)).percentile(0.5),
            Duration::ZERO
        );
    }

    #[test]
    fn added_latency_is_signed() {
        assert_eq!(
            added(Duration::from_micros(140), Duration::from_micros(40)),
            "+100 µs"
        );
        assert_eq!(
            added(Duration::from_micros(40), Duration::from_micros(41)),
            "−1 µs"
        );
        assert_eq!(added(ms(52), ms(2)), "+50.0 ms");
    }

    #[tokio::test]
    async fn concurrent_runs_each_index_once() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let sample = concurrent(4, 50, Duration::MAX, move |i| {
            let record = record.clone();
            async move {
                record.lock().expect("not poisoned").push(i);
                Ok::<_, JoinError>(())
            }
        })
        .await
        .expect("no operation fails");
        assert_eq!(sample.count(), 50);
        let mut seen = seen.lock().expect("not poisoned").clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_spent_cap_starts_nothing() {
        let sample = concurrent(2, 10, Duration::ZERO, |_| async { Ok::<_, JoinError>(()) })
            .await
            .expect("no operation fails");
        assert_eq!(sample.count(), 0);
    }
}

//! The workloads: short GETs one at a time, on one kept-alive connection or on a new
//! connection each, interleaved across the ways in rounds so that a noisy moment of the
//! machine falls on all of them alike; and many kept-alive clients at once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use slipway_bench_support::{Sample, concurrent};
use tokio::time::Instant;

use crate::http::Client;
use crate::rig::Target;

/// The longest any one request may take before the run fails.
const REQUEST_CAP: Duration = Duration::from_secs(5);
/// Requests each way serves before the timed ones, to fill caches and settle the runtime.
const WARM_UP: usize = 50;

/// How each request reaches the server.
#[derive(Clone, Copy)]
pub(crate) enum Connection {
    /// On one connection opened beforehand.
    KeptAlive,
    /// On a new connection, opened and closed within the request's time.
    New,
}

/// The latencies of one way and the time spent on it alone, so ops/s is 1 / mean.
#[derive(Clone, Default)]
pub(crate) struct Timed {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Timed {
    pub(crate) fn count(&self) -> usize {
        self.latencies.len()
    }

    pub(crate) fn sample(self) -> Sample {
        Sample::new(self.latencies, self.elapsed)
    }
}

async fn bounded(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::time::timeout(REQUEST_CAP, work)
        .await
        .with_context(|| format!("no answer within {REQUEST_CAP:?}"))?
}

async fn request(target: &Target, kept: Option<&mut Client>) -> anyhow::Result<()> {
    bounded(async {
        match kept {
            Some(client) => client.get().await,
            None => Client::new(target.connect().await?).get_once().await,
        }
    })
    .await
}

/// Up to `count` requests through each target, one at a time, in `rounds` rounds that each
/// give every target its share in turn. No round starts after `cap`.
pub(crate) async fn one_at_a_time(
    targets: &[&Target],
    connection: Connection,
    count: usize,
    rounds: usize,
    cap: Duration,
) -> anyhow::Result<Vec<Timed>> {
    let mut clients = Vec::with_capacity(targets.len());
    for target in targets {
        let mut client = match connection {
            Connection::KeptAlive => Some(Client::new(target.connect().await?)),
            Connection::New => None,
        };
        for _ in 0..WARM_UP {
            request(target, client.as_mut()).await?;
        }
        clients.push(client);
    }
    let share = count.div_ceil(rounds.max(1));
    let deadline = Instant::now() + cap;
    let mut timed = vec![Timed::default(); targets.len()];
    while timed.iter().any(|t| t.count() < count) && Instant::now() < deadline {
        for ((target, client), timed) in targets.iter().zip(&mut clients).zip(&mut timed) {
            let began = Instant::now();
            for _ in 0..share.min(count - timed.count()) {
                let started = Instant::now();
                request(target, client.as_mut()).await?;
                timed.latencies.push(started.elapsed());
            }
            timed.elapsed += began.elapsed();
        }
    }
    Ok(timed)
}

/// Up to `count` requests through `target` from `clients` clients at once, each on a
/// connection of its own kept alive, for at most `cap`.
pub(crate) async fn at_once(
    target: &Target,
    clients: usize,
    count: usize,
    cap: Duration,
) -> anyhow::Result<Sample> {
    let mut idle = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut client = Client::new(target.connect().await?);
        request(target, Some(&mut client)).await?;
        idle.push(client);
    }
    // As many connections as clients, so each client finds one idle whenever it looks.
    let idle = Arc::new(Mutex::new(idle));
    concurrent(clients, count, cap, move |_| {
        let idle = idle.clone();
        async move {
            let mut client = idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .context("no idle connection")?;
            bounded(client.get()).await?;
            idle.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(client);
            Ok(())
        }
    })
    .await
}

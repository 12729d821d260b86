//! The scheduler, run inside `slipway server` as a kube-rs client of its own API (D2), as
//! kube-scheduler is one of the API server's: it watches Nodes and Pods, picks a node for
//! every pending pod that names one of its profiles, and binds it through `pods/binding`.
//!
//! What it decides is kube-scheduler's default behaviour for the plugins it has:
//! [`filter`] (NodeUnschedulable, TaintToleration, NodeAffinity, NodeResourcesFit, with
//! not-ready nodes treated as tainted), [`score`] (LeastAllocated or MostAllocated,
//! BalancedAllocation, preferred node affinity, PreferNoSchedule taints) and the
//! [`diagnosis`] message of a pod that fits nowhere. [`profile`] lists the profiles, chosen
//! by `spec.schedulerName`: `default-scheduler` spreads, `slipway-bin-packing` packs.
//! These, the [`cache`] and the [`queue`] do no IO; [`scheduler`] is the loop that does.

pub mod cache;
pub mod diagnosis;
pub mod filter;
pub mod profile;
pub mod queue;
pub mod resources;
pub mod scheduler;
pub mod score;

#[cfg(test)]
mod fixtures;

use kube::Client;
use slipway_controllers::leader::{self, Election};
use slipway_controllers::reconciler::Error;
use tokio_util::sync::CancellationToken;

/// The Lease in `kube-system` whose holder schedules, apart from the controllers' own, as
/// kube-scheduler holds its own.
pub const LEASE: &str = "slipway-scheduler";

/// Schedules while this server holds the `slipway-scheduler` Lease, until `shutdown` is
/// cancelled: of several servers on one store, exactly one schedules.
///
/// # Errors
///
/// None today; the signature matches `slipway_controllers::run`.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), Error> {
    let election = Election::new(LEASE, leader::identity());
    let leading = client.clone();
    // Boxed: the scheduler's state lives in this one future.
    Box::pin(election.run(client, shutdown, move |term| {
        scheduler::schedule(leading.clone(), term)
    }))
    .await
}

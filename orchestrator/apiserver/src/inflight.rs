//! Limits on requests in flight, as kube-apiserver's `--max-requests-inflight` and
//! `--max-mutating-requests-inflight`: past them a request is answered 429 at once instead
//! of queueing without bound, and clients back off. Watches are long-running and exempt;
//! they are bounded by their own cost, not by this budget.

use std::sync::Arc;

use axum::http::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many requests may be served at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Reads (get, list, discovery): kube-apiserver's default is 400.
    pub reads: usize,
    /// Writes (create, update, patch, delete): kube-apiserver's default is 200.
    pub writes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reads: 400,
            writes: 200,
        }
    }
}

/// The two budgets of requests in flight.
#[derive(Debug)]
pub struct Inflight {
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
}

impl Inflight {
    /// Budgets of the given sizes.
    pub fn new(limits: Limits) -> Self {
        Inflight {
            reads: Arc::new(Semaphore::new(limits.reads)),
            writes: Arc::new(Semaphore::new(limits.writes)),
        }
    }

    /// A place for a request with `method`, held until the permit drops, or `None` when
    /// the budget is spent.
    pub fn admit(&self, method: &Method) -> Option<OwnedSemaphorePermit> {
        let budget = if is_mutating(method) {
            &self.writes
        } else {
            &self.reads
        };
        Arc::clone(budget).try_acquire_owned().ok()
    }
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_budget_is_spent_and_given_back_on_its_own() {
        let inflight = Inflight::new(Limits {
            reads: 1,
            writes: 1,
        });
        let write = inflight.admit(&Method::POST).expect("the first write fits");
        assert!(
            inflight.admit(&Method::DELETE).is_none(),
            "writes are spent"
        );
        let read = inflight
            .admit(&Method::GET)
            .expect("reads have their own budget");
        assert!(inflight.admit(&Method::GET).is_none());
        drop(write);
        assert!(
            inflight.admit(&Method::PATCH).is_some(),
            "a finished write frees its place"
        );
        drop(read);
    }
}

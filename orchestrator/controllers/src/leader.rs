//! Leader election through a coordination.k8s.io Lease, as client-go's leaderelection
//! package does it: of several servers sharing one store, the one holding the Lease runs the
//! controllers. The holder renews the Lease every retry period; a candidate takes it over
//! once it has seen no renewal for the lease duration (timed on its own clock, so clock
//! skew between servers does not matter); a holder that cannot renew within its deadline
//! steps down; a holder that stops hands the Lease back at once.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::{Kind, Recorder};
use crate::reconciler::Error;

/// This server's name in a Lease: host and process, unique among servers that share it.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "slipway".into());
    format!("{host}_{}", std::process::id())
}

/// One server's candidacy for one Lease.
#[derive(Debug, Clone)]
pub struct Election {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// Who this server is, as written into `holderIdentity`.
    pub identity: String,
    /// How long a silent holder keeps the Lease (15 s, as kube-controller-manager).
    pub lease_duration: Duration,
    /// How long a holder may fail to renew before it steps down (10 s).
    pub renew_deadline: Duration,
    /// How often a holder renews and a candidate tries (2 s).
    pub retry_period: Duration,
}

impl Election {
    /// kube-controller-manager's timings for the Lease `kube-system/name`.
    pub fn new(name: &str, identity: String) -> Self {
        Election {
            namespace: "kube-system".into(),
            name: name.into(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Runs `lead` for as long as this server holds the Lease, campaigning again after
    /// stepping down, until `shutdown` is cancelled. `lead` gets a token cancelled when
    /// leadership ends.
    ///
    /// # Errors
    ///
    /// Whatever `lead` fails with: the caller decides whether the server can go on.
    pub async fn run<F, Fut>(
        &self,
        client: Client,
        shutdown: CancellationToken,
        lead: F,
    ) -> Result<(), Error>
    where
        F: Fn(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        let events = Recorder::new(client, "leader-election");
        let mut observed: Option<(String, Instant)> = None;
        loop {
            // Campaign.
            loop {
                if self.try_hold(&leases, &mut observed).await {
                    break;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(self.retry_period) => {}
                }
            }
            tracing::info!(identity = %self.identity, lease = %self.name, "leading");
            self.announce(&leases, &events).await;
            // Lead, renewing, until stopped or unable to renew in time.
            let term = shutdown.child_token();
            let leading = lead(term.clone());
            tokio::pin!(leading);
            let mut renewed = Instant::now();
            let stepped_down = loop {
                tokio::select! {
                    result = &mut leading => {
                        self.release(&leases).await;
                        return result;
                    }
                    () = tokio::time::sleep(self.retry_period) => {
                        if self.try_hold(&leases, &mut observed).await {
                            renewed = Instant::now();
                        } else if renewed.elapsed() > self.renew_deadline {
                            break true;
                        }
                    }
                    () = shutdown.cancelled() => break false,
                }
            };
            term.cancel();
            let result = leading.await;
            if !stepped_down {
                self.release(&leases).await;
                return result;
            }
            tracing::warn!(identity = %self.identity, lease = %self.name, "lost the lease; stepped down");
            result?;
        }
    }

    /// Takes or renews the Lease; false when another holds it or a write lost a race.
    async fn try_hold(
        &self,
        leases: &Api<Lease>,
        observed: &mut Option<(String, Instant)>,
    ) -> bool {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let current = match leases.get_opt(&self.name).await {
            Ok(current) => current,
            Err(e) => {
                tracing::debug!(error = %e, "reading the lease failed");
                return false;
            }
        };
        let Some(current) = current else {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": seconds,
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
            }))
            .expect("a well-formed Lease");
            return leases.create(&PostParams::default(), &lease).await.is_ok();
        };
        let version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        // Expiry is timed from when this server last saw the record change.
        let seen_at = match observed {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                *observed = Some((version.clone(), Instant::now()));
                Instant::now()
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_for = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        let mine = holder == self.identity;
        if !mine && !holder.is_empty() && seen_at.elapsed() < held_for {
            return false;
        }
        let mut next = current;
        let spec = next.spec.get_or_insert_with(Default::default);
        if !mine {
            spec.acquire_time = serde_json::from_value(json!(now)).ok();
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = serde_json::from_value(json!(now)).ok();
        match leases
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(written) => {
                *observed = written
                    .metadata
                    .resource_version
                    .map(|version| (version, Instant::now()));
                true
            }
            Err(_) => false,
        }
    }

    /// Records Kubernetes' `LeaderElection` Event on the Lease: who leads from now on.
    async fn announce(&self, leases: &Api<Lease>, events: &Recorder) {
        let Ok(Some(lease)) = leases.get_opt(&self.name).await else {
            return;
        };
        let reference = ObjectReference {
            api_version: Some("coordination.k8s.io/v1".into()),
            kind: Some("Lease".into()),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: lease.metadata.uid,
            resource_version: lease.metadata.resource_version,
            field_path: None,
        };
        let message = format!("{} became leader", self.identity);
        events
            .record(&reference, Kind::Normal, "LeaderElection", &message)
            .await;
    }

    /// Hands the Lease back so another server need not wait out its duration.
    async fn release(&self, leases: &Api<Lease>) {
        let Ok(Some(mut current)) = leases.get_opt(&self.name).await else {
            return;
        };
        let spec = current.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = leases
            .replace(&self.name, &PostParams::default(), &current)
            .await
        {
            tracing::debug!(error = %e, "handing back the lease failed; it will expire");
        }
    }
}

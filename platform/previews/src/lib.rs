//! Pull-request previews (DESIGN D6, D7): every pull request of a registered repository gets
//! its own namespace, URL and feedback on GitHub, and loses them when it closes or expires.
//!
//! - [`webhook`]: `POST /webhooks/github`, which verifies a delivery, stores it and wakes
//!   its preview before answering, and does nothing else.
//! - [`Previews`]: the reconciler. It works from stored state, keyed by repository and pull
//!   request, re-reading the pull request from GitHub each time, so lost, repeated and
//!   reordered deliveries are harmless; a periodic re-check covers what no delivery said.
//! - [`api`]: repositories and previews under `/slipway/v1/`.
//!
//! GitHub is reached only through [`slipway_github::GitHub`], made per repository by a
//! [`Connect`]; the cluster through the platform's client (namespaces and their quota, limit
//! range and binding) and, for what the repository's manifests ask, a client with the
//! squad's own rights, so a preview can do no more than its squad could by hand.

pub mod api;
pub mod cluster;
pub mod commands;
pub mod feedback;
pub mod manifests;
pub mod naming;
mod queue;
mod reconcile;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use slipway_clock::SharedClock;
use slipway_github::GitHub;
use slipway_platform_db::{Access, Db, Phase, Repo, RepoSecrets};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use naming::UrlBase;
pub use reconcile::{APPROVE_LABEL, Action, KEEP_LABEL};

/// Makes the GitHub client of a repository from its credentials.
pub trait Connect: Send + Sync {
    /// A client for `repo`.
    fn connect(
        &self,
        repo: &Repo,
        secrets: &RepoSecrets,
    ) -> Result<Arc<dyn GitHub>, slipway_github::Error>;
}

/// The real [`Connect`]: octocrab against `base_uri` with each repository's token or App.
#[derive(Clone, Debug)]
pub struct RestConnect {
    options: slipway_github::client::Options,
}

impl RestConnect {
    /// Clients of the GitHub REST API at `base_uri`, with the default patience.
    pub fn new(base_uri: &str) -> RestConnect {
        RestConnect {
            options: slipway_github::client::Options {
                base_uri: base_uri.to_owned(),
                ..slipway_github::client::Options::default()
            },
        }
    }
}

impl Connect for RestConnect {
    fn connect(
        &self,
        repo: &Repo,
        secrets: &RepoSecrets,
    ) -> Result<Arc<dyn GitHub>, slipway_github::Error> {
        let credentials = match &secrets.access {
            Access::Token(token) => slipway_github::client::Credentials::Token(token.clone()),
            Access::App {
                app_id,
                private_key,
            } => slipway_github::client::Credentials::App {
                app_id: *app_id,
                private_key_pem: private_key.clone(),
            },
        };
        slipway_github::client::connect(&self.options, credentials, &repo_ref(repo))
    }
}

/// A client of the API with the rights of the named squad.
pub type SquadClient = Arc<dyn Fn(&str) -> Client + Send + Sync>;

/// How previews behave.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where previews are reached.
    pub urls: UrlBase,
    /// How often every registered repository's open pull requests are checked. Default 10 min.
    pub recheck_every: Duration,
    /// How long a rollout may take before the preview fails. Default 5 min.
    pub rollout_deadline: Duration,
    /// How often a rollout in progress is looked at. Default 250 ms.
    pub rollout_poll: Duration,
    /// How long before expiry the warning is posted. Default 1 h.
    pub warn_before: Duration,
    /// How long a preview may go without a request through a gateway before its
    /// Deployments are scaled to zero. Default 2 h.
    pub idle_after: Duration,
    /// Previews reconciled at once. Default 4.
    pub workers: usize,
}

impl Settings {
    /// The defaults, with previews at `urls`.
    pub fn new(urls: UrlBase) -> Settings {
        Settings {
            urls,
            recheck_every: Duration::from_secs(600),
            rollout_deadline: Duration::from_secs(300),
            rollout_poll: Duration::from_millis(250),
            warn_before: Duration::from_secs(3600),
            idle_after: Duration::from_secs(2 * 3600),
            workers: 4,
        }
    }
}

/// What can go wrong reconciling a preview; each is retried by the error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform database failed.
    #[error(transparent)]
    Db(#[from] slipway_platform_db::Error),
    /// GitHub failed.
    #[error(transparent)]
    GitHub(#[from] slipway_github::Error),
    /// The API server failed.
    #[error("cluster: {0}")]
    Cluster(#[from] kube::Error),
}

/// The error policy: 1 s after the first failure, doubling up to 5 min.
pub fn retry_after(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.min(9)).min(300))
}

/// The preview service; see the crate docs.
pub struct Previews {
    db: Db,
    platform: Client,
    as_squad: SquadClient,
    connect: Arc<dyn Connect>,
    clock: SharedClock,
    settings: Settings,
    queue: queue::Queue,
    github: Mutex<HashMap<i64, Arc<dyn GitHub>>>,
    logins: Mutex<HashMap<i64, String>>,
    /// The sticky comment body last posted per preview, so an unchanged one is not sent.
    posted: Mutex<HashMap<i64, String>>,
    failures: Mutex<HashMap<i64, u32>>,
    /// The webhook's delivery writer, started with the first delivery.
    recorder: std::sync::OnceLock<webhook::Recorder>,
}

impl std::fmt::Debug for Previews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Previews")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Previews {
    /// The service over `db`; nothing runs until [`Previews::run`].
    pub fn new(
        db: Db,
        platform: Client,
        as_squad: SquadClient,
        connect: Arc<dyn Connect>,
        clock: SharedClock,
        settings: Settings,
    ) -> Arc<Previews> {
        Arc::new(Previews {
            db,
            platform,
            as_squad,
            connect,
            clock,
            settings,
            queue: queue::Queue::default(),
            github: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
            posted: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            recorder: std::sync::OnceLock::new(),
        })
    }

    /// The platform database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The webhook's delivery writer.
    pub(crate) fn recorder(&self) -> &webhook::Recorder {
        self.recorder
            .get_or_init(|| webhook::Recorder::start(self.db.clone()))
    }

    /// Asks for a preview to be reconciled now.
    pub fn enqueue(&self, id: i64) {
        self.queue.add(id, Instant::now());
    }

    /// The GitHub client of a repository, made once.
    async fn github(&self, repo_id: i64, repo: &Repo) -> Result<Arc<dyn GitHub>, Error> {
        if let Some(client) = lock(&self.github).get(&repo_id) {
            return Ok(Arc::clone(client));
        }
        let secrets = self.db.repo_secrets(repo_id).await?;
        let client = self.connect.connect(repo, &secrets)?;
        lock(&self.github).insert(repo_id, Arc::clone(&client));
        Ok(client)
    }

    /// Runs the workers and the periodic re-check until `shutdown`: every preview not yet
    /// destroyed is looked at first, so what arrived before a crash is carried out.
    pub fn run(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut workers = Vec::new();
            for _ in 0..this.settings.workers.max(1) {
                let worker = Arc::clone(&this);
                let shutdown = shutdown.clone();
                workers.push(tokio::spawn(async move {
                    tokio::select! {
                        () = worker.work() => {}
                        () = shutdown.cancelled() => {}
                    }
                }));
            }
            let recheck = Arc::clone(&this);
            tokio::select! {
                () = recheck.recheck_forever() => {}
                () = shutdown.cancelled() => {}
            }
            for worker in workers {
                let _ = worker.await;
            }
        })
    }

    async fn work(&self) {
        loop {
            let id = self.queue.next().await;
            let outcome = self.reconcile(id).await;
            let next = match outcome {
                Ok(action) => {
                    lock(&self.failures).remove(&id);
                    match action {
                        Action::AwaitChange => None,
                        Action::RequeueAfter(after) => Some(after),
                    }
                }
                Err(e) => {
                    let failures = {
                        let mut failures = lock(&self.failures);
                        let count = failures.entry(id).or_insert(0);
                        *count += 1;
                        *count
                    };
                    let after = retry_after(failures - 1);
                    tracing::warn!(preview = id, error = %e, retry_in = ?after, "reconciling a preview failed");
                    Some(after)
                }
            };
            self.queue.done(id);
            if let Some(after) = next {
                self.queue.add(id, Instant::now() + after);
            }
        }
    }

    async fn recheck_forever(&self) {
        loop {
            if let Err(e) = self.recheck().await {
                tracing::warn!(error = %e, "re-checking pull requests failed");
            }
            tokio::time::sleep(self.settings.recheck_every).await;
        }
    }

    /// Looks at everything once: every preview not destroyed, every open pull request of
    /// every registered repository (GitHub does not redeliver what it failed to deliver),
    /// and preview namespaces no preview owns any more. A repository whose credentials have
    /// used up nine tenths of their rate limit is left until the limit resets, but for
    /// previews with events waiting: what is left goes to work users wait on.
    pub async fn recheck(&self) -> Result<(), Error> {
        let previews = self.db.previews().await?;
        let now = Timestamp::try_from(self.clock.now()).unwrap_or(Timestamp::UNIX_EPOCH);
        let now_unix = u64::try_from(now.as_second()).unwrap_or(0);
        let mut paced = Vec::new();
        for repo in self.db.repos().await? {
            let github = match self.github(repo.id, &repo).await {
                Ok(github) => github,
                Err(e) => {
                    tracing::warn!(repo = %repo.full_name(), error = %e, "connecting to GitHub");
                    continue;
                }
            };
            if let Some(budget) = github.rate_budget().filter(|b| b.is_low(now_unix)) {
                tracing::info!(
                    repo = %repo.full_name(),
                    remaining = budget.remaining,
                    limit = budget.limit,
                    reset_at = budget.reset_at,
                    "GitHub's rate limit is low; re-checking after it resets"
                );
                paced.push(repo.id);
                continue;
            }
            match github.open_pulls(&repo_ref(&repo)).await {
                Ok(pulls) => {
                    for pull in pulls {
                        let known = previews
                            .iter()
                            .any(|p| p.repo_id == repo.id && p.pr == pull.number);
                        if !known {
                            let names = naming::namespaces(&repo.name, repo.id, pull.number);
                            let id = self.db.wake_preview(repo.id, pull.number, &names).await?;
                            self.enqueue(id);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(repo = %repo.full_name(), error = %e, "listing open pull requests");
                }
            }
        }
        for preview in &previews {
            let waiting = preview.generation != preview.status.observed;
            let live = preview.status.phase != Phase::Destroyed;
            if waiting || (live && !paced.contains(&preview.repo_id)) {
                self.enqueue(preview.id);
            }
        }
        self.sweep_orphans(&previews).await?;
        let horizon = now
            .checked_sub(jiff::SignedDuration::from_secs(
                DELIVERIES_KEPT.as_secs().cast_signed(),
            ))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        self.db.prune_deliveries(horizon).await?;
        Ok(())
    }
}

/// How long a handled delivery is kept (a repository's page shows the newest).
const DELIVERIES_KEPT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

fn repo_ref(repo: &Repo) -> slipway_github::RepoRef {
    slipway_github::RepoRef {
        owner: repo.owner.clone(),
        name: repo.name.clone(),
    }
}

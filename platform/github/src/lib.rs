//! GitHub as the platform sees it (DESIGN D7): the [`GitHub`] trait over the REST calls a
//! preview makes (contents, pull requests, issue comments, deployments and their statuses,
//! commit statuses), its types, and the errors they classify into.
//!
//! The trait is the only way the platform reaches GitHub, so tests put a local fake GitHub
//! behind the real client ([`client`]) and a fault injector ([`faults`]) in front of it.
//! [`webhook`] checks and reads GitHub's deliveries.

pub mod client;
pub mod faults;
pub mod webhook;

use async_trait::async_trait;

/// A repository, as `owner/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoRef {
    /// The owner (user or organization).
    pub owner: String,
    /// The repository's name.
    pub name: String,
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// Whether a pull request is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullState {
    /// Open (drafts included).
    Open,
    /// Closed, merged or not.
    Closed,
}

/// What is left of a credential's rate limit, from GitHub's `x-ratelimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateBudget {
    /// Requests allowed per window.
    pub limit: u64,
    /// Requests left in this window.
    pub remaining: u64,
    /// When the window resets, Unix seconds.
    pub reset_at: u64,
}

impl RateBudget {
    /// Whether optional work (the periodic re-check) should wait for the reset, keeping
    /// what is left for work users wait on: under a tenth of the limit remains, and at
    /// `now` (Unix seconds) the window has not reset yet.
    pub fn is_low(&self, now: u64) -> bool {
        self.remaining.saturating_mul(10) < self.limit && now < self.reset_at
    }
}

/// A pull request as previews need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Open or closed.
    pub state: PullState,
    /// Whether it was merged.
    pub merged: bool,
    /// Whether it is a draft.
    pub draft: bool,
    /// The head commit.
    pub head_sha: String,
    /// The head branch's name.
    pub head_ref: String,
    /// `owner/name` of the head repository; `None` when the fork was deleted.
    pub head_repo: Option<String>,
    /// `owner/name` of the base repository.
    pub base_repo: String,
    /// The names of its labels.
    pub labels: Vec<String>,
    /// Its title.
    pub title: String,
    /// The login of its author.
    pub author: String,
    /// Its page on GitHub.
    pub html_url: String,
}

impl PullRequest {
    /// Whether the head comes from another repository (a fork, or a deleted one): compared
    /// by name, case-insensitively, as GitHub names are.
    pub fn is_fork(&self) -> bool {
        match &self.head_repo {
            None => true,
            Some(head) => !head.eq_ignore_ascii_case(&self.base_repo),
        }
    }
}

/// An issue comment (pull requests are issues for comments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// Its id.
    pub id: u64,
    /// The login of its author.
    pub author: String,
    /// Its Markdown body.
    pub body: String,
}

/// The state of a commit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitState {
    /// Work in progress.
    Pending,
    /// Done and good.
    Success,
    /// Done and bad, the change's fault.
    Failure,
    /// Could not be done, the platform's fault.
    Error,
}

/// A commit status to set on a SHA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitStatus {
    /// The state.
    pub state: CommitState,
    /// The context it is shown under (`slipway/preview`).
    pub context: String,
    /// Up to 140 characters; longer ones are cut by the client.
    pub description: String,
    /// Where it links to.
    pub target_url: Option<String>,
}

/// A GitHub Deployment to create: always `transient_environment: true`,
/// `auto_merge: false`, `required_contexts: []` and `production_environment: false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeployment {
    /// The commit deployed (a SHA).
    pub sha: String,
    /// The environment's name (`pr-web-42`).
    pub environment: String,
    /// The task (`preview-pr-42`).
    pub task: String,
    /// A description.
    pub description: String,
}

/// The state of a deployment status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentState {
    /// Waiting to start.
    Queued,
    /// Being deployed.
    InProgress,
    /// Deployed; `environment_url` is live.
    Success,
    /// Failed, the change's fault.
    Failure,
    /// Failed, the platform's fault.
    Error,
    /// Torn down (GitHub shows a transient one as destroyed).
    Inactive,
}

/// A deployment status to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// The state.
    pub state: DeploymentState,
    /// The live URL ("View deployment").
    pub environment_url: Option<String>,
    /// Where logs are.
    pub log_url: Option<String>,
    /// Up to 140 characters; longer ones are cut by the client.
    pub description: String,
}

/// What can go wrong talking to GitHub, classified for the caller's error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing asked for does not exist (404), or the credentials may not see it.
    #[error("not found on GitHub: {0}")]
    NotFound(String),
    /// The credentials were refused (401, or 403 that is not a rate limit).
    #[error("GitHub refused the credentials: {0}")]
    Unauthorized(String),
    /// A rate limit was hit and retries ran out; try again after this many seconds.
    #[error("GitHub rate limit: retry after {retry_after_seconds} s")]
    RateLimited {
        /// What GitHub said to wait (`Retry-After`, or until `x-ratelimit-reset`).
        retry_after_seconds: u64,
    },
    /// GitHub refused the request as invalid (422 and other 4xx); retrying will not help.
    #[error("GitHub refused the request: {0}")]
    Rejected(String),
    /// GitHub could not be reached or failed (5xx, connection, timeout) and retries ran out.
    #[error("GitHub unavailable: {0}")]
    Unavailable(String),
    /// An answer could not be read.
    #[error("unexpected answer from GitHub: {0}")]
    Decode(String),
    /// The credentials are malformed (a private key that does not parse).
    #[error("GitHub credentials: {0}")]
    Credentials(String),
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::RateLimited { .. } | Error::Unavailable(_))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The REST calls a preview makes, for one repository's credentials.
#[async_trait]
pub trait GitHub: Send + Sync + std::fmt::Debug {
    /// The rate limit as GitHub last reported it to this client; `None` before any answer
    /// carried one (or where there is no such limit).
    fn rate_budget(&self) -> Option<RateBudget>;

    /// The login comments are posted as: the user of a token, or `<app slug>[bot]`.
    async fn login(&self) -> Result<String>;

    /// A file's bytes at `git_ref` (a SHA or branch), through the contents API; `None` when
    /// there is no such file.
    async fn file(&self, repo: &RepoRef, path: &str, git_ref: &str) -> Result<Option<Vec<u8>>>;

    /// The paths of the files directly in a directory at `git_ref`, sorted; `None` when there
    /// is no such directory.
    async fn dir(&self, repo: &RepoRef, path: &str, git_ref: &str) -> Result<Option<Vec<String>>>;

    /// One pull request; `None` when there is no such pull request.
    async fn pull(&self, repo: &RepoRef, number: u64) -> Result<Option<PullRequest>>;

    /// Every open pull request, all pages.
    async fn open_pulls(&self, repo: &RepoRef) -> Result<Vec<PullRequest>>;

    /// Every comment on a pull request, oldest first, all pages.
    async fn comments(&self, repo: &RepoRef, number: u64) -> Result<Vec<Comment>>;

    /// Posts a comment on a pull request.
    async fn create_comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<Comment>;

    /// Replaces a comment's body.
    async fn update_comment(&self, repo: &RepoRef, id: u64, body: &str) -> Result<()>;

    /// Creates a deployment and answers its id.
    async fn create_deployment(&self, repo: &RepoRef, deployment: &NewDeployment) -> Result<u64>;

    /// Adds a status to a deployment.
    async fn deployment_status(
        &self,
        repo: &RepoRef,
        deployment: u64,
        status: &DeploymentStatus,
    ) -> Result<()>;

    /// Sets a commit status on a SHA.
    async fn commit_status(&self, repo: &RepoRef, sha: &str, status: &CommitStatus) -> Result<()>;
}

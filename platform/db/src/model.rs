//! The records of the platform database, as the platform API shows them (camelCase JSON).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A ResourceQuota `hard` map: resource name → quantity.
pub type Hard = BTreeMap<String, String>;

/// A quota: the `hard` map of a ResourceQuota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    /// Resource name → quantity.
    pub hard: Hard,
}

impl Quota {
    /// A squad's quota unless it asks for another.
    pub fn squad_default() -> Quota {
        Quota::from_pairs(&[
            ("requests.cpu", "4"),
            ("requests.memory", "8Gi"),
            ("limits.cpu", "8"),
            ("limits.memory", "16Gi"),
            ("pods", "50"),
        ])
    }

    /// A preview namespace's quota unless the squad asks for another; smaller than a squad's.
    pub fn preview_default() -> Quota {
        Quota::from_pairs(&[
            ("requests.cpu", "1"),
            ("requests.memory", "2Gi"),
            ("limits.cpu", "2"),
            ("limits.memory", "4Gi"),
            ("pods", "20"),
        ])
    }

    fn from_pairs(pairs: &[(&str, &str)]) -> Quota {
        Quota {
            hard: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// A cpu and a memory quantity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuMemory {
    /// CPU, such as `500m`.
    pub cpu: String,
    /// Memory, such as `512Mi`.
    pub memory: String,
}

/// The container defaults of a squad's LimitRange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// The default limits.
    pub default: CpuMemory,
    /// The default requests.
    pub default_request: CpuMemory,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default: CpuMemory {
                cpu: "500m".to_owned(),
                memory: "512Mi".to_owned(),
            },
            default_request: CpuMemory {
                cpu: "100m".to_owned(),
                memory: "128Mi".to_owned(),
            },
        }
    }
}

/// What a squad's pull-request previews may take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PreviewPolicy {
    /// Previews alive at once.
    pub max: u32,
    /// The quota of each preview namespace.
    pub quota: Quota,
    /// A preview's time to live unless asked otherwise.
    pub ttl_seconds: u64,
    /// The longest time to live a preview may ask for.
    pub max_ttl_seconds: u64,
    /// Whether a preview may be pinned past its TTL.
    pub allow_pinning: bool,
}

impl Default for PreviewPolicy {
    fn default() -> Self {
        PreviewPolicy {
            max: 3,
            quota: Quota::preview_default(),
            ttl_seconds: 24 * 60 * 60,
            max_ttl_seconds: 7 * 24 * 60 * 60,
            allow_pinning: true,
        }
    }
}

/// A member's role in a squad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works in the squad's namespaces.
    Member,
    /// A member who may also add and remove members.
    Owner,
}

impl Role {
    /// The role as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Role> {
        match text {
            "member" => Some(Role::Member),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// A squad's member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user's name.
    pub user: String,
    /// Their role.
    pub role: Role,
}

/// A user's membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The squad's name.
    pub squad: String,
    /// The user's role in it.
    pub role: Role,
}

/// A squad as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Squad {
    /// The squad's name, also its first namespace.
    pub name: String,
    /// Its namespaces, the one named after it first.
    pub namespaces: Vec<String>,
    /// The quota of each of its namespaces.
    pub quota: Quota,
    /// The LimitRange defaults of each of its namespaces.
    pub limits: Limits,
    /// Its preview budget.
    pub previews: PreviewPolicy,
    /// Its members, by user name.
    pub members: Vec<Member>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A squad to create; omitted parts take the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSquad {
    /// The squad's name.
    pub name: String,
    /// Namespaces beyond the one named after the squad.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The quota; [`Quota::squad_default`] if omitted.
    #[serde(default)]
    pub quota: Option<Quota>,
    /// The LimitRange defaults.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The preview budget.
    #[serde(default)]
    pub previews: Option<PreviewPolicy>,
}

impl NewSquad {
    /// A squad with every default.
    pub fn named(name: &str) -> NewSquad {
        NewSquad {
            name: name.to_owned(),
            namespaces: Vec::new(),
            quota: None,
            limits: None,
            previews: None,
        }
    }

    /// Every namespace of the squad, the one named after it first.
    pub fn all_namespaces(&self) -> Vec<String> {
        let mut all = vec![self.name.clone()];
        for extra in &self.namespaces {
            if !all.contains(extra) {
                all.push(extra.clone());
            }
        }
        all
    }
}

/// A platform user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user name.
    pub name: String,
    /// Whether the user is a platform admin (`slipway:admins`).
    pub admin: bool,
    /// The squads the user is in.
    pub squads: Vec<Membership>,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A user to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    /// The user name.
    pub name: String,
    /// Whether the user is a platform admin.
    #[serde(default)]
    pub admin: bool,
}

/// An API token, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The public id, `tok_` and 12 hex digits.
    pub id: String,
    /// The user it authenticates.
    pub user: String,
    /// What the user said it is for.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A live (unrevoked) token as an authenticator needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The token's public id.
    pub id: String,
    /// The user it authenticates.
    pub user: String,
    /// The lower-case hex SHA-256 of the secret.
    pub sha256: String,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
}

/// A repository a squad owns; its secrets are not part of it (see [`RepoSecrets`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repo {
    /// The row id.
    pub id: i64,
    /// The repository's owner (a GitHub user or organisation).
    pub owner: String,
    /// The repository's name.
    pub name: String,
    /// The squad it belongs to.
    pub squad: String,
    /// How the platform reaches GitHub for it: `token` or `app`.
    pub access: String,
    /// When it was added.
    pub created_at: Timestamp,
}

impl Repo {
    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// How the platform calls GitHub for a repository.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Access {
    /// A personal or fine-grained access token.
    Token(String),
    /// A GitHub App: its id and private key (PEM); installation tokens come from them.
    #[serde(rename_all = "camelCase")]
    App {
        /// The App's id.
        app_id: u64,
        /// Its private key, PEM.
        private_key: String,
    },
}

impl Access {
    /// `token` or `app`, as [`Repo::access`] shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            Access::Token(_) => "token",
            Access::App { .. } => "app",
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Token(_) => f.write_str("Token(..)"),
            Access::App { app_id, .. } => write!(f, "App {{ app_id: {app_id}, .. }}"),
        }
    }
}

/// A repository to register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRepo {
    /// The owner.
    pub owner: String,
    /// The name.
    pub name: String,
    /// The secret GitHub signs its webhook deliveries with.
    pub webhook_secret: String,
    /// How to call GitHub for it.
    pub access: Access,
}

/// What the platform needs to trust a repository's webhooks and to call GitHub for it.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoSecrets {
    /// The webhook secret.
    pub webhook_secret: String,
    /// The credentials.
    pub access: Access,
}

impl std::fmt::Debug for RepoSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoSecrets")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// One change, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Increasing with every change.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who (a user name).
    pub actor: String,
    /// What, such as `squad.create`.
    pub action: String,
    /// On what, such as `squads/web`.
    pub target: String,
    /// The change's parameters (never a secret).
    pub detail: serde_json::Value,
}

/// Where a preview is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Known, not yet looked at.
    Pending,
    /// A fork's pull request, waiting for a squad member to approve it.
    AwaitingApproval,
    /// Over the squad's preview budget, waiting for a slot.
    Queued,
    /// Being applied, or waiting for its Deployments.
    Deploying,
    /// Up at its URL.
    Ready,
    /// Its config, manifests or rollout failed; `message` says why.
    Failed,
    /// Scaled to zero after being idle; the next request wakes it.
    Sleeping,
    /// Torn down (closed, expired, destroyed by hand).
    Destroyed,
}

impl Phase {
    /// The phase as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::AwaitingApproval => "awaitingApproval",
            Phase::Queued => "queued",
            Phase::Deploying => "deploying",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            Phase::Sleeping => "sleeping",
            Phase::Destroyed => "destroyed",
        }
    }

    pub(crate) fn parse(text: &str) -> Phase {
        match text {
            "awaitingApproval" => Phase::AwaitingApproval,
            "queued" => Phase::Queued,
            "deploying" => Phase::Deploying,
            "ready" => Phase::Ready,
            "failed" => Phase::Failed,
            "sleeping" => Phase::Sleeping,
            "destroyed" => Phase::Destroyed,
            _ => Phase::Pending,
        }
    }

    /// Whether a preview in this phase holds a namespace, and so a slot of the budget.
    pub fn holds_slot(self) -> bool {
        matches!(
            self,
            Phase::Deploying | Phase::Ready | Phase::Failed | Phase::Sleeping
        )
    }
}

/// One object a preview applied: enough to prune it or delete it without the branch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

/// What the reconciler knows and did about a preview; only the reconciler writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewStatus {
    /// Where it is.
    pub phase: Phase,
    /// Why, in a sentence (a failure's reason, what it waits for).
    pub message: String,
    /// Whether the failure is in the repository's config or manifests, not the rollout.
    pub config_error: bool,
    /// The pull request's head commit when last looked at.
    pub head_sha: String,
    /// Its head branch.
    pub head_ref: String,
    /// The pull request's title.
    pub title: String,
    /// The pull request author's login.
    pub author: String,
    /// The pull request's page on GitHub.
    pub pr_url: String,
    /// Whether it comes from a fork.
    pub fork: bool,
    /// For a fork: the head a squad member approved with `/slipway deploy`.
    pub approved_sha: Option<String>,
    /// Pinned by the `slipway:keep` label: it does not expire while the PR is open.
    pub pinned: bool,
    /// The commit running.
    pub deployed_sha: Option<String>,
    /// When it was last deployed.
    pub deployed_at: Option<Timestamp>,
    /// When it is destroyed unless extended or pinned.
    pub expires_at: Option<Timestamp>,
    /// When the expiry warning was posted, for the current expiry.
    pub warned_at: Option<Timestamp>,
    /// Its URL.
    pub url: Option<String>,
    /// The sticky comment's id on GitHub.
    pub comment_id: Option<u64>,
    /// The GitHub Deployment of `deployment_sha`.
    pub deployment_id: Option<u64>,
    /// The commit the GitHub Deployment is for.
    pub deployment_sha: Option<String>,
    /// What the last deploy applied.
    pub applied: Vec<Applied>,
    /// When it went to sleep, if it is asleep.
    pub slept_at: Option<Timestamp>,
    /// The generation this status answers.
    pub observed: i64,
}

impl Default for PreviewStatus {
    fn default() -> Self {
        PreviewStatus {
            phase: Phase::Pending,
            message: String::new(),
            config_error: false,
            head_sha: String::new(),
            head_ref: String::new(),
            title: String::new(),
            author: String::new(),
            pr_url: String::new(),
            fork: false,
            approved_sha: None,
            pinned: false,
            deployed_sha: None,
            deployed_at: None,
            expires_at: None,
            warned_at: None,
            url: None,
            comment_id: None,
            deployment_id: None,
            deployment_sha: None,
            applied: Vec::new(),
            slept_at: None,
            observed: 0,
        }
    }
}

/// A preview: one per pull request of a registered repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// The row id.
    pub id: i64,
    /// The repository's row id.
    pub repo_id: i64,
    /// `owner/name`.
    pub repo: String,
    /// The squad that owns the repository.
    pub squad: String,
    /// The pull request's number.
    pub pr: u64,
    /// Its namespace.
    pub namespace: String,
    /// Bumped by every event and request; the reconciler answers it in `status.observed`.
    pub generation: i64,
    /// Kept at least until then, if someone extended it.
    pub extended_until: Option<Timestamp>,
    /// Someone asked for it to be destroyed.
    pub destroy_requested: bool,
    /// The last request for it through a gateway (reported at most about once a minute).
    pub last_request_at: Option<Timestamp>,
    /// The reconciler's side.
    pub status: PreviewStatus,
    /// When it was first known.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
}

/// A webhook delivery to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    /// `X-GitHub-Hook-ID` (empty when absent).
    pub hook: String,
    /// `X-GitHub-Delivery`.
    pub delivery: String,
    /// `X-GitHub-Event`.
    pub event: String,
    /// The payload's `action`.
    pub action: Option<String>,
    /// The registered repository it is for.
    pub repo_id: Option<i64>,
    /// The pull request it is about, if it wakes that pull request's preview.
    pub pr: Option<u64>,
    /// The head SHA it names.
    pub head_sha: Option<String>,
    /// Who caused it.
    pub sender: Option<String>,
    /// A comment's body.
    pub comment: Option<String>,
    /// Whether it wants a preview a user destroyed back (a new push, a reopen).
    pub revives: bool,
    /// The namespace a new preview takes, and the one it takes when that is taken.
    pub namespaces: [String; 2],
}

/// A webhook delivery as stored, for a repository's page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `X-GitHub-Delivery`.
    pub delivery: String,
    /// `X-GitHub-Event`.
    pub event: String,
    /// The payload's `action`.
    pub action: Option<String>,
    /// The pull request it was about.
    pub pr: Option<u64>,
    /// The head SHA it named.
    pub sha: Option<String>,
    /// Who caused it.
    pub sender: Option<String>,
    /// When it was accepted.
    pub received_at: Timestamp,
    /// When the reconciler acted on it; `None` while it waits, and for events that wake
    /// no preview.
    pub processed_at: Option<Timestamp>,
}

/// What became of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Seen before (same hook and delivery id): nothing was written.
    Duplicate,
    /// Stored; the preview it woke, if any.
    Stored {
        /// The preview's row id.
        preview: Option<i64>,
    },
}

/// A stored comment delivery not yet acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The delivery's row id.
    pub id: i64,
    /// The comment's author.
    pub sender: String,
    /// The comment's body.
    pub comment: String,
}

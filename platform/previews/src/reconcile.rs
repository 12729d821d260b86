//! The preview reconciler: one idempotent, level-triggered pass over one preview, from what
//! is stored and what GitHub says of the pull request now. Deploys, reports, expires and
//! tears down; every external call is safe to repeat.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use slipway_github::{
    CommitState, CommitStatus, DeploymentState, DeploymentStatus, GitHub, NewDeployment,
    PullRequest, PullState, RepoRef,
};
use slipway_platform_db::{Phase, Preview, PreviewStatus, Repo, Squad};

use crate::cluster::{self, ClusterError, PREVIEW_LABEL, Rollout};
use crate::commands::{self, Command};
use crate::feedback;
use crate::manifests::{self, RecipeError};
use crate::{Error, Previews, lock, repo_ref};

/// The label that pins a preview until its pull request closes.
pub const KEEP_LABEL: &str = "slipway:keep";
/// The label with which a squad member lets a fork's pull request deploy.
pub const APPROVE_LABEL: &str = "slipway:preview";

/// The message of a preview scaling back up after sleeping.
const WAKING: &str = "waking up";

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until an event or request changes the preview.
    AwaitChange,
    /// Look again after this long (a rollout, a warning or an expiry coming).
    RequeueAfter(Duration),
}

/// One pass's view of a preview and what it works with.
struct Pass<'a> {
    previews: &'a Previews,
    preview: Preview,
    /// The status as last written, so an unchanged one is not written again: the
    /// database's one writer is shared with the webhook.
    saved: PreviewStatus,
    repo: Repo,
    squad: Squad,
    github: Arc<dyn GitHub>,
    now: Timestamp,
}

/// `at` plus `by`, whole seconds, saturating.
pub(crate) fn plus(at: Timestamp, by: Duration) -> Timestamp {
    let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX / 2);
    Timestamp::from_second(at.as_second().saturating_add(seconds)).unwrap_or(at)
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::from_secs(u64::try_from(at.as_second() - now.as_second()).unwrap_or(0))
}

impl Pass<'_> {
    fn repo_ref(&self) -> RepoRef {
        repo_ref(&self.repo)
    }

    fn status(&self) -> &PreviewStatus {
        &self.preview.status
    }

    fn status_mut(&mut self) -> &mut PreviewStatus {
        &mut self.preview.status
    }

    async fn save(&mut self) -> Result<(), Error> {
        if self.preview.status == self.saved {
            return Ok(());
        }
        self.previews
            .db
            .set_preview_status(self.preview.id, &self.preview.status)
            .await?;
        self.saved = self.preview.status.clone();
        Ok(())
    }

    /// Posts or edits the sticky comment when its text changed.
    async fn say(&mut self) -> Result<(), Error> {
        let body = feedback::comment(&self.preview);
        if lock(&self.previews.posted).get(&self.preview.id) == Some(&body) {
            return Ok(());
        }
        let repo = self.repo_ref();
        let mut posted = false;
        if let Some(id) = self.status().comment_id {
            match self.github.update_comment(&repo, id, &body).await {
                Ok(()) => posted = true,
                Err(slipway_github::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !posted {
            let login = self.login().await?;
            let ours = self
                .github
                .comments(&repo, self.preview.pr)
                .await?
                .into_iter()
                .find(|c| {
                    c.body.starts_with(feedback::MARKER) && c.author.eq_ignore_ascii_case(&login)
                });
            let id = match ours {
                Some(comment) => {
                    self.github.update_comment(&repo, comment.id, &body).await?;
                    comment.id
                }
                None => {
                    self.github
                        .create_comment(&repo, self.preview.pr, &body)
                        .await?
                        .id
                }
            };
            self.status_mut().comment_id = Some(id);
            self.save().await?;
        }
        lock(&self.previews.posted).insert(self.preview.id, body);
        Ok(())
    }

    async fn login(&self) -> Result<String, Error> {
        if let Some(login) = lock(&self.previews.logins).get(&self.repo.id) {
            return Ok(login.clone());
        }
        let login = self.github.login().await?;
        lock(&self.previews.logins).insert(self.repo.id, login.clone());
        Ok(login)
    }

    async fn deployment_status(
        &self,
        state: DeploymentState,
        description: &str,
    ) -> Result<(), Error> {
        let Some(id) = self.status().deployment_id else {
            return Ok(());
        };
        let url = self.status().url.clone();
        let status = DeploymentStatus {
            state,
            environment_url: if state == DeploymentState::Success {
                url.clone()
            } else {
                None
            },
            log_url: None,
            description: feedback::description(description),
        };
        self.github
            .deployment_status(&self.repo_ref(), id, &status)
            .await?;
        Ok(())
    }

    async fn commit_status(&self, state: CommitState, description: &str) -> Result<(), Error> {
        let sha = self.status().head_sha.clone();
        if sha.is_empty() {
            return Ok(());
        }
        let status = CommitStatus {
            state,
            context: feedback::CONTEXT.to_owned(),
            description: feedback::description(description),
            target_url: self.status().url.clone(),
        };
        self.github
            .commit_status(&self.repo_ref(), &sha, &status)
            .await?;
        Ok(())
    }

    /// Acts on the `/slipway` commands of comments not yet acted on. Answers whether a
    /// member asked for a deploy.
    async fn commands(&mut self, pull: &PullRequest) -> Result<bool, Error> {
        let db = &self.previews.db;
        let pending = db.pending_commands(self.repo.id, self.preview.pr).await?;
        let mut deploy = false;
        for command in &pending {
            let parsed = commands::parse(&command.comment);
            if parsed.is_empty() {
                continue;
            }
            if !db.is_member(&self.squad.name, &command.sender).await? {
                let reply = format!(
                    "@{} only members of squad `{}` can run `/slipway` commands here.",
                    command.sender, self.squad.name
                );
                self.github
                    .create_comment(&self.repo_ref(), self.preview.pr, &reply)
                    .await?;
                continue;
            }
            for result in parsed {
                match result {
                    Ok(Command::Deploy) => {
                        deploy = true;
                        self.status_mut().approved_sha = Some(pull.head_sha.clone());
                    }
                    Ok(Command::Extend(duration)) => {
                        let policy = &self.squad.previews;
                        let wanted = duration.unwrap_or(Duration::from_secs(policy.ttl_seconds));
                        let wanted = wanted.min(Duration::from_secs(policy.max_ttl_seconds));
                        let until = plus(self.now, wanted);
                        db.extend_preview(&command.sender, self.preview.id, until)
                            .await?;
                        self.preview.extended_until = Some(until);
                    }
                    Err(message) => {
                        let reply = format!("@{}: {message}", command.sender);
                        self.github
                            .create_comment(&self.repo_ref(), self.preview.pr, &reply)
                            .await?;
                    }
                }
            }
        }
        if let Some(last) = pending.last() {
            db.mark_processed(self.repo.id, self.preview.pr, last.id)
                .await?;
        }
        Ok(deploy)
    }

    /// Deletes everything the preview made and says so; "already gone" is success.
    async fn teardown(&mut self, reason: &str) -> Result<Action, Error> {
        if self.status().phase == Phase::Destroyed && self.status().message == reason {
            return Ok(Action::AwaitChange);
        }
        cluster::delete_namespace(
            &self.previews.platform,
            &self.squad.name,
            &self.preview.namespace,
        )
        .await?;
        if self.status().deployment_id.is_some() {
            self.deployment_status(DeploymentState::Inactive, reason)
                .await?;
        }
        let status = self.status_mut();
        status.phase = Phase::Destroyed;
        status.message = reason.to_owned();
        status.url = None;
        status.applied.clear();
        status.deployed_sha = None;
        status.deployment_id = None;
        status.deployment_sha = None;
        status.expires_at = None;
        status.warned_at = None;
        self.save().await?;
        self.say().await?;
        // A slot is free: previews waiting for one may go.
        for other in self.previews.db.previews().await? {
            if other.squad == self.squad.name && other.status.phase == Phase::Queued {
                self.previews.enqueue(other.id);
            }
        }
        Ok(Action::AwaitChange)
    }

    /// Reports a failure; `config_error` when the repository's config or manifests are at
    /// fault rather than the rollout.
    async fn fail(&mut self, message: String, config_error: bool) -> Result<Action, Error> {
        let status = self.status_mut();
        status.phase = Phase::Failed;
        status.message = message.clone();
        status.config_error = config_error;
        self.save().await?;
        self.deployment_status(DeploymentState::Failure, &message)
            .await?;
        self.commit_status(CommitState::Failure, &message).await?;
        self.say().await?;
        Ok(self.timers())
    }

    fn builtins(&self) -> BTreeMap<String, String> {
        let status = self.status();
        BTreeMap::from([
            ("SLIPWAY_PR".to_owned(), self.preview.pr.to_string()),
            ("SLIPWAY_SHA".to_owned(), status.head_sha.clone()),
            ("SLIPWAY_BRANCH".to_owned(), status.head_ref.clone()),
            (
                "SLIPWAY_NAMESPACE".to_owned(),
                self.preview.namespace.clone(),
            ),
            (
                "SLIPWAY_URL".to_owned(),
                self.previews.settings.urls.url(&self.preview.namespace),
            ),
        ])
    }

    /// Applies the head commit: GitHub Deployment and statuses first, then the namespace,
    /// the manifests and the Ingress; the rollout is waited for by later passes.
    async fn deploy(&mut self) -> Result<Action, Error> {
        let head = self.status().head_sha.clone();
        let repo = self.repo_ref();
        if self.status().deployment_sha.as_deref() != Some(head.as_str()) {
            if self.status().deployment_id.is_some() {
                self.deployment_status(DeploymentState::Inactive, "superseded by a newer commit")
                    .await?;
            }
            let id = self
                .github
                .create_deployment(
                    &repo,
                    &NewDeployment {
                        sha: head.clone(),
                        environment: self.preview.namespace.clone(),
                        task: format!("preview-pr-{}", self.preview.pr),
                        description: format!("slipway preview of #{}", self.preview.pr),
                    },
                )
                .await?;
            let status = self.status_mut();
            status.deployment_id = Some(id);
            status.deployment_sha = Some(head.clone());
            self.save().await?;
        }
        let status = self.status_mut();
        status.phase = Phase::Deploying;
        status.message = String::new();
        self.save().await?;
        self.deployment_status(DeploymentState::InProgress, "deploying")
            .await?;
        self.commit_status(CommitState::Pending, "Deploying the preview")
            .await?;
        self.say().await?;

        let recipe = match manifests::read(
            self.github.as_ref(),
            &repo,
            &head,
            &self.preview.namespace,
            &self.builtins(),
        )
        .await
        {
            Ok(recipe) => recipe,
            Err(RecipeError::Broken(message)) => return self.fail(message, true).await,
            Err(RecipeError::GitHub(e)) => return Err(e.into()),
        };
        let urls = &self.previews.settings.urls;
        let url = urls.url(&self.preview.namespace);
        let policy = &self.squad.previews;
        let ttl = recipe.config.ttl_within(
            Duration::from_secs(policy.ttl_seconds),
            Duration::from_secs(policy.max_ttl_seconds),
        );
        let mut expires = plus(self.now, ttl);
        if let Some(extended) = self.preview.extended_until
            && extended > expires
        {
            expires = extended;
        }
        let labels = BTreeMap::from([
            ("slipway.dev/repo-id".to_owned(), self.repo.id.to_string()),
            ("slipway.dev/pr".to_owned(), self.preview.pr.to_string()),
            ("slipway.dev/sha".to_owned(), head.clone()),
            (
                cluster::EXPIRES_LABEL.to_owned(),
                cluster::expires_label(Some(expires), self.status().pinned),
            ),
        ]);
        cluster::ensure_namespace(
            &self.previews.platform,
            &self.squad,
            &self.preview.namespace,
            &labels,
        )
        .await?;
        let client = (self.previews.as_squad)(&self.squad.name);
        if !cluster::wait_for_access(&client, &self.preview.namespace).await? {
            // The binding is written; the authorizer has not seen it yet. Try again soon.
            return Ok(Action::RequeueAfter(Duration::from_secs(1)));
        }
        let mut objects = recipe.objects;
        objects.push(cluster::ingress(
            &self.preview.namespace,
            &urls.host(&self.preview.namespace),
            &recipe.config.expose.service,
            recipe.config.expose.port,
        ));
        let previous = self.status().applied.clone();
        let applied =
            match cluster::apply(&client, &self.preview.namespace, &objects, &previous).await {
                Ok(applied) => applied,
                Err(ClusterError::Refused(message)) => return self.fail(message, true).await,
                Err(ClusterError::Api(e)) => return Err(e.into()),
            };
        let now = self.now;
        let status = self.status_mut();
        status.applied = applied;
        status.deployed_sha = Some(head);
        status.deployed_at = Some(now);
        status.expires_at = Some(expires);
        status.warned_at = None;
        status.slept_at = None;
        status.url = Some(url);
        self.save().await?;
        Ok(Action::RequeueAfter(Duration::ZERO))
    }

    /// Follows a rollout: ready, failed, or look again soon.
    async fn follow_rollout(&mut self) -> Result<Action, Error> {
        let client = (self.previews.as_squad)(&self.squad.name);
        match cluster::rollout(&client, &self.preview.namespace).await? {
            Rollout::Available => {
                let woke = self.status().message == WAKING;
                let status = self.status_mut();
                status.phase = Phase::Ready;
                status.message = String::new();
                self.save().await?;
                // A preview waking from sleep was reported up before it slept.
                if !woke {
                    self.deployment_status(DeploymentState::Success, "the preview is up")
                        .await?;
                    self.commit_status(CommitState::Success, "The preview is up")
                        .await?;
                }
                self.say().await?;
                Ok(self.timers())
            }
            Rollout::Failed(reason) => {
                let why = cluster::diagnosis(&client, &self.preview.namespace).await?;
                self.fail(format!("{reason}\n{why}").trim().to_owned(), false)
                    .await
            }
            Rollout::Progressing { ready, total } => {
                let started = self.status().deployed_at.unwrap_or(self.now);
                let deadline = plus(started, self.previews.settings.rollout_deadline);
                if self.now >= deadline {
                    let why = cluster::diagnosis(&client, &self.preview.namespace).await?;
                    let message = format!(
                        "{ready} of {total} deployments became available within {:?}\n{why}",
                        self.previews.settings.rollout_deadline
                    );
                    return self.fail(message.trim().to_owned(), false).await;
                }
                Ok(Action::RequeueAfter(self.previews.settings.rollout_poll))
            }
        }
    }

    /// When the preview last saw use: a request through a gateway, or its last deploy.
    fn last_used(&self) -> Option<Timestamp> {
        let deployed = self.status().deployed_at;
        match (self.preview.last_request_at, deployed) {
            (Some(request), Some(deployed)) => Some(request.max(deployed)),
            (request, deployed) => request.or(deployed),
        }
    }

    /// When to look again: to put an idle preview to sleep, to warn of its expiry, or to
    /// expire it.
    fn timers(&self) -> Action {
        let status = self.status();
        let idle = match (status.phase, self.last_used()) {
            (Phase::Ready, Some(used)) => Some(plus(used, self.previews.settings.idle_after)),
            _ => None,
        };
        let expiry = self.expiry_timer();
        let next = match (idle, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match next {
            Some(at) => Action::RequeueAfter(until(self.now, at).max(Duration::from_secs(1))),
            None => Action::AwaitChange,
        }
    }

    /// When the expiry warning or the expiry is due, unless the preview is pinned.
    fn expiry_timer(&self) -> Option<Timestamp> {
        let status = self.status();
        if status.pinned {
            return None;
        }
        let expires = status.expires_at?;
        let warn_at = Timestamp::from_second(
            expires.as_second()
                - i64::try_from(self.previews.settings.warn_before.as_secs()).unwrap_or(0),
        )
        .unwrap_or(expires);
        Some(if status.warned_at.is_none() && warn_at > self.now {
            warn_at
        } else {
            expires
        })
    }

    /// Scales an idle preview to zero; the gateway wakes it on the next request.
    async fn sleep(&mut self) -> Result<Action, Error> {
        let client = (self.previews.as_squad)(&self.squad.name);
        cluster::sleep(&client, &self.preview.namespace).await?;
        let now = self.now;
        let status = self.status_mut();
        status.phase = Phase::Sleeping;
        status.slept_at = Some(now);
        self.save().await?;
        self.say().await?;
        Ok(self.timers())
    }

    /// Scales a sleeping preview back up, after a request through a gateway.
    async fn wake(&mut self) -> Result<Action, Error> {
        let client = (self.previews.as_squad)(&self.squad.name);
        cluster::wake(&client, &self.preview.namespace).await?;
        let now = self.now;
        let status = self.status_mut();
        status.phase = Phase::Deploying;
        status.message = WAKING.to_owned();
        status.slept_at = None;
        status.deployed_at = Some(now);
        self.save().await?;
        self.say().await?;
        Ok(Action::RequeueAfter(Duration::ZERO))
    }

    async fn pass(&mut self) -> Result<Action, Error> {
        let repo = self.repo_ref();
        let pull = self.github.pull(&repo, self.preview.pr).await?;
        if pull.is_none() {
            // Credentials that cannot see the repository get 404 for every pull request:
            // that is no closed one, and must not tear previews down. The repository's
            // list answers 404 too then, and the pass fails and is retried.
            self.github.open_pulls(&repo).await?;
        }
        let deploy_asked = match &pull {
            Some(pull) => self.commands(pull).await?,
            None => false,
        };
        let Some(pull) = pull.filter(|p| p.state == PullState::Open) else {
            return self.teardown("the pull request was closed").await;
        };
        if self.preview.destroy_requested {
            return self
                .teardown("destroyed on request; a new push brings it back")
                .await;
        }
        let pinned =
            pull.labels.iter().any(|l| l == KEEP_LABEL) && self.squad.previews.allow_pinning;
        let status = self.status_mut();
        status.head_sha = pull.head_sha.clone();
        status.head_ref = pull.head_ref.clone();
        status.title = pull.title.clone();
        status.author = pull.author.clone();
        status.pr_url = pull.html_url.clone();
        status.fork = pull.is_fork();
        status.pinned = pinned;
        if let Some(extended) = self.preview.extended_until
            && let Some(expires) = self.status().expires_at
            && extended > expires
        {
            let status = self.status_mut();
            status.expires_at = Some(extended);
            status.warned_at = None;
        }
        let status = self.status();
        if status.phase.holds_slot()
            && !status.pinned
            && status.expires_at.is_some_and(|at| at <= self.now)
        {
            return self.teardown("expired").await;
        }

        let approved = !status.fork
            || pull.labels.iter().any(|l| l == APPROVE_LABEL)
            || status.approved_sha.as_deref() == Some(pull.head_sha.as_str());
        if !approved {
            if status.phase.holds_slot() {
                // A new, unapproved commit on a fork: what runs stays, nothing new deploys.
                self.save().await?;
                return Ok(self.timers());
            }
            let status = self.status_mut();
            status.phase = Phase::AwaitingApproval;
            status.message = String::new();
            self.save().await?;
            self.commit_status(
                CommitState::Pending,
                "Waiting for a squad member to approve this fork",
            )
            .await?;
            self.say().await?;
            return Ok(Action::AwaitChange);
        }

        if !self.status().phase.holds_slot()
            && !self
                .previews
                .db
                .claim_slot(self.preview.id, self.squad.previews.max)
                .await?
        {
            let status = self.status_mut();
            status.phase = Phase::Queued;
            status.message = String::new();
            self.save().await?;
            self.commit_status(CommitState::Pending, "Waiting for a free preview slot")
                .await?;
            self.say().await?;
            return Ok(Action::AwaitChange);
        }
        if !self.status().phase.holds_slot() {
            self.status_mut().phase = Phase::Deploying;
        }

        let stale = self.status().deployed_sha.as_deref() != Some(pull.head_sha.as_str());
        if deploy_asked || stale {
            return self.deploy().await;
        }
        let idle_since = self.last_used();
        match self.status().phase {
            Phase::Deploying => self.follow_rollout().await,
            Phase::Ready
                if idle_since.is_some_and(|used| {
                    plus(used, self.previews.settings.idle_after) <= self.now
                }) =>
            {
                self.sleep().await
            }
            Phase::Sleeping
                if self
                    .preview
                    .last_request_at
                    .zip(self.status().slept_at)
                    .is_some_and(|(request, slept)| request >= slept) =>
            {
                self.wake().await
            }
            // A failure stays until a new commit or a `/slipway deploy`.
            Phase::Ready | Phase::Sleeping | Phase::Failed => self.warn_if_due().await,
            _ => self.deploy().await,
        }
    }

    async fn warn_if_due(&mut self) -> Result<Action, Error> {
        let status = self.status();
        if let Some(expires) = status.expires_at
            && !status.pinned
            && status.warned_at.is_none()
        {
            let warn_at = expires.as_second()
                - i64::try_from(self.previews.settings.warn_before.as_secs()).unwrap_or(0);
            if self.now.as_second() >= warn_at {
                let text = feedback::expiry_warning(&self.preview, self.now);
                self.github
                    .create_comment(&self.repo_ref(), self.preview.pr, &text)
                    .await?;
                self.status_mut().warned_at = Some(self.now);
            }
        }
        self.save().await?;
        self.say().await?;
        Ok(self.timers())
    }
}

impl Previews {
    fn now(&self) -> Timestamp {
        let now = Timestamp::try_from(self.clock.now()).unwrap_or(Timestamp::UNIX_EPOCH);
        Timestamp::from_second(now.as_second()).unwrap_or(now)
    }

    /// One pass over one preview; see the module docs.
    ///
    /// # Errors
    ///
    /// When the database, GitHub or the API server failed; the pass is retried.
    pub async fn reconcile(&self, id: i64) -> Result<Action, Error> {
        let preview = self.db.preview(id).await?;
        let (owner, name) = preview.repo.split_once('/').unwrap_or((&preview.repo, ""));
        let repo = self.db.repo(owner, name).await?;
        let squad = self.db.squad(&preview.squad).await?;
        let github = self.github(repo.id, &repo).await?;
        let generation = preview.generation;
        let mut pass = Pass {
            previews: self,
            saved: preview.status.clone(),
            preview,
            repo,
            squad,
            github,
            now: self.now(),
        };
        let label_before = cluster::expires_label(pass.status().expires_at, pass.status().pinned);
        let action = pass.pass().await?;
        let label = cluster::expires_label(pass.status().expires_at, pass.status().pinned);
        // An extension or a pin since the deploy: the namespace says so too.
        if label != label_before && pass.status().phase.holds_slot() {
            cluster::label_expiry(&self.platform, &pass.preview.namespace, &label).await?;
        }
        // Everything up to the generation read was answered; a newer one runs again.
        pass.preview.status.observed = generation;
        pass.save().await?;
        let latest = self.db.preview(id).await?;
        if latest.generation != generation {
            return Ok(Action::RequeueAfter(Duration::ZERO));
        }
        Ok(action)
    }

    /// Deletes preview namespaces that no live preview owns (made before a crash lost the
    /// row's update, or left by a teardown that failed half way).
    pub(crate) async fn sweep_orphans(&self, previews: &[Preview]) -> Result<(), Error> {
        let namespaces = Api::<Namespace>::all(self.platform.clone())
            .list(&ListParams::default().labels(PREVIEW_LABEL))
            .await?;
        for namespace in namespaces.items {
            let Some(name) = namespace.metadata.name.clone() else {
                continue;
            };
            let owner = previews.iter().find(|p| p.namespace == name);
            let orphan = match owner {
                None => true,
                Some(p) => p.status.phase == Phase::Destroyed && p.generation == p.status.observed,
            };
            let squad = namespace
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(slipway_tenancy::SQUAD_LABEL))
                .cloned();
            if orphan && let Some(squad) = squad {
                tracing::info!(namespace = %name, "deleting an orphaned preview namespace");
                cluster::delete_namespace(&self.platform, &squad, &name).await?;
            }
        }
        Ok(())
    }
}

//! A fault injector in front of any [`GitHub`]: the next calls, or the next calls of one
//! method, fail as asked, so the platform's error policy can be tested against a real client.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::{
    Comment, CommitStatus, DeploymentStatus, Error, GitHub, NewDeployment, PullRequest, RepoRef,
    Result,
};

#[derive(Default)]
struct Plan {
    any: usize,
    any_error: Option<fn() -> Error>,
    method: Option<(&'static str, usize)>,
    calls: usize,
}

/// See the module docs.
pub struct FaultyGitHub {
    inner: Arc<dyn GitHub>,
    plan: Mutex<Plan>,
}

impl std::fmt::Debug for FaultyGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyGitHub")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl FaultyGitHub {
    /// Passes every call to `inner` until told otherwise.
    pub fn new(inner: Arc<dyn GitHub>) -> FaultyGitHub {
        FaultyGitHub {
            inner,
            plan: Mutex::new(Plan::default()),
        }
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `calls` calls, of any method, fail with `error()`.
    pub fn fail_next(&self, calls: usize, error: fn() -> Error) {
        let mut plan = self.plan();
        plan.any = calls;
        plan.any_error = Some(error);
    }

    /// The next `calls` calls of `method` (a trait method's name, like `"create_comment"`)
    /// fail with [`Error::Unavailable`].
    pub fn fail_method(&self, method: &'static str, calls: usize) {
        self.plan().method = Some((method, calls));
    }

    /// How many calls were made, failed ones included.
    pub fn calls(&self) -> usize {
        self.plan().calls
    }

    fn check(&self, method: &'static str) -> Result<()> {
        let mut plan = self.plan();
        plan.calls += 1;
        if plan.any > 0 {
            plan.any -= 1;
            return Err(plan
                .any_error
                .map_or_else(|| Error::Unavailable("injected".to_owned()), |e| e()));
        }
        if let Some((name, left)) = &mut plan.method
            && *name == method
            && *left > 0
        {
            *left -= 1;
            return Err(Error::Unavailable(format!("injected failure of {method}")));
        }
        Ok(())
    }
}

#[async_trait]
impl GitHub for FaultyGitHub {
    fn rate_budget(&self) -> Option<crate::RateBudget> {
        self.inner.rate_budget()
    }

    async fn login(&self) -> Result<String> {
        self.check("login")?;
        self.inner.login().await
    }

    async fn file(&self, repo: &RepoRef, path: &str, git_ref: &str) -> Result<Option<Vec<u8>>> {
        self.check("file")?;
        self.inner.file(repo, path, git_ref).await
    }

    async fn dir(&self, repo: &RepoRef, path: &str, git_ref: &str) -> Result<Option<Vec<String>>> {
        self.check("dir")?;
        self.inner.dir(repo, path, git_ref).await
    }

    async fn pull(&self, repo: &RepoRef, number: u64) -> Result<Option<PullRequest>> {
        self.check("pull")?;
        self.inner.pull(repo, number).await
    }

    async fn open_pulls(&self, repo: &RepoRef) -> Result<Vec<PullRequest>> {
        self.check("open_pulls")?;
        self.inner.open_pulls(repo).await
    }

    async fn comments(&self, repo: &RepoRef, number: u64) -> Result<Vec<Comment>> {
        self.check("comments")?;
        self.inner.comments(repo, number).await
    }

    async fn create_comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<Comment> {
        self.check("create_comment")?;
        self.inner.create_comment(repo, number, body).await
    }

    async fn update_comment(&self, repo: &RepoRef, id: u64, body: &str) -> Result<()> {
        self.check("update_comment")?;
        self.inner.update_comment(repo, id, body).await
    }

    async fn create_deployment(&self, repo: &RepoRef, deployment: &NewDeployment) -> Result<u64> {
        self.check("create_deployment")?;
        self.inner.create_deployment(repo, deployment).await
    }

    async fn deployment_status(
        &self,
        repo: &RepoRef,
        deployment: u64,
        status: &DeploymentStatus,
    ) -> Result<()> {
        self.check("deployment_status")?;
        self.inner.deployment_status(repo, deployment, status).await
    }

    async fn commit_status(&self, repo: &RepoRef, sha: &str, status: &CommitStatus) -> Result<()> {
        self.check("commit_status")?;
        self.inner.commit_status(repo, sha, status).await
    }
}

//! The real [`GitHub`]: REST calls through octocrab for a token or a GitHub App, against a
//! configurable base URI, with failures classified and the transient ones retried.
//!
//! Requests go through octocrab's raw `_get`/`_post`/`_patch`, which hand back the response
//! with its headers: pagination (`Link`) and rate limits (`Retry-After`,
//! `x-ratelimit-remaining`, `x-ratelimit-reset`) live there. octocrab's own retry layer is
//! not built in, so nothing is retried twice over.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::{
    Comment, CommitState, CommitStatus, DeploymentState, DeploymentStatus, Error, GitHub,
    NewDeployment, PullRequest, PullState, RateBudget, RepoRef, Result,
};

/// How the platform authenticates to GitHub for a repository.
#[derive(Clone)]
pub enum Credentials {
    /// A personal (or fine-grained) access token.
    Token(String),
    /// A GitHub App: installation tokens are made from its id and private key.
    App {
        /// The App's id.
        app_id: u64,
        /// Its private key, PEM.
        private_key_pem: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Token(..)"),
            Credentials::App { app_id, .. } => write!(f, "App {{ app_id: {app_id}, .. }}"),
        }
    }
}

/// Where GitHub is and how patiently it is asked.
#[derive(Clone, Debug)]
pub struct Options {
    /// The REST base: `https://api.github.com`, or a GitHub Enterprise Server's.
    pub base_uri: String,
    /// Attempts per call in all, for failures that may pass (5xx, rate limits).
    pub attempts: u32,
    /// The longest wait between attempts; a rate limit that asks for longer fails at once.
    pub max_wait: Duration,
    /// Connecting and reading, per request.
    pub request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base_uri: "https://api.github.com".to_owned(),
            attempts: 4,
            max_wait: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The GitHub REST API version every request asks for.
pub const API_VERSION: &str = "2022-11-28";

/// A client for `repo` with `credentials`. Nothing is sent until the first call; an App
/// finds its installation on the repository then.
///
/// # Errors
///
/// When the base URI or the private key cannot be used.
pub fn connect(
    options: &Options,
    credentials: Credentials,
    repo: &RepoRef,
) -> Result<Arc<dyn GitHub>> {
    let builder = || {
        Octocrab::builder()
            .base_uri(options.base_uri.as_str())
            .map_err(|e| Error::Credentials(format!("GitHub base URI {:?}: {e}", options.base_uri)))
            .map(|b| {
                b.set_connect_timeout(Some(options.request_timeout))
                    .set_read_timeout(Some(options.request_timeout))
                    .set_write_timeout(Some(options.request_timeout))
                    // The REST version our calls are written against, so a new default
                    // version on GitHub's side cannot change their shapes.
                    .add_header(
                        http::HeaderName::from_static("x-github-api-version"),
                        API_VERSION.to_owned(),
                    )
            })
    };
    let auth = match credentials {
        Credentials::Token(token) => {
            let crab = builder()?
                .personal_token(token)
                .build()
                .map_err(|e| Error::Credentials(e.to_string()))?;
            Auth::Ready(crab)
        }
        Credentials::App {
            app_id,
            private_key_pem,
        } => {
            let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
                .map_err(|e| Error::Credentials(format!("the App's private key: {e}")))?;
            let app = builder()?
                .app(AppId(app_id), key)
                .build()
                .map_err(|e| Error::Credentials(e.to_string()))?;
            Auth::App {
                app,
                installation: Box::new(OnceCell::new()),
            }
        }
    };
    Ok(Arc::new(Client {
        auth,
        repo: repo.clone(),
        attempts: options.attempts.max(1),
        max_wait: options.max_wait,
        budget: std::sync::Mutex::new(None),
    }))
}

enum Auth {
    Ready(Octocrab),
    App {
        app: Octocrab,
        installation: Box<OnceCell<Octocrab>>,
    },
}

struct Client {
    auth: Auth,
    repo: RepoRef,
    attempts: u32,
    max_wait: Duration,
    /// The rate limit as the last answer that carried one reported it.
    budget: std::sync::Mutex<Option<RateBudget>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

/// An answer: status, headers and body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Verb {
    Get,
    Post,
    Patch,
}

fn message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A failed answer as an error; rate limits say how long to wait.
fn classify(answer: &Answer, what: &str) -> Error {
    let detail = format!(
        "{what}: {} {}",
        answer.status.as_u16(),
        message(&answer.body)
    );
    let exhausted = answer
        .headers
        .get("x-ratelimit-remaining")
        .is_some_and(|v| v.as_bytes() == b"0");
    let retry_after = header_u64(&answer.headers, "retry-after");
    match answer.status.as_u16() {
        403 | 429 if exhausted || retry_after.is_some() => {
            let wait = retry_after.unwrap_or_else(|| {
                header_u64(&answer.headers, "x-ratelimit-reset")
                    .map_or(60, |reset| reset.saturating_sub(now_seconds()).max(1))
            });
            Error::RateLimited {
                retry_after_seconds: wait,
            }
        }
        404 => Error::NotFound(detail),
        401 | 403 => Error::Unauthorized(detail),
        500..=599 => Error::Unavailable(detail),
        _ => Error::Rejected(detail),
    }
}

fn octo_error(e: &octocrab::Error, what: &str) -> Error {
    Error::Unavailable(format!("{what}: {e}"))
}

/// 200 ms doubling, with up to a quarter more at random, so retrying clients spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(8));
    let mut byte = [0u8; 1];
    let jitter = if getrandom::fill(&mut byte).is_ok() {
        base / 4 * u64::from(byte[0]) / 255
    } else {
        0
    };
    Duration::from_millis(base + jitter)
}

/// A link's path and query: octocrab sends credentials only with relative URIs (or to
/// api.github.com), so the absolute `next` links GitHub gives are made relative.
fn relative(link: &str) -> String {
    match link.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned()),
        None => link.to_owned(),
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| relative(url.trim().trim_start_matches('<').trim_end_matches('>')))
    })
}

/// A path segment (a file path keeps its `/`), percent-encoded.
fn encode_path(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn cut(text: &str) -> String {
    text.chars().take(140).collect()
}

fn decode<T: for<'de> Deserialize<'de>>(answer: &Answer, what: &str) -> Result<T> {
    serde_json::from_slice(&answer.body).map_err(|e| Error::Decode(format!("{what}: {e}")))
}

impl Client {
    async fn crab(&self) -> Result<&Octocrab> {
        match &self.auth {
            Auth::Ready(crab) => Ok(crab),
            Auth::App { app, installation } => {
                installation
                    .get_or_try_init(|| async {
                        let path =
                            format!("/repos/{}/{}/installation", self.repo.owner, self.repo.name);
                        // Not installed must not read as "no such pull request": a caller
                        // would take that for a closed one and tear its preview down.
                        let answer = match self.send_with(app, Verb::Get, &path, None).await {
                            Err(Error::NotFound(_)) => {
                                return Err(Error::Unauthorized(format!(
                                    "the GitHub App is not installed on {}",
                                    self.repo
                                )));
                            }
                            other => other?,
                        };
                        #[derive(Deserialize)]
                        struct Installation {
                            id: u64,
                        }
                        let found: Installation = decode(&answer, "the App's installation")?;
                        app.installation(InstallationId(found.id))
                            .map_err(|e| Error::Credentials(e.to_string()))
                    })
                    .await
            }
        }
    }

    async fn send_once(
        &self,
        crab: &Octocrab,
        verb: Verb,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let sent = match verb {
            Verb::Get => crab._get(path).await,
            Verb::Post => crab._post(path, body).await,
            Verb::Patch => crab._patch(path, body).await,
        };
        let response = sent.map_err(|e| octo_error(&e, path))?;
        let status = response.status();
        let headers = response.headers().clone();
        if let (Some(limit), Some(remaining), Some(reset_at)) = (
            header_u64(&headers, "x-ratelimit-limit"),
            header_u64(&headers, "x-ratelimit-remaining"),
            header_u64(&headers, "x-ratelimit-reset"),
        ) && let Ok(mut budget) = self.budget.lock()
        {
            *budget = Some(RateBudget {
                limit,
                remaining,
                reset_at,
            });
        }
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| octo_error(&e, path))?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends with retries: transient failures are tried again, up to `attempts` in all.
    async fn send_with(
        &self,
        crab: &Octocrab,
        verb: Verb,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.send_once(crab, verb, path, body).await {
                Ok(answer) if answer.status.is_success() => return Ok(answer),
                Ok(answer) => classify(&answer, path),
                Err(e) => e,
            };
            let wait = match &error {
                Error::RateLimited {
                    retry_after_seconds,
                } => Duration::from_secs(*retry_after_seconds),
                Error::Unavailable(_) => backoff(attempt - 1),
                _ => return Err(error),
            };
            if attempt >= self.attempts || wait > self.max_wait {
                return Err(error);
            }
            tracing::debug!(%path, error = %error, ?wait, "GitHub call failed; trying again");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send(&self, verb: Verb, path: &str, body: Option<&Value>) -> Result<Answer> {
        let crab = self.crab().await?;
        self.send_with(crab, verb, path, body).await
    }

    /// Every page of a list, following `Link: rel="next"`.
    async fn all_pages(&self, first: String) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut next = Some(first);
        while let Some(path) = next {
            let answer = self.send(Verb::Get, &path, None).await?;
            let page: Vec<Value> = decode(&answer, &path)?;
            items.extend(page);
            next = next_link(&answer.headers);
        }
        Ok(items)
    }

    /// The contents API's answer for `path` at `git_ref`: a file's object or a directory's
    /// list; `None` when there is nothing there.
    async fn contents(&self, repo: &RepoRef, path: &str, git_ref: &str) -> Result<Option<Value>> {
        let url = self.repo_path(
            repo,
            &format!(
                "/contents/{}?ref={}",
                encode_path(path),
                encode_path(git_ref)
            ),
        );
        let Some(answer) = not_found_is_none(self.send(Verb::Get, &url, None).await)? else {
            return Ok(None);
        };
        decode(&answer, path).map(Some)
    }

    fn repo_path(&self, repo: &RepoRef, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", repo.owner, repo.name)
    }
}

fn pull_from(value: &Value) -> Result<PullRequest> {
    #[derive(Deserialize)]
    struct Named {
        full_name: String,
    }
    #[derive(Deserialize)]
    struct Side {
        sha: String,
        #[serde(rename = "ref")]
        git_ref: String,
        repo: Option<Named>,
    }
    #[derive(Deserialize)]
    struct Label {
        name: String,
    }
    #[derive(Deserialize)]
    struct User {
        login: String,
    }
    #[derive(Deserialize)]
    struct Pull {
        number: u64,
        state: String,
        #[serde(default)]
        merged: Option<bool>,
        #[serde(default)]
        merged_at: Option<String>,
        #[serde(default)]
        draft: Option<bool>,
        head: Side,
        base: Side,
        #[serde(default)]
        labels: Vec<Label>,
        user: Option<User>,
        #[serde(default)]
        title: String,
        #[serde(default)]
        html_url: String,
    }
    let pull =
        Pull::deserialize(value).map_err(|e| Error::Decode(format!("a pull request: {e}")))?;
    Ok(PullRequest {
        number: pull.number,
        state: if pull.state == "open" {
            PullState::Open
        } else {
            PullState::Closed
        },
        merged: pull.merged.unwrap_or(pull.merged_at.is_some()),
        draft: pull.draft.unwrap_or(false),
        head_sha: pull.head.sha,
        head_ref: pull.head.git_ref,
        head_repo: pull.head.repo.map(|r| r.full_name),
        base_repo: pull.base.repo.map(|r| r.full_name).unwrap_or_default(),
        labels: pull.labels.into_iter().map(|l| l.name).collect(),
        title: pull.title,
        author: pull.user.map(|u| u.login).unwrap_or_default(),
        html_url: pull.html_url,
    })
}

fn comment_from(value: &Value) -> Result<Comment> {
    #[derive(Deserialize)]
    struct User {
        login: String,
    }
    #[derive(Deserialize)]
    struct Raw {
        id: u64,
        #[serde(default)]
        body: Option<String>,
        user: Option<User>,
    }
    let raw = Raw::deserialize(value).map_err(|e| Error::Decode(format!("a comment: {e}")))?;
    Ok(Comment {
        id: raw.id,
        author: raw.user.map(|u| u.login).unwrap_or_default(),
        body: raw.body.unwrap_or_default(),
    })
}

fn not_found_is_none<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl GitHub for Client {
    fn rate_budget(&self) -> Option<RateBudget> {
        self.budget.lock().ok().and_then(|b| *b)
    }

    async fn login(&self) -> Result<String> {
        match &self.auth {
            Auth::Ready(crab) => {
                let answer = self.send_with(crab, Verb::Get, "/user", None).await?;
                let user: Value = decode(&answer, "/user")?;
                user.get("login")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| Error::Decode("/user has no login".to_owned()))
            }
            Auth::App { app, .. } => {
                let answer = self.send_with(app, Verb::Get, "/app", None).await?;
                let found: Value = decode(&answer, "/app")?;
                found
                    .get("slug")
                    .and_then(Value::as_str)
                    .map(|slug| format!("{slug}[bot]"))
                    .ok_or_else(|| Error::Decode("/app has no slug".to_owned()))
            }
        }
    }

    async fn file(&self, repo: &RepoRef, path: &str, git_ref: &str) -> Result<Option<Vec<u8>>> {
        let Some(value) = self.contents(repo, path, git_ref).await? else {
            return Ok(None);
        };
        // A directory answers a list.
        if value.get("type").and_then(Value::as_str) != Some("file") {
            return Ok(None);
        }
        let content: String = value
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(content)
            .map(Some)
            .map_err(|e| Error::Decode(format!("{path}: its content is not base64: {e}")))
    }

    async fn dir(&self, repo: &RepoRef, path: &str, git_ref: &str) -> Result<Option<Vec<String>>> {
        let Some(value) = self.contents(repo, path, git_ref).await? else {
            return Ok(None);
        };
        let Some(entries) = value.as_array() else {
            return Ok(None);
        };
        let mut files: Vec<String> = entries
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("file"))
            .filter_map(|e| e.get("path").and_then(Value::as_str).map(str::to_owned))
            .collect();
        files.sort();
        Ok(Some(files))
    }

    async fn pull(&self, repo: &RepoRef, number: u64) -> Result<Option<PullRequest>> {
        let url = self.repo_path(repo, &format!("/pulls/{number}"));
        match not_found_is_none(self.send(Verb::Get, &url, None).await)? {
            Some(answer) => pull_from(&decode::<Value>(&answer, &url)?).map(Some),
            None => Ok(None),
        }
    }

    async fn open_pulls(&self, repo: &RepoRef) -> Result<Vec<PullRequest>> {
        let first = self.repo_path(repo, "/pulls?state=open&per_page=100");
        self.all_pages(first).await?.iter().map(pull_from).collect()
    }

    async fn comments(&self, repo: &RepoRef, number: u64) -> Result<Vec<Comment>> {
        let first = self.repo_path(repo, &format!("/issues/{number}/comments?per_page=100"));
        self.all_pages(first)
            .await?
            .iter()
            .map(comment_from)
            .collect()
    }

    async fn create_comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<Comment> {
        let url = self.repo_path(repo, &format!("/issues/{number}/comments"));
        let answer = self
            .send(Verb::Post, &url, Some(&json!({ "body": body })))
            .await?;
        comment_from(&decode::<Value>(&answer, &url)?)
    }

    async fn update_comment(&self, repo: &RepoRef, id: u64, body: &str) -> Result<()> {
        let url = self.repo_path(repo, &format!("/issues/comments/{id}"));
        self.send(Verb::Patch, &url, Some(&json!({ "body": body })))
            .await?;
        Ok(())
    }

    async fn create_deployment(&self, repo: &RepoRef, deployment: &NewDeployment) -> Result<u64> {
        let url = self.repo_path(repo, "/deployments");
        let body = json!({
            "ref": deployment.sha,
            "task": deployment.task,
            "environment": deployment.environment,
            "description": cut(&deployment.description),
            "transient_environment": true,
            "production_environment": false,
            "auto_merge": false,
            "required_contexts": [],
        });
        let answer = self.send(Verb::Post, &url, Some(&body)).await?;
        let created: Value = decode(&answer, &url)?;
        created
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::Decode(format!("{url}: no deployment id in the answer")))
    }

    async fn deployment_status(
        &self,
        repo: &RepoRef,
        deployment: u64,
        status: &DeploymentStatus,
    ) -> Result<()> {
        let url = self.repo_path(repo, &format!("/deployments/{deployment}/statuses"));
        let state = match status.state {
            DeploymentState::Queued => "queued",
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Error => "error",
            DeploymentState::Inactive => "inactive",
        };
        let mut body = json!({ "state": state, "description": cut(&status.description) });
        if let Some(url) = &status.environment_url {
            body["environment_url"] = json!(url);
        }
        if let Some(url) = &status.log_url {
            body["log_url"] = json!(url);
        }
        self.send(Verb::Post, &url, Some(&body)).await?;
        Ok(())
    }

    async fn commit_status(&self, repo: &RepoRef, sha: &str, status: &CommitStatus) -> Result<()> {
        let url = self.repo_path(repo, &format!("/statuses/{}", encode_path(sha)));
        let state = match status.state {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
            CommitState::Error => "error",
        };
        let mut body = json!({
            "state": state,
            "context": status.context,
            "description": cut(&status.description),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        self.send(Verb::Post, &url, Some(&body)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_made_relative() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::LINK,
            "<http://127.0.0.1:9/repos/a/b/pulls?page=2&per_page=100>; rel=\"next\", <http://127.0.0.1:9/repos/a/b/pulls?page=3>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/repos/a/b/pulls?page=2&per_page=100")
        );
        headers.insert(
            http::header::LINK,
            "<https://x/y?page=1>; rel=\"prev\"".parse().unwrap(),
        );
        assert_eq!(next_link(&headers), None);
    }

    #[test]
    fn answers_are_classified() {
        let answer = |status: u16, headers: &[(&str, &str)]| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.parse::<http::HeaderName>().unwrap(), v.parse().unwrap()))
                .collect(),
            body: br#"{"message":"nope"}"#.to_vec(),
        };
        assert!(matches!(
            classify(&answer(404, &[]), "x"),
            Error::NotFound(_)
        ));
        assert!(matches!(
            classify(&answer(401, &[]), "x"),
            Error::Unauthorized(_)
        ));
        assert!(matches!(
            classify(&answer(403, &[]), "x"),
            Error::Unauthorized(_)
        ));
        assert!(
            matches!(classify(&answer(422, &[]), "x"), Error::Rejected(m) if m.contains("nope"))
        );
        assert!(matches!(
            classify(&answer(502, &[]), "x"),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            classify(&answer(429, &[("retry-after", "7")]), "x"),
            Error::RateLimited {
                retry_after_seconds: 7
            }
        ));
        let reset = (now_seconds() + 30).to_string();
        match classify(
            &answer(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset),
                ],
            ),
            "x",
        ) {
            Error::RateLimited {
                retry_after_seconds,
            } => assert!((29..=30).contains(&retry_after_seconds)),
            other => panic!("{other:?}"),
        }
    }
}

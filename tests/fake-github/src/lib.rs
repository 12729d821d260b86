//! A local fake GitHub for tests, the only stand-in for github.com the project allows: an
//! axum server on loopback that serves, from memory, the REST paths the platform calls
//! (contents, pull requests, issue comments, deployments and their statuses, commit
//! statuses, the user and App endpoints, installation tokens) with GitHub's JSON shapes,
//! errors, pagination and rate-limit headers, and records every request. It also writes
//! webhook payloads in GitHub's shapes and delivers them signed as GitHub does.

mod payloads;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The private key (PKCS#1 PEM, RSA 2048, made once with `openssl genrsa -traditional 2048`
/// for these tests and nothing else) every fake App is given.
pub const APP_KEY: &str = include_str!("app-key.pem");

/// A pull request to open.
#[derive(Clone, Debug)]
pub struct Pull {
    /// Its number.
    pub number: u64,
    /// Its head commit.
    pub head_sha: String,
    /// Its head branch.
    pub head_ref: String,
    /// Its author's login.
    pub author: String,
    /// Whether its head is in a fork (`<author>/<name>`).
    pub fork: bool,
    /// Its labels.
    pub labels: Vec<String>,
    /// Whether it is a draft.
    pub draft: bool,
}

/// A comment as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeComment {
    /// Its id.
    pub id: u64,
    /// Its author's login.
    pub author: String,
    /// Its body.
    pub body: String,
}

/// A deployment status as the fake received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeDeploymentStatus {
    /// `state`.
    pub state: String,
    /// `environment_url`.
    pub environment_url: Option<String>,
    /// `log_url`.
    pub log_url: Option<String>,
    /// `description`.
    pub description: String,
}

/// A deployment as the fake received it, with its statuses in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeDeployment {
    /// Its id.
    pub id: u64,
    /// `ref`.
    pub sha: String,
    /// `environment`.
    pub environment: String,
    /// `task`.
    pub task: String,
    /// `transient_environment`.
    pub transient_environment: bool,
    /// `auto_merge`.
    pub auto_merge: bool,
    /// `required_contexts`.
    pub required_contexts: Vec<String>,
    /// Its statuses, oldest first.
    pub statuses: Vec<FakeDeploymentStatus>,
}

/// A commit status as the fake received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeCommitStatus {
    /// `state`.
    pub state: String,
    /// `context`.
    pub context: String,
    /// `description`.
    pub description: String,
    /// `target_url`.
    pub target_url: Option<String>,
}

/// A request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// `X-GitHub-Api-Version`, if sent.
    pub api_version: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct PullRecord {
    pub(crate) pull: Pull,
    pub(crate) open: bool,
    pub(crate) merged: bool,
    pub(crate) before: Option<String>,
}

#[derive(Default)]
pub(crate) struct RepoRecord {
    pub(crate) id: u64,
    pub(crate) files: HashMap<(String, String), Vec<u8>>,
    pub(crate) pulls: BTreeMap<u64, PullRecord>,
    /// (issue number, comment)
    pub(crate) comments: Vec<(u64, FakeComment)>,
    pub(crate) deployments: Vec<FakeDeployment>,
    pub(crate) statuses: HashMap<String, Vec<FakeCommitStatus>>,
}

enum Identity {
    User(String),
    Installation(u64),
}

#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) url: String,
    tokens: HashMap<String, Identity>,
    apps: HashMap<u64, String>,
    /// installation id → (app id, repositories)
    installations: HashMap<u64, (u64, HashSet<String>)>,
    pub(crate) repos: BTreeMap<String, RepoRecord>,
    next_id: u64,
    requests: Vec<Recorded>,
    fail: Option<(usize, u16)>,
    rate_limit: Option<(usize, u64)>,
    /// Requests left in the rate-limit window every answer reports, and when it resets
    /// (Unix seconds); `None` is a fresh window resetting in an hour.
    window: Option<(u64, u64)>,
}

/// The rate limit the fake reports, GitHub's for a token.
const RATE_LIMIT: u64 = 5000;

impl Fake {
    pub(crate) fn id(&mut self) -> u64 {
        self.next_id += 1;
        1000 + self.next_id
    }

    pub(crate) fn installation_of(&self, repo: &str) -> Option<u64> {
        self.installations
            .iter()
            .find(|(_, (_, repos))| repos.contains(repo))
            .map(|(id, _)| *id)
    }
}

type Shared = Arc<Mutex<Fake>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Fake> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fake; it serves until dropped.
pub struct FakeGitHub {
    shared: Shared,
    stop: CancellationToken,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for FakeGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGitHub")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

fn seconds_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl FakeGitHub {
    /// Binds a free loopback port and serves.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (a test cannot go on).
    pub async fn start() -> FakeGitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake GitHub");
        let addr = listener.local_addr().expect("the fake GitHub's address");
        let shared: Shared = Arc::new(Mutex::new(Fake {
            url: format!("http://{addr}"),
            ..Fake::default()
        }));
        let stop = CancellationToken::new();
        let app = Router::new()
            .fallback(serve)
            .with_state(Arc::clone(&shared));
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        FakeGitHub { shared, stop }
    }

    fn fake(&self) -> std::sync::MutexGuard<'_, Fake> {
        lock(&self.shared)
    }

    /// `http://127.0.0.1:PORT`: the REST base to give the client.
    pub fn url(&self) -> String {
        self.fake().url.clone()
    }

    /// Accepts `token` as `login`'s personal access token.
    pub fn add_token(&self, token: &str, login: &str) {
        self.fake()
            .tokens
            .insert(token.to_owned(), Identity::User(login.to_owned()));
    }

    /// Adds an App; answers the private key to sign its JWTs with ([`APP_KEY`]).
    pub fn add_app(&self, app_id: u64, slug: &str) -> String {
        self.fake().apps.insert(app_id, slug.to_owned());
        APP_KEY.to_owned()
    }

    /// Installs an App on `repo` (`owner/name`); answers the installation's id.
    pub fn install(&self, app_id: u64, repo: &str) -> u64 {
        let mut fake = self.fake();
        if let Some(id) = fake
            .installations
            .iter()
            .find(|(_, (app, _))| *app == app_id)
            .map(|(id, _)| *id)
        {
            if let Some((_, repos)) = fake.installations.get_mut(&id) {
                repos.insert(repo.to_owned());
            }
            return id;
        }
        let id = fake.id();
        fake.installations
            .insert(id, (app_id, HashSet::from([repo.to_owned()])));
        id
    }

    /// Adds a repository.
    pub fn add_repo(&self, repo: &str) {
        let mut fake = self.fake();
        let id = fake.id();
        fake.repos
            .entry(repo.to_owned())
            .or_insert_with(|| RepoRecord {
                id,
                ..RepoRecord::default()
            });
    }

    /// Puts a file at a commit or branch; directories are implied by paths.
    pub fn put_file(&self, repo: &str, git_ref: &str, path: &str, contents: &[u8]) {
        if let Some(record) = self.fake().repos.get_mut(repo) {
            record
                .files
                .insert((git_ref.to_owned(), path.to_owned()), contents.to_vec());
        }
    }

    fn event(
        &self,
        repo: &str,
        number: u64,
        action: &str,
        change: impl FnOnce(&mut PullRecord),
    ) -> Value {
        let mut fake = self.fake();
        if let Some(record) = fake
            .repos
            .get_mut(repo)
            .and_then(|r| r.pulls.get_mut(&number))
        {
            change(record);
        }
        payloads::pull_request_event(&fake, repo, number, action)
    }

    /// Opens a pull request; answers the `pull_request` `opened` delivery body.
    pub fn open_pull(&self, repo: &str, pull: Pull) -> Value {
        let number = pull.number;
        if let Some(record) = self.fake().repos.get_mut(repo) {
            record.pulls.insert(
                number,
                PullRecord {
                    pull,
                    open: true,
                    merged: false,
                    before: None,
                },
            );
        }
        self.event(repo, number, "opened", |_| {})
    }

    /// Pushes a new head; answers the `synchronize` delivery body.
    pub fn push(&self, repo: &str, number: u64, head_sha: &str) -> Value {
        self.event(repo, number, "synchronize", |record| {
            record.before = Some(std::mem::replace(
                &mut record.pull.head_sha,
                head_sha.to_owned(),
            ));
        })
    }

    /// Adds a label; answers the `labeled` delivery body.
    pub fn label(&self, repo: &str, number: u64, label: &str) -> Value {
        let mut body = self.event(repo, number, "labeled", |record| {
            if !record.pull.labels.iter().any(|l| l == label) {
                record.pull.labels.push(label.to_owned());
            }
        });
        body["label"] = payloads::label(label);
        body
    }

    /// Closes a pull request, merged or not; answers the `closed` delivery body.
    pub fn close_pull(&self, repo: &str, number: u64, merged: bool) -> Value {
        self.event(repo, number, "closed", |record| {
            record.open = false;
            record.merged = merged;
        })
    }

    /// Adds a comment by `author`; answers the `issue_comment` `created` delivery body.
    pub fn comment(&self, repo: &str, number: u64, author: &str, body: &str) -> Value {
        let mut fake = self.fake();
        let id = fake.id();
        let comment = FakeComment {
            id,
            author: author.to_owned(),
            body: body.to_owned(),
        };
        if let Some(record) = fake.repos.get_mut(repo) {
            record.comments.push((number, comment.clone()));
        }
        payloads::issue_comment_event(&fake, repo, number, &comment)
    }

    /// The `ping` delivery body of a new webhook on `repo`.
    pub fn ping(&self, repo: &str) -> Value {
        payloads::ping_event(&self.fake(), repo)
    }

    /// The comments on an issue or pull request, oldest first.
    pub fn comments(&self, repo: &str, number: u64) -> Vec<FakeComment> {
        self.fake()
            .repos
            .get(repo)
            .map(|r| {
                r.comments
                    .iter()
                    .filter(|(n, _)| *n == number)
                    .map(|(_, c)| c.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The deployments made on `repo`, oldest first.
    pub fn deployments(&self, repo: &str) -> Vec<FakeDeployment> {
        self.fake()
            .repos
            .get(repo)
            .map(|r| r.deployments.clone())
            .unwrap_or_default()
    }

    /// The commit statuses set on `sha`, oldest first.
    pub fn commit_statuses(&self, repo: &str, sha: &str) -> Vec<FakeCommitStatus> {
        self.fake()
            .repos
            .get(repo)
            .and_then(|r| r.statuses.get(sha).cloned())
            .unwrap_or_default()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.fake().requests.clone()
    }

    /// The next `requests` API requests answer `status` with GitHub's error body.
    pub fn fail_next(&self, requests: usize, status: u16) {
        self.fake().fail = Some((requests, status));
    }

    /// Every later answer reports `remaining` requests left (counting down per request)
    /// in a window that resets at `reset_at` (Unix seconds), as GitHub's `x-ratelimit-*`
    /// headers do.
    pub fn set_rate_limit(&self, remaining: u64, reset_at: u64) {
        self.fake().window = Some((remaining, reset_at));
    }

    /// The next `requests` API requests answer 403 with the rate-limit headers of an
    /// exhausted limit that resets `reset_in_seconds` from now.
    pub fn rate_limit_next(&self, requests: usize, reset_in_seconds: u64) {
        self.fake().rate_limit = Some((requests, reset_in_seconds));
    }
}

fn answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            ("content-type", "application/json; charset=utf-8"),
            ("x-github-media-type", "github.v3; format=json"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    answer(
        status,
        &json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        }),
    )
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found")
}

/// Who the request is from: a token's identity, or an App for a JWT whose `iss` is its id.
enum Caller {
    User(String),
    Installation(u64),
    App(u64),
}

fn caller(fake: &Fake, headers: &HeaderMap) -> Option<Caller> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))?
        .trim();
    match fake.tokens.get(token) {
        Some(Identity::User(login)) => return Some(Caller::User(login.clone())),
        Some(Identity::Installation(id)) => return Some(Caller::Installation(*id)),
        None => {}
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [_, claims, _] = parts.as_slice() else {
        return None;
    };
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    let claims: Value = serde_json::from_slice(&claims).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    if exp <= seconds_now() {
        return None;
    }
    let iss = match claims.get("iss")? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    fake.apps.contains_key(&iss).then_some(Caller::App(iss))
}

fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One page of `items` as GitHub pages a list: `per_page` (default 30, at most 100) and
/// `page` from the query, with a `Link` header of absolute URLs.
fn paged(fake: &Fake, path: &str, query: Option<&str>, items: Vec<Value>) -> Response {
    let per_page = query_param(query, "per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query_param(query, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut response = answer(StatusCode::OK, &Value::Array(chunk));
    let others: Vec<(&str, String)> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page=") && !p.starts_with("per_page="))
        .map(|p| ("", p.to_owned()))
        .collect();
    let base = |n: usize| {
        let mut q: Vec<String> = others.iter().map(|(_, p)| p.clone()).collect();
        q.push(format!("per_page={per_page}"));
        q.push(format!("page={n}"));
        format!("<{}{path}?{}>", fake.url, q.join("&"))
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("{}; rel=\"next\"", base(page + 1)));
        links.push(format!("{}; rel=\"last\"", base(pages)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", base(page - 1)));
        links.push(format!("{}; rel=\"first\"", base(1)));
    }
    if !links.is_empty()
        && let Ok(value) = links.join(", ").parse()
    {
        response.headers_mut().insert("link", value);
    }
    response
}

/// Answers a request, with GitHub's rate-limit headers on every answer that has none yet.
async fn serve(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = answer_request(&shared, &method, &uri, &headers, &body);
    let (remaining, reset_at) = {
        let mut fake = lock(&shared);
        let (left, reset_at) = fake
            .window
            .unwrap_or_else(|| (RATE_LIMIT, seconds_now() + 3600));
        let left = left.saturating_sub(1);
        fake.window = Some((left, reset_at));
        (left, reset_at)
    };
    let answered = response.headers_mut();
    if !answered.contains_key("x-ratelimit-remaining") {
        for (name, value) in [
            ("x-ratelimit-limit", RATE_LIMIT),
            ("x-ratelimit-remaining", remaining),
            ("x-ratelimit-reset", reset_at),
        ] {
            answered.insert(name, axum::http::HeaderValue::from(value));
        }
    }
    response
}

fn answer_request(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut fake = lock(shared);
    let path = uri.path().to_owned();
    let query = uri.query().map(str::to_owned);
    let json_body: Option<Value> = serde_json::from_slice(body).ok();
    fake.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: json_body.clone(),
        api_version: headers
            .get("x-github-api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    if let Some((left, status)) = fake.fail
        && left > 0
    {
        fake.fail = (left > 1).then_some((left - 1, status));
        return error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            "Server Error",
        );
    }
    if let Some((left, reset_in)) = fake.rate_limit
        && left > 0
    {
        fake.rate_limit = (left > 1).then_some((left - 1, reset_in));
        let mut response = error(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded for user ID 1.",
        );
        let reset = (seconds_now() + reset_in).to_string();
        let headers = response.headers_mut();
        headers.insert(
            "x-ratelimit-limit",
            axum::http::HeaderValue::from_static("5000"),
        );
        headers.insert(
            "x-ratelimit-remaining",
            axum::http::HeaderValue::from_static("0"),
        );
        if let Ok(value) = reset.parse() {
            headers.insert("x-ratelimit-reset", value);
        }
        return response;
    }
    let Some(who) = caller(&fake, headers) else {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = query.as_deref();
    match (&who, method.as_str(), segments.as_slice()) {
        (Caller::User(login), "GET", ["user"]) => answer(StatusCode::OK, &payloads::user(login, 1)),
        (Caller::App(app), "GET", ["app"]) => {
            let slug = fake.apps.get(app).cloned().unwrap_or_default();
            answer(
                StatusCode::OK,
                &json!({ "id": app, "slug": slug, "name": slug, "owner": payloads::user("acme", 2) }),
            )
        }
        (Caller::App(app), "GET", ["repos", owner, name, "installation"]) => {
            let repo = format!("{owner}/{name}");
            match fake
                .installations
                .iter()
                .find(|(_, (a, repos))| a == app && repos.contains(&repo))
            {
                Some((id, _)) => answer(
                    StatusCode::OK,
                    &json!({ "id": id, "app_id": app, "account": payloads::user(owner, 2), "target_type": "Organization" }),
                ),
                None => not_found(),
            }
        }
        (Caller::App(app), "POST", ["app", "installations", id, "access_tokens"]) => {
            let Some(id) = id
                .parse::<u64>()
                .ok()
                .filter(|id| fake.installations.get(id).is_some_and(|(a, _)| a == app))
            else {
                return not_found();
            };
            let token = format!("ghs_{}", fake.id());
            fake.tokens
                .insert(token.clone(), Identity::Installation(id));
            let expires = seconds_now() + 3600;
            answer(
                StatusCode::CREATED,
                &json!({ "token": token, "expires_at": payloads::iso(expires), "permissions": {}, "repository_selection": "selected" }),
            )
        }
        (Caller::App(_), _, _) => error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        ),
        (_, _, ["repos", owner, name, rest @ ..]) => {
            let repo = format!("{owner}/{name}");
            let allowed = match &who {
                Caller::User(_) => true,
                Caller::Installation(id) => fake
                    .installations
                    .get(id)
                    .is_some_and(|(_, repos)| repos.contains(&repo)),
                Caller::App(_) => false,
            };
            if !allowed || !fake.repos.contains_key(&repo) {
                return not_found();
            }
            repo_route(
                &mut fake, &who, method, &repo, &path, rest, query, json_body,
            )
        }
        _ => not_found(),
    }
}

fn missing(field: &str) -> Response {
    answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "message": "Invalid request.",
            "errors": [format!("\"{field}\" wasn't supplied.")],
            "documentation_url": "https://docs.github.com/rest",
            "status": "422",
        }),
    )
}

fn text(body: &Option<Value>, field: &str) -> Option<String> {
    body.as_ref()?.get(field)?.as_str().map(str::to_owned)
}

#[allow(clippy::too_many_arguments)]
fn repo_route(
    fake: &mut Fake,
    who: &Caller,
    method: &Method,
    repo: &str,
    path: &str,
    rest: &[&str],
    query: Option<&str>,
    body: Option<Value>,
) -> Response {
    let author = match who {
        Caller::User(login) => login.clone(),
        Caller::Installation(id) => {
            let app = fake
                .installations
                .get(id)
                .map(|(a, _)| *a)
                .unwrap_or_default();
            format!("{}[bot]", fake.apps.get(&app).cloned().unwrap_or_default())
        }
        Caller::App(_) => String::new(),
    };
    match (method.as_str(), rest) {
        ("GET", ["contents", file @ ..]) => {
            let wanted = file.join("/");
            let git_ref = query_param(query, "ref")
                .map(percent_decode)
                .unwrap_or_else(|| "main".to_owned());
            let Some(record) = fake.repos.get(repo) else {
                return not_found();
            };
            if let Some(bytes) = record.files.get(&(git_ref.clone(), wanted.clone())) {
                return answer(
                    StatusCode::OK,
                    &payloads::file(fake, repo, &wanted, &git_ref, bytes),
                );
            }
            let prefix = format!("{}/", wanted.trim_end_matches('/'));
            let mut entries: BTreeMap<String, &'static str> = BTreeMap::new();
            for (r, p) in record.files.keys() {
                if *r != git_ref {
                    continue;
                }
                if let Some(tail) = p.strip_prefix(&prefix) {
                    match tail.split_once('/') {
                        Some((dir, _)) => entries.insert(format!("{prefix}{dir}"), "dir"),
                        None => entries.insert(p.clone(), "file"),
                    };
                }
            }
            if entries.is_empty() {
                return not_found();
            }
            let listing: Vec<Value> = entries
                .into_iter()
                .map(|(p, kind)| payloads::entry(fake, repo, &p, &git_ref, kind))
                .collect();
            answer(StatusCode::OK, &Value::Array(listing))
        }
        ("GET", ["pulls"]) => {
            let state = query_param(query, "state").unwrap_or("open");
            let numbers: Vec<u64> = fake
                .repos
                .get(repo)
                .map(|r| {
                    r.pulls
                        .values()
                        .filter(|p| state == "all" || (state == "open") == p.open)
                        .map(|p| p.pull.number)
                        .collect()
                })
                .unwrap_or_default();
            let items: Vec<Value> = numbers
                .iter()
                .rev()
                .map(|n| payloads::pull(fake, repo, *n))
                .collect();
            paged(fake, path, query, items)
        }
        ("GET", ["pulls", number]) => match number.parse::<u64>() {
            Ok(n)
                if fake
                    .repos
                    .get(repo)
                    .is_some_and(|r| r.pulls.contains_key(&n)) =>
            {
                answer(StatusCode::OK, &payloads::pull(fake, repo, n))
            }
            _ => not_found(),
        },
        ("GET", ["issues", number, "comments"]) => {
            let Ok(n) = number.parse::<u64>() else {
                return not_found();
            };
            let items: Vec<Value> = fake
                .repos
                .get(repo)
                .map(|r| {
                    r.comments
                        .iter()
                        .filter(|(i, _)| *i == n)
                        .map(|(_, c)| payloads::comment(fake, repo, n, c))
                        .collect()
                })
                .unwrap_or_default();
            paged(fake, path, query, items)
        }
        ("POST", ["issues", number, "comments"]) => {
            let Ok(n) = number.parse::<u64>() else {
                return not_found();
            };
            let Some(text) = text(&body, "body") else {
                return missing("body");
            };
            let id = fake.id();
            let comment = FakeComment {
                id,
                author,
                body: text,
            };
            let shown = payloads::comment(fake, repo, n, &comment);
            if let Some(record) = fake.repos.get_mut(repo) {
                record.comments.push((n, comment));
            }
            answer(StatusCode::CREATED, &shown)
        }
        ("PATCH", ["issues", "comments", id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return not_found();
            };
            let Some(text) = text(&body, "body") else {
                return missing("body");
            };
            let Some(record) = fake.repos.get_mut(repo) else {
                return not_found();
            };
            let Some((n, comment)) = record.comments.iter_mut().find(|(_, c)| c.id == id) else {
                return not_found();
            };
            comment.body = text;
            let (n, comment) = (*n, comment.clone());
            answer(StatusCode::OK, &payloads::comment(fake, repo, n, &comment))
        }
        ("POST", ["deployments"]) => {
            let Some(sha) = text(&body, "ref") else {
                return missing("ref");
            };
            let field = |name: &str| body.as_ref().and_then(|b| b.get(name)).cloned();
            let id = fake.id();
            let deployment = FakeDeployment {
                id,
                sha,
                environment: text(&body, "environment").unwrap_or_else(|| "production".to_owned()),
                task: text(&body, "task").unwrap_or_else(|| "deploy".to_owned()),
                transient_environment: field("transient_environment")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
                auto_merge: field("auto_merge")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true),
                required_contexts: field("required_contexts")
                    .and_then(|v| v.as_array().cloned())
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_else(|| vec!["<all>".to_owned()]),
                statuses: Vec::new(),
            };
            let shown = payloads::deployment(fake, repo, &deployment, &author);
            if let Some(record) = fake.repos.get_mut(repo) {
                record.deployments.push(deployment);
            }
            answer(StatusCode::CREATED, &shown)
        }
        ("POST", ["deployments", id, "statuses"]) => {
            let Ok(id) = id.parse::<u64>() else {
                return not_found();
            };
            let Some(state) = text(&body, "state") else {
                return missing("state");
            };
            let status = FakeDeploymentStatus {
                state,
                environment_url: text(&body, "environment_url"),
                log_url: text(&body, "log_url"),
                description: text(&body, "description").unwrap_or_default(),
            };
            let status_id = fake.id();
            let Some(record) = fake.repos.get_mut(repo) else {
                return not_found();
            };
            let Some(deployment) = record.deployments.iter_mut().find(|d| d.id == id) else {
                return not_found();
            };
            deployment.statuses.push(status.clone());
            answer(
                StatusCode::CREATED,
                &json!({ "id": status_id, "state": status.state, "environment_url": status.environment_url.unwrap_or_default(), "description": status.description }),
            )
        }
        ("POST", ["statuses", sha]) => {
            let Some(state) = text(&body, "state") else {
                return missing("state");
            };
            let status = FakeCommitStatus {
                state,
                context: text(&body, "context").unwrap_or_else(|| "default".to_owned()),
                description: text(&body, "description").unwrap_or_default(),
                target_url: text(&body, "target_url"),
            };
            let id = fake.id();
            let Some(record) = fake.repos.get_mut(repo) else {
                return not_found();
            };
            record
                .statuses
                .entry((*sha).to_owned())
                .or_default()
                .push(status.clone());
            answer(
                StatusCode::CREATED,
                &json!({ "id": id, "state": status.state, "context": status.context, "description": status.description, "target_url": status.target_url }),
            )
        }
        _ => not_found(),
    }
}

/// Delivers `body` to the webhook at `url` as GitHub does: JSON, signed with `secret` in
/// `X-Hub-Signature-256`, with GitHub's event, delivery, hook and user-agent headers.
/// Answers the status code and body.
///
/// # Panics
///
/// When `url` is not `http://HOST:PORT/PATH` (a test's own mistake).
pub async fn deliver(
    url: &str,
    secret: &[u8],
    event: &str,
    delivery_id: &str,
    body: &Value,
) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// webhook URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let payload = body.to_string().into_bytes();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let signature: String = ring::hmac::sign(&key, &payload)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let Ok(stream) = tokio::net::TcpStream::connect(authority).await else {
        return (0, String::new());
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return (0, String::new());
    };
    tokio::spawn(connection);
    let request = hyper::Request::post(path)
        .header("host", authority)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/8f6e2c1")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery_id)
        .header("x-github-hook-id", "424242")
        .header("x-github-hook-installation-target-type", "repository")
        .header("x-hub-signature-256", format!("sha256={signature}"))
        .body(http_body_util::Full::new(Bytes::from(payload)))
        .expect("a webhook request");
    let Ok(response) = sender.send_request(request).await else {
        return (0, String::new());
    };
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

//! The Kubernetes-compatible API server (DESIGN D1, D2): the only component that holds the
//! Store. It serves discovery, CRUD, patch and watch for the resource subset in
//! [`resources`], with Kubernetes' Status errors, resourceVersion semantics and selectors.
//!
//! [`router`] builds the HTTP service (testable with `tower::ServiceExt::oneshot`);
//! [`serve`] runs it on a listener until the shutdown token fires. [`bootstrap`] creates
//! the namespaces every cluster has.

mod agents;
pub mod allocator;
pub mod auth;
pub mod authz;
pub mod discovery;
pub mod filter;
mod handlers;
mod images;
mod inflight;
mod limits;
pub mod metrics;
pub mod objects;
pub mod path;
pub mod pki;
pub mod presence;
mod quota;
pub mod resources;
mod reviews;
pub mod status;
pub mod tls;
mod usage;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use slipway_clock::SharedClock;
use slipway_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::discovery::Format;
use crate::handlers::{MAX_BODY_BYTES, json_response};
use crate::status::ApiError;

pub use handlers::Part;
pub use inflight::{Inflight, Limits};

/// What every request handler shares.
pub struct ApiState {
    /// The one store (D2: nothing else holds it), metered.
    pub store: Arc<dyn Store>,
    /// The clock timestamps are read from.
    pub clock: SharedClock,
    /// Cancelled when the server stops; ends open watches.
    pub shutdown: CancellationToken,
    /// What `/metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
    /// The budgets of requests in flight; past them, 429.
    pub inflight: Inflight,
    /// Namespaces with ResourceQuotas, so creates elsewhere skip the quota read.
    pub quotas: Arc<presence::Presence>,
    /// Namespaces with LimitRanges, so pods elsewhere skip the range read.
    pub limit_ranges: Arc<presence::Presence>,
    /// How long an Event lives (kube-apiserver's `--event-ttl`, one hour by default).
    pub event_ttl: Duration,
    /// The lease Events created lately share, and when it was granted: one lease a minute
    /// rather than one per Event, as kube-apiserver's lease manager reuses them.
    event_lease: tokio::sync::Mutex<Option<(slipway_store::LeaseId, std::time::Instant)>>,
    /// Whether pods may run privileged containers (kube-apiserver's `--allow-privileged`).
    pub allow_privileged: bool,
    /// The bearer token node agents accept from the API server (the join token), for
    /// `pods/log`; without it logs cannot be relayed.
    pub node_credentials: Option<String>,
    /// Who may do what; `None` serves every request that passed authentication (tests
    /// and benchmarks that measure the server without it).
    pub authorization: Option<Arc<authz::Authorization>>,
    /// The tasks [`bootstrap`] starts to follow the store (admission indexes, the
    /// authorizer's caches), which end on `shutdown`; [`ApiState::stopped`] awaits them.
    background: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The HTTP client that reaches node agents.
    pub agents: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        axum::body::Body,
    >,
}

impl ApiState {
    /// The state over `store`, which is wrapped to time every operation.
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, shutdown: CancellationToken) -> Self {
        let metrics = Arc::new(metrics::Metrics::default());
        ApiState {
            store: Arc::new(metrics::MeteredStore::new(store, metrics.clone())),
            clock,
            shutdown,
            metrics,
            inflight: Inflight::new(Limits::default()),
            quotas: presence::Presence::new(objects::prefix(
                resources::find("", "v1", "resourcequotas").expect("resourcequotas are served"),
                None,
            )),
            limit_ranges: presence::Presence::new(objects::prefix(
                resources::find("", "v1", "limitranges").expect("limitranges are served"),
                None,
            )),
            event_ttl: Duration::from_secs(3600),
            event_lease: tokio::sync::Mutex::new(None),
            allow_privileged: false,
            node_credentials: None,
            authorization: None,
            background: std::sync::Mutex::new(Vec::new()),
            agents: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }

    /// The same state with Events living `ttl`.
    #[must_use]
    pub fn with_event_ttl(mut self, ttl: Duration) -> Self {
        self.event_ttl = ttl;
        self
    }

    /// The lease a new Event is bound to: the one granted within the last minute, else a
    /// new one, living the TTL plus that minute so no Event outlives its TTL by more.
    async fn event_lease(&self) -> Result<slipway_store::LeaseId, slipway_store::Error> {
        const REUSE: Duration = Duration::from_secs(60);
        let mut held = self.event_lease.lock().await;
        if let Some((lease, granted)) = *held
            && granted.elapsed() < REUSE
        {
            return Ok(lease);
        }
        let lease = self.store.grant_lease(self.event_ttl + REUSE).await?;
        *held = Some((lease, std::time::Instant::now()));
        Ok(lease)
    }

    /// The same state with other limits on requests in flight.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.inflight = Inflight::new(limits);
        self
    }

    /// The state allowing privileged containers or not.
    #[must_use]
    pub fn with_allow_privileged(mut self, allow: bool) -> Self {
        self.allow_privileged = allow;
        self
    }

    /// The state authorizing every request: the node authorizer, then `extra`, then RBAC.
    #[must_use]
    pub fn with_authorization(mut self, extra: Vec<Arc<dyn slipway_access::Authorizer>>) -> Self {
        self.authorization = Some(authz::Authorization::new(extra));
        self
    }

    /// Waits for the tasks following the store to end, after `shutdown` was cancelled,
    /// so that whoever closes the store is its last holder.
    pub async fn stopped(&self) {
        let tasks = std::mem::take(
            &mut *self
                .background
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            let _ = task.await;
        }
    }

    /// The state with the token node agents accept from the API server.
    #[must_use]
    pub fn with_node_credentials(mut self, token: String) -> Self {
        self.node_credentials = Some(token);
        self
    }
}

/// The namespaces every Kubernetes cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The API's HTTP routes.
pub fn router(state: Arc<ApiState>) -> Router {
    router_with(state, Router::new())
}

/// The API's HTTP routes and `extra` ones (the platform's `/slipway/v1/...`), every one
/// behind the same authorization and metrics.
pub fn router_with(state: Arc<ApiState>, extra: Router) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async { json_response(StatusCode::OK, &discovery::version()) }),
        )
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .route(
            "/api",
            get(|headers: HeaderMap| async move { discovery_response(&headers, discovery::core) }),
        )
        .route(
            "/apis",
            get(|headers: HeaderMap| async move {
                discovery_response(&headers, discovery::groups_document)
            }),
        )
        .route("/api/v1", get(|| async { resource_list("", "v1") }))
        .route(
            "/apis/{group}",
            get(|Path(group): Path<String>| async move {
                match discovery::group_document(&group) {
                    Some(doc) => json_response(StatusCode::OK, &doc),
                    None => ApiError::no_such_path().into_response(),
                }
            }),
        )
        .route(
            "/apis/{group}/{version}",
            get(
                |Path((group, version)): Path<(String, String)>| async move {
                    resource_list(&group, &version)
                },
            ),
        )
        .route(
            "/openapi/v3",
            get(|| async { json_response(StatusCode::OK, &slipway_openapi::index()) }),
        )
        .route("/openapi/v3/{*path}", get(openapi_document))
        .route(
            "/metrics",
            get(|State(state): State<Arc<ApiState>>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    state.metrics.render(),
                )
            }),
        )
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            post(reviews::self_subject),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            post(reviews::self_access),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            post(reviews::self_rules),
        )
        .route(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            post(reviews::subject_access),
        )
        .merge(images::router())
        .merge(usage::router())
        .merge(extra.with_state(()))
        .fallback(resource_request)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// One group-version's OpenAPI document. Its URL carries a content hash, so a request
/// with the current hash may be cached for good, as Kubernetes allows.
async fn openapi_document(Path(path): Path<String>, request: Request) -> Response {
    let Some(document) = slipway_openapi::document(&path) else {
        return ApiError::no_such_path().into_response();
    };
    let hash = slipway_openapi::hash(&path).unwrap_or_default();
    let current = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == format!("hash={hash}")));
    let cache = if current {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let mut response = (StatusCode::OK, document.as_ref().clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// Records every request's verb, resource, code and time to the response head.
async fn record(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let (verb, resource) = match path::parse(request.uri().path()) {
        Ok(target) => {
            let watch = is_watch(request.uri().query());
            let verb = metrics::verb(request.method(), target.name.is_some(), watch);
            let resource = match &target.subresource {
                Some(sub) => format!("{}/{sub}", target.resource.plural),
                None => target.resource.plural.to_owned(),
            };
            (verb, resource)
        }
        // Non-resource paths are counted together, so no client can grow the label set.
        Err(_) => (metrics::verb(request.method(), true, false), String::new()),
    };
    let response = next.run(request).await;
    state.metrics.request(
        verb,
        &resource,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn health() -> &'static str {
    "ok"
}

/// Ready once the store answers.
async fn ready(State(state): State<Arc<ApiState>>) -> Response {
    match state.store.revision().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")).into_response(),
    }
}

fn discovery_response(headers: &HeaderMap, document: fn(Format) -> Value) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = Format::negotiate(accept);
    let mut response = json_response(StatusCode::OK, &document(format));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

fn resource_list(group: &str, version: &str) -> Response {
    match discovery::resource_list(group, version) {
        Some(doc) => json_response(StatusCode::OK, &doc),
        None => ApiError::no_such_path().into_response(),
    }
}

/// Whether a query asks for a watch.
fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .filter_map(|pair| pair.strip_prefix("watch="))
            .next_back()
            .is_some_and(handlers::is_true)
    })
}

async fn resource_request(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    // Streams upgrade the connection and run for as long as the session, so like watches
    // they take no place in the budgets; their body is the stream, never read here.
    if let Ok(target) = path::parse(request.uri().path())
        && handlers::is_connect(&target)
    {
        return handlers::connect(state, target, request)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    // Watches run for minutes and are not counted; everything else waits for a place.
    let _permit = if is_watch(request.uri().query()) {
        None
    } else {
        match state.inflight.admit(request.method()) {
            Some(permit) => Some(permit),
            None => return ApiError::too_many_requests().into_response(),
        }
    };
    let (parts, body) = request.into_parts();
    let user = parts.extensions.get::<slipway_access::User>().cloned();
    let result = async {
        let target = path::parse(parts.uri.path())?;
        let query: HashMap<String, String> = match parts.uri.query() {
            Some(q) => serde_urlencoded_pairs(q)?,
            None => HashMap::new(),
        };
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                ApiError::too_large(format!(
                    "the request body is larger than {MAX_BODY_BYTES} bytes"
                ))
            })?;
        let request = handlers::Incoming {
            method: parts.method,
            target,
            query,
            headers: parts.headers,
            user,
        };
        handlers::serve(state, request, body).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The query string's pairs; a repeated key keeps its last value.
fn serde_urlencoded_pairs(query: &str) -> Result<HashMap<String, String>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid query string"))?,
    )
    .map(|axum::extract::Query(pairs)| pairs.into_iter().collect())
    .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
}

/// Creates the system namespaces that do not exist yet and, with authorization, the
/// default ClusterRoles and ClusterRoleBindings (see [`authz::bootstrap_policy`]).
/// Also starts the admission indexes and the authorization caches following the store,
/// until the state's shutdown.
pub async fn bootstrap(state: &ApiState) -> Result<(), slipway_store::Error> {
    let mut started = Vec::new();
    for index in [&state.quotas, &state.limit_ranges] {
        started.push(tokio::spawn(
            Arc::clone(index).follow(Arc::clone(&state.store), state.shutdown.clone()),
        ));
    }
    if let Some(authorization) = &state.authorization {
        authz::bootstrap_policy(state).await?;
        started.extend(authorization.follow(Arc::clone(&state.store), state.shutdown.clone()));
    }
    state
        .background
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend(started);
    let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
    for name in SYSTEM_NAMESPACES {
        let mut object = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name },
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        });
        objects::stamp_new(&mut object, state.clock.now());
        match state
            .store
            .create(
                &objects::key(namespaces, None, name),
                objects::encode(&object).into(),
                None,
            )
            .await
        {
            Ok(_) | Err(slipway_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Serves `app` over plain HTTP on `listener` until `shutdown` is cancelled, then lets
/// requests in flight finish. For loopback and tests; [`serve_tls`] is the default.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Small JSON responses and watch events must not wait for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, config, shutdown.clone())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

//! What authorization adds to a request: a get of a ConfigMap as a squad member, through
//! a server deciding over 100 ClusterRoles and 1,000 RoleBindings, beside the same get
//! through a server over the same store with authorization off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use slipway_access::{Decision, User};
use slipway_apiserver::auth::acting_as;
use slipway_apiserver::{ApiState, bootstrap, router, serve};
use slipway_bench_support::{Figure, Row, Sample, concurrent};
use slipway_clock::SystemClock;
use slipway_store::Store;
use slipway_store_sqlite::{Options, SqliteStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::target::Target;

const CLUSTER_ROLES: usize = 100;
const ROLE_BINDINGS: usize = 1_000;
/// Namespaces the bindings spread over; binding 70 (of group `squad:s7`) lands in the
/// member's namespace.
const NAMESPACES: usize = 100;
const MEMBER_NS: &str = "ns-070";
const OBJECTS: usize = 100;

/// The rows: a get at 1 and 10 clients, authorized beside unauthorized; and the figure of
/// one decision alone, in process, beside the whole get it decides.
pub(crate) async fn rows(gets: usize, cap: Duration) -> anyhow::Result<(Vec<Row>, Vec<Figure>)> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("api.db"), Options::default()).await?);
    let shutdown = CancellationToken::new();
    let member = User {
        name: "ana".to_owned(),
        groups: vec!["squad:s7".to_owned(), "system:authenticated".to_owned()],
    };
    let (open, _) = start(Arc::clone(&store), None, &shutdown).await?;
    let (authorized, state) = start(store, Some(member.clone()), &shutdown).await?;

    eprintln!("writing {CLUSTER_ROLES} ClusterRoles and {ROLE_BINDINGS} RoleBindings ...");
    for i in 0..NAMESPACES {
        Target::Api(Arc::clone(&open))
            .namespace(&format!("ns-{i:03}"))
            .await?;
    }
    for i in 0..CLUSTER_ROLES {
        let resources = format!(r#"["configmaps","secrets","pods","kind-{i}"]"#);
        let role = format!(
            r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{{"name":"role-{i:03}"}},"rules":[{{"apiGroups":["","apps"],"resources":{resources},"verbs":["get","list","watch"]}},{{"apiGroups":["batch"],"resources":["jobs"],"verbs":["*"],"resourceNames":["job-{i}"]}}]}}"#
        );
        let path = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
        open.call(Method::POST, path, role.into(), StatusCode::CREATED)
            .await?;
    }
    for i in 0..ROLE_BINDINGS {
        let namespace = format!("ns-{:03}", i % NAMESPACES);
        // One in ten names a group; the member's squad is bound once, in its namespace.
        let subject = if i % 10 == 0 {
            format!(r#"{{"kind":"Group","name":"squad:s{}"}}"#, i / 10)
        } else {
            format!(r#"{{"kind":"User","name":"user-{i}"}}"#)
        };
        let binding = format!(
            r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"rb-{i:04}"}},"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"role-{:03}"}},"subjects":[{subject}]}}"#,
            i % CLUSTER_ROLES
        );
        let path =
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings");
        open.call(Method::POST, &path, binding.into(), StatusCode::CREATED)
            .await?;
    }
    let target = Target::Api(Arc::clone(&open));
    for i in 0..OBJECTS {
        target.create(MEMBER_NS, &format!("cm-{i:03}")).await?;
    }
    // The authorizing server learns the bindings from its watch; wait (bounded) for it.
    let path = format!("/api/v1/namespaces/{MEMBER_NS}/configmaps/cm-000");
    let mut allowed = false;
    for _ in 0..600 {
        if authorized
            .call(Method::GET, &path, Default::default(), StatusCode::OK)
            .await
            .is_ok()
        {
            allowed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(allowed, "the member was never allowed to read {path}");

    // Rounds alternate which side goes first, so neither gets the warmer machine.
    const ROUNDS: usize = 6;
    let mut rows = Vec::new();
    let mut single_get = Duration::ZERO;
    for clients in [1, 10] {
        let mut sides: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            for side in [round % 2, 1 - round % 2] {
                let target = Target::Api(Arc::clone([&authorized, &open][side]));
                let sample = concurrent(clients, gets / ROUNDS, cap, move |i| {
                    let target = target.clone();
                    async move {
                        target
                            .get(MEMBER_NS, &format!("cm-{:03}", i % OBJECTS))
                            .await
                    }
                })
                .await?;
                sides[side].push(sample);
            }
        }
        let [ours, floor] = sides.map(Sample::merged);
        if clients == 1 {
            single_get = floor.percentile(0.5);
        }
        rows.push(Row::new("sqlite", "get, RBAC vs off", clients, ours, floor));
    }
    let figures = decision_alone(&state, &member, gets, single_get);
    shutdown.cancel();
    Ok((rows, figures))
}

/// Times the decision the middleware makes for each get (attributes from the request line,
/// then the chain), with nothing else around it.
fn decision_alone(state: &ApiState, member: &User, decisions: usize, get: Duration) -> Vec<Figure> {
    let Some(authorization) = &state.authorization else {
        return Vec::new();
    };
    let path = format!("/api/v1/namespaces/{MEMBER_NS}/configmaps/cm-001");
    let started = Instant::now();
    let mut allowed = 0;
    for _ in 0..decisions * 10 {
        let attributes = slipway_access::request::attributes("GET", &path, None);
        if authorization.decide(member, &attributes) == Decision::Allow {
            allowed += 1;
        }
    }
    let each = started.elapsed() / u32::try_from(decisions * 10).unwrap_or(u32::MAX);
    vec![Figure {
        row: format!(
            "one decision in process (attributes + chain), {allowed} of {} allowed",
            decisions * 10
        ),
        figure: format!("{:.2} µs", each.as_secs_f64() * 1e6),
        floor: format!(
            "{:.0} µs (the get it decides, p50 off)",
            get.as_secs_f64() * 1e6
        ),
    }]
}

/// A server on its own loopback port over `store`: authorizing every request as `user`,
/// or with authorization off.
async fn start(
    store: Arc<dyn Store>,
    user: Option<User>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Arc<Api>, Arc<ApiState>)> {
    let mut state = ApiState::new(store, SystemClock::shared(), shutdown.clone());
    if user.is_some() {
        state = state.with_authorization(Vec::new());
    }
    let state = Arc::new(state);
    bootstrap(&state).await?;
    if let Some(authorization) = &state.authorization {
        authorization.ready().await;
    }
    let app = match user {
        Some(user) => acting_as(router(Arc::clone(&state)), user),
        None => router(Arc::clone(&state)),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = Arc::new(Api::new(listener.local_addr()?));
    tokio::spawn(serve(listener, app, shutdown.clone()));
    Ok((api, state))
}

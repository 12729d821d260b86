//! `slipway server`: the API server over a store, its controllers and scheduler, and the
//! admin kubeconfig that lets kubectl reach it. `slipway up` runs the same thing with
//! embedded defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use slipway_access::bootstrap::{CONTROLLERS, PLATFORM, SCHEDULER};
use slipway_access::node::NodeTokens;
use slipway_access::{AUTHENTICATED, Authenticator, Authorizer, Chain, User};
use slipway_apiserver::auth::{StaticTokens, acting_as, authenticated};
use slipway_apiserver::pki;
use slipway_apiserver::{ApiState, Limits};
use slipway_clock::SystemClock;
use tokio_util::sync::CancellationToken;

use crate::exit::Failure;
use crate::store_url::{self, OpenStore, StoreUrl};

/// A running API server.
pub(crate) struct Running {
    /// The address it serves on.
    pub(crate) url: String,
    /// The admin kubeconfig it wrote.
    pub(crate) kubeconfig: PathBuf,
    /// The API's state, for clients in this process acting as their own users.
    state: Arc<ApiState>,
    /// The token agents join with.
    pub(crate) join_token: String,
    /// The administrator's token (also in the admin kubeconfig), to sign in with.
    pub(crate) admin_token: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    controllers: tokio::task::JoinHandle<Result<(), slipway_controllers::reconciler::Error>>,
    scheduler: tokio::task::JoinHandle<Result<(), slipway_controllers::reconciler::Error>>,
    previews: tokio::task::JoinHandle<()>,
    /// The platform's `/slipway/v1` routes, for clients in this process too.
    platform_routes: axum::Router,
    /// Where the portal is served: the API's address, or its own `--portal`.
    pub(crate) portal_url: String,
    portal_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    store: OpenStore,
}

/// How a server serves: where, over what, within which limits, and its platform's settings.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Where the API listens.
    pub(crate) listen: SocketAddr,
    /// HTTPS, or plain HTTP on loopback.
    pub(crate) transport: Transport,
    /// Requests in flight at once.
    pub(crate) limits: Limits,
    /// Whether privileged containers are admitted.
    pub(crate) allow_privileged: bool,
    /// Where the portal listens besides `/` on the API's address, if anywhere.
    pub(crate) portal: Option<SocketAddr>,
    /// GitHub and previews.
    pub(crate) platform: PlatformOptions,
    /// The demo's GitHub (`slipway up`): its repository is served by it, and its
    /// `/slipway/v1/demo` routes are added.
    pub(crate) demo: Option<Arc<slipway_demo::github::DemoGitHub>>,
}

/// How the platform reaches GitHub and where its previews are served.
#[derive(Clone, Debug)]
pub(crate) struct PlatformOptions {
    /// GitHub's REST base, `https://api.github.com` unless a GitHub Enterprise Server's.
    pub(crate) github_api: String,
    /// Where previews are reached: the gateway's scheme, domain and port.
    pub(crate) previews: slipway_previews::UrlBase,
    /// How long a preview idles before it sleeps.
    pub(crate) idle_after: std::time::Duration,
    /// The gateway's base URL, for the portal's links to Ingresses, where it is known.
    pub(crate) gateway: Option<String>,
}

/// The user that applies a preview's manifests; it has no rights of its own, only those of
/// the squad whose preview it is (see `start`).
const PREVIEWS_USER: &str = "system:slipway-previews";

impl Running {
    /// A client of the API in this process acting as `user`, with no socket or TLS in
    /// between; its requests are authorized like any other.
    pub(crate) fn client_as(&self, user: User) -> kube::Client {
        spawning_client(acting_as(
            slipway_apiserver::router_with(Arc::clone(&self.state), self.platform_routes.clone()),
            user,
        ))
    }

    /// Waits for the server, its controllers and its scheduler to stop (their token
    /// cancelled), then closes the store.
    pub(crate) async fn wait(self) -> Result<(), Failure> {
        let served = self.task.await;
        let portal = match self.portal_task {
            Some(task) => Some(task.await),
            None => None,
        };
        let controlled = self.controllers.await;
        let scheduled = self.scheduler.await;
        // The previews' workers hold nothing half done (each step is idempotent).
        let _ = self.previews.await;
        // The state, its store followers and the platform's routes hold the store too;
        // it closes only alone.
        self.state.stopped().await;
        drop(self.state);
        drop(self.platform_routes);
        self.store.close().await;
        match controlled {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::failed(format!("the controllers stopped: {e}"))),
            Err(e) => return Err(Failure::failed(format!("the controllers failed: {e}"))),
        }
        match scheduled {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::failed(format!("the scheduler stopped: {e}"))),
            Err(e) => return Err(Failure::failed(format!("the scheduler failed: {e}"))),
        }
        match portal {
            None | Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => return Err(Failure::failed(format!("the portal stopped: {e}"))),
            Some(Err(e)) => return Err(Failure::failed(format!("the portal failed: {e}"))),
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::failed(format!("the API server stopped: {e}"))),
            Err(e) => Err(Failure::failed(format!("the API server failed: {e}"))),
        }
    }
}

/// How the API is offered to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// HTTPS with the server's own CA (the default).
    Tls,
    /// Plain HTTP, allowed on loopback addresses only.
    PlainHttp,
}

/// Opens the store, binds `listen`, writes `DATA_DIR/admin.kubeconfig` once the API
/// answers, and serves until `shutdown` is cancelled. Every request but the health and
/// version probes needs the admin token, whatever the transport.
pub(crate) async fn start(
    data_dir: &Path,
    store: &StoreUrl,
    options: &Options,
    shutdown: CancellationToken,
) -> Result<Running, Failure> {
    let Options {
        listen,
        transport,
        limits,
        allow_privileged,
        portal,
        platform,
        demo,
    } = options;
    let (listen, transport) = (*listen, *transport);
    if transport == Transport::PlainHttp && !listen.ip().is_loopback() {
        return Err(Failure::bad_input(format!(
            "--plain-http serves only on loopback addresses, not {}",
            listen.ip()
        )));
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", data_dir.display())))?;
    let extra_ips: Vec<_> = [listen.ip()]
        .into_iter()
        .filter(|ip| !ip.is_unspecified())
        .collect();
    let pki = pki::load_or_create(&data_dir.join("pki"), &extra_ips)
        .map_err(|e| Failure::failed(format!("preparing certificates: {e}")))?;
    let open = store_url::open(store).await?;
    let platform_db =
        slipway_platform_db::Db::open(data_dir.join("platform.db"), SystemClock::shared())
            .await
            .map_err(|e| Failure::failed(format!("opening the platform database: {e}")))?;
    // Platform users' tokens and what only the platform knows (a user's own tokens, a
    // squad owner's members) are decided from this directory, kept current by the platform.
    let directory = Arc::new(
        slipway_tenancy::Directory::load(&platform_db)
            .await
            .map_err(|e| Failure::failed(format!("reading the platform database: {e}")))?,
    );
    let state = Arc::new(
        ApiState::new(open.store(), SystemClock::shared(), shutdown.clone())
            .with_limits(*limits)
            .with_allow_privileged(*allow_privileged)
            .with_node_credentials(pki.join_token.clone())
            .with_authorization(vec![Arc::clone(&directory) as Arc<dyn Authorizer>]),
    );
    slipway_apiserver::bootstrap(&state)
        .await
        .map_err(|e| Failure::from_store("creating the system namespaces", e))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::failed(format!("cannot listen on {listen}: {e}")))?;
    if let Some(authorization) = &state.authorization {
        authorization.ready().await;
    }
    // The controllers and the scheduler are clients of this API like any other (D2),
    // each with its own least-privilege identity.
    let controllers = tokio::spawn({
        let shutdown = shutdown.clone();
        let client = in_process(&state, component(CONTROLLERS));
        async move {
            let result = slipway_controllers::run(client, shutdown.child_token()).await;
            if result.is_err() {
                // A control plane without its controllers is broken: stop rather than limp.
                shutdown.cancel();
            }
            result
        }
    });
    let scheduler = tokio::spawn({
        let shutdown = shutdown.clone();
        let client = in_process(&state, component(SCHEDULER));
        async move {
            let result = slipway_scheduler::run(client, shutdown.child_token()).await;
            if result.is_err() {
                shutdown.cancel();
            }
            result
        }
    });
    let tenancy = slipway_tenancy::Tenancy::start(
        platform_db.clone(),
        Arc::clone(&directory),
        in_process(&state, component(PLATFORM)),
    )
    .await
    .map_err(|e| Failure::failed(format!("starting the platform: {e}")))?;
    // A preview's manifests are applied with its squad's rights and nothing more.
    let as_squad: slipway_previews::SquadClient = {
        let state = Arc::clone(&state);
        Arc::new(move |squad: &str| {
            in_process(
                &state,
                User {
                    name: PREVIEWS_USER.to_owned(),
                    groups: vec![
                        AUTHENTICATED.to_owned(),
                        slipway_tenancy::squad_group(squad),
                    ],
                },
            )
        })
    };
    let previews = slipway_previews::Previews::new(
        platform_db,
        in_process(&state, component(PLATFORM)),
        as_squad,
        match demo {
            Some(demo) => Arc::clone(demo) as Arc<dyn slipway_previews::Connect>,
            None => Arc::new(slipway_previews::RestConnect::new(&platform.github_api)),
        },
        SystemClock::shared(),
        slipway_previews::Settings {
            idle_after: platform.idle_after,
            ..slipway_previews::Settings::new(platform.previews.clone())
        },
    );
    let previews_task = previews.run(shutdown.child_token());
    let tokens: Vec<Arc<dyn Authenticator>> = vec![
        Arc::new(StaticTokens::admin(pki.admin_token.clone())),
        Arc::new(NodeTokens::new(&pki.join_token)),
        directory,
    ];
    let mut platform_routes = slipway_tenancy::router(Arc::new(tenancy))
        .merge(slipway_previews::api::router(Arc::clone(&previews)));
    if let Some(demo) = demo {
        platform_routes = platform_routes.merge(slipway_demo::api::router(Arc::clone(demo)));
    }
    let api = authenticated(
        slipway_apiserver::router_with(Arc::clone(&state), platform_routes.clone()),
        Arc::new(Chain(tokens)),
    );
    // The portal acts through the very router kubectl reaches, with each user's token.
    let portal_pages = slipway_portal::Portal::new(
        api.clone(),
        slipway_portal::Options {
            secure_cookies: transport == Transport::Tls,
            gateway: platform.gateway.clone(),
            ..slipway_portal::Options::default()
        },
    )
    .router();
    // GitHub's deliveries carry a signature, not a bearer token.
    let app = slipway_previews::webhook::router(previews)
        .merge(portal_pages.clone())
        .fallback_service(api);
    let (url, task) = serve(listener, app, transport, &pki, shutdown.clone())?;
    let (portal_url, portal_task) = match portal {
        None => (format!("{url}/"), None),
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| Failure::failed(format!("cannot listen on {address}: {e}")))?;
            let (url, task) = serve(listener, portal_pages, transport, &pki, shutdown)?;
            (format!("{url}/"), Some(task))
        }
    };
    let kubeconfig = data_dir.join("admin.kubeconfig");
    write_kubeconfig(&kubeconfig, &url, transport, &pki)?;
    Ok(Running {
        url,
        kubeconfig,
        state,
        join_token: pki.join_token.clone(),
        admin_token: pki.admin_token.clone(),
        task,
        controllers,
        scheduler,
        previews: previews_task,
        platform_routes,
        portal_url,
        portal_task,
        store: open,
    })
}

/// Serves `app` on `listener` over `transport` until `shutdown`: its URL and task.
fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    transport: Transport,
    pki: &pki::Pki,
    shutdown: CancellationToken,
) -> Result<(String, tokio::task::JoinHandle<std::io::Result<()>>), Failure> {
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::failed(format!("cannot read the bound address: {e}")))?;
    Ok(match transport {
        Transport::Tls => {
            let config = pki
                .server_config()
                .map_err(|e| Failure::failed(format!("preparing TLS: {e}")))?;
            let task = tokio::spawn(slipway_apiserver::serve_tls(
                listener, app, config, shutdown,
            ));
            (format!("https://{bound}"), task)
        }
        Transport::PlainHttp => {
            let task = tokio::spawn(slipway_apiserver::serve(listener, app, shutdown));
            (format!("http://{bound}"), task)
        }
    })
}

/// A component's user: its name, authenticated.
fn component(name: &str) -> User {
    User {
        name: name.to_owned(),
        groups: vec![AUTHENTICATED.to_owned()],
    }
}

fn in_process(state: &Arc<ApiState>, user: User) -> kube::Client {
    spawning_client(acting_as(
        slipway_apiserver::router(Arc::clone(state)),
        user,
    ))
}

/// A client of `router` in this process whose requests each run on a task of their own,
/// as a remote server's would. The server's side of a request (a store read holding one
/// of the few read connections, say) then never waits for its caller to poll it: a caller
/// busy elsewhere, such as a watcher's consumer, cannot starve everyone of the store.
fn spawning_client(router: axum::Router) -> kube::Client {
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let router = router.clone();
        async move {
            match tokio::spawn(tower::ServiceExt::oneshot(router, request)).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(never)) => match never {},
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        }
    });
    kube::Client::new(service, "default")
}

/// The admin kubeconfig: the server, the CA to verify it by, and the admin token. Only
/// its owner may read it.
fn write_kubeconfig(
    path: &Path,
    server: &str,
    transport: Transport,
    pki: &pki::Pki,
) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let ca = match transport {
        Transport::Tls => format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem)
        ),
        Transport::PlainHttp => String::new(),
    };
    let config = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: slipway\n  cluster:\n    server: {server}\n{ca}\
         users:\n\
         - name: admin\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: slipway\n  context:\n    cluster: slipway\n    user: admin\n    namespace: default\n\
         current-context: slipway\n",
        token = pki.admin_token,
    );
    let temporary = path.with_extension("kubeconfig.tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| file.write_all(config.as_bytes()))
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))
}

/// `slipway server`.
pub(crate) async fn run(
    data_dir: PathBuf,
    store: Option<StoreUrl>,
    options: Options,
    shutdown: CancellationToken,
) -> Result<(), Failure> {
    let store = store.unwrap_or_else(|| StoreUrl::Sqlite(data_dir.join("state.db")));
    let running = start(&data_dir, &store, &options, shutdown).await?;
    let platform = &options.platform;
    say!("slipway server: API on {} (store {store})", running.url);
    say!("  kubeconfig {}", running.kubeconfig.display());
    say!(
        "  portal {} (sign in with a platform token)",
        running.portal_url
    );
    say!(
        "  join token {} (slipway agent --token)",
        data_dir.join("pki").join(pki::JOIN_TOKEN_FILE).display()
    );
    say!(
        "  GitHub webhooks {}/webhooks/github (GitHub API {}); previews at {}",
        running.url,
        platform.github_api,
        platform.previews.url("NAME")
    );
    running.wait().await?;
    say!("stopped");
    Ok(())
}

//! What the bench runs on, all started by this process: a private containerd with the
//! busybox test image, the API server over SQLite with RBAC (served in-process to its
//! components and on loopback to kubectl), its controllers and scheduler, a node agent with
//! its gateway, the platform database with a squad and a repository, the local fake GitHub,
//! and the preview service with its webhook on loopback. [`Rig::stop`] undoes all of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use slipway_access::bootstrap::{CONTROLLERS, NODES, PLATFORM, SCHEDULER};
use slipway_access::{AUTHENTICATED, User};
use slipway_apiserver::auth::{StaticTokens, acting_as, authenticated};
use slipway_apiserver::{ApiState, bootstrap};
use slipway_clock::SystemClock;
use slipway_fake_github::FakeGitHub;
use slipway_platform_db::{Access, CpuMemory, Db, Limits, NewRepo, NewSquad, PreviewPolicy};
use slipway_previews::{Previews, RestConnect, Settings, SquadClient, UrlBase};
use slipway_runtime::Runtime;
use slipway_runtime_containerd::{Containerd, ContainerdRuntime};
use slipway_store::Store;
use slipway_store_sqlite::SqliteStore;
use slipway_testkit::ImageBuilder;
use tokio_util::sync::CancellationToken;

/// The image of the app's two services.
pub(crate) const IMAGE: &str = "slipway.local/busybox:1";
/// The repository previews are made for.
pub(crate) const REPO: &str = "acme/shop";
/// Its webhook secret.
pub(crate) const SECRET: &[u8] = b"bench-secret";
const STOP_CAP: Duration = Duration::from_secs(60);

/// See the module docs.
pub(crate) struct Rig {
    /// The fake GitHub.
    pub(crate) github: FakeGitHub,
    /// The webhook's URL.
    pub(crate) hook: String,
    /// A route on the same server that only reads the body and answers 202: the floor of
    /// the acknowledgement.
    pub(crate) floor_hook: String,
    /// The gateway's address.
    pub(crate) gateway: SocketAddr,
    /// A kubeconfig for kubectl, as the administrator, over loopback.
    pub(crate) kubeconfig: PathBuf,
    runtime: Arc<dyn Runtime>,
    config: slipway_agent::Config,
    agent: Option<(
        CancellationToken,
        tokio::task::JoinHandle<Result<(), slipway_agent::Error>>,
    )>,
    containerd: Option<Containerd>,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
}

fn as_user(state: &Arc<ApiState>, name: &str, groups: &[&str]) -> kube::Client {
    let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    groups.push(AUTHENTICATED.to_owned());
    let user = User {
        name: name.to_owned(),
        groups,
    };
    kube::Client::new(
        acting_as(slipway_apiserver::router(Arc::clone(state)), user),
        "default",
    )
}

async fn loopback() -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")
}

impl Rig {
    pub(crate) async fn start() -> anyhow::Result<Rig> {
        // Short: containerd's socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("swv-")
            .tempdir_in("/tmp")
            .context("creating the bench's directory")?;
        let containerd = Containerd::start(&dir.path().join("c"))
            .await
            .context("starting containerd")?;
        let runtime: Arc<dyn Runtime> = Arc::new(
            ContainerdRuntime::connect(containerd.socket(), "slipway", &containerd.runc_root())
                .await
                .context("connecting to containerd")?,
        );
        let archive = dir.path().join("image.tar");
        ImageBuilder::busybox(IMAGE)
            .write_oci(&archive)
            .context("building the busybox image")?;
        runtime
            .import(&archive)
            .await
            .context("importing the image")?;

        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("state.db"), Default::default())
                .await
                .context("opening the SQLite store")?,
        );
        let shutdown = CancellationToken::new();
        let state = Arc::new(
            ApiState::new(store, SystemClock::shared(), shutdown.clone())
                .with_authorization(Vec::new()),
        );
        bootstrap(&state)
            .await
            .context("bootstrapping the API server")?;
        if let Some(authorization) = &state.authorization {
            authorization.ready().await;
        }
        // kubectl sends no bearer token over plain HTTP, so the API is served as `slipway
        // server` serves it: HTTPS with its own CA and admin token.
        let api = loopback().await?;
        let api_addr = api.local_addr()?;
        let pki = slipway_apiserver::pki::load_or_create(&dir.path().join("pki"), &[api_addr.ip()])
            .context("making the API server's certificates")?;
        let app = authenticated(
            slipway_apiserver::router(Arc::clone(&state)),
            Arc::new(StaticTokens::admin(pki.admin_token.clone())),
        );
        let tls = pki.server_config().context("preparing TLS")?;
        tokio::spawn(slipway_apiserver::serve_tls(
            api,
            app,
            tls,
            shutdown.clone(),
        ));
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let ca = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: https://{api_addr}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: admin\ncurrent-context: bench\n",
                pki.admin_token
            ),
        )
        .context("writing the kubeconfig")?;
        tokio::spawn(slipway_controllers::run(
            as_user(&state, CONTROLLERS, &[]),
            shutdown.child_token(),
        ));
        tokio::spawn(slipway_scheduler::run(
            as_user(&state, SCHEDULER, &[]),
            shutdown.child_token(),
        ));

        let node = format!("previews-bench-{}", std::process::id());
        let agent_api = loopback().await?;
        let config = slipway_agent::Config {
            node_name: node.clone(),
            address: std::net::Ipv4Addr::LOCALHOST,
            port: agent_api.local_addr()?.port(),
            data_dir: dir.path().join("agent"),
            pod_cidr: None,
            reserved: slipway_agent::Reserved::default(),
            allow_privileged: false,
            // As `slipway` is its own containers' logger, so is this binary (see `main`).
            logger: std::env::current_exe().context("finding this binary, the logger")?,
            token: "previews-bench".to_owned(),
            image_gc: slipway_agent::images::GcPolicy::default(),
        };
        let gateway = loopback().await?;
        let gateway_addr = gateway.local_addr()?;
        let stop_agent = CancellationToken::new();
        let agent = tokio::spawn(slipway_agent::run(
            as_user(&state, &format!("system:node:{node}"), &[NODES]),
            Arc::clone(&runtime),
            config.clone(),
            slipway_agent::Listeners {
                api: agent_api,
                tunnel: loopback().await?,
                gateway: Some(gateway),
            },
            stop_agent.clone(),
        ));

        let github = FakeGitHub::start().await;
        github.add_token("ghp_bench", "slipway-bot");
        github.add_repo(REPO);
        let db = Db::open(dir.path().join("platform.db"), SystemClock::shared())
            .await
            .context("opening the platform database")?;
        let mut squad = NewSquad::named("bench");
        squad.previews = Some(PreviewPolicy {
            max: 100,
            ..PreviewPolicy::default()
        });
        // Small requests, so two dozen previews' pods fit the bench's node (its CPUs).
        squad.limits = Some(Limits {
            default: CpuMemory {
                cpu: "500m".to_owned(),
                memory: "128Mi".to_owned(),
            },
            default_request: CpuMemory {
                cpu: "10m".to_owned(),
                memory: "16Mi".to_owned(),
            },
        });
        db.create_squad("bench", &squad)
            .await
            .context("creating the squad")?;
        db.add_repo(
            "bench",
            "bench",
            &NewRepo {
                owner: "acme".to_owned(),
                name: "shop".to_owned(),
                webhook_secret: String::from_utf8_lossy(SECRET).into_owned(),
                access: Access::Token("ghp_bench".to_owned()),
            },
        )
        .await
        .context("registering the repository")?;
        let squad_state = Arc::clone(&state);
        let as_squad: SquadClient = Arc::new(move |squad: &str| {
            as_user(
                &squad_state,
                "system:slipway-previews",
                &[&format!("squad:{squad}")],
            )
        });
        let previews = Previews::new(
            db,
            as_user(&state, PLATFORM, &[]),
            as_squad,
            Arc::new(RestConnect::new(&github.url())),
            SystemClock::shared(),
            Settings::new(UrlBase {
                scheme: "http".to_owned(),
                domain: "preview.localhost".to_owned(),
                port: gateway_addr.port(),
            }),
        );
        previews.run(shutdown.child_token());
        let hooks = loopback().await?;
        let hooks_addr = hooks.local_addr()?;
        let app = slipway_previews::webhook::router(previews).route(
            "/floor",
            axum::routing::post(|body: axum::body::Bytes| async move {
                (
                    axum::http::StatusCode::ACCEPTED,
                    format!("{{\"read\":{}}}", body.len()),
                )
            }),
        );
        let until = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(hooks, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Ok(Rig {
            github,
            hook: format!("http://{hooks_addr}{}", slipway_previews::webhook::PATH),
            floor_hook: format!("http://{hooks_addr}/floor"),
            gateway: gateway_addr,
            kubeconfig,
            runtime,
            config,
            agent: Some((stop_agent, agent)),
            containerd: Some(containerd),
            shutdown,
            dir,
        })
    }

    /// A path in the bench's directory.
    pub(crate) fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stops the agent and removes every pod it ran, then everything else.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        if let Some((stop, task)) = self.agent.take() {
            stop.cancel();
            outcome = match tokio::time::timeout(STOP_CAP, task).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(anyhow::Error::new(e).context("the agent failed")),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("the agent panicked")),
                Err(_) => Err(anyhow::anyhow!(
                    "the agent did not stop within {STOP_CAP:?}"
                )),
            };
        }
        if tokio::time::timeout(
            STOP_CAP,
            slipway_agent::clear(self.runtime.as_ref(), &self.config),
        )
        .await
        .is_err()
        {
            outcome = outcome.and(Err(anyhow::anyhow!(
                "removing pods took longer than {STOP_CAP:?}"
            )));
        }
        self.shutdown.cancel();
        if let Some(containerd) = self.containerd.take() {
            outcome = outcome.and(containerd.stop().await.context("stopping containerd"));
        }
        outcome
    }
}

//! `slipway up`: everything on one machine with embedded defaults: the API server on the
//! SQLite store, its controllers and scheduler, a node agent on its own containerd with the
//! gateway, the portal, and the demo (a squad, its app, and a repository on a built-in
//! fake GitHub for `slipway demo pr`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::agent;
use crate::exit::Failure;
use crate::server;
use crate::store_url::StoreUrl;

/// The default data directory: `/var/lib/slipway` for root, else under the user's home.
pub(crate) fn default_data_dir() -> Result<PathBuf, Failure> {
    if is_root() {
        return Ok(PathBuf::from("/var/lib/slipway"));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(data).join("slipway"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".local/share/slipway"))
        .ok_or_else(|| Failure::bad_input("HOME is not set; pass --data-dir DIR"))
}

/// Root owns its own `/proc/self`; reading that needs no unsafe call to `geteuid`.
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// What `slipway up` was asked for.
#[derive(Debug)]
pub(crate) struct UpOptions {
    /// Where state is kept; the default data directory if `None`.
    pub(crate) data_dir: Option<PathBuf>,
    /// Where the API listens.
    pub(crate) listen: SocketAddr,
    /// HTTPS, or plain HTTP on loopback.
    pub(crate) transport: server::Transport,
    /// Whether pods outlive `up`.
    pub(crate) keep_pods: bool,
    /// Where the gateway serves.
    pub(crate) gateway: SocketAddr,
    /// Where the portal listens besides the API's address, if anywhere.
    pub(crate) portal: Option<SocketAddr>,
    /// GitHub's REST base.
    pub(crate) github_api: String,
    /// The domain previews are served under.
    pub(crate) preview_domain: String,
    /// How long a preview idles before it sleeps.
    pub(crate) preview_idle: std::time::Duration,
    /// Whether to set the demo up.
    pub(crate) demo: bool,
}

pub(crate) async fn run(options: UpOptions, shutdown: CancellationToken) -> Result<(), Failure> {
    let UpOptions {
        data_dir,
        listen,
        transport,
        keep_pods,
        gateway,
        portal,
        github_api,
        preview_domain,
        preview_idle,
        demo,
    } = options;
    let started = Instant::now();
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let url = StoreUrl::Sqlite(data_dir.join("state.db"));
    let agent_shutdown = shutdown.clone();
    let demo_shutdown = shutdown.clone();
    // The gateway is bound first: previews' URLs carry its port.
    let gateway = agent::bind_gateway(gateway).await?;
    let gateway_addr = gateway
        .local_addr()
        .map_err(|e| Failure::failed(format!("cannot read the gateway's address: {e}")))?;
    // The demo's GitHub serves before the platform starts, so its first look at the demo
    // repository finds the pull requests an earlier `up` left open.
    let demo = match demo {
        true => Some(
            slipway_demo::github::DemoGitHub::start(&data_dir.join("demo"), &github_api)
                .await
                .map_err(|e| Failure::failed(format!("starting the demo's GitHub: {e}")))?,
        ),
        false => None,
    };
    let platform = server::PlatformOptions {
        github_api,
        previews: slipway_previews::UrlBase {
            scheme: "http".to_owned(),
            domain: preview_domain,
            port: gateway_addr.port(),
        },
        idle_after: preview_idle,
        gateway: Some(format!("http://{gateway_addr}")),
    };
    let options = server::Options {
        listen,
        transport,
        limits: slipway_apiserver::Limits::default(),
        allow_privileged: false,
        portal,
        platform,
        demo: demo.clone(),
    };
    let running = server::start(&data_dir, &url, &options, shutdown).await?;
    let platform = &options.platform;
    let node_name = crate::hostname();
    let agent_options = agent::Options {
        data_dir: data_dir.join("agent"),
        node_name: node_name.clone(),
        address: std::net::Ipv4Addr::LOCALHOST,
        // Any free port: the Node tells the API server which.
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tunnel_port: 0,
        gateway: Some(gateway),
        pod_cidr: None,
        reserved: slipway_agent::Reserved::default(),
        allow_privileged: false,
        containerd_socket: None,
        token: running.join_token.clone(),
        keep_pods,
    };
    let agent = tokio::spawn({
        let client = running.client_as(slipway_access::User {
            name: format!("system:node:{node_name}"),
            groups: vec![
                slipway_access::bootstrap::NODES.to_owned(),
                slipway_access::AUTHENTICATED.to_owned(),
            ],
        });
        async move {
            let result = agent::serve(client, agent_options, agent_shutdown.clone()).await;
            if result.is_err() {
                // `up` without its node runs no pods: stop and say why.
                agent_shutdown.cancel();
            }
            result
        }
    });

    say!("slipway up: ready in {} ms", started.elapsed().as_millis());
    say!("  data dir    {}", data_dir.display());
    say!("  store       {url}");
    say!("  API         {}", running.url);
    say!("  portal      {}", running.portal_url);
    say!("  sign in     {} (the admin token)", running.admin_token);
    say!("  kubeconfig  {}", running.kubeconfig.display());
    say!("  node        {node_name} (agent on its own containerd)");
    say!("  gateway     http://{gateway_addr} (Ingress hosts)");
    say!("  previews    {}", platform.previews.url("NAME"));
    say!(
        "  webhooks    {}/webhooks/github (GitHub API {})",
        running.url,
        platform.github_api
    );
    let demo_task = demo.map(|demo| {
        let host = format!("{}:{}", slipway_demo::setup::HOST, gateway_addr.port());
        say!(
            "  demo        http://{host}/ (squad {}: a web front end calling an API; starting)",
            slipway_demo::setup::SQUAD
        );
        say!(
            "              slipway demo pr open   opens a pull request on the built-in fake GitHub"
        );
        let client = running.client_as(slipway_apiserver::auth::admin());
        tokio::spawn(set_up_demo(client, demo, host, demo_shutdown))
    });
    if keep_pods {
        say!("Ctrl-C stops; pods keep running.");
    } else {
        say!("Ctrl-C stops, pods too.");
    }

    let agent_result = agent.await;
    if let Some(task) = demo_task {
        let _ = task.await;
    }
    running.wait().await?;
    match agent_result {
        Ok(result) => result?,
        Err(e) => return Err(Failure::failed(format!("the agent failed: {e}"))),
    }
    say!("stopped");
    Ok(())
}

/// Sets the demo up and says when its app answers; a demo that cannot be set up is
/// reported and leaves the rest of `up` running.
async fn set_up_demo(
    client: kube::Client,
    demo: std::sync::Arc<slipway_demo::github::DemoGitHub>,
    host: String,
    shutdown: CancellationToken,
) {
    let started = Instant::now();
    let result = async {
        slipway_demo::setup::set_up(&client, &demo, &shutdown).await?;
        slipway_demo::setup::wait_until_available(&client, &shutdown).await
    }
    .await;
    match result {
        Ok(()) => say!(
            "demo ready in {:.1} s: http://{host}/",
            started.elapsed().as_secs_f64()
        ),
        Err(slipway_demo::Error::Cancelled) => {}
        Err(e) => say!("demo: not set up: {e}"),
    }
}

//! The `slipway` binary: parses the command line, builds the cancellation tree from
//! signals, runs one command and turns its outcome into a message and an exit code.

/// Prints a line on stdout, ignoring a closed pipe: a server whose output nobody reads any
/// more (`slipway up | head -3`) must keep serving, not panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod agent;
mod client;
mod columns;
mod doctor;
mod exit;
mod image;
mod kubeconfig;
mod platform;
mod remote;
mod server;
mod shutdown;
mod store_url;
mod up;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::exit::Failure;
use crate::store_url::StoreUrl;

/// Preview environments for every pull request, on a Kubernetes-compatible control plane
/// of its own.
///
/// Exit codes: 0 success, 1 the operation failed, 2 bad usage or bad input, 3 cannot
/// reach the server or store.
#[derive(Debug, Parser)]
#[command(name = "slipway", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything on this machine with embedded defaults: the API server on SQLite, a
    /// node on its own containerd, the gateway, the portal, and a demo.
    ///
    /// Prints where each part answers, then serves until Ctrl-C or SIGTERM. Run again on the
    /// same data directory, it resumes where it stopped.
    ///
    /// Example: slipway up --data-dir /tmp/slipway
    Up(UpArgs),
    /// Check that this machine can run `slipway up` (kernel features, cgroups, containerd,
    /// runc, ports, disk) and say what to fix.
    ///
    /// Exits 0 when every check passes, 1 when one fails.
    ///
    /// Example: slipway doctor --listen 127.0.0.1:6443 --gateway 127.0.0.1:8080
    Doctor(DoctorArgs),
    /// Run the Kubernetes-compatible API server over a store.
    ///
    /// Writes DATA_DIR/admin.kubeconfig once the API answers, then serves until Ctrl-C or
    /// SIGTERM.
    ///
    /// Example: slipway server --data-dir /tmp/slipway --listen 127.0.0.1:6443
    Server(ServerArgs),
    /// Run a node agent: join a server and run the pods bound to this node on containerd.
    ///
    /// Starts its own containerd under DATA_DIR/containerd unless --containerd-socket is
    /// given. Stopping the agent leaves its pods running; starting it again adopts them.
    ///
    /// Example: slipway agent --data-dir /var/lib/slipway-agent --server https://127.0.0.1:6443 \
    ///            --ca-file /var/lib/slipway/pki/ca.crt --token-file /var/lib/slipway/pki/join-token
    Agent(AgentArgs),
    Apply(client::ApplyArgs),
    Get(client::GetArgs),
    Describe(client::DescribeArgs),
    Delete(client::DeleteArgs),
    Logs(client::LogsArgs),
    Scale(client::ScaleArgs),
    /// Follow, list, undo and restart the rollouts of a deployment.
    #[command(
        subcommand,
        after_help = "Example:\n  slipway rollout status deployment/web"
    )]
    Rollout(client::RolloutCommand),
    Exec(client::ExecArgs),
    PortForward(client::PortForwardArgs),
    /// CPU and memory reserved by pods (requests and limits) against nodes' allocatable.
    #[command(subcommand, after_help = "Example:\n  slipway top nodes")]
    Top(client::TopCommand),
    /// Container images on every node: import archives, list, remove.
    #[command(
        subcommand,
        after_help = "Example:\n  slipway image import web.tar && slipway image list"
    )]
    Image(ImageCommand),
    /// Squads: their namespaces, quota, default limits, preview budget and members.
    #[command(
        subcommand,
        after_help = "Example:\n  slipway squad create web --quota requests.cpu=4 && slipway squad list"
    )]
    Squad(platform::SquadCommand),
    /// Users of the server.
    #[command(
        subcommand,
        after_help = "Example:\n  slipway user create ana && slipway user list"
    )]
    User(platform::UserCommand),
    /// API tokens: make one (shown once), list them, revoke one.
    #[command(
        subcommand,
        after_help = "Example:\n  slipway token create --user ana --expires-in 30d"
    )]
    Token(platform::TokenCommand),
    /// Check a token with a server and keep it in your kubeconfig as the current context.
    Login(platform::LoginArgs),
    /// Show who the server takes your kubeconfig's token for.
    #[command(after_help = "Example:\n  slipway whoami --kubeconfig ana.kubeconfig")]
    Whoami {
        #[arg(short, long, value_enum, default_value_t)]
        output: platform::Output,
        #[command(flatten)]
        target: platform::Target,
    },
    /// Show who changed squads, users, memberships and tokens, and when (administrators).
    Audit(platform::AuditArgs),
    /// GitHub repositories a squad gets pull-request previews for.
    #[command(
        subcommand,
        after_help = "Example:\n  slipway repo add acme/shop --squad web --webhook-secret-file hook.secret --token-file gh.token"
    )]
    Repo(platform::RepoCommand),
    /// Pull-request preview environments: list, show, extend, destroy, logs, open.
    #[command(
        subcommand,
        after_help = "Example:\n  slipway env list && slipway env extend pr-shop-42 12h"
    )]
    Env(platform::EnvCommand),
    /// The demo of `slipway up`: pull requests on its built-in fake GitHub.
    #[command(subcommand, after_help = "Example:\n  slipway demo pr open")]
    Demo(platform::DemoCommand),
    /// Inspect an orchestrator store directly (the server must not be running on it).
    #[command(
        subcommand,
        after_help = "Example:\n  slipway store status --store sqlite:///var/lib/slipway/state.db"
    )]
    Store(StoreCommand),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    ///
    /// Example: slipway completion bash > /etc/bash_completion.d/slipway
    Completion {
        /// The shell
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Where state is kept [default: ~/.local/share/slipway, or /var/lib/slipway as root]
    #[arg(long, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Where the API listens
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS (loopback addresses only)
    #[arg(long)]
    plain_http: bool,
    /// Leave pods running when `up` stops; the next `up` adopts them
    #[arg(long)]
    keep_pods: bool,
    /// Where the gateway serves the cluster's Ingresses (previews at
    /// http://NAME.preview.localhost:PORT)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    gateway: SocketAddr,
    /// Serve the portal on its own address too (it is always at / on the API's)
    #[arg(long, value_name = "ADDR:PORT")]
    portal: Option<SocketAddr>,
    /// Set up no demo (squad `demo`, its app, and a fake GitHub repository for
    /// `slipway demo pr`)
    #[arg(long)]
    no_demo: bool,
    #[command(flatten)]
    previews: PreviewFlags,
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// The data directory `up` will use [default: as `slipway up`'s]
    #[arg(long, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The API address `up` will listen on
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// The gateway address `up` will serve on
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    gateway: SocketAddr,
}

/// How the platform reaches GitHub and serves previews, for `up` and `server`.
#[derive(Debug, Args)]
struct PreviewFlags {
    /// GitHub's REST API (a GitHub Enterprise Server's is https://HOST/api/v3)
    #[arg(long, value_name = "URL", default_value = "https://api.github.com")]
    github_api: String,
    /// Previews are served at http://NAME.DOMAIN:PORT (the gateway's port)
    #[arg(long, value_name = "DOMAIN", default_value = "preview.localhost")]
    preview_domain: String,
    /// A preview with no request through a gateway for this long sleeps (scaled to zero)
    /// until the next request: 30m, 2h, 1d
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = slipway_preview_config::parse_duration)]
    preview_idle: std::time::Duration,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Where state and the admin kubeconfig are kept
    #[arg(long, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
    /// Where the API listens
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// sqlite://PATH or etcd://HOST:PORT[,HOST:PORT...] [default: sqlite://DATA_DIR/state.db]
    #[arg(long, value_name = "URL")]
    store: Option<StoreUrl>,
    /// Serve plain HTTP instead of HTTPS (loopback addresses only)
    #[arg(long)]
    plain_http: bool,
    /// Reads served at once; more get 429 (watches are not counted)
    #[arg(long, value_name = "N", default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..))]
    max_requests_inflight: u32,
    /// Writes served at once; more get 429
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    max_mutating_requests_inflight: u32,
    /// Admit pods with privileged containers (refused by default, as kube-apiserver does)
    #[arg(long)]
    allow_privileged: bool,
    /// Serve the portal on its own address too (it is always at / on the API's)
    #[arg(long, value_name = "ADDR:PORT")]
    portal: Option<SocketAddr>,
    #[command(flatten)]
    previews: PreviewFlags,
    /// The port of the agents' gateways (their --gateway), for previews' URLs
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    preview_port: u16,
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// Where pods' files, logs and the agent's containerd live
    #[arg(long, env = "SLIPWAY_AGENT_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
    /// The API server to join, https://HOST:PORT (or http:// on loopback)
    #[arg(long, value_name = "URL")]
    server: String,
    /// The server's join token (DATA_DIR/pki/join-token on the server)
    #[arg(
        long,
        env = "SLIPWAY_JOIN_TOKEN",
        value_name = "TOKEN",
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// A file holding the join token
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The CA an https:// server's certificate must chain to (DATA_DIR/pki/ca.crt there)
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The Node's name [default: this machine's hostname]
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// The node's address: its InternalIP and the pods' hostIP (a loopback address)
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    address: std::net::Ipv4Addr,
    /// Where the agent serves container logs to the API server
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:10250")]
    listen: SocketAddr,
    /// The port other nodes reach this node's pods through (at --address), published on
    /// the Node; 0 takes a free one
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    tunnel_port: u16,
    /// Serve the cluster's Ingresses here (an HTTP gateway); none by default
    #[arg(long, value_name = "ADDR:PORT")]
    gateway: Option<SocketAddr>,
    /// The loopback block pod addresses come from [default: the first 127.N.0.0/16 from
    /// 127.64.0.0/16 that no other Node has, kept across restarts]
    #[arg(long, value_name = "CIDR")]
    pod_cidr: Option<slipway_agent::Cidr>,
    /// CPU kept back from pods, in millicores
    #[arg(long, value_name = "MILLICORES", default_value_t = 0)]
    reserve_cpu: i64,
    /// Memory kept back from pods, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    reserve_memory: i64,
    /// Run privileged containers (the server must admit them too)
    #[arg(long)]
    allow_privileged: bool,
    /// Use this containerd instead of starting one
    #[arg(long, value_name = "PATH")]
    containerd_socket: Option<PathBuf>,
    /// Stop and remove this node's pods when the agent stops (by default they keep
    /// running, and the next agent on this data directory adopts them)
    #[arg(long)]
    remove_pods_on_exit: bool,
}

/// The machine's hostname, lowercased, as the kubelet names its Node by default.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

async fn agent(
    args: AgentArgs,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), Failure> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => token.trim().to_owned(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", file.display())))?
            .trim()
            .to_owned(),
        (None, None) => {
            return Err(Failure::bad_input(
                "a join token is needed: --token or --token-file",
            ));
        }
    };
    if token.is_empty() {
        return Err(Failure::bad_input("the join token is empty"));
    }
    let ca = match &args.ca_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", file.display())))?,
        ),
        None => None,
    };
    let node_name = args.node_name.unwrap_or_else(hostname);
    // The agent is `system:node:<name>` to the API, with a token only the join token's
    // holder can derive; the join token itself is what the API server shows the agent.
    let node_token = slipway_access::node::node_token(&token, &node_name);
    let client = remote::client(&args.server, &node_token, ca.as_deref())?;
    say!("slipway agent: node {node_name} joining {}", args.server);
    let options = agent::Options {
        data_dir: args.data_dir,
        node_name,
        address: args.address,
        listen: args.listen,
        tunnel_port: args.tunnel_port,
        gateway: match args.gateway {
            Some(addr) => Some(agent::bind_gateway(addr).await?),
            None => None,
        },
        pod_cidr: args.pod_cidr,
        reserved: slipway_agent::Reserved {
            cpu_milli: args.reserve_cpu,
            memory: args.reserve_memory << 20,
            disk: 0,
        },
        allow_privileged: args.allow_privileged,
        containerd_socket: args.containerd_socket,
        token,
        keep_pods: !args.remove_pods_on_exit,
    };
    agent::serve(client, options, shutdown).await?;
    say!("stopped");
    Ok(())
}

fn transport(plain_http: bool) -> server::Transport {
    if plain_http {
        server::Transport::PlainHttp
    } else {
        server::Transport::Tls
    }
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Load an OCI-layout or `docker save` archive (gzip or not) into every node.
    ///
    /// Example: slipway image import web.tar
    Import {
        /// The archive
        file: PathBuf,
        /// The kubeconfig to use [default: $KUBECONFIG, ~/.kube/config, or the admin
        /// kubeconfig of `slipway up`]
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
    },
    /// List the images of every node.
    ///
    /// Example: slipway image list
    List {
        /// The kubeconfig to use
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
    },
    /// Remove an image from every node.
    ///
    /// Example: slipway image remove slipway.local/web:1
    Remove {
        /// The image, as pods name it
        name: String,
        /// The kubeconfig to use
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Print a store's current and compacted revisions and its number of keys.
    ///
    /// Examples: slipway store status --store sqlite:///var/lib/slipway/state.db
    ///           slipway store status --store etcd://127.0.0.1:2379
    Status {
        /// sqlite://PATH or etcd://HOST:PORT[,HOST:PORT...]
        #[arg(long, value_name = "URL")]
        store: StoreUrl,
    },
}

/// Prints `shell`'s completion script; a reader that stops early (`| head`) is no failure.
fn completion(shell: clap_complete::Shell) -> Result<(), Failure> {
    use clap::CommandFactory as _;
    use std::io::Write as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "slipway", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::failed(format!(
            "cannot write the completion script: {e}"
        ))),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    // containerd's shim runs this binary as a container's logger, with the container's
    // output on fds 3 and 4: nothing may open a file before that is checked.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(invocation) = slipway_logs::logger_invocation(&args, std::env::vars_os()) {
        return match invocation.and_then(slipway_logs::run_logger) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => Failure::failed(format!("logger: {e}")).report(),
        };
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                // Our code classifies and logs the watches' failures itself (once);
                // kube-runtime's own warnings would say each again, status dumps and all.
                .unwrap_or_else(|_| "warn,kube_runtime::watcher=error".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal who has not asked for none (no-color.org).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        // Its fallback report of a failed write uses eprintln!, which panics when stderr is
        // closed; a lost log line must not take the process down.
        .log_internal_errors(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return Failure::failed(format!("cannot start the async runtime: {e}")).report(),
    };
    let result = runtime.block_on(async {
        let shutdown = shutdown::on_signals();
        let outcome = match cli.command {
            Command::Up(args) => {
                up::run(
                    up::UpOptions {
                        data_dir: args.data_dir,
                        listen: args.listen,
                        transport: transport(args.plain_http),
                        keep_pods: args.keep_pods,
                        gateway: args.gateway,
                        portal: args.portal,
                        github_api: args.previews.github_api,
                        preview_domain: args.previews.preview_domain,
                        preview_idle: args.previews.preview_idle,
                        demo: !args.no_demo,
                    },
                    shutdown,
                )
                .await
            }
            Command::Server(args) => {
                let transport = transport(args.plain_http);
                let limits = slipway_apiserver::Limits {
                    reads: args.max_requests_inflight as usize,
                    writes: args.max_mutating_requests_inflight as usize,
                };
                server::run(
                    args.data_dir,
                    args.store,
                    server::Options {
                        listen: args.listen,
                        transport,
                        limits,
                        allow_privileged: args.allow_privileged,
                        portal: args.portal,
                        demo: None,
                        platform: server::PlatformOptions {
                            github_api: args.previews.github_api,
                            previews: slipway_previews::UrlBase {
                                scheme: "http".to_owned(),
                                domain: args.previews.preview_domain,
                                port: args.preview_port,
                            },
                            idle_after: args.previews.preview_idle,
                            gateway: Some(format!("http://127.0.0.1:{}", args.preview_port)),
                        },
                    },
                    shutdown,
                )
                .await
            }
            Command::Agent(args) => agent(args, shutdown).await,
            Command::Image(command) => {
                let (kubeconfig, action) = match command {
                    ImageCommand::Import { file, kubeconfig } => {
                        (kubeconfig, image::Action::Import(file))
                    }
                    ImageCommand::List { kubeconfig } => (kubeconfig, image::Action::List),
                    ImageCommand::Remove { name, kubeconfig } => {
                        (kubeconfig, image::Action::Remove(name))
                    }
                };
                match kubeconfig::locate(kubeconfig).and_then(|path| kubeconfig::client(&path)) {
                    Ok(client) => image::run(client, action).await,
                    Err(e) => Err(e),
                }
            }
            Command::Store(StoreCommand::Status { store }) => store_url::status(&store).await,
            Command::Squad(command) => platform::squad(command).await,
            Command::User(command) => platform::user(command).await,
            Command::Token(command) => platform::token(command).await,
            Command::Login(args) => platform::login(args).await,
            Command::Audit(args) => platform::audit(args).await,
            Command::Repo(command) => platform::repo(command).await,
            Command::Env(command) => platform::env(command).await,
            Command::Demo(command) => platform::demo(command).await,
            Command::Doctor(args) => match args.data_dir.map_or_else(up::default_data_dir, Ok) {
                Ok(data_dir) => doctor::run(&doctor::Options {
                    data_dir,
                    ports: vec![("API port", args.listen), ("gateway", args.gateway)],
                }),
                Err(e) => Err(e),
            },
            Command::Whoami { output, target } => platform::whoami(output, target).await,
            Command::Completion { shell } => completion(shell),
            Command::Apply(args) => client::apply(args).await,
            Command::Get(args) => client::get(args, shutdown).await,
            Command::Describe(args) => client::describe(args).await,
            Command::Delete(args) => client::delete(args).await,
            Command::Logs(args) => client::logs(args, shutdown).await,
            Command::Scale(args) => client::scale(args).await,
            Command::Rollout(command) => client::rollout(command, shutdown).await,
            Command::Top(command) => client::top(command).await,
            Command::PortForward(args) => client::port_forward(args, shutdown).await,
            // The one command whose exit code can be another's: the remote command's.
            Command::Exec(args) => return client::exec(args, shutdown).await,
        };
        outcome.map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command's path, from the top: `["squad", "create"]` and the like.
    fn paths(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands() {
            let mut path = prefix.to_vec();
            if sub.get_name() == "help" {
                continue;
            }
            path.push(sub.get_name().to_owned());
            paths(sub, &path, out);
            out.push(path);
        }
    }

    #[test]
    fn every_command_has_help_with_an_example() {
        let mut root = super::Cli::command();
        root.build();
        let mut all = Vec::new();
        paths(&root, &[], &mut all);
        let mut missing = Vec::new();
        for path in &all {
            let mut command = &mut root;
            for name in path {
                command = command.find_subcommand_mut(name).unwrap();
            }
            let help = command.render_long_help().to_string();
            if !help.contains("Example") {
                missing.push(path.join(" "));
            }
        }
        assert!(missing.is_empty(), "no Example in the help of: {missing:?}");
    }
}

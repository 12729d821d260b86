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

mod exit;
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
    /// Run everything on this machine with embedded defaults (today: the API server on the
    /// SQLite store).
    ///
    /// Prints what runs and what is not built yet, then serves until Ctrl-C or SIGTERM.
    ///
    /// Example: slipway up --data-dir /tmp/slipway
    Up(UpArgs),
    /// Run the Kubernetes-compatible API server over a store.
    ///
    /// Writes DATA_DIR/admin.kubeconfig once the API answers, then serves until Ctrl-C or
    /// SIGTERM.
    ///
    /// Example: slipway server --data-dir /tmp/slipway --listen 127.0.0.1:6443
    Server(ServerArgs),
    /// Inspect an orchestrator store directly (the server must not be running on it).
    #[command(subcommand)]
    Store(StoreCommand),
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
}

fn transport(plain_http: bool) -> server::Transport {
    if plain_http {
        server::Transport::PlainHttp
    } else {
        server::Transport::Tls
    }
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
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
        match cli.command {
            Command::Up(args) => {
                up::run(
                    args.data_dir,
                    args.listen,
                    transport(args.plain_http),
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
                    args.listen,
                    args.store,
                    transport,
                    limits,
                    args.allow_privileged,
                    shutdown,
                )
                .await
            }
            Command::Store(StoreCommand::Status { store }) => store_url::status(&store).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

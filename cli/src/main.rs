//! The `slipway` binary: parses the command line, builds the cancellation tree from
//! signals, runs one command and turns its outcome into a message and an exit code.

mod exit;
mod shutdown;
mod store_url;
mod up;

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
    /// Run everything on this machine with embedded defaults (today: the SQLite store).
    ///
    /// Prints what runs and what is not built yet, then serves until Ctrl-C or SIGTERM.
    ///
    /// Example: slipway up --data-dir /tmp/slipway
    Up(UpArgs),
    /// Inspect an orchestrator store directly (the server must not be running on it).
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Where state is kept [default: ~/.local/share/slipway, or /var/lib/slipway as root]
    #[arg(long, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
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
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return Failure::failed(format!("cannot start the async runtime: {e}")).report(),
    };
    let result = runtime.block_on(async {
        let shutdown = shutdown::on_signals();
        match cli.command {
            Command::Up(args) => up::run(args.data_dir, shutdown).await,
            Command::Store(StoreCommand::Status { store }) => store_url::status(&store).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

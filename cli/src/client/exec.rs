//! `slipway exec`: runs a command in a pod's container over the API server's WebSocket
//! (`v5.channel.k8s.io`), its streams wired to this terminal's, and exits with the
//! command's exit code.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncWriteExt as _;
use tokio_util::sync::CancellationToken;

use super::api_failure;
use super::pods::{self, containers, default_container};
use super::target::Target;
use crate::exit::Failure;

/// Run a command in a pod's container.
///
/// The exit code is the command's own when it ran and exited non-zero; otherwise 0, or
/// slipway's own (1 failed, 2 bad input, 3 server unreachable) when the command could not
/// run. Like kubectl's, the two overlap for a command that exits 1, 2 or 3.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  slipway exec web-7d4b9c-x2x8q -- ls /\n  \
    slipway exec -it deployment/web -c main -- sh")]
pub(crate) struct ExecArgs {
    /// POD, pod/NAME or deployment/NAME (one of its pods)
    #[arg(value_name = "POD")]
    pod: String,
    /// The container [default: the pod's only or default container]
    #[arg(short, long, value_name = "NAME")]
    container: Option<String>,
    /// Pass this terminal's stdin to the command
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Give the command a terminal (stderr then comes on stdout)
    #[arg(short = 't', long)]
    tty: bool,
    /// The command and its arguments, after --
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    target: Target,
}

pub(crate) async fn exec(args: ExecArgs, shutdown: CancellationToken) -> Result<ExitCode, Failure> {
    let session = args.target.connect()?;
    let pods: Api<Pod> = Api::namespaced(session.client.clone(), &session.namespace);
    let named = pods::parse(&args.pod, false)?;
    let (pod, _) = pods::pod_of(&session, &named).await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let container = match &args.container {
        Some(container) if !containers(&pod).contains(container) => {
            return Err(Failure::bad_input(format!(
                "container {container} is not valid for pod {name}"
            )));
        }
        Some(container) => container.clone(),
        None => default_container(&pod)?,
    };
    let params = AttachParams::default()
        .container(container)
        .stdin(args.stdin)
        .stdout(true)
        .stderr(!args.tty)
        .tty(args.tty);
    let raw = (args.tty && args.stdin && std::io::stdin().is_terminal()).then(RawTerminal::enter);
    let outcome = tokio::select! {
        () = shutdown.cancelled() => Err(Failure::failed("interrupted")),
        outcome = run(&pods, &name, &args.command, &params) => outcome,
    };
    drop(raw);
    outcome
}

async fn run(
    pods: &Api<Pod>,
    name: &str,
    command: &[String],
    params: &AttachParams,
) -> Result<ExitCode, Failure> {
    let mut attached = pods
        .exec(name, command.iter().map(String::as_str), params)
        .await
        .map_err(api_failure)?;
    let stdout = attached.stdout().map(|mut out| {
        tokio::spawn(async move {
            let mut stdout = tokio::io::stdout();
            let _ = tokio::io::copy(&mut out, &mut stdout).await;
            let _ = stdout.flush().await;
        })
    });
    let stderr = attached.stderr().map(|mut err| {
        tokio::spawn(async move {
            let mut stderr = tokio::io::stderr();
            let _ = tokio::io::copy(&mut err, &mut stderr).await;
            let _ = stderr.flush().await;
        })
    });
    if let Some(writer) = attached.stdin() {
        feed_stdin(writer);
    }
    let resizing = match attached.terminal_size() {
        Some(sizes) if std::io::stdin().is_terminal() => Some(tokio::spawn(follow_size(sizes))),
        _ => None,
    };
    let status = attached
        .take_status()
        .ok_or_else(|| Failure::failed("the exec stream gave no status"))?
        .await;
    for copying in [stdout, stderr].into_iter().flatten() {
        let _ = copying.await;
    }
    if let Some(resizing) = resizing {
        resizing.abort();
    }
    let Some(status) = status else {
        return Err(Failure::unreachable(
            "the exec stream ended without the command's status",
        ));
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(ExitCode::SUCCESS);
    }
    let code = status
        .details
        .as_ref()
        .filter(|_| status.reason.as_deref() == Some("NonZeroExitCode"))
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref()?.parse::<u8>().ok());
    match code {
        Some(code) => Ok(ExitCode::from(code)),
        None => Err(Failure::failed(
            status
                .message
                .unwrap_or_else(|| "the command failed".to_owned()),
        )),
    }
}

/// Sends this terminal's size to the command's, at once and whenever the window changes
/// (SIGWINCH), as kubectl does, so full-screen programs draw to fit.
async fn follow_size(mut sizes: futures::channel::mpsc::Sender<kube::api::TerminalSize>) {
    use futures::SinkExt as _;
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    loop {
        if let Some(size) = terminal_size().await
            && sizes.send(size).await.is_err()
        {
            return;
        }
        if changes.recv().await.is_none() {
            return;
        }
    }
}

/// This terminal's size from `stty size` ("rows columns"), as no unsafe code (an ioctl)
/// is allowed here.
async fn terminal_size() -> Option<kube::api::TerminalSize> {
    let out = tokio::process::Command::new("stty")
        .arg("size")
        .stdin(std::process::Stdio::inherit())
        .output()
        .await
        .ok()?;
    parse_size(&String::from_utf8_lossy(&out.stdout))
}

fn parse_size(said: &str) -> Option<kube::api::TerminalSize> {
    let mut numbers = said.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(height)), Some(Ok(width)), None) =
        (numbers.next(), numbers.next(), numbers.next())
    else {
        return None;
    };
    Some(kube::api::TerminalSize { width, height })
}

/// Copies this process's stdin to the command on a thread of its own: a blocking read
/// must not keep the async runtime from shutting down once the command has ended.
fn feed_stdin(mut writer: tokio::io::WriteHalf<tokio::io::SimplexStream>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut stdin = std::io::stdin();
        let mut buffer = vec![0; 16 * 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buffer[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The end of stdin is the end of the command's input.
        let _ = writer.shutdown().await;
    });
}

/// This terminal in raw mode (through `stty`, as no unsafe code is allowed here) until
/// dropped, so keys reach the remote terminal as typed.
struct RawTerminal {
    saved: Option<String>,
}

impl RawTerminal {
    fn enter() -> RawTerminal {
        let stty = |args: &[&str]| {
            std::process::Command::new("stty")
                .args(args)
                .stdin(std::process::Stdio::inherit())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|out| out.status.success())
        };
        let saved = stty(&["-g"]).map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
        if saved.is_some() {
            stty(&["raw", "-echo"]);
        }
        RawTerminal { saved }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = std::process::Command::new("stty")
                .arg(saved)
                .stdin(std::process::Stdio::inherit())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stty_sizes_are_rows_then_columns() {
        let size = parse_size("45 123\n").expect("a size");
        assert_eq!((size.height, size.width), (45, 123));
        for bad in ["", "45", "45 x", "45 123 7", "-1 80"] {
            assert!(parse_size(bad).is_none(), "{bad:?}");
        }
    }
}

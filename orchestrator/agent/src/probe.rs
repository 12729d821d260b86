//! Probes and lifecycle hooks: exec runs in the container through the runtime; httpGet and
//! tcpSocket connect from a thread that has entered the pod's network namespace, since
//! pods have no address reachable from the host (D5). The loop that runs a probe every
//! period and counts thresholds lives here too.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_runtime::{ExecConfig, Runtime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A probe's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Success,
    /// It failed; the message says how, as the kubelet's `Unhealthy` events do.
    Failure(String),
}

/// Where a probe or hook runs: a container of a pod.
#[derive(Clone)]
pub struct Target {
    /// The runtime, for exec.
    pub runtime: Arc<dyn Runtime>,
    /// The runtime's container id.
    pub container_id: String,
    /// The pod's network namespace.
    pub netns: PathBuf,
    /// The pod's address (the default host).
    pub pod_ip: String,
    /// The container's named ports.
    pub ports: Vec<(String, i32)>,
    /// The container's process settings, as exec'd processes inherit them (`env`, `cwd`,
    /// `user`).
    pub process: serde_json::Value,
}

impl Target {
    fn port(&self, port: &IntOrString) -> Result<u16, String> {
        let number = match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => match self.ports.iter().find(|(n, _)| n == name) {
                Some((_, n)) => *n,
                None => match name.parse() {
                    Ok(n) => n,
                    Err(_) => return Err(format!("unknown port name {name:?}")),
                },
            },
        };
        u16::try_from(number)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid port {number}"))
    }
}

/// What a probe or hook does.
#[derive(Clone, Debug)]
pub enum Handler {
    /// Run a command.
    Exec(ExecAction),
    /// GET a URL.
    Http(HTTPGetAction),
    /// Open a connection.
    Tcp(TCPSocketAction),
}

impl Handler {
    /// The handler of a probe, if it has one.
    pub fn of(probe: &Probe) -> Option<Handler> {
        if let Some(exec) = &probe.exec {
            Some(Handler::Exec(exec.clone()))
        } else if let Some(http) = &probe.http_get {
            Some(Handler::Http(http.clone()))
        } else {
            probe.tcp_socket.clone().map(Handler::Tcp)
        }
    }
}

/// Runs `handler` once against `target`, giving up after `timeout`.
pub async fn check(handler: &Handler, target: &Target, timeout: Duration) -> Outcome {
    match handler {
        Handler::Exec(exec) => exec_check(exec, target, timeout).await,
        Handler::Http(http) => {
            let port = match target.port(&http.port) {
                Ok(port) => port,
                Err(e) => return Outcome::Failure(e),
            };
            if http
                .scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
            {
                return Outcome::Failure("HTTPS probes are not supported by slipway".into());
            }
            let host = http.host.clone().unwrap_or_else(|| target.pod_ip.clone());
            let path = http.path.clone().unwrap_or_else(|| "/".into());
            let headers: Vec<(String, String)> = http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            in_netns(target.netns.clone(), move || {
                http_get(&host, port, &path, &headers, timeout)
            })
            .await
        }
        Handler::Tcp(tcp) => {
            let port = match target.port(&tcp.port) {
                Ok(port) => port,
                Err(e) => return Outcome::Failure(e),
            };
            let host = tcp.host.clone().unwrap_or_else(|| target.pod_ip.clone());
            in_netns(target.netns.clone(), move || {
                match resolve(&host, port).and_then(|a| {
                    TcpStream::connect_timeout(&a, timeout).map_err(|e| e.to_string())
                }) {
                    Ok(_) => Outcome::Success,
                    Err(e) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
                }
            })
            .await
        }
    }
}

async fn exec_check(exec: &ExecAction, target: &Target, timeout: Duration) -> Outcome {
    let output = std::env::temp_dir().join(format!(
        "slipway-probe-{}-{}",
        target.container_id,
        std::process::id()
    ));
    let mut process = target.process.clone();
    process["args"] = serde_json::json!(exec.command.clone().unwrap_or_default());
    process["terminal"] = serde_json::json!(false);
    let config = ExecConfig {
        id: format!(
            "probe-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ),
        process,
        output: Some(output.clone()),
    };
    let result = target
        .runtime
        .exec(&target.container_id, &config, timeout)
        .await;
    let said = tokio::fs::read(&output).await.unwrap_or_default();
    let _ = tokio::fs::remove_file(&output).await;
    let said = String::from_utf8_lossy(&said[..said.len().min(1024)])
        .trim()
        .to_owned();
    match result {
        Ok(exit) if exit.status == 0 => Outcome::Success,
        Ok(exit) => Outcome::Failure(if said.is_empty() {
            format!("command exited with {}", exit.status)
        } else {
            said
        }),
        Err(slipway_runtime::Error::Unavailable(_)) => Outcome::Failure(format!(
            "command timed out after {}s",
            timeout.as_secs().max(1)
        )),
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("no address for {host}"))
}

fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let url = format!("http://{host}:{port}{path}");
    let attempt = || -> Result<u16, String> {
        let address = resolve(host, port)?;
        let mut stream =
            TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let line = String::from_utf8_lossy(&head[..read]).into_owned();
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| "malformed HTTP response".to_owned())
    };
    match attempt() {
        Ok(code) if (200..400).contains(&code) => Outcome::Success,
        Ok(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
        Err(e) => Outcome::Failure(format!("Get \"{url}\": {e}")),
    }
}

/// Runs `work` on a fresh thread that has entered the network namespace at `netns`.
/// Sockets keep the namespace they were made in, and `setns` changes only the calling
/// thread, so the rest of the agent is untouched; the thread ends with the work.
pub async fn in_netns<F>(netns: PathBuf, work: F) -> Outcome
where
    F: FnOnce() -> Outcome + Send + 'static,
{
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("slipway-netns".into())
        .spawn(move || {
            let outcome = match std::fs::File::open(&netns) {
                Ok(file) => match nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET) {
                    Ok(()) => work(),
                    Err(e) => Outcome::Failure(format!("entering {}: {e}", netns.display())),
                },
                Err(e) => Outcome::Failure(format!("opening {}: {e}", netns.display())),
            };
            let _ = sender.send(outcome);
        });
    if let Err(e) = spawned {
        return Outcome::Failure(format!("cannot start a probe thread: {e}"));
    }
    receiver
        .await
        .unwrap_or_else(|_| Outcome::Failure("the probe thread died".into()))
}

/// Which probe a result is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// startupProbe.
    Startup,
    /// livenessProbe.
    Liveness,
    /// readinessProbe.
    Readiness,
}

impl Kind {
    /// As the kubelet names it in events.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// What one run of a probe changed, reported to the pod worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The container (runtime id) probed.
    pub container_id: String,
    /// Which probe.
    pub kind: Kind,
    /// `Some` when a threshold was crossed: whether the probe now counts as passing.
    pub crossed: Option<bool>,
    /// How this run failed, if it did (for the `Unhealthy` event).
    pub failure: Option<String>,
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
}

/// Runs a probe every period until `stop`, sending a [`Verdict`] each time its state
/// crosses successThreshold or failureThreshold (and each failure as it happens, for
/// events). A startup probe stops once it passes.
pub async fn run(
    probe: Probe,
    kind: Kind,
    target: Target,
    verdicts: mpsc::Sender<Verdict>,
    stop: CancellationToken,
) {
    let Some(handler) = Handler::of(&probe) else {
        return;
    };
    let initial = seconds(probe.initial_delay_seconds, 0);
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::select! {
        () = stop.cancelled() => return,
        () = tokio::time::sleep(initial) => {}
    }
    let mut passing: Option<bool> = None;
    let (mut successes, mut failures) = (0, 0);
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = check(&handler, &target, timeout) => outcome,
        };
        let failure = match outcome {
            Outcome::Success => {
                successes += 1;
                failures = 0;
                None
            }
            Outcome::Failure(message) => {
                failures += 1;
                successes = 0;
                Some(message)
            }
        };
        let crossed = if successes >= success_threshold && passing != Some(true) {
            Some(true)
        } else if failures >= failure_threshold && passing != Some(false) {
            Some(false)
        } else {
            None
        };
        if let Some(now) = crossed {
            passing = Some(now);
        }
        if (crossed.is_some() || failure.is_some())
            && verdicts
                .send(Verdict {
                    container_id: target.container_id.clone(),
                    kind,
                    crossed,
                    failure,
                })
                .await
                .is_err()
        {
            return;
        }
        if kind == Kind::Startup && passing == Some(true) {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

//! `slipway agent` joining a real `slipway server` over HTTPS with the join token, its own
//! containerd running the pods kubectl creates, `slipway image import` loading the image
//! through the API server, and `kubectl logs`, `exec`, `attach` and `cp` reaching the agent
//! through the API server, over WebSocket and over kubectl's SPDY fallback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use slipway_testkit::ImageBuilder;

/// A bound, never a measure: how long a step may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// A child process stopped with SIGTERM (so an agent stops its containerd), then killed.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        // An agent removing its pods waits out their grace period: 30 s for a shell or
        // httpd as PID 1, which ignores SIGTERM. Killed sooner, it would leave its
        // containerd and the pods' mounts behind.
        slipway_testkit::process::stop(&mut self.0, Duration::from_secs(60));
    }
}

fn slipway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    command.env_remove("SLIPWAY_DATA_DIR");
    command
}

/// Fields drop in order: the server stops before its directory goes.
struct Cluster {
    _server: Process,
    url: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        // Short: the agent's containerd socket lives below it.
        let dir = tempfile::Builder::new()
            .prefix("swa-")
            .tempdir_in("/tmp")
            .unwrap();
        let (child, url) = slipway_testkit::process::spawn_server(
            slipway()
                .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path().join("server")),
        );
        Cluster {
            _server: Process(child),
            url,
            dir,
        }
    }

    fn server_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("server").join(name)
    }

    fn agent(&self, token_args: &[&str]) -> Command {
        let mut command = slipway();
        command
            .args(["agent", "--server", &self.url, "--ca-file"])
            .arg(self.server_file("pki/ca.crt"))
            .args(token_args)
            .args([
                "--node-name",
                "node-1",
                "--listen",
                "127.0.0.1:0",
                "--remove-pods-on-exit",
            ])
            .arg("--data-dir")
            .arg(self.dir.path().join("agent"));
        command
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.server_file("admin.kubeconfig"))
            .env("HOME", self.dir.path())
            .output()
            .unwrap()
    }

    /// kubectl with `input` on its stdin.
    fn kubectl_fed(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.server_file("admin.kubeconfig"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl until its output satisfies `done`.
    fn until(&self, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.kubectl(args);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn an_agent_joins_runs_pods_and_serves_their_logs() {
    let cluster = Cluster::start();

    let refused = cluster
        .agent(&["--token", "not-the-token"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "a bad token is bad input");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.starts_with("error: the API server refused the agent's credentials"),
        "{message}"
    );

    let token_file = cluster.server_file("pki/join-token");
    let agent = Process(
        cluster
            .agent(&["--token-file", text(&token_file)])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    cluster.until(
        &[
            "get",
            "node",
            "node-1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        "node-1 Ready",
        |s| s == "True",
    );
    let info = cluster.ok(&[
        "get",
        "node",
        "node-1",
        "-o",
        "jsonpath={.status.nodeInfo.containerRuntimeVersion}",
    ]);
    assert!(info.starts_with("containerd://1."), "{info}");

    let archive = cluster.dir.path().join("busybox.tar");
    ImageBuilder::busybox("slipway.local/busybox:1")
        .write_docker(&archive)
        .unwrap();
    let imported = slipway()
        .args(["image", "import", text(&archive), "--kubeconfig"])
        .arg(cluster.server_file("admin.kubeconfig"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        said.contains("node-1") && said.contains("slipway.local/busybox:1"),
        "{said}"
    );
    let listed = slipway()
        .args(["image", "list", "--kubeconfig"])
        .arg(cluster.server_file("admin.kubeconfig"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("slipway.local/busybox:1"));

    cluster.ok(&[
        "run",
        "hello",
        "--image=slipway.local/busybox:1",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo hello from $(hostname); sleep 3600",
    ]);
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/hello",
        "--timeout=60s",
    ]);
    let logs = cluster.until(&["logs", "hello"], "hello's logs", |s| !s.is_empty());
    assert_eq!(logs, "hello from hello\n");

    cluster.ok(&[
        "run",
        "counter",
        "--image=slipway.local/busybox:1",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line $i; sleep 0.5; done",
    ]);
    cluster.until(
        &["get", "pod", "counter", "-o", "jsonpath={.status.phase}"],
        "counter started",
        |s| s == "Running" || s == "Succeeded",
    );
    // Following ends by itself when the container does.
    let followed = cluster.ok(&["logs", "-f", "counter"]);
    assert_eq!(followed, "line 1\nline 2\nline 3\n");
    cluster.until(
        &["get", "pod", "counter", "-o", "jsonpath={.status.phase}"],
        "counter Succeeded",
        |s| s == "Succeeded",
    );

    cluster.ok(&[
        "delete",
        "pod",
        "hello",
        "counter",
        "--wait=true",
        "--timeout=60s",
    ]);
    drop(agent);
}

/// An agent joined with its token file, Ready, with the busybox image (plus `tar`, for
/// `kubectl cp`) imported through the API server.
fn joined(cluster: &Cluster) -> Process {
    let token_file = cluster.server_file("pki/join-token");
    let agent = Process(
        cluster
            .agent(&["--token-file", text(&token_file)])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    cluster.until(
        &[
            "get",
            "node",
            "node-1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        "node-1 Ready",
        |s| s == "True",
    );
    let archive = cluster.dir.path().join("busybox.tar");
    ImageBuilder::busybox("slipway.local/busybox:1")
        .file(
            "/bin/tar",
            b"#!/bin/sh\nexec /bin/busybox tar \"$@\"\n".to_vec(),
            0o755,
        )
        .write_docker(&archive)
        .unwrap();
    let imported = slipway()
        .args(["image", "import", text(&archive), "--kubeconfig"])
        .arg(cluster.server_file("admin.kubeconfig"))
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    agent
}

fn said(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exec_attach_and_cp_reach_pods_through_the_api_server() {
    let cluster = Cluster::start();
    let agent = joined(&cluster);
    cluster.ok(&[
        "run",
        "box",
        "--image=slipway.local/busybox:1",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]);
    cluster.ok(&["wait", "--for=condition=Ready", "pod/box", "--timeout=60s"]);

    assert_eq!(cluster.ok(&["exec", "box", "--", "echo", "hi"]), "hi\n");
    let failed = cluster.kubectl(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(failed.status.code(), Some(3), "{:?}", said(&failed));
    let (out, err) = said(&failed);
    assert_eq!(out, "out\n");
    assert!(err.starts_with("err\n"), "{err}");

    // stdin reaches the process, and its end ends `cat`.
    let fed = cluster.kubectl_fed(&["exec", "-i", "box", "--", "cat"], b"data\nmore\n");
    assert!(fed.status.success(), "{:?}", said(&fed));
    assert_eq!(said(&fed).0, "data\nmore\n");

    let unknown = cluster.kubectl(&["exec", "box", "-c", "nope", "--", "true"]);
    assert_eq!(unknown.status.code(), Some(1), "{:?}", said(&unknown));
    let (_, err) = said(&unknown);
    assert!(
        err.contains("container nope is not valid for pod box"),
        "{err}"
    );

    let missing = cluster.kubectl(&["exec", "box", "--", "no-such-command"]);
    assert_ne!(missing.status.code(), Some(0), "{:?}", said(&missing));
    let (_, err) = said(&missing);
    assert!(err.contains("no-such-command"), "{err}");

    // A terminal through `script`: kubectl sees one and asks for one.
    let tty = Command::new("script")
        .args([
            "-qec",
            "kubectl exec -it box -- sh -c 'test -t 0 && test -t 1 && echo is-a-tty; exit 5'",
            "/dev/null",
        ])
        .env("KUBECONFIG", cluster.server_file("admin.kubeconfig"))
        .env("HOME", cluster.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(tty.status.code(), Some(5), "{:?}", said(&tty));
    assert!(said(&tty).0.contains("is-a-tty"), "{:?}", said(&tty));

    // cp in and back out: the same bytes.
    let original = cluster.dir.path().join("original.txt");
    let content: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&original, &content).unwrap();
    cluster.ok(&["cp", text(&original), "box:/tmp/copied.bin"]);
    assert_eq!(
        cluster
            .ok(&["exec", "box", "--", "wc", "-c", "/tmp/copied.bin"])
            .split_whitespace()
            .next(),
        Some(content.len().to_string().as_str())
    );
    let back = cluster.dir.path().join("back.bin");
    cluster.ok(&["cp", "box:/tmp/copied.bin", text(&back)]);
    assert!(
        std::fs::read(&back).unwrap() == content,
        "cp changed the bytes"
    );

    // attach sees what the container prints after attaching: ticks numbered past the last
    // one logged before.
    cluster.ok(&[
        "run",
        "ticker",
        "--image=slipway.local/busybox:1",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
    ]);
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/ticker",
        "--timeout=60s",
    ]);
    let before = cluster.until(&["logs", "ticker", "--tail=1"], "a tick", |s| {
        s.starts_with("tick ")
    });
    let before: u32 = before.trim().trim_start_matches("tick ").parse().unwrap();
    let mut attached = Command::new("kubectl")
        .args(["attach", "ticker"])
        .env("KUBECONFIG", cluster.server_file("admin.kubeconfig"))
        .env("HOME", cluster.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(attached.stdout.take().unwrap()).lines();
    let attach = Process(attached);
    let first = lines.next().expect("attach printed nothing").unwrap();
    let first: u32 = first
        .strip_prefix("tick ")
        .unwrap_or_else(|| panic!("{first}"))
        .parse()
        .unwrap();
    assert!(
        first > before,
        "attach showed tick {first}, logged before: {before}"
    );
    drop(attach);

    // Without credentials the API refuses the upgrade before anything reaches the agent.
    let refused = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Sec-WebSocket-Version: 13",
            "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "-H",
            "Sec-WebSocket-Protocol: v5.channel.k8s.io",
        ])
        .arg(format!(
            "{}/api/v1/namespaces/default/pods/box/exec?command=true&stdout=true",
            cluster.url
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "401");

    cluster.ok(&[
        "delete",
        "pod",
        "box",
        "ticker",
        "--wait=true",
        "--timeout=60s",
    ]);
    drop(agent);
}

/// Runs `kubectl port-forward` to the pod's 8080 and fetches `/` through it.
fn fetch_forwarded(cluster: &Cluster, websockets: bool) -> String {
    let mut child = Command::new("kubectl")
        .args(["port-forward", "pod/web", ":8080", "--address", "127.0.0.1"])
        .env("KUBECONFIG", cluster.server_file("admin.kubeconfig"))
        .env("HOME", cluster.dir.path())
        .env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if websockets { "true" } else { "false" },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let forward = Process(child);
    let first = lines.next().expect("port-forward printed nothing").unwrap();
    let port = first
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let fetched = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .unwrap();
    drop(forward);
    assert!(fetched.status.success(), "{:?}", said(&fetched));
    said(&fetched).0
}

#[test]
fn port_forward_serves_a_request_through_the_api_server() {
    let cluster = Cluster::start();
    let agent = joined(&cluster);
    cluster.ok(&[
        "run",
        "web",
        "--image=slipway.local/busybox:1",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]);
    cluster.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    cluster.until(
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080",
        ],
        "httpd to listen",
        |s| s.contains("forwarded"),
    );
    // kubectl 1.32's default, SPDY tunnelled in a WebSocket, then plain SPDY.
    assert_eq!(fetch_forwarded(&cluster, true), "forwarded\n");
    assert_eq!(fetch_forwarded(&cluster, false), "forwarded\n");
    drop(agent);
}

/// kubectl's log lines (klog's `I1128 13:25:49.123456   1234 file.go:12] ...`), which
/// `--vmodule` adds to its stderr.
fn is_log_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 6
        && matches!(bytes[0], b'I' | b'W' | b'E' | b'F')
        && bytes[1..5].iter().all(u8::is_ascii_digit)
        && bytes[5] == b' '
        && line.contains("] ")
}

/// Whether kubectl's round-tripper log shows an upgrade answered with plain SPDY: a `101`
/// whose response headers say `Upgrade: SPDY/3.1` (a WebSocket's say `websocket`).
fn upgraded_to_spdy(log: &str) -> bool {
    let mut answered = false;
    for line in log.lines() {
        if line.contains("Response Status: 101 Switching Protocols") {
            answered = true;
        } else if answered && line.trim_end().ends_with("Upgrade: SPDY/3.1") {
            return true;
        } else if line.contains("Response Status: ") {
            answered = false;
        }
    }
    false
}

/// kubectl with WebSockets off, so exec, attach and cp fall back to SPDY, logging its
/// requests' headers; fails unless the log shows the SPDY upgrade. The log lines are taken
/// out of the stderr returned.
fn kubectl_spdy(cluster: &Cluster, args: &[&str], input: Option<&[u8]>) -> Output {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .arg("--vmodule=round_trippers=8")
        .args(args)
        .env("KUBECONFIG", cluster.server_file("admin.kubeconfig"))
        .env("HOME", cluster.dir.path())
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let mut out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        upgraded_to_spdy(&log),
        "kubectl {args:?} did not upgrade to SPDY: {log}"
    );
    out.stderr = log
        .lines()
        .filter(|line| !is_log_line(line))
        .flat_map(|line| [line, "\n"])
        .collect::<String>()
        .into_bytes();
    out
}

#[test]
fn exec_attach_and_cp_speak_spdy_when_kubectl_falls_back() {
    assert!(upgraded_to_spdy(
        "I1 round_trippers.go:581] Response Status: 101 Switching Protocols in 3 milliseconds\n\
         I1 round_trippers.go:587]     Upgrade: SPDY/3.1\n"
    ));
    assert!(!upgraded_to_spdy(
        "I1 round_trippers.go:581] Response Status: 101 Switching Protocols in 3 milliseconds\n\
         I1 round_trippers.go:587]     Upgrade: websocket\n\
         I1 round_trippers.go:581] Response Status: 200 OK in 3 milliseconds\n\
         I1 round_trippers.go:587]     Upgrade: SPDY/3.1\n"
    ));

    let cluster = Cluster::start();
    let agent = joined(&cluster);
    cluster.ok(&[
        "run",
        "box",
        "--image=slipway.local/busybox:1",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]);
    cluster.ok(&["wait", "--for=condition=Ready", "pod/box", "--timeout=60s"]);

    let hi = kubectl_spdy(&cluster, &["exec", "box", "--", "echo", "hi"], None);
    assert!(hi.status.success(), "{:?}", said(&hi));
    assert_eq!(said(&hi).0, "hi\n");

    let failed = kubectl_spdy(
        &cluster,
        &[
            "exec",
            "box",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        None,
    );
    assert_eq!(failed.status.code(), Some(3), "{:?}", said(&failed));
    let (out, err) = said(&failed);
    assert_eq!(out, "out\n");
    assert!(err.starts_with("err\n"), "{err}");

    // stdin's end (FIN on its stream) ends `cat`.
    let fed = kubectl_spdy(
        &cluster,
        &["exec", "-i", "box", "--", "cat"],
        Some(b"data\nmore\n"),
    );
    assert!(fed.status.success(), "{:?}", said(&fed));
    assert_eq!(said(&fed).0, "data\nmore\n");

    let missing = kubectl_spdy(&cluster, &["exec", "box", "--", "no-such-command"], None);
    assert_ne!(missing.status.code(), Some(0), "{:?}", said(&missing));
    assert!(
        said(&missing).1.contains("no-such-command"),
        "{:?}",
        said(&missing)
    );

    // A terminal through `script`, with the resize stream; kubectl's log shares the
    // terminal with the output.
    let tty = Command::new("script")
        .args([
            "-qec",
            "kubectl --vmodule=round_trippers=8 exec -it box -- \
             sh -c 'test -t 0 && test -t 1 && echo is-a-tty; exit 5'",
            "/dev/null",
        ])
        .env("KUBECONFIG", cluster.server_file("admin.kubeconfig"))
        .env("HOME", cluster.dir.path())
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(tty.status.code(), Some(5), "{:?}", said(&tty));
    let (seen, _) = said(&tty);
    assert!(seen.contains("is-a-tty"), "{seen}");
    assert!(upgraded_to_spdy(&seen.replace('\r', "")), "{seen}");

    // The terminal's size reaches the container's on the resize stream, some time after
    // the process starts (as with the kubelet): up to 100 looks, 0.1 s apart. It goes
    // through a file, since a terminal's last output can be lost when its process exits
    // right after writing it (over WebSocket too).
    let sized = Command::new("script")
        .args([
            "-qec",
            "stty rows 45 cols 123; kubectl exec -it box -- sh -c 'i=0; while [ $i -lt 100 ]; \
             do s=$(busybox stty size 2>/dev/null); if [ -n \"$s\" ] && [ \"$s\" != \"0 0\" ]; \
             then echo \"$s\" >/tmp/size; exit 0; fi; i=$((i+1)); sleep 0.1; done; exit 1'",
            "/dev/null",
        ])
        .env("KUBECONFIG", cluster.server_file("admin.kubeconfig"))
        .env("HOME", cluster.dir.path())
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(sized.status.success(), "{:?}", said(&sized));
    let size = kubectl_spdy(&cluster, &["exec", "box", "--", "cat", "/tmp/size"], None);
    assert_eq!(said(&size).0, "45 123\n", "{:?}", said(&size));

    // cp in and back out: the same bytes.
    let original = cluster.dir.path().join("original.bin");
    let content: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&original, &content).unwrap();
    let copied = kubectl_spdy(
        &cluster,
        &["cp", text(&original), "box:/tmp/copied.bin"],
        None,
    );
    assert!(copied.status.success(), "{:?}", said(&copied));
    let back = cluster.dir.path().join("back.bin");
    let fetched = kubectl_spdy(&cluster, &["cp", "box:/tmp/copied.bin", text(&back)], None);
    assert!(fetched.status.success(), "{:?}", said(&fetched));
    assert!(
        std::fs::read(&back).unwrap() == content,
        "cp changed the bytes"
    );

    // attach shows what the container prints from then on.
    cluster.ok(&[
        "run",
        "ticker",
        "--image=slipway.local/busybox:1",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
    ]);
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/ticker",
        "--timeout=60s",
    ]);
    let mut attached = Command::new("kubectl")
        .args(["--vmodule=round_trippers=8", "attach", "ticker"])
        .env("KUBECONFIG", cluster.server_file("admin.kubeconfig"))
        .env("HOME", cluster.dir.path())
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(attached.stdout.take().unwrap()).lines();
    let mut log = attached.stderr.take().unwrap();
    let attach = Process(attached);
    let first = lines.next().expect("attach printed nothing").unwrap();
    assert!(first.starts_with("tick "), "{first}");
    drop(attach);
    let mut log_text = String::new();
    std::io::Read::read_to_string(&mut log, &mut log_text).unwrap();
    assert!(upgraded_to_spdy(&log_text), "{log_text}");

    cluster.ok(&[
        "delete",
        "pod",
        "box",
        "ticker",
        "--wait=true",
        "--timeout=60s",
    ]);
    drop(agent);
}

//! The `slipway` binary as a user meets it: exit codes, one-line errors, and `up` serving
//! until a signal stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn slipway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .env_remove("SLIPWAY_DATA_DIR")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `slipway <command>` serving plain HTTP on a free loopback port, both outputs piped.
fn serve(command: &str, data_dir: &Path) -> Child {
    // `up` serves its gateway on 127.0.0.1:8080 unless told otherwise; tests take any port.
    let gateway: &[&str] = if command == "up" {
        &["--gateway", "127.0.0.1:0"]
    } else {
        &[]
    };
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            command,
            "--listen",
            "127.0.0.1:0",
            "--plain-http",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(gateway)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Stops a `slipway` process with SIGTERM when dropped, so a failed assertion does not leave
/// a server (and the containerd of its agent) running.
struct StopOnDrop(u32);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let still_ours = std::fs::read(format!("/proc/{}/cmdline", self.0))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("slipway"));
        if still_ours {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.to_string()])
                .status();
        }
    }
}

/// A plain HTTP GET with a bearer token; the whole answer, head and body.
fn get(address: &str, path: &str, token: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return String::new();
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_string(&mut answer);
    }
    answer
}

#[test]
fn help_lists_only_what_exists() {
    let out = slipway(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("up"), "{help}");
    assert!(help.contains("store"), "{help}");
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, needle) in [
        ("bash", "_slipway()"),
        ("zsh", "#compdef slipway"),
        ("fish", "complete -c slipway"),
    ] {
        let out = slipway(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(
            script.contains("previews") || script.contains("env"),
            "{shell}"
        );
    }
    // A reader that stops at once (`| head -1`) is no failure, and nothing panics.
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["completion", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let out = slipway(&["completion", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
}

#[test]
fn bad_usage_exits_2_with_one_line_first() {
    for args in [
        &["store", "status", "--store", "postgres://db"][..],
        &["store", "status", "--store", "etcd://nohost"][..],
        &["no-such-command"][..],
        &["store", "status"][..],
    ] {
        let out = slipway(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn unreachable_etcd_exits_3() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let out = slipway(&["store", "status", "--store", "etcd://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
}

#[test]
fn store_status_reads_a_new_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/state.db", dir.path().display());
    let out = slipway(&["store", "status", "--store", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("revision   0"), "{text}");
    assert!(text.contains("keys       0"), "{text}");
}

#[test]
fn up_serves_until_sigterm_and_keeps_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = serve("up", dir.path());
    let _stop = StopOnDrop(up.id());
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("up ended before it was ready").unwrap();
        let done = line.starts_with("Ctrl-C");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("slipway up: ready"), "{text}");
    assert!(!text.contains("not built yet"), "{text}");
    assert!(
        text.contains("  demo        http://demo.localhost:"),
        "{text}"
    );

    // Its agent registers this machine as a node, on its own containerd. (kubectl sends no
    // token over plain HTTP, so this asks the API directly.)
    let api = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("API"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|url| url.strip_prefix("http://"))
        .expect("the API address")
        .to_owned();
    let token = std::fs::read_to_string(dir.path().join("pki/admin.token")).unwrap();
    // The portal is at / of the API, and the admin token to sign in with is printed.
    assert!(
        text.contains(&format!("portal      http://{api}/")),
        "{text}"
    );
    assert!(
        text.contains(&format!("sign in     {} (the admin token)", token.trim())),
        "{text}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let nodes = get(&api, "/api/v1/nodes", token.trim());
        // The message of a Ready=True condition, as the kubelet words it.
        if nodes.contains("kubelet is posting ready status") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node never became Ready: {nodes}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // While `up` holds the store, a second process is refused with a clear error.
    let url = format!("sqlite://{}/state.db", dir.path().display());
    let out = slipway(&["store", "status", "--store", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in use by another process"),
        "{}",
        stderr(&out)
    );

    assert!(slipway_testkit::process::sigterm(&up));
    let status = up.wait().unwrap();
    assert!(status.success(), "{status}");
    // The demo may say it is ready before the end; "stopped" is the last word.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(rest.last().map(String::as_str), Some("stopped"), "{rest:?}");

    // Stopped cleanly: the store opens again at once.
    let out = slipway(&["store", "status", "--store", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn plain_http_refuses_non_loopback_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "server",
            "--listen",
            "0.0.0.0:0",
            "--plain-http",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));
}

#[test]
fn stops_on_sigterm_even_when_nobody_reads_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve("server", dir.path());
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next();
    // Both pipes closed: every later message goes nowhere.
    drop(lines);
    drop(server.stderr.take());
    assert!(slipway_testkit::process::sigterm(&server));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = server.kill();
        let _ = server.wait();
    }
    assert!(first.is_some_and(|l| l.is_ok()), "the server never started");
    let status = status.expect("SIGTERM did not stop a server whose output is closed");
    // Stopping with nowhere to write is still a clean stop, not a panic (exit 101).
    assert!(status.success(), "{status}");
}

#[test]
fn doctor_passes_here_and_names_a_taken_port_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let free = |listener: std::net::TcpListener| listener.local_addr().unwrap().to_string();
    let api = free(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gateway = taken.local_addr().unwrap().to_string();
    let data = data_dir.to_str().unwrap();

    let out = slipway(&[
        "doctor",
        "--data-dir",
        data,
        "--listen",
        &api,
        "--gateway",
        &api,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for check in [
        "root",
        "kernel",
        "cgroups",
        "containerd",
        "runc",
        "nft",
        "disk",
    ] {
        assert!(text.contains(&format!("ok    {check}")), "{check}: {text}");
    }
    assert!(
        text.ends_with("this machine can run slipway up\n"),
        "{text}"
    );

    let out = slipway(&[
        "doctor",
        "--data-dir",
        data,
        "--listen",
        &api,
        "--gateway",
        &gateway,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("FAIL  gateway     {gateway} is in use")),
        "{text}"
    );
    assert!(text.contains("fix: stop what listens there"), "{text}");
    assert_eq!(
        stderr(&out),
        "error: 1 check failed; fix it and run slipway doctor again\n"
    );
    drop(taken);

    let out = slipway(&["doctor", "--listen", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: invalid value 'localhost'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/state.db", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["store", "status", "--store", &url])
        .env("SLIPWAY_LOG", "trace")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(!log.is_empty(), "trace logs nothing to watch");
    assert!(!log.contains('\u{1b}'), "{log}");
}

//! The README's quick start, as a new user runs it: `slipway up` with its embedded defaults
//! (HTTPS, SQLite, its own containerd) on a fresh data directory prints URLs that answer,
//! its demo app answers through the gateway, `slipway demo pr open|push|close` gives a
//! preview that answers and then goes, and a second `up` on the same directory resumes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A bound, never a measure: how long a step may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(120);

/// `slipway up` with its output read on a thread, stopped with SIGTERM on drop.
struct Up {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// What it logged on stderr, passed on to the test's own stderr too.
    logged: mpsc::Receiver<String>,
    /// Everything it printed up to "Ctrl-C ...".
    banner: String,
}

impl Up {
    fn start(data_dir: &Path) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["up", "--listen", "127.0.0.1:0", "--gateway", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("SLIPWAY_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (log, logged) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let _ = log.send(line);
            }
        });
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let mut up = Up {
            child,
            lines,
            logged,
            banner: String::new(),
        };
        let banner = up.until_line("the banner", |l| l.starts_with("Ctrl-C"));
        up.banner = banner;
        up
    }

    /// Reads lines until one passes `done`; everything read, that line included.
    fn until_line(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("never printed {what}; printed:\n{seen}"));
            seen.push_str(&line);
            seen.push('\n');
            if done(&line) {
                return seen;
            }
        }
    }

    /// The first word after `label` on the banner's line that starts with it.
    fn printed(&self, label: &str) -> String {
        self.banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {label} in:\n{}", self.banner))
            .to_owned()
    }

    /// Stops it as a service manager does and waits; it must end well and say so.
    fn stop(mut self) {
        let status = slipway_testkit::process::stop(&mut self.child, PATIENCE);
        let status = status.expect("up did not stop");
        assert!(status.success(), "{status}");
        let rest: Vec<String> = self.lines.try_iter().collect();
        assert_eq!(rest.last().map(String::as_str), Some("stopped"), "{rest:?}");
        // The store was closed cleanly: nothing held it past the shutdown.
        // Until its stderr closes; bounded, in case a child process kept it open.
        let mut logged = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(line) = self
            .logged
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            logged.push(line);
        }
        assert!(
            !logged.iter().any(|l| l.contains("store still in use")),
            "{logged:?}"
        );
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        slipway_testkit::process::stop(&mut self.child, PATIENCE);
    }
}

fn slipway(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("SLIPWAY_DATA_DIR")
        .output()
        .unwrap()
}

fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = slipway(kubeconfig, args);
    assert!(
        out.status.success(),
        "slipway {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTPS GET with the server's CA (and a token if given): the status code and body.
fn https_get(ca: &Path, url: &str, token: Option<&str>) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args([
        "-sL",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca)
    .arg(url);
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = curl.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "never {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `http://HOST:PORT/` as the gateway address and the host it is for.
fn host_of(url: &str) -> (String, String) {
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let port = authority.rsplit_once(':').unwrap().1;
    (format!("127.0.0.1:{port}"), authority)
}

/// The demo page served for `host`, once the front end answers with the API's answer in it.
fn demo_page(gateway: &str, host: &str) -> String {
    until(&format!("a demo page at {host}"), || {
        let (code, body) = slipway_testkit::http::get(gateway, host);
        (code == 200 && body.contains("id=\"api\"")).then_some(body)
    })
}

#[test]
fn the_quick_start_serves_the_demo_and_a_pull_request_preview_and_resumes() {
    let dir = tempfile::Builder::new()
        .prefix("swp-")
        .tempdir_in("/tmp")
        .unwrap();
    let data_dir = dir.path().join("data");
    let up = Up::start(&data_dir);
    let banner = up.banner.clone();
    let kubeconfig = PathBuf::from(up.printed("kubeconfig"));
    let ca = data_dir.join("pki/ca.crt");
    let token = up.printed("sign in");

    // Every URL printed answers: the API (HTTPS, its own CA), the portal, the gateway.
    let api = up.printed("API");
    assert!(api.starts_with("https://127.0.0.1:"), "{banner}");
    let (code, body) = https_get(&ca, &format!("{api}/version"), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("gitVersion"), "{body}");
    let (code, body) = https_get(&ca, &format!("{api}/api/v1/nodes"), Some(&token));
    assert_eq!(code, 200, "{body}");
    let (code, body) = https_get(&ca, &up.printed("portal"), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Sign in"), "{body}");
    let gateway = up
        .printed("gateway")
        .trim_start_matches("http://")
        .to_owned();
    let (code, _) = slipway_testkit::http::get(&gateway, "nothing.localhost");
    assert_eq!(
        code, 404,
        "the gateway answers hosts it has no Ingress for with 404"
    );
    assert!(kubeconfig.starts_with(&data_dir), "{banner}");

    // The demo: the web front end answers through the gateway with the API's answer, which
    // it got by calling the API's Service by name.
    let demo_url = up.printed("demo");
    let (_, demo_host) = host_of(&demo_url);
    up.until_line("the demo ready", |l| l.starts_with("demo ready in"));
    let page = demo_page(&gateway, &demo_host);
    assert!(page.contains("slipway demo shop"), "{page}");
    assert!(
        page.contains("&quot;service&quot;:&quot;demo-api&quot;"),
        "{page}"
    );
    assert!(page.contains("<span id=\"version\">main</span>"), "{page}");

    // A simulated pull request gets a preview whose URL answers with its commit.
    let opened = ok(&kubeconfig, &["demo", "pr", "open"]);
    let url = opened
        .lines()
        .find_map(|l| l.strip_prefix("preview ready: "))
        .unwrap_or_else(|| panic!("no preview URL in:\n{opened}"))
        .to_owned();
    assert!(
        url.starts_with("http://pr-shop-1.preview.localhost:"),
        "{opened}"
    );
    let (preview_gateway, preview_host) = host_of(&url);
    assert_eq!(preview_gateway, gateway);
    let sha = |text: &str| {
        text.lines()
            .find_map(|l| l.split(" at ").nth(1).or_else(|| l.strip_prefix("pushed ")))
            .and_then(|rest| rest.split([';', ' ']).next())
            .unwrap_or_else(|| panic!("no commit in:\n{text}"))
            .to_owned()
    };
    let first = sha(&opened);
    let page = demo_page(&gateway, &preview_host);
    assert!(
        page.contains(&format!("<span id=\"version\">{first}")),
        "{page}"
    );
    assert!(page.contains("hello from a preview"), "{page}");

    // A push rolls it to the new commit.
    let pushed = ok(&kubeconfig, &["demo", "pr", "push", "1"]);
    let second = sha(&pushed);
    assert_ne!(first, second);
    until("the preview at the pushed commit", || {
        let (code, body) = slipway_testkit::http::get(&gateway, &preview_host);
        (code == 200 && body.contains(&format!("<span id=\"version\">{second}"))).then_some(())
    });

    // Bad input changes nothing and says why in one line, with exit code 2.
    for args in [
        &["demo", "pr", "push", "7"][..],
        &["demo", "pr", "close", "seven"][..],
    ] {
        let out = slipway(&kubeconfig, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    let listed = ok(&kubeconfig, &["demo", "pr", "list"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // Closing it takes the preview away.
    let closed = ok(&kubeconfig, &["demo", "pr", "close", "1"]);
    assert!(closed.contains("destroyed"), "{closed}");
    until("the closed preview gone from the gateway", || {
        (slipway_testkit::http::get(&gateway, &preview_host).0 == 404).then_some(())
    });
    let out = slipway(&kubeconfig, &["demo", "pr", "close", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is closed"));
    up.stop();

    // `up` again on the same directory resumes: same credentials, the demo answers again,
    // and the demo repository remembers its pull request.
    let again = Up::start(&data_dir);
    assert_eq!(again.printed("sign in"), token);
    let gateway = again
        .printed("gateway")
        .trim_start_matches("http://")
        .to_owned();
    let (_, demo_host) = host_of(&again.printed("demo"));
    demo_page(&gateway, &demo_host);
    let listed = ok(&kubeconfig, &["demo", "pr", "list"]);
    assert!(listed.contains("#1   closed"), "{listed}");
    again.stop();
}

//! Pull-request previews as a squad meets them, on `slipway up` with its own containerd: a
//! pull request opened on the (local, fake) GitHub gets an environment whose URL serves the
//! app through the gateway, a comment, a Deployment and a commit status; a push rolls it to
//! the new commit; `slipway env` shows, extends and reads it; closing the pull request
//! takes it all away. An idle preview sleeps and a request wakes it. The portal shows a
//! squad its services and previews in a real headless Chromium, and acts on them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use slipway_fake_github::{FakeGitHub, Pull, deliver};
use slipway_testkit::ImageBuilder;

/// A bound, never a measure: how long a step may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(90);
const REPO: &str = "acme/shop";
const IMAGE: &str = "slipway.local/busybox:1";

/// `slipway up`, stopped with SIGTERM (so its agent removes its pods and stops its
/// containerd), then killed.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        slipway_testkit::process::stop(&mut self.0, PATIENCE);
    }
}

fn slipway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    command
        .env_remove("SLIPWAY_DATA_DIR")
        .env_remove("KUBECONFIG");
    command
}

fn run(command: &mut Command) -> String {
    let out: Output = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bearer token a kubeconfig holds.
fn token_in(kubeconfig: &Path) -> String {
    std::fs::read_to_string(kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A GET through the gateway for a preview's host: status code and body.
fn through_gateway(gateway: &str, host: &str) -> (u16, String) {
    slipway_testkit::http::get(gateway, host)
}

/// A GET of `path` from `address` for `host`, with a bearer token if given: the status code
/// and body, or code 0 when the connection failed.
fn http_get(address: &str, host: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    slipway_testkit::http::exchange(address, "GET", host, path, &headers, "")
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

fn manifests(sha: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      # httpd as PID 1 has no SIGTERM handler: without this, every stop waits the default
      # 30 s, and `up` outlives the drop's patience and leaks its containerd.
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        command: ["sh", "-c", "mkdir -p /www && echo \"${{GREETING}} from ${{SLIPWAY_SHA}} ({sha})\" > /www/index.html && echo started ${{SLIPWAY_SHA}} && exec httpd -f -p 8080 -h /www"]
        readinessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"#
    )
}

const CONFIG: &str = "preview:\n  manifests: [deploy/app.yaml]\n  expose: {service: web, port: 80}\n  variables:\n    GREETING: hello\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `slipway up` on its own data directory, with a squad `web`, its member ana (and her
/// kubeconfig), the busybox image imported and `acme/shop` registered with a token.
struct Platform {
    /// Held for their drops, `up` first: it stops before its directory goes.
    _up: Up,
    _dir: tempfile::TempDir,
    /// `http://ADDR:PORT`.
    api: String,
    /// `ADDR:PORT`.
    gateway: String,
    kubeconfig: PathBuf,
    ana_kubeconfig: PathBuf,
}

impl Platform {
    fn start(github: &FakeGitHub, extra: &[&str]) -> Platform {
        github.add_token("ghp_e2e", "slipway-bot");
        github.add_repo(REPO);
        // Short: the agent's containerd socket lives below it.
        let dir = tempfile::Builder::new()
            .prefix("swp-")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("up");
        let mut child = slipway()
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--plain-http",
                "--gateway",
                "127.0.0.1:0",
            ])
            .args(["--github-api", &github.url(), "--data-dir"])
            .arg(&data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let up = Up(child);
        let (mut api, mut gateway) = (String::new(), String::new());
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.trim().strip_prefix("API") {
                api = rest.trim().to_owned();
            }
            if let Some(rest) = line.trim().strip_prefix("gateway") {
                gateway = rest
                    .trim()
                    .trim_start_matches("http://")
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_owned();
            }
            if line.starts_with("Ctrl-C") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        assert!(
            api.starts_with("http://") && !gateway.is_empty(),
            "{api} {gateway}"
        );
        let kubeconfig = data.join("admin.kubeconfig");
        let admin = |args: &[&str]| run(slipway().args(args).arg("--kubeconfig").arg(&kubeconfig));

        let archive = dir.path().join("busybox.tar");
        ImageBuilder::busybox(IMAGE).write_docker(&archive).unwrap();
        // The node registers a moment after `up` prints its URLs.
        until("the image was imported into the node", || {
            let out = slipway()
                .args(["image", "import", archive.to_str().unwrap(), "--kubeconfig"])
                .arg(&kubeconfig)
                .output()
                .unwrap();
            out.status.success().then_some(())
        });
        admin(&["squad", "create", "web"]);
        admin(&["user", "create", "ana"]);
        admin(&["squad", "add-member", "web", "ana"]);
        let secret = write(dir.path(), "hook.secret", "e2e-secret\n");
        let token = write(dir.path(), "gh.token", "ghp_e2e\n");
        let said = admin(&[
            "repo",
            "add",
            REPO,
            "--squad",
            "web",
            "--webhook-secret-file",
            secret.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ]);
        assert!(said.contains("acme/shop added to squad web"), "{said}");

        // Ana works with her own token, as a squad member.
        let ana_kubeconfig = dir.path().join("ana.kubeconfig");
        admin(&[
            "token",
            "create",
            "--user",
            "ana",
            "--write-kubeconfig",
            ana_kubeconfig.to_str().unwrap(),
        ]);
        Platform {
            _up: up,
            _dir: dir,
            api,
            gateway,
            kubeconfig,
            ana_kubeconfig,
        }
    }

    fn admin(&self, args: &[&str]) -> String {
        run(slipway()
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig))
    }

    fn ana(&self, args: &[&str]) -> String {
        run(slipway()
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.ana_kubeconfig))
    }

    /// Opens pull request `number` at `sha` (config and manifests committed there) and
    /// delivers `opened`; answers the preview's host as the gateway serves it.
    async fn open(&self, github: &FakeGitHub, number: u64, sha: &str) -> String {
        github.put_file(REPO, sha, ".slipway.yaml", CONFIG.as_bytes());
        github.put_file(REPO, sha, "deploy/app.yaml", manifests(sha).as_bytes());
        let opened = github.open_pull(
            REPO,
            Pull {
                number,
                head_sha: sha.to_owned(),
                head_ref: "feature".to_owned(),
                author: "ana".to_owned(),
                fork: false,
                labels: Vec::new(),
                draft: false,
            },
        );
        let delivery = format!("open-{number}");
        let (code, body) = deliver(
            &self.hook(),
            b"e2e-secret",
            "pull_request",
            &delivery,
            &opened,
        )
        .await;
        assert_eq!(code, 202, "{body}");
        let port = self.gateway.rsplit(':').next().unwrap();
        format!("pr-shop-{number}.preview.localhost:{port}")
    }

    fn hook(&self) -> String {
        format!("{}/webhooks/github", self.api)
    }

    /// The preview's phase as `env list` reports it to ana.
    fn phase(&self, namespace: &str) -> Option<String> {
        let out = slipway()
            .args(["env", "list", "-o", "json", "--kubeconfig"])
            .arg(&self.ana_kubeconfig)
            .output()
            .unwrap();
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        list["items"]
            .as_array()?
            .iter()
            .find(|p| p["namespace"] == namespace)
            .and_then(|p| p["status"]["phase"].as_str().map(str::to_owned))
    }

    /// A GET of the API as the administrator: the status code and body.
    fn api_get(&self, path: &str) -> (u16, String) {
        let address = self.api.trim_start_matches("http://");
        http_get(address, address, path, Some(&token_in(&self.kubeconfig)))
    }

    /// A POST of JSON to the API as ana: the status code and body.
    fn api_post_as_ana(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        let address = self.api.trim_start_matches("http://");
        let authorization = format!("Bearer {}", token_in(&self.ana_kubeconfig));
        slipway_testkit::http::exchange(
            address,
            "POST",
            address,
            path,
            &[
                ("Authorization", &authorization),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_preview_serves_its_app_and_goes_away() {
    let github = FakeGitHub::start().await;
    let platform = Platform::start(&github, &[]);
    let ana = |args: &[&str]| platform.ana(args);
    let gateway = platform.gateway.clone();
    let listed = platform.admin(&["repo", "list"]);
    assert!(
        listed.contains("acme/shop") && listed.contains("token"),
        "{listed}"
    );

    let host = platform.open(&github, 1, "a1").await;
    let hook = platform.hook();
    let served = until("the preview served the app", || {
        let (code, body) = through_gateway(&gateway, &host);
        (code == 200).then_some(body)
    });
    assert_eq!(served.trim(), "hello from a1 (a1)");
    let url = format!("http://{host}/");
    let comment = until("the comment said ready", || {
        github
            .comments(REPO, 1)
            .into_iter()
            .find(|c| c.body.contains("Preview ready"))
    });
    assert!(comment.body.contains(&url), "{}", comment.body);
    let deployments = github.deployments(REPO);
    assert_eq!(deployments[0].statuses.last().unwrap().state, "success");
    assert_eq!(
        deployments[0]
            .statuses
            .last()
            .unwrap()
            .environment_url
            .as_deref(),
        Some(url.as_str())
    );

    let list = ana(&["env", "list"]);
    assert!(
        list.contains("pr-shop-1") && list.contains("ready") && list.contains(&url),
        "{list}"
    );
    let shown = ana(&["env", "show", "pr-shop-1"]);
    assert!(
        shown.contains("acme/shop") && shown.contains("Deployment web"),
        "{shown}"
    );
    let extended = ana(&["env", "extend", "pr-shop-1", "2d"]);
    assert!(extended.contains("now expires at"), "{extended}");
    let opened_url = ana(&["env", "open", "pr-shop-1", "--print"]);
    assert_eq!(opened_url.trim(), url);
    let logs = until("the app's logs", || {
        let out = slipway()
            .args(["env", "logs", "pr-shop-1", "--kubeconfig"])
            .arg(&platform.ana_kubeconfig)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.contains("started")).then_some(text)
    });
    assert!(logs.contains("/web] started a1"), "{logs}");

    // A push rolls the preview to the new commit.
    github.put_file(REPO, "b2", ".slipway.yaml", CONFIG.as_bytes());
    github.put_file(REPO, "b2", "deploy/app.yaml", manifests("b2").as_bytes());
    let pushed = github.push(REPO, 1, "b2");
    assert_eq!(
        deliver(&hook, b"e2e-secret", "pull_request", "e2e-2", &pushed)
            .await
            .0,
        202
    );
    until("the preview served the new commit", || {
        let (code, body) = through_gateway(&gateway, &host);
        (code == 200 && body.trim() == "hello from b2 (b2)").then_some(())
    });

    // Closed: the namespace goes and the Deployment is marked inactive.
    let closed = github.close_pull(REPO, 1, true);
    assert_eq!(
        deliver(&hook, b"e2e-secret", "pull_request", "e2e-3", &closed)
            .await
            .0,
        202
    );
    until("the namespace was deleted", || {
        let out = slipway()
            .args(["env", "list", "--all", "-o", "json", "--kubeconfig"])
            .arg(&platform.ana_kubeconfig)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.contains("\"destroyed\"").then_some(())
    });
    until("the gateway stopped serving it", || {
        let (code, _) = through_gateway(&gateway, &host);
        (code == 404).then_some(())
    });
    until("the Deployment was marked inactive", || {
        github
            .deployments(REPO)
            .iter()
            .all(|d| d.statuses.last().is_some_and(|s| s.state == "inactive"))
            .then_some(())
    });
    drop(platform);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_preview_sleeps_and_a_request_through_the_gateway_wakes_it() {
    let github = FakeGitHub::start().await;
    let platform = Platform::start(&github, &["--preview-idle", "3s"]);
    let host = platform.open(&github, 2, "s1").await;
    let serves_the_app =
        |(code, body): &(u16, String)| *code == 200 && body.trim() == "hello from s1 (s1)";
    until("the preview served the app", || {
        serves_the_app(&through_gateway(&platform.gateway, &host)).then_some(())
    });

    // Three seconds without a request: asleep, its pods gone.
    until("the preview fell asleep", || {
        (platform.phase("pr-shop-2").as_deref() == Some("sleeping")).then_some(())
    });
    until("its pods were removed", || {
        let (code, pods) = platform.api_get("/api/v1/namespaces/pr-shop-2/pods");
        (code == 200 && !pods.contains("\"kind\":\"Pod\"") && pods.contains("\"items\""))
            .then_some(())
    });
    let comment = until("the comment said asleep", || {
        github
            .comments(REPO, 2)
            .into_iter()
            .find(|c| c.body.contains("asleep"))
    });
    assert!(comment.body.contains(&host), "{}", comment.body);

    // A request wakes it: the gateway holds it until the app answers, or answers the
    // page that reloads itself while the pods start.
    let first = through_gateway(&platform.gateway, &host);
    assert!(
        serves_the_app(&first) || (first.0 == 503 && first.1.contains("Waking up")),
        "{first:?}"
    );
    until("the woken preview served the app", || {
        serves_the_app(&through_gateway(&platform.gateway, &host)).then_some(())
    });
    drop(platform);
}

/// `chromedriver` on a free loopback port, killed on drop.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver) is installed by scripts/test");
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        until("chromedriver listened", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(drop)
        });
        driver
    }

    /// A new headless Chromium that reaches only loopback.
    async fn browser(&self, profile: &Path) -> fantoccini::Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the portal's screenshots go for review: the test output directory.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// The element `locator` finds once the page has it: a click that navigates returns before
/// the next page is there.
async fn find_soon(
    browser: &fantoccini::Client,
    locator: fantoccini::Locator<'_>,
) -> fantoccini::elements::Element {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match browser.find(locator).await {
            Ok(element) => return element,
            Err(e) => assert!(Instant::now() < deadline, "never found {locator:?}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser is at `path`.
async fn until_path(browser: &fantoccini::Client, path: &str) {
    let deadline = Instant::now() + PATIENCE;
    while browser.current_url().await.unwrap().path() != path {
        assert!(Instant::now() < deadline, "never reached {path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page's text once it contains `needle`, reloading while it does not.
async fn page_with(browser: &fantoccini::Client, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let source = browser.source().await.unwrap();
        if source.contains(needle) {
            return source;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {needle:?}:\n{source}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.refresh().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_shows_a_squad_its_service_and_previews_in_a_browser() {
    use fantoccini::Locator;

    let github = FakeGitHub::start().await;
    let platform = Platform::start(&github, &[]);
    platform.admin(&["squad", "create", "data"]);
    // A service of squad web's own, as ana deploys it.
    let (code, body) = platform.api_post_as_ana(
        "/apis/apps/v1/namespaces/web/deployments",
        &serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "shop-api", "labels": { "app.kubernetes.io/name": "shop-api" } },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": "shop-api" } },
                "template": {
                    "metadata": { "labels": { "app": "shop-api" } },
                    "spec": { "containers": [{
                        "name": "api",
                        "image": IMAGE,
                        "command": ["sh", "-c", "echo api listening && exec sleep 3600"],
                    }] },
                },
            },
        }),
    );
    assert_eq!(code, 201, "{body}");
    let host = platform.open(&github, 3, "p3").await;
    until("the preview served the app", || {
        let (code, _) = through_gateway(&platform.gateway, &host);
        (code == 200).then_some(())
    });

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    let portal = platform.api.clone();

    // Signing in: a page that needs a session sends the browser to the form first.
    browser.goto(&format!("{portal}/squads/web")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/signin")
    );
    screenshot(&browser, "signin").await;
    // By keyboard: the first Tab reaches the skip link; Enter in the token field signs in.
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys(TAB)
        .await
        .unwrap();
    let focused = browser.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Skip to content");
    browser
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&format!("{}{ENTER}", token_in(&platform.ana_kubeconfig)))
        .await
        .unwrap();
    // Back where it was asked for: squad web, with its running service.
    until_path(&browser, "/squads/web").await;
    let squad = page_with(&browser, "1/1").await;
    assert!(
        squad.contains("shop-api") && squad.contains("ana"),
        "{squad}"
    );
    screenshot(&browser, "squad").await;
    let session = browser.get_named_cookie("slipway_session").await.unwrap();
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        session.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );

    // The service, its pod and its logs.
    browser
        .find(Locator::LinkText("shop-api"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_path(&browser, "/squads/web/services/web/shop-api").await;
    let service = page_with(&browser, "api listening").await;
    assert!(service.contains("Running"), "{service}");
    screenshot(&browser, "service").await;

    // Its actions, through the real API: scale to two, restart (a second revision), and
    // roll back to the first.
    let deployment = || {
        let (code, body) = platform.api_get("/apis/apps/v1/namespaces/web/deployments/shop-api");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let replicas = browser.find(Locator::Id("replicas")).await.unwrap();
    replicas.clear().await.unwrap();
    replicas.send_keys("2").await.unwrap();
    browser
        .find(Locator::XPath("//button[text()='Scale']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until("the Deployment was scaled", || {
        (deployment()["spec"]["replicas"] == 2).then_some(())
    });
    page_with(&browser, "2/2").await;
    browser
        .find(Locator::XPath("//button[text()='Restart']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let restarted_at = |d: &serde_json::Value| {
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    };
    until("the Deployment was restarted", || {
        restarted_at(&deployment()).then_some(())
    });
    until("the restart made revision 2", || {
        (deployment()["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2")
            .then_some(())
    });
    browser.refresh().await.unwrap();
    browser
        .find(Locator::Id("revision"))
        .await
        .unwrap()
        .select_by_value("1")
        .await
        .unwrap();
    browser
        .find(Locator::XPath("//button[text()='Roll back']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        "the Deployment was rolled back to revision 1's template",
        || (!restarted_at(&deployment())).then_some(()),
    );
    screenshot(&browser, "service-actions").await;

    // The previews: extend one and see its expiry move.
    browser.goto(&format!("{portal}/previews")).await.unwrap();
    // Read afresh each time: the page is replaced under an element found before.
    let expiry = || async {
        let time = find_soon(&browser, Locator::Css("time[data-expires]")).await;
        time.attr("data-expires").await.ok().flatten()
    };
    let before = expiry().await.unwrap();
    assert!(browser.source().await.unwrap().contains("Change 3"));
    browser
        .find(Locator::Css("form[action$='/extend'] select"))
        .await
        .unwrap()
        .select_by_label("3d")
        .await
        .unwrap();
    browser
        .find(Locator::Css("form[action$='/extend'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // RFC 3339 in UTC, whole seconds: later sorts after.
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(after) = expiry().await
            && after > before
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expiry never moved from {before}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    screenshot(&browser, "previews").await;

    // A form posted without its CSRF token is refused, and changes nothing.
    let address = portal.trim_start_matches("http://").to_owned();
    let cookie = format!("slipway_session={}", session.value());
    let (code, _) = slipway_testkit::http::exchange(
        &address,
        "POST",
        &address,
        "/previews/web/pr-shop-3/destroy",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "confirm=yes",
    );
    assert_eq!(code, 403);
    assert_eq!(platform.phase("pr-shop-3").as_deref(), Some("ready"));

    // Destroying asks first, then the namespace goes from the cluster.
    browser
        .find(Locator::LinkText("Destroy…"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let confirm = find_soon(&browser, Locator::Id("confirm")).await;
    screenshot(&browser, "destroy").await;
    confirm.click().await.unwrap();
    browser
        .find(Locator::Css("button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until("the preview's namespace was deleted", || {
        let (code, _) = platform.api_get("/api/v1/namespaces/pr-shop-3");
        (code == 404).then_some(())
    });
    browser.goto(&format!("{portal}/previews")).await.unwrap();
    assert!(!browser.source().await.unwrap().contains("pr-shop-3"));

    // Another squad's service is not ana's to see.
    browser
        .goto(&format!("{portal}/squads/data/services/data/anything"))
        .await
        .unwrap();
    let refused = browser.source().await.unwrap();
    assert!(refused.contains("HTTP 403"), "{refused}");
    screenshot(&browser, "forbidden").await;

    // Home and the catalogue, and the squad page at a phone's width.
    browser.goto(&format!("{portal}/")).await.unwrap();
    screenshot(&browser, "home").await;
    browser.goto(&format!("{portal}/catalog")).await.unwrap();
    assert!(browser.source().await.unwrap().contains("shop-api"));
    screenshot(&browser, "catalog").await;
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{portal}/squads/web")).await.unwrap();
    screenshot(&browser, "squad-phone").await;
    browser.close().await.unwrap();
}

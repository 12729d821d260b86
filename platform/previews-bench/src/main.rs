//! The preview benchmarks (DESIGN's targets): how fast a webhook delivery is acknowledged
//! under 100 concurrent deliveries, beside a route of the same server that only reads the
//! body; and how long from a pull request's `opened` delivery until its preview's URL
//! answers 200 for a two-service app whose image is present, beside applying the same
//! manifests by hand with `kubectl apply`, waiting with `kubectl rollout status` and then
//! for the URL (the floor). Rounds of ours and the floor alternate.
//!
//! Run as root with `cargo run --release -p slipway-previews-bench [-- --quick]`; it needs
//! Debian's containerd and runc, and kubectl. Everything runs in this process (see
//! [`rig`]) but kubectl; GitHub is the local fake. Every wait is bounded, and everything
//! started is stopped at the end, on failure too.

mod rig;

use std::time::Duration;

use anyhow::{Context, bail};
use futures::future::join_all;
use slipway_bench_support::{Figure, Ratio, Row, Sample, print_figures, print_table};
use slipway_fake_github::{Pull, deliver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::rig::{IMAGE, REPO, Rig, SECRET};

/// How much work the run does.
#[derive(Clone, Copy)]
struct Sizes {
    previews: usize,
    senders: usize,
    per_sender: usize,
    cap: Duration,
}

const FULL: Sizes = Sizes {
    previews: 10,
    senders: 100,
    per_sender: 10,
    cap: Duration::from_secs(60),
};

const QUICK: Sizes = Sizes {
    previews: 3,
    senders: 100,
    per_sender: 2,
    cap: Duration::from_secs(60),
};

fn main() -> anyhow::Result<()> {
    // containerd's shim runs this binary as each container's logger, as the agent runs
    // `slipway`: nothing may open a file before that is checked.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(invocation) = slipway_logs::logger_invocation(&args, std::env::vars_os()) {
        return invocation
            .and_then(slipway_logs::run_logger)
            .context("logger");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let sizes = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (rows, figures) = runtime.block_on(bench(sizes))?;
    print_table(&rows, Ratio::Shown);
    println!();
    print_figures(&figures);
    Ok(())
}

async fn bench(sizes: Sizes) -> anyhow::Result<(Vec<Row>, Vec<Figure>)> {
    eprintln!("starting containerd, the API server, the agent and the preview service ...");
    let rig = Rig::start().await?;
    let measured = tokio::time::timeout(Duration::from_secs(15 * 60), measure(&rig, sizes))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the run took longer than 15 minutes")));
    let stopped = rig.stop().await;
    let measured = measured?;
    stopped?;
    Ok(measured)
}

/// The two-service app: `web` says which commit it runs, `api` answers beside it.
fn manifests(namespace: Option<&str>, label: &str) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    let mut text = String::new();
    if let Some(n) = namespace {
        text.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n---\n"
        ));
    }
    for (name, port) in [("web", 80), ("api", 8081)] {
        text.push_str(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{ns}spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: {name}\n        image: {IMAGE}\n        command: [\"sh\", \"-c\", \"mkdir -p /www && echo {name} {label} > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n{ns}spec:\n  selector: {{app: {name}}}\n  ports:\n  - port: {port}\n    targetPort: 8080\n---\n"
        ));
    }
    if let Some(n) = namespace {
        text.push_str(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: {n}\nspec:\n  rules:\n  - host: {n}.preview.localhost\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: web\n            port:\n              number: 80\n"
        ));
    }
    text
}

const CONFIG: &str =
    "preview:\n  manifests: [deploy/app.yaml]\n  expose: {service: web, port: 80}\n";

/// GET / through the gateway for `host`: the status and body, or nothing yet.
async fn fetch(rig: &Rig, host: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(rig.gateway).await.ok()?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let code = answer.split(' ').nth(1)?.parse().ok()?;
    Some((
        code,
        answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// Waits until `host` answers 200 with `expected` in its body.
async fn until_served(rig: &Rig, host: &str, expected: &str, cap: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + cap;
    loop {
        if let Some((200, body)) = fetch(rig, host).await
            && body.contains(expected)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{host} did not serve {expected:?} within {cap:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn kubectl(rig: &Rig, args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &rig.kubeconfig)
        .env("HOME", rig.scratch(""))
        .output()
        .await
        .context("running kubectl")?;
    if !out.status.success() {
        bail!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Ours: the `opened` delivery until the URL serves the app.
async fn preview(rig: &Rig, number: u64, port: u16, cap: Duration) -> anyhow::Result<Duration> {
    let sha = format!("sha{number}");
    rig.github
        .put_file(REPO, &sha, ".slipway.yaml", CONFIG.as_bytes());
    rig.github.put_file(
        REPO,
        &sha,
        "deploy/app.yaml",
        manifests(None, &sha).as_bytes(),
    );
    let body = rig.github.open_pull(
        REPO,
        Pull {
            number,
            head_sha: sha.clone(),
            head_ref: format!("feature-{number}"),
            author: "ana".to_owned(),
            fork: false,
            labels: Vec::new(),
            draft: false,
        },
    );
    let started = Instant::now();
    let (code, answer) = deliver(
        &rig.hook,
        SECRET,
        "pull_request",
        &format!("open-{number}"),
        &body,
    )
    .await;
    if code != 202 {
        bail!("the webhook answered {code}: {answer}");
    }
    let host = format!("pr-shop-{number}.preview.localhost:{port}");
    until_served(rig, &host, &format!("web {sha}"), cap).await?;
    Ok(started.elapsed())
}

/// The floor: the same manifests applied by hand, their rollout waited for, then the URL.
async fn by_hand(rig: &Rig, number: u64, port: u16, cap: Duration) -> anyhow::Result<Duration> {
    let namespace = format!("floor-{number}");
    let label = format!("floor{number}");
    let file = rig.scratch(&format!("{namespace}.yaml"));
    std::fs::write(&file, manifests(Some(&namespace), &label)).context("writing the manifests")?;
    let file = file.to_string_lossy().into_owned();
    let started = Instant::now();
    kubectl(rig, &["apply", "-f", &file]).await?;
    let timeout = format!("--timeout={}s", cap.as_secs());
    kubectl(
        rig,
        &[
            "-n",
            &namespace,
            "rollout",
            "status",
            "deployment/web",
            &timeout,
        ],
    )
    .await?;
    kubectl(
        rig,
        &[
            "-n",
            &namespace,
            "rollout",
            "status",
            "deployment/api",
            &timeout,
        ],
    )
    .await?;
    let host = format!("{namespace}.preview.localhost:{port}");
    until_served(rig, &host, &format!("web {label}"), cap).await?;
    Ok(started.elapsed())
}

async fn measure(rig: &Rig, sizes: Sizes) -> anyhow::Result<(Vec<Row>, Vec<Figure>)> {
    let port = rig.gateway.port();
    // A warm-up of each, not counted: the first pod pays for the image's first unpack.
    eprintln!("warming up ...");
    preview(rig, 1000, port, sizes.cap).await?;
    by_hand(rig, 1000, port, sizes.cap).await?;

    eprintln!(
        "{} pull requests and {} applies by hand ...",
        sizes.previews, sizes.previews
    );
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    let began = Instant::now();
    for number in 1..=sizes.previews as u64 {
        ours.push(preview(rig, number, port, sizes.cap).await?);
        floor.push(by_hand(rig, number, port, sizes.cap).await?);
    }
    let elapsed = began.elapsed();
    let ready = Row::new(
        "previews",
        "PR opened → URL 200 (2 services)",
        1,
        Sample::new(ours, elapsed),
        Sample::new(floor, elapsed),
    );

    // Acknowledgements under load: `labeled` deliveries for the pull requests just opened,
    // so the reconciler works (reading GitHub, finding nothing to redeploy) while they come.
    eprintln!(
        "{} deliveries from {} senders ...",
        sizes.senders * sizes.per_sender,
        sizes.senders
    );
    let labeled: Vec<serde_json::Value> = (1..=sizes.previews as u64)
        .map(|n| rig.github.label(REPO, n, "bench"))
        .collect();
    let send_all = |url: String, prefix: &'static str| {
        let labeled = &labeled;
        async move {
            let began = Instant::now();
            let senders = (0..sizes.senders).map(|sender| {
                let url = url.clone();
                async move {
                    let mut latencies = Vec::new();
                    for i in 0..sizes.per_sender {
                        let body = &labeled[(sender + i) % labeled.len()];
                        let id = format!("{prefix}-{sender}-{i}");
                        let started = Instant::now();
                        let (code, answer) = deliver(&url, SECRET, "pull_request", &id, body).await;
                        if code != 202 {
                            return Err(anyhow::anyhow!("{url} answered {code}: {answer}"));
                        }
                        latencies.push(started.elapsed());
                    }
                    Ok(latencies)
                }
            });
            let mut all = Vec::new();
            for latencies in join_all(senders).await {
                all.extend(latencies?);
            }
            Ok::<_, anyhow::Error>(Sample::new(all, began.elapsed()))
        }
    };
    let floor_ack = send_all(rig.floor_hook.clone(), "floor").await?;
    let ours_ack = send_all(rig.hook.clone(), "ack").await?;
    let p99 = ours_ack.percentile(0.99);
    let ack = Row::new(
        "previews",
        "webhook acknowledged",
        sizes.senders,
        ours_ack,
        floor_ack,
    );
    let figures = vec![Figure {
        row: "webhook acknowledged p99 (target < 50 ms)".to_owned(),
        figure: format!("{:.1} ms", p99.as_secs_f64() * 1000.0),
        floor: "GitHub's deadline 10 s".to_owned(),
    }];
    Ok((vec![ready, ack], figures))
}

//! `slipway-up-bench`: how soon `slipway up` answers on its API (fresh and resumed), how
//! soon its demo app is ready, and the memory of the idle control plane (the `slipway up`
//! process: API server, controllers, scheduler, platform, portal and node agent; its
//! containerd apart), beside the floors measured in the same run: starting and ending the
//! same binary (`slipway --version`), and `slipway server` idle (the API server, its
//! controllers and the platform with no node and no demo).
//!
//! It runs the `slipway` next to its own executable: build both with
//! `cargo build --release -p slipway -p slipway-up-bench`.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use slipway_bench_support::{Figure, print_figures};

/// How long each process idles before its memory is read.
const IDLE: Duration = Duration::from_secs(10);
/// A bound on every wait, so the bench always ends.
const PATIENCE: Duration = Duration::from_secs(120);

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 2 } else { 5 };
    let slipway = std::env::current_exe()?.with_file_name("slipway");
    if !slipway.exists() {
        bail!(
            "{} is not built: cargo build --release -p slipway -p slipway-up-bench",
            slipway.display()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("swp-bench-")
        .tempdir_in("/tmp")?;

    let mut start_floor = Vec::new();
    for _ in 0..rounds {
        let began = Instant::now();
        let status = Command::new(&slipway)
            .arg("--version")
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("slipway --version failed");
        }
        start_floor.push(began.elapsed());
    }

    let mut fresh = Vec::new();
    let mut resumed = Vec::new();
    let mut demo = Vec::new();
    let mut demo_fresh = None;
    let mut rss = Vec::new();
    let mut containerd_rss = Vec::new();
    for round in 0..rounds {
        let data_dir = dir.path().join("up");
        let run = Run::start(&slipway, "up", &data_dir)?;
        let ready = run.until_api_answers()?;
        if round == 0 {
            fresh.push(ready);
        } else {
            resumed.push(ready);
        }
        let answered = run
            .until_demo_answers()
            .with_context(|| format!("round {}", round + 1))?;
        if round == 0 {
            demo_fresh = Some(answered);
        } else {
            demo.push(answered);
        }
        std::thread::sleep(IDLE);
        rss.push(rss_kib(run.child.id())?);
        containerd_rss.push(children_rss_kib(run.child.id(), "containerd"));
        run.stop()?;
    }

    let server = Run::start(&slipway, "server", &dir.path().join("server"))?;
    let server_ready = server.until_api_answers()?;
    std::thread::sleep(IDLE);
    let server_rss = rss_kib(server.child.id())?;
    server.stop()?;

    println!(
        "slipway up on SQLite with its own containerd, plain HTTP on loopback, {rounds} runs \
         (the first on a fresh data directory, the rest resumed); memory after {} s idle",
        IDLE.as_secs()
    );
    println!();
    let floor_start = format!("{} (slipway --version)", ms(median(&start_floor)));
    print_figures(&[
        Figure {
            row: "API answers, fresh data dir".to_owned(),
            figure: ms(median(&fresh)),
            floor: floor_start.clone(),
        },
        Figure {
            row: "API answers, resumed".to_owned(),
            figure: if resumed.is_empty() {
                "—".to_owned()
            } else {
                ms(median(&resumed))
            },
            floor: floor_start,
        },
        Figure {
            row: "demo app answers through the gateway, fresh".to_owned(),
            figure: demo_fresh.map_or_else(|| "—".to_owned(), ms),
            floor: "—".to_owned(),
        },
        Figure {
            row: "demo app answers through the gateway, resumed".to_owned(),
            figure: if demo.is_empty() {
                "—".to_owned()
            } else {
                ms(median(&demo))
            },
            floor: "—".to_owned(),
        },
        Figure {
            row: "idle RSS of slipway up (control plane and node agent)".to_owned(),
            figure: mib(median(&rss)),
            floor: format!("{} (slipway server, no node)", mib(server_rss)),
        },
        Figure {
            row: "idle RSS of its containerd".to_owned(),
            figure: mib(median(&containerd_rss)),
            floor: "—".to_owned(),
        },
        Figure {
            row: "slipway server: API answers".to_owned(),
            figure: ms(server_ready),
            floor: "—".to_owned(),
        },
    ]);
    Ok(())
}

/// A `slipway up` or `slipway server` on a port chosen here, its output read on a thread.
struct Run {
    child: Child,
    /// The line `until_line` stopped at.
    last_line: std::cell::RefCell<String>,
    log: PathBuf,
    began: Instant,
    address: String,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Run {
    fn start(slipway: &Path, command: &str, data_dir: &Path) -> anyhow::Result<Run> {
        let address = free_address()?;
        let mut args = vec![command, "--listen", &address, "--plain-http"];
        let gateway = free_address()?;
        if command == "up" {
            args.extend(["--gateway", &gateway]);
        }
        // Beside the data directory, for when a run goes wrong.
        let log = std::fs::File::create(data_dir.with_extension("log"))?;
        let began = Instant::now();
        let mut child = Command::new(slipway)
            .args(&args)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("SLIPWAY_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting slipway")?;
        let stdout = child.stdout.take().context("slipway's stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Ok(Run {
            child,
            last_line: std::cell::RefCell::default(),
            log: data_dir.with_extension("log"),
            began,
            address,
            lines,
        })
    }

    /// From the start until `GET /version` is answered.
    fn until_api_answers(&self) -> anyhow::Result<Duration> {
        while self.began.elapsed() < PATIENCE {
            if version_answers(&self.address) {
                return Ok(self.began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        bail!("the API at {} never answered", self.address)
    }

    /// From the start until the demo's front end answers through the gateway with the
    /// API's answer in its page.
    fn until_demo_answers(&self) -> anyhow::Result<Duration> {
        let line = self
            .until_line("  demo ")
            .map(|_| self.last_line.borrow().clone())?;
        let authority = line
            .split_whitespace()
            .nth(1)
            .and_then(|url| url.strip_prefix("http://"))
            .map(|a| a.trim_end_matches('/').to_owned())
            .with_context(|| format!("no demo URL in {line:?}"))?;
        let port = authority.rsplit(':').next().unwrap_or_default();
        let gateway = format!("127.0.0.1:{port}");
        while self.began.elapsed() < PATIENCE {
            if let Some(page) = get(&gateway, &authority)
                && page.contains("id=\"api\"")
            {
                return Ok(self.began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        bail!("the demo at {authority} never answered")
    }

    /// From the start until a line beginning with `prefix` is printed.
    fn until_line(&self, prefix: &str) -> anyhow::Result<Duration> {
        let deadline = self.began + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = self
                .lines
                .recv_timeout(left)
                .with_context(|| format!("slipway never printed {prefix:?}"))?;
            if line.starts_with(prefix) {
                self.last_line.replace(line);
                return Ok(at - self.began);
            }
            if line.starts_with("demo: not set up") {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!("{line}; its log ends:\n{}", tail.join("\n"));
            }
        }
    }

    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        bail!(
            "slipway did not stop within {} s of SIGTERM",
            PATIENCE.as_secs()
        )
    }
}

impl Drop for Run {
    /// A run abandoned on an error is stopped as `stop` does, so its agent stops its
    /// containerd; killed at once, it would leave containerd running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + PATIENCE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_address() -> anyhow::Result<String> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string())
}

/// The body of a 200 answer to `GET /` for `host` from `address`.
fn get(address: &str, host: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.1 200").then_some(answer)
}

fn version_answers(address: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let request = format!("GET /version HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// The summed resident memory of the processes named `name` started by `parent`, and of
/// any they started, 0 when there is none. (containerd's shims leave their parent, so they
/// are not counted.)
fn children_rss_kib(parent: u32, name: &str) -> u64 {
    let mut total = 0;
    let mut frontier: Vec<u32> = children(parent)
        .into_iter()
        .filter(|pid| comm(*pid).as_deref() == Some(name))
        .collect();
    while let Some(pid) = frontier.pop() {
        total += rss_kib(pid).unwrap_or(0);
        frontier.extend(children(pid));
    }
    total
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_owned())
}

/// The processes whose parent is `pid`, from every process's stat.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|candidate| parent_of(*candidate) == Some(pid))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat"))).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn median<T: Copy + Ord>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

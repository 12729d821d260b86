//! The official Python `kubernetes` client, unmodified, against the API server over plain
//! HTTP: `tests/clients/python/client_check.py` lists, creates, reads, patches and watches
//! Deployments, run by the venv interpreter that `scripts/install-deps` provides.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use slipway_client_tests::Server;
use tokio::process::Command;

/// The script bounds each request and its watch (at most ~25 s); this only catches an
/// interpreter that hangs before its first request, within nextest's 3-minute kill.
const DEADLINE: Duration = Duration::from_secs(120);

/// `SLIPWAY_PYTHON`, or the venv `scripts/install-deps` makes; the two must agree on the path.
fn interpreter() -> PathBuf {
    if let Some(python) = std::env::var_os("SLIPWAY_PYTHON") {
        return PathBuf::from(python);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("neither XDG_CACHE_HOME nor HOME is set: cannot find the Python venv");
    cache.join("slipway/python-venv/bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_lists_watches_and_creates_deployments() {
    let python = interpreter();
    // A skipped test would read as a pass; a missing client is a setup error to fix.
    assert!(
        python.is_file(),
        "no Python interpreter at {}: run `scripts/install-deps` to create the venv with the \
         pinned `kubernetes` client (or set SLIPWAY_PYTHON)",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/client_check.py");

    let server = Server::start().await;
    let child = Command::new(&python)
        .arg(&script)
        .env("SLIPWAY_URL", server.url())
        .env_remove("SLIPWAY_TOKEN")
        .env_remove("SLIPWAY_CA")
        // A script killed at the deadline still shows how far it got.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {}: {e}; run `scripts/install-deps`",
                python.display()
            )
        });
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish in {DEADLINE:?}", script.display()))
        .expect("waiting for the Python client");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        python.display(),
        script.display(),
        output.status
    );
    assert!(
        stdout.contains("all checks passed"),
        "the script exited 0 without finishing:\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
}

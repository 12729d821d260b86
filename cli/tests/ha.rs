//! Two `slipway server`s on one etcd, as a highly available control plane runs: exactly
//! one holds the controllers' Lease and runs them, and when it stops the other takes over
//! and the controllers keep working.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_testkit::EtcdServer;

/// How long a takeover may take before the test fails rather than hangs (the Lease lasts
/// 15 s; a stopping leader hands it back at once); never a measure.
const PATIENCE: Duration = Duration::from_secs(60);

struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(etcd: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--store",
                etcd,
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let first = BufReader::new(child.stdout.take().unwrap()).lines().next();
        let server = Server { child, dir };
        assert!(
            first.is_some_and(|l| l.is_ok_and(|l| l.contains("API on"))),
            "the server did not start"
        );
        server
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("admin.kubeconfig"))
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn holder(&self) -> String {
        self.kubectl(&[
            "get",
            "lease",
            "slipway-controllers",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    }

    fn identity_suffix(&self) -> String {
        format!("_{}", self.child.id())
    }
}

fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "never {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn one_server_runs_the_controllers_and_the_other_takes_over() {
    let etcd = EtcdServer::start().expect("etcd (apt-get install etcd-server)");
    let url = format!("etcd://{}", etcd.endpoint().trim_start_matches("http://"));
    let a = Server::start(&url);
    let b = Server::start(&url);
    until("a leader", || !a.holder().is_empty());
    let holder = a.holder();
    let (leader, other) = if holder.ends_with(&a.identity_suffix()) {
        (a, b)
    } else {
        assert!(holder.ends_with(&b.identity_suffix()), "holder {holder}");
        (b, a)
    };
    assert_eq!(other.holder(), holder, "both servers see one holder");

    // SIGTERM the leader; it hands the Lease back and the other takes it.
    let status = Command::new("kill")
        .args(["-TERM", &leader.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let suffix = other.identity_suffix();
    until("the other server leading", || {
        other.holder().ends_with(&suffix)
    });
    drop(leader);

    // The new leader's controllers work: a deleted namespace is emptied and removed.
    other.kubectl(&["create", "namespace", "after"]);
    other.kubectl(&["create", "configmap", "c", "-n", "after"]);
    other.kubectl(&["delete", "namespace", "after", "--wait=false"]);
    until("the namespace removed by the new leader", || {
        other
            .kubectl(&["get", "namespaces", "-o", "name"])
            .lines()
            .all(|l| l != "namespace/after")
    });
}

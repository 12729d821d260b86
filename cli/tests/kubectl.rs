//! The real kubectl against a real `slipway server`: what users type, end to end.
//!
//! kubectl on these machines is a dispatcher that picks its version from `/version`; the
//! server reports 1.32, so these runs use kubectl 1.32.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Server {
    child: Child,
    dir: tempfile::TempDir,
    /// Kept open so the server's later output has somewhere to go.
    _stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next();
        // From here on, dropping the server (a failed assertion too) stops the process.
        let server = Server {
            child,
            dir,
            _stdout: lines,
        };
        let first = first.expect("server printed nothing").unwrap();
        assert!(
            first.starts_with("slipway server: API on https://127.0.0.1:"),
            "{first}"
        );
        server
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("cache").display()
            ))
            .output()
            .unwrap()
    }

    /// Runs kubectl and returns stdout, failing the test with kubectl's stderr if it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  labels:
    app: web
data:
  greeting: hello
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: web:1
";

#[test]
fn kubectl_reports_server_version_and_lists_namespaces() {
    let server = Server::start();
    let version = server.ok(&["version", "-o", "json"]);
    assert!(version.contains("\"minor\": \"32\""), "{version}");
    let namespaces = server.ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
}

#[test]
fn https_with_the_servers_ca_and_a_token_or_nothing() {
    let server = Server::start();
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:"),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains("certificate-authority-data:"),
        "{kubeconfig}"
    );
    // kubectl verifies the certificate against the CA in the kubeconfig (no skip flag).
    server.ok(&["get", "namespaces"]);

    let out = server.kubectl(&["get", "namespaces", "--token=not-the-token"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unauthorized"), "{stderr}");
    assert!(
        !stderr.contains("not-the-token"),
        "tokens never appear in errors"
    );

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.kubeconfig())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the admin kubeconfig holds a token: owner only"
    );
}

#[test]
fn kubectl_creates_applies_patches_and_deletes() {
    let server = Server::start();
    let cm = server.write("cm.yaml", CONFIGMAP);
    let created = server.ok(&["create", "-f", path_str(&cm)]);
    assert!(created.contains("configmap/web created"), "{created}");
    let greeting = server.ok(&["get", "configmap", "web", "-o", "jsonpath={.data.greeting}"]);
    assert_eq!(greeting, "hello");

    let out = server.kubectl(&["create", "-f", path_str(&cm)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AlreadyExists"), "{stderr}");

    server.ok(&["label", "configmap", "web", "tier=front"]);
    server.ok(&["annotate", "configmap", "web", "owner=squad-a"]);
    server.ok(&[
        "patch",
        "configmap",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"extra":"1"}}"#,
    ]);
    server.ok(&[
        "patch",
        "configmap",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/greeting","value":"hi"}]"#,
    ]);
    let selected = server.ok(&["get", "configmaps", "-l", "tier=front", "-o", "name"]);
    assert_eq!(selected.trim(), "configmap/web");
    let data = server.ok(&[
        "get",
        "configmap",
        "web",
        "-o",
        "jsonpath={.data.greeting},{.data.extra},{.metadata.annotations.owner}",
    ]);
    assert_eq!(data, "hi,1,squad-a");

    // Server-side tables carry Kubernetes' columns.
    let table = server.ok(&["get", "configmaps"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"], "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web") && l.split_whitespace().nth(1) == Some("2")),
        "{table}"
    );

    let deleted = server.ok(&["delete", "configmap", "web"]);
    assert!(deleted.contains("configmap \"web\" deleted"), "{deleted}");
    let out = server.kubectl(&["get", "configmap", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[test]
fn kubectl_create_generators_send_protobuf() {
    let server = Server::start();
    server.ok(&["create", "namespace", "demo"]);
    server.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "demo",
        "--from-literal=greeting=hello",
    ]);
    server.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "demo",
        "--from-literal=token=s3cret",
    ]);
    server.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "demo",
        "--image=web:1",
        "--replicas=2",
    ]);
    server.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "demo",
        "--tcp=80:8080",
    ]);
    let got = server.ok(&[
        "get", "-n", "demo", "configmap/cfg", "deployment/web", "service/web", "secret/creds", "-o",
        "jsonpath={.items[0].data.greeting} {.items[1].spec.replicas} {.items[2].spec.ports[0].targetPort} {.items[3].data.token}",
    ]);
    assert_eq!(got, "hello 2 8080 czNjcmV0", "{got}");
    let ip = server.ok(&[
        "get",
        "-n",
        "demo",
        "service",
        "web",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert!(ip.starts_with("127.100."), "{ip}");
}

#[test]
fn kubectl_diff_describe_watch_and_wait() {
    let server = Server::start();
    let deploy = server.write("deploy.yaml", DEPLOYMENT);
    server.ok(&["apply", "-f", path_str(&deploy)]);
    let same = server.kubectl(&["diff", "-f", path_str(&deploy)]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "no difference: {}",
        String::from_utf8_lossy(&same.stdout)
    );
    let changed = server.write("deploy2.yaml", &DEPLOYMENT.replace("web:1", "web:2"));
    let diff = server.kubectl(&["diff", "-f", path_str(&changed)]);
    assert_eq!(diff.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+      - image: web:2"));
    let describe = server.ok(&["describe", "deployment", "web"]);
    assert!(
        describe.contains("Selector:") && describe.contains("app=web"),
        "{describe}"
    );

    // A watch sees a change made while it runs (--watch-only prints nothing before one).
    let mut watch = Command::new("kubectl")
        .args(["get", "deployments", "--watch-only", "-o", "name"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = None;
    for round in 0..30 {
        // Labelled until the watch reports it: the watch may start after the first label.
        server.ok(&[
            "label",
            "deployment",
            "web",
            "--overwrite",
            &format!("round={round}"),
        ]);
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(2)) {
            seen = Some(line);
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(seen.as_deref(), Some("deployment.apps/web"));

    let deleted = server.ok(&[
        "delete",
        "deployment",
        "web",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert!(deleted.contains("deleted"), "{deleted}");
}

#[test]
fn kubectl_server_side_apply() {
    let server = Server::start();
    let cm = server.write("cm.yaml", CONFIGMAP);
    let applied = server.ok(&["apply", "--server-side", "-f", path_str(&cm)]);
    assert!(
        applied.contains("configmap/web serverside-applied"),
        "{applied}"
    );
    let changed = server.write(
        "cm2.yaml",
        &CONFIGMAP.replace("greeting: hello", "greeting: hi"),
    );
    server.ok(&["apply", "--server-side", "-f", path_str(&changed)]);
    let greeting = server.ok(&["get", "configmap", "web", "-o", "jsonpath={.data.greeting}"]);
    assert_eq!(greeting, "hi");
}

#[test]
fn kubectl_server_side_apply_conflicts_forces_and_prunes() {
    let server = Server::start();
    let with_sidecar = DEPLOYMENT.replace(
        "        image: web:1\n",
        "        image: web:1\n      - name: sidecar\n        image: log:1\n",
    );
    let deploy = server.write("deploy.yaml", &with_sidecar);
    server.ok(&["apply", "--server-side", "-f", path_str(&deploy)]);
    server.ok(&["scale", "deployment", "web", "--replicas=3"]);

    // `kubectl scale` names no field manager, so its user agent does ("kubectl"), through
    // the scale subresource; it owns replicas now, and applying 1 again is a conflict.
    let out = server.kubectl(&["apply", "--server-side", "-f", path_str(&deploy)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\""
        ) && stderr.contains(".spec.replicas"),
        "{stderr}"
    );
    let replicas = server.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "3", "a refused apply writes nothing");

    server.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path_str(&deploy),
    ]);
    let replicas = server.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "1");
    let managers = server.ok(&[
        "get",
        "deployment",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation} {end}",
    ]);
    assert!(managers.contains("kubectl/Apply"), "{managers}");

    // Leaving the sidecar out of the manifest removes it: nobody else owns it.
    let without = server.write("deploy2.yaml", DEPLOYMENT);
    server.ok(&["apply", "--server-side", "-f", path_str(&without)]);
    let containers = server.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(containers, "web");
}

#[test]
fn kubectl_apply_scale_and_server_dry_run() {
    let server = Server::start();
    let deploy = server.write("deploy.yaml", DEPLOYMENT);
    let applied = server.ok(&["apply", "-f", path_str(&deploy)]);
    assert!(applied.contains("deployment.apps/web created"), "{applied}");
    // A changed manifest applies as a strategic merge patch; the last-applied annotation
    // carries what was applied.
    let changed = server.write("deploy2.yaml", &DEPLOYMENT.replace("web:1", "web:2"));
    let applied = server.ok(&["apply", "-f", path_str(&changed)]);
    assert!(
        applied.contains("deployment.apps/web configured"),
        "{applied}"
    );
    let image = server.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "web:2");
    let annotations = server.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(
        annotations.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{annotations}"
    );

    let table = server.ok(&["get", "deployments", "-o", "wide"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{table}"
    );
    assert!(
        table.contains("web:2") && table.contains("app=web"),
        "{table}"
    );

    // Unknown fields are refused, as strict validation does.
    let typo = server.write("typo.yaml", &CONFIGMAP.replace("data:", "dat:"));
    let out = server.kubectl(&["apply", "-f", path_str(&typo)]);
    assert!(
        !out.status.success(),
        "a manifest with an unknown field was accepted"
    );

    server.ok(&["scale", "deploy", "web", "--replicas=3"]);
    let replicas = server.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas},{.metadata.generation}",
    ]);
    assert_eq!(replicas, "3,3");

    let cm = server.write("cm.yaml", CONFIGMAP);
    server.ok(&[
        "create",
        "--validate=false",
        "--dry-run=server",
        "-f",
        path_str(&cm),
    ]);
    let out = server.kubectl(&["get", "configmap", "web"]);
    assert!(
        !out.status.success(),
        "a server dry run persisted the object"
    );
}

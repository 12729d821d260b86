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
fn kubectl_delete_cascades_through_the_garbage_collector_and_namespaces() {
    let server = Server::start();
    let owned = |owner: &str, dependent: &str| {
        server.ok(&["create", "configmap", owner]);
        let uid = server.ok(&["get", "configmap", owner, "-o", "jsonpath={.metadata.uid}"]);
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {dependent}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: true\n"
        );
        let file = server.write(&format!("{dependent}.yaml"), &manifest);
        server.ok(&["create", "-f", path_str(&file)]);
    };
    let names = || server.ok(&["get", "configmaps", "-o", "name"]);

    // Foreground: kubectl waits for the owner, which waits for its dependent.
    owned("front", "front-dep");
    server.ok(&["delete", "configmap", "front", "--cascade=foreground"]);
    let left = names();
    assert!(!left.contains("front"), "{left}");

    // Orphan: the dependent stays and loses its owner reference.
    owned("parent", "orphan");
    server.ok(&["delete", "configmap", "parent", "--cascade=orphan"]);
    let owners = server.ok(&[
        "get",
        "configmap",
        "orphan",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(owners, "", "the orphan keeps no reference");

    // Background (kubectl's default): the dependent follows its owner shortly after.
    owned("back", "back-dep");
    server.ok(&["delete", "configmap", "back"]);
    server.ok(&[
        "wait",
        "--for=delete",
        "configmap/back-dep",
        "--timeout=30s",
    ]);

    // A namespace goes with everything in it; kubectl waits for that.
    server.ok(&["create", "namespace", "team"]);
    server.ok(&["create", "configmap", "inside", "-n", "team"]);
    server.ok(&["create", "deployment", "web", "--image=web:1", "-n", "team"]);
    server.ok(&["delete", "namespace", "team", "--timeout=30s"]);
    let out = server.kubectl(&["get", "namespace", "team"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("namespaces \"team\" not found"), "{stderr}");
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

/// The cells of a line of kubectl's table output. Columns are at least three spaces apart,
/// while a cell may hold single spaces (`LAST SEEN`, a message).
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect()
}

#[test]
fn kubectl_get_sort_by_orders_the_servers_rows() {
    let server = Server::start();
    // Created out of name order, each in a later second than the one before, so each sort
    // gives its own order.
    for (i, name) in ["zeta", "alpha", "mid"].into_iter().enumerate() {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        server.ok(&["create", "configmap", name, "--from-literal=k=v"]);
    }
    // The default output is the server's Table, sorted by kubectl on the objects it holds.
    let first_cells = |table: String| -> Vec<String> {
        table
            .lines()
            .skip(1)
            .map(|line| cells(line)[0].to_owned())
            .collect()
    };
    let by_name = server.ok(&["get", "configmaps", "--sort-by=.metadata.name"]);
    assert_eq!(first_cells(by_name), ["alpha", "mid", "zeta"]);
    let by_age = server.ok(&["get", "configmaps", "--sort-by=.metadata.creationTimestamp"]);
    assert_eq!(first_cells(by_age), ["zeta", "alpha", "mid"]);
    let names = server.ok(&[
        "get",
        "configmaps",
        "--sort-by=.metadata.creationTimestamp",
        "-o",
        "name",
    ]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["configmap/zeta", "configmap/alpha", "configmap/mid"]
    );
}

#[test]
fn kubectl_replace_swaps_the_object_and_refuses_a_stale_version() {
    let server = Server::start();
    server.ok(&[
        "create",
        "-f",
        path_str(&server.write("cm.yaml", CONFIGMAP)),
    ]);
    // The object as read, resourceVersion included, with other data: a replace is a
    // whole new object, so `greeting` goes.
    let read = server.ok(&["get", "configmap", "web", "-o", "yaml"]);
    assert!(read.contains("resourceVersion:"), "{read}");
    let edited = server.write(
        "edited.yaml",
        &read.replace("greeting: hello", "farewell: bye"),
    );
    let replaced = server.ok(&["replace", "-f", path_str(&edited)]);
    assert!(replaced.contains("configmap/web replaced"), "{replaced}");
    let data = server.ok(&["get", "configmap", "web", "-o", "jsonpath={.data}"]);
    assert_eq!(data, r#"{"farewell":"bye"}"#);

    // The same file again carries the version the first replace moved past.
    let stale = server.write(
        "stale.yaml",
        &read.replace("greeting: hello", "greeting: stale"),
    );
    let out = server.kubectl(&["replace", "-f", path_str(&stale)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Error from server (Conflict)")
            && stderr.contains("the object has been modified"),
        "{stderr}"
    );
    let data = server.ok(&["get", "configmap", "web", "-o", "jsonpath={.data}"]);
    assert_eq!(data, r#"{"farewell":"bye"}"#, "a refused replace wrote");

    // Without a resourceVersion the replace is unconditional.
    let fresh = server.write("fresh.yaml", CONFIGMAP);
    server.ok(&["replace", "-f", path_str(&fresh)]);
    let greeting = server.ok(&["get", "configmap", "web", "-o", "jsonpath={.data.greeting}"]);
    assert_eq!(greeting, "hello");

    let ghost = server.write("ghost.yaml", &CONFIGMAP.replace("name: web", "name: ghost"));
    let out = server.kubectl(&["replace", "-f", path_str(&ghost)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NotFound"), "{stderr}");
}

/// Two events about two pods, as a scheduler and a kubelet report them; `web.1` was last
/// seen before `db.1`, the opposite of their names' order.
const EVENTS: &str = "apiVersion: v1
kind: Event
metadata:
  name: web.1
involvedObject:
  apiVersion: v1
  kind: Pod
  name: web
  namespace: default
reason: Scheduled
message: Successfully assigned default/web to node-a
type: Normal
source:
  component: default-scheduler
firstTimestamp: \"2020-01-01T00:00:00Z\"
lastTimestamp: \"2020-01-01T00:00:00Z\"
count: 1
---
apiVersion: v1
kind: Event
metadata:
  name: db.1
involvedObject:
  apiVersion: v1
  kind: Pod
  name: db
  namespace: default
reason: BackOff
message: Back-off restarting failed container
type: Warning
source:
  component: kubelet
firstTimestamp: \"2020-01-01T00:01:00Z\"
lastTimestamp: \"2020-01-01T00:05:00Z\"
count: 3
";

#[test]
fn kubectl_get_events_prints_a_clusters_columns() {
    let server = Server::start();
    let created = server.ok(&["create", "-f", path_str(&server.write("ev.yaml", EVENTS))]);
    assert!(
        created.contains("event/web.1 created") && created.contains("event/db.1 created"),
        "{created}"
    );

    let table = server.ok(&["get", "events"]);
    let mut lines = table.lines();
    assert_eq!(
        cells(lines.next().unwrap()),
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    // LAST SEEN is an age that grows with the clock; the other cells are fixed.
    let mut rows: Vec<Vec<&str>> = lines.map(|line| cells(line)[1..].to_vec()).collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            [
                "Normal",
                "Scheduled",
                "pod/web",
                "Successfully assigned default/web to node-a"
            ],
            [
                "Warning",
                "BackOff",
                "pod/db",
                "Back-off restarting failed container"
            ],
        ],
        "{table}"
    );

    let wide = server.ok(&["get", "events", "-o", "wide"]);
    assert_eq!(
        cells(wide.lines().next().unwrap()),
        [
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
            "NAME"
        ],
        "{wide}"
    );
    // SOURCE, COUNT and NAME of the kubelet's event.
    assert!(
        wide.lines().any(|l| {
            let row = cells(l);
            row.contains(&"kubelet") && row.ends_with(&["3", "db.1"])
        }),
        "{wide}"
    );

    let selected = server.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=db",
    ]);
    let rows: Vec<&str> = selected.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{selected}");
    assert!(rows[0].contains("pod/db"), "{selected}");
    let warnings = server.ok(&[
        "get",
        "events",
        "--field-selector",
        "type=Warning,involvedObject.kind=Pod",
        "-o",
        "name",
    ]);
    assert_eq!(warnings.trim(), "event/db.1");
    let none = server.kubectl(&["get", "events", "--field-selector", "involvedObject.name=x"]);
    assert!(none.status.success());
    assert!(none.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("No resources found in default namespace."),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );

    let by_last_seen = server.ok(&["get", "events", "--sort-by=.lastTimestamp", "-o", "name"]);
    assert_eq!(
        by_last_seen.lines().collect::<Vec<_>>(),
        ["event/web.1", "event/db.1"]
    );
}

/// A pod; `node` binds it to a node as the scheduler would.
fn pod(name: &str, node: Option<&str>) -> String {
    let node = node.map_or(String::new(), |n| format!("  nodeName: {n}\n"));
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{node}  containers:
  - name: app
    image: app:1
"
    )
}

#[test]
fn kubectl_delete_grace_period_waits_only_for_pods_on_a_node() {
    let server = Server::start();
    for (name, node) in [
        ("loose", None),
        ("bound", Some("node-a")),
        ("gone", Some("node-a")),
    ] {
        let manifest = server.write(&format!("{name}.yaml"), &pod(name, node));
        server.ok(&["create", "-f", path_str(&manifest)]);
    }
    let missing = |name: &str| {
        let out = server.kubectl(&["get", "pod", name]);
        out.status.code() == Some(1) && String::from_utf8_lossy(&out.stderr).contains("NotFound")
    };

    // No node runs an unscheduled pod, so there is nothing to wait for.
    let deleted = server.ok(&["delete", "pod", "loose", "--grace-period=30"]);
    assert!(deleted.contains("pod \"loose\" deleted"), "{deleted}");
    assert!(missing("loose"), "an unscheduled pod outlived its delete");

    // A pod on a node is marked and stays until its node confirms it stopped.
    server.ok(&[
        "delete",
        "pod",
        "bound",
        "--grace-period=30",
        "--wait=false",
    ]);
    let marked = server.ok(&[
        "get",
        "pod",
        "bound",
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds},{.metadata.deletionTimestamp}",
    ]);
    let (grace, timestamp) = marked.split_once(',').unwrap();
    assert_eq!(grace, "30", "{marked}");
    assert!(!timestamp.is_empty(), "{marked}");
    let table = server.ok(&["get", "pod", "bound"]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| cells(row)[2] == "Terminating"),
        "{table}"
    );

    // Forced, it goes at once, marked or not.
    for name in ["bound", "gone"] {
        let out = server.kubectl(&["delete", "pod", name, "--grace-period=0", "--force"]);
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("pod \"{name}\" force deleted")),
            "{stdout}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Immediate deletion does not wait"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(missing(name), "{name} outlived a forced delete");
    }
}

/// A pod on `node` that mounts Secret `secret`.
fn pod_with_secret(name: &str, node: &str, secret: &str) -> String {
    format!(
        "{}  volumes:\n  - name: s\n    secret:\n      secretName: {secret}\n",
        pod(name, Some(node))
    )
}

#[test]
fn a_node_agent_reads_only_what_its_pods_use_and_kubectl_auth_says_so() {
    let server = Server::start();
    server.ok(&["create", "namespace", "a"]);
    for name in ["mine", "theirs"] {
        server.ok(&[
            "-n",
            "a",
            "create",
            "secret",
            "generic",
            name,
            "--from-literal=k=v",
        ]);
    }
    let manifest = server.write(
        "pods.yaml",
        &format!(
            "{}---\n{}",
            pod_with_secret("p1", "n1", "mine"),
            pod_with_secret("p2", "n2", "theirs")
        ),
    );
    server.ok(&["-n", "a", "apply", "-f", path_str(&manifest)]);
    let join = std::fs::read_to_string(server.dir.path().join("pki/join-token")).unwrap();
    let n1 = slipway_access::node::node_token(join.trim(), "n1");

    let as_n1 = |args: &[&str]| {
        let mut all = vec!["--token", n1.as_str()];
        all.extend_from_slice(args);
        server.kubectl(&all)
    };
    let whoami = as_n1(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(String::from_utf8_lossy(&whoami.stdout), "system:node:n1");
    // The node authorizer learns bindings from a watch; wait, bounded, for p1's.
    let mut mine = as_n1(&["-n", "a", "get", "secret", "mine", "-o", "name"]);
    for _ in 0..100 {
        if mine.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        mine = as_n1(&["-n", "a", "get", "secret", "mine", "-o", "name"]);
    }
    assert_eq!(String::from_utf8_lossy(&mine.stdout).trim(), "secret/mine");
    let theirs = as_n1(&["-n", "a", "get", "secret", "theirs"]);
    assert!(!theirs.status.success());
    assert_eq!(
        String::from_utf8_lossy(&theirs.stderr).trim(),
        r#"Error from server (Forbidden): secrets "theirs" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "a": no relationship found between node 'n1' and this object"#
    );
    let listing = as_n1(&["-n", "a", "get", "secrets"]);
    assert!(!listing.status.success());
    // `auth can-i` asks the server: no for Secrets at large, yes for reading pods.
    let can_secrets = as_n1(&["auth", "can-i", "list", "secrets", "-n", "a"]);
    assert_eq!(
        String::from_utf8_lossy(&can_secrets.stdout).trim(),
        "no - node 'n1' can only get individual secrets"
    );
    let can_pods = as_n1(&["auth", "can-i", "list", "pods", "--all-namespaces"]);
    assert_eq!(String::from_utf8_lossy(&can_pods.stdout).trim(), "yes");
    let rules = as_n1(&["auth", "can-i", "--list", "-n", "a"]);
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(rules.contains("pods/status"), "{rules}");
    assert!(!rules.lines().any(|l| l.starts_with("secrets ")), "{rules}");
    // The join token itself is no credential for the API.
    let raw = server.kubectl(&["--token", join.trim(), "get", "namespaces"]);
    assert!(!raw.status.success());
    assert!(
        String::from_utf8_lossy(&raw.stderr).contains("Unauthorized")
            || String::from_utf8_lossy(&raw.stderr).contains("must be logged in"),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
}

impl Server {
    /// Runs `slipway` with the admin kubeconfig; stdout, failing the test if it fails.
    fn slipway(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slipway {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl with `token` instead of the admin's.
    fn kubectl_as(&self, token: &str, args: &[&str]) -> Output {
        let mut all = vec!["--token", token];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

#[test]
fn a_squad_member_works_in_its_squad_and_nowhere_else() {
    let server = Server::start();
    server.slipway(&["squad", "create", "payments", "--quota", "pods=2"]);
    server.slipway(&["squad", "create", "search"]);
    server.slipway(&["user", "create", "ana"]);
    server.slipway(&["squad", "add-member", "payments", "ana"]);
    let created: serde_json::Value =
        serde_json::from_str(&server.slipway(&["token", "create", "--user", "ana", "-o", "json"]))
            .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    let whoami = server.kubectl_as(&token, &["auth", "whoami", "-o", "json"]);
    let whoami: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap();
    assert_eq!(whoami["status"]["userInfo"]["username"], "ana");
    assert_eq!(
        whoami["status"]["userInfo"]["groups"],
        serde_json::json!(["squad:payments", "system:authenticated"])
    );
    // The squad's RoleBinding reaches the authorizer through a watch; wait, bounded.
    let mut can = String::new();
    for _ in 0..100 {
        let out = server.kubectl_as(
            &token,
            &["auth", "can-i", "create", "deployments", "-n", "payments"],
        );
        can = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if can == "yes" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(can, "yes");

    // Plain manifests are admitted in the squad's namespace (its LimitRange fills in
    // requests and limits), and refused next door with Kubernetes' message.
    let deployment = server.write("deployment.yaml", DEPLOYMENT);
    let out = server.kubectl_as(
        &token,
        &["-n", "payments", "apply", "-f", path_str(&deployment)],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = server.kubectl_as(
        &token,
        &["-n", "search", "apply", "-f", path_str(&deployment)],
    );
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains(
            r#"deployments.apps "web" is forbidden: User "ana" cannot get resource "deployments" in API group "apps" in the namespace "search""#
        ) || stderr_of(&out).contains(
            r#"deployments.apps is forbidden: User "ana" cannot create resource "deployments" in API group "apps" in the namespace "search""#
        ),
        "{}",
        stderr_of(&out)
    );
    let out = server.kubectl_as(&token, &["-n", "search", "run", "p", "--image=app:1"]);
    assert_eq!(
        stderr_of(&out),
        r#"Error from server (Forbidden): pods is forbidden: User "ana" cannot create resource "pods" in API group "" in the namespace "search""#
    );
    assert_eq!(
        server.ok(&["-n", "search", "get", "pods", "-o", "name"]),
        ""
    );
    // No Secrets across namespaces.
    let out = server.kubectl_as(&token, &["get", "secrets", "--all-namespaces"]);
    assert_eq!(
        stderr_of(&out),
        r#"Error from server (Forbidden): secrets is forbidden: User "ana" cannot list resource "secrets" in API group "" at the cluster scope"#
    );
    // No way up. A member (edit) writes no RBAC at all...
    let bind_root = [
        "-n",
        "payments",
        "create",
        "rolebinding",
        "root",
        "--clusterrole=cluster-admin",
        "--user=ana",
    ];
    let out = server.kubectl_as(&token, &bind_root);
    assert_eq!(
        stderr_of(&out),
        r#"error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io is forbidden: User "ana" cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "payments""#
    );
    // ...and made the namespace's admin, she may bind what she holds, never cluster-admin.
    server.ok(&[
        "-n",
        "payments",
        "create",
        "rolebinding",
        "ana-admin",
        "--clusterrole=admin",
        "--user=ana",
    ]);
    let mut out = server.kubectl_as(&token, &bind_root);
    for _ in 0..100 {
        if stderr_of(&out).contains("not currently held") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        out = server.kubectl_as(&token, &bind_root);
    }
    assert!(
        stderr_of(&out).contains(
            r#"rolebindings.rbac.authorization.k8s.io "root" is forbidden: user "ana" (groups=["squad:payments", "system:authenticated"]) is attempting to grant RBAC permissions not currently held"#
        ),
        "{}",
        stderr_of(&out)
    );
    let out = server.kubectl_as(
        &token,
        &[
            "-n",
            "payments",
            "create",
            "rolebinding",
            "viewers",
            "--clusterrole=view",
            "--group=auditors",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let bindings = server.ok(&["-n", "payments", "get", "rolebindings", "-o", "name"]);
    assert!(!bindings.contains("/root"), "{bindings}");

    // The squad's quota (2 pods): the deployment's pod and one more, then Kubernetes'
    // quota message.
    let mut refused = None;
    for i in 0..4 {
        let out = server.kubectl_as(
            &token,
            &["-n", "payments", "run", &format!("p{i}"), "--image=app:1"],
        );
        if !out.status.success() {
            refused = Some(stderr_of(&out));
            break;
        }
    }
    let refused = refused.expect("the quota never refused a pod");
    assert!(
        refused.contains("is forbidden: exceeded quota: squad-quota, requested: pods=1, used: pods=2, limited: pods=2"),
        "{refused}"
    );

    // Revoked: the next request is 401.
    server.slipway(&["token", "revoke", &id, "--user", "ana"]);
    let out = server.kubectl_as(&token, &["-n", "payments", "get", "pods"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("Unauthorized") || stderr_of(&out).contains("must be logged in"),
        "{}",
        stderr_of(&out)
    );
}

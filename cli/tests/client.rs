//! The kubectl-grade client commands (`apply`, `get`, `describe`, `delete`, `scale`,
//! `rollout`, `top`, `logs`) against a real `slipway server`: for each, what it does and
//! that bad input exits 2 with one line and changes nothing. Pods stay Pending without a
//! node, which is enough for most; `logs` gets a real agent on its own containerd.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A bound, never a measure: how long a step may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// A child process stopped with SIGTERM (so an agent stops its containerd), then killed.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        slipway_testkit::process::stop(&mut self.0, Duration::from_secs(20));
    }
}

impl Process {
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit, failing the test past the patience.
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the process did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn slipway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    command
        .env_remove("SLIPWAY_DATA_DIR")
        .env_remove("KUBECONFIG");
    command
}

/// Fields drop in order: the server stops before its directory goes.
struct Server {
    _process: Process,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// A plain-HTTP server on a free loopback port.
    fn start() -> Server {
        Server::start_with(&["--plain-http"])
    }

    fn start_with(flags: &[&str]) -> Server {
        // Short: an agent's containerd socket lives below it.
        let dir = tempfile::Builder::new()
            .prefix("swc-")
            .tempdir_in("/tmp")
            .unwrap();
        let (child, url) = slipway_testkit::process::spawn_server(
            slipway()
                .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path().join("server"))
                .args(flags),
        );
        Server {
            _process: Process(child),
            url,
            dir,
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("server/admin.kubeconfig")
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = slipway();
        // Through the environment: flags after `exec ... --` would be the remote command's.
        command.args(args).env("KUBECONFIG", self.kubeconfig());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs `slipway` and returns stdout, failing the test with stderr if it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "slipway {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `slipway`, which must refuse the input: exit 2, one line on stderr, nothing on
    /// stdout. Returns the line.
    fn bad(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "slipway {args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// Runs each command, which must be refused as [`Server::bad`] says with a line holding
    /// its message, and checks that none of them changed anything.
    fn refuses(&self, cases: &[(&[&str], &str)]) {
        let before = self.state();
        for (args, message) in cases {
            let said = self.bad(args);
            assert!(said.contains(message), "{args:?}: {said}");
        }
        assert_eq!(self.state(), before);
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// What users changed on the server: each object's kind, namespace, name and spec or
    /// data (controllers' status updates left out).
    fn state(&self) -> Vec<String> {
        let mut state = Vec::new();
        for kind in [
            "configmaps",
            "deployments",
            "services",
            "namespaces",
            "secrets",
        ] {
            let list = self.json(&["get", kind, "-A"]);
            for item in list["items"].as_array().unwrap() {
                state.push(format!(
                    "{kind} {} {} {} {} {}",
                    item["metadata"]["namespace"],
                    item["metadata"]["name"],
                    item["metadata"]["labels"],
                    item["spec"],
                    item["data"],
                ));
            }
        }
        state.sort();
        state
    }

    /// A PUT with the admin token; the whole answer, head and body.
    fn put(&self, path: &str, body: &Value) -> String {
        use std::io::{Read as _, Write as _};
        let config: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(self.kubeconfig()).unwrap()).unwrap();
        let token = config["users"][0]["user"]["token"].as_str().unwrap();
        let address = self.url.trim_start_matches("http://");
        let body = body.to_string();
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "PUT {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Runs `slipway` until its output satisfies `done`.
    fn until(&self, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.run(args);
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

const WEB: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  labels:
    app: web
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
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

const EXTRA: &str = r#"{"apiVersion": "v1", "kind": "ConfigMap",
 "metadata": {"name": "extra", "labels": {"app": "web"}}, "data": {"a": "1"}}
"#;

fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: {image}
        resources:
          requests:
            cpu: 250m
            memory: 64Mi
"
    )
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn every_client_command_has_help_with_an_example() {
    for command in [
        &["apply"][..],
        &["get"],
        &["describe"],
        &["delete"],
        &["logs"],
        &["scale"],
        &["rollout"],
        &["rollout", "status"],
        &["rollout", "history"],
        &["rollout", "undo"],
        &["rollout", "restart"],
        &["exec"],
        &["port-forward"],
        &["top"],
        &["top", "pods"],
        &["top", "nodes"],
    ] {
        let out = slipway().args(command).arg("--help").output().unwrap();
        assert!(out.status.success(), "{command:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Example"), "{command:?}: {help}");
        if command.len() > 1 || !matches!(command[0], "rollout" | "top") {
            assert!(help.contains("--kubeconfig <FILE>"), "{command:?}: {help}");
            assert!(help.contains("--context <NAME>"), "{command:?}: {help}");
        }
    }
}

#[test]
fn apply_creates_configures_prunes_and_dry_runs() {
    let server = Server::start();
    let dir = server.dir.path().join("manifests");
    server.write("manifests/web.yaml", WEB);
    server.write("manifests/nested/extra.json", EXTRA);
    let dir = dir.to_str().unwrap();

    // Without -R the subdirectory is not read.
    let applied = server.ok(&["apply", "-f", dir]);
    assert_eq!(
        lines(&applied),
        ["configmap/web created", "deployment.apps/web created"]
    );
    let applied = server.ok(&["apply", "-R", "-f", dir]);
    assert_eq!(
        lines(&applied),
        [
            "configmap/extra created",
            "configmap/web unchanged",
            "deployment.apps/web unchanged"
        ]
    );
    let cm = server.json(&["get", "cm", "web"]);
    assert_eq!(cm["data"]["greeting"], "hello");
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["slipway"]);

    // A dry run says what would change and changes nothing.
    let changed = WEB.replace("greeting: hello", "greeting: hi");
    let file = server.write("changed.yaml", &changed);
    let before = server.state();
    let dry = server.ok(&["apply", "-f", &file, "--dry-run=server"]);
    assert_eq!(
        lines(&dry),
        [
            "configmap/web configured (server dry run)",
            "deployment.apps/web unchanged (server dry run)"
        ]
    );
    assert_eq!(server.state(), before);

    // From stdin, with pruning: `extra` carries the label and is not in the set.
    let mut child = server
        .command(&["apply", "-f", "-", "--prune", "-l", "app=web"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(changed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&String::from_utf8_lossy(&out.stdout)),
        [
            "configmap/web configured",
            "deployment.apps/web unchanged",
            "configmap/extra pruned"
        ]
    );
    assert_eq!(server.json(&["get", "cm", "web"])["data"]["greeting"], "hi");
    let names = server.ok(&["get", "configmaps", "-o", "name"]);
    assert!(!names.contains("configmap/extra"), "{names}");

    // Another manager's field conflicts unless forced.
    let other = server.write(
        "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  k: mine\n",
    );
    server.ok(&["apply", "-f", &other]);
    let mut theirs = server.json(&["get", "cm", "shared"]);
    theirs["data"]["k"] = "theirs".into();
    // Another manager's update, as a plain PUT.
    let answer = server.put("/api/v1/namespaces/default/configmaps/shared", &theirs);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let conflict = server.run(&["apply", "-f", &other]);
    assert_eq!(conflict.status.code(), Some(1), "{conflict:?}");
    assert!(
        String::from_utf8_lossy(&conflict.stderr).contains("conflict"),
        "{conflict:?}"
    );
    let forced = server.ok(&["apply", "-f", &other, "--force-conflicts"]);
    assert_eq!(forced, "configmap/shared configured\n");

    // A namespace named by -n.
    server.ok(&["apply", "-f", &file, "-n", "kube-public"]);
    assert_eq!(
        server.json(&["get", "cm", "web", "-n", "kube-public"])["data"]["greeting"],
        "hi"
    );
}

#[test]
fn apply_refuses_bad_input_and_changes_nothing() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    // The first document is good: it must not be applied either.
    let good_then_bad = format!("{EXTRA}---\napiVersion: v1\nkind: [\n");
    let unknown = format!("{EXTRA}---\napiVersion: v1\nkind: Gadget\nmetadata:\n  name: g\n");
    let nameless = format!("{EXTRA}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{}}\n");
    let elsewhere = EXTRA.replace(
        "\"name\": \"extra\"",
        "\"name\": \"extra\", \"namespace\": \"x\"",
    );
    let bad_yaml = server.write("bad.yaml", &good_then_bad);
    let unknown_yaml = server.write("unknown.yaml", &unknown);
    let nameless_yaml = server.write("nameless.yaml", &nameless);
    let elsewhere_json = server.write("elsewhere.json", &elsewhere);
    let extra_json = server.write("extra.json", EXTRA);
    server.refuses(&[
        (
            &["apply", "-f", "/no/such/file.yaml"][..],
            "cannot read /no/such/file.yaml",
        ),
        (
            &["apply", "-f", &bad_yaml][..],
            "bad.yaml (document 2) is not valid YAML",
        ),
        (&["apply", "-f", &unknown_yaml][..], "no kind \"Gadget\""),
        (&["apply", "-f", &nameless_yaml][..], "has no metadata.name"),
        (
            &["apply", "-f", &elsewhere_json, "-n", "default"][..],
            "does not match the namespace \"default\"",
        ),
        (
            &["apply", "-f", &extra_json, "--prune", "-l", "app in (web"][..],
            "error: ",
        ),
    ]);
}

#[test]
fn get_prints_tables_names_yaml_json_and_selects() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    server.ok(&[
        "apply",
        "-f",
        &server.write("db.yaml", &deployment("db", 1, "db:1")),
    ]);

    let table = server.ok(&["get", "deploy"]);
    let rows = lines(&table);
    assert!(
        rows[0].starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{table}"
    );
    assert!(rows[1].starts_with("db     0/1"), "{table}");
    assert!(rows[2].starts_with("web    0/2"), "{table}");
    for word in [
        "deployments",
        "deployment",
        "Deployment",
        "deployment.apps",
        "deployments.v1.apps",
    ] {
        assert_eq!(
            server.ok(&["get", word, "web", "-o", "name"]),
            "deployment.apps/web\n"
        );
    }
    let wide = server.ok(&["get", "deploy", "web", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("CONTAINERS   IMAGES"),
        "{wide}"
    );
    let both = server.ok(&["get", "deploy/web", "cm/web", "-o", "name"]);
    assert_eq!(lines(&both), ["deployment.apps/web", "configmap/web"]);
    let several = server.ok(&["get", "cm,deploy", "-l", "app=web", "-o", "name"]);
    assert_eq!(lines(&several), ["configmap/web", "deployment.apps/web"]);

    // Pods of both deployments, found by short name across namespaces.
    server.until(&["get", "po", "-A", "-o", "name"], "three pods", |s| {
        s.lines().count() == 3
    });
    let pods = server.ok(&["get", "po", "-A", "-l", "app=web"]);
    let rows = lines(&pods);
    assert!(rows[0].starts_with("NAMESPACE   NAME "), "{pods}");
    assert_eq!(rows.len(), 3, "{pods}");
    assert!(rows[1].starts_with("default     web-"), "{pods}");

    let yaml = server.ok(&["get", "cm", "web", "-o", "yaml"]);
    assert!(yaml.starts_with("apiVersion: v1\n"), "{yaml}");
    assert!(yaml.contains("greeting: hello"), "{yaml}");
    let list = server.json(&["get", "deploy"]);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["kind"], "Deployment");
    assert_eq!(list["items"][1]["metadata"]["name"], "web");

    let none = server.run(&["get", "pods", "-n", "kube-public"]);
    assert!(none.status.success());
    assert!(none.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&none.stderr),
        "No resources found in kube-public namespace.\n"
    );
    let namespaces = server.ok(&["get", "ns"]);
    assert!(namespaces.contains("\nkube-system "), "{namespaces}");
}

#[test]
fn get_watch_prints_changes_until_interrupted() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    let (mut watcher, rx) = watch(&server, &["get", "configmaps", "-w"]);
    let next = || rx.recv_timeout(PATIENCE).expect("no line from get -w");
    assert!(next().starts_with("NAME "));
    assert!(next().starts_with("web "));
    server.ok(&["apply", "-f", &server.write("extra.json", EXTRA)]);
    assert!(next().starts_with("extra "));
    server.ok(&["delete", "cm", "extra"]);
    assert!(next().starts_with("extra "));

    // Ctrl-C ends it, successfully.
    watcher.signal("-INT");
    let status = watcher.wait();
    assert!(status.success(), "{status:?}");

    // An empty namespace at first: the header once, then the rows.
    let (mut watcher, rx) = watch(&server, &["get", "secrets", "-w", "-n", "kube-public"]);
    let next = || rx.recv_timeout(PATIENCE).expect("no line from get -w");
    assert!(next().starts_with("NAME "));
    let token = server.write("token.yaml", &SECRET.replace("NAME", "token"));
    server.ok(&["apply", "-f", &token]);
    let row = next();
    assert!(row.starts_with("token "), "{row}");
    watcher.signal("-INT");
    assert!(watcher.wait().success());

    // One object: another's changes do not show.
    let (mut watcher, rx) = watch(
        &server,
        &["get", "secret", "token", "-w", "-n", "kube-public"],
    );
    let next = || rx.recv_timeout(PATIENCE).expect("no line from get -w");
    assert!(next().starts_with("NAME "));
    assert!(next().starts_with("token "));
    let other = SECRET.replace("NAME", "other");
    server.ok(&["apply", "-f", &server.write("other.yaml", &other)]);
    let changed = SECRET.replace("NAME", "token").replace("k: v", "k: w");
    server.ok(&["apply", "-f", &server.write("token2.yaml", &changed)]);
    let row = next();
    assert!(row.starts_with("token "), "{row}");
    watcher.signal("-INT");
    assert!(watcher.wait().success());
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: NAME
  namespace: kube-public
stringData:
  k: v
";

/// Starts `slipway args...` and hands its stdout over line by line.
fn watch(server: &Server, args: &[&str]) -> (Process, mpsc::Receiver<String>) {
    let mut child = server
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    (Process(child), rx)
}

#[test]
fn get_refuses_bad_input() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    server.refuses(&[
        (
            &["get", "gadgets"][..],
            "the server doesn't have a resource type \"gadgets\"",
        ),
        (&["get", "cm", "nope"][..], "configmaps \"nope\" not found"),
        (&["get", "cm", "-l", "app in (web"][..], "error: "),
        (&["get", "cm/web", "nope"][..], "KIND/NAME"),
        (
            &["get", "po", "--context", "nope"][..],
            "no context \"nope\"",
        ),
        (&["get", "cm", "-o", "yamlish"][..], "unknown output format"),
        (
            &["get", "cm", "-o", "jsonpath={.items"][..],
            "-o jsonpath: unclosed action",
        ),
        (
            &["get", "cm", "-o", "jsonpath={range .items[*]}x"][..],
            "{range} without {end}",
        ),
        (
            &["get", "cm", "--sort-by", "metadata.name"][..],
            "--sort-by: bad path",
        ),
        (
            &["get", "cm", "--sort-by", ".nope"][..],
            "error: couldn't find any field with path \"{.nope}\" in the list of objects",
        ),
        (
            &["get", "cm", "-o", "name", "--sort-by", "{.nope}"][..],
            "error: couldn't find any field with path \"{.nope}\" in the list of objects",
        ),
        (&["get", "all", "web"][..], "all takes no names"),
    ]);
}

#[test]
fn get_shows_labels_sorts_prints_templates_and_all() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    for (name, replicas) in [("db", 1), ("big", 3)] {
        let file = server.write(&format!("{name}.yaml"), &deployment(name, replicas, "db:1"));
        server.ok(&["apply", "-f", &file]);
    }
    server.ok(&[
        "apply",
        "-f",
        &server.write(
            "labelled.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: labelled\n  labels:\n    \
             tier: front\n    app: shop\n",
        ),
    ]);

    // LABELS last, as kubectl: sorted k=v, <none> when there are none.
    let table = server.ok(&["get", "deploy", "--show-labels"]);
    let rows = lines(&table);
    assert!(rows[0].ends_with("   LABELS"), "{table}");
    assert!(
        rows[1].starts_with("big ") && rows[1].ends_with(" <none>"),
        "{table}"
    );
    assert!(
        rows[3].starts_with("web ") && rows[3].ends_with(" app=web"),
        "{table}"
    );
    let labelled = server.ok(&["get", "cm", "labelled", "--show-labels"]);
    assert!(
        lines(&labelled)[1].ends_with(" app=shop,tier=front"),
        "{labelled}"
    );

    // --sort-by orders tables and objects by a field of each object.
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect()
    };
    for path in [".spec.replicas", "{.spec.replicas}"] {
        let sorted = server.ok(&["get", "deploy", "--sort-by", path]);
        assert_eq!(names(&sorted), ["db", "web", "big"], "{sorted}");
    }
    assert_eq!(
        lines(&server.ok(&["get", "deploy", "--sort-by=.spec.replicas", "-o", "name"])),
        [
            "deployment.apps/db",
            "deployment.apps/web",
            "deployment.apps/big"
        ]
    );

    // JSONPath templates, printed exactly.
    assert_eq!(
        server.ok(&["get", "deploy", "-o", "jsonpath={.items[*].metadata.name}"]),
        "big db web"
    );
    assert_eq!(
        server.ok(&["get", "cm", "web", "-o", "jsonpath={.data.greeting}"]),
        "hello"
    );
    let template = "jsonpath={range .items[*]}{.metadata.name}={.spec.replicas}{\"\\n\"}{end}";
    assert_eq!(
        server.ok(&["get", "deploy", "--sort-by=.spec.replicas", "-o", template]),
        "db=1\nweb=2\nbig=3\n"
    );
    // Literal text is kubectl's: printed as written, so a newline needs {"\n"}.
    let template = "jsonpath={range .items[*]}{.metadata.name}\\n{end}";
    assert_eq!(
        server.ok(&["get", "deploy", "-o", template]),
        "big\\ndb\\nweb\\n"
    );
    assert_eq!(
        server.ok(&[
            "get",
            "deploy",
            "-o",
            "jsonpath={.items[?(@.spec.replicas>1)].metadata.name}"
        ]),
        "big web"
    );

    // `all`: pods, services, deployments and replica sets, each named KIND/NAME.
    let all = server.until(&["get", "all"], "pods and replica sets", |s| {
        s.contains("\npod/web-") && s.contains("\nreplicaset.apps/web-")
    });
    assert!(all.starts_with("NAME "), "{all}");
    assert!(all.contains("\ndeployment.apps/web "), "{all}");
    let sections: Vec<&str> = all.split("\n\n").collect();
    assert!(sections.len() >= 3, "{all}");
    for section in sections {
        let kinds: std::collections::BTreeSet<&str> = section
            .lines()
            .skip(1)
            .map(|l| l.split('/').next().unwrap())
            .collect();
        assert_eq!(kinds.len(), 1, "one kind a section: {section}");
    }
    let names = server.ok(&["get", "all", "-o", "name"]);
    assert!(names.contains("deployment.apps/big\n"), "{names}");
}

#[test]
fn contexts_and_namespaces_come_from_the_kubeconfig() {
    let server = Server::start();
    let admin = std::fs::read_to_string(server.kubeconfig()).unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&admin).unwrap();
    let mut context = config["contexts"][0].clone();
    context["name"] = "public".into();
    context["context"]["namespace"] = "kube-public".into();
    config["contexts"].as_sequence_mut().unwrap().push(context);
    let file = server.write(
        "two.kubeconfig",
        &serde_yaml_ng::to_string(&config).unwrap(),
    );
    let web = server.write("web.yaml", WEB);
    let applied = slipway()
        .args([
            "apply",
            "-f",
            &web,
            "--kubeconfig",
            &file,
            "--context",
            "public",
        ])
        .output()
        .unwrap();
    assert!(applied.status.success(), "{applied:?}");
    assert_eq!(
        server.ok(&["get", "cm", "-n", "kube-public", "-o", "name"]),
        "configmap/web\n"
    );
    assert!(server.ok(&["get", "cm", "-o", "name"]).is_empty());

    // A server nobody answers at is unreachable: exit 3.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gone = server.write(
        "gone.kubeconfig",
        &admin.replace(&server.url, &format!("http://127.0.0.1:{port}")),
    );
    let out = slipway()
        .args(["get", "pods", "--kubeconfig", &gone])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // One line that says why, not only that the transport failed.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.starts_with("error: cannot reach the API server: ")
            && said.contains("Connection refused"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
}

#[test]
fn describe_shows_metadata_fields_conditions_and_events() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    server.ok(&[
        "apply",
        "-f",
        &server.write(
            "svc.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n    targetPort: 8080\n",
        ),
    ]);
    let described = server.until(
        &["describe", "deployment/web"],
        "the scaling event and two pods",
        |s| s.contains("ScalingReplicaSet") && s.contains("| 2 total |"),
    );
    for needle in [
        "Name:               web\n",
        "Namespace:          default\n",
        "Labels:             app=web\n",
        "Replicas:           2 desired | 2 updated | 2 total | 0 available | 2 unavailable\n",
        "Conditions:\n",
        "      Image:        web:1\n",
    ] {
        assert!(described.contains(needle), "{needle:?} in\n{described}");
    }
    let pod = server.ok(&["get", "po", "-o", "name"]);
    let pod = pod.lines().next().unwrap();
    let described = server.until(&["describe", pod], "the scheduler's event", |s| {
        s.contains("FailedScheduling")
    });
    assert!(
        described.contains("Status:             Pending\n"),
        "{described}"
    );
    assert!(described.contains("PodScheduled"), "{described}");
    let described = server.ok(&["describe", "svc", "web"]);
    assert!(
        described.contains("Port:               <unset>  80/TCP\n"),
        "{described}"
    );
    let described = server.ok(&["describe", "ns", "default"]);
    assert!(
        described.contains("Status:             Active\n"),
        "{described}"
    );
    // Other kinds show their fields as YAML.
    let described = server.ok(&["describe", "cm", "web"]);
    assert!(
        described.contains("Data:\n  greeting: hello\n"),
        "{described}"
    );
}

#[test]
fn describe_refuses_bad_input() {
    let server = Server::start();
    server.refuses(&[
        (&["describe", "pods", "nope"][..], "pods \"nope\" not found"),
        (&["describe", "gadget", "x"][..], "resource type \"gadget\""),
        (&["describe", "pods"][..], "name the object"),
    ]);
}

#[test]
fn delete_by_name_selector_and_manifest() {
    let server = Server::start();
    let web = server.write("web.yaml", WEB);
    server.ok(&["apply", "-f", &web]);
    server.ok(&["apply", "-f", &server.write("extra.json", EXTRA)]);
    server.ok(&[
        "apply",
        "-f",
        &server.write("db.yaml", &deployment("db", 0, "db:1")),
    ]);
    assert_eq!(
        server.ok(&["delete", "cm", "extra"]),
        "configmap \"extra\" deleted\n"
    );
    assert_eq!(
        server.ok(&["delete", "deploy", "-l", "app=web"]),
        "deployment.apps \"web\" deleted\n"
    );
    server.ok(&["apply", "-f", &web]);
    assert_eq!(
        lines(&server.ok(&["delete", "-f", &web])),
        [
            "configmap \"web\" deleted",
            "deployment.apps \"web\" deleted"
        ]
    );
    assert_eq!(
        server.ok(&["delete", "deployment/db"]),
        "deployment.apps \"db\" deleted\n"
    );
    let left = server.ok(&["get", "cm,deploy", "-o", "name"]);
    assert!(!left.contains("web") && !left.contains("db"), "{left}");
}

#[test]
fn delete_refuses_bad_input_and_deletes_nothing() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    server.refuses(&[
        // `web` exists: it must not go because `nope` does not.
        (
            &["delete", "cm", "web", "nope"][..],
            "configmaps \"nope\" not found",
        ),
        (
            &["delete", "-f", "/no/such.yaml"][..],
            "cannot read /no/such.yaml",
        ),
        (&["delete", "cm"][..], "name the objects to delete"),
        (&["delete", "gadget", "x"][..], "resource type \"gadget\""),
        (&["delete", "cm", "-l", "app in (web"][..], "error: "),
        (&["delete"][..], "name what to delete"),
        (&["delete", "cm", "web", "--all"][..], "not both"),
        (&["delete", "cm", "--all", "-l", "app=web"][..], "not both"),
        (
            &["delete", "cm", "web", "--grace-period=0"][..],
            "error: --grace-period=0 deletes at once: say so with --force\n",
        ),
        (
            &["delete", "cm", "web", "--grace-period", "-5"][..],
            "0 or more",
        ),
        (
            &["delete", "cm", "web", "--force", "--grace-period", "5"][..],
            "error: --force deletes at once: it takes no --grace-period above 0\n",
        ),
        (
            &["delete", "cm", "web", "--timeout", "soon"][..],
            "--timeout",
        ),
    ]);
}

/// A pod bound to a node that never runs it: its graceful deletion waits for that node.
const HELD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: held
spec:
  nodeName: ghost
  containers:
  - name: main
    image: held:1
";

#[test]
fn delete_all_with_grace_periods_and_waiting() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    server.ok(&["apply", "-f", &server.write("extra.json", EXTRA)]);
    server.ok(&[
        "apply",
        "-n",
        "kube-public",
        "-f",
        &server.write("other.json", EXTRA),
    ]);
    let deleted = server.ok(&["delete", "cm", "--all"]);
    assert!(deleted.contains("configmap \"web\" deleted\n"), "{deleted}");
    assert!(
        deleted.contains("configmap \"extra\" deleted\n"),
        "{deleted}"
    );
    assert!(server.ok(&["get", "cm", "-o", "name"]).is_empty());
    // Only the namespace's.
    assert_eq!(
        server.ok(&["get", "cm", "extra", "-n", "kube-public", "-o", "name"]),
        "configmap/extra\n"
    );

    // The grace period reaches the server; without waiting, the command returns while
    // the pod is still there.
    server.ok(&["apply", "-f", &server.write("held.yaml", HELD)]);
    assert_eq!(
        server.ok(&[
            "delete",
            "pod",
            "held",
            "--grace-period",
            "30",
            "--wait=false"
        ]),
        "pod \"held\" deleted\n"
    );
    let pod = server.json(&["get", "pod", "held"]);
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30, "{pod}");
    // Waiting gives up at the timeout: no node will ever stop it. The message names
    // only what is still there, not the unscheduled pod that went at once.
    server.ok(&[
        "apply",
        "-f",
        &server.write(
            "loose.yaml",
            &HELD
                .replace("held", "loose")
                .replace("  nodeName: ghost\n", ""),
        ),
    ]);
    let waited = server.run(&["delete", "pod", "held", "loose", "--timeout", "1s"]);
    assert_eq!(waited.status.code(), Some(1), "{waited:?}");
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout),
        "pod \"held\" deleted\npod \"loose\" deleted\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&waited.stderr),
        "error: timed out waiting for the deletion of pod/held\n"
    );
    // --force is grace 0: gone once the command returns.
    let forced = server.run(&["delete", "pod", "held", "--force"]);
    assert!(forced.status.success(), "{forced:?}");
    assert_eq!(
        String::from_utf8_lossy(&forced.stdout),
        "pod \"held\" deleted\n"
    );
    assert!(
        String::from_utf8_lossy(&forced.stderr).starts_with("Warning: Immediate deletion"),
        "{forced:?}"
    );
    server.bad(&["get", "pod", "held"]);
}

#[test]
fn scale_sets_replicas_through_the_subresource() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    assert_eq!(
        server.ok(&["scale", "deployment/web", "--replicas", "3"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        server.json(&["get", "deploy", "web"])["spec"]["replicas"],
        3
    );
    server.ok(&["scale", "deploy", "web", "--replicas=0"]);
    assert_eq!(
        server.json(&["get", "deploy", "web"])["spec"]["replicas"],
        0
    );
}

#[test]
fn scale_refuses_bad_input() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    server.refuses(&[
        (
            &["scale", "deployment/web", "--replicas", "-1"][..],
            "--replicas must be a whole number",
        ),
        (
            &["scale", "deployment/web", "--replicas", "two"][..],
            "--replicas must be a whole number",
        ),
        (
            &["scale", "deployment/nope", "--replicas", "1"][..],
            "\"nope\" not found",
        ),
        (
            &["scale", "configmap/web", "--replicas", "1"][..],
            "configmap cannot be scaled",
        ),
    ]);
}

#[test]
fn rollout_status_history_restart_and_undo() {
    let server = Server::start();
    // No node: a deployment of zero replicas is the one that can finish rolling out.
    let file = server.write("idle.yaml", &deployment("idle", 0, "idle:1"));
    server.ok(&["apply", "-f", &file]);
    let status = server.ok(&["rollout", "status", "deployment/idle", "--timeout", "60s"]);
    assert_eq!(
        lines(&status).last(),
        Some(&"deployment \"idle\" successfully rolled out")
    );

    // One that cannot: it says what it waits for, and gives up at the timeout.
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    // Long enough that its first report is out on a loaded machine: no pod ever starts here.
    let waiting = server.run(&["rollout", "status", "deploy/web", "--timeout", "10s"]);
    assert_eq!(waiting.status.code(), Some(1), "{waiting:?}");
    let said = String::from_utf8_lossy(&waiting.stdout);
    assert!(
        said.lines().any(
            |l| l.starts_with("Waiting for deployment \"web\" rollout to finish: ")
                || l == "Waiting for deployment spec update to be observed..."
        ),
        "{said}"
    );
    assert_eq!(
        String::from_utf8_lossy(&waiting.stderr),
        "error: timed out waiting for the condition\n"
    );

    let revisions = |name: &str| -> Vec<String> {
        server
            .ok(&["rollout", "history", &format!("deployment/{name}")])
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(revisions("idle"), ["1"]);
    let one = server.ok(&["rollout", "history", "deployment/idle", "--revision", "1"]);
    assert_eq!(
        lines(&one)[..2],
        ["deployment.apps/idle with revision #1", "Pod Template:"],
        "{one}"
    );
    for needle in [
        "  Labels:           app=idle\n",
        "    main:\n",
        "      Image:        idle:1\n",
        "      Port:         <none>\n",
        "      Environment:  <none>\n",
    ] {
        assert!(one.contains(needle), "{needle:?} in\n{one}");
    }
    assert_eq!(
        lines(&server.ok(&["rollout", "history", "deployment/idle"]))[..2],
        ["deployment.apps/idle", "REVISION  CHANGE-CAUSE"]
    );
    // 0 is kubectl's default: every revision.
    assert_eq!(
        server.ok(&["rollout", "history", "deployment/idle", "--revision=0"]),
        server.ok(&["rollout", "history", "deployment/idle"])
    );
    server.ok(&[
        "apply",
        "-f",
        &server.write("idle2.yaml", &deployment("idle", 0, "idle:2")),
    ]);
    server.until(
        &["rollout", "history", "deployment/idle"],
        "revision 2",
        |s| s.contains("\n2 "),
    );
    assert_eq!(
        server.ok(&["rollout", "restart", "deployment/idle"]),
        "deployment.apps/idle restarted\n"
    );
    let template = &server.json(&["get", "deploy", "idle"])["spec"]["template"];
    assert!(template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    server.until(
        &["rollout", "history", "deployment/idle"],
        "revision 3",
        |s| s.contains("\n3 "),
    );

    assert_eq!(
        server.ok(&["rollout", "undo", "deployment/idle", "--to-revision", "1"]),
        "deployment.apps/idle rolled back\n"
    );
    let template = &server.json(&["get", "deploy", "idle"])["spec"]["template"];
    assert_eq!(template["spec"]["containers"][0]["image"], "idle:1");
    assert!(template["metadata"]["annotations"].is_null(), "{template}");
    assert!(
        template["metadata"]["labels"]["pod-template-hash"].is_null(),
        "{template}"
    );
    server.until(
        &["rollout", "history", "deployment/idle"],
        "revision 4",
        |s| s.contains("\n4 "),
    );
    assert_eq!(revisions("idle"), ["2", "3", "4"]);
    let again = server.ok(&["rollout", "undo", "deployment/idle", "--to-revision", "4"]);
    assert!(again.contains("skipped rollback"), "{again}");
}

#[test]
fn rollout_refuses_bad_input() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    server.refuses(&[
        (
            &["rollout", "status", "deployment/nope"][..],
            "\"nope\" not found",
        ),
        (
            &["rollout", "history", "configmap/web"][..],
            "deployments only",
        ),
        (
            &["rollout", "undo", "deployment/web", "--to-revision", "9"][..],
            "unable to find specified revision 9",
        ),
        (
            &["rollout", "undo", "deployment/web"][..],
            "no rollout history found",
        ),
        (
            &["rollout", "restart", "deployment/nope"][..],
            "\"nope\" not found",
        ),
        (
            &["rollout", "history", "deployment/web", "--revision", "9"][..],
            "unable to find the specified revision",
        ),
        (
            &["rollout", "history", "deployment/web", "--revision", "-1"][..],
            "--revision must be 0 (every revision) or more",
        ),
    ]);
}

#[test]
fn top_says_when_there_are_no_figures_and_refuses_bad_input() {
    let server = Server::start();
    server.ok(&[
        "apply",
        "-f",
        &server.write("db.yaml", &deployment("db", 2, "db:1")),
    ]);
    // Nothing to show where nothing exists: said on stderr, not an error.
    for (args, said) in [
        (
            &["top", "pods", "-n", "kube-public"][..],
            "No resources found in kube-public namespace.\n",
        ),
        (
            &["top", "pods", "-l", "app=none", "-A"][..],
            "No resources found\n",
        ),
        (&["top", "nodes"][..], "No resources found.\n"),
    ] {
        let out = server.run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), said, "{args:?}");
    }
    // The deployment's pods exist but no node runs them, so they have no figures yet:
    // kubectl fails rather than saying there are none. So does a node no agent serves.
    server.until(&["get", "pods", "-o", "name"], "the pods", |s| {
        s.lines().count() == 2
    });
    server.ok(&[
        "apply",
        "-f",
        &server.write(
            "ghost.json",
            r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ghost"}}"#,
        ),
    ]);
    for args in [
        &["top", "pods"][..],
        &["top", "pods", "-l", "app=db", "-A"],
        &["top", "nodes"],
    ] {
        let out = server.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: metrics not available yet\n",
            "{args:?}"
        );
    }
    server.refuses(&[
        (
            &["top", "pods", "nope"][..],
            "podmetrics.metrics.k8s.io \"default/nope\" not found",
        ),
        (
            &["top", "nodes", "nope"][..],
            "nodemetrics.metrics.k8s.io \"nope\" not found",
        ),
        (
            &["top", "pods", "-l", "app in (db"][..],
            "unable to parse requirement",
        ),
    ]);
    // Usage errors are clap's, with its hints after the first line.
    for args in [
        &["top", "pods", "--sort-by", "disk"][..],
        &["top", "pods", "db", "-A"],
    ] {
        let out = server.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn logs_refuse_bad_input() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web.yaml", WEB)]);
    server.refuses(&[
        (&["logs", "nope"][..], "pods \"nope\" not found"),
        (&["logs", "deployment/nope"][..], "\"nope\" not found"),
        (&["logs", "service/web"][..], "\"service\" is not a kind"),
        (&["logs", "-l", "app=none"][..], "no pods match app=none"),
        (
            &["logs", "nope", "--tail", "-5"][..],
            "--tail must be 0 or more",
        ),
        (
            &["logs", "nope", "--since", "5x"][..],
            "--since: invalid duration",
        ),
    ]);
}

/// A pod template's worth of busybox that says hello, then ticks every half second.
const TALKER: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: talker
spec:
  replicas: 2
  selector:
    matchLabels:
      app: talker
  template:
    metadata:
      labels:
        app: talker
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: slipway.local/busybox:1
        command: [sh, -c, 'echo hello from $(hostname); i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done']
";

/// busybox's httpd serving "forwarded" on 8080, behind a Service on 80.
const WEB_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web-pod
spec:
  # httpd as PID 1 ignores SIGTERM: a short grace lets the agent stop quickly.
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: slipway.local/busybox:1
    command: [sh, -c, 'mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p 8080 -h /www']
    ports:
    - name: http
      containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web-pod
  ports:
  - port: 80
    targetPort: http
";

#[test]
fn logs_exec_and_port_forward_on_a_real_node() {
    // HTTPS, as users run it: the upgrades of exec and port-forward pass through TLS.
    let server = Server::start_with(&[]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let _agent = Process(
        slipway()
            .args(["agent", "--server", &server.url, "--token-file"])
            .arg(server.dir.path().join("server/pki/join-token"))
            .arg("--ca-file")
            .arg(server.dir.path().join("server/pki/ca.crt"))
            .args([
                "--node-name",
                "node-1",
                "--listen",
                "127.0.0.1:0",
                "--remove-pods-on-exit",
            ])
            .arg("--data-dir")
            .arg(server.dir.path().join("agent"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    server.until(
        &["get", "node", "node-1", "-o", "json"],
        "node-1 Ready",
        |s| {
            serde_json::from_str::<Value>(s).is_ok_and(|node| {
                node["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        },
    );
    let archive = server.dir.path().join("busybox.tar");
    slipway_testkit::ImageBuilder::busybox("slipway.local/busybox:1")
        .write_docker(&archive)
        .unwrap();
    server.ok(&["image", "import", archive.to_str().unwrap()]);

    server.ok(&["apply", "-f", &server.write("talker.yaml", TALKER)]);
    let status = server.ok(&["rollout", "status", "deployment/talker", "--timeout", "60s"]);
    assert_eq!(
        lines(&status).last(),
        Some(&"deployment \"talker\" successfully rolled out")
    );
    let pods: Vec<String> = server
        .ok(&["get", "pods", "-l", "app=talker", "-o", "name"])
        .lines()
        .map(|l| l.trim_start_matches("pod/").to_owned())
        .collect();
    assert_eq!(pods.len(), 2, "{pods:?}");

    // One pod: its only container, --tail.
    let first = &pods[0];
    let hello = format!("hello from {first}");
    let logs = server.until(&["logs", first], "the first pod's hello", |s| {
        s.contains("tick 1\n")
    });
    assert_eq!(lines(&logs)[0], hello, "{logs}");
    let tail = server.ok(&["logs", &format!("pod/{first}"), "--tail", "1", "-c", "main"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("tick "), "{tail}");
    // The last hour holds every line; each starts with when it was written.
    let stamped = server.ok(&["logs", first, "--since", "1h", "--timestamps"]);
    let (stamp, said) = lines(&stamped)[0].split_once(' ').unwrap();
    assert_eq!(said, hello, "{stamped}");
    assert!(stamp.contains('T') && stamp.ends_with('Z'), "{stamped}");
    // --since filters: once the hello is more than a second old, the last second's lines
    // leave it out (it never would if --since were ignored).
    server.until(
        &["logs", first, "--since", "1s"],
        "the last second without the hello",
        |s| s.contains("tick ") && !s.contains(&hello),
    );

    // The deployment: every pod, prefixed.
    let logs = server.until(&["logs", "deployment/talker"], "both pods' lines", |s| {
        pods.iter()
            .all(|p| s.contains(&format!("[pod/{p}/main] tick 1\n")))
    });
    for pod in &pods {
        let prefix = format!("[pod/{pod}/main] hello from {pod}\n");
        assert!(logs.contains(&prefix), "{prefix:?} in {logs}");
    }

    // Following both at once, until Ctrl-C.
    let mut child = server
        .command(&["logs", "-f", "-l", "app=talker", "--tail", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut follower = Process(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut heard = std::collections::BTreeSet::new();
    while heard.len() < pods.len() {
        let line = rx.recv_timeout(PATIENCE).expect("no line from logs -f");
        let pod = pods
            .iter()
            .find(|p| line.starts_with(&format!("[pod/{p}/main] tick ")));
        heard.extend(pod.cloned());
    }
    follower.signal("-INT");
    let stopped = follower.wait();
    assert!(stopped.success(), "{stopped:?}");

    // top: live figures from the agent, once it has two readings to make a rate of.
    let top = server.until(
        &["top", "pods", "-l", "app=talker", "--sort-by", "memory"],
        "both pods' figures",
        |s| s.lines().count() == 3,
    );
    assert_eq!(
        cells(lines(&top)[0]),
        ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    );
    for row in &lines(&top)[1..] {
        let row = cells(row);
        assert!(pods.contains(&row[0].to_owned()), "{top}");
        assert!(row[1].ends_with('m') && row[2].ends_with("Mi"), "{top}");
    }
    let containers = server.ok(&["top", "pods", &pods[0], "--containers"]);
    assert_eq!(
        cells(lines(&containers)[1])[..2],
        [pods[0].as_str(), "main"]
    );
    let nodes = server.until(&["top", "nodes"], "the node's figures", |s| {
        s.lines().any(|l| l.starts_with("node-1 "))
    });
    let row = cells(lines(&nodes)[1]);
    assert_eq!(row[0], "node-1", "{nodes}");
    assert!(row[2].ends_with('%') && row[4].ends_with('%'), "{nodes}");
    // kubectl reads the same API.
    let kubectl = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["top", "pod", "-l", "app=talker"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&kubectl.stdout);
    assert!(kubectl.status.success(), "{kubectl:?}");
    assert!(pods.iter().all(|p| said.contains(p.as_str())), "{said}");
    let kubectl = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["top", "node"])
        .output()
        .unwrap();
    assert!(kubectl.status.success(), "{kubectl:?}");
    assert!(
        String::from_utf8_lossy(&kubectl.stdout).contains("node-1 "),
        "{kubectl:?}"
    );
    server.ok(&["delete", "deployment", "talker"]);

    // exec: output, the remote exit code, stdin.
    server.ok(&["apply", "-f", &server.write("web-pod.yaml", WEB_POD)]);
    server.until(&["get", "pod", "web", "-o", "json"], "web Ready", |s| {
        serde_json::from_str::<Value>(s).is_ok_and(|pod| {
            pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    assert_eq!(server.ok(&["exec", "web", "--", "echo", "hi"]), "hi\n");
    let failed = server.run(&[
        "exec",
        "pod/web",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(failed.status.code(), Some(7), "{failed:?}");
    assert_eq!(String::from_utf8_lossy(&failed.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&failed.stderr), "err\n");
    let mut child = server
        .command(&["exec", "-i", "web", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"data\nmore\n")
        .unwrap();
    let fed = child.wait_with_output().unwrap();
    assert!(fed.status.success(), "{fed:?}");
    assert_eq!(String::from_utf8_lossy(&fed.stdout), "data\nmore\n");
    let said = server.bad(&["exec", "web", "-c", "nope", "--", "true"]);
    assert!(
        said.contains("container nope is not valid for pod web"),
        "{said}"
    );
    // A terminal through `script`: slipway sees one and asks for one.
    let tty = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} exec -it web -- sh -c 'test -t 0 && test -t 1 && echo is-a-tty; exit 5'",
                env!("CARGO_BIN_EXE_slipway")
            ),
            "/dev/null",
        ])
        .env("KUBECONFIG", server.kubeconfig())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(tty.status.code(), Some(5), "{tty:?}");
    assert!(
        String::from_utf8_lossy(&tty.stdout).contains("is-a-tty"),
        "{tty:?}"
    );
    // The command's terminal takes this one's size.
    let sized = Command::new("script")
        .args([
            "-qec",
            &format!(
                "stty rows 45 cols 123; {} exec -it web -- sh -c {}",
                env!("CARGO_BIN_EXE_slipway"),
                // The size comes just after the command starts: ask until it is there.
                "'for i in $(seq 100); do s=$(busybox stty size 2>&1); \
                  [ \"$s\" = \"45 123\" ] && break; sleep 0.1; done; echo \"size=$s\"'",
            ),
            "/dev/null",
        ])
        .env("KUBECONFIG", server.kubeconfig())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(sized.status.success(), "{sized:?}");
    assert!(
        String::from_utf8_lossy(&sized.stdout).contains("size=45 123"),
        "{sized:?}"
    );

    // port-forward through the Service to httpd, two connections in turn.
    let mut child = server
        .command(&["port-forward", "svc/web", ":80"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut forwarder = Process(child);
    let first = stdout
        .next()
        .expect("port-forward printed nothing")
        .unwrap();
    let address = first
        .strip_prefix("Forwarding from ")
        .and_then(|rest| rest.strip_suffix(" -> 8080"))
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    std::thread::spawn(move || for _ in stdout {});
    for _ in 0..2 {
        use std::io::Read as _;
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("forwarded\n"), "{answer}");
    }
    forwarder.signal("-INT");
    let stopped = forwarder.wait();
    assert!(stopped.success(), "{stopped:?}");
}

#[test]
fn exec_and_port_forward_refuse_bad_input() {
    let server = Server::start();
    server.ok(&["apply", "-f", &server.write("web-pod.yaml", WEB_POD)]);
    server.refuses(&[
        (
            &["exec", "nope", "--", "true"][..],
            "pods \"nope\" not found",
        ),
        (
            &["exec", "web", "-c", "nope", "--", "true"][..],
            "container nope is not valid",
        ),
        (
            &["exec", "configmap/web", "--", "true"][..],
            "\"configmap\" is not a kind",
        ),
        (
            &["port-forward", "nope", "8080:80"][..],
            "pods \"nope\" not found",
        ),
        (
            &["port-forward", "web", "70000"][..],
            "\"70000\" is not LOCAL:REMOTE",
        ),
        (
            &["port-forward", "svc/web", "81"][..],
            "service web does not have a service port 81",
        ),
        (
            &["port-forward", "svc/nope", "80"][..],
            "services \"nope\" not found",
        ),
    ]);
}

//! Squads, users and tokens as an administrator and their users meet them: `slipway
//! squad|user|token|login|whoami` against a real `slipway server --plain-http`.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

struct Server {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
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
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--plain-http",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next();
        let mut server = Server {
            child,
            dir,
            url: String::new(),
            _stdout: lines,
        };
        let first = first.expect("server printed nothing").unwrap();
        server.url = first
            .strip_prefix("slipway server: API on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{first}"))
            .to_owned();
        server
    }

    fn admin(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `slipway ARGS --kubeconfig KUBECONFIG`, with no kubeconfig from the environment.
    fn slipway_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        slipway(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("HOME", self.dir.path())
            .output()
            .unwrap()
    }

    /// `slipway ARGS` as the admin.
    fn admin_runs(&self, args: &[&str]) -> Output {
        self.slipway_as(&self.admin(), args)
    }

    /// `slipway ARGS` as the admin, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        ok(args, &self.admin_runs(args))
    }

    /// `slipway ARGS -o json` as the admin.
    fn json(&self, args: &[&str]) -> Value {
        let args = [args, &["-o", "json"]].concat();
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Everything the tenancy commands can change, as the admin sees it.
    fn state(&self, token_user: &str) -> Vec<Value> {
        vec![
            self.json(&["squad", "list"]),
            self.json(&["user", "list"]),
            self.json(&["token", "list", "--user", token_user]),
        ]
    }
}

/// A `slipway` command with nothing of the caller's environment that picks a kubeconfig.
fn slipway(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    command
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("SLIPWAY_DATA_DIR");
    command
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "slipway {args:?} failed: {}{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn squads_are_created_listed_shown_changed_and_deleted() {
    let server = Server::start();
    let created = server.ok(&[
        "squad",
        "create",
        "web",
        "--namespace",
        "web-data",
        "--quota",
        "requests.cpu=4",
        "--quota",
        "limits.memory=8Gi",
        "--default-request",
        "cpu=100m,memory=128Mi",
        "--default-limit",
        "cpu=500m,memory=512Mi",
        "--max-previews",
        "3",
        "--preview-quota",
        "requests.cpu=1",
        "--preview-ttl",
        "12h",
        "--max-preview-ttl",
        "7d",
        "--no-pinning",
    ]);
    assert_eq!(created.trim(), "squad web created");

    let table = server.ok(&["squad", "list"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("NAME   NAMESPACES"), "{table}");
    assert!(header.ends_with("AGE"), "{table}");
    let row = lines.find(|l| l.starts_with("web ")).expect(&table);
    assert!(row.contains("web-data"), "{row}");
    assert_eq!(names(&server.json(&["squad", "list"])), ["web"]);
    let yaml = server.ok(&["squad", "list", "-o", "yaml"]);
    assert!(yaml.contains("name: web"), "{yaml}");

    let shown = server.ok(&["squad", "show", "web"]);
    for expected in [
        "Name:             web",
        "web-data",
        "requests.cpu",
        "cpu=100m, memory=128Mi",
        "Max previews:     3",
        "Preview TTL:      12h",
        "Max preview TTL:  7d",
        "Pinning:          not allowed",
        "Members:",
    ] {
        assert!(shown.contains(expected), "{expected} in:\n{shown}");
    }
    let squad = server.json(&["squad", "show", "web"]);
    assert_eq!(squad["quota"]["hard"]["requests.cpu"], "4");
    assert_eq!(squad["quota"]["hard"]["limits.memory"], "8Gi");
    assert_eq!(squad["limits"]["default"]["memory"], "512Mi");
    assert_eq!(squad["previews"]["max"], 3);
    assert_eq!(squad["previews"]["ttlSeconds"], 43_200);
    assert_eq!(squad["previews"]["maxTtlSeconds"], 604_800);
    assert_eq!(squad["previews"]["allowPinning"], false);
    assert!(
        squad["namespaces"]
            .as_array()
            .unwrap()
            .contains(&"web-data".into()),
        "{squad}"
    );

    let again = server.admin_runs(&["squad", "create", "web"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).starts_with("error: "), "{}", stderr(&again));

    server.ok(&["squad", "set-quota", "web", "requests.cpu=8", "pods=20"]);
    let squad = server.json(&["squad", "show", "web"]);
    assert_eq!(
        squad["quota"]["hard"],
        serde_json::json!({"requests.cpu": "8", "pods": "20"})
    );

    server.ok(&["user", "create", "ana"]);
    server.ok(&["squad", "add-member", "web", "ana", "--owner"]);
    let squad = server.json(&["squad", "show", "web"]);
    assert_eq!(
        squad["members"],
        serde_json::json!([{"user": "ana", "role": "owner"}])
    );
    let users = server.ok(&["user", "list"]);
    assert!(users.contains("web(owner)"), "{users}");
    server.ok(&["squad", "remove-member", "web", "ana"]);
    let squad = server.json(&["squad", "show", "web"]);
    assert_eq!(squad["members"], serde_json::json!([]));

    server.ok(&["squad", "delete", "web", "--force"]);
    assert!(names(&server.json(&["squad", "list"])).is_empty());
    // A name that is not there is bad input, as in every command.
    let gone = server.admin_runs(&["squad", "show", "web"]);
    assert_eq!(gone.status.code(), Some(2), "{}", stderr(&gone));
}

#[test]
fn users_are_created_listed_and_deleted() {
    let server = Server::start();
    server.ok(&["user", "create", "ana"]);
    server.ok(&["user", "create", "root", "--admin"]);
    let users = server.json(&["user", "list"]);
    let listed = names(&users);
    assert!(
        listed.contains(&"ana".into()) && listed.contains(&"root".into()),
        "{users}"
    );
    let table = server.ok(&["user", "list"]);
    assert!(table.starts_with("NAME   ADMIN   SQUADS"), "{table}");
    let root = table
        .lines()
        .find(|l| l.starts_with("root "))
        .expect(&table);
    assert!(root.contains("true"), "{root}");
    server.ok(&["user", "delete", "ana"]);
    assert!(!names(&server.json(&["user", "list"])).contains(&"ana".into()));
}

#[test]
fn a_token_gives_a_user_their_own_kubeconfig_until_it_is_revoked() {
    let server = Server::start();
    server.ok(&["user", "create", "ana"]);
    let kubeconfig = server.path("ana.kubeconfig");
    let args = [
        "token",
        "create",
        "--user",
        "ana",
        "--description",
        "laptop",
        "--expires-in",
        "1d",
        "--write-kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    let out = server.admin_runs(&args);
    let secret = ok(&args, &out).trim().to_owned();
    assert!(
        !secret.is_empty() && !secret.contains(char::is_whitespace),
        "{secret:?}"
    );
    assert!(
        stderr(&out).contains("will not be shown again"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mode(&kubeconfig), 0o600);
    let written = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(written.contains(&server.url), "{written}");
    assert!(
        written.contains("current-context: slipway-ana"),
        "{written}"
    );

    let me = ok(&["whoami"], &server.slipway_as(&kubeconfig, &["whoami"]));
    assert!(me.contains("Username    ana"), "{me}");

    // As ana, about ana's own tokens: the secret is never shown again.
    let listed = ok(
        &["token", "list"],
        &server.slipway_as(&kubeconfig, &["token", "list"]),
    );
    let header: Vec<&str> = listed
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["ID", "DESCRIPTION", "STATUS", "EXPIRES", "AGE"],
        "{listed}"
    );
    assert!(
        listed.contains("laptop") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "{listed}");
    let tokens = server.json(&["token", "list", "--user", "ana"]);
    assert!(!tokens.to_string().contains(&secret), "{tokens}");
    let items = tokens["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{tokens}");
    let id = items[0]["id"].as_str().unwrap().to_owned();
    assert!(items[0]["expiresAt"].is_string(), "{tokens}");

    // An existing file is not replaced without --force, and no token is made for it.
    let out = server.admin_runs(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&kubeconfig).unwrap(), written);
    assert_eq!(server.json(&["token", "list", "--user", "ana"]), tokens);

    // The audit log is the administrators'.
    let out = server.slipway_as(&kubeconfig, &["audit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    let revoked = server.ok(&["token", "revoke", &id, "--user", "ana"]);
    assert!(revoked.contains(&id), "{revoked}");
    // The admin sees who made and revoked her token.
    let log = server.json(&["audit", "--limit", "2"]);
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["token.revoke", "token.create"], "{log}");
    assert_eq!(log["items"][0]["actor"], "admin");
    assert!(!log.to_string().contains(&secret), "{log}");
    let out = server.admin_runs(&["audit", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = server.slipway_as(&kubeconfig, &["token", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().next().unwrap(),
        "error: the server refused the credentials"
    );
    let listed = server.ok(&["token", "list", "--user", "ana"]);
    assert!(listed.contains("revoked"), "{listed}");
}

#[test]
fn login_checks_the_token_and_merges_it_into_the_kubeconfig() {
    let server = Server::start();
    server.ok(&["user", "create", "bo"]);
    let secret = server
        .ok(&["token", "create", "--user", "bo"])
        .trim()
        .to_owned();
    let token_file = server.path("bo.token");
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();

    let kubeconfig = server.path("home-kube-config");
    let foreign = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://prod.example.com\nusers:\n- name: prod\n  user:\n    token: prod-token\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: prod\ncurrent-context: prod\npreferences: {}\n";
    std::fs::write(&kubeconfig, foreign).unwrap();

    let login = |token_args: &[&str]| {
        slipway(&[&["login", "--server", &server.url][..], token_args].concat())
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    };

    let refused = login(&["--token", "not-a-token"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert_eq!(
        stderr(&refused).trim(),
        "error: the server refused the token"
    );
    assert!(!stderr(&refused).contains("not-a-token"));
    assert_eq!(std::fs::read_to_string(&kubeconfig).unwrap(), foreign);

    let out = login(&["--token-file", token_file.to_str().unwrap()]);
    let said = ok(&["login"], &out);
    assert!(said.contains("as bo"), "{said}");
    assert!(!said.contains(&secret), "{said}");
    assert_eq!(mode(&kubeconfig), 0o600);
    let merged: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    assert_eq!(merged["current-context"], "slipway-bo");
    assert_eq!(merged["contexts"][0]["name"], "prod");
    assert_eq!(merged["users"][0]["user"]["token"], "prod-token");
    assert_eq!(merged["contexts"].as_sequence().unwrap().len(), 2);
    assert!(merged.get("preferences").is_some());

    // Who the kubeconfig now says we are, asked of the server.
    let me = slipway(&["whoami", "-o", "json"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let me: Value = serde_json::from_str(&ok(&["whoami"], &me)).unwrap();
    assert_eq!(me["username"], "bo");

    // Logging in again replaces the entries of the same name instead of adding more.
    ok(&["login"], &login(&["--token", &secret]));
    let merged: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    assert_eq!(merged["contexts"].as_sequence().unwrap().len(), 2);
}

/// Commands with bad input: each must exit 2 before anything is sent to the server.
/// `taken` is a file that `--write-kubeconfig` must not replace.
fn bad_invocations(taken: &str) -> Vec<Vec<String>> {
    let bad: &[&[&str]] = &[
        &["squad", "create"],
        &["squad", "create", "Web"],
        &["squad", "create", "new", "--bogus"],
        &["squad", "create", "new", "--namespace", "Not_A_Label"],
        &["squad", "create", "new", "--quota", "requests.cpu"],
        &["squad", "create", "new", "--quota", "requests.cpu=lots"],
        &[
            "squad", "create", "new", "--quota", "pods=1", "--quota", "pods=2",
        ],
        &["squad", "create", "new", "--default-request", "gpu=1"],
        &["squad", "create", "new", "--default-limit", "cpu=1,cpu=2"],
        &["squad", "create", "new", "--max-previews", "-1"],
        &["squad", "create", "new", "--preview-quota", "=1"],
        &["squad", "create", "new", "--preview-ttl", "3x"],
        &[
            "squad",
            "create",
            "new",
            "--preview-ttl",
            "8d",
            "--max-preview-ttl",
            "7d",
        ],
        &["squad", "list", "-o", "wide"],
        &["squad", "show"],
        &["squad", "show", "web", "extra"],
        &["squad", "set-quota", "web"],
        &["squad", "set-quota", "web", "pods"],
        &["squad", "set-quota", "web", "pods=1", "pods=2"],
        &["squad", "delete"],
        &["squad", "delete", "web", "--force=maybe"],
        &["squad", "add-member", "web"],
        &["squad", "add-member", "web", "a/b"],
        &["squad", "remove-member", "web"],
        &["user", "create"],
        &["user", "create", "a/b"],
        &["user", "create", "dee", "--root"],
        &["user", "delete"],
        &["token", "create", "--user", "cy", "--expires-in", "0m"],
        &[
            "token",
            "create",
            "--user",
            "cy",
            "--expires-in",
            "tomorrow",
        ],
        &["token", "create", "--user", "cy", "--force"],
        &[
            "token",
            "create",
            "--user",
            "cy",
            "--write-kubeconfig",
            taken,
        ],
        &["token", "list", "--user"],
        &["token", "revoke"],
        &["token", "revoke", "x", "--user", "a/b"],
        &["whoami", "--bogus"],
        &["repo", "add", "acme", "--squad", "web"],
        &["repo", "add", "acme/shop/x", "--squad", "web"],
        &["repo", "add", "acme/shop", "--squad", "Web"],
        &["repo", "add", "acme/shop", "--squad", "web"],
        &[
            "repo",
            "add",
            "acme/shop",
            "--squad",
            "web",
            "--webhook-secret-file",
            "/no/such/file",
            "--token-file",
            "/no/such/file",
        ],
        &[
            "repo",
            "add",
            "acme/shop",
            "--squad",
            "web",
            "--webhook-secret-file",
            taken,
            "--app-id",
            "7",
        ],
        &["repo", "remove", "acme/shop"],
        &["repo", "list", "--squad", "a/b"],
        &["env", "show"],
        &["env", "show", "Not_A_Name"],
        &["env", "extend", "pr-shop-1", "forever"],
        &["env", "extend", "pr-shop-1", "0m"],
        &["env", "logs", "pr-shop-1", "--tail", "lots"],
        &["env", "list", "-o", "wide"],
        &["env", "destroy"],
    ];
    bad.iter()
        .map(|args| args.iter().map(|a| (*a).to_owned()).collect())
        .collect()
}

/// `login` with bad input, given the server's URL.
fn bad_logins(url: &str) -> Vec<Vec<String>> {
    let bad: &[&[&str]] = &[
        &["login"],
        &["login", "--server", url],
        &[
            "login",
            "--server",
            url,
            "--token",
            "t",
            "--token-file",
            "f",
        ],
        &["login", "--server", url, "--token", " "],
        &["login", "--server", "ftp://127.0.0.1:1", "--token", "t"],
        &["login", "--server", url, "--token-file", "/no/such/file"],
    ];
    bad.iter()
        .map(|args| args.iter().map(|a| (*a).to_owned()).collect())
        .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn bad_input_exits_2_and_changes_nothing() {
    let server = Server::start();
    server.ok(&["squad", "create", "web"]);
    server.ok(&["user", "create", "cy"]);
    server.ok(&["token", "create", "--user", "cy"]);
    let taken = server.path("taken.kubeconfig");
    std::fs::write(&taken, "keep me").unwrap();
    let before = server.state("cy");
    for args in bad_invocations(taken.to_str().unwrap()) {
        let out = server.admin_runs(&strs(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    let kubeconfig = server.path("login-kubeconfig");
    for args in bad_logins(&server.url) {
        let out = slipway(&strs(&args))
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!kubeconfig.exists(), "{args:?} wrote a kubeconfig");
    }
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "keep me");
    assert_eq!(server.state("cy"), before);
}

/// A kubeconfig of a server that cannot be reached: port 1 on loopback, where nothing
/// listens, so the connection is refused at once.
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
    )
    .unwrap();
    kubeconfig
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    // Anything sent to this server would end in exit 3, not 2.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let taken = dir.path().join("taken");
    std::fs::write(&taken, "keep me").unwrap();
    for args in bad_invocations(taken.to_str().unwrap()) {
        let out = slipway(&strs(&args))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let written = dir.path().join("login-kubeconfig");
    for args in bad_logins("http://127.0.0.1:1") {
        let out = slipway(&strs(&args))
            .env("KUBECONFIG", &written)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!written.exists(), "{args:?} wrote a kubeconfig");
    }
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "keep me");
}

#[test]
fn an_unreachable_server_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    for args in [
        &["squad", "list"][..],
        &["user", "list"][..],
        &["token", "list"][..],
        &["whoami"][..],
        &["repo", "list", "--squad", "web"][..],
        &["env", "list"][..],
        &["env", "show", "pr-shop-1"][..],
    ] {
        let out = slipway(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = slipway(&["login", "--server", "http://127.0.0.1:1", "--token", "t"])
        .env("KUBECONFIG", dir.path().join("new"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!dir.path().join("new").exists());
}

#[test]
fn every_command_has_an_example_in_its_help() {
    for command in [
        &["squad", "create"][..],
        &["squad", "list"],
        &["squad", "show"],
        &["squad", "set-quota"],
        &["squad", "delete"],
        &["squad", "add-member"],
        &["squad", "remove-member"],
        &["user", "create"],
        &["user", "list"],
        &["user", "delete"],
        &["token", "create"],
        &["token", "list"],
        &["token", "revoke"],
        &["login"],
        &["whoami"],
        &["repo", "add"],
        &["repo", "list"],
        &["repo", "remove"],
        &["env", "list"],
        &["env", "show"],
        &["env", "extend"],
        &["env", "destroy"],
        &["env", "logs"],
        &["env", "open"],
    ] {
        let out = slipway(&[command, &["--help"]].concat()).output().unwrap();
        assert!(out.status.success(), "{command:?}");
        assert!(
            stdout(&out).contains("Example"),
            "{command:?}: {}",
            stdout(&out)
        );
    }
}

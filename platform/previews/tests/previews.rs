//! Previews end to end on a real control plane without containers: an in-process API
//! server over SQLite with its controllers and scheduler, hollow nodes that report pods
//! ready, the webhook served on loopback, and the local fake GitHub behind the real client.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use serde_json::Value;
use slipway_access::User;
use slipway_access::bootstrap::{CONTROLLERS, PLATFORM, SCHEDULER};
use slipway_apiserver::auth::acting_as;
use slipway_apiserver::{ApiState, bootstrap};
use slipway_clock::{Clock as _, ManualClock, SystemClock};
use slipway_fake_github::{FakeGitHub, Pull, deliver};
use slipway_hollow::{HollowNodes, Options as HollowOptions, Shape};
use slipway_platform_db::{Access, Db, NewRepo, NewSquad, NewUser, Phase, Preview, Role};
use slipway_previews::{Previews, RestConnect, Settings, SquadClient, UrlBase};
use slipway_store::Store;
use slipway_store_sqlite::SqliteStore;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/shop";
const SECRET: &[u8] = b"webhook-secret";
const CONFIG: &str = "preview:\n  manifests:\n    - deploy\n  expose:\n    service: web\n    port: 80\n  variables:\n    GREETING: hello\n";

fn web(sha_var: bool) -> String {
    let env = if sha_var { "${SLIPWAY_SHA}" } else { "none" };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: busybox\n        env:\n        - {{name: SHA, value: \"{env}\"}}\n        - {{name: GREETING, value: \"${{GREETING}}\"}}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: web}}\n  ports:\n  - port: 80\n"
    )
}

const API: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - name: api\n        image: busybox\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  selector: {app: api}\n  ports:\n  - port: 8080\n";

struct Cluster {
    state: Arc<ApiState>,
    admin: kube::Client,
    shutdown: CancellationToken,
    _nodes: HollowNodes,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn client_as(state: &Arc<ApiState>, name: &str, groups: &[&str]) -> kube::Client {
    let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    groups.push("system:authenticated".to_owned());
    let router = acting_as(
        slipway_apiserver::router(Arc::clone(state)),
        User {
            name: name.to_owned(),
            groups,
        },
    );
    kube::Client::new(router, "default")
}

async fn cluster(dir: &TempDir) -> Cluster {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path().join("state.db"), Default::default())
            .await
            .unwrap(),
    );
    let shutdown = CancellationToken::new();
    let state = Arc::new(
        ApiState::new(store, SystemClock::shared(), shutdown.clone())
            .with_authorization(Vec::new()),
    );
    bootstrap(&state).await.unwrap();
    state.authorization.as_ref().unwrap().ready().await;
    tokio::spawn(slipway_controllers::run(
        client_as(&state, CONTROLLERS, &[]),
        shutdown.child_token(),
    ));
    tokio::spawn(slipway_scheduler::run(
        client_as(&state, SCHEDULER, &[]),
        shutdown.child_token(),
    ));
    let admin = client_as(&state, "admin", &["system:masters"]);
    let nodes = HollowNodes::start(
        admin.clone(),
        [("n1".to_owned(), Shape::new("16", "64Gi", 110))],
        HollowOptions::default(),
    )
    .await
    .unwrap();
    Cluster {
        state,
        admin,
        shutdown,
        _nodes: nodes,
    }
}

struct Rig {
    idle_after: Duration,
    dir: TempDir,
    cluster: Cluster,
    github: FakeGitHub,
    clock: ManualClock,
    db: Db,
    previews: Arc<Previews>,
    /// Where the webhook is served.
    hook: String,
    workers: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.workers.cancel();
    }
}

/// How long previews may idle in these tests: long, so that only the test of sleeping sees
/// one fall asleep.
const IDLE: Duration = Duration::from_secs(365 * 86_400);

fn settings(idle_after: Duration) -> Settings {
    let mut settings = Settings::new(UrlBase {
        scheme: "http".to_owned(),
        domain: "preview.localhost".to_owned(),
        port: 8080,
    });
    settings.rollout_poll = Duration::from_millis(50);
    settings.idle_after = idle_after;
    settings
}

/// Starts the preview service and its webhook on loopback, as a server start does.
async fn serve(
    dir: &TempDir,
    cluster: &Cluster,
    github: &FakeGitHub,
    clock: &ManualClock,
    workers_too: bool,
    idle_after: Duration,
) -> (Db, Arc<Previews>, String, CancellationToken) {
    let state = Arc::clone(&cluster.state);
    let as_squad: SquadClient = Arc::new(move |squad: &str| {
        client_as(
            &state,
            "system:slipway-previews",
            &[&format!("squad:{squad}")],
        )
    });
    let db = Db::open(dir.path().join("platform.db"), Arc::new(clock.clone()))
        .await
        .unwrap();
    let previews = Previews::new(
        db.clone(),
        client_as(&cluster.state, PLATFORM, &[]),
        as_squad,
        Arc::new(RestConnect::new(&github.url())),
        Arc::new(clock.clone()),
        settings(idle_after),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!(
        "http://{}{}",
        listener.local_addr().unwrap(),
        slipway_previews::webhook::PATH
    );
    let app = slipway_previews::webhook::router(Arc::clone(&previews));
    let workers = CancellationToken::new();
    let stop = workers.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    if workers_too {
        previews.run(workers.clone());
    }
    (db, previews, hook, workers)
}

impl Rig {
    async fn new() -> Rig {
        Rig::with(3, IDLE).await
    }

    async fn with(max: u32, idle_after: Duration) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(&dir).await;
        let github = FakeGitHub::start().await;
        github.add_token("ghp_test", "slipway-bot");
        github.add_repo(REPO);
        let clock = ManualClock::at_epoch_2026();
        let db = Db::open(dir.path().join("platform.db"), Arc::new(clock.clone()))
            .await
            .unwrap();
        let mut squad = NewSquad::named("web");
        squad.previews = Some(slipway_platform_db::PreviewPolicy {
            max,
            ..Default::default()
        });
        db.create_squad("root", &squad).await.unwrap();
        db.create_user(
            "root",
            &NewUser {
                name: "ana".to_owned(),
                admin: false,
            },
        )
        .await
        .unwrap();
        db.set_member("root", "web", "ana", Role::Member)
            .await
            .unwrap();
        db.add_repo(
            "root",
            "web",
            &NewRepo {
                owner: "acme".to_owned(),
                name: "shop".to_owned(),
                webhook_secret: String::from_utf8(SECRET.to_vec()).unwrap(),
                access: Access::Token("ghp_test".to_owned()),
            },
        )
        .await
        .unwrap();
        let (db, previews, hook, workers) =
            serve(&dir, &cluster, &github, &clock, true, idle_after).await;
        Rig {
            idle_after,
            dir,
            cluster,
            github,
            clock,
            db,
            previews,
            hook,
            workers,
        }
    }

    /// Stops the preview service and starts it again on the same database, as a server
    /// restart does.
    async fn restart(&mut self, workers_too: bool) {
        self.workers.cancel();
        let (db, previews, hook, workers) = serve(
            &self.dir,
            &self.cluster,
            &self.github,
            &self.clock,
            workers_too,
            self.idle_after,
        )
        .await;
        self.db = db;
        self.previews = previews;
        self.hook = hook;
        self.workers = workers;
    }

    async fn send(&self, event: &str, id: &str, body: &Value) -> (u16, String) {
        deliver(&self.hook, SECRET, event, id, body).await
    }

    async fn preview(&self, pr: u64) -> Preview {
        self.db
            .previews()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.pr == pr)
            .unwrap_or_else(|| panic!("no preview of #{pr}"))
    }

    /// Waits (bounded) until the preview of `pr` is in `phase` at `sha`.
    async fn until(&self, pr: u64, phase: Phase, sha: Option<&str>) -> Preview {
        for _ in 0..600 {
            if let Some(p) = self
                .db
                .previews()
                .await
                .unwrap()
                .into_iter()
                .find(|p| p.pr == pr)
                && p.status.phase == phase
                && sha.is_none_or(|sha| p.status.head_sha == sha)
                && p.generation == p.status.observed
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "#{pr} never reached {phase:?}: {:?}",
            self.db.previews().await.unwrap()
        );
    }

    fn commit(&self, sha: &str, with_api: bool) {
        self.github
            .put_file(REPO, sha, ".slipway.yaml", CONFIG.as_bytes());
        self.github
            .put_file(REPO, sha, "deploy/web.yaml", web(true).as_bytes());
        if with_api {
            self.github
                .put_file(REPO, sha, "deploy/api.yaml", API.as_bytes());
        }
    }

    fn pull(number: u64, sha: &str) -> Pull {
        Pull {
            number,
            head_sha: sha.to_owned(),
            head_ref: format!("feature-{number}"),
            author: "ana".to_owned(),
            fork: false,
            labels: Vec::new(),
            draft: false,
        }
    }

    async fn deployments(&self, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> =
            Api::<Deployment>::namespaced(self.cluster.admin.clone(), namespace)
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|d| d.metadata.name)
                .collect();
        names.sort();
        names
    }

    async fn namespace_gone(&self, namespace: &str) -> bool {
        for _ in 0..300 {
            let found = Api::<Namespace>::all(self.cluster.admin.clone())
                .get_opt(namespace)
                .await
                .unwrap();
            if found.is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn ours(&self, pr: u64) -> Vec<String> {
        self.github
            .comments(REPO, pr)
            .into_iter()
            .filter(|c| c.body.starts_with(slipway_previews::feedback::MARKER))
            .map(|c| c.body)
            .collect()
    }
}

#[tokio::test]
async fn a_pull_request_gets_a_preview_that_follows_its_commits_and_goes_away() {
    let rig = Rig::new().await;
    rig.commit("a1", true);
    let opened = rig.github.open_pull(REPO, Rig::pull(4, "a1"));
    let (code, body) = rig.send("pull_request", "d-1", &opened).await;
    assert_eq!(code, 202, "{body}");

    let preview = rig.until(4, Phase::Ready, Some("a1")).await;
    let namespace = preview.namespace.clone();
    assert_eq!(namespace, "pr-shop-4");
    let url = "http://pr-shop-4.preview.localhost:8080/";
    assert_eq!(preview.status.url.as_deref(), Some(url));
    assert_eq!(rig.deployments(&namespace).await, ["api", "web"]);
    // The manifests' variables were substituted.
    let web = Api::<Deployment>::namespaced(rig.cluster.admin.clone(), &namespace)
        .get("web")
        .await
        .unwrap();
    let env = web.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    assert_eq!(env[0].value.as_deref(), Some("a1"));
    assert_eq!(env[1].value.as_deref(), Some("hello"));
    // The namespace is the squad's, with the squad's preview quota, and labelled.
    let ns = Api::<Namespace>::all(rig.cluster.admin.clone())
        .get(&namespace)
        .await
        .unwrap();
    let labels = ns.metadata.labels.unwrap();
    assert_eq!(labels["slipway.dev/squad"], "web");
    assert_eq!(labels["slipway.dev/pr"], "4");
    assert_eq!(labels["slipway.dev/sha"], "a1");
    let expires = preview.status.expires_at.unwrap().as_second();
    assert_eq!(labels["slipway.dev/expires-at"], expires.to_string());
    let quota = Api::<ResourceQuota>::namespaced(rig.cluster.admin.clone(), &namespace)
        .get("squad-quota")
        .await
        .unwrap();
    assert_eq!(quota.spec.unwrap().hard.unwrap()["pods"].0, "20");
    let ingress = Api::<Ingress>::namespaced(rig.cluster.admin.clone(), &namespace)
        .get("slipway-preview")
        .await
        .unwrap();
    assert_eq!(
        ingress.spec.unwrap().rules.unwrap()[0].host.as_deref(),
        Some("pr-shop-4.preview.localhost")
    );

    // Feedback: one sticky comment with the URL, a transient Deployment that succeeded with
    // its URL, and a green commit status.
    let comments = rig.ours(4);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].contains("Preview ready") && comments[0].contains(url),
        "{}",
        comments[0]
    );
    let deployments = rig.github.deployments(REPO);
    assert_eq!(deployments.len(), 1);
    let deployment = &deployments[0];
    assert_eq!(deployment.sha, "a1");
    assert!(deployment.transient_environment && !deployment.auto_merge);
    assert!(deployment.required_contexts.is_empty());
    let states: Vec<&str> = deployment
        .statuses
        .iter()
        .map(|s| s.state.as_str())
        .collect();
    assert_eq!(states, ["in_progress", "success"]);
    assert_eq!(deployment.statuses[1].environment_url.as_deref(), Some(url));
    let statuses = rig.github.commit_statuses(REPO, "a1");
    assert_eq!(statuses.last().unwrap().state, "success");
    assert_eq!(statuses.last().unwrap().context, "slipway/preview");

    // A new commit without the API: rolled to it, the API pruned, the same comment edited.
    rig.commit("b2", false);
    let pushed = rig.github.push(REPO, 4, "b2");
    assert_eq!(rig.send("pull_request", "d-2", &pushed).await.0, 202);
    let preview = rig.until(4, Phase::Ready, Some("b2")).await;
    assert_eq!(preview.status.deployed_sha.as_deref(), Some("b2"));
    assert_eq!(rig.deployments(&namespace).await, ["web"]);
    assert_eq!(rig.ours(4).len(), 1);
    let deployments = rig.github.deployments(REPO);
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[0].statuses.last().unwrap().state, "inactive");

    // A label on the same commit deploys nothing new.
    let labeled = rig.github.label(REPO, 4, "needs-review");
    assert_eq!(rig.send("pull_request", "d-3", &labeled).await.0, 202);
    rig.until(4, Phase::Ready, Some("b2")).await;
    assert_eq!(rig.github.deployments(REPO).len(), 2);

    // Closed: the namespace goes, the Deployment is inactive, the comment says so.
    let closed = rig.github.close_pull(REPO, 4, true);
    assert_eq!(rig.send("pull_request", "d-4", &closed).await.0, 202);
    rig.until(4, Phase::Destroyed, None).await;
    assert!(rig.namespace_gone(&namespace).await);
    let deployments = rig.github.deployments(REPO);
    assert_eq!(deployments[1].statuses.last().unwrap().state, "inactive");
    let comments = rig.ours(4);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].contains("Preview destroyed"), "{}", comments[0]);
}

#[tokio::test]
async fn deliveries_are_checked_stored_once_and_answered() {
    let rig = Rig::new().await;
    rig.commit("a1", false);
    // A pull request of another repository, which the periodic re-check does not see.
    rig.github.add_repo("acme/other");
    let other = rig.github.open_pull("acme/other", Rig::pull(7, "a1"));
    let mut stray = other.clone();
    stray["repository"]["full_name"] = REPO.into();
    // A wrong signature: 401, nothing stored.
    let (code, body) = deliver(&rig.hook, b"not-the-secret", "pull_request", "x-1", &stray).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("signature"), "{body}");
    assert!(rig.db.previews().await.unwrap().is_empty());
    // A repository nobody registered: 404.
    let (code, body) = rig.send("pull_request", "x-2", &other).await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("acme/other is not registered"), "{body}");
    // A ping is answered.
    let (code, body) = rig.send("ping", "x-3", &rig.github.ping(REPO)).await;
    assert_eq!((code, body.contains("pong")), (202, true), "{body}");
    // An event slipway does not use is acknowledged and ignored.
    let (code, _) = rig.send("star", "x-4", &rig.github.ping(REPO)).await;
    assert_eq!(code, 202);
    assert!(rig.db.previews().await.unwrap().is_empty());

    let opened = rig.github.open_pull(REPO, Rig::pull(7, "a1"));
    assert_eq!(rig.send("pull_request", "x-5", &opened).await.0, 202);
    let ready = rig.until(7, Phase::Ready, Some("a1")).await;
    // The same delivery again does nothing at all.
    let (code, body) = rig.send("pull_request", "x-5", &opened).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("duplicate"), "{body}");
    assert_eq!(rig.preview(7).await.generation, ready.generation);
    assert_eq!(rig.github.deployments(REPO).len(), 1);
}

#[tokio::test]
async fn a_burst_of_events_makes_one_preview_and_one_comment() {
    let rig = Rig::new().await;
    rig.commit("a1", false);
    let mut pull = Rig::pull(8, "a1");
    pull.labels = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    let opened = rig.github.open_pull(REPO, pull);
    let mut bodies = vec![("o".to_owned(), opened.clone())];
    for label in ["a", "b", "c"] {
        let mut labeled = opened.clone();
        labeled["action"] = "labeled".into();
        labeled["label"] = serde_json::json!({ "name": label });
        bodies.push((format!("l-{label}"), labeled));
    }
    let sends = bodies
        .iter()
        .rev()
        .map(|(id, body)| rig.send("pull_request", id, body));
    for (code, body) in futures::future::join_all(sends).await {
        assert_eq!(code, 202, "{body}");
    }
    rig.until(8, Phase::Ready, Some("a1")).await;
    assert_eq!(rig.db.previews().await.unwrap().len(), 1);
    assert_eq!(rig.github.deployments(REPO).len(), 1);
    assert_eq!(rig.ours(8).len(), 1);
}

#[tokio::test]
async fn a_broken_config_is_reported_on_the_pull_request() {
    let rig = Rig::new().await;
    rig.github.put_file(
        REPO,
        "bad",
        ".slipway.yaml",
        b"preview:\n  manifests: [deploy]\n  expose: {service: web, port: 80}\n  ttl: forever\n",
    );
    let opened = rig.github.open_pull(REPO, Rig::pull(5, "bad"));
    rig.send("pull_request", "b-1", &opened).await;
    let failed = rig.until(5, Phase::Failed, Some("bad")).await;
    assert!(
        failed.status.message.starts_with(".slipway.yaml:4:"),
        "{}",
        failed.status.message
    );
    let comments = rig.ours(5);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].contains("Preview failed") && comments[0].contains(".slipway.yaml:4:"),
        "{}",
        comments[0]
    );
    assert_eq!(
        rig.github
            .commit_statuses(REPO, "bad")
            .last()
            .unwrap()
            .state,
        "failure"
    );
    assert_eq!(
        rig.github.deployments(REPO)[0]
            .statuses
            .last()
            .unwrap()
            .state,
        "failure"
    );

    // An unknown variable is an error at its line, not an empty string.
    rig.commit("c3", false);
    rig.github.put_file(
        REPO,
        "c3",
        "deploy/extra.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: ${NOPE}\n",
    );
    let pushed = rig.github.push(REPO, 5, "c3");
    rig.send("pull_request", "b-2", &pushed).await;
    let failed = rig.until(5, Phase::Failed, Some("c3")).await;
    assert_eq!(
        failed.status.message,
        "deploy/extra.yaml:6:6: unknown variable ${NOPE}"
    );

    // The repository's page shows its deliveries, newest first, and the config error.
    let page = "/slipway/v1/squads/web/repos/acme/shop";
    let (code, repo) = call(&rig, "ana", &["squad:web"], "GET", page, "").await;
    assert_eq!(code, 200, "{repo}");
    let deliveries: Vec<_> = repo["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["delivery"].as_str().unwrap(),
                d["event"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        deliveries,
        [("b-2", "pull_request"), ("b-1", "pull_request")]
    );
    assert_eq!(repo["configErrors"][0]["pr"], 5);
    assert_eq!(
        repo["configErrors"][0]["message"],
        "deploy/extra.yaml:6:6: unknown variable ${NOPE}"
    );
    assert!(!repo.to_string().contains("ghp_test"), "{repo}");
    let (code, _) = call(
        &rig,
        "ana",
        &["squad:web"],
        "GET",
        "/slipway/v1/squads/web/repos/acme/nope",
        "",
    )
    .await;
    assert_eq!(code, 404);

    // A fixed commit deploys, and the error is gone from the page.
    rig.commit("d4", false);
    let pushed = rig.github.push(REPO, 5, "d4");
    rig.send("pull_request", "b-3", &pushed).await;
    rig.until(5, Phase::Ready, Some("d4")).await;
    let (_, repo) = call(&rig, "ana", &["squad:web"], "GET", page, "").await;
    assert_eq!(repo["configErrors"], serde_json::json!([]));
}

#[tokio::test]
async fn a_fork_waits_for_a_squad_member() {
    let rig = Rig::new().await;
    rig.commit("f1", false);
    let mut pull = Rig::pull(9, "f1");
    pull.fork = true;
    pull.author = "mallory".to_owned();
    let opened = rig.github.open_pull(REPO, pull);
    rig.send("pull_request", "f-1", &opened).await;
    rig.until(9, Phase::AwaitingApproval, Some("f1")).await;
    assert!(rig.github.deployments(REPO).is_empty());
    assert!(rig.ours(9)[0].contains("fork"));

    // Someone outside the squad cannot approve it.
    let comment = rig.github.comment(REPO, 9, "mallory", "/slipway deploy");
    rig.send("issue_comment", "f-2", &comment).await;
    rig.until(9, Phase::AwaitingApproval, Some("f1")).await;
    let replies = rig.github.comments(REPO, 9);
    assert!(
        replies
            .iter()
            .any(|c| c.body.contains("@mallory only members of squad `web`")),
        "{replies:?}"
    );

    // A member can.
    let comment = rig.github.comment(REPO, 9, "ana", "/slipway deploy");
    rig.send("issue_comment", "f-3", &comment).await;
    rig.until(9, Phase::Ready, Some("f1")).await;
}

#[tokio::test]
async fn previews_expire_after_a_warning_unless_extended_or_kept() {
    let rig = Rig::new().await;
    rig.commit("t1", false);
    let opened = rig.github.open_pull(REPO, Rig::pull(11, "t1"));
    rig.send("pull_request", "t-1", &opened).await;
    let ready = rig.until(11, Phase::Ready, Some("t1")).await;
    let deployed = ready.status.deployed_at.unwrap();
    assert_eq!(
        ready.status.expires_at.unwrap().as_second() - deployed.as_second(),
        24 * 3600
    );

    // An hour before expiry, one warning.
    rig.clock.advance(Duration::from_secs(23 * 3600 + 1));
    rig.previews.reconcile(ready.id).await.unwrap();
    rig.previews.reconcile(ready.id).await.unwrap();
    let warnings: Vec<_> = rig
        .github
        .comments(REPO, 11)
        .into_iter()
        .filter(|c| c.body.contains("expires"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");

    // A member extends it by two hours from now.
    let comment = rig.github.comment(REPO, 11, "ana", "/slipway extend 2h");
    rig.send("issue_comment", "t-2", &comment).await;
    rig.until(11, Phase::Ready, None).await;
    let extended = rig.preview(11).await;
    assert_eq!(
        extended.status.expires_at.unwrap().as_second(),
        deployed.as_second() + 25 * 3600 + 1
    );
    assert_eq!(extended.status.phase, Phase::Ready);

    // Past the new expiry it is destroyed like a close.
    rig.clock.advance(Duration::from_secs(2 * 3600 + 1));
    rig.previews.reconcile(ready.id).await.unwrap();
    let gone = rig.preview(11).await;
    assert_eq!(
        (gone.status.phase, gone.status.message.as_str()),
        (Phase::Destroyed, "expired")
    );
    assert!(rig.namespace_gone(&gone.namespace).await);
}

#[tokio::test]
async fn the_keep_label_pins_a_preview() {
    let rig = Rig::new().await;
    rig.commit("k1", false);
    let mut pull = Rig::pull(12, "k1");
    pull.labels = vec!["slipway:keep".to_owned()];
    let opened = rig.github.open_pull(REPO, pull);
    rig.send("pull_request", "k-1", &opened).await;
    let ready = rig.until(12, Phase::Ready, Some("k1")).await;
    assert!(ready.status.pinned);
    rig.clock.advance(Duration::from_secs(30 * 24 * 3600));
    rig.previews.reconcile(ready.id).await.unwrap();
    assert_eq!(rig.preview(12).await.status.phase, Phase::Ready);
    assert!(rig.ours(12)[0].contains("slipway:keep"));
}

#[tokio::test]
async fn a_delivery_acknowledged_before_a_crash_is_carried_out_after_restart() {
    let mut rig = Rig::new().await;
    // The webhook answers, but no worker runs: the server dies right after acknowledging.
    rig.restart(false).await;
    rig.commit("r1", false);
    let opened = rig.github.open_pull(REPO, Rig::pull(13, "r1"));
    assert_eq!(rig.send("pull_request", "r-1", &opened).await.0, 202);
    assert_eq!(rig.preview(13).await.status.phase, Phase::Pending);
    rig.restart(true).await;
    rig.until(13, Phase::Ready, Some("r1")).await;
}

#[tokio::test]
async fn a_pull_request_closed_while_the_server_was_down_is_torn_down() {
    let mut rig = Rig::new().await;
    rig.commit("s1", false);
    let opened = rig.github.open_pull(REPO, Rig::pull(14, "s1"));
    rig.send("pull_request", "s-1", &opened).await;
    let ready = rig.until(14, Phase::Ready, Some("s1")).await;
    rig.workers.cancel();
    // Closed on GitHub; the delivery never arrives.
    rig.github.close_pull(REPO, 14, false);
    // An open pull request nobody told us about is found too.
    rig.github.open_pull(REPO, Rig::pull(15, "s1"));
    // A preview namespace no preview owns (its row lost) is swept too; a squad's own
    // namespace without the preview label is not.
    for (name, labels) in [
        (
            "pr-ghost-1",
            serde_json::json!({ "slipway.dev/squad": "web", "slipway.dev/preview": "pr-ghost-1" }),
        ),
        (
            "web-data",
            serde_json::json!({ "slipway.dev/squad": "web" }),
        ),
    ] {
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": labels },
        }))
        .unwrap();
        Api::<Namespace>::all(rig.cluster.admin.clone())
            .create(&Default::default(), &namespace)
            .await
            .unwrap();
    }
    rig.restart(true).await;
    rig.until(14, Phase::Destroyed, None).await;
    assert!(rig.namespace_gone(&ready.namespace).await);
    assert!(rig.namespace_gone("pr-ghost-1").await);
    let kept = Api::<Namespace>::all(rig.cluster.admin.clone())
        .get_opt("web-data")
        .await
        .unwrap();
    assert!(kept.is_some_and(|ns| ns.metadata.deletion_timestamp.is_none()));
    rig.until(15, Phase::Ready, Some("s1")).await;
}

#[tokio::test]
async fn over_budget_a_preview_waits_for_a_slot() {
    let rig = Rig::with(1, IDLE).await;
    rig.commit("q1", false);
    let first = rig.github.open_pull(REPO, Rig::pull(1, "q1"));
    rig.send("pull_request", "q-1", &first).await;
    rig.until(1, Phase::Ready, Some("q1")).await;
    let second = rig.github.open_pull(REPO, Rig::pull(2, "q1"));
    rig.send("pull_request", "q-2", &second).await;
    rig.until(2, Phase::Queued, Some("q1")).await;
    assert!(
        rig.ours(2)[0].contains("preview slots"),
        "{}",
        rig.ours(2)[0]
    );
    let closed = rig.github.close_pull(REPO, 1, false);
    rig.send("pull_request", "q-3", &closed).await;
    rig.until(2, Phase::Ready, Some("q1")).await;
}

#[tokio::test]
async fn a_manifest_outside_the_preview_is_refused() {
    let rig = Rig::new().await;
    rig.commit("n1", false);
    rig.github.put_file(
        REPO,
        "n1",
        "deploy/ns.yaml",
        b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: evil\n",
    );
    let opened = rig.github.open_pull(REPO, Rig::pull(16, "n1"));
    rig.send("pull_request", "n-1", &opened).await;
    let failed = rig.until(16, Phase::Failed, Some("n1")).await;
    assert!(
        failed.status.message.contains("cluster-scoped"),
        "{}",
        failed.status.message
    );
    assert!(
        Api::<Namespace>::all(rig.cluster.admin.clone())
            .get_opt("evil")
            .await
            .unwrap()
            .is_none()
    );
}

async fn call(
    rig: &Rig,
    user: &str,
    groups: &[&str],
    method: &str,
    uri: &str,
    body: &str,
) -> (u16, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    request.extensions_mut().insert(User {
        name: user.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    });
    let response = slipway_previews::api::router(Arc::clone(&rig.previews))
        .oneshot(request)
        .await
        .unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_api_lists_extends_and_destroys_a_squads_previews() {
    let rig = Rig::new().await;
    rig.commit("p1", false);
    let opened = rig.github.open_pull(REPO, Rig::pull(21, "p1"));
    rig.send("pull_request", "p-1", &opened).await;
    let ready = rig.until(21, Phase::Ready, Some("p1")).await;
    let ana = ["squad:web"];

    let (code, list) = call(&rig, "ana", &ana, "GET", "/slipway/v1/previews", "").await;
    assert_eq!(code, 200);
    assert_eq!(list["items"][0]["namespace"], "pr-shop-21");
    assert_eq!(list["items"][0]["title"], "Change 21");
    assert_eq!(list["items"][0]["author"], "ana");
    assert_eq!(
        list["items"][0]["prUrl"],
        format!("https://github.com/{REPO}/pull/21")
    );
    assert_eq!(list["items"][0]["sleeping"], false);
    assert_eq!(
        list["items"][0]["url"],
        "http://pr-shop-21.preview.localhost:8080/"
    );
    // Someone in no squad sees none; an administrator sees all.
    let (_, list) = call(&rig, "bo", &[], "GET", "/slipway/v1/previews", "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let (_, list) = call(
        &rig,
        "root",
        &["slipway:admins"],
        "GET",
        "/slipway/v1/previews",
        "",
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // Another squad's path does not find it.
    let (code, status) = call(
        &rig,
        "ana",
        &ana,
        "GET",
        "/slipway/v1/squads/data/previews/pr-shop-21",
        "",
    )
    .await;
    assert_eq!(code, 404, "{status}");
    assert_eq!(status["kind"], "Status");

    // Extending: bad durations and more than the squad's maximum are refused.
    let extend = "/slipway/v1/squads/web/previews/pr-shop-21/extend";
    for (body, needle) in [
        (r#"{"duration":"forever"}"#, "invalid duration"),
        (r#"{"duration":"30d"}"#, "more than squad"),
        (r#"{"until":"x"}"#, "unknown field"),
    ] {
        let (code, status) = call(&rig, "ana", &ana, "POST", extend, body).await;
        assert!(code == 422 || code == 400, "{body}: {code} {status}");
        assert!(
            status["message"].as_str().unwrap().contains(needle),
            "{status}"
        );
    }
    assert_eq!(rig.preview(21).await.extended_until, None);
    let (code, answer) = call(&rig, "ana", &ana, "POST", extend, r#"{"duration":"3d"}"#).await;
    assert_eq!(code, 200, "{answer}");
    let until = rig.preview(21).await.extended_until.unwrap();
    assert_eq!(answer["status"]["expiresAt"], until.to_string());
    // Listed with its new expiry at once, before the reconciler has written it.
    let (_, list) = call(&rig, "ana", &ana, "GET", "/slipway/v1/previews", "").await;
    assert_eq!(list["items"][0]["status"]["expiresAt"], until.to_string());
    assert_eq!(
        until.as_second() - ready.status.deployed_at.unwrap().as_second(),
        3 * 86_400
    );
    rig.until(21, Phase::Ready, None).await;
    assert_eq!(rig.preview(21).await.status.expires_at, Some(until));
    // The namespace's label follows the extension.
    let ns = Api::<Namespace>::all(rig.cluster.admin.clone())
        .get("pr-shop-21")
        .await
        .unwrap();
    assert_eq!(
        ns.metadata.labels.unwrap()["slipway.dev/expires-at"],
        until.as_second().to_string()
    );

    // Destroying: the namespace goes; a push brings it back.
    let (code, _) = call(
        &rig,
        "ana",
        &ana,
        "DELETE",
        "/slipway/v1/squads/web/previews/pr-shop-21",
        "",
    )
    .await;
    assert_eq!(code, 202);
    rig.until(21, Phase::Destroyed, None).await;
    assert!(rig.namespace_gone("pr-shop-21").await);
    rig.commit("p2", false);
    let pushed = rig.github.push(REPO, 21, "p2");
    rig.send("pull_request", "p-2", &pushed).await;
    rig.until(21, Phase::Ready, Some("p2")).await;

    // Repositories: listed without secrets; removal refused while a preview lives.
    let (code, repos) = call(&rig, "ana", &ana, "GET", "/slipway/v1/squads/web/repos", "").await;
    assert_eq!(code, 200);
    assert_eq!(repos["items"][0]["access"], "token");
    assert!(
        !repos.to_string().contains("ghp_test") && !repos.to_string().contains("webhook-secret")
    );
    let (code, status) = call(
        &rig,
        "root",
        &["slipway:admins"],
        "DELETE",
        "/slipway/v1/squads/web/repos/acme/shop",
        "",
    )
    .await;
    assert_eq!(code, 409, "{status}");
    let (code, status) = call(
        &rig,
        "root",
        &["slipway:admins"],
        "POST",
        "/slipway/v1/squads/web/repos",
        r#"{"owner":"acme","name":"x","webhookSecret":"","access":{"token":"t"}}"#,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("webhookSecret"),
        "{status}"
    );
}

#[tokio::test]
async fn an_idle_preview_sleeps_and_a_request_wakes_it() {
    let rig = Rig::with(3, Duration::from_secs(2 * 3600)).await;
    rig.commit("z1", false);
    let opened = rig.github.open_pull(REPO, Rig::pull(22, "z1"));
    rig.send("pull_request", "z-1", &opened).await;
    let ready = rig.until(22, Phase::Ready, Some("z1")).await;
    let replicas = |rig: &Rig| {
        let api = Api::<Deployment>::namespaced(rig.cluster.admin.clone(), "pr-shop-22");
        async move { api.get("web").await.unwrap().spec.unwrap().replicas }
    };

    // A request an hour in keeps it awake past two hours from its deploy.
    rig.clock.advance(Duration::from_secs(3600));
    let node = ["system:nodes"];
    let (code, _) = call(
        &rig,
        "system:node:n1",
        &node,
        "POST",
        "/slipway/v1/previews/pr-shop-22/touch",
        "{}",
    )
    .await;
    assert_eq!(code, 200);
    rig.clock.advance(Duration::from_secs(3600 + 60));
    rig.previews.reconcile(ready.id).await.unwrap();
    assert_eq!(rig.preview(22).await.status.phase, Phase::Ready);

    // Two hours without a request: asleep, scaled to zero, the comment says so.
    rig.clock.advance(Duration::from_secs(3600));
    rig.previews.reconcile(ready.id).await.unwrap();
    assert_eq!(rig.preview(22).await.status.phase, Phase::Sleeping);
    assert_eq!(replicas(&rig).await, Some(0));
    assert!(rig.ours(22)[0].contains("asleep"), "{}", rig.ours(22)[0]);

    // The gateway's report of a request wakes it.
    let (code, _) = call(
        &rig,
        "system:node:n1",
        &node,
        "POST",
        "/slipway/v1/previews/pr-shop-22/touch",
        "{}",
    )
    .await;
    assert_eq!(code, 200);
    rig.until(22, Phase::Ready, Some("z1")).await;
    assert_eq!(replicas(&rig).await, Some(1));
    // Waking posts no new deployment status: the URL never changed.
    assert_eq!(rig.github.deployments(REPO)[0].statuses.len(), 2);
    let (code, _) = call(
        &rig,
        "system:node:n1",
        &node,
        "POST",
        "/slipway/v1/previews/nope/touch",
        "{}",
    )
    .await;
    assert_eq!(code, 404);

    // Asleep again, a squad member wakes it by hand (the directory lets members `create`
    // under their squad's previews; its tests hold that).
    rig.clock.advance(Duration::from_secs(2 * 3600 + 60));
    rig.previews.reconcile(ready.id).await.unwrap();
    assert_eq!(rig.preview(22).await.status.phase, Phase::Sleeping);
    let wake = "/slipway/v1/squads/web/previews/pr-shop-22/wake";
    let (code, _) = call(
        &rig,
        "ana",
        &["squad:web"],
        "POST",
        "/slipway/v1/squads/data/previews/pr-shop-22/wake",
        "{}",
    )
    .await;
    assert_eq!(code, 404, "not under another squad's path");
    let (code, answer) = call(&rig, "ana", &["squad:web"], "POST", wake, "{}").await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["sleeping"], true, "it is woken after the answer");
    rig.until(22, Phase::Ready, Some("z1")).await;
    assert_eq!(replicas(&rig).await, Some(1));
}

#[tokio::test]
async fn the_recheck_leaves_a_repository_low_on_rate_limit_until_it_resets() {
    let rig = Rig::new().await;
    rig.commit("r1", false);
    let now = || {
        u64::try_from(
            jiff::Timestamp::try_from(rig.clock.now())
                .unwrap()
                .as_second(),
        )
        .unwrap()
    };
    // 100 of 5,000 requests left: the client learns it from the first answers.
    rig.github.set_rate_limit(100, now() + 600);
    rig.github.open_pull(REPO, Rig::pull(31, "r1"));
    rig.previews.recheck().await.unwrap();
    rig.until(31, Phase::Ready, Some("r1")).await;
    // Now low, the re-check leaves the repository alone: a pull request nobody delivered
    // is not looked for.
    rig.github.open_pull(REPO, Rig::pull(32, "r1"));
    let listed = |rig: &Rig| {
        rig.github
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == format!("/repos/{REPO}/pulls"))
            .count()
    };
    let before = listed(&rig);
    rig.previews.recheck().await.unwrap();
    assert_eq!(listed(&rig), before, "no listing while the limit is low");
    assert!(rig.db.previews().await.unwrap().iter().all(|p| p.pr != 32));
    // Once the window has reset, the re-check goes on.
    rig.clock.advance(Duration::from_secs(601));
    rig.previews.recheck().await.unwrap();
    rig.until(32, Phase::Ready, Some("r1")).await;
}

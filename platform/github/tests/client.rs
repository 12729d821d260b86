//! The real client against the local fake GitHub: every call with a token and as an App,
//! GitHub's errors classified, pages followed, failures and rate limits retried.

use std::sync::Arc;
use std::time::Duration;

use slipway_fake_github::{FakeGitHub, Pull};
use slipway_github::client::{Credentials, Options, connect};
use slipway_github::faults::FaultyGitHub;
use slipway_github::{
    CommitState, CommitStatus, DeploymentState, DeploymentStatus, Error, GitHub, NewDeployment,
    PullState, RepoRef,
};

const REPO: &str = "acme/shop";

fn repo() -> RepoRef {
    RepoRef {
        owner: "acme".to_owned(),
        name: "shop".to_owned(),
    }
}

fn options(github: &FakeGitHub) -> Options {
    Options {
        base_uri: github.url(),
        max_wait: Duration::from_secs(5),
        ..Options::default()
    }
}

fn pull(number: u64, sha: &str) -> Pull {
    Pull {
        number,
        head_sha: sha.to_owned(),
        head_ref: format!("branch-{number}"),
        author: "ana".to_owned(),
        fork: false,
        labels: vec!["slipway:keep".to_owned()],
        draft: false,
    }
}

/// A client of `github` with the token it knows.
fn with_token(github: &FakeGitHub) -> Arc<dyn GitHub> {
    connect(
        &options(github),
        Credentials::Token("ghp_good".to_owned()),
        &repo(),
    )
    .unwrap()
}

async fn fake() -> FakeGitHub {
    let github = FakeGitHub::start().await;
    github.add_repo(REPO);
    github.add_token("ghp_good", "slipway-bot");
    github
}

async fn every_call(github: &FakeGitHub, client: &dyn GitHub, login: &str) {
    let repo = repo();
    assert_eq!(client.login().await.unwrap(), login);
    github.put_file(REPO, "s1", ".slipway.yaml", b"preview: {}\n");
    github.put_file(REPO, "s1", "deploy/b.yaml", b"b");
    github.put_file(REPO, "s1", "deploy/a.yml", b"a");
    github.put_file(REPO, "s1", "deploy/sub/c.yaml", b"c");
    assert_eq!(
        client
            .file(&repo, ".slipway.yaml", "s1")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"preview: {}\n"[..])
    );
    assert_eq!(
        client.file(&repo, ".slipway.yaml", "other").await.unwrap(),
        None
    );
    assert_eq!(client.file(&repo, "deploy", "s1").await.unwrap(), None);
    assert_eq!(
        client.dir(&repo, "deploy", "s1").await.unwrap(),
        Some(vec!["deploy/a.yml".to_owned(), "deploy/b.yaml".to_owned()])
    );
    assert_eq!(client.dir(&repo, "nope", "s1").await.unwrap(), None);

    github.open_pull(REPO, pull(3, "s1"));
    let found = client.pull(&repo, 3).await.unwrap().unwrap();
    assert_eq!(
        (found.number, found.state, found.head_sha.as_str()),
        (3, PullState::Open, "s1")
    );
    assert_eq!(found.labels, ["slipway:keep"]);
    assert_eq!(found.title, "Change 3");
    assert_eq!(found.html_url, format!("https://github.com/{REPO}/pull/3"));
    assert!(!found.is_fork());
    assert_eq!(client.pull(&repo, 99).await.unwrap(), None);
    github.close_pull(REPO, 3, true);
    let closed = client.pull(&repo, 3).await.unwrap().unwrap();
    assert_eq!((closed.state, closed.merged), (PullState::Closed, true));

    let posted = client.create_comment(&repo, 3, "hello").await.unwrap();
    assert_eq!(posted.author, login);
    client
        .update_comment(&repo, posted.id, "edited")
        .await
        .unwrap();
    let comments = client.comments(&repo, 3).await.unwrap();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].body, "edited");
    assert!(matches!(
        client.update_comment(&repo, 1, "x").await,
        Err(Error::NotFound(_))
    ));

    let id = client
        .create_deployment(
            &repo,
            &NewDeployment {
                sha: "s1".to_owned(),
                environment: "pr-shop-3".to_owned(),
                task: "preview-pr-3".to_owned(),
                description: "d".repeat(300),
            },
        )
        .await
        .unwrap();
    client
        .deployment_status(
            &repo,
            id,
            &DeploymentStatus {
                state: DeploymentState::Success,
                environment_url: Some("http://pr-shop-3.preview.localhost:8080/".to_owned()),
                log_url: None,
                description: "é".repeat(200),
            },
        )
        .await
        .unwrap();
    let deployment = github.deployments(REPO).pop().unwrap();
    assert!(deployment.transient_environment && !deployment.auto_merge);
    assert!(deployment.required_contexts.is_empty());
    assert_eq!(
        (deployment.environment.as_str(), deployment.task.as_str()),
        ("pr-shop-3", "preview-pr-3")
    );
    assert_eq!(deployment.statuses[0].state, "success");
    assert_eq!(deployment.statuses[0].description.chars().count(), 140);
    assert_eq!(
        deployment.statuses[0].environment_url.as_deref(),
        Some("http://pr-shop-3.preview.localhost:8080/")
    );
    client
        .commit_status(
            &repo,
            "s1",
            &CommitStatus {
                state: CommitState::Pending,
                context: "slipway/preview".to_owned(),
                description: "Deploying".to_owned(),
                target_url: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(github.commit_statuses(REPO, "s1")[0].state, "pending");
    assert!(
        github
            .requests()
            .iter()
            .all(|r| r.api_version.as_deref() == Some(slipway_github::client::API_VERSION)),
        "every request names the REST API version"
    );
}

#[tokio::test]
async fn every_call_works_with_a_token() {
    let github = fake().await;
    let client = with_token(&github);
    every_call(&github, client.as_ref(), "slipway-bot").await;
}

#[tokio::test]
async fn every_call_works_as_a_github_app() {
    let github = fake().await;
    let key = github.add_app(12, "slipway-previews");
    github.install(12, REPO);
    let credentials = Credentials::App {
        app_id: 12,
        private_key_pem: key,
    };
    let client = connect(&options(&github), credentials, &repo()).unwrap();
    every_call(&github, client.as_ref(), "slipway-previews[bot]").await;
    // The installation was found with the App's JWT, and a token minted for it.
    let requests = github.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/repos/acme/shop/installation")
    );
    assert!(
        requests
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/access_tokens"))
    );
    // An App not installed on the repository is refused, never "no such pull request".
    let other = RepoRef {
        owner: "acme".to_owned(),
        name: "elsewhere".to_owned(),
    };
    github.add_repo("acme/elsewhere");
    let key = github.add_app(13, "other-app");
    let uninstalled = connect(
        &options(&github),
        Credentials::App {
            app_id: 13,
            private_key_pem: key,
        },
        &other,
    )
    .unwrap();
    match uninstalled.pull(&other, 1).await {
        Err(Error::Unauthorized(message)) => {
            assert!(message.contains("not installed"), "{message}");
        }
        answer => panic!("{answer:?}"),
    }
    // A key that is no key is refused before anything is sent.
    let bad = Credentials::App {
        app_id: 12,
        private_key_pem: "-----BEGIN RSA PRIVATE KEY-----\nnope\n".to_owned(),
    };
    assert!(matches!(
        connect(&options(&github), bad, &repo()),
        Err(Error::Credentials(_))
    ));
}

#[tokio::test]
async fn refusals_are_classified() {
    let github = fake().await;
    let wrong = connect(
        &options(&github),
        Credentials::Token("ghp_wrong".to_owned()),
        &repo(),
    )
    .unwrap();
    assert!(matches!(
        wrong.pull(&repo(), 1).await,
        Err(Error::Unauthorized(_))
    ));
    let client = with_token(&github);
    let elsewhere = RepoRef {
        owner: "acme".to_owned(),
        name: "gone".to_owned(),
    };
    assert!(matches!(
        client.open_pulls(&elsewhere).await,
        Err(Error::NotFound(_))
    ));
    // 4xx other than these is not retried.
    github.fail_next(1, 422);
    assert!(matches!(
        client.open_pulls(&repo()).await,
        Err(Error::Rejected(_))
    ));
}

#[tokio::test]
async fn every_page_is_read() {
    let github = fake().await;
    let client = with_token(&github);
    for number in 1..=230 {
        github.open_pull(REPO, pull(number, "p"));
        github.comment(REPO, 1, "ana", &format!("comment {number}"));
    }
    let pulls = client.open_pulls(&repo()).await.unwrap();
    assert_eq!(pulls.len(), 230);
    let comments = client.comments(&repo(), 1).await.unwrap();
    assert_eq!(comments.len(), 230);
    assert_eq!(comments[229].body, "comment 230");
    let pages = github
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pulls"))
        .count();
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn failures_and_rate_limits_are_retried() {
    let github = fake().await;
    let client = with_token(&github);
    github.open_pull(REPO, pull(1, "x"));
    github.fail_next(2, 502);
    assert!(client.pull(&repo(), 1).await.unwrap().is_some());
    assert_eq!(github.requests().len(), 3);

    // A limit that resets in a second is waited for.
    github.rate_limit_next(1, 1);
    assert!(client.pull(&repo(), 1).await.unwrap().is_some());

    // One that resets later than the client will wait fails at once, saying when.
    github.rate_limit_next(1, 600);
    let before = github.requests().len();
    match client.pull(&repo(), 1).await {
        Err(Error::RateLimited {
            retry_after_seconds,
        }) => assert!(retry_after_seconds > 500),
        other => panic!("{other:?}"),
    }
    assert_eq!(github.requests().len(), before + 1);

    // Failures past the attempts give up, classified as transient.
    github.fail_next(10, 503);
    let error = client.pull(&repo(), 1).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn the_rate_limit_left_is_what_the_last_answer_said() {
    let github = fake().await;
    let client = with_token(&github);
    assert_eq!(
        client.rate_budget(),
        None,
        "nothing is known before an answer"
    );
    client.login().await.unwrap();
    let fresh = client.rate_budget().unwrap();
    assert_eq!((fresh.limit, fresh.remaining), (5000, 4999));
    let now = fresh.reset_at - 3600;
    assert!(!fresh.is_low(now));
    github.set_rate_limit(400, fresh.reset_at);
    client.pull(&repo(), 1).await.unwrap();
    let low = client.rate_budget().unwrap();
    assert_eq!(low.remaining, 399);
    assert!(low.is_low(now), "under a tenth of the limit is low");
    assert!(!low.is_low(low.reset_at), "until the window resets");
    assert_eq!(low.reset_at, fresh.reset_at);
}

#[tokio::test]
async fn the_fault_injector_fails_exactly_what_it_is_told() {
    let github = fake().await;
    let client = with_token(&github);
    let faulty = Arc::new(FaultyGitHub::new(client));
    faulty.fail_next(2, || Error::Unauthorized("injected".to_owned()));
    assert!(matches!(faulty.login().await, Err(Error::Unauthorized(_))));
    assert!(matches!(
        faulty.open_pulls(&repo()).await,
        Err(Error::Unauthorized(_))
    ));
    assert!(faulty.open_pulls(&repo()).await.is_ok());
    faulty.fail_method("create_comment", 1);
    assert!(faulty.login().await.is_ok());
    assert!(matches!(
        faulty.create_comment(&repo(), 1, "x").await,
        Err(Error::Unavailable(_))
    ));
    assert!(faulty.create_comment(&repo(), 1, "x").await.is_ok());
    assert_eq!(faulty.calls(), 6);
    assert!(
        github
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
            == 1
    );
}

//! Tests of the platform database against a real SQLite file per test.

use std::sync::Arc;
use std::time::Duration;

use slipway_clock::{Clock, ManualClock};
use tempfile::TempDir;

use crate::*;

async fn open() -> (TempDir, Db, ManualClock) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let db = Db::open(dir.path().join("platform.db"), Arc::new(clock.clone()))
        .await
        .unwrap();
    (dir, db, clock)
}

fn repo(owner: &str, name: &str) -> NewRepo {
    NewRepo {
        owner: owner.to_owned(),
        name: name.to_owned(),
        webhook_secret: "hook-secret".to_owned(),
        access: Access::Token("ghp_x".to_owned()),
    }
}

fn delivery(id: &str, repo_id: i64, pr: u64) -> NewDelivery {
    NewDelivery {
        hook: "1".to_owned(),
        delivery: id.to_owned(),
        event: "pull_request".to_owned(),
        action: Some("opened".to_owned()),
        repo_id: Some(repo_id),
        pr: Some(pr),
        head_sha: Some("abc".to_owned()),
        sender: Some("ana".to_owned()),
        comment: None,
        revives: true,
        namespaces: [format!("pr-shop-{pr}"), format!("pr-shop-{repo_id}-{pr}")],
    }
}

fn user(name: &str) -> NewUser {
    NewUser {
        name: name.to_owned(),
        admin: false,
    }
}

#[tokio::test]
async fn squad_takes_the_defaults_and_records_its_audit_entry() {
    let (_dir, db, _clock) = open().await;
    let mut new = NewSquad::named("web");
    new.namespaces = vec!["web-staging".to_owned(), "web".to_owned()];
    let created = db.create_squad("root", &new).await.unwrap();
    let read = db.squad("web").await.unwrap();
    assert_eq!(created, read);
    assert_eq!(read.namespaces, ["web", "web-staging"]);
    assert_eq!(read.quota, Quota::squad_default());
    assert_eq!(read.quota.hard["requests.memory"], "8Gi");
    assert_eq!(read.limits.default_request.cpu, "100m");
    assert_eq!(read.previews.max, 3);
    assert_eq!(read.previews.quota.hard["pods"], "20");
    assert_eq!(read.previews.ttl_seconds, 86_400);
    assert_eq!(read.previews.max_ttl_seconds, 604_800);
    assert!(read.previews.allow_pinning);

    let audit = db.audit(10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].actor.as_str(),
            audit[0].action.as_str(),
            audit[0].target.as_str()
        ),
        ("root", "squad.create", "squads/web")
    );
    assert_eq!(audit[0].detail["namespaces"][1], "web-staging");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_writes_nothing() {
    let (_dir, db, _clock) = open().await;
    let cases: Vec<(NewSquad, &str)> = vec![
        (NewSquad::named("Web"), "name"),
        (NewSquad::named(""), "name"),
        (NewSquad::named(&"a".repeat(64)), "name"),
        (NewSquad::named("-web"), "name"),
        (
            NewSquad {
                namespaces: vec!["ok".to_owned(), "not_ok".to_owned()],
                ..NewSquad::named("web")
            },
            "namespaces[1]",
        ),
        (
            NewSquad {
                quota: Some(Quota {
                    hard: [("pods".to_owned(), "lots".to_owned())].into(),
                }),
                ..NewSquad::named("web")
            },
            "quota.hard[pods]",
        ),
        (
            NewSquad {
                quota: Some(Quota {
                    hard: [("".to_owned(), "1".to_owned())].into(),
                }),
                ..NewSquad::named("web")
            },
            "quota.hard[]",
        ),
        (
            NewSquad {
                quota: Some(Quota {
                    hard: [("pods".to_owned(), "-1".to_owned())].into(),
                }),
                ..NewSquad::named("web")
            },
            "quota.hard[pods]",
        ),
        (
            NewSquad {
                limits: Some(Limits {
                    default: CpuMemory {
                        cpu: "1 core".to_owned(),
                        memory: "1Gi".to_owned(),
                    },
                    ..Limits::default()
                }),
                ..NewSquad::named("web")
            },
            "limits.default.cpu",
        ),
        (
            NewSquad {
                previews: Some(PreviewPolicy {
                    ttl_seconds: 10,
                    max_ttl_seconds: 5,
                    ..PreviewPolicy::default()
                }),
                ..NewSquad::named("web")
            },
            "previews.ttlSeconds",
        ),
        (
            NewSquad {
                previews: Some(PreviewPolicy {
                    ttl_seconds: 0,
                    ..PreviewPolicy::default()
                }),
                ..NewSquad::named("web")
            },
            "previews.ttlSeconds",
        ),
    ];
    for (new, field) in cases {
        match db.create_squad("root", &new).await {
            Err(Error::Invalid { field: got, .. }) => assert_eq!(got, field, "{new:?}"),
            other => panic!("{new:?}: {other:?}"),
        }
    }
    assert!(db.squads().await.unwrap().is_empty());
    assert!(db.audit(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn names_are_unique_and_namespaces_belong_to_one_squad() {
    let (_dir, db, _clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    assert!(matches!(
        db.create_squad("root", &NewSquad::named("web")).await,
        Err(Error::AlreadyExists { kind: "squads", .. })
    ));
    let mut api = NewSquad::named("api");
    api.namespaces = vec!["web".to_owned()];
    assert!(matches!(
        db.create_squad("root", &api).await,
        Err(Error::Conflict(_))
    ));
    // The refused squad's row went with its transaction.
    assert!(matches!(db.squad("api").await, Err(Error::NotFound { .. })));
    db.create_user("root", &user("ana")).await.unwrap();
    assert!(matches!(
        db.create_user("root", &user("ana")).await,
        Err(Error::AlreadyExists { kind: "users", .. })
    ));
    assert_eq!(db.audit(10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn memberships_follow_their_user_and_squad() {
    let (_dir, db, _clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    db.create_squad("root", &NewSquad::named("api"))
        .await
        .unwrap();
    db.create_user("root", &user("ana")).await.unwrap();
    db.set_member("root", "web", "ana", Role::Member)
        .await
        .unwrap();
    db.set_member("root", "web", "ana", Role::Owner)
        .await
        .unwrap();
    db.set_member("root", "api", "ana", Role::Member)
        .await
        .unwrap();
    let ana = db.user("ana").await.unwrap();
    assert_eq!(
        ana.squads,
        [
            Membership {
                squad: "api".to_owned(),
                role: Role::Member
            },
            Membership {
                squad: "web".to_owned(),
                role: Role::Owner
            },
        ]
    );
    assert_eq!(db.squad("web").await.unwrap().members[0].role, Role::Owner);
    assert!(matches!(
        db.set_member("root", "web", "bob", Role::Member).await,
        Err(Error::NotFound { kind: "users", .. })
    ));
    db.remove_member("root", "api", "ana").await.unwrap();
    assert!(matches!(
        db.remove_member("root", "api", "ana").await,
        Err(Error::NotFound {
            kind: "members",
            ..
        })
    ));
    db.delete_squad("root", "web").await.unwrap();
    assert!(db.user("ana").await.unwrap().squads.is_empty());
}

#[tokio::test]
async fn a_token_is_stored_only_as_its_hash() {
    let (dir, db, clock) = open().await;
    db.create_user("root", &user("ana")).await.unwrap();
    let created = db
        .create_token("ana", "ana", Some("laptop"), Some(3600))
        .await
        .unwrap();
    let secret = created.token.expose().to_owned();
    assert!(secret.starts_with("slw_") && secret.len() == 68, "{secret}");
    assert!(
        secret[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert!(created.info.id.starts_with("tok_") && created.info.id.len() == 16);
    assert!(!format!("{created:?}").contains(&secret));
    let expected = jiff::Timestamp::try_from(clock.now() + Duration::from_secs(3600)).unwrap();
    assert_eq!(created.info.expires_at, Some(expected));

    let credentials = db.credentials().await.unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0].sha256, sha256_hex(&secret));
    assert_ne!(credentials[0].sha256, secret);
    // Nothing on disk holds the secret, not even the audit detail.
    db.close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

#[tokio::test]
async fn revoked_tokens_stay_listed_but_are_no_credential() {
    let (_dir, db, clock) = open().await;
    db.create_user("root", &user("ana")).await.unwrap();
    let a = db.create_token("ana", "ana", None, None).await.unwrap();
    let b = db.create_token("ana", "ana", None, None).await.unwrap();
    clock.advance(Duration::from_secs(5));
    let revoked = db.revoke_token("ana", "ana", &a.info.id).await.unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(jiff::Timestamp::try_from(clock.now()).unwrap())
    );
    let listed = db.tokens("ana").await.unwrap();
    assert_eq!(listed, [revoked, b.info.clone()]);
    let live: Vec<_> = db
        .credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(live, [b.info.id.as_str()]);
    assert!(matches!(
        db.revoke_token("ana", "ana", "tok_000000000000").await,
        Err(Error::NotFound { kind: "tokens", .. })
    ));
    assert!(matches!(
        db.create_token("ana", "ana", None, Some(0)).await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        db.create_token("ana", "ana", None, Some(u64::MAX)).await,
        Err(Error::Invalid { .. })
    ));
    db.delete_user("root", "ana").await.unwrap();
    assert!(db.credentials().await.unwrap().is_empty());
    assert!(matches!(
        db.tokens("ana").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn quota_changes_are_validated_and_audited() {
    let (_dir, db, _clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    let hard: Hard = [("pods".to_owned(), "7".to_owned())].into();
    let squad = db.set_quota("ana", "web", &hard).await.unwrap();
    assert_eq!(squad.quota.hard, hard);
    let bad: Hard = [("pods".to_owned(), "x".to_owned())].into();
    assert!(matches!(
        db.set_quota("ana", "web", &bad).await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        db.set_quota("ana", "nope", &hard).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(db.squad("web").await.unwrap().quota.hard, hard);
    let audit = db.audit(1).await.unwrap();
    assert_eq!(
        (audit[0].action.as_str(), audit[0].actor.as_str()),
        ("squad.quota", "ana")
    );
}

#[tokio::test]
async fn repos_are_added_listed_and_removed() {
    let (_dir, db, _clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    db.add_repo("root", "web", &repo("acme", "shop"))
        .await
        .unwrap();
    let app = NewRepo {
        access: Access::App {
            app_id: 7,
            private_key: "-----BEGIN RSA PRIVATE KEY-----\n...".to_owned(),
        },
        ..repo("acme", "api.rs")
    };
    db.add_repo("root", "web", &app).await.unwrap();
    assert!(matches!(
        db.add_repo("root", "web", &repo("acme", "shop")).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        db.add_repo("root", "web", &repo("acme", "a/b")).await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        db.add_repo("root", "nope", &repo("acme", "x")).await,
        Err(Error::NotFound { .. })
    ));
    for (bad, field) in [
        (
            NewRepo {
                webhook_secret: " ".to_owned(),
                ..repo("acme", "x")
            },
            "webhookSecret",
        ),
        (
            NewRepo {
                access: Access::Token(String::new()),
                ..repo("acme", "x")
            },
            "access.token",
        ),
        (
            NewRepo {
                access: Access::Token("a b".to_owned()),
                ..repo("acme", "x")
            },
            "access.token",
        ),
        (
            NewRepo {
                access: Access::App {
                    app_id: 0,
                    private_key: "-----BEGIN".to_owned(),
                },
                ..repo("acme", "x")
            },
            "access.app.appId",
        ),
        (
            NewRepo {
                access: Access::App {
                    app_id: 1,
                    private_key: "key".to_owned(),
                },
                ..repo("acme", "x")
            },
            "access.app.privateKey",
        ),
    ] {
        match db.add_repo("root", "web", &bad).await {
            Err(Error::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // Found case-insensitively, with its secrets apart.
    let shop = db.repo("ACME", "Shop").await.unwrap();
    assert_eq!(
        (shop.full_name().as_str(), shop.access.as_str()),
        ("acme/shop", "token")
    );
    let secrets = db.repo_secrets(shop.id).await.unwrap();
    assert_eq!(secrets.webhook_secret, "hook-secret");
    assert_eq!(secrets.access, Access::Token("ghp_x".to_owned()));
    assert!(!format!("{secrets:?}").contains("ghp_x"));
    let api = db.repo("acme", "api.rs").await.unwrap();
    assert_eq!(api.access, "app");
    assert!(matches!(
        db.repo_secrets(api.id).await.unwrap().access,
        Access::App { app_id: 7, .. }
    ));
    let names: Vec<_> = db
        .repos()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["api.rs", "shop"]);
    db.remove_repo("root", "acme", "shop").await.unwrap();
    assert!(matches!(
        db.remove_repo("root", "acme", "shop").await,
        Err(Error::NotFound { .. })
    ));
    // Deleting the squad takes its repositories with it.
    db.delete_squad("root", "web").await.unwrap();
    assert!(db.repos().await.unwrap().is_empty());
    let actions: Vec<_> = db
        .audit(10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        [
            "squad.delete",
            "repo.remove",
            "repo.add",
            "repo.add",
            "squad.create"
        ]
    );
}

#[tokio::test]
async fn the_database_survives_a_reopen() {
    let (dir, db, clock) = open().await;
    db.create_user("root", &user("ana")).await.unwrap();
    db.close().await;
    let db = Db::open(dir.path().join("platform.db"), Arc::new(clock))
        .await
        .unwrap();
    assert_eq!(db.users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_database_file_is_its_owners_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let clock = ManualClock::at_epoch_2026();
    let db = Db::open(&path, Arc::new(clock)).await.unwrap();
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    for file in ["platform.db", "platform.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[tokio::test]
async fn deliveries_are_listed_newest_first_and_pruned_once_handled() {
    let (_dir, db, clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    let shop = db
        .add_repo("root", "web", &repo("acme", "shop"))
        .await
        .unwrap();
    db.record_delivery(&delivery("d1", shop.id, 4))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    db.record_delivery(&delivery("d2", shop.id, 5))
        .await
        .unwrap();
    let listed = db.deliveries(shop.id, 10).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|d| d.delivery.as_str()).collect();
    assert_eq!(ids, ["d2", "d1"]);
    assert_eq!(
        (
            listed[1].event.as_str(),
            listed[1].pr,
            listed[1].sha.as_deref()
        ),
        ("pull_request", Some(4), Some("abc"))
    );
    assert_eq!(listed[1].processed_at, None);
    assert_eq!(db.deliveries(shop.id, 1).await.unwrap().len(), 1);

    // Only handled deliveries older than the horizon go; one still waiting stays.
    let last = db.last_delivery().await.unwrap();
    db.mark_processed(shop.id, 4, last).await.unwrap();
    let horizon = jiff::Timestamp::try_from(clock.now()).unwrap();
    clock.advance(Duration::from_secs(60));
    assert_eq!(db.prune_deliveries(horizon).await.unwrap(), 1);
    let left: Vec<_> = db
        .deliveries(shop.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.delivery)
        .collect();
    assert_eq!(left, ["d2"]);
}

#[tokio::test]
async fn a_delivery_is_stored_once_and_wakes_one_preview() {
    let (_dir, db, _clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    let shop = db
        .add_repo("root", "web", &repo("acme", "shop"))
        .await
        .unwrap();
    let Recorded::Stored { preview: Some(id) } = db
        .record_delivery(&delivery("d1", shop.id, 4))
        .await
        .unwrap()
    else {
        panic!("not stored");
    };
    // The same delivery again (a redelivery) writes nothing.
    assert_eq!(
        db.record_delivery(&delivery("d1", shop.id, 4))
            .await
            .unwrap(),
        Recorded::Duplicate
    );
    // Another delivery for the same pull request wakes the same preview.
    assert_eq!(
        db.record_delivery(&delivery("d2", shop.id, 4))
            .await
            .unwrap(),
        Recorded::Stored { preview: Some(id) }
    );
    let preview = db.preview(id).await.unwrap();
    assert_eq!(
        (
            preview.repo.as_str(),
            preview.squad.as_str(),
            preview.pr,
            preview.namespace.as_str()
        ),
        ("acme/shop", "web", 4, "pr-shop-4")
    );
    assert_eq!((preview.generation, preview.status.observed), (2, 0));
    assert_eq!(preview.status.phase, Phase::Pending);
    assert_eq!(db.preview_by_namespace("pr-shop-4").await.unwrap(), preview);

    // A second repository of the same name takes the other namespace.
    let fork = db
        .add_repo("root", "web", &repo("other", "shop"))
        .await
        .unwrap();
    let Recorded::Stored {
        preview: Some(other),
    } = db
        .record_delivery(&delivery("d3", fork.id, 4))
        .await
        .unwrap()
    else {
        panic!("not stored");
    };
    assert_eq!(
        db.preview(other).await.unwrap().namespace,
        format!("pr-shop-{}-4", fork.id)
    );

    // A batch is answered in order; a delivery twice in it is stored once.
    let batch = [
        delivery("d5", shop.id, 5),
        delivery("d5", shop.id, 5),
        delivery("d1", shop.id, 4),
    ];
    let answers = db.record_deliveries(&batch).await.unwrap();
    assert!(matches!(answers[0], Recorded::Stored { preview: Some(_) }));
    assert_eq!(answers[1..], [Recorded::Duplicate, Recorded::Duplicate]);

    // A ping names no pull request: stored, wakes nothing.
    let ping = NewDelivery {
        event: "ping".to_owned(),
        pr: None,
        ..delivery("d4", shop.id, 0)
    };
    assert_eq!(
        db.record_delivery(&ping).await.unwrap(),
        Recorded::Stored { preview: None }
    );
    assert_eq!(db.previews().await.unwrap().len(), 3);
}

#[tokio::test]
async fn status_round_trips_and_commands_are_processed_once() {
    let (_dir, db, clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    let shop = db
        .add_repo("root", "web", &repo("acme", "shop"))
        .await
        .unwrap();
    let id = db
        .wake_preview(shop.id, 9, &["pr-shop-9".to_owned(), "x".to_owned()])
        .await
        .unwrap();
    let now = jiff::Timestamp::try_from(clock.now()).unwrap();
    let status = PreviewStatus {
        phase: Phase::Ready,
        message: "up".to_owned(),
        head_sha: "abc".to_owned(),
        title: "Add a cart".to_owned(),
        author: "ana".to_owned(),
        pr_url: "https://github.com/shop/shop/pull/9".to_owned(),
        deployed_sha: Some("abc".to_owned()),
        expires_at: Some(jiff::Timestamp::from_second(now.as_second() + 60).unwrap()),
        comment_id: Some(12),
        deployment_id: Some(u64::from(u32::MAX) + 5),
        applied: vec![Applied {
            api_version: "apps/v1".to_owned(),
            kind: "Deployment".to_owned(),
            name: "web".to_owned(),
        }],
        observed: 1,
        ..PreviewStatus::default()
    };
    db.set_preview_status(id, &status).await.unwrap();
    assert_eq!(db.preview(id).await.unwrap().status, status);

    let comment = |d: &str, body: &str| NewDelivery {
        event: "issue_comment".to_owned(),
        action: Some("created".to_owned()),
        comment: Some(body.to_owned()),
        revives: false,
        ..delivery(d, shop.id, 9)
    };
    db.record_delivery(&comment("c1", "/slipway extend 2h"))
        .await
        .unwrap();
    db.record_delivery(&comment("c2", "looks good"))
        .await
        .unwrap();
    let pending = db.pending_commands(shop.id, 9).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|c| c.comment.as_str())
            .collect::<Vec<_>>(),
        ["/slipway extend 2h", "looks good"]
    );
    db.mark_processed(shop.id, 9, pending[0].id).await.unwrap();
    assert_eq!(db.pending_commands(shop.id, 9).await.unwrap().len(), 1);
    db.mark_processed(shop.id, 9, db.last_delivery().await.unwrap())
        .await
        .unwrap();
    assert!(db.pending_commands(shop.id, 9).await.unwrap().is_empty());

    // Users change only the wanted side, with an audit entry each; a revival clears a destroy.
    db.extend_preview(
        "ana",
        id,
        jiff::Timestamp::from_second(now.as_second() + 7200).unwrap(),
    )
    .await
    .unwrap();
    db.request_destroy("ana", id).await.unwrap();
    let preview = db.preview(id).await.unwrap();
    assert!(preview.destroy_requested);
    assert_eq!(
        preview.extended_until.unwrap().as_second(),
        now.as_second() + 7200
    );
    assert_eq!(preview.status, status);
    db.record_delivery(&NewDelivery {
        action: Some("synchronize".to_owned()),
        ..delivery("d9", shop.id, 9)
    })
    .await
    .unwrap();
    assert!(!db.preview(id).await.unwrap().destroy_requested);
    let actions: Vec<_> = db
        .audit(2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.target))
        .collect();
    assert_eq!(
        actions[0],
        (
            "preview.destroy".to_owned(),
            "previews/pr-shop-9".to_owned()
        )
    );
    assert!(matches!(
        db.request_destroy("ana", 999).await,
        Err(Error::NotFound { .. })
    ));

    // A gateway's report is kept; it wakes only a sleeping preview.
    let generation = db.preview(id).await.unwrap().generation;
    assert_eq!(db.touch_preview("pr-shop-9").await.unwrap(), Some(id));
    let touched = db.preview(id).await.unwrap();
    assert_eq!(
        (touched.generation, touched.last_request_at.is_some()),
        (generation, true)
    );
    let mut asleep = touched.status.clone();
    asleep.phase = Phase::Sleeping;
    db.set_preview_status(id, &asleep).await.unwrap();
    db.touch_preview("pr-shop-9").await.unwrap();
    assert_eq!(db.preview(id).await.unwrap().generation, generation + 1);
    assert_eq!(db.touch_preview("kube-system").await.unwrap(), None);

    // A repository with a live preview cannot be removed.
    assert!(matches!(
        db.remove_repo("root", "acme", "shop").await,
        Err(Error::Conflict(_))
    ));
}

#[tokio::test]
async fn slots_are_claimed_within_the_squads_budget() {
    let (_dir, db, _clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    let shop = db
        .add_repo("root", "web", &repo("acme", "shop"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for pr in 1..=3 {
        ids.push(
            db.wake_preview(shop.id, pr, &[format!("pr-shop-{pr}"), format!("y{pr}")])
                .await
                .unwrap(),
        );
    }
    assert!(db.claim_slot(ids[0], 2).await.unwrap());
    assert!(db.claim_slot(ids[1], 2).await.unwrap());
    assert!(!db.claim_slot(ids[2], 2).await.unwrap());
    // Holding a slot already, a preview keeps it.
    assert!(db.claim_slot(ids[0], 2).await.unwrap());
    // A destroyed preview frees its slot.
    let mut status = db.preview(ids[0]).await.unwrap().status;
    status.phase = Phase::Destroyed;
    db.set_preview_status(ids[0], &status).await.unwrap();
    assert!(db.claim_slot(ids[2], 2).await.unwrap());
    assert_eq!(
        db.preview(ids[2]).await.unwrap().status.phase,
        Phase::Deploying
    );
}

#[tokio::test]
async fn members_are_found_by_github_login() {
    let (_dir, db, _clock) = open().await;
    db.create_squad("root", &NewSquad::named("web"))
        .await
        .unwrap();
    db.create_user("root", &user("ana")).await.unwrap();
    db.create_user("root", &user("bo")).await.unwrap();
    db.set_member("root", "web", "ana", Role::Member)
        .await
        .unwrap();
    // GitHub logins keep their case; user names are lower case.
    assert!(db.is_member("web", "Ana").await.unwrap());
    assert!(!db.is_member("web", "bo").await.unwrap());
    assert!(!db.is_member("nope", "ana").await.unwrap());
}

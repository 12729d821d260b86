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
    db.add_repo("root", "acme", "shop", "web").await.unwrap();
    db.add_repo("root", "acme", "api.rs", "web").await.unwrap();
    assert!(matches!(
        db.add_repo("root", "acme", "shop", "web").await,
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        db.add_repo("root", "acme", "a/b", "web").await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        db.add_repo("root", "acme", "x", "nope").await,
        Err(Error::NotFound { .. })
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

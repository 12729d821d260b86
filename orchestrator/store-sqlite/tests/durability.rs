//! Crash safety of the SQLite backend with real processes: a writer killed with SIGKILL
//! mid-stream loses no acknowledged write and leaves no hole or duplicate in the revision
//! sequence, and while it runs a second process is refused with a clear error.
//!
//! The test re-runs its own binary as the writer: with `CHILD_ENV` set, the same test
//! function writes until it is killed instead of supervising.
//!
//! SIGKILL leaves the kernel's page cache intact, so this proves that nothing is
//! acknowledged before its transaction commits; that a commit reaches the disk before it is
//! acknowledged is SQLite's `synchronous=FULL` promise, which a process-level test cannot
//! observe.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use slipway_store::{Error, Event, ListOptions, Store};
use slipway_store_sqlite::{Options, SqliteStore};

const CHILD_ENV: &str = "SLIPWAY_DURABILITY_CHILD_DB";
const ACKS_BEFORE_KILL: usize = 400;
const WRITERS: usize = 8;

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        write_until_killed(db.into());
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "acknowledged_writes_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    while acked.len() < ACKS_BEFORE_KILL {
        let line = lines
            .next()
            .expect("writer ended before enough acknowledgements")
            .unwrap();
        if let Some(ack) = line.strip_prefix("ack ") {
            let (key, revision) = ack.split_once(' ').unwrap();
            acked.insert(key.to_owned(), revision.parse().unwrap());
        }
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    // The writer is still running: a second process must be kept out, saying why.
    match rt.block_on(SqliteStore::open(&db, Options::default())) {
        Err(e @ Error::Locked { .. }) => {
            assert!(e.to_string().contains("in use by another process"), "{e}");
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second process opened a store in use"),
    }

    child.0.kill().unwrap(); // SIGKILL: no destructor, no checkpoint, no clean close.
    child.0.wait().unwrap();
    // Acknowledgements already in the pipe count too: they were acknowledged before the kill.
    for line in lines {
        if let Some(ack) = line.unwrap().strip_prefix("ack ") {
            let (key, revision) = ack.split_once(' ').unwrap();
            acked.insert(key.to_owned(), revision.parse().unwrap());
        }
    }

    rt.block_on(async {
        let store = SqliteStore::open(&db, Options::default()).await.unwrap();
        for (key, revision) in &acked {
            let kv = store.get(key, None).await.unwrap();
            let kv = kv.unwrap_or_else(|| panic!("acknowledged {key} lost"));
            assert_eq!(kv.mod_revision, *revision, "{key}");
        }
        let last = store.revision().await.unwrap();
        assert!(last >= acked.values().copied().max().unwrap());

        // Every revision from 1 to the last appears exactly once in the log.
        let mut watch = store.watch("", 0).await.unwrap();
        let mut revisions = Vec::new();
        while revisions.len() < last as usize {
            let next = tokio::time::timeout(std::time::Duration::from_secs(60), watch.next());
            match next
                .await
                .expect("revision sequence has a hole")
                .unwrap()
                .unwrap()
            {
                Event::Put { kv, .. } => revisions.push(kv.mod_revision),
                Event::Delete { revision, .. } => revisions.push(revision),
            }
        }
        assert_eq!(revisions, (1..=last).collect::<Vec<_>>());
        let all = store.list("", ListOptions::default()).await.unwrap();
        assert_eq!(all.kvs.len() as i64, last, "only creates were written");

        // The reopened store takes writes again, after the last revision.
        let kv = store
            .create("/after/restart", Bytes::from_static(b"x"), None)
            .await
            .unwrap();
        assert_eq!(kv.mod_revision, last + 1);
        store.close().await;
    });
}

/// Kills the writer if the test fails before it means to, so no process outlives it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's life: create keys from several tasks, announcing each acknowledged write.
fn write_until_killed(db: std::path::PathBuf) -> ! {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&db, Options::default()).await.unwrap());
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let writers = (0..WRITERS).map(|w| {
            let store = store.clone();
            let out = out.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/durable/w{w}/k{i:08}");
                    let kv = store
                        .create(&key, Bytes::from(vec![b'v'; 512]), None)
                        .await
                        .unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {key} {}", kv.mod_revision).unwrap();
                    out.flush().unwrap();
                }
            })
        });
        futures::future::join_all(writers).await;
    });
    unreachable!("the writer runs until it is killed")
}

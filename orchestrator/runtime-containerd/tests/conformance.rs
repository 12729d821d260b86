//! The shared Runtime conformance suite against a private containerd in a temporary
//! directory, one containerd per case; and what only containerd can show: the event stream
//! and running tasks surviving a containerd restart.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Harness, within};
use slipway_runtime::conformance::{self, Archive, Backend, Fixtures};
use slipway_runtime::{ContainerConfig, Event, ImageConfig, LogTarget, Runtime, TaskStatus};
use slipway_runtime_containerd::Containerd;
use slipway_testkit::ImageBuilder;

/// The conformance suite's backend: a containerd and the fixtures made for it.
struct Conformance {
    harness: Harness,
    fixtures: Fixtures,
}

impl Backend for Conformance {
    fn runtime(&self) -> Arc<dyn Runtime> {
        self.harness.runtime.clone()
    }

    fn fixtures(&self) -> &Fixtures {
        &self.fixtures
    }
}

impl Conformance {
    async fn start() -> Conformance {
        let harness = Harness::start().await;
        let fixtures = fixtures(harness.dir.path());
        Conformance { harness, fixtures }
    }
}

fn fixtures(dir: &Path) -> Fixtures {
    let images = dir.join("images");
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&images).expect("images directory");
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let base = |name: &str| {
        ImageBuilder::busybox(name)
            .entrypoint(["/bin/sh", "-c"])
            .cmd(["echo hello"])
            .env([
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "GREETING=hi",
            ])
            .working_dir("/srv")
            .user("0:0")
            .file("/srv/index.html", b"hello".to_vec(), 0o644)
    };
    let config = ImageConfig {
        entrypoint: vec!["/bin/sh".to_owned(), "-c".to_owned()],
        cmd: vec!["echo hello".to_owned()],
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            "GREETING=hi".to_owned(),
        ],
        working_dir: "/srv".to_owned(),
        user: "0:0".to_owned(),
    };
    let mut archives = Vec::new();
    let oci = images.join("oci.tar");
    let digest = base("slipway.local/busybox:1")
        .write_oci(&oci)
        .expect("writing the OCI archive");
    archives.push(Archive {
        path: oci,
        name: "slipway.local/busybox:1".to_owned(),
        digest: Some(digest),
        config: config.clone(),
    });
    let oci_gz = images.join("oci-gz.tar.gz");
    let digest = base("slipway.local/busybox-gz:1")
        .gzip_layers(true)
        .gzip_archive(true)
        .write_oci(&oci_gz)
        .expect("writing the gzip OCI archive");
    archives.push(Archive {
        path: oci_gz,
        name: "slipway.local/busybox-gz:1".to_owned(),
        digest: Some(digest),
        config: config.clone(),
    });
    let docker = images.join("docker.tar");
    base("dockerbox:1")
        .write_docker(&docker)
        .expect("writing the docker archive");
    archives.push(Archive {
        path: docker,
        name: "docker.io/library/dockerbox:1".to_owned(),
        digest: None,
        config: config.clone(),
    });
    let docker_gz = images.join("docker.tar.gz");
    base("slipway.local/dockerbox-gz:1")
        .gzip_archive(true)
        .write_docker(&docker_gz)
        .expect("writing the gzip docker archive");
    archives.push(Archive {
        path: docker_gz,
        name: "slipway.local/dockerbox-gz:1".to_owned(),
        digest: None,
        config,
    });
    Fixtures { scratch, archives }
}

slipway_runtime::conformance_tests!(Conformance::start);

/// A second containerd on a directory in use is refused. containerd stops and starts
/// again on the same directory: the event stream says
/// `Resync`, and a task that ran through it is still running and can be killed, with its
/// exit reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_events_survive_a_containerd_restart() {
    let test = async {
        let Conformance {
            mut harness,
            fixtures,
        } = Conformance::start().await;
        let runtime = harness.runtime.clone();
        let mut events = within("events", runtime.events()).await.expect("events");
        let image = &fixtures.archives[0];
        within("import", runtime.import(&image.path))
            .await
            .expect("import");
        let id = format!("restart-{}", std::process::id());
        let config = ContainerConfig {
            spec: conformance::spec(&id, &["sleep", "1000"], None),
            id: id.clone(),
            image: image.name.clone(),
            labels: Default::default(),
            group: None,
        };
        within("create", runtime.create(&config))
            .await
            .expect("create");
        let pid = within("start", runtime.start(&id, &LogTarget::Null))
            .await
            .expect("start");

        let dir = harness.dir.path().join("c");
        let second = Containerd::start(&dir).await;
        assert!(
            matches!(
                second,
                Err(slipway_runtime_containerd::SupervisorError::AlreadyRunning { .. })
            ),
            "a second containerd on one directory: {:?}",
            second.err()
        );
        let old = harness.containerd.take().expect("containerd");
        within("stop", old.stop())
            .await
            .expect("stopping containerd");
        harness.containerd = Some(
            within("restart", Containerd::start(&dir))
                .await
                .expect("starting containerd again"),
        );

        let resynced = within("resync", async {
            loop {
                match events.recv().await {
                    Some(Event::Resync) => return true,
                    Some(_) => {}
                    None => return false,
                }
            }
        })
        .await;
        assert!(resynced, "the event stream ended instead of resyncing");
        let listed = within("list", runtime.list()).await.expect("list");
        let task = listed
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.task.clone())
            .expect("the task survived");
        assert_eq!((task.status, task.pid), (TaskStatus::Running, pid));
        within("kill", runtime.kill(&id, 9, false))
            .await
            .expect("kill");
        let exit = within("wait", runtime.wait(&id)).await.expect("wait");
        assert_eq!(exit.status, 137);
        let exited = within("exit event", async {
            loop {
                match events.recv().await {
                    Some(Event::Exit { container, .. }) if container == id => return true,
                    Some(_) => {}
                    None => return false,
                }
            }
        })
        .await;
        assert!(exited, "no exit event after the restart");
        within("delete", runtime.delete(&id)).await.expect("delete");
    };
    tokio::time::timeout(conformance::CASE_LIMIT, test)
        .await
        .expect("the restart case finished in time");
}

/// A data directory whose socket path would not fit a Unix socket address is refused
/// before anything starts.
#[tokio::test]
async fn long_socket_paths_are_refused() {
    let dir = tempfile::Builder::new()
        .prefix("swc-")
        .tempdir_in("/tmp")
        .expect("temporary directory");
    let long = dir.path().join("x".repeat(120));
    let started = Containerd::start(&long).await;
    assert!(
        matches!(
            started,
            Err(slipway_runtime_containerd::SupervisorError::SocketPathTooLong { .. })
        ),
        "{:?}",
        started.err()
    );
}

//! Pulling images from a real registry (Debian's `docker-registry` on loopback, plain HTTP)
//! into a private containerd: by tag and through an index, again without downloading,
//! with and without the credentials the registry wants, and the errors a caller tells
//! apart (unknown tag, registry down).

mod common;

use common::{Harness, NAMESPACE, within};
use slipway_runtime::conformance::{self, CASE_LIMIT};
use slipway_runtime::{ContainerConfig, Credentials, Error, ImageConfig, LogTarget, Runtime};
use slipway_runtime_containerd::ContainerdRuntime;
use slipway_testkit::{ImageBuilder, Pushed, Registry, host_arch};

const MESSAGE_CHECK: &str = r#"test "$(cat /srv/message)" = pulled"#;

fn image() -> ImageBuilder {
    ImageBuilder::busybox("unused")
        .gzip_layers(true)
        .entrypoint(["/bin/sh", "-c"])
        .cmd([MESSAGE_CHECK])
        .working_dir("/srv")
        .file("/srv/message", b"pulled".to_vec(), 0o644)
}

/// A registry (with credentials if given) holding `image()` as `test/busybox:1`. Blocking
/// work, so off the async threads.
async fn registry_with_image(auth: Option<(&'static str, &'static str)>) -> (Registry, Pushed) {
    tokio::task::spawn_blocking(move || {
        let registry = match auth {
            Some((user, password)) => Registry::start_with_auth(user, password),
            None => Registry::start(),
        }
        .expect("starting the registry");
        let pushed = registry
            .push("test/busybox", "1", &image())
            .expect("pushing the image");
        (registry, pushed)
    })
    .await
    .expect("the registry thread")
}

/// Runs a container of `image` with its own entrypoint and command, and returns its exit
/// status.
async fn run(runtime: &dyn Runtime, id: &str, image: &str) -> u32 {
    let config = ContainerConfig {
        spec: conformance::spec(id, &["/bin/sh", "-c", MESSAGE_CHECK], None),
        id: id.to_owned(),
        image: image.to_owned(),
        labels: Default::default(),
        group: None,
    };
    within("create", runtime.create(&config))
        .await
        .expect("create");
    within("start", runtime.start(id, &LogTarget::Null))
        .await
        .expect("start");
    let exit = within("wait", runtime.wait(id)).await.expect("wait");
    within("delete", runtime.delete(id)).await.expect("delete");
    exit.status
}

/// Pulled by tag, the image is there under its reference with the registry's manifest
/// digest and its config, and a container runs from it. Pulled again after the registry
/// lost its layer and config, it is still fine: nothing was downloaded twice. (A namespace
/// that does not hold the blobs cannot pull it then, which shows they are really gone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_by_tag_and_again_without_downloading() {
    let test = async {
        let harness = Harness::start().await;
        let runtime = harness.runtime.clone();
        let (registry, pushed) = registry_with_image(None).await;

        let image = within("pull", runtime.pull(&pushed.reference, None))
            .await
            .expect("pull");
        assert_eq!(image.name, pushed.reference);
        assert_eq!(image.digest, pushed.digest);
        assert_eq!(
            image.config,
            ImageConfig {
                entrypoint: vec!["/bin/sh".to_owned(), "-c".to_owned()],
                cmd: vec![MESSAGE_CHECK.to_owned()],
                env: vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()
                ],
                working_dir: "/srv".to_owned(),
                user: String::new(),
            }
        );
        let listed = within("image", runtime.image(&pushed.reference))
            .await
            .expect("image")
            .expect("the pulled image is present");
        assert_eq!(listed, image);
        assert_eq!(run(runtime.as_ref(), "pulled-1", &image.name).await, 0);

        registry
            .remove_blob(&pushed.layer)
            .expect("removing the layer");
        registry
            .remove_blob(&pushed.config)
            .expect("removing the config");
        let again = within("second pull", runtime.pull(&pushed.reference, None))
            .await
            .expect("a second pull needs no blob from the registry");
        assert_eq!(again, image);
        assert_eq!(run(runtime.as_ref(), "pulled-2", &image.name).await, 0);

        let elsewhere = format!("{NAMESPACE}-elsewhere");
        let other = ContainerdRuntime::connect(&harness.socket(), &elsewhere, &harness.runc_root())
            .await
            .expect("connecting to another namespace");
        let pulled = within("pull elsewhere", other.pull(&pushed.reference, None)).await;
        assert!(
            matches!(&pulled, Err(Error::NotFound(m))
                if m.contains(&pushed.config) && m.contains("not found in registry")),
            "{pulled:?}"
        );
    };
    tokio::time::timeout(CASE_LIMIT, test)
        .await
        .expect("the case finished in time");
}

/// A tag naming an index is resolved to the manifest for linux on this machine's
/// architecture, which is what the image then is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_resolves_to_this_platform() {
    let test = async {
        let harness = Harness::start().await;
        let runtime = harness.runtime.clone();
        let other = if host_arch() == "arm64" {
            "amd64"
        } else {
            "arm64"
        };
        let (_registry, index, pushed) = tokio::task::spawn_blocking(move || {
            let registry = Registry::start().expect("starting the registry");
            let foreign = ImageBuilder::busybox("unused").cmd(["foreign"]);
            let (index, pushed) = registry
                .push_index(
                    "test/multi",
                    "1",
                    &[(other, &foreign), (host_arch(), &image())],
                )
                .expect("pushing the index");
            (registry, index, pushed)
        })
        .await
        .expect("the registry thread");
        let native = &pushed[1];
        let image = within("pull", runtime.pull(&native.reference, None))
            .await
            .expect("pull");
        assert_eq!(image.digest, native.digest);
        assert_ne!(image.digest, index);
        assert_eq!(run(runtime.as_ref(), "native", &image.name).await, 0);
    };
    tokio::time::timeout(CASE_LIMIT, test)
        .await
        .expect("the case finished in time");
}

/// A registry that wants credentials refuses a pull without them and with a wrong
/// password, each with an error that says so (and never prints the password), and serves
/// it with the right ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_sent_and_refusals_are_unauthorized() {
    let test = async {
        let harness = Harness::start().await;
        let runtime = harness.runtime.clone();
        let (_registry, pushed) = registry_with_image(Some(("tester", "right-password"))).await;

        let anonymous = within("anonymous pull", runtime.pull(&pushed.reference, None)).await;
        let expected = format!(
            "pull access denied for {}: authentication required",
            pushed.reference
        );
        assert!(
            matches!(&anonymous, Err(Error::Unauthorized(m)) if *m == expected),
            "{anonymous:?}"
        );

        let wrong = Credentials {
            username: "tester".to_owned(),
            password: "wrong-password".to_owned(),
        };
        let refused = within(
            "wrong password",
            runtime.pull(&pushed.reference, Some(&wrong)),
        )
        .await;
        assert!(
            matches!(&refused, Err(Error::Unauthorized(m))
                if m.contains("rejected the credentials") && !m.contains("wrong-password")),
            "{refused:?}"
        );

        let right = Credentials {
            username: "tester".to_owned(),
            password: "right-password".to_owned(),
        };
        let image = within(
            "authenticated pull",
            runtime.pull(&pushed.reference, Some(&right)),
        )
        .await
        .expect("pull with the right credentials");
        assert_eq!(image.digest, pushed.digest);
    };
    tokio::time::timeout(CASE_LIMIT, test)
        .await
        .expect("the case finished in time");
}

/// A tag or repository the registry does not know is NotFound; a registry that is not
/// there is Unavailable; and neither leaves an image behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_images_and_absent_registries_are_told_apart() {
    let test = async {
        let harness = Harness::start().await;
        let runtime = harness.runtime.clone();
        let (registry, _pushed) = registry_with_image(None).await;

        for missing in [
            format!("{}/test/busybox:nope", registry.host()),
            format!("{}/test/nothing:1", registry.host()),
        ] {
            let pulled = within("pull", runtime.pull(&missing, None)).await;
            let expected = format!("image {missing} not found in registry");
            assert!(
                matches!(&pulled, Err(Error::NotFound(m)) if *m == expected),
                "{missing}: {pulled:?}"
            );
        }

        let host = registry.host();
        drop(registry);
        let down = format!("{host}/test/busybox:1");
        let pulled = within("pull", runtime.pull(&down, None)).await;
        assert!(matches!(&pulled, Err(Error::Unavailable(_))), "{pulled:?}");
        let images = within("images", runtime.images()).await.expect("images");
        assert!(images.is_empty(), "{images:?}");
    };
    tokio::time::timeout(CASE_LIMIT, test)
        .await
        .expect("the case finished in time");
}

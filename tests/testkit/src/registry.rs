//! A real OCI registry (Debian's `docker-registry`, Distribution 2.8) on a loopback port,
//! for tests of image pulls, and pushing [`ImageBuilder`] images to it.
//!
//! Each [`Registry`] owns its process and a temporary directory (config, htpasswd, storage,
//! log); dropping it kills the process by PID and removes the directory. Pushes speak the
//! registry API over plain HTTP/1.1 (monolithic uploads: POST, then PUT with the bytes),
//! as a test registry needs nothing more.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use tempfile::TempDir;

use crate::TestkitError;
use crate::etcd::log_tail;
use crate::image::{ImageBuilder, MANIFEST, OciBlobs, json_error, sha256};
use crate::port::free_port;

/// Where Debian's `docker-registry` package installs the registry.
const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// How many ports to try when another process takes a chosen port first.
const START_ATTEMPTS: u32 = 5;

/// How long the registry may take to answer `GET /v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one request to the registry may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A running registry, killed when dropped.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    credentials: Option<(String, String)>,
    // Dropped after the process is killed in `Drop`, so the registry never sees its
    // storage vanish.
    dir: TempDir,
}

/// What a push put in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The full reference pulled by, `127.0.0.1:PORT/REPOSITORY:TAG`.
    pub reference: String,
    /// The manifest's digest: what a pull reports as the image's digest.
    pub digest: String,
    /// The config blob's digest.
    pub config: String,
    /// The layer blob's digest.
    pub layer: String,
}

impl Registry {
    /// Starts a registry anyone may push to and pull from.
    pub fn start() -> Result<Registry, TestkitError> {
        Self::start_with(None)
    }

    /// Starts a registry that wants HTTP Basic authentication as `username`/`password`
    /// for everything (htpasswd, bcrypt); [`Registry::push`] sends them.
    pub fn start_with_auth(username: &str, password: &str) -> Result<Registry, TestkitError> {
        Self::start_with(Some((username.to_owned(), password.to_owned())))
    }

    fn start_with(credentials: Option<(String, String)>) -> Result<Registry, TestkitError> {
        if !Path::new(REGISTRY_BINARY).is_file() {
            return Err(TestkitError::RegistryMissing {
                path: REGISTRY_BINARY.to_owned(),
            });
        }
        let mut attempt = 1;
        loop {
            match Self::try_start(credentials.clone())? {
                Ok(registry) => return Ok(registry),
                Err((status, log_tail)) => {
                    // The port is probed free and released before the registry binds it;
                    // only losing that race is worth another try.
                    if !log_tail.contains("address already in use") || attempt == START_ATTEMPTS {
                        return Err(TestkitError::RegistryExited {
                            status,
                            attempts: attempt,
                            log_tail,
                        });
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// `127.0.0.1:PORT`: the registry part of references to its images.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding the registry's config, storage (`data`) and log
    /// (`registry.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Pushes `image` as `REPOSITORY:TAG`: its layer and config, then its manifest.
    pub fn push(
        &self,
        repository: &str,
        tag: &str,
        image: &ImageBuilder,
    ) -> Result<Pushed, TestkitError> {
        let blobs = image.oci_blobs()?;
        self.push_blobs(repository, &blobs)?;
        self.put_manifest(repository, tag, MANIFEST, &blobs.manifest)?;
        Ok(self.pushed(repository, tag, &blobs))
    }

    /// Pushes each image by digest and an OCI index at `REPOSITORY:TAG` that lists them,
    /// each as `linux/ARCH` for its `arch` ([`crate::host_arch`] for this machine). Returns the
    /// index's digest and each image's push in order.
    pub fn push_index(
        &self,
        repository: &str,
        tag: &str,
        images: &[(&str, &ImageBuilder)],
    ) -> Result<(String, Vec<Pushed>), TestkitError> {
        let mut entries = Vec::new();
        let mut pushed = Vec::new();
        for (arch, image) in images {
            let blobs = image.oci_blobs()?;
            self.push_blobs(repository, &blobs)?;
            let digest = sha256(&blobs.manifest);
            self.put_manifest(repository, &digest, MANIFEST, &blobs.manifest)?;
            let mut entry = crate::image::descriptor(MANIFEST, &blobs.manifest);
            entry["platform"] = serde_json::json!({ "os": "linux", "architecture": arch });
            entries.push(entry);
            pushed.push(self.pushed(repository, tag, &blobs));
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": entries,
        }))
        .map_err(json_error)?;
        self.put_manifest(repository, tag, INDEX, &index)?;
        Ok((sha256(&index), pushed))
    }

    /// Deletes a blob's bytes from the registry's storage behind its back, so any later
    /// request for it fails: what proves a pull did not download it again.
    pub fn remove_blob(&self, digest: &str) -> Result<(), TestkitError> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let dir = self
            .dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(hex.get(..2).unwrap_or(hex))
            .join(hex);
        std::fs::remove_dir_all(&dir)
            .map_err(TestkitError::io(format!("removing {}", dir.display())))
    }

    fn pushed(&self, repository: &str, tag: &str, blobs: &OciBlobs) -> Pushed {
        Pushed {
            reference: format!("{}/{repository}:{tag}", self.host()),
            digest: sha256(&blobs.manifest),
            config: sha256(&blobs.config),
            layer: sha256(&blobs.layer),
        }
    }

    fn push_blobs(&self, repository: &str, blobs: &OciBlobs) -> Result<(), TestkitError> {
        for blob in [&blobs.layer, &blobs.config] {
            let started = self.request(
                "POST",
                &format!("/v2/{repository}/blobs/uploads/"),
                None,
                &[],
            )?;
            let location = started.expect(202, "starting an upload")?.location()?;
            let separator = if location.contains('?') { '&' } else { '?' };
            let digest = sha256(blob).replace(':', "%3A");
            self.request(
                "PUT",
                &format!("{location}{separator}digest={digest}"),
                Some("application/octet-stream"),
                blob,
            )?
            .expect(201, "uploading a blob")?;
        }
        Ok(())
    }

    fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), TestkitError> {
        self.request(
            "PUT",
            &format!("/v2/{repository}/manifests/{reference}"),
            Some(media_type),
            bytes,
        )?
        .expect(201, "putting a manifest")
        .map(drop)
    }

    /// One HTTP/1.1 request with the registry's credentials, if it has any.
    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response, TestkitError> {
        exchange(
            self.port,
            self.credentials.as_ref(),
            method,
            path,
            content_type,
            body,
        )
    }

    /// One start on a fresh port: the registry, or its exit status and log tail if it died.
    fn try_start(
        credentials: Option<(String, String)>,
    ) -> Result<Result<Registry, (ExitStatus, String)>, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-registry-")
            .tempdir()
            .map_err(TestkitError::io(
                "creating the registry's temporary directory",
            ))?;
        let port = free_port()?;
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
             \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: slipway-test-registry\n",
            data = dir.path().join("data").display(),
        );
        if let Some((username, password)) = &credentials {
            let hash = bcrypt::hash_with_result(password, 4)
                .map_err(|e| TestkitError::Io {
                    context: "hashing the registry password".to_owned(),
                    source: std::io::Error::other(e),
                })?
                .format_for_version(bcrypt::Version::TwoA);
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{username}:{hash}\n"))
                .map_err(TestkitError::io(format!("writing {}", htpasswd.display())))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: slipway-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).map_err(TestkitError::io(format!(
            "writing {}",
            config_path.display()
        )))?;
        let log_path = dir.path().join("registry.log");
        let log = File::create(&log_path)
            .map_err(TestkitError::io(format!("creating {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(TestkitError::io(format!(
            "duplicating {}",
            log_path.display()
        )))?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(TestkitError::io(format!("starting {REGISTRY_BINARY}")))?;
        let mut registry = Registry {
            child,
            port,
            credentials,
            dir,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = registry
                .child
                .try_wait()
                .map_err(TestkitError::io("checking on the registry"))?
            {
                return Ok(Err((status, log_tail(&log_path))));
            }
            // Any HTTP answer will do: 200, or 401 when it wants credentials.
            if registry
                .request("GET", "/v2/", None, &[])
                .is_ok_and(|r| r.text.starts_with("HTTP/1.1 "))
            {
                return Ok(Ok(registry));
            }
            if started.elapsed() > READY_TIMEOUT {
                let log_tail = log_tail(&log_path);
                drop(registry);
                return Err(TestkitError::RegistryNotReady {
                    waited: READY_TIMEOUT,
                    log_tail,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One HTTP/1.1 request to the registry on `port`, on a connection of its own.
fn exchange(
    port: u16,
    credentials: Option<&(String, String)>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, TestkitError> {
    let what = format!("{method} {path}");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if let Some((username, password)) = credentials {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        head.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    head.push_str("\r\n");
    let exchange = || -> std::io::Result<Vec<u8>> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response)
    };
    let raw = exchange().map_err(TestkitError::io(what.clone()))?;
    Ok(Response {
        what,
        text: String::from_utf8_lossy(&raw).into_owned(),
    })
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Errors mean the process is already gone, which is the goal.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A whole HTTP response, as text (registry answers to pushes are small).
struct Response {
    what: String,
    text: String,
}

impl Response {
    fn status(&self) -> u16 {
        self.text
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    fn expect(self, status: u16, doing: &str) -> Result<Self, TestkitError> {
        if self.status() == status {
            return Ok(self);
        }
        Err(TestkitError::RegistryRefused {
            request: format!("{doing}: {}", self.what),
            response: self.text.chars().take(2000).collect(),
        })
    }

    /// The `Location` header as a path: the registry gives an absolute URL.
    fn location(&self) -> Result<String, TestkitError> {
        let head = self.text.split("\r\n\r\n").next().unwrap_or_default();
        let location = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_owned())
            })
            .ok_or_else(|| TestkitError::RegistryRefused {
                request: format!("{}: no Location header", self.what),
                response: self.text.chars().take(2000).collect(),
            })?;
        let path = match location.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_owned(),
            None => location,
        };
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_answer_and_the_registry_dies_with_its_handle() {
        let registry = Registry::start().unwrap();
        let pushed = registry
            .push("test/busybox", "1", &ImageBuilder::busybox("unused"))
            .unwrap();
        assert_eq!(
            pushed.reference,
            format!("127.0.0.1:{}/test/busybox:1", registry.port)
        );
        let blob = registry
            .request(
                "GET",
                &format!("/v2/test/busybox/blobs/{}", pushed.config),
                None,
                &[],
            )
            .unwrap();
        assert_eq!(blob.status(), 200, "{}", blob.text);
        registry.remove_blob(&pushed.config).unwrap();
        let gone = registry
            .request(
                "GET",
                &format!("/v2/test/busybox/blobs/{}", pushed.config),
                None,
                &[],
            )
            .unwrap();
        assert_eq!(gone.status(), 404, "{}", gone.text);
        let pid = registry.pid();
        drop(registry);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn an_authenticating_registry_wants_the_password() {
        let registry = Registry::start_with_auth("tester", "s3cret").unwrap();
        registry
            .push("private/busybox", "1", &ImageBuilder::busybox("unused"))
            .unwrap();
        let refused = exchange(
            registry.port,
            None,
            "GET",
            "/v2/private/busybox/manifests/1",
            None,
            &[],
        )
        .unwrap();
        assert_eq!(refused.status(), 401, "{}", refused.text);
    }
}

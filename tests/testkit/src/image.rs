//! Test images built from the host's busybox-static: one layer with `/bin/busybox`, a
//! symlink per applet tests use, `/etc/passwd` and `/etc/group`, plus any files a test
//! adds, written as an OCI image layout or a `docker save` archive, gzip-compressed or not.
//!
//! Every timestamp is fixed, so the same builder writes the same bytes and digests.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::TestkitError;

/// Where Debian's `busybox-static` package installs busybox.
const BUSYBOX: &str = "/bin/busybox";

/// The applets linked into `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "wget", "httpd", "nc", "env", "id", "touch", "mkdir",
    "true", "false", "kill", "head", "tail", "dd", "hostname", "printf", "grep", "rm", "ps",
    "test", "wc", "seq", "sed", "tr",
];

/// The modification time of every entry: fixed, for reproducible digests.
const MTIME: u64 = 1_700_000_000;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The media type of the manifests written.
pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// This machine's architecture as OCI spells it (`amd64`, `arm64`): what image configs and
/// index platforms say.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An image's blobs, as a registry holds them.
pub(crate) struct OciBlobs {
    pub(crate) manifest: Vec<u8>,
    pub(crate) config: Vec<u8>,
    pub(crate) layer: Vec<u8>,
}

/// A busybox image to write; see the module docs.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    name: String,
    files: Vec<(String, Vec<u8>, u32)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    working_dir: String,
    user: String,
    gzip_layers: bool,
    gzip_archive: bool,
}

impl ImageBuilder {
    /// A busybox image named `name` (e.g. `slipway.local/busybox:1`, or `busybox:1` as
    /// `docker save` spells Docker Hub names), with `Env` holding the usual `PATH`, no
    /// `Entrypoint` and `Cmd` `["sh"]`.
    pub fn busybox(name: impl Into<String>) -> Self {
        ImageBuilder {
            name: name.into(),
            files: Vec::new(),
            entrypoint: Vec::new(),
            cmd: vec!["sh".to_owned()],
            env: vec![DEFAULT_PATH.to_owned()],
            working_dir: String::new(),
            user: String::new(),
            gzip_layers: false,
            gzip_archive: false,
        }
    }

    /// Sets `Entrypoint`.
    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.entrypoint = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `Cmd`.
    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `Env` (`NAME=value` each), replacing the default `PATH`.
    pub fn env<S: Into<String>>(mut self, vars: impl IntoIterator<Item = S>) -> Self {
        self.env = vars.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `WorkingDir`.
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = dir.into();
        self
    }

    /// Sets `User`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Adds a file at the absolute `path` (parent directories are made) with `mode`.
    pub fn file(mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.files.push((path.into(), bytes.into(), mode));
        self
    }

    /// Gzips the layer in OCI archives (`docker save` layers are always plain tars).
    pub fn gzip_layers(mut self, gzip: bool) -> Self {
        self.gzip_layers = gzip;
        self
    }

    /// Gzips the whole archive, as `docker save | gzip` does.
    pub fn gzip_archive(mut self, gzip: bool) -> Self {
        self.gzip_archive = gzip;
        self
    }

    /// The config fields as `(Entrypoint, Cmd, Env, WorkingDir, User)`, for comparing with
    /// what a runtime reads back.
    pub fn config(&self) -> (&[String], &[String], &[String], &str, &str) {
        (
            &self.entrypoint,
            &self.cmd,
            &self.env,
            &self.working_dir,
            &self.user,
        )
    }

    /// The name the archive gives the image.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes an OCI image-layout archive naming the image in
    /// `org.opencontainers.image.ref.name`; returns the manifest's digest.
    pub fn write_oci(&self, path: &Path) -> Result<String, TestkitError> {
        let OciBlobs {
            manifest,
            config,
            layer,
            ..
        } = self.oci_blobs()?;
        let manifest_digest = sha256(&manifest);
        let mut manifest_descriptor = descriptor(MANIFEST, &manifest);
        manifest_descriptor["annotations"] =
            serde_json::json!({ "org.opencontainers.image.ref.name": self.name });
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [manifest_descriptor],
        }))
        .map_err(json_error)?;
        let mut archive = tar::Builder::new(Vec::new());
        directory(&mut archive, "blobs/")?;
        directory(&mut archive, "blobs/sha256/")?;
        for blob in [&layer, &config, &manifest] {
            let hex = sha256(blob);
            let hex = hex.trim_start_matches("sha256:");
            regular(&mut archive, &format!("blobs/sha256/{hex}"), blob, 0o644)?;
        }
        regular(
            &mut archive,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            0o644,
        )?;
        regular(&mut archive, "index.json", &index, 0o644)?;
        self.finish(archive, path)?;
        Ok(manifest_digest)
    }

    /// The OCI manifest, config and layer of the image, as `write_oci` stores them and a
    /// registry serves them.
    pub(crate) fn oci_blobs(&self) -> Result<OciBlobs, TestkitError> {
        let layer = self.layer()?;
        let diff_id = sha256(&layer);
        let (layer, layer_type) = if self.gzip_layers {
            (gzip(&layer)?, "application/vnd.oci.image.layer.v1.tar+gzip")
        } else {
            (layer, "application/vnd.oci.image.layer.v1.tar")
        };
        let config = self.config_json(&diff_id);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [descriptor(layer_type, &layer)],
        }))
        .map_err(json_error)?;
        Ok(OciBlobs {
            manifest,
            config,
            layer,
        })
    }

    /// Writes a `docker save` archive (`manifest.json` with `Config`, `RepoTags` and
    /// `Layers`, the layer a plain tar).
    pub fn write_docker(&self, path: &Path) -> Result<(), TestkitError> {
        let layer = self.layer()?;
        let diff_id = sha256(&layer);
        let config = self.config_json(&diff_id);
        let config_hex = sha256(&config).trim_start_matches("sha256:").to_owned();
        let layer_dir = diff_id.trim_start_matches("sha256:").to_owned();
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": [self.name],
            "Layers": [format!("{layer_dir}/layer.tar")],
        }]))
        .map_err(json_error)?;
        let mut archive = tar::Builder::new(Vec::new());
        regular(&mut archive, &format!("{config_hex}.json"), &config, 0o644)?;
        directory(&mut archive, &format!("{layer_dir}/"))?;
        regular(
            &mut archive,
            &format!("{layer_dir}/layer.tar"),
            &layer,
            0o644,
        )?;
        regular(&mut archive, "manifest.json", &manifest, 0o644)?;
        self.finish(archive, path)
    }

    fn finish(&self, archive: tar::Builder<Vec<u8>>, path: &Path) -> Result<(), TestkitError> {
        let bytes = archive
            .into_inner()
            .map_err(TestkitError::io("finishing an image archive"))?;
        let bytes = if self.gzip_archive {
            gzip(&bytes)?
        } else {
            bytes
        };
        std::fs::write(path, bytes).map_err(TestkitError::io(format!("writing {}", path.display())))
    }

    fn config_json(&self, diff_id: &str) -> Vec<u8> {
        fn list(items: &[String]) -> Option<&[String]> {
            (!items.is_empty()).then_some(items)
        }
        fn text(s: &str) -> Option<&str> {
            (!s.is_empty()).then_some(s)
        }
        let config = serde_json::json!({
            "architecture": host_arch(),
            "os": "linux",
            "config": {
                "Entrypoint": list(&self.entrypoint),
                "Cmd": list(&self.cmd),
                "Env": list(&self.env),
                "WorkingDir": text(&self.working_dir),
                "User": text(&self.user),
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        });
        serde_json::to_vec(&config).unwrap_or_default()
    }

    /// The one layer, uncompressed.
    fn layer(&self) -> Result<Vec<u8>, TestkitError> {
        let busybox = std::fs::read(BUSYBOX).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => TestkitError::BusyboxMissing {
                path: BUSYBOX.to_owned(),
            },
            _ => TestkitError::Io {
                context: format!("reading {BUSYBOX}"),
                source,
            },
        })?;
        let mut layer = tar::Builder::new(Vec::new());
        let mut dirs: Vec<String> = ["bin", "dev", "etc", "proc", "root", "sys", "tmp", "var"]
            .iter()
            .map(|d| (*d).to_owned())
            .collect();
        for (path, _, _) in &self.files {
            let relative = relative(path)?;
            let mut parent = Path::new(&relative).parent();
            while let Some(dir) = parent.filter(|p| !p.as_os_str().is_empty()) {
                dirs.push(dir.to_string_lossy().into_owned());
                parent = dir.parent();
            }
        }
        dirs.sort();
        dirs.dedup();
        for dir in &dirs {
            let mode = match dir.as_str() {
                "tmp" => 0o1777,
                "root" => 0o700,
                _ => 0o755,
            };
            entry_dir(&mut layer, &format!("{dir}/"), mode)?;
        }
        regular(&mut layer, "bin/busybox", &busybox, 0o755)?;
        for applet in APPLETS {
            symlink(&mut layer, &format!("bin/{applet}"), "busybox")?;
        }
        regular(
            &mut layer,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        )?;
        regular(
            &mut layer,
            "etc/group",
            b"root:x:0:\nnobody:x:65534:\n",
            0o644,
        )?;
        for (path, bytes, mode) in &self.files {
            regular(&mut layer, &relative(path)?, bytes, *mode)?;
        }
        layer
            .into_inner()
            .map_err(TestkitError::io("finishing an image layer"))
    }
}

fn relative(path: &str) -> Result<String, TestkitError> {
    let relative = path.strip_prefix('/').unwrap_or_default();
    if relative.is_empty() || relative.split('/').any(|p| p.is_empty() || p == "..") {
        return Err(TestkitError::BadImageFile {
            path: path.to_owned(),
        });
    }
    Ok(relative.to_owned())
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(MTIME);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn regular(
    archive: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), TestkitError> {
    let mut header = header(tar::EntryType::Regular, mode, bytes.len() as u64);
    archive
        .append_data(&mut header, path, bytes)
        .map_err(TestkitError::io(format!("adding {path} to an archive")))
}

fn entry_dir(
    archive: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
) -> Result<(), TestkitError> {
    let mut header = header(tar::EntryType::Directory, mode, 0);
    archive
        .append_data(&mut header, path, std::io::empty())
        .map_err(TestkitError::io(format!("adding {path} to an archive")))
}

fn directory(archive: &mut tar::Builder<Vec<u8>>, path: &str) -> Result<(), TestkitError> {
    entry_dir(archive, path, 0o755)
}

fn symlink(
    archive: &mut tar::Builder<Vec<u8>>,
    path: &str,
    target: &str,
) -> Result<(), TestkitError> {
    let mut header = header(tar::EntryType::Symlink, 0o777, 0);
    archive
        .append_link(&mut header, path, target)
        .map_err(TestkitError::io(format!("adding {path} to an archive")))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, TestkitError> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(bytes)
        .map_err(TestkitError::io("gzipping"))?;
    encoder.finish().map_err(TestkitError::io("gzipping"))
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub(crate) fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "mediaType": media_type,
        "digest": sha256(bytes),
        "size": bytes.len(),
    })
}

pub(crate) fn json_error(e: serde_json::Error) -> TestkitError {
    TestkitError::Io {
        context: "encoding image JSON".to_owned(),
        source: std::io::Error::other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::ImageBuilder;

    #[test]
    fn archives_are_reproducible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let builder = ImageBuilder::busybox("slipway.local/busybox:1")
            .cmd(["echo", "hi"])
            .file("/www/index.html", b"hi".to_vec(), 0o644);
        let first = builder.write_oci(&dir.path().join("a.tar")).expect("write");
        let second = builder.write_oci(&dir.path().join("b.tar")).expect("write");
        assert_eq!(first, second);
        builder
            .clone()
            .gzip_archive(true)
            .write_docker(&dir.path().join("c.tar.gz"))
            .expect("write");
        assert!(
            ImageBuilder::busybox("x")
                .file("relative", b"".to_vec(), 0o644)
                .write_oci(&dir.path().join("d.tar"))
                .is_err()
        );
    }
}

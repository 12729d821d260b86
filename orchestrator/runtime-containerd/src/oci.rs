//! The OCI image documents we read and write (index, manifest, config), and the digests
//! that tie them together: chain IDs name unpacked snapshots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use slipway_runtime::{Error, ImageConfig, Result};

pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest JSON document (index, manifest, config) we read into memory.
pub(crate) const MAX_JSON: u64 = 16 << 20;

/// The annotation containerd (and Docker 25's `docker save`) names an image by.
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation that names an image, or only its tag.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing)]
    pub(crate) platform: Option<Platform>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Platform {
    #[serde(default)]
    pub(crate) os: String,
    #[serde(default)]
    pub(crate) architecture: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) schema_version: u32,
    #[serde(default)]
    pub(crate) media_type: String,
    pub(crate) config: Descriptor,
    pub(crate) layers: Vec<Descriptor>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) config: Option<ProcessDefaults>,
    pub(crate) rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProcessDefaults {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub(crate) diff_ids: Vec<String>,
}

impl Config {
    pub(crate) fn image_config(&self) -> ImageConfig {
        let defaults = self.config.as_ref();
        ImageConfig {
            entrypoint: defaults
                .and_then(|d| d.entrypoint.clone())
                .unwrap_or_default(),
            cmd: defaults.and_then(|d| d.cmd.clone()).unwrap_or_default(),
            env: defaults.and_then(|d| d.env.clone()).unwrap_or_default(),
            working_dir: defaults
                .and_then(|d| d.working_dir.clone())
                .unwrap_or_default(),
            user: defaults.and_then(|d| d.user.clone()).unwrap_or_default(),
        }
    }

    /// The chain ID of every layer, bottom first: what its unpacked snapshot is named.
    pub(crate) fn chain_ids(&self) -> Vec<String> {
        let mut chain: Vec<String> = Vec::with_capacity(self.rootfs.diff_ids.len());
        for diff_id in &self.rootfs.diff_ids {
            let next = match chain.last() {
                None => diff_id.clone(),
                Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
            };
            chain.push(next);
        }
        chain
    }
}

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == INDEX || media_type == DOCKER_LIST
}

pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == MANIFEST || media_type == DOCKER_MANIFEST
}

/// Of a multi-platform index, the manifest for this machine.
pub(crate) fn pick_platform(index: &Index) -> Option<&Descriptor> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    index.manifests.iter().find(|d| {
        is_manifest(&d.media_type)
            && d.platform
                .as_ref()
                .is_none_or(|p| p.os == "linux" && p.architecture == arch)
    })
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The hex part of a `sha256:` digest, checked, so it can be used in a path.
pub(crate) fn sha256_hex(digest: &str) -> Result<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::Invalid(format!("unsupported digest {digest:?} (want sha256)")))
}

#[cfg(test)]
mod tests {
    use super::{Config, RootFs};

    #[test]
    fn chain_ids_follow_the_oci_formula() {
        let config = Config {
            config: None,
            rootfs: RootFs {
                diff_ids: vec!["sha256:a".to_owned(), "sha256:b".to_owned()],
            },
        };
        let chain = config.chain_ids();
        assert_eq!(chain[0], "sha256:a");
        assert_eq!(chain[1], super::sha256_digest(b"sha256:a sha256:b"));
    }
}

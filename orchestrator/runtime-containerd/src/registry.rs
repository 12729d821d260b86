//! Pulling images from OCI registries (Distribution API v2) with `oci-client`: the manifest
//! (an index resolved to this platform), the config, then [`image::store`] with the
//! registry as the [`BlobSource`], so layers containerd already holds are never
//! downloaded and the rest stream to it chunk by chunk.
//!
//! Loopback registries (`127.0.0.0/8`, `localhost`, `::1`) are spoken to over plain HTTP,
//! every other over HTTPS (rustls on ring, the system's roots). Every request is bounded:
//! connecting, each read, and each call as a whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;
use slipway_runtime::reference::normalize;
use slipway_runtime::{Credentials, Error, Image, Result};
use tokio_util::io::StreamReader;

use crate::grpc::Conn;
use crate::image::{self, BlobReader, BlobSource, ImageContent};
use crate::oci::{self, Config, Descriptor, Index, MAX_JSON, Manifest};

/// How long connecting to a registry may take.
const CONNECT: Duration = Duration::from_secs(10);
/// How long a registry may leave a response (a layer, say) without a byte.
const READ: Duration = Duration::from_secs(30);
/// How long one request for a manifest or config, or the start of a layer's, may take.
const REQUEST: Duration = Duration::from_secs(60);

/// The manifest types we can unpack, and the indexes that point at them.
const ACCEPTED: &[&str] = &[
    oci::MANIFEST,
    oci::DOCKER_MANIFEST,
    oci::INDEX,
    oci::DOCKER_LIST,
];

pub(crate) async fn pull(
    conn: &Conn,
    reference: &str,
    auth: Option<&Credentials>,
) -> Result<Image> {
    let name = normalize(reference);
    let remote = Remote::new(&name, auth)?;
    let (manifest_bytes, manifest) = remote.manifest().await?;
    let parsed: Manifest = oci::parse(&manifest.digest, &manifest_bytes)?;
    let config_bytes = match image::read_content(conn, &parsed.config.digest).await {
        Ok(bytes) => bytes,
        Err(Error::NotFound(_)) => remote.small_blob(&parsed.config).await?,
        Err(e) => return Err(e),
    };
    let config: Config = oci::parse(&parsed.config.digest, &config_bytes)?;
    let content = ImageContent::new(
        vec![name.clone()],
        manifest.clone(),
        parsed.config.clone(),
        config,
        parsed.layers,
    )?;
    let source = RegistrySource {
        remote,
        in_memory: [
            (manifest.digest, manifest_bytes),
            (parsed.config.digest, config_bytes),
        ]
        .into(),
    };
    image::store(conn, "pull", &[content], &source)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Other(format!("pulling {name} stored no image")))
}

/// One image's repository on its registry, with a client of its own: `oci-client` keeps
/// the first credentials it sees per registry, so clients are never shared across pulls.
struct Remote {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
    /// The normalized reference, for messages.
    name: String,
    username: Option<String>,
}

impl Remote {
    fn new(name: &str, auth: Option<&Credentials>) -> Result<Self> {
        let reference: Reference = name
            .parse()
            .map_err(|e| Error::Invalid(format!("image reference {name:?}: {e}")))?;
        // reqwest is built without a crypto provider of its own and takes the process
        // default; ring is the workspace's. Already installed (by us or anyone) is fine.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let protocol = if is_loopback(reference.resolve_registry()) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = Client::try_from(ClientConfig {
            protocol,
            connect_timeout: Some(CONNECT),
            read_timeout: Some(READ),
            // Indexes are resolved here, as for archives (`oci::pick_platform`).
            platform_resolver: None,
            ..ClientConfig::default()
        })
        .map_err(|e| Error::Other(format!("making a registry client: {e}")))?;
        Ok(Remote {
            client,
            reference,
            auth: auth.map_or(RegistryAuth::Anonymous, |c| {
                RegistryAuth::Basic(c.username.clone(), c.password.clone())
            }),
            name: name.to_owned(),
            username: auth.map(|c| c.username.clone()),
        })
    }

    /// The image's manifest for this platform: its bytes and descriptor (whose media type
    /// the image record keeps).
    async fn manifest(&self) -> Result<(Vec<u8>, Descriptor)> {
        let (bytes, digest) = self.manifest_at(&self.reference).await?;
        let media_type = manifest_type(&digest, &bytes)?;
        if !oci::is_index(&media_type) {
            return Ok(descriptor(bytes, digest, media_type));
        }
        let index: Index = oci::parse(&digest, &bytes)?;
        let chosen = oci::pick_platform(&index).ok_or_else(|| {
            Error::Invalid(format!(
                "image {} has no manifest for linux/{}",
                self.name,
                std::env::consts::ARCH
            ))
        })?;
        let at = self.reference.clone_with_digest(chosen.digest.clone());
        let (bytes, digest) = self.manifest_at(&at).await?;
        let media_type = manifest_type(&digest, &bytes)?;
        if !oci::is_manifest(&media_type) {
            return Err(Error::Invalid(format!(
                "image {}: index entry {digest} is a {media_type}, not an image manifest",
                self.name
            )));
        }
        Ok(descriptor(bytes, digest, media_type))
    }

    async fn manifest_at(&self, at: &Reference) -> Result<(Vec<u8>, String)> {
        let (bytes, digest) = self
            .bounded(
                Stage::Manifest,
                self.client.pull_manifest_raw(at, &self.auth, ACCEPTED),
            )
            .await?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(Error::Invalid(format!(
                "image {}: manifest {digest} is {} bytes, too large",
                self.name,
                bytes.len()
            )));
        }
        Ok((bytes.to_vec(), digest))
    }

    /// A config, read whole (its digest checked by the client).
    async fn small_blob(&self, blob: &Descriptor) -> Result<Vec<u8>> {
        if blob.size > MAX_JSON {
            return Err(Error::Invalid(format!(
                "image {}: blob {} is {} bytes, too large",
                self.name, blob.digest, blob.size
            )));
        }
        let mut bytes = Vec::new();
        self.bounded(
            Stage::Blob(&blob.digest),
            self.client
                .pull_blob(&self.reference, &oci_descriptor(blob), &mut bytes),
        )
        .await?;
        Ok(bytes)
    }

    /// A call to the registry, bounded as a whole, its failure classified.
    async fn bounded<T>(
        &self,
        stage: Stage<'_>,
        call: impl Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T> {
        match tokio::time::timeout(REQUEST, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(stage, e)),
            Err(_) => Err(Error::Unavailable(format!(
                "registry {}: no answer within {REQUEST:?}",
                self.reference.registry()
            ))),
        }
    }

    /// Classifies a failed registry call.
    fn error(&self, stage: Stage<'_>, error: OciDistributionError) -> Error {
        let registry = self.reference.registry();
        let not_found = || match stage {
            Stage::Manifest => {
                Error::NotFound(format!("image {} not found in registry", self.name))
            }
            Stage::Blob(digest) => Error::NotFound(format!(
                "blob {digest} of image {} not found in registry",
                self.name
            )),
        };
        match &error {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => self.denied(None),
            OciDistributionError::RegistryError { envelope, .. } => {
                let code = envelope.errors.first().map(|e| &e.code);
                match code {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound,
                    ) => not_found(),
                    Some(OciErrorCode::Unauthorized) => self.denied(None),
                    Some(OciErrorCode::Denied) => self.denied(Some("the registry denied access")),
                    Some(OciErrorCode::Toomanyrequests) => {
                        Error::Unavailable(format!("registry {registry}: {error}"))
                    }
                    _ => Error::Invalid(format!("registry {registry}: {error}")),
                }
            }
            OciDistributionError::ServerError { code, .. } => match code {
                401 => self.denied(None),
                403 => self.denied(Some("the registry denied access")),
                404 => not_found(),
                408 | 429 | 500.. => Error::Unavailable(format!("registry {registry}: {error}")),
                _ => Error::Invalid(format!("registry {registry}: {error}")),
            },
            OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => {
                Error::Unavailable(format!("registry {registry} unreachable: {error}"))
            }
            OciDistributionError::DigestError(_)
            | OciDistributionError::SpecViolationError(_)
            | OciDistributionError::UnsupportedMediaTypeError(_)
            | OciDistributionError::UnsupportedSchemaVersionError(_)
            | OciDistributionError::ManifestParsingError(_)
            | OciDistributionError::VersionedParsingError(_) => Error::Invalid(format!(
                "image {} from registry {registry}: {error}",
                self.name
            )),
            _ => Error::Other(format!(
                "pulling {} from registry {registry}: {error}",
                self.name
            )),
        }
    }

    /// The registry refused us: say whether we had credentials, never what they were.
    fn denied(&self, why: Option<&str>) -> Error {
        let why = match (&self.username, why) {
            (_, Some(why)) => why.to_owned(),
            (None, None) => "authentication required".to_owned(),
            (Some(user), None) => format!("the registry rejected the credentials of {user:?}"),
        };
        Error::Unauthorized(format!("pull access denied for {}: {why}", self.name))
    }
}

/// What a registry call was fetching, for its "not found".
#[derive(Clone, Copy)]
enum Stage<'a> {
    Manifest,
    Blob(&'a str),
}

/// The registry as the source of the blobs containerd lacks; the manifest and config are
/// already in memory.
struct RegistrySource {
    remote: Remote,
    in_memory: HashMap<String, Vec<u8>>,
}

#[async_trait]
impl BlobSource for RegistrySource {
    async fn open(&self, blob: &Descriptor) -> Result<BlobReader> {
        if let Some(bytes) = self.in_memory.get(&blob.digest) {
            return Ok(Box::new(std::io::Cursor::new(bytes.clone())));
        }
        let remote = &self.remote;
        let stream = remote
            .bounded(
                Stage::Blob(&blob.digest),
                remote
                    .client
                    .pull_blob_stream(&remote.reference, &oci_descriptor(blob)),
            )
            .await?;
        Ok(Box::new(StreamReader::new(stream.stream)))
    }

    fn read_failed(&self, digest: &str, error: std::io::Error) -> Error {
        // A stalled or broken download; a wrong digest is caught by containerd's commit.
        Error::Unavailable(format!(
            "downloading {digest} of {} from registry {}: {error}",
            self.remote.name,
            self.remote.reference.registry()
        ))
    }
}

/// Only a manifest's own `mediaType` says what it is (or, absent, whether it lists
/// manifests); schema 1 manifests are refused.
fn manifest_type(digest: &str, bytes: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versioned {
        schema_version: u32,
        #[serde(default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let versioned: Versioned = oci::parse(digest, bytes)?;
    if versioned.schema_version != 2 {
        return Err(Error::Invalid(format!(
            "manifest {digest} has schema version {}; only 2 is supported",
            versioned.schema_version
        )));
    }
    let media_type = match (versioned.media_type.is_empty(), versioned.manifests) {
        (false, _) => versioned.media_type,
        (true, Some(_)) => oci::INDEX.to_owned(),
        (true, None) => oci::MANIFEST.to_owned(),
    };
    if !ACCEPTED.contains(&media_type.as_str()) {
        return Err(Error::Invalid(format!(
            "manifest {digest} is a {media_type}, not an image manifest or index"
        )));
    }
    Ok(media_type)
}

fn descriptor(bytes: Vec<u8>, digest: String, media_type: String) -> (Vec<u8>, Descriptor) {
    let descriptor = Descriptor {
        media_type,
        digest,
        size: bytes.len() as u64,
        annotations: Default::default(),
        platform: None,
    };
    (bytes, descriptor)
}

fn oci_descriptor(blob: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.clone(),
        size: i64::try_from(blob.size).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    }
}

/// Whether `registry` (a host, maybe with a port) is this machine, where plain HTTP is
/// all a test or development registry speaks.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::{is_loopback, manifest_type};

    #[test]
    fn only_loopback_registries_get_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.3.2.1"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("index.docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("localhost.example.com"));
        assert!(!is_loopback("128.0.0.1"));
    }

    #[test]
    fn manifests_say_what_they_are() {
        let oci = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(
            manifest_type("d", oci).expect("typed"),
            crate::oci::MANIFEST
        );
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(manifest_type("d", index).expect("typed"), crate::oci::INDEX);
        let schema1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(manifest_type("d", schema1).is_err());
        let other = br#"{"schemaVersion":2,"mediaType":"application/vnd.cncf.helm.chart"}"#;
        assert!(manifest_type("d", other).is_err());
    }
}

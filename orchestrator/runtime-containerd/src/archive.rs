//! Reading image archives: an OCI image layout or a `docker save` tarball, gzip-compressed
//! or not, unpacked into a temporary directory with every file's sha256 taken on the way,
//! so that no blob is held in memory and every digest is checked before containerd sees it.
//! The extracted archive is the [`BlobSource`] its images are stored from.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use slipway_runtime::reference::normalize;
use slipway_runtime::{Error, Result};

use crate::image::{BlobReader, BlobSource, ImageContent};
use crate::oci::{self, Config, Descriptor, Index, MAX_JSON, Manifest};

/// How many symlinks a path may pass through before we call it a loop.
const MAX_LINKS: usize = 16;

/// A file of the archive, extracted.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub(crate) path: PathBuf,
    pub(crate) digest: String,
    pub(crate) size: u64,
}

/// An extracted archive; its files go when it is dropped.
pub(crate) struct Archive {
    _dir: tempfile::TempDir,
    /// Every image, its blobs verified.
    pub(crate) images: Vec<ImageContent>,
    /// The extracted file of every blob the images name, by digest.
    paths: HashMap<String, PathBuf>,
}

#[async_trait]
impl BlobSource for Archive {
    async fn open(&self, blob: &Descriptor) -> Result<BlobReader> {
        let path = self
            .paths
            .get(&blob.digest)
            .ok_or_else(|| Error::Other(format!("archive lost blob {}", blob.digest)))?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::Other(format!("opening extracted blob {}: {e}", blob.digest)))?;
        Ok(Box::new(file))
    }

    fn read_failed(&self, digest: &str, error: std::io::Error) -> Error {
        Error::Other(format!("reading extracted blob {digest}: {error}"))
    }
}

/// Extracts and checks `path`. Blocking: run it off the async threads.
pub(crate) fn read(path: &Path) -> Result<Archive> {
    let dir = tempfile::Builder::new()
        .prefix("slipway-import-")
        .tempdir()
        .map_err(|e| Error::Other(format!("making a directory to extract into: {e}")))?;
    let files = extract(path, dir.path())?;
    let mut paths = HashMap::new();
    let images = if let Some(index) = files.get("index.json")? {
        oci_images(&files, &index, &mut paths)?
    } else if let Some(manifest) = files.get("manifest.json")? {
        docker_images(&files, &manifest, dir.path(), &mut paths)?
    } else {
        return Err(Error::Invalid(format!(
            "{}: neither an OCI image layout (index.json) nor a docker save archive (manifest.json)",
            path.display()
        )));
    };
    if images.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: holds no image",
            path.display()
        )));
    }
    Ok(Archive {
        _dir: dir,
        images,
        paths,
    })
}

/// The archive's regular files by their path inside it, and its links.
struct Files {
    blobs: HashMap<String, Blob>,
    links: HashMap<String, String>,
}

impl Files {
    fn get(&self, path: &str) -> Result<Option<Blob>> {
        let mut path = path.to_owned();
        for _ in 0..MAX_LINKS {
            if let Some(blob) = self.blobs.get(&path) {
                return Ok(Some(blob.clone()));
            }
            match self.links.get(&path) {
                Some(target) => path.clone_from(target),
                None => return Ok(None),
            }
        }
        Err(Error::Invalid(format!("{path}: too many levels of links")))
    }

    fn require(&self, path: &str) -> Result<Blob> {
        self.get(path)?
            .ok_or_else(|| Error::Invalid(format!("archive lacks {path}")))
    }

    /// The blob a descriptor points at, checked against its digest and size.
    fn blob(&self, descriptor: &Descriptor) -> Result<Blob> {
        let hex = oci::sha256_hex(&descriptor.digest)?;
        let blob = self.require(&format!("blobs/sha256/{hex}"))?;
        if blob.digest != descriptor.digest {
            return Err(Error::Invalid(format!(
                "blob {} has digest {}",
                descriptor.digest, blob.digest
            )));
        }
        if blob.size != descriptor.size {
            return Err(Error::Invalid(format!(
                "blob {} has {} bytes, its descriptor says {}",
                descriptor.digest, blob.size, descriptor.size
            )));
        }
        Ok(blob)
    }
}

fn extract(archive: &Path, into: &Path) -> Result<Files> {
    let bad = |e: std::io::Error| Error::Invalid(format!("reading {}: {e}", archive.display()));
    let file = File::open(archive).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("{}", archive.display())),
        _ => bad(e),
    })?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let gzip = reader.fill_buf().map_err(bad)?.starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut tar = tar::Archive::new(input);
    let mut files = Files {
        blobs: HashMap::new(),
        links: HashMap::new(),
    };
    for (n, entry) in tar.entries().map_err(bad)?.enumerate() {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let Some(name) = clean(Path::new(""), &raw) else {
            return Err(Error::Invalid(format!(
                "{}: entry {} leaves the archive",
                archive.display(),
                raw.display()
            )));
        };
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let path = into.join(n.to_string());
            let (digest, size) = copy_hashed(&mut entry, &path).map_err(bad)?;
            files.blobs.insert(name, Blob { path, digest, size });
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name().map_err(bad)?.unwrap_or_default();
            let base = if kind.is_symlink() {
                Path::new(&name)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .to_owned()
            } else {
                PathBuf::new()
            };
            if let Some(target) = clean(&base, &target) {
                files.links.insert(name, target);
            }
        }
    }
    Ok(files)
}

/// `path` resolved against `base` within the archive, or `None` if it leaves it.
fn clean(base: &Path, path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    };
    for component in joined.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.join("/"))
}

fn copy_hashed(from: &mut impl Read, to: &Path) -> std::io::Result<(String, u64)> {
    let mut out = std::io::BufWriter::new(File::create(to)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
    out.flush()?;
    Ok((format!("sha256:{}", oci::hex(&hasher.finalize())), size))
}

fn read_json<T: serde::de::DeserializeOwned>(what: &str, blob: &Blob) -> Result<T> {
    if blob.size > MAX_JSON {
        return Err(Error::Invalid(format!(
            "{what} is {} bytes, too large",
            blob.size
        )));
    }
    let bytes = std::fs::read(&blob.path)
        .map_err(|e| Error::Other(format!("reading extracted {what}: {e}")))?;
    oci::parse(what, &bytes)
}

fn oci_images(
    files: &Files,
    index: &Blob,
    paths: &mut HashMap<String, PathBuf>,
) -> Result<Vec<ImageContent>> {
    let index: Index = read_json("index.json", index)?;
    let mut images: Vec<ImageContent> = Vec::new();
    for entry in &index.manifests {
        let name = oci_name(entry)?;
        let descriptor = if oci::is_index(&entry.media_type) {
            let nested: Index = read_json(&entry.digest, &files.blob(entry)?)?;
            oci::pick_platform(&nested).cloned().ok_or_else(|| {
                Error::Invalid(format!(
                    "index {} has no manifest for linux/{}",
                    entry.digest,
                    std::env::consts::ARCH
                ))
            })?
        } else {
            entry.clone()
        };
        if let Some(known) = images
            .iter_mut()
            .find(|i| i.manifest.digest == descriptor.digest)
        {
            if !known.names.contains(&name) {
                known.names.push(name);
            }
            continue;
        }
        let manifest = files.blob(&descriptor)?;
        let parsed: Manifest = read_json(&descriptor.digest, &manifest)?;
        let config = files.blob(&parsed.config)?;
        let layers = parsed
            .layers
            .iter()
            .map(|layer| Ok((files.blob(layer)?, layer.media_type.clone())))
            .collect::<Result<Vec<_>>>()?;
        let media_type = if descriptor.media_type.is_empty() {
            parsed.media_type.clone()
        } else {
            descriptor.media_type.clone()
        };
        images.push(image(
            vec![name],
            (manifest, media_type),
            config,
            layers,
            paths,
        )?);
    }
    Ok(images)
}

/// The name an OCI index entry gives its image. A bare tag (`1.0`, as `docker save` and
/// buildkit write in `ref.name`) is not enough to name an image in containerd.
fn oci_name(entry: &Descriptor) -> Result<String> {
    if let Some(name) = entry.annotations.get(oci::CONTAINERD_NAME) {
        return Ok(normalize(name));
    }
    match entry.annotations.get(oci::REF_NAME) {
        Some(name) if name.contains('/') || name.contains(':') => Ok(normalize(name)),
        Some(tag) => Err(Error::Invalid(format!(
            "manifest {} is named only by the tag {tag:?}; annotate it with a full reference \
             ({} or {} = registry/name:tag)",
            entry.digest,
            oci::REF_NAME,
            oci::CONTAINERD_NAME
        ))),
        None => Err(Error::Invalid(format!(
            "manifest {} has no name ({} or {})",
            entry.digest,
            oci::REF_NAME,
            oci::CONTAINERD_NAME
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Images of a `docker save` archive. Docker keeps no manifest there, so we write the
/// OCI manifest it would have had: that is what the image record points at.
fn docker_images(
    files: &Files,
    manifest: &Blob,
    dir: &Path,
    paths: &mut HashMap<String, PathBuf>,
) -> Result<Vec<ImageContent>> {
    let entries: Vec<DockerEntry> = read_json("manifest.json", manifest)?;
    let mut images = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let names: Vec<String> = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|tag| normalize(tag))
            .collect();
        if names.is_empty() {
            return Err(Error::Invalid(format!(
                "image {} in manifest.json has no RepoTags to name it by",
                entry.config
            )));
        }
        let config = files.require(&entry.config)?;
        let layers = entry
            .layers
            .iter()
            .map(|path| {
                let blob = files.require(path)?;
                let media_type = if is_gzip(&blob.path)? {
                    oci::LAYER_TAR_GZIP
                } else {
                    oci::LAYER_TAR
                };
                Ok((blob, media_type.to_owned()))
            })
            .collect::<Result<Vec<_>>>()?;
        let synthesized = Manifest {
            schema_version: 2,
            media_type: oci::MANIFEST.to_owned(),
            config: descriptor(oci::CONFIG, &config),
            layers: layers
                .iter()
                .map(|(blob, media_type)| descriptor(media_type, blob))
                .collect(),
        };
        let bytes = serde_json::to_vec(&synthesized)
            .map_err(|e| Error::Other(format!("writing a manifest: {e}")))?;
        let path = dir.join(format!("manifest-{n}.json"));
        std::fs::write(&path, &bytes)
            .map_err(|e| Error::Other(format!("writing a manifest: {e}")))?;
        let manifest = Blob {
            path,
            digest: oci::sha256_digest(&bytes),
            size: bytes.len() as u64,
        };
        images.push(image(
            names,
            (manifest, oci::MANIFEST.to_owned()),
            config,
            layers,
            paths,
        )?);
    }
    Ok(images)
}

fn descriptor(media_type: &str, blob: &Blob) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: blob.digest.clone(),
        size: blob.size,
        annotations: Default::default(),
        platform: None,
    }
}

fn is_gzip(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 2];
    let mut file =
        File::open(path).map_err(|e| Error::Other(format!("reading an extracted layer: {e}")))?;
    let n = file
        .read(&mut magic)
        .map_err(|e| Error::Other(format!("reading an extracted layer: {e}")))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// The image to store from these verified blobs, whose files are noted in `paths`.
fn image(
    names: Vec<String>,
    (manifest, manifest_media_type): (Blob, String),
    config: Blob,
    layers: Vec<(Blob, String)>,
    paths: &mut HashMap<String, PathBuf>,
) -> Result<ImageContent> {
    let parsed_config: Config = read_json(&config.digest, &config)?;
    let descriptors = layers
        .iter()
        .map(|(blob, media_type)| descriptor(media_type, blob))
        .collect();
    let image = ImageContent::new(
        names,
        descriptor(&manifest_media_type, &manifest),
        descriptor(oci::CONFIG, &config),
        parsed_config,
        descriptors,
    )?;
    for blob in [manifest, config]
        .into_iter()
        .chain(layers.into_iter().map(|(blob, _)| blob))
    {
        paths.insert(blob.digest, blob.path);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::clean;

    #[test]
    fn paths_stay_inside_the_archive() {
        assert_eq!(
            clean(Path::new(""), Path::new("./index.json")).as_deref(),
            Some("index.json")
        );
        assert_eq!(
            clean(Path::new("abc"), Path::new("../def/layer.tar")).as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(clean(Path::new(""), Path::new("../etc/passwd")), None);
        assert_eq!(
            clean(Path::new(""), Path::new("/blobs/x")).as_deref(),
            Some("blobs/x")
        );
    }

    #[test]
    fn oci_names_must_be_full_references() {
        let entry = |annotations: &[(&str, &str)]| crate::oci::Descriptor {
            media_type: crate::oci::MANIFEST.to_owned(),
            digest: "sha256:00".to_owned(),
            size: 0,
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            platform: None,
        };
        let name = |annotations| super::oci_name(&entry(annotations));
        assert_eq!(
            name(&[(crate::oci::REF_NAME, "busybox:1.36")]).expect("named"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            name(&[
                (crate::oci::REF_NAME, "1.36"),
                (crate::oci::CONTAINERD_NAME, "slipway.local/web:1")
            ])
            .expect("named"),
            "slipway.local/web:1"
        );
        let tag_only = name(&[(crate::oci::REF_NAME, "1.36")]);
        assert!(
            matches!(&tag_only, Err(slipway_runtime::Error::Invalid(m)) if m.contains("only by the tag")),
            "{tag_only:?}"
        );
        assert!(name(&[]).is_err());
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk.tar");
        std::fs::write(&path, b"\x1f\x8bnot really gzip at all").expect("write");
        assert!(matches!(
            super::read(&path),
            Err(slipway_runtime::Error::Invalid(_))
        ));
        std::fs::write(&path, vec![7u8; 4096]).expect("write");
        assert!(matches!(
            super::read(&path),
            Err(slipway_runtime::Error::Invalid(_))
        ));
    }
}

//! Packs the demo app into an OCI image layout archive, the form `slipway image import`
//! takes: one uncompressed layer with the static binary and the few files a container's
//! root needs. Every timestamp is fixed, so the same binary packs to the same digest.

use sha2::{Digest, Sha256};

/// The modification time of every entry.
const MTIME: u64 = 1_700_000_000;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The OCI layout archive (a tar) of an image `name` whose entrypoint is `binary` at
/// `/app`, run as `nobody`.
pub fn archive(name: &str, binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let layer = layer(binary)?;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch(),
        "os": "linux",
        "config": {
            "Entrypoint": ["/app"],
            "Env": ["PATH=/"],
            "User": "65534:65534",
            "WorkingDir": "/",
        },
        "rootfs": { "type": "layers", "diff_ids": [digest(&layer)] },
    }))?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    }))?;
    let mut entry = descriptor(MANIFEST, &manifest);
    entry["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": name });
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry],
    }))?;
    let mut tar = tar::Builder::new(Vec::new());
    directory(&mut tar, "blobs/")?;
    directory(&mut tar, "blobs/sha256/")?;
    for blob in [&layer, &config, &manifest] {
        let path = format!("blobs/sha256/{}", hex(blob));
        file(&mut tar, &path, blob, 0o644)?;
    }
    file(
        &mut tar,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    file(&mut tar, "index.json", &index, 0o644)?;
    tar.into_inner()
}

/// The root filesystem: the binary, and `/etc` and `/tmp` for what the runtime mounts.
fn layer(binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    file(&mut tar, "app", binary, 0o755)?;
    directory(&mut tar, "etc/")?;
    file(
        &mut tar,
        "etc/passwd",
        b"root:x:0:0:root:/:/app\nnobody:x:65534:65534:nobody:/:/app\n",
        0o644,
    )?;
    file(
        &mut tar,
        "etc/group",
        b"root:x:0:\nnogroup:x:65534:\n",
        0o644,
    )?;
    directory(&mut tar, "tmp/")?;
    tar.into_inner()
}

/// This machine's architecture as OCI spells it.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn hex(blob: &[u8]) -> String {
    Sha256::digest(blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn digest(blob: &[u8]) -> String {
    format!("sha256:{}", hex(blob))
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest(blob), "size": blob.len() })
}

fn header(kind: tar::EntryType, size: usize, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_size(size as u64);
    header.set_mode(mode);
    header.set_mtime(MTIME);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn directory(tar: &mut tar::Builder<Vec<u8>>, path: &str) -> std::io::Result<()> {
    let mut header = header(tar::EntryType::Directory, 0, 0o755);
    tar.append_data(&mut header, path, std::io::empty())
}

fn file(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = header(tar::EntryType::Regular, bytes.len(), mode);
    tar.append_data(&mut header, path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().display().to_string();
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                (path, bytes)
            })
            .collect()
    }

    #[test]
    fn the_layout_names_the_image_and_every_blob_matches_its_digest() {
        let archive = archive("slipway.local/demo-app:1", b"\x7fELF binary").unwrap();
        let files = entries(&archive);
        let get = |path: &str| {
            files
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| panic!("no {path}"))
        };
        let index: serde_json::Value = serde_json::from_slice(&get("index.json")).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(
            entry["annotations"]["org.opencontainers.image.ref.name"],
            "slipway.local/demo-app:1"
        );
        for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("blobs/sha256/")) {
            if path.ends_with('/') {
                continue;
            }
            assert_eq!(path.trim_start_matches("blobs/sha256/"), hex(bytes));
        }
        let manifest_path = format!(
            "blobs/sha256/{}",
            entry["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        );
        let manifest: serde_json::Value = serde_json::from_slice(&get(&manifest_path)).unwrap();
        let layer_path = format!(
            "blobs/sha256/{}",
            manifest["layers"][0]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        );
        let layer = entries(&get(&layer_path));
        assert!(layer.contains(&("app".to_owned(), b"\x7fELF binary".to_vec())));
    }

    #[test]
    fn the_same_binary_packs_to_the_same_bytes() {
        assert_eq!(
            archive("a/b:1", b"x").unwrap(),
            archive("a/b:1", b"x").unwrap()
        );
        assert_ne!(
            archive("a/b:1", b"x").unwrap(),
            archive("a/b:1", b"y").unwrap()
        );
    }
}

//! Images in containerd: storing an image's blobs from an archive or a registry (content,
//! labels for garbage collection, unpacking into overlayfs snapshots, the image record)
//! and reading records back.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteImageRequest, GetImageRequest, Image as ImageRecord,
    InfoRequest, ListImagesRequest, ReadContentRequest, UpdateImageRequest, UpdateRequest,
    WriteAction, WriteContentRequest,
};
use containerd_client::types::Descriptor as DescriptorRecord;
use slipway_runtime::reference::normalize;
use slipway_runtime::{Error, Image, Result};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::archive;
use crate::grpc::{Conn, SNAPSHOTTER, gone_is_ok, unique};
use crate::oci::{self, Config, Descriptor, Index, Manifest};

/// The most we send in one message: far below containerd's 16 MiB receive limit.
const CHUNK: usize = 1 << 20;
/// How long one blob may take to upload, or one layer to unpack.
const BULK: Duration = Duration::from_secs(600);

const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";
const LABEL_CONFIG: &str = "containerd.io/gc.ref.content.config";
const LABEL_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.overlayfs";

/// One image to store in containerd: its manifest (with the manifest's media type), config
/// and layers by digest, the config parsed, and every name it goes by (normalized).
pub(crate) struct ImageContent {
    pub(crate) names: Vec<String>,
    pub(crate) manifest: Descriptor,
    pub(crate) config: Descriptor,
    pub(crate) parsed_config: Config,
    pub(crate) layers: Vec<Layer>,
}

/// A layer blob and what its config says it unpacks to.
pub(crate) struct Layer {
    pub(crate) blob: Descriptor,
    pub(crate) diff_id: String,
}

impl ImageContent {
    /// Pairs the manifest's layers with the config's diff IDs, which must agree in number.
    pub(crate) fn new(
        names: Vec<String>,
        manifest: Descriptor,
        config: Descriptor,
        parsed_config: Config,
        layers: Vec<Descriptor>,
    ) -> Result<Self> {
        if parsed_config.rootfs.diff_ids.len() != layers.len() {
            return Err(Error::Invalid(format!(
                "image {}: config lists {} layers, manifest {}",
                names.join(", "),
                parsed_config.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        let layers = layers
            .into_iter()
            .zip(&parsed_config.rootfs.diff_ids)
            .map(|(blob, diff_id)| Layer {
                blob,
                diff_id: diff_id.clone(),
            })
            .collect();
        Ok(ImageContent {
            names,
            manifest,
            config,
            parsed_config,
            layers,
        })
    }
}

/// The bytes of a blob, read as containerd wants them.
pub(crate) type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

/// Where the bytes of a blob containerd lacks come from: an extracted archive, a registry.
/// Nothing is opened for a blob containerd already holds.
#[async_trait]
pub(crate) trait BlobSource: Sync {
    /// Starts reading `blob`.
    async fn open(&self, blob: &Descriptor) -> Result<BlobReader>;
    /// The error for a read of `digest` that failed midway.
    fn read_failed(&self, digest: &str, error: std::io::Error) -> Error;
}

pub(crate) async fn import(conn: &Conn, path: &Path) -> Result<Vec<Image>> {
    let path = path.to_owned();
    let archive = tokio::task::spawn_blocking(move || archive::read(&path))
        .await
        .map_err(|e| Error::Other(format!("reading the archive: {e}")))??;
    store(conn, "import", &archive.images, &archive).await
}

/// Stores `images` under one lease, with bytes from `source` for whatever containerd
/// lacks: the one path by which archives and registries put images into containerd.
pub(crate) async fn store(
    conn: &Conn,
    purpose: &str,
    images: &[ImageContent],
    source: &dyn BlobSource,
) -> Result<Vec<Image>> {
    let lease = conn.lease(purpose).await?;
    let mut stored = Vec::new();
    let mut result = Ok(());
    for image in images {
        match store_one(conn, &lease, image, source).await {
            Ok(mut images) => stored.append(&mut images),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let dropped = conn.drop_lease(lease).await;
    result?;
    dropped?;
    Ok(stored)
}

/// Writes the blobs with the labels that make garbage collection follow manifest → config
/// and layers, config → unpacked snapshot chain; unpacks; then names the image.
async fn store_one(
    conn: &Conn,
    lease: &str,
    image: &ImageContent,
    source: &dyn BlobSource,
) -> Result<Vec<Image>> {
    let chain = image.parsed_config.chain_ids();
    let top = chain.last().cloned().unwrap_or_default();
    for layer in &image.layers {
        let labels = [(LABEL_UNCOMPRESSED.to_owned(), layer.diff_id.clone())].into();
        write_blob(conn, lease, &layer.blob, labels, source).await?;
    }
    let mut config_labels = HashMap::new();
    if !top.is_empty() {
        config_labels.insert(LABEL_SNAPSHOT.to_owned(), top);
    }
    write_blob(conn, lease, &image.config, config_labels, source).await?;
    let mut manifest_labels: HashMap<String, String> =
        [(LABEL_CONFIG.to_owned(), image.config.digest.clone())].into();
    for (i, layer) in image.layers.iter().enumerate() {
        manifest_labels.insert(
            format!("containerd.io/gc.ref.content.l.{i}"),
            layer.blob.digest.clone(),
        );
    }
    write_blob(conn, lease, &image.manifest, manifest_labels, source).await?;
    unpack(conn, lease, image, &chain).await?;
    let target = DescriptorRecord {
        media_type: image.manifest.media_type.clone(),
        digest: image.manifest.digest.clone(),
        size: i64::try_from(image.manifest.size).unwrap_or(i64::MAX),
        annotations: HashMap::new(),
    };
    let size = image.manifest.size
        + image.config.size
        + image.layers.iter().map(|l| l.blob.size).sum::<u64>();
    let mut images = Vec::new();
    for name in &image.names {
        let record = ImageRecord {
            name: name.clone(),
            target: Some(target.clone()),
            ..Default::default()
        };
        put_image(conn, lease, record).await?;
        images.push(Image {
            name: name.clone(),
            digest: image.manifest.digest.clone(),
            size,
            config: image.parsed_config.image_config(),
        });
    }
    Ok(images)
}

async fn put_image(conn: &Conn, lease: &str, record: ImageRecord) -> Result<()> {
    let call = conn.call("images.Create").lease(lease);
    let created = call
        .run(conn.images().create(call.req(CreateImageRequest {
            image: Some(record.clone()),
            source_date_epoch: None,
        })))
        .await;
    match created {
        Err(Error::AlreadyExists(_)) => {
            let call = conn.call("images.Update").lease(lease);
            call.run(conn.images().update(call.req(UpdateImageRequest {
                image: Some(record),
                update_mask: None,
                source_date_epoch: None,
            })))
            .await
            .map(drop)
        }
        other => other.map(drop),
    }
}

/// Uploads a blob unless containerd has it, and sets its labels either way (a blob
/// already present may lack the labels that keep it from garbage collection).
async fn write_blob(
    conn: &Conn,
    lease: &str,
    blob: &Descriptor,
    labels: HashMap<String, String>,
    source: &dyn BlobSource,
) -> Result<()> {
    let call = conn.call("content.Info");
    let present = call
        .run(conn.content().info(call.req(InfoRequest {
            digest: blob.digest.clone(),
        })))
        .await;
    match present {
        Ok(_) => return relabel(conn, lease, &blob.digest, labels).await,
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let reader = source.open(blob).await?;
    let uploaded = match upload(conn, lease, blob, reader, labels.clone()).await {
        Ok(()) => Ok(()),
        Err(Failed::Read(e)) => Err(source.read_failed(&blob.digest, e)),
        Err(Failed::Store(e)) => Err(e),
    };
    match uploaded {
        Err(Error::AlreadyExists(_)) => relabel(conn, lease, &blob.digest, labels).await,
        other => other,
    }
}

async fn relabel(
    conn: &Conn,
    lease: &str,
    digest: &str,
    labels: HashMap<String, String>,
) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
    let call = conn.call("content.Update").lease(lease);
    call.run(conn.content().update(call.req(UpdateRequest {
        info: Some(containerd_client::services::v1::Info {
            digest: digest.to_owned(),
            labels,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths }),
    })))
    .await
    .map(drop)
}

/// Why an upload failed: reading the blob, or containerd.
enum Failed {
    Read(std::io::Error),
    Store(Error),
}

/// Streams a blob from `reader` in chunks, then commits it with its labels; containerd
/// checks size and digest. At most a few chunks are in memory at once.
async fn upload(
    conn: &Conn,
    lease: &str,
    blob: &Descriptor,
    mut reader: BlobReader,
    labels: HashMap<String, String>,
) -> Result<(), Failed> {
    let total = i64::try_from(blob.size)
        .map_err(|_| Failed::Store(Error::Invalid(format!("blob {} is too large", blob.digest))))?;
    let reference = format!("slipway-write-{}-{}", blob.digest, unique());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let expected = blob.digest.clone();
    let producer = tokio::spawn(async move {
        let mut offset = 0i64;
        loop {
            let mut data = Vec::with_capacity(CHUNK);
            (&mut reader)
                .take(CHUNK as u64)
                .read_to_end(&mut data)
                .await?;
            if data.is_empty() {
                break;
            }
            let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
            let message = WriteContentRequest {
                action: WriteAction::Write.into(),
                r#ref: reference.clone(),
                total,
                expected: expected.clone(),
                offset,
                data,
                labels: HashMap::new(),
            };
            offset += len;
            if tx.send(message).await.is_err() {
                return Ok(());
            }
        }
        let commit = WriteContentRequest {
            action: WriteAction::Commit.into(),
            r#ref: reference,
            total,
            expected,
            offset,
            data: Vec::new(),
            labels,
        };
        let _ = tx.send(commit).await;
        Ok::<(), std::io::Error>(())
    });
    let call = conn.call("content.Write").lease(lease).deadline(BULK);
    let result = tokio::time::timeout(BULK, async {
        let mut replies = call
            .run(
                conn.content()
                    .write(call.req(tokio_stream::wrappers::ReceiverStream::new(rx))),
            )
            .await?;
        let mut committed = false;
        while let Some(reply) = replies.message().await.map_err(|s| call.error(&s))? {
            committed |= reply.action == i32::from(WriteAction::Commit);
        }
        if committed {
            Ok(())
        } else {
            Err(Error::Other(format!(
                "content.Write: {} was not committed",
                blob.digest
            )))
        }
    })
    .await
    .unwrap_or_else(|_| Err(call.timed_out()));
    producer.abort();
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(1), producer).await {
        return Err(Failed::Read(e));
    }
    result.map_err(Failed::Store)
}

/// Unpacks every layer not yet unpacked into a committed snapshot named by its chain ID.
async fn unpack(conn: &Conn, lease: &str, image: &ImageContent, chain: &[String]) -> Result<()> {
    for (i, layer) in image.layers.iter().enumerate() {
        let name = &chain[i];
        let call = conn.call("snapshots.Stat");
        let stat = call
            .run(conn.snapshots().stat(call.req(StatSnapshotRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                key: name.clone(),
            })))
            .await;
        match stat {
            Ok(_) => continue,
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let key = format!("extract-{} {name}", unique());
        let parent = if i == 0 {
            String::new()
        } else {
            chain[i - 1].clone()
        };
        let applied = apply_layer(conn, lease, layer, &key, parent, name).await;
        if applied.is_err() {
            let _ = remove_snapshot(conn, &key).await;
        }
        applied?;
    }
    Ok(())
}

async fn apply_layer(
    conn: &Conn,
    lease: &str,
    layer: &Layer,
    key: &str,
    parent: String,
    name: &str,
) -> Result<()> {
    let call = conn.call("snapshots.Prepare").lease(lease);
    let mounts = call
        .run(conn.snapshots().prepare(call.req(PrepareSnapshotRequest {
            snapshotter: SNAPSHOTTER.to_owned(),
            key: key.to_owned(),
            parent,
            labels: HashMap::new(),
        })))
        .await?
        .mounts;
    let call = conn.call("diff.Apply").lease(lease).deadline(BULK);
    let applied = call
        .run(conn.diff().apply(call.req(ApplyRequest {
            diff: Some(DescriptorRecord {
                media_type: layer.blob.media_type.clone(),
                digest: layer.blob.digest.clone(),
                size: i64::try_from(layer.blob.size).unwrap_or(i64::MAX),
                annotations: HashMap::new(),
            }),
            mounts,
            payloads: HashMap::new(),
            sync_fs: false,
        })))
        .await?
        .applied
        .map(|d| d.digest)
        .unwrap_or_default();
    if applied != layer.diff_id {
        return Err(Error::Invalid(format!(
            "layer {} unpacks to {applied}, its config says {}",
            layer.blob.digest, layer.diff_id
        )));
    }
    let call = conn.call("snapshots.Commit").lease(lease);
    let committed = call
        .run(conn.snapshots().commit(call.req(CommitSnapshotRequest {
            snapshotter: SNAPSHOTTER.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            labels: HashMap::new(),
        })))
        .await;
    match committed {
        // Someone unpacked the same layer meanwhile: theirs is as good as ours.
        Err(Error::AlreadyExists(_)) => remove_snapshot(conn, key).await,
        other => other.map(drop),
    }
}

pub(crate) async fn remove_snapshot(conn: &Conn, key: &str) -> Result<()> {
    let call = conn.call("snapshots.Remove");
    gone_is_ok(
        call.run(conn.snapshots().remove(call.req(RemoveSnapshotRequest {
            snapshotter: SNAPSHOTTER.to_owned(),
            key: key.to_owned(),
        })))
        .await
        .map(drop),
    )
}

pub(crate) async fn get(conn: &Conn, name: &str) -> Result<Option<Image>> {
    let Some(record) = record(conn, name).await? else {
        return Ok(None);
    };
    describe(conn, &record).await.map(Some)
}

pub(crate) async fn list(conn: &Conn) -> Result<Vec<Image>> {
    let call = conn.call("images.List");
    let records = call
        .run(
            conn.images()
                .list(call.req(ListImagesRequest { filters: vec![] })),
        )
        .await?
        .images;
    let mut images = Vec::with_capacity(records.len());
    for record in &records {
        match describe(conn, record).await {
            Ok(image) => images.push(image),
            // One image with missing content must not hide the others.
            Err(Error::NotFound(e) | Error::Invalid(e)) => {
                tracing::warn!(image = %record.name, "skipping an unreadable image: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(images)
}

pub(crate) async fn remove(conn: &Conn, name: &str) -> Result<()> {
    let call = conn.call("images.Delete");
    gone_is_ok(
        call.run(conn.images().delete(call.req(DeleteImageRequest {
            name: normalize(name),
            sync: false,
            target: None,
        })))
        .await
        .map(drop),
    )
}

async fn record(conn: &Conn, name: &str) -> Result<Option<ImageRecord>> {
    let call = conn.call("images.Get");
    match call
        .run(conn.images().get(call.req(GetImageRequest {
            name: normalize(name),
        })))
        .await
    {
        Ok(reply) => Ok(reply.image),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An image's manifest and config as containerd holds them.
pub(crate) struct Resolved {
    pub(crate) digest: String,
    pub(crate) size: u64,
    pub(crate) config: Config,
}

/// The manifest and config of the image named `name` (normalized), which must exist.
pub(crate) async fn resolve(conn: &Conn, name: &str) -> Result<Resolved> {
    let record = record(conn, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("image {}", normalize(name))))?;
    resolve_record(conn, &record).await
}

async fn resolve_record(conn: &Conn, record: &ImageRecord) -> Result<Resolved> {
    let target = record
        .target
        .as_ref()
        .ok_or_else(|| Error::Invalid(format!("image {} has no target", record.name)))?;
    let mut digest = target.digest.clone();
    if oci::is_index(&target.media_type) {
        let index: Index = oci::parse(&digest, &read_content(conn, &digest).await?)?;
        digest = oci::pick_platform(&index)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "image {} has no manifest for this platform",
                    record.name
                ))
            })?
            .digest
            .clone();
    }
    let manifest_bytes = read_content(conn, &digest).await?;
    let manifest: Manifest = oci::parse(&digest, &manifest_bytes)?;
    let config: Config = oci::parse(
        &manifest.config.digest,
        &read_content(conn, &manifest.config.digest).await?,
    )?;
    let size = manifest_bytes.len() as u64
        + manifest.config.size
        + manifest.layers.iter().map(|l| l.size).sum::<u64>();
    Ok(Resolved {
        digest,
        size,
        config,
    })
}

async fn describe(conn: &Conn, record: &ImageRecord) -> Result<Image> {
    let resolved = resolve_record(conn, record).await?;
    Ok(Image {
        name: record.name.clone(),
        digest: resolved.digest,
        size: resolved.size,
        config: resolved.config.image_config(),
    })
}

/// A small blob (manifest, config) read whole.
pub(crate) async fn read_content(conn: &Conn, digest: &str) -> Result<Vec<u8>> {
    let call = conn.call("content.Read");
    tokio::time::timeout(crate::grpc::QUICK, async {
        let mut stream = call
            .run(conn.content().read(call.req(ReadContentRequest {
                digest: digest.to_owned(),
                offset: 0,
                size: 0,
            })))
            .await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(|s| call.error(&s))? {
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(bytes)
    })
    .await
    .unwrap_or_else(|_| Err(call.timed_out()))
}

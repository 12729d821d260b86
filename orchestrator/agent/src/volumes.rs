//! A pod's volumes on the host: emptyDir directories (on tmpfs for `medium: Memory`), and
//! configMap, secret, downwardAPI and projected volumes written as files the way the
//! kubelet's atomic writer does, so an update swaps every file at once under running
//! containers (a `..data` symlink to a timestamped directory, renamed into place).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIVolumeFile, KeyToPath, Pod, SecretProjection, Volume,
};

use crate::env::{ConfigError, Sources, field_value, resource_value};

/// The files of a projected volume: relative path → (contents, mode).
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// The mode files get when the volume says nothing, as Kubernetes' default (0644).
const DEFAULT_MODE: u32 = 0o644;

/// What a volume needs on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory that lives as long as the pod; `memory` puts it on tmpfs of at most
    /// `size` bytes.
    EmptyDir {
        /// `medium: Memory`.
        memory: bool,
        /// `sizeLimit` in bytes.
        size: Option<i64>,
    },
    /// Files kept equal to the payload.
    Files(Payload),
}

/// How each of a pod's volumes is made, by name.
///
/// # Errors
///
/// A source that is missing and not optional, a key not found, or a volume type slipway
/// does not support.
pub fn plan(pod: &Pod, sources: &Sources) -> Result<BTreeMap<String, Kind>, ConfigError> {
    let mut volumes = BTreeMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        volumes.insert(volume.name.clone(), kind(pod, volume, sources)?);
    }
    Ok(volumes)
}

fn kind(pod: &Pod, volume: &Volume, sources: &Sources) -> Result<Kind, ConfigError> {
    if let Some(empty) = &volume.empty_dir {
        let size = match &empty.size_limit {
            Some(q) => Some(
                slipway_model::quantity::ParsedQuantity::try_from(q)
                    .map_err(|e| ConfigError(format!("volume {}: sizeLimit: {e}", volume.name)))?
                    .as_value(),
            ),
            None => None,
        };
        return Ok(Kind::EmptyDir {
            memory: empty.medium.as_deref() == Some("Memory"),
            size,
        });
    }
    let mut payload = Payload::new();
    if let Some(c) = &volume.config_map {
        let projection = ConfigMapProjection {
            name: c.name.clone(),
            items: c.items.clone(),
            optional: c.optional,
        };
        config_map(&mut payload, &projection, c.default_mode, sources)?;
    } else if let Some(s) = &volume.secret {
        let projection = SecretProjection {
            name: s.secret_name.clone().unwrap_or_default(),
            items: s.items.clone(),
            optional: s.optional,
        };
        secret(&mut payload, &projection, s.default_mode, sources)?;
    } else if let Some(d) = &volume.downward_api {
        downward(
            &mut payload,
            pod,
            d.items.iter().flatten(),
            d.default_mode,
            sources,
        )?;
    } else if let Some(p) = &volume.projected {
        for source in p.sources.iter().flatten() {
            if let Some(c) = &source.config_map {
                config_map(&mut payload, c, p.default_mode, sources)?;
            }
            if let Some(s) = &source.secret {
                secret(&mut payload, s, p.default_mode, sources)?;
            }
            if let Some(d) = &source.downward_api {
                downward(
                    &mut payload,
                    pod,
                    d.items.iter().flatten(),
                    p.default_mode,
                    sources,
                )?;
            }
            // Service account tokens are not issued yet; the projection stays empty
            // rather than failing pods that ask for one by default.
        }
    } else {
        return Err(ConfigError(format!(
            "volume {}: this volume type is not supported by slipway (use emptyDir, configMap, secret, downwardAPI or projected)",
            volume.name
        )));
    }
    Ok(Kind::Files(payload))
}

fn mode(mode: Option<i32>, default: Option<i32>) -> u32 {
    mode.or(default)
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(DEFAULT_MODE)
        & 0o7777
}

fn project(
    payload: &mut Payload,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    what: &str,
    optional: bool,
) -> Result<(), ConfigError> {
    match items {
        None => {
            for (key, value) in data {
                payload.insert(key.clone(), (value.clone(), mode(None, default_mode)));
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(value) => {
                        payload.insert(
                            item.path.clone(),
                            (value.clone(), mode(item.mode, default_mode)),
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(ConfigError(format!(
                            "configuration of {what} has no key {}",
                            item.key
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn config_map(
    payload: &mut Payload,
    c: &ConfigMapProjection,
    default_mode: Option<i32>,
    sources: &Sources,
) -> Result<(), ConfigError> {
    let optional = c.optional == Some(true);
    match sources.config_maps.get(&c.name) {
        Some(data) => {
            let bytes = data
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            project(
                payload,
                &bytes,
                c.items.as_ref(),
                default_mode,
                &format!("configmap \"{}\"", c.name),
                optional,
            )
        }
        None if optional => Ok(()),
        None => Err(ConfigError(format!("configmap \"{}\" not found", c.name))),
    }
}

fn secret(
    payload: &mut Payload,
    s: &SecretProjection,
    default_mode: Option<i32>,
    sources: &Sources,
) -> Result<(), ConfigError> {
    let optional = s.optional == Some(true);
    match sources.secrets.get(&s.name) {
        Some(data) => project(
            payload,
            data,
            s.items.as_ref(),
            default_mode,
            &format!("secret \"{}\"", s.name),
            optional,
        ),
        None if optional => Ok(()),
        None => Err(ConfigError(format!("secret \"{}\" not found", s.name))),
    }
}

fn downward<'a>(
    payload: &mut Payload,
    pod: &Pod,
    items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
    default_mode: Option<i32>,
    sources: &Sources,
) -> Result<(), ConfigError> {
    for item in items {
        let text = if let Some(f) = &item.field_ref {
            field_value(pod, &f.field_path)?
        } else if let Some(r) = &item.resource_field_ref {
            let spec = pod.spec.as_ref();
            let container = spec
                .and_then(|s| {
                    s.containers
                        .iter()
                        .find(|c| Some(c.name.as_str()) == r.container_name.as_deref())
                })
                .ok_or_else(|| {
                    ConfigError(format!(
                        "downwardAPI {}: container {:?} not found",
                        item.path, r.container_name
                    ))
                })?;
            resource_value(container, &r.resource, r.divisor.as_ref(), sources)?
        } else {
            String::new()
        };
        payload.insert(
            item.path.clone(),
            (text.into_bytes(), mode(item.mode, default_mode)),
        );
    }
    Ok(())
}

/// A failure writing a volume.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct Error {
    path: PathBuf,
    source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error {
        path: path.to_owned(),
        source,
    }
}

/// The payload a files volume shows now, read back through `..data`.
fn current(dir: &Path, payload: &Payload) -> Option<Payload> {
    let data = dir.join("..data");
    let mut found = Payload::new();
    for path in payload.keys() {
        let file = data.join(path);
        let contents = std::fs::read(&file).ok()?;
        let mode = std::fs::metadata(&file).ok()?.permissions().mode() & 0o7777;
        found.insert(path.clone(), (contents, mode));
    }
    Some(found)
}

/// Makes `dir` show exactly `payload`, swapping every file at once when it changed.
/// Returns whether anything was written.
///
/// # Errors
///
/// When a file or link cannot be written; what was visible before stays visible.
pub fn write_files(dir: &Path, payload: &Payload) -> Result<bool, Error> {
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let data_link = dir.join("..data");
    let old_target = std::fs::read_link(&data_link).ok();
    if old_target.is_some() && current(dir, payload).as_ref() == Some(payload) {
        let extra = std::fs::read_dir(data_link.as_path())
            .map(|entries| entries.count())
            .unwrap_or(0);
        let top: std::collections::BTreeSet<&str> =
            payload.keys().map(|p| top_component(p)).collect();
        if extra == top.len() {
            return Ok(false);
        }
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let fresh = dir.join(&stamp);
    std::fs::create_dir(&fresh).map_err(at(&fresh))?;
    for (path, (contents, mode)) in payload {
        let file = fresh.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(at(parent))?;
        }
        std::fs::write(&file, contents).map_err(at(&file))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))
            .map_err(at(&file))?;
    }
    let temporary = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(&stamp, &temporary).map_err(at(&temporary))?;
    std::fs::rename(&temporary, &data_link).map_err(at(&data_link))?;
    // The visible names point through `..data`, so they follow the swap; only names
    // that appear or vanish need touching.
    let wanted: std::collections::BTreeSet<&str> =
        payload.keys().map(|p| top_component(p)).collect();
    for name in &wanted {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).map_err(at(&link))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(at(dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != "..data" && name != stamp {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        } else if !wanted.contains(name.as_str()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(true)
}

fn top_component(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Makes an emptyDir volume's directory, mounting tmpfs on it for `medium: Memory`.
///
/// # Errors
///
/// When the directory cannot be made or tmpfs mounted.
pub fn make_empty_dir(dir: &Path, memory: bool, size: Option<i64>) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(at(dir))?;
    if memory && !is_mount_point(dir) {
        let options = match size {
            Some(bytes) if bytes > 0 => format!("mode=1777,size={bytes}"),
            _ => "mode=1777".to_owned(),
        };
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
        .map_err(|e| Error {
            path: dir.to_owned(),
            source: std::io::Error::from(e),
        })?;
    }
    Ok(())
}

/// Whether something is mounted on `dir` (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(own), Some(Ok(parent))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata))
    else {
        return false;
    };
    own.dev() != parent.dev()
}

/// Unmounts every tmpfs volume under a pod's volume directory, so the tree can be
/// removed.
pub fn unmount_all(volumes: &Path) {
    let Ok(entries) = std::fs::read_dir(volumes) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_mount_point(&path)
            && let Err(e) = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH)
            && e != nix::errno::Errno::EINVAL
            && e != nix::errno::Errno::ENOENT
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot unmount a memory volume");
        }
    }
}

/// Bytes of the regular files under `dir`, not following links or other filesystems.
pub fn usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let device = top.dev();
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != device {
                continue;
            }
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

/// Whether a path is absent.
pub fn is_absent(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries
            .iter()
            .map(|(p, c, m)| ((*p).to_owned(), (c.as_bytes().to_vec(), *m)))
            .collect()
    }

    #[test]
    fn files_are_swapped_at_once_and_stale_names_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = dir.path().join("v");
        assert!(
            write_files(&v, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)])).expect("write")
        );
        assert_eq!(std::fs::read_to_string(v.join("a")).expect("a"), "1");
        assert_eq!(std::fs::read_to_string(v.join("sub/b")).expect("b"), "2");
        let mode = std::fs::metadata(v.join("sub/b"))
            .expect("b")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            !write_files(&v, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)])).expect("same")
        );
        assert!(write_files(&v, &payload(&[("a", "3", 0o644)])).expect("update"));
        assert_eq!(std::fs::read_to_string(v.join("a")).expect("a"), "3");
        assert!(is_absent(&v.join("sub")));
        let stamps = std::fs::read_dir(&v)
            .expect("dir")
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(stamps, 1, "old data directories are removed");
    }

    #[test]
    fn config_map_items_and_modes() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c"}], "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o600,
                    "items": [{"key": "x", "path": "dir/x.txt"}, {"key": "y", "path": "y", "mode": 0o755}]}},
                {"name": "all", "configMap": {"name": "cfg"}},
                {"name": "opt", "secret": {"secretName": "none", "optional": true}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            ]},
        }))
        .expect("pod");
        let mut sources = Sources::default();
        sources.config_maps.insert(
            "cfg".into(),
            [("x".into(), "1".into()), ("y".into(), "2".into())].into(),
        );
        let plan = plan(&pod, &sources).expect("plan");
        assert_eq!(
            plan["cfg"],
            Kind::Files(payload(&[("dir/x.txt", "1", 0o600), ("y", "2", 0o755)]))
        );
        assert_eq!(
            plan["all"],
            Kind::Files(payload(&[("x", "1", 0o644), ("y", "2", 0o644)]))
        );
        assert_eq!(plan["opt"], Kind::Files(Payload::new()));
        assert_eq!(
            plan["info"],
            Kind::Files(payload(&[("labels", "a=\"b\"", 0o644)]))
        );
        assert_eq!(
            plan["scratch"],
            Kind::EmptyDir {
                memory: true,
                size: Some(1 << 20)
            }
        );
        sources.config_maps.clear();
        assert_eq!(
            super::plan(&pod, &sources),
            Err(ConfigError("configmap \"cfg\" not found".into()))
        );
    }

    #[test]
    fn unsupported_volume_types_are_named() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "volumes": [{"name": "h", "hostPath": {"path": "/etc"}}]},
        }))
        .expect("pod");
        let error = plan(&pod, &Sources::default()).expect_err("refused");
        assert!(
            error
                .0
                .starts_with("volume h: this volume type is not supported")
        );
    }
}

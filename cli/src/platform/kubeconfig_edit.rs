//! Writing kubeconfigs that hold a user's token: a fresh one for `token create
//! --write-kubeconfig`, or one merged into an existing file for `login` that keeps every
//! other entry and field. Either is readable by its owner only.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::Engine as _;
use serde_yaml_ng::{Mapping, Value};

/// One cluster, user and context, all under `name`, made the current context.
pub(super) struct Entry<'a> {
    pub(super) name: &'a str,
    pub(super) server: &'a str,
    pub(super) ca_pem: Option<&'a str>,
    pub(super) token: &'a str,
}

/// `existing` (a kubeconfig's text, or nothing) with `entry` added: entries of the same
/// name are replaced in place, everything else is kept as it was.
pub(super) fn merge(existing: Option<&str>, entry: &Entry<'_>) -> Result<String, String> {
    let mut config = match existing.map(str::trim) {
        None | Some("") => Value::Mapping(Mapping::new()),
        Some(text) => serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?,
    };
    let root = config
        .as_mapping_mut()
        .ok_or("not a kubeconfig (not a YAML mapping)")?;
    for (key, value) in [("apiVersion", "v1"), ("kind", "Config")] {
        if !root.contains_key(key) {
            root.insert(key.into(), value.into());
        }
    }
    let mut cluster = Mapping::new();
    cluster.insert("server".into(), entry.server.into());
    if let Some(ca) = entry.ca_pem {
        cluster.insert(
            "certificate-authority-data".into(),
            base64::engine::general_purpose::STANDARD.encode(ca).into(),
        );
    }
    let mut user = Mapping::new();
    user.insert("token".into(), entry.token.into());
    let mut context = Mapping::new();
    context.insert("cluster".into(), entry.name.into());
    context.insert("user".into(), entry.name.into());
    for (list, field, value) in [
        ("clusters", "cluster", cluster),
        ("users", "user", user),
        ("contexts", "context", context),
    ] {
        let mut named = Mapping::new();
        named.insert("name".into(), entry.name.into());
        named.insert(field.into(), value.into());
        upsert(root, list, named)?;
    }
    root.insert("current-context".into(), entry.name.into());
    serde_yaml_ng::to_string(&config).map_err(|e| format!("cannot write YAML: {e}"))
}

/// Replaces the entry of `list` named as `named` is, or appends it.
fn upsert(root: &mut Mapping, list: &str, named: Mapping) -> Result<(), String> {
    let entries = root
        .entry(list.into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if entries.is_null() {
        *entries = Value::Sequence(Vec::new());
    }
    let entries = entries
        .as_sequence_mut()
        .ok_or_else(|| format!("not a kubeconfig ({list} is not a list)"))?;
    let name = named.get("name").cloned();
    match entries.iter_mut().find(|e| e.get("name") == name.as_ref()) {
        Some(existing) => *existing = Value::Mapping(named),
        None => entries.push(Value::Mapping(named)),
    }
    Ok(())
}

/// Writes `text` to `path`, readable by its owner only. With `replace`, an existing file
/// is swapped whole for the new one (never left half written); without, an existing file
/// is an error and is left alone.
pub(super) fn write_private(path: &Path, text: &str, replace: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let create = |target: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
    };
    if !replace {
        return create(path);
    }
    // A symlinked kubeconfig (as dotfile managers make) is updated where it points.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    create(&temporary)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const ENTRY: Entry<'static> = Entry {
        name: "slipway-ana",
        server: "https://127.0.0.1:6443",
        ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        token: "s3cret",
    };

    const EXISTING: &str = "\
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: prod
  cluster:
    server: https://prod.example.com
    insecure-skip-tls-verify: false
- name: slipway-ana
  cluster:
    server: https://old.example.com
users:
- name: prod-admin
  user:
    client-certificate: /etc/prod.crt
- name: slipway-ana
  user:
    token: old
contexts:
- name: prod
  context:
    cluster: prod
    user: prod-admin
    namespace: payments
current-context: prod
extensions:
- name: x
  extension: {a: 1}
";

    fn parsed(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn merge_keeps_foreign_entries_and_replaces_same_named_ones() {
        let merged = parsed(&merge(Some(EXISTING), &ENTRY).unwrap());
        let old = parsed(EXISTING);
        assert_eq!(merged["current-context"], "slipway-ana");
        for field in ["preferences", "extensions", "apiVersion", "kind"] {
            assert_eq!(merged[field], old[field], "{field}");
        }
        assert_eq!(merged["clusters"][0], old["clusters"][0]);
        assert_eq!(merged["users"][0], old["users"][0]);
        assert_eq!(merged["contexts"][0], old["contexts"][0]);
        // Replaced where it was, not appended.
        assert_eq!(merged["clusters"].as_sequence().unwrap().len(), 2);
        assert_eq!(merged["users"].as_sequence().unwrap().len(), 2);
        let cluster = &merged["clusters"][1]["cluster"];
        assert_eq!(cluster["server"], "https://127.0.0.1:6443");
        assert!(cluster.get("insecure-skip-tls-verify").is_none());
        let ca = base64::engine::general_purpose::STANDARD
            .decode(cluster["certificate-authority-data"].as_str().unwrap())
            .unwrap();
        assert_eq!(Some(String::from_utf8(ca).unwrap().as_str()), ENTRY.ca_pem);
        assert_eq!(merged["users"][1]["user"]["token"], "s3cret");
        assert_eq!(merged["contexts"][1]["name"], "slipway-ana");
        assert_eq!(merged["contexts"][1]["context"]["cluster"], "slipway-ana");
        assert_eq!(merged["contexts"][1]["context"]["user"], "slipway-ana");
    }

    #[test]
    fn merge_into_nothing_makes_a_whole_kubeconfig() {
        for existing in [None, Some(""), Some("\n")] {
            let merged = parsed(&merge(existing, &ENTRY).unwrap());
            assert_eq!(merged["apiVersion"], "v1");
            assert_eq!(merged["kind"], "Config");
            assert_eq!(merged["current-context"], "slipway-ana");
            assert_eq!(merged["clusters"].as_sequence().unwrap().len(), 1);
        }
    }

    #[test]
    fn merge_refuses_what_is_not_a_kubeconfig() {
        for bad in ["- a\n- b\n", "clusters: 3\n", "a: [\n"] {
            assert!(merge(Some(bad), &ENTRY).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_owner_only_and_replaces_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kube/config");
        write_private(&path, "one", false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let refused = write_private(&path, "two", false).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "three", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a file holding a token is owner-only");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}

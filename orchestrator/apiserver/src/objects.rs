//! Objects as the server keeps them: where each lives in the store, how it is encoded,
//! and the system fields (uid, timestamps, resourceVersion, generation) the server owns.

use std::time::SystemTime;

use serde_json::{Map, Value, json};
use slipway_store::{KeyValue, Revision};

use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult};

/// Characters Kubernetes appends to a `generateName`: no vowels, no look-alikes.
const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Where objects of a resource type live: `/registry/<group>/<plural>/[<namespace>/]`.
pub fn prefix(resource: &ResourceType, namespace: Option<&str>) -> String {
    let group = if resource.group.is_empty() {
        "core"
    } else {
        resource.group
    };
    match namespace {
        Some(ns) if resource.namespaced() => format!("/registry/{group}/{}/{ns}/", resource.plural),
        _ => format!("/registry/{group}/{}/", resource.plural),
    }
}

/// The store key of one object.
pub fn key(resource: &ResourceType, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(resource, namespace))
}

/// The object in a stored value, with its `resourceVersion` taken from the store, which is
/// the only place it lives (like Kubernetes' etcd3 storage).
pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        tracing::error!(key = %kv.key, error = %e, "stored object is not JSON");
        ApiError::internal("a stored object could not be decoded")
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// The object's JSON as served, straight from the stored bytes: `resourceVersion` is
/// spliced in as the first field of `metadata`, with no parse and no re-serialization.
/// `None` when the bytes do not have a top-level `metadata` object; the caller decodes.
pub fn served_json(kv: &KeyValue) -> Option<Vec<u8>> {
    let bytes = &kv.value;
    let at = metadata_body(bytes)?;
    let version = format!("\"resourceVersion\":\"{}\"", kv.mod_revision);
    let mut out = Vec::with_capacity(bytes.len() + version.len() + 1);
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(version.as_bytes());
    if bytes.get(at) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&bytes[at..]);
    Some(out)
}

/// Where the body of the top-level `"metadata":{` begins in compact JSON, found by one scan
/// that tracks nesting and strings, so a `metadata` key deeper down or inside a string is
/// never taken for it.
fn metadata_body(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut string_start = None;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(start) = string_start {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                string_start = None;
                if depth == 1
                    && &bytes[start..i] == b"metadata"
                    && bytes.get(i + 1..i + 3) == Some(b":{")
                {
                    return Some(i + 3);
                }
            }
            continue;
        }
        match b {
            b'"' => string_start = Some(i + 1),
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}

/// The bytes stored for an object: everything but its `resourceVersion`.
pub fn encode(object: &Value) -> Vec<u8> {
    if object["metadata"].get("resourceVersion").is_none() {
        return serde_json::to_vec(object).expect("a JSON value always serializes");
    }
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&object).expect("a JSON value always serializes")
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(object: &mut Value, revision: Revision) {
    metadata_mut(object).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// `metadata` as a map, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("just made an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// The object's `resourceVersion`, if it carries a valid one.
pub fn resource_version(object: &Value) -> ApiResult<Option<Revision>> {
    match meta_str(object, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => parse_resource_version(rv).map(Some),
    }
}

/// Parses a client-supplied resourceVersion.
pub fn parse_resource_version(rv: &str) -> ApiResult<Revision> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

/// RFC 3339 in UTC to the second, as Kubernetes writes timestamps.
pub fn timestamp(at: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    jiff::Timestamp::from_second(ts.as_second())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Replaces `generateName` with a name: the prefix and five random characters.
pub fn generate_name(prefix: &str) -> String {
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| GENERATE_ALPHABET[usize::from(*b) % GENERATE_ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Kinds whose spec changes Kubernetes 1.32 counts in `metadata.generation`, for their
/// controllers' `observedGeneration`; the others carry no generation.
const GENERATION_KINDS: &[&str] = &["Deployment", "ReplicaSet", "Ingress"];

fn has_generation(object: &Value) -> bool {
    object["kind"]
        .as_str()
        .is_some_and(|kind| GENERATION_KINDS.contains(&kind))
}

/// A new object's identity: uid, creation time, first generation; anything a client sent
/// for fields the server owns is replaced.
pub fn stamp_new(object: &mut Value, now: SystemTime) {
    let generation = has_generation(object);
    let meta = metadata_mut(object);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(timestamp(now)));
    if generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    for owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(owned);
    }
}

/// Everything of an object but `metadata` and `status`: what `generation` counts changes of.
fn spec_part(object: &Value) -> Value {
    let mut spec = object.clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    spec
}

/// Carries the server-owned fields of `current` into `updated`, and bumps `generation`
/// when the spec changed.
pub fn carry_system_fields(current: &Value, updated: &mut Value) {
    let generation = current
        .get("metadata")
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let changed = spec_part(current) != spec_part(updated);
    let tracked = has_generation(current);
    let meta = metadata_mut(updated);
    for owned in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match current.get("metadata").and_then(|m| m.get(owned)) {
            Some(value) => meta.insert(owned.into(), value.clone()),
            None => meta.remove(owned),
        };
    }
    if tracked {
        meta.insert(
            "generation".into(),
            json!(if changed { generation + 1 } else { generation }),
        );
    } else {
        meta.remove("generation");
    }
}

/// Removes empty `labels`, `annotations`, `finalizers` and `ownerReferences`, which
/// Kubernetes never writes out (`omitempty`), so clients diffing objects see no noise.
pub fn drop_empty_metadata(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
            let empty = match meta.get(field) {
                Some(Value::Object(map)) => map.is_empty(),
                Some(Value::Array(list)) => list.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(field);
            }
        }
    }
}

/// Whether the object is being deleted and waits on finalizers.
pub fn is_terminating(object: &Value) -> bool {
    meta_str(object, "deletionTimestamp").is_some()
}

/// The object's finalizers.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The labels, as a map for selectors.
pub fn labels(object: &Value) -> std::collections::BTreeMap<String, String> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn keys_by_scope() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(
            key(pods, Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        assert_eq!(prefix(pods, None), "/registry/core/pods/");
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(prefix(deploy, Some("a")), "/registry/apps/deployments/a/");
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(key(nodes, Some("ignored"), "n1"), "/registry/core/nodes/n1");
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_823_190_750);
        assert_eq!(timestamp(at), "2026-11-27T23:46:30Z");
    }

    #[test]
    fn generated_names_use_kubernetes_alphabet() {
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(
            name[4..].bytes().all(|b| GENERATE_ALPHABET.contains(&b)),
            "{name}"
        );
    }

    #[test]
    fn generation_counts_spec_changes_only() {
        let current = json!({"kind": "Deployment",
                             "metadata": {"uid": "u", "generation": 3, "creationTimestamp": "t"},
                             "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut same = json!({"kind": "Deployment", "metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 1},
                              "status": {"replicas": 2}});
        carry_system_fields(&current, &mut same);
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["metadata"]["uid"], "u");
        let mut changed =
            json!({"kind": "Deployment", "metadata": {"uid": "forged"}, "spec": {"replicas": 2}});
        carry_system_fields(&current, &mut changed);
        assert_eq!(changed["metadata"]["generation"], 4);
        assert_eq!(changed["metadata"]["uid"], "u");

        // Kinds Kubernetes gives no generation keep none, whatever a client sends.
        let configmap = json!({"kind": "ConfigMap", "metadata": {"uid": "u"}, "data": {"a": "1"}});
        let mut sent =
            json!({"kind": "ConfigMap", "metadata": {"generation": 9}, "data": {"a": "2"}});
        carry_system_fields(&configmap, &mut sent);
        assert!(sent["metadata"].get("generation").is_none(), "{sent}");
        stamp_new(&mut sent, UNIX_EPOCH);
        assert!(sent["metadata"].get("generation").is_none(), "{sent}");
    }

    #[test]
    fn empty_metadata_collections_are_dropped() {
        let mut object = json!({"metadata": {"name": "a", "labels": {}, "annotations": {"k": "v"},
                                             "finalizers": [], "ownerReferences": null}});
        drop_empty_metadata(&mut object);
        assert_eq!(
            object,
            json!({"metadata": {"name": "a", "annotations": {"k": "v"}}})
        );
    }

    #[test]
    fn resource_version_round_trip() {
        let kv = KeyValue {
            key: "/k".into(),
            value: encode(&json!({"metadata": {"name": "a", "resourceVersion": "999"}})).into(),
            create_revision: 5,
            mod_revision: 7,
            lease: None,
        };
        assert!(!String::from_utf8_lossy(&kv.value).contains("999"));
        let object = decode(&kv).unwrap();
        assert_eq!(resource_version(&object).unwrap(), Some(7));
        assert!(parse_resource_version("abc").is_err());
        assert!(parse_resource_version("-1").is_err());
    }

    #[test]
    fn served_json_splices_the_version_into_top_level_metadata_only() {
        let kv = |value: &str| KeyValue {
            key: "/k".into(),
            value: value.as_bytes().to_vec().into(),
            create_revision: 1,
            mod_revision: 42,
            lease: None,
        };
        let stored = json!({"apiVersion": "v1", "data": {"metadata": "{\"metadata\":{", "x\\\"": "]"},
                            "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"metadata": "x"}}});
        let served = served_json(&kv(&stored.to_string())).unwrap();
        let served: Value = serde_json::from_slice(&served).unwrap();
        let mut expected = stored.clone();
        expected["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(served, expected);
        assert_eq!(
            served_json(&kv(r#"{"metadata":{}}"#)).unwrap(),
            br#"{"metadata":{"resourceVersion":"42"}}"#
        );
        assert!(served_json(&kv(r#"{"spec":{"metadata":{}}}"#)).is_none());
        assert!(served_json(&kv("]]")).is_none());
    }
}

//! What ties a Deployment to its ReplicaSets: the `pod-template-hash` that names each
//! ReplicaSet and labels its pods, template equality that ignores that label, and the
//! revision and replica annotations Kubernetes keeps on both.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use serde_json::Value;

/// The label that tells a Deployment's ReplicaSets (and their pods) apart.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The rollout revision of a Deployment and of each of its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The revisions a ReplicaSet had before a rollback made it current again.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when it last sized this ReplicaSet.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas` plus max surge of the Deployment when it last sized this ReplicaSet.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations that are the controller's or kubectl's bookkeeping, never copied
/// onto ReplicaSets (and kept on the Deployment by `kubectl rollout undo`).
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// How long `revision-history` may grow, as kube-controller-manager's default.
const MAX_HISTORY_CHARS: usize = 2000;

/// Kubernetes' `SafeEncodeString` alphabet: no vowels, no look-alike characters, so a
/// hash never spells a word.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: FNV-32a over the template and the Deployment's
/// collision count (bumped when a hash names a foreign ReplicaSet), its decimal digits
/// spelled in the safe alphabet, as Kubernetes' `ComputeHash` does. The bytes hashed are
/// the template's JSON, so values differ from Kubernetes' while staying stable across
/// restarts.
pub fn hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut state: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            state ^= u32::from(*byte);
            state = state.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(count) = collision_count {
        feed(&count.to_le_bytes());
    }
    state
        .to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// Whether two templates are the same once the hash label is set aside; absent and empty
/// fields count as equal, as Kubernetes' semantic equality has it.
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    comparable(a) == comparable(b)
}

fn comparable(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).unwrap_or_default();
    if let Some(labels) = value
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    prune_empty(&mut value);
    value
}

fn prune_empty(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune_empty(child);
            }
            map.retain(|_, v| !is_empty(v));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A ReplicaSet's revision; absent or unreadable counts as 0.
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// An integer annotation of a ReplicaSet, if present and readable.
pub fn annotated(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations().get(key).and_then(|v| v.parse().ok())
}

/// Brings a ReplicaSet's annotations up to date for revision `revision` of `deployment`:
/// copies the Deployment's own annotations, raises the revision (keeping the one it replaces
/// in `revision-history`, which is what a rollback leaves behind) and, for a ReplicaSet being
/// created, records the sizes it was made for. Kubernetes' `SetNewReplicaSetAnnotations`.
/// Returns whether anything changed.
pub fn set_new_annotations(
    deployment: &Deployment,
    rs: &mut ReplicaSet,
    revision: i64,
    creating: Option<(i32, i32)>,
) -> bool {
    let annotations = rs.annotations_mut();
    let mut changed = false;
    for (key, value) in deployment.annotations() {
        if NOT_COPIED.contains(&key.as_str()) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    let old = annotations.get(REVISION).cloned();
    let old_number = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return changed,
    };
    if old_number < revision {
        annotations.insert(REVISION.into(), revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            let mut kept: Vec<&str> = history.split(',').filter(|r| !r.is_empty()).collect();
            kept.push(&old);
            while kept.join(",").len() > MAX_HISTORY_CHARS && kept.len() > 1 {
                kept.remove(0);
            }
            annotations.insert(REVISION_HISTORY.into(), kept.join(","));
        }
    }
    if let Some((desired, max)) = creating {
        changed |= set_replica_annotations(rs, desired, max);
    }
    changed
}

/// Records the sizes a ReplicaSet was last scaled for; returns whether they changed.
pub fn set_replica_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.annotations_mut();
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

/// The template's labels with the hash added: the new ReplicaSet's labels, its template's
/// labels and, as `matchLabels`, part of its selector.
pub fn with_hash(
    labels: Option<&BTreeMap<String, String>>,
    hash: &str,
) -> BTreeMap<String, String> {
    let mut labels = labels.cloned().unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str, labels: Value) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn hashes_are_stable_safe_and_change_with_the_template_and_collisions() {
        let a = template("nginx:1", json!({"app": "web"}));
        let h = hash(&a, None);
        assert_eq!(h, hash(&a.clone(), None));
        assert!(h.bytes().all(|b| SAFE.contains(&b)), "{h}");
        assert_ne!(h, hash(&template("nginx:2", json!({"app": "web"})), None));
        assert_ne!(h, hash(&a, Some(1)));
    }

    #[test]
    fn equality_sets_the_hash_label_and_empty_fields_aside() {
        let a = template("nginx:1", json!({"app": "web"}));
        let hashed = template("nginx:1", json!({"app": "web", HASH_LABEL: "abc"}));
        assert!(equal_ignoring_hash(&a, &hashed));
        let mut annotated = a.clone();
        annotated.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert!(equal_ignoring_hash(&a, &annotated));
        assert!(!equal_ignoring_hash(
            &a,
            &template("nginx:2", json!({"app": "web"}))
        ));
    }

    fn deployment(annotations: Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "web", "annotations": annotations}}))
            .unwrap()
    }

    #[test]
    fn a_new_replica_set_takes_the_deployments_annotations_and_the_next_revision() {
        let d = deployment(json!({
            "kubernetes.io/change-cause": "bump",
            REVISION: "4",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        }));
        let mut rs = ReplicaSet::default();
        assert!(set_new_annotations(&d, &mut rs, 5, Some((3, 4))));
        let annotations = rs.annotations();
        assert_eq!(annotations["kubernetes.io/change-cause"], "bump");
        assert_eq!(annotations[REVISION], "5");
        assert_eq!(annotations[DESIRED_REPLICAS], "3");
        assert_eq!(annotations[MAX_REPLICAS], "4");
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert!(!annotations.contains_key(REVISION_HISTORY));
        assert!(!set_new_annotations(&d, &mut rs, 5, None), "idempotent");
    }

    #[test]
    fn a_rolled_back_replica_set_remembers_its_old_revisions() {
        let d = deployment(json!({}));
        let mut rs = ReplicaSet::default();
        set_new_annotations(&d, &mut rs, 1, None);
        set_new_annotations(&d, &mut rs, 3, None);
        set_new_annotations(&d, &mut rs, 5, None);
        assert_eq!(rs.annotations()[REVISION], "5");
        assert_eq!(rs.annotations()[REVISION_HISTORY], "1,3");
        assert!(
            !set_new_annotations(&d, &mut rs, 4, None),
            "revisions never go down"
        );
    }
}

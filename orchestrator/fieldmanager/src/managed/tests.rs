//! Ownership through create, update, apply, conflicts, force and pruning, on the shapes
//! kubectl produces.

use serde_json::{Value, json};
use slipway_patch::{Schema, schema_for};

use super::*;
use crate::paths::{display, from_fields_v1, paths_of, to_fields_v1};

fn deployment_schema() -> Option<&'static Schema> {
    Some(schema_for("apps/v1", "Deployment").unwrap())
}

fn manager<'a>(name: &'a str, subresource: Option<&'a str>) -> Manager<'a> {
    Manager {
        name,
        api_version: "apps/v1",
        subresource,
        time: "2026-11-28T00:00:00Z",
    }
}

fn deployment(replicas: i64, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}
            }
        }
    })
}

#[test]
fn fields_v1_has_kubernetes_shape_and_round_trips() {
    let set = paths_of(
        &deployment(2, json!({"app": "web"})),
        deployment_schema(),
        false,
    );
    let tree = to_fields_v1(&set);
    assert_eq!(tree["f:metadata"], json!({"f:labels": {"f:app": {}}}));
    assert_eq!(
        tree["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
    assert_eq!(tree["f:spec"]["f:replicas"], json!({}));
    assert!(tree.get("f:apiVersion").is_none() && tree["f:metadata"].get("f:name").is_none());
    assert_eq!(from_fields_v1(&tree).unwrap(), set);
}

#[test]
fn sets_and_atomic_lists() {
    let object = json!({"metadata": {"finalizers": ["a", "b"]},
                        "spec": {"template": {"spec": {"tolerations": [{"key": "x"}]}}}});
    let set = paths_of(&object, deployment_schema(), false);
    let shown: Vec<String> = set.iter().map(|p| display(p)).collect();
    assert!(
        shown.contains(&".metadata.finalizers[=\"a\"]".to_owned()),
        "{shown:?}"
    );
    assert!(
        shown.contains(&".spec.template.spec.tolerations".to_owned()),
        "{shown:?}"
    );
}

#[test]
fn an_update_takes_what_it_changed() {
    let mut managed = ManagedFields::default();
    let created = deployment(1, json!({"app": "web"}));
    managed.update(
        deployment_schema(),
        &json!({}),
        &created,
        &manager("kubectl-create", None),
        false,
    );
    let scaled = deployment(5, json!({"app": "web"}));
    managed.update(
        deployment_schema(),
        &created,
        &scaled,
        &manager("kubectl-scale", Some("scale")),
        false,
    );

    let replicas = vec!["f:spec".to_owned(), "f:replicas".to_owned()];
    let creator = managed
        .owned_by(&manager("kubectl-create", None), Operation::Update)
        .unwrap();
    assert!(!creator.contains(&replicas));
    let scaler = managed
        .owned_by(&manager("kubectl-scale", Some("scale")), Operation::Update)
        .unwrap();
    assert_eq!(scaler.iter().collect::<Vec<_>>(), [&replicas]);

    let mut written = scaled.clone();
    managed.write(&mut written);
    let entries = written["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries[1]["subresource"], "scale");
    assert_eq!(ManagedFields::read(&written).unwrap(), managed);
}

#[test]
fn apply_conflicts_with_another_managers_value_unless_forced() {
    let schema = deployment_schema();
    let mut managed = ManagedFields::default();
    let config = deployment(2, json!({"app": "web"}));
    let live = managed
        .apply(
            schema,
            None,
            &config,
            &manager("kubectl", None),
            false,
            false,
        )
        .unwrap();
    let scaled = deployment(5, json!({"app": "web"}));
    managed.update(
        schema,
        &live,
        &scaled,
        &manager("kubectl-scale", Some("scale")),
        false,
    );

    // The same value is shared ownership, not a conflict.
    let mut same = managed.clone();
    same.apply(
        schema,
        Some(&scaled),
        &deployment(5, json!({"app": "web"})),
        &manager("kubectl", None),
        false,
        false,
    )
    .unwrap();

    let err = managed
        .clone()
        .apply(
            schema,
            Some(&scaled),
            &config,
            &manager("kubectl", None),
            false,
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1 at 2026-11-28T00:00:00Z: .spec.replicas"
    );

    let forced = managed
        .apply(
            schema,
            Some(&scaled),
            &config,
            &manager("kubectl", None),
            true,
            false,
        )
        .unwrap();
    assert_eq!(forced["spec"]["replicas"], 2);
    assert!(
        managed
            .owned_by(&manager("kubectl-scale", Some("scale")), Operation::Update)
            .is_none()
    );
}

#[test]
fn apply_prunes_what_it_stopped_applying_unless_someone_else_owns_it() {
    let schema = deployment_schema();
    let mut managed = ManagedFields::default();
    let first = deployment(2, json!({"app": "web", "tier": "front"}));
    let live = managed
        .apply(
            schema,
            None,
            &first,
            &manager("kubectl", None),
            false,
            false,
        )
        .unwrap();
    // Someone else labels it.
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["owner"] = json!("ops");
    managed.update(
        schema,
        &live,
        &labelled,
        &manager("kubectl-label", None),
        false,
    );

    // The applier drops `tier` and `replicas`, and its whole container list entry changes.
    let mut second = deployment(2, json!({"app": "web"}));
    second["spec"].as_object_mut().unwrap().remove("replicas");
    let merged = managed
        .apply(
            schema,
            Some(&labelled),
            &second,
            &manager("kubectl", None),
            false,
            false,
        )
        .unwrap();
    assert_eq!(
        merged["metadata"]["labels"],
        json!({"app": "web", "owner": "ops"})
    );
    assert!(merged["spec"].get("replicas").is_none());

    // Dropping every label it applied leaves the other manager's.
    let mut third = second.clone();
    third["metadata"].as_object_mut().unwrap().remove("labels");
    let merged = managed
        .apply(
            schema,
            Some(&merged),
            &third,
            &manager("kubectl", None),
            false,
            false,
        )
        .unwrap();
    assert_eq!(merged["metadata"]["labels"], json!({"owner": "ops"}));
}

#[test]
fn apply_prunes_list_elements_and_emptied_parents() {
    let schema = deployment_schema();
    let mut managed = ManagedFields::default();
    let mut config = deployment(1, json!({"app": "web"}));
    config["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    config["metadata"]["annotations"] = json!({"note": "x"});
    let live = managed
        .apply(
            schema,
            None,
            &config,
            &manager("kubectl", None),
            false,
            false,
        )
        .unwrap();
    let merged = managed
        .apply(
            schema,
            Some(&live),
            &deployment(1, json!({"app": "web"})),
            &manager("kubectl", None),
            false,
            false,
        )
        .unwrap();
    let containers = merged["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "web");
    assert!(merged["metadata"].get("annotations").is_none(), "{merged}");
}

#[test]
fn malformed_managed_fields_are_named() {
    for (bad, want) in [
        (json!("x"), "must be a list"),
        (
            json!([{"manager": "m", "operation": "Delete"}]),
            "[0]: operation",
        ),
        (json!([{"operation": "Apply"}]), "manager is required"),
        (
            json!([{"manager": "m", "operation": "Apply", "fieldsV1": {"x:y": {}}}]),
            "unknown path element",
        ),
    ] {
        let err = ManagedFields::read(&json!({"metadata": {"managedFields": bad}})).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

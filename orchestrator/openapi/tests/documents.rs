//! The served documents as kubectl reads them: the index, the hashes, the paths and
//! extensions it looks for, and self-contained components.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// (index key, kind, plural, namespaced, listable) of every resource the API server serves.
const RESOURCES: &[(&str, &str, &str, bool, bool)] = &[
    ("api/v1", "Namespace", "namespaces", false, true),
    ("api/v1", "Pod", "pods", true, true),
    ("api/v1", "Service", "services", true, true),
    ("api/v1", "Endpoints", "endpoints", true, true),
    ("api/v1", "ConfigMap", "configmaps", true, true),
    ("api/v1", "Secret", "secrets", true, true),
    ("api/v1", "ResourceQuota", "resourcequotas", true, true),
    ("api/v1", "LimitRange", "limitranges", true, true),
    ("api/v1", "Node", "nodes", false, true),
    ("api/v1", "Event", "events", true, true),
    ("api/v1", "ServiceAccount", "serviceaccounts", true, true),
    ("apis/apps/v1", "Deployment", "deployments", true, true),
    ("apis/apps/v1", "ReplicaSet", "replicasets", true, true),
    ("apis/coordination.k8s.io/v1", "Lease", "leases", true, true),
    (
        "apis/networking.k8s.io/v1",
        "Ingress",
        "ingresses",
        true,
        true,
    ),
    (
        "apis/rbac.authorization.k8s.io/v1",
        "Role",
        "roles",
        true,
        true,
    ),
    (
        "apis/rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
        true,
    ),
    (
        "apis/rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        false,
        true,
    ),
    (
        "apis/rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        true,
    ),
    (
        "apis/authentication.k8s.io/v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
        false,
    ),
    (
        "apis/authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        false,
    ),
    (
        "apis/authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
        false,
    ),
];

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

fn doc(path: &str) -> Value {
    let bytes = slipway_openapi::document(path).unwrap_or_else(|| panic!("no document {path}"));
    serde_json::from_slice(&bytes).expect("documents are JSON")
}

fn served_paths() -> BTreeSet<String> {
    slipway_openapi::index()["paths"]
        .as_object()
        .expect("index paths")
        .keys()
        .cloned()
        .collect()
}

/// (group, version) of an index key.
fn group_version(path: &str) -> (&str, &str) {
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => ("", version),
        ["apis", group, version] => (group, version),
        _ => panic!("bad index key {path}"),
    }
}

fn gvk_of(value: &Value) -> (String, String, String) {
    let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    (field("group"), field("version"), field("kind"))
}

#[test]
fn index_lists_every_served_group_version_with_its_hash() {
    let index = slipway_openapi::index();
    let expected: BTreeSet<String> = RESOURCES.iter().map(|r| r.0.to_owned()).collect();
    assert_eq!(served_paths(), expected);
    for (path, entry) in index["paths"].as_object().expect("paths") {
        let bytes = slipway_openapi::document(path).expect("listed documents exist");
        let hash = slipway_openapi::hash(path).expect("listed documents have a hash");
        let digest: String = Sha256::digest(bytes.as_slice())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(hash, digest, "{path}");
        assert_eq!(
            entry["serverRelativeURL"],
            format!("/openapi/v3/{path}?hash={hash}"),
        );
    }
}

#[test]
fn documents_are_built_once_and_unknown_paths_are_absent() {
    let first = slipway_openapi::document("api/v1").expect("core");
    let second = slipway_openapi::document("api/v1").expect("core");
    assert!(Arc::ptr_eq(&first, &second));
    for unknown in [
        "",
        "api",
        "apis/apps",
        "/api/v1",
        "apis/batch/v1",
        "apis/autoscaling/v1",
    ] {
        assert!(slipway_openapi::document(unknown).is_none(), "{unknown}");
        assert!(slipway_openapi::hash(unknown).is_none(), "{unknown}");
    }
    assert_eq!(slipway_openapi::index(), slipway_openapi::index());
}

#[test]
fn documents_declare_openapi_3() {
    for path in served_paths() {
        let doc = doc(&path);
        assert_eq!(doc["openapi"], "3.0.0", "{path}");
        assert!(doc["info"]["version"].is_string(), "{path}");
        assert!(doc["components"]["schemas"].is_object(), "{path}");
    }
}

#[test]
fn every_resource_has_its_paths_and_operations() {
    for &(path, kind, plural, namespaced, listable) in RESOURCES {
        let doc = doc(path);
        let (group, version) = group_version(path);
        let paths = &doc["paths"];
        let prefix = format!("/{path}");
        let collection = if namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{plural}")
        } else {
            format!("{prefix}/{plural}")
        };
        let expect_op = |url: &str, method: &str, action: &str| {
            let op = &paths[url][method];
            assert!(op.is_object(), "{method} {url} missing");
            assert_eq!(op["x-kubernetes-action"], action, "{method} {url}");
            assert_eq!(
                gvk_of(&op["x-kubernetes-group-version-kind"]),
                (group.to_owned(), version.to_owned(), kind.to_owned()),
                "{method} {url}",
            );
        };
        expect_op(&collection, "post", "post");
        if !listable {
            assert_eq!(
                paths[&collection].as_object().expect("collection").len(),
                2,
                "{collection}: create only, beside its parameters",
            );
            continue;
        }
        let item = format!("{collection}/{{name}}");
        expect_op(&collection, "get", "list");
        expect_op(&item, "get", "get");
        expect_op(&item, "put", "put");
        expect_op(&item, "patch", "patch");
        expect_op(&item, "delete", "delete");
        if kind == "Namespace" {
            assert!(paths[&collection]["delete"].is_null(), "as upstream");
        } else {
            expect_op(&collection, "delete", "deletecollection");
        }
        if namespaced {
            expect_op(&format!("{prefix}/{plural}"), "get", "list");
        }
        let list = &doc["components"]["schemas"]
            [format!("{}List", component_of(&doc, group, version, kind))];
        assert_eq!(
            gvk_of(&list["x-kubernetes-group-version-kind"][0]),
            (group.to_owned(), version.to_owned(), format!("{kind}List")),
        );
    }
}

/// The component schema tagged with the group-version-kind, as kubectl finds it.
fn component_of(doc: &Value, group: &str, version: &str, kind: &str) -> String {
    let wanted = (group.to_owned(), version.to_owned(), kind.to_owned());
    let found: Vec<&String> = doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .iter()
        .filter(|(_, schema)| {
            schema["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|gvks| gvks.iter().any(|g| gvk_of(g) == wanted))
        })
        .map(|(name, _)| name)
        .collect();
    assert_eq!(found.len(), 1, "{kind}: {found:?}");
    found[0].clone()
}

#[test]
fn every_kind_has_a_component_with_its_group_version_kind() {
    for &(path, kind, ..) in RESOURCES {
        let doc = doc(path);
        let (group, version) = group_version(path);
        let name = component_of(&doc, group, version, kind);
        let schema = &doc["components"]["schemas"][&name];
        assert!(schema["properties"]["metadata"].is_object(), "{name}");
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        assert!(!required.contains(&Value::from("metadata")), "{name}");
    }
}

#[test]
fn every_patch_accepts_field_validation_and_strategic_merge() {
    for path in served_paths() {
        let doc = doc(&path);
        for (url, item) in doc["paths"].as_object().expect("paths") {
            let Some(patch) = item.get("patch") else {
                continue;
            };
            let query_params: Vec<&str> = patch["parameters"]
                .as_array()
                .expect("patch parameters")
                .iter()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for name in ["fieldValidation", "fieldManager", "dryRun", "force"] {
                assert!(query_params.contains(&name), "{url}: {name}");
            }
            let content = &patch["requestBody"]["content"];
            for content_type in [
                "application/strategic-merge-patch+json",
                "application/merge-patch+json",
                "application/json-patch+json",
                "application/apply-patch+yaml",
            ] {
                assert!(content[content_type].is_object(), "{url}: {content_type}");
            }
        }
    }
}

#[test]
fn writes_accept_field_validation_and_dry_run() {
    for path in served_paths() {
        let doc = doc(&path);
        for (url, item) in doc["paths"].as_object().expect("paths") {
            for method in ["post", "put"] {
                let Some(op) = item.get(method) else {
                    continue;
                };
                let names: Vec<&str> = op["parameters"]
                    .as_array()
                    .expect("write parameters")
                    .iter()
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert!(names.contains(&"fieldValidation"), "{method} {url}");
                assert!(names.contains(&"dryRun"), "{method} {url}");
            }
        }
    }
}

#[test]
fn operations_are_tagged_and_have_unique_ids() {
    for path in served_paths() {
        let doc = doc(&path);
        let mut ids = BTreeSet::new();
        for (url, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                let Some(op) = item.get(method) else {
                    continue;
                };
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "duplicate {id} at {url}");
                assert!(op["x-kubernetes-action"].is_string(), "{method} {url}");
                assert!(
                    op["x-kubernetes-group-version-kind"]["kind"].is_string(),
                    "{method} {url}"
                );
                assert!(op["responses"]["200"].is_object(), "{method} {url}");
            }
        }
    }
    let core = doc("api/v1");
    assert_eq!(
        core["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"],
        "listCoreV1NamespacedPod"
    );
    assert_eq!(
        core["paths"]["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    let rbac = doc("apis/rbac.authorization.k8s.io/v1");
    assert_eq!(
        rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["patch"]["operationId"],
        "patchRbacAuthorizationV1ClusterRole"
    );
}

#[test]
fn subresources_are_described() {
    let core = doc("api/v1");
    let pod = "/api/v1/namespaces/{namespace}/pods/{name}";
    assert_eq!(
        core["paths"][format!("{pod}/status")]["patch"]["x-kubernetes-group-version-kind"]["kind"],
        "Pod"
    );
    assert_eq!(
        core["paths"][format!("{pod}/binding")]["post"]["x-kubernetes-group-version-kind"]["kind"],
        "Binding"
    );
    assert!(
        core["paths"][format!("{pod}/log")]["get"]["responses"]["200"]["content"]["text/plain"]
            .is_object()
    );
    assert!(core["paths"]["/api/v1/namespaces/{name}/finalize"]["put"].is_object());

    let apps = doc("apis/apps/v1");
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    for method in ["get", "put", "patch"] {
        assert_eq!(
            gvk_of(&scale[method]["x-kubernetes-group-version-kind"]),
            (
                "autoscaling".to_owned(),
                "v1".to_owned(),
                "Scale".to_owned()
            ),
        );
    }
    assert_eq!(
        component_of(&apps, "autoscaling", "v1", "Scale"),
        "io.k8s.api.autoscaling.v1.Scale"
    );
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => collect_refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves_within_its_document() {
    for path in served_paths() {
        let doc = doc(&path);
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 10, "{path}: {} refs", refs.len());
        let mut used = BTreeSet::new();
        for target in refs {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{path}: ref outside components: {target}"));
            assert!(schemas.contains_key(name), "{path}: dangling {target}");
            used.insert(name);
        }
        // Nothing unreachable: each schema is referred to, or is a kind's list.
        for name in schemas.keys() {
            assert!(
                used.contains(name.as_str()) || name.ends_with("List"),
                "{path}: {name} is never referred to"
            );
        }
    }
}

/// The property schema at `fields` below component `schema`, following `$ref`s and `items`.
fn property<'a>(doc: &'a Value, schema: &str, fields: &[&str]) -> &'a Value {
    let schemas = &doc["components"]["schemas"];
    let resolve = |value: &'a Value| -> &'a Value {
        let value = if value["type"] == "array" {
            &value["items"]
        } else {
            value
        };
        match value["$ref"].as_str() {
            Some(target) => &schemas[target.trim_start_matches("#/components/schemas/")],
            None => value,
        }
    };
    let mut current = &schemas[schema];
    let mut last = current;
    for field in fields {
        last = &current["properties"][*field];
        assert!(last.is_object(), "{schema}: no {field} in {fields:?}");
        current = resolve(last);
    }
    last
}

fn assert_merged_by(prop: &Value, merge_key: &str, map_keys: &[&str]) {
    assert_eq!(prop["x-kubernetes-patch-strategy"], "merge", "{prop}");
    assert_eq!(prop["x-kubernetes-patch-merge-key"], merge_key, "{prop}");
    assert_eq!(prop["x-kubernetes-list-type"], "map", "{prop}");
    assert_eq!(
        prop["x-kubernetes-list-map-keys"],
        serde_json::json!(map_keys),
        "{prop}"
    );
}

#[test]
fn pod_lists_carry_merge_keys() {
    let core = doc("api/v1");
    let pod = "io.k8s.api.core.v1.Pod";
    assert_merged_by(
        property(&core, pod, &["spec", "containers"]),
        "name",
        &["name"],
    );
    assert_merged_by(
        property(&core, pod, &["spec", "initContainers"]),
        "name",
        &["name"],
    );
    assert_merged_by(
        property(&core, pod, &["spec", "containers", "ports"]),
        "containerPort",
        &["containerPort", "protocol"],
    );
    assert_merged_by(
        property(&core, pod, &["spec", "containers", "env"]),
        "name",
        &["name"],
    );
    assert_merged_by(
        property(&core, pod, &["spec", "containers", "volumeMounts"]),
        "mountPath",
        &["mountPath"],
    );
    assert_merged_by(
        property(&core, pod, &["spec", "ephemeralContainers", "env"]),
        "name",
        &["name"],
    );
    let volumes = property(&core, pod, &["spec", "volumes"]);
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    assert_eq!(volumes["x-kubernetes-patch-merge-key"], "name");
    assert_merged_by(
        property(&core, pod, &["status", "conditions"]),
        "type",
        &["type"],
    );
    assert_eq!(
        property(&core, pod, &["spec", "tolerations"])["x-kubernetes-list-type"],
        "atomic"
    );
    assert!(
        property(&core, pod, &["spec", "containers", "args"])
            .get("x-kubernetes-patch-strategy")
            .is_none()
    );
    let finalizers = property(&core, pod, &["metadata", "finalizers"]);
    assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    assert_merged_by(
        property(&core, pod, &["metadata", "ownerReferences"]),
        "uid",
        &["uid"],
    );
    assert_merged_by(
        property(&core, "io.k8s.api.core.v1.Service", &["spec", "ports"]),
        "port",
        &["port", "protocol"],
    );
    assert_merged_by(
        property(&core, "io.k8s.api.core.v1.Node", &["status", "conditions"]),
        "type",
        &["type"],
    );
}

#[test]
fn deployment_templates_carry_merge_keys() {
    let apps = doc("apis/apps/v1");
    let deployment = "io.k8s.api.apps.v1.Deployment";
    assert_merged_by(
        property(
            &apps,
            deployment,
            &["spec", "template", "spec", "containers"],
        ),
        "name",
        &["name"],
    );
    assert_merged_by(
        property(
            &apps,
            deployment,
            &["spec", "template", "spec", "containers", "ports"],
        ),
        "containerPort",
        &["containerPort", "protocol"],
    );
    assert_merged_by(
        property(&apps, deployment, &["status", "conditions"]),
        "type",
        &["type"],
    );
    assert_eq!(
        property(&apps, deployment, &["spec", "strategy"])["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
    assert_eq!(
        apps["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
        "atomic"
    );
}

//! `components.schemas` of a group-version document: k8s-openapi's schemas of every type the
//! paths reach, completed with what k8s-openapi leaves out (list types, group-version-kinds,
//! and the list/patch/map extensions of upstream's struct tags).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::catalog::{GroupVersion, Kind};
use crate::paths::{SCHEMA_REF_PREFIX, schema_ref};
use crate::tags::{TAGS, TYPE_TAGS};

/// A generator whose `$ref`s point into `#/components/schemas` and that keeps k8s-openapi's
/// schemas as they are: they are already OpenAPI v3 (upstream's own, de-extended), so none of
/// schemars' JSON Schema to OpenAPI rewrites apply.
pub(crate) fn generator() -> SchemaGenerator {
    SchemaSettings::openapi3()
        .with(|settings| {
            settings.meta_schema = None;
            settings.transforms.clear();
        })
        .into_generator()
}

/// Completes the schemas `generator` collected while the paths were built.
pub(crate) fn components(
    gv: &GroupVersion,
    served: &[GroupVersion],
    paths: &Map<String, Value>,
    mut generator: SchemaGenerator,
) -> Map<String, Value> {
    generator.subschema_for::<ListMeta>();
    let mut schemas = generator.take_definitions(false);
    for kind in &gv.kinds {
        add_list(kind, &mut schemas);
    }
    retain_reachable(paths, &mut schemas);
    for kind in &gv.kinds {
        if let Some(schema) = schemas.get_mut(&kind.schema_name) {
            set_gvks(schema, &[(kind.group, kind.version, kind.kind)]);
            drop_required_metadata(schema);
        }
    }
    for (name, group, version, kind) in [
        (
            "io.k8s.api.autoscaling.v1.Scale",
            "autoscaling",
            "v1",
            "Scale",
        ),
        ("io.k8s.api.core.v1.Binding", "", "v1", "Binding"),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "",
            "v1",
            "Status",
        ),
    ] {
        if let Some(schema) = schemas.get_mut(name) {
            set_gvks(schema, &[(group, version, kind)]);
        }
    }
    // Upstream registers DeleteOptions in every group-version, so a client may send it with
    // any served apiVersion.
    if let Some(schema) = schemas.get_mut("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions") {
        let gvks: Vec<_> = served
            .iter()
            .map(|gv| (gv.group, gv.version, "DeleteOptions"))
            .collect();
        set_gvks(schema, &gvks);
    }
    apply_tags(&mut schemas);
    schemas
}

/// Drops the schemas no operation reaches (the shared meta types in a group-version that only
/// creates reviews), so a document describes exactly what its paths use.
fn retain_reachable(paths: &Map<String, Value>, schemas: &mut Map<String, Value>) {
    let mut reachable = BTreeSet::new();
    let mut pending: Vec<&Value> = paths.values().collect();
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|target| target.strip_prefix(SCHEMA_REF_PREFIX))
                    && reachable.insert(name.to_owned())
                    && let Some(schema) = schemas.get(name)
                {
                    pending.push(schema);
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    schemas.retain(|name, _| reachable.contains(name));
}

fn set_gvks(schema: &mut Value, gvks: &[(&str, &str, &str)]) {
    let list: Vec<Value> = gvks
        .iter()
        .map(|(group, version, kind)| json!({ "group": group, "kind": kind, "version": version }))
        .collect();
    schema["x-kubernetes-group-version-kind"] = Value::Array(list);
}

/// k8s-openapi requires `metadata` because its Rust field is not optional; upstream does not,
/// and `kubectl explain` would show it as required.
fn drop_required_metadata(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let empty = match object.get_mut("required").and_then(Value::as_array_mut) {
        Some(required) => {
            required.retain(|field| field != "metadata");
            required.is_empty()
        }
        None => false,
    };
    if empty {
        object.remove("required");
    }
}

/// Lists are generic in k8s-openapi (`List<T>`, without a schema); upstream names each.
fn add_list(kind: &Kind, schemas: &mut Map<String, Value>) {
    let (Some(list_kind), Some(list_name)) = (kind.list_kind, kind.list_schema_name()) else {
        return;
    };
    let Some(item) = schemas.get(&kind.schema_name) else {
        return;
    };
    // The item's own apiVersion and kind carry upstream's standard descriptions.
    let standard = |field: &str| item["properties"][field].clone();
    let list = json!({
        "description": format!("{list_kind} is a list of {}.", kind.kind),
        "type": "object",
        "properties": {
            "apiVersion": standard("apiVersion"),
            "kind": standard("kind"),
            "items": {
                "description": format!("List of {}.", kind.plural),
                "type": "array",
                "items": schema_ref(&kind.schema_name),
            },
            "metadata": {
                "$ref": format!("{SCHEMA_REF_PREFIX}{}", ListMeta::schema_name()),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [
            { "group": kind.group, "kind": list_kind, "version": kind.version },
        ],
    });
    schemas.insert(list_name, list);
}

fn apply_tags(schemas: &mut Map<String, Value>) {
    for tag in TAGS {
        let Some(property) = schemas
            .get_mut(tag.schema)
            .and_then(|schema| schema.get_mut("properties"))
            .and_then(|properties| properties.get_mut(tag.field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        tag.apply(property);
    }
    for (name, map_type) in TYPE_TAGS {
        if let Some(schema) = schemas.get_mut(*name).and_then(Value::as_object_mut) {
            schema.insert("x-kubernetes-map-type".to_owned(), json!(map_type));
        }
    }
}

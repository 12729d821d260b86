//! Sets of field paths: computed from objects, looked up and removed in them, and written as
//! Kubernetes' `FieldsV1` trees.
//!
//! A path is a list of elements in `FieldsV1` spelling: `f:<field>` for an object's field,
//! `k:<json>` for the element of a keyed list with that merge key, `v:<json>` for the element
//! of a set of primitives. Which lists are keyed or sets comes from the strategic-merge
//! schema; every other list is atomic and owned as one field.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use slipway_patch::{Field, PatchStrategy, Schema};

/// One field path, element by element.
pub type Path = Vec<String>;

/// A set of field paths.
pub type FieldSet = BTreeSet<Path>;

/// Metadata the server sets and no manager owns.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The paths an object sets: its leaves, and the elements of its keyed lists and sets.
/// `apiVersion`, `kind` and server-set metadata are nobody's; `status` counts only when
/// `with_status` (a status write, or a kind without a status subresource).
pub fn paths_of(object: &Value, schema: Option<&'static Schema>, with_status: bool) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    let mut prefix = Path::new();
    for (name, value) in map {
        match name.as_str() {
            "apiVersion" | "kind" => {}
            "status" if !with_status => {}
            "metadata" => {
                let Some(meta) = value.as_object() else {
                    continue;
                };
                let field = field(schema, "metadata");
                prefix.push("f:metadata".to_owned());
                for (name, value) in meta {
                    if !SERVER_METADATA.contains(&name.as_str()) {
                        walk_field(&mut out, &mut prefix, name, value, sub_field(field, name));
                    }
                }
                prefix.pop();
            }
            _ => walk_field(&mut out, &mut prefix, name, value, field(schema, name)),
        }
    }
    out
}

fn field(schema: Option<&'static Schema>, name: &str) -> Option<&'static Field> {
    schema.and_then(|s| s.field(name))
}

fn sub_field(parent: Option<&'static Field>, name: &str) -> Option<&'static Field> {
    parent.and_then(|f| f.schema().field(name))
}

fn walk_field(
    out: &mut FieldSet,
    prefix: &mut Path,
    name: &str,
    value: &Value,
    field: Option<&'static Field>,
) {
    prefix.push(format!("f:{name}"));
    match value {
        Value::Object(map) if !map.is_empty() => walk_object(out, prefix, map, field),
        Value::Array(items) if !items.is_empty() => walk_list(out, prefix, items, field),
        _ => {
            out.insert(prefix.clone());
        }
    }
    prefix.pop();
}

fn walk_object(
    out: &mut FieldSet,
    prefix: &mut Path,
    map: &Map<String, Value>,
    field: Option<&'static Field>,
) {
    for (name, value) in map {
        walk_field(out, prefix, name, value, sub_field(field, name));
    }
}

fn walk_list(
    out: &mut FieldSet,
    prefix: &mut Path,
    items: &[Value],
    field: Option<&'static Field>,
) {
    let elements: Option<Vec<String>> = match field.map_or(PatchStrategy::Replace, Field::strategy)
    {
        PatchStrategy::Merge { key: Some(key) } => {
            items.iter().map(|item| key_element(item, key)).collect()
        }
        PatchStrategy::Merge { key: None } => items.iter().map(value_element).collect(),
        PatchStrategy::Replace => None,
    };
    // Elements that cannot be told apart (a missing or repeated key) make the list atomic,
    // as the list has no other identity for them.
    let distinct = elements
        .as_ref()
        .is_some_and(|e| e.iter().collect::<BTreeSet<_>>().len() == e.len());
    let Some(elements) = elements.filter(|_| distinct) else {
        out.insert(prefix.clone());
        return;
    };
    for (item, element) in items.iter().zip(elements) {
        prefix.push(element);
        out.insert(prefix.clone());
        if let Value::Object(map) = item {
            walk_object(out, prefix, map, field);
        }
        prefix.pop();
    }
}

fn key_element(item: &Value, key: &str) -> Option<String> {
    let value = item.get(key).filter(|v| is_primitive(v))?;
    Some(format!("k:{}", json!({ key: value })))
}

fn value_element(item: &Value) -> Option<String> {
    is_primitive(item).then(|| format!("v:{item}"))
}

fn is_primitive(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_) | Value::Null)
}

/// Whether the path ends at a list element rather than a field.
pub(crate) fn is_element(path: &[String]) -> bool {
    path.last()
        .is_some_and(|e| e.starts_with("k:") || e.starts_with("v:"))
}

/// The value at `path`, if the object has one there.
pub fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, element| {
        if let Some(name) = element.strip_prefix("f:") {
            return value.as_object()?.get(name);
        }
        let items = value.as_array()?;
        position(items, element).map(|i| &items[i])
    })
}

fn position(items: &[Value], element: &str) -> Option<usize> {
    if let Some(key) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items
            .iter()
            .position(|item| key.iter().all(|(k, want)| item.get(k) == Some(want)));
    }
    if let Some(value) = element.strip_prefix("v:") {
        let want: Value = serde_json::from_str(value).ok()?;
        return items.iter().position(|item| *item == want);
    }
    None
}

/// Removes the value at `path`; a path that leads nowhere removes nothing.
pub(crate) fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let Some(parent) = lookup_mut(value, parent) else {
        return;
    };
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(map) = parent.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(items) = parent.as_array_mut()
        && let Some(i) = position(items, last)
    {
        items.remove(i);
    }
}

fn lookup_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |value, element| {
        if let Some(name) = element.strip_prefix("f:") {
            return value.as_object_mut()?.get_mut(name);
        }
        let items = value.as_array_mut()?;
        let i = position(items, element)?;
        items.get_mut(i)
    })
}

/// The path as Kubernetes prints it in conflict messages: `.spec.replicas`,
/// `.spec.containers[name="web"].image`, `.metadata.finalizers[="x"]`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        }
    }
    out
}

/// The `FieldsV1` tree of a set: one nested object per element, `{}` for a leaf, and `"."`
/// for a member that also has members below it (a list element with fields).
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for element in path {
            node = node
                .entry(element.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("FieldsV1 nodes are objects");
        }
        node.insert(".".to_owned(), json!({}));
    }
    let mut root = Value::Object(root);
    collapse_leaves(&mut root);
    root
}

/// A member without members below it is written `{}`, not `{".": {}}`.
fn collapse_leaves(node: &mut Value) {
    let Some(map) = node.as_object_mut() else {
        return;
    };
    if map.len() == 1 && map.contains_key(".") {
        map.clear();
        return;
    }
    for (key, child) in map.iter_mut() {
        if key != "." {
            collapse_leaves(child);
        }
    }
}

/// The set a `FieldsV1` tree describes, or what is wrong with it.
pub fn from_fields_v1(tree: &Value) -> Result<FieldSet, String> {
    let mut out = FieldSet::new();
    let Some(map) = tree.as_object() else {
        return Err("fieldsV1 must be an object".to_owned());
    };
    let mut prefix = Path::new();
    read_node(map, &mut prefix, &mut out)?;
    Ok(out)
}

fn read_node(
    map: &Map<String, Value>,
    prefix: &mut Path,
    out: &mut FieldSet,
) -> Result<(), String> {
    if !prefix.is_empty() && (map.is_empty() || map.contains_key(".")) {
        out.insert(prefix.clone());
    }
    for (key, child) in map {
        if key == "." {
            continue;
        }
        if !["f:", "k:", "v:"].iter().any(|p| key.starts_with(p)) {
            return Err(format!("unknown path element {key:?}"));
        }
        let Some(child) = child.as_object() else {
            return Err(format!("the entry for {key:?} must be an object"));
        };
        prefix.push(key.clone());
        read_node(child, prefix, out)?;
        prefix.pop();
    }
    Ok(())
}

//! Property tests: no patch function panics on arbitrary documents and patches, a failing
//! JSON patch leaves its input untouched, and merge patches built as diffs round-trip.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use slipway_patch::{json_patch, merge_patch, schema_for, strategic_merge};

/// Keys that steer the algorithms into their interesting branches.
const KEYS: &[&str] = &[
    "name",
    "image",
    "spec",
    "metadata",
    "containers",
    "env",
    "ports",
    "containerPort",
    "finalizers",
    "volumes",
    "strategy",
    "template",
    "status",
    "conditions",
    "type",
    "uid",
    "ownerReferences",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$deleteFromPrimitiveList/finalizers",
    "$deleteFromPrimitiveList/args",
    "$setElementOrder",
    "args",
    "a",
    "",
];

const STRINGS: &[&str] = &[
    "replace", "delete", "merge", "a", "x", "name", "/", "~", "1",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..5).prop_map(Value::from),
        Just(json!(1.0)),
        prop::sample::select(STRINGS).prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|members| {
                Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..6).prop_map(|members| {
        Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

const POINTERS: &[&str] = &[
    "",
    "/",
    "/a",
    "/a/0",
    "/a/-",
    "/spec",
    "/spec/name",
    "/0",
    "/~1",
    "/~0",
    "/~2",
    "a",
];
const OPS: &[&str] = &["add", "remove", "replace", "move", "copy", "test", "nope"];

fn operation() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(OPS),
        prop::sample::select(POINTERS),
        prop::option::of(prop::sample::select(POINTERS)),
        prop::option::of(json_value()),
    )
        .prop_map(|(op, path, from, value)| {
            let mut members = Map::new();
            members.insert("op".to_owned(), op.into());
            members.insert("path".to_owned(), path.into());
            if let Some(from) = from {
                members.insert("from".to_owned(), from.into());
            }
            if let Some(value) = value {
                members.insert("value".to_owned(), value);
            }
            Value::Object(members)
        })
}

/// The RFC 7386 patch that turns `from` into `to` (for object roots).
fn diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for key in a.keys().filter(|k| !b.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, value) in b {
                match a.get(key) {
                    Some(old) if old == value => {}
                    Some(old) if old.is_object() && value.is_object() => {
                        patch.insert(key.clone(), diff(old, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

/// Whether `v` contains a null inside an object, which a merge patch cannot express.
fn has_null_member(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().any(|x| x.is_null() || has_null_member(x)),
        Value::Array(items) => items.iter().any(has_null_member),
        _ => false,
    }
}

/// Objects of scalars and objects only, with keys that are neither directives nor tagged lists.
fn plain_object() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(&["a", "b", "name", "labels", "spec"][..]);
    let tree = scalar().prop_recursive(4, 32, 4, move |inner| {
        prop::collection::vec((keys.clone(), inner), 0..4).prop_map(|members| {
            Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Map<_, _>>(),
            )
        })
    });
    prop::collection::btree_map(prop::sample::select(&["a", "b", "data"][..]), tree, 0..4).prop_map(
        |members| {
            Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Map<_, _>>(),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn merge_patch_never_panics(target in json_value(), patch in json_value()) {
        let _ = merge_patch(&target, &patch);
    }

    #[test]
    fn merge_patch_of_a_diff_round_trips(a in object(), b in object()) {
        prop_assume!(!has_null_member(&b));
        prop_assert_eq!(merge_patch(&a, &diff(&a, &b)).unwrap(), b);
    }

    #[test]
    fn json_patch_never_panics(doc in json_value(), ops in prop::collection::vec(operation(), 0..5)) {
        let _ = json_patch(&doc, &Value::Array(ops));
    }

    #[test]
    fn json_patch_is_atomic(doc in object(), ops in prop::collection::vec(operation(), 1..5)) {
        let before = doc.clone();
        let mut ops = ops;
        // A final test that cannot pass forces a failure after earlier operations applied.
        ops.push(json!({"op": "test", "path": "", "value": "never the document"}));
        prop_assert!(json_patch(&doc, &Value::Array(ops)).is_err());
        prop_assert_eq!(doc, before);
    }

    #[test]
    fn json_patch_arbitrary_documents_never_panic(doc in json_value(), patch in json_value()) {
        let _ = json_patch(&doc, &patch);
    }

    #[test]
    fn strategic_merge_never_panics(
        original in object(),
        patch in object(),
        kind in prop::sample::select(&[("v1", "Pod"), ("apps/v1", "Deployment"), ("v1", "Node"), ("v1", "ConfigMap")][..]),
    ) {
        let schema = schema_for(kind.0, kind.1).unwrap();
        let _ = strategic_merge(&original, &patch, schema);
        let pod_like = json!({"spec": {"template": {"spec": original.clone()}}, "metadata": original});
        let patch_like = json!({"spec": {"template": {"spec": patch.clone()}}, "metadata": patch});
        let _ = strategic_merge(&pod_like, &patch_like, schema);
    }

    #[test]
    fn strategic_merge_without_lists_or_directives_is_a_merge_patch(a in plain_object(), b in plain_object()) {
        let schema = schema_for("v1", "ConfigMap").unwrap();
        prop_assert_eq!(strategic_merge(&a, &b, schema).unwrap(), merge_patch(&a, &b).unwrap());
    }
}

//! `admit` never panics, whatever JSON arrives for whichever kind.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use slipway_admission::{FieldValidation, admit};

const KINDS: [(&str, &str); 12] = [
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("v1", "Namespace"),
    ("v1", "Event"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("example.com/v1", "Widget"),
];

/// Keys the typed structs know, so that generated objects reach past the first decode error.
const KEYS: [&str; 24] = [
    "spec",
    "metadata",
    "containers",
    "name",
    "image",
    "ports",
    "containerPort",
    "selector",
    "matchLabels",
    "template",
    "replicas",
    "strategy",
    "rollingUpdate",
    "maxSurge",
    "type",
    "data",
    "port",
    "targetPort",
    "resources",
    "limits",
    "hard",
    "volumes",
    "immutable",
    "bogus",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-70000i32..70000).prop_map(Value::from),
        "[a-zA-Z0-9%.:=/ -]{0,12}".prop_map(Value::from),
        Just(json!("25%")),
        Just(json!("500m")),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..6).prop_map(
                |pairs| {
                    let map: Map<String, Value> =
                        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                    Value::Object(map)
                }
            ),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn admit_never_panics(
        kind in prop::sample::select(KINDS.to_vec()),
        object in json_value(),
        old in prop::option::of(json_value()),
        strict in any::<bool>(),
    ) {
        let directive = if strict { FieldValidation::Strict } else { FieldValidation::Warn };
        let _ = admit(kind.0, kind.1, object, old.as_ref(), directive);
    }

    /// Anything admitted is admitted again unchanged: defaulting is idempotent and the stored
    /// form has no unknown fields.
    #[test]
    fn admitted_objects_are_fixed_points(
        kind in prop::sample::select(KINDS.to_vec()),
        object in json_value(),
    ) {
        if let Ok(first) = admit(kind.0, kind.1, object, None, FieldValidation::Ignore) {
            let second = admit(kind.0, kind.1, first.object.clone(), None, FieldValidation::Strict);
            prop_assert_eq!(second.map(|a| a.object), Ok(first.object));
        }
    }
}

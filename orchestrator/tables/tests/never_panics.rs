//! Property: whatever JSON the store holds, `table` answers without panicking, with one
//! row per object and one cell per column, for every kind.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::{Map, Value};
use slipway_tables::{IncludeObject, column_definitions, table};

const KINDS: &[(&str, &str)] = &[
    ("", "Pod"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("", "Service"),
    ("", "Endpoints"),
    ("", "Namespace"),
    ("", "Node"),
    ("", "Event"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "ServiceAccount"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("coordination.k8s.io", "Lease"),
    ("networking.k8s.io", "Ingress"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("example.com", "Widget"),
];

/// Field names the printers read, so random objects reach deep into the code paths.
const KEYS: &[&str] = &[
    "metadata",
    "name",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
    "spec",
    "status",
    "containers",
    "initContainers",
    "restartPolicy",
    "containerStatuses",
    "initContainerStatuses",
    "state",
    "lastState",
    "waiting",
    "running",
    "terminated",
    "reason",
    "exitCode",
    "signal",
    "finishedAt",
    "restartCount",
    "ready",
    "started",
    "phase",
    "conditions",
    "type",
    "podIP",
    "podIPs",
    "ip",
    "nodeName",
    "readinessGates",
    "conditionType",
    "replicas",
    "readyReplicas",
    "selector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "template",
    "ports",
    "port",
    "nodePort",
    "protocol",
    "clusterIP",
    "clusterIPs",
    "externalIPs",
    "loadBalancer",
    "ingress",
    "hostname",
    "subsets",
    "addresses",
    "rules",
    "host",
    "tls",
    "nodeInfo",
    "unschedulable",
    "involvedObject",
    "kind",
    "series",
    "count",
    "eventTime",
    "lastObservedTime",
    "firstTimestamp",
    "lastTimestamp",
    "data",
    "stringData",
    "secrets",
    "hard",
    "used",
    "roleRef",
    "subjects",
    "namespace",
    "holderIdentity",
    "ingressClassName",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(u64::MAX)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "Always", "True", "Running", "Succeeded", "Failed", "Completed", "Ready", "In",
            "NotIn", "Exists", "DoesNotExist", "LoadBalancer", "NodePort", "ExternalName",
            "InternalIP", "User", "Group", "ServiceAccount", "NodeLost", "PodInitializing",
            "limits.cpu", "",
        ])
        .prop_map(Value::from),
        "(0001|1969|2024|9999)-(01|02|12)-(01|28|29|31)T(00|12|23):(00|59):(00|59)(\\.[0-9]{1,12})?(Z|[+-](00|23):(00|59))"
            .prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 6, |inner| {
        let key =
            prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => "\\PC{0,6}"];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn include() -> impl Strategy<Value = IncludeObject> {
    prop_oneof![
        Just(IncludeObject::None),
        Just(IncludeObject::Metadata),
        Just(IncludeObject::Object)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn table_never_panics(
        objects in prop::collection::vec(json_value(), 0..4),
        list_metadata in json_value(),
        include in include(),
        now_seconds in prop_oneof![Just(1_714_564_800_u64), 0_u64..=1_u64 << 40],
    ) {
        let now = UNIX_EPOCH + Duration::from_secs(now_seconds);
        for &(group, kind) in KINDS {
            let got = table(group, kind, &objects, list_metadata.clone(), include, now);
            let columns = column_definitions(group, kind).len();
            let rows = got["rows"].as_array().cloned().unwrap_or_default();
            prop_assert_eq!(rows.len(), objects.len());
            for row in rows {
                prop_assert_eq!(row["cells"].as_array().map(Vec::len), Some(columns));
                prop_assert_eq!(row.get("object").is_some(), include != IncludeObject::None);
            }
        }
    }
}

#[test]
fn extreme_clocks() {
    let pod = serde_json::json!({"metadata": {"creationTimestamp": "9999-12-31T23:59:59.999999999Z"},
        "status": {"containerStatuses": [{"restartCount": i64::MAX, "lastState": {"terminated": {"finishedAt": "0001-01-01T00:00:01Z"}}},
            {"restartCount": i64::MAX}]}});
    for now in [
        UNIX_EPOCH,
        SystemTime::UNIX_EPOCH - Duration::from_secs(1 << 40),
        UNIX_EPOCH + Duration::from_secs(1 << 45),
    ] {
        for &(group, kind) in KINDS {
            let got = table(
                group,
                kind,
                std::slice::from_ref(&pod),
                Value::Null,
                IncludeObject::Object,
                now,
            );
            assert_eq!(got["rows"].as_array().map(Vec::len), Some(1));
        }
    }
}

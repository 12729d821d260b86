//! Table-driven cases for strategic merge patch, re-expressed on slipway's kinds from the
//! apimachinery strategicpatch test suite, the SMP design doc and the kubectl patch docs.

use serde_json::{Value, json};

use super::{StrategicMergeError, schema_for, strategic_merge, strategic_merge_for};
use crate::MAX_DEPTH;

fn apply(
    api_version: &str,
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, StrategicMergeError> {
    strategic_merge(original, patch, schema_for(api_version, kind)?)
}

/// Wraps a pod spec fragment into a Pod.
fn pod(spec: Value) -> Value {
    json!({ "spec": spec })
}

/// (description, original pod spec, patch pod spec, expected pod spec)
fn pod_spec_cases() -> Vec<(&'static str, Value, Value, Value)> {
    vec![
        (
            "kubectl docs: a new container is merged in ahead of the live ones",
            json!({"containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                   "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}]}),
            json!({"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}),
            json!({"containers": [{"name": "patch-demo-ctr-2", "image": "redis"},
                                  {"name": "patch-demo-ctr", "image": "nginx"}],
                   "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}]}),
        ),
        (
            "kubectl docs: tolerations have no merge key, so the patch list replaces them",
            json!({"tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}]}),
            json!({"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}),
            json!({"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}),
        ),
        (
            "field change inside a merged element",
            json!({"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}),
            json!({"containers": [{"name": "b", "image": "y:2"}]}),
            json!({"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}]}),
        ),
        (
            "an element already present is merged, not duplicated",
            json!({"containers": [{"name": "a", "image": "x"}]}),
            json!({"containers": [{"name": "a", "image": "x"}]}),
            json!({"containers": [{"name": "a", "image": "x"}]}),
        ),
        (
            "$patch: delete removes every element with the merge key value",
            json!({"containers": [{"name": "1"}, {"name": "1"}, {"name": "2", "image": "a"},
                                  {"name": "3"}, {"name": "3"}]}),
            json!({"containers": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]}),
            json!({"containers": [{"name": "2", "image": "a"}]}),
        ),
        (
            "deleting a missing element changes nothing",
            json!({"containers": [{"name": "1"}]}),
            json!({"containers": [{"name": "9", "$patch": "delete"}]}),
            json!({"containers": [{"name": "1"}]}),
        ),
        (
            "add one element and delete another",
            json!({"containers": [{"name": "1"}, {"name": "2"}]}),
            json!({"containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}]}),
            json!({"containers": [{"name": "3"}, {"name": "2"}]}),
        ),
        (
            "$patch: replace in a list keeps exactly the other patch elements",
            json!({"containers": [{"name": "1"}, {"name": "2"}]}),
            json!({"containers": [{"name": "3", "image": "z"}, {"$patch": "replace"}]}),
            json!({"containers": [{"name": "3", "image": "z"}]}),
        ),
        (
            "$patch: replace alone empties a list",
            json!({"containers": [{"name": "1"}, {"name": "2"}]}),
            json!({"containers": [{"$patch": "replace"}]}),
            json!({"containers": []}),
        ),
        (
            "two empty merging lists stay empty",
            json!({"containers": []}),
            json!({"containers": []}),
            json!({"containers": []}),
        ),
        (
            "patch order wins for elements it names",
            json!({"containers": [{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]}),
            json!({"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"},
                                  {"name": "2", "args": ["x"]}]}),
            json!({"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"},
                                  {"name": "2", "image": "b", "args": ["x"]}]}),
        ),
        (
            "live-only elements keep their place relative to patched ones",
            json!({"containers": [{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]}),
            json!({"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}),
            json!({"containers": [{"name": "2", "image": "b"}, {"name": "3", "image": "c"},
                                  {"name": "1", "image": "a"}]}),
        ),
        (
            "a new merging list drops directive elements",
            json!({"hostname": "hi"}),
            json!({"containers": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]}),
            json!({"hostname": "hi", "containers": [{"name": "hello"}]}),
        ),
        (
            "an untagged list nested in a merged element is replaced",
            json!({"containers": [{"name": "1", "args": ["a", "b"], "image": "x"}]}),
            json!({"containers": [{"name": "1", "args": ["c"]}]}),
            json!({"containers": [{"name": "1", "args": ["c"], "image": "x"}]}),
        ),
        (
            "nested merging lists: env by name, ports by containerPort, mounts by mountPath",
            json!({"containers": [{"name": "web",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "volumeMounts": [{"mountPath": "/data", "name": "d"}],
                "volumeDevices": [{"devicePath": "/dev/x", "name": "x"}]}]}),
            json!({"containers": [{"name": "web",
                "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}],
                "ports": [{"containerPort": 443}],
                "volumeMounts": [{"mountPath": "/data", "readOnly": true}],
                "volumeDevices": [{"devicePath": "/dev/x", "$patch": "delete"}]}]}),
            json!({"containers": [{"name": "web",
                "env": [{"name": "B", "value": "3"}],
                "ports": [{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}],
                "volumeMounts": [{"mountPath": "/data", "name": "d", "readOnly": true}],
                "volumeDevices": []}]}),
        ),
        (
            "null removes a field of a merged element",
            json!({"containers": [{"name": "1", "image": "x", "command": ["sh"]}]}),
            json!({"containers": [{"name": "1", "command": null}]}),
            json!({"containers": [{"name": "1", "image": "x"}]}),
        ),
        (
            "init and ephemeral containers, image pull secrets, host aliases, gates merge by key",
            json!({"initContainers": [{"name": "i", "image": "a"}],
                   "ephemeralContainers": [{"name": "e", "image": "a"}],
                   "imagePullSecrets": [{"name": "s1"}],
                   "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["a"]}],
                   "schedulingGates": [{"name": "g1"}],
                   "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}]}),
            json!({"initContainers": [{"name": "i", "image": "b"}],
                   "ephemeralContainers": [{"name": "e2", "image": "c"}],
                   "imagePullSecrets": [{"name": "s2"}],
                   "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["b"]}],
                   "schedulingGates": [{"name": "g1", "$patch": "delete"}],
                   "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]}),
            json!({"initContainers": [{"name": "i", "image": "b"}],
                   "ephemeralContainers": [{"name": "e2", "image": "c"}, {"name": "e", "image": "a"}],
                   "imagePullSecrets": [{"name": "s2"}, {"name": "s1"}],
                   "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["b"]}],
                   "schedulingGates": [],
                   "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]}),
        ),
        (
            "volumes merge by name and honour $retainKeys to switch the volume source",
            json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "secret": {"secretName": "s"}}]}),
            json!({"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"],
                                "configMap": {"name": "c"}}]}),
            json!({"volumes": [{"name": "v", "configMap": {"name": "c"}},
                               {"name": "w", "secret": {"secretName": "s"}}]}),
        ),
        (
            "volumes without $retainKeys merge their fields",
            json!({"volumes": [{"name": "v", "emptyDir": {}}]}),
            json!({"volumes": [{"name": "v", "configMap": {"name": "c"}}]}),
            json!({"volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}]}),
        ),
        (
            "$setElementOrder reorders and ignores names absent from the list",
            json!({"containers": [{"name": "1"}, {"name": "3"}]}),
            json!({"$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                   "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}),
            json!({"containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}),
        ),
        (
            "$setElementOrder alone reorders, live-only elements keep their neighbours",
            json!({"containers": [{"name": "1", "image": "a"}, {"name": "2"}, {"name": "9"},
                                  {"name": "3"}, {"name": "4"}]}),
            json!({"$setElementOrder/containers": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}),
            json!({"containers": [{"name": "2"}, {"name": "1", "image": "a"}, {"name": "9"},
                                  {"name": "4"}, {"name": "3"}]}),
        ),
        (
            "$setElementOrder with several live-only elements in a row",
            json!({"containers": [{"name": "1"}, {"name": "2"}, {"name": "7"}, {"name": "9"},
                                  {"name": "8"}, {"name": "3"}, {"name": "4"}]}),
            json!({"$setElementOrder/containers": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}),
            json!({"containers": [{"name": "2"}, {"name": "1"}, {"name": "7"}, {"name": "9"},
                                  {"name": "8"}, {"name": "4"}, {"name": "3"}]}),
        ),
        (
            "$setElementOrder puts a patched element first when it is first in the order",
            json!({"containers": [{"name": "hello2"}]}),
            json!({"$setElementOrder/containers": [{"name": "hello"}, {"name": "doesntexist"}],
                   "containers": [{"name": "hello"}]}),
            json!({"containers": [{"name": "hello"}, {"name": "hello2"}]}),
        ),
        (
            "$setElementOrder for a list the live object lacks",
            json!({}),
            json!({"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                   "containers": [{"name": "b", "image": "y"}, {"name": "a", "image": "x"}]}),
            json!({"containers": [{"name": "b", "image": "y"}, {"name": "a", "image": "x"}]}),
        ),
        (
            "$setElementOrder with a deletion in the patch list",
            json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                   "containers": [{"name": "b", "$patch": "delete"}]}),
            json!({"containers": [{"name": "c"}, {"name": "a"}]}),
        ),
        (
            "unknown fields merge as maps and replace as lists",
            json!({"nodeSelector": {"a": "1"}, "futureList": [1, 2], "futureMap": {"x": {"y": 1}}}),
            json!({"nodeSelector": {"b": "2"}, "futureList": [3], "futureMap": {"x": {"z": 2}}}),
            json!({"nodeSelector": {"a": "1", "b": "2"}, "futureList": [3],
                   "futureMap": {"x": {"y": 1, "z": 2}}}),
        ),
        (
            "a value of another type replaces the live one",
            json!({"containers": [{"name": "a"}], "hostname": {"odd": true}}),
            json!({"containers": {"name": "b"}, "hostname": "h"}),
            json!({"containers": {"name": "b"}, "hostname": "h"}),
        ),
    ]
}

#[test]
fn pod_spec_table() {
    for (description, original, patch, expected) in pod_spec_cases() {
        let result = apply("v1", "Pod", &pod(original), &pod(patch));
        assert_eq!(result, Ok(pod(expected)), "{description}");
    }
}

/// (description, original, patch, expected) on whole Pod objects: maps, nulls, directives.
#[test]
fn map_and_directive_table() {
    let cases = [
        (
            "$patch: delete on a map empties it",
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            json!({"metadata": {"labels": {}}}),
        ),
        (
            "$patch: delete on a map the object lacks leaves it absent",
            json!({"metadata": {"name": "p"}}),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            json!({"metadata": {"name": "p"}}),
        ),
        (
            "$patch: replace on the whole object keeps only the patch",
            json!({"metadata": {"name": "p"}, "spec": {"hostname": "h"}}),
            json!({"$patch": "replace", "spec": {"hostname": "x"}}),
            json!({"spec": {"hostname": "x"}}),
        ),
        (
            "$patch: replace on a nested map",
            json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}),
            json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
            json!({"spec": {"nodeSelector": {"c": "3"}}}),
        ),
        (
            "$patch: replace on a map the object lacks still sets it",
            json!({"spec": {}}),
            json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
            json!({"spec": {"nodeSelector": {"c": "3"}}}),
        ),
        (
            "$patch: merge is the default merge",
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        ),
        (
            "null deletes a field and is dropped where nothing is to delete",
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"a": null, "zz": null},
                   "annotations": {"k": "v", "gone": null}}}),
            json!({"metadata": {"labels": {"b": "2"}, "annotations": {"k": "v"}}}),
        ),
        (
            "ownerReferences merge by uid",
            json!({"metadata": {"ownerReferences": [{"uid": "1", "kind": "ReplicaSet", "name": "a"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true},
                                                    {"uid": "2", "kind": "Node", "name": "n"}]}}),
            json!({"metadata": {"ownerReferences": [
                {"uid": "1", "kind": "ReplicaSet", "name": "a", "controller": true},
                {"uid": "2", "kind": "Node", "name": "n"}]}}),
        ),
        (
            "pod status conditions merge by type",
            json!({"status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}}),
            json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                   "podIPs": [{"ip": "127.0.0.5"}]}}),
            json!({"status": {"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                "podIPs": [{"ip": "127.0.0.5"}]}}),
        ),
        (
            "container statuses are untagged and replaced",
            json!({"status": {"containerStatuses": [{"name": "a", "ready": false}, {"name": "b"}]}}),
            json!({"status": {"containerStatuses": [{"name": "a", "ready": true}]}}),
            json!({"status": {"containerStatuses": [{"name": "a", "ready": true}]}}),
        ),
    ];
    for (description, original, patch, expected) in cases {
        assert_eq!(
            apply("v1", "Pod", &original, &patch),
            Ok(expected),
            "{description}"
        );
    }
}

/// Primitive lists: `metadata.finalizers` (tagged merge) and container `args` (untagged).
#[test]
fn primitive_list_table() {
    let meta = |finalizers: Value| json!({"metadata": {"finalizers": finalizers}});
    let cases = [
        (
            "union without duplicates",
            json!(["a", "b"]),
            json!({"finalizers": ["b", "c"]}),
            json!(["a", "b", "c"]),
        ),
        (
            "patch order wins",
            json!(["1", "2", "3"]),
            json!({"finalizers": ["3", "1", "2"]}),
            json!(["3", "1", "2"]),
        ),
        (
            "live-only items stay in place",
            json!(["1", "2", "3"]),
            json!({"finalizers": ["3", "1"]}),
            json!(["2", "3", "1"]),
        ),
        (
            "numbers compare by value",
            json!([1, 2]),
            json!({"finalizers": [2.0, 3]}),
            json!([1, 2, 3]),
        ),
        (
            "$deleteFromPrimitiveList removes items",
            json!(["1", "2", "3"]),
            json!({"$deleteFromPrimitiveList/finalizers": ["2"]}),
            json!(["1", "3"]),
        ),
        (
            "$deleteFromPrimitiveList removes duplicates too",
            json!(["1", "2", "3", "3"]),
            json!({"$deleteFromPrimitiveList/finalizers": ["3"]}),
            json!(["1", "2"]),
        ),
        (
            "$deleteFromPrimitiveList of a missing item adds nothing",
            json!(["1", "2"]),
            json!({"$deleteFromPrimitiveList/finalizers": ["3"]}),
            json!(["1", "2"]),
        ),
        (
            "$setElementOrder plus deletion, live-only items kept",
            json!(["1", "2", "3", "4"]),
            json!({"$setElementOrder/finalizers": ["1", "2"], "$deleteFromPrimitiveList/finalizers": ["3"]}),
            json!(["1", "2", "4"]),
        ),
        (
            "$setElementOrder with addition and deletion",
            json!(["1", "2", "3"]),
            json!({"$setElementOrder/finalizers": ["1", "2", "4"],
                   "$deleteFromPrimitiveList/finalizers": ["3"], "finalizers": ["4"]}),
            json!(["1", "2", "4"]),
        ),
        (
            "$setElementOrder ignores items absent from the list",
            json!(["1", "3"]),
            json!({"$setElementOrder/finalizers": ["3", "2", "1"]}),
            json!(["3", "1"]),
        ),
        (
            "SMP design doc: reorder finalizers",
            json!(["a", "b", "c"]),
            json!({"$setElementOrder/finalizers": ["b", "c", "a"]}),
            json!(["b", "c", "a"]),
        ),
        (
            "adding and deleting the same item ends without it",
            json!(["a"]),
            json!({"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["b"]}),
            json!(["a"]),
        ),
    ];
    for (description, live, patch, expected) in cases {
        let result = apply(
            "v1",
            "ConfigMap",
            &meta(live),
            &json!({ "metadata": patch }),
        );
        assert_eq!(result, Ok(meta(expected)), "{description}");
    }

    let edge_cases = [
        (
            "$deleteFromPrimitiveList on a null list leaves it null",
            json!({"metadata": {"finalizers": null}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": null}}),
        ),
        (
            "$deleteFromPrimitiveList on an absent list adds nothing",
            json!({"metadata": {"name": "x"}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            json!({"metadata": {"name": "x"}}),
        ),
        (
            "$deleteFromPrimitiveList works on untagged lists too",
            json!({"spec": {"containers": [{"name": "c", "args": ["1", "2", "3"]}]}}),
            json!({"spec": {"containers": [{"name": "c", "$deleteFromPrimitiveList/args": ["2"]}]}}),
            json!({"spec": {"containers": [{"name": "c", "args": ["1", "3"]}]}}),
        ),
        (
            "untagged primitive lists are replaced",
            json!({"spec": {"containers": [{"name": "c", "args": ["1", "2"]}]}}),
            json!({"spec": {"containers": [{"name": "c", "args": ["2", "3"]}]}}),
            json!({"spec": {"containers": [{"name": "c", "args": ["2", "3"]}]}}),
        ),
        (
            "node podCIDRs merge as a set",
            json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
            json!({"spec": {"podCIDRs": ["10.0.1.0/24"]}}),
            json!({"spec": {"podCIDRs": ["10.0.1.0/24", "10.0.0.0/24"]}}),
        ),
    ];
    for (description, original, patch, expected) in edge_cases {
        let kind = if description.starts_with("node") {
            "Node"
        } else {
            "Pod"
        };
        assert_eq!(
            apply("v1", kind, &original, &patch),
            Ok(expected),
            "{description}"
        );
    }
}

/// `$retainKeys` on Deployment `spec.strategy` (tagged retainKeys) and plain maps.
#[test]
fn retain_keys_table() {
    let deployment = |strategy: Value| json!({"spec": {"replicas": 1, "strategy": strategy}});
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let cases = [
        (
            "without the directive the map merges",
            json!({"rollingUpdate": {"maxSurge": 2}}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}),
        ),
        (
            "switching to Recreate clears rollingUpdate",
            json!({"$retainKeys": ["type"], "type": "Recreate"}),
            json!({"type": "Recreate"}),
        ),
        (
            "retained nested maps still merge",
            json!({"$retainKeys": ["rollingUpdate", "type"], "rollingUpdate": {"maxSurge": 3}}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}}),
        ),
        (
            "a null field need not be listed",
            json!({"$retainKeys": ["type"], "rollingUpdate": null}),
            json!({"type": "RollingUpdate"}),
        ),
        (
            "an empty patch map changes nothing",
            json!({}),
            rolling.clone(),
        ),
        (
            "an empty list clears everything",
            json!({"$retainKeys": []}),
            json!({}),
        ),
    ];
    for (description, patch, expected) in cases {
        let result = apply(
            "apps/v1",
            "Deployment",
            &deployment(rolling.clone()),
            &json!({"spec": {"strategy": patch}}),
        );
        assert_eq!(result, Ok(deployment(expected)), "{description}");
    }
}

/// Patches the kubectl commands in research/kubectl-wire-protocol.md send.
#[test]
fn kubectl_patches() {
    let live = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "x", "image": "nginx:1.26",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "terminationMessagePath": "/dev/termination-log"}]}}},
        "status": {"conditions": [{"type": "Available", "status": "True"}]}
    });

    // kubectl apply (client side) after editing replicas and the image.
    let apply_patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 2, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "x"}],
            "containers": [{"image": "nginx:1.27", "name": "x", "ports": [{"containerPort": 80}]}]}}}
    });
    let result = strategic_merge_for("apps/v1", "Deployment", &live, &apply_patch).unwrap();
    assert_eq!(result["spec"]["replicas"], 2);
    assert_eq!(
        result["spec"]["template"]["spec"]["containers"],
        json!([{"name": "x", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "terminationMessagePath": "/dev/termination-log"}])
    );
    assert_eq!(
        result["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(result["status"], live["status"]);

    // kubectl set image / rollout restart.
    let set_image = json!({"spec": {"template": {
        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}},
        "spec": {"containers": [{"name": "x", "image": "nginx:1.28"}]}}}});
    let result = strategic_merge_for("apps/v1", "Deployment", &live, &set_image).unwrap();
    let template = &result["spec"]["template"];
    assert_eq!(template["spec"]["containers"][0]["image"], "nginx:1.28");
    assert_eq!(
        template["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
    assert_eq!(template["metadata"]["labels"]["app"], "x");
    assert_eq!(
        template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2025-01-01T00:00:00Z"
    );

    // kubectl cordon.
    let node = json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.0.0/24"},
                      "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                 "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}});
    let result = strategic_merge_for(
        "v1",
        "Node",
        &node,
        &json!({"spec": {"unschedulable": true}}),
    )
    .unwrap();
    assert_eq!(
        result["spec"],
        json!({"podCIDR": "10.0.0.0/24", "unschedulable": true})
    );

    // A node agent status heartbeat.
    let heartbeat = json!({"status": {
        "$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
        "conditions": [{"type": "MemoryPressure", "status": "False"},
                       {"type": "Ready", "status": "True", "lastHeartbeatTime": "t2"}],
        "addresses": [{"type": "Hostname", "address": "n1"}]}});
    let result = strategic_merge_for("v1", "Node", &node, &heartbeat).unwrap();
    assert_eq!(
        result["status"],
        json!({"conditions": [{"type": "MemoryPressure", "status": "False"},
                              {"type": "Ready", "status": "True", "lastHeartbeatTime": "t2"}],
               "addresses": [{"type": "Hostname", "address": "n1"},
                             {"type": "InternalIP", "address": "127.0.0.1"}]})
    );

    // The python client patches scale with SMP.
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 1}});
    let result = strategic_merge_for(
        "autoscaling/v1",
        "Scale",
        &scale,
        &json!({"spec": {"replicas": 4}}),
    )
    .unwrap();
    assert_eq!(result["spec"]["replicas"], 4);

    // Service ports merge by port.
    let service =
        json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "x"}}});
    let result = strategic_merge_for(
        "v1",
        "Service",
        &service,
        &json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}}),
    )
    .unwrap();
    assert_eq!(
        result["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443}])
    );
}

#[test]
fn error_table() {
    let s = str::to_owned;
    let live = json!({"spec": {"containers": [{"name": "1"}, {"name": "3"}, {"name": "2"}]},
                      "metadata": {"finalizers": ["1", "3", "2"]}});
    let cases = [
        (
            json!({"spec": {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                   "containers": [{"name": "3"}, {"name": "1"}]}}),
            StrategicMergeError::InvalidSetElementOrder {
                list: s("containers"),
                reason: s("the order of the patch list doesn't match $setElementOrder"),
            },
        ),
        (
            json!({"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3", "1"]}}),
            StrategicMergeError::InvalidSetElementOrder {
                list: s("finalizers"),
                reason: s("the order of the patch list doesn't match $setElementOrder"),
            },
        ),
        (
            json!({"spec": {"$setElementOrder/containers": "x"}}),
            StrategicMergeError::InvalidSetElementOrder {
                list: s("containers"),
                reason: s("the directive is not a list"),
            },
        ),
        (
            json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}}),
            StrategicMergeError::InvalidSetElementOrder {
                list: s("containers"),
                reason: s("an element lacks the merge key"),
            },
        ),
        (
            json!({"spec": {"containers": [{"image": "b"}]}}),
            StrategicMergeError::MissingMergeKey {
                list: s("containers"),
                key: "name",
            },
        ),
        (
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            StrategicMergeError::MissingMergeKey {
                list: s("containers"),
                key: "name",
            },
        ),
        (
            json!({"spec": {"containers": [{"name": "1", "$patch": "frobnicate"}]}}),
            StrategicMergeError::UnknownDirective(s("\"frobnicate\"")),
        ),
        (
            json!({"$patch": 7}),
            StrategicMergeError::UnknownDirective(s("7")),
        ),
        (
            json!({"spec": {"containers": ["x"]}}),
            StrategicMergeError::MixedElementTypes(s("containers")),
        ),
        (
            json!({"metadata": {"finalizers": [["x"]]}}),
            StrategicMergeError::ListOfLists(s("finalizers")),
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [{"a": 1}]}}),
            StrategicMergeError::MixedElementTypes(s("finalizers")),
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["1"]}}),
            StrategicMergeError::InvalidDirectiveKey(s("$deleteFromPrimitiveListfinalizers")),
        ),
        (
            json!({"metadata": {"$setElementOrder": ["1"]}}),
            StrategicMergeError::InvalidDirectiveKey(s("$setElementOrder")),
        ),
        (
            json!({"spec": {"$retainKeys": "hostname"}}),
            StrategicMergeError::InvalidRetainKeys(s("$retainKeys is not a list")),
        ),
        (
            json!({"spec": {"$retainKeys": ["hostname"], "subdomain": "x"}}),
            StrategicMergeError::InvalidRetainKeys(s(
                "the patch sets \"subdomain\", which $retainKeys does not list",
            )),
        ),
    ];
    for (patch, expected) in cases {
        let err = apply("v1", "Pod", &live, &patch).unwrap_err();
        assert_eq!(err, expected, "{patch}");
        assert!(matches!(err.http_status(), 400 | 422), "{err}");
    }

    let err = apply(
        "v1",
        "Pod",
        &json!({"spec": {"hostname": "h"}}),
        &json!({"spec": {"$setElementOrder/hostname": []}}),
    )
    .unwrap_err();
    assert_eq!(err, StrategicMergeError::NotAList(s("hostname")));

    let err = apply(
        "v1",
        "Pod",
        &json!({"metadata": {"ownerReferences": [{"name": "x"}]}}),
        &json!({"metadata": {"ownerReferences": [{"uid": "1"}]}}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        StrategicMergeError::MissingMergeKey {
            list: s("ownerReferences"),
            key: "uid"
        }
    );

    // An order directive for a list the object lacks and the patch omits changes nothing.
    let live = json!({"spec": {"hostname": "h"}});
    assert_eq!(
        apply(
            "v1",
            "Pod",
            &live,
            &json!({"spec": {"$setElementOrder/containers": []}})
        ),
        Ok(live)
    );
}

#[test]
fn documents_must_be_objects_and_kinds_supported() {
    let schema = schema_for("v1", "Pod").unwrap();
    assert_eq!(
        strategic_merge(&json!([]), &json!({}), schema),
        Err(StrategicMergeError::NotAnObject("original object"))
    );
    assert_eq!(
        strategic_merge(&json!({}), &json!(null), schema),
        Err(StrategicMergeError::NotAnObject("patch"))
    );

    let err = strategic_merge_for("example.com/v1", "Widget", &json!({}), &json!({})).unwrap_err();
    assert_eq!(
        err,
        StrategicMergeError::Unsupported {
            api_version: "example.com/v1".to_owned(),
            kind: "Widget".to_owned()
        }
    );
    assert_eq!(err.http_status(), 415);
    assert_eq!(
        err.to_string(),
        "strategic merge patch is not supported for Widget (example.com/v1)"
    );
    assert_eq!(StrategicMergeError::NotAnObject("patch").http_status(), 400);
}

#[test]
fn refuses_patches_nested_beyond_the_limit() {
    let mut patch = json!("leaf");
    for _ in 0..=MAX_DEPTH {
        patch = json!({ "a": patch });
    }
    assert_eq!(
        apply("v1", "Pod", &json!({}), &patch),
        Err(StrategicMergeError::TooDeep)
    );

    let mut list_patch = json!("leaf");
    for _ in 0..MAX_DEPTH {
        list_patch = json!([list_patch]);
    }
    let result = apply("v1", "Pod", &json!({}), &json!({ "x": list_patch }));
    assert_eq!(result, Err(StrategicMergeError::TooDeep));
    assert_eq!(StrategicMergeError::TooDeep.http_status(), 422);
}

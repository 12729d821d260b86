//! Pod rows: the STATUS reason, READY and RESTARTS logic, re-expressed from upstream's
//! printers tests as v1 JSON pods, plus realistic kubelet-written pods.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use slipway_tables::row_cells;

/// 2024-05-01T12:00:00Z; the timestamps below are written relative to it.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_714_564_800)
}

fn cells(pod: &Value) -> Vec<Value> {
    row_cells("", "Pod", pod, now())
}

/// A pod with `containers` unnamed containers and the given status.
fn pod(name: &str, containers: usize, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": vec![json!({"name": "", "image": ""}); containers]},
        "status": status,
    })
}

fn running(ready: bool, restarts: i64) -> Value {
    json!({"ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": "2024-05-01T11:00:00Z"}}})
}

fn restarted(ready: bool, restarts: i64, finished_at: &str) -> Value {
    json!({
        "ready": ready, "restartCount": restarts,
        "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": finished_at}},
    })
}

#[test]
fn status_ready_and_restarts() {
    let cases: Vec<(&str, Value, [&str; 4])> = vec![
        (
            "phase shows when no container says otherwise",
            pod(
                "test1",
                2,
                json!({"phase": "podPhase", "containerStatuses": [running(true, 3), {"restartCount": 3}]}),
            ),
            ["test1", "1/2", "podPhase", "6"],
        ),
        (
            "a waiting reason overrides the phase",
            pod(
                "test2",
                2,
                json!({"phase": "podPhase", "containerStatuses": [
                    running(true, 3),
                    {"restartCount": 3, "state": {"waiting": {"reason": "ContainerWaitingReason"}}},
                ]}),
            ),
            ["test2", "1/2", "ContainerWaitingReason", "6"],
        ),
        (
            "the first container's state wins over later ones",
            pod(
                "test3",
                2,
                json!({"phase": "podPhase", "containerStatuses": [
                    {"restartCount": 3, "state": {"waiting": {"reason": "ContainerWaitingReason"}}},
                    {"restartCount": 3, "state": {"terminated": {"reason": "ContainerTerminatedReason", "exitCode": 0}}},
                ]}),
            ),
            ["test3", "0/2", "ContainerWaitingReason", "6"],
        ),
        (
            "ready without running is not counted",
            pod(
                "test4",
                2,
                json!({"phase": "podPhase", "containerStatuses": [running(true, 3), {"ready": true, "restartCount": 3}]}),
            ),
            ["test4", "1/2", "podPhase", "6"],
        ),
        (
            "the pod's reason replaces its phase",
            pod(
                "test5",
                2,
                json!({"reason": "podReason", "phase": "podPhase", "containerStatuses": [
                    running(true, 3), {"ready": true, "restartCount": 3},
                ]}),
            ),
            ["test5", "1/2", "podReason", "6"],
        ),
        (
            "completed beside running, without a Ready condition",
            pod(
                "test6",
                2,
                json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                    running(true, 3),
                ]}),
            ),
            ["test6", "1/2", "NotReady", "6"],
        ),
        (
            "completed beside running, with a Ready condition",
            pod(
                "test6",
                2,
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                    running(true, 3),
                ]}),
            ),
            ["test6", "1/2", "Running", "6"],
        ),
        (
            "a container that restarted five days ago",
            pod(
                "test12",
                1,
                json!({"phase": "Running", "containerStatuses": [restarted(true, 3, "2024-04-26T12:00:00Z")]}),
            ),
            ["test12", "1/1", "Running", "3 (5d ago)"],
        ),
        (
            "the most recent restart of any container is shown",
            pod(
                "test14",
                2,
                json!({"phase": "Running", "containerStatuses": [
                    restarted(true, 6, "2024-04-26T12:00:00Z"),
                    restarted(true, 3, "2024-04-11T12:00:00Z"),
                ]}),
            ),
            ["test14", "2/2", "Running", "9 (5d ago)"],
        ),
        (
            "a container that never restarted beside one restarted ten days ago",
            pod(
                "test13",
                2,
                json!({"phase": "Running", "containerStatuses": [
                    running(true, 0), restarted(true, 3, "2024-04-21T12:00:00Z"),
                ]}),
            ),
            ["test13", "2/2", "Running", "3 (10d ago)"],
        ),
        (
            "restarts without a recorded finish time have no suffix",
            pod(
                "plain",
                1,
                json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 2, "state": {"running": {}}, "lastState": {}},
                ]}),
            ),
            ["plain", "1/1", "Running", "2"],
        ),
        (
            "scheduling gates",
            pod(
                "test15",
                2,
                json!({"phase": "podPhase", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
                ]}),
            ),
            ["test15", "0/2", "SchedulingGated", "0"],
        ),
        (
            "a succeeded pod",
            pod(
                "test16",
                1,
                json!({"phase": "Succeeded", "containerStatuses": [
                    {"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                ]}),
            ),
            ["test16", "0/1", "Completed", "0"],
        ),
        (
            "a failed pod",
            pod(
                "test17",
                1,
                json!({"phase": "Failed", "containerStatuses": [
                    {"ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Error", "exitCode": 1}}},
                ]}),
            ),
            ["test17", "0/1", "Error", "0"],
        ),
        (
            "a terminated container without a reason shows its signal",
            pod(
                "signal",
                1,
                json!({"phase": "Running", "containerStatuses": [
                    {"state": {"terminated": {"exitCode": 137, "signal": 9}}},
                ]}),
            ),
            ["signal", "0/1", "Signal:9", "0"],
        ),
        (
            "a terminated container without reason or signal shows its exit code",
            pod(
                "exit",
                1,
                json!({"phase": "Running", "containerStatuses": [
                    {"state": {"terminated": {"exitCode": 2}}},
                ]}),
            ),
            ["exit", "0/1", "ExitCode:2", "0"],
        ),
        (
            "a pod with no status at all",
            json!({"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
            ["bare", "0/1", "", "0"],
        ),
    ];
    for (what, pod, want) in cases {
        let got = cells(&pod);
        let want: Vec<Value> = want.iter().map(|s| json!(s)).collect();
        assert_eq!(got[..4], want[..], "{what}");
    }
}

#[test]
fn init_containers() {
    let with_init = |name: &str, inits: usize, status: Value| {
        let mut p = pod(name, 1, status);
        p["spec"]["initContainers"] = json!(vec![json!({"name": ""}); inits]);
        p
    };
    let restarting_init = json!({
        "ready": false, "restartCount": 3, "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:59:50Z"}},
    });
    let not_running = json!({"ready": false, "restartCount": 0, "state": {"waiting": {}}});
    let cases: Vec<(&str, Value, [&str; 4])> = vec![
        (
            "one init container restarting",
            with_init(
                "test7",
                1,
                json!({"phase": "podPhase",
                "initContainerStatuses": [restarting_init.clone()],
                "containerStatuses": [not_running.clone()]}),
            ),
            ["test7", "0/1", "Init:0/1", "3 (10s ago)"],
        ),
        (
            "the first of two init containers restarting",
            with_init(
                "test8",
                2,
                json!({"phase": "podPhase",
                "initContainerStatuses": [restarting_init.clone(), {"ready": false, "state": {"waiting": {}}}],
                "containerStatuses": [not_running.clone()]}),
            ),
            ["test8", "0/1", "Init:0/2", "3 (10s ago)"],
        ),
        (
            "the second init container restarting after the first completed",
            with_init(
                "test9",
                2,
                json!({"phase": "podPhase",
                "initContainerStatuses": [{"ready": false, "state": {"terminated": {}}}, restarting_init.clone()],
                "containerStatuses": [not_running.clone()]}),
            ),
            ["test9", "0/1", "Init:1/2", "3 (10s ago)"],
        ),
        (
            "restarts of completed init containers still count",
            with_init(
                "test10",
                2,
                json!({"phase": "podPhase",
                "initContainerStatuses": [
                    {"ready": false, "restartCount": 2, "state": {"terminated": {"exitCode": 0}},
                     "lastState": {"terminated": {"finishedAt": "2024-05-01T11:58:00Z"}}},
                    restarting_init.clone(),
                ],
                "containerStatuses": [not_running.clone()]}),
            ),
            ["test10", "0/1", "Init:1/2", "5 (10s ago)"],
        ),
        (
            "once initialised only app container restarts count",
            with_init(
                "test11",
                1,
                json!({"phase": "Running",
                "initContainerStatuses": [
                    {"ready": false, "restartCount": 2, "state": {"terminated": {"exitCode": 0}},
                     "lastState": {"terminated": {"finishedAt": "2024-05-01T11:58:00Z"}}},
                ],
                "containerStatuses": [{"ready": false, "restartCount": 4, "state": {"running": {}},
                    "lastState": {"terminated": {"finishedAt": "2024-05-01T11:59:40Z"}}}]}),
            ),
            ["test11", "0/1", "Running", "4 (20s ago)"],
        ),
        (
            "an init container crash-looping",
            with_init(
                "crashy-init",
                1,
                json!({"phase": "Pending",
                "initContainerStatuses": [{"restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-05-01T11:59:00Z"}}}],
                "containerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}),
            ),
            ["crashy-init", "0/1", "Init:CrashLoopBackOff", "4 (60s ago)"],
        ),
        (
            "PodInitializing is not an init reason",
            with_init(
                "init-wait",
                1,
                json!({"phase": "Pending",
                "initContainerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}),
            ),
            ["init-wait", "0/1", "Init:0/1", "0"],
        ),
        (
            "an init container failed with a reason",
            with_init(
                "init-error",
                1,
                json!({"phase": "Pending",
                "initContainerStatuses": [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
            ),
            ["init-error", "0/1", "Init:Error", "0"],
        ),
        (
            "an init container failed without a reason",
            with_init(
                "init-exit",
                1,
                json!({"phase": "Pending",
                "initContainerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]}),
            ),
            ["init-exit", "0/1", "Init:ExitCode:3", "0"],
        ),
        (
            "an init container killed by a signal",
            with_init(
                "init-signal",
                1,
                json!({"phase": "Pending",
                "initContainerStatuses": [{"state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            ),
            ["init-signal", "0/1", "Init:Signal:9", "0"],
        ),
    ];
    for (what, pod, want) in cases {
        let got = cells(&pod);
        let want: Vec<Value> = want.iter().map(|s| json!(s)).collect();
        assert_eq!(got[..4], want[..], "{what}");
    }
}

#[test]
fn sidecar_init_containers() {
    let sidecar_pod = |name: &str, status: Value| {
        json!({
            "metadata": {"name": name},
            "spec": {
                "initContainers": [
                    {"name": "restartable-init-1", "image": "envoy", "restartPolicy": "Always"},
                    {"name": "restartable-init-2", "image": "fluentbit", "restartPolicy": "Always"},
                ],
                "containers": [{"name": "app", "image": "shop"}],
            },
            "status": status,
        })
    };
    let first_restarting = |started: bool| {
        json!({
            "name": "restartable-init-1", "ready": false, "restartCount": 3, "started": started,
            "state": {"running": {}},
            "lastState": {"terminated": {"finishedAt": "2024-05-01T11:59:50Z"}},
        })
    };
    let cases: Vec<(&str, Value, [&str; 4])> = vec![
        (
            "first sidecar running but not started",
            sidecar_pod(
                "test1",
                json!({"phase": "Pending",
                "conditions": [{"type": "Initialized", "status": "False"}],
                "initContainerStatuses": [first_restarting(false),
                    {"name": "restartable-init-2", "ready": false, "started": false, "state": {"waiting": {}}}],
                "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"waiting": {}}}]}),
            ),
            ["test1", "0/3", "Init:0/2", "3 (10s ago)"],
        ),
        (
            "first sidecar started, second not yet",
            sidecar_pod(
                "test1",
                json!({"phase": "Pending",
                "conditions": [{"type": "Initialized", "status": "False"}],
                "initContainerStatuses": [first_restarting(true),
                    {"name": "restartable-init-2", "ready": false, "started": false, "state": {"running": {}}}],
                "containerStatuses": [{"ready": false, "restartCount": 0, "state": {"waiting": {}}}]}),
            ),
            ["test1", "0/3", "Init:1/2", "3 (10s ago)"],
        ),
        (
            "both sidecars started and the app running",
            sidecar_pod(
                "test2",
                json!({"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [first_restarting(true),
                    {"name": "restartable-init-2", "ready": false, "started": true, "state": {"running": {}}}],
                "containerStatuses": [{"ready": true, "restartCount": 4, "state": {"running": {}},
                    "lastState": {"terminated": {"finishedAt": "2024-05-01T11:59:40Z"}}}]}),
            ),
            ["test2", "1/3", "Running", "7 (10s ago)"],
        ),
        (
            "sidecars killed after the app completed",
            sidecar_pod(
                "test3",
                json!({"phase": "Succeeded",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "restartable-init-1", "restartCount": 3, "started": false,
                     "state": {"terminated": {"reason": "Error", "exitCode": 137}},
                     "lastState": {"terminated": {"finishedAt": "2024-05-01T11:59:50Z"}}},
                    {"name": "restartable-init-2", "started": false,
                     "state": {"terminated": {"reason": "Error", "exitCode": 137}}},
                ],
                "containerStatuses": [{"restartCount": 4, "state": {"terminated": {"reason": "Completed", "exitCode": 0}},
                    "lastState": {"terminated": {"finishedAt": "2024-05-01T11:59:40Z"}}}]}),
            ),
            ["test3", "0/3", "Completed", "7 (10s ago)"],
        ),
        (
            "statuses naming containers the spec does not have",
            json!({"metadata": {"name": "test4"},
                "spec": {
                    "initContainers": [{"name": "init1", "image": "initimage"},
                        {"name": "sidecar1", "image": "sidecarimage", "restartPolicy": "Always"}],
                    "containers": [{"name": "container1", "image": "containerimage"}],
                },
                "status": {"phase": "Running",
                    "initContainerStatuses": [{"name": "initinvalid"}, {"name": "init1"}, {"name": "sidecar1"}],
                    "containerStatuses": [{"name": "containerinvalid"}, {"name": "container1"}]}}),
            ["test4", "0/2", "Init:0/2", "0"],
        ),
    ];
    for (what, pod, want) in cases {
        let got = cells(&pod);
        let want: Vec<Value> = want.iter().map(|s| json!(s)).collect();
        assert_eq!(got[..4], want[..], "{what}");
    }
}

#[test]
fn deletion() {
    let deleted = |name: &str, status: Value| {
        let mut p = pod(name, 1, status);
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:50Z");
        p
    };
    let cases = [
        (
            deleted(
                "test18",
                json!({"phase": "Succeeded", "containerStatuses": [
            {"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}),
            ),
            "Completed",
        ),
        (
            deleted(
                "test19",
                json!({"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}),
            ),
            "Terminating",
        ),
        (
            deleted("test20", json!({"phase": "Pending"})),
            "Terminating",
        ),
        (
            deleted("lost", json!({"phase": "Running", "reason": "NodeLost"})),
            "Unknown",
        ),
        (
            deleted(
                "failed",
                json!({"phase": "Failed", "containerStatuses": [
            {"state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}),
            ),
            "Error",
        ),
    ];
    for (pod, want) in cases {
        assert_eq!(cells(&pod)[2], json!(want), "{pod}");
    }
    let mut not_deleted = pod("nil", 1, json!({"phase": "Running"}));
    not_deleted["metadata"]["deletionTimestamp"] = Value::Null;
    assert_eq!(cells(&not_deleted)[2], json!("Running"));
}

#[test]
fn wide_cells() {
    let gated = json!({
        "metadata": {"name": "test1", "creationTimestamp": "2024-05-01T11:55:00Z"},
        "spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "nodeName": "test1",
            "readinessGates": [{"conditionType": "condition1"}, {"conditionType": "condition2"}, {"conditionType": "condition3"}],
        },
        "status": {
            "phase": "podPhase",
            "podIPs": [{"ip": "1.1.1.1"}, {"ip": "2001:db8::"}],
            "nominatedNodeName": "node1",
            "conditions": [{"type": "condition1", "status": "False"}, {"type": "condition2", "status": "True"}],
            "containerStatuses": [running(true, 3), {"restartCount": 3}],
        },
    });
    assert_eq!(
        cells(&gated),
        json!([
            "test1", "1/2", "podPhase", "6", "5m", "1.1.1.1", "test1", "node1", "1/3"
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()
    );

    let unscheduled = pod("test2", 2, json!({"phase": "Pending"}));
    assert_eq!(
        cells(&unscheduled)[4..],
        json!(["<unknown>", "<none>", "<none>", "<none>", "<none>"])
            .as_array()
            .cloned()
            .unwrap_or_default()[..]
    );

    let mut legacy_ip = pod(
        "test3",
        1,
        json!({"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.6"}]}),
    );
    legacy_ip["spec"]["nodeName"] = json!("node-a");
    assert_eq!(
        cells(&legacy_ip)[5..7],
        [json!("10.0.0.5"), json!("node-a")]
    );
}

#[test]
fn kubelet_written_pods() {
    let crash_looping = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-7d4b9c-x2x9p", "namespace": "pr-shop-42", "uid": "3f0c0c1e-1111-4a4a-9d9d-000000000001",
            "creationTimestamp": "2024-05-01T10:30:00Z", "labels": {"app": "web", "pod-template-hash": "7d4b9c"}},
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "web", "image": "registry.local/shop/web:1.4.2"},
            {"name": "proxy", "image": "registry.local/envoy:1.30"}]},
        "status": {
            "phase": "Running", "podIP": "127.100.3.7", "podIPs": [{"ip": "127.100.3.7"}],
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 5, "image": "registry.local/shop/web:1.4.2",
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2024-05-01T11:54:50Z", "finishedAt": "2024-05-01T11:55:00Z"}}},
                {"name": "proxy", "ready": true, "restartCount": 0, "started": true,
                 "state": {"running": {"startedAt": "2024-05-01T10:30:05Z"}}}]},
    });
    assert_eq!(
        cells(&crash_looping),
        json!([
            "web-7d4b9c-x2x9p",
            "1/2",
            "CrashLoopBackOff",
            "5 (5m ago)",
            "90m",
            "127.100.3.7",
            "node-1",
            "<none>",
            "<none>"
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()
    );

    let creating = json!({
        "metadata": {"name": "db-0", "creationTimestamp": "2024-05-01T11:59:57Z"},
        "spec": {"nodeName": "node-2", "containers": [{"name": "postgres", "image": "postgres:16"}]},
        "status": {"phase": "Pending", "containerStatuses": [
            {"name": "postgres", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]},
    });
    assert_eq!(
        cells(&creating)[..5],
        [
            json!("db-0"),
            json!("0/1"),
            json!("ContainerCreating"),
            json!("0"),
            json!("3s")
        ]
    );

    let oom = json!({
        "metadata": {"name": "worker", "creationTimestamp": "2024-04-29T09:00:00Z"},
        "spec": {"containers": [{"name": "worker", "image": "worker:2"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "worker", "ready": false, "restartCount": 12,
             "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2024-05-01T11:59:59Z"}},
             "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2024-05-01T11:40:00Z"}}}]},
    });
    assert_eq!(
        cells(&oom)[..5],
        [
            json!("worker"),
            json!("0/1"),
            json!("OOMKilled"),
            json!("12 (20m ago)"),
            json!("2d3h")
        ]
    );
}

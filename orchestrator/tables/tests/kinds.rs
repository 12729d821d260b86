//! Rows of every kind other than Pod, table-driven over realistic v1 objects: the cells,
//! and the header row kubectl would print (with and without `-o wide`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use slipway_tables::{column_definitions, row_cells};

/// 2024-05-01T12:00:00Z; the timestamps below are written relative to it.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_714_564_800)
}

/// The headers as kubectl prints them: upper-cased, priority-1 columns only when wide.
fn headers(group: &str, kind: &str, wide: bool) -> Vec<String> {
    column_definitions(group, kind)
        .iter()
        .filter(|c| wide || c.priority == 0)
        .map(|c| c.name.to_uppercase())
        .collect()
}

struct Case {
    what: &'static str,
    group: &'static str,
    kind: &'static str,
    object: Value,
    cells: Value,
}

fn check(cases: Vec<Case>) {
    for case in cases {
        let got = row_cells(case.group, case.kind, &case.object, now());
        assert_eq!(Value::Array(got), case.cells, "{}", case.what);
    }
}

#[test]
fn headers_match_kubectl() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "",
            "Pod",
            "NAME READY STATUS RESTARTS AGE",
            "IP NODE NOMINATED NODE READINESS GATES",
        ),
        (
            "apps",
            "Deployment",
            "NAME READY UP-TO-DATE AVAILABLE AGE",
            "CONTAINERS IMAGES SELECTOR",
        ),
        (
            "apps",
            "ReplicaSet",
            "NAME DESIRED CURRENT READY AGE",
            "CONTAINERS IMAGES SELECTOR",
        ),
        (
            "",
            "Service",
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
            "SELECTOR",
        ),
        ("", "Endpoints", "NAME ENDPOINTS AGE", ""),
        ("", "Namespace", "NAME STATUS AGE", ""),
        (
            "",
            "Node",
            "NAME STATUS ROLES AGE VERSION",
            "INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME",
        ),
        (
            "",
            "Event",
            "LAST SEEN TYPE REASON OBJECT MESSAGE",
            "SUBOBJECT SOURCE FIRST SEEN COUNT NAME",
        ),
        ("", "ConfigMap", "NAME DATA AGE", ""),
        ("", "Secret", "NAME TYPE DATA AGE", ""),
        ("", "ServiceAccount", "NAME SECRETS AGE", ""),
        ("", "ResourceQuota", "NAME AGE REQUEST LIMIT", ""),
        ("coordination.k8s.io", "Lease", "NAME HOLDER AGE", ""),
        (
            "networking.k8s.io",
            "Ingress",
            "NAME CLASS HOSTS ADDRESS PORTS AGE",
            "",
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            "NAME ROLE AGE",
            "USERS GROUPS SERVICEACCOUNTS",
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "NAME ROLE AGE",
            "USERS GROUPS SERVICEACCOUNTS",
        ),
        ("rbac.authorization.k8s.io", "Role", "NAME CREATED AT", ""),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "NAME CREATED AT",
            "",
        ),
        ("", "LimitRange", "NAME CREATED AT", ""),
        ("example.com", "Widget", "NAME CREATED AT", ""),
        ("apps", "Pod", "NAME CREATED AT", ""),
    ];
    for &(group, kind, narrow, wide_extra) in cases {
        // Event's wide order interleaves, so compare the sets of names per view.
        let mut want_narrow: Vec<String> = split_headers(narrow);
        let mut got_narrow = headers(group, kind, false);
        want_narrow.sort();
        got_narrow.sort();
        assert_eq!(got_narrow, want_narrow, "{group}/{kind}");
        let mut want_wide = split_headers(narrow);
        want_wide.extend(split_headers(wide_extra));
        want_wide.sort();
        let mut got_wide = headers(group, kind, true);
        got_wide.sort();
        assert_eq!(got_wide, want_wide, "{group}/{kind} -o wide");
    }
    assert_eq!(
        headers("", "Event", true).join("|"),
        "LAST SEEN|TYPE|REASON|OBJECT|SUBOBJECT|SOURCE|MESSAGE|FIRST SEEN|COUNT|NAME"
    );
}

/// Splits a header line on single spaces, keeping the known two-word headers whole.
fn split_headers(line: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let joins = matches!(
            (out.last().map(String::as_str), word),
            (Some("NOMINATED"), "NODE")
                | (Some("READINESS"), "GATES")
                | (Some("LAST"), "SEEN")
                | (Some("FIRST"), "SEEN")
                | (Some("CREATED"), "AT")
        );
        match out.last_mut() {
            Some(last) if joins => {
                last.push(' ');
                last.push_str(word);
            }
            _ => out.push(word.to_owned()),
        }
    }
    out
}

#[test]
fn column_types_and_formats() {
    let pod = column_definitions("", "Pod");
    assert_eq!((pod[0].format, pod[0].column_type), ("name", "string"));
    assert!(
        pod[1..]
            .iter()
            .all(|c| c.format.is_empty() && c.column_type == "string")
    );
    let rs = column_definitions("apps", "ReplicaSet");
    assert_eq!(
        rs.iter().map(|c| c.column_type).collect::<Vec<_>>(),
        [
            "string", "integer", "integer", "integer", "string", "string", "string", "string"
        ]
    );
    let default = column_definitions("rbac.authorization.k8s.io", "Role");
    assert_eq!(
        (default[1].name, default[1].column_type),
        ("Created At", "date")
    );
    let event = column_definitions("", "Event");
    assert_eq!(
        (event[9].name, event[9].format, event[9].priority),
        ("Name", "name", 1)
    );
    assert!(
        column_definitions("apps", "Deployment")
            .iter()
            .all(|c| !c.description.is_empty())
    );
}

#[test]
fn workloads() {
    check(vec![
        Case {
            what: "a rolled-out deployment",
            group: "apps",
            kind: "Deployment",
            object: json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "pr-shop-42", "creationTimestamp": "2024-05-01T11:57:10Z"},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web", "tier": "frontend"}},
                    "template": {"metadata": {"labels": {"app": "web", "tier": "frontend"}},
                        "spec": {"containers": [{"name": "web", "image": "shop/web:1.4.2"}, {"name": "proxy", "image": "envoy:1.30"}]}},
                },
                "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2},
            }),
            cells: json!([
                "web",
                "2/3",
                3,
                2,
                "2m50s",
                "web,proxy",
                "shop/web:1.4.2,envoy:1.30",
                "app=web,tier=frontend"
            ]),
        },
        Case {
            what: "a fresh deployment without status or replicas (defaults to one)",
            group: "apps",
            kind: "Deployment",
            object: json!({"metadata": {"name": "new"}, "spec": {"selector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["new", "canary"]}]}}}),
            cells: json!([
                "new",
                "0/1",
                0,
                0,
                "<unknown>",
                "",
                "",
                "app in (canary,new)"
            ]),
        },
        Case {
            what: "a deployment with a broken selector",
            group: "apps",
            kind: "Deployment",
            object: json!({"metadata": {"name": "bad"}, "spec": {"replicas": 0, "selector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": []}]}}}),
            cells: json!(["bad", "0/0", 0, 0, "<unknown>", "", "", "<invalid>"]),
        },
        Case {
            what: "a replica set",
            group: "apps",
            kind: "ReplicaSet",
            object: json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-7d4b9c", "creationTimestamp": "2024-04-30T12:00:00Z",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1", "controller": true}]},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                    "template": {"spec": {"containers": [{"name": "web", "image": "shop/web:1.4.2"}]}}},
                "status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3},
            }),
            cells: json!([
                "web-7d4b9c",
                3,
                3,
                3,
                "24h",
                "web",
                "shop/web:1.4.2",
                "app=web,pod-template-hash=7d4b9c"
            ]),
        },
        Case {
            what: "a replica set with neither selector nor status",
            group: "apps",
            kind: "ReplicaSet",
            object: json!({"metadata": {"name": "rs"}}),
            cells: json!(["rs", 1, 0, 0, "<unknown>", "", "", "<none>"]),
        },
        Case {
            what: "a replica set with a broken selector",
            group: "apps",
            kind: "ReplicaSet",
            object: json!({"metadata": {"name": "rs"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"bad key": "x"}}}}),
            cells: json!(["rs", 0, 0, 0, "<unknown>", "", "", "<error>"]),
        },
    ]);
}

#[test]
fn services() {
    let service = |name: &str, spec: Value, status: Value| {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "creationTimestamp": "2024-05-01T11:00:00Z"}, "spec": spec, "status": status})
    };
    check(vec![
        Case {
            what: "a cluster IP service",
            group: "",
            kind: "Service",
            object: service(
                "web",
                json!({"type": "ClusterIP", "clusterIP": "127.100.0.12", "clusterIPs": ["127.100.0.12"],
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}],
                "selector": {"tier": "frontend", "app": "web"}}),
                json!({}),
            ),
            cells: json!([
                "web",
                "ClusterIP",
                "127.100.0.12",
                "<none>",
                "80/TCP,53/UDP",
                "60m",
                "app=web,tier=frontend"
            ]),
        },
        Case {
            what: "a headless service without ports, type or selector",
            group: "",
            kind: "Service",
            object: service("db", json!({"clusterIP": "None"}), Value::Null),
            cells: json!([
                "db",
                "ClusterIP",
                "None",
                "<none>",
                "<none>",
                "60m",
                "<none>"
            ]),
        },
        Case {
            what: "a node port service with external IPs",
            group: "",
            kind: "Service",
            object: service(
                "np",
                json!({"type": "NodePort", "clusterIPs": ["127.100.0.13"], "externalIPs": ["192.0.2.1", "192.0.2.2"],
                "ports": [{"port": 80, "nodePort": 30080}]}),
                json!({}),
            ),
            cells: json!([
                "np",
                "NodePort",
                "127.100.0.13",
                "192.0.2.1,192.0.2.2",
                "80:30080/TCP",
                "60m",
                "<none>"
            ]),
        },
        Case {
            what: "a load balancer waiting for an address",
            group: "",
            kind: "Service",
            object: service(
                "lb",
                json!({"type": "LoadBalancer", "clusterIP": "127.100.0.14", "ports": [{"port": 443, "nodePort": 31443}]}),
                json!({"loadBalancer": {}}),
            ),
            cells: json!([
                "lb",
                "LoadBalancer",
                "127.100.0.14",
                "<pending>",
                "443:31443/TCP",
                "60m",
                "<none>"
            ]),
        },
        Case {
            what: "a load balancer with ingress points and external IPs",
            group: "",
            kind: "Service",
            object: service(
                "lb2",
                json!({"type": "LoadBalancer", "clusterIP": "127.100.0.15", "externalIPs": ["192.0.2.9"],
                "ports": [{"port": 443, "nodePort": 31444}]}),
                json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "198.51.100.7"}, {"ip": "198.51.100.7"}]}}),
            ),
            cells: json!([
                "lb2",
                "LoadBalancer",
                "127.100.0.15",
                "198.51.100.7,lb.example.com,192.0.2.9",
                "443:31444/TCP",
                "60m",
                "<none>"
            ]),
        },
        Case {
            what: "an external name service",
            group: "",
            kind: "Service",
            object: service(
                "ext",
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({}),
            ),
            cells: json!([
                "ext",
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "60m",
                "<none>"
            ]),
        },
        Case {
            what: "an unknown service type",
            group: "",
            kind: "Service",
            object: service(
                "odd",
                json!({"type": "Weird", "clusterIP": "127.100.0.16"}),
                json!({}),
            ),
            cells: json!([
                "odd",
                "Weird",
                "127.100.0.16",
                "<unknown>",
                "<none>",
                "60m",
                "<none>"
            ]),
        },
    ]);
}

#[test]
fn endpoints() {
    let endpoints = |subsets: Value| json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:59:30Z"}, "subsets": subsets});
    let address = |ip: &str| json!({"ip": ip, "targetRef": {"kind": "Pod", "name": "web-x"}});
    check(vec![
        Case {
            what: "no subsets",
            group: "",
            kind: "Endpoints",
            object: json!({"metadata": {"name": "web"}}),
            cells: json!(["web", "<none>", "<unknown>"]),
        },
        Case {
            what: "two addresses on one port",
            group: "",
            kind: "Endpoints",
            object: endpoints(
                json!([{"addresses": [address("127.0.0.11"), address("127.0.0.12")], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]),
            ),
            cells: json!(["web", "127.0.0.11:8080,127.0.0.12:8080", "30s"]),
        },
        Case {
            what: "more than three endpoints across ports and subsets",
            group: "",
            kind: "Endpoints",
            object: endpoints(json!([
                {"addresses": [address("10.0.0.1"), address("10.0.0.2")], "ports": [{"port": 80}, {"port": 443}]},
                {"addresses": [address("fd00::3")], "ports": [{"port": 80}]},
            ])),
            cells: json!([
                "web",
                "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...",
                "30s"
            ]),
        },
        Case {
            what: "a headless service's addresses without ports",
            group: "",
            kind: "Endpoints",
            object: endpoints(
                json!([{"addresses": [address("10.0.0.1"), address("10.0.0.2"), address("10.0.0.3"), address("10.0.0.4")]}]),
            ),
            cells: json!(["web", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "30s"]),
        },
        Case {
            what: "IPv6 addresses are bracketed",
            group: "",
            kind: "Endpoints",
            object: endpoints(
                json!([{"addresses": [address("fd00::3")], "ports": [{"port": 80}]}]),
            ),
            cells: json!(["web", "[fd00::3]:80", "30s"]),
        },
        Case {
            what: "subsets with only not-ready addresses",
            group: "",
            kind: "Endpoints",
            object: endpoints(
                json!([{"notReadyAddresses": [address("10.0.0.1")], "ports": [{"port": 80}]}]),
            ),
            cells: json!(["web", "", "30s"]),
        },
    ]);
}

#[test]
fn ingresses() {
    let ingress = |spec: Value, status: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "shop", "creationTimestamp": "2024-05-01T09:30:00Z"}, "spec": spec, "status": status})
    };
    let rule = |host: &str| {
        json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}})
    };
    check(vec![
        Case {
            what: "a preview ingress",
            group: "networking.k8s.io",
            kind: "Ingress",
            object: ingress(
                json!({"ingressClassName": "slipway", "rules": [rule("pr-shop-42.preview.localhost")]}),
                json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}),
            ),
            cells: json!([
                "shop",
                "slipway",
                "pr-shop-42.preview.localhost",
                "127.0.0.1",
                "80",
                "150m"
            ]),
        },
        Case {
            what: "no class, a host-less rule, TLS, no address",
            group: "networking.k8s.io",
            kind: "Ingress",
            object: ingress(
                json!({"rules": [{"http": {}}], "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}]}),
                json!({}),
            ),
            cells: json!(["shop", "<none>", "*", "", "80, 443", "150m"]),
        },
        Case {
            what: "more than three hosts",
            group: "networking.k8s.io",
            kind: "Ingress",
            object: ingress(
                json!({"rules": [rule("a.example"), rule(""), rule("b.example"), rule("c.example"), rule("d.example")]}),
                json!({}),
            ),
            cells: json!([
                "shop",
                "<none>",
                "a.example,b.example,c.example + 2 more...",
                "",
                "80",
                "150m"
            ]),
        },
    ]);
}

#[test]
fn cluster_objects() {
    check(vec![
        Case {
            what: "an active namespace",
            group: "",
            kind: "Namespace",
            object: json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "pr-shop-42", "creationTimestamp": "2024-04-28T12:00:00Z", "labels": {"slipway.dev/squad": "shop"}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            cells: json!(["pr-shop-42", "Active", "3d"]),
        },
        Case {
            what: "a terminating namespace",
            group: "",
            kind: "Namespace",
            object: json!({"metadata": {"name": "old", "creationTimestamp": "2023-05-01T12:00:00Z", "deletionTimestamp": "2024-05-01T11:59:00Z"},
                "status": {"phase": "Terminating"}}),
            cells: json!(["old", "Terminating", "366d"]),
        },
        Case {
            what: "a namespace without status (defaults to Active)",
            group: "",
            kind: "Namespace",
            object: json!({"metadata": {"name": "fresh"}}),
            cells: json!(["fresh", "Active", "<unknown>"]),
        },
        Case {
            what: "a ready control-plane node",
            group: "",
            kind: "Node",
            object: json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "node-1", "creationTimestamp": "2024-04-01T12:00:00Z", "labels": {
                    "kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/worker": "true", "kubernetes.io/role": "worker", "node-role.kubernetes.io/": "x"}},
                "spec": {},
                "status": {
                    "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                    "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "127.0.0.1"}],
                    "nodeInfo": {"kubeletVersion": "v1.32.0-slipway", "osImage": "Debian GNU/Linux 12 (bookworm)",
                        "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.12"}}}),
            cells: json!([
                "node-1",
                "Ready",
                "control-plane,worker",
                "30d",
                "v1.32.0-slipway",
                "127.0.0.1",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "containerd://1.7.12"
            ]),
        },
        Case {
            what: "a cordoned node that stopped reporting",
            group: "",
            kind: "Node",
            object: json!({"metadata": {"name": "node-2", "creationTimestamp": "2024-05-01T08:00:00Z"},
                "spec": {"unschedulable": true},
                "status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}],
                    "addresses": [{"type": "ExternalIP", "address": "203.0.113.5"}]}}),
            cells: json!([
                "node-2",
                "NotReady,SchedulingDisabled",
                "<none>",
                "4h",
                "",
                "<none>",
                "203.0.113.5",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        },
        Case {
            what: "a node that never reported",
            group: "",
            kind: "Node",
            object: json!({"metadata": {"name": "node-3"}}),
            cells: json!([
                "node-3",
                "Unknown",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        },
        Case {
            what: "a held lease",
            group: "coordination.k8s.io",
            kind: "Lease",
            object: json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "slipway-scheduler", "namespace": "kube-system", "creationTimestamp": "2024-05-01T11:52:00Z"},
                "spec": {"holderIdentity": "server-a_4f2c", "leaseDurationSeconds": 15, "renewTime": "2024-05-01T11:59:58.000000Z"}}),
            cells: json!(["slipway-scheduler", "server-a_4f2c", "8m"]),
        },
        Case {
            what: "an unheld lease",
            group: "coordination.k8s.io",
            kind: "Lease",
            object: json!({"metadata": {"name": "free", "creationTimestamp": "2024-05-01T11:52:00Z"}, "spec": {}}),
            cells: json!(["free", "", "8m"]),
        },
    ]);
}

#[test]
fn events() {
    check(vec![
        Case {
            what: "a repeated kubelet warning",
            group: "",
            kind: "Event",
            object: json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "web-7d4b9c-x2x9p.17c9a", "namespace": "pr-shop-42", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "involvedObject": {"kind": "Pod", "name": "web-7d4b9c-x2x9p", "namespace": "pr-shop-42", "fieldPath": "spec.containers{web}"},
                "reason": "BackOff", "message": "Back-off restarting failed container web\n", "type": "Warning",
                "source": {"component": "kubelet", "host": "node-1"},
                "firstTimestamp": "2024-05-01T11:00:00Z", "lastTimestamp": "2024-05-01T11:59:30Z", "count": 14}),
            cells: json!([
                "30s",
                "Warning",
                "BackOff",
                "pod/web-7d4b9c-x2x9p",
                "spec.containers{web}",
                "kubelet, node-1",
                "Back-off restarting failed container web",
                "60m",
                14,
                "web-7d4b9c-x2x9p.17c9a"
            ]),
        },
        Case {
            what: "an events.k8s.io-style event with a series",
            group: "",
            kind: "Event",
            object: json!({"metadata": {"name": "web.1"},
                "involvedObject": {"kind": "Deployment", "name": "web"},
                "reason": "ScalingReplicaSet", "message": "Scaled up replica set web-7d4b9c to 3", "type": "Normal",
                "eventTime": "2024-05-01T11:55:00.123456Z",
                "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:00.000000Z"},
                "reportingComponent": "deployment-controller", "reportingInstance": "server-a"}),
            cells: json!([
                "60s",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller, server-a",
                "Scaled up replica set web-7d4b9c to 3",
                "4m59s",
                4,
                "web.1"
            ]),
        },
        Case {
            what: "a singleton event without a count or last time",
            group: "",
            kind: "Event",
            object: json!({"metadata": {"name": "ns.1"}, "involvedObject": {"kind": "Namespace"},
                "reason": "Created", "type": "Normal", "firstTimestamp": "2024-05-01T11:57:00Z", "source": {"component": "slipway"}}),
            cells: json!([
                "3m",
                "Normal",
                "Created",
                "namespace",
                "",
                "slipway",
                "",
                "3m",
                1,
                "ns.1"
            ]),
        },
        Case {
            what: "an event with no times at all",
            group: "",
            kind: "Event",
            object: json!({"metadata": {"name": "x"}}),
            cells: json!(["<unknown>", "", "", "", "", "", "", "<unknown>", 1, "x"]),
        },
    ]);
}

#[test]
fn configuration_objects() {
    check(vec![
        Case {
            what: "a config map with text and binary data",
            group: "",
            kind: "ConfigMap",
            object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "web-config", "creationTimestamp": "2024-05-01T11:59:55Z"},
                "data": {"LOG_LEVEL": "debug", "nginx.conf": "server {}"}, "binaryData": {"logo.png": "iVBORw0KGgo="}}),
            cells: json!(["web-config", 3, "5s"]),
        },
        Case {
            what: "an empty config map",
            group: "",
            kind: "ConfigMap",
            object: json!({"metadata": {"name": "kube-root-ca.crt"}}),
            cells: json!(["kube-root-ca.crt", 0, "<unknown>"]),
        },
        Case {
            what: "a TLS secret",
            group: "",
            kind: "Secret",
            object: json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "preview-tls", "creationTimestamp": "2024-04-24T12:00:00Z"},
                "type": "kubernetes.io/tls", "data": {"tls.crt": "LS0t", "tls.key": "LS0t"}}),
            cells: json!(["preview-tls", "kubernetes.io/tls", 2, "7d"]),
        },
        Case {
            what: "a secret written with stringData and no type",
            group: "",
            kind: "Secret",
            object: json!({"metadata": {"name": "db", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "data": {"user": "YWRtaW4="}, "stringData": {"user": "admin", "password": "hunter2"}}),
            cells: json!(["db", "Opaque", 2, "60m"]),
        },
        Case {
            what: "a service account",
            group: "",
            kind: "ServiceAccount",
            object: json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "creationTimestamp": "2024-05-01T11:00:00Z"}, "secrets": [{"name": "default-token"}]}),
            cells: json!(["default", 1, "60m"]),
        },
        Case {
            what: "a service account without secrets",
            group: "",
            kind: "ServiceAccount",
            object: json!({"metadata": {"name": "builder"}}),
            cells: json!(["builder", 0, "<unknown>"]),
        },
        Case {
            what: "a squad quota",
            group: "",
            kind: "ResourceQuota",
            object: json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "squad-shop", "creationTimestamp": "2024-05-01T11:30:00Z"},
                "spec": {"hard": {"pods": "50", "requests.cpu": "8", "limits.memory": "16Gi", "limits.cpu": "8"}},
                "status": {
                    "hard": {"pods": "50", "requests.cpu": "8", "limits.memory": "16Gi", "limits.cpu": "8", "limitsx": 3},
                    "used": {"pods": "3", "requests.cpu": "750m", "limits.memory": "1Gi"}}}),
            cells: json!([
                "squad-shop",
                "30m",
                "limitsx: 0/3, pods: 3/50, requests.cpu: 750m/8",
                "limits.cpu: 0/8, limits.memory: 1Gi/16Gi"
            ]),
        },
        Case {
            what: "a quota before the controller filled its status",
            group: "",
            kind: "ResourceQuota",
            object: json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "5"}}}),
            cells: json!(["q", "<unknown>", "", ""]),
        },
    ]);
}

#[test]
fn bindings_and_defaults() {
    check(vec![
        Case {
            what: "a squad role binding",
            group: "rbac.authorization.k8s.io",
            kind: "RoleBinding",
            object: json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "squad-shop-edit", "namespace": "pr-shop-42", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [
                    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "squad:shop"},
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"},
                    {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"},
                    {"kind": "Robot", "name": "r2"}]}),
            cells: json!([
                "squad-shop-edit",
                "ClusterRole/edit",
                "60m",
                "alice, bob",
                "squad:shop",
                "ci/deployer"
            ]),
        },
        Case {
            what: "a cluster role binding without subjects",
            group: "rbac.authorization.k8s.io",
            kind: "ClusterRoleBinding",
            object: json!({"metadata": {"name": "view-all", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "roleRef": {"kind": "ClusterRole", "name": "view"}}),
            cells: json!(["view-all", "ClusterRole/view", "60m", "", "", ""]),
        },
        Case {
            what: "a role prints its creation time in UTC",
            group: "rbac.authorization.k8s.io",
            kind: "Role",
            object: json!({"metadata": {"name": "reader", "creationTimestamp": "2024-05-01T13:30:00.5+02:00"}, "rules": []}),
            cells: json!(["reader", "2024-05-01T11:30:00Z"]),
        },
        Case {
            what: "a limit range without a creation time",
            group: "",
            kind: "LimitRange",
            object: json!({"metadata": {"name": "defaults"}, "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}}]}}),
            cells: json!(["defaults", "0001-01-01T00:00:00Z"]),
        },
        Case {
            what: "a custom resource",
            group: "example.com",
            kind: "Widget",
            object: json!({"metadata": {"name": "w", "creationTimestamp": "2024-05-01T11:00:00Z"}}),
            cells: json!(["w", "2024-05-01T11:00:00Z"]),
        },
    ]);
}

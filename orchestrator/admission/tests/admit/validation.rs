//! Validation rules, one table per kind; cases are modeled on upstream's `validation_test.go`
//! and expect Kubernetes' field paths and messages.

use serde_json::{Value, json};

use super::{admit_ok, deployment, errors, pod, service, set};

/// A case: its name, (JSON pointer, value) edits of the base object, the expected errors.
type Case<'a> = (&'a str, &'a [(&'a str, Value)], &'a [&'a str]);

/// Applies `edits` (JSON pointer, value) to `base` and expects exactly `want` as errors.
fn check(api_version: &str, kind: &str, base: fn() -> Value, cases: &[Case<'_>]) {
    for (name, edits, want) in cases {
        let mut object = base();
        for (pointer, value) in *edits {
            set(&mut object, pointer, value.clone());
        }
        assert_eq!(
            errors(api_version, kind, object, None),
            *want,
            "{kind}: {name}"
        );
    }
}

const LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn pod_rules() {
    let label_err = format!("spec.containers[0].name: Invalid value: \"Web_1\": {LABEL_ERR}");
    let cases: &[Case<'_>] = &[
        ("valid", &[], &[]),
        (
            "no containers",
            &[("/spec/containers", json!([]))],
            &["spec.containers: Required value"],
        ),
        (
            "no name",
            &[("/spec/containers/0/name", json!(""))],
            &["spec.containers[0].name: Required value"],
        ),
        (
            "bad name",
            &[("/spec/containers/0/name", json!("Web_1"))],
            &[label_err.as_str()],
        ),
        (
            "duplicate across init containers",
            &[(
                "/spec/initContainers",
                json!([{"name": "app", "image": "busybox"}]),
            )],
            &["spec.initContainers[0].name: Duplicate value: \"app\""],
        ),
        (
            "duplicate containers",
            &[(
                "/spec/containers/1",
                json!({"name": "app", "image": "busybox"}),
            )],
            &["spec.containers[1].name: Duplicate value: \"app\""],
        ),
        (
            "no image",
            &[("/spec/containers/0/image", json!(""))],
            &["spec.containers[0].image: Required value"],
        ),
        (
            "image whitespace",
            &[("/spec/containers/0/image", json!(" nginx"))],
            &[
                "spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace",
            ],
        ),
        (
            "port out of range",
            &[(
                "/spec/containers/0/ports",
                json!([{"containerPort": 70000}]),
            )],
            &[
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            "port zero",
            &[("/spec/containers/0/ports", json!([{"containerPort": 0}]))],
            &["spec.containers[0].ports[0].containerPort: Required value"],
        ),
        (
            "duplicate port names",
            &[(
                "/spec/containers/0/ports",
                json!([{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]),
            )],
            &["spec.containers[0].ports[1].name: Duplicate value: \"http\""],
        ),
        (
            "bad port name",
            &[(
                "/spec/containers/0/ports",
                json!([{"name": "12", "containerPort": 80}]),
            )],
            &[
                "spec.containers[0].ports[0].name: Invalid value: \"12\": must contain at least one letter (a-z)",
            ],
        ),
        (
            "bad protocol",
            &[(
                "/spec/containers/0/ports",
                json!([{"containerPort": 80, "protocol": "ICMP"}]),
            )],
            &[
                "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        ),
        (
            "env name with =",
            &[(
                "/spec/containers/0/env",
                json!([{"name": "A=B", "value": "x"}]),
            )],
            &[
                "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            ],
        ),
        (
            "env name empty",
            &[("/spec/containers/0/env", json!([{"name": ""}]))],
            &["spec.containers[0].env[0].name: Required value"],
        ),
        (
            "env name relaxed",
            &[("/spec/containers/0/env", json!([{"name": "1.my-var"}]))],
            &[],
        ),
        (
            "duplicate volumes",
            &[("/spec/volumes", json!([{"name": "a"}, {"name": "a"}]))],
            &["spec.volumes[1].name: Duplicate value: \"a\""],
        ),
        (
            "mount of missing volume",
            &[(
                "/spec/containers/0/volumeMounts",
                json!([{"name": "data", "mountPath": "/data"}]),
            )],
            &["spec.containers[0].volumeMounts[0].name: Invalid value: \"data\": not found"],
        ),
        (
            "mount without path",
            &[
                ("/spec/volumes", json!([{"name": "data"}])),
                (
                    "/spec/containers/0/volumeMounts",
                    json!([{"name": "data", "mountPath": ""}]),
                ),
            ],
            &["spec.containers[0].volumeMounts[0].mountPath: Required value"],
        ),
        (
            "restart policy",
            &[("/spec/restartPolicy", json!("Sometimes"))],
            &[
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ],
        ),
        (
            "dns policy",
            &[("/spec/dnsPolicy", json!("Google"))],
            &[
                "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            ],
        ),
        (
            "request above limit",
            &[(
                "/spec/containers/0/resources",
                json!({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}),
            )],
            &[
                "spec.containers[0].resources.requests: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi",
            ],
        ),
        (
            "equal request and limit",
            &[(
                "/spec/containers/0/resources",
                json!({"requests": {"cpu": "1"}, "limits": {"cpu": "1000m"}}),
            )],
            &[],
        ),
        (
            "negative quantity",
            &[(
                "/spec/containers/0/resources",
                json!({"limits": {"cpu": "-1"}}),
            )],
            // Requests default from limits on Pods, so the request is reported as well.
            &[
                "spec.containers[0].resources.limits[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
            ],
        ),
        (
            "unparsable quantity",
            &[(
                "/spec/containers/0/resources",
                json!({"limits": {"cpu": "1"}, "requests": {"cpu": "lots"}}),
            )],
            &[
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ],
        ),
    ];
    check("v1", "Pod", pod, cases);
}

#[test]
fn deployment_rules() {
    let cases: &[Case<'_>] = &[
        ("valid", &[], &[]),
        (
            "negative replicas",
            &[("/spec/replicas", json!(-1))],
            &["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            "no selector",
            &[("/spec/selector", Value::Null)],
            &["spec.selector: Required value"],
        ),
        (
            "empty selector",
            &[("/spec/selector", json!({}))],
            &["spec.selector: Invalid value: empty selector is invalid for deployment"],
        ),
        (
            "selector does not match",
            &[("/spec/selector/matchLabels/app", json!("api"))],
            &[
                "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
            ],
        ),
        (
            "template restart policy",
            &[("/spec/template/spec/restartPolicy", json!("Never"))],
            &[
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        ),
        (
            "template without containers",
            &[("/spec/template/spec/containers", json!([]))],
            &["spec.template.spec.containers: Required value"],
        ),
        (
            "strategy type",
            &[("/spec/strategy", json!({"type": "BlueGreen"}))],
            &[
                "spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\"",
            ],
        ),
        (
            "recreate with rolling update",
            &[(
                "/spec/strategy",
                json!({"type": "Recreate", "rollingUpdate": {}}),
            )],
            &[
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ],
        ),
        (
            "both zero",
            &[(
                "/spec/strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
            )],
            &[
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
            ],
        ),
        (
            "over 100 percent",
            &[(
                "/spec/strategy",
                json!({"rollingUpdate": {"maxUnavailable": "150%"}}),
            )],
            &[
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
            ],
        ),
        (
            "bad percent",
            &[(
                "/spec/strategy",
                json!({"rollingUpdate": {"maxSurge": "ten"}}),
            )],
            &[
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"ten\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            ],
        ),
        (
            "deadline not above min ready",
            &[("/spec/minReadySeconds", json!(600))],
            &[
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
            ],
        ),
        (
            "negative history",
            &[("/spec/revisionHistoryLimit", json!(-2))],
            &["spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0"],
        ),
    ];
    check("apps/v1", "Deployment", deployment, cases);
}

fn replica_set() -> Value {
    let mut object = deployment();
    set(&mut object, "/kind", json!("ReplicaSet"));
    object
}

#[test]
fn replica_set_rules() {
    let cases: &[Case<'_>] = &[
        ("valid", &[], &[]),
        (
            "no selector",
            &[("/spec/selector", Value::Null)],
            &["spec.selector: Required value"],
        ),
        (
            "selector does not match",
            &[("/spec/template/metadata/labels", json!({"app": "other"}))],
            &[
                "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
            ],
        ),
        (
            "negative replicas",
            &[("/spec/replicas", json!(-3))],
            &["spec.replicas: Invalid value: -3: must be greater than or equal to 0"],
        ),
    ];
    check("apps/v1", "ReplicaSet", replica_set, cases);
}

#[test]
fn selector_is_immutable() {
    for (api_version, kind, base) in [
        ("apps/v1", "Deployment", deployment as fn() -> Value),
        ("apps/v1", "ReplicaSet", replica_set),
    ] {
        let old = admit_ok(api_version, kind, base()).object;
        let mut new = base();
        set(&mut new, "/spec/selector/matchLabels/tier", json!("front"));
        set(
            &mut new,
            "/spec/template/metadata/labels/tier",
            json!("front"),
        );
        assert_eq!(
            errors(api_version, kind, new, Some(&old)),
            ["spec.selector: Invalid value: field is immutable"],
            "{kind}"
        );
        let mut scaled = base();
        set(&mut scaled, "/spec/replicas", json!(5));
        assert_eq!(
            errors(api_version, kind, scaled, Some(&old)),
            Vec::<String>::new()
        );
    }
}

#[test]
fn service_rules() {
    let cases: &[Case<'_>] = &[
        ("valid", &[], &[]),
        (
            "no ports",
            &[("/spec/ports", json!([]))],
            &["spec.ports: Required value"],
        ),
        (
            "headless without ports",
            &[
                ("/spec/ports", json!([])),
                ("/spec/clusterIP", json!("None")),
            ],
            &[],
        ),
        (
            "port out of range",
            &[("/spec/ports/0/port", json!(65536))],
            // The defaulted target port repeats the error, as upstream's does.
            &[
                "spec.ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 65536: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            "names required with several ports",
            &[(
                "/spec/ports",
                json!([{"port": 80, "name": "http"}, {"port": 443}]),
            )],
            &["spec.ports[1].name: Required value"],
        ),
        (
            "duplicate names",
            &[(
                "/spec/ports",
                json!([{"port": 80, "name": "web"}, {"port": 443, "name": "web"}]),
            )],
            &["spec.ports[1].name: Duplicate value: \"web\""],
        ),
        (
            "duplicate port and protocol",
            &[(
                "/spec/ports",
                json!([{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]),
            )],
            &["spec.ports[1]: Duplicate value: \"80/TCP\""],
        ),
        (
            "protocol",
            &[("/spec/ports/0/protocol", json!("HTTP"))],
            &[
                "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        ),
        (
            "type",
            &[("/spec/type", json!("Internal"))],
            &[
                "spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        ),
        (
            "node port on cluster ip",
            &[("/spec/ports/0/nodePort", json!(30080))],
            &["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            "target port name",
            &[("/spec/ports/0/targetPort", json!("http--alt"))],
            &[
                "spec.ports[0].targetPort: Invalid value: \"http--alt\": must not contain consecutive hyphens",
            ],
        ),
        (
            "session affinity",
            &[("/spec/sessionAffinity", json!("Sticky"))],
            &[
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            ],
        ),
        (
            "selector label value",
            &[("/spec/selector", json!({"app": "-web"}))],
            &[
                "spec.selector: Invalid value: \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ],
        ),
        (
            "external name required",
            &[
                ("/spec/type", json!("ExternalName")),
                ("/spec/ports", json!([])),
            ],
            &["spec.externalName: Required value"],
        ),
    ];
    check("v1", "Service", service, cases);
}

#[test]
fn cluster_ip_is_immutable_once_set() {
    let mut old = admit_ok("v1", "Service", service()).object;
    set(&mut old, "/spec/clusterIP", json!("10.96.0.10"));
    let mut new = service();
    set(&mut new, "/spec/clusterIP", json!("10.96.0.11"));
    assert_eq!(
        errors("v1", "Service", new, Some(&old)),
        ["spec.clusterIP: Invalid value: \"10.96.0.11\": field is immutable"]
    );
}

fn config_map() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"app.conf": "x"}})
}

fn secret() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"token": "dG9rZW4="}})
}

const KEY_ERR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

#[test]
fn config_map_rules() {
    let bad_key = format!("data[a b]: Invalid value: \"a b\": {KEY_ERR}");
    let big = "x".repeat(1024 * 1024 + 1);
    let cases: &[Case<'_>] = &[
        ("valid", &[], &[]),
        ("bad key", &[("/data/a b", json!("v"))], &[bad_key.as_str()]),
        (
            "dot dot",
            &[("/data/..x", json!("v"))],
            &["data[..x]: Invalid value: \"..x\": must not start with '..'"],
        ),
        (
            "key in both",
            &[("/binaryData", json!({"app.conf": "eA=="}))],
            &[
                "binaryData[app.conf]: Invalid value: \"app.conf\": duplicate of key present in data",
            ],
        ),
        (
            "too big",
            &[("/data/big", json!(big))],
            &[": Too long: may not be more than 1048576 bytes"],
        ),
    ];
    check("v1", "ConfigMap", config_map, cases);
}

#[test]
fn secret_rules() {
    let cases: &[Case<'_>] = &[
        ("valid", &[], &[]),
        (
            "bad key",
            &[("/data/a:b", json!("eA=="))],
            &[&format!("data[a:b]: Invalid value: \"a:b\": {KEY_ERR}")],
        ),
        (
            "tls needs both keys",
            &[
                ("/type", json!("kubernetes.io/tls")),
                ("/data/tls.crt", json!("eA==")),
            ],
            &["data[tls.key]: Required value"],
        ),
        (
            "docker config json must parse",
            &[
                ("/type", json!("kubernetes.io/dockerconfigjson")),
                ("/data/.dockerconfigjson", json!("bm9wZQ==")),
            ],
            &[
                "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": expected ident at line 1 column 2",
            ],
        ),
        (
            "basic auth needs one of",
            &[("/type", json!("kubernetes.io/basic-auth"))],
            &[
                "data[username]: Required value",
                "data[password]: Required value",
            ],
        ),
    ];
    check("v1", "Secret", secret, cases);
}

#[test]
fn immutable_data_stays() {
    for (kind, base) in [
        ("ConfigMap", config_map as fn() -> Value),
        ("Secret", secret),
    ] {
        let mut old = base();
        set(&mut old, "/immutable", json!(true));
        let old = admit_ok("v1", kind, old).object;
        let mut changed = old.clone();
        set(&mut changed, "/data/other", json!("eA=="));
        assert_eq!(
            errors("v1", kind, changed, Some(&old)),
            ["data: Forbidden: field is immutable when `immutable` is set"],
            "{kind}"
        );
        let mut unlocked = old.clone();
        set(&mut unlocked, "/immutable", json!(false));
        assert_eq!(
            errors("v1", kind, unlocked, Some(&old)),
            ["immutable: Forbidden: field is immutable when `immutable` is set"],
            "{kind}"
        );
        let relabelled = old.clone();
        assert_eq!(
            errors("v1", kind, relabelled, Some(&old)),
            Vec::<String>::new()
        );
    }
}

#[test]
fn secret_type_is_immutable() {
    let old = admit_ok("v1", "Secret", secret()).object;
    let mut new = secret();
    set(&mut new, "/type", json!("example.com/custom"));
    assert_eq!(
        errors("v1", "Secret", new, Some(&old)),
        ["type: Invalid value: \"example.com/custom\": field is immutable"]
    );
}

fn quota() -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
           "spec": {"hard": {"cpu": "4", "pods": "10"}}})
}

fn limit_range() -> Value {
    json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
           "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"cpu": "100m"}}]}})
}

#[test]
fn quota_and_limit_range_rules() {
    let quota_cases: &[Case<'_>] = &[
        ("valid", &[], &[]),
        (
            "negative",
            &[("/spec/hard/pods", json!("-1"))],
            &["spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0"],
        ),
        (
            "bad suffix",
            &[("/spec/hard/memory", json!("1Qi"))],
            &[
                "spec.hard[memory]: Invalid value: \"1Qi\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ],
        ),
    ];
    check("v1", "ResourceQuota", quota, quota_cases);
    let limit_cases: &[Case<'_>] = &[
        ("valid", &[], &[]),
        (
            "min above max",
            &[("/spec/limits/0/min/cpu", json!("3"))],
            &[
                "spec.limits[0].min[cpu]: Invalid value: \"3\": min value 3 is greater than max value 2",
            ],
        ),
        (
            "default above max",
            &[("/spec/limits/0/default", json!({"cpu": "2500m"}))],
            &[
                "spec.limits[0].default[cpu]: Invalid value: \"2500m\": default value 2500m is greater than max value 2",
            ],
        ),
        (
            "no type",
            &[("/spec/limits/0/type", json!(""))],
            &["spec.limits[0].type: Required value"],
        ),
    ];
    check("v1", "LimitRange", limit_range, limit_cases);
}

//! Defaulting, compared with what Kubernetes stores for the same minimal manifests.

use serde_json::{Value, json};
use slipway_admission::{FieldValidation, admit};

use super::{admit_ok, deployment, pod, service, set};

#[test]
fn pod_defaults() {
    let admitted = admit_ok("v1", "Pod", pod());
    let spec = &admitted.object["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    let container = &spec["containers"][0];
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["terminationMessagePolicy"], "File");
    assert_eq!(container["resources"], json!({}));
}

#[test]
fn a_named_service_account_is_kept_and_the_deprecated_field_mirrors_it() {
    for field in ["serviceAccountName", "serviceAccount"] {
        let mut object = pod();
        set(&mut object, &format!("/spec/{field}"), json!("builder"));
        let spec = admit_ok("v1", "Pod", object).object["spec"].clone();
        assert_eq!(spec["serviceAccountName"], "builder", "{field}");
        assert_eq!(spec["serviceAccount"], "builder", "{field}");
    }
    let template = admit_ok("apps/v1", "Deployment", deployment()).object;
    assert!(
        template["spec"]["template"]["spec"]
            .get("serviceAccountName")
            .is_none(),
        "templates are left alone, as upstream's admission only sets it on pods"
    );
}

#[test]
fn pull_policy_follows_the_tag() {
    let cases = [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("registry:5000/nginx", "Always"),
        ("nginx@sha256:0123", "IfNotPresent"),
    ];
    for (image, want) in cases {
        let mut object = pod();
        set(&mut object, "/spec/containers/0/image", json!(image));
        let admitted = admit_ok("v1", "Pod", object);
        assert_eq!(
            admitted.object["spec"]["containers"][0]["imagePullPolicy"], want,
            "{image}"
        );
    }
}

#[test]
fn explicit_values_are_kept() {
    let mut object = pod();
    set(&mut object, "/spec/restartPolicy", json!("Never"));
    set(
        &mut object,
        "/spec/containers/0/imagePullPolicy",
        json!("Never"),
    );
    set(&mut object, "/spec/terminationGracePeriodSeconds", json!(5));
    let spec = admit_ok("v1", "Pod", object).object["spec"].clone();
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
    assert_eq!(spec["terminationGracePeriodSeconds"], 5);
}

#[test]
fn ports_probes_volumes_and_resources() {
    let mut object = pod();
    set(
        &mut object,
        "/spec/containers/0",
        json!({
            "name": "app",
            "image": "nginx:1.27",
            "ports": [{"containerPort": 80}],
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
            "resources": {"limits": {"cpu": "500m"}},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}, {"name": "conf", "mountPath": "/etc/conf"}]
        }),
    );
    set(
        &mut object,
        "/spec/volumes",
        json!([{"name": "scratch"}, {"name": "conf", "configMap": {"name": "conf"}}]),
    );
    let spec = admit_ok("v1", "Pod", object).object["spec"].clone();
    let container = &spec["containers"][0];
    assert_eq!(container["ports"][0]["protocol"], "TCP");
    assert_eq!(
        container["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
               "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(container["readinessProbe"]["periodSeconds"], 5);
    assert_eq!(container["resources"]["requests"], json!({"cpu": "500m"}));
    assert_eq!(
        container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"],
        "v1"
    );
    assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
}

#[test]
fn deployment_defaults() {
    let admitted = admit_ok("apps/v1", "Deployment", deployment());
    let spec = &admitted.object["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let template = &spec["template"]["spec"];
    assert_eq!(template["restartPolicy"], "Always");
    assert_eq!(template["containers"][0]["imagePullPolicy"], "IfNotPresent");
    // `SetDefaults_Pod` is for Pods only; templates do not get it.
    assert!(template.get("enableServiceLinks").is_none());
}

#[test]
fn recreate_strategy_gets_no_rolling_update() {
    let mut object = deployment();
    set(&mut object, "/spec/strategy", json!({"type": "Recreate"}));
    let admitted = admit_ok("apps/v1", "Deployment", object);
    assert_eq!(
        admitted.object["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
}

#[test]
fn replica_set_defaults() {
    let mut object = deployment();
    set(&mut object, "/kind", json!("ReplicaSet"));
    let admitted = admit_ok("apps/v1", "ReplicaSet", object);
    assert_eq!(admitted.object["spec"]["replicas"], 1);
    assert_eq!(
        admitted.object["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn service_defaults() {
    let admitted = admit_ok("v1", "Service", service());
    let spec = &admitted.object["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert!(spec.get("externalTrafficPolicy").is_none());
}

#[test]
fn node_port_and_external_name_services() {
    let mut object = service();
    set(&mut object, "/spec/type", json!("LoadBalancer"));
    let spec = admit_ok("v1", "Service", object).object["spec"].clone();
    assert_eq!(spec["externalTrafficPolicy"], "Cluster");
    assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
    let external = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                          "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    let spec = admit_ok("v1", "Service", external).object["spec"].clone();
    assert!(spec.get("ipFamilies").is_none());
    assert!(spec.get("internalTrafficPolicy").is_none());
}

#[test]
fn service_update_keeps_the_allocated_cluster_ip() {
    let mut old = admit_ok("v1", "Service", service()).object;
    set(&mut old, "/spec/clusterIP", json!("10.96.0.10"));
    set(&mut old, "/spec/clusterIPs", json!(["10.96.0.10"]));
    let admitted = admit(
        "v1",
        "Service",
        service(),
        Some(&old),
        FieldValidation::Strict,
    )
    .expect("update admits");
    assert_eq!(admitted.object["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(admitted.object["spec"]["clusterIPs"], json!(["10.96.0.10"]));
}

#[test]
fn secret_defaults_and_string_data() {
    let object = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "data": {"a": "b2xk", "b": "Yg=="}, "stringData": {"a": "new"}});
    let admitted = admit_ok("v1", "Secret", object);
    assert_eq!(admitted.object["type"], "Opaque");
    assert_eq!(admitted.object["data"], json!({"a": "bmV3", "b": "Yg=="}));
    assert!(admitted.object.get("stringData").is_none());
}

#[test]
fn defaulting_is_idempotent() {
    let objects: [(&str, &str, Value); 3] = [
        ("v1", "Pod", pod()),
        ("apps/v1", "Deployment", deployment()),
        ("v1", "Service", service()),
    ];
    for (api_version, kind, object) in objects {
        let once = admit_ok(api_version, kind, object).object;
        let twice = admit_ok(api_version, kind, once.clone()).object;
        assert_eq!(once, twice, "{kind}");
    }
}

#[test]
fn kinds_without_defaults_round_trip_unchanged() {
    let cases = [
        (
            "v1",
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}),
        ),
        (
            "v1",
            "Namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        ),
        (
            "v1",
            "Event",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                               "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Started"}),
        ),
    ];
    for (api_version, kind, object) in cases {
        assert_eq!(
            admit_ok(api_version, kind, object.clone()).object,
            object,
            "{kind}"
        );
    }
}

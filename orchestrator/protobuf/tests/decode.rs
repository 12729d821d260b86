//! Real envelopes built from k8s-pb messages, checked against what k8s-openapi serializes.

use std::collections::BTreeMap;

use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{ByteString, Resource};
use k8s_pb::api::{apps::v1 as pb_apps, core::v1 as pb};
use k8s_pb::apimachinery::pkg::api::resource as pb_resource;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr as pb_intstr;
use prost::Message;
use serde_json::{Value, json};
use slipway_protobuf::{ProtobufError, SUPPORTED_KINDS, decode};

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    unknown.encode(&mut body).unwrap();
    body
}

fn body_of<T: Resource>(message: &impl Message) -> Vec<u8> {
    envelope(T::API_VERSION, T::KIND, message.encode_to_vec())
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Go's gogo marshaller writes every non-pointer field, so what kubectl sends carries empty
/// strings, zeros and an empty creationTimestamp for everything the user did not set.
fn go_meta(name: &str, namespace: &str) -> pb_meta::ObjectMeta {
    pb_meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(pb_meta::Time::default()),
        ..Default::default()
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: s(name),
        namespace: namespace.map(str::to_owned),
        ..Default::default()
    }
}

fn openapi<T: Resource + serde::Serialize>(object: &T) -> Value {
    let mut value = serde_json::to_value(object).unwrap();
    value["apiVersion"] = json!(T::API_VERSION);
    value["kind"] = json!(T::KIND);
    value
}

fn quantity(v: &str) -> pb_resource::Quantity {
    pb_resource::Quantity { string: s(v) }
}

#[test]
fn namespace() {
    let message = pb::Namespace {
        metadata: Some(go_meta("demo", "")),
        spec: Some(pb::NamespaceSpec::default()),
        status: Some(pb::NamespaceStatus {
            phase: s(""),
            ..Default::default()
        }),
    };
    let got = decode(&body_of::<core::Namespace>(&message)).unwrap();
    let want = openapi(&core::Namespace {
        metadata: meta("demo", None),
        ..Default::default()
    });
    assert_eq!(got, want);
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    );
}

#[test]
fn config_map_with_binary_data() {
    let message = pb::ConfigMap {
        metadata: Some(pb_meta::ObjectMeta {
            labels: strings(&[("app", "web")]),
            ..go_meta("cm", "default")
        }),
        immutable: None,
        data: strings(&[("a", "1"), ("b", "")]),
        binary_data: [("bin".to_owned(), vec![0, 1, 2, 255])].into(),
    };
    let got = decode(&body_of::<core::ConfigMap>(&message)).unwrap();
    let want = openapi(&core::ConfigMap {
        metadata: ObjectMeta {
            labels: Some(strings(&[("app", "web")])),
            ..meta("cm", Some("default"))
        },
        data: Some(strings(&[("a", "1"), ("b", "")])),
        binary_data: Some([("bin".to_owned(), ByteString(vec![0, 1, 2, 255]))].into()),
        ..Default::default()
    });
    assert_eq!(got, want);
    assert_eq!(got["binaryData"]["bin"], "AAEC/w==");
}

#[test]
fn secret_bytes_become_base64_and_immutable_false_is_kept() {
    let message = pb::Secret {
        metadata: Some(go_meta("creds", "default")),
        immutable: Some(false),
        data: [("password".to_owned(), b"hunter2".to_vec())].into(),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
    };
    let got = decode(&body_of::<core::Secret>(&message)).unwrap();
    let want = openapi(&core::Secret {
        metadata: meta("creds", Some("default")),
        immutable: Some(false),
        data: Some([("password".to_owned(), ByteString(b"hunter2".to_vec()))].into()),
        type_: s("Opaque"),
        ..Default::default()
    });
    assert_eq!(got, want);
    assert_eq!(got["data"]["password"], "aHVudGVyMg==");
}

fn int_or_string_int(v: i32) -> pb_intstr::IntOrString {
    pb_intstr::IntOrString {
        r#type: Some(0),
        int_val: Some(v),
        str_val: s(""),
    }
}

fn int_or_string_str(v: &str) -> pb_intstr::IntOrString {
    pb_intstr::IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(v),
    }
}

#[test]
fn service_ports_selector_and_type() {
    let port = |name: &str, port: i32, target: pb_intstr::IntOrString| pb::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        app_protocol: None,
        port: Some(port),
        target_port: Some(target),
        node_port: Some(0),
    };
    let message = pb::Service {
        metadata: Some(go_meta("web", "default")),
        spec: Some(pb::ServiceSpec {
            ports: vec![
                port("http", 80, int_or_string_int(8080)),
                port("admin", 9000, int_or_string_str("admin")),
            ],
            selector: strings(&[("app", "web")]),
            cluster_ip: s(""),
            r#type: s("ClusterIP"),
            session_affinity: s(""),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        status: Some(pb::ServiceStatus {
            load_balancer: Some(pb::LoadBalancerStatus::default()),
            conditions: Vec::new(),
        }),
    };
    let got = decode(&body_of::<core::Service>(&message)).unwrap();
    let want_port = |name: &str, port: i32, target: IntOrString| core::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        port,
        target_port: Some(target),
        ..Default::default()
    };
    let want = openapi(&core::Service {
        metadata: meta("web", Some("default")),
        spec: Some(core::ServiceSpec {
            ports: Some(vec![
                want_port("http", 80, IntOrString::Int(8080)),
                want_port("admin", 9000, IntOrString::String("admin".to_owned())),
            ]),
            selector: Some(strings(&[("app", "web")])),
            type_: s("ClusterIP"),
            ..Default::default()
        }),
        status: None,
    });
    assert_eq!(got, want);
    assert_eq!(got["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(got["spec"]["ports"][1]["targetPort"], "admin");
}

fn pb_container() -> pb::Container {
    pb::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        command: vec!["nginx".to_owned()],
        args: vec!["-g".to_owned(), "daemon off;".to_owned()],
        working_dir: s(""),
        ports: vec![pb::ContainerPort {
            name: s("http"),
            host_port: Some(0),
            container_port: Some(80),
            protocol: s("TCP"),
            host_ip: s(""),
        }],
        env: vec![
            pb::EnvVar {
                name: s("MODE"),
                value: s("prod"),
                value_from: None,
            },
            pb::EnvVar {
                name: s("PASSWORD"),
                value: s(""),
                value_from: Some(pb::EnvVarSource {
                    secret_key_ref: Some(pb::SecretKeySelector {
                        local_object_reference: Some(pb::LocalObjectReference { name: s("creds") }),
                        key: s("password"),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(pb::ResourceRequirements {
            limits: [("memory".to_owned(), quantity("128Mi"))].into(),
            requests: [("cpu".to_owned(), quantity("250m"))].into(),
            claims: Vec::new(),
        }),
        volume_mounts: vec![pb::VolumeMount {
            name: s("cache"),
            read_only: Some(true),
            mount_path: s("/cache"),
            sub_path: s(""),
            ..Default::default()
        }],
        liveness_probe: Some(pb::Probe {
            handler: Some(pb::ProbeHandler {
                http_get: Some(pb::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(int_or_string_str("http")),
                    host: s(""),
                    scheme: s("HTTP"),
                    http_headers: Vec::new(),
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            timeout_seconds: Some(1),
            period_seconds: Some(10),
            success_threshold: Some(1),
            failure_threshold: Some(3),
            termination_grace_period_seconds: None,
        }),
        readiness_probe: Some(pb::Probe {
            handler: Some(pb::ProbeHandler {
                tcp_socket: Some(pb::TcpSocketAction {
                    port: Some(int_or_string_int(80)),
                    host: s(""),
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(0),
            ..Default::default()
        }),
        termination_message_path: s("/dev/termination-log"),
        image_pull_policy: s("IfNotPresent"),
        security_context: Some(pb::SecurityContext {
            run_as_user: Some(0),
            ..Default::default()
        }),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

fn openapi_container() -> core::Container {
    core::Container {
        name: "web".to_owned(),
        image: s("nginx:1.27"),
        command: Some(vec!["nginx".to_owned()]),
        args: Some(vec!["-g".to_owned(), "daemon off;".to_owned()]),
        ports: Some(vec![core::ContainerPort {
            name: s("http"),
            container_port: 80,
            protocol: s("TCP"),
            ..Default::default()
        }]),
        env: Some(vec![
            core::EnvVar {
                name: "MODE".to_owned(),
                value: s("prod"),
                value_from: None,
            },
            core::EnvVar {
                name: "PASSWORD".to_owned(),
                value: None,
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        name: "creds".to_owned(),
                        key: "password".to_owned(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
        ]),
        resources: Some(core::ResourceRequirements {
            limits: Some([("memory".to_owned(), Quantity("128Mi".to_owned()))].into()),
            requests: Some([("cpu".to_owned(), Quantity("250m".to_owned()))].into()),
            claims: None,
        }),
        volume_mounts: Some(vec![core::VolumeMount {
            name: "cache".to_owned(),
            read_only: Some(true),
            mount_path: "/cache".to_owned(),
            ..Default::default()
        }]),
        liveness_probe: Some(core::Probe {
            http_get: Some(core::HTTPGetAction {
                path: s("/healthz"),
                port: IntOrString::String("http".to_owned()),
                scheme: s("HTTP"),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            timeout_seconds: Some(1),
            period_seconds: Some(10),
            success_threshold: Some(1),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        readiness_probe: Some(core::Probe {
            tcp_socket: Some(core::TCPSocketAction {
                port: IntOrString::Int(80),
                host: None,
            }),
            ..Default::default()
        }),
        termination_message_path: s("/dev/termination-log"),
        image_pull_policy: s("IfNotPresent"),
        security_context: Some(core::SecurityContext {
            run_as_user: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn deployment_with_full_pod_template() {
    let labels = strings(&[("app", "web")]);
    let message = pb_apps::Deployment {
        metadata: Some(pb_meta::ObjectMeta {
            labels: labels.clone(),
            ..go_meta("web", "default")
        }),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(pb_meta::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: Vec::new(),
            }),
            template: Some(pb::PodTemplateSpec {
                metadata: Some(pb_meta::ObjectMeta {
                    labels: labels.clone(),
                    ..go_meta("", "")
                }),
                spec: Some(pb::PodSpec {
                    volumes: vec![
                        pb::Volume {
                            name: s("cache"),
                            volume_source: Some(pb::VolumeSource {
                                empty_dir: Some(pb::EmptyDirVolumeSource {
                                    medium: s(""),
                                    size_limit: None,
                                }),
                                ..Default::default()
                            }),
                        },
                        pb::Volume {
                            name: s("config"),
                            volume_source: Some(pb::VolumeSource {
                                config_map: Some(pb::ConfigMapVolumeSource {
                                    local_object_reference: Some(pb::LocalObjectReference {
                                        name: s("cm"),
                                    }),
                                    items: Vec::new(),
                                    default_mode: Some(0o644),
                                    optional: None,
                                }),
                                ..Default::default()
                            }),
                        },
                    ],
                    containers: vec![pb_container()],
                    restart_policy: s("Always"),
                    termination_grace_period_seconds: Some(30),
                    dns_policy: s("ClusterFirst"),
                    service_account_name: s(""),
                    host_network: Some(false),
                    scheduler_name: s("default-scheduler"),
                    ..Default::default()
                }),
            }),
            strategy: Some(pb_apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(pb_apps::RollingUpdateDeployment {
                    max_unavailable: Some(int_or_string_str("25%")),
                    max_surge: Some(int_or_string_int(1)),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(10),
            paused: Some(false),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(pb_apps::DeploymentStatus::default()),
    };
    let got = decode(&body_of::<apps::Deployment>(&message)).unwrap();
    let want = openapi(&apps::Deployment {
        metadata: ObjectMeta {
            labels: Some(labels.clone()),
            ..meta("web", Some("default"))
        },
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            template: core::PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    volumes: Some(vec![
                        core::Volume {
                            name: "cache".to_owned(),
                            empty_dir: Some(core::EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                        core::Volume {
                            name: "config".to_owned(),
                            config_map: Some(core::ConfigMapVolumeSource {
                                name: "cm".to_owned(),
                                default_mode: Some(0o644),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    containers: vec![openapi_container()],
                    restart_policy: s("Always"),
                    termination_grace_period_seconds: Some(30),
                    dns_policy: s("ClusterFirst"),
                    scheduler_name: s("default-scheduler"),
                    ..Default::default()
                }),
            },
            strategy: Some(apps::DeploymentStrategy {
                type_: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::String("25%".to_owned())),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    });
    assert_eq!(got, want);
    assert_eq!(got["spec"]["replicas"], 0, "a pointer's zero is kept");
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"][0]["emptyDir"],
        json!({})
    );
}

#[test]
fn times_are_rfc3339_and_zero_times_are_omitted() {
    let message = pb::Event {
        metadata: Some(go_meta("e1", "default")),
        involved_object: Some(pb::ObjectReference {
            kind: s("Pod"),
            name: s("web"),
            ..Default::default()
        }),
        reason: s("Started"),
        first_timestamp: Some(pb_meta::Time {
            seconds: Some(1_795_827_723),
            nanos: Some(0),
        }),
        last_timestamp: Some(pb_meta::Time::default()),
        event_time: Some(pb_meta::MicroTime {
            seconds: Some(1_795_827_723),
            nanos: Some(123_456_789),
        }),
        count: Some(3),
        ..Default::default()
    };
    let got = decode(&body_of::<core::Event>(&message)).unwrap();
    let timestamp = "2026-11-28T01:02:03Z".parse().unwrap();
    let want = openapi(&core::Event {
        metadata: meta("e1", Some("default")),
        involved_object: core::ObjectReference {
            kind: s("Pod"),
            name: s("web"),
            ..Default::default()
        },
        reason: s("Started"),
        first_timestamp: Some(Time(timestamp)),
        event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            "2026-11-28T01:02:03.123456Z".parse().unwrap(),
        )),
        count: Some(3),
        // Required (no omitempty) in Go, so Go writes them even empty; k8s-openapi has them
        // optional.
        reporting_component: s(""),
        reporting_instance: s(""),
        ..Default::default()
    });
    assert_eq!(got, want);
    assert_eq!(got["firstTimestamp"], "2026-11-28T01:02:03Z");
}

#[test]
fn every_supported_kind_decodes_an_empty_object() {
    for (api_version, kind) in SUPPORTED_KINDS {
        let got = decode(&envelope(api_version, kind, Vec::new())).unwrap();
        assert_eq!(got["apiVersion"], *api_version);
        assert_eq!(got["kind"], *kind);
    }
}

#[test]
fn rbac_and_lease_match_k8s_openapi() {
    use k8s_openapi::api::coordination::v1 as coordination;
    use k8s_openapi::api::rbac::v1 as rbac;
    use k8s_pb::api::coordination::v1 as pb_coordination;
    use k8s_pb::api::rbac::v1 as pb_rbac;

    let role = pb_rbac::ClusterRole {
        metadata: Some(go_meta("reader", "")),
        rules: vec![pb_rbac::PolicyRule {
            verbs: vec!["get".to_owned(), "list".to_owned()],
            api_groups: vec![String::new()],
            resources: vec!["pods".to_owned()],
            ..Default::default()
        }],
        aggregation_rule: None,
    };
    let got = decode(&body_of::<rbac::ClusterRole>(&role)).unwrap();
    let want = openapi(&rbac::ClusterRole {
        metadata: meta("reader", None),
        rules: Some(vec![rbac::PolicyRule {
            verbs: vec!["get".to_owned(), "list".to_owned()],
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".to_owned()]),
            ..Default::default()
        }]),
        aggregation_rule: None,
    });
    assert_eq!(got, want);

    let lease = pb_coordination::Lease {
        metadata: Some(go_meta("leader", "kube-system")),
        spec: Some(pb_coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(15),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    let got = decode(&body_of::<coordination::Lease>(&lease)).unwrap();
    let want = openapi(&coordination::Lease {
        metadata: meta("leader", Some("kube-system")),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(15),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    });
    assert_eq!(got, want);
}

#[test]
fn errors_are_typed() {
    assert!(matches!(
        decode(b"{\"kind\":1}"),
        Err(ProtobufError::BadMagic)
    ));
    assert!(matches!(decode(b""), Err(ProtobufError::BadMagic)));
    assert!(matches!(
        decode(b"k8s\0\x0a\xff"),
        Err(ProtobufError::InvalidEnvelope(_))
    ));
    assert!(matches!(
        decode(b"k8s\0"),
        Err(ProtobufError::MissingTypeMeta)
    ));
    let err = decode(&envelope("batch/v1", "Job", Vec::new())).unwrap_err();
    assert!(matches!(err, ProtobufError::UnsupportedKind { .. }));
    assert_eq!(
        err.to_string(),
        "protobuf bodies of batch/v1, Kind=Job are not supported; send JSON"
    );
    // Field 1 (metadata) of Namespace declared 5 bytes long with none following.
    let err = decode(&envelope("v1", "Namespace", vec![0x0a, 0x05])).unwrap_err();
    assert!(
        matches!(&err, ProtobufError::InvalidObject { kind, .. } if kind == "Namespace"),
        "{err}"
    );
    let bad_intstr = pb::Service {
        spec: Some(pb::ServiceSpec {
            ports: vec![pb::ServicePort {
                target_port: Some(pb_intstr::IntOrString {
                    r#type: Some(7),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = decode(&body_of::<core::Service>(&bad_intstr)).unwrap_err();
    assert!(matches!(err, ProtobufError::InvalidValue { .. }), "{err}");
    let mut gzip = envelope("v1", "Namespace", Vec::new());
    Unknown {
        content_encoding: s("gzip"),
        ..Default::default()
    }
    .encode(&mut gzip)
    .unwrap();
    assert!(matches!(
        decode(&gzip),
        Err(ProtobufError::UnsupportedContentEncoding(_))
    ));
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&body);
        }

        #[test]
        fn on_arbitrary_envelopes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut framed = b"k8s\0".to_vec();
            framed.extend(body);
            let _ = decode(&framed);
        }

        #[test]
        fn on_arbitrary_objects(
            kind in 0..SUPPORTED_KINDS.len(),
            raw in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let (api_version, kind) = SUPPORTED_KINDS[kind];
            let _ = decode(&envelope(api_version, kind, raw));
        }
    }
}

//! The Table envelope: list metadata, column definitions on the wire, row objects for
//! each `includeObject`, and row conditions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use slipway_tables::{IncludeObject, table};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_714_564_800)
}

fn running_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "x", "namespace": "default", "uid": "0b9c6a43-0000-4000-8000-000000000001",
            "resourceVersion": "1007", "creationTimestamp": "2024-05-01T11:55:00Z", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "x", "image": "nginx"}], "nodeName": "node1"},
        "status": {"phase": "Running", "podIP": "10.0.0.5",
            "containerStatuses": [{"name": "x", "ready": true, "restartCount": 0, "state": {"running": {}}}]},
    })
}

#[test]
fn pod_list_as_kubectl_receives_it() {
    let got = table(
        "",
        "Pod",
        &[running_pod()],
        json!({"resourceVersion": "1008", "continue": "", "remainingItemCount": null, "selfLink": "/x"}),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(got["kind"], "Table");
    assert_eq!(got["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        got["metadata"],
        json!({"resourceVersion": "1008", "continue": ""})
    );
    assert_eq!(
        got["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name",
            "description": got["columnDefinitions"][0]["description"], "priority": 0})
    );
    assert_eq!(got["columnDefinitions"][5]["name"], "IP");
    assert_eq!(got["columnDefinitions"][5]["priority"], 1);
    assert_eq!(got["columnDefinitions"][5]["format"], "");
    assert_eq!(
        got["rows"],
        json!([{
            "cells": ["x", "1/1", "Running", "0", "5m", "10.0.0.5", "node1", "<none>", "<none>"],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": running_pod()["metadata"]},
        }])
    );
}

#[test]
fn include_object_variants() {
    let pod = running_pod();
    let full = table(
        "",
        "Pod",
        std::slice::from_ref(&pod),
        Value::Null,
        IncludeObject::Object,
        now(),
    );
    assert_eq!(full["rows"][0]["object"], pod);
    assert_eq!(full["metadata"], json!({}));

    let none = table(
        "",
        "Pod",
        std::slice::from_ref(&pod),
        Value::Null,
        IncludeObject::None,
        now(),
    );
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(none["rows"][0]["cells"][0], "x");

    let no_metadata = table(
        "",
        "Pod",
        &[json!({"spec": {}})],
        json!("junk"),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(no_metadata["rows"][0]["object"]["metadata"], json!({}));
    assert_eq!(no_metadata["metadata"], json!({}));
}

#[test]
fn include_object_parsing() {
    assert_eq!(IncludeObject::from_query(None), Ok(IncludeObject::Metadata));
    assert_eq!(
        IncludeObject::from_query(Some("")),
        Ok(IncludeObject::Metadata)
    );
    assert_eq!(
        IncludeObject::from_query(Some("Object")),
        Ok(IncludeObject::Object)
    );
    assert_eq!(
        IncludeObject::from_query(Some("None")),
        Ok(IncludeObject::None)
    );
    assert_eq!("Metadata".parse(), Ok(IncludeObject::Metadata));
    let err = IncludeObject::from_query(Some("object")).expect_err("case matters");
    assert_eq!(err.value(), "object");
    assert!(err.to_string().contains("\"object\""), "{err}");
}

#[test]
fn finished_pods_carry_row_conditions() {
    let finished = |phase: &str| json!({"metadata": {"name": "job-1"}, "spec": {"containers": [{"name": "job"}]}, "status": {"phase": phase}});
    let rows = table(
        "",
        "Pod",
        &[
            finished("Succeeded"),
            finished("Failed"),
            finished("Running"),
        ],
        Value::Null,
        IncludeObject::None,
        now(),
    );
    assert_eq!(
        rows["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
    );
    assert_eq!(
        rows["rows"][1]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}])
    );
    assert!(rows["rows"][2].get("conditions").is_none());
}

#[test]
fn empty_list_and_watch_event_rows() {
    let empty = table(
        "apps",
        "Deployment",
        &[],
        json!({"resourceVersion": "5"}),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(empty["columnDefinitions"].as_array().map(Vec::len), Some(8));

    let event = table(
        "",
        "Namespace",
        &[json!({"metadata": {"name": "a"}})],
        Value::Null,
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(event["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        event["rows"][0]["cells"],
        json!(["a", "Active", "<unknown>"])
    );
}

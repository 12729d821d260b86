//! Unknown-field detection by the typed round trip, and decode errors naming their field.

use serde_json::json;
use slipway_admission::{FieldValidation, Rejection, admit};

use super::{deployment, pod, set};

#[test]
fn unknown_fields_are_reported_with_nested_paths() {
    let cases = [
        (
            "/spec/containers/0/imagee",
            vec!["spec.containers[0].imagee"],
        ),
        ("/spec/foo", vec!["spec.foo"]),
        ("/metadata/labelz", vec!["metadata.labelz"]),
        ("/bogus", vec!["bogus"]),
        (
            "/spec/containers/0/ports",
            vec!["spec.containers[0].ports[1].bad"],
        ),
    ];
    for (pointer, want) in cases {
        let mut object = pod();
        let value = if pointer.ends_with("ports") {
            json!([{"containerPort": 80}, {"containerPort": 81, "bad": true}])
        } else {
            json!({"nested": 1})
        };
        set(&mut object, pointer, value);
        let got = admit("v1", "Pod", object, None, FieldValidation::Strict);
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        assert_eq!(got, Err(Rejection::UnknownFields(want)), "{pointer}");
    }
}

#[test]
fn several_unknown_fields_join_like_upstream() {
    let mut object = deployment();
    set(&mut object, "/spec/replica", json!(3));
    set(
        &mut object,
        "/spec/template/spec/containers/0/imagee",
        json!("x"),
    );
    let err = admit(
        "apps/v1",
        "Deployment",
        object,
        None,
        FieldValidation::Strict,
    )
    .expect_err("unknown fields");
    assert_eq!(
        err.to_string(),
        "strict decoding error: unknown field \"spec.replica\", unknown field \"spec.template.spec.containers[0].imagee\""
    );
}

#[test]
fn warn_drops_and_warns_ignore_drops_silently() {
    let mut object = pod();
    set(&mut object, "/spec/containers/0/imagee", json!("x"));
    let warned =
        admit("v1", "Pod", object.clone(), None, FieldValidation::Warn).expect("warn admits");
    assert_eq!(
        warned.warnings,
        ["unknown field \"spec.containers[0].imagee\""]
    );
    assert!(warned.object.pointer("/spec/containers/0/imagee").is_none());
    let ignored = admit("v1", "Pod", object, None, FieldValidation::Ignore).expect("ignore admits");
    assert!(ignored.warnings.is_empty());
    assert!(
        ignored
            .object
            .pointer("/spec/containers/0/imagee")
            .is_none()
    );
}

#[test]
fn nulls_and_free_form_fields_are_not_unknown() {
    let mut object = pod();
    set(&mut object, "/spec/nodeName", json!(null));
    set(&mut object, "/metadata/creationTimestamp", json!(null));
    set(
        &mut object,
        "/metadata/managedFields",
        json!([{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:anything": {}}}}]),
    );
    set(&mut object, "/spec/volumes", json!([]));
    let admitted = admit("v1", "Pod", object, None, FieldValidation::Strict).expect("admits");
    assert!(admitted.warnings.is_empty());
}

#[test]
fn type_errors_are_bad_requests_naming_the_field() {
    let cases = [
        ("/spec/replicas", json!("three"), "spec.replicas"),
        (
            "/spec/template/spec/containers/0/ports",
            json!([{"containerPort": "http"}]),
            "spec.template.spec.containers[0].ports[0].containerPort",
        ),
        (
            "/spec/template/spec/containers",
            json!({}),
            "spec.template.spec.containers",
        ),
        ("/metadata/labels", json!({"a": 1}), "metadata.labels.a"),
        (
            "/spec/template/spec/containers/0",
            json!("nginx"),
            "spec.template.spec.containers[0]",
        ),
    ];
    for (pointer, value, want) in cases {
        let mut object = deployment();
        set(&mut object, pointer, value);
        match admit(
            "apps/v1",
            "Deployment",
            object,
            None,
            FieldValidation::Ignore,
        ) {
            Err(Rejection::Malformed { path, message }) => {
                assert_eq!(path, want, "{pointer}");
                assert!(message.contains(&format!("\"{want}\"")), "{message}");
            }
            other => panic!("{pointer}: {other:?}"),
        }
    }
}

#[test]
fn wrong_api_version_in_the_body_is_a_bad_request() {
    let mut object = pod();
    set(&mut object, "/apiVersion", json!("v2"));
    let got = admit("v1", "Pod", object, None, FieldValidation::Strict);
    assert!(
        matches!(&got, Err(Rejection::Malformed { path, .. }) if path == "apiVersion"),
        "{got:?}"
    );
}

#[test]
fn missing_type_fields_are_filled_from_the_url() {
    let mut object = pod();
    let map = object.as_object_mut().expect("object");
    map.remove("apiVersion");
    map.remove("kind");
    let admitted = admit("v1", "Pod", object, None, FieldValidation::Strict).expect("admits");
    assert_eq!(admitted.object["apiVersion"], "v1");
    assert_eq!(admitted.object["kind"], "Pod");
}

#[test]
fn unknown_kinds_pass_through_unchanged() {
    let object = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"x": 1}});
    let admitted = admit(
        "example.com/v1",
        "Widget",
        object.clone(),
        None,
        FieldValidation::Strict,
    )
    .expect("admits");
    assert_eq!(admitted.object, object);
}

#[test]
fn field_validation_parses_the_query_parameter() {
    assert_eq!(FieldValidation::from_query(None), Ok(FieldValidation::Warn));
    assert_eq!(
        FieldValidation::from_query(Some("")),
        Ok(FieldValidation::Warn)
    );
    assert_eq!(
        FieldValidation::from_query(Some("Strict")),
        Ok(FieldValidation::Strict)
    );
    assert_eq!(
        FieldValidation::from_query(Some("Ignore")),
        Ok(FieldValidation::Ignore)
    );
    let err = FieldValidation::from_query(Some("strict")).expect_err("case-sensitive");
    assert_eq!(
        err.to_string(),
        "fieldValidation: Unsupported value: \"strict\": supported values: \"Ignore\", \"Warn\", \"Strict\""
    );
}

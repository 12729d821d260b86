//! The review APIs kubectl's `auth` commands use: SelfSubjectReview (`whoami`),
//! SelfSubjectAccessReview (`can-i`), SelfSubjectRulesReview (`can-i --list`) and, for
//! those allowed to ask about others, SubjectAccessReview. Nothing is stored.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use slipway_access::{Attributes, Decision, Target, User};

use crate::ApiState;
use crate::handlers::json_response;
use crate::status::ApiError;

/// The review in a JSON or protobuf body (kubectl's typed clients send protobuf).
fn body(headers: &HeaderMap, bytes: &Bytes) -> Result<Value, ApiError> {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/vnd.kubernetes.protobuf"));
    let review = if protobuf {
        slipway_protobuf::decode(bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not a valid review: {e}"))
        })?
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not a valid review: {e}"))
        })?
    };
    if review.is_object() {
        Ok(review)
    } else {
        Err(ApiError::bad_request(
            "the request body is not a valid review: not an object",
        ))
    }
}

fn created(review: Value) -> Response {
    json_response(StatusCode::CREATED, &review)
}

/// A review answered with its status, or the error that stopped it.
fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(review) => created(review),
        Err(e) => e.into_response(),
    }
}

/// `whoami`: the user and groups the request's credential stands for.
pub(crate) async fn self_subject(user: Option<Extension<User>>) -> Response {
    let Some(Extension(user)) = user else {
        return ApiError::unauthorized().into_response();
    };
    created(json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "creationTimestamp": null },
        "status": { "userInfo": { "username": user.name, "groups": user.groups } },
    }))
}

fn str_field<'v>(value: &'v Value, field: &str) -> &'v str {
    value[field].as_str().unwrap_or_default()
}

/// The attributes a review's spec asks about.
fn attributes(spec: &Value) -> Result<Attributes, ApiError> {
    let resource = &spec["resourceAttributes"];
    let non_resource = &spec["nonResourceAttributes"];
    match (resource.is_object(), non_resource.is_object()) {
        (true, false) => Ok(Attributes {
            verb: str_field(resource, "verb").to_owned(),
            target: Target::Resource {
                group: str_field(resource, "group").to_owned(),
                resource: str_field(resource, "resource").to_owned(),
                subresource: str_field(resource, "subresource").to_owned(),
                namespace: str_field(resource, "namespace").to_owned(),
                name: str_field(resource, "name").to_owned(),
            },
        }),
        (false, true) => Ok(Attributes {
            verb: str_field(non_resource, "verb").to_owned(),
            target: Target::NonResource {
                path: str_field(non_resource, "path").to_owned(),
            },
        }),
        _ => Err(ApiError::unprocessable(
            "spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

fn decide(state: &ApiState, user: &User, attributes: &Attributes) -> Value {
    match state
        .authorization
        .as_ref()
        .map(|a| a.decide(user, attributes))
    {
        None | Some(Decision::Allow) => json!({ "allowed": true }),
        Some(Decision::Deny(reason)) => {
            json!({ "allowed": false, "denied": true, "reason": reason })
        }
        Some(Decision::NoOpinion) => json!({ "allowed": false }),
    }
}

/// `can-i`: whether the caller may do what the spec says.
pub(crate) async fn self_access(
    State(state): State<Arc<ApiState>>,
    user: Option<Extension<User>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let Some(Extension(user)) = user else {
        return ApiError::unauthorized().into_response();
    };
    let result = body(&headers, &bytes).and_then(|mut review| {
        let attributes = attributes(&review["spec"])?;
        review["status"] = decide(&state, &user, &attributes);
        Ok(review)
    });
    answer(result)
}

/// `can-i` about someone else: the spec names the user and groups.
pub(crate) async fn subject_access(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let result = body(&headers, &bytes).and_then(|mut review| {
        let spec = &review["spec"];
        let user = User {
            name: str_field(spec, "user").to_owned(),
            groups: serde_json::from_value(spec["groups"].clone()).unwrap_or_default(),
        };
        if user.name.is_empty() && user.groups.is_empty() {
            return Err(ApiError::unprocessable(
                "spec.user: Invalid value: at least one of user or group must be specified",
            ));
        }
        let attributes = attributes(spec)?;
        review["status"] = decide(&state, &user, &attributes);
        Ok(review)
    });
    answer(result)
}

/// `can-i --list`: the rules the caller holds in the spec's namespace.
pub(crate) async fn self_rules(
    State(state): State<Arc<ApiState>>,
    user: Option<Extension<User>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let Some(Extension(user)) = user else {
        return ApiError::unauthorized().into_response();
    };
    let result = body(&headers, &bytes).map(|mut review| {
        let namespace = str_field(&review["spec"], "namespace").to_owned();
        let rules = match &state.authorization {
            Some(authorization) => authorization.policy().rules_for(&user, &namespace),
            None => Vec::new(),
        };
        let (resource_rules, non_resource_rules): (Vec<_>, Vec<_>) = rules
            .into_iter()
            .partition(|r| r.non_resource_urls.is_none());
        let resource_rules: Vec<Value> = resource_rules
            .into_iter()
            .map(|r| {
                let mut rule = json!({
                    "verbs": r.verbs,
                    "apiGroups": r.api_groups.unwrap_or_default(),
                    "resources": r.resources.unwrap_or_default(),
                });
                if let Some(names) = r.resource_names.filter(|n| !n.is_empty()) {
                    rule["resourceNames"] = json!(names);
                }
                rule
            })
            .collect();
        let non_resource_rules: Vec<Value> = non_resource_rules
            .into_iter()
            .map(|r| json!({ "verbs": r.verbs, "nonResourceURLs": r.non_resource_urls }))
            .collect();
        review["status"] = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            // Without authorization nothing is known; with it, RBAC is the whole story
            // except what the node and platform authorizers add.
            "incomplete": state.authorization.is_none(),
        });
        review
    });
    answer(result)
}

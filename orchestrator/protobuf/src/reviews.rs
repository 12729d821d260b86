//! The review kinds kubectl's `auth` commands send as protobuf (SelfSubjectReview,
//! SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview), decoded by hand:
//! only their specs matter, they are never stored, and every field is a string or a list.

use k8s_pb::api::authentication::v1::SelfSubjectReview;
use k8s_pb::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview, SelfSubjectRulesReview,
    SubjectAccessReview,
};
use prost::Message;
use serde_json::{Map, Value, json};

use crate::ProtobufError;

fn resource(a: &ResourceAttributes) -> Value {
    let mut out = Map::new();
    for (key, value) in [
        ("namespace", &a.namespace),
        ("verb", &a.verb),
        ("group", &a.group),
        ("version", &a.version),
        ("resource", &a.resource),
        ("subresource", &a.subresource),
        ("name", &a.name),
    ] {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            out.insert(key.to_owned(), json!(value));
        }
    }
    Value::Object(out)
}

fn non_resource(a: &NonResourceAttributes) -> Value {
    json!({ "path": a.path.clone().unwrap_or_default(), "verb": a.verb.clone().unwrap_or_default() })
}

fn attributes(
    spec: &mut Map<String, Value>,
    resource_attributes: Option<&ResourceAttributes>,
    non_resource_attributes: Option<&NonResourceAttributes>,
) {
    if let Some(a) = resource_attributes {
        spec.insert("resourceAttributes".to_owned(), resource(a));
    }
    if let Some(a) = non_resource_attributes {
        spec.insert("nonResourceAttributes".to_owned(), non_resource(a));
    }
}

fn decode<T: Message + Default>(
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Result<T, ProtobufError> {
    T::decode(raw).map_err(|e| ProtobufError::InvalidObject {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        reason: e.to_string(),
    })
}

/// The review's JSON (its spec only), or `None` for a kind that is not a review.
pub(crate) fn object(
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Option<Result<Value, ProtobufError>> {
    let mut spec = Map::new();
    let decoded = match (api_version, kind) {
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            decode::<SelfSubjectReview>(api_version, kind, raw).map(drop)
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            decode::<SelfSubjectAccessReview>(api_version, kind, raw).map(|review| {
                let s = review.spec.unwrap_or_default();
                attributes(
                    &mut spec,
                    s.resource_attributes.as_ref(),
                    s.non_resource_attributes.as_ref(),
                );
            })
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            decode::<SubjectAccessReview>(api_version, kind, raw).map(|review| {
                let s = review.spec.unwrap_or_default();
                attributes(
                    &mut spec,
                    s.resource_attributes.as_ref(),
                    s.non_resource_attributes.as_ref(),
                );
                spec.insert("user".to_owned(), json!(s.user.unwrap_or_default()));
                spec.insert("groups".to_owned(), json!(s.groups));
            })
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            decode::<SelfSubjectRulesReview>(api_version, kind, raw).map(|review| {
                let s = review.spec.unwrap_or_default();
                spec.insert(
                    "namespace".to_owned(),
                    json!(s.namespace.unwrap_or_default()),
                );
            })
        }
        _ => return None,
    };
    Some(
        decoded.map(
            |()| json!({ "apiVersion": api_version, "kind": kind, "metadata": {}, "spec": spec }),
        ),
    )
}

//! Kubernetes protobuf request bodies (`k8s\0` + `runtime.Unknown`) decoded into the JSON the
//! rest of the API server works on.
//!
//! kubectl's typed generators (`kubectl create namespace|configmap|secret|deployment|service`)
//! send only protobuf, and do not fall back to JSON on 415. The objects are decoded with
//! k8s-pb's prost types, so malformed input is refused by prost rather than by hand-written
//! wire parsing (prost also bounds nesting depth, so hostile input cannot overflow the stack);
//! `generated.rs` then writes each field under its Go JSON name with Go's omitempty rules.

mod generated;
mod json;
mod reviews;
mod wellknown;

use k8s_pb::api::{apps, autoscaling, coordination, core, networking, rbac};
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::Value;

use crate::json::Json;

/// What precedes the `runtime.Unknown` envelope in every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf prefix k8s\\0")]
    BadMagic,
    #[error("invalid protobuf envelope (runtime.Unknown): {0}")]
    InvalidEnvelope(String),
    #[error("the protobuf envelope names no apiVersion and kind")]
    MissingTypeMeta,
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// For the API server's 415: the body is well-formed, but of a kind not decoded here.
    #[error("protobuf bodies of {api_version}, Kind={kind} are not supported; send JSON")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("invalid protobuf {api_version}, Kind={kind}: {reason}")]
    InvalidObject {
        api_version: String,
        kind: String,
        reason: String,
    },
    #[error("invalid protobuf {api_version}, Kind={kind}: {source}")]
    InvalidValue {
        api_version: String,
        kind: String,
        source: InvalidValue,
    },
}

/// A field that decoded as protobuf but has no JSON form.
#[derive(Debug, thiserror::Error)]
pub enum InvalidValue {
    #[error("IntOrString has type {0}; only 0 (int) and 1 (string) exist")]
    IntOrStringType(i64),
    #[error("timestamp {seconds}s {nanos}ns is out of range")]
    InvalidTime { seconds: i64, nanos: i32 },
    #[error("a floating-point field is NaN or infinite")]
    NonFiniteNumber,
    #[error("embedded JSON is invalid: {0}")]
    EmbeddedJson(String),
}

macro_rules! kinds {
    ($($api_version:literal, $kind:literal => $ty:ty;)*) => {
        /// The `(apiVersion, kind)` pairs whose protobuf bodies [`decode`] understands.
        pub const SUPPORTED_KINDS: &[(&str, &str)] = &[$(($api_version, $kind)),*];

        fn object(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, ProtobufError>> {
            match (api_version, kind) {
                $(($api_version, $kind) => Some(object_as::<$ty>(api_version, kind, raw)),)*
                _ => None,
            }
        }
    };
}

kinds! {
    "v1", "Namespace" => core::v1::Namespace;
    "v1", "Pod" => core::v1::Pod;
    "v1", "Binding" => core::v1::Binding;
    "v1", "Service" => core::v1::Service;
    "v1", "Endpoints" => core::v1::Endpoints;
    "v1", "ConfigMap" => core::v1::ConfigMap;
    "v1", "Secret" => core::v1::Secret;
    "v1", "ResourceQuota" => core::v1::ResourceQuota;
    "v1", "LimitRange" => core::v1::LimitRange;
    "v1", "Node" => core::v1::Node;
    "v1", "Event" => core::v1::Event;
    "v1", "ServiceAccount" => core::v1::ServiceAccount;
    "apps/v1", "Deployment" => apps::v1::Deployment;
    "apps/v1", "ReplicaSet" => apps::v1::ReplicaSet;
    "autoscaling/v1", "Scale" => autoscaling::v1::Scale;
    "coordination.k8s.io/v1", "Lease" => coordination::v1::Lease;
    "networking.k8s.io/v1", "Ingress" => networking::v1::Ingress;
    "rbac.authorization.k8s.io/v1", "Role" => rbac::v1::Role;
    "rbac.authorization.k8s.io/v1", "RoleBinding" => rbac::v1::RoleBinding;
    "rbac.authorization.k8s.io/v1", "ClusterRole" => rbac::v1::ClusterRole;
    "rbac.authorization.k8s.io/v1", "ClusterRoleBinding" => rbac::v1::ClusterRoleBinding;
}

/// Decodes a `application/vnd.kubernetes.protobuf` body into the object's Kubernetes JSON,
/// with `apiVersion` and `kind` taken from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    let unknown =
        Unknown::decode(envelope).map_err(|e| ProtobufError::InvalidEnvelope(e.to_string()))?;
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::UnsupportedContentEncoding(encoding));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let raw = unknown.raw.unwrap_or_default();
    object(&api_version, &kind, &raw)
        .or_else(|| reviews::object(&api_version, &kind, &raw))
        .unwrap_or(Err(ProtobufError::UnsupportedKind { api_version, kind }))
}

fn object_as<T: Message + Default + Json>(
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Result<Value, ProtobufError> {
    let object = T::decode(raw).map_err(|e| ProtobufError::InvalidObject {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        reason: e.to_string(),
    })?;
    let mut value = object
        .json()
        .map_err(|source| ProtobufError::InvalidValue {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            source,
        })?;
    if let Value::Object(fields) = &mut value {
        fields.insert(
            "apiVersion".to_owned(),
            Value::String(api_version.to_owned()),
        );
        fields.insert("kind".to_owned(), Value::String(kind.to_owned()));
    }
    Ok(value)
}

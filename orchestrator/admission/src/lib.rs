//! Admission for every create and update the API server accepts: the object is decoded into
//! its typed k8s-openapi struct (which finds unknown fields and type errors), defaulted as
//! Kubernetes' `SetDefaults_*` functions do, and validated with Kubernetes' field paths and
//! messages. No IO: the API server passes the object, the stored object on updates and the
//! `fieldValidation` directive, and maps a [`Rejection`] to a Status.
//!
//! Kinds without a typed struct here pass through unchanged; kinds with a struct but no rules
//! get the strict decoding only.

mod checks;
mod data;
mod decode;
mod defaults;
mod pod;
mod service;
mod workloads;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, Pod, ResourceQuota, Secret,
    Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use slipway_model::validation::FieldError;

/// What to do about fields the typed struct does not know, from the `fieldValidation` query
/// parameter of POST, PUT and PATCH. Kubernetes (1.27+, where server-side field validation is
/// GA) treats an absent parameter as `Warn`; kubectl sends `Strict` unless told
/// `--validate=warn|ignore|false`. Type errors are rejected whatever the directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Reject the request with 400 if any field would be dropped.
    Strict,
    /// Drop unknown fields and report each in a `Warning` header.
    #[default]
    Warn,
    /// Drop unknown fields silently.
    Ignore,
}

impl FieldValidation {
    /// Reads the query parameter; absent or empty means the server default, [`Self::Warn`].
    /// Values are case-sensitive, as upstream's `ValidateFieldValidation` checks them.
    pub fn from_query(value: Option<&str>) -> Result<Self, FieldError> {
        match value.unwrap_or_default() {
            "" | "Warn" => Ok(Self::Warn),
            "Strict" => Ok(Self::Strict),
            "Ignore" => Ok(Self::Ignore),
            other => Err(FieldError::not_supported(
                "fieldValidation",
                other,
                &["Ignore", "Warn", "Strict"],
            )),
        }
    }
}

/// An object that passed admission: decoded, defaulted and valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The object as it should be stored: unknown fields dropped, defaults filled in.
    pub object: Value,
    /// Texts for `Warning` response headers, e.g. `unknown field "spec.foo"`.
    pub warnings: Vec<String>,
}

/// Why an object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Fields the typed struct does not know, under [`FieldValidation::Strict`]: a 400
    /// `BadRequest` whose message is this error's text, as upstream's strict decoder words it.
    #[error("strict decoding error: {}", unknown_field_list(.0))]
    UnknownFields(Vec<String>),
    /// The JSON does not fit the typed struct (a string where a number belongs, say): a 400
    /// `BadRequest`. Upstream reports these from its JSON decoder, before any validation.
    #[error("{message}")]
    Malformed {
        /// The field that did not decode, e.g. `spec.replicas`; empty for the object itself.
        path: String,
        /// The whole message, naming the field.
        message: String,
    },
    /// Validation failed: a 422 `Invalid` Status with one cause per error.
    #[error("{}", slipway_model::validation::aggregate(.0))]
    Invalid(Vec<FieldError>),
}

fn unknown_field_list(paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Admits `object` of `api_version`/`kind` on create (`old` is `None`) or update (`old` is the
/// stored object). `apiVersion` and `kind` are filled in when the body lacks them, because the
/// typed decoders require them and the URL already says what the object is.
pub fn admit(
    api_version: &str,
    kind: &str,
    object: Value,
    old: Option<&Value>,
    field_validation: FieldValidation,
) -> Result<Admitted, Rejection> {
    let run = match (api_version, kind) {
        ("v1", "Pod") => run::<Pod>,
        ("v1", "Service") => run::<Service>,
        ("v1", "Secret") => run::<Secret>,
        ("v1", "ConfigMap") => run::<ConfigMap>,
        ("v1", "ResourceQuota") => run::<ResourceQuota>,
        ("v1", "LimitRange") => run::<LimitRange>,
        ("v1", "Namespace") => run::<Namespace>,
        ("v1", "Endpoints") => run::<Endpoints>,
        ("v1", "Node") => run::<Node>,
        ("v1", "Event") => run::<Event>,
        ("v1", "ServiceAccount") => run::<ServiceAccount>,
        ("v1", "Binding") => run::<Binding>,
        ("apps/v1", "Deployment") => run::<Deployment>,
        ("apps/v1", "ReplicaSet") => run::<ReplicaSet>,
        ("coordination.k8s.io/v1", "Lease") => run::<Lease>,
        ("networking.k8s.io/v1", "Ingress") => run::<Ingress>,
        ("rbac.authorization.k8s.io/v1", "Role") => run::<Role>,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => run::<RoleBinding>,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => run::<ClusterRole>,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => run::<ClusterRoleBinding>,
        _ => {
            return Ok(Admitted {
                object,
                warnings: Vec::new(),
            });
        }
    };
    run(object, old, field_validation)
}

/// Per-kind defaulting and validation; kinds without rules keep the empty defaults.
trait Admit: DeserializeOwned + Serialize + k8s_openapi::Resource {
    /// Fills in defaults; `old` lets updates keep server-assigned values the client omitted.
    fn set_defaults(&mut self, _old: Option<&Self>) {}

    /// Checks the defaulted object; `input` is the body as sent, for the few rules that must
    /// tell an absent field from an empty one the typed struct cannot distinguish.
    fn validate(&self, _input: &Value, _old: Option<&Self>) -> Vec<FieldError> {
        Vec::new()
    }
}

impl Admit for Namespace {}
impl Admit for Endpoints {}
impl Admit for Node {}
impl Admit for Event {}
impl Admit for ServiceAccount {}
impl Admit for Binding {}
impl Admit for Lease {}
impl Admit for Ingress {}
impl Admit for Role {}
impl Admit for RoleBinding {}
impl Admit for ClusterRole {}
impl Admit for ClusterRoleBinding {}

fn run<K: Admit>(
    mut object: Value,
    old: Option<&Value>,
    field_validation: FieldValidation,
) -> Result<Admitted, Rejection> {
    let Some(map) = object.as_object_mut() else {
        return Err(Rejection::Malformed {
            path: String::new(),
            message: format!("the body of a {} must be a JSON object", K::KIND),
        });
    };
    for (key, value) in [("apiVersion", K::API_VERSION), ("kind", K::KIND)] {
        if map.get(key).is_none_or(Value::is_null) {
            map.insert(key.to_owned(), Value::from(value));
        }
    }
    let mut typed: K = decode::decode(&object)?;
    let round_trip = decode::to_value(&typed)?;
    let unknown = decode::unknown_fields(&object, &round_trip);
    let warnings = match field_validation {
        FieldValidation::Strict if !unknown.is_empty() => {
            return Err(Rejection::UnknownFields(unknown));
        }
        FieldValidation::Strict | FieldValidation::Ignore => Vec::new(),
        FieldValidation::Warn => unknown
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect(),
    };
    // The stored object decoded once before, so a failure here means it predates a schema
    // change; the update is then checked as a create rather than refused for the old state.
    let old: Option<K> = old.and_then(|v| serde_json::from_value(v.clone()).ok());
    typed.set_defaults(old.as_ref());
    let errors = typed.validate(&object, old.as_ref());
    if !errors.is_empty() {
        return Err(Rejection::Invalid(errors));
    }
    Ok(Admitted {
        object: decode::to_value(&typed)?,
        warnings,
    })
}

//! The Kubernetes object model shared by every slipway component, without any IO: the
//! `k8s-openapi` types, Kubernetes' validation rules and messages, label and field selectors,
//! and resource quantities.
//!
//! # Kubernetes version
//!
//! [`k8s_openapi`] needs exactly one Kubernetes version feature in the whole build, so it is
//! chosen once, in the workspace's `[workspace.dependencies]`, and never by a member crate:
//! `v1_33`, the earliest that k8s-openapi 0.29 offers. The API server reports 1.32 to clients;
//! the 1.33 types are a superset of what kubectl 1.32 sends, so nothing a client sends is lost.
//! Behaviour reproduced in this crate (messages, parsing quirks) follows apimachinery v0.32.
//!
//! # Modules
//!
//! - [`validation`]: DNS-1123 / DNS-1035 names, qualified names, label values, annotations and
//!   the [`validation::FieldError`] list that becomes a 422 `Invalid` Status.
//! - [`labels`]: label selectors (query-string form and `metav1.LabelSelector`).
//! - [`fields`]: field selectors (`metadata.name=x,spec.nodeName!=y`).
//! - [`quantity`]: exact resource quantities (`100m`, `1.5Gi`) for quotas and scheduling.
//! - [`quota`]: what an object counts against a ResourceQuota.
//! - [`summary`]: the node agent's usage summary, which `metrics.k8s.io` is served from.

use std::fmt;

pub use k8s_openapi;

pub mod fields;
pub mod labels;
pub mod quantity;
pub mod quota;
pub mod summary;
pub mod validation;

/// Writes `items` joined by commas, the form both kinds of selector print and parse: a
/// selector is the conjunction of its comma-separated requirements.
fn write_comma_joined<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

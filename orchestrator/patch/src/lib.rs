//! Patch algorithms over `serde_json::Value` for the API server: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and Kubernetes' strategic merge patch for slipway's resource subset.
//!
//! Every function takes its inputs by reference and returns a new document, so a failed patch
//! never leaves a half-applied object behind. Nesting deeper than [`MAX_DEPTH`] is refused
//! with a typed error instead of risking the stack.

mod json_patch;
mod merge;
mod pointer;
mod strategic;
mod value;

pub use json_patch::{JsonPatchError, json_patch};
pub use merge::{MergePatchError, merge_patch};
pub use pointer::{JsonPointer, PointerError};
pub use strategic::{
    Field, PatchStrategy, Schema, StrategicMergeError, schema_for, strategic_merge,
    strategic_merge_for,
};
pub use value::{MAX_DEPTH, json_eq};

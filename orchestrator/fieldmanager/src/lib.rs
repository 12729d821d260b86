//! Field ownership for server-side apply: which manager set which fields of an object
//! (`metadata.managedFields`), conflicts between managers, and pruning of the fields an
//! applier stopped applying. No IO: the API server calls it inside its write loop.
//!
//! Two operations change ownership, as in Kubernetes' structured-merge-diff:
//! - an **update** (create, replace, patch, a subresource write) takes every field whose
//!   value it changed from whoever owned it, and nobody owns a field that no longer exists;
//! - an **apply** owns exactly the fields of its configuration. A field another manager owns
//!   with a different value is a conflict unless forced (then it changes hands); a field
//!   the applier set last time, left out now and owned by nobody else, is removed.

mod managed;
mod paths;

pub use managed::{ApplyError, Conflict, ManagedFields, Manager, Operation};
pub use paths::{FieldSet, Path, display, from_fields_v1, lookup, paths_of, to_fields_v1};

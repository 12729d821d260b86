//! The OpenAPI v3 documents of the API server: the `/openapi/v3` index and one document per
//! served group-version, generated from the k8s-openapi types (no IO).
//!
//! kubectl fetches the index, then the document of the object's group-version (with the
//! `?hash=` the index gave, which it caches by). From the document it learns that the server
//! validates fields (a PATCH operation of the kind accepts `fieldValidation`), so it sends
//! `fieldValidation=Strict` instead of validating on the client, and it computes strategic
//! merge patches from the schemas' `x-kubernetes-patch-*` extensions.
//!
//! Documents are built once, on first use, and served as bytes.

mod catalog;
mod paths;
mod schemas;
mod tags;

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The Kubernetes version the documents describe, as the API server reports it.
const KUBERNETES_VERSION: &str = "v1.32.0";

struct Document {
    path: String,
    bytes: Arc<Vec<u8>>,
    hash: String,
}

fn documents() -> &'static [Document] {
    static DOCUMENTS: OnceLock<Vec<Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let served = catalog::served();
        served
            .iter()
            .map(|gv| {
                let bytes = serde_json::to_vec(&build(gv, &served))
                    .expect("a JSON value always serializes");
                Document {
                    path: gv.path(),
                    hash: content_hash(&bytes),
                    bytes: Arc::new(bytes),
                }
            })
            .collect()
    })
}

fn build(gv: &catalog::GroupVersion, served: &[catalog::GroupVersion]) -> Value {
    let mut generator = schemas::generator();
    let paths = paths::paths(gv, &mut generator);
    let schemas = schemas::components(gv, served, &paths, generator);
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// Uppercase hex SHA-256, the form of upstream's hashes; kubectl treats it as opaque.
fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02X}");
            hex
        })
}

/// The body of `GET /openapi/v3`: every served group-version with the URL of its document,
/// which carries the document's content hash so clients can cache it for good.
pub fn index() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|doc| {
            (
                doc.path.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{}?hash={}", doc.path, doc.hash) }),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// The serialized JSON document of a group-version, by its index key (`api/v1`,
/// `apis/apps/v1`, ...: the request path after `/openapi/v3/`); `None` for any other.
pub fn document(group_version_path: &str) -> Option<Arc<Vec<u8>>> {
    find(group_version_path).map(|doc| Arc::clone(&doc.bytes))
}

/// The content hash of [`document`]'s bytes, as the index advertises it; usable as an ETag.
pub fn hash(group_version_path: &str) -> Option<&'static str> {
    find(group_version_path).map(|doc| doc.hash.as_str())
}

fn find(group_version_path: &str) -> Option<&'static Document> {
    documents()
        .iter()
        .find(|doc| doc.path == group_version_path)
}

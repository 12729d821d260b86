//! The kinds the API serves, discovered once at start through the API's own discovery
//! documents: the garbage collector watches them all and the namespace controller empties
//! namespaces of them.

use kube::Client;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};

use crate::reconciler::Error;

/// A served kind.
#[derive(Debug, Clone)]
pub struct Kind {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
    /// Whether a whole collection can be deleted in one request.
    pub delete_collection: bool,
}

/// Every served kind that can be listed, watched and deleted.
///
/// # Errors
///
/// [`Error::Discovery`] when the discovery documents cannot be read.
pub async fn discover(client: &Client) -> Result<Vec<Kind>, Error> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| Error::Discovery(e.to_string()))?;
    let mut kinds = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if supports(&caps, &[verbs::LIST, verbs::WATCH, verbs::DELETE]) {
                kinds.push(Kind {
                    namespaced: caps.scope == Scope::Namespaced,
                    delete_collection: supports(&caps, &[verbs::DELETE_COLLECTION]),
                    resource,
                });
            }
        }
    }
    Ok(kinds)
}

fn supports(caps: &ApiCapabilities, wanted: &[&str]) -> bool {
    wanted.iter().all(|verb| caps.supports_operation(verb))
}

//! Reads: one object, or a list page filtered by selectors and continued by token.

use serde_json::{Value, json};
use slipway_store::{Error as StoreError, ListOptions};

use super::{Ctx, with_type};
use crate::objects::{self, decode};
use crate::status::{ApiError, ApiResult, from_store};

impl Ctx {
    /// A list page, filtered; returns the `<Kind>List`.
    pub(crate) async fn list(&self) -> ApiResult<Value> {
        let resource = self.resource();
        let filter = self.filter()?;
        let limit = match self.param("limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
            None => 0,
        };
        let prefix = objects::prefix(resource, self.namespace());
        let (mut revision, mut start_after) = match self.param("continue") {
            Some(token) => {
                let (revision, key) = decode_continue(token, &prefix)?;
                (Some(revision), Some(key))
            }
            None => (self.list_revision()?, None),
        };
        let mut items = Vec::new();
        let mut next = None;
        // Selectors apply after the store pages, so keep reading until the page is full.
        loop {
            let page = self
                .state
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        limit: (limit > 0).then_some(limit),
                        start_after: start_after.clone(),
                    },
                )
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if self.param("continue").is_some() => ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ),
                    e => from_store(resource, "", e),
                })?;
            revision = Some(page.revision);
            for kv in &page.kvs {
                let object = decode(kv)?;
                if filter.matches(&object) {
                    items.push(with_type(resource, object));
                }
            }
            let last = page.kvs.last().map(|kv| kv.key.clone());
            if !page.more || last.is_none() {
                break;
            }
            if limit > 0 && items.len() >= limit {
                next = last;
                break;
            }
            start_after = last;
        }
        let revision = revision.unwrap_or_default();
        let mut metadata = json!({ "resourceVersion": revision.to_string() });
        if let Some(key) = next {
            metadata["continue"] = json!(encode_continue(revision, &key));
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// The revision a list reads at: `resourceVersionMatch=Exact` pins it; otherwise the
    /// newest state satisfies "not older than".
    pub(super) fn list_revision(&self) -> ApiResult<Option<i64>> {
        let rv = self.param("resourceVersion").filter(|rv| !rv.is_empty());
        match (self.param("resourceVersionMatch"), rv) {
            (Some("Exact"), Some(rv)) => objects::parse_resource_version(rv).map(Some),
            (Some("Exact"), None) => Err(ApiError::bad_request(
                "resourceVersionMatch=Exact requires a resourceVersion",
            )),
            (Some("NotOlderThan") | None, Some(rv)) => {
                objects::parse_resource_version(rv)?;
                Ok(None)
            }
            (None | Some("NotOlderThan"), None) => Ok(None),
            (Some(other), _) => Err(ApiError::bad_request(format!(
                "unsupported resourceVersionMatch: {other:?}"
            ))),
        }
    }
}

/// A continue token: the revision the list started at and the last key returned. Opaque to
/// clients; hex keeps it URL-safe without another dependency.
fn encode_continue(revision: i64, key: &str) -> String {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{revision}.{hex}")
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request(format!("invalid continue token: {token:?}"));
    let (revision, hex) = token.split_once('.').ok_or_else(bad)?;
    let revision: i64 = revision.parse().map_err(|_| bad())?;
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    // A token from another list must not read outside this one.
    if !key.starts_with(prefix) {
        return Err(bad());
    }
    Ok((revision, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_list() {
        let token = encode_continue(42, "/registry/core/pods/a/web");
        assert_eq!(
            decode_continue(&token, "/registry/core/pods/").unwrap(),
            (42, "/registry/core/pods/a/web".to_owned())
        );
        assert!(decode_continue(&token, "/registry/core/secrets/").is_err());
        for bad in ["", "x", "1.zz", "1.abc", "q.00"] {
            assert!(decode_continue(bad, "/").is_err(), "{bad}");
        }
    }
}

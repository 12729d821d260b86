//! Reads: one object, or a list page filtered by selectors and continued by token.

use serde_json::{Value, json};
use slipway_store::{Error as StoreError, KeyValue, ListOptions};

use super::{Ctx, with_type};
use crate::objects::{self, decode};
use crate::status::{ApiError, ApiResult, from_store};

/// One page of a list: its items and the list's `metadata` (resourceVersion, continue).
struct Page<T> {
    items: Vec<T>,
    metadata: Value,
}

impl Ctx {
    /// A list page, filtered; returns the `<Kind>List`.
    pub(crate) async fn list(&self) -> ApiResult<Value> {
        let resource = self.resource();
        let filter = self.filter()?;
        let page = self
            .list_page(|kv| {
                let object = decode(kv)?;
                Ok(filter.matches(&object).then(|| with_type(resource, object)))
            })
            .await?;
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": page.metadata,
            "items": page.items,
        }))
    }

    /// An unfiltered list page as JSON, assembled from the stored bytes without parsing
    /// them: what informers and `kubectl get -o json` read in bulk.
    pub(super) async fn list_served(&self) -> ApiResult<Vec<u8>> {
        let resource = self.resource();
        let page = self
            .list_page(|kv| match objects::served_json(kv) {
                Some(bytes) => Ok(Some(bytes)),
                None => Ok(Some(
                    serde_json::to_vec(&with_type(resource, decode(kv)?))
                        .expect("a JSON value always serializes"),
                )),
            })
            .await?;
        let head = json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": page.metadata,
        })
        .to_string();
        let size = head.len() + page.items.iter().map(|i| i.len() + 1).sum::<usize>() + 12;
        let mut out = Vec::with_capacity(size);
        // The head without its closing brace, then the items.
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        out.extend_from_slice(b",\"items\":[");
        for (i, item) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// Reads one list page: `item` turns each stored object into what the page holds, or
    /// `None` to leave it out. Selectors apply after the store pages, so it keeps reading
    /// until the page is full.
    async fn list_page<T>(
        &self,
        mut item: impl FnMut(&KeyValue) -> ApiResult<Option<T>>,
    ) -> ApiResult<Page<T>> {
        let resource = self.resource();
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
                if let Some(kept) = item(kv)? {
                    items.push(kept);
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
        Ok(Page { items, metadata })
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

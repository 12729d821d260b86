//! The key namespace a store lives under in etcd, so several clusters can share one etcd.
//!
//! Store keys are stored as `namespace + key`; the namespace is stripped from every key
//! etcd returns. With the empty namespace keys are stored as they are.

use bytes::Bytes;
use slipway_store::{Error, KeyValue, Result, prefix_end, validate_prefix};

use crate::error::unexpected;

/// A probe key for requests that only want a response header or a revision check: it is not
/// a valid store key (keys are printable), so no store key is ever read or watched through it.
pub(crate) const PROBE_KEY: &[u8] = b"\0";

/// Where this store's keys live in etcd's key space.
#[derive(Clone, Debug)]
pub(crate) struct Namespace(String);

impl Namespace {
    /// Checks the namespace against the key rules, so namespaced keys keep byte order, and
    /// requires a final `/`: otherwise namespace `/c1` would also hold `/c10`'s keys.
    pub(crate) fn new(namespace: String) -> Result<Namespace> {
        validate_prefix(&namespace)?;
        if !namespace.is_empty() && !namespace.ends_with('/') {
            return Err(Error::InvalidKey {
                key: namespace,
                reason: "namespace must end with '/'",
            });
        }
        Ok(Namespace(namespace))
    }

    /// The etcd key for a store key.
    pub(crate) fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.0.len() + key.len());
        full.extend_from_slice(self.0.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// The etcd range `[start, end)` of the store keys under `prefix`.
    pub(crate) fn range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let full = format!("{}{prefix}", self.0);
        match prefix_end(&full) {
            Some(end) => (full.into_bytes(), end.into_bytes()),
            // etcd reads an end of "\0" as "every key from start on", and refuses an empty
            // start key; no printable key sorts before "\0".
            None if full.is_empty() => (PROBE_KEY.to_vec(), PROBE_KEY.to_vec()),
            None => (full.into_bytes(), PROBE_KEY.to_vec()),
        }
    }

    /// The store key for an etcd key from this namespace.
    pub(crate) fn strip(&self, key: Vec<u8>) -> Result<String> {
        let key = String::from_utf8(key).map_err(|e| unexpected(format!("etcd key {e}")))?;
        match key.strip_prefix(&self.0) {
            Some(stripped) => Ok(stripped.to_owned()),
            None => Err(unexpected(format!(
                "etcd returned key {key:?} outside namespace {:?}",
                self.0
            ))),
        }
    }

    /// The store's view of an etcd key-value.
    pub(crate) fn kv(&self, kv: etcd_client::KeyValue) -> Result<KeyValue> {
        let create_revision = kv.create_revision();
        let mod_revision = kv.mod_revision();
        let lease = kv.lease();
        let (key, value) = kv.into_key_value();
        Ok(KeyValue {
            key: self.strip(key)?,
            value: Bytes::from(value),
            create_revision,
            mod_revision,
            // etcd's lease 0 means no lease.
            lease: (lease != 0).then_some(lease),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_exactly_the_prefix() {
        let bare = Namespace::new(String::new()).unwrap();
        assert_eq!(bare.range("/a/"), (b"/a/".to_vec(), b"/a0".to_vec()));
        assert_eq!(bare.range(""), (b"\0".to_vec(), b"\0".to_vec()));
        assert_eq!(bare.range("~~"), (b"~~".to_vec(), b"\0".to_vec()));

        let ns = Namespace::new("/c1/".to_owned()).unwrap();
        assert_eq!(ns.key("/x"), b"/c1//x");
        assert_eq!(ns.range(""), (b"/c1/".to_vec(), b"/c10".to_vec()));
        assert_eq!(ns.range("a/"), (b"/c1/a/".to_vec(), b"/c1/a0".to_vec()));
        assert_eq!(ns.strip(b"/c1/x".to_vec()).unwrap(), "x");
        assert!(ns.strip(b"/c2/x".to_vec()).is_err());
        assert!(Namespace::new("has space/".to_owned()).is_err());
        assert!(Namespace::new("/c1".to_owned()).is_err());
    }
}

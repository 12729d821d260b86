//! Key rules shared by every backend, so a key valid on SQLite is valid on etcd.
//!
//! Keys are printable ASCII without spaces. That keeps byte order, SQLite's text order and
//! etcd's order identical, and makes the end of a prefix range a one-byte increment.

use crate::{Error, MAX_KEY_BYTES, MAX_VALUE_BYTES, Result};

/// Checks a key for create, get, update and delete.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    validate_prefix(key)
}

/// Checks a key and the value to be written under it, before anything is sent or stored.
pub fn validate_put(key: &str, value: &[u8]) -> Result<()> {
    validate_key(key)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::TooLarge {
            key: key.to_owned(),
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// Checks a prefix for list and watch; the empty prefix selects every key.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_BYTES {
        return Err(invalid(prefix, "longer than 1024 bytes"));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(prefix, "must be printable ASCII without spaces"));
    }
    Ok(())
}

/// The first key after every key that starts with `prefix`, or `None` when no key is
/// (the empty prefix, or one made only of `~`, the last printable byte).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < b'~' {
            bytes.push(last + 1);
            return Some(String::from_utf8(bytes).expect("ASCII stays UTF-8"));
        }
    }
    None
}

fn invalid(key: &str, reason: &'static str) -> Error {
    let shown: String = key.chars().take(80).collect();
    Error::InvalidKey { key: shown, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_cases() {
        let cases = [
            ("/registry/pods/", Some("/registry/pods0")),
            ("a", Some("b")),
            ("a~", Some("b")),
            ("~~", None),
            ("", None),
        ];
        for (prefix, end) in cases {
            assert_eq!(prefix_end(prefix).as_deref(), end, "prefix {prefix:?}");
        }
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("/registry/pods/default/web-1").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key("tab\t").is_err());
        assert!(validate_key("ünïcode").is_err());
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(validate_prefix("").is_ok());
    }
}

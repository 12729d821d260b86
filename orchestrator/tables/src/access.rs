//! Defensive reads from objects held as JSON: a missing field, `null` or a value of the
//! wrong type reads as the Go zero value, because upstream prints decoded Go structs in
//! which an absent field simply is zero.

use serde_json::Value;

/// The value at `path`, unless it is missing or `null`.
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |current, key| current.get(key))
        .filter(|found| !found.is_null())
}

/// The object at `path`, standing in for a Go pointer-to-struct that is non-nil.
pub(crate) fn object_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    at(value, path).filter(|found| found.is_object())
}

/// The string at `path`, or `""`.
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` when present, so callers can tell a missing pointer from `""`.
pub(crate) fn opt_str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// The integer at `path`, or `0`.
pub(crate) fn int_at(value: &Value, path: &[&str]) -> i64 {
    opt_int_at(value, path).unwrap_or(0)
}

/// The integer at `path` when present.
pub(crate) fn opt_int_at(value: &Value, path: &[&str]) -> Option<i64> {
    at(value, path).and_then(Value::as_i64)
}

/// The boolean at `path`, or `false`.
pub(crate) fn bool_at(value: &Value, path: &[&str]) -> bool {
    at(value, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(crate) fn list_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The number of entries of the map at `path`, or `0`.
pub(crate) fn map_len(value: &Value, path: &[&str]) -> usize {
    at(value, path)
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

/// The entries of the string map at `path` sorted by key; non-string values read as `""`.
pub(crate) fn string_map_at<'a>(value: &'a Value, path: &[&str]) -> Vec<(&'a str, &'a str)> {
    let mut entries: Vec<_> = at(value, path)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.as_str(), value.as_str().unwrap_or("")))
        .collect();
    // serde_json keeps insertion order when another crate turns on `preserve_order`.
    entries.sort_unstable();
    entries
}

/// The object's `metadata.name`.
pub(crate) fn name(object: &Value) -> &str {
    str_at(object, &["metadata", "name"])
}

/// The object's `metadata.creationTimestamp`.
pub(crate) fn created(object: &Value) -> Option<&str> {
    opt_str_at(object, &["metadata", "creationTimestamp"])
}

/// `value` when non-empty, else `fallback`: upstream's many `if x == "" { x = "<none>" }`.
pub(crate) fn or<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_are_total() {
        let v = json!({"a": {"b": "x", "n": 3, "t": true, "l": [1], "m": {"k": "v", "z": 1}, "nil": null}});
        assert_eq!(str_at(&v, &["a", "b"]), "x");
        assert_eq!(str_at(&v, &["a", "n"]), "");
        assert_eq!(str_at(&v, &["a", "b", "deeper"]), "");
        assert_eq!(int_at(&v, &["a", "n"]), 3);
        assert_eq!(int_at(&v, &["a", "b"]), 0);
        assert!(bool_at(&v, &["a", "t"]));
        assert_eq!(list_at(&v, &["a", "l"]).len(), 1);
        assert!(list_at(&v, &["a", "m"]).is_empty());
        assert_eq!(map_len(&v, &["a", "m"]), 2);
        assert_eq!(string_map_at(&v, &["a", "m"]), vec![("k", "v"), ("z", "")]);
        assert!(at(&v, &["a", "nil"]).is_none());
        assert!(object_at(&v, &["a", "b"]).is_none());
        assert!(object_at(&json!([1, 2]), &["a"]).is_none());
    }
}

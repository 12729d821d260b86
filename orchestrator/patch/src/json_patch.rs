//! JSON patch (RFC 6902), the `application/json-patch+json` PATCH body: an atomic sequence of
//! add/remove/replace/move/copy/test operations addressed by JSON pointers.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::pointer::{JsonPointer, PointerError, array_index};
use crate::value::json_eq;

/// Why a JSON patch was rejected. `op` is the zero-based index of the failing operation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonPatchError {
    /// The body is not an array of operation objects.
    #[error("invalid JSON patch document: {0}")]
    InvalidDocument(String),
    /// An operation lacks a member, has one of the wrong type, or names an unknown `op`.
    #[error("operation {op}: {reason}")]
    InvalidOperation { op: usize, reason: String },
    /// `path` or `from` is not a JSON pointer.
    #[error("operation {op}: {source}")]
    InvalidPointer {
        op: usize,
        #[source]
        source: PointerError,
    },
    /// The location (or, for `add`, its parent) does not exist.
    #[error("operation {op}: path {path:?} does not exist")]
    PathNotFound { op: usize, path: String },
    /// An array index token is not a number (or is `-` where an existing element is needed).
    #[error("operation {op}: {token:?} in {path:?} is not a valid array index")]
    InvalidIndex {
        op: usize,
        path: String,
        token: String,
    },
    /// An array index is past the end of the array.
    #[error(
        "operation {op}: index {index} in {path:?} is out of range for an array of length {len}"
    )]
    IndexOutOfRange {
        op: usize,
        path: String,
        index: usize,
        len: usize,
    },
    /// A `test` operation found a different value.
    #[error("operation {op}: test failed: the value at {path:?} is not the expected value")]
    TestFailed { op: usize, path: String },
    /// A `move` whose target lies inside its source.
    #[error("operation {op}: cannot move {from:?} into its own child {path:?}")]
    MoveIntoChild {
        op: usize,
        from: String,
        path: String,
    },
}

impl JsonPatchError {
    /// HTTP status the API server answers with, as Kubernetes does: 400 Bad Request when the
    /// body is not a list of operations, 422 Unprocessable Entity when applying it fails.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidDocument(_) => 400,
            _ => 422,
        }
    }
}

/// Applies the RFC 6902 patch `patch` to `doc` and returns the patched document.
///
/// All or nothing: the operations run on a copy, so any error leaves the caller's document as
/// it was. Members of an operation other than those RFC 6902 defines are ignored.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, JsonPatchError> {
    let Value::Array(ops) = patch else {
        return Err(JsonPatchError::InvalidDocument(
            "expected an array of operations".to_owned(),
        ));
    };
    let ops = ops
        .iter()
        .enumerate()
        .map(|(i, op)| match op {
            Value::Object(members) => Ok(members),
            _ => Err(JsonPatchError::InvalidDocument(format!(
                "operation {i} is not an object"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut result = doc.clone();
    for (i, op) in ops.into_iter().enumerate() {
        apply_op(&mut result, i, op)?;
    }
    Ok(result)
}

fn apply_op(
    doc: &mut Value,
    op: usize,
    members: &Map<String, Value>,
) -> Result<(), JsonPatchError> {
    let invalid = |reason: String| JsonPatchError::InvalidOperation { op, reason };
    let name = match members.get("op") {
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(invalid("\"op\" must be a string".to_owned())),
        None => return Err(invalid("missing \"op\"".to_owned())),
    };
    let pointer = |member: &str| -> Result<JsonPointer, JsonPatchError> {
        match members.get(member) {
            Some(Value::String(text)) => JsonPointer::parse(text)
                .map_err(|source| JsonPatchError::InvalidPointer { op, source }),
            Some(_) => Err(invalid(format!("{member:?} must be a string"))),
            None => Err(invalid(format!("missing {member:?}"))),
        }
    };
    let value = || {
        members
            .get("value")
            .ok_or_else(|| invalid("missing \"value\"".to_owned()))
    };

    match name {
        "add" => {
            let path = pointer("path")?;
            let value = value()?.clone();
            add(doc, &path, value).map_err(Fault::locate(op, &path))
        }
        "remove" => {
            let path = pointer("path")?;
            if path.tokens().is_empty() {
                return Err(invalid("cannot remove the whole document".to_owned()));
            }
            remove(doc, &path)
                .map(drop)
                .map_err(Fault::locate(op, &path))
        }
        "replace" => {
            let path = pointer("path")?;
            let value = value()?.clone();
            let target = resolve_mut(doc, path.tokens()).map_err(Fault::locate(op, &path))?;
            *target = value;
            Ok(())
        }
        "move" => {
            let from = pointer("from")?;
            let path = pointer("path")?;
            if from == path {
                return resolve_mut(doc, from.tokens())
                    .map(drop)
                    .map_err(Fault::locate(op, &from));
            }
            if path.tokens().starts_with(from.tokens()) {
                return Err(JsonPatchError::MoveIntoChild {
                    op,
                    from: from.to_string(),
                    path: path.to_string(),
                });
            }
            let value = remove(doc, &from).map_err(Fault::locate(op, &from))?;
            add(doc, &path, value).map_err(Fault::locate(op, &path))
        }
        "copy" => {
            let from = pointer("from")?;
            let path = pointer("path")?;
            let value = resolve_mut(doc, from.tokens())
                .map_err(Fault::locate(op, &from))?
                .clone();
            add(doc, &path, value).map_err(Fault::locate(op, &path))
        }
        "test" => {
            let path = pointer("path")?;
            let expected = value()?;
            let actual = resolve_mut(doc, path.tokens()).map_err(Fault::locate(op, &path))?;
            if json_eq(actual, expected) {
                Ok(())
            } else {
                Err(JsonPatchError::TestFailed {
                    op,
                    path: path.to_string(),
                })
            }
        }
        other => Err(invalid(format!("unknown op {other:?}"))),
    }
}

/// A failure located by a pointer, before the operation index and pointer are attached.
enum Fault {
    NotFound,
    BadIndex(String),
    OutOfRange { index: usize, len: usize },
}

impl Fault {
    /// A `map_err` adapter attaching the operation index and pointer.
    fn locate(op: usize, path: &JsonPointer) -> impl Fn(Fault) -> JsonPatchError + '_ {
        move |fault| fault.into_error(op, path)
    }

    fn into_error(self, op: usize, path: &JsonPointer) -> JsonPatchError {
        let path = path.to_string();
        match self {
            Self::NotFound => JsonPatchError::PathNotFound { op, path },
            Self::BadIndex(token) => JsonPatchError::InvalidIndex { op, path, token },
            Self::OutOfRange { index, len } => JsonPatchError::IndexOutOfRange {
                op,
                path,
                index,
                len,
            },
        }
    }
}

fn resolve_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, Fault> {
    let mut node = doc;
    for token in tokens {
        node = match node {
            Value::Object(map) => map.get_mut(token).ok_or(Fault::NotFound)?,
            Value::Array(items) => {
                let index = existing_index(token, items.len())?;
                &mut items[index]
            }
            _ => return Err(Fault::NotFound),
        };
    }
    Ok(node)
}

/// The index of an existing element named by `token` in an array of length `len`.
fn existing_index(token: &str, len: usize) -> Result<usize, Fault> {
    if token == "-" {
        return Err(Fault::OutOfRange { index: len, len });
    }
    let index = array_index(token).ok_or_else(|| Fault::BadIndex(token.to_owned()))?;
    if index < len {
        Ok(index)
    } else {
        Err(Fault::OutOfRange { index, len })
    }
}

fn add(doc: &mut Value, path: &JsonPointer, value: Value) -> Result<(), Fault> {
    let Some((last, parent_tokens)) = path.tokens().split_last() else {
        *doc = value;
        return Ok(());
    };
    match resolve_mut(doc, parent_tokens)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let len = items.len();
            let index = if last == "-" {
                len
            } else {
                array_index(last).ok_or_else(|| Fault::BadIndex(last.clone()))?
            };
            if index > len {
                return Err(Fault::OutOfRange { index, len });
            }
            items.insert(index, value);
            Ok(())
        }
        _ => Err(Fault::NotFound),
    }
}

fn remove(doc: &mut Value, path: &JsonPointer) -> Result<Value, Fault> {
    let Some((last, parent_tokens)) = path.tokens().split_last() else {
        return Ok(std::mem::take(doc));
    };
    match resolve_mut(doc, parent_tokens)? {
        Value::Object(map) => map.remove(last).ok_or(Fault::NotFound),
        Value::Array(items) => {
            let index = existing_index(last, items.len())?;
            Ok(items.remove(index))
        }
        _ => Err(Fault::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::{JsonPatchError, json_patch};
    use serde_json::{Value, json};

    /// RFC 6902 Appendix A examples that succeed: (document, patch, result).
    #[test]
    fn rfc6902_appendix_a_successes() {
        let cases = [
            // A.1 adding an object member
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}]),
                json!({"baz": "qux", "foo": "bar"}),
            ),
            // A.2 adding an array element
            (
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
                json!({"foo": ["bar", "qux", "baz"]}),
            ),
            // A.3 removing an object member
            (
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "remove", "path": "/baz"}]),
                json!({"foo": "bar"}),
            ),
            // A.4 removing an array element
            (
                json!({"foo": ["bar", "qux", "baz"]}),
                json!([{"op": "remove", "path": "/foo/1"}]),
                json!({"foo": ["bar", "baz"]}),
            ),
            // A.5 replacing a value
            (
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
                json!({"baz": "boo", "foo": "bar"}),
            ),
            // A.6 moving a value
            (
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
                json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
            ),
            // A.7 moving an array element
            (
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
                json!({"foo": ["all", "cows", "eat", "grass"]}),
            ),
            // A.8 testing a value: success
            (
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([
                    {"op": "test", "path": "/baz", "value": "qux"},
                    {"op": "test", "path": "/foo/1", "value": 2}
                ]),
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            ),
            // A.10 adding a nested member object
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
                json!({"foo": "bar", "child": {"grandchild": {}}}),
            ),
            // A.11 ignoring unrecognized elements
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
                json!({"foo": "bar", "baz": "qux"}),
            ),
            // A.14 ~ escape ordering
            (
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}]),
                json!({"/": 9, "~1": 10}),
            ),
            // A.16 adding an array value
            (
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
                json!({"foo": ["bar", ["abc", "def"]]}),
            ),
        ];
        for (doc, patch, expected) in cases {
            assert_eq!(json_patch(&doc, &patch).unwrap(), expected, "{patch}");
        }
    }

    /// RFC 6902 Appendix A examples that must fail, plus A.13's duplicate "op" as serde_json
    /// parses it (the last member wins, leaving a remove of a missing member).
    #[test]
    fn rfc6902_appendix_a_failures() {
        let cases = [
            // A.9 testing a value: error
            (
                json!({"baz": "qux"}),
                json!([{"op": "test", "path": "/baz", "value": "bar"}]),
                JsonPatchError::TestFailed {
                    op: 0,
                    path: "/baz".to_owned(),
                },
            ),
            // A.12 adding to a nonexistent target
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
                JsonPatchError::PathNotFound {
                    op: 0,
                    path: "/baz/bat".to_owned(),
                },
            ),
            // A.13 invalid JSON patch document
            (
                json!({"foo": "bar"}),
                serde_json::from_str::<Value>(
                    r#"[{"op": "add", "path": "/baz", "value": "qux", "op": "remove"}]"#,
                )
                .unwrap(),
                JsonPatchError::PathNotFound {
                    op: 0,
                    path: "/baz".to_owned(),
                },
            ),
            // A.15 comparing strings and numbers
            (
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": "10"}]),
                JsonPatchError::TestFailed {
                    op: 0,
                    path: "/~01".to_owned(),
                },
            ),
        ];
        for (doc, patch, expected) in cases {
            assert_eq!(json_patch(&doc, &patch).unwrap_err(), expected, "{patch}");
        }
    }

    #[test]
    fn operation_semantics() {
        let doc = json!({"a": {"b": [1, 2, 3]}, "c": "x"});
        let cases = [
            (json!([{"op": "add", "path": "", "value": [1]}]), json!([1])),
            (
                json!([{"op": "replace", "path": "", "value": {"z": 1}}]),
                json!({"z": 1}),
            ),
            (
                json!([{"op": "add", "path": "/a/b/3", "value": 4}]),
                json!({"a": {"b": [1, 2, 3, 4]}, "c": "x"}),
            ),
            (
                json!([{"op": "add", "path": "/a/b/0", "value": 0}]),
                json!({"a": {"b": [0, 1, 2, 3]}, "c": "x"}),
            ),
            (
                json!([{"op": "add", "path": "/c", "value": "replaced"}]),
                json!({"a": {"b": [1, 2, 3]}, "c": "replaced"}),
            ),
            (
                json!([{"op": "copy", "from": "/a/b", "path": "/d"}]),
                json!({"a": {"b": [1, 2, 3]}, "c": "x", "d": [1, 2, 3]}),
            ),
            (
                json!([{"op": "move", "from": "/c", "path": "/a/c"}]),
                json!({"a": {"b": [1, 2, 3], "c": "x"}}),
            ),
            (
                json!([{"op": "move", "from": "/a", "path": "/a"}]),
                doc.clone(),
            ),
            (
                json!([{"op": "move", "from": "/a/b/0", "path": "/a/b/-"}]),
                json!({"a": {"b": [2, 3, 1]}, "c": "x"}),
            ),
            (
                json!([{"op": "test", "path": "/a/b/0", "value": 1.0}]),
                doc.clone(),
            ),
            (
                json!([{"op": "test", "path": "", "value": doc.clone()}]),
                doc.clone(),
            ),
            (
                json!([
                    {"op": "remove", "path": "/a/b/1"},
                    {"op": "replace", "path": "/a/b/1", "value": 9},
                    {"op": "test", "path": "/a/b", "value": [1, 9]}
                ]),
                json!({"a": {"b": [1, 9]}, "c": "x"}),
            ),
            (
                json!([{"op": "add", "path": "/a~1b", "value": 1}, {"op": "remove", "path": "/a"}]),
                json!({"a/b": 1, "c": "x"}),
            ),
            (json!([]), doc.clone()),
        ];
        for (patch, expected) in cases {
            assert_eq!(json_patch(&doc, &patch).unwrap(), expected, "{patch}");
        }
    }

    #[test]
    fn typed_errors() {
        let doc = json!({"a": {"b": [1, 2, 3]}, "c": "x"});
        let s = str::to_owned;
        let cases = [
            (
                json!({"op": "add"}),
                JsonPatchError::InvalidDocument(s("expected an array of operations")),
            ),
            (
                json!([1]),
                JsonPatchError::InvalidDocument(s("operation 0 is not an object")),
            ),
            (
                json!([{"path": "/a"}]),
                JsonPatchError::InvalidOperation {
                    op: 0,
                    reason: s("missing \"op\""),
                },
            ),
            (
                json!([{"op": "frobnicate", "path": "/a"}]),
                JsonPatchError::InvalidOperation {
                    op: 0,
                    reason: s("unknown op \"frobnicate\""),
                },
            ),
            (
                json!([{"op": 1, "path": "/a"}]),
                JsonPatchError::InvalidOperation {
                    op: 0,
                    reason: s("\"op\" must be a string"),
                },
            ),
            (
                json!([{"op": "add", "path": "/z"}]),
                JsonPatchError::InvalidOperation {
                    op: 0,
                    reason: s("missing \"value\""),
                },
            ),
            (
                json!([{"op": "copy", "path": "/z"}]),
                JsonPatchError::InvalidOperation {
                    op: 0,
                    reason: s("missing \"from\""),
                },
            ),
            (
                json!([{"op": "remove", "path": 3}]),
                JsonPatchError::InvalidOperation {
                    op: 0,
                    reason: s("\"path\" must be a string"),
                },
            ),
            (
                json!([{"op": "remove", "path": ""}]),
                JsonPatchError::InvalidOperation {
                    op: 0,
                    reason: s("cannot remove the whole document"),
                },
            ),
            (
                json!([{"op": "remove", "path": "a"}]),
                JsonPatchError::InvalidPointer {
                    op: 0,
                    source: crate::PointerError::MissingLeadingSlash(s("a")),
                },
            ),
            (
                json!([{"op": "test", "path": "/c", "value": "x"}, {"op": "remove", "path": "/q~2"}]),
                JsonPatchError::InvalidPointer {
                    op: 1,
                    source: crate::PointerError::InvalidEscape(s("/q~2")),
                },
            ),
            (
                json!([{"op": "remove", "path": "/nope"}]),
                JsonPatchError::PathNotFound {
                    op: 0,
                    path: s("/nope"),
                },
            ),
            (
                json!([{"op": "replace", "path": "/nope", "value": 1}]),
                JsonPatchError::PathNotFound {
                    op: 0,
                    path: s("/nope"),
                },
            ),
            (
                json!([{"op": "test", "path": "/nope", "value": 1}]),
                JsonPatchError::PathNotFound {
                    op: 0,
                    path: s("/nope"),
                },
            ),
            (
                json!([{"op": "add", "path": "/c/d", "value": 1}]),
                JsonPatchError::PathNotFound {
                    op: 0,
                    path: s("/c/d"),
                },
            ),
            (
                json!([{"op": "add", "path": "/a/b/4", "value": 1}]),
                JsonPatchError::IndexOutOfRange {
                    op: 0,
                    path: s("/a/b/4"),
                    index: 4,
                    len: 3,
                },
            ),
            (
                json!([{"op": "remove", "path": "/a/b/3"}]),
                JsonPatchError::IndexOutOfRange {
                    op: 0,
                    path: s("/a/b/3"),
                    index: 3,
                    len: 3,
                },
            ),
            (
                json!([{"op": "remove", "path": "/a/b/-"}]),
                JsonPatchError::IndexOutOfRange {
                    op: 0,
                    path: s("/a/b/-"),
                    index: 3,
                    len: 3,
                },
            ),
            (
                json!([{"op": "add", "path": "/a/b/01", "value": 1}]),
                JsonPatchError::InvalidIndex {
                    op: 0,
                    path: s("/a/b/01"),
                    token: s("01"),
                },
            ),
            (
                json!([{"op": "replace", "path": "/a/b/x", "value": 1}]),
                JsonPatchError::InvalidIndex {
                    op: 0,
                    path: s("/a/b/x"),
                    token: s("x"),
                },
            ),
            (
                json!([{"op": "move", "from": "/a", "path": "/a/b/0"}]),
                JsonPatchError::MoveIntoChild {
                    op: 0,
                    from: s("/a"),
                    path: s("/a/b/0"),
                },
            ),
            (
                json!([{"op": "move", "from": "/nope", "path": "/z"}]),
                JsonPatchError::PathNotFound {
                    op: 0,
                    path: s("/nope"),
                },
            ),
            (
                json!([{"op": "copy", "from": "/a/b/7", "path": "/z"}]),
                JsonPatchError::IndexOutOfRange {
                    op: 0,
                    path: s("/a/b/7"),
                    index: 7,
                    len: 3,
                },
            ),
            (
                json!([{"op": "test", "path": "/a/b", "value": [1, 2]}]),
                JsonPatchError::TestFailed {
                    op: 0,
                    path: s("/a/b"),
                },
            ),
        ];
        for (patch, expected) in cases {
            let err = json_patch(&doc, &patch).unwrap_err();
            assert_eq!(err, expected, "{patch}");
            let status = if matches!(err, JsonPatchError::InvalidDocument(_)) {
                400
            } else {
                422
            };
            assert_eq!(err.http_status(), status);
        }
    }

    #[test]
    fn failing_patch_leaves_the_document_untouched() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}});
        let before = doc.clone();
        let patch = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "test", "path": "/spec/replicas", "value": 1}
        ]);
        assert!(json_patch(&doc, &patch).is_err());
        assert_eq!(doc, before);
    }

    /// The JSON patch kubectl sends for `rollout undo` (see research/kubectl-wire-protocol.md).
    #[test]
    fn kubectl_rollout_undo_patch() {
        let doc = json!({
            "metadata": {"name": "x", "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
        });
        let patch = json!([
            {"op": "replace", "path": "/spec/template", "value": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "x"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.26", "resources": {}}]}}},
            {"op": "replace", "path": "/metadata/annotations",
             "value": {"deployment.kubernetes.io/revision": "2"}}
        ]);
        let result = json_patch(&doc, &patch).unwrap();
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );
        assert_eq!(
            result["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "2"
        );
    }
}

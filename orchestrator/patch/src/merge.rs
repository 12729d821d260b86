//! JSON merge patch (RFC 7386), the `application/merge-patch+json` PATCH body.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::value::MAX_DEPTH;

/// Why a merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MergePatchError {
    /// The patch nests objects deeper than [`MAX_DEPTH`].
    #[error("merge patch nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl MergePatchError {
    /// HTTP status the API server answers with (422 Unprocessable Entity, as Kubernetes does
    /// for a merge patch that cannot be applied).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::TooDeep => 422,
        }
    }
}

/// Applies `patch` to `target` as RFC 7386 specifies and returns the patched document.
///
/// Objects in the patch merge member by member, `null` removes a member, and every other
/// value (arrays included) replaces the target wholesale.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, MergePatchError> {
    let mut result = target.clone();
    apply(&mut result, patch, 0)?;
    Ok(result)
}

fn apply(target: &mut Value, patch: &Value, depth: usize) -> Result<(), MergePatchError> {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if depth >= MAX_DEPTH {
        return Err(MergePatchError::TooDeep);
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(object) = target {
        for (key, value) in members {
            if value.is_null() {
                object.remove(key);
            } else {
                let slot = object.entry(key.clone()).or_insert(Value::Null);
                apply(slot, value, depth + 1)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MergePatchError, merge_patch};
    use crate::MAX_DEPTH;
    use serde_json::{Value, json};

    /// RFC 7386 Appendix A, one row per example.
    #[test]
    fn rfc7386_appendix_a() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            assert_eq!(
                merge_patch(&target, &patch).unwrap(),
                expected,
                "{target} + {patch}"
            );
        }
    }

    /// The worked example of RFC 7386 section 3.
    #[test]
    fn rfc7386_section_3_example() {
        let target = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        let expected = json!({
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        });
        assert_eq!(merge_patch(&target, &patch).unwrap(), expected);
    }

    #[test]
    fn kubernetes_style_label_and_scale_patches() {
        let cases = [
            (
                json!({"metadata": {"name": "x", "labels": {"a": "1"}}}),
                json!({"metadata": {"labels": {"foo": "bar"}}}),
                json!({"metadata": {"name": "x", "labels": {"a": "1", "foo": "bar"}}}),
            ),
            (
                json!({"spec": {"replicas": 1}, "status": {"replicas": 1}}),
                json!({"spec": {"replicas": 3}}),
                json!({"spec": {"replicas": 3}, "status": {"replicas": 1}}),
            ),
            (
                json!({"metadata": {"annotations": {"a": "1", "b": "2"}}}),
                json!({"metadata": {"annotations": {"a": null}}}),
                json!({"metadata": {"annotations": {"b": "2"}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            assert_eq!(merge_patch(&target, &patch).unwrap(), expected);
        }
    }

    #[test]
    fn refuses_patches_nested_beyond_the_limit() {
        let mut patch = json!(1);
        for _ in 0..=MAX_DEPTH {
            patch = json!({ "a": patch });
        }
        let err = merge_patch(&json!({}), &patch).unwrap_err();
        assert_eq!(err, MergePatchError::TooDeep);
        assert_eq!(err.http_status(), 422);

        let mut shallow = json!(1);
        for _ in 0..MAX_DEPTH {
            shallow = json!({ "a": shallow });
        }
        assert!(merge_patch(&Value::Null, &shallow).is_ok());
    }
}

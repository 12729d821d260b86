//! JSON pointer (RFC 6901): parsing with `~0`/`~1` unescaping, and read-only resolution.

use std::fmt;

use serde_json::Value;
use thiserror::Error;

/// Why a string is not a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PointerError {
    /// A non-empty pointer must start with `/`.
    #[error("JSON pointer {0:?} does not start with '/'")]
    MissingLeadingSlash(String),
    /// `~` must be followed by `0` or `1`.
    #[error("JSON pointer {0:?} contains an invalid '~' escape")]
    InvalidEscape(String),
}

/// A parsed JSON pointer: the unescaped reference tokens, root first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<String>,
}

impl JsonPointer {
    /// Parses `text`; the empty string is the whole document.
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        if text.is_empty() {
            return Ok(Self {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::MissingLeadingSlash(text.to_owned()));
        };
        let tokens = rest
            .split('/')
            .map(|raw| unescape(raw).ok_or_else(|| PointerError::InvalidEscape(text.to_owned())))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The unescaped reference tokens.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The value this pointer refers to in `doc`, if any.
    ///
    /// `-` and malformed array indices refer to nothing, as RFC 6901 section 7 requires.
    pub fn resolve<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.tokens.iter().try_fold(doc, |node, token| match node {
            Value::Object(map) => map.get(token),
            Value::Array(items) => array_index(token).and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses an array index token: `0` or digits without a leading zero (RFC 6901 section 4).
pub(crate) fn array_index(token: &str) -> Option<usize> {
    let well_formed = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if well_formed {
        token.parse().ok()
    } else {
        None
    }
}

fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{JsonPointer, PointerError, array_index};
    use serde_json::json;

    /// The examples of RFC 6901 section 5.
    #[test]
    fn rfc6901_section_5() {
        let doc = json!({
            "foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3,
            "g|h": 4, "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8
        });
        let cases = [
            ("", doc.clone()),
            ("/foo", json!(["bar", "baz"])),
            ("/foo/0", json!("bar")),
            ("/", json!(0)),
            ("/a~1b", json!(1)),
            ("/c%d", json!(2)),
            ("/e^f", json!(3)),
            ("/g|h", json!(4)),
            ("/i\\j", json!(5)),
            ("/k\"l", json!(6)),
            ("/ ", json!(7)),
            ("/m~0n", json!(8)),
        ];
        for (text, expected) in cases {
            let pointer = JsonPointer::parse(text).unwrap();
            assert_eq!(pointer.resolve(&doc), Some(&expected), "{text}");
            assert_eq!(pointer.to_string(), text);
        }
    }

    #[test]
    fn parse_table() {
        let cases: [(&str, Result<Vec<&str>, PointerError>); 7] = [
            ("", Ok(vec![])),
            ("/a/b", Ok(vec!["a", "b"])),
            ("/~01", Ok(vec!["~1"])),
            ("/~10", Ok(vec!["/0"])),
            ("a", Err(PointerError::MissingLeadingSlash("a".to_owned()))),
            ("/~2", Err(PointerError::InvalidEscape("/~2".to_owned()))),
            ("/x~", Err(PointerError::InvalidEscape("/x~".to_owned()))),
        ];
        for (text, expected) in cases {
            let parsed = JsonPointer::parse(text).map(|p| p.tokens().to_vec());
            let expected = expected.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(parsed, expected, "{text}");
        }
    }

    #[test]
    fn array_index_table() {
        let cases = [
            ("0", Some(0)),
            ("7", Some(7)),
            ("10", Some(10)),
            ("01", None),
            ("-", None),
            ("", None),
            ("1a", None),
            ("+1", None),
            ("99999999999999999999999", None),
        ];
        for (token, expected) in cases {
            assert_eq!(array_index(token), expected, "{token}");
        }
    }

    #[test]
    fn resolve_misses() {
        let doc = json!({"a": [1, 2], "s": "x"});
        for text in ["/b", "/a/2", "/a/-", "/a/01", "/s/0", "/a/0/x"] {
            assert_eq!(
                JsonPointer::parse(text).unwrap().resolve(&doc),
                None,
                "{text}"
            );
        }
    }
}

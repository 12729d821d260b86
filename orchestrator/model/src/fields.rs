//! Field selectors as Kubernetes defines them (apimachinery v0.32 `pkg/fields/selector.go`):
//! `?fieldSelector=metadata.name=x,spec.nodeName!=y`, only `=`, `==` and `!=`, with `\`
//! escaping `\`, `,` and `=` inside values.
//!
//! Which fields can be selected depends on the resource, so matching reads field values
//! through the caller, and [`FieldSelector::check_supported`] lets the API server reject
//! fields it does not index, with Kubernetes' message.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How a [`FieldRequirement`] compares the field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// Why a field selector was rejected; the messages are Kubernetes'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term has no operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax {
        /// The whole selector.
        selector: String,
        /// The term without an operator.
        term: String,
    },
    /// A backslash followed by something other than `\`, `,` or `=`, or ending the value.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// A `,` or `=` inside a value without a backslash. Kubernetes prints the character's
    /// code point as a number (its `%v` of a rune), and so does this.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedCharacter(char),
    /// The selector names a field the resource cannot be selected by.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// One `field op value` term.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field, e.g. `metadata.name`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Compares with the field's value; an absent field reads as the empty string, as in
    /// Kubernetes (so `spec.nodeName=` selects unscheduled pods).
    fn matches(&self, actual: Option<&str>) -> bool {
        let equal = actual.unwrap_or_default() == self.value;
        match self.operator {
            FieldOperator::Equals => equal,
            FieldOperator::NotEquals => !equal,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A conjunction of [`FieldRequirement`]s; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector `field=value`.
    pub fn one_term_equals(field: &str, value: &str) -> Self {
        Self {
            requirements: vec![FieldRequirement {
                field: field.to_owned(),
                operator: FieldOperator::Equals,
                value: value.to_owned(),
            }],
        }
    }

    /// Parses the query-string form. Like Kubernetes, terms are sorted as written before
    /// parsing, empty terms are skipped, and field names are not checked here.
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(FieldSelectorError::Syntax {
                    selector: selector.to_owned(),
                    term: term.to_owned(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value: unescape_value(raw)?,
            });
        }
        Ok(Self { requirements })
    }

    /// Whether the selector has no terms and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in the order Kubernetes keeps them.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The field names the selector uses, in term order (a field may repeat).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// Fails with `field label not supported: <field>` for the first field not in `supported`.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), FieldSelectorError> {
        match self.fields().find(|field| !supported.contains(field)) {
            Some(field) => Err(FieldSelectorError::UnsupportedField(field.to_owned())),
            None => Ok(()),
        }
    }

    /// The value `field` must equal for this selector to match, if a term pins it.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether an object whose selectable fields are `fields` matches.
    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(fields.get(&r.field).map(String::as_str)))
    }

    /// Whether an object matches, reading each field's value through `field_value`, which
    /// returns `None` for a field the object does not have.
    pub fn matches_with<'v>(&self, field_value: impl Fn(&str) -> Option<Cow<'v, str>>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(field_value(&r.field).as_deref()))
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::write_comma_joined(f, &self.requirements)
    }
}

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Escapes `\`, `,` and `=` in a value so it can be put in a selector (`EscapeValue`).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reverses [`escape_value`], rejecting bare `,` / `=` and unknown escapes (`UnescapeValue`).
pub fn unescape_value(value: &str) -> Result<String, FieldSelectorError> {
    if !value.contains(['\\', ',', '=']) {
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError::InvalidEscape(format!("\\{c}")));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(FieldSelectorError::UnescapedCharacter(c)),
            c => out.push(c),
        }
    }
    if escaped {
        return Err(FieldSelectorError::InvalidEscape("\\".to_owned()));
    }
    Ok(out)
}

/// Splits at commas that are not escaped by a backslash.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first operator; at each position `!=` and `==` are tried before `=`.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::Equals),
        ("=", FieldOperator::Equals),
    ];
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        OPERATORS
            .iter()
            .find(|(op, _)| rest.starts_with(op))
            .map(|(op, operator)| (&term[..i], *operator, &rest[op.len()..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    // TestSelectorParse in apimachinery's fields/selector_test.go: good selectors print
    // back as written (terms sorted), bad ones fail.
    #[test]
    fn parse_and_print_back() {
        let good = [
            "",
            "a=b",
            "a!=b",
            "a=b,c!=d",
            "x=a,y=b,z=c",
            "metadata.name=x",
            "spec.nodeName=",
            "a=\\,",
            "a=\\=",
            "a=\\\\",
            "a=x\\,y\\=z",
        ];
        for input in good {
            let selector = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(selector.to_string(), input, "{input:?}");
        }
        let normalised = [
            ("a==b", "a=b"),
            ("z=1,a=2", "a=2,z=1"),
            ("a=b,,c=d", "a=b,c=d"),
        ];
        for (input, want) in normalised {
            assert_eq!(
                FieldSelector::parse(input).unwrap().to_string(),
                want,
                "{input:?}"
            );
        }
    }

    // The error messages of parseSelector and UnescapeValue.
    #[test]
    fn parse_errors() {
        let cases = [
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a=b\\,c,d",
                "invalid selector: 'a=b\\,c,d'; can't understand 'd'",
            ),
            (
                "a=\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "a=b\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
        ];
        for (input, want) in cases {
            let err = FieldSelector::parse(input).expect_err(input);
            assert_eq!(err.to_string(), want, "{input:?}");
        }
    }

    // TestEscapeValue / TestUnescapeValue.
    #[test]
    fn escaping() {
        let cases = [
            ("", ""),
            ("a", "a"),
            ("=", "\\="),
            (",", "\\,"),
            ("\\", "\\\\"),
            ("\\=\\,\\", "\\\\\\=\\\\\\,\\\\"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_value(raw), escaped, "{raw:?}");
            assert_eq!(unescape_value(escaped).unwrap(), raw, "{escaped:?}");
        }
        assert_eq!(
            unescape_value("a,b"),
            Err(FieldSelectorError::UnescapedCharacter(','))
        );
    }

    // TestSelectorMatches: an absent field reads as "".
    #[test]
    fn matching() {
        let pod = fields(&[
            ("metadata.name", "web-0"),
            ("spec.nodeName", "n1"),
            ("status.phase", "Running"),
        ]);
        let cases = [
            ("", true),
            ("metadata.name=web-0", true),
            ("metadata.name==web-0", true),
            ("metadata.name=web-1", false),
            ("metadata.name!=web-1", true),
            ("metadata.name=web-0,spec.nodeName!=n1", false),
            ("metadata.name=web-0,status.phase=Running", true),
            ("spec.schedulerName=", true),
            ("spec.schedulerName!=x", true),
            ("spec.schedulerName=x", false),
            ("spec.schedulerName!=", false),
        ];
        for (selector, want) in cases {
            let parsed = FieldSelector::parse(selector).unwrap();
            assert_eq!(parsed.matches(&pod), want, "{selector:?}");
            let read = |field: &str| pod.get(field).map(|v| Cow::Borrowed(v.as_str()));
            assert_eq!(parsed.matches_with(read), want, "{selector:?}");
        }
    }

    #[test]
    fn field_names_and_support() {
        let selector = FieldSelector::parse("metadata.name=x,spec.foo!=y").unwrap();
        assert_eq!(
            selector.fields().collect::<Vec<_>>(),
            ["metadata.name", "spec.foo"]
        );
        assert_eq!(
            selector
                .check_supported(&["metadata.name", "metadata.namespace"])
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.foo"
        );
        assert!(
            selector
                .check_supported(&["metadata.name", "spec.foo"])
                .is_ok()
        );
        assert_eq!(selector.requires_exact_match("metadata.name"), Some("x"));
        assert_eq!(selector.requires_exact_match("spec.foo"), None);
        assert_eq!(
            FieldSelector::one_term_equals("metadata.name", "a,b").to_string(),
            "metadata.name=a\\,b"
        );
        assert!(FieldSelector::everything().is_empty());
    }
}

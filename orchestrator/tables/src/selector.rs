//! Label selectors and label maps rendered as apimachinery renders them
//! (`LabelSelectorAsSelector(..).String()` and `labels.FormatLabels`).

use serde_json::Value;

use crate::access::{list_at, str_at, string_map_at};

/// Why a `metav1.LabelSelector` cannot become a selector; upstream prints a marker then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidSelector;

/// The selector in its canonical text form: requirements sorted by key, `In`/`NotIn`
/// values sorted. A missing or empty selector is `""` (upstream's Nothing/Everything).
pub(crate) fn label_selector(selector: Option<&Value>) -> Result<String, InvalidSelector> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    if !selector.is_object() {
        return Err(InvalidSelector);
    }
    let mut requirements = Vec::new();
    for (key, value) in string_map_at(selector, &["matchLabels"]) {
        if !valid_key(key) || !valid_value(value) {
            return Err(InvalidSelector);
        }
        requirements.push((key, format!("{key}={value}")));
    }
    for expression in list_at(selector, &["matchExpressions"]) {
        let key = str_at(expression, &["key"]);
        let mut values = Vec::new();
        for value in list_at(expression, &["values"]) {
            values.push(value.as_str().ok_or(InvalidSelector)?);
        }
        if !valid_key(key) || !values.iter().all(|value| valid_value(value)) {
            return Err(InvalidSelector);
        }
        values.sort_unstable();
        let text = match (str_at(expression, &["operator"]), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_owned(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return Err(InvalidSelector),
        };
        requirements.push((key, text));
    }
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    let texts: Vec<_> = requirements.into_iter().map(|(_, text)| text).collect();
    Ok(texts.join(","))
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
pub(crate) fn format_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return "<none>".to_owned();
    }
    let pairs: Vec<_> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// A qualified name: an optional DNS-subdomain prefix and `/`, then a name part.
fn valid_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => !prefix.is_empty() && dns_subdomain(prefix) && name_part(name),
        None => name_part(key),
    }
}

/// A label value is empty or looks like a name part.
fn valid_value(value: &str) -> bool {
    value.is_empty() || name_part(value)
}

/// At most 63 characters of `[-_.A-Za-z0-9]`, starting and ending alphanumeric.
fn name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// At most 253 characters of dot-separated lowercase DNS labels.
fn dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit())
                        && (last.is_ascii_lowercase() || last.is_ascii_digit())
                        && bytes
                            .iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(selector: Value) -> Result<String, InvalidSelector> {
        label_selector(Some(&selector))
    }

    #[test]
    fn canonical_text() {
        assert_eq!(label_selector(None), Ok(String::new()));
        assert_eq!(render(json!({})), Ok(String::new()));
        assert_eq!(
            render(json!({"matchLabels": {"tier": "web", "app": "shop"}})),
            Ok("app=shop,tier=web".to_owned())
        );
        assert_eq!(
            render(json!({
                "matchLabels": {"app": "shop"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "zone", "operator": "NotIn", "values": ["b"]},
                    {"key": "example.com/owner", "operator": "Exists", "values": []}
                ]
            })),
            Ok("app=shop,!canary".to_owned()
                + ",env in (dev,prod),example.com/owner,zone notin (b)")
        );
    }

    #[test]
    fn invalid_selectors() {
        for bad in [
            json!("app=shop"),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
            json!({"matchLabels": {"bad key": "x"}}),
            json!({"matchLabels": {"app": "-x"}}),
            json!({"matchLabels": {"Example.com/app": "x"}}),
            json!({"matchLabels": {"/app": "x"}}),
        ] {
            assert_eq!(render(bad.clone()), Err(InvalidSelector), "{bad}");
        }
    }

    #[test]
    fn label_maps() {
        assert_eq!(format_labels(&[]), "<none>");
        assert_eq!(format_labels(&[("a", "1"), ("b", "")]), "a=1,b=");
    }
}

//! Small rules shared by several kinds, with upstream's messages (apimachinery
//! `util/validation` and `pkg/apis/core/validation`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_model::quantity::ParsedQuantity;
use slipway_model::validation::{FieldError, FieldErrorKind, is_dns1123_label};

/// `IsInRange` as `IsValidPortNum` words it.
pub(crate) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
/// `ValidateNonnegativeField` and `ValidateNonnegativeQuantity`.
pub(crate) const NON_NEGATIVE: &str = "must be greater than or equal to 0";
/// Upstream's largest Secret or ConfigMap payload (`MaxSecretSize`).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

const PORT_NAME_MAX_LENGTH: usize = 15;
const CONFIG_KEY_MAX_LENGTH: usize = 253;
const CONFIG_KEY_ERR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const PERCENT_ERR: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

pub(crate) fn is_valid_port_num(port: i32) -> bool {
    (1..=65535).contains(&port)
}

/// `IsValidPortName`: an IANA service name.
pub(crate) fn is_valid_port_name(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > PORT_NAME_MAX_LENGTH {
        errs.push(format!(
            "must be no more than {PORT_NAME_MAX_LENGTH} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `IsConfigMapKey`: keys of ConfigMap and Secret data, which become file names in volumes.
pub(crate) fn is_config_map_key(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > CONFIG_KEY_MAX_LENGTH {
        errs.push(format!(
            "must be no more than {CONFIG_KEY_MAX_LENGTH} characters"
        ));
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        errs.push(CONFIG_KEY_ERR.into());
    }
    // `hasChDirPrefix`: a key must not walk out of the volume directory.
    if key == "." {
        errs.push("must not be '.'".into());
    } else if key == ".." {
        errs.push("must not be '..'".into());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

/// `IsEnvVarName` under `RelaxedEnvironmentVariableValidation`, which is on by default from
/// Kubernetes 1.32 (beta) and GA since: any printable ASCII character except `=`.
pub(crate) fn is_env_var_name(name: &str) -> Vec<String> {
    if name
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
    {
        Vec::new()
    } else {
        vec![
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .into(),
        ]
    }
}

/// `ValidateDNS1123Label` with a field path, plus `Required` for an empty name.
pub(crate) fn validate_dns1123_label(value: &str, path: &str) -> Vec<FieldError> {
    if value.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    is_dns1123_label(value)
        .into_iter()
        .map(|msg| FieldError::invalid(path, value, msg))
        .collect()
}

pub(crate) fn validate_non_negative(value: Option<impl Into<i64>>, path: &str) -> Vec<FieldError> {
    match value.map(Into::into) {
        Some(n) if n < 0 => vec![FieldError::invalid(path, n, NON_NEGATIVE)],
        _ => Vec::new(),
    }
}

/// An `Invalid` error printed without a value, for values Kubernetes prints as Go structs or
/// maps, which `FieldValue` cannot render.
pub(crate) fn invalid_without_value(path: impl Into<String>, detail: &str) -> FieldError {
    FieldError {
        path: path.into(),
        kind: FieldErrorKind::Invalid,
        value: None,
        detail: detail.to_owned(),
    }
}

/// Parses a quantity for validation; upstream rejects a bad one while decoding, we name the
/// field it sits in.
pub(crate) fn parse_quantity(
    quantity: &Quantity,
    path: &str,
) -> Result<ParsedQuantity, FieldError> {
    ParsedQuantity::parse(&quantity.0)
        .map_err(|e| FieldError::invalid(path, quantity.0.as_str(), e.to_string()))
}

/// Parses every quantity of a resource list (`spec.hard`, `limits`, ...), reporting parse
/// errors and negative values at `path[name]` as `ValidateResourceQuantityValue` does.
pub(crate) fn parse_resource_list(
    list: Option<&BTreeMap<String, Quantity>>,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> BTreeMap<String, ParsedQuantity> {
    let mut parsed = BTreeMap::new();
    for (name, quantity) in list.into_iter().flatten() {
        let at = format!("{path}[{name}]");
        match parse_quantity(quantity, &at) {
            Ok(q) if q.as_nanos() < 0 => {
                errs.push(FieldError::invalid(at, quantity.0.as_str(), NON_NEGATIVE));
            }
            Ok(q) => {
                parsed.insert(name.clone(), q);
            }
            Err(e) => errs.push(e),
        }
    }
    parsed
}

/// `ValidatePositiveIntOrPercent` followed by `IsNotMoreThan100Percent` when `cap_percent`.
pub(crate) fn validate_int_or_percent(
    value: &IntOrString,
    path: &str,
    cap_percent: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match value {
        IntOrString::Int(n) => errs.extend(validate_non_negative(Some(*n), path)),
        IntOrString::String(s) => match percent(s) {
            Some(p) if cap_percent && p > 100 => {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "must not be greater than 100%",
                ));
            }
            Some(_) => {}
            None => errs.push(FieldError::invalid(path, s.as_str(), PERCENT_ERR)),
        },
    }
    errs
}

/// The number of a `[0-9]+%` string.
pub(crate) fn percent(s: &str) -> Option<u64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// Whether an int-or-percent is zero, for the "both may not be 0" rule.
pub(crate) fn is_zero(value: &IntOrString) -> bool {
    match value {
        IntOrString::Int(n) => *n == 0,
        IntOrString::String(s) => percent(s) == Some(0),
    }
}

//! Input checks done before anything is written: names, quotas, LimitRange defaults and
//! preview budgets. Each refusal is an [`Error::Invalid`] naming the field.

use slipway_model::quantity::ParsedQuantity;
use slipway_model::validation::{is_dns1123_label, is_qualified_name};

use crate::{Error, Hard, Limits, NewSquad, PreviewPolicy, Result};

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks a user, squad or namespace name: a DNS-1123 label (lower case `[a-z0-9]`, `-`
/// inside, at most 63 characters), because squad names become namespace names.
pub fn validate_name(field: &str, value: &str) -> Result<()> {
    let errors = is_dns1123_label(value);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(field, format!("{value:?}: {}", errors.join("; "))))
    }
}

fn validate_quantity(field: &str, value: &str) -> Result<()> {
    match ParsedQuantity::parse(value) {
        Ok(q) if q.as_nanos() < 0 => Err(invalid(field, format!("{value:?} must not be negative"))),
        Ok(_) => Ok(()),
        Err(e) => Err(invalid(field, format!("{value:?} is not a quantity: {e}"))),
    }
}

/// Checks a ResourceQuota `hard` map: resource names are qualified names, values quantities.
pub fn validate_hard(field: &str, hard: &Hard) -> Result<()> {
    for (key, value) in hard {
        let errors = is_qualified_name(key);
        if !errors.is_empty() {
            return Err(invalid(
                format!("{field}[{key}]"),
                format!("{key:?} is not a resource name: {}", errors.join("; ")),
            ));
        }
        validate_quantity(&format!("{field}[{key}]"), value)?;
    }
    Ok(())
}

fn validate_limits(limits: &Limits) -> Result<()> {
    validate_quantity("limits.default.cpu", &limits.default.cpu)?;
    validate_quantity("limits.default.memory", &limits.default.memory)?;
    validate_quantity("limits.defaultRequest.cpu", &limits.default_request.cpu)?;
    validate_quantity(
        "limits.defaultRequest.memory",
        &limits.default_request.memory,
    )
}

fn validate_previews(previews: &PreviewPolicy) -> Result<()> {
    validate_hard("previews.quota.hard", &previews.quota.hard)?;
    if previews.ttl_seconds == 0 {
        return Err(invalid("previews.ttlSeconds", "must be greater than 0"));
    }
    if i64::try_from(previews.max_ttl_seconds).is_err() {
        return Err(invalid("previews.maxTtlSeconds", "is too large"));
    }
    if previews.ttl_seconds > previews.max_ttl_seconds {
        return Err(invalid(
            "previews.ttlSeconds",
            format!(
                "{} must not exceed maxTtlSeconds ({})",
                previews.ttl_seconds, previews.max_ttl_seconds
            ),
        ));
    }
    Ok(())
}

/// Checks everything about a squad to create that can be checked without the database.
pub fn validate_new_squad(squad: &NewSquad) -> Result<()> {
    validate_name("name", &squad.name)?;
    for (i, namespace) in squad.namespaces.iter().enumerate() {
        validate_name(&format!("namespaces[{i}]"), namespace)?;
    }
    if let Some(quota) = &squad.quota {
        validate_hard("quota.hard", &quota.hard)?;
    }
    if let Some(limits) = &squad.limits {
        validate_limits(limits)?;
    }
    if let Some(previews) = &squad.previews {
        validate_previews(previews)?;
    }
    Ok(())
}

//! ConfigMaps, Secrets, ResourceQuotas and LimitRanges: `ValidateConfigMap`,
//! `ValidateSecret`, their `...Update` functions, `ValidateResourceQuota` and
//! `ValidateLimitRange` (`pkg/apis/core/validation/validation.go`), and `SetDefaults_Secret`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, ResourceQuota, Secret};
use serde_json::Value;
use slipway_model::validation::FieldError;

use crate::Admit;
use crate::checks::{MAX_PAYLOAD_BYTES, is_config_map_key, parse_resource_list};

/// Upstream's placeholder for Secret contents in error messages.
const REDACTED: &str = "<secret contents redacted>";
const IMMUTABLE_DETAIL: &str = "field is immutable when `immutable` is set";

impl Admit for ConfigMap {
    fn validate(&self, _input: &Value, old: Option<&Self>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let data = self.data.clone().unwrap_or_default();
        let binary = self.binary_data.clone().unwrap_or_default();
        let mut size = 0;
        for (key, value) in &data {
            errs.extend(key_errors(key, "data"));
            size += value.len();
        }
        for (key, value) in &binary {
            errs.extend(key_errors(key, "binaryData"));
            if data.contains_key(key) {
                errs.push(FieldError::invalid(
                    format!("binaryData[{key}]"),
                    key.as_str(),
                    "duplicate of key present in data",
                ));
            }
            size += value.0.len();
        }
        if size > MAX_PAYLOAD_BYTES {
            errs.push(FieldError::too_long("", MAX_PAYLOAD_BYTES));
        }
        if let Some(old) = old.filter(|o| o.immutable == Some(true)) {
            if self.immutable != Some(true) {
                errs.push(FieldError::forbidden("immutable", IMMUTABLE_DETAIL));
            }
            if self.data != old.data {
                errs.push(FieldError::forbidden("data", IMMUTABLE_DETAIL));
            }
            if self.binary_data != old.binary_data {
                errs.push(FieldError::forbidden("binaryData", IMMUTABLE_DETAIL));
            }
        }
        errs
    }
}

impl Admit for Secret {
    /// `stringData` is write-only: upstream's conversion folds it into `data`, its keys
    /// winning, before defaulting sets the type.
    fn set_defaults(&mut self, _old: Option<&Self>) {
        if let Some(strings) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (key, value) in strings {
                data.insert(key, ByteString(value.into_bytes()));
            }
        }
        self.type_.get_or_insert_with(|| "Opaque".into());
    }

    fn validate(&self, _input: &Value, old: Option<&Self>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let data = self.data.clone().unwrap_or_default();
        let mut size = 0;
        for (key, value) in &data {
            errs.extend(key_errors(key, "data"));
            size += value.0.len();
        }
        if size > MAX_PAYLOAD_BYTES {
            errs.push(FieldError::too_long("data", MAX_PAYLOAD_BYTES));
        }
        errs.extend(type_rules(self.type_.as_deref().unwrap_or_default(), &data));
        if let Some(old) = old {
            if self.type_ != old.type_ {
                errs.push(FieldError::invalid(
                    "type",
                    self.type_.as_deref().unwrap_or_default(),
                    "field is immutable",
                ));
            }
            if old.immutable == Some(true) {
                if self.immutable != Some(true) {
                    errs.push(FieldError::forbidden("immutable", IMMUTABLE_DETAIL));
                }
                if self.data != old.data {
                    errs.push(FieldError::forbidden("data", IMMUTABLE_DETAIL));
                }
            }
        }
        errs
    }
}

/// The keys each well-known Secret type requires.
fn type_rules(kind: &str, data: &BTreeMap<String, ByteString>) -> Vec<FieldError> {
    let require = |keys: &[&str]| -> Vec<FieldError> {
        keys.iter()
            .filter(|k| !data.contains_key(**k))
            .map(|k| FieldError::required(format!("data[{k}]"), ""))
            .collect()
    };
    match kind {
        "kubernetes.io/tls" => require(&["tls.crt", "tls.key"]),
        "kubernetes.io/ssh-auth" => require(&["ssh-privatekey"]),
        "kubernetes.io/basic-auth"
            if data.contains_key("username") || data.contains_key("password") =>
        {
            Vec::new()
        }
        "kubernetes.io/basic-auth" => require(&["username", "password"]),
        "kubernetes.io/dockerconfigjson" => {
            let key = ".dockerconfigjson";
            match data.get(key) {
                None => require(&[key]),
                Some(bytes) => match serde_json::from_slice::<Value>(&bytes.0) {
                    Ok(_) => Vec::new(),
                    Err(e) => vec![FieldError::invalid(
                        format!("data[{key}]"),
                        REDACTED,
                        e.to_string(),
                    )],
                },
            }
        }
        _ => Vec::new(),
    }
}

fn key_errors(key: &str, field: &str) -> Vec<FieldError> {
    is_config_map_key(key)
        .into_iter()
        .map(|msg| FieldError::invalid(format!("{field}[{key}]"), key, msg))
        .collect()
}

impl Admit for ResourceQuota {
    fn validate(&self, _input: &Value, _old: Option<&Self>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let hard = self.spec.as_ref().and_then(|s| s.hard.as_ref());
        parse_resource_list(hard, "spec.hard", &mut errs);
        errs
    }
}

impl Admit for LimitRange {
    fn validate(&self, _input: &Value, _old: Option<&Self>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let items = self
            .spec
            .as_ref()
            .map(|s| s.limits.as_slice())
            .unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            let at = format!("spec.limits[{i}]");
            if item.type_.is_empty() {
                errs.push(FieldError::required(format!("{at}.type"), ""));
            }
            let max = parse_resource_list(item.max.as_ref(), &format!("{at}.max"), &mut errs);
            let min = parse_resource_list(item.min.as_ref(), &format!("{at}.min"), &mut errs);
            let default =
                parse_resource_list(item.default.as_ref(), &format!("{at}.default"), &mut errs);
            parse_resource_list(
                item.default_request.as_ref(),
                &format!("{at}.defaultRequest"),
                &mut errs,
            );
            parse_resource_list(
                item.max_limit_request_ratio.as_ref(),
                &format!("{at}.maxLimitRequestRatio"),
                &mut errs,
            );
            for (name, low) in &min {
                if let Some(high) = max.get(name).filter(|high| low > *high) {
                    errs.push(FieldError::invalid(
                        format!("{at}.min[{name}]"),
                        low.canonical(),
                        format!(
                            "min value {} is greater than max value {}",
                            low.canonical(),
                            high.canonical()
                        ),
                    ));
                }
            }
            for (name, value) in &default {
                if let Some(high) = max.get(name).filter(|high| value > *high) {
                    errs.push(FieldError::invalid(
                        format!("{at}.default[{name}]"),
                        value.canonical(),
                        format!(
                            "default value {} is greater than max value {}",
                            value.canonical(),
                            high.canonical()
                        ),
                    ));
                }
            }
        }
        errs
    }
}

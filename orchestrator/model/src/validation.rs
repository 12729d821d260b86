//! Kubernetes' rules for names, label keys and values and annotations, with Kubernetes' exact
//! messages (apimachinery v0.32 `util/validation`, `api/validation`, `apis/meta/v1/validation`),
//! and [`FieldError`], the accumulated error list the API server turns into a 422 `Invalid`
//! Status whose `details.causes` carry each error's field, reason and message.
//!
//! The `is_*` functions return plain messages, as Kubernetes' `[]string` helpers do; the
//! `validate_*` functions attach a field path and return [`FieldError`]s.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Longest DNS-1123 label (RFC 1123).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain (RFC 1123).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest DNS-1035 label (RFC 1035).
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Longest name part of a qualified name (label key, annotation key, finalizer).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Most bytes that all of an object's annotation keys and values may take together.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// What kind of problem a [`FieldError`] reports; Kubernetes' `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// The value is malformed.
    Invalid,
    /// A required value is missing.
    Required,
    /// The value duplicates another one that must be unique.
    Duplicate,
    /// The value is not one of a fixed set.
    NotSupported,
    /// The value is longer than allowed.
    TooLong,
    /// The value is not allowed here at all.
    Forbidden,
}

impl FieldErrorKind {
    /// The `reason` of a Status cause for this kind, e.g. `FieldValueInvalid`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TooLong => "FieldValueTooLong",
            Self::Forbidden => "FieldValueForbidden",
        }
    }

    /// The words Kubernetes puts in front of the value in a message, e.g. `Invalid value`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid value",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::Forbidden => "Forbidden",
        }
    }

    /// Kubernetes never prints the offending value for these kinds.
    fn omits_value(self) -> bool {
        matches!(self, Self::Required | Self::Forbidden | Self::TooLong)
    }
}

/// The offending value of a [`FieldError`], kept with its type because Kubernetes prints
/// strings quoted, numbers bare and lists as Go literals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldValue {
    /// A string value, printed quoted (`"Foo"`).
    String(String),
    /// An integer value, printed bare (`-1`).
    Int(i64),
    /// A list of strings, printed as Go prints a `[]string` (`[]string{"a", "b"}`).
    Strings(Vec<String>),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(&go_quote(s)),
            Self::Int(i) => write!(f, "{i}"),
            Self::Strings(list) => {
                f.write_str("[]string{")?;
                for (i, s) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&go_quote(s))?;
                }
                f.write_str("}")
            }
        }
    }
}

impl From<&str> for FieldValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for FieldValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i64> for FieldValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

/// One validation failure at one field; Kubernetes' `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldError {
    /// The field's path, e.g. `metadata.name` or `spec.containers[0].image`.
    pub path: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The offending value, when Kubernetes reports one.
    pub value: Option<FieldValue>,
    /// The explanation, e.g. `must be no more than 63 characters`.
    pub detail: String,
}

impl FieldError {
    /// A malformed value (`field.Invalid`).
    pub fn invalid(
        path: impl Into<String>,
        value: impl Into<FieldValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Invalid,
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// A missing value (`field.Required`).
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Required,
            value: None,
            detail: detail.into(),
        }
    }

    /// A value that must be unique but is not (`field.Duplicate`).
    pub fn duplicate(path: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Duplicate,
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    /// A value outside a fixed set (`field.NotSupported`); the detail lists the set.
    pub fn not_supported(
        path: impl Into<String>,
        value: impl Into<FieldValue>,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self {
            path: path.into(),
            kind: FieldErrorKind::NotSupported,
            value: Some(value.into()),
            detail,
        }
    }

    /// A value longer than `max_bytes` (`field.TooLong`).
    pub fn too_long(path: impl Into<String>, max_bytes: usize) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::TooLong,
            value: None,
            detail: format!("may not be more than {max_bytes} bytes"),
        }
    }

    /// A value that is not allowed at all (`field.Forbidden`).
    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Forbidden,
            value: None,
            detail: detail.into(),
        }
    }

    /// The message without the field path (Kubernetes' `ErrorBody`), which is what a Status
    /// cause carries as its `message`.
    pub fn body(&self) -> String {
        let mut s = self.kind.description().to_owned();
        if let Some(value) = self.value.as_ref().filter(|_| !self.kind.omits_value()) {
            // Writing to a String cannot fail.
            let _ = write!(s, ": {value}");
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}

impl std::error::Error for FieldError {}

/// Joins errors the way Kubernetes prints an aggregate (`ErrorList.ToAggregate()`): repeated
/// messages once, a single message bare, several inside `[...]` separated by `, `. This is the
/// text after `<kind> "<name>" is invalid: ` in a 422 Status message.
pub fn aggregate(errors: &[FieldError]) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let messages: Vec<String> = errors
        .iter()
        .map(ToString::to_string)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match messages.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Quotes a string the way Go's `%q` / `strconv.Quote` does, so that messages match
/// Kubernetes byte for byte.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `MaxLenError`.
fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `RegexError`: the message, then examples and the regular expression Kubernetes validates with.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        let _ = write!(s, "'{example}', ");
    }
    let _ = write!(s, "regex used for validation is '{fmt}')");
    s
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && bytes.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// Labels joined by single dots.
fn matches_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(matches_dns1123_label)
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1035_label(value: &str) -> bool {
    matches_dns1123_label(value) && value.as_bytes()[0].is_ascii_lowercase()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Checks a DNS-1123 label (`IsDNS1123Label`): namespace names, for example.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            // A valid subdomain that is not a valid label can only be wrong for its dots.
            errs.push("must not contain dots".to_owned());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Checks a DNS-1123 subdomain (`IsDNS1123Subdomain`): most object names.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Checks a DNS-1035 label (`IsDNS1035Label`): Service names, which must start with a letter.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Checks a qualified name (`IsQualifiedName`): label keys, annotation keys and finalizers,
/// an optional DNS-1123 subdomain prefix and `/`, then a name of at most 63 characters.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Checks a label value (`IsValidLabelValue`): empty, or up to 63 characters of the
/// qualified-name alphabet.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Checks that a name can be one segment of a request path (`IsValidPathSegmentName`): not
/// `.` or `..`, without `/` or `%`. The API server's storage key function rejects other names
/// with 400 `Name parameter invalid`; RBAC objects use this as their whole name rule.
pub fn is_valid_path_segment_name(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    path_segment_forbidden_content(name)
}

/// The part of the path-segment rule that also applies to a `generateName` prefix
/// (`IsValidPathSegmentPrefix`).
fn path_segment_forbidden_content(name: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// Which rule a kind's `metadata.name` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameRule {
    /// [`is_dns1123_label`]: Namespace.
    Dns1123Label,
    /// [`is_dns1123_subdomain`]: most kinds, and the default for kinds not listed.
    Dns1123Subdomain,
    /// [`is_dns1035_label`]: Service.
    Dns1035Label,
    /// [`is_valid_path_segment_name`]: the RBAC kinds (names like `system:controller:x`).
    PathSegment,
}

impl NameRule {
    /// The rule Kubernetes applies to names of `kind` (`ValidateNamespaceName`,
    /// `ValidateServiceName`, `ValidateRBACName`, `NameIsDNSSubdomain` for the rest).
    pub fn for_kind(kind: &str) -> Self {
        match kind {
            "Namespace" => Self::Dns1123Label,
            "Service" => Self::Dns1035Label,
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => Self::PathSegment,
            _ => Self::Dns1123Subdomain,
        }
    }

    /// Checks a name, or with `prefix` a `generateName` prefix: a prefix may end in `-`
    /// because random characters follow it (Kubernetes' `maskTrailingDash`).
    pub fn validate(self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            Self::PathSegment if prefix => path_segment_forbidden_content(name),
            Self::PathSegment => is_valid_path_segment_name(name),
            Self::Dns1123Label => is_dns1123_label(&mask_trailing_dash(name, prefix)),
            Self::Dns1123Subdomain => is_dns1123_subdomain(&mask_trailing_dash(name, prefix)),
            Self::Dns1035Label => is_dns1035_label(&mask_trailing_dash(name, prefix)),
        }
    }
}

/// Kubernetes' `maskTrailingDash`: a `generateName` prefix may end in `-` because random
/// characters follow, so its last two bytes are replaced by `a` before the DNS check.
fn mask_trailing_dash(name: &str, prefix: bool) -> Cow<'_, str> {
    if !prefix || name.len() <= 1 || !name.ends_with('-') {
        return Cow::Borrowed(name);
    }
    // Not on a character boundary only for non-ASCII names, which fail the check anyway.
    match name.get(..name.len() - 2) {
        Some(head) => Cow::Owned(format!("{head}a")),
        None => Cow::Borrowed(name),
    }
}

/// Checks `name` against the rule of `kind` (see [`NameRule::for_kind`]). The DNS rules
/// already exclude every name the path-segment rule forbids (`.`, `..`, `/`, `%`), so each
/// kind is checked against one rule only and messages are never doubled.
pub fn validate_object_name(kind: &str, name: &str) -> Vec<String> {
    NameRule::for_kind(kind).validate(name, false)
}

/// Checks a label map (`ValidateLabels`): every key a qualified name, every value a label value.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (key, value) in labels {
        errs.extend(validate_label_name(key, path));
        errs.extend(
            is_valid_label_value(value)
                .into_iter()
                .map(|m| FieldError::invalid(path, value.as_str(), m)),
        );
    }
    errs
}

/// Checks one label key (`ValidateLabelName`).
pub fn validate_label_name(key: &str, path: &str) -> Vec<FieldError> {
    is_qualified_name(key)
        .into_iter()
        .map(|m| FieldError::invalid(path, key, m))
        .collect()
}

/// Checks an annotation map (`ValidateAnnotations`): keys are qualified names in any case, and
/// keys plus values take at most [`TOTAL_ANNOTATION_SIZE_LIMIT`] bytes.
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in annotations.keys() {
        errs.extend(
            is_qualified_name(&key.to_lowercase())
                .into_iter()
                .map(|m| FieldError::invalid(path, key.as_str(), m)),
        );
    }
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Checks the parts of an object's metadata a client sets on create, as
/// `ValidateObjectMetaAccessor` does: `generateName`, `name` (required unless generated),
/// `namespace` (required for namespaced kinds, forbidden otherwise), labels and annotations.
/// Server-set fields (generation, managed fields) are the API server's own business.
pub fn validate_object_meta(kind: &str, meta: &ObjectMeta, namespaced: bool) -> Vec<FieldError> {
    let rule = NameRule::for_kind(kind);
    let mut errs = Vec::new();
    if let Some(generate_name) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        errs.extend(
            rule.validate(generate_name, true)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.generateName", generate_name, m)),
        );
    }
    match meta.name.as_deref().filter(|n| !n.is_empty()) {
        None => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => errs.extend(
            rule.validate(name, false)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.name", name, m)),
        ),
    }
    let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty());
    match (namespaced, namespace) {
        (true, None) => errs.push(FieldError::required("metadata.namespace", "")),
        (true, Some(ns)) => errs.extend(
            is_dns1123_label(ns)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.namespace", ns, m)),
        ),
        (false, Some(_)) => errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        )),
        (false, None) => {}
    }
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, "metadata.labels"));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(annotations, "metadata.annotations"));
    }
    if let Some(owners) = &meta.owner_references {
        errs.extend(validate_owner_references(owners));
    }
    errs
}

/// Kinds that may never own another object: an Event's lifetime is its own.
const BANNED_OWNERS: &[(&str, &str)] = &[("v1", "Event")];

/// `metadata.ownerReferences` as apimachinery checks them: each names an apiVersion with a
/// version, a kind, a name and a uid, no banned kind owns, and at most one is the controller.
pub fn validate_owner_references(owners: &[OwnerReference]) -> Vec<FieldError> {
    const PATH: &str = "metadata.ownerReferences";
    let mut errs = Vec::new();
    let mut controller: Option<String> = None;
    for owner in owners {
        let version = owner.api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{PATH}.apiVersion"),
                owner.api_version.as_str(),
                "version must not be empty",
            ));
        }
        for (field, value) in [
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{PATH}.{field}"),
                    "",
                    format!("{field} must not be empty"),
                ));
            }
        }
        if BANNED_OWNERS.contains(&(owner.api_version.as_str(), owner.kind.as_str())) {
            errs.push(FieldError::invalid(
                PATH,
                format!("{}/{}", owner.kind, owner.name),
                // apimachinery prints the group-version-kind, the core group as "".
                format!(
                    "/{}, Kind={} is disallowed from being an owner",
                    owner.api_version, owner.kind
                ),
            ));
        }
        if owner.controller == Some(true) {
            let this = format!("{}/{}", owner.kind, owner.name);
            match &controller {
                Some(first) => errs.push(FieldError::invalid(
                    PATH,
                    format!("{first}, {this}"),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => controller = Some(this),
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    // Mirrors TestIsDNS1123Label in apimachinery's util/validation/validation_test.go.
    #[test]
    fn dns1123_label() {
        let long63 = "a".repeat(63);
        let long64 = "a".repeat(64);
        let good = [
            "a",
            "ab",
            "abc",
            "a1",
            "a-1",
            "a--1--2--b",
            "0",
            "01",
            "012",
            "1a",
            "1-a",
            "1--a--b--2",
            long63.as_str(),
        ];
        for value in good {
            assert!(
                is_dns1123_label(value).is_empty(),
                "{value:?} should be valid"
            );
        }
        let cases: &[(&str, &[&str])] = &[
            ("", &[LABEL_MSG]),
            ("A", &[LABEL_MSG]),
            ("ABC", &[LABEL_MSG]),
            ("aBc", &[LABEL_MSG]),
            ("A1", &[LABEL_MSG]),
            ("A-1", &[LABEL_MSG]),
            ("1-A", &[LABEL_MSG]),
            ("-", &[LABEL_MSG]),
            ("a-", &[LABEL_MSG]),
            ("-a", &[LABEL_MSG]),
            ("1-", &[LABEL_MSG]),
            ("-1", &[LABEL_MSG]),
            ("_", &[LABEL_MSG]),
            ("a_", &[LABEL_MSG]),
            ("a@b", &[LABEL_MSG]),
            ("a,b", &[LABEL_MSG]),
            ("a b", &[LABEL_MSG]),
            ("a.b", &["must not contain dots"]),
            (long64.as_str(), &["must be no more than 63 characters"]),
        ];
        for (value, want) in cases {
            assert_eq!(is_dns1123_label(value), *want, "{value:?}");
        }
    }

    // Mirrors TestIsDNS1123Subdomain.
    #[test]
    fn dns1123_subdomain() {
        let long253 = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(long253.len(), 253);
        let good = [
            "a",
            "ab",
            "a.a",
            "a1.a",
            "0.a",
            "a--1--2--b",
            "11.22.33.44",
            "a.b.c.d.e.f",
            long253.as_str(),
        ];
        for value in good {
            assert!(
                is_dns1123_subdomain(value).is_empty(),
                "{value:?} should be valid"
            );
        }
        let long254 = format!("{long253}a");
        let cases: &[(&str, &[&str])] = &[
            ("", &[SUBDOMAIN_MSG]),
            ("A", &[SUBDOMAIN_MSG]),
            ("a.", &[SUBDOMAIN_MSG]),
            (".a", &[SUBDOMAIN_MSG]),
            ("a..b", &[SUBDOMAIN_MSG]),
            ("a.-b", &[SUBDOMAIN_MSG]),
            ("a-.b", &[SUBDOMAIN_MSG]),
            ("a_b", &[SUBDOMAIN_MSG]),
            ("Pod1", &[SUBDOMAIN_MSG]),
            (long254.as_str(), &["must be no more than 253 characters"]),
        ];
        for (value, want) in cases {
            assert_eq!(is_dns1123_subdomain(value), *want, "{value:?}");
        }
    }

    // Mirrors TestIsDNS1035Label.
    #[test]
    fn dns1035_label() {
        for value in ["a", "ab", "a-1", "a--1--2--b", "abc-123"] {
            assert!(
                is_dns1035_label(value).is_empty(),
                "{value:?} should be valid"
            );
        }
        let long64 = format!("a{}", "1".repeat(63));
        let cases: &[(&str, &[&str])] = &[
            ("0", &[DNS1035_MSG]),
            ("1a", &[DNS1035_MSG]),
            ("123-abc", &[DNS1035_MSG]),
            ("a-", &[DNS1035_MSG]),
            ("A", &[DNS1035_MSG]),
            ("a.b", &[DNS1035_MSG]),
            ("", &[DNS1035_MSG]),
            (long64.as_str(), &["must be no more than 63 characters"]),
        ];
        for (value, want) in cases {
            assert_eq!(is_dns1035_label(value), *want, "{value:?}");
        }
    }

    // Mirrors TestIsQualifiedName.
    #[test]
    fn qualified_name() {
        let long_name = "a".repeat(63);
        let good_prefixed = format!("{}/{}", "a".repeat(253), "b");
        let good = [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "1234",
            "simple/simple",
            "now-with-dashes/simple",
            "now-with-dashes/now-with-dashes",
            "now.with.dots/simple",
            "now-with.dashes-and.dots/simple",
            "1-num.2-num/3-num",
            "1234/5678",
            "1.2.3.4/5678",
            "Uppercase_Is_OK_123",
            "example.com/Uppercase_Is_OK_123",
            "requests.storage-foo",
            long_name.as_str(),
            good_prefixed.as_str(),
        ];
        for value in good {
            assert!(
                is_qualified_name(value).is_empty(),
                "{value:?} should be valid"
            );
        }
        let too_long = "a".repeat(64);
        let cases: &[(&str, Vec<String>)] = &[
            ("nospecialchars%^=@", vec![NAME_PART_MSG.to_owned()]),
            ("cantendwithadash-", vec![NAME_PART_MSG.to_owned()]),
            ("-cantstartwithadash-", vec![NAME_PART_MSG.to_owned()]),
            (
                "only/one/slash",
                vec![format!(
                    "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                    &NAME_PART_MSG["name part ".len()..]
                )],
            ),
            (
                "Example.com/abc",
                vec![format!("prefix part {SUBDOMAIN_MSG}")],
            ),
            (
                "example_com/abc",
                vec![format!("prefix part {SUBDOMAIN_MSG}")],
            ),
            (
                "example.com/",
                vec![
                    "name part must be non-empty".to_owned(),
                    NAME_PART_MSG.to_owned(),
                ],
            ),
            ("/simple", vec!["prefix part must be non-empty".to_owned()]),
            (
                "",
                vec![
                    "name part must be non-empty".to_owned(),
                    NAME_PART_MSG.to_owned(),
                ],
            ),
            (
                too_long.as_str(),
                vec!["name part must be no more than 63 characters".to_owned()],
            ),
        ];
        for (value, want) in cases {
            assert_eq!(&is_qualified_name(value), want, "{value:?}");
        }
    }

    // Mirrors TestIsValidLabelValue.
    #[test]
    fn label_value() {
        let long = "a".repeat(63);
        for value in [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "end-with-num-1",
            "1234",
            "-".repeat(0).as_str(),
            "Uppercase_Is_OK_123",
            long.as_str(),
        ] {
            assert!(
                is_valid_label_value(value).is_empty(),
                "{value:?} should be valid"
            );
        }
        let too_long = "a".repeat(64);
        let cases: &[(&str, &[&str])] = &[
            ("nospecialchars%^=@", &[LABEL_VALUE_MSG]),
            ("Tama-nui-te-rā.is.Māori.sun", &[LABEL_VALUE_MSG]),
            ("\\backslashes\\are\\bad", &[LABEL_VALUE_MSG]),
            ("-starts-with-dash", &[LABEL_VALUE_MSG]),
            ("ends-with-dash-", &[LABEL_VALUE_MSG]),
            (".starts.with.dot", &[LABEL_VALUE_MSG]),
            ("ends.with.dot.", &[LABEL_VALUE_MSG]),
            (too_long.as_str(), &["must be no more than 63 characters"]),
        ];
        for (value, want) in cases {
            assert_eq!(is_valid_label_value(value), *want, "{value:?}");
        }
    }

    // Mirrors TestValidatePathSegmentName in api/validation/path.
    #[test]
    fn path_segment_name() {
        let cases: &[(&str, &[&str])] = &[
            ("foo", &[]),
            ("system:controller:x", &[]),
            (".", &["may not be '.'"]),
            ("..", &["may not be '..'"]),
            ("...", &[]),
            ("a/b", &["may not contain '/'"]),
            ("a%b", &["may not contain '%'"]),
            ("a/%b", &["may not contain '/'", "may not contain '%'"]),
        ];
        for (value, want) in cases {
            assert_eq!(is_valid_path_segment_name(value), *want, "{value:?}");
        }
    }

    // The per-kind rules of pkg/apis/core/validation (ValidateNamespaceName, ValidateServiceName,
    // ValidatePodName, ...) and pkg/apis/rbac/validation (ValidateRBACName).
    #[test]
    fn object_names_per_kind() {
        let cases: &[(&str, &str, bool)] = &[
            ("Namespace", "team-a", true),
            ("Namespace", "a.b", false),
            ("Service", "web", true),
            ("Service", "1web", false),
            ("Service", "web.x", false),
            ("Pod", "web.x", true),
            ("Pod", "1web", true),
            ("Pod", "Web", false),
            ("Deployment", "web-7d4b9", true),
            ("ConfigMap", "kube-root-ca.crt", true),
            ("Secret", "a_b", false),
            (
                "ClusterRole",
                "system:controller:deployment-controller",
                true,
            ),
            ("ClusterRoleBinding", "..", false),
            ("RoleBinding", "a/b", false),
            ("Widget", "x.y", true),
        ];
        for (kind, name, ok) in cases {
            assert_eq!(
                validate_object_name(kind, name).is_empty(),
                *ok,
                "{kind} {name:?}"
            );
        }
        assert_eq!(
            validate_object_name("Namespace", "a.b"),
            ["must not contain dots"]
        );
    }

    // Mirrors maskTrailingDash in api/validation/generic.go: a generateName may end with '-'.
    #[test]
    fn generate_name_prefix() {
        let cases: &[(NameRule, &str, bool)] = &[
            (NameRule::Dns1123Subdomain, "web-", true),
            (NameRule::Dns1123Label, "web-", true),
            (NameRule::Dns1035Label, "web-", true),
            (NameRule::Dns1123Subdomain, "web--", true),
            (NameRule::Dns1123Subdomain, "Web-", false),
            (NameRule::Dns1123Subdomain, "-", false),
            (NameRule::PathSegment, "..", true),
            (NameRule::PathSegment, "a/", false),
        ];
        for (rule, prefix, ok) in cases {
            assert_eq!(
                rule.validate(prefix, true).is_empty(),
                *ok,
                "{rule:?} {prefix:?}"
            );
        }
    }

    #[test]
    fn field_error_display_matches_kubernetes() {
        let cases = [
            (
                FieldError::invalid("metadata.name", "Foo", LABEL_MSG),
                format!("metadata.name: Invalid value: \"Foo\": {LABEL_MSG}"),
            ),
            (
                FieldError::required("metadata.name", "name or generateName is required"),
                "metadata.name: Required value: name or generateName is required".to_owned(),
            ),
            (
                FieldError::required("metadata.namespace", ""),
                "metadata.namespace: Required value".to_owned(),
            ),
            (
                FieldError::forbidden("metadata.namespace", "not allowed on this type"),
                "metadata.namespace: Forbidden: not allowed on this type".to_owned(),
            ),
            (
                FieldError::too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE_LIMIT),
                "metadata.annotations: Too long: may not be more than 262144 bytes".to_owned(),
            ),
            (
                FieldError::duplicate("spec.ports[1].name", "http"),
                "spec.ports[1].name: Duplicate value: \"http\"".to_owned(),
            ),
            (
                FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "OnFailure", "Never"]),
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"".to_owned(),
            ),
            (
                FieldError::invalid("metadata.generation", -1, "must be greater than or equal to 0"),
                "metadata.generation: Invalid value: -1: must be greater than or equal to 0".to_owned(),
            ),
            (
                FieldError::invalid("values", FieldValue::Strings(vec!["a".into(), "b\"c".into()]), "x"),
                "values: Invalid value: []string{\"a\", \"b\\\"c\"}: x".to_owned(),
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn reasons_are_kubernetes_cause_types() {
        let cases = [
            (FieldErrorKind::Invalid, "FieldValueInvalid"),
            (FieldErrorKind::Required, "FieldValueRequired"),
            (FieldErrorKind::Duplicate, "FieldValueDuplicate"),
            (FieldErrorKind::NotSupported, "FieldValueNotSupported"),
            (FieldErrorKind::TooLong, "FieldValueTooLong"),
            (FieldErrorKind::Forbidden, "FieldValueForbidden"),
        ];
        for (kind, reason) in cases {
            assert_eq!(kind.reason(), reason);
        }
    }

    #[test]
    fn go_quoting() {
        let cases = [
            ("plain", "\"plain\""),
            ("a\"b", "\"a\\\"b\""),
            ("tab\there", "\"tab\\there\""),
            ("\u{1}", "\"\\x01\""),
            ("rā", "\"rā\""),
            ("\u{a0}", "\"\\u00a0\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want);
        }
    }

    #[test]
    fn aggregate_like_kubernetes() {
        let a = FieldError::required("metadata.name", "");
        let b = FieldError::required("metadata.namespace", "");
        assert_eq!(
            aggregate(std::slice::from_ref(&a)),
            "metadata.name: Required value"
        );
        assert_eq!(
            aggregate(&[a.clone(), b, a]),
            "[metadata.name: Required value, metadata.namespace: Required value]"
        );
    }

    // Mirrors ValidateLabels / ValidateAnnotations in apimachinery's validation tests.
    #[test]
    fn labels_and_annotations() {
        let labels: BTreeMap<String, String> = [
            ("app".to_owned(), "web".to_owned()),
            ("bad key".to_owned(), "-x".to_owned()),
        ]
        .into();
        let errs = validate_labels(&labels, "metadata.labels");
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].value, Some(FieldValue::from("bad key")));
        assert_eq!(errs[0].detail, NAME_PART_MSG);
        assert_eq!(errs[1].value, Some(FieldValue::from("-x")));
        assert_eq!(errs[1].detail, LABEL_VALUE_MSG);

        // Annotation keys are checked case-insensitively but reported as written.
        let annotations: BTreeMap<String, String> =
            [("Example.COM/Key".to_owned(), String::new())].into();
        assert!(validate_annotations(&annotations, "metadata.annotations").is_empty());

        let at_limit: BTreeMap<String, String> =
            [("k".to_owned(), "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1))].into();
        assert!(validate_annotations(&at_limit, "metadata.annotations").is_empty());
        let over: BTreeMap<String, String> =
            [("k".to_owned(), "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT))].into();
        assert_eq!(
            validate_annotations(&over, "metadata.annotations"),
            [FieldError::too_long(
                "metadata.annotations",
                TOTAL_ANNOTATION_SIZE_LIMIT
            )]
        );
    }

    // Mirrors ValidateObjectMetaAccessor's name / generateName / namespace rules.
    #[test]
    fn object_meta() {
        let meta = |name: Option<&str>, generate: Option<&str>, ns: Option<&str>| ObjectMeta {
            name: name.map(str::to_owned),
            generate_name: generate.map(str::to_owned),
            namespace: ns.map(str::to_owned),
            ..ObjectMeta::default()
        };
        let cases: Vec<(&str, ObjectMeta, bool, Vec<String>)> = vec![
            (
                "Pod",
                meta(Some("web"), None, Some("default")),
                true,
                vec![],
            ),
            (
                "Pod",
                meta(None, Some("web-"), Some("default")),
                true,
                vec!["metadata.name: Required value: name or generateName is required".to_owned()],
            ),
            (
                "Pod",
                meta(None, None, Some("default")),
                true,
                vec!["metadata.name: Required value: name or generateName is required".to_owned()],
            ),
            (
                "Pod",
                meta(Some("Web"), None, Some("default")),
                true,
                vec![format!(
                    "metadata.name: Invalid value: \"Web\": {SUBDOMAIN_MSG}"
                )],
            ),
            (
                "Pod",
                meta(Some("web"), None, None),
                true,
                vec!["metadata.namespace: Required value".to_owned()],
            ),
            (
                "Namespace",
                meta(Some("team-a"), None, Some("x")),
                false,
                vec!["metadata.namespace: Forbidden: not allowed on this type".to_owned()],
            ),
            (
                "Service",
                meta(Some("1web"), None, Some("default")),
                true,
                vec![format!(
                    "metadata.name: Invalid value: \"1web\": {DNS1035_MSG}"
                )],
            ),
        ];
        for (kind, meta, namespaced, want) in cases {
            let got: Vec<String> = validate_object_meta(kind, &meta, namespaced)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{kind} {meta:?}");
        }
    }

    // Mirrors TestValidateObjectMetaOwnerReferences in apimachinery's validation_test.go.
    #[test]
    fn owner_references() {
        let owner =
            |api_version: &str, kind: &str, name: &str, uid: &str, controller| OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: name.into(),
                uid: uid.into(),
                controller,
                block_owner_deletion: None,
            };
        let good = [
            owner("apps/v1", "ReplicaSet", "web-1", "u1", Some(true)),
            owner("v1", "ConfigMap", "c", "u2", Some(false)),
        ];
        assert!(validate_owner_references(&good).is_empty());
        let cases: [(Vec<OwnerReference>, &str); 5] = [
            (
                vec![owner("apps/", "ReplicaSet", "a", "u", None)],
                "metadata.ownerReferences.apiVersion: Invalid value: \"apps/\": version must not be empty",
            ),
            (
                vec![owner("v1", "", "a", "u", None)],
                "metadata.ownerReferences.kind: Invalid value: \"\": kind must not be empty",
            ),
            (
                vec![owner("v1", "Pod", "a", "", None)],
                "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty",
            ),
            (
                vec![owner("v1", "Event", "e", "u", None)],
                "/v1, Kind=Event is disallowed from being an owner",
            ),
            (
                vec![
                    owner("apps/v1", "ReplicaSet", "a", "u1", Some(true)),
                    owner("apps/v1", "ReplicaSet", "b", "u2", Some(true)),
                ],
                "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b",
            ),
        ];
        for (owners, want) in cases {
            let got: Vec<String> = validate_owner_references(&owners)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert!(got.iter().any(|g| g.contains(want)), "{got:?} lacks {want}");
        }
    }
}

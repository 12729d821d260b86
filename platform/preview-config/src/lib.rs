//! A repository's `.slipway.yaml`: which manifests its preview applies, which Service and
//! port its URL exposes, how long it lives, and the variables its manifests may use; and
//! `${VARIABLE}` substitution in those manifests. Every error names the file, the line and
//! column, and the reason, so it can be reported on the pull request as it is. No IO.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// The file a repository declares its preview in, at its root.
pub const FILE: &str = ".slipway.yaml";

/// The variables every preview's manifests may use, set by slipway.
pub const BUILTINS: [&str; 5] = [
    "SLIPWAY_PR",
    "SLIPWAY_SHA",
    "SLIPWAY_BRANCH",
    "SLIPWAY_NAMESPACE",
    "SLIPWAY_URL",
];

/// Where in a file something went wrong: 1-based, as editors and GitHub count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file, relative to the repository's root.
    pub file: String,
    /// The line.
    pub line: usize,
    /// The column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why a config or a manifest is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct Error {
    /// Where.
    pub location: Location,
    /// Why, in words for the pull request.
    pub reason: String,
}

/// A preview as a repository declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewConfig {
    /// Paths of plain Kubernetes YAML, relative to the repository's root, applied in order.
    pub manifests: Vec<String>,
    /// The Service and port the preview's URL leads to.
    pub expose: Expose,
    /// How long the preview lives after its last deploy, if the repository says.
    pub ttl: Option<Duration>,
    /// The repository's own variables.
    pub variables: BTreeMap<String, String>,
}

/// What the preview URL exposes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expose {
    /// The Service's name.
    pub service: String,
    /// The Service's port.
    pub port: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    preview: Preview,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Preview {
    manifests: Vec<String>,
    expose: Expose,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

fn check_manifest(path: &str) -> Result<(), String> {
    let outside = path.starts_with('/') || path.split('/').any(|part| part == "..");
    if path.is_empty() || outside {
        return Err(format!(
            "preview.manifests: {path:?} must be a relative path inside the repository"
        ));
    }
    Ok(())
}

fn check_variable(name: &str) -> Result<(), String> {
    if !is_variable_name(name) {
        return Err(format!(
            "preview.variables: {name:?} must be upper-case letters, digits and underscores, not starting with a digit"
        ));
    }
    if BUILTINS.contains(&name) {
        return Err(format!(
            "preview.variables: {name} is set by slipway and cannot be declared"
        ));
    }
    Ok(())
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A duration as `30m`, `12h`, `7d` or `1d12h`: whole units, largest first.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: use whole units, largest first, such as 30m, 12h, 7d or 1d12h"
        )
    };
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit = u64::MAX;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        if unit >= last_unit {
            return Err(bad());
        }
        last_unit = unit;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

impl PreviewConfig {
    /// Reads `.slipway.yaml`'s text; an error names the line and column it is about.
    pub fn parse(text: &str) -> Result<PreviewConfig, Error> {
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            Error {
                location: Location {
                    file: FILE.to_owned(),
                    line,
                    column,
                },
                reason: reason(&e),
            }
        })?;
        let preview = file.preview;
        // Checked after parsing, each at the line that holds it: serde would point at the
        // start of the enclosing map.
        let refuse = |needle: &str, reason: String| Error {
            location: Location {
                file: FILE.to_owned(),
                line: line_of(text, needle).unwrap_or(1),
                column: 1,
            },
            reason,
        };
        if preview.manifests.is_empty() {
            return Err(refuse(
                "manifests:",
                "preview.manifests: at least one manifest is needed".to_owned(),
            ));
        }
        for path in &preview.manifests {
            check_manifest(path).map_err(|reason| refuse(path, reason))?;
        }
        let ttl = match &preview.ttl {
            Some(ttl) => Some(
                parse_duration(ttl)
                    .map_err(|reason| refuse("ttl:", format!("preview.ttl: {reason}")))?,
            ),
            None => None,
        };
        for name in preview.variables.keys() {
            check_variable(name).map_err(|reason| refuse(&format!("{name}:"), reason))?;
        }
        Ok(PreviewConfig {
            manifests: preview.manifests,
            expose: preview.expose,
            ttl,
            variables: preview.variables,
        })
    }

    /// How long the preview lives: the repository's TTL, else the squad's default, never
    /// more than the squad's maximum.
    pub fn ttl_within(&self, default: Duration, maximum: Duration) -> Duration {
        self.ttl.unwrap_or(default).min(maximum)
    }
}

/// The YAML library's message without the ` at line L column C` it puts in (the location
/// is reported apart).
fn reason(e: &serde_yaml_ng::Error) -> String {
    let mut text = e.to_string();
    while let Some(at) = text.find(" at line ") {
        let Some(column) = text[at..].find(" column ") else {
            break;
        };
        let digits = text[at + column + 8..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len() - (at + column + 8));
        text.replace_range(at..at + column + 8 + digits, "");
    }
    text
}

/// The 1-based number of the first line of `text` that holds `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|line| line.contains(needle))
        .map(|i| i + 1)
}

/// `text` (the manifest at `file`) with every `${NAME}` replaced by its value; `$${`
/// writes a literal `${`. An unknown name or an unclosed `${` is an error at its place,
/// never an empty string.
pub fn substitute(
    file: &str,
    text: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let at = |column: usize, reason: String| Error {
            location: Location {
                file: file.to_owned(),
                line: index + 1,
                column,
            },
            reason,
        };
        let mut rest = line;
        let mut column = 1;
        while let Some(start) = rest.find('$') {
            out.push_str(&rest[..start]);
            column += rest[..start].chars().count();
            let after = &rest[start..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
                column += 3;
            } else if let Some(tail) = after.strip_prefix("${") {
                let Some(end) = tail.find('}') else {
                    return Err(at(
                        column,
                        "unclosed ${ (write $${ for a literal ${)".to_owned(),
                    ));
                };
                let name = &tail[..end];
                let Some(value) = values.get(name) else {
                    return Err(at(column, format!("unknown variable ${{{name}}}")));
                };
                out.push_str(value);
                column += name.chars().count() + 3;
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                column += 1;
                rest = &after[1..];
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

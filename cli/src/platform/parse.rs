//! What the tenancy commands accept on the command line: KEY=VALUE quota entries, `cpu=..,
//! memory=..` lists, Kubernetes quantities, durations and names. Each is checked here so
//! that bad input is refused before anything is sent to the server.

/// One `KEY=VALUE` quota entry, such as `requests.cpu=4` or `count/pods=20`.
pub(super) fn quota_entry(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    let key = key.trim();
    let value = value.trim();
    let key_ok = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-' | b'_'));
    if !key_ok {
        return Err(format!("{key:?} is not a resource name"));
    }
    if !is_quantity(value) {
        return Err(format!(
            "{value:?} is not a quantity (like 4, 500m, 128Mi or 2Gi)"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The CPU and memory of a default request or limit, as `cpu=100m,memory=128Mi`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CpuMemory {
    pub(super) cpu: Option<String>,
    pub(super) memory: Option<String>,
}

impl CpuMemory {
    /// The JSON the server takes: only the resources given.
    pub(super) fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        if let Some(cpu) = &self.cpu {
            object.insert("cpu".into(), cpu.as_str().into());
        }
        if let Some(memory) = &self.memory {
            object.insert("memory".into(), memory.as_str().into());
        }
        object.into()
    }
}

/// `cpu=100m,memory=128Mi`, either or both, each at most once.
pub(super) fn cpu_memory(text: &str) -> Result<CpuMemory, String> {
    let mut resources = CpuMemory::default();
    for part in text.split(',') {
        let (key, value) = quota_entry(part)?;
        let slot = match key.as_str() {
            "cpu" => &mut resources.cpu,
            "memory" => &mut resources.memory,
            _ => return Err(format!("{key:?} is not cpu or memory")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("{key} is given twice"));
        }
    }
    Ok(resources)
}

/// Whether `text` is a Kubernetes quantity: a non-negative decimal number with an optional
/// binary (`Ki`..`Ei`) or decimal (`n`, `u`, `m`, `k`, `M`..`E`) suffix or exponent.
pub(super) fn is_quantity(text: &str) -> bool {
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    let dots = number.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || dots > 1 {
        return false;
    }
    const SUFFIXES: [&str; 16] = [
        "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    // An exponent, as in 1e3 or 5E-2.
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// A duration as `30m`, `12h`, `7d` or `1d12h`, in seconds: the grammar every slipway
/// duration has, `.slipway.yaml`'s `ttl` and the client commands' flags alike, so it is
/// read by the one parser they share.
pub(super) fn duration(text: &str) -> Result<u64, String> {
    slipway_preview_config::parse_duration(text).map(|d| d.as_secs())
}

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Seconds written the way [`duration`] reads them: `1d12h`, `30m`, `0s`.
pub(super) fn format_duration(mut seconds: u64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    let mut text = String::new();
    for (unit, size) in UNITS {
        if seconds >= size {
            text.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    text
}

/// A squad's or a namespace's name: a squad names namespaces, so both are DNS-1123 labels.
pub(super) fn label(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a DNS label (lower-case letters, digits and '-', at most 63)"
        ))
    }
}

/// A user's name or a token's id: any text without `/` or control characters, which the
/// server would read as another path.
pub(super) fn plain_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains('/') || text.chars().any(char::is_control) {
        Err(format!("{text:?} is not a name"))
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_entries_need_a_resource_name_and_a_quantity() {
        assert_eq!(
            quota_entry("requests.cpu=4"),
            Ok(("requests.cpu".into(), "4".into()))
        );
        assert_eq!(
            quota_entry("count/pods=20"),
            Ok(("count/pods".into(), "20".into()))
        );
        assert_eq!(
            quota_entry("limits.memory=1.5Gi"),
            Ok(("limits.memory".into(), "1.5Gi".into()))
        );
        for bad in [
            "requests.cpu",
            "=4",
            "requests.cpu=",
            "requests.cpu=four",
            "requests.cpu=-1",
            "requests cpu=1",
            "pods=1.2.3",
            "memory=1Zi",
        ] {
            assert!(quota_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities_as_kubernetes_writes_them() {
        for good in [
            "0", "4", "500m", "0.5", ".5", "128Mi", "2Gi", "1e3", "5E-2", "1k",
        ] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "m", "1.2.3", "1mi", "1e", "1e+", "one", "1 Gi", "+1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn cpu_memory_lists() {
        assert_eq!(
            cpu_memory("cpu=100m,memory=128Mi"),
            Ok(CpuMemory {
                cpu: Some("100m".into()),
                memory: Some("128Mi".into())
            })
        );
        assert_eq!(
            cpu_memory("memory=1Gi").map(|r| r.to_json()),
            Ok(serde_json::json!({"memory": "1Gi"}))
        );
        for bad in [
            "",
            "cpu=1,",
            "cpu=1,cpu=2",
            "gpu=1",
            "cpu=1;memory=2",
            "cpu",
        ] {
            assert!(cpu_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_in_seconds() {
        assert_eq!(duration("1d12h"), Ok(129_600));
        assert_eq!(duration("90s"), Ok(90));
        let refused = duration("12h1d").unwrap_err();
        assert!(
            refused.starts_with("invalid duration \"12h1d\""),
            "{refused}"
        );
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        for seconds in [1, 59, 60, 1_800, 86_400, 129_600, 5_415, 604_800] {
            assert_eq!(duration(&format_duration(seconds)), Ok(seconds));
        }
        assert_eq!(format_duration(129_600), "1d12h");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn names() {
        assert!(label("web-2").is_ok());
        for bad in ["", "Web", "-web", "web-", "web_2", "a.b", &"a".repeat(64)] {
            assert!(label(bad).is_err(), "{bad}");
        }
        assert!(plain_name("ana@example.com").is_ok());
        for bad in ["", "a/b", "a\nb"] {
            assert!(plain_name(bad).is_err(), "{bad:?}");
        }
    }
}

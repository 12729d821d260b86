//! How the tenancy commands show what the server answers: kubectl-like tables (upper-case
//! headers, columns three spaces apart, `<none>` for nothing, ages), or the JSON and YAML
//! as the server sent it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::exit::Failure;

/// What `-o` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Aligned columns
    #[default]
    Table,
    /// The server's JSON
    Json,
    /// The server's JSON, as YAML
    Yaml,
}

/// Prints `value` as asked, with `table` rendering it for people.
pub(super) fn print(
    output: Output,
    value: &Value,
    table: impl FnOnce(&Value) -> String,
) -> Result<(), Failure> {
    let text = match output {
        Output::Table => table(value),
        Output::Json => serde_json::to_string_pretty(value)
            .map(|json| json + "\n")
            .map_err(|e| Failure::failed(format!("cannot write JSON: {e}")))?,
        Output::Yaml => serde_yaml_ng::to_string(value)
            .map_err(|e| Failure::failed(format!("cannot write YAML: {e}")))?,
    };
    // `text` ends in a newline already.
    say!("{}", text.trim_end_matches('\n'));
    Ok(())
}

/// Columns under upper-case headers, three spaces apart, with no trailing spaces; an empty
/// cell shows as `<none>`.
pub(super) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut all: Vec<Vec<String>> = vec![headers.iter().map(|h| h.to_uppercase()).collect()];
    all.extend(rows.iter().map(|row| {
        row.iter()
            .map(|cell| {
                if cell.is_empty() {
                    "<none>".to_owned()
                } else {
                    cell.clone()
                }
            })
            .collect()
    }));
    let mut out = String::new();
    for line in crate::columns::align(&all, "   ") {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Seconds since the epoch now, as the `AGE` columns measure from.
pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How long ago `timestamp` (RFC 3339) was, as kubectl's `AGE` says it; empty when the
/// server sent no time.
pub(super) fn age(timestamp: Option<&str>, now: i64) -> String {
    match timestamp.and_then(seconds) {
        Some(then) => human(now.saturating_sub(then).max(0)),
        None => String::new(),
    }
}

/// A span of seconds the way kubectl shortens it: `45s`, `5m30s`, `90m`, `5h10m`, `30h`,
/// `3d4h`, `120d`.
pub(crate) fn human(seconds: i64) -> String {
    let (minutes, hours, days) = (seconds / 60, seconds / 3_600, seconds / 86_400);
    let with = |big: i64, big_unit: char, small: i64, small_unit: char| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        with(minutes, 'm', seconds % 60, 's')
    } else if hours < 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        with(hours, 'h', minutes % 60, 'm')
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 {
        with(days, 'd', hours % 24, 'h')
    } else {
        format!("{days}d")
    }
}

/// Seconds since the epoch of an RFC 3339 time such as `2026-01-02T03:04:05Z` or
/// `2026-01-02T05:04:05.123+02:00`.
pub(super) fn seconds(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.find(|c: char| !c.is_ascii_digit())?;
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3_600 + m.parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A JSON string field, or empty.
pub(super) fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_default().to_owned()
}

/// A JSON object of strings as `key=value, ...` in the server's order.
pub(super) fn pairs(value: &Value) -> String {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| match value {
            Value::String(s) => format!("{key}={s}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `items` of a list answer.
pub(super) fn items(list: &Value) -> &[Value] {
    list["items"].as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_columns_with_none_for_empty_cells() {
        let rows = vec![
            vec!["web".into(), "web, web-data".into(), "2".into()],
            vec!["payments".into(), String::new(), "0".into()],
        ];
        assert_eq!(
            render(&["name", "namespaces", "members"], &rows),
            "NAME       NAMESPACES      MEMBERS\n\
             web        web, web-data   2\n\
             payments   <none>          0\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(render(&["ID", "AGE"], &[]), "ID   AGE\n");
    }

    #[test]
    fn reads_rfc3339() {
        assert_eq!(seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(seconds("2026-01-02T03:04:05Z"), Some(1_767_323_045));
        assert_eq!(
            seconds("2026-01-02T05:04:05.250+02:00"),
            Some(1_767_323_045)
        );
        assert_eq!(seconds("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-02T03:04:05",
            "2026-01-02",
        ] {
            assert_eq!(seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn ages_as_kubectl_shortens_them() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (330, "5m30s"),
            (600, "10m"),
            (5_400, "90m"),
            (18_600, "5h10m"),
            (108_000, "30h"),
            (273_600, "3d4h"),
            (10_368_000, "120d"),
        ];
        for (span, shown) in cases {
            assert_eq!(human(span), shown, "{span}");
        }
        assert_eq!(age(Some("1970-01-01T00:01:00Z"), 90), "30s");
        assert_eq!(age(None, 90), "");
        // A clock behind the server's shows no negative age.
        assert_eq!(age(Some("1970-01-01T00:01:00Z"), 0), "0s");
    }

    #[test]
    fn pairs_keep_the_servers_order() {
        let quota = serde_json::json!({"requests.cpu": "4", "pods": "10"});
        let shown = pairs(&quota);
        assert!(
            shown == "requests.cpu=4, pods=10" || shown == "pods=10, requests.cpu=4",
            "{shown}"
        );
        assert_eq!(pairs(&Value::Null), "");
    }
}

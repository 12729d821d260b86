//! Timestamps and ages the way Kubernetes prints them: RFC 3339 parsing without a date
//! library, `duration.HumanDuration` for AGE cells and the UTC form of "Created At".
//!
//! Instants are nanoseconds since the Unix epoch in an `i128`: wide enough for every
//! four-digit year and for Go's zero time (year 1), which Kubernetes treats as "unset".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const SECONDS_PER_DAY: i128 = 86_400;

/// Go's `time.Time{}` (0001-01-01T00:00:00Z): a timestamp Kubernetes prints as missing.
pub(crate) const ZERO_TIME: i128 = -62_135_596_800 * NANOS_PER_SECOND;

/// Nanoseconds since the epoch of an RFC 3339 timestamp such as
/// `2024-05-01T12:00:00Z` or `2024-05-01T14:00:00.123456+02:00`, or `None` when `text`
/// is not one (Go's `time.Parse(time.RFC3339, ..)` rejects the same inputs).
pub(crate) fn parse_rfc3339(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let mut rest = &b[19..];
    let mut fraction: i128 = 0;
    if let Some((b'.', tail)) = rest.split_first() {
        let len = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        // Only the first nine digits are nanoseconds; Go ignores the rest too.
        for (i, &c) in tail[..len].iter().enumerate().take(9) {
            fraction += i128::from(c - b'0') * 10_i128.pow(8 - i as u32);
        }
        rest = &tail[len..];
    }

    let offset_seconds = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * NANOS_PER_SECOND + fraction)
}

/// `instant` as Go's `Time.UTC().Format(time.RFC3339)` writes it: whole seconds, `Z`.
pub(crate) fn format_rfc3339_utc(instant: i128) -> String {
    let seconds = instant.div_euclid(NANOS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The AGE cell for an RFC 3339 timestamp, as upstream's `translateTimestampSince`:
/// `<unknown>` when the timestamp is missing, unparsable or Go's zero time.
pub fn age_since(timestamp: Option<&str>, now: SystemTime) -> String {
    match timestamp.and_then(parse_rfc3339) {
        Some(instant) if instant != ZERO_TIME => elapsed_text(instant, now),
        _ => "<unknown>".to_owned(),
    }
}

/// [`human_duration`] of the time from `instant` to `now`, which may be negative when
/// clocks disagree (upstream then prints `0s` or `<invalid>`).
pub(crate) fn elapsed_text(instant: i128, now: SystemTime) -> String {
    human_duration_nanos(nanos_since_epoch(now) - instant)
}

/// `duration.HumanDuration` from Kubernetes' apimachinery: about two significant figures,
/// e.g. `5s`, `119s`, `3m10s`, `70m`, `7h59m`, `47h`, `2d1h`, `8d`, `2y1d`, `8y`.
pub fn human_duration(elapsed: Duration) -> String {
    human_duration_nanos(i128::try_from(elapsed.as_nanos()).unwrap_or(i128::MAX))
}

fn human_duration_nanos(nanos: i128) -> String {
    // Go subtracts times into an int64 Duration that saturates at about 292 years.
    let nanos = nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    // Integer division truncates toward zero, as Go's int(d.Seconds()) does.
    let seconds = nanos / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_remainder(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(hours / 24 / 365, "y", hours / 24 % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn with_remainder(major: i128, major_unit: &str, minor: i128, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

fn nanos_since_epoch(now: SystemTime) -> i128 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

fn digits(bytes: &[u8]) -> Option<i128> {
    bytes.iter().try_fold(0_i128, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i128::from(c - b'0'))
    })
}

fn is_leap(year: i128) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i128 = NANOS_PER_SECOND;
    const MINUTE: i128 = 60 * SECOND;
    const HOUR: i128 = 60 * MINUTE;
    const DAY: i128 = 24 * HOUR;
    const YEAR: i128 = 365 * DAY;
    const MILLI: i128 = SECOND / 1000;

    // Upstream's HumanDuration cases and boundaries (apimachinery duration_test.go),
    // re-expressed as nanosecond offsets.
    #[test]
    fn human_duration_matches_apimachinery() {
        let cases: &[(i128, &str)] = &[
            (SECOND, "1s"),
            (70 * SECOND, "70s"),
            (190 * SECOND, "3m10s"),
            (70 * MINUTE, "70m"),
            (47 * HOUR, "47h"),
            (49 * HOUR, "2d1h"),
            (8 * DAY + 2 * HOUR, "8d"),
            (367 * DAY, "367d"),
            (2 * YEAR + 25 * HOUR, "2y1d"),
            (8 * YEAR + 2 * HOUR, "8y"),
            (-2 * SECOND, "<invalid>"),
            (-2 * SECOND + 1, "0s"),
            (0, "0s"),
            (SECOND - MILLI, "0s"),
            (2 * MINUTE - MILLI, "119s"),
            (2 * MINUTE, "2m"),
            (2 * MINUTE + SECOND, "2m1s"),
            (10 * MINUTE - MILLI, "9m59s"),
            (10 * MINUTE, "10m"),
            (10 * MINUTE + SECOND, "10m"),
            (3 * HOUR - MILLI, "179m"),
            (3 * HOUR, "3h"),
            (3 * HOUR + MINUTE, "3h1m"),
            (8 * HOUR - MILLI, "7h59m"),
            (8 * HOUR, "8h"),
            (8 * HOUR + 59 * MINUTE, "8h"),
            (2 * DAY - MILLI, "47h"),
            (2 * DAY, "2d"),
            (2 * DAY + HOUR, "2d1h"),
            (8 * DAY - MILLI, "7d23h"),
            (8 * DAY, "8d"),
            (8 * DAY + 23 * HOUR, "8d"),
            (2 * YEAR - MILLI, "729d"),
            (2 * YEAR, "2y"),
            (2 * YEAR + 23 * HOUR + 59 * MINUTE, "2y"),
            (2 * YEAR + DAY - MILLI, "2y"),
            (2 * YEAR + DAY, "2y1d"),
            (3 * YEAR, "3y"),
            (7 * YEAR, "7y"),
            (8 * YEAR - MILLI, "7y364d"),
            (8 * YEAR, "8y"),
            (8 * YEAR + 364 * DAY, "8y"),
            (9 * YEAR, "9y"),
        ];
        for &(nanos, want) in cases {
            assert_eq!(human_duration_nanos(nanos), want, "{nanos}ns");
        }
    }

    #[test]
    fn human_duration_saturates_like_go() {
        assert_eq!(human_duration(Duration::MAX), "292y");
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn parses_rfc3339_forms() {
        let base = parse_rfc3339("2024-05-01T12:00:00Z").expect("parses");
        assert_eq!(base, 1_714_564_800 * SECOND);
        assert_eq!(parse_rfc3339("2024-05-01T14:00:00+02:00"), Some(base));
        assert_eq!(parse_rfc3339("2024-05-01T11:30:00-00:30"), Some(base));
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.25Z"),
            Some(base + SECOND / 4)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.1234567891Z"),
            Some(base + 123_456_789)
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(ZERO_TIME));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01 12:00:00Z",
            "2024-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00Zjunk",
            "２０２４-05-01T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
        assert!(parse_rfc3339("2024-02-29T12:00:00Z").is_some());
    }

    #[test]
    fn formats_utc_seconds() {
        let t = parse_rfc3339("2024-05-01T14:00:00.9+02:00").expect("parses");
        assert_eq!(format_rfc3339_utc(t), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339_utc(ZERO_TIME), "0001-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_utc(0), "1970-01-01T00:00:00Z");
        let leap = parse_rfc3339("2000-02-29T23:59:59Z").expect("parses");
        assert_eq!(format_rfc3339_utc(leap), "2000-02-29T23:59:59Z");
    }

    #[test]
    fn age_since_handles_missing_and_future() {
        let now = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        assert_eq!(age_since(Some("2024-05-01T11:55:00Z"), now), "5m");
        assert_eq!(age_since(Some("2024-05-01T11:59:58Z"), now), "2s");
        assert_eq!(age_since(Some("2024-05-01T12:00:01Z"), now), "0s");
        assert_eq!(age_since(Some("2024-05-01T12:00:05Z"), now), "<invalid>");
        assert_eq!(age_since(None, now), "<unknown>");
        assert_eq!(age_since(Some("yesterday"), now), "<unknown>");
        assert_eq!(age_since(Some("0001-01-01T00:00:00Z"), now), "<unknown>");
    }
}

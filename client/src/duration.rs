//! Durations and times as `tq` reads and prints them: one syntax for every
//! option (`--age`, `--in`, `--at`, `--lease`, `--timeout`, `--backoff`, the
//! retry config, ...) and one formatter for every printed duration, whose
//! output parses back.
//!
//! Durations: `250ms`, `90s`, `1h30m`, `2d`, `1.5s`, `5 minutes` (jiff's
//! friendly format, days being 24 hours), or a bare number of milliseconds.
//! Times: unix milliseconds, or RFC 3339 with `T` or a space, seconds and
//! zone optional (`2030-01-01 10:00` is UTC).

use std::time::Duration;

use jiff::{civil::DateTime, tz::Offset, Span, SpanRelativeTo, Timestamp};

/// What the duration options accept, for error messages.
const DURATION_SYNTAX: &str = "expected a duration such as 250ms, 90s, 1h30m, 2d, or a bare number of milliseconds";

/// Parses a duration (see the module doc). Signs, months and years (no fixed
/// length) and sub-millisecond parts are errors: tq counts whole ms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map(Duration::from_millis).map_err(|_| format!("invalid duration '{text}': too large"));
    }
    let bad = |why: &str| format!("invalid duration '{text}': {why}");
    if t.starts_with(['-', '+']) {
        return Err(bad("a duration has no sign"));
    }
    let span: Span = t.parse().map_err(|_| bad(DURATION_SYNTAX))?;
    if span.is_negative() {
        return Err(bad("a duration has no sign"));
    }
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(bad("months and years have no fixed length; use days (30d, 365d)"));
    }
    let exact = span.to_duration(SpanRelativeTo::days_are_24_hours()).map_err(|_| bad("too large"))?;
    if exact.subsec_nanos() % 1_000_000 != 0 {
        return Err(bad("tq counts whole milliseconds"));
    }
    let ms = u64::try_from(exact.as_millis()).map_err(|_| bad("too large"))?;
    Ok(Duration::from_millis(ms))
}

/// Parses a time: unix milliseconds (digits only), or RFC 3339 with `T` or
/// a space between date and time, seconds and fraction optional, and the
/// zone (`Z`, `+01:00`) optional: none means UTC. A date alone is its
/// midnight UTC. Times before 1970 are refused.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| format!("invalid time '{text}': number too large"));
    }
    let bad = || {
        format!(
            "invalid time '{text}': expected unix milliseconds or RFC 3339 such as 2030-01-01T10:00:00Z or \
             '2030-01-01 10:00' (UTC when no zone is given)"
        )
    };
    let at = match t.parse::<Timestamp>() {
        Ok(ts) => ts,
        // Without an offset: civil time in UTC. A zone name in brackets
        // would be silently dropped by the civil parser, so it is refused.
        Err(_) if !t.contains('[') => {
            let civil: DateTime = t.parse().map_err(|_| bad())?;
            Offset::UTC.to_timestamp(civil).map_err(|_| bad())?
        }
        Err(_) => return Err(bad()),
    };
    u64::try_from(at.as_millisecond()).map_err(|_| format!("invalid time '{text}': before 1970"))
}

/// Milliseconds of `d`, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// jiff's bound on a span (about 20,000 years), past which units do not parse.
const LARGEST_SPAN_MS: u64 = 631_107_417_600_000;

/// Units of the printed form, largest first (a day is 24 hours).
const UNITS: [(u64, &str); 5] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")];

/// The one printed form of a duration, exact to the millisecond and
/// parseable by [`parse_duration`]: `0ms`, `850ms`, `1s500ms`, `5m12s`,
/// `1h30m`, `2d3h`. Written by hand because it is plain integer division
/// and must be exact for any u64 of ms (jiff's printer goes through a Span,
/// bounded to about 20 years).
pub fn show_ms(ms: u64) -> String {
    if ms == 0 {
        return "0ms".to_string();
    }
    if ms > LARGEST_SPAN_MS {
        // Beyond what the parser's units hold: a bare number of ms.
        return ms.to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (size, name) in UNITS {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push_str(&format!("{n}{name}"));
        }
    }
    out
}

/// [`show_ms`] of a `Duration` (whole milliseconds).
pub fn show(d: Duration) -> String {
    show_ms(millis(d))
}

/// [`show_ms`] of `ms` cut down to its two largest units, and to whole
/// seconds from a second up, for tables and relative times: `850ms`, `12s`,
/// `5m12s`, `1h5m` (for 1h5m7s), `2d3h`.
pub fn show_short_ms(ms: u64) -> String {
    let Some(i) = UNITS.iter().position(|(size, _)| ms >= *size) else {
        return show_ms(ms);
    };
    let next = UNITS.get(i + 1).map_or(1, |(size, _)| *size);
    let smallest = if ms >= 1_000 { next.max(1_000) } else { next };
    show_ms(ms - ms % smallest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Result<Duration, String> {
        Ok(Duration::from_millis(n))
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("10ms"), ms(10));
        assert_eq!(parse_duration("30s"), ms(30_000));
        assert_eq!(parse_duration("90s"), ms(90_000));
        assert_eq!(parse_duration("2m"), ms(120_000));
        assert_eq!(parse_duration("1h"), ms(3_600_000));
        assert_eq!(parse_duration("1h30m"), ms(5_400_000));
        assert_eq!(parse_duration("1h 30m"), ms(5_400_000));
        assert_eq!(parse_duration("2d"), ms(172_800_000));
        assert_eq!(parse_duration("1w"), ms(604_800_000));
        assert_eq!(parse_duration("1d2h3m4s5ms"), ms(93_784_005));
        assert_eq!(parse_duration("1.5s"), ms(1_500));
        assert_eq!(parse_duration("5 minutes"), ms(300_000));
        assert_eq!(parse_duration("0s"), ms(0));
        assert_eq!(parse_duration("PT5M"), ms(300_000));
    }

    #[test]
    fn plain_number_is_milliseconds() {
        assert_eq!(parse_duration("1500"), ms(1500));
        assert_eq!(parse_duration("0"), ms(0));
        assert_eq!(parse_duration(" 42 "), ms(42));
        assert_eq!(parse_duration("5 s"), ms(5000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "s", "ms", "abc", "1s2", "ms10", "1e3", "1 fortnight", "3 days later"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("invalid duration") && err.contains("1h30m"), "{bad}: {err}");
        }
        for (bad, why) in [
            ("-1s", "no sign"),
            ("+1s", "no sign"),
            ("1s ago", "no sign"),
            ("1y", "no fixed length"),
            ("2mo", "no fixed length"),
            ("250us", "whole milliseconds"),
            ("1.0005s", "whole milliseconds"),
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("invalid duration '{bad}'")) && err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_duration("99999999999999999999999").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
        assert_eq!(parse_duration("18446744073709551615"), ms(u64::MAX));
    }

    #[test]
    fn shows_compactly() {
        assert_eq!(show(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(show(Duration::from_secs(30)), "30s");
        assert_eq!(show(Duration::from_secs(120)), "2m");
        assert_eq!(show(Duration::from_secs(7200)), "2h");
        assert_eq!(show(Duration::from_secs(5400)), "1h30m");
        assert_eq!(show(Duration::ZERO), "0ms");
        assert_eq!(show_ms(93_784_005), "1d2h3m4s5ms");
        assert_eq!(show_ms(1122 * 86_400_000 + 10 * 3_600_000 + 5_000), "1122d10h5s");
    }

    #[test]
    fn short_form_keeps_two_units() {
        assert_eq!(show_short_ms(0), "0ms");
        assert_eq!(show_short_ms(850), "850ms");
        assert_eq!(show_short_ms(1_000), "1s");
        assert_eq!(show_short_ms(12_345), "12s");
        assert_eq!(show_short_ms(1_999), "1s");
        assert_eq!(show_short_ms(300_000), "5m");
        assert_eq!(show_short_ms(312_000), "5m12s");
        assert_eq!(show_short_ms(3_600_000 + 5 * 60_000 + 7_000), "1h5m");
        assert_eq!(show_short_ms(3_600_000 + 7_000), "1h", "two units at most: the seconds go");
        assert_eq!(show_short_ms(2 * 86_400_000 + 3 * 3_600_000), "2d3h");
        assert_eq!(show_short_ms(86_400_000 + 59_000), "1d");
    }

    #[test]
    fn printed_parses_back() {
        let samples = [0u64, 1, 999, 1_000, 1_500, 59_999, 60_000, 3_599_999, 5_400_000, 86_399_999, 93_784_005];
        let big = [86_400_000 * 1122 + 36_005_123, 31_536_000_000_000, u64::from(u32::MAX), 1 << 49];
        for n in samples.into_iter().chain(big) {
            assert_eq!(parse_duration(&show_ms(n)), ms(n), "{}", show_ms(n));
            let short = show_short_ms(n);
            let back = parse_duration(&short).map(millis).expect(&short);
            // Cut to two units and whole seconds: under 1/24 of the value
            // or under a second is lost.
            assert!(back <= n && n - back < (n / 24 + 1).max(1_000), "{n} -> {short} -> {back}");
        }
        assert_eq!(show_ms(LARGEST_SPAN_MS), "7304484d");
        for n in [LARGEST_SPAN_MS, LARGEST_SPAN_MS + 1, u64::MAX] {
            assert_eq!(parse_duration(&show_ms(n)), ms(n), "{}", show_ms(n));
        }
    }

    #[test]
    fn times_as_unix_ms() {
        assert_eq!(parse_time("1795329010123"), Ok(1_795_329_010_123));
        assert_eq!(parse_time(" 0 "), Ok(0));
        assert!(parse_time("99999999999999999999999").is_err());
    }

    #[test]
    fn times_as_rfc3339() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2026-11-22T06:30:10.123Z"), Ok(1_795_329_010_123));
        assert_eq!(parse_time("2026-11-22t06:30:10.1234567z"), Ok(1_795_329_010_123));
        assert_eq!(parse_time("2026-11-22 07:30:10.5+01:00"), Ok(1_795_329_010_500));
        assert_eq!(parse_time("2026-11-22T01:30:10-05:00"), Ok(1_795_329_010_000));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        // No zone: UTC; seconds optional; a space or T.
        assert_eq!(parse_time("2030-01-01 10:00"), Ok(1_893_492_000_000));
        assert_eq!(parse_time("2030-01-01T10:00"), Ok(1_893_492_000_000));
        assert_eq!(parse_time("2030-01-01 10:00:00"), Ok(1_893_492_000_000));
        assert_eq!(parse_time("2030-01-01 10:00Z"), Ok(1_893_492_000_000));
        assert_eq!(parse_time("2030-01-01 11:00+01:00"), Ok(1_893_492_000_000));
        assert_eq!(parse_time("2030-01-01"), Ok(1_893_456_000_000));
        // Matches core's formatter on a range of times.
        for ms in [0u64, 951_782_400_000, 1_795_329_010_123, 4_102_444_800_000, 32_503_680_000_000] {
            assert_eq!(parse_time(&tq_core::time::iso8601(ms)), Ok(ms), "{ms}");
        }
    }

    #[test]
    fn times_rejected() {
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22X10:00:00Z",
            "2030-01-01T10:00:00[Europe/Paris]",
            "tomorrow",
            "-5",
            "1e3",
            "10:00",
        ] {
            let err = parse_time(bad).expect_err(bad);
            assert!(err.contains("invalid time") && err.contains("UTC when no zone"), "{bad:?}: {err}");
        }
        assert!(parse_time("1969-12-31T23:59:59Z").expect_err("1969").contains("before 1970"));
    }
}

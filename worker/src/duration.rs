//! Durations on the command line: `250ms`, `30s`, `2m`, `1h`; a plain number
//! is milliseconds.

use std::time::Duration;

/// Parses `<digits>[ms|s|m|h]` (no unit = ms). Whitespace around the value is
/// ignored; fractions, signs and other units are errors.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("invalid duration '{text}': expected a number with an optional unit (ms, s, m, h)"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("invalid duration '{text}': number too large"))?;
    let ms_per_unit: u64 = match unit.trim_start() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("invalid duration '{text}': unknown unit '{other}' (use ms, s, m or h)")),
    };
    let ms = n.checked_mul(ms_per_unit).ok_or_else(|| format!("invalid duration '{text}': too large"))?;
    Ok(Duration::from_millis(ms))
}

/// Milliseconds of `d`, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A short human form for log lines: `1500ms`, `30s`, `2m`, `1h`.
pub fn show(d: Duration) -> String {
    let ms = millis(d);
    if ms != 0 && ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms != 0 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms != 0 && ms % 1_000 == 0 {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
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
        assert_eq!(parse_duration("2m"), ms(120_000));
        assert_eq!(parse_duration("1h"), ms(3_600_000));
        assert_eq!(parse_duration("0s"), ms(0));
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
        for bad in ["", "s", "ms", "-1s", "+1s", "1.5s", "10 sec", "1d", "1S", "abc", "1s2", "ms10", "1e3"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert!(parse_duration("1d").expect_err("1d").contains("unknown unit 'd'"));
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_duration("99999999999999999999999").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
        assert_eq!(parse_duration("18446744073709551615"), ms(u64::MAX));
    }

    #[test]
    fn shows_compactly() {
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_secs(30)), "30s");
        assert_eq!(show(Duration::from_secs(120)), "2m");
        assert_eq!(show(Duration::from_secs(7200)), "2h");
        assert_eq!(show(Duration::ZERO), "0ms");
    }
}

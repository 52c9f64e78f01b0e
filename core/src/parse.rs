//! Parsing of numeric command arguments. Strict: decimal digits only, no
//! sign (but a list index's minus), no fraction, no exponent, no surrounding spaces.

use crate::error::{show, Result, TqError};

/// A non-negative integer no larger than `max`.
pub fn uint(what: &str, raw: &[u8], max: u64) -> Result<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        let hint = if raw.first() == Some(&b'-') {
            " (negative values are not allowed)"
        } else if raw.contains(&b'.') || raw.contains(&b'e') || raw.contains(&b'E') {
            " (fractions are not allowed)"
        } else {
            ""
        };
        return Err(TqError::arg(format!("{what} must be a non-negative integer, got '{}'{hint}", show(raw))));
    }
    let v = std::str::from_utf8(raw).ok().and_then(|s| s.parse::<u64>().ok());
    match v {
        Some(v) if v <= max => Ok(v),
        _ => Err(TqError::arg(format!("{what} is out of range (at most {max}), got '{}'", show(raw)))),
    }
}

/// Like `uint` but zero is refused too.
pub fn positive(what: &str, raw: &[u8], max: u64) -> Result<u64> {
    match uint(what, raw, max)? {
        0 => Err(TqError::arg(format!("{what} must be at least 1"))),
        v => Ok(v),
    }
}

/// A list index as LRANGE takes it: an integer, negative counting from the
/// end (-1 is the last element).
pub fn index(what: &str, raw: &[u8]) -> Result<i64> {
    let (neg, digits) = match raw.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, raw),
    };
    let bad =
        || TqError::arg(format!("{what} must be an integer index (negative counts from the end), got '{}'", show(raw)));
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let v = std::str::from_utf8(digits).ok().and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad)?;
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_unsigned_integers() {
        assert_eq!(uint("t", b"0", 10), Ok(0));
        assert_eq!(uint("t", b"0010", 10), Ok(10));
        for bad in [&b""[..], b"-1", b"1.5", b"1e3", b" 1", b"+1", b"0x10", b"11", b"99999999999999999999999"] {
            assert!(uint("t", bad, 10).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(uint("t", b"-1", 10).map_err(|e| e.to_string()).unwrap_err().contains("negative"));
        assert!(uint("t", b"1.5", 10).map_err(|e| e.to_string()).unwrap_err().contains("fraction"));
        assert_eq!(uint("t", b"18446744073709551615", u64::MAX), Ok(u64::MAX));
        assert!(positive("n", b"0", 10).is_err());
    }

    #[test]
    fn list_indices() {
        assert_eq!(index("start", b"0"), Ok(0));
        assert_eq!(index("stop", b"-1"), Ok(-1));
        assert_eq!(index("stop", b"9223372036854775807"), Ok(i64::MAX));
        for bad in [&b""[..], b"-", b"--1", b"+1", b"1.0", b"x", b"99999999999999999999"] {
            assert!(index("i", bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

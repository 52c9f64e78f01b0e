//! `tq enqueue QUEUE CLASS [ARGS-JSON] [--at TIME | --in DURATION]`: one
//! `TQ.ENQUEUE` / `TQ.ENQUEUEAT` / `TQ.ENQUEUEIN`, printing the reply (the
//! queue's length, or the delayed bucket in unix seconds).

use std::time::Duration;

use crate::client::{Client, Error};

/// When the job should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Now,
    /// Unix milliseconds.
    At(u64),
    In(Duration),
}

/// `--at`: unix milliseconds (digits only), or RFC 3339 such as
/// `2026-11-22T10:00:00Z`, `2026-11-22 10:00:00.250+01:00`.
pub fn parse_at(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| format!("invalid time '{text}': number too large"));
    }
    parse_rfc3339(t).ok_or_else(|| {
        format!("invalid time '{text}': expected unix milliseconds or RFC 3339 (e.g. 2026-11-22T10:00:00Z)")
    })
}

fn digits(s: &str, n: usize) -> Option<i64> {
    if s.len() == n && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// RFC 3339 date-time → unix ms (None if malformed or before 1970).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, rest) = (s.get(..10)?, s.get(10..)?);
    let sep = rest.chars().next()?;
    if !matches!(sep, 'T' | 't' | ' ') {
        return None;
    }
    let rest = rest.get(1..)?;
    let mut parts = date.split('-');
    let (y, mo, d) = (digits(parts.next()?, 4)?, digits(parts.next()?, 2)?, digits(parts.next()?, 2)?);
    if parts.next().is_some() || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let (h, mi, sec) = (digits(rest.get(0..2)?, 2)?, digits(rest.get(3..5)?, 2)?, digits(rest.get(6..8)?, 2)?);
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = rest.get(8..)?;
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let f = frac.get(..n)?;
        let padded = format!("{:0<3}", f.get(..n.min(3))?);
        ms = padded.parse().ok()?;
        rest = frac.get(n..)?;
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (oh, om) = (digits(rest.get(1..3)?, 2)?, digits(rest.get(4..6)?, 2)?);
            if rest.len() != 6 || rest.get(3..4)? != ":" || oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 60 + om)
        }
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    let total = secs.checked_mul(1000)?.checked_add(ms)?;
    u64::try_from(total).ok()
}

/// Sends the enqueue; returns the module's integer reply.
pub fn enqueue(client: &mut Client, queue: &str, class: &str, args_json: &str, when: When) -> Result<u64, Error> {
    match when {
        When::Now => client.enqueue(queue, class, args_json),
        When::At(ms) => client.enqueue_at(ms, queue, class, args_json),
        When::In(d) => client.enqueue_in(d, queue, class, args_json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_ms() {
        assert_eq!(parse_at("1795329010123"), Ok(1_795_329_010_123));
        assert_eq!(parse_at(" 0 "), Ok(0));
        assert!(parse_at("99999999999999999999999").is_err());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_at("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_at("2026-11-22T06:30:10.123Z"), Ok(1_795_329_010_123));
        assert_eq!(parse_at("2026-11-22t06:30:10.1234567z"), Ok(1_795_329_010_123));
        assert_eq!(parse_at("2026-11-22 07:30:10.5+01:00"), Ok(1_795_329_010_500));
        assert_eq!(parse_at("2026-11-22T01:30:10-05:00"), Ok(1_795_329_010_000));
        assert_eq!(parse_at("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        // Matches core's formatter on a range of times.
        for ms in [0u64, 951_782_400_000, 1_795_329_010_123, 4_102_444_800_000, 253_402_300_799_999] {
            assert_eq!(parse_at(&tq_core::time::iso8601(ms)), Ok(ms), "{ms}");
        }
    }

    #[test]
    fn rfc3339_rejects() {
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T10:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00+0100",
            "2026-11-22X10:00:00Z",
            "1969-12-31T23:59:59Z",
            "tomorrow",
            "-5",
            "1e3",
        ] {
            assert!(parse_at(bad).is_err(), "{bad:?}");
        }
    }
}

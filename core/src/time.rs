//! Time as node-resque writes it: one-second delayed buckets and the two date
//! formats found in records (`run_at` as ISO-8601, `failed_at` as
//! JavaScript's `Date.prototype.toString()` in UTC).

/// The largest time accepted anywhere, in unix milliseconds: JavaScript's
/// `Date` range (8.64e15 ms, year 275760). Bucket numbers stay exact doubles.
pub const MAX_TIME_MS: u64 = 8_640_000_000_000_000;

/// The delayed bucket (unix seconds) for a time in milliseconds:
/// `Math.round(ms / 1000)`, halves rounding up, as node-resque's `enqueueAt`.
pub fn bucket_of(ms: u64) -> u64 {
    (ms / 1000) + u64::from(ms % 1000 >= 500)
}

/// A bucket is due once the clock reaches its second: now_ms >= bucket * 1000.
pub fn bucket_due(bucket: u64, now_ms: u64) -> bool {
    bucket.saturating_mul(1000) <= now_ms
}

struct Civil {
    year: i64,
    month: u32,   // 1..=12
    day: u32,     // 1..=31
    weekday: u32, // 0 = Sunday
    hour: u32,
    min: u32,
    sec: u32,
}

fn civil(ms: u64) -> Civil {
    let days = (ms / 86_400_000) as i64;
    let rem = ms % 86_400_000;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        weekday: ((days + 4).rem_euclid(7)) as u32, // 1970-01-01 was a Thursday
        hour: (rem / 3_600_000) as u32,
        min: (rem / 60_000 % 60) as u32,
        sec: (rem / 1000 % 60) as u32,
    }
}

/// `new Date(ms).toISOString()`, e.g. `2026-11-22T05:50:10.123Z`.
pub fn iso8601(ms: u64) -> String {
    let mut out = Vec::with_capacity(27);
    write_iso8601(ms, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// `iso8601` appended to `out`: every take writes one (the record's
/// `run_at`). The text up to the second is kept from the last call (a busy
/// server formats the same second over and over), and digits are written
/// with constant divisors, which compile to multiplications.
pub fn write_iso8601(ms: u64, out: &mut Vec<u8>) {
    let second = ms / 1000;
    let kept = LAST_SECOND.with(|last| {
        let (at, text) = last.get();
        (at == second && text.first().is_some_and(|&b| b != 0)).then_some(text)
    });
    match kept {
        Some(text) => out.extend_from_slice(&text),
        None => {
            let (text, len) = up_to_the_second(ms);
            let text = text.get(..len).unwrap_or_default();
            // Kept for four-digit years (the text of every other is longer).
            if let Ok(short) = <[u8; 19]>::try_from(text) {
                LAST_SECOND.with(|last| last.set((second, short)));
            }
            out.extend_from_slice(text);
        }
    }
    let ms = (ms % 1000) as u32;
    out.extend_from_slice(&[b'.', b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8, b'Z']);
}

/// `iso8601` up to the second (`2026-11-22T05:50:10`; years past 9999 in
/// six digits and a sign), and its length.
fn up_to_the_second(ms: u64) -> ([u8; 26], usize) {
    let c = civil(ms);
    let year = c.year.unsigned_abs();
    let mut text = [0u8; 26];
    let mut w = Digits(&mut text, 0);
    if (0..=9999).contains(&c.year) {
        w.put(year as u32, 4);
    } else {
        w.sep(b'+');
        w.put((year / 100) as u32, 4);
        w.put((year % 100) as u32, 2);
    }
    for (sep, n) in [(b'-', c.month), (b'-', c.day), (b'T', c.hour), (b':', c.min), (b':', c.sec)] {
        w.sep(sep);
        w.put(n, 2);
    }
    let len = w.1;
    (text, len)
}

std::thread_local! {
    /// The last second `write_iso8601` formatted, and its text (all zero
    /// bytes until the first).
    static LAST_SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((0, [0; 19])) };
}

/// Digits and separators written into a fixed buffer (bytes past its end
/// are dropped: the callers size it).
struct Digits<'a, const N: usize>(&'a mut [u8; N], usize);

impl<const N: usize> Digits<'_, N> {
    fn sep(&mut self, b: u8) {
        if let Some(slot) = self.0.get_mut(self.1) {
            *slot = b;
        }
        self.1 += 1;
    }

    /// `n` in `width` digits (2 or 4), zero-padded.
    fn put(&mut self, n: u32, width: u32) {
        if width == 4 {
            self.put(n / 100 % 100, 2);
            self.put(n % 100, 2);
            return;
        }
        self.sep(b'0' + (n / 10 % 10) as u8);
        self.sep(b'0' + (n % 10) as u8);
    }
}

/// `new Date(ms).toString()` on a machine whose zone is UTC, e.g.
/// `Sun Nov 22 2026 05:50:10 GMT+0000 (Coordinated Universal Time)`.
pub fn js_date_string(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let c = civil(ms);
    let wd = DAYS.get(c.weekday as usize).copied().unwrap_or("Sun");
    let mon = MONTHS.get(c.month.saturating_sub(1) as usize).copied().unwrap_or("Jan");
    format!(
        "{wd} {mon} {:02} {:04} {:02}:{:02}:{:02} GMT+0000 (Coordinated Universal Time)",
        c.day, c.year, c.hour, c.min, c.sec
    )
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads the dates found in in-flight records: ISO-8601 (`toISOString`,
/// tq and node-resque's cluster path) and JavaScript's `Date.toString()`
/// (node-resque's Lua path, e.g. `Sun Nov 22 2026 06:00:00 GMT+0100 (CET)`).
/// Returns unix ms.
pub fn parse_date(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let num = |t: &str| t.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec, ms, offset_min) = if s.len() >= 20 && s.as_bytes().get(4) == Some(&b'-') {
        // 2026-11-22T06:00:00.000Z or +hh:mm
        let (date, rest) = s.split_once('T')?;
        let mut dp = date.splitn(3, '-');
        let (y, mo, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
        let (clock, zone) = match rest.find(['Z', '+', '-']) {
            Some(i) => rest.split_at(i),
            None => (rest, "Z"),
        };
        let mut cp = clock.splitn(3, ':');
        let (h, mi) = (num(cp.next()?)?, num(cp.next()?)?);
        let sec_part = cp.next().unwrap_or("0");
        let (sec, frac) = sec_part.split_once('.').unwrap_or((sec_part, "0"));
        let ms = num(&format!("{:0<3}", frac.get(..3.min(frac.len())).unwrap_or("0")))?;
        let off = if zone == "Z" || zone.is_empty() {
            0
        } else {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let z = zone.get(1..)?.replace(':', "");
            sign * (num(z.get(..2)?)? * 60 + num(z.get(2..4).unwrap_or("00"))?)
        };
        (y, mo, d, h, mi, num(sec)?, ms, off)
    } else {
        // Sun Nov 22 2026 06:00:00 GMT+0000 (...)
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let mut p = s.split_whitespace();
        let _weekday = p.next()?;
        let mo = MONTHS.iter().position(|m| Some(*m) == p.clone().next())? as i64 + 1;
        p.next();
        let d = num(p.next()?)?;
        let y = num(p.next()?)?;
        let mut cp = p.next()?.splitn(3, ':');
        let (h, mi, sec) = (num(cp.next()?)?, num(cp.next()?)?, num(cp.next()?)?);
        let zone = p.next().unwrap_or("GMT+0000");
        let z = zone.strip_prefix("GMT").unwrap_or("+0000");
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let off = sign * (num(z.get(1..3).unwrap_or("00"))? * 60 + num(z.get(3..5).unwrap_or("00"))?);
        (y, mo, d, h, mi, sec, 0, off)
    };
    let days = days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    let total = (((days * 24 + h) * 60 + mi - offset_min) * 60 + sec) * 1000 + ms;
    u64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_half_up_like_math_round() {
        #[rustfmt::skip]
        let cases = [(0, 0), (499, 0), (500, 1), (1499, 1), (1500, 2), (2499, 2), (2500, 3),
                     (10_000, 10), (1_700_000_000_499, 1_700_000_000), (1_700_000_000_500, 1_700_000_001)];
        for (ms, want) in cases {
            assert_eq!(bucket_of(ms), want, "ms {ms}");
            // Same as JavaScript's Math.round(ms / 1000) on doubles.
            let x = ms as f64 / 1000.0;
            let js = if x - x.floor() >= 0.5 { x.floor() + 1.0 } else { x.floor() };
            assert_eq!(bucket_of(ms) as f64, js);
        }
        assert_eq!(bucket_of(MAX_TIME_MS), 8_640_000_000_000);
    }

    #[test]
    fn due_means_clock_reached_the_second() {
        assert!(!bucket_due(10, 9_999));
        assert!(bucket_due(10, 10_000));
        assert!(bucket_due(0, 0));
        assert!(!bucket_due(u64::MAX, u64::MAX - 1));
    }

    #[test]
    fn dates_read_back() {
        for ms in [0u64, 951_782_400_000, 1_795_240_210_123] {
            assert_eq!(parse_date(iso8601(ms).as_bytes()), Some(ms));
            assert_eq!(parse_date(js_date_string(ms).as_bytes()), Some(ms - ms % 1000));
        }
        assert_eq!(
            parse_date(b"Sat Nov 21 2026 06:50:10 GMT+0100 (Central European Standard Time)"),
            Some(1_795_240_210_000)
        );
        assert_eq!(parse_date(b"2026-11-21T06:50:10.123+01:00"), Some(1_795_240_210_123));
        assert_eq!(parse_date(b"started"), None);
        assert_eq!(parse_date(b""), None);
    }

    #[test]
    fn iso8601_digit_by_digit_matches_formatting() {
        let reference = |ms: u64| {
            let c = civil(ms);
            let year = if (0..=9999).contains(&c.year) { format!("{:04}", c.year) } else { format!("+{:06}", c.year) };
            format!("{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", c.month, c.day, c.hour, c.min, c.sec, ms % 1000)
        };
        let mut ms: u64 = 1;
        while ms < MAX_TIME_MS {
            assert_eq!(iso8601(ms), reference(ms), "{ms}");
            ms = ms * 3 + 7919;
        }
        for ms in [0, 999, 1000, 253_402_300_799_999, 253_402_300_800_000, MAX_TIME_MS] {
            assert_eq!(iso8601(ms), reference(ms), "{ms}");
        }
        // Runs of calls within a second (the kept text) and across seconds,
        // minutes and years, each way round, and past year 9999 in between.
        for base in [0, 1_795_240_210_000, 1_798_761_599_000, 253_402_300_799_000] {
            for ms in (base..base + 3_000).step_by(7).chain((base..base + 3_000).rev().step_by(13)) {
                assert_eq!(iso8601(ms), reference(ms), "{ms}");
                assert_eq!(iso8601(MAX_TIME_MS - ms % 1000), reference(MAX_TIME_MS - ms % 1000));
            }
        }
    }

    #[test]
    fn dates_format_like_javascript() {
        // Values printed by node 20 with TZ=UTC.
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_240_210_123), "2026-11-21T05:50:10.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(MAX_TIME_MS), "+275760-09-13T00:00:00.000Z");
        assert_eq!(js_date_string(0), "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)");
        assert_eq!(js_date_string(1_795_240_210_123), "Sat Nov 21 2026 05:50:10 GMT+0000 (Coordinated Universal Time)");
    }
}

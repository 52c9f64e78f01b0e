//! `tq metrics`: the job metrics the module keeps, per queue and class
//! (`tq_client::metrics`).

use super::*;
use tq_client::metrics::{self as m, Metrics, QueueLatency, Span};
use tq_core::metrics::{Histogram, Tally, BUCKETS};

/// Queues whose latency is read at most.
pub const QUEUES_READ: usize = 1_000;

/// The bound under which the `q` quantile falls, as text: `≤ N ms`, `> N ms`
/// in the last (open) bucket, `-` when empty.
pub fn quantile_text(h: &Histogram, q: f64) -> String {
    let Some(bound) = h.quantile_bound_ms(q) else { return "-".to_string() };
    let total = h.count();
    let want = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
    let below_last = h.counts.iter().take(BUCKETS - 1).fold(0u64, |a, c| a.saturating_add(*c));
    if below_last < want {
        format!("> {bound} ms")
    } else {
        format!("≤ {bound} ms")
    }
}

fn hist_json(h: &Histogram) -> J {
    json!({
        "count": h.count(),
        "sum_ms": h.sum_ms,
        "p50_ms": h.quantile_bound_ms(0.5),
        "p99_ms": h.quantile_bound_ms(0.99),
    })
}

/// A tally as `{"processed", "failed", "run": {...}, "wait": {...}}`.
pub fn tally_json(t: &Tally) -> J {
    json!({"processed": t.processed, "failed": t.failed, "run": hist_json(&t.run), "wait": hist_json(&t.wait)})
}

/// Every queue named by `<ns>:queues` or by a pair, sorted, at most
/// [`QUEUES_READ`].
pub fn metric_queues(c: &mut Client, metrics: &Metrics) -> Result<Vec<String>, Error> {
    let mut queues = m::queue_names(c, QUEUES_READ)?;
    queues.extend(metrics.pairs.iter().map(|p| p.queue.clone()));
    queues.sort();
    queues.dedup();
    queues.truncate(QUEUES_READ);
    Ok(queues)
}

/// The document `tq metrics --json` prints: per pair the last complete
/// minute, the minute so far, the last hour (60 minutes, this one
/// included) and the totals (closed minutes: what `/metrics` serves); per
/// queue its waiting jobs and latency.
pub fn metrics_json(metrics: &Metrics, latencies: &[QueueLatency]) -> J {
    let pairs: Vec<J> = metrics
        .pairs
        .iter()
        .map(|p| {
            let last = p.minutes.len().checked_sub(2).and_then(|i| p.minutes.get(i)).cloned().unwrap_or_default();
            let this = p.minutes.last().cloned().unwrap_or_default();
            json!({
                "queue": p.queue,
                "class": p.class,
                "last_minute": tally_json(&last),
                "this_minute": tally_json(&this),
                "last_hour": tally_json(&p.last_minutes(m::MINUTES)),
                "total": tally_json(&p.total),
            })
        })
        .collect();
    let queues: Vec<J> =
        latencies.iter().map(|q| json!({"queue": q.queue, "waiting": q.waiting, "latency_ms": q.latency_ms})).collect();
    json!({
        "now": metrics.now_ms,
        "minute": metrics.minute,
        "pairs": pairs,
        "pairs_truncated": metrics.truncated,
        "queues": queues,
    })
}

fn metrics_table(metrics: &Metrics, latencies: &[QueueLatency]) -> String {
    let mut out = String::new();
    if metrics.pairs.is_empty() {
        out.push_str("no job metrics yet (they start with the first ACK or FAIL)\n");
    } else {
        let mut t = Table::new(&[
            ("QUEUE", Align::Left),
            ("CLASS", Align::Left),
            ("MINUTE OK/FAIL", Align::Right),
            ("HOUR OK/FAIL", Align::Right),
            ("RUN P50", Align::Right),
            ("RUN P99", Align::Right),
            ("WAIT P50", Align::Right),
            ("WAIT P99", Align::Right),
            ("TOTAL OK/FAIL", Align::Right),
        ]);
        let counts = |t: &Tally| format!("{}/{}", t.processed, t.failed);
        for p in &metrics.pairs {
            let last = p.minutes.len().checked_sub(2).and_then(|i| p.minutes.get(i)).cloned().unwrap_or_default();
            let hour = p.last_minutes(m::MINUTES);
            t.row(vec![
                cell(&p.queue, 40),
                cell(&p.class, 40),
                counts(&last),
                counts(&hour),
                quantile_text(&hour.run, 0.5),
                quantile_text(&hour.run, 0.99),
                quantile_text(&hour.wait, 0.5),
                quantile_text(&hour.wait, 0.99),
                counts(&p.total),
            ]);
        }
        out.push_str(&t.render());
        out.push_str(
            "MINUTE: the last complete minute; HOUR and percentiles: the last 60 minutes; TOTAL: every closed \
             minute\n",
        );
        if metrics.truncated {
            out.push_str(&format!("only the first {} (queue, class) pairs are shown\n", m::MAX_PAIRS));
        }
    }
    if !latencies.is_empty() {
        out.push('\n');
        let mut t = Table::new(&[("QUEUE", Align::Left), ("WAITING", Align::Right), ("LATENCY", Align::Right)]);
        for q in latencies {
            let latency = q.latency_ms.map_or_else(|| "-".to_string(), show_short_ms);
            t.row(vec![cell(&q.queue, 80), q.waiting.to_string(), latency]);
        }
        out.push_str(&t.render());
    }
    out
}

pub(super) fn metrics(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let read = m::read(c, Span { minutes: m::MINUTES, hours: false, pairs: m::MAX_PAIRS })?;
    let queues = metric_queues(c, &read)?;
    let latencies = m::latencies(c, read.now_ms, &queues)?;
    Ok(if as_json {
        Output::json(&metrics_json(&read, &latencies))
    } else {
        Output::ok(metrics_table(&read, &latencies))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_show_as_bounds() {
        let mut h = Histogram::default();
        assert_eq!(quantile_text(&h, 0.5), "-");
        h.add(3);
        h.add(100);
        assert_eq!(quantile_text(&h, 0.5), "≤ 4 ms");
        assert_eq!(quantile_text(&h, 0.99), "≤ 128 ms");
        h.add(u64::MAX / 2);
        h.add(u64::MAX / 2);
        assert_eq!(quantile_text(&h, 0.99), "> 4194304 ms");
    }
}

//! `tq failed`, and `tq retry` / `tq remove` sweeping the failed list.

use super::*;

// ---------------------------------------------------------------------------
// tq failed

pub(super) fn failed(c: &mut Client, a: &FailedArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let total = llen(c, &c.keys()?.failed())?;
    let mut rows: Vec<J> = Vec::new();
    let end = a.offset.saturating_add(a.count);
    let mut pos = a.offset;
    while pos < end {
        let n = (end - pos).min(PAGE);
        let (o, k) = (pos.to_string(), n.to_string());
        let items = array("TQ.FAILED", call(c, "TQ.FAILED", &[ns.as_bytes(), o.as_bytes(), k.as_bytes()])?)?;
        let got = items.len() as u64;
        for item in items {
            let pair = array("TQ.FAILED", item)?;
            let [id, record] = pair.as_slice() else {
                return Err(Error::Protocol("TQ.FAILED: expected [id, record]".to_string()));
            };
            let (Some(id), Some(record)) = (text(id), bytes(record)) else {
                return Err(Error::Protocol("TQ.FAILED: expected strings".to_string()));
            };
            rows.push(failed_json(&id, record));
        }
        if got < n {
            break;
        }
        pos += n;
    }
    if a.output.json {
        return Ok(Output::json(&json!({"total": total, "offset": a.offset, "failed": rows})));
    }
    if rows.is_empty() {
        return Ok(Output::ok(if total == 0 {
            "no failed jobs\n".to_string()
        } else if a.count == 0 {
            format!("{} in all\n", plural(total, "failed job"))
        } else {
            format!("no failed job at position {} and after ({total} in all)\n", a.offset)
        }));
    }
    let now = server_now(c)?;
    let mut out = failed_table(&rows, now);
    out.push_str(&format!("failed jobs {}-{} of {total}\n", a.offset + 1, a.offset + rows.len() as u64));
    Ok(Output::ok(out))
}

pub(super) fn failed_table(rows: &[J], now: u64) -> String {
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("FAILED AT", Align::Left),
        ("QUEUE", Align::Left),
        ("CLASS", Align::Left),
        ("EXCEPTION", Align::Left),
        ("ERROR", Align::Left),
    ]);
    for r in rows {
        let class = pick(r, "class").as_str().map_or("?".to_string(), |s| cell(s, 40));
        t.row(vec![
            show_json(pick(r, "id")),
            time_cell(pick(r, "failed_at").as_u64(), &J::Null, now),
            cell(&show_json(pick(r, "queue")), 40),
            class,
            cell(&show_json(pick(r, "exception")), 40),
            cell(&show_json(pick(r, "error")), ERROR_WIDTH),
        ]);
    }
    t.render()
}

// ---------------------------------------------------------------------------
// tq retry, tq remove

/// Which of the two sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    Retry,
    Remove,
}

impl Sweep {
    pub(super) fn command(self) -> &'static str {
        match self {
            Sweep::Retry => "TQ.FAILRETRY",
            Sweep::Remove => "TQ.FAILREMOVE",
        }
    }

    pub(super) fn verb(self) -> &'static str {
        match self {
            Sweep::Retry => "retried",
            Sweep::Remove => "removed",
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Sweep::Retry => "retry",
            Sweep::Remove => "remove",
        }
    }
}

/// Where the next call of a sweep starts, given one call's window and reply
/// (`next` None for nil); None at the end.
///
/// The module replies nil at the end; 0 when every record of a full window
/// from position 0 matched (they are gone, so the rest starts at 0 again).
/// Modules before that change replied 0 at the end too: a 0 that cannot be
/// the full-window case (from a position p > 0 `next` is at least p; a window
/// from 0 with fewer matches than `limit` leaves `next` > 0 unless it reached
/// the end) is read as the end, so a sweep never loops on an older module.
pub fn next_from(from: u64, limit: u64, affected: u64, next: Option<u64>) -> Option<u64> {
    match next {
        None => None,
        Some(0) if from != 0 || affected < limit => None,
        Some(n) => Some(n),
    }
}

/// Records a call looked at (for the progress report), None when unknown
/// (the end: the rest of the list).
pub fn looked_at(from: u64, affected: u64, next: Option<u64>) -> Option<u64> {
    match next {
        Some(0) => Some(affected),
        Some(n) => Some((n + affected).saturating_sub(from)),
        None => None,
    }
}

pub(super) fn progress_style(arg: ProgressArg) -> ProgressStyle {
    match arg {
        ProgressArg::Auto if std::io::stderr().is_terminal() => ProgressStyle::Bar,
        ProgressArg::Auto | ProgressArg::Plain => ProgressStyle::Plain,
        ProgressArg::Bar => ProgressStyle::Bar,
        ProgressArg::None => ProgressStyle::Off,
    }
}

pub(crate) fn sweep(c: &mut Client, a: &SweepArgs, kind: Sweep) -> Result<Output, Error> {
    sweep_reporting(c, a, kind, &mut |_| {})
}

/// A sweep's figures after each batch (`tq web` shows them while it runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepStep {
    /// Records retried or removed so far.
    pub affected: u64,
    /// Records looked at so far.
    pub looked: u64,
    /// The failed list's length when the sweep began.
    pub total: u64,
}

/// [`sweep`], calling `step` after each batch.
pub(crate) fn sweep_reporting(
    c: &mut Client,
    a: &SweepArgs,
    kind: Sweep,
    step: &mut dyn FnMut(SweepStep),
) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let total = llen(c, &c.keys()?.failed())?;
    let mut filters: Vec<(&str, &str)> = Vec::new();
    for (word, value) in [("ID", &a.id), ("CLASS", &a.class), ("QUEUE", &a.queue), ("EXCEPTION", &a.exception)] {
        if let Some(v) = value {
            filters.push((word, v));
        }
    }
    let mut progress = Progress::new(kind.label(), kind.verb(), total, progress_style(a.progress));
    let (mut from, mut affected, mut looked, mut calls) = (0u64, 0u64, 0u64, 0u64);
    let batch = a.batch.to_string();
    loop {
        let mut cmd = redis::cmd(kind.command());
        cmd.arg(&ns);
        for (word, value) in &filters {
            cmd.arg(*word).arg(*value);
        }
        cmd.arg("FROM").arg(from).arg("LIMIT").arg(&batch);
        let reply = match c.call(&cmd) {
            Ok(v) => v,
            Err(e) => {
                progress.finish();
                if affected > 0 {
                    eprintln!("tq {}: stopped after {affected} records {}", kind.label(), kind.verb());
                }
                return Err(e);
            }
        };
        let pair = array(kind.command(), reply)?;
        let [n, next] = pair.as_slice() else {
            return Err(Error::Protocol(format!("{}: expected [count, next]", kind.command())));
        };
        let n = uint(kind.command(), n)?;
        let next = match next {
            Value::Nil => None,
            other => Some(uint(kind.command(), other)?),
        };
        calls += 1;
        affected += n;
        let next = next_from(from, a.batch, n, next);
        looked = match looked_at(from, n, next) {
            Some(k) => looked + k,
            None => looked.max(total),
        };
        progress.update(looked, affected);
        step(SweepStep { affected, looked, total });
        match next {
            Some(p) => from = p,
            None => break,
        }
    }
    progress.finish();
    let code = if affected == 0 { NOTHING_MATCHED } else { 0 };
    if a.output.json {
        let mut doc = json!({"looked_at": looked, "calls": calls});
        if let Some(m) = doc.as_object_mut() {
            m.insert(kind.verb().to_string(), json!(affected));
        }
        return Ok(Output { text: format!("{doc}\n"), code });
    }
    let text = if affected == 0 {
        format!("nothing matched: no failed job {} (looked at {})\n", kind.verb(), plural(looked, "record"))
    } else {
        format!(
            "{} {} (looked at {} in {})\n",
            kind.verb(),
            plural(affected, "failed job"),
            plural(looked, "record"),
            plural(calls, "call")
        )
    };
    Ok(Output { text, code })
}

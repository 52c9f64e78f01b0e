//! `tq workers`, `tq clean-workers`, `tq details`, `tq locks`.

use super::*;

// ---------------------------------------------------------------------------
// tq workers

/// TQ.WORKERS rows `[name, queues, record-or-nil]` as `{"name", "queues":
/// [...], "job": null | {"queue", "class", "args", "payload", "run_at"}}`.
pub fn worker_json(row: &[Value]) -> Option<J> {
    let [name, queues, record] = row else { return None };
    let queues: Vec<String> = text(queues)?.split(',').filter(|q| !q.is_empty()).map(str::to_string).collect();
    Some(json!({
        "name": text(name)?,
        "queues": queues,
        "job": bytes(record).map_or(J::Null, in_flight_json),
    }))
}

pub(super) fn worker_rows(c: &mut Client) -> Result<Vec<J>, Error> {
    let ns = c.ns().to_string();
    let mut out = Vec::new();
    loop {
        let (offset, count) = ((out.len() as u64).to_string(), PAGE.to_string());
        let v = call(c, "TQ.WORKERS", &[ns.as_bytes(), offset.as_bytes(), count.as_bytes()])?;
        let items = array("TQ.WORKERS", v)?;
        let got = items.len() as u64;
        for item in items {
            let row = array("TQ.WORKERS", item)?;
            out.push(worker_json(&row).ok_or_else(|| Error::Protocol("TQ.WORKERS: a malformed row".to_string()))?);
        }
        if got < PAGE {
            return Ok(out);
        }
    }
}

pub(super) fn workers_table(rows: &[J], now: u64, indent: usize) -> String {
    if rows.is_empty() {
        return format!("{}no registered workers\n", " ".repeat(indent));
    }
    let mut t = Table::new(&[
        ("WORKER", Align::Left),
        ("QUEUES", Align::Left),
        ("JOB", Align::Left),
        ("QUEUE", Align::Left),
        ("STARTED", Align::Left),
    ]);
    for w in rows {
        let queues: Vec<String> =
            pick(w, "queues").as_array().map(|q| q.iter().map(show_json).collect()).unwrap_or_default();
        let job = pick(w, "job");
        let (what, queue, started) = if job.is_null() {
            ("-".to_string(), "-".to_string(), "-".to_string())
        } else {
            let (class, args) = job_cells(job);
            (
                format!("{class} {args}"),
                cell(&show_json(pick(job, "queue")), 40),
                time_cell(pick(job, "run_at").as_u64(), &J::Null, now),
            )
        };
        t.row(vec![cell(&show_json(pick(w, "name")), 60), cell(&queues.join(","), 60), what, queue, started]);
    }
    t.render_indented(indent)
}

pub(super) fn workers(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let rows = worker_rows(c)?;
    if as_json {
        return Ok(Output::json(&json!({"workers": rows})));
    }
    let now = server_now(c)?;
    let mut out = workers_table(&rows, now, 0);
    if !rows.is_empty() {
        let busy = rows.iter().filter(|w| !pick(w, "job").is_null()).count();
        out.push_str(&format!("{}, {busy} working\n", plural(rows.len(), "worker")));
    }
    Ok(Output::ok(out))
}

// ---------------------------------------------------------------------------
// tq clean-workers

pub(super) fn clean_workers(c: &mut Client, a: &CleanWorkersArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    if let Some(name) = &a.worker {
        return force_clean(c, name, a.output.json);
    }
    let age = millis(a.age.unwrap_or_default()).to_string();
    let v = call(c, "TQ.CLEANWORKERS", &[ns.as_bytes(), age.as_bytes()])?;
    let mut cleaned = Vec::new();
    for item in array("TQ.CLEANWORKERS", v)? {
        let pair = array("TQ.CLEANWORKERS", item)?;
        let [w, record] = pair.as_slice() else {
            return Err(Error::Protocol("TQ.CLEANWORKERS: expected [worker, record]".to_string()));
        };
        cleaned.push(json!({
            "worker": text(w),
            "failed": bytes(record).map_or(J::Null, failed_json_of),
        }));
    }
    if a.output.json {
        return Ok(Output::json(&json!({"cleaned": cleaned})));
    }
    if cleaned.is_empty() {
        let shown = show(a.age.unwrap_or_default());
        return Ok(Output::ok(format!("no worker has run its job for more than {shown}\n")));
    }
    let mut t = Table::new(&[("WORKER", Align::Left), ("JOB", Align::Left), ("QUEUE", Align::Left)]);
    for w in &cleaned {
        t.row(clean_row(w));
    }
    let mut out = t.render();
    out.push_str(&format!("cleaned {}; the jobs they held went to the failed list\n", plural(cleaned.len(), "worker")));
    Ok(Output::ok(out))
}

pub(super) fn clean_row(w: &J) -> Vec<String> {
    let f = pick(w, "failed");
    let job = if f.is_null() {
        "-".to_string()
    } else {
        let (class, args) = job_cells(f);
        format!("{class} {args}")
    };
    vec![cell(&show_json(pick(w, "worker")), 60), job, cell(&show_json(pick(f, "queue")), 40)]
}

/// TQ.FORCECLEAN; "nothing matched" when the worker was not registered
/// (TQ.WORKERS, looked at first) and held no job.
pub(super) fn force_clean(c: &mut Client, name: &str, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let rows = worker_rows(c)?;
    let registered = rows.iter().any(|w| pick(w, "name").as_str() == Some(name));
    let v = call(c, "TQ.FORCECLEAN", &[ns.as_bytes(), name.as_bytes()])?;
    let failed = bytes(&v).map_or(J::Null, failed_json_of);
    let matched = registered || !failed.is_null();
    let code = if matched { 0 } else { NOTHING_MATCHED };
    if as_json {
        let doc = json!({"worker": name, "registered": registered, "failed": failed});
        return Ok(Output { text: format!("{doc}\n"), code });
    }
    let text = if !matched {
        format!("nothing matched: no worker '{name}' was registered or held a job\n")
    } else if failed.is_null() {
        format!("cleaned worker '{name}' (it held no job)\n")
    } else {
        let (class, args) = job_cells(&failed);
        format!(
            "cleaned worker '{name}'; its job {class} {args} (queue '{}') went to the failed list as {}\n",
            show_json(pick(&failed, "queue")),
            show_json(pick(&failed, "id"))
        )
    };
    Ok(Output { text, code })
}

// ---------------------------------------------------------------------------
// tq details

/// TQ.DETAILS's flat `[name, value, ...]` as one JSON object: `queues`
/// (`[{"name", "length"}]`), `workers` (as `tq workers`), `stats` (as `tq
/// stats`), `leader`, `delayed_buckets`, `delayed_jobs`,
/// `oldest_due_lateness_ms`, `in_flight`, `failed` (the list's length).
pub fn details_json(flat: Vec<Value>) -> Result<J, Error> {
    let mut doc = serde_json::Map::new();
    let mut it = flat.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Some(name) = text(&name) else { continue };
        let v = match name.as_str() {
            "queues" => {
                let mut list = Vec::new();
                for q in array("TQ.DETAILS", value)? {
                    let pair = array("TQ.DETAILS", q)?;
                    if let [n, len] = pair.as_slice() {
                        list.push((text(n).unwrap_or_default(), uint("TQ.DETAILS", len)?));
                    }
                }
                queues_json(&list)
            }
            "workers" => {
                let mut rows = Vec::new();
                for w in array("TQ.DETAILS", value)? {
                    rows.extend(worker_json(&array("TQ.DETAILS", w)?));
                }
                J::Array(rows)
            }
            "stats" => stats_json(&array("TQ.DETAILS", value)?),
            "leader" => text(&value).map_or(J::Null, J::String),
            _ => match &value {
                Value::Nil => J::Null,
                other => int(other).map_or_else(|| text(other).map_or(J::Null, J::String), |n| json!(n)),
            },
        };
        doc.insert(name, v);
    }
    Ok(J::Object(doc))
}

pub(super) fn details(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let flat = array("TQ.DETAILS", call(c, "TQ.DETAILS", &[ns.as_bytes()])?)?;
    let doc = details_json(flat)?;
    if as_json {
        return Ok(Output::json(&doc));
    }
    let now = server_now(c)?;
    let queues = pick(&doc, "queues").as_array().cloned().unwrap_or_default();
    let workers = pick(&doc, "workers").as_array().cloned().unwrap_or_default();
    let waiting: u64 = queues.iter().filter_map(|q| pick(q, "length").as_u64()).sum();
    let lateness = match pick(&doc, "oldest_due_lateness_ms").as_u64() {
        Some(ms) => format!("oldest due time is {} late", show_short_ms(ms)),
        None => "none due".to_string(),
    };
    let mut t = Table::new(&[("", Align::Left), ("", Align::Left)]);
    let mut kv = |k: &str, v: String| t.row(vec![k.to_string(), v]);
    kv("queues", format!("{} ({} waiting)", queues.len(), plural(waiting, "job")));
    kv(
        "workers",
        format!(
            "{}{} ({} working)",
            workers.len(),
            if workers.len() >= 100 { "+ (first 100 listed)" } else { "" },
            workers.iter().filter(|w| !pick(w, "job").is_null()).count()
        ),
    );
    kv("in flight", show_json(pick(&doc, "in_flight")));
    kv(
        "delayed",
        format!(
            "{} at {}; {lateness}",
            plural(pick(&doc, "delayed_jobs").as_u64().unwrap_or(0), "job"),
            plural(pick(&doc, "delayed_buckets").as_u64().unwrap_or(0), "time")
        ),
    );
    kv("failed", format!("{} in the failed list", show_json(pick(&doc, "failed"))));
    kv("processed", format!("{} (counter)", show_json(pick(pick(&doc, "stats"), "processed"))));
    kv("failures", format!("{} (counter)", show_json(pick(pick(&doc, "stats"), "failed"))));
    kv("leader", pick(&doc, "leader").as_str().map_or("none".to_string(), |l| cell(l, 80)));
    // The header row of this two-column table is blank: drop it.
    let rendered = t.render();
    let mut out: String = rendered.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let list: Vec<(String, u64)> = queues
        .iter()
        .map(|q| (pick(q, "name").as_str().unwrap_or_default().to_string(), pick(q, "length").as_u64().unwrap_or(0)))
        .collect();
    if !list.is_empty() {
        out.push('\n');
        out.push_str(&queues_table(&list, 0));
    }
    if !workers.is_empty() {
        out.push('\n');
        out.push_str(&workers_table(&workers, now, 0));
    }
    Ok(Output::ok(out))
}

// ---------------------------------------------------------------------------
// tq locks

/// A lock as TQ.LOCKS names it: `{"name", "kind" ("queue": node-resque's
/// QueueLock `lock:...`, "job": its JobLock `workerslock:...`, "pair": tq's
/// `tq:lock:...`), "value", "deadline" (unix ms, when the lock goes stale)}`.
pub fn lock_json(name: &str, value: &str) -> J {
    let (kind, deadline) = match tq_core::keys::lock_kind(name.as_bytes()).map(|(k, _)| k) {
        Some(k @ (LockKind::Queue | LockKind::Job)) => {
            (k.as_str(), value.trim().parse::<u64>().ok().map(|s| s.saturating_mul(1000)))
        }
        Some(k @ LockKind::Pair) => {
            let until = value.rsplit_once(" until ").and_then(|(_, t)| tq_core::time::parse_date(t.as_bytes()));
            (k.as_str(), until)
        }
        None => ("other", None),
    };
    json!({"name": name, "kind": kind, "value": value, "deadline": deadline})
}

pub(super) fn locks(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    let mut cursor = "0".to_string();
    let count = LOCKS_PAGE.to_string();
    loop {
        let v = call(c, "TQ.LOCKS", &[ns.as_bytes(), cursor.as_bytes(), count.as_bytes()])?;
        let parts = array("TQ.LOCKS", v)?;
        let [next, rows] = parts.as_slice() else {
            return Err(Error::Protocol("TQ.LOCKS: expected [cursor, locks]".to_string()));
        };
        for row in array("TQ.LOCKS", rows.clone())? {
            let pair = array("TQ.LOCKS", row)?;
            if let [name, value] = pair.as_slice() {
                found.insert(text(name).unwrap_or_default(), text(value).unwrap_or_default());
            }
        }
        cursor = uint("TQ.LOCKS", next)?.to_string();
        if cursor == "0" {
            break;
        }
    }
    let rows: Vec<J> = found.iter().map(|(n, v)| lock_json(n, v)).collect();
    if as_json {
        return Ok(Output::json(&json!({"locks": rows})));
    }
    if rows.is_empty() {
        return Ok(Output::ok("no locks\n".to_string()));
    }
    let now = server_now(c)?;
    let mut t =
        Table::new(&[("LOCK", Align::Left), ("KIND", Align::Left), ("STALE AT", Align::Left), ("VALUE", Align::Left)]);
    for l in &rows {
        t.row(vec![
            cell(&show_json(pick(l, "name")), 80),
            show_json(pick(l, "kind")),
            pick(l, "deadline").as_u64().map_or("-".to_string(), |d| when(d, now)),
            cell(&show_json(pick(l, "value")), 80),
        ]);
    }
    let mut out = t.render();
    out.push_str(&format!("{}\n", plural(rows.len(), "lock")));
    Ok(Output::ok(out))
}

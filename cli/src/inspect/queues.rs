//! `tq stats`, `tq queues`, `tq queued`, `tq delayed`.

use super::*;

// ---------------------------------------------------------------------------
// tq stats

/// TQ.STATS's flat `[name, value, ...]` as `{"processed", "failed",
/// "workers": [{"name", "processed", "failed"}]}`.
pub fn stats_json(flat: &[Value]) -> J {
    let (mut processed, mut failed) = (json!(0), json!(0));
    let mut per: BTreeMap<String, (J, J)> = BTreeMap::new();
    for pair in flat.chunks(2) {
        let [name, value] = pair else { continue };
        let Some(name) = text(name) else { continue };
        let value = counter(value);
        match name.as_str() {
            "processed" => processed = value,
            "failed" => failed = value,
            _ => {
                if let Some(w) = name.strip_prefix("processed:") {
                    per.entry(w.to_string()).or_insert((json!(0), json!(0))).0 = value;
                } else if let Some(w) = name.strip_prefix("failed:") {
                    per.entry(w.to_string()).or_insert((json!(0), json!(0))).1 = value;
                }
            }
        }
    }
    let workers: Vec<J> =
        per.into_iter().map(|(name, (p, f))| json!({"name": name, "processed": p, "failed": f})).collect();
    json!({"processed": processed, "failed": failed, "workers": workers})
}

pub(super) fn stats_table(doc: &J) -> String {
    let mut top = Table::new(&[("STAT", Align::Left), ("VALUE", Align::Right)]);
    for name in ["processed", "failed"] {
        top.row(vec![name.to_string(), show_json(pick(doc, name))]);
    }
    let mut out = top.render();
    let counted = pick(doc, "counters");
    let mut rows = Vec::new();
    if let Some(global) = pick(counted, "global").as_object() {
        rows.extend(global.iter().map(|(name, n)| ("(global)".to_string(), name.clone(), show_json(n))));
    }
    if let Some(local) = pick(counted, "local").as_object() {
        for (server, hash) in local {
            if let Some(hash) = hash.as_object() {
                rows.extend(hash.iter().map(|(name, n)| (server.clone(), name.clone(), show_json(n))));
            }
        }
    }
    if !rows.is_empty() {
        out.push('\n');
        let mut t = Table::new(&[("SERVER", Align::Left), ("COUNTER", Align::Left), ("VALUE", Align::Right)]);
        for (server, name, n) in rows {
            t.row(vec![cell(&server, 60), cell(&name, 60), n]);
        }
        out.push_str(&t.render());
    }
    let workers = pick(doc, "workers").as_array().cloned().unwrap_or_default();
    out.push('\n');
    if workers.is_empty() {
        out.push_str("no registered worker has counters\n");
        return out;
    }
    let mut t = Table::new(&[("WORKER", Align::Left), ("PROCESSED", Align::Right), ("FAILED", Align::Right)]);
    for w in &workers {
        t.row(vec![
            cell(&show_json(pick(w, "name")), 60),
            show_json(pick(w, "processed")),
            show_json(pick(w, "failed")),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// SCAN steps `tq stats` takes to find per-server counters.
const COUNTER_SCAN_STEPS: usize = 1000;

/// The counters the Node package keeps (`Stats.increment`): the global
/// hash and each server's (`{"global": {name: n}, "local": {server: {..}}}`).
pub fn counters(c: &mut Client) -> Result<J, Error> {
    let ns = c.ns().to_string();
    let keys = tq_core::keys::Ns::new(ns.as_bytes(), false).map_err(|e| Error::Config(e.to_string()))?;
    let hash = |c: &mut Client, key: &[u8]| -> Result<serde_json::Map<String, J>, Error> {
        let flat = array("HGETALL", call(c, "HGETALL", &[key])?)?;
        Ok(flat
            .chunks(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((text(k)?, counter(v))),
                _ => None,
            })
            .collect())
    };
    let global = hash(c, &keys.stats_global())?;
    let prefix = keys.stats_local(b"");
    let pattern = keys.stats_local_pattern();
    let mut local = serde_json::Map::new();
    let mut cursor = b"0".to_vec();
    for _ in 0..COUNTER_SCAN_STEPS {
        let step = array("SCAN", call(c, "SCAN", &[&cursor, b"MATCH", &pattern, b"COUNT", b"1000"])?)?;
        let [next, found] = step.as_slice() else { break };
        for key in array("SCAN", found.clone())?.iter().filter_map(bytes) {
            let server = String::from_utf8_lossy(key.get(prefix.len()..).unwrap_or_default()).into_owned();
            local.insert(server, J::Object(hash(c, key)?));
        }
        cursor = bytes(next).map(<[u8]>::to_vec).unwrap_or_else(|| b"0".to_vec());
        if cursor == b"0" {
            break;
        }
    }
    Ok(json!({"global": global, "local": local}))
}

pub(super) fn stats(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let flat = array("TQ.STATS", call(c, "TQ.STATS", &[ns.as_bytes()])?)?;
    let mut doc = stats_json(&flat);
    let counted = counters(c)?;
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("counters".to_string(), counted);
    }
    Ok(if as_json { Output::json(&doc) } else { Output::ok(stats_table(&doc)) })
}

// ---------------------------------------------------------------------------
// tq queues, tq queued

pub(super) fn queue_list(c: &mut Client) -> Result<Vec<(String, u64)>, Error> {
    let members = array("SMEMBERS", call(c, "SMEMBERS", &[&c.keys()?.queues()])?)?;
    let mut names: Vec<String> = members.iter().filter_map(text).collect();
    names.sort();
    names.dedup();
    let ns = c.keys()?;
    let keys: Vec<Vec<u8>> = names.iter().map(|q| ns.queue(q.as_bytes())).collect();
    let lens = lengths(c, &keys)?;
    Ok(names.into_iter().zip(lens).collect())
}

pub(super) fn queues_json(list: &[(String, u64)]) -> J {
    J::Array(list.iter().map(|(name, len)| json!({"name": name, "length": len})).collect())
}

pub(super) fn queues_table(list: &[(String, u64)], indent: usize) -> String {
    if list.is_empty() {
        return format!("{}no queues\n", " ".repeat(indent));
    }
    let mut t = Table::new(&[("QUEUE", Align::Left), ("LENGTH", Align::Right)]);
    for (name, len) in list {
        t.row(vec![cell(name, 80), len.to_string()]);
    }
    t.render_indented(indent)
}

pub(super) fn queues(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let list = queue_list(c)?;
    if as_json {
        return Ok(Output::json(&json!({"queues": queues_json(&list)})));
    }
    let mut out = queues_table(&list, 0);
    if !list.is_empty() {
        let jobs: u64 = list.iter().map(|(_, n)| n).sum();
        out.push_str(&format!("{}, {} waiting\n", plural(list.len(), "queue"), plural(jobs, "job")));
    }
    Ok(Output::ok(out))
}

/// `LRANGE` from `offset`, `count` items at most, a page at a time.
pub(crate) fn lrange<K: AsRef<[u8]> + ?Sized>(
    c: &mut Client,
    k: &K,
    offset: u64,
    count: u64,
) -> Result<Vec<Vec<u8>>, Error> {
    let k = k.as_ref();
    let mut out = Vec::new();
    let mut pos = offset;
    let end = offset.saturating_add(count);
    while pos < end {
        let n = (end - pos).min(PAGE);
        let (start, stop) = (pos.to_string(), (pos + n - 1).to_string());
        let items = array("LRANGE", call(c, "LRANGE", &[k, start.as_bytes(), stop.as_bytes()])?)?;
        let got = items.len() as u64;
        out.extend(items.iter().filter_map(bytes).map(<[u8]>::to_vec));
        if got < n {
            break;
        }
        pos += n;
    }
    Ok(out)
}

pub(super) fn queued(c: &mut Client, a: &QueuedArgs) -> Result<Output, Error> {
    let k = c.keys()?.queue(a.queue.as_bytes());
    let length = llen(c, &k)?;
    let jobs = lrange(c, &k, a.offset, a.count)?;
    let rows: Vec<J> = jobs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut j = job_json(p);
            if let Some(m) = j.as_object_mut() {
                m.insert("position".to_string(), json!(a.offset + i as u64));
            }
            j
        })
        .collect();
    if a.output.json {
        return Ok(Output::json(&json!({"queue": a.queue, "length": length, "offset": a.offset, "jobs": rows})));
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str(&if length == 0 {
            format!("queue '{}' is empty\n", a.queue)
        } else {
            format!("no job at position {} and after (queue '{}' has {length})\n", a.offset, a.queue)
        });
        return Ok(Output::ok(out));
    }
    let mut t = Table::new(&[("POS", Align::Right), ("CLASS", Align::Left), ("ARGS", Align::Left)]);
    for j in &rows {
        let (class, args) = job_cells(j);
        t.row(vec![show_json(pick(j, "position")), class, args]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "jobs {}-{} of {length} in queue '{}'\n",
        a.offset + 1,
        a.offset + rows.len() as u64,
        a.queue
    ));
    Ok(Output::ok(out))
}

// ---------------------------------------------------------------------------
// tq delayed

pub(super) fn timestamps(c: &mut Client) -> Result<Vec<u64>, Error> {
    let ns = c.ns().to_string();
    let mut out = Vec::new();
    loop {
        let offset = (out.len() as u64).to_string();
        let page = PAGE.to_string();
        let v = call(c, "TQ.TIMESTAMPS", &[ns.as_bytes(), offset.as_bytes(), page.as_bytes()])?;
        let items = array("TQ.TIMESTAMPS", v)?;
        let got = items.len() as u64;
        for v in &items {
            out.push(uint("TQ.TIMESTAMPS", v)?);
        }
        // Until an empty page: the module skips buckets left empty (up to
        // 1000 a call), so a page can come short with more to follow.
        if got == 0 {
            return Ok(out);
        }
    }
}

pub(super) fn bucket_key(c: &Client, at_ms: u64) -> Result<Vec<u8>, Error> {
    Ok(c.keys()?.delayed(tq_core::time::bucket_of(at_ms).to_string().as_bytes()))
}

pub(super) fn delayed(c: &mut Client, a: &DelayedArgs) -> Result<Output, Error> {
    if let Some(at) = a.at {
        return delayed_at(c, at, a.output.json);
    }
    if a.jobs {
        return all_delayed(c, a.output.json);
    }
    if let Some(job) = &a.job {
        return scheduled_at(c, job, a.output.json);
    }
    let times = timestamps(c)?;
    let keys = times.iter().map(|&t| bucket_key(c, t)).collect::<Result<Vec<_>, _>>()?;
    let counts = lengths(c, &keys)?;
    let total: u64 = counts.iter().sum();
    if a.output.json {
        let rows: Vec<J> = times.iter().zip(&counts).map(|(t, n)| json!({"at": t, "count": n})).collect();
        return Ok(Output::json(&json!({"timestamps": rows, "total": total})));
    }
    if times.is_empty() {
        return Ok(Output::ok("no delayed jobs\n".to_string()));
    }
    let now = server_now(c)?;
    let mut t = Table::new(&[("TIME", Align::Left), ("JOBS", Align::Right)]);
    for (at, n) in times.iter().zip(&counts) {
        t.row(vec![when(*at, now), n.to_string()]);
    }
    let mut out = t.render();
    out.push_str(&format!("{} at {}\n", plural(total, "delayed job"), plural(times.len(), "time")));
    Ok(Output::ok(out))
}

pub(super) fn delayed_at(c: &mut Client, at: u64, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let at_s = at.to_string();
    let mut jobs: Vec<Vec<u8>> = Vec::new();
    loop {
        let start = jobs.len() as u64;
        let (s, e) = (start.to_string(), (start + PAGE - 1).to_string());
        let v = call(c, "TQ.DELAYEDAT", &[ns.as_bytes(), at_s.as_bytes(), s.as_bytes(), e.as_bytes()])?;
        let items = array("TQ.DELAYEDAT", v)?;
        let got = items.len() as u64;
        jobs.extend(items.iter().filter_map(bytes).map(<[u8]>::to_vec));
        if got < PAGE {
            break;
        }
    }
    let bucket = tq_core::time::bucket_of(at).saturating_mul(1000);
    let rows: Vec<J> = jobs.iter().map(|p| job_json(p)).collect();
    if as_json {
        return Ok(Output::json(&json!({"at": at, "bucket": bucket, "jobs": rows})));
    }
    let now = server_now(c)?;
    if rows.is_empty() {
        return Ok(Output::ok(format!("no delayed jobs at {}\n", when(bucket, now))));
    }
    let mut t = Table::new(&[("QUEUE", Align::Left), ("CLASS", Align::Left), ("ARGS", Align::Left)]);
    for j in &rows {
        let (class, args) = job_cells(j);
        t.row(vec![cell(&show_json(pick(j, "queue")), 40), class, args]);
    }
    let mut out = t.render();
    out.push_str(&format!("{} at {}\n", plural(rows.len(), "delayed job"), when(bucket, now)));
    Ok(Output::ok(out))
}

pub(super) fn all_delayed(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let mut buckets: Vec<(u64, Vec<Vec<u8>>)> = Vec::new();
    loop {
        let (offset, count) = ((buckets.len() as u64).to_string(), ALLDELAYED_PAGE.to_string());
        let v = call(c, "TQ.ALLDELAYED", &[ns.as_bytes(), offset.as_bytes(), count.as_bytes()])?;
        let items = array("TQ.ALLDELAYED", v)?;
        let got = items.len() as u64;
        for item in items {
            let parts = array("TQ.ALLDELAYED", item)?;
            let [at, jobs] = parts.as_slice() else {
                return Err(Error::Protocol("TQ.ALLDELAYED: expected [time, jobs]".to_string()));
            };
            let at = uint("TQ.ALLDELAYED", at)?;
            let jobs = array("TQ.ALLDELAYED", jobs.clone())?;
            buckets.push((at, jobs.iter().filter_map(bytes).map(<[u8]>::to_vec).collect()));
        }
        // Until an empty page, as for TQ.TIMESTAMPS.
        if got == 0 {
            break;
        }
    }
    // A bucket shown full may hold more than the module lists.
    let mut counts = Vec::with_capacity(buckets.len());
    for (at, jobs) in &buckets {
        let n = jobs.len() as u64;
        counts.push(if n >= ALLDELAYED_PAGE { llen(c, &bucket_key(c, *at)?)? } else { n });
    }
    if as_json {
        let rows: Vec<J> = buckets
            .iter()
            .zip(&counts)
            .map(|((at, jobs), n)| {
                let jobs: Vec<J> = jobs.iter().map(|p| job_json(p)).collect();
                json!({"at": at, "count": n, "jobs": jobs})
            })
            .collect();
        return Ok(Output::json(&json!({"timestamps": rows})));
    }
    if buckets.is_empty() {
        return Ok(Output::ok("no delayed jobs\n".to_string()));
    }
    let now = server_now(c)?;
    let mut t =
        Table::new(&[("TIME", Align::Left), ("QUEUE", Align::Left), ("CLASS", Align::Left), ("ARGS", Align::Left)]);
    let mut notes = String::new();
    for ((at, jobs), n) in buckets.iter().zip(&counts) {
        let shown = when(*at, now);
        for p in jobs {
            let j = job_json(p);
            let (class, args) = job_cells(&j);
            t.row(vec![shown.clone(), cell(&show_json(pick(&j, "queue")), 40), class, args]);
        }
        if *n > jobs.len() as u64 {
            notes.push_str(&format!(
                "{}: {} of {n} jobs shown (tq delayed --at {} lists them all)\n",
                rfc3339(*at),
                jobs.len(),
                at
            ));
        }
    }
    let mut out = t.render();
    out.push_str(&notes);
    out.push_str(&format!(
        "{} at {}\n",
        plural(counts.iter().sum::<u64>(), "delayed job"),
        plural(buckets.len(), "time")
    ));
    Ok(Output::ok(out))
}

pub(super) fn scheduled_at(c: &mut Client, job: &[String], as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let mut args: Vec<&[u8]> = vec![ns.as_bytes()];
    args.extend(job.iter().map(|s| s.as_bytes()));
    let v = call(c, "TQ.SCHEDULEDAT", &args)?;
    let mut times = Vec::new();
    for t in &array("TQ.SCHEDULEDAT", v)? {
        times.push(uint("TQ.SCHEDULEDAT", t)?);
    }
    let queue = job.first().cloned().unwrap_or_default();
    let class = job.get(1).cloned().unwrap_or_default();
    let args_json = job.get(2).cloned().unwrap_or_else(|| "[]".to_string());
    if as_json {
        let args = serde_json::from_str::<J>(&args_json).unwrap_or(J::String(args_json));
        return Ok(Output::json(&json!({"queue": queue, "class": class, "args": args, "times": times})));
    }
    let desc = format!("{class} {args_json} on queue '{queue}'");
    if times.is_empty() {
        return Ok(Output::ok(format!("{desc} is not filed as a delayed job\n")));
    }
    let now = server_now(c)?;
    let mut t = Table::new(&[("TIME", Align::Left)]);
    for at in &times {
        t.row(vec![when(*at, now)]);
    }
    let mut out = t.render();
    out.push_str(&format!("{desc} is filed at {}\n", plural(times.len(), "time")));
    Ok(Output::ok(out))
}

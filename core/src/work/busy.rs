//! `TQ.POP ... ACK` for a busy worker, planned in one pass.
//!
//! A worker that completes one job and takes the next from a queue of
//! ordinary jobs is most of what a tq server does. [`ack_and_pop`] plans
//! that as an ACK and a take composed (the take reading through the ACK's
//! staged writes), then `store::coalesce` folds the two into the few writes
//! they come to. Here the same step is planned straight into those writes
//! when nothing out of the ordinary is involved, and refused (None) in
//! every other case, which the caller then plans with `ack_and_pop`. Each
//! case it takes, it plans exactly as `ack_and_pop` followed by
//! `store::coalesce` does (the unit tests compare the two on seeded random
//! histories; debug builds of the module compare them on every call).

use super::*;

/// `ack_and_pop(...)` then `store::coalesce`, for a worker that holds
/// `delivery` (a delivery id, without a JobLock of its own, registered
/// under this queue) and takes from one named queue without JOBLOCK, when:
/// no broadcast waits in its mailbox, no queue is paused, the queue's head
/// is a readable job that is not periodic, has no QueueLock and was never
/// handed out before, and the ACK's count stays in the worker's open tally
/// (no metrics record is due). Otherwise None, having written nothing: the
/// caller plans the step with `ack_and_pop`, which also gives any error.
///
/// The plan: one MSET (the two `processed` counters, the delivery counter,
/// the queue's clock when it changes, the worker's record and in-flight
/// entry), the LPOP, the worker's registration (a no-op for Redis, kept as
/// the general plan has it) and the lease's ZADD only when the new deadline
/// comes before the one the zset holds.
pub fn busy_pop_ack(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    queues: &[&[u8]],
    opts: &PopOptions,
    delivery: u64,
) -> Result<Option<Plan>> {
    let [queue] = queues else { return Ok(None) };
    let q: &[u8] = queue;
    if q == b"*" || opts.joblock.is_some() || delivery == 0 {
        return Ok(None);
    }
    check_take(worker, queues)?;
    // The ACK, as `report_target` and `complete` make it.
    let index = ns.inflight(worker);
    let Some(Some((mut held, stored))) = s.get_with(&index, InFlight::decode_sized)? else { return Ok(None) };
    if held.delivery != delivery || !held.live() || held.joblock.is_some() || held.queues != q {
        return Ok(None);
    }
    let workers = ns.workers();
    let member = keys::worker_entry(worker, q);
    if !s.set_contains(&workers, &member)? {
        return Ok(None);
    }
    let now = s.now_ms();
    let run_ms = now.saturating_sub(held.popped_ms);
    let mut counted = Vec::new();
    let due = count_into(s, ns, worker, &mut held, Outcome::Processed, run_ms, &mut counted)?;
    if !counted.is_empty() || !due.is_empty() {
        return Ok(None);
    }
    let Effect::Set { key: processed, value: processed_n } = plan_count(s, ns.stat(b"processed"), 0)? else {
        return Ok(None);
    };
    let Effect::Set { key: worker_processed, value: worker_processed_n } =
        plan_count(s, ns.worker_stat(b"processed", worker), 0)?
    else {
        return Ok(None);
    };
    // The take, as `take` makes it for this one queue.
    let lease_ms = lock::check_ttl(opts.lease_ms)?;
    // (`take` also checks that `workers` is a set: found in it above, it is.)
    let leases = ns.leases();
    s.expect_kind(&leases, Kind::Zset)?;
    if !crate::pause::paused(s, ns)?.is_empty() || s.list_len(&ns.mailbox(worker))? > 0 {
        return Ok(None);
    }
    let qkey = ns.queue(q);
    let Some(payload) = s.list_get(&qkey, 0)? else { return Ok(None) };
    let Ok(info) = records::inspect_payload(&payload) else { return Ok(None) };
    if recur::is_recurring(s, ns, &payload)? {
        return Ok(None);
    }
    if let Some(args_json) = info.args_json(&payload) {
        if s.kind(&ns.queue_lock(&info.class, q, &args_json))? != Kind::None {
            return Ok(None);
        }
    }
    if previous_deliveries(s, ns, &payload)? > 0 {
        return Ok(None);
    }
    s.will_write(&leases)?;
    let (next, minted) = mint(s, ns)?;
    let Effect::Set { key: seq, value: seq_n } = minted else { return Ok(None) };
    let lease_until_ms = now.saturating_add(lease_ms);
    let (wait_ms, clock) = metrics::plan_took(s, ns, q, &payload)?;
    let held_until = held.lease_until_ms;
    let entry = InFlight {
        queues: q.to_vec(),
        queue: q.to_vec(),
        popped_ms: now,
        joblock: None,
        lease_until_ms,
        deliveries: 1,
        delivery: next,
        after: delivery,
        ended: None,
        class: info.class.to_vec(),
        wait_ms,
        open: held.open.take(),
    };
    let mut pairs = Vec::with_capacity(6);
    pairs.push((processed, processed_n));
    pairs.push((worker_processed, worker_processed_n));
    pairs.push((seq, seq_n));
    match clock {
        None => {}
        Some(Effect::Set { key, value }) => pairs.push((key, value)),
        Some(_) => return Ok(None),
    }
    pairs.push((ns.worker_record(worker, q), records::inflight_record(now, q, worker, &payload)));
    pairs.push((index, entry.encode_over(stored)));
    let mut effects = Vec::with_capacity(4);
    effects.push(Effect::MSet { pairs });
    effects.push(Effect::LPop { key: qkey });
    effects.push(Effect::SAdd { key: workers, member });
    // As `ack_and_pop`: the member keeps its score unless the new deadline
    // is earlier (the ACK's ZREM, undone by this ZADD, goes in `coalesce`).
    let score = i64::try_from(lease_until_ms).unwrap_or(i64::MAX);
    if u64::try_from(score).unwrap_or(0) < held_until {
        effects.push(Effect::ZAdd { key: leases, score, member: worker.to_vec() });
    }
    s.note(Event::Acked { run_ms });
    s.note(Event::Popped);
    Ok(Some(Plan { effects, reply: pop_reply(q, payload, next, 1, lease_until_ms) }))
}

#[cfg(test)]
mod tests;

use super::*;
use crate::queue::enqueue;
use crate::store::{coalesce, MemStore, MemValue};

fn ns() -> Ns<'static> {
    Ns::new(b"resque", false).expect("valid namespace")
}

/// xorshift64*: the histories are reproducible from their seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }

    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        let i = self.below(from.len() as u64) as usize;
        from.get(i).or(from.first()).expect("a non-empty list")
    }
}

const WORKERS: [&[u8]; 3] = [b"w1", b"w2", b"host:7+x"];
const QUEUES: [&[u8]; 3] = [b"a", b"b", b"c"];
const QUEUE_LISTS: [&[&[u8]]; 5] = [&[b"a"], &[b"b"], &[b"c"], &[b"a", b"b"], &[b"*"]];

fn applied(s: &mut MemStore, plan: Result<Plan>) -> Option<Reply> {
    let plan = plan.ok()?;
    s.apply(&coalesce(plan.effects));
    Some(plan.reply)
}

/// The delivery worker `w`'s entry names, if any.
fn delivery_of(s: &MemStore, w: &[u8]) -> Option<u64> {
    let mut k = b"resque:tq:inflight:".to_vec();
    k.extend_from_slice(w);
    s.string(&k).and_then(|raw| InFlight::decode(&raw)).map(|e| e.delivery)
}

/// The delivery worker `w` holds, if any.
fn live_delivery(s: &MemStore, w: &[u8]) -> Option<u64> {
    let mut k = b"resque:tq:inflight:".to_vec();
    k.extend_from_slice(w);
    s.string(&k).and_then(|raw| InFlight::decode(&raw)).filter(InFlight::live).map(|e| e.delivery)
}

/// One `POP ... ACK` both ways from the same state. Returns whether the
/// one-pass plan took the case, after checking that it then planned
/// exactly what `ack_and_pop` and `coalesce` plan (writes, reply, notes).
fn compare(s: &MemStore, worker: &[u8], queues: &[&[u8]], opts: &PopOptions, delivery: u64, seed: u64) -> bool {
    let mut fast_store = s.clone();
    let fast = busy_pop_ack(&mut fast_store, &ns(), worker, queues, opts, delivery);
    let mut general_store = s.clone();
    let general = ack_and_pop(&mut general_store, &ns(), worker, queues, opts, delivery)
        .map(|p| Plan { effects: coalesce(p.effects), reply: p.reply });
    match fast {
        Ok(Some(plan)) => {
            assert_eq!(Ok(plan), general, "seed {seed}: worker {worker:?} queues {queues:?} delivery {delivery}");
            assert_eq!(fast_store.notes, general_store.notes, "seed {seed}: the notes");
            true
        }
        Ok(None) | Err(_) => {
            // It plans nothing (reads of expired keys drop them, as Redis
            // does, so the data are not compared).
            assert_eq!(fast_store.notes, s.notes, "seed {seed}: a refused case notes nothing");
            false
        }
    }
}

/// Seeded random histories of enqueues (plain, UNIQUE, payloads given back
/// before), takes, completions, failures, give-backs, broadcasts, pauses,
/// periodic jobs, leases running out, metrics on and off, the clock moving
/// by milliseconds to minutes, and now and then a corrupt job or a counter
/// that is not a number. At every `POP ... ACK` the one-pass plan is
/// compared with the general one.
#[test]
fn the_busy_worker_plan_is_the_general_plan_coalesced() {
    let (mut taken, mut refused) = (0, 0);
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut s = MemStore::at(1_800_000_000_000 + rng.below(120_000));
        s.no_metrics = rng.below(5) == 0;
        if rng.below(3) == 0 {
            s.metrics_flush_ms = Some(100 + rng.below(5_000));
        }
        for _ in 0..150 {
            s.now += match rng.below(10) {
                0 => rng.below(70_000),
                1..=3 => 0,
                _ => rng.below(400),
            };
            let w = *rng.pick(&WORKERS);
            let q = *rng.pick(&QUEUES);
            let lease = PopOptions { joblock: None, lease_ms: *rng.pick(&[200, 1_000, 60_000]) };
            match rng.below(100) {
                0..=29 => {
                    // In bursts, mostly to the queue the busy workers take from.
                    let q: &[u8] = if rng.below(3) > 0 { b"a" } else { q };
                    for _ in 0..=rng.below(4) {
                        let args = format!("[{}]", rng.below(6));
                        let unique = (rng.below(6) == 0).then_some(60_000);
                        let class: &[u8] = if rng.below(8) > 0 { b"c" } else { b"d" };
                        let plan = enqueue(&mut s.clone(), &ns(), q, class, Some(args.as_bytes()), unique);
                        applied(&mut s, plan);
                    }
                }
                30..=74 => {
                    // Mostly a worker busy on one queue, as in production:
                    // it completes its job and takes the next in one step,
                    // or takes one when it holds none.
                    let steady = w != b"host:7+x" && rng.below(12) > 0;
                    let any = *rng.pick(&QUEUE_LISTS);
                    let queues: &[&[u8]] = if steady { &[b"a"] } else { any };
                    let opts = if rng.below(16) == 0 { PopOptions { joblock: Some(5_000), ..lease } } else { lease };
                    match live_delivery(&s, w) {
                        None if rng.below(4) > 0 => {
                            let plan = pop(&mut s.clone(), &ns(), w, queues, &opts);
                            applied(&mut s, plan);
                        }
                        held => {
                            let held = held.or(delivery_of(&s, w)).unwrap_or(0);
                            let delivery = if rng.below(10) == 0 { rng.below(held + 2) } else { held };
                            if compare(&s, w, queues, &opts, delivery, seed) {
                                taken += 1;
                            } else {
                                refused += 1;
                            }
                            let plan = ack_and_pop(&mut s.clone(), &ns(), w, queues, &opts, delivery);
                            applied(&mut s, plan);
                        }
                    }
                }
                75..=80 => {
                    let steady = w != b"host:7+x" && rng.below(4) > 0;
                    let any = *rng.pick(&QUEUE_LISTS);
                    let queues: &[&[u8]] = if steady { &[b"a"] } else { any };
                    let plan = pop(&mut s.clone(), &ns(), w, queues, &lease);
                    applied(&mut s, plan);
                }
                81..=85 => {
                    let d = delivery_of(&s, w).unwrap_or(0);
                    let plan = match rng.below(3) {
                        0 => ack(&mut s.clone(), &ns(), w, d),
                        1 => fail(&mut s.clone(), &ns(), w, d, b"E", b"boom", None, None),
                        _ => nack(&mut s.clone(), &ns(), w, d, 0),
                    };
                    applied(&mut s, plan);
                }
                86 => {
                    let plan = broadcast(&mut s.clone(), &ns(), b"b", Some(b"[1]"));
                    applied(&mut s, plan);
                }
                87..=90 => {
                    let plan = if rng.below(4) == 0 {
                        crate::pause::pause(&mut s.clone(), &ns(), q)
                    } else {
                        crate::pause::resume(&mut s.clone(), &ns(), q)
                    };
                    applied(&mut s, plan);
                }
                91 => {
                    let plan = crate::recur::recur(&mut s.clone(), &ns(), b"c", q, 60_000, Some(b"[1]"));
                    applied(&mut s, plan);
                }
                92..=95 => {
                    let plan = expire_leases(&mut s.clone(), &ns(), 3, 100);
                    applied(&mut s, plan);
                }
                96 => {
                    // A job a client wrote that tq cannot read.
                    let mut key = b"resque:queue:".to_vec();
                    key.extend_from_slice(q);
                    s.apply(&[Effect::RPush { key, value: b"{not json".to_vec() }]);
                }
                97..=98 => {
                    let key = if rng.below(2) == 0 {
                        b"resque:stat:processed".to_vec()
                    } else {
                        b"resque:tq:delivery".to_vec()
                    };
                    let value =
                        if rng.below(4) == 0 { b"x".to_vec() } else { rng.below(1_000).to_string().into_bytes() };
                    s.apply(&[Effect::Set { key, value }]);
                }
                _ => {
                    // A worker's registration removed behind tq's back.
                    if let Some(MemValue::Set(members)) = s.data.get_mut(&b"resque:workers"[..]) {
                        members.retain(|m| !m.starts_with(w));
                    }
                }
            }
        }
    }
    // Both ways were exercised, the one-pass plan the most.
    assert!(taken > 1_000 && refused > 1_000, "taken {taken}, refused {refused}");
}

use super::*;
use crate::queue::enqueue;
use crate::records::InFlight;
use crate::store::{MemStore, MemValue};

fn ns() -> Ns<'static> {
    Ns::new(b"resque", false).expect("valid namespace")
}

/// The delivery the worker's entry names (0 without one).
fn dl(s: &MemStore, w: &[u8]) -> u64 {
    let mut k = b"resque:tq:inflight:".to_vec();
    k.extend_from_slice(w);
    s.string(&k).and_then(|raw| InFlight::decode(&raw)).map_or(0, |e| e.delivery)
}

/// The delivery the worker holds, if any.
fn held(s: &MemStore, w: &[u8]) -> Option<u64> {
    let mut k = b"resque:tq:inflight:".to_vec();
    k.extend_from_slice(w);
    s.string(&k).and_then(|raw| InFlight::decode(&raw)).filter(InFlight::live).map(|e| e.delivery)
}

fn run(s: &mut MemStore, f: impl FnOnce(&mut MemStore) -> Result<Plan>) -> Result<Reply> {
    let plan = f(s)?;
    s.apply(&plan.effects);
    Ok(plan.reply)
}

const LEASE: PopOptions = PopOptions { joblock: None, lease_ms: 1_000 };

fn enq(s: &mut MemStore, q: &[u8], args: &[u8]) {
    run(s, |s| enqueue(s, &ns(), q, b"c", Some(args), None)).expect("enqueued");
}

fn popped(r: Reply) -> Vec<u8> {
    match r {
        Reply::Array(v) => match v.as_slice() {
            [_, Reply::Bulk(p), Reply::Int(_), Reply::Int(_), Reply::Int(_)] => p.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("not popped: {other:?}"),
    }
}

/// The in-flight entry of worker `w` (namespace `resque`).
pub(crate) fn entry(s: &MemStore, w: &[u8]) -> InFlight {
    let mut k = b"resque:tq:inflight:".to_vec();
    k.extend_from_slice(w);
    InFlight::decode(&s.string(&k).expect("entry")).expect("decodes")
}

#[test]
fn an_expired_lease_gives_the_job_back_at_the_head_and_refuses_the_late_report() {
    let mut s = MemStore::at(0);
    enq(&mut s, b"q", b"[1]");
    enq(&mut s, b"q", b"[2]");
    let p = popped(run(&mut s, |s| pop(s, &ns(), b"w1", &[b"q"], &LEASE)).expect("pops"));
    assert_eq!(entry(&s, b"w1").lease_until_ms, 1_000);
    // Not yet expired.
    s.now = 999;
    assert_eq!(run(&mut s, |s| expire_leases(s, &ns(), 5, 100)), Ok(Reply::Int(0)));
    s.now = 1_000;
    assert_eq!(run(&mut s, |s| expire_leases(s, &ns(), 5, 100)), Ok(Reply::Int(1)));
    assert_eq!(s.list(b"resque:queue:q"), vec![p.clone(), br#"{"class":"c","queue":"q","args":[2]}"#.to_vec()]);
    assert!(s.string(b"resque:worker:w1:q").is_none());
    assert!(matches!(
        {
            let d = dl(&s, b"w1");
            ack(&mut s, &ns(), b"w1", d)
        },
        Err(TqError::LeaseLost { .. })
    ));
    assert!(matches!(
        {
            let d = dl(&s, b"w1");
            fail(&mut s, &ns(), b"w1", d, b"E", b"e", None, None)
        },
        Err(TqError::LeaseLost { .. })
    ));
    // The next delivery counts as the second; the late worker may pop again.
    let again = popped(run(&mut s, |s| pop(s, &ns(), b"w2", &[b"q"], &LEASE)).expect("pops"));
    assert_eq!(again, p);
    assert_eq!(entry(&s, b"w2").deliveries, 2);
    run(&mut s, |s| pop(s, &ns(), b"w1", &[b"q"], &LEASE)).expect("the tombstone does not block");
    run(&mut s, |s| {
        let d = dl(s, b"w2");
        ack(s, &ns(), b"w2", d)
    })
    .expect("acks");
    assert!(!s.data.contains_key(&b"resque:tq:deliveries"[..]), "the count goes with the job");
    assert_eq!(s.members(b"resque:tq:leases"), vec![b"w1".to_vec()]);
}

#[test]
fn a_heartbeat_keeps_the_lease_and_marks_the_worker_alive() {
    let mut s = MemStore::at(0);
    enq(&mut s, b"q", b"[1]");
    assert_eq!(
        run(&mut s, |s| {
            let d = held(s, b"w");
            heartbeat(s, &ns(), b"w", 5_000, d)
        }),
        Ok(Reply::Int(0)),
        "no job yet"
    );
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    s.now = 900;
    assert_eq!(
        run(&mut s, |s| {
            let d = held(s, b"w");
            heartbeat(s, &ns(), b"w", 1_000, d)
        }),
        Ok(Reply::Int(1_000))
    );
    s.now = 1_500;
    assert_eq!(run(&mut s, |s| expire_leases(s, &ns(), 5, 100)), Ok(Reply::Int(0)));
    assert_eq!(
        s.string(b"resque:worker:ping:w"),
        Some(br#"{"time":1,"name":"w","queues":"q"}"#.to_vec()),
        "node-resque's ping record"
    );
    run(&mut s, |s| {
        let d = dl(s, b"w");
        ack(s, &ns(), b"w", d)
    })
    .expect("still its job");
    assert!({
        let d = held(&s, b"w");
        heartbeat(&mut s, &ns(), b"w", 0, d)
    }
    .is_err());
}

#[test]
fn too_many_deliveries_send_the_job_to_failed() {
    let mut s = MemStore::at(0);
    enq(&mut s, b"q", b"[1]");
    for round in 1..=3u64 {
        run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
        assert_eq!(entry(&s, b"w").deliveries, round as u32);
        s.now += 1_000;
        run(&mut s, |s| expire_leases(s, &ns(), 3, 100)).expect("expires");
    }
    assert!(s.list(b"resque:queue:q").is_empty());
    let failed = s.list(b"resque:failed");
    assert_eq!(failed.len(), 1);
    let f = String::from_utf8_lossy(&failed[0]).into_owned();
    assert!(f.contains(LEASE_EXCEPTION) && f.contains("delivered 3 times"), "{f}");
    assert_eq!(s.string(b"resque:stat:failed"), Some(b"1".to_vec()));
    assert!(!s.data.contains_key(&b"resque:tq:deliveries"[..]));
}

#[test]
fn broadcast_reaches_each_live_worker_once_before_its_queues() {
    let mut s = MemStore::at(0);
    for w in [&b"a"[..], b"b", b"dead"] {
        run(&mut s, |s| {
            let d = held(s, w);
            heartbeat(s, &ns(), w, 1_000, d)
        })
        .expect("alive");
    }
    s.now = 500;
    run(&mut s, |s| {
        let d = held(s, b"a");
        heartbeat(s, &ns(), b"a", 1_000, d)
    })
    .expect("alive");
    run(&mut s, |s| {
        let d = held(s, b"b");
        heartbeat(s, &ns(), b"b", 1_000, d)
    })
    .expect("alive");
    s.now = 1_200; // "dead" stopped beating at 1000
    enq(&mut s, b"q", b"[1]");
    assert_eq!(run(&mut s, |s| broadcast(s, &ns(), b"reload", Some(b"[7]"))), Ok(Reply::Int(2)));
    let first = popped(run(&mut s, |s| pop(s, &ns(), b"a", &[b"q"], &LEASE)).expect("pops"));
    assert_eq!(first, br#"{"class":"reload","queue":"tq:broadcast","args":[7]}"#.to_vec());
    run(&mut s, |s| {
        let d = dl(s, b"a");
        ack(s, &ns(), b"a", d)
    })
    .expect("acks");
    let next = popped(run(&mut s, |s| pop(s, &ns(), b"a", &[b"q"], &LEASE)).expect("pops"));
    assert_eq!(next, br#"{"class":"c","queue":"q","args":[1]}"#.to_vec(), "once only");
    assert!(s.list(b"resque:tq:mailbox:dead").is_empty());
    assert_eq!(s.list(b"resque:tq:mailbox:b").len(), 1);
    run(&mut s, |s| expire_alive(s, &ns(), 100)).expect("sweeps");
    assert_eq!(s.members(b"resque:tq:alive"), vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn periodic_tasks_never_have_two_instances() {
    let mut s = MemStore::at(0);
    assert_eq!(run(&mut s, |s| recur::recur(s, &ns(), b"tick", b"q", 1_000, None)), Ok(Reply::Int(1)));
    let tick = br#"{"class":"tick","queue":"q","args":[]}"#.to_vec();
    let due = |s: &mut MemStore| {
        let (plan, next) = recur::run_due(s, &ns(), 100).expect("plans");
        s.apply(&plan.effects);
        (plan.reply, next)
    };
    assert_eq!(due(&mut s), (Reply::Int(1), Some(1_000)));
    assert_eq!(s.list(b"resque:queue:q"), vec![tick.clone()]);
    // Due again, but an instance is waiting.
    s.now = 1_000;
    assert_eq!(due(&mut s).0, Reply::Int(0));
    // Taken by a worker: now running (its JobLock), still no second one.
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    assert!(s.string(b"resque:workerslock:tick:q:[]").is_some(), "a periodic job runs under its JobLock");
    assert_eq!(due(&mut s).0, Reply::Int(0));
    // Done: the next instance goes in at once.
    run(&mut s, |s| {
        let d = dl(s, b"w");
        ack(s, &ns(), b"w", d)
    })
    .expect("acks");
    assert_eq!(due(&mut s).0, Reply::Int(1));
    // A lost lease puts the instance back as waiting (no second one).
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    s.now = 2_000;
    run(&mut s, |s| expire_leases(s, &ns(), 5, 100)).expect("expires");
    assert_eq!(s.list(b"resque:queue:q"), vec![tick.clone()]);
    assert_eq!(due(&mut s).0, Reply::Int(0));
    assert_eq!(run(&mut s, |s| recur::unrecur(s, &ns(), b"tick", b"q", None)), Ok(Reply::Int(1)));
    assert_eq!(run(&mut s, |s| recur::unrecur(s, &ns(), b"tick", b"q", None)), Ok(Reply::Int(0)));
    assert!(recur::recur(&mut s, &ns(), b"tick", b"q", 1, None).is_err());
}

#[test]
fn next_due_is_the_earliest_bucket_or_lease() {
    let mut s = MemStore::at(0);
    assert_eq!(crate::queue::next_due(&mut s, &ns()), Ok(None));
    run(&mut s, |s| crate::queue::enqueue_at(s, &ns(), 7_400, b"q", b"c", None)).expect("filed");
    assert_eq!(crate::queue::next_due(&mut s, &ns()), Ok(Some(7_400)), "a job tq files is due at its exact time");
    enq(&mut s, b"q", b"[1]");
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    assert_eq!(crate::queue::next_due(&mut s, &ns()), Ok(Some(1_000)));
    s.data.insert(b"x".to_vec(), MemValue::String(b"unused".to_vec()));
}

#[test]
fn fail_with_retry_files_the_job_again_after_its_backoff() {
    let mut s = MemStore::at(10_000);
    enq(&mut s, b"q", b"[1]");
    let policy = Retry { attempts: 3, backoff: vec![1_000, 5_000] };
    let p = popped(run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops"));
    let r = run(&mut s, |s| {
        let d = dl(s, b"w");
        fail(s, &ns(), b"w", d, b"E", b"first", None, Some(&policy))
    })
    .expect("fails");
    assert_eq!(r, Reply::Array(vec![Reply::Bulk(b"retry".to_vec()), Reply::Int(1_000)]));
    // Filed under the bucket of now + 1 s, counted as failed, not in failed.
    assert_eq!(s.list(b"resque:delayed:11"), vec![p.clone()]);
    assert!(s.list(b"resque:failed").is_empty());
    assert_eq!(s.string(b"resque:stat:failed"), Some(b"1".to_vec()));
    s.now = 11_000;
    run(&mut s, |s| crate::queue::promote(s, &ns(), 100)).expect("promotes");
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    assert_eq!(entry(&s, b"w").deliveries, 2);
    let r = run(&mut s, |s| {
        let d = dl(s, b"w");
        fail(s, &ns(), b"w", d, b"E", b"second", None, Some(&policy))
    })
    .expect("fails");
    assert_eq!(r, Reply::Array(vec![Reply::Bulk(b"retry".to_vec()), Reply::Int(5_000)]));
    s.now = 16_000;
    run(&mut s, |s| crate::queue::promote(s, &ns(), 100)).expect("promotes");
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    let r = run(&mut s, |s| {
        let d = dl(s, b"w");
        fail(s, &ns(), b"w", d, b"E", b"third", None, Some(&policy))
    })
    .expect("fails");
    assert_eq!(r, Reply::Array(vec![Reply::Bulk(b"failed".to_vec()), Reply::Int(0)]));
    let failed = s.list(b"resque:failed");
    assert_eq!(failed.len(), 1);
    assert!(String::from_utf8_lossy(&failed[0]).contains("third"));
    assert_eq!(s.string(b"resque:stat:failed"), Some(b"3".to_vec()));
    assert!(!s.data.contains_key(&b"resque:tq:deliveries"[..]));
}

#[test]
fn nack_gives_the_job_back_keeping_its_count() {
    let mut s = MemStore::at(0);
    enq(&mut s, b"q", b"[1]");
    enq(&mut s, b"q", b"[2]");
    let p = popped(run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops"));
    run(&mut s, |s| {
        let d = dl(s, b"w");
        nack(s, &ns(), b"w", d, 0)
    })
    .expect("nacks");
    assert_eq!(s.list(b"resque:queue:q").first(), Some(&p), "back at the head");
    assert!(s.string(b"resque:stat:processed").is_none() && s.string(b"resque:stat:failed").is_none());
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    assert_eq!(entry(&s, b"w").deliveries, 2);
    run(&mut s, |s| {
        let d = dl(s, b"w");
        nack(s, &ns(), b"w", d, 3_000)
    })
    .expect("nacks later");
    assert_eq!(s.list(b"resque:delayed:3"), vec![p]);
    // Repeated: answered as the first time, nothing changes.
    let before = s.data.clone();
    assert_eq!(
        run(&mut s, |s| {
            let d = dl(s, b"w");
            nack(s, &ns(), b"w", d, 0)
        }),
        Ok(Reply::Ok)
    );
    assert_eq!(s.data, before);
}

fn run_due_now(s: &mut MemStore) -> (Reply, Option<u64>) {
    let (plan, next) = recur::run_due(s, &ns(), 100).expect("plans");
    s.apply(&plan.effects);
    (plan.reply, next)
}

#[test]
fn a_heartbeat_keeps_a_periodic_jobs_joblock_too() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| recur::recur(s, &ns(), b"tick", b"q", 200, None)).expect("registers");
    assert_eq!(run_due_now(&mut s).0, Reply::Int(1));
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    let lock = b"resque:workerslock:tick:q:[]".to_vec();
    assert_eq!(s.expires.get(&lock), Some(&1_000));
    for now in [900, 1_800, 2_700] {
        s.now = now;
        run(&mut s, |s| {
            let d = held(s, b"w");
            heartbeat(s, &ns(), b"w", 1_000, d)
        })
        .expect("beats");
        assert_eq!(s.expires.get(&lock), Some(&(now + 1_000)), "the JobLock follows the lease");
        assert_eq!(run_due_now(&mut s).0, Reply::Int(0), "no second instance while the first is held");
    }
    run(&mut s, |s| {
        let d = dl(s, b"w");
        ack(s, &ns(), b"w", d)
    })
    .expect("acks");
    assert_eq!(run_due_now(&mut s).0, Reply::Int(1));
}

#[test]
fn a_held_back_periodic_run_starts_a_new_cadence() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| recur::recur(s, &ns(), b"tick", b"q", 1_000, None)).expect("registers");
    assert_eq!(run_due_now(&mut s), (Reply::Int(1), Some(1_000)));
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &PopOptions { lease_ms: 10_000, ..LEASE })).expect("pops");
    // Runs 3.6 s: periods 1 to 3 are missed, the held-back run goes in when
    // it is done and the next is a full period later (not at 4000).
    s.now = 3_600;
    run(&mut s, |s| {
        let d = dl(s, b"w");
        ack(s, &ns(), b"w", d)
    })
    .expect("acks");
    assert_eq!(run_due_now(&mut s), (Reply::Int(1), Some(4_600)));
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    run(&mut s, |s| {
        let d = dl(s, b"w");
        ack(s, &ns(), b"w", d)
    })
    .expect("acks");
    // A run a timer tick late keeps the cadence.
    s.now = 4_650;
    assert_eq!(run_due_now(&mut s), (Reply::Int(1), Some(5_600)));
}

#[test]
fn ack_and_pop_leaves_the_same_data_as_an_ack_then_a_pop() {
    let opts = [LEASE, PopOptions { joblock: Some(5_000), ..LEASE }];
    for opts in opts {
        let (mut one, mut two) = (MemStore::at(0), MemStore::at(0));
        for s in [&mut one, &mut two] {
            for args in [&b"[1]"[..], b"[2]", b"[3]"] {
                enq(s, b"q", args);
            }
            popped(run(s, |s| pop(s, &ns(), b"w", &[b"q"], &opts)).expect("pops"));
            // A second delivery, so the ACK also forgets a delivery count.
            run(s, |s| {
                let d = dl(s, b"w");
                nack(s, &ns(), b"w", d, 0)
            })
            .expect("nacks");
            popped(run(s, |s| pop(s, &ns(), b"w", &[b"q"], &opts)).expect("pops again"));
            s.now = 7;
        }
        let combined = run(&mut one, |s| {
            let d = dl(s, b"w");
            ack_and_pop(s, &ns(), b"w", &[b"q"], &opts, d)
        })
        .expect("acks and pops");
        run(&mut two, |s| {
            let d = dl(s, b"w");
            ack(s, &ns(), b"w", d)
        })
        .expect("acks");
        let separate = run(&mut two, |s| pop(s, &ns(), b"w", &[b"q"], &opts)).expect("pops");
        assert_eq!(combined, separate);
        assert_eq!(popped(combined), br#"{"class":"c","queue":"q","args":[2]}"#.to_vec());
        // The one difference: the combined step's entry names the delivery
        // it completed, for a resend to find.
        let (e1, e2) = (entry(&one, b"w"), entry(&two, b"w"));
        assert_eq!((e1.after, e2.after), (e2.delivery - 1, 0));
        assert_eq!(InFlight { after: 0, ..e1 }, e2);
        one.data.remove(&b"resque:tq:inflight:w"[..]);
        two.data.remove(&b"resque:tq:inflight:w"[..]);
        // And the lease zset: the combined step leaves the worker's member
        // at the held job's deadline (earlier; the timer moves it on), the
        // separate ACK and pop put it at the new one.
        let lease_of = |s: &mut MemStore| s.zset_score(b"resque:tq:leases", b"w").expect("zset");
        assert_eq!(lease_of(&mut one), Some(opts.lease_ms as f64), "{opts:?}");
        assert_eq!(lease_of(&mut two), Some((7 + opts.lease_ms) as f64), "{opts:?}");
        assert_eq!(e1.lease_until_ms, 7 + opts.lease_ms);
        one.data.remove(&b"resque:tq:leases"[..]);
        two.data.remove(&b"resque:tq:leases"[..]);
        assert_eq!(one.data, two.data, "{opts:?}");
        assert_eq!(one.expires, two.expires, "{opts:?}");
        assert_eq!(one.string(b"resque:stat:processed"), Some(b"1".to_vec()));
    }
}

#[test]
fn a_busy_workers_lease_member_moves_once_per_lease_period_and_never_late() {
    let mut s = MemStore::at(0);
    for i in 0..6 {
        enq(&mut s, b"q", format!("[{i}]").as_bytes());
    }
    popped(run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops"));
    let score = |s: &mut MemStore| s.zset_score(b"resque:tq:leases", b"w").expect("zset");
    // Jobs done and taken in one step: the member keeps the first deadline.
    for now in [100, 200, 300] {
        s.now = now;
        let d = dl(&s, b"w");
        popped(run(&mut s, |s| ack_and_pop(s, &ns(), b"w", &[b"q"], &LEASE, d)).expect("acks and pops"));
        assert_eq!(score(&mut s), Some(1_000.0));
        assert_eq!(entry(&s, b"w").lease_until_ms, now + 1_000);
    }
    // At the member's score the timer finds the later deadline: the job
    // stays, the member moves there.
    s.now = 1_000;
    assert_eq!(run(&mut s, |s| expire_leases(s, &ns(), 5, 100)).expect("expires"), Reply::Int(0));
    assert_eq!(score(&mut s), Some(1_300.0));
    assert!(entry(&s, b"w").live());
    // A shorter lease than the held one's moves the member at once.
    s.now = 1_010;
    let short = PopOptions { lease_ms: 100, ..LEASE };
    let d = dl(&s, b"w");
    popped(run(&mut s, |s| ack_and_pop(s, &ns(), b"w", &[b"q"], &short, d)).expect("acks and pops"));
    assert_eq!(score(&mut s), Some(1_110.0));
    // Its lease runs out then, not later.
    s.now = 1_110;
    assert_eq!(run(&mut s, |s| expire_leases(s, &ns(), 5, 100)).expect("expires"), Reply::Int(1));
}

#[test]
fn ack_and_pop_on_an_empty_queue_completes_the_job_and_takes_nothing() {
    let mut s = MemStore::at(0);
    enq(&mut s, b"q", b"[1]");
    popped(run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops"));
    assert_eq!(
        run(&mut s, |s| {
            let d = dl(s, b"w");
            ack_and_pop(s, &ns(), b"w", &[b"q"], &LEASE, d)
        }),
        Ok(Reply::Nil)
    );
    assert_eq!(s.string(b"resque:stat:processed"), Some(b"1".to_vec()));
    assert!(held(&s, b"w").is_none() && s.string(b"resque:worker:w:q").is_none());
    // Resent (its reply lost), it answers as the first time: nothing taken,
    // even though a job is waiting now; nothing changes.
    enq(&mut s, b"q", b"[2]");
    let before = s.data.clone();
    let d = dl(&s, b"w");
    assert_eq!(run(&mut s, |s| ack_and_pop(s, &ns(), b"w", &[b"q"], &LEASE, d)), Ok(Reply::Nil));
    assert_eq!(s.data, before);
    // Another delivery: refused, nothing changes.
    assert!(matches!(ack_and_pop(&mut s, &ns(), b"w", &[b"q"], &LEASE, d + 1), Err(TqError::Delivery { .. })));
    assert_eq!(s.data, before);
}

#[test]
fn a_resent_ack_and_pop_answers_with_the_job_it_took_and_completes_nothing() {
    let mut s = MemStore::at(0);
    for args in [&b"[1]"[..], b"[2]", b"[3]"] {
        enq(&mut s, b"q", args);
    }
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops");
    let a = dl(&s, b"w");
    s.now = 10;
    let first = run(&mut s, |s| ack_and_pop(s, &ns(), b"w", &[b"q"], &LEASE, a)).expect("acks and pops");
    let b = dl(&s, b"w");
    assert_ne!(a, b);
    // The reply is lost; the client resends the same command.
    s.now = 20;
    let again = run(&mut s, |s| ack_and_pop(s, &ns(), b"w", &[b"q"], &LEASE, a)).expect("answers again");
    assert_eq!(popped(again.clone()), popped(first));
    match again {
        Reply::Array(v) => assert_eq!(v[2..], [Reply::Int(b as i64), Reply::Int(1), Reply::Int(1_020)]),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.string(b"resque:stat:processed"), Some(b"1".to_vec()), "B was not completed");
    assert_eq!(s.list(b"resque:queue:q").len(), 1, "C was not taken");
    assert_eq!(entry(&s, b"w").lease_until_ms, 1_020, "the lease runs from the resend");
    // A resent plain ACK of A is answered OK, and B stays held.
    assert_eq!(run(&mut s, |s| ack(s, &ns(), b"w", a)), Ok(Reply::Ok));
    assert_eq!(held(&s, b"w"), Some(b));
    // FAIL or NACK of A are refused: A ended by its ACK.
    assert!(matches!(nack(&mut s, &ns(), b"w", a, 0), Err(TqError::Ended { .. })));
}

#[test]
fn ack_and_pop_takes_a_twin_of_the_job_it_completes() {
    let mut s = MemStore::at(0);
    for args in [&b"[1]"[..], b"[1]", b"[2]"] {
        enq(&mut s, b"q", args);
    }
    let first = popped(run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops"));
    let d = dl(&s, b"w");
    let twin = popped(run(&mut s, |s| ack_and_pop(s, &ns(), b"w", &[b"q"], &LEASE, d)).expect("acks and pops"));
    assert_eq!(twin, first, "delivery ids tell the two apart");
    assert_eq!(dl(&s, b"w"), d + 1);
    assert_eq!(s.string(b"resque:stat:processed"), Some(b"1".to_vec()));
}

#[test]
fn ack_and_pop_releases_a_periodic_jobs_lock() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| recur::recur(s, &ns(), b"tick", b"q", 1_000, None)).expect("registers");
    let (plan, _) = recur::run_due(&mut s, &ns(), 100).expect("plans");
    s.apply(&plan.effects);
    enq(&mut s, b"q", b"[1]");
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &LEASE)).expect("pops the periodic job");
    assert!(s.string(b"resque:workerslock:tick:q:[]").is_some());
    let next = popped(
        run(&mut s, |s| {
            let d = dl(s, b"w");
            ack_and_pop(s, &ns(), b"w", &[b"q"], &LEASE, d)
        })
        .expect("acks and pops"),
    );
    assert_eq!(next, br#"{"class":"c","queue":"q","args":[1]}"#.to_vec());
    assert!(s.string(b"resque:workerslock:tick:q:[]").is_none(), "the periodic job's lock went with its ACK");
    // The next periodic instance is due again and goes in at once.
    s.now = 1_000;
    let (plan, _) = recur::run_due(&mut s, &ns(), 100).expect("plans");
    assert_eq!(plan.reply, Reply::Int(1));
}

use super::*;
use crate::records::InFlight;
use crate::store::{MemStore, MemValue};
use crate::work::{ack, fail, pop, PopOptions};

fn opts(joblock: Option<u64>) -> PopOptions {
    PopOptions { joblock, lease_ms: 60_000 }
}

const NOW: u64 = 1_700_000_000_123;

fn ns() -> Ns<'static> {
    Ns::new(b"resque", false).expect("valid namespace")
}

/// The delivery the worker's entry names (0 without one).
fn dl(s: &MemStore, w: &[u8]) -> u64 {
    let mut k = b"resque:tq:inflight:".to_vec();
    k.extend_from_slice(w);
    s.string(&k).and_then(|raw| InFlight::decode(&raw)).map_or(0, |e| e.delivery)
}

/// Plans with `f` and applies the effects, as the module does.
fn run(s: &mut MemStore, f: impl FnOnce(&mut MemStore) -> Result<Plan>) -> Result<Reply> {
    let plan = f(s)?;
    s.apply(&plan.effects);
    Ok(plan.reply)
}

/// The strings of an array reply (a pop's queue and payload; its numbers,
/// the delivery, count and lease, are left out).
fn bulk(r: &Reply) -> Vec<Vec<u8>> {
    match r {
        Reply::Array(items) => items
            .iter()
            .filter_map(|i| match i {
                Reply::Bulk(b) => Some(b.clone()),
                Reply::Int(_) => None,
                other => panic!("not bulk: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn enqueue_appends_payload_and_registers_queue() {
    let mut s = MemStore::at(NOW);
    assert_eq!(run(&mut s, |s| enqueue(s, &ns(), b"math", b"add", Some(b"[1,2]"), None)), Ok(Reply::Int(1)));
    assert_eq!(run(&mut s, |s| enqueue(s, &ns(), b"math", b"add", None, None)), Ok(Reply::Int(2)));
    assert_eq!(
        s.list(b"resque:queue:math"),
        vec![
            br#"{"class":"add","queue":"math","args":[1,2]}"#.to_vec(),
            br#"{"class":"add","queue":"math","args":[]}"#.to_vec()
        ]
    );
    assert_eq!(s.members(b"resque:queues"), vec![b"math".to_vec()]);
}

#[test]
fn enqueue_refuses_bad_input_without_effects() {
    let mut s = MemStore::at(NOW);
    s.data.insert(b"resque:queue:str".to_vec(), MemValue::String(b"x".to_vec()));
    let before = s.clone();
    for (q, c, a) in [
        (&b""[..], &b"c"[..], None),
        (b"q", b"", None),
        (b"*", b"c", None),
        (b"q\0", b"c", None),
        (b"q", b"c", Some(&b"{"[..])),
        (b"str", b"c", None),
    ] {
        assert!(enqueue(&mut s, &ns(), q, c, a, None).is_err());
    }
    assert_eq!(s, before);
    s.data.insert(b"resque:queues".to_vec(), MemValue::String(b"x".to_vec()));
    assert!(matches!(enqueue(&mut s, &ns(), b"q", b"c", None, None), Err(TqError::WrongType { .. })));
}

#[test]
fn enqueue_at_files_the_job_like_node_resque() {
    let mut s = MemStore::at(NOW);
    assert_eq!(run(&mut s, |s| enqueue_at(s, &ns(), 10_000, b"q", b"c", Some(b"[1]"))), Ok(Reply::Int(10)));
    let p = br#"{"class":"c","queue":"q","args":[1]}"#.to_vec();
    assert_eq!(s.list(b"resque:delayed:10"), vec![p.clone()]);
    let mut tkey = b"resque:timestamps:".to_vec();
    tkey.extend_from_slice(&p);
    assert_eq!(s.members(&tkey), vec![b"delayed:10".to_vec()]);
    assert_eq!(s.data.get(&b"resque:delayed_queue_schedule"[..]), Some(&MemValue::Zset(vec![(b"10".to_vec(), 10.0)])));
    // Same payload, same bucket (10.4 s rounds to 10): refused, nothing written.
    let before = s.clone();
    assert_eq!(enqueue_at(&mut s, &ns(), 10_400, b"q", b"c", Some(b"[1]")), Err(TqError::Duplicate));
    assert_eq!(s, before);
    // 10.5 s rounds up to bucket 11: accepted.
    assert_eq!(run(&mut s, |s| enqueue_at(s, &ns(), 10_500, b"q", b"c", Some(b"[1]"))), Ok(Reply::Int(11)));
    assert_eq!(s.members(&tkey), vec![b"delayed:10".to_vec(), b"delayed:11".to_vec()]);
}

#[test]
fn enqueue_in_uses_the_server_clock() {
    let mut s = MemStore::at(NOW);
    let want = time::bucket_of(NOW + 2_500);
    assert_eq!(run(&mut s, |s| enqueue_in(s, &ns(), 2_500, b"q", b"c", None)), Ok(Reply::Int(want as i64)));
    assert!(enqueue_in(&mut s, &ns(), time::MAX_TIME_MS, b"q", b"c", None).is_err());
    assert!(enqueue_at(&mut s, &ns(), time::MAX_TIME_MS + 1, b"q", b"c", None).is_err());
}

#[test]
fn promote_moves_due_buckets_oldest_first_fifo() {
    let mut s = MemStore::at(0);
    for (at, arg) in [(5_000, "a"), (3_000, "b"), (3_000, "c"), (9_000, "late")] {
        let args = format!("[\"{arg}\"]");
        run(&mut s, |s| enqueue_at(s, &ns(), at, b"q", b"c", Some(args.as_bytes()))).expect("filed");
    }
    s.now = 4_999; // bucket 5 is due at 5000 ms, not before
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(2)));
    s.now = 5_000;
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(1)));
    let q: Vec<String> = s.list(b"resque:queue:q").iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    assert_eq!(
        q,
        [
            r#"{"class":"c","queue":"q","args":["b"]}"#,
            r#"{"class":"c","queue":"q","args":["c"]}"#,
            r#"{"class":"c","queue":"q","args":["a"]}"#
        ]
    );
    // Markers and emptied buckets are gone; the future bucket stays.
    assert_eq!(s.members(b"resque:delayed_queue_schedule"), vec![b"9".to_vec()]);
    assert!(!s.data.keys().any(|k| k.starts_with(b"resque:timestamps:") && !k.ends_with(b"[\"late\"]}")));
    assert_eq!(s.members(b"resque:queues"), vec![b"q".to_vec()]);
    // Nothing due: no effects at all.
    let plan = promote(&mut s, &ns(), 100).expect("plans");
    assert!(plan.effects.is_empty());
}

#[test]
fn promote_respects_the_limit_and_resumes() {
    let mut s = MemStore::at(0);
    for i in 0..5 {
        let args = format!("[{i}]");
        run(&mut s, |s| enqueue_at(s, &ns(), 1_000, b"q", b"c", Some(args.as_bytes()))).expect("filed");
    }
    s.now = 1_000;
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 2)), Ok(Reply::Int(2)));
    assert_eq!(s.list(b"resque:delayed:1").len(), 3);
    assert_eq!(s.members(b"resque:delayed_queue_schedule"), vec![b"1".to_vec()]);
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 10)), Ok(Reply::Int(3)));
    assert_eq!(s.list(b"resque:queue:q").len(), 5);
    assert!(!s.data.contains_key(&b"resque:delayed_queue_schedule"[..]));
}

#[test]
fn promote_reads_a_long_schedule_in_pieces_and_misses_no_bucket() {
    // 300 due buckets: every third one an orphan (no list), the others one
    // job each; the schedule is read 16, 48, 192... at a time.
    let mut s = MemStore::at(1_000_000);
    let mut zset = Vec::new();
    let mut jobs = Vec::new();
    for b in 1..=300u64 {
        zset.push((b.to_string().into_bytes(), b as f64));
        if b % 3 != 0 {
            let payload = format!(r#"{{"class":"c","queue":"q","args":[{b}]}}"#).into_bytes();
            s.data.insert(format!("resque:delayed:{b}").into_bytes(), MemValue::List(vec![payload.clone()].into()));
            jobs.push(payload);
        }
    }
    s.data.insert(b"resque:delayed_queue_schedule".to_vec(), MemValue::Zset(zset));
    // A limit that ends inside the second and third pieces, then the rest.
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 40)), Ok(Reply::Int(40)));
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(100)));
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 1000)), Ok(Reply::Int(60)));
    // Every job once, in bucket order; every bucket, orphans too, gone.
    assert_eq!(s.list(b"resque:queue:q"), jobs);
    assert!(!s.data.contains_key(&b"resque:delayed_queue_schedule"[..]));
}

#[test]
fn an_exact_field_is_the_bucket_and_the_payloads_digest_in_hex() {
    use std::hash::Hasher;
    for payload in [&b""[..], b"{\"class\":\"c\"}", &[0xff; 300]] {
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(0x7471_2d61_7473, 0x6578_6163_7464_7565);
        h.write(payload);
        let digest = siphasher::sip128::Hasher128::finish128(&h).as_u128();
        assert_eq!(exact_field(b"1700000000", payload), format!("1700000000:{digest:032x}").into_bytes());
    }
}

/// The due times of gone buckets are looked for once the due buckets are
/// done, not by every call of a backlog (each read a thousand of them).
#[test]
fn due_times_of_gone_buckets_go_once_the_backlog_is_promoted() {
    let mut s = MemStore::at(0);
    for (at, arg) in [(700, "a"), (800, "b"), (1_700, "c")] {
        let args = format!("[\"{arg}\"]");
        run(&mut s, |s| enqueue_at(s, &ns(), at, b"q", b"c", Some(args.as_bytes()))).expect("filed");
    }
    // Bucket 5's due time outlived its bucket (node-resque's scheduler took
    // its jobs): an orphan.
    s.apply(&[Effect::ZAdd { key: b"resque:tq:due".to_vec(), score: 500, member: b"5".to_vec() }]);
    s.now = 2_000;
    let orphan_gone = |p: &Plan| {
        p.effects.iter().any(|e| matches!(e, Effect::ZRem { key, member } if key == b"resque:tq:due" && member == b"5"))
    };
    // The limit leaves due jobs behind: the orphan waits.
    let plan = promote(&mut s, &ns(), 2).expect("plans");
    assert!(!orphan_gone(&plan), "{:?}", plan.effects);
    s.apply(&plan.effects);
    // This call promotes the last due job with room to spare: it goes.
    let plan = promote(&mut s, &ns(), 2).expect("plans");
    assert_eq!(plan.reply, Reply::Int(1));
    assert!(orphan_gone(&plan), "{:?}", plan.effects);
    s.apply(&plan.effects);
    assert_eq!(s.list(b"resque:queue:q"), [job_of(r#"["a"]"#), job_of(r#"["b"]"#), job_of(r#"["c"]"#)]);
    assert!(!s.data.contains_key(&b"resque:tq:due"[..]));
    assert_eq!(next_due(&mut s, &ns()), Ok(None));
}

#[test]
fn promote_cleans_orphans_and_fails_corrupt_payloads() {
    let mut s = MemStore::at(10_000);
    s.data.insert(
        b"resque:delayed_queue_schedule".to_vec(),
        MemValue::Zset(vec![(b"1".to_vec(), 1.0), (b"2".to_vec(), 2.0)]),
    );
    // Bucket 1 has no list (orphan); bucket 2 holds garbage, a job without queue and a good one.
    s.data.insert(
        b"resque:delayed:2".to_vec(),
        MemValue::List(
            [&b"{not json"[..], br#"{"class":"c","args":[]}"#, br#"{"class":"c","queue":"q","args":[]}"#]
                .iter()
                .map(|p| p.to_vec())
                .collect(),
        ),
    );
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 10)), Ok(Reply::Int(1)));
    assert!(!s.data.contains_key(&b"resque:delayed_queue_schedule"[..]));
    assert_eq!(s.list(b"resque:queue:q").len(), 1);
    let failed = s.list(b"resque:failed");
    assert_eq!(failed.len(), 2);
    let first = String::from_utf8_lossy(&failed[0]).into_owned();
    assert!(first.contains(r#""payload":"{not json""#), "{first}");
    assert!(first.contains(records::CORRUPT_EXCEPTION));
    assert_eq!(s.string(b"resque:stat:failed"), Some(b"2".to_vec()));
}

#[test]
fn promote_fails_jobs_whose_queue_has_the_wrong_type_and_goes_on() {
    let mut s = MemStore::at(10_000);
    s.data.insert(b"resque:delayed_queue_schedule".to_vec(), MemValue::Zset(vec![(b"2".to_vec(), 2.0)]));
    s.data.insert(
        b"resque:delayed:2".to_vec(),
        MemValue::List(
            [&br#"{"class":"c","queue":"bad","args":[1]}"#[..], br#"{"class":"c","queue":"q","args":[2]}"#]
                .iter()
                .map(|p| p.to_vec())
                .collect(),
        ),
    );
    s.data.insert(b"resque:queue:bad".to_vec(), MemValue::String(b"x".to_vec()));
    let (plan, problems) = promote_reporting(&mut s, &ns(), 10).expect("plans");
    s.apply(&plan.effects);
    assert_eq!(plan.reply, Reply::Int(1));
    assert_eq!(s.list(b"resque:queue:q"), vec![br#"{"class":"c","queue":"q","args":[2]}"#.to_vec()]);
    assert!(!s.data.contains_key(&b"resque:delayed_queue_schedule"[..]));
    assert_eq!(s.string(b"resque:queue:bad"), Some(b"x".to_vec()));
    let failed = s.list(b"resque:failed");
    assert_eq!(failed.len(), 1);
    let rec = String::from_utf8_lossy(&failed[0]).into_owned();
    assert!(rec.contains(WRONG_TYPE_EXCEPTION) && rec.contains("resque:queue:bad"), "{rec}");
    assert!(rec.contains(r#""queue":"bad""#), "{rec}");
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("resque:queue:bad"), "{problems:?}");
}

#[test]
fn pop_takes_priority_order_and_records_the_job() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| enqueue(s, &ns(), b"low", b"c", Some(b"[1]"), None)).expect("ok");
    run(&mut s, |s| enqueue(s, &ns(), b"high", b"c", Some(b"[2]"), None)).expect("ok");
    let r = run(&mut s, |s| pop(s, &ns(), b"h:1", &[b"high", b"low"], &opts(None))).expect("pops");
    assert_eq!(bulk(&r), vec![b"high".to_vec(), br#"{"class":"c","queue":"high","args":[2]}"#.to_vec()]);
    assert_eq!(
        s.string(b"resque:worker:h:1:high,low"),
        Some(br#"{"run_at":"1970-01-01T00:00:00.000Z","queue":"high","worker":"h:1","payload":{"class":"c","queue":"high","args":[2]}}"#.to_vec())
    );
    assert_eq!(s.members(b"resque:workers"), vec![b"h:1:high,low".to_vec()]);
    // One job per worker name: a pop by a name that holds one gets it again
    // (same delivery, lease renewed), and takes nothing else.
    s.now = 5;
    let again = run(&mut s, |s| pop(s, &ns(), b"h:1", &[b"low"], &opts(None))).expect("hands it again");
    assert_eq!(
        again,
        Reply::Array(vec![
            Reply::Bulk(b"high".to_vec()),
            Reply::Bulk(br#"{"class":"c","queue":"high","args":[2]}"#.to_vec()),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(60_005),
        ])
    );
    assert_eq!(s.list(b"resque:queue:low").len(), 1);
    run(&mut s, |s| {
        let d = dl(s, b"h:1");
        ack(s, &ns(), b"h:1", d)
    })
    .expect("acks");
    let r = run(&mut s, |s| pop(s, &ns(), b"h:1", &[b"high", b"low"], &opts(None))).expect("pops");
    assert_eq!(bulk(&r)[0], b"low".to_vec());
    run(&mut s, |s| {
        let d = dl(s, b"h:1");
        ack(s, &ns(), b"h:1", d)
    })
    .expect("acks");
    let plan = pop(&mut s, &ns(), b"h:1", &[b"high", b"low"], &opts(None)).expect("plans");
    assert_eq!(plan, Plan::new(Reply::Nil));
}

#[test]
fn pop_star_reads_every_queue_alphabetically() {
    let mut s = MemStore::at(0);
    for q in ["b", "a", "\u{ff61}", "\u{1f600}"] {
        run(&mut s, |s| enqueue(s, &ns(), q.as_bytes(), b"c", None, None)).expect("ok");
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let r = run(&mut s, |s| pop(s, &ns(), b"w", &[b"*"], &opts(None))).expect("pops");
        got.push(String::from_utf8(bulk(&r)[0].clone()).expect("utf8"));
        run(&mut s, |s| {
            let d = dl(s, b"w");
            ack(s, &ns(), b"w", d)
        })
        .expect("acks");
    }
    // UTF-16 order: U+1F600 (a surrogate pair, 0xD83D) sorts before U+FF61.
    assert_eq!(got, ["a", "b", "\u{1f600}", "\u{ff61}"]);
    assert!(s.string(b"resque:worker:w:*").is_none());
    assert!(pop(&mut s, &ns(), b"w", &[b"*", b"a"], &opts(None)).is_err());
}

#[test]
fn pop_moves_corrupt_payloads_to_failed_and_goes_on() {
    let mut s = MemStore::at(0);
    s.data.insert(
        b"resque:queue:q".to_vec(),
        MemValue::List([&b"\xff\xfe"[..], b"[]", br#"{"class":"ok"}"#].iter().map(|p| p.to_vec()).collect()),
    );
    let r = run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &opts(None))).expect("pops");
    assert_eq!(bulk(&r)[1], br#"{"class":"ok"}"#.to_vec());
    let failed = s.list(b"resque:failed");
    assert_eq!(failed.len(), 2);
    for f in &failed {
        assert!(crate::json::validate(f).is_ok());
    }
    assert_eq!(s.string(b"resque:stat:failed"), Some(b"2".to_vec()));
}

#[test]
fn a_queue_named_twice_is_read_once() {
    let mut s = MemStore::at(0);
    s.data.insert(b"resque:queue:junk".to_vec(), MemValue::List([b"garbage".to_vec()].into_iter().collect()));
    assert_eq!(run(&mut s, |s| pop(s, &ns(), b"w", &[b"junk", b"junk"], &opts(None))), Ok(Reply::Nil));
    assert_eq!(s.list(b"resque:failed").len(), 1);
    assert_eq!(s.string(b"resque:stat:failed"), Some(b"1".to_vec()));
}

#[test]
fn ack_and_fail_complete_the_job_once() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[1]"), None)).expect("ok");
    run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[2]"), None)).expect("ok");
    assert!(matches!(
        {
            let d = dl(&s, b"w");
            ack(&mut s, &ns(), b"w", d)
        },
        Err(TqError::NoJob { cleaned: false, .. })
    ));
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &opts(None))).expect("pops");
    run(&mut s, |s| {
        let d = dl(s, b"w");
        ack(s, &ns(), b"w", d)
    })
    .expect("acks");
    assert_eq!(s.string(b"resque:stat:processed"), Some(b"1".to_vec()));
    assert_eq!(s.string(b"resque:stat:processed:w"), Some(b"1".to_vec()));
    assert!(s.string(b"resque:worker:w:q").is_none());
    // A repeat (a resend after a lost reply) answers as the first did and
    // changes nothing.
    let first = dl(&s, b"w");
    let before = s.clone();
    assert_eq!(run(&mut s, |s| ack(s, &ns(), b"w", first)), Ok(Reply::Ok));
    assert_eq!(s.data, before.data);
    assert!(matches!(ack(&mut s, &ns(), b"w", first + 1), Err(TqError::Delivery { holds: None, .. })));

    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &opts(None))).expect("pops");
    run(&mut s, |s| {
        let d = dl(s, b"w");
        fail(s, &ns(), b"w", d, b"Error", b"boom", Some(br#"["at x"]"#), None)
    })
    .expect("fails");
    let failed = s.list(b"resque:failed");
    assert_eq!(
        String::from_utf8_lossy(&failed[0]),
        r#"{"worker":"w","queue":"q","payload":{"class":"c","queue":"q","args":[2]},"exception":"Error","error":"boom","backtrace":["at x"],"failed_at":"Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)"}"#
    );
    assert_eq!(s.string(b"resque:stat:failed"), Some(b"1".to_vec()));
    assert_eq!(s.string(b"resque:stat:failed:w"), Some(b"1".to_vec()));
    let second = dl(&s, b"w");
    assert_eq!(second, first + 1);
    let before = s.clone();
    assert_eq!(run(&mut s, |s| fail(s, &ns(), b"w", second, b"E", b"e", None, None)), Ok(Reply::Ok));
    assert_eq!(s.data, before.data);
    // A report of another kind about an ended delivery is refused.
    assert!(matches!(ack(&mut s, &ns(), b"w", second), Err(TqError::Ended { .. })));
    assert!(matches!(ack(&mut s, &ns(), b"w", first), Err(TqError::Delivery { .. })));
    // Only tombstones remain, and they expire.
    assert!(s.data.keys().filter(|k| k.starts_with(b"resque:tq:inflight")).all(|k| s.expires.contains_key(k)));
}

#[test]
fn a_worker_cleaned_up_by_another_tool_holds_no_job() {
    let mut s = MemStore::at(0);
    for _ in 0..2 {
        run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", None, None)).expect("ok");
    }
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &opts(None))).expect("pops");
    // node-resque's forceCleanWorker unregisters the worker (and fails the job).
    if let Some(MemValue::Set(set)) = s.data.get_mut(&b"resque:workers"[..]) {
        set.remove(&b"w:q"[..]);
    }
    let before = s.clone();
    assert_eq!(
        {
            let d = dl(&s, b"w");
            ack(&mut s, &ns(), b"w", d)
        },
        Err(TqError::NoJob { worker: b"w".to_vec(), cleaned: true })
    );
    assert!(matches!(
        {
            let d = dl(&s, b"w");
            fail(&mut s, &ns(), b"w", d, b"E", b"e", None, None)
        },
        Err(TqError::NoJob { cleaned: true, .. })
    ));
    assert_eq!(s, before);
    // The worker may pop again; the stale record of another queue list goes.
    s.data.insert(
        b"resque:tq:inflight:w".to_vec(),
        MemValue::String(
            InFlight {
                queues: b"old".to_vec(),
                queue: b"old".to_vec(),
                popped_ms: 0,
                joblock: None,
                lease_until_ms: 60_000,
                deliveries: 1,
                delivery: 0,
                after: 0,
                ended: None,
                class: b"C".to_vec(),
                wait_ms: Some(12),
                open: None,
            }
            .encode(),
        ),
    );
    s.data.insert(b"resque:worker:w:old".to_vec(), MemValue::String(b"{}".to_vec()));
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &opts(None))).expect("pops again");
    assert!(s.string(b"resque:worker:w:old").is_none());
    assert!(s.string(b"resque:worker:w:q").is_some());
    run(&mut s, |s| {
        let d = dl(s, b"w");
        ack(s, &ns(), b"w", d)
    })
    .expect("acks");
}

#[test]
fn fail_refuses_bad_arguments_before_writing() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", None, None)).expect("ok");
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &opts(None))).expect("pops");
    let before = s.clone();
    assert!({
        let d = dl(&s, b"w");
        fail(&mut s, &ns(), b"w", d, b"E", b"e", Some(b"{}"), None)
    }
    .is_err());
    assert!({
        let d = dl(&s, b"w");
        fail(&mut s, &ns(), b"w", d, b"\xff", b"e", None, None)
    }
    .is_err());
    s.data.insert(b"resque:stat:failed".to_vec(), MemValue::String(b"nope".to_vec()));
    assert!({
        let d = dl(&s, b"w");
        fail(&mut s, &ns(), b"w", d, b"E", b"e", None, None)
    }
    .is_err());
    s.data.insert(b"resque:stat:failed".to_vec(), MemValue::String(b"0".to_vec()));
    s.data.remove(&b"resque:stat:failed"[..]);
    assert_eq!(s, before);
}

#[test]
fn fail_without_a_readable_record_still_completes() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", None, None)).expect("ok");
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &opts(None))).expect("pops");
    s.data.insert(b"resque:worker:w:q".to_vec(), MemValue::String(b"garbage".to_vec()));
    run(&mut s, |s| {
        let d = dl(s, b"w");
        fail(s, &ns(), b"w", d, b"E", b"e", None, None)
    })
    .expect("fails");
    let failed = s.list(b"resque:failed");
    assert!(String::from_utf8_lossy(&failed[0]).contains(r#""payload":"garbage""#));
    assert!(s.string(b"resque:worker:w:q").is_none());
}

#[test]
fn unique_enqueue_refuses_a_waiting_twin_until_it_is_popped() {
    let mut s = MemStore::at(10_000);
    let lock_key = br#"resque:lock:c:q:[1]"#;
    assert_eq!(run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[1]"), Some(60_000))), Ok(Reply::Int(1)));
    // node-resque's value: round(now/1000) + lockTimeout + 1, with a TTL.
    assert_eq!(s.string(lock_key), Some(b"71".to_vec()));
    assert_eq!(s.expires.get(&lock_key[..]), Some(&70_000));
    let before = s.clone();
    assert_eq!(run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[1.0]"), Some(60_000))), Ok(Reply::Nil));
    assert_eq!(s, before, "a refused twin writes nothing");
    // Other args are another job.
    assert_eq!(run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[2]"), Some(60_000))), Ok(Reply::Int(2)));
    // The pop of the job releases its lock in the same step.
    run(&mut s, |s| pop(s, &ns(), b"w", &[b"q"], &opts(None))).expect("pops");
    assert_eq!(s.string(lock_key), None);
    assert_eq!(run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[1]"), Some(60_000))), Ok(Reply::Int(2)));
    // A lock whose deadline passed (but whose key lingers) does not block.
    s.data.insert(b"resque:lock:c:q:[3]".to_vec(), MemValue::String(b"5".to_vec()));
    assert_eq!(run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[3]"), Some(60_000))), Ok(Reply::Int(3)));
    assert!(enqueue(&mut s, &ns(), b"q", b"c", None, Some(0)).is_err());
}

#[test]
fn joblock_keeps_identical_jobs_from_running_at_once() {
    let mut s = MemStore::at(0);
    for a in ["[1]", "[1]", "[2]"] {
        run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(a.as_bytes()), None)).expect("ok");
    }
    let r = run(&mut s, |s| pop(s, &ns(), b"w1", &[b"q"], &opts(Some(30_000)))).expect("pops");
    assert_eq!(bulk(&r)[1], br#"{"class":"c","queue":"q","args":[1]}"#.to_vec());
    assert!(s.string(b"resque:workerslock:c:q:[1]").is_some());
    // The twin is moved to the tail; the other job runs.
    let r = run(&mut s, |s| pop(s, &ns(), b"w2", &[b"q"], &opts(Some(30_000)))).expect("pops");
    assert_eq!(bulk(&r)[1], br#"{"class":"c","queue":"q","args":[2]}"#.to_vec());
    assert_eq!(s.list(b"resque:queue:q"), vec![br#"{"class":"c","queue":"q","args":[1]}"#.to_vec()]);
    // Only the twin left, still locked: nil, and it stays queued.
    assert_eq!(run(&mut s, |s| pop(s, &ns(), b"w3", &[b"q"], &opts(Some(30_000)))), Ok(Reply::Nil));
    assert_eq!(s.list(b"resque:queue:q").len(), 1);
    // Only the holder's completion releases the lock.
    run(&mut s, |s| {
        let d = dl(s, b"w2");
        ack(s, &ns(), b"w2", d)
    })
    .expect("acks");
    assert!(s.string(b"resque:workerslock:c:q:[1]").is_some());
    run(&mut s, |s| {
        let d = dl(s, b"w1");
        fail(s, &ns(), b"w1", d, b"E", b"e", None, None)
    })
    .expect("fails");
    assert!(s.string(b"resque:workerslock:c:q:[1]").is_none());
    let r = run(&mut s, |s| pop(s, &ns(), b"w3", &[b"q"], &opts(Some(30_000)))).expect("pops");
    assert_eq!(bulk(&r)[1], br#"{"class":"c","queue":"q","args":[1]}"#.to_vec());
    // A lock taken over by someone else (new value) is not released by ACK.
    s.data.insert(b"resque:workerslock:c:q:[1]".to_vec(), MemValue::String(b"other".to_vec()));
    run(&mut s, |s| {
        let d = dl(s, b"w3");
        ack(s, &ns(), b"w3", d)
    })
    .expect("acks");
    assert_eq!(s.string(b"resque:workerslock:c:q:[1]"), Some(b"other".to_vec()));
}

fn job_of(args: &str) -> Vec<u8> {
    format!(r#"{{"class":"c","queue":"q","args":{args}}}"#).into_bytes()
}

/// A job tq files for time T is promoted at T: not when the bucket
/// `round(T / 1000)` starts (up to 500 ms early) and not a bucket late.
#[test]
fn a_job_filed_by_tq_is_promoted_at_its_exact_time() {
    let mut s = MemStore::at(0);
    // Both in bucket 1 (round(0.6) = round(1.4) = 1), node-resque's filing.
    run(&mut s, |s| enqueue_at(s, &ns(), 1_400, b"q", b"c", Some(b"[14]"))).expect("filed");
    run(&mut s, |s| enqueue_at(s, &ns(), 600, b"q", b"c", Some(b"[6]"))).expect("filed");
    assert_eq!(s.list(b"resque:delayed:1"), [job_of("[14]"), job_of("[6]")]);
    assert_eq!(next_due(&mut s, &ns()), Ok(Some(600)));
    s.now = 599;
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(0)), "nothing before 600");
    s.now = 600;
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(1)));
    assert_eq!(s.list(b"resque:queue:q"), [job_of("[6]")]);
    assert_eq!(s.list(b"resque:delayed:1"), [job_of("[14]")], "held, still filed under its bucket");
    assert!(s
        .set_contains(b"resque:timestamps:{\"class\":\"c\",\"queue\":\"q\",\"args\":[14]}", b"delayed:1")
        .expect("set"));
    assert_eq!(next_due(&mut s, &ns()), Ok(Some(1_400)));
    for now in [1_000, 1_399] {
        s.now = now;
        assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(0)), "nothing at {now}");
    }
    s.now = 1_400;
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(1)));
    assert_eq!(s.list(b"resque:queue:q"), [job_of("[6]"), job_of("[14]")]);
    // Nothing left behind: bucket, schedule, exact times, due times.
    for key in [&b"resque:delayed:1"[..], b"resque:delayed_queue_schedule", b"resque:tq:due"] {
        assert!(!s.data.contains_key(key), "{}", String::from_utf8_lossy(key));
    }
    assert!(matches!(s.data.get(&b"resque:tq:at"[..]), None | Some(MemValue::Hash(_))));
    if let Some(MemValue::Hash(h)) = s.data.get(&b"resque:tq:at"[..]) {
        assert!(h.is_empty());
    }
    assert_eq!(next_due(&mut s, &ns()), Ok(None));
}

/// A job node-resque filed keeps its bucket semantics beside tq's jobs.
#[test]
fn jobs_of_other_writers_stay_due_at_their_buckets_second() {
    let mut s = MemStore::at(0);
    // node-resque's enqueueAt: RPUSH, SADD, ZADD.
    let theirs = job_of("[\"nr\"]");
    s.apply(&[
        Effect::RPush { key: b"resque:delayed:2".to_vec(), value: theirs.clone() },
        Effect::SAdd { key: ns().timestamps(&theirs), member: b"delayed:2".to_vec() },
        Effect::ZAdd { key: b"resque:delayed_queue_schedule".to_vec(), score: 2, member: b"2".to_vec() },
    ]);
    run(&mut s, |s| enqueue_at(s, &ns(), 2_300, b"q", b"c", Some(b"[23]"))).expect("filed");
    run(&mut s, |s| enqueue_at(s, &ns(), 1_600, b"q", b"c", Some(b"[16]"))).expect("filed");
    assert_eq!(next_due(&mut s, &ns()), Ok(Some(1_600)));
    s.now = 1_600;
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(1)), "tq's 1.6 s job only");
    assert_eq!(s.list(b"resque:delayed:2"), [theirs.clone(), job_of("[23]")], "order kept");
    assert_eq!(next_due(&mut s, &ns()), Ok(Some(2_000)));
    s.now = 2_000;
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(1)), "node-resque's job at 2 s");
    assert_eq!(next_due(&mut s, &ns()), Ok(Some(2_300)));
    s.now = 2_300;
    assert_eq!(run(&mut s, |s| promote(s, &ns(), 100)), Ok(Reply::Int(1)));
    assert_eq!(s.list(b"resque:queue:q"), [job_of("[16]"), theirs, job_of("[23]")]);
}

#[test]
fn not_delayed_enqueue_refuses_while_the_job_waits_in_a_delayed_bucket() {
    let mut s = MemStore::at(NOW);
    run(&mut s, |s| enqueue_at(s, &ns(), NOW + 60_000, b"q", b"c", Some(b"[1]"))).expect("filed");
    let before = s.clone();
    // The same payload (args spelled differently) is delayed: refused, nothing written.
    assert_eq!(run(&mut s, |s| enqueue_not_delayed(s, &ns(), b"q", b"c", Some(b"[1.0]"), None)), Ok(Reply::Nil));
    assert_eq!(s, before, "a refused enqueue writes nothing");
    // Another job, or the same one in another queue, is not.
    assert_eq!(run(&mut s, |s| enqueue_not_delayed(s, &ns(), b"q", b"c", Some(b"[2]"), None)), Ok(Reply::Int(1)));
    assert_eq!(run(&mut s, |s| enqueue_not_delayed(s, &ns(), b"p", b"c", Some(b"[1]"), None)), Ok(Reply::Int(1)));
    // Once promoted (its timestamps set gone), it may be enqueued again.
    s.now = NOW + 61_000;
    run(&mut s, |s| promote(s, &ns(), 1000)).expect("promotes");
    assert_eq!(run(&mut s, |s| enqueue_not_delayed(s, &ns(), b"q", b"c", Some(b"[1]"), None)), Ok(Reply::Int(3)));
    // With UNIQUE too: both checks apply.
    assert_eq!(
        run(&mut s, |s| enqueue_not_delayed(s, &ns(), b"u", b"c", Some(b"[1]"), Some(60_000))),
        Ok(Reply::Int(1))
    );
    assert_eq!(run(&mut s, |s| enqueue_not_delayed(s, &ns(), b"u", b"c", Some(b"[1]"), Some(60_000))), Ok(Reply::Nil));
    // A timestamps key of another type is an error, not a refusal.
    s.data
        .insert(br#"resque:timestamps:{"class":"c","queue":"w","args":[]}"#.to_vec(), MemValue::String(b"x".to_vec()));
    assert!(enqueue_not_delayed(&mut s, &ns(), b"w", b"c", None, None).is_err());
}

#[test]
fn a_pop_that_finds_only_locked_jobs_plans_no_moves() {
    let mut s = MemStore::at(0);
    for a in ["[1]", "[1]"] {
        run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(a.as_bytes()), None)).expect("ok");
    }
    run(&mut s, |s| pop(s, &ns(), b"w1", &[b"q"], &opts(Some(30_000)))).expect("pops");
    // The twin is locked: rotating the whole queue would be no move (and a
    // queue of one would be deleted and created again, waking a TQ.BPOP).
    let plan = pop(&mut s, &ns(), b"w2", &[b"q"], &opts(Some(30_000))).expect("plans");
    assert_eq!(plan.reply, Reply::Nil);
    assert!(plan.effects.is_empty(), "{:?}", plan.effects);
    // Behind a locked job, a free one is still taken, the locked one moved behind it.
    run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[2]"), None)).expect("ok");
    let r = run(&mut s, |s| pop(s, &ns(), b"w2", &[b"q"], &opts(Some(30_000)))).expect("pops");
    assert_eq!(bulk(&r)[1], br#"{"class":"c","queue":"q","args":[2]}"#.to_vec());
    assert_eq!(s.list(b"resque:queue:q"), vec![br#"{"class":"c","queue":"q","args":[1]}"#.to_vec()]);
}

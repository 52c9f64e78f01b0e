use super::*;
use crate::queue::{enqueue, enqueue_at};
use crate::records::InFlight;
use crate::store::{MemStore, MemValue};
use crate::work::{fail, pop, PopOptions};

fn ns() -> Ns<'static> {
    Ns::new(b"resque", false).expect("valid namespace")
}

/// The delivery the worker's entry names (0 without one).
fn dl(s: &MemStore, w: &[u8]) -> u64 {
    let mut k = b"resque:tq:inflight:".to_vec();
    k.extend_from_slice(w);
    s.string(&k).and_then(|raw| InFlight::decode(&raw)).map_or(0, |e| e.delivery)
}

fn run(s: &mut MemStore, f: impl FnOnce(&mut MemStore) -> Result<Plan>) -> Result<Reply> {
    let plan = f(s)?;
    let removed = s.apply(&plan.effects);
    Ok(if plan.reply == Reply::Removed { Reply::Int(removed as i64) } else { plan.reply })
}

const OPTS: PopOptions = PopOptions { joblock: None, lease_ms: 60_000 };

fn ints(r: &Reply) -> Vec<i64> {
    match r {
        Reply::Array(v) => v.iter().map(|i| if let Reply::Int(n) = i { *n } else { panic!("{i:?}") }).collect(),
        other => panic!("{other:?}"),
    }
}

/// A FAILRETRY/FAILREMOVE reply: (count, next position or None at the end).
fn step(r: &Reply) -> (i64, Option<i64>) {
    match r {
        Reply::Array(v) => match v.as_slice() {
            [Reply::Int(n), Reply::Int(next)] => (*n, Some(*next)),
            [Reply::Int(n), Reply::Nil] => (*n, None),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn delayed_jobs_are_listed_in_milliseconds_and_removed_atomically() {
    let mut s = MemStore::at(0);
    for at in [5_000, 3_000, 9_000] {
        run(&mut s, |s| enqueue_at(s, &ns(), at, b"q", b"c", Some(b"[1]"))).expect("filed");
    }
    run(&mut s, |s| enqueue_at(s, &ns(), 3_000, b"q", b"c", Some(b"[2]"))).expect("filed");
    assert_eq!(
        ints(&run(&mut s, |s| scheduled_at(s, &ns(), b"q", b"c", Some(b"[1]"))).expect("ok")),
        [3_000, 5_000, 9_000]
    );
    assert_eq!(ints(&run(&mut s, |s| timestamps(s, &ns(), 0, 10)).expect("ok")), [3_000, 5_000, 9_000]);
    assert_eq!(ints(&run(&mut s, |s| timestamps(s, &ns(), 1, 1)).expect("ok")), [5_000]);
    match run(&mut s, |s| delayed_at(s, &ns(), 3_400, 0, -1)).expect("ok") {
        Reply::Array(jobs) => assert_eq!(jobs.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ints(&run(&mut s, |s| del_delayed(s, &ns(), b"q", b"c", Some(b"[1]"))).expect("ok")),
        [3_000, 5_000, 9_000]
    );
    // Bucket 3 still holds [2]; buckets 5 and 9 went.
    assert_eq!(ints(&run(&mut s, |s| timestamps(s, &ns(), 0, 10)).expect("ok")), [3_000]);
    assert!(ints(&run(&mut s, |s| scheduled_at(s, &ns(), b"q", b"c", Some(b"[1]"))).expect("ok")).is_empty());
}

#[test]
fn del_and_del_by_class_count_what_they_remove() {
    let mut s = MemStore::at(0);
    for (c, a) in [("a", "[1]"), ("a", "[1]"), ("b", "[1]"), ("a", "[2]")] {
        run(&mut s, |s| enqueue(s, &ns(), b"q", c.as_bytes(), Some(a.as_bytes()), None)).expect("ok");
    }
    assert_eq!(run(&mut s, |s| del(s, &ns(), b"q", b"a", Some(b"[1]"), 1)), Ok(Reply::Int(1)));
    assert_eq!(run(&mut s, |s| del_by_class(s, &ns(), b"q", b"a", 0, -1)), Ok(Reply::Int(2)));
    assert_eq!(s.list(b"resque:queue:q").len(), 1);
    assert_eq!(run(&mut s, |s| del_queue(s, &ns(), b"q")), Ok(Reply::Int(1)));
    assert!(s.members(b"resque:queues").is_empty());
}

#[test]
fn failed_jobs_are_retried_and_removed_by_id_and_selection() {
    let mut s = MemStore::at(0);
    for (q, c) in [("q1", "a"), ("q1", "b"), ("q2", "a")] {
        run(&mut s, |s| enqueue(s, &ns(), q.as_bytes(), c.as_bytes(), None, None)).expect("ok");
        run(&mut s, |s| pop(s, &ns(), b"w", &[q.as_bytes()], &OPTS)).expect("pops");
        run(&mut s, |s| {
            let d = dl(s, b"w");
            fail(s, &ns(), b"w", d, b"TypeError", b"boom", None, None)
        })
        .expect("fails");
    }
    let listed = match run(&mut s, |s| failed(s, &ns(), 0, 10)).expect("ok") {
        Reply::Array(rows) => rows,
        other => panic!("{other:?}"),
    };
    assert_eq!(listed.len(), 3);
    let Reply::Array(first) = &listed[0] else { panic!() };
    let Reply::Bulk(id) = &first[0] else { panic!() };
    // One by id: back in its queue, bytes unchanged.
    let filter = FailedFilter { id: Some(id.clone()), ..FailedFilter::default() };
    assert_eq!(step(&run(&mut s, |s| failed_retry(s, &ns(), &filter, 0, 100, true)).expect("ok")), (1, None));
    assert_eq!(s.list(b"resque:queue:q1"), vec![br#"{"class":"a","queue":"q1","args":[]}"#.to_vec()]);
    // A selection by class: only q2's "a" is left to match.
    let filter = FailedFilter { class: Some(b"a".to_vec()), ..FailedFilter::default() };
    assert_eq!(step(&run(&mut s, |s| failed_retry(s, &ns(), &filter, 0, 100, false)).expect("ok")), (1, None));
    assert_eq!(s.list(b"resque:failed").len(), 1);
    // Paging: a limit of 1 with nothing matching moves the cursor on.
    let filter = FailedFilter { exception: Some(b"Other".to_vec()), ..FailedFilter::default() };
    let s2 = &mut s.clone();
    run(s2, |s| enqueue(s, &ns(), b"q3", b"c", None, None)).expect("ok");
    run(s2, |s| pop(s, &ns(), b"w", &[b"q3"], &OPTS)).expect("pops");
    run(s2, |s| {
        let d = dl(s, b"w");
        fail(s, &ns(), b"w", d, b"E", b"e", None, None)
    })
    .expect("fails");
    assert_eq!(step(&run(s2, |s| failed_retry(s, &ns(), &filter, 0, 1, true)).expect("ok")), (0, Some(1)));
    assert_eq!(step(&run(s2, |s| failed_retry(s, &ns(), &filter, 1, 1, true)).expect("ok")), (0, None));
    // All.
    assert_eq!(
        step(&run(&mut s, |s| failed_retry(s, &ns(), &FailedFilter::default(), 0, 100, true)).expect("ok")),
        (1, None)
    );
    assert!(s.list(b"resque:failed").is_empty());
}

#[test]
fn force_clean_fails_the_job_and_forgets_the_worker() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", Some(b"[7]"), None)).expect("ok");
    run(&mut s, |s| pop(s, &ns(), b"h:1", &[b"q"], &OPTS)).expect("pops");
    s.data.insert(b"resque:stat:processed:h:1".to_vec(), MemValue::String(b"3".to_vec()));
    let r = run(&mut s, |s| force_clean(s, &ns(), b"h:1")).expect("cleans");
    let Reply::Bulk(rec) = r else { panic!("{r:?}") };
    let text = String::from_utf8_lossy(&rec).into_owned();
    assert!(text.contains(r#""backtrace":["killed by tq at"#) && text.contains(FORCE_CLEAN_MARK), "{text}");
    assert!(text.contains(r#""payload":{"class":"c","queue":"q","args":[7]}"#));
    assert!(s.members(b"resque:workers").is_empty());
    assert!(s.data.keys().all(|k| !k.starts_with(b"resque:worker:") && !k.starts_with(b"resque:tq:inflight")));
    assert!(s.string(b"resque:stat:processed:h:1").is_none());
    assert_eq!(s.string(b"resque:stat:failed"), Some(b"1".to_vec()));
    assert_eq!(run(&mut s, |s| force_clean(s, &ns(), b"h:1")), Ok(Reply::Nil));
}

#[test]
fn clean_workers_takes_only_old_jobs() {
    let mut s = MemStore::at(0);
    for w in [&b"old"[..], b"young"] {
        run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", None, None)).expect("ok");
        run(&mut s, |s| pop(s, &ns(), w, &[b"q"], &OPTS)).expect("pops");
        s.now += 10_000;
    }
    let r = run(&mut s, |s| clean_workers(s, &ns(), 15_000)).expect("cleans");
    let Reply::Array(rows) = r else { panic!() };
    assert_eq!(rows.len(), 1);
    assert_eq!(s.members(b"resque:workers"), vec![b"young:q".to_vec()]);
    assert_eq!(s.list(b"resque:failed").len(), 1);
}

#[test]
fn stats_and_workers_read_the_registry() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| enqueue(s, &ns(), b"q", b"c", None, None)).expect("ok");
    run(&mut s, |s| pop(s, &ns(), b"host:1", &[b"q"], &OPTS)).expect("pops");
    run(&mut s, |s| {
        let d = dl(s, b"host:1");
        crate::work::ack(s, &ns(), b"host:1", d)
    })
    .expect("acks");
    let r = run(&mut s, |s| stats(s, &ns())).expect("ok");
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::Bulk(b"processed".to_vec()),
            Reply::Bulk(b"1".to_vec()),
            Reply::Bulk(b"failed".to_vec()),
            Reply::Bulk(b"0".to_vec()),
            Reply::Bulk(b"processed:host:1".to_vec()),
            Reply::Bulk(b"1".to_vec()),
        ])
    );
    let r = run(&mut s, |s| workers(s, &ns(), 0, 10)).expect("ok");
    assert_eq!(
        r,
        Reply::Array(vec![Reply::Array(vec![Reply::Bulk(b"host:1".to_vec()), Reply::Bulk(b"q".to_vec()), Reply::Nil])])
    );
    assert_eq!(split_member(b"h:1:a,b"), Some((&b"h:1"[..], &b"a,b"[..])));
    assert_eq!(split_member(b"w:q"), Some((&b"w"[..], &b"q"[..])));
    run(&mut s, |s| untrack(s, &ns(), b"host:1", b"q")).expect("untracks");
    assert!(s.members(b"resque:workers").is_empty());
}

#[test]
fn locks_are_listed_without_the_namespace() {
    let mut s = MemStore::at(0);
    s.data.insert(b"resque:lock:c:q:[]".to_vec(), MemValue::String(b"99".to_vec()));
    s.data.insert(b"resque:workerslock:c:q:[]".to_vec(), MemValue::String(b"98".to_vec()));
    s.data.insert(b"resque:queue:lockers".to_vec(), MemValue::List(Default::default()));
    run(&mut s, |s| crate::lock::lock(s, &ns(), &crate::lock::Place::Key(b"t"), b"o", 1000)).expect("locks");
    let Reply::Array(parts) = run(&mut s, |s| locks(s, &ns(), 0, 100)).expect("ok") else { panic!() };
    let Some(Reply::Array(rows)) = parts.get(1) else { panic!() };
    let names: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| {
            if let Reply::Array(kv) = r {
                if let Reply::Bulk(k) = &kv[0] {
                    k.clone()
                } else {
                    panic!()
                }
            } else {
                panic!()
            }
        })
        .collect();
    assert_eq!(names, vec![b"lock:c:q:[]".to_vec(), b"tq:lock:t".to_vec(), b"workerslock:c:q:[]".to_vec()]);
}

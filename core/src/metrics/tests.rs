use super::*;
use crate::queue::{enqueue, promote};
use crate::store::{MemStore, Plan, Reply};
use crate::work::tests::entry;
use crate::work::{self, PopOptions};

fn ns() -> Ns<'static> {
    Ns::new(b"resque", false).expect("valid namespace")
}

fn run(s: &mut MemStore, f: impl FnOnce(&mut MemStore) -> Result<Plan>) -> Reply {
    let plan = f(s).expect("planned");
    s.apply(&plan.effects);
    plan.reply
}

const LEASE: PopOptions = PopOptions { joblock: None, lease_ms: 60_000 };
/// A time on a minute's start, so tests know which minute they write.
const T0: u64 = 1_700_000_040_000;

/// Enqueues a job of its own (args unique: twins share a digest).
fn enq(s: &mut MemStore, q: &[u8], class: &[u8]) {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let args = format!("[{}]", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    run(s, |s| enqueue(s, &ns(), q, class, Some(args.as_bytes()), None));
}

fn pop(s: &mut MemStore, w: &[u8], q: &[u8]) -> u64 {
    match run(s, |s| work::pop(s, &ns(), w, &[q], &LEASE)) {
        Reply::Array(v) => match v.get(2) {
            Some(Reply::Int(d)) => u64::try_from(*d).expect("delivery"),
            other => panic!("{other:?}"),
        },
        other => panic!("not popped: {other:?}"),
    }
}

fn tally(s: &MemStore, key: &[u8]) -> Tally {
    Tally::decode(&s.string(key).expect("tally written")).expect("tally decodes")
}

/// A seeded xorshift: the randomized tests' sequence, repeatable by seed.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    }
}

/// What the timer does once every open tally is due: their jobs go to their
/// records (the store's clock is put back after).
fn flush(s: &mut MemStore) {
    let now = s.now;
    s.now = now + FLUSH_MS;
    let (effects, more) = flush_due(s, &ns(), 1000).expect("plans");
    assert!(!more);
    s.apply(&effects);
    s.now = now;
}

/// One visit of the timer's metrics work: due tallies, then (when none is
/// left) minutes that are over.
fn timer(s: &mut MemStore) {
    let (effects, more) = flush_due(s, &ns(), 100).expect("plans");
    s.apply(&effects);
    if !more {
        let effects = close_due(s, &ns(), 100).expect("plans");
        s.apply(&effects);
    }
}

fn minute_key(at: u64, q: &[u8], class: &[u8]) -> Vec<u8> {
    ns().metrics_minute(minute_of(at), &pair(q, class))
}

#[test]
fn buckets_are_powers_of_two_of_milliseconds() {
    assert_eq!(bucket(0), 0);
    assert_eq!(bucket(1), 1);
    assert_eq!(bucket(2), 2);
    assert_eq!(bucket(3), 2);
    assert_eq!(bucket(4), 3);
    assert_eq!(bucket((1 << 21) - 1), 21);
    assert_eq!(bucket(1 << 21), 22);
    assert_eq!(bucket(1 << 22), 23);
    assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    // Every duration is under its bucket's bound and at least the one before.
    for ms in [0, 1, 2, 3, 7, 8, 1000, 65_535, 65_536, (1 << 22) - 1] {
        let b = bucket(ms);
        assert!(ms < bucket_bound_ms(b).expect("bounded"), "{ms}");
        if b > 0 {
            assert!(ms >= bucket_bound_ms(b - 1).expect("bounded"), "{ms}");
        }
    }
    assert_eq!(bucket_bound_ms(BUCKETS - 1), None);
    let mut h = Histogram::default();
    for ms in [0, 5, 5, 5, 100] {
        h.add(ms);
    }
    assert_eq!((h.count(), h.sum_ms), (5, 115));
    assert_eq!(h.quantile_bound_ms(0.5), Some(8));
    assert_eq!(h.quantile_bound_ms(1.0), Some(128));
    assert_eq!(Histogram::default().quantile_bound_ms(0.5), None);
}

#[test]
fn pair_names_are_unambiguous_and_read_back() {
    let a = pair(b"a:b", b"c");
    let b = pair(b"a", b"b:c");
    assert_ne!(a, b);
    assert_eq!(a, br#"["a:b","c"]"#);
    assert_eq!(parse_pair(&pair(b"q\"x", b"C\\")), Some((b"q\"x".to_vec(), b"C\\".to_vec())));
    assert_eq!(parse_pair(b"[\"q\"]"), None);
    assert_eq!(parse_pair(b"nope"), None);
    assert_eq!(Tally::decode(b"\x01"), None);
    assert_eq!(Tally::decode(b"\x02"), None);
    assert_eq!(ns().metrics_minute(29_941_660, b"[]"), b"resque:tq:m:29941660:[]");
    assert_eq!(ns().metrics_minute(0, b"[]"), b"resque:tq:m:0:[]");
    assert_eq!(ns().metrics_minute(u64::MAX, b"p"), format!("resque:tq:m:{}:p", u64::MAX).into_bytes());
    // The hot path's one-allocation form is the same name, escapes included.
    for (minute, q, c) in [
        (29_941_660, &b"q"[..], &b"C"[..]),
        (0, b"", b""),
        (u64::MAX, b"a\"b\\", b"\n\x01\xed\xa0\x80"),
        (7, &[b'"'; 40][..], b"x:y"),
    ] {
        let made = ns().metrics_minute_of(minute, q, c);
        assert_eq!(made, ns().metrics_minute(minute, &pair(q, c)));
    }
}

#[test]
fn a_job_is_counted_with_its_run_and_wait_in_its_minute() {
    let mut s = MemStore::at(T0);
    enq(&mut s, b"q", b"Mail");
    s.now = T0 + 10;
    enq(&mut s, b"q", b"Mail");
    s.now = T0 + 100;
    let d = pop(&mut s, b"w", b"q");
    assert_eq!(entry(&s, b"w").wait_ms, Some(100));
    assert_eq!(entry(&s, b"w").class, b"Mail");
    s.now = T0 + 150;
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    flush(&mut s);
    let t = tally(&s, &minute_key(T0, b"q", b"Mail"));
    assert_eq!((t.processed, t.failed), (1, 0));
    assert_eq!((t.run.count(), t.run.sum_ms), (1, 50));
    assert_eq!((t.wait.count(), t.wait.sum_ms), (1, 100));
    // The second job waited from T0 + 10; it fails, and is counted so.
    s.now = T0 + 210;
    let d = pop(&mut s, b"w", b"q");
    assert_eq!(entry(&s, b"w").wait_ms, Some(200));
    run(&mut s, |s| work::fail(s, &ns(), b"w", d, b"E", b"boom", None, None));
    flush(&mut s);
    let t = tally(&s, &minute_key(T0, b"q", b"Mail"));
    assert_eq!((t.processed, t.failed, t.run.count(), t.wait.sum_ms), (1, 1, 2, 300));
    // The minute is open, and the pair known to readers.
    assert_eq!(s.members(&ns().metrics_pairs()), vec![pair(b"q", b"Mail")]);
    let open = s.zset_range(&ns().metrics_open(), f64::NEG_INFINITY, f64::INFINITY, 10).expect("zset");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].1, ((minute_of(T0) + 1) * MINUTE_MS) as f64);
}

#[test]
fn take_and_complete_in_one_step_counts_the_completed_job() {
    let mut s = MemStore::at(T0);
    for _ in 0..3 {
        enq(&mut s, b"q", b"C");
    }
    s.now = T0 + 5;
    let mut d = pop(&mut s, b"w", b"q");
    for i in 1..3u64 {
        s.now = T0 + 5 + 10 * i;
        let r = run(&mut s, |s| work::ack_and_pop(s, &ns(), b"w", &[b"q"], &LEASE, d));
        d = match r {
            Reply::Array(v) => match v.get(2) {
                Some(Reply::Int(n)) => u64::try_from(*n).expect("id"),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
    }
    flush(&mut s);
    let t = tally(&s, &minute_key(T0, b"q", b"C"));
    assert_eq!((t.processed, t.run.sum_ms, t.wait.count()), (2, 20, 2));
    assert_eq!(entry(&s, b"w").wait_ms, Some(25));
}

#[test]
fn the_timer_closes_a_minute_into_its_hour_and_the_totals() {
    let mut s = MemStore::at(T0);
    enq(&mut s, b"q", b"C");
    let d = pop(&mut s, b"w", b"q");
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    let key = minute_key(T0, b"q", b"C");
    // Not before the minute is over (the worker's tally reaches the record).
    s.now = T0 + MINUTE_MS - 1;
    timer(&mut s);
    assert_eq!(tally(&s, &key).processed, 1);
    assert_eq!(s.expires.get(&key), None);
    s.now = T0 + MINUTE_MS;
    timer(&mut s);
    assert_eq!(s.expires.get(&key), Some(&(T0 + MINUTE_MS + MINUTE_KEEP_MS)));
    let hour = T0 / HOUR_MS;
    let hkey = ns().metrics_hour(hour, &pair(b"q", b"C"));
    assert_eq!(tally(&s, &hkey).processed, 1);
    assert_eq!(s.expires.get(&hkey), Some(&((hour + 1) * HOUR_MS + HOUR_KEEP_MS)));
    assert_eq!(tally(&s, &ns().metrics_total(&pair(b"q", b"C"))).processed, 1);
    assert!(s.zset_range(&ns().metrics_open(), f64::NEG_INFINITY, f64::INFINITY, 10).expect("zset").is_empty());
    // The next minute adds to the same hour and totals: its last job, still
    // in the worker's tally when the minute ends, is written before the
    // minute is closed.
    enq(&mut s, b"q", b"C");
    s.now = T0 + 2 * MINUTE_MS - 10;
    let d = pop(&mut s, b"w", b"q");
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    assert_eq!(entry(&s, b"w").open.map(|t| t.due_ms), Some(T0 + 2 * MINUTE_MS - 1), "due by its minute's end");
    s.now = T0 + 2 * MINUTE_MS;
    timer(&mut s);
    assert_eq!(tally(&s, &hkey).processed, 2);
    assert_eq!(tally(&s, &ns().metrics_total(&pair(b"q", b"C"))).processed, 2);
    // The minute's record expires; the hour's stays.
    s.now = T0 + MINUTE_MS + MINUTE_KEEP_MS;
    assert_eq!(Store::get(&mut s, &key).expect("reads"), None);
    assert!(Store::get(&mut s, &hkey).expect("reads").is_some());
}

#[test]
fn members_of_the_open_zset_only_name_keys_of_its_namespace() {
    let mut s = MemStore::at(T0);
    // Written by a client: a member naming a key elsewhere, one malformed.
    s.apply(&[
        Effect::Set { key: b"other:secret".to_vec(), value: Tally::default().to_bytes() },
        Effect::ZAdd { key: ns().metrics_open(), score: 0, member: b"1:../../other:secret".to_vec() },
        Effect::ZAdd { key: ns().metrics_open(), score: 0, member: b"x".to_vec() },
    ]);
    let effects = close_due(&mut s, &ns(), 100).expect("plans");
    for e in &effects {
        for k in e.keys() {
            assert!(k.starts_with(b"resque:tq:"), "{}", String::from_utf8_lossy(k));
        }
    }
    s.apply(&effects);
    assert!(s.zset_range(&ns().metrics_open(), f64::NEG_INFINITY, f64::INFINITY, 10).expect("zset").is_empty());
}

#[test]
fn metrics_off_writes_none_and_a_foreign_key_never_fails_a_report() {
    let mut s = MemStore::at(T0);
    s.no_metrics = true;
    enq(&mut s, b"q", b"C");
    let d = pop(&mut s, b"w", b"q");
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    assert!(s.data.keys().all(|k| !k.starts_with(b"resque:tq:m") && !k.starts_with(b"resque:tq:clock")));
    assert_eq!(entry(&s, b"w").wait_ms, None);
    s.no_metrics = false;
    let key = minute_key(T0, b"q", b"C");
    s.apply(&[Effect::RPush { key: key.clone(), value: b"x".to_vec() }]);
    s.apply(&[Effect::RPush { key: ns().clock(b"q"), value: b"x".to_vec() }]);
    enq(&mut s, b"q", b"C");
    let d = pop(&mut s, b"w", b"q");
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    flush(&mut s);
    assert_eq!(s.list(&key), vec![b"x".to_vec()]);
    assert_eq!(s.list(&ns().clock(b"q")), vec![b"x".to_vec()]);
    // The timer's index of open tallies of another type: a job's report
    // still succeeds, and its count goes to its record at once.
    s.apply(&[Effect::RPush { key: ns().metrics_flush(), value: b"x".to_vec() }]);
    enq(&mut s, b"q", b"D");
    let d = pop(&mut s, b"w", b"q");
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    assert_eq!(tally(&s, &minute_key(s.now, b"q", b"D")).processed, 1);
    assert_eq!(entry(&s, b"w").open, None);
}

#[test]
fn a_failed_lease_counts_as_failed_and_promoted_jobs_wait_from_their_due_time() {
    let mut s = MemStore::at(T0);
    run(&mut s, |s| crate::queue::enqueue_at(s, &ns(), T0 + 1_000, b"q", b"Late", Some(b"[]")));
    s.now = T0 + 1_500;
    run(&mut s, |s| promote(s, &ns(), 100));
    s.now = T0 + 1_700;
    pop(&mut s, b"w", b"q");
    assert_eq!(entry(&s, b"w").wait_ms, Some(700));
    // Its lease runs out with no delivery left: failed.
    s.now = T0 + 1_700 + 60_000;
    run(&mut s, |s| work::expire_leases(s, &ns(), 1, 10));
    flush(&mut s);
    let t = tally(&s, &minute_key(s.now, b"q", b"Late"));
    assert_eq!((t.failed, t.run.sum_ms, t.wait.sum_ms), (1, 60_000, 700));
}

/// A seeded walk of pushes and takes on one queue (payloads unique): the
/// clock dates every job no later than it arrived (a wait is never
/// understated), keeps at most `CLOCK_SAMPLES` samples, and the head's age
/// is the head's wait.
#[test]
fn the_clock_never_understates_a_wait() {
    for seed in 0..200u64 {
        let mut next = xorshift(seed);
        let mut clock = Clock::default();
        let mut waiting: std::collections::VecDeque<(Vec<u8>, u64)> = std::collections::VecDeque::new();
        let mut now = 1_000u64;
        let mut id = 0u64;
        let mut writes = 0;
        let mut takes = 0;
        for _ in 0..400 {
            now += next() % 5;
            if next() % 2 == 0 {
                let n = 1 + next() % 3;
                let jobs: Vec<Vec<u8>> = (0..n)
                    .map(|_| {
                        id += 1;
                        format!("job {id}").into_bytes()
                    })
                    .collect();
                clock.pushed(waiting.len() as u64, &jobs[0], now);
                waiting.extend(jobs.into_iter().map(|j| (j, now)));
            } else if let Some((head, arrived)) = waiting.pop_front() {
                let age = clock.head_age_ms(now, Some(&head)).expect("known");
                let (at, changed) = clock.took(&head);
                let wait = now - at.expect("known");
                takes += 1;
                writes += usize::from(changed);
                assert_eq!(age, wait, "seed {seed}");
                assert!(wait >= now - arrived, "seed {seed}: {wait} < {}", now - arrived);
            }
            assert!(clock.samples.len() <= CLOCK_SAMPLES, "seed {seed}");
            assert_eq!(Clock::decode(&clock.to_bytes()).as_ref(), Some(&clock), "seed {seed}");
        }
        assert!(writes < takes, "seed {seed}: most takes only read the clock ({writes} of {takes} wrote)");
    }
}

#[test]
fn the_clock_starts_afresh_on_an_empty_queue_and_skips_twins() {
    let mut c = Clock::default();
    assert_eq!(c.head_age_ms(100, Some(b"a")), None, "a new clock knows nothing");
    assert!(c.pushed(0, b"a", 100));
    // Same millisecond: dated by the sample.
    assert!(!c.pushed(1, b"b", 100));
    assert!(c.pushed(2, b"c", 105));
    // A twin of a waiting sampled job is not sampled.
    assert!(!c.pushed(3, b"a", 110));
    assert_eq!(c.took(b"a"), (Some(100), true));
    assert_eq!(c.took(b"b"), (Some(100), false));
    assert_eq!(c.head_age_ms(200, Some(b"c")), Some(95));
    assert_eq!(c.head_age_ms(200, None), None);
    // Emptied by another client: the next push finds the queue empty.
    assert!(c.pushed(0, b"d", 300));
    assert_eq!(c.samples.len(), 1);
    assert_eq!(c.took(b"d"), (Some(300), true));
    assert_eq!(Clock::decode(b"junk"), None);
    assert_eq!(Clock::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 2]), None, "too short for its samples");
}

#[test]
fn tallies_are_patched_in_place_and_read_back() {
    let mut t = Tally { processed: 3, failed: 1, ..Tally::default() };
    t.run.add(5);
    t.wait.add(70_000);
    let raw = t.to_bytes();
    assert_eq!(raw.len(), TALLY_BYTES);
    assert_eq!(Tally::decode(&raw).as_ref(), Some(&t));
    let job = Ended { queue: b"q", class: b"C", outcome: Outcome::Failed, run_ms: 9, wait_ms: Some(1) };
    // As a flush patches a record: the job counted in a carried tally, then
    // added to the record's bytes.
    let mut carried = Carried::empty();
    assert!(carried.count(&job));
    let mut patched = raw.clone();
    carried.add_to(&mut patched);
    let mut want = t.clone();
    want.failed += 1;
    want.run.add(9);
    want.wait.add(1);
    assert_eq!(Tally::decode(&patched), Some(want));
    // Totals are kept wide (no count stops at u32::MAX) and read the same.
    let mut wide = t.clone();
    wide.run.counts[3] = u64::from(u32::MAX) + 7;
    assert_eq!(Tally::decode(&wide.to_wide_bytes()), Some(wide));
    // Counts past u32 stay at its maximum.
    let mut big = Tally::default();
    big.run.counts[0] = u64::from(u32::MAX) + 5;
    assert_eq!(Tally::decode(&big.to_bytes()).map(|t| t.run.counts[0]), Some(u64::from(u32::MAX)));
}

#[test]
fn a_push_after_a_look_in_the_same_millisecond_leaves_the_clock_unread() {
    let mut s = MemStore::at(T0);
    let key = ns().clock(b"q");
    enq(&mut s, b"q", b"C");
    assert_eq!(s.clocks_checked.get(&key), Some(&T0), "the push noted its look");
    // Bytes no clock decodes: a push that read them would start afresh.
    s.apply(&[Effect::Set { key: key.clone(), value: b"junk".to_vec() }]);
    enq(&mut s, b"q", b"C");
    assert_eq!(s.string(&key).as_deref(), Some(&b"junk"[..]), "same millisecond: not read, not written");
    s.now += 1;
    enq(&mut s, b"q", b"C");
    assert!(s.string(&key).as_deref().and_then(Clock::decode).is_some(), "the next millisecond reads it");
    // An empty queue restarts the clock even in a millisecond already looked at.
    for i in 0..3 {
        pop(&mut s, format!("w{i}").as_bytes(), b"q");
    }
    enq(&mut s, b"q", b"C");
    let clock = Clock::decode(&s.string(&key).expect("clock")).expect("decodes");
    assert_eq!((clock.since, clock.samples.len()), (s.now, 1));
}

#[test]
fn waits_read_through_the_look_memo_are_never_shorter_than_true_ones() {
    for seed in 0..40u64 {
        let mut next = xorshift(seed);
        let mut s = MemStore::at(T0);
        let mut arrivals = std::collections::VecDeque::new();
        for step in 0..300u64 {
            // Mostly within one millisecond, as on a busy queue.
            s.now += u64::from(next() % 4 == 0);
            // Payloads of their own (twins waiting at once share a digest:
            // the README's caveat).
            if next() % 2 == 0 {
                enq(&mut s, b"q", b"C");
                arrivals.push_back(s.now);
            } else if let Some(arrived) = arrivals.pop_front() {
                let w = format!("w{step}");
                pop(&mut s, w.as_bytes(), b"q");
                let wait = entry(&s, w.as_bytes()).wait_ms;
                let truth = s.now - arrived;
                assert!(wait.is_some_and(|w| w >= truth), "seed {seed} step {step}: wait {wait:?} < {truth}");
            }
        }
    }
}

fn ack_pop(s: &mut MemStore, w: &[u8], q: &[u8], d: u64) -> Option<u64> {
    match run(s, |s| work::ack_and_pop(s, &ns(), w, &[q], &LEASE, d)) {
        Reply::Array(v) => match v.get(2) {
            Some(Reply::Int(n)) => Some(u64::try_from(*n).expect("id")),
            other => panic!("{other:?}"),
        },
        Reply::Nil => None,
        other => panic!("{other:?}"),
    }
}

fn flush_members(s: &mut MemStore) -> Vec<(Vec<u8>, f64)> {
    s.zset_range(&ns().metrics_flush(), f64::NEG_INFINITY, f64::INFINITY, 100).expect("zset")
}

/// A worker's jobs are counted in its in-flight entry, which every report
/// rewrites anyway; their minute's record is written when a job of another
/// pair or minute comes, when a job comes after the tally's due time
/// (`FLUSH_MS` after its first), or by the timer at that time.
#[test]
fn a_workers_jobs_reach_their_record_about_once_a_second() {
    let mut s = MemStore::at(T0);
    for _ in 0..5 {
        enq(&mut s, b"q", b"C");
    }
    let key = minute_key(T0, b"q", b"C");
    let mut d = pop(&mut s, b"w", b"q");
    for i in 1..4u64 {
        s.now = T0 + 100 * i;
        d = ack_pop(&mut s, b"w", b"q", d).expect("a job");
    }
    assert_eq!(s.string(&key), None, "not written per job");
    let open = entry(&s, b"w").open.expect("carried by the entry");
    assert_eq!((open.minute, open.due_ms), (minute_of(T0), T0 + 100 + FLUSH_MS));
    assert_eq!(open.tally.tally().map(|t| t.processed), Some(3));
    assert_eq!(flush_members(&mut s), vec![(b"w".to_vec(), (T0 + 100 + FLUSH_MS) as f64)]);
    // Past its due time: the next job's report writes the three, and starts
    // a tally of its own.
    s.now = T0 + 100 + FLUSH_MS;
    d = ack_pop(&mut s, b"w", b"q", d).expect("a job");
    assert_eq!(tally(&s, &key).processed, 3);
    assert_eq!(entry(&s, b"w").open.map(|t| t.due_ms), Some(s.now + FLUSH_MS));
    enq(&mut s, b"q", b"D");
    s.now += 10;
    d = ack_pop(&mut s, b"w", b"q", d).expect("the D job");
    assert_eq!(tally(&s, &key).processed, 3, "the fifth C job is in the tally");
    // A job of another class: the open tally goes to its record first. The
    // last report leaves the D job's tally in the tombstone; the timer
    // writes it by its due time and leaves the tombstone's TTL as it was.
    s.now += 10;
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    assert_eq!(tally(&s, &key).processed, 5);
    let index = ns().inflight(b"w");
    let ttl = s.expires.get(&index).copied();
    assert!(ttl.is_some(), "a tombstone");
    let due = entry(&s, b"w").open.expect("carried").due_ms;
    s.now = due - 1;
    timer(&mut s);
    assert_eq!(s.string(&minute_key(T0, b"q", b"D")), None, "not before it is due");
    s.now = due;
    timer(&mut s);
    assert_eq!(tally(&s, &minute_key(T0, b"q", b"D")).processed, 1);
    assert_eq!(entry(&s, b"w").open, None);
    assert_eq!(s.expires.get(&index).copied(), ttl);
    assert!(flush_members(&mut s).is_empty());
}

/// `tq.metrics-flush-ms` sets how long a tally gathers jobs; a minute's
/// end still bounds it (the timer closes a minute once no tally of it is
/// due).
#[test]
fn the_flush_interval_is_a_setting_bounded_by_the_minute() {
    for (flush_ms, due) in [(10_000, T0 + 100 + 10_000), (60_000, T0 + MINUTE_MS - 1)] {
        let mut s = MemStore::at(T0);
        s.metrics_flush_ms = Some(flush_ms);
        enq(&mut s, b"q", b"C");
        enq(&mut s, b"q", b"C");
        let d = pop(&mut s, b"w", b"q");
        s.now = T0 + 100;
        let d = ack_pop(&mut s, b"w", b"q", d).expect("a job");
        assert_eq!(entry(&s, b"w").open.map(|t| t.due_ms), Some(due), "flush-ms {flush_ms}");
        assert_eq!(flush_members(&mut s), vec![(b"w".to_vec(), due as f64)]);
        // Not written before it is due, by a report or by the timer.
        s.now = due - 1;
        timer(&mut s);
        run(&mut s, |s| work::ack(s, &ns(), b"w", d));
        assert_eq!(s.string(&minute_key(T0, b"q", b"C")), None, "flush-ms {flush_ms}: written early");
        s.now = due;
        timer(&mut s);
        assert_eq!(tally(&s, &minute_key(T0, b"q", b"C")).processed, 2, "flush-ms {flush_ms}");
    }
}

/// A worker that stops (`TQ.UNTRACK`) or is cleaned up (`TQ.FORCECLEAN`)
/// loses its entry: the jobs its tally holds are written first.
#[test]
fn a_workers_entry_never_goes_with_jobs_it_counted() {
    let mut s = MemStore::at(T0);
    for w in [&b"a"[..], b"b"] {
        enq(&mut s, b"q", b"C");
        let d = pop(&mut s, w, b"q");
        run(&mut s, |s| work::ack(s, &ns(), w, d));
    }
    let noted = |s: &mut MemStore| flush_members(s).into_iter().map(|(w, _)| w).collect::<Vec<_>>();
    assert_eq!(noted(&mut s), [b"a".to_vec(), b"b".to_vec()]);
    run(&mut s, |s| crate::inspect::untrack(s, &ns(), b"a", b"q"));
    assert_eq!(tally(&s, &minute_key(T0, b"q", b"C")).processed, 1);
    // Its note for the timer goes with the tally: nothing is left to write.
    assert_eq!(noted(&mut s), [b"b".to_vec()]);
    run(&mut s, |s| crate::inspect::force_clean(s, &ns(), b"b"));
    assert_eq!(tally(&s, &minute_key(T0, b"q", b"C")).processed, 2);
    assert!(s.string(&ns().inflight(b"a")).is_none() && s.string(&ns().inflight(b"b")).is_none());
    assert!(noted(&mut s).is_empty());
}

/// A forged open tally (anyone with write access to the namespace can
/// write an entry) names a pair and a minute: its record is made in this
/// namespace, and bytes that are not a tally count nothing.
#[test]
fn a_forged_open_tally_writes_only_in_its_namespace() {
    let mut s = MemStore::at(T0);
    enq(&mut s, b"q", b"C");
    let d = pop(&mut s, b"w", b"q");
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    let mut e = entry(&s, b"w");
    let t = e.open.take().expect("open");
    e.open = Some(OpenTally::new(t.minute, t.due_ms, b"../../other:secret", b"\"]:x", t.tally));
    s.apply(&[Effect::Set { key: ns().inflight(b"w"), value: e.encode() }]);
    s.now += FLUSH_MS;
    let (effects, _) = flush_due(&mut s, &ns(), 10).expect("plans");
    for e in &effects {
        for k in e.keys() {
            assert!(k.starts_with(b"resque:tq:"), "{}", String::from_utf8_lossy(k));
        }
    }
    s.apply(&effects);
    let mut e = entry(&s, b"w");
    e.open = Some(OpenTally::new(0, 0, b"q", b"C", Carried::Block([7; TALLY_BYTES])));
    s.apply(&[
        Effect::Set { key: ns().inflight(b"w"), value: e.encode() },
        Effect::ZAdd { key: ns().metrics_flush(), score: 0, member: b"w".to_vec() },
    ]);
    timer(&mut s);
    assert_eq!(s.string(&minute_key(0, b"q", b"C")), None);
    assert_eq!(entry(&s, b"w").open, None);
}

/// A seeded random walk of enqueues, takes, ACKs, takes with ACK, FAILs,
/// leases running out, stops and the timer, over two classes, three
/// workers and several minutes: once the timer has written every tally,
/// the minutes' records hold exactly the ledger of jobs that ended (how,
/// and how long they ran), and no tally is left open.
#[test]
fn the_records_equal_the_ledger_whatever_the_order() {
    for seed in 0..60u64 {
        let mut next = xorshift(seed);
        let mut s = MemStore::at(T0);
        let workers: [&[u8]; 3] = [b"w0", b"w1", b"w2"];
        let mut held: [Option<u64>; 3] = [None; 3];
        let (mut processed, mut failed, mut run_sum) = (0u64, 0u64, 0u64);
        let mut popped_at = [0u64; 3];
        for step in 0..400 {
            s.now += next() % 700;
            let i = usize::try_from(next() % 3).expect("small");
            let w = workers[i];
            match next() % 8 {
                0 | 1 => enq(&mut s, b"q", if next() % 2 == 0 { b"A" } else { b"B" }),
                2 if held[i].is_none() => {
                    if let Reply::Array(v) = run(&mut s, |s| work::pop(s, &ns(), w, &[b"q"], &LEASE)) {
                        if let Some(Reply::Int(d)) = v.get(2) {
                            held[i] = Some(u64::try_from(*d).expect("id"));
                            popped_at[i] = s.now;
                        }
                    }
                }
                3 if held[i].is_some() => {
                    let d = held[i].take().expect("held");
                    run(&mut s, |s| work::ack(s, &ns(), w, d));
                    processed += 1;
                    run_sum += s.now - popped_at[i];
                }
                4 if held[i].is_some() => {
                    let d = held[i].take().expect("held");
                    processed += 1;
                    run_sum += s.now - popped_at[i];
                    held[i] = ack_pop(&mut s, w, b"q", d);
                    popped_at[i] = s.now;
                }
                5 if held[i].is_some() => {
                    let d = held[i].take().expect("held");
                    run(&mut s, |s| work::fail(s, &ns(), w, d, b"E", b"x", None, None));
                    failed += 1;
                    run_sum += s.now - popped_at[i];
                }
                6 if held[i].is_some() && next() % 4 == 0 => {
                    // Its lease runs out: failed for good (one delivery).
                    s.now = s.now.max(popped_at[i] + LEASE.lease_ms);
                    run(&mut s, |s| work::expire_leases(s, &ns(), 1, 10));
                    for (j, h) in held.iter_mut().enumerate() {
                        if h.is_some() && entry(&s, workers[j]).ended.is_some() {
                            *h = None;
                            failed += 1;
                            run_sum += s.now - popped_at[j];
                        }
                    }
                }
                7 if held[i].is_none() && next() % 4 == 0 => {
                    run(&mut s, |s| crate::inspect::untrack(s, &ns(), w, b"q"));
                }
                _ => timer(&mut s),
            }
            assert!(s.data.keys().all(|k| k.starts_with(b"resque:")), "seed {seed} step {step}");
        }
        // Whatever is still held ends; then the timer writes every tally.
        for (i, w) in workers.iter().enumerate() {
            if let Some(d) = held[i] {
                run(&mut s, |s| work::ack(s, &ns(), w, d));
                processed += 1;
                run_sum += s.now - popped_at[i];
            }
        }
        s.now += 2 * MINUTE_MS;
        timer(&mut s);
        let mut sum = Tally::default();
        for (k, v) in &s.data {
            if k.starts_with(b"resque:tq:m:") {
                if let crate::store::MemValue::String(raw) = v {
                    sum.merge(&Tally::decode(raw).expect("a tally"));
                }
            }
        }
        assert_eq!((sum.processed, sum.failed), (processed, failed), "seed {seed}");
        assert_eq!((sum.run.count(), sum.run.sum_ms), (processed + failed, run_sum), "seed {seed}");
        assert!(flush_members(&mut s).is_empty(), "seed {seed}");
        for w in workers {
            if let Some(raw) = s.string(&ns().inflight(w)) {
                assert_eq!(InFlight::decode(&raw).and_then(|e| e.open), None, "seed {seed}");
            }
        }
    }
}

/// A seeded sequence of jobs counted in carried tallies, each replaced by a
/// fresh one when a job's bucket finds no slot: together they count what a
/// ledger of the same jobs counts, and a carried tally stays under half a
/// record's size.
#[test]
fn carried_tallies_count_what_a_ledger_counts() {
    const { assert!(CARRIED_BYTES * 2 < TALLY_BYTES) };
    for seed in 0..300u64 {
        let mut next = xorshift(seed);
        let mut ledger = Tally::default();
        let mut sum = Tally::default();
        let mut open = Carried::empty();
        let mut started = 1;
        // Narrow spreads (most carried tallies never fill) and wide ones.
        let spread = [4u64, 64, 1 << 24][usize::try_from(seed % 3).unwrap_or(0)];
        for _ in 0..200 {
            let run_ms = next() % spread;
            let wait_ms = (next() % 3 > 0).then(|| next() % spread);
            let outcome = if next() % 5 == 0 { Outcome::Failed } else { Outcome::Processed };
            let job = Ended { queue: b"q", class: b"C", outcome, run_ms, wait_ms };
            if outcome == Outcome::Processed {
                ledger.processed += 1;
            } else {
                ledger.failed += 1;
            }
            ledger.run.add(run_ms);
            if let Some(w) = wait_ms {
                ledger.wait.add(w);
            }
            if !open.count(&job) {
                sum.merge(&open.tally().expect("counts"));
                open = Carried::empty();
                started += 1;
                assert!(open.count(&job), "seed {seed}: a fresh tally takes any job");
            }
        }
        sum.merge(&open.tally().expect("counts"));
        assert_eq!(sum, ledger, "seed {seed}");
        if spread == 4 {
            assert_eq!(started, 1, "seed {seed}: three buckets fit one tally");
        }
    }
}

/// A worker's jobs in more buckets than its tally has slots: the open tally
/// goes to its record and the job starts a new one; nothing is lost.
#[test]
fn a_job_with_no_slot_left_starts_a_new_tally() {
    let mut s = MemStore::at(T0);
    for _ in 0..=SLOTS {
        enq(&mut s, b"q", b"C");
    }
    let mut d = pop(&mut s, b"w", b"q");
    // Run times 1, 2, 4, ... ms: each job in a bucket of its own.
    for i in 0..SLOTS {
        s.now += 1 << i;
        d = ack_pop(&mut s, b"w", b"q", d).expect("a job");
    }
    let key = minute_key(T0, b"q", b"C");
    assert_eq!(s.string(&key), None, "six buckets fit");
    assert_eq!(entry(&s, b"w").open.and_then(|t| t.tally.tally()).map(|t| t.processed), Some(SLOTS as u64));
    s.now += 1 << SLOTS;
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    let written = tally(&s, &key);
    assert_eq!(written.processed, SLOTS as u64, "the full tally went to its record");
    let open = entry(&s, b"w").open.and_then(|t| t.tally.tally()).expect("a new tally");
    assert_eq!(open.processed, 1);
    assert_eq!(open.run.counts.iter().position(|c| *c > 0), Some(SLOTS + 1), "the seventh job's bucket");
}

/// An entry of version 7 carries its tally in a record's form: read as a
/// block, it goes whole to its record at the worker's next report, which
/// starts a carried tally.
#[test]
fn a_version_7_tally_goes_to_its_record_at_the_next_report() {
    let mut s = MemStore::at(T0);
    enq(&mut s, b"q", b"C");
    enq(&mut s, b"q", b"C");
    let d = pop(&mut s, b"w", b"q");
    s.now += 5;
    let d = ack_pop(&mut s, b"w", b"q", d).expect("a job");
    let mut e = entry(&s, b"w");
    let t = e.open.take().expect("open");
    let mut old = Tally { processed: 40, failed: 2, ..Tally::default() };
    old.run.add(3);
    old.wait.add(900);
    let block: [u8; TALLY_BYTES] = old.to_bytes().try_into().expect("a record's size");
    e.open = Some(OpenTally::new(t.minute, t.due_ms, b"q", b"C", Carried::Block(block)));
    // As version 7 wrote it: the body of today's entry with the block's
    // bytes where the carried tally goes (no variant tag).
    let today = e.encode();
    let tag = today.len() - TALLY_BYTES - 1;
    assert_eq!(today.get(tag), Some(&0), "the block variant's tag");
    let v7 = [&[7u8][..], &today[1..tag], &today[tag + 1..]].concat();
    let read = InFlight::decode(&v7).expect("version 7 reads");
    assert_eq!(read.open.as_ref().map(|t| &t.tally), Some(&Carried::Block(block)));
    s.apply(&[Effect::Set { key: ns().inflight(b"w"), value: v7 }]);
    s.now += 5;
    run(&mut s, |s| work::ack(s, &ns(), b"w", d));
    assert_eq!(tally(&s, &minute_key(T0, b"q", b"C")), old, "the block, whole");
    let open = entry(&s, b"w").open.expect("a carried tally");
    assert!(matches!(open.tally, Carried::Slots(_)));
    assert_eq!(open.tally.tally().map(|t| t.processed), Some(1));
}

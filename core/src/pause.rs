//! `TQ.PAUSE` / `TQ.RESUME` / `TQ.PAUSED`: a paused queue keeps its jobs
//! and accepts new ones, but no tq take (TQ.POP, TQ.BPOP, POP ... ACK) takes
//! from it. The state is the set `<ns>:tq:paused`, an ordinary key, so it
//! replicates and persists like the queues. node-resque workers do not read
//! it and keep taking from a paused queue.

use crate::error::Result;
use crate::keys::Ns;
use crate::queue::check_queue;
use crate::store::{Effect, Kind, Plan, Reply, Store};

/// `TQ.PAUSE <ns> <queue>`: 1 when paused now, 0 when it already was.
pub fn pause(s: &mut impl Store, ns: &Ns<'_>, queue: &[u8]) -> Result<Plan> {
    check_queue(queue)?;
    let key = ns.paused();
    s.expect_kind(&key, Kind::Set)?;
    if s.set_contains(&key, queue)? {
        return Ok(Plan::new(Reply::Int(0)));
    }
    Ok(Plan { effects: vec![Effect::SAdd { key, member: queue.to_vec() }], reply: Reply::Int(1) })
}

/// `TQ.RESUME <ns> <queue>`: 1 when resumed, 0 when it was not paused.
pub fn resume(s: &mut impl Store, ns: &Ns<'_>, queue: &[u8]) -> Result<Plan> {
    check_queue(queue)?;
    let key = ns.paused();
    s.expect_kind(&key, Kind::Set)?;
    if !s.set_contains(&key, queue)? {
        return Ok(Plan::new(Reply::Int(0)));
    }
    Ok(Plan { effects: vec![Effect::SRem { key, member: queue.to_vec() }], reply: Reply::Int(1) })
}

/// `TQ.PAUSED <ns>`: the paused queues, sorted.
pub fn list(s: &mut impl Store, ns: &Ns<'_>) -> Result<Plan> {
    let mut names = paused(s, ns)?;
    names.sort();
    Ok(Plan::new(Reply::Array(names.into_iter().map(Reply::Bulk).collect())))
}

/// The paused queues, in one read: a key lookup that finds nothing when no
/// queue is paused. A key of another type is refused (WRONGTYPE).
pub fn paused(s: &mut impl Store, ns: &Ns<'_>) -> Result<Vec<Vec<u8>>> {
    s.set_members(&ns.paused())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::enqueue;
    use crate::store::MemStore;
    use crate::work::{ack_and_pop, pop, PopOptions};

    const OPTS: PopOptions = PopOptions { joblock: None, lease_ms: 1_000 };

    fn ns() -> Ns<'static> {
        Ns::new(b"resque", false).expect("valid namespace")
    }

    fn run(s: &mut MemStore, f: impl FnOnce(&mut MemStore) -> Result<Plan>) -> Result<Reply> {
        let plan = f(s)?;
        s.apply(&plan.effects);
        Ok(plan.reply)
    }

    fn queue_of(r: &Reply) -> Option<Vec<u8>> {
        match r {
            Reply::Array(v) => match v.first() {
                Some(Reply::Bulk(q)) => Some(q.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    #[test]
    fn a_paused_queue_is_skipped_by_every_take_until_resumed() {
        let mut s = MemStore::at(0);
        for q in [&b"a"[..], b"b"] {
            run(&mut s, |s| enqueue(s, &ns(), q, b"c", Some(b"[1]"), None)).expect("enqueued");
            run(&mut s, |s| enqueue(s, &ns(), q, b"c", Some(b"[2]"), None)).expect("enqueued");
        }
        assert_eq!(run(&mut s, |s| pause(s, &ns(), b"a")), Ok(Reply::Int(1)));
        assert_eq!(run(&mut s, |s| pause(s, &ns(), b"a")), Ok(Reply::Int(0)));
        assert_eq!(run(&mut s, |s| list(s, &ns())), Ok(Reply::Array(vec![Reply::Bulk(b"a".to_vec())])));
        // Named, then '*': 'a' comes first in both orders, yet 'b' is taken.
        let r = run(&mut s, |s| pop(s, &ns(), b"w1", &[b"a", b"b"], &OPTS)).expect("pops");
        assert_eq!(queue_of(&r), Some(b"b".to_vec()));
        let r = run(&mut s, |s| pop(s, &ns(), b"w2", &[b"*"], &OPTS)).expect("pops");
        assert_eq!(queue_of(&r), Some(b"b".to_vec()));
        assert_eq!(run(&mut s, |s| pop(s, &ns(), b"w3", &[b"a"], &OPTS)), Ok(Reply::Nil));
        // POP ... ACK completes and takes nothing from the paused queue.
        assert_eq!(run(&mut s, |s| ack_and_pop(s, &ns(), b"w1", &[b"a"], &OPTS, 1)), Ok(Reply::Nil));
        assert_eq!(s.list(b"resque:queue:a").len(), 2);
        assert_eq!(run(&mut s, |s| resume(s, &ns(), b"a")), Ok(Reply::Int(1)));
        assert_eq!(run(&mut s, |s| resume(s, &ns(), b"a")), Ok(Reply::Int(0)));
        assert_eq!(s.members(b"resque:tq:paused"), Vec::<Vec<u8>>::new());
        let r = run(&mut s, |s| pop(s, &ns(), b"w3", &[b"a"], &OPTS)).expect("pops");
        assert_eq!(queue_of(&r), Some(b"a".to_vec()));
    }

    #[test]
    fn bad_names_and_types_are_refused() {
        let mut s = MemStore::at(0);
        assert!(run(&mut s, |s| pause(s, &ns(), b"*")).is_err());
        assert!(run(&mut s, |s| pause(s, &ns(), b"")).is_err());
        s.apply(&[Effect::Set { key: ns().paused(), value: b"x".to_vec() }]);
        assert!(run(&mut s, |s| pause(s, &ns(), b"a")).is_err());
        assert!(run(&mut s, |s| pop(s, &ns(), b"w", &[b"a"], &OPTS)).is_err());
    }
}

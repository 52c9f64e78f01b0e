use super::*;
use crate::store::{MemStore, MemValue};

fn ns() -> Ns<'static> {
    Ns::new(b"resque", false).expect("valid namespace")
}

fn run(s: &mut MemStore, f: impl FnOnce(&mut MemStore) -> Result<Plan>) -> Result<Reply> {
    let plan = f(s)?;
    s.apply(&plan.effects);
    Ok(plan.reply)
}

fn state(r: &Reply) -> (String, i64) {
    match r {
        Reply::Array(v) => match v.as_slice() {
            [Reply::Bulk(s), Reply::Int(n)] => (String::from_utf8_lossy(s).into_owned(), *n),
            other => panic!("bad reply {other:?}"),
        },
        other => panic!("bad reply {other:?}"),
    }
}

const K: Place<'static> = Place::Key(b"job-1");
const F: Place<'static> = Place::Field { hash: b"tasks", field: b"job-1" };

#[test]
fn one_owner_acquires_others_see_held_then_done() {
    for place in [K, F] {
        let mut s = MemStore::at(1_000);
        let a = state(&run(&mut s, |s| lock(s, &ns(), &place, b"a", 500)).expect("lock"));
        assert_eq!(a, ("acquired".into(), 1));
        // Same owner again: same token, nothing written.
        let again = lock(&mut s, &ns(), &place, b"a", 500).expect("lock");
        assert!(again.effects.is_empty());
        assert_eq!(state(&again.reply), ("acquired".into(), 1));
        s.now = 1_200;
        assert_eq!(state(&run(&mut s, |s| lock(s, &ns(), &place, b"b", 500)).expect("lock")), ("held".into(), 300));
        run(&mut s, |s| unlock(s, &ns(), &place, b"a", 1, true)).expect("unlock ok");
        // Done stays visible for a full ttl from the report, then frees.
        s.now = 1_699;
        assert_eq!(state(&run(&mut s, |s| lock(s, &ns(), &place, b"b", 500)).expect("lock")), ("done".into(), 0));
        s.now = 1_700;
        assert_eq!(state(&run(&mut s, |s| lock(s, &ns(), &place, b"b", 500)).expect("lock")), ("acquired".into(), 2));
    }
}

#[test]
fn expiry_and_fail_let_another_owner_take_over_with_a_larger_token() {
    for place in [K, F] {
        let mut s = MemStore::at(0);
        run(&mut s, |s| lock(s, &ns(), &place, b"a", 100)).expect("lock");
        s.now = 100; // expired: nobody reported
        assert_eq!(state(&run(&mut s, |s| lock(s, &ns(), &place, b"b", 100)).expect("lock")), ("acquired".into(), 2));
        // The stale holder cannot report or renew.
        assert!(matches!(unlock(&mut s, &ns(), &place, b"a", 1, true), Err(TqError::NotOwner(_))));
        assert!(matches!(renew(&mut s, &ns(), &place, b"a", 1, 100), Err(TqError::NotOwner(_))));
        assert!(matches!(unlock(&mut s, &ns(), &place, b"b", 1, true), Err(TqError::NotOwner(_))));
        run(&mut s, |s| unlock(s, &ns(), &place, b"b", 2, false)).expect("fail");
        assert_eq!(state(&run(&mut s, |s| lock(s, &ns(), &place, b"a", 100)).expect("lock")), ("acquired".into(), 3));
        s.now = 1_000;
        assert!(matches!(unlock(&mut s, &ns(), &place, b"a", 3, true), Err(TqError::NotHeld { .. })));
    }
}

#[test]
fn renew_extends_a_held_lock() {
    for place in [K, F] {
        let mut s = MemStore::at(0);
        run(&mut s, |s| lock(s, &ns(), &place, b"a", 100)).expect("lock");
        s.now = 90;
        run(&mut s, |s| renew(s, &ns(), &place, b"a", 1, 100)).expect("renew");
        s.now = 150;
        assert_eq!(state(&run(&mut s, |s| lock(s, &ns(), &place, b"b", 100)).expect("lock")), ("held".into(), 40));
        // Done locks are not renewed.
        run(&mut s, |s| unlock(s, &ns(), &place, b"a", 1, true)).expect("ok");
        assert!(matches!(renew(&mut s, &ns(), &place, b"a", 1, 100), Err(TqError::NotHeld { .. })));
    }
}

#[test]
fn string_locks_carry_their_expiry_and_tokens_survive_it() {
    let mut s = MemStore::at(0);
    run(&mut s, |s| lock(s, &ns(), &K, b"a", 100)).expect("lock");
    assert_eq!(s.expires.get(&b"resque:tq:lock:job-1"[..]), Some(&100));
    s.now = 100;
    assert!(s.get(b"resque:tq:lock:job-1").expect("read").is_none(), "the key itself expired");
    assert_eq!(state(&run(&mut s, |s| lock(s, &ns(), &K, b"b", 100)).expect("lock")).1, 2);
}

#[test]
fn hash_locks_expire_with_their_hash_and_swept_fields() {
    let mut s = MemStore::at(0);
    let f = |name: &'static [u8]| Place::Field { hash: b"tasks", field: name };
    run(&mut s, |s| lock(s, &ns(), &f(b"x"), b"a", 100)).expect("lock");
    run(&mut s, |s| lock(s, &ns(), &f(b"y"), b"a", 300)).expect("lock");
    assert_eq!(s.expires.get(&b"resque:tq:hlock:tasks"[..]), Some(&300));
    s.now = 150;
    // Any access removes fields that expired.
    run(&mut s, |s| lock(s, &ns(), &f(b"z"), b"a", 50)).expect("lock");
    let fields = match s.data.get(&b"resque:tq:hlock:tasks"[..]) {
        Some(MemValue::Hash(h)) => {
            let mut k: Vec<_> = h.keys().cloned().collect();
            k.sort();
            k
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(fields, vec![b"y".to_vec(), b"z".to_vec()]);
    assert_eq!(s.expires.get(&b"resque:tq:hlock:tasks"[..]), Some(&300), "TTL only grows");
    s.now = 300;
    assert!(s.hash_get(b"resque:tq:hlock:tasks", b"y").expect("read").is_none(), "the whole hash expired");
}

#[test]
fn bad_input_is_refused() {
    let mut s = MemStore::at(0);
    assert!(lock(&mut s, &ns(), &K, b"a", 0).is_err());
    assert!(lock(&mut s, &ns(), &K, b"a", MAX_TTL_MS + 1).is_err());
    assert!(lock(&mut s, &ns(), &K, b"", 10).is_err());
    assert!(lock(&mut s, &ns(), &Place::Key(b""), b"a", 10).is_err());
    s.data.insert(b"resque:tq:lock:job-1".to_vec(), MemValue::List(Default::default()));
    assert!(matches!(lock(&mut s, &ns(), &K, b"a", 10), Err(TqError::WrongType { .. })));
    s.data.insert(b"resque:tq:lock:job-1".to_vec(), MemValue::String(b"garbage".to_vec()));
    assert!(matches!(lock(&mut s, &ns(), &K, b"a", 10), Err(TqError::Corrupt { .. })));
    assert!(matches!(unlock(&mut s, &ns(), &Place::Key(b"none"), b"a", 1, true), Err(TqError::NotHeld { .. })));
}

#[test]
fn leader_lock_is_owner_checked() {
    let mut s = MemStore::at(0);
    assert_eq!(run(&mut s, |s| leader(s, &ns(), b"s1", 1000)), Ok(Reply::Int(1)));
    assert_eq!(run(&mut s, |s| leader(s, &ns(), b"s2", 1000)), Ok(Reply::Int(0)));
    s.now = 900;
    assert_eq!(run(&mut s, |s| leader(s, &ns(), b"s1", 1000)), Ok(Reply::Int(1)), "renewed");
    s.now = 1500;
    assert_eq!(run(&mut s, |s| leader(s, &ns(), b"s2", 1000)), Ok(Reply::Int(0)), "still s1's after renewal");
    assert_eq!(run(&mut s, |s| resign(s, &ns(), b"s2")), Ok(Reply::Int(0)));
    assert_eq!(run(&mut s, |s| resign(s, &ns(), b"s1")), Ok(Reply::Int(1)));
    assert_eq!(run(&mut s, |s| leader(s, &ns(), b"s2", 1000)), Ok(Reply::Int(1)));
    s.now = 2600;
    assert_eq!(run(&mut s, |s| leader(s, &ns(), b"s3", 1000)), Ok(Reply::Int(1)), "expired leader replaced");
}

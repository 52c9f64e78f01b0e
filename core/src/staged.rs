//! A [`Store`] seen as it will be after some planned effects, so that one
//! command can plan a second step on top of its first (`TQ.POP ... ACK`
//! plans the pop as if the ACK were already applied) and still apply
//! everything at once, after every check passed.
//!
//! Only deletions are modelled (`Del` keys, `HDel` fields): that is all an
//! ACK does to the keys a pop reads. A read of a key that an effect changed
//! in any other way is refused with an internal error rather than answered
//! from stale data.

use crate::error::{Result, TqError};
use crate::store::{Effect, Kind, Store};

pub struct Staged<'a, S: Store> {
    base: &'a mut S,
    gone: Vec<Vec<u8>>,
    gone_fields: Vec<(Vec<u8>, Vec<u8>)>,
    changed: Vec<Vec<u8>>,
}

impl<'a, S: Store> Staged<'a, S> {
    pub fn new(base: &'a mut S, effects: &[Effect]) -> Self {
        let mut st = Staged { base, gone: Vec::new(), gone_fields: Vec::new(), changed: Vec::new() };
        for e in effects {
            match e {
                Effect::Del { keys } => st.gone.extend(keys.iter().cloned()),
                Effect::HDel { key, field } => st.gone_fields.push((key.clone(), field.clone())),
                Effect::HDelMany { key, fields } => {
                    st.gone_fields.extend(fields.iter().map(|f| (key.clone(), f.clone())));
                }
                other => st.changed.extend(other.keys().map(<[u8]>::to_vec)),
            }
        }
        st
    }

    /// Whether `key` is deleted by the staged effects; an error if it is
    /// changed in a way this view does not model.
    fn gone(&self, key: &[u8]) -> Result<bool> {
        if self.changed.iter().any(|k| k.as_slice() == key) {
            return Err(TqError::Internal(format!(
                "planned a read of {} after a change to it in the same step",
                crate::error::show(key)
            )));
        }
        Ok(self.gone.iter().any(|k| k.as_slice() == key))
    }

    fn field_gone(&self, key: &[u8], field: &[u8]) -> bool {
        self.gone_fields.iter().any(|(k, f)| k.as_slice() == key && f.as_slice() == field)
    }
}

impl<S: Store> Store for Staged<'_, S> {
    fn now_ms(&self) -> u64 {
        self.base.now_ms()
    }
    fn kind(&mut self, key: &[u8]) -> Result<Kind> {
        if self.gone(key)? {
            return Ok(Kind::None);
        }
        self.base.kind(key)
    }
    fn list_len(&mut self, key: &[u8]) -> Result<usize> {
        if self.gone(key)? {
            return Ok(0);
        }
        self.base.list_len(key)
    }
    fn list_get(&mut self, key: &[u8], index: usize) -> Result<Option<Vec<u8>>> {
        if self.gone(key)? {
            return Ok(None);
        }
        self.base.list_get(key, index)
    }
    fn set_contains(&mut self, key: &[u8], member: &[u8]) -> Result<bool> {
        if self.gone(key)? {
            return Ok(false);
        }
        self.base.set_contains(key, member)
    }
    fn set_members(&mut self, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        if self.gone(key)? {
            return Ok(Vec::new());
        }
        self.base.set_members(key)
    }
    fn zset_range_from(
        &mut self,
        key: &[u8],
        min: f64,
        max: f64,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, f64)>> {
        if self.gone(key)? {
            return Ok(Vec::new());
        }
        self.base.zset_range_from(key, min, max, skip, limit)
    }
    fn hash_get(&mut self, key: &[u8], field: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.gone(key)? || self.field_gone(key, field) {
            return Ok(None);
        }
        self.base.hash_get(key, field)
    }
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.gone(key)? {
            return Ok(None);
        }
        self.base.get(key)
    }
    fn get_with<R>(&mut self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        if self.gone(key)? {
            return Ok(None);
        }
        self.base.get_with(key, f)
    }
    fn list_range(&mut self, key: &[u8], start: i64, stop: i64, max: u64) -> Result<Vec<Vec<u8>>> {
        if self.gone(key)? {
            return Ok(Vec::new());
        }
        self.base.list_range(key, start, stop, max)
    }
    fn zset_score(&mut self, key: &[u8], member: &[u8]) -> Result<Option<f64>> {
        if self.gone(key)? {
            return Ok(None);
        }
        self.base.zset_score(key, member)
    }
    fn zset_card(&mut self, key: &[u8]) -> Result<usize> {
        if self.gone(key)? {
            return Ok(0);
        }
        self.base.zset_card(key)
    }
    fn scan(&mut self, cursor: u64, pattern: &[u8], count: u64) -> Result<(u64, Vec<Vec<u8>>)> {
        let (next, keys) = self.base.scan(cursor, pattern, count)?;
        Ok((next, keys.into_iter().filter(|k| !self.gone.contains(k)).collect()))
    }
    fn expire_at(&mut self, key: &[u8]) -> Result<Option<u64>> {
        if self.gone(key)? {
            return Ok(None);
        }
        self.base.expire_at(key)
    }
    fn hash_sample(&mut self, key: &[u8], max: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if self.gone(key)? {
            return Ok(Vec::new());
        }
        let mut fields = self.base.hash_sample(key, max)?;
        fields.retain(|(f, _)| !self.field_gone(key, f));
        Ok(fields)
    }
    fn note(&mut self, event: crate::stats::Event) {
        self.base.note(event);
    }
    /// A type check stays answerable for a key the staged effects change
    /// otherwise: none of them changes a key's type, at most empties it,
    /// and absent passes the check as well as the type does.
    fn expect_kind(&mut self, key: &[u8], want: Kind) -> Result<()> {
        if self.gone.iter().any(|k| k.as_slice() == key) {
            return Ok(());
        }
        match self.base.kind(key)? {
            Kind::None => Ok(()),
            k if k == want => Ok(()),
            k => Err(crate::store::wrong_type(key, k, want)),
        }
    }
    fn keeps_metrics(&self) -> bool {
        self.base.keeps_metrics()
    }
    fn metrics_flush_ms(&self) -> u64 {
        self.base.metrics_flush_ms()
    }
    fn clock_checked(&mut self, key: &[u8]) -> Option<u64> {
        self.base.clock_checked(key)
    }
    fn note_clock_checked(&mut self, key: &[u8], at: u64) {
        self.base.note_clock_checked(key, at);
    }
    fn clock_with<R>(&mut self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        if self.gone(key)? {
            return Ok(None);
        }
        self.base.clock_with(key, f)
    }
    fn clock_written(&mut self, key: &[u8]) {
        self.base.clock_written(key);
    }
    fn will_write(&mut self, key: &[u8]) -> Result<()> {
        self.base.will_write(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn deleted_keys_and_fields_read_as_absent_and_other_changes_are_refused() {
        let mut m = MemStore::at(0);
        let set = |k: &[u8], v: &[u8]| Effect::Set { key: k.to_vec(), value: v.to_vec() };
        let hset = |f: &[u8], v: &[u8]| Effect::HSet { key: b"h".to_vec(), field: f.to_vec(), value: v.to_vec() };
        m.apply(&[set(b"a", b"1"), set(b"b", b"2"), set(b"n", b"5"), hset(b"f", b"x"), hset(b"g", b"y")]);
        let effects = vec![
            Effect::Del { keys: vec![b"a".to_vec()] },
            Effect::HDel { key: b"h".to_vec(), field: b"f".to_vec() },
            Effect::Incr { key: b"n".to_vec() },
        ];
        let mut st = Staged::new(&mut m, &effects);
        assert_eq!(st.get(b"a").unwrap(), None);
        assert_eq!(st.kind(b"a").unwrap(), Kind::None);
        assert_eq!(st.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(st.hash_get(b"h", b"f").unwrap(), None);
        assert_eq!(st.hash_get(b"h", b"g").unwrap(), Some(b"y".to_vec()));
        assert_eq!(st.hash_sample(b"h", 10).unwrap(), vec![(b"g".to_vec(), b"y".to_vec())]);
        assert!(matches!(st.get(b"n"), Err(TqError::Internal(_))));
        // The base store itself is untouched.
        assert_eq!(m.get(b"a").unwrap(), Some(b"1".to_vec()));
    }
}

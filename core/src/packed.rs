//! A list of byte strings kept in one buffer.
//!
//! Promotion moves up to a thousand jobs in one step, and for each it holds
//! the payload read from the bucket and the name of its marker key. As one
//! `Vec<u8>` each, that is two allocations and two frees per job, about a
//! tenth of the step's instructions (more blocks than the module's
//! allocator keeps, so each goes to Redis's). Packed, they cost a few
//! buffer growths per step.

use std::fmt;
use std::ops::Range;

/// The most `push_sizing` reserves ahead of the strings it is given.
const SIZING_CAP: usize = 1 << 20;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Packed {
    bytes: Vec<u8>,
    /// Where each string ends in `bytes` (it starts where the one before
    /// ends).
    ends: Vec<usize>,
}

impl Packed {
    pub fn new() -> Self {
        Packed::default()
    }

    /// Room for `count` strings of `bytes` bytes in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Packed { bytes: Vec::with_capacity(bytes), ends: Vec::with_capacity(count) }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of every string together.
    pub fn total_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn push(&mut self, s: &[u8]) {
        self.push_parts(&[s]);
    }

    /// `push`; the first string pushed also makes room for as many more
    /// of its size (and a quarter) as `with_capacity` counted, up to
    /// `SIZING_CAP` bytes: the strings of one list are mostly alike, and
    /// growing by doubling would copy them all again. The cap keeps one
    /// large first string from reserving a thousand times its size.
    pub fn push_sizing(&mut self, s: &[u8]) {
        if self.ends.is_empty() && self.bytes.capacity() == 0 {
            let each = s.len().saturating_add(s.len() / 4);
            let want = each.saturating_mul(self.ends.capacity().max(1)).min(SIZING_CAP).max(s.len());
            self.bytes.reserve(want);
        }
        self.push(s);
    }

    /// Adds one string made of these parts, in order.
    pub fn push_parts(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.bytes.extend_from_slice(p);
        }
        self.ends.push(self.bytes.len());
    }

    pub fn extend(&mut self, other: &Packed) {
        for s in other {
            self.push(s);
        }
    }

    fn range(&self, i: usize) -> Option<Range<usize>> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(j) => *self.ends.get(j)?,
            None => 0,
        };
        Some(start..end)
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.bytes.get(self.range(i)?)
    }

    pub fn first(&self) -> Option<&[u8]> {
        self.get(0)
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter { bytes: &self.bytes, ends: self.ends.iter(), start: 0 }
    }
}

impl<'a> IntoIterator for &'a Packed {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl From<Vec<Vec<u8>>> for Packed {
    fn from(v: Vec<Vec<u8>>) -> Self {
        let mut p = Packed::with_capacity(v.len(), v.iter().map(Vec::len).sum());
        for s in &v {
            p.push(s);
        }
        p
    }
}

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(String::from_utf8_lossy)).finish()
    }
}

#[derive(Clone)]
pub struct Iter<'a> {
    bytes: &'a [u8],
    ends: std::slice::Iter<'a, usize>,
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let end = *self.ends.next()?;
        let s = self.bytes.get(self.start..end).unwrap_or_default();
        self.start = end;
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_string_and_its_order() {
        let mut p = Packed::with_capacity(1, 1);
        p.push(b"ab");
        p.push(b"");
        p.push_parts(&[b"x:", b"yz"]);
        assert_eq!(p.len(), 3);
        assert_eq!(p.iter().collect::<Vec<_>>(), [&b"ab"[..], b"", b"x:yz"]);
        assert_eq!(
            (p.first(), p.get(1), p.get(2), p.get(3)),
            (Some(&b"ab"[..]), Some(&b""[..]), Some(&b"x:yz"[..]), None)
        );
        assert_eq!(p.total_bytes(), 6);
        let mut q = Packed::from(vec![b"c".to_vec()]);
        q.extend(&p);
        assert_eq!(q, Packed::from(vec![b"c".to_vec(), b"ab".to_vec(), Vec::new(), b"x:yz".to_vec()]));
        assert_eq!(format!("{q:?}"), r#"["c", "ab", "", "x:yz"]"#);
        assert!(Packed::new().is_empty() && Packed::new().first().is_none());
        let mut sized = Packed::with_capacity(4, 0);
        sized.push_sizing(b"abcd");
        assert!(sized.bytes.capacity() >= 20);
        // A large first string reserves no more than the cap beyond itself.
        let big = vec![b'x'; 3 * SIZING_CAP];
        let mut capped = Packed::with_capacity(1000, 0);
        capped.push_sizing(&big);
        assert!(capped.bytes.capacity() < 4 * SIZING_CAP, "{}", capped.bytes.capacity());
        assert_eq!(capped.first(), Some(&big[..]));
        sized.push_sizing(b"efghijklmnopqrstuvwxyz");
        assert_eq!(sized, Packed::from(vec![b"abcd".to_vec(), b"efghijklmnopqrstuvwxyz".to_vec()]));
    }
}

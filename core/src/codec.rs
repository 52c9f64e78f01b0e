//! The stored form of tq's own records (pair locks, recurring tasks, jobs in
//! flight): one version byte, then the record as bincode (standard config).
//! A record type bumps its version when its fields change and keeps reading
//! the older versions it may find in a keyspace (see [`Versioned::upgrade`]).

use bincode::{Decode, Encode};

/// A record stored behind a version byte.
pub trait Versioned: Encode + Decode<()> + Sized {
    /// The version [`Versioned::to_bytes`] writes.
    const VERSION: u8;

    /// Whether the current version may be stored with trailing zero bytes
    /// after its body (see [`crate::records::InFlight::encode_over`]).
    const PADDED: bool = false;

    /// Reads the body of an older `version`; None for versions it does not
    /// know (the default: only the current one exists).
    fn upgrade(_version: u8, _body: &[u8]) -> Option<Self> {
        None
    }

    fn to_bytes(&self) -> Vec<u8> {
        // Through a stack buffer when the body fits: one allocation, where
        // `encode_to_vec` makes and grows its own vector (every take and
        // every report writes an in-flight entry, with a worker's open
        // metrics tally). Encoding plain byte vectors and
        // integers cannot fail otherwise.
        let mut buf = [0u8; 640];
        match bincode::encode_into_slice(self, &mut buf, bincode::config::standard()) {
            Ok(n) => {
                let body = buf.get(..n).unwrap_or_default();
                let mut out = Vec::with_capacity(1 + body.len());
                out.push(Self::VERSION);
                out.extend_from_slice(body);
                out
            }
            Err(_) => {
                let mut out = vec![Self::VERSION];
                if let Ok(body) = bincode::encode_to_vec(self, bincode::config::standard()) {
                    out.extend_from_slice(&body);
                }
                out
            }
        }
    }

    /// None for an unknown version, a malformed body or trailing bytes
    /// (other than a padded version's zeros).
    fn from_bytes(raw: &[u8]) -> Option<Self> {
        let (&version, body) = raw.split_first()?;
        if version != Self::VERSION {
            Self::upgrade(version, body)
        } else if Self::PADDED {
            decode_padded(body)
        } else {
            decode_exact(body)
        }
    }
}

/// A bincode body that must be read to its last byte.
pub fn decode_exact<T: Decode<()>>(body: &[u8]) -> Option<T> {
    let (v, used) = bincode::decode_from_slice::<T, _>(body, bincode::config::standard()).ok()?;
    (used == body.len()).then_some(v)
}

/// A bincode body followed by nothing but zero bytes.
pub fn decode_padded<T: Decode<()>>(body: &[u8]) -> Option<T> {
    let (v, used) = bincode::decode_from_slice::<T, _>(body, bincode::config::standard()).ok()?;
    body.get(used..)?.iter().all(|b| *b == 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::PairLock;
    use crate::records::{Ended, InFlight};
    use crate::recur::Recurring;

    // Bytes as stored by tq before the records shared this codec: they must
    // read back, and be written again byte for byte.
    const PAIRLOCK: &[u8] =
        &[1, 6, 104, 111, 115, 116, 58, 49, 251, 44, 1, 1, 251, 96, 234, 253, 96, 82, 230, 207, 139, 1, 0, 0];
    const RECURRING: &[u8] = &[1, 250, 253, 0, 104, 229, 207, 139, 1, 0, 0];
    const INFLIGHT_V4: &[u8] = &[
        4, 3, 97, 44, 98, 1, 98, 253, 0, 104, 229, 207, 139, 1, 0, 0, 1, 1, 107, 1, 118, 253, 96, 82, 230, 207, 139, 1,
        0, 0, 2, 41, 40, 1, 3, 251, 136, 19,
    ];
    const INFLIGHT_V5: &[u8] = &[
        5, 3, 97, 44, 98, 1, 98, 253, 0, 104, 229, 207, 139, 1, 0, 0, 1, 1, 107, 1, 118, 253, 96, 82, 230, 207, 139, 1,
        0, 0, 2, 41, 40, 1, 3, 251, 136, 19, 1, 67, 1, 12,
    ];
    const INFLIGHT_V6: &[u8] = &[
        6, 3, 97, 44, 98, 1, 98, 253, 0, 104, 229, 207, 139, 1, 0, 0, 1, 1, 107, 1, 118, 253, 96, 82, 230, 207, 139, 1,
        0, 0, 2, 41, 40, 1, 3, 251, 136, 19, 1, 67, 1, 12, 0,
    ];
    const INFLIGHT_V7: &[u8] = &[
        7, 3, 97, 44, 98, 1, 98, 253, 0, 104, 229, 207, 139, 1, 0, 0, 1, 1, 107, 1, 118, 253, 96, 82, 230, 207, 139, 1,
        0, 0, 2, 41, 40, 1, 3, 251, 136, 19, 1, 67, 1, 12, 0,
    ];
    const INFLIGHT: &[u8] = &[
        8, 3, 97, 44, 98, 1, 98, 253, 0, 104, 229, 207, 139, 1, 0, 0, 1, 1, 107, 1, 118, 253, 96, 82, 230, 207, 139, 1,
        0, 0, 2, 41, 40, 1, 3, 251, 136, 19, 1, 67, 1, 12, 0,
    ];

    fn check<T: Versioned + PartialEq + std::fmt::Debug>(stored: &[u8], value: T) {
        assert_eq!(T::from_bytes(stored).as_ref(), Some(&value));
        assert_eq!(value.to_bytes(), stored);
        let (_, short) = stored.split_last().expect("not empty");
        assert_eq!(T::from_bytes(short), None, "truncated");
        if T::PADDED {
            assert_eq!(T::from_bytes(&[stored, &[0, 0]].concat()).as_ref(), Some(&value), "zero padding");
            assert_eq!(T::from_bytes(&[stored, &[0, 1]].concat()), None, "trailing byte");
        } else {
            assert_eq!(T::from_bytes(&[stored, &[0]].concat()), None, "trailing byte");
        }
        assert_eq!(T::from_bytes(&[&[9], &stored[1..]].concat()), None, "unknown version");
        assert_eq!(T::from_bytes(b""), None);
    }

    #[test]
    fn todays_records_read_and_write_the_same_bytes() {
        check(
            PAIRLOCK,
            PairLock {
                owner: b"host:1".to_vec(),
                token: 300,
                done: true,
                ttl_ms: 60_000,
                expires_ms: 1_700_000_060_000,
            },
        );
        check(RECURRING, Recurring { every_ms: 250, next_ms: 1_700_000_000_000 });
        check(
            INFLIGHT,
            InFlight {
                queues: b"a,b".to_vec(),
                queue: b"b".to_vec(),
                popped_ms: 1_700_000_000_000,
                joblock: Some((b"k".to_vec(), b"v".to_vec())),
                lease_until_ms: 1_700_000_060_000,
                deliveries: 2,
                delivery: 41,
                after: 40,
                ended: Some(Ended::Retried { delay_ms: 5000 }),
                class: b"C".to_vec(),
                wait_ms: Some(12),
                open: None,
            },
        );
        // Entries of version 4 (no class, no wait), 5 (no open tally), 6
        // (never padded: a trailing byte is not read) and 7 (an open tally
        // in a record's form) still read.
        let v4 = InFlight::from_bytes(INFLIGHT_V4).expect("version 4 reads");
        let v5 = InFlight::from_bytes(INFLIGHT_V5).expect("version 5 reads");
        let v6 = InFlight::from_bytes(INFLIGHT_V6).expect("version 6 reads");
        assert_eq!(InFlight::from_bytes(&[INFLIGHT_V6, &[0]].concat()), None);
        assert_eq!(InFlight::from_bytes(INFLIGHT_V7).as_ref(), Some(&v6));
        assert_eq!(InFlight::from_bytes(&[INFLIGHT_V7, &[0, 0]].concat()).as_ref(), Some(&v6), "7 padded");
        assert_eq!(InFlight::from_bytes(&[INFLIGHT_V7, &[0, 1]].concat()), None);
        assert_eq!(InFlight::from_bytes(INFLIGHT).as_ref(), Some(&v6));
        assert_eq!(v5, v6);
        assert_eq!(InFlight { class: Vec::new(), wait_ms: None, ..v5 }, v4);
        // The record methods the module calls are the codec's.
        assert_eq!(PairLock::decode(PAIRLOCK).map(|l| l.encode()).as_deref(), Some(PAIRLOCK));
        assert_eq!(Recurring::decode(RECURRING).map(|r| r.encode()).as_deref(), Some(RECURRING));
        assert_eq!(InFlight::decode(INFLIGHT).map(|e| e.encode()).as_deref(), Some(INFLIGHT));
    }
}

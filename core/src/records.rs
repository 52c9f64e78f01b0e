//! The byte formats tq writes and reads: job payloads, in-flight ("working
//! on") records, failure records, and tq's own in-flight index entry.

use std::borrow::Cow;
use std::ops::Range;

use bincode::{Decode, Encode};

use crate::codec::{decode_exact, decode_padded, Versioned};
use crate::error::{Result, TqError};
use crate::json::{self, Value};
use crate::metrics::Carried;
use crate::time;

/// The `args` value node-resque would store for `args-json`: omitted means
/// `[]`, an array is kept, any other value is wrapped in one (`arrayify`).
pub fn args_value(args_json: Option<&[u8]>) -> Result<Value> {
    let Some(raw) = args_json else {
        return Ok(Value::Array(Vec::new()));
    };
    match json::parse(raw) {
        Ok(Value::Array(items)) => Ok(Value::Array(items)),
        Ok(other) => Ok(Value::Array(vec![other])),
        Err(e) => Err(TqError::arg(format!("args is not valid JSON: {e}"))),
    }
}

/// `Queue.encode(queue, class, args)`: `{"class":…,"queue":…,"args":[…]}`
/// byte for byte as `JSON.stringify` writes it.
pub fn payload(queue: &[u8], class: &[u8], args: &Value) -> Vec<u8> {
    framed(queue, class, 0, |out| json::stringify(args, out))
}

/// `payload(queue, class, &args_value(args_json)?)`, copying args that are
/// already in `JSON.stringify`'s form instead of parsing and rewriting them.
pub fn encode(queue: &[u8], class: &[u8], args_json: Option<&[u8]>) -> Result<Vec<u8>> {
    let Some(raw) = args_json.filter(|raw| json::is_canonical(raw)) else {
        return Ok(payload(queue, class, &args_value(args_json)?));
    };
    Ok(framed(queue, class, raw.len() + 2, |out| {
        // node-resque's arrayify: a bare value becomes a one-element array.
        let bare = !raw.starts_with(b"[");
        if bare {
            out.push(b'[');
        }
        out.extend_from_slice(raw);
        if bare {
            out.push(b']');
        }
    }))
}

/// A payload around args written by `args`.
fn framed(queue: &[u8], class: &[u8], args_len: usize, args: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + 2 * (queue.len() + class.len()) + args_len);
    out.extend_from_slice(b"{\"class\":");
    json::write_string(class, &mut out);
    out.extend_from_slice(b",\"queue\":");
    json::write_string(queue, &mut out);
    out.extend_from_slice(b",\"args\":");
    args(&mut out);
    out.push(b'}');
    out
}

/// What tq needs to know of a stored payload before it hands it on. Strings
/// are borrowed from the payload unless they had escapes to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadInfo<'a> {
    pub class: Cow<'a, [u8]>,
    /// The `queue` member, when present and a string (Ruby's Resque omits it).
    pub queue: Option<Cow<'a, [u8]>>,
    /// Where the `args` member's value is in the payload, when present
    /// (a value `inspect_payload` validated).
    pub args: Option<Range<usize>>,
}

impl PayloadInfo<'_> {
    /// `JSON.stringify(args)` of the payload, the last part of node-resque's
    /// QueueLock/JobLock keys. None when the payload has no `args`.
    pub fn args_json(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let raw = payload.get(self.args.clone()?)?;
        // Every take makes these keys: args already in their stringified
        // form (the usual case) are copied, not parsed and rewritten.
        // The range is a member inspect_payload validated.
        if json::is_canonical_checked(raw) {
            return Some(raw.to_vec());
        }
        json::parse(raw).ok().map(|v| json::to_vec(&v))
    }
}

/// Checks a payload read from a queue or bucket. A payload fit to run is a
/// JSON object with a string `class`; the error says what is wrong otherwise.
/// Runs once per promoted job, so it allocates nothing in the usual case.
pub fn inspect_payload(p: &[u8]) -> std::result::Result<PayloadInfo<'_>, String> {
    // The last of duplicate members counts, as in JSON.parse.
    let (mut class, mut queue, mut args) = (None, None, None);
    if let Some([c, q, a]) = json::payload_members(p) {
        (class, queue, args) = (Some(c), Some(q), Some(a));
    } else {
        json::for_each_member(p, |key, range| match &*key {
            b"class" => class = Some(range),
            b"queue" => queue = Some(range),
            b"args" => args = Some(range),
            _ => {}
        })
        .map_err(|e| format!("payload is not a JSON object ({e})"))?;
    }
    let string_member = |name: &str, range: Option<Range<usize>>| match range.and_then(|r| p.get(r)) {
        None => Ok(None),
        Some(raw) => {
            json::checked_string_cow(raw).map(Some).map_err(|_| format!("payload member \"{name}\" is not a string"))
        }
    };
    let class = match string_member("class", class)? {
        Some(c) if !c.is_empty() => c,
        _ => return Err("payload has no \"class\"".to_string()),
    };
    Ok(PayloadInfo { class, queue: string_member("queue", queue)?, args })
}

/// The in-flight record node-resque's `workingOn`/`allWorkingOn` read:
/// `{"run_at":<ISO-8601>,"queue":…,"worker":…,"payload":<payload verbatim>}`.
/// The payload bytes are copied, not re-encoded (node-resque's Lua pop
/// re-encodes through cjson and mangles them).
pub fn inflight_record(now_ms: u64, queue: &[u8], worker: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + queue.len() + worker.len() + 80);
    out.extend_from_slice(b"{\"run_at\":\"");
    time::write_iso8601(now_ms, &mut out);
    out.extend_from_slice(b"\",\"queue\":");
    json::write_string(queue, &mut out);
    out.extend_from_slice(b",\"worker\":");
    json::write_string(worker, &mut out);
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(payload);
    out.push(b'}');
    out
}

/// The raw `payload` member of an in-flight record, if the record is a JSON
/// object that has one.
pub fn record_payload(record: &[u8]) -> Option<Range<usize>> {
    let members = json::object_members(record).ok()?;
    json::member(&members, b"payload").cloned()
}

/// How the job appears in a failure record.
#[derive(Debug, Clone, Copy)]
pub enum FailedPayload<'a> {
    /// Valid JSON, copied verbatim.
    Json(&'a [u8]),
    /// Bytes that are not JSON, kept as a JSON string (invalid UTF-8 replaced).
    Text(&'a [u8]),
    /// Nothing is known of the job.
    Null,
}

pub struct Failure<'a> {
    pub worker: &'a [u8],
    pub queue: &'a [u8],
    pub payload: FailedPayload<'a>,
    pub exception: &'a [u8],
    pub error: &'a [u8],
    /// A JSON array, already normalised by `backtrace_value`.
    pub backtrace: &'a [u8],
    pub now_ms: u64,
}

/// node-resque's failure record, members in its order:
/// `worker, queue, payload, exception, error, backtrace, failed_at`.
pub fn failure_record(f: &Failure<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + f.error.len() + f.backtrace.len());
    out.extend_from_slice(b"{\"worker\":");
    json::write_string(f.worker, &mut out);
    out.extend_from_slice(b",\"queue\":");
    json::write_string(f.queue, &mut out);
    out.extend_from_slice(b",\"payload\":");
    match f.payload {
        // As JSON.stringify writes it (node-resque stores the parsed job), so
        // that node-resque's removeFailed/retryAndRemoveFailed, which LREM
        // the re-serialised record, find it whatever client wrote the job.
        FailedPayload::Json(p) => match json::parse(p) {
            Ok(v) => json::stringify(&v, &mut out),
            Err(_) => json::write_string(String::from_utf8_lossy(p).as_bytes(), &mut out),
        },
        FailedPayload::Text(t) => json::write_string(String::from_utf8_lossy(t).as_bytes(), &mut out),
        FailedPayload::Null => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"exception\":");
    json::write_string(f.exception, &mut out);
    out.extend_from_slice(b",\"error\":");
    json::write_string(f.error, &mut out);
    out.extend_from_slice(b",\"backtrace\":");
    out.extend_from_slice(f.backtrace);
    out.extend_from_slice(b",\"failed_at\":\"");
    out.extend_from_slice(time::js_date_string(f.now_ms).as_bytes());
    out.extend_from_slice(b"\"}");
    out
}

/// A backtrace argument: a JSON array, stored compact. Omitted means `[]`,
/// which node-resque's `retryStuckJobs` (it reads `backtrace[1]`) accepts.
pub fn backtrace_value(raw: Option<&[u8]>) -> Result<Vec<u8>> {
    match raw {
        None => Ok(b"[]".to_vec()),
        Some(raw) => match json::parse(raw) {
            Ok(v @ Value::Array(_)) => Ok(json::to_vec(&v)),
            Ok(_) => Err(TqError::arg("backtrace must be a JSON array")),
            Err(e) => Err(TqError::arg(format!("backtrace is not valid JSON: {e}"))),
        },
    }
}

/// Free text that goes into a JSON string of a record (exception, error).
pub fn check_text(what: &str, s: &[u8]) -> Result<()> {
    if std::str::from_utf8(s).is_err() {
        return Err(TqError::arg(format!("{what} must be valid UTF-8")));
    }
    Ok(())
}

/// The exception recorded for a stored payload that cannot be run.
pub const CORRUPT_EXCEPTION: &str = "TQ::CorruptPayload";

/// tq's index entry for a worker's job in flight (`<ns>:tq:inflight:<worker>`),
/// and, once the job has ended, the tombstone that lets a late or repeated
/// report be answered. Stored as bincode behind a version byte; older
/// versions stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct InFlight {
    /// The queue list the worker popped with (names its record key).
    pub queues: Vec<u8>,
    /// The queue the job came from.
    pub queue: Vec<u8>,
    /// Server time of the pop, unix ms.
    pub popped_ms: u64,
    /// The running-job lock taken with the job (key, value written), which
    /// ACK/FAIL release only if it still holds that value.
    pub joblock: Option<(Vec<u8>, Vec<u8>)>,
    /// When the lease runs out unless a heartbeat extends it, unix ms.
    pub lease_until_ms: u64,
    /// How many times this job has been handed to a worker (1 = first time).
    pub deliveries: u32,
    /// The delivery id minted by the take (unique in the namespace); 0 for
    /// jobs taken before delivery ids existed.
    pub delivery: u64,
    /// The delivery this take completed in the same step (`TQ.POP ... ACK`),
    /// 0 for none: a resent `POP ... ACK <that>` is answered with this job.
    pub after: u64,
    /// Set once the job has ended: how. A live entry has None.
    pub ended: Option<Ended>,
    /// The job's class, for its metrics (empty in entries of older versions).
    pub class: Vec<u8>,
    /// How long the job waited in its queue, when its clock knew
    /// (`metrics::Clock`).
    pub wait_ms: Option<u64>,
    /// Jobs this worker ended lately, counted here on their way to their
    /// minute's metrics record (`metrics::carry`).
    pub open: Option<OpenTally>,
}

/// A worker's recent jobs of one (queue, class) and minute, counted in its
/// in-flight entry, which every report rewrites anyway: their minute's
/// record is then written once per worker every `metrics::FLUSH_MS` instead
/// of once a job, by the first report after `due_ms` or by the timer
/// (`<ns>:tq:mflush`) for a worker gone idle.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct OpenTally {
    pub minute: u64,
    pub due_ms: u64,
    /// The queue's name, then the class's: one allocation when the entry is
    /// read, as every report and take reads it.
    names: Vec<u8>,
    queue_len: u32,
    /// Its counts (`metrics::Carried`).
    pub tally: Carried,
}

impl OpenTally {
    pub fn new(minute: u64, due_ms: u64, queue: &[u8], class: &[u8], tally: Carried) -> Self {
        let mut names = Vec::with_capacity(queue.len() + class.len());
        names.extend_from_slice(queue);
        names.extend_from_slice(class);
        OpenTally { minute, due_ms, names, queue_len: u32::try_from(queue.len()).unwrap_or(u32::MAX), tally }
    }

    pub fn queue(&self) -> &[u8] {
        self.names.get(..self.split()).unwrap_or_default()
    }

    pub fn class(&self) -> &[u8] {
        self.names.get(self.split()..).unwrap_or_default()
    }

    fn split(&self) -> usize {
        usize::try_from(self.queue_len).unwrap_or(usize::MAX).min(self.names.len())
    }
}

/// How a delivery ended, kept in its tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Ended {
    /// The lease ran out and the job was given back (or failed): the
    /// worker's late report is refused with `LEASELOST`.
    LeaseLost,
    Acked,
    Failed,
    /// Failed with a retry policy that filed it to run again after `delay_ms`.
    Retried {
        delay_ms: u64,
    },
    Nacked,
}

impl InFlight {
    /// The job is still in the worker's hands.
    pub fn live(&self) -> bool {
        self.ended.is_none()
    }

    /// The lease ran out and the job was taken back.
    pub fn lost(&self) -> bool {
        self.ended == Some(Ended::LeaseLost)
    }
}

/// Version 1: no running-job lock, no lease.
#[derive(Decode)]
struct InFlightV1 {
    queues: Vec<u8>,
    queue: Vec<u8>,
    popped_ms: u64,
}

/// Version 2: no lease.
#[derive(Decode)]
struct InFlightV2 {
    queues: Vec<u8>,
    queue: Vec<u8>,
    popped_ms: u64,
    joblock: Option<(Vec<u8>, Vec<u8>)>,
}

/// Version 3: no delivery ids; `lost` the only way an entry ended.
#[derive(Decode)]
struct InFlightV3 {
    queues: Vec<u8>,
    queue: Vec<u8>,
    popped_ms: u64,
    joblock: Option<(Vec<u8>, Vec<u8>)>,
    lease_until_ms: u64,
    deliveries: u32,
    lost: bool,
}

/// Version 4: no class, no wait.
#[derive(Decode)]
struct InFlightV4 {
    queues: Vec<u8>,
    queue: Vec<u8>,
    popped_ms: u64,
    joblock: Option<(Vec<u8>, Vec<u8>)>,
    lease_until_ms: u64,
    deliveries: u32,
    delivery: u64,
    after: u64,
    ended: Option<Ended>,
}

/// Versions 6 and 7: an open tally's counts in a minute record's form.
#[derive(Decode)]
struct InFlightV7 {
    queues: Vec<u8>,
    queue: Vec<u8>,
    popped_ms: u64,
    joblock: Option<(Vec<u8>, Vec<u8>)>,
    lease_until_ms: u64,
    deliveries: u32,
    delivery: u64,
    after: u64,
    ended: Option<Ended>,
    class: Vec<u8>,
    wait_ms: Option<u64>,
    open: Option<OpenTallyV7>,
}

#[derive(Decode)]
struct OpenTallyV7 {
    minute: u64,
    due_ms: u64,
    names: Vec<u8>,
    queue_len: u32,
    tally: [u8; crate::metrics::TALLY_BYTES],
}

/// Version 5: no open tally.
#[derive(Decode)]
struct InFlightV5 {
    queues: Vec<u8>,
    queue: Vec<u8>,
    popped_ms: u64,
    joblock: Option<(Vec<u8>, Vec<u8>)>,
    lease_until_ms: u64,
    deliveries: u32,
    delivery: u64,
    after: u64,
    ended: Option<Ended>,
    class: Vec<u8>,
    wait_ms: Option<u64>,
}

/// The lease given to entries written before leases existed.
const LEGACY_LEASE_MS: u64 = 60_000;

impl Versioned for InFlight {
    const VERSION: u8 = 8;
    const PADDED: bool = true;

    /// Version 1 had no running-job lock and no lease, 2 no lease, 3 no
    /// delivery ids (`lost` the only way an entry ended), 4 no class and
    /// wait, 5 no open tally, 6 and 7 (7 padded) an open tally in a minute
    /// record's form.
    fn upgrade(version: u8, body: &[u8]) -> Option<Self> {
        let legacy = |queues, queue, popped_ms: u64, joblock| InFlight {
            queues,
            queue,
            popped_ms,
            joblock,
            lease_until_ms: popped_ms.saturating_add(LEGACY_LEASE_MS),
            deliveries: 1,
            delivery: 0,
            after: 0,
            ended: None,
            class: Vec::new(),
            wait_ms: None,
            open: None,
        };
        let v7 = |v: InFlightV7| InFlight {
            lease_until_ms: v.lease_until_ms,
            deliveries: v.deliveries,
            delivery: v.delivery,
            after: v.after,
            ended: v.ended,
            class: v.class,
            wait_ms: v.wait_ms,
            open: v.open.map(|t| OpenTally {
                minute: t.minute,
                due_ms: t.due_ms,
                names: t.names,
                queue_len: t.queue_len,
                tally: Carried::Block(t.tally),
            }),
            ..legacy(v.queues, v.queue, v.popped_ms, v.joblock)
        };
        match version {
            7 => decode_padded::<InFlightV7>(body).map(v7),
            6 => decode_exact::<InFlightV7>(body).map(v7),
            5 => decode_exact::<InFlightV5>(body).map(|v| InFlight {
                lease_until_ms: v.lease_until_ms,
                deliveries: v.deliveries,
                delivery: v.delivery,
                after: v.after,
                ended: v.ended,
                class: v.class,
                wait_ms: v.wait_ms,
                ..legacy(v.queues, v.queue, v.popped_ms, v.joblock)
            }),
            4 => decode_exact::<InFlightV4>(body).map(|v| InFlight {
                lease_until_ms: v.lease_until_ms,
                deliveries: v.deliveries,
                delivery: v.delivery,
                after: v.after,
                ended: v.ended,
                ..legacy(v.queues, v.queue, v.popped_ms, v.joblock)
            }),
            3 => decode_exact::<InFlightV3>(body).map(|v| InFlight {
                lease_until_ms: v.lease_until_ms,
                deliveries: v.deliveries,
                ended: v.lost.then_some(Ended::LeaseLost),
                ..legacy(v.queues, v.queue, v.popped_ms, v.joblock)
            }),
            2 => decode_exact::<InFlightV2>(body).map(|v| legacy(v.queues, v.queue, v.popped_ms, v.joblock)),
            1 => decode_exact::<InFlightV1>(body).map(|v| legacy(v.queues, v.queue, v.popped_ms, None)),
            _ => None,
        }
    }
}

impl InFlight {
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes()
    }

    /// Its bytes to replace an entry `stored` bytes long, padded with zeros
    /// to that length when they are at least half of it. A worker's entry
    /// is rewritten at every report, longer for a job taken than for the
    /// tombstone an ACK leaves: so its stored length stays put and Redis
    /// rewrites it in place, where a string grown in place is reallocated
    /// with room for twice its length and one that shrinks below half its
    /// room is reallocated again.
    pub fn encode_over(&self, stored: usize) -> Vec<u8> {
        let mut out = self.to_bytes();
        if out.len() < stored && out.len().saturating_mul(2) >= stored {
            out.resize(stored, 0);
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Option<Self> {
        Self::from_bytes(raw)
    }

    /// The entry and the length it is stored with.
    pub fn decode_sized(raw: &[u8]) -> Option<(Self, usize)> {
        Self::from_bytes(raw).map(|e| (e, raw.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_match_queue_encode() {
        let args = args_value(Some(br#"[1, 2.0, "a\/b", {"x":null}]"#)).expect("valid");
        assert_eq!(payload(b"math", b"add", &args), br#"{"class":"add","queue":"math","args":[1,2,"a/b",{"x":null}]}"#);
        assert_eq!(payload(b"q", b"c", &args_value(None).expect("valid")), br#"{"class":"c","queue":"q","args":[]}"#);
        assert_eq!(
            payload(b"q", b"c", &args_value(Some(b"5")).expect("valid")),
            br#"{"class":"c","queue":"q","args":[5]}"#
        );
        assert_eq!(
            payload(b"q", b"c", &args_value(Some(b"null")).expect("valid")),
            br#"{"class":"c","queue":"q","args":[null]}"#
        );
        assert!(args_value(Some(b"[1,")).is_err());
    }

    #[test]
    fn encode_copies_only_what_stringify_would_write_back() {
        let corpus: &[&[u8]] = &[
            b"[1,2]",
            b"[]",
            b"[[],[[1]],\"x\",true,false,null,-7,0]",
            b"5",
            b"-12",
            b"\"bare\"",
            b"null",
            b"[123456789012345]",
            b"[1234567890123456]",
            b"[12345678901234567890]",
            b"[-0]",
            b"[1.0]",
            b"[1e3]",
            b"[1E+3]",
            b"[0.5]",
            b"[ 1, 2 ]",
            b"[\"a\\/b\"]",
            b"[\"\\u0041\"]",
            br#"[{"b":1,"a":2,"1":3}]"#,
            "[\"caf\u{e9}\"]".as_bytes(),
            "[\"\u{2028}\"]".as_bytes(),
            b"[tru]",
            b"[1,]",
            b"[\"open]",
            b"[01]",
            b"-",
        ];
        for raw in corpus {
            let slow = args_value(Some(raw)).map(|args| payload(b"q", b"c", &args));
            let fast = encode(b"q", b"c", Some(raw));
            assert_eq!(fast.as_ref().ok(), slow.as_ref().ok(), "{}", String::from_utf8_lossy(raw));
            assert_eq!(fast.is_err(), slow.is_err(), "{}", String::from_utf8_lossy(raw));
            // A take's lock keys: the args as JSON.stringify writes them,
            // copied or rebuilt, and none when they do not parse.
            let mut stored = br#"{"class":"c","queue":"q","args":"#.to_vec();
            stored.extend_from_slice(raw);
            stored.push(b'}');
            let rebuilt = json::parse(raw).ok().map(|v| json::to_vec(&v));
            match inspect_payload(&stored) {
                Ok(info) => assert_eq!(info.args_json(&stored), rebuilt, "{}", String::from_utf8_lossy(raw)),
                Err(_) => assert_eq!(rebuilt, None, "{}", String::from_utf8_lossy(raw)),
            }
        }
        assert_eq!(encode(b"q", b"c", None).ok(), Some(br#"{"class":"c","queue":"q","args":[]}"#.to_vec()));
        // The copy is taken only where it is certainly exact.
        assert!(json::is_canonical(b"[1,[\"a b\"],true]"));
        for raw in [&b"[-0]"[..], b"[1.5]", b"[1 ]", b"[{}]", b"[\"\\n\"]", b"[1234567890123456]", b"[1,"] {
            assert!(!json::is_canonical(raw), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn payload_inspection() {
        let p = br#"{"class":"c","queue":"q","args":[1.0, {"b":1,"a":2}]}"#;
        let ok = inspect_payload(p).expect("fine");
        assert_eq!(ok.queue.as_deref(), Some(&b"q"[..]));
        assert_eq!(ok.class, b"c".to_vec());
        assert_eq!(ok.args_json(p), Some(br#"[1,{"b":1,"a":2}]"#.to_vec()));
        // Escaped keys and values are decoded; the last duplicate counts.
        let escaped = inspect_payload(br#"{"cl\u0061ss":"a","queue":"q\u00e9","class":"b\/c"}"#).expect("fine");
        assert_eq!(&*escaped.class, b"b/c");
        assert_eq!(escaped.queue.as_deref(), Some("q\u{e9}".as_bytes()));
        let ruby = inspect_payload(br#"{"class":"C","args":[1]}"#).expect("fine");
        assert_eq!(ruby.queue, None);
        assert!(inspect_payload(b"not json").is_err());
        assert!(inspect_payload(b"[1]").is_err());
        assert!(inspect_payload(br#"{"queue":"q"}"#).is_err());
        assert!(inspect_payload(br#"{"class":1}"#).is_err());
        assert!(inspect_payload(br#"{"class":""}"#).is_err());
        assert!(inspect_payload(br#"{"class":"c","queue":7}"#).is_err());
    }

    #[test]
    fn inflight_entries_encode_as_before_whatever_their_size() {
        for n in [0, 10, 300, 5000] {
            let e = InFlight {
                queues: vec![b'q'; n],
                queue: b"q".to_vec(),
                popped_ms: 1_795_240_210_123,
                joblock: Some((vec![b'k'; n], b"17952402".to_vec())),
                lease_until_ms: 1_795_240_270_123,
                deliveries: 3,
                delivery: 9_007_199_254_740_991,
                after: 7,
                ended: Some(Ended::Retried { delay_ms: 5000 }),
                class: b"C".to_vec(),
                wait_ms: Some(12),
                open: None,
            };
            let mut want = vec![<InFlight as crate::codec::Versioned>::VERSION];
            want.extend(bincode::encode_to_vec(&e, bincode::config::standard()).expect("encodes"));
            assert_eq!(e.encode(), want, "{n}");
            assert_eq!(InFlight::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn inflight_record_round_trip() {
        let p = br#"{"class":"c","queue":"q","args":[{}]}"#;
        let rec = inflight_record(0, b"q", b"h:1", p);
        assert_eq!(
            rec,
            br#"{"run_at":"1970-01-01T00:00:00.000Z","queue":"q","worker":"h:1","payload":{"class":"c","queue":"q","args":[{}]}}"#
        );
        assert!(json::validate(&rec).is_ok());
        let r = record_payload(&rec).expect("has payload");
        assert_eq!(&rec[r], &p[..]);
        assert_eq!(record_payload(b"garbage"), None);
    }

    #[test]
    fn failure_record_layout() {
        let bt = backtrace_value(Some(br#"["  at x", "  at y"]"#)).expect("array");
        let rec = failure_record(&Failure {
            worker: b"w",
            queue: b"q",
            payload: FailedPayload::Json(br#"{"class":"c"}"#),
            exception: b"Error",
            error: b"boom \"quoted\"",
            backtrace: &bt,
            now_ms: 0,
        });
        assert_eq!(
            String::from_utf8(rec).expect("utf8"),
            r#"{"worker":"w","queue":"q","payload":{"class":"c"},"exception":"Error","error":"boom \"quoted\"","backtrace":["  at x","  at y"],"failed_at":"Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)"}"#
        );
        let text = failure_record(&Failure {
            worker: b"w",
            queue: b"q",
            payload: FailedPayload::Text(b"x\xff\"y"),
            exception: b"E",
            error: b"",
            backtrace: b"[]",
            now_ms: 0,
        });
        assert!(json::validate(&text).is_ok());
        assert!(backtrace_value(Some(b"{}")).is_err());
        assert_eq!(backtrace_value(None).expect("default"), b"[]");
    }

    #[test]
    fn failure_records_hold_the_payload_as_json_stringify_writes_it() {
        let rec = failure_record(&Failure {
            worker: b"w",
            queue: b"q",
            payload: FailedPayload::Json(br#"{"class": "C", "args": [1.0, 2e2, "\u00e9"]}"#),
            exception: b"E",
            error: b"e",
            backtrace: b"[]",
            now_ms: 0,
        });
        assert!(String::from_utf8_lossy(&rec).contains("\"payload\":{\"class\":\"C\",\"args\":[1,200,\"\u{e9}\"]}"));
    }

    #[test]
    fn inflight_entry_round_trip() {
        let e = InFlight {
            queues: b"a,b".to_vec(),
            queue: b"b".to_vec(),
            popped_ms: 1_700_000_000_000,
            joblock: Some((b"k".to_vec(), b"v".to_vec())),
            lease_until_ms: 1_700_000_060_000,
            deliveries: 2,
            delivery: 41,
            after: 40,
            ended: None,
            class: b"C".to_vec(),
            wait_ms: Some(12),
            open: None,
        };
        let raw = e.encode();
        assert_eq!(raw.first(), Some(&8));
        let done = InFlight { ended: Some(Ended::Retried { delay_ms: 5 }), ..e.clone() };
        assert_eq!(InFlight::decode(&done.encode()), Some(done.clone()));
        // Written over a longer entry: padded to its length while at least
        // half of it, and read back the same.
        let done = InFlight { ended: Some(Ended::Acked), joblock: None, class: Vec::new(), wait_ms: None, ..e.clone() };
        let short = done.encode();
        assert!(short.len() < raw.len());
        let over = done.encode_over(raw.len());
        assert_eq!(over.len(), raw.len());
        assert_eq!(over.get(..short.len()), Some(short.as_slice()));
        assert_eq!(InFlight::decode_sized(&over), Some((done.clone(), raw.len())));
        assert_eq!(done.encode_over(short.len() * 2), [short.clone(), vec![0; short.len()]].concat());
        assert_eq!(done.encode_over(short.len() * 2 + 1), short, "under half: not padded");
        assert_eq!(e.encode_over(short.len()), raw, "longer: as it is");
        let mut dirty = over.clone();
        if let Some(last) = dirty.last_mut() {
            *last = 1;
        }
        assert_eq!(InFlight::decode(&dirty), None, "only zeros pad");
        // Version 3 (before delivery ids): a lost lease reads as a tombstone.
        let mut v3 = vec![3u8];
        v3.extend(
            bincode::encode_to_vec(
                (b"q".to_vec(), b"q".to_vec(), 7u64, None::<(Vec<u8>, Vec<u8>)>, 9u64, 2u32, true),
                bincode::config::standard(),
            )
            .unwrap_or_default(),
        );
        let lost = InFlight::decode(&v3).expect("v3 reads");
        assert!(lost.lost() && !lost.live());
        assert_eq!((lost.delivery, lost.deliveries, lost.lease_until_ms), (0, 2, 9));
        // Older versions still read, with a default lease.
        let mut v1 = vec![1u8];
        v1.extend(
            bincode::encode_to_vec((b"a,b".to_vec(), b"b".to_vec(), 7u64), bincode::config::standard())
                .unwrap_or_default(),
        );
        let old = InFlight::decode(&v1).expect("v1 reads");
        assert_eq!((old.popped_ms, old.lease_until_ms, old.deliveries, old.joblock), (7, 60_007, 1, None));
        assert_eq!(InFlight::decode(&raw), Some(e));
        assert_eq!(InFlight::decode(b""), None);
        assert_eq!(InFlight::decode(b"\x02abc"), None);
        assert_eq!(InFlight::decode(b"\x09abc"), None);
        assert_eq!(InFlight::decode(&raw[..raw.len() - 1]), None);
    }
}

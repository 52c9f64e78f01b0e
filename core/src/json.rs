//! JSON exactly as JavaScript's `JSON.parse` reads it and `JSON.stringify`
//! writes it.
//!
//! node-resque identifies a job by the bytes of `JSON.stringify(...)`: they
//! are the list element, the `timestamps:<payload>` key and what `LREM`
//! matches. A payload written here must therefore be byte-identical to what
//! node (V8) produces for the same input, which `serde_json` does not do:
//! numbers are IEEE doubles printed by `Number.prototype.toString`, object
//! keys that are array indices come first in ascending order, duplicate keys
//! keep their first position with the last value, and lone UTF-16 surrogates
//! survive a round trip as `\udXXX` escapes.
//!
//! Strings are kept as WTF-8: UTF-8 that may also hold lone surrogates as
//! three-byte sequences `ED A0..BF xx`. Valid UTF-8 never contains those, so
//! the writer can recognise them and escape them as V8 does.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Deepest nesting accepted. The parser recurses, and it runs on the Redis
/// main thread: a hostile document must not be able to overflow the stack.
pub const MAX_DEPTH: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    /// WTF-8 bytes (see the module comment).
    String(Vec<u8>),
    Array(Vec<Value>),
    /// Members in JavaScript property order, keys unique.
    Object(Vec<(Vec<u8>, Value)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub msg: &'static str,
    pub offset: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.msg, self.offset)
    }
}

impl std::error::Error for JsonError {}

type Result<T> = std::result::Result<T, JsonError>;

/// Parses a whole document (surrounding JSON whitespace allowed).
pub fn parse(input: &[u8]) -> Result<Value> {
    let mut p = Parser::new(input)?;
    let v = p.value(0)?;
    p.finish()?;
    Ok(v)
}

/// Checks that `input` is one JSON document without building it.
pub fn validate(input: &[u8]) -> Result<()> {
    let mut p = Parser::new(input)?;
    p.skip_value(0)?;
    p.finish()
}

/// True when `input` is a JSON document that `JSON.stringify(JSON.parse(input))`
/// would write back byte for byte, judged conservatively (false may only
/// mean "not sure"): no whitespace or objects (V8 reorders integer-like
/// keys), printable ASCII strings without escapes, integers of at most 15
/// digits (exact in a double and printed as written) other than `-0`.
/// Lets the common args of a job be copied instead of rebuilt.
pub fn is_canonical(input: &[u8]) -> bool {
    is_canonical_checked(input) && validate(input).is_ok()
}

/// `is_canonical` of bytes already validated as one JSON value (a member's
/// range that `for_each_member` checked): its scan, without the validation.
pub(crate) fn is_canonical_checked(input: &[u8]) -> bool {
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if in_string {
            match b {
                b'"' => in_string = false,
                b'\\' => return false,
                0x20..=0x7e => {}
                _ => return false,
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b']' | b',' | b't' | b'r' | b'u' | b'e' | b'f' | b'a' | b'l' | b's' | b'n' => {}
            b'-' | b'0'..=b'9' => {
                let len = input.get(i..).map_or(0, |rest| {
                    rest.iter().take_while(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')).count()
                });
                let token = input.get(i..i + len).unwrap_or_default();
                let digits = token.strip_prefix(b"-").unwrap_or(token);
                let plain = !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit);
                if !plain || token == b"-0" {
                    return false;
                }
                i += len;
                continue;
            }
            _ => return false,
        }
        i += 1;
    }
    !in_string
}

/// The top-level members of a JSON object: each key (decoded, WTF-8) with the
/// byte range of its value inside `input`. Every value is validated. Keys are
/// listed in document order, duplicates included.
pub fn object_members(input: &[u8]) -> Result<Vec<(Vec<u8>, Range<usize>)>> {
    let mut out = Vec::new();
    for_each_member(input, |key, range| out.push((key.into_owned(), range)))?;
    Ok(out)
}

/// `object_members` without building the list: calls `f` with each key
/// (borrowed from `input` unless it has escapes) and its value's range.
pub fn for_each_member<'a>(input: &'a [u8], mut f: impl FnMut(Cow<'a, [u8]>, Range<usize>)) -> Result<()> {
    let mut p = Parser::new(input)?;
    p.ws();
    if p.peek() != Some(b'{') {
        return Err(p.err("expected a JSON object"));
    }
    p.pos += 1;
    p.ws();
    if p.peek() == Some(b'}') {
        p.pos += 1;
    } else {
        loop {
            p.ws();
            let key = p.string_cow()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            let start = p.pos;
            p.skip_value(1)?;
            f(key, start..p.pos);
            p.ws();
            match p.next_byte() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(p.err_at(p.pos.saturating_sub(1), "expected ',' or '}'")),
            }
        }
    }
    p.finish()
}

/// The value ranges of `class`, `queue` and `args` when `input` is a
/// payload exactly as node-resque and tq write it,
/// `{"class":"…","queue":"…","args":…}`, with class and queue free of
/// escapes and control characters, and the args valid JSON: the ranges
/// `for_each_member` would report, found without its general loop (this
/// runs for every job a take or a promotion inspects). None for anything
/// else, valid or not: the caller then takes the general path.
pub fn payload_members(input: &[u8]) -> Option<[Range<usize>; 3]> {
    let mut p = Parser::new(input).ok()?;
    let class = p.canonical_member(b"{\"class\":")?;
    let queue = p.canonical_member(b",\"queue\":")?;
    p.skip_prefix(b",\"args\":")?;
    let start = p.pos;
    // No whitespace anywhere: the general path handles it.
    (p.peek()? > b' ').then_some(())?;
    p.skip_value(1).ok()?;
    let args = start..p.pos;
    (p.peek()? == b'}' && p.pos + 1 == input.len()).then_some([class, queue, args])
}

/// `decode_string_cow` of a value `for_each_member` already checked (its
/// range of the same input): a string without escapes is the bytes between
/// its quotes, with no second pass over them. Not for unchecked bytes.
pub(crate) fn checked_string_cow(value: &[u8]) -> Result<Cow<'_, [u8]>> {
    match value {
        [b'"', body @ .., b'"'] if !body.contains(&b'\\') => Ok(Cow::Borrowed(body)),
        _ => decode_string_cow(value),
    }
}

/// `decode_string`, borrowing the literal's bytes when it has no escapes.
pub fn decode_string_cow(literal: &[u8]) -> Result<Cow<'_, [u8]>> {
    let mut p = Parser::new(literal)?;
    let s = p.string_cow()?;
    p.finish()?;
    Ok(s)
}

/// The value of the last top-level member named `key` (as `JSON.parse`
/// would keep it), as a byte range of `input`.
pub fn member<'a>(members: &'a [(Vec<u8>, Range<usize>)], key: &[u8]) -> Option<&'a Range<usize>> {
    members.iter().rev().find(|(k, _)| k == key).map(|(_, r)| r)
}

/// Decodes a JSON string literal (with its quotes) into WTF-8.
pub fn decode_string(literal: &[u8]) -> Result<Vec<u8>> {
    let mut p = Parser::new(literal)?;
    let s = p.string()?;
    p.finish()?;
    Ok(s)
}

/// The bytes a string's plain run stops at: a quote, a backslash, a
/// control character (one table load a byte instead of three compares).
/// Built at compile time, where an index out of range fails the build.
#[allow(clippy::indexing_slicing)]
static STOPS_STRING: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(b: &'a [u8]) -> Result<Self> {
        // ASCII first: a word-at-a-time scan, far cheaper than a UTF-8
        // decode on the short payloads a take or a promotion inspects.
        if b.is_ascii() {
            return Ok(Parser { b, pos: 0 });
        }
        if let Err(e) = std::str::from_utf8(b) {
            return Err(JsonError { msg: "invalid UTF-8", offset: e.valid_up_to() });
        }
        Ok(Parser { b, pos: 0 })
    }

    fn err(&self, msg: &'static str) -> JsonError {
        JsonError { msg, offset: self.pos }
    }

    fn err_at(&self, offset: usize, msg: &'static str) -> JsonError {
        JsonError { msg, offset }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(match c {
                b':' => "expected ':'",
                b'"' => "expected a string",
                _ => "unexpected character",
            }))
        }
    }

    /// Moves past the bytes of a string that need no attention: up to the
    /// next quote, backslash or control character (or the end). One slice
    /// scan rather than a bounds-checked step per byte: this runs over every
    /// payload a promotion or take inspects.
    fn plain_run(&mut self) {
        let rest = self.b.get(self.pos..).unwrap_or_default();
        self.pos += rest.iter().position(|&c| STOPS_STRING.get(usize::from(c)) != Some(&false)).unwrap_or(rest.len());
    }

    /// Moves past `prefix` when the input continues with it.
    fn skip_prefix(&mut self, prefix: &[u8]) -> Option<()> {
        self.b.get(self.pos..)?.starts_with(prefix).then_some(())?;
        self.pos += prefix.len();
        Some(())
    }

    /// After `prefix`, a string with nothing to decode: its range, quotes
    /// included (see `payload_members`).
    fn canonical_member(&mut self, prefix: &[u8]) -> Option<Range<usize>> {
        self.skip_prefix(prefix)?;
        let start = self.pos;
        (self.peek()? == b'"').then_some(())?;
        self.pos += 1;
        self.plain_run();
        (self.peek()? == b'"').then_some(())?;
        self.pos += 1;
        Some(start..self.pos)
    }

    /// JSON whitespace is exactly space, tab, LF and CR.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.ws();
        if self.pos == self.b.len() {
            Ok(())
        } else {
            Err(self.err("unexpected data after the JSON value"))
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<()> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        self.ws();
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'n') => self.literal(b"null").map(|_| Value::Null),
            Some(b't') => self.literal(b"true").map(|_| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|_| Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => {
                let depth = self.enter(depth)?;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth)?);
                    self.ws();
                    match self.next_byte() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(Value::Array(items)),
                        _ => return Err(self.err_at(self.pos.saturating_sub(1), "expected ',' or ']'")),
                    }
                }
            }
            Some(b'{') => {
                let depth = self.enter(depth)?;
                let mut obj = ObjectBuilder::default();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Value::Object(obj.finish()));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    self.expect(b':')?;
                    let v = self.value(depth)?;
                    obj.insert(key, v);
                    self.ws();
                    match self.next_byte() {
                        Some(b',') => continue,
                        Some(b'}') => return Ok(Value::Object(obj.finish())),
                        _ => return Err(self.err_at(self.pos.saturating_sub(1), "expected ',' or '}'")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let r = self.number()?;
                // The lexeme is ASCII and matches the JSON number grammar, which
                // Rust's float parser accepts; it rounds correctly, as V8 does.
                let text = std::str::from_utf8(self.b.get(r).unwrap_or_default()).unwrap_or("x");
                text.parse::<f64>().map(Value::Number).map_err(|_| self.err("invalid number"))
            }
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn enter(&mut self, depth: usize) -> Result<usize> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.pos += 1;
        Ok(depth + 1)
    }

    /// Like `value` but only validates.
    fn skip_value(&mut self, depth: usize) -> Result<()> {
        self.ws();
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'"') => self.skip_string(),
            Some(b'[') => {
                let depth = self.enter(depth)?;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth)?;
                    self.ws();
                    match self.next_byte() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(()),
                        _ => return Err(self.err_at(self.pos.saturating_sub(1), "expected ',' or ']'")),
                    }
                }
            }
            Some(b'{') => {
                let depth = self.enter(depth)?;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.skip_string()?;
                    self.ws();
                    self.expect(b':')?;
                    self.skip_value(depth)?;
                    self.ws();
                    match self.next_byte() {
                        Some(b',') => continue,
                        Some(b'}') => return Ok(()),
                        _ => return Err(self.err_at(self.pos.saturating_sub(1), "expected ',' or '}'")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    /// Lexes a number per the JSON grammar and returns its byte range.
    fn number(&mut self) -> Result<Range<usize>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number"));
            }
            self.digits();
        }
        Ok(start..self.pos)
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn skip_string(&mut self) -> Result<()> {
        self.expect(b'"')?;
        // Most strings have nothing to decode: one run to the closing quote.
        self.plain_run();
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.plain_run();
            match self.next_byte() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => return Ok(()),
                Some(b'\\') => match self.next_byte() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                    Some(b'u') => {
                        self.hex4()?;
                    }
                    _ => return Err(self.err_at(self.pos.saturating_sub(1), "invalid escape")),
                },
                Some(c) if c < 0x20 => return Err(self.err_at(self.pos - 1, "control character in string")),
                Some(_) => {}
            }
        }
    }

    fn hex4(&mut self) -> Result<u16> {
        let mut v: u16 = 0;
        for _ in 0..4 {
            let d = match self.next_byte() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err_at(self.pos.saturating_sub(1), "invalid \\u escape")),
            };
            v = (v << 4) | u16::from(d);
        }
        Ok(v)
    }

    /// `string`, borrowing the bytes between the quotes when there is no
    /// escape to decode.
    fn string_cow(&mut self) -> Result<Cow<'a, [u8]>> {
        let start = self.pos;
        self.expect(b'"')?;
        let body = self.pos;
        self.plain_run();
        if self.peek() == Some(b'"') {
            let s = self.b.get(body..self.pos).unwrap_or_default();
            self.pos += 1;
            return Ok(Cow::Borrowed(s));
        }
        self.pos = start;
        self.string().map(Cow::Owned)
    }

    /// Parses a string literal into WTF-8.
    fn string(&mut self) -> Result<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            // Copy the run of plain bytes in one go.
            let run_start = self.pos;
            self.plain_run();
            out.extend_from_slice(self.b.get(run_start..self.pos).unwrap_or_default());
            match self.next_byte() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => return Ok(out),
                Some(b'\\') => {
                    let c = match self.next_byte() {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0c,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'u') => {
                            let unit = self.hex4()?;
                            self.push_unit(unit, &mut out)?;
                            continue;
                        }
                        _ => return Err(self.err_at(self.pos.saturating_sub(1), "invalid escape")),
                    };
                    out.push(c);
                }
                Some(_) => return Err(self.err_at(self.pos - 1, "control character in string")),
            }
        }
    }

    /// Appends one UTF-16 unit from a `\u` escape, joining a high surrogate
    /// with an immediately following `\uDC00..DFFF` escape as JSON.parse does.
    fn push_unit(&mut self, unit: u16, out: &mut Vec<u8>) -> Result<()> {
        if (0xD800..0xDC00).contains(&unit) && self.b.get(self.pos..self.pos + 2) == Some(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let low = self.hex4()?;
            if (0xDC00..0xE000).contains(&low) {
                let cp = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                push_code_point(cp, out);
                return Ok(());
            }
            self.pos = save;
        }
        push_code_point(u32::from(unit), out);
        Ok(())
    }
}

/// Generalised UTF-8 encoding (surrogates get the three-byte form).
fn push_code_point(cp: u32, out: &mut Vec<u8>) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.push(0xC0 | (cp >> 6) as u8);
        out.push(0x80 | (cp & 0x3F) as u8);
    } else if cp < 0x10000 {
        out.push(0xE0 | (cp >> 12) as u8);
        out.push(0x80 | ((cp >> 6) & 0x3F) as u8);
        out.push(0x80 | (cp & 0x3F) as u8);
    } else {
        out.push(0xF0 | (cp >> 18) as u8);
        out.push(0x80 | ((cp >> 12) & 0x3F) as u8);
        out.push(0x80 | ((cp >> 6) & 0x3F) as u8);
        out.push(0x80 | (cp & 0x3F) as u8);
    }
}

/// Builds an object with V8's property order.
#[derive(Default)]
struct ObjectBuilder {
    members: Vec<(Vec<u8>, Value)>,
    /// Key -> position, built once an object grows past a few keys so that
    /// a hostile object with many keys stays linear.
    index: Option<std::collections::HashMap<Vec<u8>, usize>>,
}

impl ObjectBuilder {
    fn insert(&mut self, key: Vec<u8>, v: Value) {
        let found = match &self.index {
            Some(index) => index.get(&key).copied(),
            None => self.members.iter().position(|(k, _)| *k == key),
        };
        if let Some(slot) = found.and_then(|i| self.members.get_mut(i)) {
            slot.1 = v;
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), self.members.len());
        } else if self.members.len() >= 16 {
            let mut index: std::collections::HashMap<Vec<u8>, usize> =
                self.members.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
            index.insert(key.clone(), self.members.len());
            self.index = Some(index);
        }
        self.members.push((key, v));
    }

    fn finish(self) -> Vec<(Vec<u8>, Value)> {
        let mut members = self.members;
        if members.iter().any(|(k, _)| array_index(k).is_some()) {
            // Stable: array-index keys first (ascending), the rest keep insertion order.
            members.sort_by_key(|(k, _)| match array_index(k) {
                Some(i) => (0u8, i),
                None => (1u8, 0),
            });
        }
        members
    }
}

/// A property key that is an array index: the canonical decimal form of an
/// integer below 2^32 - 1. V8 lists these before all other keys.
fn array_index(key: &[u8]) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key.first() == Some(&b'0')) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in key {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    if v < u64::from(u32::MAX) {
        u32::try_from(v).ok()
    } else {
        None
    }
}

/// Writes `v` as `JSON.stringify(v)` would.
pub fn stringify(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(*n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                stringify(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                stringify(item, out);
            }
            out.push(b'}');
        }
    }
}

pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    stringify(v, &mut out);
    out
}

/// Writes a WTF-8 string as a JSON string literal with `JSON.stringify`'s
/// escaping: `"` `\` and the C0 controls are escaped (`\b \f \n \r \t`
/// short forms, the rest `\u00xx`), lone surrogates become `\udxxx`, and
/// everything else (including `/`, DEL, U+2028/9) is copied raw.
pub fn write_string(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        let lone_surrogate = c == 0xED && matches!(s.get(i + 1), Some(0xA0..=0xBF));
        if c >= 0x20 && c != b'"' && c != b'\\' && !lone_surrogate {
            i += 1;
            continue;
        }
        out.extend_from_slice(s.get(run..i).unwrap_or_default());
        if lone_surrogate {
            let b1 = u32::from(*s.get(i + 1).unwrap_or(&0));
            let b2 = u32::from(*s.get(i + 2).unwrap_or(&0));
            let unit = 0xD000 | ((b1 & 0x3F) << 6) | (b2 & 0x3F);
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(hex_digit(unit >> shift));
            }
            i += 3;
        } else {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => {
                    out.extend_from_slice(b"\\u00");
                    out.push(hex_digit(u32::from(c >> 4)));
                    out.push(hex_digit(u32::from(c)));
                }
            }
            i += 1;
        }
        run = i;
    }
    out.extend_from_slice(s.get(run..).unwrap_or_default());
    out.push(b'"');
}

/// Decimal digits of an integer without going through `fmt` (allocation
/// free; this is on the enqueue path).
pub fn write_int(v: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// The lowercase hex digit of the low four bits of `n`.
fn hex_digit(n: u32) -> u8 {
    b"0123456789abcdef".get((n & 0xF) as usize).copied().unwrap_or(b'0')
}

/// `Number.prototype.toString()` for a finite double; `null` otherwise (as
/// `JSON.stringify` writes NaN and the infinities).
pub fn write_number(v: f64, out: &mut Vec<u8>) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    if v == 0.0 {
        out.push(b'0'); // also -0
        return;
    }
    // Fast path for the common case: integers that print without exponent.
    if v.fract() == 0.0 && v.abs() < 1e15 {
        write_int(v as i64, out);
        return;
    }
    // ryu-js prints the shortest round-tripping digits in ECMAScript's
    // Number::toString layout, ties to even.
    out.extend_from_slice(ryu_js::Buffer::new().format_finite(v).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> String {
        let v = parse(s.as_bytes()).expect("parses");
        String::from_utf8_lossy(&to_vec(&v)).into_owned()
    }

    /// The last range of each member, as `records::inspect_payload` keeps
    /// them from the general path.
    fn general_members(input: &[u8]) -> Option<[Option<Range<usize>>; 3]> {
        let mut out = [None, None, None];
        for_each_member(input, |key, range| match &*key {
            b"class" => out[0] = Some(range),
            b"queue" => out[1] = Some(range),
            b"args" => out[2] = Some(range),
            _ => {}
        })
        .ok()?;
        Some(out)
    }

    #[test]
    fn payload_members_agrees_with_the_general_path() {
        let fast: &[&[u8]] = &[
            br#"{"class":"Job","queue":"q","args":[1]}"#,
            br#"{"class":"","queue":"","args":[]}"#,
            "{\"class\":\"J\u{f6}b\",\"queue\":\"q\",\"args\":[\"\\u00e9\",{\"a\":[1,{\"b\":null}]}]}".as_bytes(),
            br#"{"class":"Job","queue":"q","args":"s"}"#,
            br#"{"class":"Job","queue":"q","args":{ "a" : 1 }}"#,
        ];
        let general: &[&[u8]] = &[
            br#"{"class":"J\"b","queue":"q","args":[]}"#,
            br#"{"class":"Job","queue":"q","args":[1] }"#,
            br#"{"class":"Job","queue":"q","args": [1]}"#,
            br#"{"class":"Job","queue":"q","args":[1],"queue":"r"}"#,
            br#"{"queue":"q","class":"Job","args":[1]}"#,
            br#"{"class":"Job","queue":"q","args":[01]}"#,
            br#"{"class":"Job","queue":"q","args":[1]}x"#,
            br#"{"class":"Job","queue":"q","args":[1]} "#,
            br#"{"class":1,"queue":"q","args":[1]}"#,
            b"{\"class\":\"Job\",\"queue\":\"q\x01\",\"args\":[1]}",
            b"{\"class\":\"Job\xff\",\"queue\":\"q\",\"args\":[1]}",
            br#"{"class":"Job","queue":"q","args":[1]"#,
            br#"{"class":"Job","queue":"q"}"#,
        ];
        for p in fast {
            let [c, q, a] = payload_members(p).unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(p)));
            assert_eq!(general_members(p), Some([Some(c), Some(q), Some(a)]), "{}", String::from_utf8_lossy(p));
        }
        for p in general {
            assert_eq!(payload_members(p), None, "{}", String::from_utf8_lossy(p));
        }
        // Seeded mutations of the fast ones: whenever the fast path answers,
        // the general path agrees.
        let seed = std::env::var("TQ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x7471_5eed_u64);
        let mut x = seed | 1;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let alphabet = b"{}[]\",:\\ 0a-.e\x01\xc3\xa9";
        let (mut answered, mut tried) = (0, 0);
        for p in fast {
            for _ in 0..3000 {
                let mut m = p.to_vec();
                for _ in 0..1 + next(3) {
                    let i = next(m.len() + 1);
                    let c = alphabet[next(alphabet.len())];
                    match next(3) {
                        0 if i < m.len() => m[i] = c,
                        1 if i < m.len() => {
                            m.remove(i);
                        }
                        _ => m.insert(i, c),
                    }
                }
                tried += 1;
                if let Some([c, q, a]) = payload_members(&m) {
                    answered += 1;
                    assert_eq!(
                        general_members(&m),
                        Some([Some(c), Some(q), Some(a)]),
                        "seed {seed}: {}",
                        String::from_utf8_lossy(&m)
                    );
                }
            }
        }
        assert!(answered > 300 && answered < tried, "seed {seed}: {answered} of {tried} answered");
    }

    #[test]
    fn numbers_print_like_javascript() {
        // Expected strings are what node 20 prints for JSON.stringify(JSON.parse(x)).
        #[rustfmt::skip]
        let cases = [
            ("1e21", "1e+21"), ("1e-7", "1e-7"), ("123456789012345678901234567890", "1.2345678901234568e+29"),
            ("0.30000000000000004", "0.30000000000000004"), ("-0", "0"), ("1.5e300", "1.5e+300"),
            ("5e-324", "5e-324"), ("1e400", "null"), ("12345678901234567890", "12345678901234567000"),
            ("100", "100"), ("1.0", "1"), ("2.5e-6", "0.0000025"), ("0.000001", "0.000001"),
            ("123e-20", "1.23e-18"), ("-1.5", "-1.5"), ("999999999999999999999", "1e+21"),
            ("100000000000000000000", "100000000000000000000"), ("0.1", "0.1"), ("-1e-7", "-1e-7"),
            ("1E2", "100"), ("4.35", "4.35"), ("9007199254740993", "9007199254740992"),
            ("224.91397094726562", "224.91397094726562"), ("1.7976931348623157e308", "1.7976931348623157e+308"),
            // Exact ties between two shortest digit strings: ECMAScript takes the even one.
            ("2.9802322387695313e-8", "2.9802322387695312e-8"), ("5.960464477539063e-7", "5.960464477539062e-7"),
            ("1.0728836059570313e-6", "0.0000010728836059570312"),
        ];
        for (input, want) in cases {
            assert_eq!(rt(input), want, "input {input}");
        }
    }

    #[test]
    fn object_key_order_matches_v8() {
        let input = r#"{"b":1,"4294967295":2,"4294967294":3,"10":4,"2":5,"01":6,"-1":7,"1.5":8,"9007199254740993":9,"a":10,"b":11,"0":12}"#;
        assert_eq!(
            rt(input),
            r#"{"0":12,"2":5,"10":4,"4294967294":3,"b":11,"4294967295":2,"01":6,"-1":7,"1.5":8,"9007199254740993":9,"a":10}"#
        );
    }

    #[test]
    fn strings_escape_like_javascript() {
        let input =
            r#"["\ud800", "\ud83d\ude00", "\u2028", "\u0001\u001f\u007f", "é\/", "a\"b\\c\b\f\n\r\t", "\uDC00x"]"#;
        assert_eq!(
            rt(input),
            "[\"\\ud800\",\"\u{1F600}\",\"\u{2028}\",\"\\u0001\\u001f\u{7f}\",\"é/\",\"a\\\"b\\\\c\\b\\f\\n\\r\\t\",\"\\udc00x\"]"
        );
    }

    #[test]
    fn rejects_what_json_parse_rejects() {
        for bad in [
            "",
            " ",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "+1",
            "-",
            "1e",
            "[1 2]",
            "{a:1}",
            "'x'",
            "\"\\x\"",
            "\"a\nb\"",
            "nul",
            "true false",
            "[",
            "{\"a\"}",
            "\"\\u12\"",
            "NaN",
            "Infinity",
            "[1]x",
            "\u{feff}1",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "accepted {bad:?}");
            assert!(validate(bad.as_bytes()).is_err(), "validated {bad:?}");
        }
        assert!(parse(b"\"\xff\"").is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(deep.as_bytes()).is_ok());
        let too_deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(too_deep.as_bytes()).map_err(|e| e.msg), Err("nested too deeply"));
        assert_eq!(validate(too_deep.as_bytes()).map_err(|e| e.msg), Err("nested too deeply"));
        let hostile = "[".repeat(1_000_000);
        assert!(validate(hostile.as_bytes()).is_err());
    }

    #[test]
    fn object_members_gives_raw_spans() {
        let doc = br#" {"a": [1, 2] , "b":"x\u0041","a":{"c":null}} "#;
        let m = object_members(doc).expect("object");
        let spans: Vec<_> = m.iter().map(|(k, r)| (k.clone(), &doc[r.clone()])).collect();
        assert_eq!(spans[0], (b"a".to_vec(), &b"[1, 2]"[..]));
        assert_eq!(spans[1], (b"b".to_vec(), &br#""x\u0041""#[..]));
        assert_eq!(member(&m, b"a").map(|r| &doc[r.clone()]), Some(&br#"{"c":null}"#[..]));
        assert_eq!(decode_string(br#""x\u0041""#), Ok(b"xA".to_vec()));
        assert!(object_members(b"[1]").is_err());
        assert!(object_members(br#"{"a":}"#).is_err());
    }

    #[test]
    fn whitespace_is_json_whitespace_only() {
        assert!(parse(b" \t\r\n[1]\n").is_ok());
        assert!(parse("\u{a0}[1]".as_bytes()).is_err());
    }

    #[test]
    fn a_checked_member_decodes_as_a_fresh_parse_does() {
        let input = "{\"a\":\"plain\",\"b\":\"q\\\"uo\\\\te\",\"c\":\"\\u00e9\\ud800x\",\"d\":\"\",\"e\":\"é\",\"f\":1,\"g\":[1],\"h\":\"/\\/\"}".as_bytes();
        let mut seen = 0;
        for_each_member(input, |_, range| {
            let raw = &input[range];
            match (checked_string_cow(raw), decode_string_cow(raw)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(raw)),
                (a, b) => assert_eq!(a.is_err(), b.is_err(), "{}", String::from_utf8_lossy(raw)),
            }
            seen += 1;
        })
        .expect("valid JSON");
        assert_eq!(seen, 8);
        assert!(matches!(checked_string_cow(br#""plain""#), Ok(Cow::Borrowed(b"plain"))));
    }
}

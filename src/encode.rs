//! Record body → CloudWatch message text.
//!
//! Without `log_key` the message is the whole body as compact JSON: keys in record order
//! (duplicates kept), non-ASCII as raw UTF-8, no HTML escaping, invalid UTF-8 replaced by
//! U+FFFD, nested maps and arrays as JSON, non-string keys as their text. With `log_key`, a
//! string value is the message as it is and any other value is its JSON.
//!
//! Messages are written through an [`Out`]: as they are ([`Out::plain`]), or already in
//! their *wire form* ([`Out::wire`]): the inside of a JSON string literal, exactly as the
//! message stands in a PutLogEvents body. A whole-record message is JSON inside JSON, so
//! its strings are escaped twice; doing both in the one pass that reads the MessagePack
//! means the body writer only copies. An [`Out`] counts the message's own bytes (what
//! CloudWatch counts) whatever the form. [`raw_prefix`], [`truncate`] and [`pieces`] cut
//! wire forms at character boundaries by message bytes; [`unescape`] turns a wire form
//! back into the message.
//!
//! Values are transcoded straight from MessagePack bytes, so the output is valid UTF-8 by
//! construction. Nesting is tracked on a heap stack, never by recursion. A record's
//! top-level entries are written one by one, and with a [`Scratch`] kept from one record to
//! the next, an entry whose bytes repeat those of the same entry of the record before is
//! copied from what it was written as then (see `Memo`): in a chunk, the keys and most
//! metadata values repeat. This module knows nothing of batches or of CloudWatch's limits.

use std::ops::Range;

use crate::decode::{Malformed, Reader, Token};
use crate::scan;

/// How `ext` values (other than timestamps, which only appear as record times) are written:
/// `{"ext_type":<type>,"hex":"<data as lowercase hex>"}`, lossless and easy to read back.
const EXT_TYPE_KEY: &str = "ext_type";
const EXT_HEX_KEY: &str = "hex";

/// Where message text is appended, and in which form. See the module's documentation.
///
/// The buffer is bytes, but what an `Out` appends is always valid UTF-8: strings are
/// checked (only those with a non-ASCII byte need it) and invalid sequences replaced.
pub struct Out<'a> {
    buf: &'a mut Vec<u8>,
    wire: bool,
    raw: usize,
}

impl<'a> Out<'a> {
    /// Appends messages to `buf` as they are.
    pub fn plain(buf: &'a mut Vec<u8>) -> Self {
        Out {
            buf,
            wire: false,
            raw: 0,
        }
    }

    /// Appends messages to `buf` in their wire form (escaped for a JSON string literal).
    pub fn wire(buf: &'a mut Vec<u8>) -> Self {
        Out {
            buf,
            wire: true,
            raw: 0,
        }
    }

    /// Bytes of message written so far (not of its wire form).
    pub fn raw(&self) -> usize {
        self.raw
    }

    /// Message text that never needs escaping: JSON punctuation, numbers, literals, hex.
    fn ascii(&mut self, s: &str) {
        debug_assert!(!s.bytes().any(needs_escape));
        self.raw += s.len();
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn replacement(&mut self) {
        const UTF8: &[u8] = "\u{fffd}".as_bytes();
        self.raw += UTF8.len();
        self.buf.extend_from_slice(UTF8);
    }

    /// One byte of JSON punctuation.
    fn punct(&mut self, b: u8) {
        self.raw += 1;
        self.buf.push(b);
    }

    /// A `"` of the message's JSON. (Two branches of constant length: no call to copy.)
    fn quote(&mut self) {
        self.raw += 1;
        if self.wire {
            self.buf.extend_from_slice(b"\\\"");
        } else {
            self.buf.push(b'"');
        }
    }

    /// `bytes` as text (in the wire form, escaped once), invalid UTF-8 replaced.
    fn text(&mut self, bytes: &[u8]) {
        self.checked(bytes, Out::valid_text);
    }

    /// `bytes` escaped as the inside of a JSON string of the message (in the wire form,
    /// that escape escaped once more), invalid UTF-8 replaced.
    fn json_text(&mut self, bytes: &[u8]) {
        self.checked(bytes, Out::valid_json_text);
    }

    /// Writes `bytes` with `write`, which returns whether it saw a non-ASCII byte; only
    /// then is `bytes` checked for UTF-8, and if it is not, written again piece by piece
    /// with U+FFFD for each invalid sequence.
    #[inline(always)]
    fn checked(&mut self, bytes: &[u8], write: fn(&mut Self, &[u8]) -> bool) {
        let (len, raw) = (self.buf.len(), self.raw);
        if write(self, bytes) && std::str::from_utf8(bytes).is_err() {
            self.rewrite_invalid(bytes, len, raw, write);
        }
    }

    /// Takes back what `write` wrote of the invalid UTF-8 `bytes` (from `len`, `raw`) and
    /// writes it again piece by piece, with U+FFFD for each invalid sequence.
    #[cold]
    fn rewrite_invalid(
        &mut self,
        bytes: &[u8],
        len: usize,
        raw: usize,
        write: fn(&mut Self, &[u8]) -> bool,
    ) {
        self.buf.truncate(len);
        self.raw = raw;
        for chunk in bytes.utf8_chunks() {
            write(self, chunk.valid().as_bytes());
            if !chunk.invalid().is_empty() {
                self.replacement();
            }
        }
    }

    fn valid_text(&mut self, bytes: &[u8]) -> bool {
        self.raw += bytes.len();
        if self.wire {
            escape(self.buf, bytes, |buf, b| buf.extend_from_slice(once(b)))
        } else {
            self.buf.extend_from_slice(bytes);
            !bytes.is_ascii()
        }
    }

    fn valid_json_text(&mut self, bytes: &[u8]) -> bool {
        self.raw += bytes.len();
        let raw = &mut self.raw;
        if self.wire {
            escape(self.buf, bytes, |buf, b| {
                *raw += once(b).len() - 1;
                buf.extend_from_slice(twice(b));
            })
        } else {
            escape(self.buf, bytes, |buf, b| {
                let e = once(b);
                *raw += e.len() - 1;
                buf.extend_from_slice(e);
            })
        }
    }
}

/// Appends the JSON text of one complete MessagePack value.
pub fn json(value: &[u8], out: &mut Out<'_>) -> Result<(), Malformed> {
    top_json(value, out, &mut Vec::new(), None).map(|_| ())
}

/// What is kept from one value to the next so that encoding a record allocates nothing,
/// and so that what the last records repeat is not encoded again: the stack of open
/// containers, and a memo of the top-level entries of the last map (`Memo`).
#[derive(Default)]
pub struct Scratch {
    stack: Vec<Frame>,
    memo: Memo,
}

/// [`json`] of the value that `bytes` starts with, with the stack and the memo in
/// `scratch`; returns the length of that value (the bytes after it are not read). Whatever
/// `scratch` remembers, the output is the same as [`json`]'s.
pub fn json_with(
    bytes: &[u8],
    out: &mut Out<'_>,
    scratch: &mut Scratch,
) -> Result<usize, Malformed> {
    top_json(bytes, out, &mut scratch.stack, Some(&mut scratch.memo))
}

/// The value `bytes` starts with, at the top: a map entry by entry ([`map_json`]), anything
/// else by [`json_in`]. Returns the value's length.
fn top_json(
    bytes: &[u8],
    out: &mut Out<'_>,
    stack: &mut Vec<Frame>,
    memo: Option<&mut Memo>,
) -> Result<usize, Malformed> {
    let mut r = Reader::new(bytes);
    if let Token::Map(n) = r.token()? {
        let entries = bytes.get(r.position()..).unwrap_or_default();
        let rest = map_json(entries, n, out, stack, memo)?;
        return Ok(bytes.len() - rest.len());
    }
    let mut r = Reader::new(bytes);
    json_in(&mut r, out, false, stack)?;
    Ok(r.position())
}

/// The top-level entries remembered, at most this many (the first ones of a map)...
const MEMO_ENTRIES: usize = 32;
/// ...each of at most this many bytes of MessagePack (key and value).
const MEMO_ENTRY_BYTES: usize = 256;

/// The top-level entries of the last map encoded, by position: the MessagePack bytes of
/// each (key and value) and what they were written as (`"key":value`, in the form of the
/// [`Out`]). In the records of one chunk most entries repeat byte for byte from one record
/// to the next (Fluent Bit's and ECS's metadata, the keys themselves): an entry whose bytes
/// are those remembered at its position is copied from the memo instead of encoded.
///
/// The encoding of an entry depends on its bytes alone, and a MessagePack value's bytes
/// determine where it ends; so when the bytes at an entry's start begin with the
/// remembered ones, that entry is exactly them, and its text is the remembered text.
/// Entries past [`MEMO_ENTRIES`] or over [`MEMO_ENTRY_BYTES`] are not remembered; the
/// buffers are reused, so a memo allocates only while it grows to those bounds.
#[derive(Default)]
struct Memo {
    /// The form the texts are in ([`Out::wire`] or not); a change forgets them.
    wire: bool,
    entries: Vec<Entry>,
}

#[derive(Default)]
struct Entry {
    /// The MessagePack bytes of the entry; empty when nothing is remembered.
    msgpack: Vec<u8>,
    /// What they were written as, and its message bytes.
    text: Vec<u8>,
    raw: usize,
}

impl Memo {
    /// The remembered text of entry `i` if `rest` starts with that entry's bytes, and the
    /// length of those bytes.
    fn hit(&self, i: usize, rest: &[u8]) -> Option<(&Entry, usize)> {
        let e = self.entries.get(i)?;
        (!e.msgpack.is_empty() && rest.starts_with(&e.msgpack)).then_some((e, e.msgpack.len()))
    }

    /// Remembers that entry `i`, of bytes `msgpack`, was written as `text` (`raw` message
    /// bytes); forgets entry `i` if it is too large.
    fn remember(&mut self, i: usize, msgpack: &[u8], text: &[u8], raw: usize) {
        if i >= MEMO_ENTRIES {
            return;
        }
        if self.entries.len() <= i {
            self.entries.resize_with(i + 1, Entry::default);
        }
        let Some(e) = self.entries.get_mut(i) else {
            return;
        };
        e.msgpack.clear();
        e.text.clear();
        if msgpack.len() <= MEMO_ENTRY_BYTES {
            e.msgpack.extend_from_slice(msgpack);
            e.text.extend_from_slice(text);
            e.raw = raw;
        }
    }
}

/// The `n` entries of a map at the top, which `bytes` starts with (after the map's header):
/// each copied from the memo (if there is one) or encoded and remembered; the common entries
/// (a string key, a string or scalar value) are written without the container stack.
/// Returns what follows the entries.
fn map_json<'b>(
    bytes: &'b [u8],
    n: u32,
    out: &mut Out<'_>,
    stack: &mut Vec<Frame>,
    mut memo: Option<&mut Memo>,
) -> Result<&'b [u8], Malformed> {
    if let Some(memo) = memo.as_deref_mut()
        && memo.wire != out.wire
    {
        memo.wire = out.wire;
        memo.entries.clear();
    }
    // The entries not yet written, and what follows the map.
    let mut rest = bytes;
    out.punct(b'{');
    for i in 0..n as usize {
        if i > 0 {
            out.punct(b',');
        }
        if let Some((e, len)) = memo.as_deref().and_then(|m| m.hit(i, rest)) {
            out.buf.extend_from_slice(&e.text);
            out.raw += e.raw;
            rest = rest.get(len..).unwrap_or_default();
            continue;
        }
        let (start, raw) = (out.buf.len(), out.raw);
        let mut r = Reader::new(rest);
        key(&mut r, out, false)?;
        out.punct(b':');
        match r.string()? {
            Some(s) => string(s, out),
            None => json_in(&mut r, out, false, stack)?,
        }
        let (entry, tail) = rest.split_at_checked(r.position()).unwrap_or((rest, &[]));
        if let Some(memo) = memo.as_deref_mut() {
            let text = out.buf.get(start..).unwrap_or_default();
            memo.remember(i, entry, text, out.raw - raw);
        }
        rest = tail;
    }
    out.punct(b'}');
    Ok(rest)
}

/// Writes the one value at `r` (and everything nested in it), leaving `r` after it.
/// `in_key`: the value is itself a map key being rendered as text (see [`key`]).
/// `stack`: room for the open containers, innermost last.
fn json_in(
    r: &mut Reader<'_>,
    out: &mut Out<'_>,
    in_key: bool,
    stack: &mut Vec<Frame>,
) -> Result<(), Malformed> {
    stack.clear();
    loop {
        let as_key = stack.last().is_some_and(|f| f.map && f.written % 2 == 0);
        if let Some(top) = stack.last_mut() {
            top.left -= 1;
            top.written += 1;
        }
        if as_key {
            key(r, out, in_key)?;
        } else {
            match r.token()? {
                Token::Array(n) => {
                    out.punct(b'[');
                    stack.push(Frame::new(u64::from(n), false));
                }
                Token::Map(n) => {
                    out.punct(b'{');
                    stack.push(Frame::new(2 * u64::from(n), true));
                }
                scalar => scalar_json(scalar, out),
            }
        }
        // Close what is complete, then write the separator before the next item.
        loop {
            let Some(top) = stack.last() else {
                return Ok(());
            };
            if top.left > 0 {
                if top.written > 0 {
                    out.punct(if top.map && top.written % 2 == 1 {
                        b':'
                    } else {
                        b','
                    });
                }
                break;
            }
            out.punct(if top.map { b'}' } else { b']' });
            stack.pop();
        }
    }
}

struct Frame {
    left: u64,
    written: u64,
    map: bool,
}

impl Frame {
    fn new(left: u64, map: bool) -> Self {
        Frame {
            left,
            written: 0,
            map,
        }
    }
}

/// Writes a map key as a JSON string: string keys escaped, anything else as its JSON text.
///
/// A container used as a key inside a container used as a key (never seen from Fluent Bit,
/// only from hostile input) is written as `"[map]"` or `"[array]"`: that bounds the
/// recursion here to one level.
fn key(r: &mut Reader<'_>, out: &mut Out<'_>, in_key: bool) -> Result<(), Malformed> {
    // The usual key, a string, is read once; anything else is read again whole.
    if let Some(s) = r.string()? {
        string(s, out);
        return Ok(());
    }
    let raw = r.skip_value()?;
    match Reader::new(raw).token()? {
        Token::Str(s) | Token::Bin(s) => string(s, out),
        Token::Map(_) if in_key => string(b"[map]", out),
        Token::Array(_) if in_key => string(b"[array]", out),
        _ => {
            let mut text = Vec::new();
            json_in(
                &mut Reader::new(raw),
                &mut Out::plain(&mut text),
                true,
                &mut Vec::new(),
            )?;
            string(&text, out);
        }
    }
    Ok(())
}

fn scalar_json(token: Token<'_>, out: &mut Out<'_>) {
    match token {
        Token::Nil => out.ascii("null"),
        Token::Bool(b) => out.ascii(if b { "true" } else { "false" }),
        Token::Uint(v) => out.ascii(itoa::Buffer::new().format(v)),
        Token::Int(v) => out.ascii(itoa::Buffer::new().format(v)),
        Token::F32(v) if v.is_finite() => out.ascii(ryu::Buffer::new().format_finite(v)),
        Token::F64(v) if v.is_finite() => out.ascii(ryu::Buffer::new().format_finite(v)),
        Token::F32(_) | Token::F64(_) => out.ascii("null"),
        Token::Str(s) | Token::Bin(s) => string(s, out),
        Token::Ext(kind, data) => {
            out.ascii("{");
            string(EXT_TYPE_KEY.as_bytes(), out);
            out.ascii(":");
            out.ascii(itoa::Buffer::new().format(kind));
            out.ascii(",");
            string(EXT_HEX_KEY.as_bytes(), out);
            out.ascii(":");
            out.quote();
            hex(data, out);
            out.quote();
            out.ascii("}");
        }
        Token::Array(_) | Token::Map(_) => unreachable_container(out),
    }
}

/// Containers are opened by [`json`]; a scalar writer never sees one. Written as `null`
/// rather than panicking, should that ever change.
fn unreachable_container(out: &mut Out<'_>) {
    debug_assert!(false, "container passed to scalar_json");
    out.ascii("null");
}

fn hex(data: &[u8], out: &mut Out<'_>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in data {
        out.buf.push(DIGITS[usize::from(b >> 4)]);
        out.buf.push(DIGITS[usize::from(b & 0x0f)]);
    }
    out.raw += 2 * data.len();
}

/// Appends `bytes` as a JSON string literal: invalid UTF-8 becomes U+FFFD, `"` `\` and
/// control characters are escaped (as `aws-smithy-json` escapes them: `\u00xx` in lower
/// case for those without a short form), everything else (including `/`, `<`, `>`, `&`
/// and all non-ASCII) is written as it is.
pub fn string(bytes: &[u8], out: &mut Out<'_>) {
    out.quote();
    out.json_text(bytes);
    out.quote();
}

/// Appends `bytes` as plain text, invalid UTF-8 replaced by U+FFFD.
pub fn text(bytes: &[u8], out: &mut Out<'_>) {
    out.text(bytes);
}

/// The message of a `log_key` value: a string (or binary) as text without its one trailing
/// line end (`\n` or `\r\n`, which a log line read from a file or a pipe carries), anything
/// else as JSON. Nothing else is trimmed.
pub fn value_message(value: &[u8], out: &mut Out<'_>) -> Result<(), Malformed> {
    match Reader::new(value).token()? {
        Token::Str(s) | Token::Bin(s) => {
            let s = s
                .strip_suffix(b"\n")
                .map_or(s, |s| s.strip_suffix(b"\r").unwrap_or(s));
            text(s, out);
            Ok(())
        }
        _ => json(value, out),
    }
}

/// Appends `s` escaped for the inside of a JSON string literal (once), as `aws-smithy-json`
/// escapes it.
pub fn escape_into(buf: &mut Vec<u8>, s: &str) {
    escape(buf, s.as_bytes(), |buf, b| buf.extend_from_slice(once(b)));
}

/// Whether a byte must be escaped inside a JSON string: `"`, `\` and control characters.
fn needs_escape(b: u8) -> bool {
    scan::needs_escape(b)
}

/// Appends `bytes`, with `special` called (instead of copying) for each byte that
/// [`needs_escape`]; returns whether any byte is not ASCII. The bytes that need escaping
/// are ASCII, so the plain runs between them are whole characters of valid UTF-8. The scan
/// for them is [`scan::specials`]; the plain runs between them are copied whole.
#[inline]
fn escape(buf: &mut Vec<u8>, bytes: &[u8], mut special: impl FnMut(&mut Vec<u8>, u8)) -> bool {
    buf.reserve(bytes.len());
    // Bytes before `start` are written.
    let mut start = 0;
    let non_ascii = scan::specials(bytes, |at| {
        buf.extend_from_slice(bytes.get(start..at).unwrap_or_default());
        special(buf, bytes.get(at).copied().unwrap_or_default());
        start = at + 1;
    });
    buf.extend_from_slice(bytes.get(start..).unwrap_or_default());
    non_ascii
}

/// The escape of a byte that [`needs_escape`], inside a JSON string.
fn once(b: u8) -> &'static [u8] {
    match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        _ => CONTROL
            .get(usize::from(b))
            .map_or(&[][..], |e| e.as_bytes()),
    }
}

/// The escape of [`once`]'s escape: what a special byte of a string inside a JSON message
/// becomes in the PutLogEvents body.
fn twice(b: u8) -> &'static [u8] {
    match b {
        b'"' => b"\\\\\\\"",
        b'\\' => b"\\\\\\\\",
        b'\n' => b"\\\\n",
        b'\r' => b"\\\\r",
        b'\t' => b"\\\\t",
        0x08 => b"\\\\b",
        0x0c => b"\\\\f",
        _ => CONTROL_TWICE
            .get(usize::from(b))
            .map_or(&[][..], |e| e.as_bytes()),
    }
}

const CONTROL: [&str; 32] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
    "\\u0008", "\\u0009", "\\u000a", "\\u000b", "\\u000c", "\\u000d", "\\u000e", "\\u000f",
    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
    "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

const CONTROL_TWICE: [&str; 32] = [
    "\\\\u0000",
    "\\\\u0001",
    "\\\\u0002",
    "\\\\u0003",
    "\\\\u0004",
    "\\\\u0005",
    "\\\\u0006",
    "\\\\u0007",
    "\\\\u0008",
    "\\\\u0009",
    "\\\\u000a",
    "\\\\u000b",
    "\\\\u000c",
    "\\\\u000d",
    "\\\\u000e",
    "\\\\u000f",
    "\\\\u0010",
    "\\\\u0011",
    "\\\\u0012",
    "\\\\u0013",
    "\\\\u0014",
    "\\\\u0015",
    "\\\\u0016",
    "\\\\u0017",
    "\\\\u0018",
    "\\\\u0019",
    "\\\\u001a",
    "\\\\u001b",
    "\\\\u001c",
    "\\\\u001d",
    "\\\\u001e",
    "\\\\u001f",
];

/// What ends a message that was cut to fit CloudWatch's event size.
pub const TRUNCATED_SUFFIX: &str = "[Truncated...]";

/// The longest start of the wire form `wire` whose message is at most `max` bytes, cut
/// between characters (never inside an escape): its end in `wire`, and its message bytes.
pub fn raw_prefix(wire: &[u8], max: usize) -> (usize, usize) {
    let bytes = wire;
    let (mut at, mut raw) = (0, 0);
    while let Some(&b) = bytes.get(at) {
        let (step, message) = match b {
            b'\\' if bytes.get(at + 1) == Some(&b'u') => (6, 1),
            b'\\' => (2, 1),
            0x00..=0x7f => (1, 1),
            0xc0..=0xdf => (2, 2),
            0xe0..=0xef => (3, 3),
            _ => (4, 4),
        };
        if raw + message > max {
            break;
        }
        at = (at + step).min(bytes.len());
        raw += message;
    }
    (at, raw)
}

/// Cuts the wire form `message[start..]` (of `raw` message bytes) so that its message is
/// at most `max` bytes, at a character boundary, ending with [`TRUNCATED_SUFFIX`].
/// Returns the message bytes left, or `None` when it already fit.
pub fn truncate(message: &mut Vec<u8>, start: usize, raw: usize, max: usize) -> Option<usize> {
    if raw <= max {
        return None;
    }
    let keep = max.saturating_sub(TRUNCATED_SUFFIX.len());
    let (end, kept) = raw_prefix(message.get(start..).unwrap_or_default(), keep);
    message.truncate(start + end);
    message.extend_from_slice(TRUNCATED_SUFFIX.as_bytes());
    Some(kept + TRUNCATED_SUFFIX.len())
}

/// Cuts the wire form `message` into consecutive pieces whose messages are at most `max`
/// bytes, at character boundaries, losing nothing. Returns byte ranges of `message` with
/// their message bytes. `max` must be at least 6 (one escaped character).
pub fn pieces(message: &[u8], max: usize) -> Vec<(Range<usize>, usize)> {
    let max = max.max(6);
    let mut out = Vec::new();
    let mut start = 0;
    while start < message.len() {
        let (end, raw) = raw_prefix(message.get(start..).unwrap_or_default(), max);
        out.push((start..start + end, raw));
        start += end.max(1);
    }
    out
}

/// The message a wire form stands for (the inverse of writing it through [`Out::wire`]).
/// An escape that is not one (never written by this module) is kept as it is; invalid
/// UTF-8 (never written either) is replaced.
pub fn unescape(wire: &[u8]) -> String {
    let wire = String::from_utf8_lossy(wire);
    let mut out = String::with_capacity(wire.len());
    let mut rest = &*wire;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let escape = &rest[i..];
        let (c, len) = match escape.as_bytes().get(1) {
            Some(b'"') => (Some('"'), 2),
            Some(b'\\') => (Some('\\'), 2),
            Some(b'/') => (Some('/'), 2),
            Some(b'n') => (Some('\n'), 2),
            Some(b'r') => (Some('\r'), 2),
            Some(b't') => (Some('\t'), 2),
            Some(b'b') => (Some('\u{8}'), 2),
            Some(b'f') => (Some('\u{c}'), 2),
            Some(b'u') => (
                escape
                    .get(2..6)
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32),
                6,
            ),
            _ => (None, 1),
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(escape.get(..len).unwrap_or(escape)),
        }
        rest = escape.get(len..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form as serde_json would write the message inside a JSON string.
    fn serde_wire(message: &str) -> String {
        let quoted = serde_json::to_string(message).unwrap();
        quoted[1..quoted.len() - 1].to_owned()
    }

    /// Writes a message both ways with `write` and checks that they agree: the wire form
    /// is the message escaped (as serde_json escapes it), both count the message's bytes,
    /// and unescaping the wire form gives the message back. Returns the message.
    fn both(write: impl Fn(&mut Out<'_>) -> Result<(), Malformed>) -> Result<String, Malformed> {
        let (mut plain, mut wire) = (b"<".to_vec(), b"<".to_vec());
        let mut p = Out::plain(&mut plain);
        write(&mut p)?;
        let p_raw = p.raw();
        let mut w = Out::wire(&mut wire);
        write(&mut w)?;
        let w_raw = w.raw();
        let plain = std::str::from_utf8(&plain[1..]).expect("valid UTF-8");
        let wire = std::str::from_utf8(&wire[1..]).expect("valid UTF-8");
        assert_eq!(p_raw, plain.len());
        assert_eq!(w_raw, plain.len());
        assert_eq!(wire, serde_wire(plain));
        assert_eq!(unescape(wire.as_bytes()), plain);
        Ok(plain.to_owned())
    }

    fn to_json(value: &[u8]) -> String {
        both(|out| json(value, out)).unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(to_json(&[0xc0]), "null");
        assert_eq!(to_json(&[0xc3]), "true");
        assert_eq!(
            to_json(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "18446744073709551615"
        );
        assert_eq!(
            to_json(&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            "-9223372036854775808"
        );
        let mut f = vec![0xcb];
        f.extend_from_slice(&1.0f64.to_be_bytes());
        assert_eq!(to_json(&f), "1.0");
        let mut nan = vec![0xcb];
        nan.extend_from_slice(&f64::NAN.to_be_bytes());
        assert_eq!(to_json(&nan), "null");
        assert_eq!(
            to_json(&[0xd5, 0x05, 0x01, 0x02]),
            r#"{"ext_type":5,"hex":"0102"}"#
        );
    }

    #[test]
    fn strings_escape_only_what_json_requires() {
        let out = both(|out| {
            string("日本語 \"q\" \\ \t\n\u{1}</a>&".as_bytes(), out);
            Ok(())
        });
        assert_eq!(out.unwrap(), r#""日本語 \"q\" \\ \t\n\u0001</a>&""#);
        let out = both(|out| {
            string(b"\xff\xfebad \xc3", out);
            Ok(())
        });
        assert_eq!(out.unwrap(), "\"\u{fffd}\u{fffd}bad \u{fffd}\"");
    }

    #[test]
    fn maps_keep_order_duplicates_and_render_odd_keys() {
        // {"b":1, "a":[true,{}], "b":2, 7:"x", nil: 0}
        let v = [
            0x85, 0xa1, b'b', 0x01, 0xa1, b'a', 0x92, 0xc3, 0x80, 0xa1, b'b', 0x02, 0x07, 0xa1,
            b'x', 0xc0, 0x00,
        ];
        assert_eq!(
            to_json(&v),
            r#"{"b":1,"a":[true,{}],"b":2,"7":"x","null":0}"#
        );
        assert_eq!(to_json(&[0x80]), "{}");
        assert_eq!(to_json(&[0x90]), "[]");
        assert_eq!(to_json(&[0x91, 0x91, 0x90]), "[[[]]]");
    }

    #[test]
    fn container_keys_render_as_text_without_deep_recursion() {
        // {[1]: 2}
        assert_eq!(to_json(&[0x81, 0x91, 0x01, 0x02]), r#"{"[1]":2}"#);
        // {{{[]: 1}: 2}: 3}
        let v = [0x81, 0x81, 0x81, 0x90, 0x01, 0x02, 0x03];
        assert_eq!(to_json(&v), r#"{"{\"[map]\":2}":3}"#);
    }

    #[test]
    fn deep_nesting_uses_the_heap() {
        let depth = 200_000;
        let mut v = vec![0x91; depth];
        v.push(0x01);
        let out = to_json(&v);
        assert_eq!(out.len(), 2 * depth + 1);
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert_eq!(
            json(&[0x82, 0xa1, b'a'], &mut Out::wire(&mut Vec::new())),
            Err(Malformed::Truncated)
        );
    }

    #[test]
    fn log_key_values() {
        let out = both(|out| {
            value_message(&[0xa2, b'h', b'i'], out)?;
            value_message(&[0x2a], out)?;
            value_message(&[0x81, 0xa1, b'k', 0xc2], out)
        });
        assert_eq!(out.unwrap(), r#"hi42{"k":false}"#);
        for (raw, want) in [
            (&b"a\n"[..], "a"),
            (b"a\r\n", "a"),
            (b"a\n\n", "a\n"),
            (b" a \r", " a \r"),
            (b"\n", ""),
        ] {
            let mut v = vec![0xa0 | raw.len() as u8];
            v.extend_from_slice(raw);
            assert_eq!(both(|out| value_message(&v, out)).unwrap(), want, "{raw:?}");
        }
    }

    /// The wire form of `message`, and its message bytes.
    fn wire(message: &str) -> (Vec<u8>, usize) {
        let mut w = Vec::new();
        let mut out = Out::wire(&mut w);
        text(message.as_bytes(), &mut out);
        let raw = out.raw();
        (w, raw)
    }

    #[test]
    fn pieces_lose_nothing_and_respect_characters_and_escapes() {
        let m = format!(
            "{}{}\"\n\u{1}{}",
            "a".repeat(5),
            "日".repeat(5),
            "\\".repeat(7)
        );
        let (w, raw) = wire(&m);
        assert_eq!(raw, m.len());
        let p = pieces(&w, 7);
        assert!(p.iter().all(|(r, n)| *n <= 7 && !r.is_empty()));
        assert!(p.iter().all(|(r, n)| unescape(&w[r.clone()]).len() == *n));
        let joined: String = p.iter().map(|(r, _)| unescape(&w[r.clone()])).collect();
        assert_eq!(joined, m);
        assert_eq!(pieces(b"", 10), Vec::new());
        assert_eq!(pieces(b"abc", 10), vec![(0..3, 3)]);
    }

    #[test]
    fn truncate_at_char_boundary_outside_escapes() {
        let m = format!("ab{}", "é\"".repeat(20));
        let (mut w, raw) = wire(&m);
        let kept = truncate(&mut w, 2, raw - 2, 20).unwrap();
        let message = unescape(&w[2..]);
        assert_eq!(message.len(), kept);
        assert!(kept <= 20 && message.ends_with(TRUNCATED_SUFFIX));
        assert!(m[2..].starts_with(message.strip_suffix(TRUNCATED_SUFFIX).unwrap()));
        let (mut short, raw) = wire("a\"c");
        assert_eq!(truncate(&mut short, 0, raw, 3), None);
    }

    /// The whole value through the container stack alone, without [`map_json`] or a memo:
    /// what [`json_with`] must agree with.
    fn generic(value: &[u8], out: &mut Out<'_>) -> Result<(), Malformed> {
        json_in(&mut Reader::new(value), out, false, &mut Vec::new())
    }

    /// Keys of each kind: strings (escapes, non-ASCII, invalid UTF-8, str8), binary,
    /// integers, nil, an array and a map.
    const KEYS: &[&[u8]] = &[
        b"\xa3log",
        b"\xa6source",
        b"\xa1\"",
        b"\xa2\xff\xfe",
        b"\xd9\x03a\nb",
        b"\xc4\x01b",
        b"\x07",
        b"\xc0",
        b"\x91\x01",
        b"\x81\x90\x01",
    ];

    /// Values of each kind, nested ones among them.
    const VALUES: &[&[u8]] = &[
        b"\xa6stdout",
        b"\xa6stderr",
        b"\xa7a\"\\\x01\xc3\xa9z",
        b"\xa3x\xc3(",
        b"\x2a",
        b"\xd0\xf0",
        b"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00",
        b"\xc3",
        b"\xd5\x05\x01\x02",
        b"\x82\xa1k\xa1v\xa1n\x92\x01\xc0",
        b"\x81\x91\xa1\"\x80",
    ];

    /// A string value of `bytes` (str 8 or str 16).
    fn str_value(bytes: &[u8]) -> Vec<u8> {
        let mut v = match u8::try_from(bytes.len()) {
            Ok(n) => vec![0xd9, n],
            Err(_) => [&[0xda][..], &(bytes.len() as u16).to_be_bytes()].concat(),
        };
        v.extend_from_slice(bytes);
        v
    }

    /// A map of `entries`, as map 16 when `wide` (else the smallest header).
    fn map(entries: &[Vec<u8>], wide: bool) -> Vec<u8> {
        let mut v = match entries.len() {
            n if n < 16 && !wide => vec![0x80 | n as u8],
            n => [&[0xde][..], &(n as u16).to_be_bytes()].concat(),
        };
        v.extend(entries.iter().flatten());
        v
    }

    #[test]
    fn the_memo_never_changes_the_output() {
        let entry = |k: usize, v: usize| [KEYS[k], VALUES[v]].concat();
        let first: Vec<Vec<u8>> = (0..40)
            .map(|i| entry(i % KEYS.len(), i % VALUES.len()))
            .collect();
        let mut second = first.clone();
        second[3] = entry(0, 1);
        let long = [KEYS[0], &str_value(&[b'"'; 300])].concat();
        second[5] = long.clone();
        let values = [
            map(&first, false),
            map(&first, false),
            map(&second, true),
            map(&second, true),
            map(&first[..2], false),
            vec![0x92, 0x01, 0x80],
            map(&[long.clone(), long], false),
            map(&[], false),
        ];
        let mut scratch = Scratch::default();
        for wire in [true, false, true] {
            for value in &values {
                let (mut want, mut got) = (Vec::new(), Vec::new());
                let (mut w, mut g) = if wire {
                    (Out::wire(&mut want), Out::wire(&mut got))
                } else {
                    (Out::plain(&mut want), Out::plain(&mut got))
                };
                generic(value, &mut w).unwrap();
                // What follows the value is not read.
                let then_invalid = [&value[..], &[0xc1]].concat();
                let len = json_with(&then_invalid, &mut g, &mut scratch).unwrap();
                assert_eq!(len, value.len());
                let raw = (g.raw(), w.raw());
                assert_eq!((raw.0, &got), (raw.1, &want), "{value:02x?}");
            }
        }
    }

    proptest::proptest! {
        /// Records that mostly repeat one another (a base map with a few entries changed
        /// and its end cut off), in either form, through one memo: always what the
        /// container stack alone writes.
        #[test]
        fn any_records_through_the_memo_agree(
            base in proptest::collection::vec((0..KEYS.len(), 0..VALUES.len()), 0..40),
            records in proptest::collection::vec(
                (
                    proptest::collection::vec((0usize..40, 0..KEYS.len(), 0..VALUES.len()), 0..3),
                    0usize..45,
                    proptest::bool::ANY,
                    proptest::bool::ANY,
                ),
                1..12,
            ),
            text in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            let mut scratch = Scratch::default();
            for (changes, len, wire, wide) in records {
                let mut entries: Vec<Vec<u8>> =
                    base.iter().map(|&(k, v)| [KEYS[k], VALUES[v]].concat()).collect();
                for (at, k, v) in changes {
                    let n = entries.len();
                    if n > 0 {
                        // A changed value, or a random string.
                        entries[at % n] = if v == 0 {
                            [KEYS[k], &str_value(&text)].concat()
                        } else {
                            [KEYS[k], VALUES[v]].concat()
                        };
                    }
                }
                entries.truncate(len);
                let value = map(&entries, wide);
                let (mut want, mut got) = (Vec::new(), Vec::new());
                let (mut w, mut g) = if wire {
                    (Out::wire(&mut want), Out::wire(&mut got))
                } else {
                    (Out::plain(&mut want), Out::plain(&mut got))
                };
                generic(&value, &mut w).unwrap();
                let len = json_with(&value, &mut g, &mut scratch).unwrap();
                proptest::prop_assert_eq!(len, value.len());
                let raw = (g.raw(), w.raw());
                proptest::prop_assert_eq!((raw.0, &got), (raw.1, &want));
                let want_raw = raw.1;
                let mut alone = Vec::new();
                let mut a = if wire { Out::wire(&mut alone) } else { Out::plain(&mut alone) };
                json(&value, &mut a).unwrap();
                let raw = a.raw();
                proptest::prop_assert_eq!((raw, &alone), (want_raw, &want));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_agrees_in_both_forms(
            s in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            key in "[\\x00-\\x7f\"\\\\é日\u{fffd}𝄞]{0,40}",
        ) {
            // {key: s, "n": [s as bin]}
            let mut v = vec![0x82, 0xd9, key.len() as u8];
            v.extend_from_slice(key.as_bytes());
            v.extend_from_slice(&[0xd9, s.len() as u8]);
            v.extend_from_slice(&s);
            v.extend_from_slice(&[0xa1, b'n', 0x91, 0xc4, s.len() as u8]);
            v.extend_from_slice(&s);
            to_json(&v);
            both(|out| value_message(&v[v.len() - s.len() - 2..], out)).unwrap();
            both(|out| { text(&s, out); Ok(()) }).unwrap();
        }
    }
}

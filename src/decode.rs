//! MessagePack chunk → records.
//!
//! A chunk is what Fluent Bit hands to `FLBPluginFlushCtx`: MessagePack values back to back,
//! one per record, either `[timestamp, body]` (Fluent Bit 1.x) or
//! `[[timestamp, metadata], body]` (2.1+). This module finds each record's time and the bytes
//! of its body map, borrowing from the chunk; it knows nothing of JSON or CloudWatch. A
//! caller that reads each body whole anyway (the encoder) can have it found that way
//! ([`Records::next_read`]), so that a record is walked once instead of skipped and read.
//!
//! Nothing here recurses: skipping a value counts the items still owed instead of descending,
//! so a body nested 100,000 deep costs no stack. A record that is well-formed MessagePack but
//! not an event is skipped on its own; bytes that are not MessagePack at all end the chunk
//! (there is no way to find where the next record starts).

use std::fmt;

/// One token of MessagePack: a scalar, or the header of a container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token<'a> {
    Nil,
    Bool(bool),
    /// Non-negative integers of any encoding.
    Uint(u64),
    /// Negative integers.
    Int(i64),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
    Array(u32),
    Map(u32),
}

/// Why bytes could not be read as MessagePack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The data ends inside a value.
    Truncated,
    /// 0xc1, the one byte MessagePack never uses.
    InvalidByte(u8),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Truncated => f.write_str("data ends inside a value"),
            Malformed::InvalidByte(b) => write!(f, "byte 0x{b:02x} is not MessagePack"),
        }
    }
}

/// A cursor over MessagePack bytes that yields borrowed tokens.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Byte offset of the next token.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Malformed::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len8(&mut self) -> Result<usize, Malformed> {
        Ok(usize::from(self.byte()?))
    }

    fn len16(&mut self) -> Result<usize, Malformed> {
        Ok(usize::from(u16::from_be_bytes(self.be()?)))
    }

    fn len32(&mut self) -> Result<usize, Malformed> {
        // A length above the address space cannot be satisfied by any chunk: truncated.
        usize::try_from(u32::from_be_bytes(self.be()?)).map_err(|_| Malformed::Truncated)
    }

    fn ext(&mut self, len: usize) -> Result<Token<'a>, Malformed> {
        let kind = self.byte()? as i8;
        Ok(Token::Ext(kind, self.take(len)?))
    }

    /// Reads the next token. Container tokens carry their item count; their items follow.
    pub fn token(&mut self) -> Result<Token<'a>, Malformed> {
        let b = self.byte()?;
        Ok(match b {
            0x00..=0x7f => Token::Uint(u64::from(b)),
            0x80..=0x8f => Token::Map(u32::from(b & 0x0f)),
            0x90..=0x9f => Token::Array(u32::from(b & 0x0f)),
            0xa0..=0xbf => Token::Str(self.take(usize::from(b & 0x1f))?),
            0xc0 => Token::Nil,
            0xc1 => return Err(Malformed::InvalidByte(b)),
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4 => {
                let n = self.len8()?;
                Token::Bin(self.take(n)?)
            }
            0xc5 => {
                let n = self.len16()?;
                Token::Bin(self.take(n)?)
            }
            0xc6 => {
                let n = self.len32()?;
                Token::Bin(self.take(n)?)
            }
            0xc7 => {
                let n = self.len8()?;
                self.ext(n)?
            }
            0xc8 => {
                let n = self.len16()?;
                self.ext(n)?
            }
            0xc9 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            0xca => Token::F32(f32::from_be_bytes(self.be()?)),
            0xcb => Token::F64(f64::from_be_bytes(self.be()?)),
            0xcc => Token::Uint(u64::from(self.byte()?)),
            0xcd => Token::Uint(u64::from(u16::from_be_bytes(self.be()?))),
            0xce => Token::Uint(u64::from(u32::from_be_bytes(self.be()?))),
            0xcf => Token::Uint(u64::from_be_bytes(self.be()?)),
            0xd0 => int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => int(i64::from_be_bytes(self.be()?)),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = self.len8()?;
                Token::Str(self.take(n)?)
            }
            0xda => {
                let n = self.len16()?;
                Token::Str(self.take(n)?)
            }
            0xdb => {
                let n = self.len32()?;
                Token::Str(self.take(n)?)
            }
            0xdc => Token::Array(u32::from(u16::from_be_bytes(self.be()?))),
            0xdd => Token::Array(u32::from_be_bytes(self.be()?)),
            0xde => Token::Map(u32::from(u16::from_be_bytes(self.be()?))),
            0xdf => Token::Map(u32::from_be_bytes(self.be()?)),
            0xe0..=0xff => Token::Int(i64::from(b as i8)),
        })
    }

    /// Reads the next token if it is a string or binary, and returns its bytes (or the
    /// error [`Reader::token`] would give); reads nothing and returns `None` if it is
    /// anything else.
    ///
    /// Cheaper than trying [`Reader::token`] on a copy of the reader, which the encoder
    /// did for every key: the copy of a reader just made stalls on its own stores.
    pub fn string(&mut self) -> Result<Option<&'a [u8]>, Malformed> {
        let b = *self.buf.get(self.pos).ok_or(Malformed::Truncated)?;
        let len = match b {
            0xa0..=0xbf => usize::from(b & 0x1f),
            0xc4..=0xc6 | 0xd9..=0xdb => {
                self.pos += 1;
                match b {
                    0xc4 | 0xd9 => self.len8()?,
                    0xc5 | 0xda => self.len16()?,
                    _ => self.len32()?,
                }
            }
            _ => return Ok(None),
        };
        if b <= 0xbf {
            self.pos += 1;
        }
        self.take(len).map(Some)
    }

    /// Skips one whole value (with everything nested in it) and returns its bytes.
    ///
    /// Iterative: it counts the values still owed, so depth costs no stack, and a container
    /// that claims more items than the data holds ends in `Truncated`, not in a long loop.
    ///
    /// The tokens of a typical record (small containers and integers, strings shorter than
    /// 64 KiB, EventTimes) are skipped here without a call; the bytes such a token skips
    /// are checked when the next byte is read, or at the end, with the same error as
    /// [`Reader::token`].
    pub fn skip_value(&mut self) -> Result<&'a [u8], Malformed> {
        let (buf, start) = (self.buf, self.pos);
        let mut pos = start;
        let mut owed: u64 = 1;
        while owed > 0 {
            owed -= 1;
            // `pos` may be past the end after a string: then this read fails.
            let b = *buf.get(pos).ok_or(Malformed::Truncated)?;
            match b {
                0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => pos += 1,
                0x80..=0x8f => {
                    owed += 2 * u64::from(b & 0x0f);
                    pos += 1;
                }
                0x90..=0x9f => {
                    owed += u64::from(b & 0x0f);
                    pos += 1;
                }
                0xa0..=0xbf => pos += 1 + usize::from(b & 0x1f),
                0xc4 | 0xd9 => {
                    let n = *buf.get(pos + 1).ok_or(Malformed::Truncated)?;
                    pos += 2 + usize::from(n);
                }
                0xc5 | 0xda => {
                    let n = buf
                        .get(pos + 1..pos + 3)
                        .and_then(|n| n.try_into().ok())
                        .map(u16::from_be_bytes)
                        .ok_or(Malformed::Truncated)?;
                    pos += 3 + usize::from(n);
                }
                // A record's EventTime.
                0xd7 => pos += 10,
                _ => {
                    self.pos = pos;
                    owed += self.skip_token()?;
                    pos = self.pos;
                }
            }
        }
        let value = buf.get(start..pos).ok_or(Malformed::Truncated)?;
        self.pos = pos;
        Ok(value)
    }

    /// Skips the next token without reading its value: returns the items that follow it
    /// (a container's), 0 for a scalar. What [`Reader::token`] checks, this checks.
    fn skip_token(&mut self) -> Result<u64, Malformed> {
        let b = self.byte()?;
        let (bytes, items) = match b {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(b & 0x0f)),
            0x90..=0x9f => (0, u64::from(b & 0x0f)),
            0xa0..=0xbf => (usize::from(b & 0x1f), 0),
            0xc1 => return Err(Malformed::InvalidByte(b)),
            0xc4 | 0xd9 => (self.len8()?, 0),
            0xc5 | 0xda => (self.len16()?, 0),
            0xc6 | 0xdb => (self.len32()?, 0),
            0xc7 => (self.len8()?.saturating_add(1), 0),
            0xc8 => (self.len16()?.saturating_add(1), 0),
            0xc9 => (self.len32()?.saturating_add(1), 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 | 0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xd6 => (5, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, u64::from(u16::from_be_bytes(self.be()?))),
            0xdd => (0, u64::from(u32::from_be_bytes(self.be()?))),
            0xde => (0, 2 * u64::from(u16::from_be_bytes(self.be()?))),
            0xdf => (0, 2 * u64::from(u32::from_be_bytes(self.be()?))),
        };
        self.take(bytes)?;
        Ok(items)
    }
}

/// MessagePack writers use the smallest encoding, but some use a signed one for a
/// non-negative number: normalise so that `Uint` means ">= 0" everywhere.
fn int(v: i64) -> Token<'static> {
    if v >= 0 {
        Token::Uint(v as u64)
    } else {
        Token::Int(v)
    }
}

/// A record's time, as Fluent Bit gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventTime {
    pub secs: i64,
    pub nanos: u32,
}

impl EventTime {
    /// Milliseconds since the Unix epoch, as CloudWatch wants them.
    pub fn as_millis(self) -> i64 {
        self.secs * 1000 + i64::from(self.nanos / 1_000_000)
    }
}

/// One log record of a chunk: its time and the MessagePack bytes of its body map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record<'a> {
    pub time: EventTime,
    /// The body: a complete MessagePack map, starting with its header.
    pub body: &'a [u8],
}

/// Why a value of the chunk is not a log record. The value itself was read and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// A group start/end marker (seconds −1/−2, OpenTelemetry inputs): no log line, by design.
    GroupMarker,
    /// The value is not `[time, body]` nor `[[time, metadata], body]`.
    NotAnEvent,
    /// The time is not an EventTime, integer or float, or is before 1970 or absurdly large.
    BadTimestamp,
    /// The body is not a map.
    BodyNotMap,
}

impl Skip {
    /// Whether skipping this is worth telling the user (markers are normal traffic).
    pub fn is_problem(self) -> bool {
        self != Skip::GroupMarker
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Skip::GroupMarker => "group marker",
            Skip::NotAnEvent => "not a [timestamp, body] event",
            Skip::BadTimestamp => "timestamp is not a valid time",
            Skip::BodyNotMap => "record body is not a map",
        })
    }
}

/// One step through a chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    Record(Record<'a>),
    Skipped(Skip),
    /// The bytes from `offset` on are not MessagePack; nothing after can be read.
    Corrupt {
        offset: usize,
        error: Malformed,
    },
}

/// Iterates over the values of a chunk. After `Item::Corrupt` it yields nothing more.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    reader: Reader<'a>,
    done: bool,
}

/// Walks a chunk, record by record.
pub fn records(chunk: &[u8]) -> Records<'_> {
    Records {
        reader: Reader::new(chunk),
        done: false,
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        if self.done || self.reader.is_empty() {
            return None;
        }
        let offset = self.reader.position();
        match self.reader.skip_value() {
            Ok(value) => Some(match parse_event(value) {
                Ok(record) => Item::Record(record),
                Err(skip) => Item::Skipped(skip),
            }),
            Err(error) => self.corrupt(offset, error),
        }
    }
}

impl<'a> Records<'a> {
    /// The next item, as [`Iterator::next`] gives it, with the body of a record also handed
    /// to `read_body`, which reads it whole (encodes it, say) and returns its length. It is
    /// called once for each `Item::Record`, and for nothing else.
    ///
    /// A record of a usual shape (see [`usual_event`]) is not skipped first: `read_body`
    /// gets the chunk from the body on and finds where the body ends, so the record is
    /// walked once. An error from `read_body` ends the chunk as `Item::Corrupt` at the
    /// record, as skipping the record would have.
    pub fn next_read(
        &mut self,
        read_body: impl FnOnce(&'a [u8]) -> Result<usize, Malformed>,
    ) -> Option<Item<'a>> {
        if self.done || self.reader.is_empty() {
            return None;
        }
        let offset = self.reader.pos;
        let rest = self.reader.buf.get(offset..).unwrap_or_default();
        match usual_head(rest) {
            Some((Ok(time), at)) => {
                let body = rest.get(at..).unwrap_or_default();
                match read_body(body) {
                    Ok(len) => {
                        self.reader.pos = offset + at + len;
                        let body = body.get(..len).unwrap_or(body);
                        Some(Item::Record(Record { time, body }))
                    }
                    Err(error) => self.corrupt(offset, error),
                }
            }
            // Markers, bad times and other shapes: skipped whole first, as by `next`.
            _ => match self.next()? {
                Item::Record(r) => match read_body(r.body) {
                    Ok(_) => Some(Item::Record(r)),
                    Err(error) => self.corrupt(offset, error),
                },
                item => Some(item),
            },
        }
    }

    /// Ends the chunk at `offset`.
    fn corrupt(&mut self, offset: usize, error: Malformed) -> Option<Item<'a>> {
        self.done = true;
        Some(Item::Corrupt { offset, error })
    }
}

/// Reads one complete value as an event. `value` is known to be well-formed.
fn parse_event(value: &[u8]) -> Result<Record<'_>, Skip> {
    usual_event(value).unwrap_or_else(|| event_by_tokens(value))
}

/// [`parse_event`] for any shape, token by token.
fn event_by_tokens(value: &[u8]) -> Result<Record<'_>, Skip> {
    let mut r = Reader::new(value);
    if r.token() != Ok(Token::Array(2)) {
        return Err(Skip::NotAnEvent);
    }
    let time = match r.token().map_err(|_| Skip::NotAnEvent)? {
        // v2: [[time, metadata], body]
        Token::Array(2) => {
            let time = parse_time(r.token().map_err(|_| Skip::NotAnEvent)?)?;
            r.skip_value().map_err(|_| Skip::NotAnEvent)?; // metadata
            time
        }
        Token::Array(_) | Token::Map(_) => return Err(Skip::NotAnEvent),
        t => parse_time(t)?,
    };
    let body_start = r.position();
    match r.token() {
        Ok(Token::Map(_)) => {}
        _ => return Err(Skip::BodyNotMap),
    }
    Ok(Record {
        time,
        body: &value[body_start..],
    })
}

/// What Fluent Bit writes for nearly every record, read without tokens:
/// `[[EventTime, {}], {…}]` (2.1+) or `[EventTime, {…}]` (1.x). `None` for any other
/// shape; for these, the same as [`event_by_tokens`].
fn usual_event(value: &[u8]) -> Option<Result<Record<'_>, Skip>> {
    let (time, at) = usual_head(value)?;
    Some(time.map(|time| Record {
        time,
        body: value.get(at..).unwrap_or_default(),
    }))
}

/// The time of a record of a usual shape (see [`usual_event`]) that `bytes` start with,
/// and where its body starts (a map header is there); `None` for any other shape. Only the
/// bytes before the body are read.
fn usual_head(bytes: &[u8]) -> Option<(Result<EventTime, Skip>, usize)> {
    // An EventTime is a fixext 8 (0xd7) of type 0.
    let (time, at) = match bytes {
        [0x92, 0x92, 0xd7, 0x00, rest @ ..] => match rest.split_first_chunk::<8>()? {
            (time, [0x80, ..]) => (time, 13),
            _ => return None,
        },
        [0x92, 0xd7, 0x00, rest @ ..] => (rest.first_chunk::<8>()?, 11),
        _ => return None,
    };
    if !matches!(bytes.get(at), Some(0x80..=0x8f | 0xde | 0xdf)) {
        return None;
    }
    Some((parse_time(Token::Ext(0, time)), at))
}

/// The largest time accepted, 9999-12-31T23:59:59Z: beyond it no clock or service agrees.
const MAX_SECS: i64 = 253_402_300_799;

fn parse_time(token: Token<'_>) -> Result<EventTime, Skip> {
    let (secs, nanos) = match token {
        Token::Ext(0, data) if data.len() == 8 => {
            let secs = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            // Fluent Bit writes markers' −1/−2 into the unsigned seconds field.
            if secs >= 0xffff_fffe {
                return Err(Skip::GroupMarker);
            }
            if nanos >= 1_000_000_000 {
                return Err(Skip::BadTimestamp);
            }
            (i64::from(secs), nanos)
        }
        Token::Uint(secs) => (i64::try_from(secs).map_err(|_| Skip::BadTimestamp)?, 0),
        Token::Int(-1 | -2) => return Err(Skip::GroupMarker),
        Token::F64(f) => split_float(f)?,
        Token::F32(f) => split_float(f64::from(f))?,
        _ => return Err(Skip::BadTimestamp),
    };
    if !(0..=MAX_SECS).contains(&secs) {
        return Err(Skip::BadTimestamp);
    }
    Ok(EventTime { secs, nanos })
}

fn split_float(f: f64) -> Result<(i64, u32), Skip> {
    if f == -1.0 || f == -2.0 {
        return Err(Skip::GroupMarker);
    }
    if !(0.0..=MAX_SECS as f64).contains(&f) {
        // Also rejects NaN.
        return Err(Skip::BadTimestamp);
    }
    let secs = f.trunc();
    let nanos = ((f - secs) * 1e9) as u32;
    Ok((secs as i64, nanos.min(999_999_999)))
}

/// Looks up a top-level key of a body map and returns the bytes of its value.
///
/// Keys compare as bytes with string and binary keys; the first match wins.
pub fn lookup<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut r = Reader::new(body);
    let Ok(Token::Map(n)) = r.token() else {
        return None;
    };
    for _ in 0..n {
        let k = r.skip_value().ok()?;
        let value = r.skip_value().ok()?;
        if let Ok(Token::Str(k) | Token::Bin(k)) = Reader::new(k).token()
            && k == key
        {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_time(secs: u32, nanos: u32) -> Vec<u8> {
        let mut v = vec![0xd7, 0x00];
        v.extend_from_slice(&secs.to_be_bytes());
        v.extend_from_slice(&nanos.to_be_bytes());
        v
    }

    fn v1(time: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x92];
        v.extend_from_slice(time);
        v.extend_from_slice(body);
        v
    }

    fn v2(time: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x92, 0x92];
        v.extend_from_slice(time);
        v.push(0x80);
        v.extend_from_slice(body);
        v
    }

    const BODY: &[u8] = &[0x81, 0xa3, b'l', b'o', b'g', 0xa2, b'h', b'i'];

    #[test]
    fn reads_v1_and_v2_events() {
        let mut chunk = v1(&event_time(1_700_000_000, 5_000_000), BODY);
        chunk.extend(v2(&event_time(1_700_000_001, 0), BODY));
        let items: Vec<_> = records(&chunk).collect();
        assert_eq!(
            items,
            vec![
                Item::Record(Record {
                    time: EventTime {
                        secs: 1_700_000_000,
                        nanos: 5_000_000
                    },
                    body: BODY
                }),
                Item::Record(Record {
                    time: EventTime {
                        secs: 1_700_000_001,
                        nanos: 0
                    },
                    body: BODY
                }),
            ]
        );
    }

    #[test]
    fn the_usual_shapes_read_as_token_by_token() {
        let times = [
            event_time(1_700_000_000, 5_000_000),
            event_time(0xffff_ffff, 0),
            event_time(1, 1_000_000_000),
        ];
        let bodies: [&[u8]; 5] = [BODY, &[0x80], &[0xde, 0, 0], &[0xa1, b'x'], &[0x90]];
        let mut usual = 0;
        for time in &times {
            for body in bodies {
                let mut v2_meta = v2(time, body);
                v2_meta[2 + time.len()] = 0x81; // metadata {} → {nil: nil}
                v2_meta.splice(3 + time.len()..3 + time.len(), [0xc0, 0xc0]);
                for value in [v1(time, body), v2(time, body), v2_meta] {
                    if let Some(fast) = usual_event(&value) {
                        usual += 1;
                        assert_eq!(fast, event_by_tokens(&value), "{value:02x?}");
                    }
                }
            }
        }
        assert_eq!(usual, 18, "v1 and v2 with empty metadata and a map body");
    }

    #[test]
    fn integer_and_float_timestamps() {
        let int = v1(&[0xce, 0x65, 0x53, 0xf1, 0x00], BODY);
        let mut float = vec![0x92, 0xcb];
        float.extend_from_slice(&1_700_000_000.25f64.to_be_bytes());
        float.extend_from_slice(BODY);
        let times: Vec<_> = records(&int)
            .chain(records(&float))
            .map(|i| match i {
                Item::Record(r) => r.time.as_millis(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(times, vec![1_700_000_000_000, 1_700_000_000_250]);
    }

    #[test]
    fn group_markers_are_skipped() {
        let chunk = [
            v2(&event_time(0xffff_ffff, 0), &[0x80]),
            v2(&event_time(0xffff_fffe, 0), &[0x80]),
            v1(&[0xff], &[0x80]), // integer −1
        ]
        .concat();
        assert!(records(&chunk).all(|i| i == Item::Skipped(Skip::GroupMarker)));
        assert_eq!(records(&chunk).count(), 3);
    }

    #[test]
    fn non_events_are_skipped_and_the_rest_read() {
        let chunk = [
            vec![0xa1, b'x'],                     // a bare string
            v1(&event_time(1, 0), &[0x91, 0xc0]), // body is an array
            v1(&[0xa1, b't'], BODY),              // time is a string
            v1(&[0xd0, 0x85], BODY),              // negative time
            v1(&event_time(1, 0), BODY),
        ]
        .concat();
        let items: Vec<_> = records(&chunk).collect();
        assert_eq!(items[0], Item::Skipped(Skip::NotAnEvent));
        assert_eq!(items[1], Item::Skipped(Skip::BodyNotMap));
        assert_eq!(items[2], Item::Skipped(Skip::BadTimestamp));
        assert_eq!(items[3], Item::Skipped(Skip::BadTimestamp));
        assert!(matches!(items[4], Item::Record(_)));
    }

    #[test]
    fn corrupt_tail_ends_the_chunk_after_good_records() {
        let mut chunk = v1(&event_time(1, 0), BODY);
        let good = chunk.len();
        chunk.extend_from_slice(&[0x92, 0xdb, 0xff, 0xff, 0xff, 0xff, b'x']);
        let items: Vec<_> = records(&chunk).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[1],
            Item::Corrupt {
                offset: good,
                error: Malformed::Truncated
            }
        );
        assert_eq!(
            records(&[0xc1]).next(),
            Some(Item::Corrupt {
                offset: 0,
                error: Malformed::InvalidByte(0xc1)
            })
        );
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        let depth = 1_000_000;
        let mut value = vec![0x91; depth];
        value.push(0xc0);
        assert_eq!(
            Reader::new(&value).skip_value().map(<[u8]>::len),
            Ok(depth + 1)
        );
        // A claimed length larger than the data is truncation, found without allocating.
        assert_eq!(
            Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).skip_value(),
            Err(Malformed::Truncated)
        );
    }

    #[test]
    fn lookup_finds_top_level_keys() {
        let body = [
            0x83, 0x01, 0xa1, b'x', 0xa1, b'a', 0x91, 0x01, 0xa3, b'l', b'o', b'g', 0xa1, b'y',
        ];
        assert_eq!(lookup(&body, b"log"), Some(&[0xa1, b'y'][..]));
        assert_eq!(lookup(&body, b"a"), Some(&[0x91, 0x01][..]));
        assert_eq!(lookup(&body, b"zz"), None);
    }

    /// Skips by reading every token, as `skip_value` did before it had `skip_token`.
    fn skip_by_tokens(buf: &[u8]) -> Result<usize, Malformed> {
        let mut r = Reader::new(buf);
        let mut owed: u64 = 1;
        while owed > 0 {
            owed -= 1;
            match r.token()? {
                Token::Array(n) => owed += u64::from(n),
                Token::Map(n) => owed += 2 * u64::from(n),
                _ => {}
            }
        }
        Ok(r.position())
    }

    proptest::proptest! {
        /// Any bytes (every first byte, lengths in and past the data): the same end or
        /// the same error as reading every token.
        #[test]
        fn skipping_agrees_with_reading(buf in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut r = Reader::new(&buf);
            let skipped = r.skip_value().map(|v| v.len());
            proptest::prop_assert_eq!(skipped, skip_by_tokens(&buf));
        }
    }

    #[test]
    fn strings_read_as_tokens_and_nothing_else_is_read() {
        for b in 0..=255u8 {
            for tail in [&[][..], &[0x00, 0x02, 0xa1, b'x', 0x01], &[0xff; 20]] {
                let buf = [&[b][..], tail].concat();
                let (mut r, mut t) = (Reader::new(&buf), Reader::new(&buf));
                match (r.string(), t.token()) {
                    (Ok(Some(s)), Ok(Token::Str(x) | Token::Bin(x))) => {
                        assert_eq!((s, r.position()), (x, t.position()), "{buf:02x?}")
                    }
                    // Not a string: left to `token` (0xc1 included).
                    (Ok(None), token) => {
                        assert!(!matches!(token, Ok(Token::Str(_) | Token::Bin(_))));
                        assert_eq!(r.position(), 0, "{buf:02x?}");
                    }
                    (Err(e), Err(x)) => assert_eq!(e, x, "{buf:02x?}"),
                    other => panic!("{buf:02x?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn skipping_agrees_with_reading_for_every_first_byte() {
        for b in 0..=255u8 {
            for tail in [&[][..], &[0x00, 0x02, 0xa1, b'x', 0x01], &[0xff; 20]] {
                let buf = [&[b][..], tail].concat();
                let mut r = Reader::new(&buf);
                let skipped = r.skip_value().map(|v| v.len());
                assert_eq!(skipped, skip_by_tokens(&buf), "{buf:02x?}");
            }
        }
    }
}

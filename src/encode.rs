//! Record body → CloudWatch message text.
//!
//! Without `log_key` the message is the whole body as compact JSON: keys in record order
//! (duplicates kept), non-ASCII as raw UTF-8, no HTML escaping, invalid UTF-8 replaced by
//! U+FFFD, nested maps and arrays as JSON, non-string keys as their text. With `log_key`, a
//! string value is the message as it is and any other value is its JSON.
//!
//! Values are transcoded straight from MessagePack bytes into the output `String`, so the
//! output is valid UTF-8 by construction. Nesting is tracked on a heap stack, never by
//! recursion. This module knows nothing of batches or of CloudWatch's limits, except
//! [`truncate`], which shortens a message at a character boundary.

use std::ops::Range;

use crate::decode::{Malformed, Reader, Token};

/// How `ext` values (other than timestamps, which only appear as record times) are written:
/// `{"ext_type":<type>,"hex":"<data as lowercase hex>"}`, lossless and easy to read back.
const EXT_TYPE_KEY: &str = "ext_type";
const EXT_HEX_KEY: &str = "hex";

/// Appends the JSON text of one complete MessagePack value.
pub fn json(value: &[u8], out: &mut String) -> Result<(), Malformed> {
    json_in(value, out, false)
}

/// `in_key`: the value is itself a map key being rendered as text (see [`key`]).
fn json_in(value: &[u8], out: &mut String, in_key: bool) -> Result<(), Malformed> {
    let mut r = Reader::new(value);
    // Open containers, innermost last.
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let as_key = stack.last().is_some_and(|f| f.map && f.written % 2 == 0);
        if let Some(top) = stack.last_mut() {
            top.left -= 1;
            top.written += 1;
        }
        if as_key {
            key(&mut r, out, in_key)?;
        } else {
            match r.token()? {
                Token::Array(n) => {
                    out.push('[');
                    stack.push(Frame::new(u64::from(n), false));
                }
                Token::Map(n) => {
                    out.push('{');
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
                    out.push(if top.map && top.written % 2 == 1 {
                        ':'
                    } else {
                        ','
                    });
                }
                break;
            }
            out.push(if top.map { '}' } else { ']' });
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
fn key(r: &mut Reader<'_>, out: &mut String, in_key: bool) -> Result<(), Malformed> {
    let raw = r.skip_value()?;
    match Reader::new(raw).token()? {
        Token::Str(s) | Token::Bin(s) => string(s, out),
        Token::Map(_) if in_key => string(b"[map]", out),
        Token::Array(_) if in_key => string(b"[array]", out),
        _ => {
            let mut text = String::new();
            json_in(raw, &mut text, true)?;
            string(text.as_bytes(), out);
        }
    }
    Ok(())
}

fn scalar_json(token: Token<'_>, out: &mut String) {
    match token {
        Token::Nil => out.push_str("null"),
        Token::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Token::Uint(v) => out.push_str(itoa::Buffer::new().format(v)),
        Token::Int(v) => out.push_str(itoa::Buffer::new().format(v)),
        Token::F32(v) if v.is_finite() => out.push_str(ryu::Buffer::new().format_finite(v)),
        Token::F64(v) if v.is_finite() => out.push_str(ryu::Buffer::new().format_finite(v)),
        Token::F32(_) | Token::F64(_) => out.push_str("null"),
        Token::Str(s) | Token::Bin(s) => string(s, out),
        Token::Ext(kind, data) => {
            out.push_str("{\"");
            out.push_str(EXT_TYPE_KEY);
            out.push_str("\":");
            out.push_str(itoa::Buffer::new().format(kind));
            out.push_str(",\"");
            out.push_str(EXT_HEX_KEY);
            out.push_str("\":\"");
            hex(data, out);
            out.push_str("\"}");
        }
        Token::Array(_) | Token::Map(_) => unreachable_container(out),
    }
}

/// Containers are opened by [`json`]; a scalar writer never sees one. Written as `null`
/// rather than panicking, should that ever change.
fn unreachable_container(out: &mut String) {
    debug_assert!(false, "container passed to scalar_json");
    out.push_str("null");
}

fn hex(data: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in data {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Appends `bytes` as a JSON string literal: invalid UTF-8 becomes U+FFFD, `"` `\` and
/// control characters are escaped, everything else (including `/`, `<`, `>`, `&` and all
/// non-ASCII) is written as it is.
pub fn string(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        escape_into(chunk.valid(), out);
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    out.push('"');
}

fn escape_into(s: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            hex(&[b], out);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// Appends `bytes` as plain text, invalid UTF-8 replaced by U+FFFD.
pub fn text(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// The message of a `log_key` value: a string (or binary) as text without its one trailing
/// line end (`\n` or `\r\n`, which a log line read from a file or a pipe carries), anything
/// else as JSON. Nothing else is trimmed.
pub fn value_message(value: &[u8], out: &mut String) -> Result<(), Malformed> {
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

/// What ends a message that was cut to fit CloudWatch's event size.
pub const TRUNCATED_SUFFIX: &str = "[Truncated...]";

/// Cuts `message[start..]` so that it is at most `max` bytes, at a character boundary,
/// ending with [`TRUNCATED_SUFFIX`]. Returns whether it was cut.
pub fn truncate(message: &mut String, start: usize, max: usize) -> bool {
    if message.len() - start <= max {
        return false;
    }
    let end = message.floor_char_boundary(start + max.saturating_sub(TRUNCATED_SUFFIX.len()));
    message.truncate(end);
    message.push_str(TRUNCATED_SUFFIX);
    true
}

/// Cuts `message` into consecutive pieces of at most `max` bytes at character boundaries,
/// losing nothing. Returns byte ranges of `message`. `max` must be at least 4 (one char).
pub fn pieces(message: &str, max: usize) -> Vec<Range<usize>> {
    let max = max.max(4);
    let mut out = Vec::with_capacity(message.len() / max + 1);
    let mut start = 0;
    while start < message.len() {
        let end = message.floor_char_boundary(start + max);
        out.push(start..end);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_json(value: &[u8]) -> String {
        let mut out = String::new();
        json(value, &mut out).unwrap();
        out
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
        let mut out = String::new();
        string("日本語 \"q\" \\ \t\n\u{1}</a>&".as_bytes(), &mut out);
        assert_eq!(out, r#""日本語 \"q\" \\ \t\n\u0001</a>&""#);
        out.clear();
        string(b"\xff\xfebad \xc3", &mut out);
        assert_eq!(out, "\"\u{fffd}\u{fffd}bad \u{fffd}\"");
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
            json(&[0x82, 0xa1, b'a'], &mut String::new()),
            Err(Malformed::Truncated)
        );
    }

    #[test]
    fn log_key_values() {
        let mut out = String::new();
        value_message(&[0xa2, b'h', b'i'], &mut out).unwrap();
        value_message(&[0x2a], &mut out).unwrap();
        value_message(&[0x81, 0xa1, b'k', 0xc2], &mut out).unwrap();
        assert_eq!(out, r#"hi42{"k":false}"#);
        for (raw, want) in [
            (&b"a\n"[..], "a"),
            (b"a\r\n", "a"),
            (b"a\n\n", "a\n"),
            (b" a \r", " a \r"),
            (b"\n", ""),
        ] {
            let mut v = vec![0xa0 | raw.len() as u8];
            v.extend_from_slice(raw);
            let mut out = String::new();
            value_message(&v, &mut out).unwrap();
            assert_eq!(out, want, "{raw:?}");
        }
    }

    #[test]
    fn pieces_lose_nothing_and_respect_characters() {
        let m = format!("{}{}", "a".repeat(5), "日".repeat(5));
        let p = pieces(&m, 7);
        assert!(p.iter().all(|r| r.len() <= 7 && !r.is_empty()));
        assert_eq!(p.iter().map(|r| &m[r.clone()]).collect::<String>(), m);
        assert_eq!(pieces("", 10), Vec::<Range<usize>>::new());
        assert_eq!(pieces("abc", 10), vec![0..3]);
    }

    #[test]
    fn truncate_at_char_boundary() {
        let mut m = String::from("ab");
        m.push_str(&"é".repeat(20));
        assert!(truncate(&mut m, 2, 20));
        assert!(m.len() - 2 <= 20);
        assert!(m.ends_with(TRUNCATED_SUFFIX));
        let mut short = String::from("abc");
        assert!(!truncate(&mut short, 0, 3));
    }
}

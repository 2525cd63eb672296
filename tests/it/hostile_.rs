//! Hostile input: chunks, records, tags and options no sane Fluent Bit sends. For each case,
//! what `prepare` reports (records kept, skips counted by reason, where the chunk stops being
//! MessagePack), checked with the fuzz target's invariants; and the same chunk flushed
//! through the C ABI on Fluent Bit's 24 KiB stack, in a child process with a task's
//! environment, into an instance whose endpoint is a closed port: it answers a code and logs
//! what it skipped. One test delivers a hostile chunk into moto, record for record.

use std::ffi::c_int;

use crate::support::*;
use flb_host::msgpack::{Format, Writer};
use flb_out_cloudwatch::config::{Config, Oversize};
use flb_out_cloudwatch::decode::{Malformed, Skip};
use flb_out_cloudwatch::encode::unescape;
use flb_out_cloudwatch::prepare::{Prepared, messages_of, prepare};

/// The invariants the fuzz target checks, shared with it.
#[path = "../../fuzz/check.rs"]
mod check;

/// The fixtures' capture day, as EventTime seconds.
const NOW: u32 = 1_795_551_844;

/// `[[time, {}], {"log": log}]`.
fn log_record(w: &mut Writer, secs: u32, log: &str) {
    w.event(Format::V2, secs, 0).string_map(&[("log", log)]);
}

fn messages(p: &Prepared) -> Vec<String> {
    (p.streams.iter())
        .flat_map(|(_, events)| messages_of(&p.messages, events))
        .collect()
}

fn skipped(p: &Prepared, skip: Skip) -> usize {
    p.report.skipped.get(&skip).copied().unwrap_or(0)
}

/// In the child: flushes each `(tag, chunk, expected code)` through the C ABI (24 KiB
/// stack) into an instance whose endpoint is a closed port, and returns `None`. In the
/// parent: runs `hostile_::<test>` as that child and returns its log.
fn flushed(test: &str, flushes: &[(&str, &[u8], c_int)]) -> Option<String> {
    if !is_child() {
        return Some(stderr(&run_child(&format!("hostile_::{test}"), &[])));
    }
    let out = plugin()
        .init(&[
            ("region", REGION),
            ("log_group_name", "/hostile"),
            ("log_stream_prefix", "h-"),
            ("auto_create_stream", "false"),
            ("endpoint", "http://127.0.0.1:9"),
            // The closed port fails at once; no backoff before answering FLB_RETRY.
            ("auto_retry_requests", "false"),
        ])
        .expect("init");
    for (tag, chunk, code) in flushes {
        assert_eq!(out.flush(tag, chunk), *code, "tag {tag:.40?}");
    }
    assert_eq!(out.exit(), FLB_OK);
    None
}

/// The plugin's log lines at `level` (`error`, ` warn`) that contain `text`.
fn lines<'a>(log: &'a str, level: &str, text: &str) -> Vec<&'a str> {
    let level = format!("[{level}]");
    (log.lines())
        .filter(|l| l.contains(&level) && l.contains(text))
        .collect()
}

/// A deterministic xorshift64 for the mutations.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// The fuzz target's check over every fixture and deterministic mutations of it:
/// truncations, bit flips, bytes that change the structure, and splices of fixtures.
#[test]
fn fuzz_invariants_hold_for_fixtures_and_mutations() {
    const STRUCTURAL: &[u8] = &[0x00, 0x80, 0x90, 0xc0, 0xc1, 0xd7, 0xdb, 0xdd, 0xdf, 0xff];
    let fixtures: Vec<Vec<u8>> = FIXTURES.iter().map(|n| fixture(n)).collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (name, f) in FIXTURES.iter().zip(&fixtures) {
        let whole = check::chunk(name, f);
        assert_eq!(whole.corrupt, None, "{name}");
        assert!(whole.events > 0, "{name}");
        for cut in (0..f.len()).step_by(f.len() / 24 + 1) {
            let s = check::chunk(name, &f[..cut]);
            assert!(s.records <= whole.records, "{name} cut at {cut}");
        }
        for _ in 0..24 {
            let mut m = f.clone();
            let i = rng.below(m.len());
            m[i] ^= 1 << rng.below(8);
            check::chunk(name, &m);
            let (i, byte) = (rng.below(m.len()), STRUCTURAL[rng.below(STRUCTURAL.len())]);
            m[i] = byte;
            check::chunk(name, &m);
        }
        for _ in 0..12 {
            let other = &fixtures[rng.below(fixtures.len())];
            let from = rng.below(other.len());
            let piece = &other[from..from + rng.below(other.len() - from)];
            let at = rng.below(f.len());
            let spliced = [&f[..at], piece, &f[at + rng.below(f.len() - at)..]].concat();
            check::chunk(name, &spliced);
        }
    }
}

/// A chunk cut anywhere keeps every record that ends before the cut and says where the
/// damage starts; so does an invalid byte between records.
#[test]
fn truncated_and_corrupted_chunks_keep_every_record_before_the_damage() {
    let mut w = Writer::new();
    let mut ends = Vec::new();
    for (i, log) in ["first", "second record", &"third ".repeat(40)]
        .iter()
        .enumerate()
    {
        log_record(&mut w, NOW + i as u32, log);
        ends.push(w.buf.len());
    }
    let chunk = w.buf;
    let mut corrupt = chunk[..ends[0]].to_vec();
    corrupt.push(0xc1);
    corrupt.extend_from_slice(&chunk[ends[0]..]);
    let cut = &chunk[..chunk.len() - 1];
    let Some(log) = flushed(
        "truncated_and_corrupted_chunks_keep_every_record_before_the_damage",
        &[("cut", cut, FLB_RETRY), ("corrupt", &corrupt, FLB_RETRY)],
    ) else {
        return;
    };
    for at in 0..=chunk.len() {
        let s = check::chunk("t", &chunk[..at]);
        let complete = ends.iter().filter(|&&end| end <= at).count();
        assert_eq!(s.records, complete, "cut at {at}");
        // The damaged record starts where the last complete one ends.
        let start = complete.checked_sub(1).map_or(0, |i| ends[i]);
        assert_eq!(s.corrupt, (start < at).then_some(start), "cut at {at}");
    }
    let p = prepare(&check::config(Some("log")), "t", &corrupt);
    assert_eq!(messages(&p), vec!["first"]);
    assert_eq!(
        p.report.corrupt,
        Some((ends[0], Malformed::InvalidByte(0xc1)))
    );
    assert_eq!(
        lines(&log, "error", "is not valid MessagePack").len(),
        2,
        "one line per damaged chunk:\n{log}"
    );
    let offset = ends[1];
    assert!(
        log.contains(&format!("chunk of tag 'cut' is not valid MessagePack at byte {offset} (data ends inside a value)")),
        "{log}"
    );
    let offset = ends[0];
    assert!(
        log.contains(&format!("at byte {offset} (byte 0xc1 is not MessagePack)")),
        "{log}"
    );
}

/// Lengths and counts that claim up to 4 GiB more than the chunk holds: found corrupt where
/// the claim starts, without allocating what they claim (see also
/// `memory_is_proportional_to_the_chunk`).
#[test]
fn length_prefixes_beyond_the_chunk_are_corrupt_not_allocated() {
    let claims: &[&[u8]] = &[
        &[0xdd, 0xff, 0xff, 0xff],             // array32 whose count is cut short
        &[0xdd, 0xff, 0xff, 0xff, 0xff],       // array of 4 Gi items
        &[0xdf, 0xff, 0xff, 0xff, 0xff],       // map of 4 Gi pairs
        &[0xdb, 0xff, 0xff, 0xff, 0xff],       // str of 4 GiB
        &[0xc6, 0xff, 0xff, 0xff, 0xff],       // bin of 4 GiB
        &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], // ext of 4 GiB
        &[0xda, 0xff, 0xff],                   // str16 of 64 KiB
        &[0xd9, 0xff],                         // str8 of 255 bytes
        &[0xd7, 0x00, 0x01],                   // fixext8 of 8 bytes
    ];
    let mut valid = Writer::new();
    log_record(&mut valid, NOW, "kept");
    let valid = valid.buf;
    // A record whose body map claims 4 Gi pairs, after a valid one.
    let mut inside = valid.clone();
    inside.extend_from_slice(&[
        0x92, 0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'k',
    ]);
    let Some(log) = flushed(
        "length_prefixes_beyond_the_chunk_are_corrupt_not_allocated",
        &[("claim", claims[1], FLB_OK), ("inside", &inside, FLB_RETRY)],
    ) else {
        return;
    };
    for claim in claims {
        let s = check::chunk("t", claim);
        assert_eq!((s.records, s.corrupt), (0, Some(0)), "{claim:02x?}");
        let after = [&valid[..], claim].concat();
        let s = check::chunk("t", &after);
        assert_eq!(
            (s.events, s.corrupt),
            (1, Some(valid.len())),
            "{claim:02x?}"
        );
    }
    let p = prepare(&check::config(None), "t", &inside);
    assert_eq!(messages(&p), vec![r#"{"log":"kept"}"#]);
    assert_eq!(p.report.corrupt, Some((valid.len(), Malformed::Truncated)));
    assert!(
        log.contains(
            "chunk of tag 'claim' is not valid MessagePack at byte 0 (data ends inside a value)"
        ),
        "{log}"
    );
}

/// Maps and arrays nested 100,000 deep: in a value, in a key, in the metadata, as the time
/// and as a whole record. Nothing recurses; the messages are exact.
#[test]
fn nesting_100000_deep_costs_no_stack() {
    const DEPTH: usize = 100_000;
    let deep = |open: &[u8], leaf: &[u8]| [open.repeat(DEPTH), leaf.to_vec()].concat();
    let arrays = deep(&[0x91], &[0xa1, b'x']);
    let maps = deep(&[0x81, 0xa1, b'm'], &[0xc0]);
    let mut w = Writer::new();
    w.event(Format::V2, NOW, 0).map(1).str("log").raw(&arrays);
    w.event(Format::V2, NOW, 0).map(1).str("log").raw(&maps);
    w.event(Format::V2, NOW, 0).map(1).raw(&arrays).uint(1); // a deep key
    w.array(2).array(2).event_time(NOW, 0).raw(&maps).map(0); // deep metadata: {}
    w.raw(&arrays); // a whole value that is no event
    w.array(2).raw(&arrays).map(0); // a deep time
    let chunk = w.buf;
    let Some(log) = flushed(
        "nesting_100000_deep_costs_no_stack",
        &[("deep", &chunk, FLB_RETRY)],
    ) else {
        return;
    };
    let s = check::chunk("deep", &chunk);
    assert_eq!((s.records, s.events, s.corrupt), (4, 4, None));
    assert_eq!(s.skipped.get(&Skip::NotAnEvent), Some(&2));
    let p = prepare(&check::config(None), "deep", &chunk);
    let m = messages(&p);
    let array_json = format!("{}\"x\"{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    assert_eq!(m[0], format!("{{\"log\":{array_json}}}"));
    assert_eq!(
        m[1],
        format!(
            "{{\"log\":{}null{}}}",
            "{\"m\":".repeat(DEPTH),
            "}".repeat(DEPTH)
        )
    );
    // A container used as a key is rendered as its JSON text, escaped.
    assert_eq!(
        m[2],
        format!(r#"{{"{}":1}}"#, array_json.replace('"', r#"\""#))
    );
    assert_eq!(m[3], "{}");
    assert_eq!(
        lines(&log, " warn", "not a [timestamp, body] event").len(),
        1,
        "{log}"
    );
}

/// A 10 MB string becomes one event of at most max_event_size bytes (or, by policy,
/// several events losing nothing, or none); its escaping cannot push it over.
#[test]
fn a_10_mb_string_is_held_to_the_event_size() {
    const LEN: usize = 10_000_000;
    // Control characters grow sixfold when escaped; invalid UTF-8 threefold.
    let pattern = b"ab\x01\"\xc3\xa9\xff";
    let big: Vec<u8> = pattern.iter().copied().cycle().take(LEN).collect();
    let mut w = Writer::new();
    w.event(Format::V2, NOW, 0).map(1).str("log").str(&big);
    log_record(&mut w, NOW, "after");
    let chunk = w.buf;
    let Some(log) = flushed(
        "a_10_mb_string_is_held_to_the_event_size",
        &[("big", &chunk, FLB_RETRY)],
    ) else {
        return;
    };
    let s = check::chunk("big", &chunk);
    assert_eq!((s.records, s.events), (2, 2));
    let policy = |log_key: Option<&str>, oversize_event| Config {
        oversize_event,
        ..check::config(log_key)
    };
    for log_key in [None, Some("log")] {
        let p = prepare(&policy(log_key, Oversize::Truncate), "big", &chunk);
        let m = messages(&p);
        assert_eq!(p.report.oversize.truncated, 1);
        assert!(
            m[0].len() <= 1_000_000 && m[0].len() > 999_000,
            "{}",
            m[0].len()
        );
        assert!(m[0].ends_with("[Truncated...]"));
        assert_eq!(m.len(), 2);
    }
    // Split, nothing is lost: the pieces are the whole JSON, escaped as serde_json does.
    let p = prepare(&policy(None, Oversize::Split), "big", &chunk);
    let escaped = serde_json::to_string(&String::from_utf8_lossy(&big)).unwrap();
    assert!(
        unescape(&p.messages) == format!(r#"{{"log":{escaped}}}{{"log":"after"}}"#),
        "split lost or changed bytes"
    );
    let o = p.report.oversize;
    assert_eq!((o.split, messages(&p).len()), (1, o.split_events + 1));
    let p = prepare(&policy(Some("log"), Oversize::Drop), "big", &chunk);
    assert_eq!(
        (p.report.oversize.dropped, messages(&p)),
        (1, vec!["after".to_owned()])
    );
    assert_eq!(
        lines(&log, " warn", "(max_event_size) truncated").len(),
        1,
        "{log}"
    );
}

/// A million records of three bytes each (`[1, {}]`), and a million more of which every
/// other body is not a map: every event kept, batched within the limits; one warning line
/// for all 500,000 skips.
#[test]
fn a_million_tiny_records() {
    const N: usize = 1_000_000;
    let tiny = [0x92, 0x01, 0x80].repeat(N);
    let mut w = Writer {
        buf: Vec::with_capacity(N * 13),
    };
    for i in 0..N as u32 {
        w.event(Format::V1, NOW + i % 3600, i);
        w.raw(if i % 2 == 0 { &[0x80] } else { &[0x90] });
    }
    let mixed = w.buf;
    let Some(log) = flushed(
        "a_million_tiny_records",
        &[("tiny", &tiny, FLB_RETRY), ("mixed", &mixed, FLB_RETRY)],
    ) else {
        return;
    };
    let mut p = prepare(&check::config(None), "tiny", &tiny);
    assert_eq!(p.report.records, N);
    let events = &mut p.streams[0].1;
    assert_eq!(events.len(), N);
    assert!(events.iter().all(|e| e.timestamp_ms == 1000 && e.size == 2));
    let batches = flb_out_cloudwatch::batch::plan(events);
    assert_eq!(batches.len(), N / 10_000);
    let p = prepare(&check::config(None), "mixed", &mixed);
    assert_eq!(messages(&p).len(), N / 2);
    assert_eq!(skipped(&p, Skip::BodyNotMap), N / 2);
    let warned = lines(&log, " warn", "record body is not a map");
    assert_eq!(warned.len(), 1, "{log}");
    assert!(
        warned[0].contains("skipped 500000 record(s) (latest of tag 'mixed')"),
        "{}",
        warned[0]
    );
}

/// Bodies of every MessagePack type but a map, in both record formats: each skipped and
/// counted, every record around them kept in order.
#[test]
fn non_map_bodies_are_skipped_and_counted() {
    let bodies: &[&[u8]] = &[
        &[0xc0],
        &[0xc3],
        &[0x00],
        &[0xff],
        &[0xca, 0x3f, 0xc0, 0, 0],
        &[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0],
        &[0xa3, b's', b't', b'r'],
        &[0xc4, 0x01, 0x00],
        &[0xd4, 0x05, 0x00],
        &[0x90],
        &[0x92, 0x80, 0x80],
    ];
    let mut w = Writer::new();
    let mut want = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        for format in [Format::V1, Format::V2] {
            w.event(format, NOW, 0).raw(body);
            let log = format!("kept {i} {format:?}");
            w.event(format, NOW, 0).string_map(&[("log", &log)]);
            want.push(log);
        }
    }
    let chunk = w.buf;
    let Some(log) = flushed(
        "non_map_bodies_are_skipped_and_counted",
        &[("bodies", &chunk, FLB_RETRY)],
    ) else {
        return;
    };
    let s = check::chunk("bodies", &chunk);
    assert_eq!(s.skipped.get(&Skip::BodyNotMap), Some(&(2 * bodies.len())));
    let p = prepare(&check::config(Some("log")), "bodies", &chunk);
    assert_eq!(messages(&p), want);
    assert!(
        log.contains("skipped 22 record(s) (latest of tag 'bodies'): record body is not a map"),
        "{log}"
    );
}

/// Times of every MessagePack type and range, in both record formats: a valid time gives
/// the event its milliseconds; group markers are skipped silently, anything else counted.
#[test]
fn timestamps_of_every_type_and_range() {
    let event_time = |secs: u32, nanos: u32| {
        let mut w = Writer::new();
        w.event_time(secs, nanos);
        w.buf
    };
    let f64 = |f: f64| [&[0xcb][..], &f.to_be_bytes()].concat();
    let f32 = |f: f32| [&[0xca][..], &f.to_be_bytes()].concat();
    let u64 = |v: u64| [&[0xcf][..], &v.to_be_bytes()].concat();
    let i64 = |v: i64| [&[0xd3][..], &v.to_be_bytes()].concat();
    const MAX_SECS: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let now = i64::from(NOW) * 1000;
    let cases: Vec<(Vec<u8>, Result<i64, Skip>)> = vec![
        (event_time(NOW, 5_999_999), Ok(now + 5)),
        (event_time(0, 0), Ok(0)),
        (event_time(0xffff_fffd, 999_999_999), Ok(4_294_967_293_999)),
        (event_time(0xffff_fffe, 0), Err(Skip::GroupMarker)),
        (event_time(0xffff_ffff, 0), Err(Skip::GroupMarker)),
        (event_time(NOW, 1_000_000_000), Err(Skip::BadTimestamp)),
        (vec![0xd6, 0x00, 0, 0, 0, 1], Err(Skip::BadTimestamp)), // ext 0 of 4 bytes
        (
            [&[0xc7, 12, 0x00][..], &[0; 12]].concat(),
            Err(Skip::BadTimestamp),
        ),
        (
            [&[0xd7, 0x01][..], &[0; 8]].concat(),
            Err(Skip::BadTimestamp),
        ), // ext 1
        (vec![0x00], Ok(0)),
        (u64(u64::from(NOW)), Ok(now)),
        (u64(MAX_SECS), Ok(MAX_SECS as i64 * 1000)),
        (u64(MAX_SECS + 1), Err(Skip::BadTimestamp)),
        (u64(u64::MAX), Err(Skip::BadTimestamp)),
        (vec![0xff], Err(Skip::GroupMarker)), // -1
        (vec![0xfe], Err(Skip::GroupMarker)), // -2
        (vec![0xfd], Err(Skip::BadTimestamp)),
        (i64(i64::MIN), Err(Skip::BadTimestamp)),
        (i64(i64::MAX), Err(Skip::BadTimestamp)),
        (f64(f64::from(NOW) + 0.25), Ok(now + 250)),
        (f64(-0.0), Ok(0)),
        (f64(f64::MIN_POSITIVE), Ok(0)),
        (f64(-1.0), Err(Skip::GroupMarker)),
        (f64(-2.0), Err(Skip::GroupMarker)),
        (f64(-0.5), Err(Skip::BadTimestamp)),
        (f64(MAX_SECS as f64 + 1.0), Err(Skip::BadTimestamp)),
        (f64(f64::NAN), Err(Skip::BadTimestamp)),
        (f64(f64::INFINITY), Err(Skip::BadTimestamp)),
        (f64(f64::NEG_INFINITY), Err(Skip::BadTimestamp)),
        (f32(1.5), Ok(1500)),
        (f32(-1.0), Err(Skip::GroupMarker)),
        (f32(f32::NAN), Err(Skip::BadTimestamp)),
        (vec![0xc0], Err(Skip::BadTimestamp)),
        (vec![0xc3], Err(Skip::BadTimestamp)),
        (vec![0xa1, b'1'], Err(Skip::BadTimestamp)),
        (vec![0xc4, 0x01, 0x01], Err(Skip::BadTimestamp)),
        (vec![0x90], Err(Skip::NotAnEvent)),
        (vec![0x80], Err(Skip::NotAnEvent)),
    ];
    let mut w = Writer::new();
    for (i, (time, _)) in cases.iter().enumerate() {
        let case = i.to_string();
        w.array(2).raw(time).string_map(&[("case", &case)]); // v1
        w.array(2)
            .array(2)
            .raw(time)
            .map(0)
            .string_map(&[("case", &case)]); // v2
    }
    let chunk = w.buf;
    let Some(log) = flushed(
        "timestamps_of_every_type_and_range",
        &[("times", &chunk, FLB_RETRY)],
    ) else {
        return;
    };
    check::chunk("times", &chunk);
    let p = prepare(&check::config(Some("case")), "times", &chunk);
    let got: Vec<(usize, i64)> = (p.streams[0].1.iter())
        .map(|e| {
            (
                unescape(&p.messages[e.message.clone()]).parse().unwrap(),
                e.timestamp_ms,
            )
        })
        .collect();
    let want_events: Vec<(usize, i64)> = (cases.iter().enumerate())
        .filter_map(|(i, (_, want))| want.ok().map(|ms| (i, ms)))
        .flat_map(|event| [event, event])
        .collect();
    assert_eq!(got, want_events);
    let markers = cases
        .iter()
        .filter(|(_, w)| *w == Err(Skip::GroupMarker))
        .count();
    assert_eq!(skipped(&p, Skip::GroupMarker), 2 * markers);
    // [[] or {}, body] is no event; as v2's inner [time, metadata] the container is the time.
    assert_eq!(skipped(&p, Skip::NotAnEvent), 2);
    let bad = 2 * cases
        .iter()
        .filter(|(_, w)| *w == Err(Skip::BadTimestamp))
        .count()
        + 2;
    assert_eq!(skipped(&p, Skip::BadTimestamp), bad);
    assert!(
        log.contains(&format!(
            "skipped {bad} record(s) (latest of tag 'times'): timestamp is not a valid time"
        )),
        "{log}"
    );
    assert!(
        !log.contains("group marker"),
        "markers are normal traffic: {log}"
    );
}

/// Empty, 10 KB, multi-byte and odd tags name valid streams (prefix + tag, `:` and `*` made
/// `.`, at most 512 bytes, cut at a character boundary) and flush like any other.
#[test]
fn empty_and_10_kb_tags() {
    let mut w = Writer::new();
    log_record(&mut w, NOW, "x");
    let chunk = w.buf;
    let long = "t".repeat(10_000);
    let wide = "日本".repeat(2_000); // 12,000 bytes, 3 a character
    let odd = "a:b*c\t\u{7f} ";
    let tags = ["", &long, &wide, odd];
    let flushes: Vec<_> = tags.iter().map(|t| (*t, &chunk[..], FLB_RETRY)).collect();
    if flushed("empty_and_10_kb_tags", &flushes).is_none() {
        return;
    }
    let stream = |tag| {
        prepare(&check::config(None), tag, &chunk).streams[0]
            .0
            .stream
            .clone()
    };
    assert_eq!(stream(""), "h-");
    assert_eq!(stream(&long), format!("h-{}", &long[..510]));
    assert_eq!(stream(&wide), format!("h-{}", &wide[..510]));
    assert_eq!(stream(odd), "h-a.b.c\t\u{7f} ");
    for tag in tags {
        check::chunk(tag, &chunk);
    }
}

/// A line break in a tag (a forward-protocol client chooses its tags) cannot start a log
/// line of its own: the logger escapes control characters in every message.
#[test]
fn a_tag_cannot_forge_log_lines() {
    let tag = "app\n[1999/01/01 00:00:00] [error] [output:cloudwatch:cloudwatch.0] forged";
    let mut w = Writer::new();
    w.event(Format::V2, NOW, 0).raw(&[0xc0]); // skipped, so logged with its tag
    if is_child() {
        flushed("", &[(tag, &w.buf, FLB_OK)]);
        return;
    }
    let log = stderr(&run_child("hostile_::a_tag_cannot_forge_log_lines", &[]));
    assert!(
        log.contains("app\\n[1999/01/01 00:00:00] [error]"),
        "the tag is logged, escaped:\n{log}"
    );
    assert!(!log.lines().any(|l| l.starts_with("[1999/")), "{log}");
}

/// Tags and keys that are not UTF-8 become U+FFFD in stream names, messages and log lines;
/// the rest of them is kept. (The test host passes tags as `&str`, so the tag goes through
/// `Instance::flush`, which the C export calls with the tag's raw bytes.)
#[test]
fn non_utf8_tags_and_keys() {
    use flb_out_cloudwatch::instance::{Instance, Outcome};
    let tag = b"\xff\xfeapp\xc3";
    let mut w = Writer::new();
    w.event(Format::V2, NOW, 0).map(3);
    w.str(b"\xff\xfe").str("v").str(b"ok\xc3").str(b"\xe9t\xe9");
    w.raw(&[0xc4, 3]).raw(b"lo\xff").str("a bin key");
    w.event(Format::V2, NOW, 0).raw(&[0xc0]); // a body that is no map, to be logged
    let chunk = w.buf;
    if is_child() {
        let props = [
            ("region", REGION),
            ("log_group_name", "/hostile"),
            ("log_stream_prefix", "h-"),
            ("auto_create_stream", "false"),
            ("endpoint", "http://127.0.0.1:9"),
            ("auto_retry_requests", "false"),
        ];
        let get = |k: &str| props.iter().find(|p| p.0 == k).map(|p| p.1.to_owned());
        let instance = Instance::start(get, Default::default()).expect("start");
        assert_eq!(instance.flush(tag, &chunk), Outcome::Retry);
        instance.exit();
        return;
    }
    let log = stderr(&run_child("hostile_::non_utf8_tags_and_keys", &[]));
    let lossy = String::from_utf8_lossy(tag);
    assert_eq!(lossy, "\u{fffd}\u{fffd}app\u{fffd}");
    check::chunk(&lossy, &chunk);
    let p = prepare(&check::config(None), &lossy, &chunk);
    assert_eq!(p.streams[0].0.stream, "h-\u{fffd}\u{fffd}app\u{fffd}");
    assert_eq!(
        messages(&p),
        vec![
            "{\"\u{fffd}\u{fffd}\":\"v\",\"ok\u{fffd}\":\"\u{fffd}t\u{fffd}\",\"lo\u{fffd}\":\"a bin key\"}"
        ]
    );
    assert!(
        log.contains("(latest of tag '\u{fffd}\u{fffd}app\u{fffd}'): record body is not a map"),
        "{log}"
    );
}

/// Options of the ECS example with `(option, value)` set in place of (or besides) theirs.
fn options_with(option: &'static str, value: &str) -> Vec<(&'static str, String)> {
    let mut props = vec![
        ("region", REGION.to_owned()),
        ("log_group_name", "/ecs/httpd".to_owned()),
        ("log_stream_name", "task-1".to_owned()),
    ];
    props.retain(|(k, _)| {
        *k != option && !(option == "log_stream_prefix" && *k == "log_stream_name")
    });
    props.push((option, value.to_owned()));
    props
}

/// Negative numbers, 100 KB strings, invalid ARNs and regions, URLs without a valid scheme
/// or with a broken host: each fails Init with one clear line. Nothing panics.
#[test]
fn absurd_options_fail_init_with_one_clear_line() {
    let huge = "x".repeat(100_000);
    let cases: Vec<(&'static str, String)> = [
        ("region", huge.as_str()),
        ("region", "-1"),
        ("region", "us_east_1"),
        ("region", "US-EAST-1"),
        ("region", "ap-northeast-1/../x"),
        ("log_group_name", "$(unclosed"),
        ("log_stream_name", &format!("$({huge}")),
        ("log_stream_prefix", &huge),
        (
            "role_arn",
            &format!("arn:aws:iam::123456789012:role/{huge}"),
        ),
        ("role_arn", "arn:aws:iam::123:role/x"),
        ("role_arn", "arn:aws:iam::123456789012:user/x"),
        ("role_arn", "arn:aws:s3:::bucket"),
        ("role_arn", "arn:aws:iam::123456789012:role/"),
        ("role_arn", "-1"),
        ("external_id", &huge),
        ("external_id", "x"),
        ("endpoint", &format!("http://{huge}")),
        ("endpoint", "ftp://example.com"),
        ("endpoint", "://example.com"),
        ("endpoint", "file:///etc/passwd"),
        ("endpoint", "javascript:alert(1)"),
        ("endpoint", "http://"),
        ("endpoint", "http://h:-1"),
        ("endpoint", "http://h:0"),
        ("endpoint", "http://h:65536"),
        ("sts_endpoint", "gopher://h"),
        ("sts_endpoint", &huge),
        ("auto_create_group", "-1"),
        ("auto_create_stream", &huge),
        ("max_event_size", "-1"),
        ("max_event_size", "-1048550"),
        ("max_event_size", "0"),
        ("max_event_size", "18446744073709551616"),
        ("max_event_size", "1e6"),
        ("max_event_size", &"9".repeat(100_000)),
        ("oversize_event", "-1"),
        ("oversize_event", &huge),
        // Passed Init before 6c4d73a; every flush then failed.
        ("endpoint", "http://["),
        ("endpoint", "http://[::1"),
        ("endpoint", "http//127.0.0.1:9"),
        ("sts_endpoint", "https://]"),
        ("region", "ap-northeast-"),
        ("log_key", &huge),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    if is_child() {
        for (option, value) in &cases {
            let props = options_with(option, value);
            let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(
                plugin().init(&props).err(),
                Some(0),
                "{option} {value:.80?}"
            );
        }
        return;
    }
    let log = stderr(&run_child(
        "hostile_::absurd_options_fail_init_with_one_clear_line",
        &[],
    ));
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("[error]")).collect();
    assert_eq!(
        errors.len(),
        cases.len(),
        "one line per failed Init:\n{log:.4000}"
    );
    // Each names its option and quotes at most the start of the value.
    for ((option, value), line) in cases.iter().zip(&errors) {
        assert!(
            line.contains(&format!("invalid '{option}' ")),
            "{value:.80?}: {line}"
        );
        assert!(line.len() < 600, "{option}: a line of {} bytes", line.len());
        if value.len() > 200 {
            assert!(line.contains(&format!("{} bytes)", value.len())), "{line}");
        }
    }
}

/// A chunk with every kind of bad record between good ones, and a corrupt tail, flushed into
/// moto: every valid record lands exactly, in time order; each kind of skip is one counted
/// warning, the damage one error line; the flush is done (`FLB_OK`), nothing to retry.
#[test]
fn every_valid_record_of_a_hostile_chunk_is_delivered() {
    let mut w = Writer::new();
    let mut want: Vec<(i64, String)> = Vec::new();
    let valid = |w: &mut Writer, secs: u32, log: &str| {
        log_record(w, secs, log);
        (
            i64::from(secs) * 1000,
            serde_json::json!({ "log": log }).to_string(),
        )
    };
    want.push(valid(&mut w, NOW + 5, "first, latest"));
    w.event(Format::V2, 0xffff_ffff, 0).map(0); // group start marker: silent
    w.event(Format::V2, NOW, 0).raw(&[0xc0]); // body nil
    want.push(valid(&mut w, NOW + 1, "\u{1}\"quoted\"\\ 日本語"));
    w.array(2).str("yesterday").map(0); // time is a string
    w.str("a bare string"); // no event at all
    w.event(Format::V1, NOW, 0).raw(&[0x91, 0x80]); // body an array
    want.push(valid(&mut w, NOW + 3, &"long ".repeat(40_000)));
    w.event(Format::V2, NOW + 2, 0).map(1).str("log");
    w.raw(&[0x91; 100_000]).str("deep"); // valid: nested 100,000 deep
    let deep = format!("{}\"deep\"{}", "[".repeat(100_000), "]".repeat(100_000));
    want.push((i64::from(NOW + 2) * 1000, format!(r#"{{"log":{deep}}}"#)));
    w.event(Format::V1, NOW + 4, 0)
        .map(1)
        .str(b"\xffkey")
        .str(b"\xc3");
    want.push((
        i64::from(NOW + 4) * 1000,
        "{\"\u{fffd}key\":\"\u{fffd}\"}".into(),
    ));
    want.push(valid(&mut w, NOW, "same time as the skipped ones"));
    let damage = w.buf.len();
    valid(&mut w, NOW, "cut short");
    let chunk = &w.buf[..w.buf.len() - 3];
    want.sort_by_key(|e| e.0); // stable: equal times keep record order
    if is_child() {
        let props = [
            ("region", REGION),
            ("log_group_name", "/hostile"),
            ("log_stream_name", "mixed"),
            ("auto_create_group", "true"),
            ("endpoint", &var("MOTO")),
            // Room for a slow machine (or valgrind): a timed-out call is tried again.
            ("retry_timeout", "60s"),
        ];
        let out = plugin().init(&props).expect("init");
        assert_eq!(out.flush("mixed", chunk), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let moto = Moto::start_at(Some(i64::from(NOW) * 1000)).expect("moto");
    let log = stderr(&run_child(
        "hostile_::every_valid_record_of_a_hostile_chunk_is_delivered",
        &[("MOTO", &moto.url())],
    ));
    let stored: Vec<(i64, String)> = (Account::source(&moto.url(), REGION)
        .events("/hostile", "mixed"))
    .into_iter()
    .map(|e| (e.timestamp, e.message))
    .collect();
    assert_eq!(stored.len(), want.len());
    assert!(
        stored == want,
        "stored events differ from the valid records"
    );
    for line in [
        "skipped 2 record(s) (latest of tag 'mixed'): record body is not a map",
        "skipped 1 record(s) (latest of tag 'mixed'): timestamp is not a valid time",
        "skipped 1 record(s) (latest of tag 'mixed'): not a [timestamp, body] event",
    ] {
        assert_eq!(lines(&log, " warn", line).len(), 1, "{line}\n{log}");
    }
    let corrupt = format!("chunk of tag 'mixed' is not valid MessagePack at byte {damage}");
    assert_eq!(lines(&log, "error", &corrupt).len(), 1, "{log}");
    assert_eq!(lines(&log, "error", "").len(), 1, "{log}");
}

/// The process's peak virtual size, which every mapping counts in, touched or not.
fn vm_peak() -> usize {
    status_kb("VmPeak") * 1024
}

/// Preparing a chunk takes memory proportional to the chunk, never to what it claims: each
/// case runs in a child of its own and may raise the peak virtual size of the process by at
/// most 32 times the chunk plus 64 MiB. (Seen: 6-byte claims of 4 GiB +0; 10 MB of control
/// characters, escaped sixfold, +90 MB; a million records +29 MB; a body nested 1,000,000
/// deep, a 24-byte frame a level, +28 MB.)
#[test]
fn memory_is_proportional_to_the_chunk() {
    const CASES: &[&str] = &["claims", "string", "records", "nesting"];
    if !is_child() {
        for case in CASES {
            // One malloc arena (a new arena maps 128 MiB for a moment, which would hide
            // what follows under the peak) and every block of 64 KiB or more mapped on
            // its own, so that the peak follows the allocations.
            let tunables = "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=65536";
            run_child(
                "hostile_::memory_is_proportional_to_the_chunk",
                &[("HOSTILE_MEMORY", case), ("GLIBC_TUNABLES", tunables)],
            );
        }
        return;
    }
    let case = var("HOSTILE_MEMORY");
    let mut w = Writer::new();
    let chunks: Vec<Vec<u8>> = match case.as_str() {
        "claims" => [0xdb, 0xc6, 0xc9, 0xdd, 0xdf]
            .iter()
            .map(|&b| vec![b, 0xff, 0xff, 0xff, 0xff, 0x00])
            .collect(),
        "string" => {
            w.event(Format::V2, NOW, 0)
                .map(1)
                .str("log")
                .str(vec![1; 10_000_000]);
            vec![w.buf]
        }
        "records" => vec![[0x92, 0x01, 0x80].repeat(1_000_000)],
        "nesting" => {
            w.event(Format::V2, NOW, 0).map(1).str("log");
            w.raw(&[0x91; 1_000_000]).raw(&[0xc0]);
            vec![w.buf]
        }
        other => panic!("no case {other}"),
    };
    for chunk in &chunks {
        let before = vm_peak();
        for config in [check::config(None), check::config(Some("log"))] {
            drop(prepare(&config, "t", chunk));
        }
        let grown = vm_peak() - before;
        let limit = 32 * chunk.len() + (64 << 20);
        eprintln!(
            "{case}: {} byte chunk, peak +{grown} bytes (limit {limit})",
            chunk.len()
        );
        assert!(grown <= limit, "{case}: {grown} > {limit}");
    }
}

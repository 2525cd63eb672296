//! The invariants of the data path for any chunk, shared by the fuzz target
//! (`fuzz_targets/chunk.rs`) and the stable smoke test (`tests/it/hostile_.rs`, which
//! includes this file with `#[path]`). Safe code using only the plugin crate, std and
//! `serde_json` (a dependency of the fuzz crate, a dev-dependency of the plugin).
//!
//! [`chunk`] panics when an invariant does not hold: that is how a fuzzer reports it.

use std::collections::BTreeMap;
use std::ops::Range;

use flb_out_cloudwatch::batch::{self, Event, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use flb_out_cloudwatch::config::{Config, MAX_NAME_BYTES, MIN_EVENT_SIZE, Oversize, StreamName};
use flb_out_cloudwatch::decode::{self, Item, Skip};
use flb_out_cloudwatch::encode::{TRUNCATED_SUFFIX, unescape};
use flb_out_cloudwatch::prepare::{Prepared, prepare};

/// Latest accepted record time (9999-12-31T23:59:59.999Z), in milliseconds.
const MAX_MS: i64 = 253_402_300_799_999;

/// What the decoder alone found in a chunk: the reference for what `prepare` reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: usize,
    pub skipped: BTreeMap<Skip, usize>,
    /// Byte offset where the chunk stops being MessagePack.
    pub corrupt: Option<usize>,
    /// Events made of whole records with the default settings.
    pub events: usize,
}

/// Streams named prefix + tag; the other settings at their defaults.
pub fn config(log_key: Option<&str>) -> Config {
    Config {
        log_key: log_key.map(String::from),
        ..Config::new("us-east-1", "/hostile", StreamName::Prefix("h-".into()))
    }
}

/// Runs `data` through `prepare` (whole records by default; whole records split at the
/// smallest `max_event_size`; `log_key` "log" with `drop`) and `batch::plan`, asserting
/// every invariant. Returns what the decoder found.
pub fn chunk(tag: &str, data: &[u8]) -> Summary {
    let mut want = Summary::default();
    for item in decode::records(data) {
        match item {
            Item::Record(_) => want.records += 1,
            Item::Skipped(skip) => *want.skipped.entry(skip).or_default() += 1,
            Item::Corrupt { offset, .. } => {
                assert!(offset < data.len(), "corrupt offset {offset} past the end");
                want.corrupt = Some(offset);
            }
        }
    }
    let small = |log_key, oversize_event| Config {
        max_event_size: MIN_EVENT_SIZE,
        oversize_event,
        ..config(log_key)
    };
    let whole = check(&config(None), tag, data, &want);
    want.events = whole.streams.iter().map(|(_, e)| e.len()).sum();
    let split = check(&small(None, Oversize::Split), tag, data, &want);
    if whole.report.oversize.truncated == 0 {
        assert_eq!(
            split.messages, whole.messages,
            "splitting lost or added bytes"
        );
    }
    check(&small(Some("log"), Oversize::Drop), tag, data, &want);
    // `add_entity`: the same records, each still accounted for, whatever its fields.
    let entity = Config {
        add_entity: true,
        ..config(None)
    };
    check(&entity, tag, data, &want);
    want
}

fn check(config: &Config, tag: &str, data: &[u8], want: &Summary) -> Prepared {
    let mut p = prepare(config, tag, data);
    let r = &p.report;
    // Every record is accounted for: events, or a counted reason.
    assert_eq!(r.records, want.records, "records");
    assert_eq!(
        r.skipped, want.skipped,
        "a record the decoder accepted was dropped"
    );
    assert_eq!(r.corrupt.map(|(offset, _)| offset), want.corrupt);
    let o = &r.oversize;
    let events: usize = p.streams.iter().map(|(_, e)| e.len()).sum();
    assert_eq!(
        events + r.missing_key + r.empty + o.dropped + o.split,
        r.records + o.split_events,
        "{r:?}"
    );
    // The events' messages are the whole buffer, each byte in exactly one event.
    let mut ranges: Vec<Range<usize>> = (p.streams.iter())
        .flat_map(|(_, e)| e.iter().map(|e| e.message.clone()))
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut end = 0;
    for range in &ranges {
        assert_eq!(range.start, end, "messages overlap or leave a gap");
        end = range.end;
    }
    assert_eq!(end, p.messages.len());

    for (destination, events) in &mut p.streams {
        let stream = &destination.stream;
        assert!(
            !stream.is_empty() && stream.len() <= MAX_NAME_BYTES,
            "{stream:?}"
        );
        assert!(!stream.contains([':', '*']), "{stream:?}");
        for e in events.iter() {
            assert!((0..=MAX_MS).contains(&e.timestamp_ms), "{e:?}");
            assert!(e.entity == 0 || p.entities.get(e.entity).is_some(), "{e:?}");
            let wire = p.messages.get(e.message.clone()).expect("a str range");
            let message = unescape(wire);
            assert_eq!(
                message.len(),
                e.size,
                "an event's size is its message's bytes"
            );
            check_message(&message, config);
        }
        let batches = batch::plan(events);
        check_batches(events, &batches);
    }
    p
}

/// Non-empty, within `max_event_size`, and a JSON object when it is a whole record not cut
/// (split pieces are checked by comparing buffers in [`chunk`]).
fn check_message(message: &str, config: &Config) {
    let max = config.max_event_size;
    assert!(!message.is_empty());
    assert!(message.len() <= max && max <= batch::MAX_MESSAGE_BYTES);
    let truncated =
        message.ends_with(TRUNCATED_SUFFIX) && message.len() + 4 > max - TRUNCATED_SUFFIX.len();
    if config.log_key.is_none() && config.oversize_event == Oversize::Truncate && !truncated {
        match serde_json::from_str::<serde_json::Value>(message) {
            Ok(value) => assert!(value.is_object(), "not an object: {message}"),
            // serde_json stops at depth 128; the encoder has no such limit.
            Err(e) if e.to_string().starts_with("recursion limit exceeded") => {}
            Err(e) => panic!("invalid JSON ({e}): {message}"),
        }
    }
}

/// Batches cover every event once, in order, each within PutLogEvents' limits.
fn check_batches(events: &[Event], batches: &[Range<usize>]) {
    let mut next = 0;
    for b in batches {
        assert_eq!(b.start, next, "batches cover every event once, in order");
        next = b.end;
        let batch = &events[b.clone()];
        assert!(!batch.is_empty() && batch.len() <= MAX_BATCH_EVENTS);
        assert!(batch.iter().map(Event::cost).sum::<usize>() <= MAX_BATCH_BYTES);
        assert!(batch.is_sorted_by_key(|e| e.timestamp_ms));
        assert!(
            batch.iter().all(|e| e.entity == batch[0].entity),
            "one entity a batch"
        );
        let span = batch[batch.len() - 1].timestamp_ms - batch[0].timestamp_ms;
        assert!(span < batch::MAX_BATCH_SPAN_MS);
    }
    assert_eq!(next, events.len());
}

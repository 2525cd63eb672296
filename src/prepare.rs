//! A chunk → events per stream, ready to batch. Pure: no I/O, no clock.
//!
//! Each record is decoded ([`crate::decode`]), its message written in its wire form (escaped
//! for the PutLogEvents body) into one buffer for the whole chunk ([`crate::encode`], with
//! one [`encode::Scratch`] for the chunk, so that entries repeated from one record to the
//! next are copied, not encoded again), held to `max_event_size` (counted in the message's
//! own bytes) by the `oversize_event` policy, and routed to its stream by the name templates
//! ([`crate::template`]): names that depend only on the tag are rendered once per chunk,
//! names from record keys once per record. With `add_entity`, a record's entity is read
//! first ([`crate::entity`]) and its message is the record without the fields the entity
//! took; its events carry the entity's number.
//! Whatever is not turned into an event is counted in a [`Report`], by reason, for the
//! instance to log.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::batch::Event;
use crate::config::{Config, Oversize, StreamName};
use crate::decode::{self, Item, Malformed, Skip};
use crate::deliver::Destination;
use crate::encode;
use crate::entity::{self, Entities};
use crate::template::{self, Context, Ecs, Needs, Template};

/// Distinct template failures reported per chunk, at most.
const MAX_FAILURES: usize = 16;
/// Distinct reasons entity fields were left out, reported per chunk, at most.
const MAX_ENTITY_PROBLEMS: usize = 16;

/// A chunk made ready to send: every message in one buffer, events grouped by stream.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Every message's wire form, end to end (valid UTF-8).
    pub messages: Vec<u8>,
    pub streams: Vec<(Destination, Vec<Event>)>,
    /// The entities the events name (`add_entity`).
    pub entities: Entities,
    pub report: Report,
}

/// What happened to the records of a chunk that did not become one event each.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records read (events or not, markers excluded).
    pub records: usize,
    pub skipped: BTreeMap<Skip, usize>,
    /// Records without the `log_key` key: not sent.
    pub missing_key: usize,
    /// Records whose message is empty (CloudWatch refuses those): not sent.
    pub empty: usize,
    /// Messages over `max_event_size`, by what the policy did to them.
    pub oversize: Oversized,
    /// Where the chunk stopped being MessagePack, and why.
    pub corrupt: Option<(usize, Malformed)>,
    /// Distinct reasons a name template fell back (e.g. "log_stream_name '$(app)': the
    /// record has no key $app; using '/fluentbit-default'").
    pub template_failures: BTreeSet<String>,
    /// Distinct reasons entity fields were left out of their entity (e.g.
    /// "kubernetes.aws_entity_cluster is a number, not a string").
    pub entity_problems: BTreeSet<String>,
}

/// Counts of messages over the size limit, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    pub truncated: usize,
    /// Messages split, and the events they became.
    pub split: usize,
    pub split_events: usize,
    pub dropped: usize,
}

impl Oversized {
    fn add(&mut self, fit: Fit) {
        match fit {
            Fit::Fits => {}
            Fit::Truncated => self.truncated += 1,
            Fit::Split(n) => {
                self.split += 1;
                self.split_events += n;
            }
            Fit::Dropped => self.dropped += 1,
        }
    }
}

/// What [`fit`] did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    Fits,
    Truncated,
    Split(usize),
    Dropped,
}

/// Decodes, encodes and routes every record of `chunk`, without ECS metadata or `$(uuid)`.
pub fn prepare(config: &Config, tag: &str, chunk: &[u8]) -> Prepared {
    prepare_with(config, tag, chunk, None, "")
}

/// Decodes, encodes and routes every record of `chunk`; `ecs` and `uuid` are the values of
/// `$(ecs_*)` and `$(uuid)`.
pub fn prepare_with(
    config: &Config,
    tag: &str,
    chunk: &[u8],
    ecs: Option<&Ecs>,
    uuid: &str,
) -> Prepared {
    let mut p = Prepared {
        messages: Vec::with_capacity(chunk.len() + chunk.len() / 4),
        ..Prepared::default()
    };
    let mut router = Router::new(config, tag, ecs, uuid);
    let mut scratch = encode::Scratch::default();
    // Events per destination, in the order destinations first appear.
    let mut streams: Vec<(Destination, Vec<Event>)> = Vec::new();
    let mut records = decode::records(chunk);
    // A record without the fields its entity took (`add_entity`).
    let mut stripped = Vec::new();
    loop {
        let start = p.messages.len();
        // Without `log_key` (and `add_entity`) the message is the whole body, written as
        // the body is read (the record is walked once); the message bytes once written.
        let mut whole = None;
        let item = match &config.log_key {
            None if !config.add_entity => records.next_read(|body| {
                let mut out = encode::Out::wire(&mut p.messages);
                let len = encode::json_with(body, &mut out, &mut scratch)?;
                whole = Some(out.raw());
                Ok(len)
            }),
            _ => records.next(),
        };
        let record = match item {
            None => break,
            Some(Item::Record(r)) => r,
            Some(Item::Skipped(skip)) => {
                *p.report.skipped.entry(skip).or_default() += 1;
                continue;
            }
            Some(Item::Corrupt { offset, error }) => {
                p.messages.truncate(start);
                p.report.corrupt = Some((offset, error));
                break;
            }
        };
        p.report.records += 1;
        let mut entity = 0;
        let body = if config.add_entity {
            let found = entity::read(record.body);
            for problem in &found.problems {
                if p.report.entity_problems.len() < MAX_ENTITY_PROBLEMS {
                    p.report.entity_problems.insert(problem.clone());
                }
            }
            match &found.entity {
                Some(e) => {
                    entity = p.entities.id(e);
                    found.strip(record.body, &mut stripped);
                    &stripped[..]
                }
                None => record.body,
            }
        } else {
            record.body
        };
        let size = match (&config.log_key, whole) {
            (None, Some(size)) => Some(size),
            (None, None) => whole_message(body, &mut p.messages, &mut scratch, &mut p.report),
            (Some(key), _) => keyed_message(body, key, &mut p.messages, &mut p.report),
        };
        let Some(size) = size else {
            p.messages.truncate(start);
            continue;
        };
        if size == 0 {
            p.report.empty += 1;
            continue;
        }
        let index = router.route(record.body, &mut streams, &mut p.report);
        let fit = fit(
            &mut p.messages,
            start,
            size,
            config.max_event_size,
            config.oversize_event,
            |message, size| Event::new(record.time.as_millis(), message, size).with_entity(entity),
            &mut streams[index].1,
        );
        p.report.oversize.add(fit);
    }
    streams.retain(|(_, events)| !events.is_empty());
    p.streams = streams;
    p
}

/// Appends the whole `body` as the message to `messages`, in its wire form; returns its
/// message bytes, or `None` (counted in `report`) if it cannot be read.
fn whole_message(
    body: &[u8],
    messages: &mut Vec<u8>,
    scratch: &mut encode::Scratch,
    report: &mut Report,
) -> Option<usize> {
    let mut out = encode::Out::wire(messages);
    match encode::json_with(body, &mut out, scratch) {
        Ok(_) => Some(out.raw()),
        Err(_) => {
            // Unreachable for a record the decoder accepted; counted rather than trusted.
            *report.skipped.entry(Skip::NotAnEvent).or_default() += 1;
            None
        }
    }
}

/// Appends the message of the value of `key` in `body` to `messages`, in its wire form;
/// returns its message bytes, or `None` (counted in `report`) if there is none.
fn keyed_message(
    body: &[u8],
    key: &str,
    messages: &mut Vec<u8>,
    report: &mut Report,
) -> Option<usize> {
    let Some(value) = decode::lookup(body, key.as_bytes()) else {
        report.missing_key += 1;
        return None;
    };
    let mut out = encode::Out::wire(messages);
    match encode::value_message(value, &mut out) {
        Ok(()) => Some(out.raw()),
        Err(_) => {
            // Unreachable for a record the decoder accepted; counted rather than trusted.
            *report.skipped.entry(Skip::NotAnEvent).or_default() += 1;
            None
        }
    }
}

/// Names records' destinations: the templates in order of precedence, with fallbacks.
struct Router<'a> {
    config: &'a Config,
    tag: &'a str,
    ecs: Option<&'a Ecs>,
    uuid: &'a str,
    /// Whether names depend on the record; if not, the one destination of the chunk.
    per_record: bool,
    chunk_destination: Option<usize>,
    /// A rendered name before cleaning.
    raw: Vec<u8>,
    group: String,
    stream: String,
}

impl<'a> Router<'a> {
    fn new(config: &'a Config, tag: &'a str, ecs: Option<&'a Ecs>, uuid: &'a str) -> Self {
        let needs_record = |t: &Template| t.needs() == Needs::Record;
        let per_record = needs_record(&config.log_group_name)
            || config.log_group_template.as_ref().is_some_and(needs_record)
            || config
                .log_stream_template
                .as_ref()
                .is_some_and(needs_record)
            || matches!(&config.log_stream, StreamName::Fixed(t) if needs_record(t));
        Router {
            config,
            tag,
            ecs,
            uuid,
            per_record,
            chunk_destination: None,
            raw: Vec::new(),
            group: String::new(),
            stream: String::new(),
        }
    }

    /// The index in `streams` of the record's destination (added if new).
    fn route(
        &mut self,
        body: &[u8],
        streams: &mut Vec<(Destination, Vec<Event>)>,
        report: &mut Report,
    ) -> usize {
        if let Some(i) = self.chunk_destination {
            return i;
        }
        let cx = Context {
            tag: self.tag,
            body: if self.per_record { body } else { &[] },
            ecs: self.ecs,
            uuid: self.uuid,
        };
        self.render_group(&cx, report);
        self.render_stream(&cx, report);
        let i = match streams
            .iter()
            .position(|(d, _)| d.group == self.group && d.stream == self.stream)
        {
            Some(i) => i,
            None => {
                streams.push((
                    Destination {
                        group: self.group.clone(),
                        stream: self.stream.clone(),
                    },
                    Vec::new(),
                ));
                streams.len() - 1
            }
        };
        if !self.per_record {
            self.chunk_destination = Some(i);
        }
        i
    }

    /// `log_group_template`, else `log_group_name`, else `default_log_group_name` (cleaned
    /// at Init). Names are cleaned by their template's rules ([`Template::render_group`]).
    fn render_group(&mut self, cx: &Context<'_>, report: &mut Report) {
        let c = self.config;
        let tried = [
            c.log_group_template
                .as_ref()
                .map(|t| ("log_group_template", t)),
            Some(("log_group_name", &c.log_group_name)),
        ];
        for (option, t) in tried.into_iter().flatten() {
            match t.render_group(cx, &mut self.raw, &mut self.group) {
                Ok(()) => return,
                Err(f) => failed(report, option, t, &f, &c.default_log_group_name),
            }
        }
        self.group.clear();
        self.group.push_str(&c.default_log_group_name);
    }

    /// `log_stream_template`, else `log_stream_name` or prefix + tag, else
    /// `default_log_stream_name`.
    fn render_stream(&mut self, cx: &Context<'_>, report: &mut Report) {
        let c = self.config;
        if let Some(t) = &c.log_stream_template {
            match t.render_stream(cx, &mut self.raw, &mut self.stream) {
                Ok(()) => return,
                Err(f) => failed(
                    report,
                    "log_stream_template",
                    t,
                    &f,
                    &c.default_log_stream_name,
                ),
            }
        }
        match &c.log_stream {
            StreamName::Prefix(prefix) => {
                // The Go plugin sends prefix + tag as it is; CloudWatch refuses it when it
                // holds ':' or '*' or passes 512 bytes, so this one is cleaned and cut.
                self.raw.clear();
                self.raw.extend_from_slice(prefix.as_bytes());
                self.raw.extend_from_slice(self.tag.as_bytes());
                template::clean_stream(&self.raw, &mut self.stream);
            }
            StreamName::Fixed(t) => {
                if let Err(f) = t.render_stream(cx, &mut self.raw, &mut self.stream) {
                    failed(report, "log_stream_name", t, &f, &c.default_log_stream_name);
                    self.stream.clear();
                    self.stream.push_str(&c.default_log_stream_name);
                }
            }
        }
    }
}

fn failed(report: &mut Report, option: &str, t: &Template, f: &template::Failure, default: &str) {
    if report.template_failures.len() < MAX_FAILURES {
        report.template_failures.insert(format!(
            "{option} '{t}': {f}; falling back (last resort '{default}')"
        ));
    }
}

/// Turns the message whose wire form is `messages[start..]` (`size` message bytes) into
/// events of at most `max` message bytes, by `policy`; `event` makes an event of a part's
/// range and size (with the record's time and entity).
fn fit(
    messages: &mut Vec<u8>,
    start: usize,
    size: usize,
    max: usize,
    policy: Oversize,
    event: impl Fn(Range<usize>, usize) -> Event,
    events: &mut Vec<Event>,
) -> Fit {
    if size <= max {
        events.push(event(start..messages.len(), size));
        return Fit::Fits;
    }
    match policy {
        Oversize::Truncate => {
            let size = encode::truncate(messages, start, size, max).unwrap_or(size);
            events.push(event(start..messages.len(), size));
            Fit::Truncated
        }
        Oversize::Split => {
            let pieces = encode::pieces(messages.get(start..).unwrap_or_default(), max);
            let n = pieces.len();
            events.extend(
                pieces
                    .into_iter()
                    .map(|(r, size)| event(start + r.start..start + r.end, size)),
            );
            Fit::Split(n)
        }
        Oversize::Drop => {
            messages.truncate(start);
            Fit::Dropped
        }
    }
}

/// A batch CloudWatch refused as too large, cut again so every event is at most `max`
/// bytes, by the same policy. Returns the new message buffer, its events (in the batch's
/// order) and what was done.
pub fn recut(
    messages: &[u8],
    batch: &[Event],
    max: usize,
    policy: Oversize,
) -> (Vec<u8>, Vec<Event>, Oversized) {
    let mut out = Vec::with_capacity(batch.iter().map(|e| e.message.len()).sum());
    let mut events = Vec::with_capacity(batch.len());
    let mut done = Oversized::default();
    for e in batch {
        let start = out.len();
        out.extend_from_slice(messages.get(e.message.clone()).unwrap_or_default());
        done.add(fit(
            &mut out,
            start,
            e.size,
            max,
            policy,
            |message, size| Event::new(e.timestamp_ms, message, size).with_entity(e.entity),
            &mut events,
        ));
    }
    (out, events, done)
}

/// The messages of `events` (unescaped from their wire forms in `messages`), for tests and
/// diagnostics.
pub fn messages_of(messages: &[u8], events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| encode::unescape(messages.get(e.message.clone()).unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::MAX_MESSAGE_BYTES;

    fn config(log_key: Option<&str>) -> Config {
        Config {
            log_key: log_key.map(String::from),
            ..Config::new("us-east-1", "g", StreamName::Prefix("p-".into()))
        }
    }

    // [[t, {}], {"log": <v>}] with an EventTime of `secs`.
    fn record(secs: u32, log: &[u8]) -> Vec<u8> {
        let mut v = vec![0x92, 0x92, 0xd7, 0x00];
        v.extend_from_slice(&secs.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 0x80, 0x81, 0xa3, b'l', b'o', b'g']);
        v.extend_from_slice(log);
        v
    }

    fn str32(bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![0xdb];
        v.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        v.extend_from_slice(bytes);
        v
    }

    fn messages(p: &Prepared) -> Vec<String> {
        messages_of(&p.messages, &p.streams[0].1)
    }

    #[test]
    fn whole_record_or_log_key() {
        let chunk = [record(10, &[0xa3, b'h', b'i', b'\n']), record(11, &[0x07])].concat();
        let p = prepare(&config(None), "app:1", &chunk);
        assert_eq!(p.streams[0].0.stream, "p-app.1");
        assert_eq!(messages(&p), vec![r#"{"log":"hi\n"}"#, r#"{"log":7}"#]);
        assert_eq!(p.streams[0].1[1].timestamp_ms, 11_000);
        let p = prepare(&config(Some("log")), "t", &chunk);
        assert_eq!(messages(&p), vec!["hi", "7"]);
    }

    /// `{"log":"x","kubernetes":{"aws_entity_service_name":<service>},
    /// "aws_entity_account_id":"1"}`, or `{"log":"x"}` without a service.
    fn entity_record(secs: u32, service: Option<&str>) -> Vec<u8> {
        let mut v = vec![0x92, 0x92, 0xd7, 0x00];
        v.extend_from_slice(&secs.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 0x80]);
        let Some(service) = service else {
            v.extend_from_slice(&[0x81, 0xa3, b'l', b'o', b'g', 0xa1, b'x']);
            return v;
        };
        v.extend_from_slice(&[0x83, 0xa3, b'l', b'o', b'g', 0xa1, b'x', 0xaa]);
        v.extend_from_slice(b"kubernetes");
        v.extend_from_slice(&[0x81, 0xb7]);
        v.extend_from_slice(b"aws_entity_service_name");
        v.push(0xa0 | service.len() as u8);
        v.extend_from_slice(service.as_bytes());
        v.push(0xb5);
        v.extend_from_slice(b"aws_entity_account_id");
        v.extend_from_slice(&[0xa1, b'1']);
        v
    }

    #[test]
    fn each_record_has_its_own_entity_and_leaves_its_fields_out() {
        let chunk = [
            entity_record(1, Some("a")),
            entity_record(2, Some("b")),
            entity_record(3, None),
            entity_record(4, Some("a")),
        ]
        .concat();
        let on = Config {
            add_entity: true,
            ..config(None)
        };
        let p = prepare(&on, "t", &chunk);
        assert_eq!(p.entities.len(), 2);
        let ids: Vec<u32> = p.streams[0].1.iter().map(|e| e.entity).collect();
        assert_eq!(ids, vec![1, 2, 0, 1]);
        let name = |id| p.entities.get(id).map(|e| e.key_attributes[1].1.clone());
        assert_eq!((name(1), name(2)), (Some("a".into()), Some("b".into())));
        assert_eq!(
            messages(&p),
            vec![
                r#"{"log":"x","kubernetes":{}}"#,
                r#"{"log":"x","kubernetes":{}}"#,
                r#"{"log":"x"}"#,
                r#"{"log":"x","kubernetes":{}}"#,
            ]
        );
        let keyed = prepare(
            &Config {
                add_entity: true,
                ..config(Some("kubernetes"))
            },
            "t",
            &chunk,
        );
        assert_eq!(messages(&keyed), vec!["{}", "{}", "{}"]);
        assert_eq!(keyed.report.missing_key, 1);
        // Off: the records as they are, no entity.
        let p = prepare(&config(None), "t", &chunk);
        assert!(p.entities.is_empty());
        assert!(p.streams[0].1.iter().all(|e| e.entity == 0));
        assert!(messages(&p)[0].contains("aws_entity_account_id"));
    }

    #[test]
    fn missing_key_empty_and_bad_records_are_counted() {
        let chunk = [
            record(1, &[0xa0]),
            vec![0xa1, b'x'],
            record(2, &[0xa1, b'y']),
            vec![0x92, 0xc1],
        ]
        .concat();
        let p = prepare(&config(Some("log")), "t", &chunk);
        assert_eq!(messages(&p), vec!["y"]);
        assert_eq!(p.report.empty, 1);
        assert_eq!(p.report.skipped.get(&Skip::NotAnEvent), Some(&1));
        assert!(p.report.corrupt.is_some());
        let p = prepare(&config(Some("other")), "t", &chunk);
        assert!(p.streams.is_empty());
        assert_eq!(p.report.missing_key, 2);
    }

    proptest::proptest! {
        /// Chunks of records of every shape, cut short or with a byte changed: reading each
        /// body while encoding it (`next_read`) finds the same items as skipping each record
        /// first (`next`), corrupt ones included.
        #[test]
        fn walking_records_once_finds_what_skipping_finds(
            kinds in proptest::collection::vec(0..9usize, 0..8),
            cut in proptest::num::usize::ANY,
            change in proptest::option::of(
                (proptest::num::usize::ANY, proptest::num::u8::ANY)
            ),
        ) {
            let time = [0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 0];
            let v2 = |meta: &[u8], body: &[u8]| [&[0x92, 0x92][..], &time, meta, body].concat();
            let mut chunk = Vec::new();
            for kind in kinds {
                match kind {
                    0 => chunk.extend(record(1, &[0xa2, b'h', b'i'])),
                    1 => chunk.extend(app_record("web")),
                    2 => chunk.extend([&[0x92][..], &time, &[0x81, 0xa1, b'k', 0xc3]].concat()),
                    3 => chunk.extend(record(u32::MAX, &[0x01])),
                    4 => chunk.extend(v2(&[0x81, 0xc0, 0xc0], &[0x81, 0xc0, 0x01])),
                    5 => chunk.extend([0x92, 0x01, 0x80]),
                    6 => chunk.extend(v2(&[0x80], &[0xa1, b'x'])),
                    7 => chunk.extend(record(2, &str32("\"é\n".repeat(70).as_bytes()))),
                    // 1,000,000,000 nanoseconds: a bad time.
                    _ => chunk.extend([
                        0x92, 0x92, 0xd7, 0, 0, 0, 0, 1, 0x3b, 0x9a, 0xca, 0, 0x80, 0x80,
                    ]),
                }
            }
            if let Some((at, byte)) = change && !chunk.is_empty() {
                let n = chunk.len();
                chunk[at % n] = byte;
            }
            chunk.truncate(cut % (chunk.len() + 1));
            let skipped: Vec<Item<'_>> = decode::records(&chunk).collect();
            let (mut records, mut read) = (decode::records(&chunk), Vec::new());
            let (mut scratch, mut buf) = (encode::Scratch::default(), Vec::new());
            while let Some(item) = records.next_read(|body| {
                encode::json_with(body, &mut encode::Out::wire(&mut buf), &mut scratch)
            }) {
                read.push(item);
            }
            proptest::prop_assert_eq!(read, skipped);
        }
    }

    #[test]
    fn oversized_messages_by_policy() {
        let long = "é".repeat(400); // 800 bytes
        let chunk = [record(1, &str32(long.as_bytes())), record(2, &[0xa1, b'x'])].concat();
        let sized = |policy| Config {
            max_event_size: 256,
            oversize_event: policy,
            ..config(Some("log"))
        };

        let p = prepare(&sized(Oversize::Truncate), "t", &chunk);
        assert_eq!(p.report.oversize.truncated, 1);
        let m = messages(&p);
        assert!(m[0].len() <= 256 && m[0].ends_with(encode::TRUNCATED_SUFFIX));
        assert_eq!(m[1], "x");

        let p = prepare(&sized(Oversize::Split), "t", &chunk);
        assert_eq!(p.report.oversize.split, 1);
        assert_eq!(p.report.oversize.split_events, 4);
        let m = messages(&p);
        assert_eq!(m[..4].concat(), long, "no byte lost, in order");
        assert!(m.iter().all(|m| m.len() <= 256));
        assert!(p.streams[0].1[..4].iter().all(|e| e.timestamp_ms == 1000));

        let p = prepare(&sized(Oversize::Drop), "t", &chunk);
        assert_eq!(p.report.oversize.dropped, 1);
        assert_eq!(messages(&p), vec!["x"]);
        assert!(!String::from_utf8(p.messages).unwrap().contains('é'));
    }

    #[test]
    fn default_limit_truncates_to_a_million_bytes() {
        let big = vec![b'x'; MAX_MESSAGE_BYTES + 10];
        let p = prepare(&config(Some("log")), "t", &record(1, &str32(&big)));
        assert_eq!(p.report.oversize.truncated, 1);
        assert_eq!(messages(&p)[0].len(), 1_000_000);
    }

    #[test]
    fn recut_applies_the_policy_to_a_refused_batch() {
        // 300 bytes of message (`a"` 150 times), 450 of wire form, then "b".
        let messages = format!("{}{}", "a\\\"".repeat(150), "b").into_bytes();
        let batch = [Event::new(5, 0..450, 300), Event::new(6, 450..451, 1)];
        let (m, events, done) = recut(&messages, &batch, 256, Oversize::Split);
        assert_eq!(done.split, 1);
        let got: Vec<(String, usize, i64)> = messages_of(&m, &events)
            .into_iter()
            .zip(&events)
            .map(|(text, e)| (text, e.size, e.timestamp_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a\"".repeat(128), 256, 5),
                ("a\"".repeat(22), 44, 5),
                ("b".into(), 1, 6)
            ]
        );
        let (m, events, done) = recut(&messages, &batch, 256, Oversize::Truncate);
        assert_eq!(done.truncated, 1);
        let texts = messages_of(&m, &events);
        assert!(
            events
                .iter()
                .zip(&texts)
                .all(|(e, t)| e.size == t.len() && e.size <= 256)
        );
    }

    #[test]
    fn prefix_streams_are_cut_to_512_bytes() {
        let tag = "é".repeat(400);
        let p = prepare(&config(None), &tag, &record(1, &[0xa1, b'x']));
        let name = &p.streams[0].0.stream;
        assert!(name.len() <= 512 && name.len() >= 511);
    }

    // [[t, {}], {"app": <app>, "log": "m"}]
    fn app_record(app: &str) -> Vec<u8> {
        let mut v = vec![
            0x92, 0x92, 0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0x80, 0x82, 0xa3, b'a', b'p', b'p',
        ];
        v.push(0xa0 | app.len() as u8);
        v.extend_from_slice(app.as_bytes());
        v.extend_from_slice(&[0xa3, b'l', b'o', b'g', 0xa1, b'm']);
        v
    }

    #[test]
    fn records_of_one_chunk_go_to_their_own_streams() {
        let mut c = config(Some("log"));
        c.log_group_name = Template::parse_go("/app/$(app)").unwrap();
        c.log_stream = StreamName::Fixed(Template::parse_go("$(tag[1])-$(missing)").unwrap());
        let chunk = [app_record("web"), app_record("db"), app_record("web:1")].concat();
        let p = prepare(&c, "k.v", &chunk);
        let names: Vec<(&str, &str, usize)> = p
            .streams
            .iter()
            .map(|(d, e)| (d.group.as_str(), d.stream.as_str(), e.len()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("/app/web", "/fluentbit-default", 1),
                ("/app/db", "/fluentbit-default", 1),
                ("/app/web.1", "/fluentbit-default", 1)
            ]
        );
        assert_eq!(
            p.report.template_failures.len(),
            1,
            "{:?}",
            p.report.template_failures
        );
        assert!(
            p.report
                .template_failures
                .iter()
                .next()
                .unwrap()
                .contains("no key $(missing)")
        );
    }

    #[test]
    fn record_accessor_templates_fall_back_to_the_names() {
        let mut c = config(Some("log"));
        c.log_group_template = Some(Template::parse_record_accessor("ra-$app").unwrap());
        c.log_stream_template = Some(Template::parse_record_accessor("$nope").unwrap());
        c.log_stream = StreamName::Prefix("pre-".into());
        let p = prepare(&c, "t", &app_record("web"));
        assert_eq!(
            p.streams[0].0,
            Destination {
                group: "ra-web".into(),
                stream: "pre-t".into()
            }
        );
        let mut c = config(Some("log"));
        c.log_group_template = Some(Template::parse_record_accessor("$nope").unwrap());
        let p = prepare(&c, "t", &app_record("web"));
        assert_eq!(p.streams[0].0.group, "g", "falls back to log_group_name");
    }

    fn destinations(p: &Prepared) -> Vec<(&str, &str, usize)> {
        p.streams
            .iter()
            .map(|(d, e)| (d.group.as_str(), d.stream.as_str(), e.len()))
            .collect()
    }

    /// `confine_names`: a record whose name would leave its template's prefix takes the
    /// path of a name that cannot be rendered (here the default group), with one reason for
    /// every such record; the others go where the template says. Off, as before.
    #[test]
    fn confined_names_fall_back_like_unrendered_ones() {
        let mut c = config(Some("log"));
        c.log_group_name = Template::parse_go("/app/$(app)").unwrap();
        c.log_stream = StreamName::Fixed(Template::parse_go("s-$(app)").unwrap());
        let chunk = [
            app_record("web"),
            app_record("../x"),
            app_record("é/é"),
            app_record("db"),
        ]
        .concat();
        let off = prepare(&c, "t", &chunk);
        assert_eq!(
            destinations(&off),
            vec![
                ("/app/web", "s-web", 1),
                ("/app/../x", "s-../x", 1),
                ("/app/../..", "s-é/é", 1),
                ("/app/db", "s-db", 1)
            ]
        );
        assert!(off.report.template_failures.is_empty());

        c.log_group_name.confine_group().unwrap();
        if let StreamName::Fixed(t) = &mut c.log_stream {
            t.confine_stream().unwrap();
        }
        let on = prepare(&c, "t", &chunk);
        assert_eq!(
            destinations(&on),
            vec![
                ("/app/web", "s-web", 1),
                ("fluentbit-default", "s-../x", 1),
                ("fluentbit-default", "s-é/é", 1),
                ("/app/db", "s-db", 1)
            ]
        );
        assert_eq!(
            on.report.template_failures.iter().collect::<Vec<_>>(),
            vec![
                "log_group_name '/app/$(app)': the name would have a '..' segment after the template's literal prefix '/app/' (confine_names); falling back (last resort 'fluentbit-default')"
            ]
        );

        // log_group_template falls back to log_group_name, as when a key is missing.
        let mut c = config(Some("log"));
        let mut t = Template::parse_record_accessor("/ra/$app").unwrap();
        t.confine_group().unwrap();
        c.log_group_template = Some(t);
        let p = prepare(&c, "t", &[app_record("web"), app_record("..")].concat());
        assert_eq!(
            destinations(&p),
            vec![("/ra/web", "p-t", 1), ("g", "p-t", 1)]
        );
        assert_eq!(p.report.template_failures.len(), 1);
    }

    #[test]
    fn ecs_and_uuid_values() {
        let mut c = config(Some("log"));
        c.log_group_name = Template::parse_go("/ecs/$(ecs_cluster)").unwrap();
        c.log_stream = StreamName::Fixed(Template::parse_go("$(ecs_task_id)-$(uuid)").unwrap());
        let ecs = Ecs {
            task_arn: "arn:x/task/c/id1".into(),
            task_id: "id1".into(),
            cluster: "c".into(),
        };
        let p = prepare_with(&c, "t", &app_record("a"), Some(&ecs), "u");
        assert_eq!(
            p.streams[0].0,
            Destination {
                group: "/ecs/c".into(),
                stream: "id1-u".into()
            }
        );
        let p = prepare(&c, "t", &app_record("a"));
        assert_eq!(
            p.streams[0].0,
            Destination {
                group: "fluentbit-default".into(),
                stream: "/fluentbit-default".into()
            }
        );
    }
}

//! One `[OUTPUT]` section of our plugin: its options, client and counters.
//!
//! [`Instance::flush`] is the safe API the C boundary wraps: a chunk in, an [`Outcome`]
//! out. It runs on a thread of ours (never on Fluent Bit's coroutine stack) and may run on
//! several threads at once (`workers N`). [`prepare`] is the pure part: decode each record,
//! encode its message, route it to its stream; then each stream's events are sorted, cut
//! into batches and sent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use tokio::runtime::Handle;

use crate::batch::{self, Event, MAX_MESSAGE_BYTES};
use crate::config::{Config, MAX_NAME_BYTES, StreamName};
use crate::decode::{self, Item, Malformed, Skip};
use crate::deliver::{Deliverer, Destination};
use crate::encode;
use crate::log::Logger;
use crate::{credentials, runtime};

/// What a flush tells Fluent Bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every event of the chunk was delivered, or rejected and logged.
    Ok,
    /// Some events were not delivered; Fluent Bit should send the chunk again later.
    Retry,
}

/// In debug builds only, a flush with this tag panics: the tests prove with it that a
/// panic becomes a return code. Release builds have no such tag.
#[cfg(debug_assertions)]
pub const PANIC_TAG: &str = "flb-cloudwatch-test-panic";

pub struct Instance {
    log: Logger,
    config: Config,
    deliverer: Deliverer,
    runtime: Handle,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    skipped: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

impl Instance {
    /// Reads and checks the options (through `get`, which returns a property as set in
    /// `[OUTPUT]`), then builds the instance. Logs why it fails, once, and returns `None`.
    pub fn start(get: impl Fn(&str) -> Option<String>) -> Option<Instance> {
        let log = Logger::new(format!("cloudwatch.{}", NEXT_ID.fetch_add(1, Relaxed)));
        let config = match Config::from_properties(get, std::env::var("AWS_REGION").ok()) {
            Ok(c) => c,
            Err(e) => {
                log.error(format_args!("{e}"));
                return None;
            }
        };
        let runtime = match runtime::acquire() {
            Ok(r) => r,
            Err(e) => {
                log.error(format_args!("cannot start the plugin's threads: {e}"));
                return None;
            }
        };
        let sdk = runtime.block_on(credentials::sdk_config(&config));
        let client = credentials::logs_client(&sdk, &config);
        log.info(format_args!("{}", describe(&config)));
        Some(Instance {
            deliverer: Deliverer::new(client, config.auto_create_group, config.auto_create_stream),
            log,
            config,
            runtime,
            counters: Counters::default(),
        })
    }

    /// The runtime this instance's work runs on.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Delivers one chunk. Blocks until every event is delivered or the delivery failed.
    pub fn flush(&self, tag: &[u8], chunk: &[u8]) -> Outcome {
        let tag = String::from_utf8_lossy(tag);
        #[cfg(debug_assertions)]
        if tag == PANIC_TAG {
            panic!("panic requested by the test tag");
        }
        let mut prepared = prepare(&self.config, &tag, chunk);
        self.report(&tag, &prepared.report);
        let outcome = self.runtime.block_on(self.send(&mut prepared));
        if outcome == Outcome::Retry {
            self.counters.retries.fetch_add(1, Relaxed);
        }
        outcome
    }

    async fn send(&self, prepared: &mut Prepared) -> Outcome {
        for (destination, events) in &mut prepared.streams {
            let batches = batch::plan(events);
            match self
                .deliverer
                .send(destination, &prepared.messages, events, &batches)
                .await
            {
                Ok(sent) => {
                    let c = &self.counters;
                    c.events.fetch_add(sent.events as u64, Relaxed);
                    c.bytes.fetch_add(sent.bytes as u64, Relaxed);
                    c.batches.fetch_add(sent.batches as u64, Relaxed);
                    c.rejected.fetch_add(sent.rejected as u64, Relaxed);
                    if sent.rejected > 0 {
                        self.log.warn(format_args!(
                            "CloudWatch rejected {} of {} event(s) for {} as outside its time window (older than 14 days or more than 2 hours ahead)",
                            sent.rejected,
                            events.len(),
                            destination
                        ));
                    }
                    self.log.debug(format_args!(
                        "sent {} event(s) in {} batch(es) to {}",
                        sent.events, sent.batches, destination
                    ));
                }
                Err(e) => {
                    self.log
                        .error(format_args!("{e}; Fluent Bit will retry the chunk"));
                    return Outcome::Retry;
                }
            }
        }
        Outcome::Ok
    }

    /// One line per kind of record that was not sent, with counts: never one per record.
    fn report(&self, tag: &str, r: &Report) {
        let problems: u64 = r
            .skipped
            .iter()
            .filter(|(s, _)| s.is_problem())
            .map(|(_, n)| *n as u64)
            .sum::<u64>()
            + r.missing_key as u64;
        self.counters.skipped.fetch_add(problems, Relaxed);
        for (skip, n) in &r.skipped {
            if skip.is_problem() {
                self.log
                    .warn(format_args!("skipped {n} record(s) of tag '{tag}': {skip}"));
            }
        }
        if r.missing_key > 0 {
            let key = self.config.log_key.as_deref().unwrap_or_default();
            self.log.warn(format_args!(
                "skipped {} record(s) of tag '{tag}': no key '{key}' (log_key)",
                r.missing_key
            ));
        }
        if r.empty > 0 {
            self.log.debug(format_args!(
                "{} record(s) of tag '{tag}' have an empty message: not sent",
                r.empty
            ));
        }
        if r.truncated > 0 {
            self.log.warn(format_args!(
                "{} message(s) of tag '{tag}' longer than {MAX_MESSAGE_BYTES} bytes were truncated",
                r.truncated
            ));
        }
        if let Some((offset, error)) = r.corrupt {
            self.log.error(format_args!(
                "chunk of tag '{tag}' is not valid MessagePack at byte {offset} ({error}): the rest of the chunk is skipped"
            ));
        }
    }

    /// Logs the totals and stops the shared runtime if this was the last instance.
    pub fn exit(self) {
        let c = &self.counters;
        self.log.info(format_args!(
            "exit: sent {} event(s), {} byte(s) in {} batch(es); {} record(s) skipped, {} event(s) rejected by CloudWatch, {} flush(es) retried",
            c.events.load(Relaxed),
            c.bytes.load(Relaxed),
            c.batches.load(Relaxed),
            c.skipped.load(Relaxed),
            c.rejected.load(Relaxed),
            c.retries.load(Relaxed)
        ));
        drop(self);
        runtime::release();
    }
}

/// The effective configuration in one line, without secrets (the external id is not shown).
fn describe(c: &Config) -> String {
    let mut s = format!("region={} log_group_name={}", c.region, c.log_group_name);
    match &c.log_stream {
        StreamName::Fixed(n) => {
            let _ = write!(s, " log_stream_name={n}");
        }
        StreamName::Prefix(p) => {
            let _ = write!(s, " log_stream_prefix={p}");
        }
    }
    if let Some(k) = &c.log_key {
        let _ = write!(s, " log_key={k}");
    }
    let _ = write!(
        s,
        " auto_create_group={} auto_create_stream={}",
        c.auto_create_group, c.auto_create_stream
    );
    if let Some(r) = &c.role_arn {
        let _ = write!(s, " role_arn={r}");
    }
    if c.external_id.is_some() {
        s.push_str(" external_id=(set)");
    }
    if let Some(e) = &c.endpoint {
        let _ = write!(s, " endpoint={e}");
    }
    if let Some(e) = &c.sts_endpoint {
        let _ = write!(s, " sts_endpoint={e}");
    }
    s
}

/// A chunk made ready to send: every message in one buffer, events grouped by stream.
#[derive(Debug, Default)]
pub struct Prepared {
    pub messages: String,
    pub streams: Vec<(Destination, Vec<Event>)>,
    pub report: Report,
}

/// What happened to the records of a chunk that were not turned into events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub records: usize,
    pub skipped: BTreeMap<Skip, usize>,
    pub missing_key: usize,
    pub empty: usize,
    pub truncated: usize,
    pub corrupt: Option<(usize, Malformed)>,
}

/// Decodes, encodes and routes every record of `chunk`. Pure.
pub fn prepare(config: &Config, tag: &str, chunk: &[u8]) -> Prepared {
    let mut p = Prepared {
        messages: String::with_capacity(chunk.len() + chunk.len() / 4),
        ..Prepared::default()
    };
    // Names do not depend on the record yet (templates come later): one stream per chunk.
    let destination = Destination {
        group: config.log_group_name.clone(),
        stream: stream_name(&config.log_stream, tag),
    };
    let mut events = Vec::new();
    for item in decode::records(chunk) {
        let record = match item {
            Item::Record(r) => r,
            Item::Skipped(skip) => {
                *p.report.skipped.entry(skip).or_default() += 1;
                continue;
            }
            Item::Corrupt { offset, error } => {
                p.report.corrupt = Some((offset, error));
                break;
            }
        };
        p.report.records += 1;
        let start = p.messages.len();
        let encoded = match &config.log_key {
            None => encode::json(record.body, &mut p.messages),
            Some(key) => match decode::lookup(record.body, key.as_bytes()) {
                Some(value) => encode::value_message(value, &mut p.messages),
                None => {
                    p.report.missing_key += 1;
                    continue;
                }
            },
        };
        if encoded.is_err() {
            // Unreachable for a record the decoder accepted; counted rather than trusted.
            p.messages.truncate(start);
            *p.report.skipped.entry(Skip::NotAnEvent).or_default() += 1;
            continue;
        }
        if p.messages.len() == start {
            p.report.empty += 1;
            continue;
        }
        if encode::truncate(&mut p.messages, start, MAX_MESSAGE_BYTES) {
            p.report.truncated += 1;
        }
        events.push(Event {
            timestamp_ms: record.time.as_millis(),
            message: start..p.messages.len(),
        });
    }
    if !events.is_empty() {
        p.streams.push((destination, events));
    }
    p
}

/// `log_stream_name`, or `log_stream_prefix` + tag with `:` and `*` (which CloudWatch
/// refuses in stream names) replaced by `.`, cut to 512 bytes.
fn stream_name(stream: &StreamName, tag: &str) -> String {
    match stream {
        StreamName::Fixed(name) => name.clone(),
        StreamName::Prefix(prefix) => {
            let mut name = prefix.clone();
            name.extend(
                tag.chars()
                    .map(|c| if c == ':' || c == '*' { '.' } else { c }),
            );
            let mut end = name.len().min(MAX_NAME_BYTES);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name.truncate(end);
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(log_key: Option<&str>) -> Config {
        Config {
            region: "us-east-1".into(),
            log_group_name: "g".into(),
            log_stream: StreamName::Prefix("p-".into()),
            log_key: log_key.map(String::from),
            auto_create_group: false,
            auto_create_stream: true,
            role_arn: None,
            external_id: None,
            endpoint: None,
            sts_endpoint: None,
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

    fn messages(p: &Prepared) -> Vec<&str> {
        p.streams[0]
            .1
            .iter()
            .map(|e| &p.messages[e.message.clone()])
            .collect()
    }

    #[test]
    fn whole_record_or_log_key() {
        let chunk = [record(10, &[0xa2, b'h', b'i']), record(11, &[0x07])].concat();
        let p = prepare(&config(None), "app:1", &chunk);
        assert_eq!(p.streams[0].0.stream, "p-app.1");
        assert_eq!(messages(&p), vec![r#"{"log":"hi"}"#, r#"{"log":7}"#]);
        assert_eq!(p.streams[0].1[1].timestamp_ms, 11_000);
        let p = prepare(&config(Some("log")), "t", &chunk);
        assert_eq!(messages(&p), vec!["hi", "7"]);
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

    #[test]
    fn oversized_messages_are_truncated() {
        let big = vec![b'x'; MAX_MESSAGE_BYTES + 10];
        let mut log = vec![0xdb];
        log.extend_from_slice(&(big.len() as u32).to_be_bytes());
        log.extend_from_slice(&big);
        let p = prepare(&config(Some("log")), "t", &record(1, &log));
        assert_eq!(p.report.truncated, 1);
        let m = messages(&p)[0];
        assert_eq!(m.len(), MAX_MESSAGE_BYTES);
        assert!(m.ends_with(encode::TRUNCATED_SUFFIX));
    }

    #[test]
    fn prefix_streams_are_cut_to_512_bytes() {
        let name = stream_name(&StreamName::Prefix("p".into()), &"é".repeat(400));
        assert!(name.len() <= MAX_NAME_BYTES && name.len() >= MAX_NAME_BYTES - 1);
    }
}

//! Counting and telling: what one instance delivered, skipped, dropped and retried, as
//! counters and as log lines an operator can act on.
//!
//! Warnings about records come at most once a minute per kind, with counts, never one per
//! record; a summary line comes at most once a minute when something went wrong, and at
//! exit. Nothing here may receive a secret: callers pass names, codes and counts.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::batch::{self, EVENT_OVERHEAD, Event};
use crate::config::Oversize;
use crate::decode::Skip;
use crate::deliver::{AwsError, Destination, Rejected, Stats};
use crate::log::{Logger, Throttle, utc_millis};
use crate::metrics::{Metric, Metrics};
use crate::prepare::{Oversized, Report};
use crate::retry::ErrorKind;

/// Warnings about records are repeated at most this often, with counts.
const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// A summary of retries and drops is logged at most this often.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);
/// Distinct template failures and entity problems remembered for warning once.
const MAX_WARNED_ONCE: usize = 1024;

/// What an instance did, since it started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events CloudWatch stored.
    pub events: AtomicU64,
    /// Bytes of their messages.
    pub bytes: AtomicU64,
    /// PutLogEvents requests accepted.
    pub batches: AtomicU64,
    /// Records that did not become events (by a problem of the record).
    pub skipped: AtomicU64,
    /// Events CloudWatch rejected (too old, too new), or refused in a dropped request.
    pub rejected: AtomicU64,
    /// Requests whose entity CloudWatch rejected (`rejectedEntityInfo`); their events
    /// were stored.
    pub entities_rejected: AtomicU64,
    /// Flushes answered `FLB_RETRY`.
    pub retried_flushes: AtomicU64,
    /// Requests not sent again on a chunk's retry because CloudWatch had them already.
    pub deduplicated: AtomicU64,
    /// Streams a flush left for the chunk's retry without (more) calls: their group failed
    /// for good in the flush, or the flush's new streams were used up.
    pub held_streams: AtomicU64,
}

pub struct Reporter {
    pub log: Logger,
    pub counters: Counters,
    throttle: Throttle,
    /// When the last periodic summary was logged, and the problem count it covered.
    summary: Mutex<(Instant, u64)>,
    /// Template failures and entity problems already warned about (each distinct one
    /// once; bounded).
    warned_once: Mutex<HashSet<String>>,
    /// `log_key`, named in warnings about records without it.
    log_key: Option<String>,
    max_event_size: usize,
    /// The same counts in Fluent Bit's metrics, where the host offers them.
    metrics: Metrics,
}

impl Reporter {
    pub fn new(
        log: Logger,
        log_key: Option<String>,
        max_event_size: usize,
        metrics: Metrics,
    ) -> Self {
        Reporter {
            metrics,
            log,
            counters: Counters::default(),
            throttle: Throttle::new(WARN_INTERVAL),
            summary: Mutex::new((Instant::now(), 0)),
            warned_once: Mutex::new(HashSet::new()),
            log_key,
            max_event_size,
        }
    }

    /// Counts an accepted request, and logs the events CloudWatch rejected from it.
    pub fn accepted(
        &self,
        tag: &str,
        destination: &Destination,
        batch: &[Event],
        rejected: &Rejected,
    ) {
        let c = &self.counters;
        let delivered = batch.len() - rejected.count();
        let bytes: usize = batch.iter().map(|e| e.size).sum();
        c.events.fetch_add(delivered as u64, Relaxed);
        c.bytes.fetch_add(bytes as u64, Relaxed);
        c.batches.fetch_add(1, Relaxed);
        c.rejected.fetch_add(rejected.count() as u64, Relaxed);
        let m = &self.metrics;
        m.add(Metric::EventsDelivered, delivered as u64);
        m.add(Metric::BytesDelivered, bytes as u64);
        m.add(Metric::Requests, 1);
        m.add(Metric::RejectedTooOld, rejected.too_old.len() as u64);
        m.add(Metric::RejectedTooNew, rejected.too_new.len() as u64);
        if let Some(error) = &rejected.entity {
            c.entities_rejected.fetch_add(1, Relaxed);
            m.add(Metric::EntitiesRejected, 1);
            if let Some(total) = self.throttle.admit("entity rejected", 1) {
                self.log.warn(format_args!(
                    "CloudWatch rejected the entity of {total} request(s) (latest of tag '{tag}' for {destination}: {error}); their events were stored without it"
                ));
            }
        }
        for (range, why) in [
            (
                &rejected.too_old,
                "too old (more than 14 days, or beyond the group's retention)",
            ),
            (&rejected.too_new, "too far ahead (more than 2 hours)"),
        ] {
            if !range.is_empty() {
                self.log.warn(format_args!(
                    "CloudWatch rejected {} event(s) of tag '{tag}' for {destination} as {why}: times {}",
                    range.len(),
                    time_span(&batch[range.clone()])
                ));
            }
        }
        self.log.debug(format_args!(
            "sent {delivered} event(s), {bytes} byte(s) of messages, to {destination}; {} of {} bytes used",
            bytes + batch.len() * EVENT_OVERHEAD,
            batch::MAX_BATCH_BYTES
        ));
    }

    /// `n` requests of a retried chunk were settled by an earlier try: not sent again.
    pub fn not_resent(&self, destination: &Destination, n: usize) {
        self.counters.deduplicated.fetch_add(n as u64, Relaxed);
        self.metrics.add(Metric::NotResent, n as u64);
        self.log.debug(format_args!(
            "{n} request(s) of this chunk for {destination} were settled before its retry: not sent again"
        ));
    }

    pub fn halving(&self, refusal: &AwsError, len: usize) {
        self.log.warn(format_args!(
            "{refusal}; resending the request of {len} event(s) as two halves"
        ));
    }

    pub fn recutting(&self, refusal: &AwsError, max: usize, policy: Oversize) {
        self.log.warn(format_args!(
            "{refusal}; resending the request with messages cut to {max} bytes (oversize_event {}): set max_event_size {max} to avoid this",
            policy.as_str()
        ));
    }

    /// A request CloudWatch refused even after it was halved: dropped, counted, logged.
    pub fn dropped(&self, refusal: &AwsError, tag: &str, batch: &[Event]) {
        self.counters
            .rejected
            .fetch_add(batch.len() as u64, Relaxed);
        self.metrics
            .add(Metric::RejectedInvalid, batch.len() as u64);
        self.log.error(format_args!(
            "{refusal}; {} event(s) of tag '{tag}' (times {}) dropped: CloudWatch will not take them as they are",
            batch.len(),
            time_span(batch)
        ));
    }

    /// Logs what did not become events: one line per kind, at most once a minute per kind
    /// (with the count since the last line), never one per record.
    pub fn prepared(&self, tag: &str, r: &Report) {
        let mut skipped = 0u64;
        for (skip, n) in &r.skipped {
            if skip.is_problem() {
                skipped += *n as u64;
                let metric = match skip {
                    Skip::BadTimestamp => Metric::SkippedBadTimestamp,
                    Skip::BodyNotMap => Metric::SkippedBodyNotMap,
                    Skip::NotAnEvent | Skip::GroupMarker => Metric::SkippedNotAnEvent,
                };
                self.metrics.add(metric, *n as u64);
                if let Some(total) = self.throttle.admit(skip_kind(*skip), *n as u64) {
                    self.log.warn(format_args!(
                        "skipped {total} record(s) (latest of tag '{tag}'): {skip}"
                    ));
                }
            }
        }
        if r.missing_key > 0 {
            skipped += r.missing_key as u64;
            self.metrics
                .add(Metric::SkippedMissingKey, r.missing_key as u64);
            if let Some(total) = self.throttle.admit("missing log_key", r.missing_key as u64) {
                let key = self.log_key.as_deref().unwrap_or_default();
                self.log.warn(format_args!(
                    "skipped {total} record(s) without the key '{key}' named by log_key (latest of tag '{tag}')"
                ));
            }
        }
        if r.empty > 0 {
            self.log.debug(format_args!(
                "{} record(s) of tag '{tag}' have an empty message: not sent",
                r.empty
            ));
        }
        skipped += r.oversize.dropped as u64;
        self.metrics
            .add(Metric::SkippedOversize, r.oversize.dropped as u64);
        self.counters.skipped.fetch_add(skipped, Relaxed);
        self.oversized(tag, &r.oversize, self.max_event_size);
        for failure in &r.template_failures {
            if self.first_time(failure) {
                self.log.warn(format_args!("{failure} (tag '{tag}')"));
            }
        }
        for problem in &r.entity_problems {
            if self.first_time(problem) {
                self.log.warn(format_args!(
                    "add_entity: {problem}: left out of the entity, the events are delivered (tag '{tag}')"
                ));
            }
        }
        if let Some((offset, error)) = r.corrupt {
            self.log.error(format_args!(
                "chunk of tag '{tag}' is not valid MessagePack at byte {offset} ({error}): the rest of the chunk is skipped"
            ));
        }
    }

    /// Whether `line` is new (then remembered, up to [`MAX_WARNED_ONCE`] lines).
    fn first_time(&self, line: &str) -> bool {
        let mut warned = self
            .warned_once
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        warned.len() < MAX_WARNED_ONCE && !warned.contains(line) && warned.insert(line.to_owned())
    }

    /// Messages over `max` bytes, by what the `oversize_event` policy did to them.
    pub fn oversized(&self, tag: &str, o: &Oversized, max: usize) {
        let lines = [
            (o.truncated, "oversize truncated", "truncated"),
            (o.split, "oversize split", "split into several events"),
            (o.dropped, "oversize dropped", "dropped"),
        ];
        for (n, kind, what) in lines {
            if n > 0
                && let Some(total) = self.throttle.admit(kind, n as u64)
            {
                self.log.warn(format_args!(
                    "{total} message(s) longer than {max} bytes (max_event_size) {what} (latest of tag '{tag}')"
                ));
            }
        }
    }

    /// A flush that answers `FLB_RETRY`: one error line with what to check.
    pub fn flush_failed(&self, error: &AwsError, hint: &str) {
        self.log.error(format_args!(
            "{error}{hint}; Fluent Bit will retry the chunk"
        ));
        self.counters.retried_flushes.fetch_add(1, Relaxed);
        self.metrics.add(Metric::FlushRetries, 1);
    }

    /// `n` streams of the chunk ended with the error of their group, which failed for good
    /// in this flush (missing, or access denied): one line per group and flush.
    pub fn group_ended(&self, tag: &str, error: &AwsError, n: usize) {
        self.counters.held_streams.fetch_add(n as u64, Relaxed);
        self.metrics.add(Metric::StreamsHeldGroupFailed, n as u64);
        let d = &error.destination;
        let code = error.code.as_deref().unwrap_or(match error.kind {
            ErrorKind::Denied => "access denied",
            _ => "not found",
        });
        self.log.warn(format_args!(
            "{n} other stream(s) of group '{}' in this chunk (tag '{tag}') end in this flush without a call to CloudWatch: {} to its stream '{}' failed with {code}, and would for them; Fluent Bit will retry the chunk",
            d.group, error.operation, d.stream
        ));
    }

    /// `n` streams of the chunk were not attempted: the flush created the `cap` new streams
    /// it may. One line per flush.
    pub fn streams_waiting(&self, tag: &str, cap: usize, n: usize) {
        self.counters.held_streams.fetch_add(n as u64, Relaxed);
        self.metrics.add(Metric::StreamsHeldNewStreamCap, n as u64);
        self.log.warn(format_args!(
            "a flush creates at most {cap} new streams (CloudWatch allows 50 CreateLogStream calls a second per account and region): {n} stream(s) of tag '{tag}' wait for the chunk's retry; with Retry_Limit 1 (two flushes a chunk) a chunk spread over more than {} new streams loses the rest: raise Retry_Limit",
            2 * cap
        ));
    }

    /// A flush that answers `FLB_RETRY` because streams wait for the chunk's retry (their
    /// line is logged): counted, without another line.
    pub fn flush_waited(&self) {
        self.counters.retried_flushes.fetch_add(1, Relaxed);
        self.metrics.add(Metric::FlushRetries, 1);
    }

    /// A flush that answers `FLB_RETRY` for another reason than an AWS call.
    pub fn flush_retried(&self, why: std::fmt::Arguments<'_>) {
        self.log
            .error(format_args!("{why}; Fluent Bit will retry the chunk"));
        self.counters.retried_flushes.fetch_add(1, Relaxed);
        self.metrics.add(Metric::FlushRetries, 1);
    }

    /// Problems so far: retries (in flush and of flushes), records skipped, events rejected.
    fn problems(&self, s: &Stats) -> u64 {
        let c = &self.counters;
        c.retried_flushes.load(Relaxed)
            + s.retries.load(Relaxed)
            + c.skipped.load(Relaxed)
            + c.rejected.load(Relaxed)
            + c.entities_rejected.load(Relaxed)
    }

    pub fn totals(&self, s: &Stats) -> String {
        let c = &self.counters;
        format!(
            "sent {} event(s), {} byte(s) in {} batch(es); {} record(s) skipped, {} event(s) rejected by CloudWatch, {} entity(ies) rejected; {} call(s) retried ({} throttled, {} credential refreshes), {} flush(es) answered retry, {} batch(es) not resent on retry, {} stream(s) held for a retry",
            c.events.load(Relaxed),
            c.bytes.load(Relaxed),
            c.batches.load(Relaxed),
            c.skipped.load(Relaxed),
            c.rejected.load(Relaxed),
            c.entities_rejected.load(Relaxed),
            s.retries.load(Relaxed),
            s.throttles.load(Relaxed),
            s.refreshes.load(Relaxed),
            c.retried_flushes.load(Relaxed),
            c.deduplicated.load(Relaxed),
            c.held_streams.load(Relaxed)
        )
    }

    /// A summary line a minute, when something was retried, skipped or rejected since the
    /// last one.
    pub fn maybe_summarize(&self, s: &Stats) {
        let mut last = self.summary.lock().unwrap_or_else(PoisonError::into_inner);
        let problems = self.problems(s);
        if last.0.elapsed() >= SUMMARY_INTERVAL && problems != last.1 {
            *last = (Instant::now(), problems);
            self.log
                .info(format_args!("last minute and before: {}", self.totals(s)));
        }
    }
}

/// A throttling key per kind of skipped record.
fn skip_kind(skip: Skip) -> &'static str {
    match skip {
        Skip::GroupMarker => "group marker",
        Skip::NotAnEvent => "not an event",
        Skip::BadTimestamp => "bad timestamp",
        Skip::BodyNotMap => "body not a map",
    }
}

/// `first .. last` times of a sorted run of events.
fn time_span(events: &[Event]) -> String {
    let Range { start, end } = match (events.first(), events.last()) {
        (Some(f), Some(l)) => f.timestamp_ms..l.timestamp_ms,
        _ => return String::new(),
    };
    if start == end {
        utc_millis(start)
    } else {
        format!("{} to {}", utc_millis(start), utc_millis(end))
    }
}

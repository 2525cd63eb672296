//! One `[OUTPUT]` section of our plugin: its options, client and counters.
//!
//! [`Instance::flush`] is the safe API the C boundary wraps: a chunk in, an [`Outcome`]
//! out. It runs on a thread of ours (never on Fluent Bit's coroutine stack) and may run on
//! several threads at once (`workers N`): [`crate::prepare`] turns the chunk into events per
//! stream, then each stream's events are sorted, cut into batches and sent, and everything
//! not delivered is counted and logged with its reason.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::batch::{self, EVENT_OVERHEAD, Event, LEGACY_MAX_EVENT_BYTES};
use crate::config::{Config, StreamName};
use crate::decode::Skip;
use crate::deliver::{AwsError, Deliverer, Destination, Refresh, Rejected, Settings};
use crate::ledger::{BatchKey, Ledger};
use crate::log::{Logger, Throttle, utc_millis};
use crate::prepare::{Oversized, Prepared, Report, prepare_with, recut};
use crate::retry::{Budget, ErrorKind};
use crate::{credentials, ecs, runtime};

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

/// Warnings about records are repeated at most this often, with counts.
const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// A summary of retries and drops is logged at most this often.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

pub struct Instance {
    log: Logger,
    config: Config,
    deliverer: Deliverer,
    runtime: Handle,
    counters: Counters,
    throttle: Throttle,
    ledger: Ledger,
    /// When the last periodic summary was logged, and the problem count it covered.
    summary: Mutex<(Instant, u64)>,
    /// `$(uuid)`: one random id per instance, fixed at start-up.
    uuid: String,
    /// Whether a name template uses `$(ecs_*)`.
    uses_ecs: bool,
    /// Template failures already warned about (each distinct one once; bounded).
    warned_templates: Mutex<HashSet<String>>,
}

/// Distinct template failures remembered for warning once.
const MAX_WARNED_TEMPLATES: usize = 1024;

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    skipped: AtomicU64,
    rejected: AtomicU64,
    retried_flushes: AtomicU64,
    /// Batches not sent again on a chunk's retry because CloudWatch had them already.
    deduplicated: AtomicU64,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// What the calls for one stream in one flush share.
#[derive(Clone, Copy)]
struct Target<'a> {
    tag: &'a str,
    destination: &'a Destination,
    budget: &'a Budget,
}

/// What one stream's share of a flush did: the batches CloudWatch accepted, and the error
/// that stopped it, if any.
type StreamResult = (HashSet<BatchKey>, Option<AwsError>);

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
        let client = runtime.block_on(new_client(config.clone()));
        let for_refresh = config.clone();
        let refresh: Refresh = Box::new(move || Box::pin(new_client(for_refresh.clone())));
        log.info(format_args!("{}", describe(&config)));
        for option in &config.ignored {
            log.warn(format_args!(
                "'{option}' is accepted for compatibility with Fluent Bit's cloudwatch_logs plugin but not supported by this plugin: ignored"
            ));
        }
        let uses_ecs = config.log_group_name.uses_ecs()
            || matches!(&config.log_stream, StreamName::Fixed(t) if t.uses_ecs())
            || config
                .log_group_template
                .as_ref()
                .is_some_and(|t| t.uses_ecs())
            || config
                .log_stream_template
                .as_ref()
                .is_some_and(|t| t.uses_ecs());
        Some(Instance {
            uuid: random_uuid(),
            uses_ecs,
            warned_templates: Mutex::new(HashSet::new()),
            deliverer: Deliverer::new(
                client,
                refresh,
                Settings {
                    auto_create_group: config.auto_create_group,
                    auto_create_stream: config.auto_create_stream,
                    max_concurrent_requests: config.max_concurrent_requests,
                    group: config.group.clone(),
                    log_format: config.log_format.clone(),
                },
            ),
            log,
            config,
            runtime,
            counters: Counters::default(),
            throttle: Throttle::new(WARN_INTERVAL),
            ledger: Ledger::default(),
            summary: Mutex::new((Instant::now(), 0)),
        })
    }

    /// The runtime this instance's work runs on.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Delivers one chunk. Blocks until every event is delivered, or the delivery failed
    /// after the retries `retry_timeout` allows.
    pub fn flush(&self, tag: &[u8], chunk: &[u8]) -> Outcome {
        let tag = String::from_utf8_lossy(tag);
        #[cfg(debug_assertions)]
        if tag == PANIC_TAG {
            panic!("panic requested by the test tag");
        }
        let ecs = if self.uses_ecs {
            match ecs::metadata() {
                Ok(ecs) => ecs,
                Err(e) => {
                    self.log.error(format_args!(
                        "cannot read the ECS task metadata for $(ecs_*) names: {e}; Fluent Bit will retry the chunk"
                    ));
                    self.counters.retried_flushes.fetch_add(1, Relaxed);
                    return Outcome::Retry;
                }
            }
        } else {
            None
        };
        let mut prepared = prepare_with(&self.config, &tag, chunk, ecs.as_deref(), &self.uuid);
        self.report(&tag, &prepared.report);
        let already = self.ledger.take(&tag, chunk);
        let budget = Budget::new(self.config.retry_timeout, self.config.auto_retry_requests);
        let (mut done, error) =
            self.runtime
                .block_on(self.send(&tag, &mut prepared, &budget, &already));
        let outcome = match error {
            None => Outcome::Ok,
            Some(e) => {
                let hint = match (&e.kind, &e.code, &self.config.role_arn) {
                    // AWS answered: a permission is missing, or the credentials are refused.
                    (ErrorKind::Credentials, Some(_), Some(role)) => format!(
                        " (writing as role {role}: its trust policy must let this task's role assume it, and its policy must allow logs:{} on the group)",
                        e.operation
                    ),
                    (ErrorKind::Credentials, Some(_), None) => format!(
                        " (the task's credentials must allow logs:{} on the group)",
                        e.operation
                    ),
                    // No answer: the credentials could not be obtained at all.
                    (ErrorKind::Credentials, None, Some(role)) => format!(
                        " (no credentials for role {role}: check that STS{} can be reached and that this task's role may call sts:AssumeRole on it)",
                        self.config
                            .sts_endpoint
                            .as_deref()
                            .map(|u| format!(" at {u}"))
                            .unwrap_or_default()
                    ),
                    (ErrorKind::Credentials, None, None) => {
                        " (no credentials: check the task role, or the environment, profile or credentials_endpoint)".to_owned()
                    }
                    _ => String::new(),
                };
                self.log
                    .error(format_args!("{e}{hint}; Fluent Bit will retry the chunk"));
                self.counters.retried_flushes.fetch_add(1, Relaxed);
                done.extend(already);
                self.ledger.remember(&tag, chunk, done);
                Outcome::Retry
            }
        };
        self.maybe_summarize();
        outcome
    }

    /// Sends every stream's batches, the streams concurrently. Returns the keys of the
    /// batches accepted now and the first error.
    async fn send(
        &self,
        tag: &str,
        prepared: &mut Prepared,
        budget: &Budget,
        already: &HashSet<BatchKey>,
    ) -> (HashSet<BatchKey>, Option<AwsError>) {
        let messages = &prepared.messages;
        let streams = prepared
            .streams
            .iter_mut()
            .map(|(destination, events)| {
                let target = Target {
                    tag,
                    destination,
                    budget,
                };
                self.send_stream(target, messages, events, already)
            })
            .collect();
        let mut done = HashSet::new();
        let mut first_error = None;
        for (accepted, error) in runtime::join_all(streams).await {
            done.extend(accepted);
            first_error = first_error.or(error);
        }
        (done, first_error)
    }

    /// One stream: batches in time order; stops at the first batch that fails.
    async fn send_stream(
        &self,
        target: Target<'_>,
        messages: &[u8],
        events: &mut [Event],
        already: &HashSet<BatchKey>,
    ) -> StreamResult {
        let destination = target.destination;
        let mut done = HashSet::new();
        if let Err(e) = self
            .deliverer
            .ensure_stream(target.budget, destination)
            .await
        {
            return (done, Some(e));
        }
        for (number, range) in batch::plan(events).into_iter().enumerate() {
            let key = (
                destination.group.clone(),
                destination.stream.clone(),
                number,
            );
            if already.contains(&key) {
                self.counters.deduplicated.fetch_add(1, Relaxed);
                self.log.debug(format_args!(
                    "batch {number} of this chunk for {destination} was accepted before its retry: not sent again"
                ));
                continue;
            }
            let batch = &events[range];
            if let Err(e) = self.send_batch(target, messages, batch, true).await {
                return (done, Some(e));
            }
            done.insert(key);
        }
        (done, None)
    }

    /// One batch, with the fixes for what CloudWatch refuses in a batch: an event too large
    /// is cut down ([`Instance::resend_smaller`]); any other InvalidParameterException halves
    /// the batch once, and a half still refused is dropped with an error line (resending it
    /// unchanged could never succeed).
    async fn send_batch(
        &self,
        target: Target<'_>,
        messages: &[u8],
        batch: &[Event],
        may_halve: bool,
    ) -> Result<(), AwsError> {
        let Target {
            tag,
            destination,
            budget,
        } = target;
        match self
            .deliverer
            .put_batch(budget, destination, messages, batch)
            .await
        {
            Ok(rejected) => {
                self.accepted(target, batch, &rejected);
                Ok(())
            }
            Err(e) if e.is_event_too_large() => {
                self.resend_smaller(target, messages, batch, &e).await
            }
            Err(e) if e.code.as_deref() == Some("InvalidParameterException") => {
                if may_halve && batch.len() > 1 {
                    self.log.warn(format_args!(
                        "{e}; resending the batch of {} event(s) as two halves",
                        batch.len()
                    ));
                    let (a, b) = batch.split_at(batch.len() / 2);
                    Box::pin(self.send_batch(target, messages, a, false)).await?;
                    Box::pin(self.send_batch(target, messages, b, false)).await
                } else {
                    self.counters
                        .rejected
                        .fetch_add(batch.len() as u64, Relaxed);
                    self.log.error(format_args!(
                        "{e}; {} event(s) of tag '{tag}' (times {}) dropped: CloudWatch will not take them as they are",
                        batch.len(),
                        time_span(batch)
                    ));
                    Ok(())
                }
            }
            Err(e) => Err(e),
        }
    }

    /// CloudWatch refused an event of `batch` as too large for its per-event limit (older
    /// regions: 256 KiB): cut the batch's events to that limit by the `oversize_event`
    /// policy and send them once more.
    async fn resend_smaller(
        &self,
        target: Target<'_>,
        messages: &[u8],
        batch: &[Event],
        refusal: &AwsError,
    ) -> Result<(), AwsError> {
        let Target {
            tag,
            destination,
            budget,
        } = target;
        let max = LEGACY_MAX_EVENT_BYTES - EVENT_OVERHEAD;
        self.log.warn(format_args!(
            "{refusal}; resending the batch with messages cut to {max} bytes (oversize_event {}): set max_event_size {max} to avoid this",
            self.config.oversize_event.as_str()
        ));
        let (smaller, mut events, done) = recut(messages, batch, max, self.config.oversize_event);
        self.report_oversize(tag, &done, max);
        for range in batch::plan(&mut events) {
            let part = &events[range];
            let rejected = self
                .deliverer
                .put_batch(budget, destination, &smaller, part)
                .await?;
            self.accepted(target, part, &rejected);
        }
        Ok(())
    }

    /// Counts an accepted batch, and logs the events CloudWatch rejected from it.
    fn accepted(&self, target: Target<'_>, batch: &[Event], rejected: &Rejected) {
        let Target {
            tag, destination, ..
        } = target;
        let c = &self.counters;
        let delivered = batch.len() - rejected.count();
        let bytes: usize = batch.iter().map(|e| e.size).sum();
        c.events.fetch_add(delivered as u64, Relaxed);
        c.bytes.fetch_add(bytes as u64, Relaxed);
        c.batches.fetch_add(1, Relaxed);
        c.rejected.fetch_add(rejected.count() as u64, Relaxed);
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

    /// Logs what did not become events: one line per kind, at most once a minute per kind
    /// (with the count since the last line), never one per record.
    fn report(&self, tag: &str, r: &Report) {
        let mut skipped = 0u64;
        for (skip, n) in &r.skipped {
            if skip.is_problem() {
                skipped += *n as u64;
                if let Some(total) = self.throttle.admit(skip_kind(*skip), *n as u64) {
                    self.log.warn(format_args!(
                        "skipped {total} record(s) (latest of tag '{tag}'): {skip}"
                    ));
                }
            }
        }
        if r.missing_key > 0 {
            skipped += r.missing_key as u64;
            if let Some(total) = self.throttle.admit("missing log_key", r.missing_key as u64) {
                let key = self.config.log_key.as_deref().unwrap_or_default();
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
        self.counters.skipped.fetch_add(skipped, Relaxed);
        self.report_oversize(tag, &r.oversize, self.config.max_event_size);
        for failure in &r.template_failures {
            let mut warned = self
                .warned_templates
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if warned.len() < MAX_WARNED_TEMPLATES && warned.insert(failure.clone()) {
                self.log.warn(format_args!("{failure} (tag '{tag}')"));
            }
        }
        if let Some((offset, error)) = r.corrupt {
            self.log.error(format_args!(
                "chunk of tag '{tag}' is not valid MessagePack at byte {offset} ({error}): the rest of the chunk is skipped"
            ));
        }
    }

    fn report_oversize(&self, tag: &str, o: &Oversized, max: usize) {
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

    /// Problems so far: retries (in flush and of flushes), records skipped, events rejected.
    fn problems(&self) -> u64 {
        let (c, s) = (&self.counters, &self.deliverer.stats);
        c.retried_flushes.load(Relaxed)
            + s.retries.load(Relaxed)
            + c.skipped.load(Relaxed)
            + c.rejected.load(Relaxed)
    }

    fn totals(&self) -> String {
        let (c, s) = (&self.counters, &self.deliverer.stats);
        format!(
            "sent {} event(s), {} byte(s) in {} batch(es); {} record(s) skipped, {} event(s) rejected by CloudWatch; {} call(s) retried ({} throttled, {} credential refreshes), {} flush(es) answered retry, {} batch(es) not resent on retry",
            c.events.load(Relaxed),
            c.bytes.load(Relaxed),
            c.batches.load(Relaxed),
            c.skipped.load(Relaxed),
            c.rejected.load(Relaxed),
            s.retries.load(Relaxed),
            s.throttles.load(Relaxed),
            s.refreshes.load(Relaxed),
            c.retried_flushes.load(Relaxed),
            c.deduplicated.load(Relaxed)
        )
    }

    /// A summary line a minute, when something was retried, skipped or rejected since the
    /// last one.
    fn maybe_summarize(&self) {
        let mut last = self.summary.lock().unwrap_or_else(PoisonError::into_inner);
        let problems = self.problems();
        if last.0.elapsed() >= SUMMARY_INTERVAL && problems != last.1 {
            *last = (Instant::now(), problems);
            self.log
                .info(format_args!("last minute and before: {}", self.totals()));
        }
    }

    /// Logs the totals and stops the shared runtime if this was the last instance.
    pub fn exit(self) {
        self.log.info(format_args!("exit: {}", self.totals()));
        drop(self);
        runtime::release();
    }
}

/// A version-4 UUID from the system's random source (the clock if that fails).
fn random_uuid() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let mut x = crate::retry::jitter();
        for chunk in b.chunks_mut(8) {
            x ^= crate::retry::jitter().rotate_left(17);
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A client with credentials resolved afresh (the default chain, and the role on top).
async fn new_client(config: Config) -> aws_sdk_cloudwatchlogs::Client {
    let sdk = credentials::sdk_config(&config).await;
    credentials::logs_client(&sdk, &config)
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
        " auto_create_group={} auto_create_stream={} max_event_size={} oversize_event={}",
        c.auto_create_group,
        c.auto_create_stream,
        c.max_event_size,
        c.oversize_event.as_str()
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

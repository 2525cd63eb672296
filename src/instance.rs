//! One `[OUTPUT]` section of our plugin: ties its options, delivery engine and reporting
//! together.
//!
//! [`Instance::flush`] is the safe API the C boundary wraps: a chunk in, an [`Outcome`]
//! out. It runs on a thread of ours (never on Fluent Bit's coroutine stack) and may run on
//! several threads at once (`workers N`):
//! 1. [`crate::prepare`] turns the chunk into events per stream;
//! 2. the [`Ledger`] gives what an earlier try of the same chunk settled;
//! 3. [`crate::send`] sends the requests that are not settled, through the [`Deliverer`];
//! 4. the [`Reporter`] counts and logs; on failure the ledger keeps the progress.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tokio::runtime::Handle;

use crate::config::{Config, StreamName};
use crate::deliver::{AwsError, Deliverer, Refresh, Settings};
use crate::ledger::Ledger;
use crate::log::{HostLog, Logger, STALE};
use crate::metrics::{HostCounters, Metrics};
use crate::prepare::prepare_with;
use crate::report::Reporter;
use crate::retry::{Budget, ErrorKind};
use crate::send::{Flush, Sent};
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

pub struct Instance {
    config: Config,
    deliverer: Arc<Deliverer>,
    runtime: Handle,
    report: Reporter,
    ledger: Ledger,
    /// `$(uuid)`: one random id per instance, fixed at start-up.
    uuid: String,
    /// Whether a name template uses `$(ecs_*)`.
    uses_ecs: bool,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A chunk at least this big makes its flush a big one: once such flushes pause, the memory
/// they freed is given back to the system ([`runtime::BigFlush`]). Fluent Bit's chunks grow
/// to ~2 MB under load; a quiet application's are a few KiB.
const BIG_CHUNK: usize = 256 << 10;

/// What the host offers an instance beyond its options (`abi` finds out): Fluent Bit's
/// logger, the instance's metrics, the instance's name, its worker threads. Nothing on
/// hosts that do not prove they have them (Fluent Bit 1.9.10 has no logger or metrics for
/// us): then stderr and the summary line, as before.
#[derive(Default)]
pub struct Host {
    /// The instance's name as Fluent Bit shows it (`cloudwatch.0`, or its `alias`).
    pub name: Option<String>,
    pub log: Option<Box<dyn HostLog>>,
    pub counters: Option<Arc<dyn HostCounters>>,
    pub workers: Workers,
}

/// The instance's `workers`, as `abi` found and left it at Init. Fluent Bit gives a Go-ABI
/// output no worker thread unless `workers` is set, so its flushes would run on the engine
/// thread and every wait of ours would stall the whole process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// `workers` was not set (or was 0, which the host cannot tell apart): the plugin set
    /// it to 1, as Fluent Bit's C plugin declares.
    Enabled,
    /// `workers N` was set: kept.
    Kept(u32),
    /// Set to 1 through the host's setter, but what was there before could not be read
    /// back: a `workers N` of the `[OUTPUT]` may have become 1.
    Forced,
    /// The host offers no way to read or set it: flushes run on the engine thread unless
    /// the `[OUTPUT]` sets `workers`.
    #[default]
    Unknown,
}

/// The host's thread a flush was called on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostThread {
    /// Fluent Bit's engine thread (`workers` 0): short waits, Fluent Bit retries the rest.
    Engine,
    /// A worker thread of the output (or any other): waits ride out an outage.
    Worker,
}

impl Instance {
    /// Reads and checks the options (through `get`, which returns a property as set in
    /// `[OUTPUT]`), then builds the instance. Logs why it fails, once, and returns `None`.
    pub fn start(get: impl Fn(&str) -> Option<String>, host: Host) -> Option<Instance> {
        let id = NEXT_ID.fetch_add(1, Relaxed);
        let name = host.name.unwrap_or_else(|| format!("cloudwatch.{id}"));
        let log = match host.log {
            Some(sink) => Logger::with_host(name, sink),
            None => Logger::new(name),
        };
        let metrics = Metrics::new(host.counters);
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
        if let Some(drainer) = log.stale_drainer() {
            // Lines that waited for a flush that did not come: printed from here.
            runtime.spawn(async move {
                while drainer.drain() {
                    tokio::time::sleep(STALE).await;
                }
            });
        }
        let pace = credentials::Pace::new(log.clone());
        let client = runtime.block_on(new_client(config.clone(), pace.clone()));
        let for_refresh = config.clone();
        let refresh: Refresh = Box::new(move || {
            let (config, pace) = (for_refresh.clone(), pace.clone());
            Box::pin(async move { crate::fresh::client(&config, &pace).await })
        });
        log.info(format_args!("{}", describe(&config)));
        match host.workers {
            Workers::Enabled => log.info(format_args!(
                "'workers' is not set: the plugin set 'workers 1', so flushes run on a worker thread of Fluent Bit and never stall its engine (Go-ABI outputs otherwise flush on the engine thread)"
            )),
            Workers::Kept(_) => {}
            Workers::Forced => log.warn(format_args!(
                "set 'workers 1' so that flushes run on a worker thread of Fluent Bit, but could not read what the [OUTPUT] had set: a larger 'workers' may have become 1"
            )),
            Workers::Unknown => log.warn(format_args!(
                "'workers' cannot be set in this process (it exports no flb_output_set_property, or /proc/self/mem cannot be read): if this is Fluent Bit, set 'workers 1' in the [OUTPUT], or its flushes run on the engine thread, where they wait at most {}s before Fluent Bit retries them",
                crate::config::ENGINE_RETRY_TIMEOUT.as_secs()
            )),
        }
        for warning in &config.warnings {
            log.warn(format_args!("{warning}"));
        }
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
        let settings = Settings {
            auto_create_group: config.auto_create_group,
            auto_create_stream: config.auto_create_stream,
            max_concurrent_requests: config.max_concurrent_requests,
            group: config.group.clone(),
            log_format: config.log_format.clone(),
        };
        Some(Instance {
            uuid: random_uuid(),
            uses_ecs,
            deliverer: Arc::new(Deliverer::new(
                client,
                refresh,
                settings,
                log.clone(),
                metrics.clone(),
            )),
            report: Reporter::new(log, config.log_key.clone(), config.max_event_size, metrics),
            config,
            runtime,
            ledger: Ledger::default(),
        })
    }

    /// Delivers one chunk, for a flush called on a worker thread of Fluent Bit's: see
    /// [`Instance::flush_from`].
    pub fn flush(&self, tag: &[u8], chunk: &[u8]) -> Outcome {
        self.flush_from(HostThread::Worker, tag, chunk)
    }

    /// Delivers one chunk. Blocks until every event is delivered, or the delivery failed
    /// after the retries `retry_timeout` and `throttle_timeout` allow (whose defaults
    /// depend on `thread`: [`Config::patience`]), or Fluent Bit is stopping
    /// ([`crate::shutdown`]).
    pub fn flush_from(&self, thread: HostThread, tag: &[u8], chunk: &[u8]) -> Outcome {
        // Dropped last, after the flush's buffers.
        let _big = (chunk.len() >= BIG_CHUNK)
            .then(|| runtime::BigFlush::start(&self.runtime, crate::abi::release_free_memory));
        let tag = String::from_utf8_lossy(tag);
        #[cfg(debug_assertions)]
        if tag == PANIC_TAG {
            panic!("panic requested by the test tag");
        }
        let ecs = if self.uses_ecs {
            match ecs::metadata() {
                Ok(ecs) => ecs,
                Err(e) => {
                    self.report.flush_retried(format_args!(
                        "cannot read the ECS task metadata for $(ecs_*) names: {e}"
                    ));
                    return Outcome::Retry;
                }
            }
        } else {
            None
        };
        let mut prepared = prepare_with(&self.config, &tag, chunk, ecs.as_deref(), &self.uuid);
        self.report.prepared(&tag, &prepared.report);
        let (retry_timeout, throttle_timeout) = self.config.patience(thread == HostThread::Engine);
        let budget = Budget::new(
            retry_timeout,
            throttle_timeout,
            self.config.auto_retry_requests,
        );
        let flush = Flush::new(
            &self.deliverer,
            &self.report,
            self.config.oversize_event,
            &tag,
            &budget,
            self.ledger.take(&tag, chunk),
        );
        let outcome = match self.runtime.block_on(flush.send(&mut prepared)) {
            Sent::All => Outcome::Ok,
            sent => {
                match &sent {
                    Sent::Failed(e) => self.report.flush_failed(e, &self.hint(e)),
                    _ => self.report.flush_waited(),
                }
                self.ledger.remember(&tag, chunk, flush.into_progress());
                Outcome::Retry
            }
        };
        self.report.maybe_summarize(&self.deliverer.stats);
        outcome
    }

    /// What to check after a failure, when the error alone does not say.
    fn hint(&self, e: &AwsError) -> String {
        if crate::shutdown::has_begun() && e.kind.is_transient() {
            return " (Fluent Bit is stopping: not tried again in this flush)".to_owned();
        }
        let role = self.config.role_arn.as_deref();
        match (e.kind, role) {
            (ErrorKind::Denied, Some(role)) => format!(
                " (role {role} lacks a permission: its policy must allow logs:{} on {}; the credentials are kept)",
                e.operation,
                e.destination
            ),
            (ErrorKind::Denied, None) => format!(
                " (the task's credentials lack a permission: they must allow logs:{} on {})",
                e.operation, e.destination
            ),
            (ErrorKind::Credentials, Some(role)) if e.code.is_none() => format!(
                " (STS refused the credentials role {role} is assumed with; they are read again from their source at most once a minute)"
            ),
            (ErrorKind::Credentials, _) => {
                " (CloudWatch refused the credentials; they are read again from their source at most once a minute)".to_owned()
            }
            (ErrorKind::NoCredentials, Some(role)) => format!(
                " (no credentials for role {role}: check that STS{} can be reached, that this task's role may call sts:AssumeRole on it, and that its trust policy allows this task's role)",
                self.config
                    .sts_endpoint
                    .as_deref()
                    .map(|u| format!(" at {u}"))
                    .unwrap_or_default()
            ),
            (ErrorKind::NoCredentials, None) => {
                " (no credentials: check the task role, or the environment, profile or credentials_endpoint)".to_owned()
            }
            _ => String::new(),
        }
    }

    /// Prints the lines waiting for Fluent Bit's logger. Call on Fluent Bit's thread.
    pub fn drain_log(&self) {
        self.report.log.drain();
    }

    /// Logs the totals, stops the group-settings tasks and lets go of the host's logger and
    /// metrics (called on Fluent Bit's thread, at ExitCtx). The caller drops the instance,
    /// then releases the shared runtime.
    pub fn exit(&self) {
        self.deliverer.close();
        self.report.log.info(format_args!(
            "exit: {}",
            self.report.totals(&self.deliverer.stats)
        ));
        self.report.log.close_host();
        self.deliverer.stats.metrics.close();
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

/// A client whose credentials (the default chain, and the role on top) are resolved on first
/// use, fetched no more often than `pace` allows.
async fn new_client(config: Config, pace: credentials::Pace) -> aws_sdk_cloudwatchlogs::Client {
    let sdk = credentials::sdk_config(&config, pace).await;
    credentials::logs_client(&sdk, &config)
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
    if c.confine_names {
        s.push_str(" confine_names=true");
    }
    if c.add_entity {
        s.push_str(" add_entity=true");
    }
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

//! Log lines, through Fluent Bit's own logger where the host offers it, else on stderr in
//! Fluent Bit's shape: `[2026/11/24 20:11:38] [ info] [output:cloudwatch:cloudwatch.0] message`.
//!
//! Through the host ([`HostLog`], Fluent Bit >= 2.0): a line passes when the instance's
//! `log_level` lets it, and goes to Fluent Bit's log — its format and its destination
//! (`Log_File`) — when printed on one of Fluent Bit's threads. Lines are made on the
//! plugin's threads, so they wait in a queue that `abi` drains on Fluent Bit's thread after
//! each flush, after Init and at exit; a line that waited [`STALE`] (no flush came), or a
//! queue of [`MAX_QUEUED`] lines, is printed from the plugin's thread instead (Fluent Bit then
//! writes it to stderr itself). Every line is printed once, by one of these paths.
//!
//! Without the host: the level comes from `FLB_LOG_LEVEL` (as AWS's Go plugin reads it):
//! `error`, `warn`, `info` (default), `debug` or `trace`. Times are UTC.
//!
//! Nothing here may receive a secret: callers log names, codes and counts, never
//! credentials or whole records.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Parses `FLB_LOG_LEVEL`'s value; anything unknown means `info`.
    pub fn parse(value: &str) -> Level {
        match value.trim().to_ascii_lowercase().as_str() {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => Level::Info,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => " warn",
            Level::Info => " info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

fn max_level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        std::env::var("FLB_LOG_LEVEL")
            .map(|v| Level::parse(&v))
            .unwrap_or(Level::Info)
    })
}

/// Fluent Bit's logger, as `abi` reaches it. Callable from any thread.
pub trait HostLog: Send + Sync {
    /// Whether the instance's `log_level` lets `level` through; `None` once the host's
    /// instance is gone (after exit).
    fn enabled(&self, level: Level) -> Option<bool>;
    /// Prints one line (without a newline) at `level`; false once the instance is gone.
    fn print(&self, level: Level, line: &str) -> bool;
    /// The host's instance is going away: from now on `enabled` is `None`, `print` false.
    fn close(&self);
}

/// Lines printed from the plugin's thread when they waited this long for a drain.
pub const STALE: Duration = Duration::from_secs(2);
/// Lines printed at once from the plugin's thread when this many are queued.
pub const MAX_QUEUED: usize = 256;

/// Lines for the host's logger, waiting for a drain on Fluent Bit's thread.
struct HostQueue {
    sink: Box<dyn HostLog>,
    lines: Mutex<VecDeque<(Instant, Level, String)>>,
}

/// Writes lines for one output instance (`[output:cloudwatch:cloudwatch.N]`).
#[derive(Clone)]
pub struct Logger {
    instance: String,
    host: Option<Arc<HostQueue>>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("instance", &self.instance)
            .field("host", &self.host.is_some())
            .finish()
    }
}

impl Logger {
    /// Lines on stderr, at `FLB_LOG_LEVEL`.
    pub fn new(instance: impl Into<String>) -> Self {
        Logger {
            instance: instance.into(),
            host: None,
        }
    }

    /// Lines through the host's logger, at the instance's `log_level`.
    pub fn with_host(instance: impl Into<String>, sink: Box<dyn HostLog>) -> Self {
        Logger {
            instance: instance.into(),
            host: Some(Arc::new(HostQueue {
                sink,
                lines: Mutex::new(VecDeque::new()),
            })),
        }
    }

    /// Prints the queued lines through the host. Call on Fluent Bit's thread.
    pub fn drain(&self) {
        if let Some(h) = &self.host {
            h.drain(None);
        }
    }

    /// Prints what is queued, then stops using the host (at exit, on Fluent Bit's thread):
    /// later lines go to stderr.
    pub fn close_host(&self) {
        if let Some(h) = &self.host {
            h.drain(None);
            h.sink.close();
        }
    }

    /// A handle for a task that prints lines left waiting [`STALE`] (see [`drain_stale`]).
    pub fn stale_drainer(&self) -> Option<StaleDrainer> {
        self.host.as_ref().map(|h| StaleDrainer(Arc::downgrade(h)))
    }

    /// The instance's name, as Fluent Bit would show it (`cloudwatch.0`).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn enabled(&self, level: Level) -> bool {
        match self.host.as_ref().and_then(|h| h.sink.enabled(level)) {
            Some(on) => on,
            None => level <= max_level(),
        }
    }

    pub fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        if let Some(h) = &self.host {
            match h.sink.enabled(level) {
                Some(false) => return,
                Some(true) => {
                    let line = format!(
                        "[output:cloudwatch:{}] {}",
                        self.instance,
                        one_line(&message.to_string())
                    );
                    h.push(level, line);
                    return;
                }
                None => {} // The host's instance is gone: stderr, as without a host.
            }
        }
        if level > max_level() {
            return;
        }
        let line = format!(
            "[{}] [{}] [output:cloudwatch:{}] {}\n",
            timestamp(SystemTime::now()),
            level.label(),
            self.instance,
            one_line(&message.to_string())
        );
        // One write per line, so lines of concurrent flushes do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    pub fn error(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Error, message)
    }
    pub fn warn(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Warn, message)
    }
    pub fn info(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Info, message)
    }
    pub fn debug(&self, message: fmt::Arguments<'_>) {
        self.log(Level::Debug, message)
    }
}

impl HostQueue {
    fn push(&self, level: Level, line: String) {
        let full = {
            let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            lines.push_back((Instant::now(), level, line));
            lines.len() >= MAX_QUEUED
        };
        if full {
            self.drain(None);
        }
    }

    /// Prints the queued lines (only those older than `older_than`, if given), in order.
    fn drain(&self, older_than: Option<Duration>) {
        let now = Instant::now();
        loop {
            let next = {
                let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
                match lines.front() {
                    Some((at, _, _))
                        if older_than.is_none_or(|d| now.saturating_duration_since(*at) >= d) =>
                    {
                        lines.pop_front()
                    }
                    _ => None,
                }
            };
            let Some((_, level, line)) = next else {
                return;
            };
            if !self.sink.print(level, &line) {
                // The host's instance is gone: the line still goes out, on stderr.
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "[{}] [{}] {line}",
                    timestamp(SystemTime::now()),
                    level.label()
                );
            }
        }
    }
}

impl Drop for HostQueue {
    /// The last logger of an instance is gone: what still waits is printed, never dropped.
    fn drop(&mut self) {
        self.drain(None);
    }
}

/// Prints the lines of one instance that waited [`STALE`] for a drain; ends with the
/// instance.
pub struct StaleDrainer(Weak<HostQueue>);

impl StaleDrainer {
    /// False once the instance is gone.
    pub fn drain(&self) -> bool {
        match self.0.upgrade() {
            Some(h) => {
                h.drain(Some(STALE));
                true
            }
            None => false,
        }
    }
}

/// An error and its sources as one line, `a: b: c`, each cause once (the SDK's own
/// rendering appends a debug dump of the whole error, too long and too raw for a log line),
/// with the task's container-credentials URLs redacted ([`crate::credentials::scrub`]).
pub fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    crate::credentials::scrub(line)
}

/// The message with line breaks and other control characters escaped (`\n`, `\u{1b}`):
/// messages carry tags and names that come from the data (a forward-protocol client picks its
/// tags), and none of them may start a log line of its own. Tabs stay.
fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    if !message.contains(|c: char| c.is_control() && c != '\t') {
        return message.into();
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.into()
}

/// Lets a kind of warning through at most once per interval, counting what it held back, so
/// a stream of bad records makes a line a minute, not a line a chunk.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    seen: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records `n` occurrences of `kind`. Returns the count to report (these and the ones
    /// held back since the last report) when a line is due now, else `None`.
    pub fn admit(&self, kind: &'static str, n: u64) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match seen.get_mut(kind) {
            Some((last, held)) if now.duration_since(*last) < self.interval => {
                *held += n;
                None
            }
            Some((last, held)) => {
                let total = *held + n;
                *last = now;
                *held = 0;
                Some(total)
            }
            None => {
                seen.insert(kind, (now, 0));
                Some(n)
            }
        }
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDThh:mm:ss.mmmZ`.
pub fn utc_millis(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY/MM/DD hh:mm:ss` in UTC.
fn timestamp(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_fluent_bit_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_551_844);
        assert_eq!(timestamp(t), "2026/11/24 20:24:04");
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn a_message_is_always_one_line() {
        assert_eq!(one_line("plain\ttab é"), "plain\ttab é");
        assert_eq!(
            one_line("app\n[1999/01/01] [error] forged\r\u{1b}[31m"),
            "app\\n[1999/01/01] [error] forged\\r\\u{1b}[31m"
        );
    }

    #[test]
    fn formats_event_times() {
        assert_eq!(utc_millis(1_795_551_844_123), "2026-11-24T20:24:04.123Z");
        assert_eq!(utc_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn throttle_admits_once_per_interval_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.admit("a", 2), Some(2));
        assert_eq!(t.admit("a", 3), None);
        assert_eq!(t.admit("b", 1), Some(1));
        let t = Throttle::new(Duration::ZERO);
        assert_eq!(t.admit("a", 2), Some(2));
        assert_eq!(t.admit("a", 3), Some(3));
    }

    /// A host that records what it was given, and can be closed.
    struct Recorder {
        level: Level,
        lines: Mutex<Vec<(Level, String)>>,
        closed: std::sync::atomic::AtomicBool,
    }

    impl HostLog for Arc<Recorder> {
        fn enabled(&self, level: Level) -> Option<bool> {
            (!self.closed.load(std::sync::atomic::Ordering::Relaxed)).then_some(level <= self.level)
        }
        fn print(&self, level: Level, line: &str) -> bool {
            if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
                return false;
            }
            self.lines.lock().unwrap().push((level, line.to_owned()));
            true
        }
        fn close(&self) {
            self.closed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn host_lines_wait_for_a_drain_pass_the_level_and_come_once() {
        let host = Arc::new(Recorder {
            level: Level::Warn,
            lines: Mutex::new(Vec::new()),
            closed: false.into(),
        });
        let log = Logger::with_host("cloudwatch.3", Box::new(host.clone()));
        log.warn(format_args!("a\nb"));
        log.info(format_args!("not at warn"));
        log.error(format_args!("c"));
        assert!(
            host.lines.lock().unwrap().is_empty(),
            "queued until drained"
        );
        assert!(log.enabled(Level::Warn) && !log.enabled(Level::Info));
        log.drain();
        log.drain();
        assert_eq!(
            *host.lines.lock().unwrap(),
            vec![
                (
                    Level::Warn,
                    "[output:cloudwatch:cloudwatch.3] a\\nb".to_owned()
                ),
                (
                    Level::Error,
                    "[output:cloudwatch:cloudwatch.3] c".to_owned()
                ),
            ]
        );
        // A full queue is printed at once.
        for i in 0..MAX_QUEUED {
            log.warn(format_args!("{i}"));
        }
        assert_eq!(host.lines.lock().unwrap().len(), 2 + MAX_QUEUED);
        // Stale lines only, by the drainer; it ends with the logger.
        log.warn(format_args!("fresh"));
        let drainer = log.stale_drainer().unwrap();
        assert!(drainer.drain());
        assert_eq!(
            host.lines.lock().unwrap().len(),
            2 + MAX_QUEUED,
            "not stale yet"
        );
        drop(log);
        assert!(!drainer.drain());
    }

    #[test]
    fn parses_levels() {
        assert_eq!(Level::parse("DEBUG"), Level::Debug);
        assert_eq!(Level::parse("warning"), Level::Warn);
        assert_eq!(Level::parse("nonsense"), Level::Info);
    }
}

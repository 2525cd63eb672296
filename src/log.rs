//! Log lines in Fluent Bit's own shape, on stderr:
//! `[2026/11/24 20:11:38] [ info] [output:cloudwatch:cloudwatch.0] message`.
//!
//! The level comes from `FLB_LOG_LEVEL` (as AWS's Go plugin reads it): `error`, `warn`,
//! `info` (default), `debug` or `trace`. Times are UTC. Nothing here may receive a secret:
//! callers log names, codes and counts, never credentials or whole records.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::{Mutex, OnceLock, PoisonError};
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

/// Writes lines for one output instance (`[output:cloudwatch:cloudwatch.N]`).
#[derive(Debug, Clone)]
pub struct Logger {
    instance: String,
}

impl Logger {
    pub fn new(instance: impl Into<String>) -> Self {
        Logger {
            instance: instance.into(),
        }
    }

    /// The instance's name, as Fluent Bit would show it (`cloudwatch.0`).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn enabled(&self, level: Level) -> bool {
        level <= max_level()
    }

    pub fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        if !self.enabled(level) {
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

    #[test]
    fn parses_levels() {
        assert_eq!(Level::parse("DEBUG"), Level::Debug);
        assert_eq!(Level::parse("warning"), Level::Warn);
        assert_eq!(Level::parse("nonsense"), Level::Info);
    }
}

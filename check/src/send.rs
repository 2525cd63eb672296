//! The last step: one test event through the plugin's own flush, as Fluent Bit hands it
//! over (a one-record chunk, Fluent Bit 1.x format).
//!
//! It runs in a child process, this program again with [`CHILD_VAR`] set: the plugin writes
//! its log lines to its process's stderr, and reading the child's stderr is how the check
//! learns why a flush failed (the operation, AWS error code and message of the plugin's
//! error line) without any change to the plugin. The child's lines are passed on to our
//! stderr as they were.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use flb_host::host::{FLB_OK, Plugin};
use flb_host::msgpack::{Format, Writer};

use crate::cli::Args;

/// Set in the child's environment: this process only sends the test event.
pub const CHILD_VAR: &str = "FLB_CLOUDWATCH_CHECK_SEND";

/// The test event: `log` and `source`, as FireLens records have them.
pub const TEST_MESSAGE: &str = "test event from flb-cloudwatch-check";
pub const TEST_SOURCE: &str = "flb-cloudwatch-check";

/// The child's exit statuses.
const NOT_DELIVERED: u8 = 1;
const NOT_STARTED: u8 = 3;

/// What the plugin's error line ends with on a failed flush.
const RETRY_SUFFIX: &str = "; Fluent Bit will retry the chunk";

/// The one-record chunk, timed `now`.
pub fn chunk(now: SystemTime) -> Vec<u8> {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = u32::try_from(since.as_secs()).unwrap_or(u32::MAX);
    let mut w = Writer::new();
    w.event(Format::V1, secs, since.subsec_nanos())
        .string_map(&[("log", TEST_MESSAGE), ("source", TEST_SOURCE)]);
    w.buf
}

/// The options as the host takes them.
pub fn properties(args: &Args) -> Vec<(&str, &str)> {
    args.properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// In the child: load the library, start the instance, flush the chunk, stop.
pub fn child(args: &Args, library: &Path) -> ExitCode {
    let plugin: &'static Plugin = match Plugin::load(library) {
        Ok(p) => Box::leak(Box::new(p)),
        Err(e) => {
            eprintln!("cannot load {}: {e}", library.display());
            return ExitCode::from(NOT_STARTED);
        }
    };
    let Ok(output) = plugin.init(&properties(args)) else {
        return ExitCode::from(NOT_STARTED);
    };
    let code = output.flush(&args.tag, &chunk(SystemTime::now()));
    output.exit();
    if code == FLB_OK {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_DELIVERED)
    }
}

/// In the parent: runs the child and passes its stderr on. `Err` holds why the event was
/// not delivered: the plugin's error message when it logged one.
pub fn run(args: &Args, library: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cmd = Command::new(&exe);
    cmd.env(CHILD_VAR, "1")
        .arg("-e")
        .arg(library)
        .arg("--tag")
        .arg(&args.tag);
    for (key, value) in &args.properties {
        cmd.arg("-p").arg(format!("{key}={value}"));
    }
    if std::env::var_os("FLB_LOG_LEVEL").is_none() {
        // The parent's Init already logged the effective options.
        cmd.env("FLB_LOG_LEVEL", "warn");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let log = String::from_utf8_lossy(&out.stderr);
    eprint!("{log}");
    match out.status.code() {
        Some(0) => Ok(()),
        Some(c) if c == i32::from(NOT_DELIVERED) => Err(last_error(&log).unwrap_or_else(|| {
            "not delivered (the flush answered FLB_RETRY): see the plugin's log above".into()
        })),
        Some(c) if c == i32::from(NOT_STARTED) => {
            Err("the plugin did not start: see its log line above".into())
        }
        _ => Err(format!(
            "the sending process failed ({}): see the output above",
            out.status
        )),
    }
}

/// The message of the last `[error]` line, without its prefix and retry suffix:
/// `[time] [error] [output:cloudwatch:cloudwatch.0] message; Fluent Bit will retry the chunk`.
fn last_error(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| l.contains("] [error] ["))?;
    let message = line.splitn(4, "] ").nth(3)?;
    Some(
        message
            .strip_suffix(RETRY_SUFFIX)
            .unwrap_or(message)
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugins_error_line_is_read_back() {
        let log = "[2026/11/24 20:11:38] [ warn] [output:cloudwatch:cloudwatch.0] something\n\
                   [2026/11/24 20:11:39] [error] [output:cloudwatch:cloudwatch.0] CreateLogStream to group '/g' stream 's' failed: ResourceNotFoundException: The specified log group does not exist. (the log group does not exist; create it, or set auto_create_group true); Fluent Bit will retry the chunk\n";
        assert_eq!(
            last_error(log).as_deref(),
            Some(
                "CreateLogStream to group '/g' stream 's' failed: ResourceNotFoundException: The specified log group does not exist. (the log group does not exist; create it, or set auto_create_group true)"
            )
        );
        assert_eq!(last_error("[x] [ info] [y] fine\n"), None);
    }

    #[test]
    fn the_chunk_is_one_firelens_like_record() {
        let at = UNIX_EPOCH + std::time::Duration::new(1_795_551_844, 5_000_000);
        let c = chunk(at);
        // [EventTime(1795551844.005), {"log": …, "source": …}]
        assert_eq!(&c[..2], &[0x92, 0xd7]);
        assert_eq!(&c[3..7], &1_795_551_844u32.to_be_bytes());
        assert!(
            c.windows(TEST_MESSAGE.len())
                .any(|w| w == TEST_MESSAGE.as_bytes())
        );
    }
}

//! Helpers shared by the test modules: the child-process runner, the fixtures, and an
//! independent oracle for the messages CloudWatch should store.

#![allow(dead_code)] // Each module uses its own subset.

pub use flb_host::cloud::{Account, SOURCE_SECRET_KEY};
pub use flb_host::host::{FLB_OK, FLB_RETRY, plugin};
pub use flb_host::moto::Moto;

use std::process::{Command, Output};

/// The destination account and role of the ECS example.
pub const DEST_ACCOUNT: &str = "222222222222";
pub const ROLE_ARN: &str = "arn:aws:iam::222222222222:role/firelens-cross-account";
pub const REGION: &str = "ap-northeast-1";

const CHILD_VAR: &str = "FLB_TEST_CHILD";

/// The program that runs this test binary when it is not the machine's own (an emulator:
/// scripts/arm64-test.sh sets it to `qemu-aarch64` with Cargo's target runner); children
/// are run through it too, since the kernel cannot run such a binary by itself.
const RUNNER_VAR: &str = "FLB_TEST_RUNNER";

/// Whether this process is the child half of a test (see [`run_child`]).
pub fn is_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// Reads a variable the parent passed to the child.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set by the parent"))
}

/// Runs the test `name` (its path in this binary, e.g. `deliver_::cross_account`) again in
/// a child process, as Fluent Bit would run: its own process, with exactly the AWS
/// environment of a task (the source account's keys, no profile, no IMDS) plus `vars` (an
/// empty value removes a variable).
/// Returns the child's output; its stderr holds the plugin's log lines.
pub fn run_child(name: &str, vars: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = match std::env::var_os(RUNNER_VAR) {
        Some(runner) => {
            let mut cmd = Command::new(runner);
            cmd.arg(exe);
            cmd
        }
        None => Command::new(exe),
    };
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    flb_host::cloud::task_environment(&mut cmd);
    cmd.env(CHILD_VAR, "1");
    for (k, v) in vars {
        // An empty value removes the variable (e.g. the task's keys, to test other sources).
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().expect("run child");
    assert_no_secret(name, &String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "child {name} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What no log line may hold: the secrets the tests hand the plugin (keys, tokens,
/// external ids), the paths of container-credentials URLs (bearer capabilities), and the
/// shapes of the secrets moto makes up for assumed roles.
const SECRETS: &[&str] = &[
    flb_host::cloud::SOURCE_SECRET_KEY,
    "endpoint-secret",
    "endpoint-token",
    "task-auth-token",
    "shared-secret-id",
    "/v2/credentials/",
    "/creds",
    "endpoint-path-secret",
    "full-uri-secret",
    "FQoGZXIvYXdzE",
    "chained-role-secret-key",
    "chained-role-session-token",
    "SecretAccessKey",
    "aws_secret_access_key",
];

/// Every child's log (which is every log line the plugin writes in these tests, since
/// everything that reaches AWS runs in a child) is checked here: no secret in any line.
pub fn assert_no_secret(test: &str, log: &str) {
    for line in log.lines() {
        // The test harness's own lines are not the plugin's.
        if !line.starts_with('[') {
            continue;
        }
        if let Some(secret) = SECRETS.iter().find(|s| line.contains(*s)) {
            panic!("{test}: a secret ({secret:?}) reached the log:\n{line}");
        }
    }
}

/// The messages stored in `account`'s `group` / `stream`, in order.
pub fn messages(account: &Account, group: &str, stream: &str) -> Vec<String> {
    account
        .events(group, stream)
        .into_iter()
        .map(|e| e.message)
        .collect()
}

/// The time of the records of [`chunk`].
pub const CHUNK_T0: u32 = 1_795_551_844;

/// `n` records `{"log": "<label> <i>"}`, a millisecond apart from [`CHUNK_T0`] (modulo a
/// second).
pub fn chunk(n: usize, label: &str) -> Vec<u8> {
    let mut w = flb_host::msgpack::Writer::new();
    for i in 0..n {
        w.event(
            flb_host::msgpack::Format::V2,
            CHUNK_T0,
            (i % 1000) as u32 * 1_000_000,
        )
        .map(1)
        .str("log")
        .str(format!("{label} {i}"));
    }
    w.buf
}

/// The messages of [`chunk`]`(n, label)`.
pub fn labels(n: usize, label: &str) -> Vec<String> {
    (0..n).map(|i| format!("{label} {i}")).collect()
}

/// Each stored message exactly once, and exactly the expected ones.
pub fn assert_exactly_once(stored: Vec<(i64, String)>, want: impl IntoIterator<Item = String>) {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, m) in stored {
        *counts.entry(m).or_default() += 1;
    }
    let mut want: Vec<String> = want.into_iter().collect();
    want.sort();
    let missing: Vec<&String> = want.iter().filter(|w| !counts.contains_key(*w)).collect();
    assert!(
        missing.is_empty(),
        "{} lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "stored more than once: {duplicated:?}"
    );
    assert_eq!(counts.len(), want.len(), "nothing else stored");
}

/// A field of this process's `/proc/self/status` in KiB (`VmPeak`, `RssAnon`, …).
pub fn status_kb(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fixture's bytes: exactly what Fluent Bit passed to FlushCtx.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = flb_host::fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub const FIXTURES: &[&str] = &[
    "v1-edge-bin.msgpack",
    "v1-edge-cases.msgpack",
    "v1-firelens-httpd.msgpack",
    "v2-dummy.msgpack",
    "v2-edge-bin.msgpack",
    "v2-edge-cases.msgpack",
    "v2-firelens-httpd.msgpack",
    "v2-otlp-group-markers.msgpack",
];

/// An event as CloudWatch should store it: the same shape as what the tests read back.
pub use flb_host::cloud::StoredEvent as Expected;

/// What the plugin should send for a chunk, computed independently of it (rmpv to decode,
/// serde_json to escape strings): whole records as JSON in key order, or the `log_key`
/// string without its trailing line end; group markers and empty messages skipped; sorted
/// by time with equal times in record order. (Messages here are all under 1,000,000 bytes.)
pub fn expected(chunk: &[u8], log_key: Option<&str>) -> Vec<Expected> {
    let mut rd = chunk;
    let mut out = Vec::new();
    while !rd.is_empty() {
        let value = rmpv::decode::read_value(&mut rd).expect("fixture is MessagePack");
        let rmpv::Value::Array(parts) = value else {
            panic!("not an event")
        };
        let (time, body) = (&parts[0], &parts[1]);
        let time = match time {
            rmpv::Value::Array(t) => &t[0],
            t => t,
        };
        let ms = match time {
            rmpv::Value::Ext(0, d) => {
                let secs = u32::from_be_bytes(d[0..4].try_into().unwrap());
                if secs >= 0xffff_fffe {
                    continue; // group marker
                }
                let nanos = u32::from_be_bytes(d[4..8].try_into().unwrap());
                i64::from(secs) * 1000 + i64::from(nanos / 1_000_000)
            }
            rmpv::Value::Integer(i) => i.as_i64().unwrap() * 1000,
            rmpv::Value::F64(f) => (f * 1000.0) as i64,
            other => panic!("time {other:?}"),
        };
        let message = match log_key {
            None => json(body),
            Some(k) => match body
                .as_map()
                .unwrap()
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
            {
                Some((_, rmpv::Value::String(s))) => {
                    let text = String::from_utf8_lossy(s.as_bytes());
                    let text = text
                        .strip_suffix('\n')
                        .map_or(&*text, |t| t.strip_suffix('\r').unwrap_or(t));
                    text.to_owned()
                }
                Some((_, v)) => json(v),
                None => continue,
            },
        };
        if message.is_empty() {
            continue;
        }
        out.push(Expected {
            timestamp: ms,
            message,
        });
    }
    out.sort_by_key(|e| e.timestamp);
    out
}

fn string(bytes: &[u8]) -> String {
    serde_json::to_string(&String::from_utf8_lossy(bytes)).unwrap()
}

/// JSON by the plugin's documented rules.
fn json(v: &rmpv::Value) -> String {
    use rmpv::Value::*;
    match v {
        Nil => "null".into(),
        Boolean(b) => b.to_string(),
        Integer(i) => i.to_string(),
        F32(f) => serde_json::to_string(f).unwrap(),
        F64(f) => serde_json::to_string(f).unwrap(),
        String(s) => string(s.as_bytes()),
        Binary(b) => string(b),
        Array(items) => format!("[{}]", items.iter().map(json).collect::<Vec<_>>().join(",")),
        Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        String(s) => string(s.as_bytes()),
                        Binary(b) => string(b),
                        other => serde_json::to_string(&json(other)).unwrap(),
                    };
                    format!("{key}:{}", json(v))
                })
                .collect::<Vec<_>>()
                .join(",")
        ),
        Ext(t, d) => format!(
            "{{\"ext_type\":{t},\"hex\":\"{}\"}}",
            d.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<std::string::String>()
        ),
    }
}

/// The latest timestamp of a chunk, to pin moto's clock near the fixtures' capture day.
pub fn latest_ms(chunks: &[&[u8]]) -> i64 {
    chunks
        .iter()
        .flat_map(|c| expected(c, None))
        .map(|e| e.timestamp)
        .max()
        .unwrap_or(0)
}

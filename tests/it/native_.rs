//! Native to Fluent Bit (issue 15): on a host that offers its logger and metrics (Fluent
//! Bit >= 2.0, played by flb-host's `v4` and `v5` kinds), the plugin's lines go through `flb_log_print`
//! at the instance's `log_level` and its counters into the instance's cmetrics context; on
//! v1.9.10 and on a host that exports nothing, everything is as before.

use std::collections::BTreeMap;

use crate::support::*;
use flb_host::msgpack::{Format, Writer};
use flb_host::stub::{Fault, Rules, Stub};

const T0: u32 = 1_795_551_844;
/// Events before this are "too old" for the stub.
const OLDEST_MS: i64 = (T0 as i64 - 1000) * 1000;

/// 10 events, 2 too old, 1 record without `log`.
fn first_chunk() -> Vec<u8> {
    let mut w = Writer::new();
    for i in 0..2u32 {
        w.event(Format::V2, T0 - 5000, i)
            .map(1)
            .str("log")
            .str(format!("old {i}"));
    }
    for i in 0..8u32 {
        w.event(Format::V2, T0, i)
            .map(1)
            .str("log")
            .str(format!("new {i}"));
    }
    w.event(Format::V2, T0, 99)
        .map(1)
        .str("other")
        .str("no log key");
    w.buf
}

fn second_chunk() -> Vec<u8> {
    let mut w = Writer::new();
    for i in 0..5u32 {
        w.event(Format::V2, T0 + 1, i)
            .map(1)
            .str("log")
            .str(format!("later {i}"));
    }
    w.buf
}

/// The child: one instance at `LOG_LEVEL`; a throttled call retried in the flush, a chunk
/// answered FLB_RETRY and delivered on its retry.
fn child() {
    let url = var("STUB");
    let level = var("LOG_LEVEL");
    let out = plugin()
        .init(&[
            ("region", REGION),
            ("log_group_name", "/g"),
            ("log_stream_name", "s"),
            ("log_key", "log"),
            ("auto_create_group", "true"),
            ("retry_timeout", "0"),
            // The throttled put is retried in the flush, on the engine thread (`bare`) too,
            // where the default is 5 s: too short under valgrind.
            ("throttle_timeout", "60s"),
            ("endpoint", &url),
            ("log_level", &level),
        ])
        .expect("init");
    assert_eq!(out.flush("app", &first_chunk()), FLB_OK);
    let second = second_chunk();
    assert_eq!(out.flush("app", &second), FLB_RETRY);
    assert_eq!(out.flush("app", &second), FLB_OK);
    flb_host::host::dump_counters();
    assert_eq!(out.exit(), FLB_OK);
}

fn stub() -> Stub {
    Stub::start(Rules {
        oldest_ms: Some(OLDEST_MS),
        // The first put throttled (retried in the flush), the third a 503 (no time left:
        // retry_timeout 0), answered FLB_RETRY.
        faults: vec![Fault::Throttle, Fault::None, Fault::ServerError],
        ..Rules::default()
    })
}

fn run(test: &str, kind: &str, level: &str) -> (Stub, String) {
    let stub = stub();
    let log = stderr(&run_child(
        test,
        &[
            ("STUB", &stub.url()),
            ("FLB_HOST_KIND", kind),
            ("LOG_LEVEL", level),
        ],
    ));
    (stub, log)
}

/// `[host-metric] name{labels} value` lines → a map.
fn counters(log: &str) -> BTreeMap<String, u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("[host-metric] "))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn delivered(stub: &Stub) -> usize {
    stub.all_events().len()
}

/// Fluent Bit v4.1.2 and v5.1.1 (the nine-field flb_api, the exports of >= 2.0; each with
/// its own instance layout and Register definition): lines through the host, counters in the
/// instance's cmetrics context.
#[test]
fn v4_1_and_v5_hosts_get_the_lines_at_the_instance_level_and_the_counters() {
    if is_child() {
        return child();
    }
    for kind in ["v4", "v5"] {
        let (stub, log) = run(
            "native_::v4_1_and_v5_hosts_get_the_lines_at_the_instance_level_and_the_counters",
            kind,
            "info",
        );
        assert_eq!(
            delivered(&stub),
            13,
            "{kind}: 8 + 5 stored, 2 rejected as too old"
        );
        // Every line of ours went through the host, with its level; none on our own stderr.
        let ours: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("[output:cloudwatch:"))
            .collect();
        assert!(!ours.is_empty(), "{kind}");
        for line in &ours {
            assert!(line.starts_with("[host:"), "not through the host: {line}");
        }
        assert!(
            ours.iter().any(|l| l
                .starts_with("[host:info] [output:cloudwatch:cloudwatch.0] region=ap-northeast-1")),
            "{log}"
        );
        assert!(
            ours.iter().any(|l| l.starts_with("[host:warn] [output:cloudwatch:cloudwatch.0] CloudWatch rejected 2 event(s) of tag 'app'")),
            "{log}"
        );
        assert!(
            ours.iter().any(|l| l.starts_with("[host:error] [output:cloudwatch:cloudwatch.0] PutLogEvents to group '/g' stream 's' failed: ServiceUnavailableException")),
            "{log}"
        );
        assert!(
            ours.iter().any(|l| l.starts_with(
                "[host:info] [output:cloudwatch:cloudwatch.0] exit: sent 13 event(s)"
            )),
            "{log}"
        );
        assert_eq!(
            ours.iter()
                .filter(|l| l.contains("CloudWatch rejected 2 event(s)"))
                .count(),
            1,
            "each line once"
        );
        let c = counters(&log);
        let name = r#"name="cloudwatch.0""#;
        let get = |metric: &str, reason: Option<&str>| {
            let labels = match reason {
                Some(r) => format!(r#"{name},reason="{r}""#),
                None => name.to_owned(),
            };
            c.get(&format!("fluentbit_cloudwatch_{metric}{{{labels}}}"))
                .copied()
                .unwrap_or_else(|| panic!("no {metric} {reason:?} in {c:#?}"))
        };
        assert_eq!(get("events_delivered_total", None), 13);
        assert_eq!(get("bytes_delivered_total", None), 2 * 5 + 8 * 5 + 5 * 7);
        assert_eq!(get("requests_total", None), 2);
        assert_eq!(get("events_rejected_total", Some("too_old")), 2);
        assert_eq!(get("events_rejected_total", Some("too_new")), 0);
        assert_eq!(get("records_skipped_total", Some("missing_log_key")), 1);
        assert_eq!(get("records_skipped_total", Some("bad_timestamp")), 0);
        assert_eq!(get("throttled_total", None), 1);
        assert_eq!(get("retries_total", None), 1);
        assert_eq!(get("flush_retries_total", None), 1);
        assert_eq!(get("credential_refreshes_total", None), 0);
        assert_eq!(get("requests_not_resent_total", None), 0);
    }
}

/// `log_level error` on the instance: warnings and info lines are not printed at all.
#[test]
fn a_v5_host_s_instance_log_level_filters_the_lines() {
    if is_child() {
        return child();
    }
    let (stub, log) = run(
        "native_::a_v5_host_s_instance_log_level_filters_the_lines",
        "v5",
        "error",
    );
    assert_eq!(delivered(&stub), 13);
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[output:cloudwatch:"))
        .collect();
    assert!(!ours.is_empty(), "{log}");
    assert!(ours.iter().all(|l| l.starts_with("[host:error] ")), "{log}");
}

/// v1.9.10 (exports flb_log_print and cmt_counter_create, one-field flb_api) and a host that
/// exports nothing: the plugin's own lines on stderr, as before, and no metrics.
#[test]
fn v1_9_10_and_bare_hosts_behave_as_before() {
    if is_child() {
        return child();
    }
    for kind in ["v1", "bare"] {
        let (stub, log) = run(
            "native_::v1_9_10_and_bare_hosts_behave_as_before",
            kind,
            "info",
        );
        assert_eq!(delivered(&stub), 13, "{kind}");
        assert!(!log.contains("[host:"), "{kind}: {log}");
        assert!(counters(&log).is_empty(), "{kind}");
        let ours: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("[output:cloudwatch:"))
            .collect();
        assert!(
            ours.iter()
                .all(|l| l.starts_with("[20") && l.contains("] [")),
            "{kind}: Fluent Bit's shape, from the plugin: {ours:#?}"
        );
        assert!(
            ours.iter().any(|l| l.contains(
                "[ warn] [output:cloudwatch:cloudwatch.0] CloudWatch rejected 2 event(s)"
            )),
            "{kind}: {log}"
        );
    }
}

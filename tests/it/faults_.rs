//! Delivery under faults moto cannot make, from `flb_host::stub`: for each, every event ends
//! up stored exactly once and the flushes answer what Fluent Bit needs to hear.

use std::time::Duration;

use crate::support::*;
use flb_host::stub::{Fault, Rules, Stub};

fn init(url: &str, extra: &[(&str, &str)]) -> flb_host::host::Output {
    let mut p = vec![
        ("region", REGION),
        ("log_group_name", "/g"),
        ("log_stream_prefix", "s-"),
        ("log_key", "log"),
        ("auto_create_group", "true"),
        ("endpoint", url),
    ];
    p.extend_from_slice(extra);
    plugin().init(&p).expect("init")
}

/// Faults that retrying inside the flush overcomes: the flush answers FLB_OK.
#[test]
fn transient_faults_are_retried_within_the_flush() {
    let scenarios: &[(&str, &[Fault])] = &[
        (
            "throttled",
            &[Fault::Throttle, Fault::Throttle, Fault::Throttle],
        ),
        ("server errors", &[Fault::ServerError, Fault::ServerError]),
        ("connection reset", &[Fault::Reset]),
        ("slow answer", &[Fault::Slow(Duration::from_millis(1500))]),
        ("stream deleted", &[Fault::None, Fault::DeleteStream]),
        ("expired token", &[Fault::ExpiredToken]),
    ];
    if is_child() {
        let out = init(&var("STUB"), &[]);
        assert_eq!(out.flush("app", &chunk(300, "a")), FLB_OK);
        assert_eq!(out.flush("app", &chunk(300, "b")), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    for (name, faults) in scenarios {
        let stub = Stub::start(Rules {
            faults: faults.to_vec(),
            ..Rules::default()
        });
        let log = stderr(&run_child(
            "faults_::transient_faults_are_retried_within_the_flush",
            &[("STUB", &stub.url())],
        ));
        assert_exactly_once(
            stub.all_events(),
            labels(300, "a").into_iter().chain(labels(300, "b")),
        );
        let calls = stub.calls();
        assert!(
            calls.iter().filter(|c| c.contains('(')).count()
                >= faults.iter().filter(|f| **f != Fault::None).count(),
            "{name}: {calls:?}"
        );
        assert!(
            !log.contains("[error]"),
            "{name}: nothing failed for good:\n{log}"
        );
        match *name {
            "throttled" => assert!(log.contains("(3 throttled"), "{log}"),
            "expired token" => assert!(log.contains("1 credential refreshes"), "{log}"),
            "stream deleted" => {
                let at = calls
                    .iter()
                    .position(|c| c == "PutLogEvents (DeleteStream)")
                    .expect("fault used");
                assert_eq!(
                    calls[at + 1..at + 3],
                    ["CreateLogStream", "PutLogEvents"],
                    "recreated, then resent: {calls:?}"
                );
            }
            _ => {}
        }
    }
}

/// Throttling that outlasts `throttle_timeout`: the flush answers FLB_RETRY with the cause,
/// and Fluent Bit's next tries deliver everything, once.
#[test]
fn persistent_throttling_hands_over_to_fluent_bits_retries() {
    if is_child() {
        let out = init(
            &var("STUB"),
            &[("retry_timeout", "300ms"), ("throttle_timeout", "300ms")],
        );
        let data = chunk(100, "t");
        let mut codes = vec![out.flush("app", &data)];
        while codes.last() != Some(&FLB_OK) && codes.len() < 50 {
            codes.push(out.flush("app", &data));
        }
        assert_eq!(codes[0], FLB_RETRY);
        assert_eq!(codes.last(), Some(&FLB_OK), "{codes:?}");
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let stub = Stub::start(Rules {
        faults: vec![Fault::Throttle; 30],
        ..Rules::default()
    });
    let log = stderr(&run_child(
        "faults_::persistent_throttling_hands_over_to_fluent_bits_retries",
        &[("STUB", &stub.url())],
    ));
    assert_exactly_once(stub.all_events(), labels(100, "t"));
    assert!(log.contains("PutLogEvents to group '/g' stream 's-app' failed: ThrottlingException: Rate exceeded; Fluent Bit will retry the chunk"), "{log}");
}

/// A chunk whose first batch was accepted before the flush failed: when Fluent Bit retries
/// it, only the rest is sent (no duplicates).
#[test]
fn a_retried_chunk_does_not_duplicate_accepted_batches() {
    if is_child() {
        // 25,000 events: batches of 10,000, 10,000 and 5,000, sent at once. No in-flush
        // retries, so the 503 on the second call fails the flush at once.
        let out = init(&var("STUB"), &[("auto_retry_requests", "false")]);
        let data = chunk(25_000, "p");
        assert_eq!(out.flush("app", &data), FLB_RETRY);
        assert_eq!(out.flush("app", &data), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let stub = Stub::start(Rules {
        faults: vec![Fault::None, Fault::ServerError],
        ..Rules::default()
    });
    let log = stderr(&run_child(
        "faults_::a_retried_chunk_does_not_duplicate_accepted_batches",
        &[("STUB", &stub.url())],
    ));
    assert_exactly_once(stub.all_events(), labels(25_000, "p"));
    let puts = stub
        .calls()
        .iter()
        .filter(|c| c.starts_with("PutLogEvents"))
        .count();
    assert_eq!(
        puts, 4,
        "three batches at once, one a 503; then only that one"
    );
    assert!(log.contains("2 batch(es) not resent on retry"), "{log}");
}

/// `workers 4`: 4 threads flush 8 chunks each into 3 streams at once, with throttling and
/// resets sprinkled in; every event lands exactly once, and no more than
/// `max_concurrent_requests` calls are in flight.
#[test]
fn concurrent_flushes_into_three_streams_with_faults() {
    if is_child() {
        let out = init(
            &var("STUB"),
            &[("max_concurrent_requests", "2"), ("workers", "4")],
        );
        std::thread::scope(|s| {
            for t in 0..4 {
                let out = &out;
                s.spawn(move || {
                    for c in 0..8 {
                        let tag = format!("app{}", (t + c) % 3);
                        assert_eq!(out.flush(&tag, &chunk(200, &format!("w{t} c{c}"))), FLB_OK);
                    }
                });
            }
        });
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let mut faults = Vec::new();
    for i in 0..40 {
        faults.push(match i % 5 {
            1 => Fault::Throttle,
            3 => Fault::Slow(Duration::from_millis(50)),
            4 if i % 10 == 4 => Fault::Reset,
            _ => Fault::None,
        });
    }
    let stub = Stub::start(Rules {
        faults,
        ..Rules::default()
    });
    run_child(
        "faults_::concurrent_flushes_into_three_streams_with_faults",
        &[("STUB", &stub.url())],
    );
    let want = (0..4).flat_map(|t| (0..8).flat_map(move |c| labels(200, &format!("w{t} c{c}"))));
    assert_exactly_once(stub.all_events(), want);
    let streams: Vec<_> = stub
        .state
        .lock()
        .unwrap()
        .streams
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(streams, vec!["s-app0", "s-app1", "s-app2"]);
    assert!(
        stub.max_inflight() <= 2,
        "max_concurrent_requests 2, saw {}",
        stub.max_inflight()
    );
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

/// This process's threads, given up to 1 s to come down to `want`: a thread that was
/// joined can still be listed for a moment, because the kernel wakes the joiner before it
/// reaps the thread (seen once in CI on a loaded machine: 3 listed where 2 remained).
fn threads_once_reaped(want: usize) -> usize {
    let mut n = count_dir("/proc/self/task");
    for _ in 0..50 {
        if n == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        n = count_dir("/proc/self/task");
    }
    n
}

/// ExitCtx frees everything: after the last instance exits, the process has the threads it
/// had before the first Init, and an Init/Exit cycle leaves no file descriptor behind.
/// (tokio keeps one socket pair for signals per process, made at the first runtime's start;
/// hence the file descriptors are compared from the second cycle on.)
#[test]
fn exit_leaves_no_thread_or_file_descriptor_behind() {
    if is_child() {
        let plugin = plugin();
        let threads = count_dir("/proc/self/task");
        let mut fds = Vec::new();
        for cycle in 0..3 {
            let a = init(&var("STUB"), &[]);
            let b = init(&var("STUB"), &[("log_stream_prefix", "other-")]);
            assert_eq!(a.flush("app", &chunk(50, &format!("x{cycle}"))), FLB_OK);
            assert_eq!(b.flush("app", &chunk(50, &format!("y{cycle}"))), FLB_OK);
            assert!(
                count_dir("/proc/self/task") > threads,
                "the plugin runs threads of its own"
            );
            assert_eq!(a.exit(), FLB_OK);
            assert_eq!(b.exit(), FLB_OK);
            assert_eq!(threads_once_reaped(threads), threads, "threads left behind");
            fds.push(count_dir("/proc/self/fd"));
        }
        plugin.unregister();
        assert!(
            fds.windows(2).all(|w| w[0] == w[1]),
            "file descriptors grow per cycle: {fds:?}"
        );
        return;
    }
    let stub = Stub::start(Rules::default());
    run_child(
        "faults_::exit_leaves_no_thread_or_file_descriptor_behind",
        &[("STUB", &stub.url())],
    );
    let want = (0..3).flat_map(|c| {
        labels(50, &format!("x{c}"))
            .into_iter()
            .chain(labels(50, &format!("y{c}")))
    });
    assert_exactly_once(stub.all_events(), want);
}

/// A batch CloudWatch refuses as malformed (InvalidParameterException) is resent as two
/// halves once; halves refused again are dropped with an error line and counted, and the
/// flush never loops on them.
#[test]
fn malformed_batches_are_halved_once_then_dropped_with_a_reason() {
    if is_child() {
        let out = init(&var("STUB"), &[]);
        assert_eq!(out.flush("app", &chunk(10, &var("LABEL"))), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    // Refused once: both halves go through.
    let stub = Stub::start(Rules {
        faults: vec![Fault::InvalidParameter],
        ..Rules::default()
    });
    let log = stderr(&run_child(
        "faults_::malformed_batches_are_halved_once_then_dropped_with_a_reason",
        &[("STUB", &stub.url()), ("LABEL", "h")],
    ));
    assert_exactly_once(stub.all_events(), labels(10, "h"));
    assert!(
        log.contains("resending the request of 10 event(s) as two halves"),
        "{log}"
    );
    // Refused every time: the original and both halves, then nothing more.
    let stub = Stub::start(Rules {
        faults: vec![Fault::InvalidParameter; 10],
        ..Rules::default()
    });
    let log = stderr(&run_child(
        "faults_::malformed_batches_are_halved_once_then_dropped_with_a_reason",
        &[("STUB", &stub.url()), ("LABEL", "d")],
    ));
    assert!(stub.all_events().is_empty());
    let puts = stub
        .calls()
        .iter()
        .filter(|c| c.starts_with("PutLogEvents"))
        .count();
    assert_eq!(puts, 3, "the batch and its two halves, no more");
    let dropped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[error]") && l.contains("dropped"))
        .collect();
    assert_eq!(dropped.len(), 2, "{log}");
    assert!(dropped[0].contains("InvalidParameterException: Log events in a single PutLogEvents request must be in chronological order."), "{}", dropped[0]);
    assert!(log.contains("10 event(s) rejected by CloudWatch"), "{log}");
}

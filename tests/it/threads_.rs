//! Which of Fluent Bit's threads runs the flushes, and what a stop signal does to a flush
//! that waits out an outage (issue 27: a flush on the engine thread stalled every input
//! and held Fluent Bit past its grace, losing the records of the last minute before a
//! restart).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use flb_host::stub::{Fault, Rules, Stub};

fn options<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("region", REGION),
        ("log_group_name", "/threads"),
        ("log_stream_name", "s"),
        ("log_key", "log"),
        ("auto_create_group", "true"),
        ("endpoint", "http://127.0.0.1:9"),
        ("retry_timeout", "0"),
    ];
    p.extend_from_slice(extra);
    p
}

/// With `workers` unset, Fluent Bit would flush a Go-ABI output on its engine thread: the
/// plugin sets `workers 1` at Init, on the v1.9.10, v4.1.2 and v5.1.1 hosts alike, and the host
/// then flushes on the output's worker thread. A `workers N` that the `[OUTPUT]` sets is
/// kept. A host without the setter keeps the engine thread, and Init says so. Before: every
/// flush on `flb-pipeline`.
#[test]
fn flushes_run_on_a_worker_thread_unless_the_host_cannot_say() {
    if is_child() {
        let kind = flb_host::host::host_kind();
        let unset = plugin().init(&options(&[])).expect("init");
        let four = plugin().init(&options(&[("workers", "4")])).expect("init");
        let zero = plugin().init(&options(&[("workers", "0")])).expect("init");
        let engine = vec![flb_host::host::ENGINE_THREAD.to_owned()];
        if kind == flb_host::host::HostKind::Bare {
            assert_eq!(unset.flush_threads(), engine);
            assert_eq!(zero.flush_threads(), engine);
        } else {
            let one = unset.flush_threads();
            assert_eq!(one.len(), 1, "{one:?}");
            assert!(one[0].starts_with("flb-out-cloudwatch.") && one[0].ends_with("-w0"));
            // `workers 0` and unset are the same to the host.
            assert_eq!(zero.flush_threads().len(), 1);
        }
        assert_eq!(four.flush_threads().len(), 4);
        // Wherever it runs, a flush works (the closed port fails at once: retry).
        for out in [&unset, &four, &zero] {
            assert_eq!(out.flush("app", &chunk(3, "t")), FLB_RETRY);
        }
        for out in [unset, four, zero] {
            assert_eq!(out.exit(), FLB_OK);
        }
        return;
    }
    for kind in ["v1", "v4", "v5", "bare"] {
        let log = stderr(&run_child(
            "threads_::flushes_run_on_a_worker_thread_unless_the_host_cannot_say",
            &[("FLB_HOST_KIND", kind)],
        ));
        let set = log.matches("the plugin set 'workers 1'").count();
        let cannot = log
            .matches("'workers' cannot be set in this process")
            .count();
        if kind == "bare" {
            assert_eq!((set, cannot), (0, 3), "{kind}:\n{log}");
        } else {
            // Unset and `workers 0`; the instance with `workers 4` says nothing.
            assert_eq!((set, cannot), (2, 0), "{kind}:\n{log}");
        }
    }
}

/// The child's instance, against a CloudWatch that answers every put with a 503.
fn init_in_an_outage() -> flb_host::host::Output {
    plugin()
        .init(&[
            ("region", REGION),
            ("log_group_name", "/outage"),
            ("log_stream_name", "s"),
            ("log_key", "log"),
            ("auto_create_group", "true"),
            ("endpoint", &var("STUB")),
        ])
        .expect("init")
}

/// Runs `test`'s child against that CloudWatch: the stub and the child's log.
fn run_in_an_outage(test: &str, vars: &[(&str, &str)]) -> (Stub, String) {
    let stub = Stub::start(Rules {
        faults: vec![Fault::ServerError; 10_000],
        ..Rules::default()
    });
    let url = stub.url();
    let mut vars = vars.to_vec();
    vars.push(("STUB", &url));
    let log = stderr(&run_child(test, &vars));
    (stub, log)
}

/// What the process had on SIGTERM before the plugin: Fluent Bit's handler notes the
/// signal (its main loop then stops the engine).
static HOST_SAW_SIGTERM: AtomicBool = AtomicBool::new(false);

extern "C" fn host_handler(_signal: libc::c_int) {
    HOST_SAW_SIGTERM.store(true, Ordering::SeqCst);
}

fn sigterm_handler() -> usize {
    // SAFETY: reads the current action into a zeroed struct.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGTERM, std::ptr::null(), &mut action);
        action.sa_sigaction
    }
}

/// A flush on a worker waits out an outage (`retry_timeout` 300 s by default there), but a
/// SIGTERM ends the wait: the flush answers FLB_RETRY within a few seconds, so Fluent Bit
/// exits within its grace and keeps the chunk (on disk, with filesystem buffering) for the
/// next start. Fluent Bit's own handler still runs, and is put back at the last exit.
/// Before: the flush waited out its retry_timeout after the signal (seen: SIGKILL 40 s
/// after SIGTERM).
#[test]
fn a_stop_signal_ends_a_flush_that_waits_out_an_outage() {
    if is_child() {
        let host: extern "C" fn(libc::c_int) = host_handler;
        // SAFETY: installs a handler that only stores to an atomic, as Fluent Bit's does.
        unsafe { libc::signal(libc::SIGTERM, host as usize) };
        let out = init_in_an_outage();
        assert_ne!(
            sigterm_handler(),
            host as usize,
            "the plugin chained its own"
        );
        let started = Instant::now();
        let code = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_secs(3));
                // SAFETY: signals this process, as ECS does.
                unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
            });
            out.flush("app", &chunk(10, "outage"))
        });
        let waited = started.elapsed();
        assert_eq!(code, FLB_RETRY);
        assert!(
            HOST_SAW_SIGTERM.load(Ordering::SeqCst),
            "Fluent Bit's handler ran"
        );
        // The default patience is 300 s; the signal came after 3.
        assert!(waited < Duration::from_secs(60), "{waited:?}");
        println!("flush answered {waited:?} after it began (signal at 3 s)");
        // During the grace Fluent Bit flushes the rest once more: one try each, no wait.
        assert_eq!(out.flush("app", &chunk(10, "grace")), FLB_RETRY);
        assert_eq!(out.exit(), FLB_OK);
        assert_eq!(
            sigterm_handler(),
            host as usize,
            "Fluent Bit's handler is back"
        );
        return;
    }
    let (stub, log) = run_in_an_outage(
        "threads_::a_stop_signal_ends_a_flush_that_waits_out_an_outage",
        &[],
    );
    assert!(
        log.contains("the plugin set 'workers 1'"),
        "the flush ran on a worker:\n{log}"
    );
    assert!(
        log.contains("(Fluent Bit is stopping: not tried again in this flush)"),
        "{log}"
    );
    assert!(stub.all_events().is_empty());
}

/// On the engine thread (a host whose `workers` the plugin cannot set), a flush waits
/// `retry_timeout`'s short default there (5 s), not the worker's 300 s: Fluent Bit reads
/// no input while it waits, so the rest is left to its retries.
#[test]
fn on_the_engine_thread_a_flush_leaves_long_waits_to_fluent_bit() {
    if is_child() {
        let out = init_in_an_outage();
        assert_eq!(
            out.flush_threads(),
            vec![flb_host::host::ENGINE_THREAD.to_owned()]
        );
        let started = Instant::now();
        assert_eq!(out.flush("app", &chunk(5, "e")), FLB_RETRY);
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(60), "{waited:?}");
        println!("flush on the engine thread answered after {waited:?}");
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let (_stub, log) = run_in_an_outage(
        "threads_::on_the_engine_thread_a_flush_leaves_long_waits_to_fluent_bit",
        &[("FLB_HOST_KIND", "bare")],
    );
    assert!(
        log.contains("'workers' cannot be set in this process"),
        "{log}"
    );
}

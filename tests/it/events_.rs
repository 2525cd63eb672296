use crate::support::*;
use flb_host::msgpack::{Format, Writer};
use flb_host::stub::{Rules, Stub};

const T0: u32 = 1_795_551_844; // 2026-11-24T20:24:04Z

fn chunk(records: &[(u32, &str)]) -> Vec<u8> {
    let mut w = Writer::new();
    for (secs, log) in records {
        w.event(Format::V2, *secs, 0).map(1).str("log").str(log);
    }
    w.buf
}

fn stub_options<'a>(url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("region", REGION),
        ("log_group_name", "/g"),
        ("log_stream_name", "s"),
        ("log_key", "log"),
        ("auto_create_group", "true"),
        ("endpoint", url),
    ];
    p.extend_from_slice(extra);
    p
}

/// Where CloudWatch still has a 256 KiB event limit, the batch it refuses is cut again to
/// that limit, sent once more, and the log says to set max_event_size.
#[test]
fn a_batch_refused_as_too_large_is_recut_and_resent() {
    let big = "x".repeat(300_000);
    let records = [
        (T0, "small before"),
        (T0 + 1, big.as_str()),
        (T0 + 2, "small after"),
    ];
    if is_child() {
        let url = var("STUB");
        let policy = var("POLICY");
        let out = plugin()
            .init(&stub_options(&url, &[("oversize_event", &policy)]))
            .expect("init");
        assert_eq!(out.flush("big", &chunk(&records)), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    for policy in ["truncate", "split"] {
        let stub = Stub::start(Rules {
            max_event_bytes: Some(262_144),
            ..Rules::default()
        });
        let log = stderr(&run_child(
            "events_::a_batch_refused_as_too_large_is_recut_and_resent",
            &[("STUB", &stub.url()), ("POLICY", policy)],
        ));
        // As CloudWatch returns them: by time, equal times in the order they arrived.
        let mut stored = stub.events("/g", "s");
        stored.sort_by_key(|(t, _)| *t);
        assert!(
            stored.iter().all(|(_, m)| m.len() + 26 <= 262_144),
            "{policy}"
        );
        assert_eq!(stored.first().map(|e| e.1.as_str()), Some("small before"));
        assert_eq!(stored.last().map(|e| e.1.as_str()), Some("small after"));
        let middle: Vec<&str> = stored[1..stored.len() - 1]
            .iter()
            .map(|e| e.1.as_str())
            .collect();
        match policy {
            "truncate" => {
                assert_eq!(middle.len(), 1);
                assert!(middle[0].ends_with("[Truncated...]") && middle[0].len() == 262_118);
            }
            _ => assert_eq!(middle.concat(), big, "split loses no byte"),
        }
        let puts = stub.calls().iter().filter(|c| *c == "PutLogEvents").count();
        assert_eq!(puts, 2, "refused once, resent once ({policy})");
        assert!(
            log.contains("Log event too large") && log.contains("set max_event_size 262118"),
            "{log}"
        );
    }
}

/// Events outside CloudWatch's window are not lost silently: the response's
/// rejectedLogEventsInfo is read, and each kind is counted and logged with tag and times.
#[test]
fn rejected_events_are_counted_and_logged_with_their_times() {
    let records = [
        (T0 - 100, "old 1"),
        (T0 - 50, "old 2"),
        (T0, "ok 1"),
        (T0, "ok 2"),
        (T0 + 1, "ok 3"),
        (T0 + 10_000, "future"),
    ];
    if is_child() {
        let url = var("STUB");
        let out = plugin().init(&stub_options(&url, &[])).expect("init");
        assert_eq!(out.flush("app.web", &chunk(&records)), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let t0_ms = i64::from(T0) * 1000;
    let stub = Stub::start(Rules {
        oldest_ms: Some(t0_ms - 1),
        newest_ms: Some(t0_ms + 5_000_000),
        ..Rules::default()
    });
    let log = stderr(&run_child(
        "events_::rejected_events_are_counted_and_logged_with_their_times",
        &[("STUB", &stub.url())],
    ));
    let stored: Vec<String> = stub.events("/g", "s").into_iter().map(|e| e.1).collect();
    assert_eq!(stored, vec!["ok 1", "ok 2", "ok 3"]);
    assert!(
        log.contains(
            "CloudWatch rejected 2 event(s) of tag 'app.web' for group '/g' stream 's' as too old"
        ) && log.contains("times 2026-11-24T20:22:24.000Z to 2026-11-24T20:23:14.000Z"),
        "{log}"
    );
    assert!(
        log.contains("rejected 1 event(s) of tag 'app.web'") && log.contains("too far ahead"),
        "{log}"
    );
    assert!(log.contains("3 event(s) rejected by CloudWatch"), "{log}");
}

/// `oversize_event split` with a message of 2.5 MB: several events, same time, in order,
/// every byte delivered; `drop`: counted and warned, the rest delivered.
#[test]
fn oversize_policies_end_to_end() {
    let huge: String = (0..2_500_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let records = [(T0, huge.as_str()), (T0 + 1, "next")];
    if is_child() {
        let url = var("STUB");
        let policy = var("POLICY");
        let out = plugin()
            .init(&stub_options(&url, &[("oversize_event", &policy)]))
            .expect("init");
        assert_eq!(out.flush("t", &chunk(&records)), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let stub = Stub::start(Rules::default());
    run_child(
        "events_::oversize_policies_end_to_end",
        &[("STUB", &stub.url()), ("POLICY", "split")],
    );
    // As CloudWatch returns them: by time, equal times in the order they arrived.
    let mut stored = stub.events("/g", "s");
    stored.sort_by_key(|(t, _)| *t);
    assert_eq!(
        stored.len(),
        4,
        "3 pieces of at most 1,000,000 bytes, then 'next'"
    );
    assert!(
        stored[..3]
            .iter()
            .all(|(t, m)| *t == i64::from(T0) * 1000 && m.len() <= 1_000_000)
    );
    assert_eq!(
        stored[..3].iter().map(|e| e.1.as_str()).collect::<String>(),
        huge
    );
    assert_eq!(stored[3].1, "next");

    let stub = Stub::start(Rules::default());
    let log = stderr(&run_child(
        "events_::oversize_policies_end_to_end",
        &[("STUB", &stub.url()), ("POLICY", "drop")],
    ));
    let stored: Vec<String> = stub.events("/g", "s").into_iter().map(|e| e.1).collect();
    assert_eq!(stored, vec!["next"]);
    assert!(
        log.contains("1 message(s) longer than 1000000 bytes (max_event_size) dropped"),
        "{log}"
    );
    assert!(log.contains("1 record(s) skipped"), "{log}");
}

/// A missing log_key warns once, with the count, not once per chunk.
#[test]
fn missing_log_key_warnings_are_rate_limited() {
    if is_child() {
        let url = var("STUB");
        let out = plugin()
            .init(&stub_options(&url, &[("log_key", "message")]))
            .expect("init");
        for _ in 0..5 {
            assert_eq!(out.flush("t", &chunk(&[(T0, "a"), (T0, "b")])), FLB_OK);
        }
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let stub = Stub::start(Rules::default());
    let log = stderr(&run_child(
        "events_::missing_log_key_warnings_are_rate_limited",
        &[("STUB", &stub.url())],
    ));
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("without the key 'message'"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("skipped 2 record(s)"),
        "{}",
        warnings[0]
    );
    assert!(
        log.contains("10 record(s) skipped"),
        "the exit summary counts them all: {log}"
    );
    assert!(
        stub.calls().iter().all(|c| c != "PutLogEvents"),
        "nothing to send"
    );
}

mod properties {
    use flb_host::msgpack::{Format, Writer};
    use flb_out_cloudwatch::batch::{
        self, EVENT_OVERHEAD, Event, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS,
        MAX_MESSAGE_BYTES,
    };
    use flb_out_cloudwatch::config::{Config, Oversize, StreamName};
    use flb_out_cloudwatch::encode::unescape;
    use flb_out_cloudwatch::prepare::prepare;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    /// Checks CloudWatch's batch rules and that the batches are the stable time-sort of
    /// the input, each event exactly once.
    fn check_batches(sorted: &[Event], batches: &[std::ops::Range<usize>]) {
        let mut next = 0;
        for b in batches {
            assert_eq!(b.start, next);
            next = b.end;
            let batch = &sorted[b.clone()];
            assert!(!batch.is_empty() && batch.len() <= MAX_BATCH_EVENTS);
            assert!(
                batch.iter().map(|e| e.size + EVENT_OVERHEAD).sum::<usize>() <= MAX_BATCH_BYTES
            );
            assert!(
                batch
                    .windows(2)
                    .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
            );
            assert!(
                batch[batch.len() - 1].timestamp_ms - batch[0].timestamp_ms < MAX_BATCH_SPAN_MS
            );
        }
        assert_eq!(next, sorted.len());
    }

    fn size() -> impl Strategy<Value = usize> {
        prop_oneof![20 => 0usize..300, 1 => 0usize..=MAX_MESSAGE_BYTES]
    }

    fn time() -> impl Strategy<Value = i64> {
        prop_oneof![0i64..5, 0i64..3 * DAY]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any events: every batch obeys every rule, nothing lost, order = stable sort.
        #[test]
        fn every_batch_obeys_every_rule(input in prop::collection::vec((time(), size()), 0..12_000)) {
            // message.start carries the input index (<< 21 leaves room for any length).
            let mut events: Vec<Event> = input
                .iter()
                .enumerate()
                .map(|(i, &(t, len))| Event::new(t, (i << 21)..(i << 21) + len, len))
                .collect();
            let batches = batch::plan(&mut events);
            check_batches(&events, &batches);
            let mut want: Vec<(i64, usize)> = input.iter().enumerate().map(|(i, &(t, _))| (t, i)).collect();
            want.sort_by_key(|&(t, _)| t);
            let got: Vec<(i64, usize)> = events.iter().map(|e| (e.timestamp_ms, e.message.start >> 21)).collect();
            prop_assert_eq!(got, want);
        }

        /// Any records (random bytes, invalid UTF-8 included, random sizes): with `split`,
        /// the delivered text is every record's message, in stable time order, no byte lost;
        /// every event is non-empty, within max_event_size, and batches obey the rules.
        #[test]
        fn records_split_into_events_lose_nothing(
            records in prop::collection::vec((0u32..200_000, prop::collection::vec(any::<u8>(), 0..2_000)), 0..60),
            max in 256usize..1_500,
        ) {
            let mut w = Writer::new();
            for (t, bytes) in &records {
                w.event(Format::V1, 1_795_000_000 + t, 0).map(1).str("log").str(bytes);
            }
            let config = Config {
                log_key: Some("log".into()),
                max_event_size: max,
                oversize_event: Oversize::Split,
                ..Config::new("us-east-1", "g", StreamName::Fixed("s".into()))
            };
            let mut p = prepare(&config, "t", &w.buf);
            let mut text = String::new();
            for (_, events) in &mut p.streams {
                let batches = batch::plan(events);
                check_batches(events, &batches);
                for e in events.iter() {
                    let m = unescape(&p.messages[e.message.clone()]);
                    prop_assert!(!m.is_empty() && m.len() <= max && m.len() == e.size);
                    text.push_str(&m);
                }
            }
            let mut want: Vec<(u32, String)> = records
                .iter()
                .map(|(t, b)| {
                    let s = String::from_utf8_lossy(b);
                    let s = s.strip_suffix('\n').map_or(&*s, |s| s.strip_suffix('\r').unwrap_or(s));
                    (*t, s.to_owned())
                })
                .collect();
            want.sort_by_key(|(t, _)| *t);
            prop_assert_eq!(text, want.into_iter().map(|(_, s)| s).collect::<String>());
        }
    }
}

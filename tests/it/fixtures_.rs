use crate::support::*;
use flb_out_cloudwatch::batch;
use flb_out_cloudwatch::config::{Config, StreamName};
use flb_out_cloudwatch::encode::unescape;
use flb_out_cloudwatch::prepare::{messages_of, prepare};

fn config() -> Config {
    Config::new(REGION, "/fixtures", StreamName::Prefix("fx-".into()))
}

/// Every captured chunk decodes completely: each record becomes exactly the oracle's
/// message and time, in time order, and only group markers are left out.
#[test]
fn every_fixture_prepares_exactly() {
    for name in FIXTURES {
        let chunk = fixture(name);
        for log_key in [None, Some("log")] {
            let cfg = Config {
                log_key: log_key.map(String::from),
                ..config()
            };
            let mut p = prepare(&cfg, "t", &chunk);
            let got: Vec<Expected> = p
                .streams
                .iter_mut()
                .flat_map(|(_, events)| {
                    batch::plan(events);
                    events
                        .iter()
                        .map(|e| Expected {
                            timestamp: e.timestamp_ms,
                            message: unescape(&p.messages[e.message.clone()]),
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(got, expected(&chunk, log_key), "{name} log_key={log_key:?}");
            assert!(p.report.corrupt.is_none(), "{name}");
            assert!(
                p.report.skipped.keys().all(|s| !s.is_problem()),
                "{name}: {:?}",
                p.report
            );
        }
    }
}

#[test]
fn edge_cases_render_by_the_rules() {
    let chunk = fixture("v2-edge-cases.msgpack");
    let p = prepare(&config(), "t", &chunk);
    let messages = messages_of(&p.messages, &p.streams[0].1);
    let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
    assert_eq!(
        messages[0],
        "{\"log\":\"日本語のログ ✓ \\\"quoted\\\" \\\\ back\\tslash\\n\",\"ctrl\":\"\\u0000\\u0001\\u001f\"}"
    );
    assert_eq!(
        messages[1],
        "{\"log\":\"\u{fffd}\u{fffd}invalid utf8 \u{fffd}\",\"bin\":{\"ext_type\":5,\"hex\":\"0102\"}}"
    );
    assert_eq!(messages[2].len(), 300_000 + r#"{"log":""}"#.len());
    assert!(messages.contains(&r#"{"log":""}"#));
    assert!(messages.contains(&r#"{"nested":{"a":{"b":{"c":[1,-2,3.25,true,false,null,18446744073709551615,-9223372036854775808]}}},"kubernetes":{"namespace_name":"prod","pod_name":"web-7d9f","labels":{"app":"web"}}}"#));
    assert!(messages.contains(&r#"{"1":"integer key","log":"map with a non-string key"}"#));
    assert!(messages.contains(&"{}"));
    let otlp = prepare(&config(), "t", &fixture("v2-otlp-group-markers.msgpack"));
    let otlp_messages = messages_of(&otlp.messages, &otlp.streams[0].1);
    assert_eq!(
        otlp_messages,
        vec![r#"{"log":"otel line 1"}"#, r#"{"log":"otel line 2"}"#]
    );
}

/// Every fixture, flushed through the C ABI into moto, whole records and `log_key log`:
/// each stored event is the oracle's, byte for byte, with its time.
#[test]
fn every_fixture_is_delivered_byte_for_byte() {
    if is_child() {
        let url = var("MOTO");
        // One instance sends whole records, the other the `log` values.
        for (prefix, log_key) in [("fx-", ""), ("key-", "log")] {
            let out = plugin()
                .init(&[
                    ("region", REGION),
                    ("log_group_name", "/fixtures"),
                    ("log_stream_prefix", prefix),
                    ("log_key", log_key),
                    ("auto_create_group", "true"),
                    ("endpoint", &url),
                ])
                .expect("init");
            for name in FIXTURES {
                assert_eq!(out.flush(name, &fixture(name)), FLB_OK, "{name}");
            }
            assert_eq!(out.exit(), FLB_OK);
        }
        return;
    }
    let chunks: Vec<Vec<u8>> = FIXTURES.iter().map(|n| fixture(n)).collect();
    let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let moto = Moto::start_at(Some(latest_ms(&refs))).expect("moto");
    run_child(
        "fixtures_::every_fixture_is_delivered_byte_for_byte",
        &[("MOTO", &moto.url())],
    );
    let account = Account::source(&moto.url(), REGION);
    for (name, chunk) in FIXTURES.iter().zip(&chunks) {
        for (prefix, log_key) in [("fx-", None), ("key-", Some("log"))] {
            let stored: Vec<Expected> = account.events("/fixtures", &format!("{prefix}{name}"));
            assert_eq!(
                stored,
                expected(chunk, log_key),
                "{name} log_key={log_key:?}"
            );
        }
    }
}

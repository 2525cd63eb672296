//! `confine_names` (issue 27): names from record keys keep their template's literal prefix.
//! With it on, a record whose name would leave the prefix lands in the default group or
//! stream, with one warning per cause; the others land where the template says. With it off,
//! the Go plugin's names. Through `flb-host` into moto.

use crate::support::*;
use flb_host::msgpack::{Format, Writer};

const NOW: u32 = 1_795_551_844;

/// `{"log": <log>, "app": <app>, "pod": <pod>}` per record.
fn chunk(records: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut w = Writer::new();
    for (i, (log, app, pod)) in records.iter().enumerate() {
        w.event(Format::V2, NOW, i as u32 * 1_000_000)
            .map(3)
            .str("log")
            .str(*log)
            .str("app")
            .str(*app)
            .str("pod")
            .str(*pod);
    }
    w.buf
}

const FIRST: &[(&str, &str, &str)] = &[
    ("a1", "web", "1"),
    ("a2", "../../other", "2"),
    // The Go plugin's cleaning makes each byte of `é` a '.': `/../../etc`.
    ("a3", "é/é/etc", "3"),
    ("a4", "db", "/../4"),
];
const SECOND: &[(&str, &str, &str)] = &[("b1", "../x", "5"), ("b2", "web", "/..")];

#[test]
fn escaping_names_land_in_the_default_names_with_one_warning_per_cause() {
    if is_child() {
        let url = var("MOTO");
        let instance = |prefix: &str, confine: &str| {
            plugin()
                .init(&[
                    ("region", REGION),
                    ("log_group_name", &format!("/{prefix}/$(app)")),
                    ("log_stream_name", "pod-$(pod)"),
                    ("log_key", "log"),
                    ("auto_create_group", "true"),
                    ("confine_names", confine),
                    ("endpoint", &url),
                ])
                .expect("init")
        };
        let on = instance("on", "true");
        let off = instance("off", "false");
        for records in [FIRST, SECOND] {
            assert_eq!(on.flush("app", &chunk(records)), FLB_OK);
            assert_eq!(off.flush("app", &chunk(records)), FLB_OK);
        }
        assert_eq!(on.exit(), FLB_OK);
        assert_eq!(off.exit(), FLB_OK);
        return;
    }
    let moto = Moto::start_at(Some(i64::from(NOW) * 1000)).expect("moto");
    let log = stderr(&run_child(
        "confine_::escaping_names_land_in_the_default_names_with_one_warning_per_cause",
        &[("MOTO", &moto.url())],
    ));
    let account = Account::source(&moto.url(), REGION);

    // On: escaping records in the default group (group escapes) or stream (stream escapes).
    let on = |group: &str, stream: &str| messages(&account, group, stream);
    assert_eq!(on("/on/web", "pod-1"), vec!["a1"]);
    assert_eq!(on("fluentbit-default", "pod-2"), vec!["a2"]);
    assert_eq!(on("fluentbit-default", "pod-3"), vec!["a3"]);
    assert_eq!(on("fluentbit-default", "pod-5"), vec!["b1"]);
    assert_eq!(on("/on/db", "/fluentbit-default"), vec!["a4"]);
    assert_eq!(on("/on/web", "/fluentbit-default"), vec!["b2"]);
    // Off: where the Go plugin puts them.
    assert_eq!(on("/off/web", "pod-1"), vec!["a1"]);
    assert_eq!(on("/off/../../other", "pod-2"), vec!["a2"]);
    assert_eq!(on("/off/../../etc", "pod-3"), vec!["a3"]);
    assert_eq!(on("/off/db", "pod-/../4"), vec!["a4"]);
    assert_eq!(on("/off/../x", "pod-5"), vec!["b1"]);
    assert_eq!(on("/off/web", "pod-/.."), vec!["b2"]);
    let mut groups = account.groups();
    groups.sort();
    assert_eq!(
        groups,
        vec![
            "/off/../../etc",
            "/off/../../other",
            "/off/../x",
            "/off/db",
            "/off/web",
            "/on/db",
            "/on/web",
            "fluentbit-default"
        ]
    );

    // Three records of two chunks escape the group, two the stream: one line per cause.
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[ warn]") && l.contains("confine_names"))
        .collect();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(
        warnings.iter().any(|w| w.contains(
            "log_group_name '/on/$(app)': the name would have a '..' segment after the template's literal prefix '/on/'"
        )),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("log_stream_name 'pod-$(pod)'") && w.contains("'pod-'")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().all(|w| w.contains("cloudwatch.0")),
        "nothing from the instance with it off: {warnings:?}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("[ info]") && l.contains("confine_names=true")),
        "the Init line says it is on: {log}"
    );
}

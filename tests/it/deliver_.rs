use std::collections::BTreeMap;

use crate::support::*;
use flb_host::msgpack::{Format, Writer, firelens_record};

/// The task definition's options of the ECS example, against moto.
fn firelens_options(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("region", REGION.into()),
        ("log_group_name", "/ecs/httpd".into()),
        ("log_stream_name", "0123456789abcdef0123456789abcdef".into()),
        ("auto_create_group", "true".into()),
        ("role_arn", ROLE_ARN.into()),
        ("endpoint", url.into()),
        ("sts_endpoint", url.into()),
    ]
}

fn as_refs<'a>(opts: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    opts.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The seed scenario: FireLens records of a task in the source account land in the
/// destination account through the assumed role, with exact messages and times; the
/// source account gets nothing.
#[test]
fn firelens_records_land_in_the_other_account() {
    if is_child() {
        let opts = firelens_options(&var("MOTO"));
        let out = plugin().init(&as_refs(&opts)).expect("init");
        assert_eq!(
            out.flush("firelens-httpd", &fixture("v2-firelens-httpd.msgpack")),
            FLB_OK
        );
        assert_eq!(
            out.flush("firelens-httpd", &fixture("v1-firelens-httpd.msgpack")),
            FLB_OK
        );
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let (v2, v1) = (
        fixture("v2-firelens-httpd.msgpack"),
        fixture("v1-firelens-httpd.msgpack"),
    );
    let moto = Moto::start_at(Some(latest_ms(&[&v1, &v2]))).expect("moto");
    let log = stderr(&run_child(
        "deliver_::firelens_records_land_in_the_other_account",
        &[("MOTO", &moto.url())],
    ));

    let (dest, _) = Account::assume(&moto.url(), REGION, ROLE_ARN).expect("assume role");
    assert_eq!(dest.id, DEST_ACCOUNT);
    assert_eq!(dest.groups(), vec!["/ecs/httpd".to_string()]);
    assert_eq!(
        dest.streams("/ecs/httpd"),
        vec!["0123456789abcdef0123456789abcdef".to_string()]
    );
    let stored: Vec<Expected> = dest.events("/ecs/httpd", "0123456789abcdef0123456789abcdef");
    let mut want = expected(&v2, None);
    want.extend(expected(&v1, None));
    assert_eq!(want.len(), 600);
    assert_eq!(stored, want);

    let source = Account::source(&moto.url(), REGION);
    assert_eq!(
        source.groups(),
        Vec::<String>::new(),
        "nothing may land in the source account"
    );
    assert!(!log.contains(SOURCE_SECRET_KEY), "a secret reached the log");
    assert!(
        log.contains("role_arn=arn:aws:iam::222222222222:role/firelens-cross-account"),
        "{log}"
    );
}

/// Two `[OUTPUT]`s with different options in one process: each writes where it was told,
/// with its own message format, and one's failure does not touch the other.
#[test]
fn two_instances_with_different_options() {
    if is_child() {
        let url = var("MOTO");
        let chunk = fixture("v2-firelens-httpd.msgpack");
        let a = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "/a"),
                ("log_stream_prefix", "from-"),
                ("log_key", "log"),
                ("auto_create_group", "on"),
                ("endpoint", &url),
            ])
            .expect("a");
        let b = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "/missing"),
                ("log_stream_name", "s"),
                ("endpoint", &url),
            ])
            .expect("b");
        assert_eq!(a.flush("app.web", &chunk), FLB_OK);
        assert_eq!(
            b.flush("app.web", &chunk),
            FLB_RETRY,
            "group missing and auto_create_group off"
        );
        assert_eq!(a.exit(), FLB_OK);
        assert_eq!(b.exit(), FLB_OK);
        return;
    }
    let chunk = fixture("v2-firelens-httpd.msgpack");
    let moto = Moto::start_at(Some(latest_ms(&[&chunk]))).expect("moto");
    let log = stderr(&run_child(
        "deliver_::two_instances_with_different_options",
        &[("MOTO", &moto.url())],
    ));
    let account = Account::source(&moto.url(), REGION);
    assert_eq!(account.groups(), vec!["/a".to_string()]);
    let stored: Vec<String> = account
        .events("/a", "from-app.web")
        .into_iter()
        .map(|e| e.message)
        .collect();
    let want: Vec<String> = expected(&chunk, Some("log"))
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(stored, want);
    let failure = log
        .lines()
        .find(|l| l.contains("[error]"))
        .unwrap_or_default();
    assert!(
        failure.contains(
            "CreateLogStream to group '/missing' stream 's' failed: ResourceNotFoundException"
        ),
        "{log}"
    );
    assert!(failure.contains("set auto_create_group true"), "{failure}");
}

const THREADS: usize = 4;
const CHUNKS_PER_THREAD: usize = 8;
const RECORDS_PER_CHUNK: usize = 50;

/// `workers 4`: four threads flush eight chunks each into one instance at once; every
/// event lands exactly once.
#[test]
fn concurrent_flushes_deliver_every_event_once() {
    let secs = 1_795_551_844u32;
    let line = |t: usize, c: usize, r: usize| format!("thread {t} chunk {c} record {r}");
    if is_child() {
        let url = var("MOTO");
        let out = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "/workers"),
                ("log_stream_name", "s"),
                ("log_key", "log"),
                ("auto_create_group", "yes"),
                ("endpoint", &url),
                ("workers", "4"), // THREADS: Fluent Bit flushes on that many threads at once
            ])
            .expect("init");
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let out = &out;
                s.spawn(move || {
                    for c in 0..CHUNKS_PER_THREAD {
                        let mut w = Writer::new();
                        for r in 0..RECORDS_PER_CHUNK {
                            firelens_record(
                                &mut w,
                                Format::V2,
                                secs,
                                (r * 1000) as u32,
                                "stdout",
                                &line(t, c, r),
                            );
                        }
                        assert_eq!(out.flush("app", &w.buf), FLB_OK);
                    }
                });
            }
        });
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let moto = Moto::start_at(Some(i64::from(secs) * 1000)).expect("moto");
    run_child(
        "deliver_::concurrent_flushes_deliver_every_event_once",
        &[("MOTO", &moto.url())],
    );
    let stored = Account::source(&moto.url(), REGION).events("/workers", "s");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in &stored {
        *counts.entry(e.message.clone()).or_default() += 1;
    }
    assert_eq!(
        stored.len(),
        THREADS * CHUNKS_PER_THREAD * RECORDS_PER_CHUNK
    );
    for t in 0..THREADS {
        for c in 0..CHUNKS_PER_THREAD {
            for r in 0..RECORDS_PER_CHUNK {
                assert_eq!(counts.get(&line(t, c, r)), Some(&1), "{}", line(t, c, r));
            }
        }
    }
}

/// When the role cannot be assumed (STS unreachable here), nothing is acknowledged: the
/// flush answers FLB_RETRY and says why.
#[test]
fn unreachable_sts_means_retry_with_the_cause() {
    if is_child() {
        let url = var("MOTO");
        let out = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "/g"),
                ("log_stream_name", "s"),
                ("role_arn", ROLE_ARN),
                ("endpoint", &url),
                ("sts_endpoint", "http://127.0.0.1:9"),
            ])
            .expect("init");
        assert_eq!(out.flush("t", &fixture("v2-dummy.msgpack")), FLB_RETRY);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let moto = Moto::start().expect("moto");
    let log = stderr(&run_child(
        "deliver_::unreachable_sts_means_retry_with_the_cause",
        &[("MOTO", &moto.url())],
    ));
    let error = log
        .lines()
        .find(|l| l.contains("[error]"))
        .unwrap_or_default();
    assert!(
        error.contains("an error occurred while loading credentials"),
        "{log}"
    );
    assert!(
        error.contains("no credentials for role arn:aws:iam::222222222222:role/firelens-cross-account: check that STS at http://127.0.0.1:9 can be reached")
            && error.ends_with("Fluent Bit will retry the chunk"),
        "the line names the role and what to check: {error}"
    );
    assert!(
        !error.contains("DispatchFailure {"),
        "causes, not a debug dump: {error}"
    );
    assert!(
        log.contains("0 credential refreshes"),
        "credentials that could not be fetched are not \"refreshed\": {log}"
    );
    let (dest, _) = Account::assume(&moto.url(), REGION, ROLE_ARN).expect("assume");
    assert!(dest.groups().is_empty());
    assert!(Account::source(&moto.url(), REGION).groups().is_empty());
}

use crate::support::*;

fn base<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("region", REGION),
        ("log_group_name", "/ecs/httpd"),
        ("log_stream_name", "task-1"),
    ];
    p.extend_from_slice(extra);
    p
}

/// Register fills in every field a host reads back, on each version's definition: v1.9.10
/// and v4.1.2 do not zero it and have nothing after `description`; v5.x zeroes it and reads
/// `event_type` (0: logs) and `config_map` (NULL: no map of the plugin's) after Register.
#[test]
fn registers_as_the_cloudwatch_output_on_each_version() {
    if is_child() {
        let plugin = plugin();
        assert_eq!(plugin.name, "cloudwatch");
        assert!(!plugin.description.is_empty());
        let r = plugin.registration();
        assert_eq!(
            (r.type_, r.proxy, r.flags),
            (2, 11, 0),
            "FLB_PROXY_OUTPUT_PLUGIN, FLB_PROXY_GOLANG, no flags"
        );
        assert!(
            r.tail_as_expected,
            "nothing written past description (up to v4.1.2); event_type logs and config_map NULL (v5.x)"
        );
        eprintln!("registered on {:?}", flb_host::host::host_kind());
        return;
    }
    for kind in ["v1", "v4", "v5", "bare"] {
        let out = run_child(
            "abi_::registers_as_the_cloudwatch_output_on_each_version",
            &[("FLB_HOST_KIND", kind)],
        );
        let log = stderr(&out);
        assert!(out.status.success(), "{kind}:\n{log}");
        assert!(log.contains("registered on "), "{kind}:\n{log}");
    }
}

/// Each bad option fails Init with one error line that names it, its value and what is
/// accepted.
#[test]
fn bad_options_fail_init_with_one_clear_line() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("auto_create_group", "maybe")],
            r#"invalid 'auto_create_group' "maybe": expected true/false, on/off or yes/no"#,
        ),
        (
            &[("role_arn", "arn:aws:iam::111122223333:user/x")],
            r#"invalid 'role_arn' "arn:aws:iam::111122223333:user/x": is not a role ARN"#,
        ),
        (
            &[("log_stream_prefix", "p-")],
            "set only one of 'log_stream_name' and 'log_stream_prefix'",
        ),
        (
            &[("endpoint", "ftp://example.com")],
            r#"invalid 'endpoint' "ftp://example.com""#,
        ),
        (
            &[("region", "Not A Region")],
            r#"invalid 'region' "Not A Region""#,
        ),
    ];
    if is_child() {
        for (extra, _) in cases {
            let props = base(extra);
            assert_eq!(
                plugin().init(&props).err(),
                Some(0),
                "{extra:?} must fail Init"
            );
        }
        assert_eq!(
            plugin()
                .init(&[("log_group_name", "g"), ("log_stream_name", "s")])
                .err(),
            Some(0)
        );
        return;
    }
    let log = stderr(&run_child(
        "abi_::bad_options_fail_init_with_one_clear_line",
        &[],
    ));
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("[error]")).collect();
    assert_eq!(
        errors.len(),
        cases.len() + 1,
        "one line per failed Init:\n{log}"
    );
    for ((_, want), line) in cases.iter().zip(&errors) {
        assert!(line.contains(want), "{line:?} should contain {want:?}");
        assert!(line.contains("[output:cloudwatch:cloudwatch."), "{line}");
    }
    assert!(
        errors[cases.len()].contains("missing 'region'"),
        "{}",
        errors[cases.len()]
    );
}

/// A panic inside the plugin becomes FLB_RETRY; the instance keeps working afterwards.
/// (In-process tests flush only empty chunks: no AWS call, no credential lookup.)
#[test]
fn a_panic_becomes_a_return_code() {
    let out = plugin()
        .init(&base(&[("endpoint", "http://127.0.0.1:9")]))
        .expect("init");
    assert_eq!(
        out.flush(flb_out_cloudwatch::instance::PANIC_TAG, b""),
        FLB_RETRY
    );
    // An empty chunk has nothing to send: done, without any AWS call.
    assert_eq!(out.flush("app", b""), FLB_OK);
    assert_eq!(out.exit(), FLB_OK);
}

/// Options are case-insensitive keys, as Fluent Bit matches them, and several instances
/// start side by side.
#[test]
fn several_instances_start_and_exit_independently() {
    let a = plugin()
        .init(&[
            ("Region", "us-east-1"),
            ("Log_Group_Name", "a"),
            ("LOG_STREAM_NAME", "s"),
        ])
        .expect("a");
    let b = plugin()
        .init(&base(&[("log_key", "log"), ("auto_create_stream", "off")]))
        .expect("b");
    assert_eq!(a.exit(), FLB_OK);
    assert_eq!(b.flush("t", b""), FLB_OK);
    assert_eq!(b.exit(), FLB_OK);
}

/// Decoding and encoding happen on the plugin's threads: a record nested 100,000 deep,
/// flushed from a 24 KiB stack with a guard page, does not overflow it. (Delivery fails,
/// the endpoint being closed: the flush says retry.) Runs as a child with a task's
/// environment, so credentials resolve from it and nothing reaches for IMDS.
#[test]
fn deep_records_never_touch_the_flush_stack() {
    use flb_host::msgpack::{Format, Writer};
    if !is_child() {
        run_child("abi_::deep_records_never_touch_the_flush_stack", &[]);
        return;
    }
    let mut w = Writer::new();
    w.event(Format::V2, 1_795_551_844, 0).map(1).str("log");
    for _ in 0..100_000 {
        w.array(1);
    }
    w.str("deep");
    let props = base(&[
        ("endpoint", "http://127.0.0.1:9"),
        ("auto_create_stream", "false"),
        ("retry_timeout", "0"), // a closed port: no point waiting
    ]);
    let out = plugin().init(&props).expect("init");
    assert_eq!(out.flush("deep", &w.buf), FLB_RETRY);
    // The smallest stack a thread can have: the hand-over needs less than that.
    assert_eq!(out.flush_on_stack("empty", b"", 16 * 1024), FLB_OK);
    assert_eq!(out.exit(), FLB_OK);
}

//! A drop-in for AWS's Go plugin v1.9.4 (issue 12): what it runs starts here, its names
//! land in the same groups and streams, and upstream Fluent Bit v1.9.10's exit sequence with
//! two instances leaves nothing of ours behind. Through `flb-host` into moto.

use crate::support::*;
use flb_host::fake::JsonServer;
use flb_host::msgpack::{Format, Writer};

const NOW: u32 = 1_795_551_844;

/// `{"log": <log>, "kubernetes": {"namespace_name": "prod"}}`, one record.
fn chunk(log: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.event(Format::V2, NOW, 0)
        .map(2)
        .str("log")
        .str(log)
        .str("kubernetes")
        .map(1)
        .str("namespace_name")
        .str("prod");
    w.buf
}

/// Static names with characters CloudWatch refuses start, and land where the Go plugin
/// puts them: every byte outside `A-Z a-z 0-9 _ - . /` of a group becomes `.` (`#` and each
/// byte of `é` too), `:` and `*` of a stream. `log_retention_days 0` starts and sets nothing.
#[test]
fn names_that_need_cleaning_land_in_the_cleaned_group() {
    if is_child() {
        let out = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "my app@café#1"),
                ("log_stream_name", "pod:1*"),
                ("log_key", "log"),
                ("auto_create_group", "true"),
                ("log_retention_days", "0"),
                ("endpoint", &var("MOTO")),
            ])
            .expect("Init takes what the Go plugin takes");
        assert_eq!(out.flush("app", &chunk("hello")), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let moto = Moto::start_at(Some(i64::from(NOW) * 1000)).expect("moto");
    let log = stderr(&run_child(
        "dropin_::names_that_need_cleaning_land_in_the_cleaned_group",
        &[("MOTO", &moto.url())],
    ));
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[ warn]") && l.contains("log_group_name"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning at Init: {log}");
    assert!(
        warnings[0].contains("my app@café#1") && warnings[0].contains("my.app.caf...1"),
        "it names the value and the name used: {}",
        warnings[0]
    );
    let account = Account::source(&moto.url(), REGION);
    assert_eq!(account.groups(), vec!["my.app.caf...1"]);
    assert_eq!(
        messages(&account, "my.app.caf...1", "pod.1."),
        vec!["hello"]
    );
    assert_eq!(
        account.group_details("my.app.caf...1"),
        (None, None),
        "log_retention_days 0: no retention set"
    );
}

/// Templates as the Go plugin renders them: `$(tag[9])` is the rest of the tag
/// (`strings.SplitN(tag, ".", 10)`), a key whose value is a map is an empty segment, and
/// `$(ecs_cluster)` is the task metadata's `Cluster` as it is (an ARN here, then cleaned),
/// read from `ECS_CONTAINER_METADATA_URI` as the Go plugin reads it.
#[test]
fn go_templates_route_like_the_go_plugin() {
    if is_child() {
        let out = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "/ecs/$(ecs_cluster)/$(kubernetes).end"),
                (
                    "log_stream_name",
                    "$(tag[9])-$(kubernetes['namespace_name'])",
                ),
                ("log_key", "log"),
                ("auto_create_group", "true"),
                ("endpoint", &var("MOTO")),
            ])
            .expect("init");
        assert_eq!(
            out.flush("a.b.c.d.e.f.g.h.i.j.k", &chunk("deep tag")),
            FLB_OK
        );
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let moto = Moto::start_at(Some(i64::from(NOW) * 1000)).expect("moto");
    let ecs = JsonServer::start(vec![(
        "/v3/abc/task",
        vec![(
            200,
            r#"{"Cluster":"arn:aws:ecs:ap-northeast-1:111111111111:cluster/prod","TaskARN":"arn:aws:ecs:ap-northeast-1:111111111111:task/prod/0123456789abcdef","Family":"httpd"}"#
                .into(),
        )],
    )]);
    let v4 = JsonServer::start(vec![]);
    run_child(
        "dropin_::go_templates_route_like_the_go_plugin",
        &[
            ("MOTO", &moto.url()),
            ("ECS_CONTAINER_METADATA_URI", &ecs.url("/v3/abc")),
            ("ECS_CONTAINER_METADATA_URI_V4", &v4.url("/v4/abc")),
        ],
    );
    let group = "/ecs/arn.aws.ecs.ap-northeast-1.111111111111.cluster/prod/.end";
    let account = Account::source(&moto.url(), REGION);
    assert_eq!(account.groups(), vec![group]);
    assert_eq!(messages(&account, group, "j.k-prod"), vec!["deep tag"]);
    assert_eq!(ecs.hits("/v3/abc/task"), 1);
    assert_eq!(
        v4.hits("/v4/abc/task"),
        0,
        "the endpoint the Go plugin reads comes first"
    );
}

fn plugin_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with("flb-cloudwatch"))
                .count()
        })
        .unwrap_or(0)
}

/// Upstream Fluent Bit v1.9.10 at shutdown with two `[OUTPUT]` sections of one object:
/// ExitCtx twice, both times with the second instance's context. Each instance is exited
/// once (the second call exits the instance the host never passed), nothing is freed twice
/// (a second free of the same instance crashed here before), and the plugin's threads are
/// gone. (The host's own double free of its slot, which follows on v1.9.10, is not ours.)
#[test]
fn the_v1_9_10_exit_sequence_with_two_instances() {
    if is_child() {
        let url = var("MOTO");
        let first = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "/first"),
                ("log_stream_name", "s"),
                ("log_key", "log"),
                ("auto_create_group", "true"),
                ("endpoint", &url),
                ("retry_timeout", "60"), // slow under valgrind
            ])
            .expect("init first");
        let second = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "/second"),
                ("log_stream_name", "s"),
                ("log_key", "log"),
                ("auto_create_group", "true"),
                ("endpoint", &url),
                ("retry_timeout", "60"),
            ])
            .expect("init second");
        assert_eq!(first.flush("t", &chunk("to first")), FLB_OK);
        assert_eq!(second.flush("t", &chunk("to second")), FLB_OK);
        assert!(plugin_threads() > 0, "the plugin runs threads of its own");
        // proxy_go_destroy once per instance, in configuration order; both read the slot.
        assert_eq!(first.exit_as_v1_9_10(), FLB_OK);
        assert!(plugin_threads() > 0, "one instance is still alive");
        assert_eq!(second.exit_as_v1_9_10(), FLB_OK);
        assert_eq!(
            plugin_threads(),
            0,
            "every instance exited: the runtime is stopped"
        );
        plugin().unregister();
        return;
    }
    let moto = Moto::start_at(Some(i64::from(NOW) * 1000)).expect("moto");
    let log = stderr(&run_child(
        "dropin_::the_v1_9_10_exit_sequence_with_two_instances",
        &[("MOTO", &moto.url())],
    ));
    let account = Account::source(&moto.url(), REGION);
    assert_eq!(messages(&account, "/first", "s"), vec!["to first"]);
    assert_eq!(messages(&account, "/second", "s"), vec!["to second"]);
    for instance in ["cloudwatch.0", "cloudwatch.1"] {
        let exits = log
            .lines()
            .filter(|l| l.contains(&format!("[output:cloudwatch:{instance}] exit:")))
            .count();
        assert_eq!(exits, 1, "{instance} exited once:\n{log}");
    }
}

/// Every option AWS's Go plugin v1.9.4 reads (`getConfiguration` in its
/// `fluent-bit-cloudwatch.go`).
const GO_OPTIONS: &[&str] = &[
    "region",
    "log_group_name",
    "log_stream_name",
    "log_stream_prefix",
    "default_log_group_name",
    "default_log_stream_name",
    "log_key",
    "role_arn",
    "auto_create_group",
    "auto_create_stream",
    "new_log_group_tags",
    "log_retention_days",
    "endpoint",
    "sts_endpoint",
    "external_id",
    "credentials_endpoint",
    "log_format",
    "extra_user_agent",
];

/// Every option of Fluent Bit's C plugin `cloudwatch_logs` (its config map).
const C_OPTIONS: &[&str] = &[
    "region",
    "log_group_name",
    "log_stream_name",
    "log_stream_prefix",
    "log_group_template",
    "log_stream_template",
    "log_key",
    "extra_user_agent",
    "log_format",
    "role_arn",
    "auto_create_group",
    "auto_retry_requests",
    "log_retention_days",
    "endpoint",
    "sts_endpoint",
    "external_id",
    "profile",
    "log_group_class",
    "metric_namespace",
    "metric_dimensions",
    "add_entity",
];

/// The option rows of the guide's table under `heading`: (option, [(value, outcome)]).
fn option_rows(heading: &str) -> Vec<(String, Vec<(String, String)>)> {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/guide.md"))
        .expect("docs/guide.md");
    let rows: Vec<(String, Vec<(String, String)>)> = guide
        .lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let option = cells[0]
                .trim_start_matches("| ")
                .trim_matches('`')
                .to_owned();
            let examples = cells
                .last()
                .unwrap()
                .trim_end_matches(" |")
                .split("; ")
                .map(|e| {
                    let (value, outcome) = e
                        .strip_prefix('`')
                        .and_then(|e| e.split_once("`: "))
                        .unwrap_or_else(|| {
                            panic!("{option}: example {e:?} is not `value`: outcome")
                        });
                    (value.to_owned(), outcome.to_owned())
                })
                .collect();
            (option, examples)
        })
        .collect();
    assert!(!rows.is_empty(), "no rows under {heading}");
    rows
}

/// What the option parser does with `option value` on top of a minimal configuration.
fn outcome(option: &str, value: &str) -> String {
    let mut props: Vec<(&str, &str)> = vec![
        ("region", "ap-northeast-1"),
        ("log_group_name", "/ecs/httpd"),
        ("log_stream_name", "s"),
    ];
    props.retain(|(k, _)| {
        *k != option && !(option == "log_stream_prefix" && *k == "log_stream_name")
    });
    props.push((option, value));
    let get = |k: &str| {
        props
            .iter()
            .find(|(p, _)| *p == k)
            .map(|(_, v)| v.to_string())
    };
    match flb_out_cloudwatch::config::Config::from_properties(get, None) {
        Ok(c) if c.warnings.is_empty() && c.ignored.is_empty() => "starts".into(),
        Ok(_) => "starts, warns".into(),
        Err(e) => {
            assert_eq!(e.option, option, "{e}");
            "fails".into()
        }
    }
}

fn check_table(heading: &str, options: &[&str]) {
    let rows = option_rows(heading);
    let mut listed: Vec<&str> = rows.iter().map(|(o, _)| o.as_str()).collect();
    listed.sort();
    let mut want = options.to_vec();
    want.sort();
    assert_eq!(listed, want, "{heading}: one row per option");
    for (option, examples) in &rows {
        assert!(
            flb_out_cloudwatch::config::OPTION_NAMES.contains(&option.as_str()),
            "{option} is not read by the plugin"
        );
        for (value, claimed) in examples {
            assert_eq!(
                &outcome(option, value),
                claimed,
                "{heading}: {option} {value:?}"
            );
        }
    }
}

/// The guide's migration tables agree with the option parser: one row per option of each
/// plugin, and every example value starts, starts with a warning, or fails, as written.
#[test]
fn the_guide_s_difference_tables_agree_with_the_option_parser() {
    check_table("### Options, compared with the Go plugin", GO_OPTIONS);
    check_table("### Options, compared with the C plugin", C_OPTIONS);
}

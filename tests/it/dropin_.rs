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

fn messages(account: &Account, group: &str, stream: &str) -> Vec<String> {
    account
        .events(group, stream)
        .into_iter()
        .map(|e| e.message)
        .collect()
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
    run_child(
        "dropin_::names_that_need_cleaning_land_in_the_cleaned_group",
        &[("MOTO", &moto.url())],
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

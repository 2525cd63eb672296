use std::collections::BTreeMap;

use crate::support::{messages as messages_of, *};
use flb_host::msgpack::{Format, Writer};
use flb_host::stub::{Rules, Stub};
use serde_json::{Value, json};

const T0: u32 = 1_795_551_844; // 2026-11-24T20:24:04Z

/// The `kubernetes` map of a pod on EKS as the kubernetes filter leaves it with
/// `aws_use_pod_association on`, for the service `service`.
fn kubernetes(w: &mut Writer, service: &str) {
    w.string_map(&[
        ("pod_name", "web-1"),
        ("namespace_name", "shop"),
        ("aws_entity_service_name", service),
        ("aws_entity_environment", "eks:prod/shop"),
        ("aws_entity_name_source", "Instrumentation"),
        ("aws_entity_platform", "eks"),
        ("aws_entity_cluster", "prod"),
        ("aws_entity_workload", "web"),
        ("host", "ip-10-0-0-1.ec2.internal"),
    ]);
}

/// A record of the kubernetes and aws (`enable_entity true`) filters for `service`, or,
/// without one, a record with neither filter's fields.
fn record(w: &mut Writer, secs: u32, log: &str, service: Option<&str>) {
    w.event(Format::V2, secs, 0);
    let Some(service) = service else {
        w.map(2).str("log").str(log).str("stream").str("stdout");
        return;
    };
    w.map(4).str("log").str(log).str("kubernetes");
    kubernetes(w, service);
    w.str("aws_entity_ec2_instance_id")
        .str("i-0123456789abcdef0")
        .str("aws_entity_account_id")
        .str("111122223333");
}

/// Two records of `checkout`, one of `cart`, one without entity fields, in time order
/// interleaved.
fn chunk() -> Vec<u8> {
    let mut w = Writer::new();
    record(&mut w, T0, "checkout 1", Some("checkout"));
    record(&mut w, T0 + 1, "cart 1", Some("cart"));
    record(&mut w, T0 + 2, "plain 1", None);
    record(&mut w, T0 + 3, "checkout 2", Some("checkout"));
    w.buf
}

/// The entity Fluent Bit's C plugin (v5.1.1) sends for the records of `service`.
fn c_plugin_entity(service: &str) -> Value {
    json!({
        "keyAttributes": {
            "Type": "Service",
            "Name": service,
            "Environment": "eks:prod/shop",
            "AwsAccountId": "111122223333",
        },
        "attributes": {
            "PlatformType": "AWS::EKS",
            "EKS.Cluster": "prod",
            "K8s.Namespace": "shop",
            "K8s.Node": "ip-10-0-0-1.ec2.internal",
            "K8s.Workload": "web",
            "EC2.InstanceId": "i-0123456789abcdef0",
            "AWS.ServiceNameSource": "Instrumentation",
        },
    })
}

/// A record's message without the entity fields (the C plugin's), as JSON.
fn stripped(log: &str) -> Value {
    json!({
        "log": log,
        "kubernetes": {
            "pod_name": "web-1",
            "namespace_name": "shop",
            "host": "ip-10-0-0-1.ec2.internal",
        },
    })
}

fn child() {
    // Unset when the parent passes it empty: the option is not set.
    let add_entity = std::env::var("ADD_ENTITY").unwrap_or_default();
    let url = var("ENDPOINT");
    let mut options = vec![
        ("region", REGION),
        ("log_group_name", "/g"),
        ("log_stream_name", "s"),
        ("auto_create_group", "true"),
        ("endpoint", url.as_str()),
    ];
    if !add_entity.is_empty() {
        options.push(("add_entity", add_entity.as_str()));
    }
    let out = plugin().init(&options).expect("init");
    if var("CHUNK") == "bad" {
        // The same problems in two flushes: each warned once.
        for _ in 0..2 {
            assert_eq!(out.flush("kube.web", &bad_chunk()), FLB_OK);
        }
    } else {
        assert_eq!(out.flush("kube.web", &chunk()), FLB_OK);
    }
    flb_host::host::dump_counters();
    assert_eq!(out.exit(), FLB_OK);
}

fn run(test: &str, stub: &Stub, add_entity: &str, chunk: &str) -> String {
    run_at(test, &stub.url(), add_entity, chunk)
}

fn run_at(test: &str, url: &str, add_entity: &str, chunk: &str) -> String {
    stderr(&run_child(
        test,
        &[
            ("ENDPOINT", url),
            ("ADD_ENTITY", add_entity),
            ("CHUNK", chunk),
            ("FLB_HOST_KIND", "v5"),
        ],
    ))
}

/// The PutLogEvents bodies the stub received.
fn puts(stub: &Stub) -> Vec<Value> {
    let state = stub.state.lock().unwrap();
    state
        .requests
        .iter()
        .filter(|(op, ..)| op == "PutLogEvents")
        .map(|(_, body, _)| body.clone())
        .collect()
}

fn messages(put: &Value) -> Vec<Value> {
    put["logEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
        .collect()
}

fn counters(log: &str) -> BTreeMap<String, u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("[host-metric] "))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `add_entity true` with records of the kubernetes filter: each PutLogEvents carries the
/// entity the C plugin builds from them, one request per entity, and the messages leave
/// out the `aws_entity*` fields; a record without them goes without an entity, as before.
#[test]
fn the_kubernetes_filter_s_fields_make_the_c_plugin_s_entity() {
    if is_child() {
        return child();
    }
    let stub = Stub::start(Rules::default());
    let log = run(
        "entity_::the_kubernetes_filter_s_fields_make_the_c_plugin_s_entity",
        &stub,
        "true",
        "good",
    );
    let puts = puts(&stub);
    assert_eq!(
        puts.len(),
        3,
        "one request per entity, one without: {puts:#?}"
    );
    let by_entity = |service: Option<&str>| {
        puts.iter()
            .find(|p| match service {
                Some(s) => p["entity"]["keyAttributes"]["Name"] == s,
                None => p.get("entity").is_none(),
            })
            .unwrap_or_else(|| panic!("no request for {service:?}: {puts:#?}"))
    };
    let checkout = by_entity(Some("checkout"));
    assert_eq!(checkout["entity"], c_plugin_entity("checkout"));
    assert_eq!(
        messages(checkout),
        vec![stripped("checkout 1"), stripped("checkout 2")]
    );
    let cart = by_entity(Some("cart"));
    assert_eq!(cart["entity"], c_plugin_entity("cart"));
    assert_eq!(messages(cart), vec![stripped("cart 1")]);
    let plain = by_entity(None);
    assert_eq!(
        messages(plain),
        vec![json!({"log": "plain 1", "stream": "stdout"})]
    );
    assert_eq!(stub.events("/g", "s").len(), 4, "every event stored");
    assert!(log.contains("add_entity=true"), "{log}");
    assert!(!log.contains("'add_entity' is accepted"), "{log}");
    assert!(!log.contains("[host:warn]"), "{log}");
}

/// moto (like CloudWatch's older API) takes a PutLogEvents with an `entity` and stores its
/// events.
#[test]
fn moto_stores_the_events_of_requests_with_an_entity() {
    if is_child() {
        return child();
    }
    let moto = Moto::start_at(Some(i64::from(T0 + 3) * 1000)).expect("moto");
    run_at(
        "entity_::moto_stores_the_events_of_requests_with_an_entity",
        &moto.url(),
        "true",
        "good",
    );
    let account = Account::source(&moto.url(), REGION);
    let mut stored: Vec<Value> = messages_of(&account, "/g", "s")
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    stored.sort_by_key(|m| m["log"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        stored,
        vec![
            stripped("cart 1"),
            stripped("checkout 1"),
            stripped("checkout 2"),
            json!({"log": "plain 1", "stream": "stdout"}),
        ]
    );
}

/// Without `add_entity` the same records go as before: one request, no entity, the
/// messages whole.
#[test]
fn without_add_entity_records_are_sent_whole_and_without_an_entity() {
    if is_child() {
        return child();
    }
    for setting in ["", "false"] {
        let stub = Stub::start(Rules::default());
        run(
            "entity_::without_add_entity_records_are_sent_whole_and_without_an_entity",
            &stub,
            setting,
            "good",
        );
        let puts = puts(&stub);
        assert_eq!(puts.len(), 1, "{setting:?}");
        assert!(puts[0].get("entity").is_none());
        let first = &messages(&puts[0])[0];
        assert_eq!(first["aws_entity_account_id"], "111122223333");
        assert_eq!(first["kubernetes"]["aws_entity_service_name"], "checkout");
    }
}

/// CloudWatch's `rejectedEntityInfo`: the events are stored, the rejection is counted in
/// the exit line and the metrics, and logged with its error type.
#[test]
fn a_rejected_entity_is_counted_and_its_events_stored() {
    if is_child() {
        return child();
    }
    let stub = Stub::start(Rules {
        reject_entity: Some("InvalidAttributes"),
        ..Rules::default()
    });
    let log = run(
        "entity_::a_rejected_entity_is_counted_and_its_events_stored",
        &stub,
        "true",
        "good",
    );
    assert_eq!(stub.events("/g", "s").len(), 4);
    assert!(
        log.contains("CloudWatch rejected the entity of 1 request(s)")
            && log.contains("InvalidAttributes); their events were stored without it"),
        "{log}"
    );
    assert!(log.contains("2 entity(ies) rejected"), "{log}");
    let c = counters(&log);
    assert_eq!(
        c.get(r#"fluentbit_cloudwatch_entities_rejected_total{name="cloudwatch.0"}"#),
        Some(&2),
        "{c:#?}"
    );
    assert_eq!(
        c.get(r#"fluentbit_cloudwatch_events_delivered_total{name="cloudwatch.0"}"#),
        Some(&4)
    );
}

/// Records whose entity fields have the wrong type or are too long for CloudWatch.
fn bad_chunk() -> Vec<u8> {
    let long = "x".repeat(513);
    let mut w = Writer::new();
    for i in 0..2 {
        w.event(Format::V2, T0 + i, 0)
            .map(3)
            .str("log")
            .str(format!("bad {i}"))
            .str("kubernetes")
            .map(4)
            .str("aws_entity_service_name")
            .str("checkout")
            .str("aws_entity_workload")
            .uint(7)
            .str("aws_entity_cluster")
            .str(&long)
            .str("aws_entity_platform")
            .str("eks")
            .str("aws_entity_account_id")
            .str("111122223333");
    }
    w.buf
}

/// Fields of the wrong type or too long are left out of the entity (and kept in the
/// message), with one warning per cause however often they come; the events are delivered
/// with the entity the other fields make.
#[test]
fn wrong_entity_fields_are_left_out_with_one_warning_per_cause() {
    if is_child() {
        return child();
    }
    let stub = Stub::start(Rules::default());
    let log = run(
        "entity_::wrong_entity_fields_are_left_out_with_one_warning_per_cause",
        &stub,
        "true",
        "bad",
    );
    for cause in [
        "add_entity: kubernetes.aws_entity_workload is a number, not a string: left out of the entity, the events are delivered",
        "add_entity: kubernetes.aws_entity_cluster is longer than 512 characters (CloudWatch's limit): left out of the entity",
    ] {
        assert_eq!(log.matches(cause).count(), 1, "{cause}\n{log}");
    }
    let puts = puts(&stub);
    assert_eq!(puts.len(), 2, "one request per flush");
    for put in &puts {
        assert_eq!(
            put["entity"],
            json!({
                "keyAttributes": {"Type": "Service", "Name": "checkout", "AwsAccountId": "111122223333"},
                "attributes": {"PlatformType": "AWS::EKS"},
            })
        );
        let m = &messages(put)[0];
        assert_eq!(m["kubernetes"]["aws_entity_workload"], 7);
        assert_eq!(
            m["kubernetes"]["aws_entity_cluster"]
                .as_str()
                .unwrap()
                .len(),
            513
        );
        assert!(m["kubernetes"].get("aws_entity_service_name").is_none());
        assert!(m.get("aws_entity_account_id").is_none());
    }
    assert_eq!(stub.events("/g", "s").len(), 4);
}

/// `add_entity` takes the booleans the other options take; anything else fails Init with
/// one line naming the option, the value and what is accepted.
#[test]
fn add_entity_that_is_not_a_boolean_fails_init() {
    if is_child() {
        let err = plugin()
            .init(&[
                ("region", REGION),
                ("log_group_name", "/g"),
                ("log_stream_name", "s"),
                ("add_entity", "maybe"),
            ])
            .err();
        assert_eq!(err, Some(0));
        return;
    }
    let log = stderr(&run_child(
        "entity_::add_entity_that_is_not_a_boolean_fails_init",
        &[],
    ));
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("[error]")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0]
            .contains(r#"invalid 'add_entity' "maybe": expected true/false, on/off or yes/no"#),
        "{log}"
    );
}

//! The options of AWS's Go plugin and of Fluent Bit's C plugin, each against a real peer:
//! moto, the CloudWatch stub, a fake ECS metadata / credentials endpoint, a proxy.

use std::collections::BTreeMap;

use crate::support::*;
use flb_host::fake::{JsonServer, Proxy, tls_file};
use flb_host::msgpack::{Format, Writer};
use flb_host::stub::{Rules, Stub};

const TASK_ID: &str = "0123456789abcdef0123456789abcdef";

fn task_metadata() -> String {
    format!(
        r#"{{"Cluster":"arn:aws:ecs:ap-northeast-1:111111111111:cluster/prod","TaskARN":"arn:aws:ecs:ap-northeast-1:111111111111:task/prod/{TASK_ID}","Family":"httpd"}}"#
    )
}

fn opts<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    pairs.to_vec()
}

/// The task definition of the ECS example, `$(ecs_task_id)` included, cross-account: the
/// stream is named after the task; the metadata is read once per process; a failed read
/// makes that flush answer FLB_RETRY, and the next one succeeds.
#[test]
fn ecs_task_id_names_the_stream_cross_account() {
    if is_child() {
        let url = var("MOTO");
        let out = plugin()
            .init(&opts(&[
                ("region", REGION),
                ("log_group_name", "/ecs/$(ecs_cluster)"),
                ("log_stream_name", "$(ecs_task_id)"),
                ("auto_create_group", "true"),
                ("role_arn", ROLE_ARN),
                ("role_session_name", "firelens-test"),
                ("role_duration_seconds", "900"),
                ("external_id", "shared-secret-id"),
                ("endpoint", &url),
                ("sts_endpoint", &url),
            ]))
            .expect("init");
        let v2 = fixture("v2-firelens-httpd.msgpack");
        assert_eq!(
            out.flush("firelens-httpd", &v2),
            FLB_RETRY,
            "metadata endpoint failed"
        );
        assert_eq!(out.flush("firelens-httpd", &v2), FLB_OK);
        assert_eq!(
            out.flush("firelens-httpd", &fixture("v1-firelens-httpd.msgpack")),
            FLB_OK
        );
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let (v1, v2) = (
        fixture("v1-firelens-httpd.msgpack"),
        fixture("v2-firelens-httpd.msgpack"),
    );
    let moto = Moto::start_at(Some(latest_ms(&[&v1, &v2]))).expect("moto");
    let ecs = JsonServer::start(vec![(
        "/v4/abc/task",
        vec![(500, "{}".into()), (200, task_metadata())],
    )]);
    let log = stderr(&run_child(
        "options_::ecs_task_id_names_the_stream_cross_account",
        &[
            ("MOTO", &moto.url()),
            ("ECS_CONTAINER_METADATA_URI_V4", &ecs.url("/v4/abc")),
        ],
    ));
    assert_eq!(
        ecs.hits("/v4/abc/task"),
        2,
        "one failure, then read once and cached"
    );
    assert!(log.contains("cannot read the ECS task metadata"), "{log}");
    let (dest, _) = Account::assume(&moto.url(), REGION, ROLE_ARN).expect("assume");
    // The Cluster value as it is, cleaned as the Go plugin cleans group names.
    let group = "/ecs/arn.aws.ecs.ap-northeast-1.111111111111.cluster/prod";
    assert_eq!(dest.groups(), vec![group.to_string()]);
    let stored: Vec<Expected> = dest.events(group, TASK_ID);
    let mut want = expected(&v2, None);
    want.extend(expected(&v1, None));
    assert_eq!(stored, want);
    // role_session_name, external_id: as STS saw them.
    let roles = moto.assumed_roles();
    let ours = roles
        .iter()
        .find(|r| {
            r["arn"]
                .as_str()
                .is_some_and(|a| a.ends_with("/firelens-test"))
        })
        .unwrap_or_else(|| panic!("no session firelens-test in {roles:?}"));
    assert_eq!(
        ours["arn"],
        "arn:aws:sts::222222222222:assumed-role/firelens-cross-account/firelens-test"
    );
    assert_eq!(ours["external_id"], "shared-secret-id");
}

fn app_chunk(apps: &[&str]) -> Vec<u8> {
    let mut w = Writer::new();
    for (i, app) in apps.iter().enumerate() {
        w.event(Format::V2, 1_795_551_844, i as u32)
            .map(2)
            .str("app")
            .str(app)
            .str("log")
            .str(format!("from {app} {i}"));
    }
    w.buf
}

/// Names from record keys and tag parts: records of one chunk go to their own groups and
/// streams; a record without the key goes to the default names, with one warning per
/// distinct failure, not per record or per chunk.
#[test]
fn record_templates_route_each_record() {
    if is_child() {
        let url = var("MOTO");
        let out = plugin()
            .init(&opts(&[
                ("region", REGION),
                ("log_group_name", "/app/$(app)"),
                ("log_stream_name", "$(tag[1])"),
                ("log_key", "log"),
                ("auto_create_group", "true"),
                ("endpoint", &url),
            ]))
            .expect("init");
        for _ in 0..2 {
            assert_eq!(
                out.flush("k8s.node1", &app_chunk(&["web", "db", "web"])),
                FLB_OK
            );
            let mut w = Writer::new();
            w.event(Format::V2, 1_795_551_844, 9)
                .map(1)
                .str("log")
                .str("no app key");
            assert_eq!(out.flush("k8s.node1", &w.buf), FLB_OK);
        }
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let moto = Moto::start_at(Some(1_795_551_844_000)).expect("moto");
    let log = stderr(&run_child(
        "options_::record_templates_route_each_record",
        &[("MOTO", &moto.url())],
    ));
    let account = Account::source(&moto.url(), REGION);
    let mut groups = account.groups();
    groups.sort();
    assert_eq!(groups, vec!["/app/db", "/app/web", "fluentbit-default"]);
    let messages = |g: &str, s: &str| {
        account
            .events(g, s)
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        messages("/app/web", "node1"),
        vec!["from web 0", "from web 2", "from web 0", "from web 2"]
    );
    assert_eq!(messages("/app/db", "node1"), vec!["from db 1", "from db 1"]);
    assert_eq!(
        messages("fluentbit-default", "node1"),
        vec!["no app key", "no app key"]
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("log_group_name '/app/$(app)'"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("the record has no key $(app)"),
        "{}",
        warnings[0]
    );
}

/// Groups the plugin creates get the tags, retention and KMS key; an existing group gets the
/// retention once (auto_create_group on).
#[test]
fn new_and_existing_groups_get_tags_retention_and_kms_key() {
    const KMS: &str =
        "arn:aws:kms:ap-northeast-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    if is_child() {
        let url = var("MOTO");
        for group in ["/new", "/existing"] {
            let out = plugin()
                .init(&opts(&[
                    ("region", REGION),
                    ("log_group_name", group),
                    ("log_stream_name", "s"),
                    ("auto_create_group", "true"),
                    ("new_log_group_tags", "team=logs, env = prod"),
                    ("log_retention_days", "14"),
                    ("log_group_kms_key_id", KMS),
                    ("endpoint", &url),
                ]))
                .expect("init");
            assert_eq!(out.flush("t", &app_chunk(&["a"])), FLB_OK);
            assert_eq!(out.flush("t", &app_chunk(&["b"])), FLB_OK);
            // Group settings are applied off the data path, within seconds: wait for them
            // before exit stops their task.
            let account = Account::source(&url, REGION);
            for _ in 0..300 {
                if account.group_details(group).0.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            assert_eq!(out.exit(), FLB_OK);
        }
        return;
    }
    let moto = Moto::start_at(Some(1_795_551_844_000)).expect("moto");
    let account = Account::source(&moto.url(), REGION);
    account.create_group("/existing");
    run_child(
        "options_::new_and_existing_groups_get_tags_retention_and_kms_key",
        &[("MOTO", &moto.url())],
    );
    assert_eq!(
        account.group_details("/new"),
        (Some(14), Some(KMS.to_string()))
    );
    let tags: BTreeMap<String, String> = [("env", "prod"), ("team", "logs")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(account.group_tags("/new"), tags);
    assert_eq!(
        account.group_details("/existing"),
        (Some(14), None),
        "retention applied to the existing group"
    );
    assert_eq!(account.events("/existing", "s").len(), 2);
}

/// log_group_class on CreateLogGroup, log_format as x-amzn-logs-format on PutLogEvents,
/// extra_user_agent in the user agent (checked on the wire: moto ignores them).
#[test]
fn class_log_format_and_user_agent_reach_the_wire() {
    if is_child() {
        let out = plugin()
            .init(&opts(&[
                ("region", REGION),
                ("log_group_name", "/g"),
                ("log_stream_name", "s"),
                ("auto_create_group", "true"),
                ("log_group_class", "INFREQUENT_ACCESS"),
                ("log_format", "json/emf"),
                ("extra_user_agent", "ecs-firelens"),
                ("metric_namespace", "ignored"),
                ("endpoint", &var("STUB")),
            ]))
            .expect("init");
        assert_eq!(out.flush("t", &app_chunk(&["a"])), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let stub = Stub::start(Rules::default());
    let log = stderr(&run_child(
        "options_::class_log_format_and_user_agent_reach_the_wire",
        &[("STUB", &stub.url())],
    ));
    let requests = stub.state.lock().unwrap().requests.clone();
    let (_, create, _) = requests
        .iter()
        .find(|(op, ..)| op == "CreateLogGroup")
        .expect("CreateLogGroup");
    assert_eq!(create["logGroupClass"], "INFREQUENT_ACCESS");
    let (_, _, headers) = requests
        .iter()
        .find(|(op, ..)| op == "PutLogEvents")
        .expect("PutLogEvents");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    assert_eq!(header("x-amzn-logs-format"), "json/emf");
    assert!(
        header("x-amz-user-agent").contains("app/ecs-firelens")
            || header("user-agent").contains("app/ecs-firelens"),
        "{headers:?}"
    );
    assert!(
        log.contains("'metric_namespace' is accepted for compatibility"),
        "{log}"
    );
}

/// The answer of a credentials endpoint.
const ENDPOINT_CREDS: &str = r#"{"AccessKeyId":"AKIAENDPOINTCREDS000","SecretAccessKey":"endpoint-secret","Token":"endpoint-token","Expiration":"2099-01-01T00:00:00Z"}"#;

/// The child of the credentials_endpoint tests: Init with `credentials_endpoint` = $CREDS
/// against moto at $MOTO, one flush of two records, which must answer `want`.
fn flush_with_endpoint_credentials(want: i32) {
    let out = plugin()
        .init(&opts(&[
            ("region", REGION),
            ("log_group_name", "/g"),
            ("log_stream_name", "s"),
            ("auto_create_group", "true"),
            ("credentials_endpoint", &var("CREDS")),
            ("endpoint", &var("MOTO")),
        ]))
        .expect("init");
    assert_eq!(out.flush("t", &app_chunk(&["a", "b"])), want);
    assert_eq!(out.exit(), FLB_OK);
}

/// credentials_endpoint gives the base credentials (the task has no keys of its own here).
#[test]
fn credentials_endpoint_gives_the_base_credentials() {
    if is_child() {
        return flush_with_endpoint_credentials(FLB_OK);
    }
    let moto = Moto::start_at(Some(1_795_551_844_000)).expect("moto");
    let creds = JsonServer::start(vec![("/creds", vec![(200, ENDPOINT_CREDS.into())])]);
    let log = stderr(&run_child(
        "options_::credentials_endpoint_gives_the_base_credentials",
        &[
            ("MOTO", &moto.url()),
            ("CREDS", &creds.url("/creds")),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
    ));
    assert!(creds.hits("/creds") >= 1);
    assert_eq!(
        Account::source(&moto.url(), REGION).events("/g", "s").len(),
        2
    );
    assert!(
        !log.contains("endpoint-secret") && !log.contains("endpoint-token"),
        "no secret in the log"
    );
}

/// An `https://` credentials_endpoint (the Go plugin takes any URL) is read over TLS, its
/// certificate checked against the roots of `SSL_CERT_FILE`, as the SDK's client checks
/// its own; a certificate not trusted there gets no request, and the flush is retried.
#[test]
fn credentials_endpoint_over_https_checks_the_certificate() {
    if is_child() {
        let want = if var("TRUSTED") == "1" {
            FLB_OK
        } else {
            FLB_RETRY
        };
        return flush_with_endpoint_credentials(want);
    }
    let creds = JsonServer::start_https(vec![("/creds", vec![(200, ENDPOINT_CREDS.into())])]);
    let moto = Moto::start_at(Some(1_795_551_844_000)).expect("moto");
    for (trusted, roots) in [("1", "localhost.pem"), ("0", "other.pem")] {
        let log = stderr(&run_child(
            "options_::credentials_endpoint_over_https_checks_the_certificate",
            &[
                ("MOTO", &moto.url()),
                ("CREDS", &creds.url("/creds")),
                ("TRUSTED", trusted),
                ("SSL_CERT_FILE", &tls_file(roots)),
                ("SSL_CERT_DIR", ""),
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
            ],
        ));
        assert!(!log.contains("endpoint-secret"), "no secret in the log");
        if trusted == "0" {
            assert!(
                log.contains("credentials endpoint https://127.0.0.1"),
                "{log}"
            );
        }
    }
    assert_eq!(creds.hits("/creds"), 1, "only the trusting run asked");
    assert_eq!(
        Account::source(&moto.url(), REGION).events("/g", "s").len(),
        2
    );
}

/// Regression (issue 27, items 2 and 5): Init errors name the option and the value, but
/// an invalid credentials_endpoint only by its scheme and host (its path may be a
/// credential: run_child checks every line); a tag CloudWatch refuses fails Init with
/// auto_create_group on, naming the tag.
#[test]
fn init_errors_name_the_value_but_never_a_credential_path() {
    let cases = [
        (
            (
                "credentials_endpoint",
                "htps://169.254.170.2/v2/credentials/endpoint-path-secret",
            ),
            r#"invalid 'credentials_endpoint' "htps://169.254.170.2/…": expected an http:// or https:// URL"#,
        ),
        (
            ("new_log_group_tags", "env=prod, team=a&b"),
            r#"invalid 'new_log_group_tags' "team=a&b": the value holds '&', which CloudWatch refuses in tags; expected at most 50 key=value pairs"#,
        ),
        (
            ("new_log_group_tags", "owner=ops!"),
            r#"invalid 'new_log_group_tags' "owner=ops!": the value holds '!'"#,
        ),
    ];
    if is_child() {
        for (option, _) in cases {
            let props = opts(&[
                ("region", REGION),
                ("log_group_name", "/g"),
                ("log_stream_name", "s"),
                ("auto_create_group", "true"),
                option,
            ]);
            assert_eq!(plugin().init(&props).err(), Some(0), "{option:?}");
        }
        return;
    }
    let log = stderr(&run_child(
        "options_::init_errors_name_the_value_but_never_a_credential_path",
        &[],
    ));
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("[error]")).collect();
    assert_eq!(errors.len(), cases.len(), "{log}");
    for ((_, want), line) in cases.iter().zip(&errors) {
        assert!(line.contains(want), "{line:?} should contain {want:?}");
    }
}

/// The child of the FULL_URI tests: one flush, whose credentials cannot be had.
fn flush_without_credentials() {
    let out = plugin()
        .init(&opts(&[
            ("region", REGION),
            ("log_group_name", "/g"),
            ("log_stream_name", "s"),
            ("endpoint", "http://127.0.0.1:9"),
            ("retry_timeout", "0"),
        ]))
        .expect("init");
    assert_eq!(out.flush("t", &app_chunk(&["a"])), FLB_RETRY);
    assert_eq!(out.exit(), FLB_OK);
}

/// Regression (issue 27, item 3): an http:// AWS_CONTAINER_CREDENTIALS_FULL_URI is held to
/// the AWS SDKs' rule on the addresses its host resolves to: a name that only starts like a
/// loopback address is refused before anything (the authorization token) is sent, and the
/// flush's error line says why, without the URL's path.
#[test]
fn a_full_uri_host_must_resolve_to_loopback() {
    if is_child() {
        return flush_without_credentials();
    }
    let log = stderr(&run_child(
        "options_::a_full_uri_host_must_resolve_to_loopback",
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1.invalid:9/v2/credentials/full-uri-secret",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "task-auth-token"),
        ],
    ));
    let line = log
        .lines()
        .find(|l| l.contains("[error]") && l.contains("credentials endpoint"))
        .unwrap_or_else(|| panic!("no credentials error line:\n{log}"));
    assert!(
        line.contains("credentials endpoint http://127.0.0.1.invalid:9/…: cannot resolve 127.0.0.1.invalid")
            && line.contains("an http:// AWS_CONTAINER_CREDENTIALS_FULL_URI must point at a loopback address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23"),
        "{line}"
    );
}

/// Regression (issue 27, item 4): wherever a FULL_URI is read, the flush's error line shows
/// it without its path (run_child checks every line): by the SDK's default chain (environment
/// keys without a secret leave the chain to the SDK, whose error quotes the URI whole), or by
/// the plugin — an address the AWS SDKs refuse (which the plugin used to leave to the SDK),
/// an `https://` one at a closed port.
#[test]
fn a_full_uri_s_path_never_reaches_a_flush_error() {
    if is_child() {
        return flush_without_credentials();
    }
    for (uri, key_id, shown) in [
        (
            "http://192.0.2.1:1/v2/credentials/full-uri-secret",
            "AKIAKEYWITHOUTSECRET",
            "invalid full URI for ECS provider (URI did not refer to an allowed IP address): http://192.0.2.1:1/…",
        ),
        (
            "http://192.0.2.1:1/v2/credentials/full-uri-secret",
            "",
            "credentials endpoint http://192.0.2.1:1/…: 192.0.2.1 resolves to 192.0.2.1, but an http:// AWS_CONTAINER_CREDENTIALS_FULL_URI must point at a loopback address",
        ),
        (
            "https://127.0.0.1:1/v1/full-uri-secret",
            "",
            "credentials endpoint https://127.0.0.1:1/…: Connection refused",
        ),
    ] {
        let log = stderr(&run_child(
            "options_::a_full_uri_s_path_never_reaches_a_flush_error",
            &[
                ("AWS_ACCESS_KEY_ID", key_id),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri),
            ],
        ));
        assert!(
            log.lines()
                .any(|l| l.contains("[error]") && l.contains(shown)),
            "{uri}: {log}"
        );
    }
}

/// HTTP_PROXY carries the STS and CloudWatch Logs calls; the ECS metadata endpoint and the
/// task's container-credentials endpoint (here the base credentials, with its authorization
/// token) are read directly, never through the proxy.
#[test]
fn the_proxy_serves_aws_calls_but_never_the_ecs_endpoint() {
    if is_child() {
        let url = var("MOTO");
        let out = plugin()
            .init(&opts(&[
                ("region", REGION),
                ("log_group_name", "/proxied"),
                ("log_stream_name", "$(ecs_task_id)"),
                ("auto_create_group", "true"),
                ("role_arn", ROLE_ARN),
                ("endpoint", &url),
                ("sts_endpoint", &url),
            ]))
            .expect("init");
        assert_eq!(out.flush("t", &app_chunk(&["a"])), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let moto = Moto::start_at(Some(1_795_551_844_000)).expect("moto");
    let ecs = JsonServer::start(vec![("/v4/abc/task", vec![(200, task_metadata())])]);
    let proxy = Proxy::start();
    let creds = JsonServer::start(vec![(
        "/creds",
        vec![(
            200,
            r#"{"AccessKeyId":"AKIATASKROLE00000000","SecretAccessKey":"task-secret","Token":"task-session","Expiration":"2099-01-01T00:00:00Z"}"#.into(),
        )],
    )]);
    run_child(
        "options_::the_proxy_serves_aws_calls_but_never_the_ecs_endpoint",
        &[
            ("MOTO", &moto.url()),
            ("ECS_CONTAINER_METADATA_URI_V4", &ecs.url("/v4/abc")),
            ("HTTP_PROXY", &proxy.url()),
            ("http_proxy", &proxy.url()),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &creds.url("/creds")),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "task-auth-token"),
        ],
    );
    let seen = proxy.seen();
    let through = |port: u16| {
        seen.iter()
            .filter(|r| r.contains(&format!("127.0.0.1:{port}/")))
            .count()
    };
    assert!(
        through(moto.port) >= 3,
        "AssumeRole, CreateLogStream/Group, PutLogEvents via the proxy: {seen:?}"
    );
    assert_eq!(through(ecs.port), 0, "metadata endpoint proxied: {seen:?}");
    assert_eq!(
        through(creds.port),
        0,
        "credentials endpoint proxied: {seen:?}"
    );
    assert_eq!(ecs.hits("/v4/abc/task"), 1);
    assert!(creds.hits("/creds") >= 1);
    assert!(
        creds
            .last_headers()
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v == "task-auth-token"),
        "{:?}",
        creds.last_headers()
    );
    let (dest, _) = Account::assume(&moto.url(), REGION, ROLE_ARN).expect("assume");
    assert_eq!(dest.events("/proxied", TASK_ID).len(), 1);
}

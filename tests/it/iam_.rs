//! The example's IAM documents (`examples/iam/`, which are what `flb-cloudwatch-check
//! --print-iam` prints for `examples/ecs-task-definition.json`: check/tests/iam.rs) against
//! moto with its IAM enforcement on, the plugin loaded as Fluent Bit loads it.
//!
//! The source principal is an IAM user `httpd-task` of 111111111111 (the task role's
//! stand-in: its keys are the task's credentials) with `source-task-role-policy.json`; the
//! destination role `firelens-cross-account` of 222222222222 has
//! `destination-role-trust-policy.json` and `destination-role-permissions.json`.
//!
//! What moto 5.2.5 evaluates, and so what these tests prove (moto's
//! `iam/access_control.py`):
//! - signatures, and the caller's identity policies for the action: each action of the
//!   permission policy is proven needed, and the set proven enough;
//! - for STS AssumeRole, the `Resource` of the caller's policy against the role's ARN: the
//!   source policy's statement is proven;
//! - the resource ARNs of CloudWatch Logs, as `flb_host::moto` teaches moto to evaluate them
//!   (moto itself authorizes every logs call against the resource `*`, which no ARN
//!   matches): a stream's calls against `…:log-group:G:log-stream:S`, a group's against
//!   `…:log-group:G`, the ARNs AWS names in its access-denied messages. The printed
//!   documents are loaded as they are, and one for another group is refused;
//! - not the destination role's trust policy across accounts: moto evaluates a trust
//!   policy only when the role is in the caller's own account, so its principal and an
//!   `sts:ExternalId` condition are derived, not proven, for cross-account use.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::*;
use flb_host::fake::JsonServer;
use flb_host::msgpack::{Format, Writer};
use flb_host::policy::{actions, without_action};
use serde_json::Value;

const SOURCE: &str = "111111111111";
const TASK_ID: &str = "0123456789abcdef0123456789abcdef";
const GROUP: &str = "/ecs/httpd";

fn example(name: &str) -> Value {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The example task definition's FireLens options, with moto's URL as both endpoints.
fn options(url: &str) -> Vec<(String, String)> {
    let task = example("ecs-task-definition.json");
    let container = task["containerDefinitions"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["logConfiguration"]["logDriver"] == "awsfirelens")
        .expect("a FireLens container");
    let mut out: Vec<(String, String)> = container["logConfiguration"]["options"]
        .as_object()
        .expect("options")
        .iter()
        .filter(|(k, _)| k.as_str() != "Name")
        .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_owned()))
        .collect();
    out.push(("endpoint".into(), url.into()));
    out.push(("sts_endpoint".into(), url.into()));
    out
}

/// Creates the principals (see the module's doc) and prints the user's key; `POLICY`
/// replaces the destination role's permission policy, and `DELETE_GROUP` deletes the
/// group, when set.
const SETUP: &str = r#"
import json, os, boto3
url = os.environ["MOTO_URL"]
admins = json.loads(os.environ["MOTO_ADMINS"])
def client(service, account):
    key, secret = admins[account]
    return boto3.client(service, endpoint_url=url, region_name="ap-northeast-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
step = os.environ["STEP"]
if step == "create":
    src = client("iam", "111111111111")
    src.create_user(UserName="httpd-task")
    src.put_user_policy(UserName="httpd-task", PolicyName="assume",
                        PolicyDocument=os.environ["SOURCE_POLICY"])
    key = src.create_access_key(UserName="httpd-task")["AccessKey"]
    dst = client("iam", "222222222222")
    dst.create_role(RoleName="firelens-cross-account",
                    AssumeRolePolicyDocument=os.environ["TRUST"])
    print(json.dumps([key["AccessKeyId"], key["SecretAccessKey"]]))
elif step == "permissions":
    logs = client("logs", "222222222222")
    if any(g["logGroupName"] == "/ecs/httpd" for g in logs.describe_log_groups()["logGroups"]):
        logs.delete_log_group(logGroupName="/ecs/httpd")
    client("iam", "222222222222").put_role_policy(
        RoleName="firelens-cross-account", PolicyName="write",
        PolicyDocument=os.environ["POLICY"])
elif step == "events":
    logs = client("logs", os.environ["ACCOUNT"])
    groups = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    events = []
    if "/ecs/httpd" in groups:
        events = [e["message"] for e in logs.get_log_events(
            logGroupName="/ecs/httpd", logStreamName=os.environ["STREAM"])["events"]]
    print(json.dumps({"groups": groups, "events": events}))
elif step == "assume":
    key, secret = json.loads(os.environ["KEYS"])
    sts = boto3.client("sts", endpoint_url=url, region_name="ap-northeast-1",
                       aws_access_key_id=key, aws_secret_access_key=secret)
    try:
        arn = sts.assume_role(RoleArn=os.environ["ROLE"], RoleSessionName="probe")["AssumedRoleUser"]["Arn"]
        print("assumed", arn)
    except Exception as e:
        print("refused", e.response["Error"]["Code"])
"#;

fn setup(moto: &Moto, step: &str, env: &[(&str, &str)]) -> String {
    let mut all = vec![("STEP", step)];
    all.extend_from_slice(env);
    moto.python(SETUP, &all)
        .unwrap_or_else(|e| panic!("set-up step {step}: {e}"))
}

/// moto with the two accounts, the source user and the destination role; the user's keys.
fn principals(trust: &Value, source_policy: &Value) -> (Moto, (String, String)) {
    let moto = Moto::start_enforcing_iam(&[SOURCE, DEST_ACCOUNT]).expect("moto");
    let out = setup(
        &moto,
        "create",
        &[
            ("SOURCE_POLICY", &source_policy.to_string()),
            ("TRUST", &trust.to_string()),
        ],
    );
    let keys: (String, String) = serde_json::from_str(out.trim()).expect("keys");
    (moto, keys)
}

/// The child: flushes one FireLens record with the example's options and expects
/// `EXPECT` (`ok` or `retry`).
fn flush_in_child() {
    let opts = options(&var("MOTO"));
    let refs: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = plugin().init(&refs).expect("init");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    let mut w = Writer::new();
    w.event(Format::V2, now.as_secs() as u32, now.subsec_nanos())
        .string_map(&[("log", "GET / 200"), ("source", "stdout")]);
    let want = if var("EXPECT") == "ok" {
        FLB_OK
    } else {
        FLB_RETRY
    };
    assert_eq!(out.flush("httpd-firelens-abc", &w.buf), want);
    assert_eq!(out.exit(), FLB_OK);
}

/// Runs [`flush_in_child`] as the source user, with the task's metadata for
/// `$(ecs_task_id)`; returns the plugin's log.
fn flush(test: &str, moto: &Moto, keys: &(String, String), expect: &str) -> String {
    let agent = JsonServer::start(vec![(
        "/v4/iam/task",
        vec![(
            200,
            format!(
                r#"{{"Cluster":"arn:aws:ecs:{REGION}:{SOURCE}:cluster/default","TaskARN":"arn:aws:ecs:{REGION}:{SOURCE}:task/default/{TASK_ID}","Family":"httpd"}}"#
            ),
        )],
    )]);
    stderr(&run_child(
        test,
        &[
            ("MOTO", &moto.url()),
            ("EXPECT", expect),
            ("AWS_ACCESS_KEY_ID", &keys.0),
            ("AWS_SECRET_ACCESS_KEY", &keys.1),
            ("ECS_CONTAINER_METADATA_URI_V4", &agent.url("/v4/iam")),
        ],
    ))
}

/// With the example's documents the record lands in the destination account; without any
/// one action of the permission policy the flush is retried, and the plugin's error line
/// names the permission, the group and the stream.
#[test]
fn the_example_documents_deliver_and_each_action_is_needed() {
    if is_child() {
        return flush_in_child();
    }
    let name = "iam_::the_example_documents_deliver_and_each_action_is_needed";
    let permissions = example("iam/destination-role-permissions.json");
    let (moto, keys) = principals(
        &example("iam/destination-role-trust-policy.json"),
        &example("iam/source-task-role-policy.json"),
    );
    let all = actions(&permissions);
    assert_eq!(
        all,
        [
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents"
        ]
    );
    for action in &all {
        let policy = without_action(&permissions, action).to_string();
        setup(&moto, "permissions", &[("POLICY", &policy)]);
        let log = flush(name, &moto, &keys, "retry");
        // CloudWatch's refusal, AccessDeniedException (flb_host::moto gives moto's refusal
        // AWS's shape), naming the action and the resource.
        let line = log
            .lines()
            .find(|l| l.contains("] [error] [") && l.contains("lacks a permission"))
            .unwrap_or_else(|| panic!("without {action}: no access error line:\n{log}"));
        let operation = action.trim_start_matches("logs:");
        let resource = if operation == "CreateLogGroup" {
            format!("log-group:{GROUP}")
        } else {
            format!("log-group:{GROUP}:log-stream:{TASK_ID}")
        };
        for part in [
            format!(
                "{operation} to group '{GROUP}' stream '{TASK_ID}' failed: AccessDeniedException: "
            ),
            format!(
                "is not authorized to perform: {action} on resource: arn:aws:logs:{REGION}:{DEST_ACCOUNT}:{resource}"
            ),
            format!("its policy must allow {action} on group '{GROUP}' stream '{TASK_ID}'"),
            ROLE_ARN.to_owned(),
        ] {
            assert!(
                line.contains(&part),
                "without {action}: {part:?} missing:\n{line}"
            );
        }
    }

    let policy = permissions.to_string();
    setup(&moto, "permissions", &[("POLICY", &policy)]);
    let log = flush(name, &moto, &keys, "ok");
    assert!(!log.contains("] [error] ["), "{log}");
    let stored: Value = serde_json::from_str(
        setup(
            &moto,
            "events",
            &[("ACCOUNT", DEST_ACCOUNT), ("STREAM", TASK_ID)],
        )
        .trim(),
    )
    .expect("events");
    assert_eq!(stored["groups"], serde_json::json!([GROUP]));
    assert_eq!(
        stored["events"],
        serde_json::json!([r#"{"log":"GET / 200","source":"stdout"}"#])
    );
    let source: Value = serde_json::from_str(
        setup(&moto, "events", &[("ACCOUNT", SOURCE), ("STREAM", TASK_ID)]).trim(),
    )
    .expect("events");
    assert_eq!(
        source["groups"],
        serde_json::json!([]),
        "nothing in the source account"
    );
}

/// What moto evaluates, as the module's doc says: the caller's policy for AssumeRole
/// against the role's ARN (a policy for another role is refused) and the CloudWatch Logs
/// resource ARNs (the printed permission policy written for another group is refused),
/// but not the destination role's trust policy across accounts (one naming another
/// principal and requiring an external id lets the user in).
#[test]
fn what_moto_evaluates() {
    if is_child() {
        return flush_in_child();
    }
    let name = "iam_::what_moto_evaluates";
    let elsewhere = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
                       "Action": "sts:AssumeRole",
                       "Condition": {"StringEquals": {"sts:ExternalId": "never-given"}}}]
    });
    let (moto, keys) = principals(&elsewhere, &example("iam/source-task-role-policy.json"));
    let keys_json = serde_json::json!([keys.0, keys.1]).to_string();
    let assumed = setup(&moto, "assume", &[("KEYS", &keys_json), ("ROLE", ROLE_ARN)]);
    assert!(
        assumed
            .starts_with("assumed arn:aws:sts::222222222222:assumed-role/firelens-cross-account/"),
        "cross-account trust is not evaluated by moto: {assumed}"
    );
    let other = "arn:aws:iam::222222222222:role/another";
    let refused = setup(&moto, "assume", &[("KEYS", &keys_json), ("ROLE", other)]);
    assert_eq!(
        refused.trim(),
        "refused AccessDenied",
        "the source policy's Resource is"
    );

    let other_group = example("iam/destination-role-permissions.json")
        .to_string()
        .replace(&format!("log-group:{GROUP}"), "log-group:/ecs/other");
    setup(&moto, "permissions", &[("POLICY", &other_group)]);
    let log = flush(name, &moto, &keys, "retry");
    assert!(
        log.contains("lacks a permission") && log.contains(&format!("group '{GROUP}'")),
        "{log}"
    );
}

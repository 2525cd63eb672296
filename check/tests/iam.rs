//! `flb-cloudwatch-check --task-definition … --print-iam` as users run it: the example task
//! definition (both forms) prints exactly `examples/iam/`; bad files are status 2 with one
//! line; no secret is ever shown; and under moto's enforced IAM (see tests/it/iam_.rs for
//! what moto evaluates) the printed documents pass every step, while each action taken
//! away fails the send step with the plugin's line and a hint naming it.

use std::path::PathBuf;
use std::process::{Command, Output};

use flb_host::fake::JsonServer;
use flb_host::moto::Moto;
use flb_host::policy::without_action;
use serde_json::Value;

const SOURCE: &str = "111111111111";
const DEST: &str = "222222222222";
const ROLE: &str = "arn:aws:iam::222222222222:role/firelens-cross-account";
const REGION: &str = "ap-northeast-1";
const TASK_ID: &str = "0123456789abcdef0123456789abcdef";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example_task() -> String {
    root()
        .join("examples/ecs-task-definition.json")
        .display()
        .to_string()
}

/// Runs the check in a task's environment plus `vars`.
fn check(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flb-cloudwatch-check"));
    flb_host::cloud::task_environment(&mut cmd);
    cmd.env_remove("FLB_CLOUDWATCH_CHECK_SEND")
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .expect("run flb-cloudwatch-check")
}

/// Runs the check with no AWS credentials at all.
fn check_without_credentials(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flb-cloudwatch-check"));
    flb_host::cloud::task_environment(&mut cmd);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("FLB_CLOUDWATCH_CHECK_SEND")
        .args(args)
        .output()
        .expect("run flb-cloudwatch-check")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file in this test's own directory.
fn scratch(name: &str, content: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check-iam");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("scratch file");
    path.display().to_string()
}

fn example_iam(name: &str) -> String {
    let path = root().join(format!("examples/iam/{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of `--print-iam=json`'s output, by name.
fn printed(stdout: &str) -> Vec<(String, Value)> {
    let doc: Value = serde_json::from_str(stdout.trim()).expect("--print-iam=json's output");
    doc["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().expect("name").to_owned(),
                d["document"].clone(),
            )
        })
        .collect()
}

/// `examples/iam/` is what `--print-iam` prints for the example task definition, with no
/// credentials and no AWS call (`--dry-run`), in the JSON form and as text (each file
/// verbatim under its comment line); the `describe-task-definition` form prints the same;
/// and the external-id trust policy is what `-p external_id=… --show-secrets` adds.
#[test]
fn the_examples_are_what_print_iam_prints() {
    let task = example_task();
    let out =
        check_without_credentials(&["--task-definition", &task, "--print-iam=json", "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("- credentials: skipped (--dry-run: no AWS call)"),
        "{stderr}"
    );
    let docs = printed(&stdout);
    let names: Vec<&str> = docs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "destination-role-permissions",
            "destination-role-trust-policy",
            "source-task-role-policy",
            "source-task-role-trust-policy"
        ]
    );
    for (name, doc) in &docs {
        let file: Value = serde_json::from_str(&example_iam(name)).expect("an example");
        assert_eq!(
            &file, doc,
            "examples/iam/{name}.json differs from --print-iam"
        );
    }

    let out = check_without_credentials(&["--task-definition", &task, "--print-iam", "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for (name, _) in &docs {
        let heading = format!("# {name}.json: ");
        let at = stdout
            .find(&heading)
            .unwrap_or_else(|| panic!("no {heading:?} in\n{stdout}"));
        let after = &stdout[at..];
        let body = &after[after.find('\n').expect("a line") + 1..];
        assert!(
            body.starts_with(&example_iam(name)),
            "examples/iam/{name}.json is not verbatim under its line:\n{stdout}"
        );
    }
    assert!(
        stdout.trim_end().ends_with("result: all 2 steps passed"),
        "{stdout}"
    );

    let original = std::fs::read_to_string(&task).expect("example");
    let described = scratch(
        "described.json",
        &format!(r#"{{"taskDefinition": {original}, "tags": []}}"#),
    );
    let out = check_without_credentials(&[
        "--task-definition",
        &described,
        "--print-iam=json",
        "--dry-run",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("describe-task-definition output"),
        "{stderr}"
    );
    assert_eq!(printed(&stdout), docs);

    let out = check_without_credentials(&[
        "--task-definition",
        &task,
        "-p",
        "external_id=httpd-logs-7f3a9c",
        "--show-secrets",
        "--print-iam=json",
        "--dry-run",
    ]);
    let (stdout, _) = text(&out);
    let trust = printed(&stdout)
        .into_iter()
        .find(|(n, _)| n == "destination-role-trust-policy")
        .expect("a trust policy")
        .1;
    let file: Value =
        serde_json::from_str(&example_iam("destination-role-trust-policy-external-id"))
            .expect("example");
    assert_eq!(trust, file);
}

/// What the check reads of the task: the log router, the task role, the platform, and the
/// [OUTPUT] FireLens makes (Name, Match), FireLens's own option and a secret option named.
#[test]
fn the_task_is_described_and_secrets_are_never_shown() {
    let task = scratch(
        "secrets.json",
        r#"{
  "taskRoleArn": "arn:aws:iam::111111111111:role/app",
  "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
  "containerDefinitions": [
    {"name": "log_router", "firelensConfiguration": {"type": "fluentbit",
      "options": {"enable-ecs-log-metadata": "true"}}},
    {"name": "app", "logConfiguration": {"logDriver": "awsfirelens",
      "options": {"Name": "cloudwatch_logs", "region": "eu-west-1", "log_group_name": "/ecs/app",
                  "log_stream_prefix": "app-", "auto_create_group": "true",
                  "role_arn": "arn:aws:iam::222222222222:role/writer",
                  "log-driver-buffer-limit": "2097152"},
      "secretOptions": [{"name": "external_id",
                         "valueFrom": "arn:aws:ssm:eu-west-1:111111111111:parameter/value-from-secret-path"}]}}
  ]}"#,
    );
    let out = check_without_credentials(&[
        "--task-definition",
        &task,
        "--print-iam",
        "--dry-run",
        "-p",
        "role_session_name=typed-secret-id",
    ]);
    let (stdout, stderr) = text(&out);
    let context = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "{context}");
    for line in [
        "taskRoleArn arn:aws:iam::111111111111:role/app; runtimePlatform LINUX/ARM64",
        "log router 'log_router': firelensConfiguration type fluentbit, options enable-ecs-log-metadata=true",
        "container 'app': FireLens's [OUTPUT] Name cloudwatch_logs, Match app-firelens*, 5 options (and 1 from -p)",
        "! Name cloudwatch_logs selects Fluent Bit's own C plugin",
        "! 'log-driver-buffer-limit' is FireLens's own option",
        "! secret option 'external_id': ECS resolves it at run time",
        "log-group:/ecs/app:log-stream:app-app-firelens-*",
        "\"sts:ExternalId\": \"<external_id: the value of the secret option",
    ] {
        assert!(stdout.contains(line), "missing {line:?}\n{context}");
    }
    assert!(!context.contains("value-from-secret-path"), "{context}");

    let out = check_without_credentials(&[
        "--task-definition",
        &example_task(),
        "-p",
        "external_id=typed-external-id",
        "--print-iam",
        "--dry-run",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "\"sts:ExternalId\": \"<external_id: its value is shown with --show-secrets>\""
        )
    );
    assert!(!stdout.contains("typed-external-id") && !stderr.contains("typed-external-id"));
}

/// Bad files and choices: status 2 and one line naming the file and what was expected.
#[test]
fn bad_task_definitions_are_one_line_with_status_2() {
    let firelens = |name: &str, plugin: &str| {
        format!(
            r#"{{"name": "{name}", "logConfiguration": {{"logDriver": "awsfirelens", "options": {{"Name": "{plugin}", "region": "eu-west-1", "log_group_name": "/g", "log_stream_name": "s"}}}}}}"#
        )
    };
    let two = scratch(
        "two.json",
        &format!(
            r#"{{"containerDefinitions": [{}, {}]}}"#,
            firelens("a", "cloudwatch"),
            firelens("b", "cloudwatch")
        ),
    );
    let cases: Vec<(Vec<String>, String, &str)> = vec![
        (
            vec![scratch(
                "broken.json",
                "{\n  \"containerDefinitions\": [\n    {,\n]}",
            )],
            String::new(),
            "broken.json:3:6: not JSON (",
        ),
        (
            vec![scratch(
                "other.json",
                r#"{"apiVersion": "v1", "kind": "Pod"}"#,
            )],
            String::new(),
            "other.json: not an ECS task definition: expected \"containerDefinitions\"",
        ),
        (
            vec![scratch(
                "nofirelens.json",
                &format!(
                    r#"{{"containerDefinitions": [{}, {{"name": "x"}}]}}"#,
                    firelens("web", "firehose")
                ),
            )],
            String::new(),
            "nofirelens.json: no container logs through FireLens to cloudwatch (FireLens sends 'web' to 'firehose'): expected",
        ),
        (
            vec![two.clone()],
            String::new(),
            "two.json: several containers log through FireLens to cloudwatch (a, b): expected --container NAME",
        ),
        (
            vec![two.clone()],
            "c".into(),
            "two.json: no container 'c' logs through FireLens to cloudwatch or cloudwatch_logs (those that do: a, b)",
        ),
        (
            vec![root().join("examples/missing.json").display().to_string()],
            String::new(),
            "missing.json: cannot read: ",
        ),
    ];
    for (files, container, expected) in cases {
        let mut args = vec!["--task-definition", files[0].as_str(), "--dry-run"];
        if !container.is_empty() {
            args.extend(["--container", container.as_str()]);
        }
        let out = check_without_credentials(&args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{expected}: {stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "flb-cloudwatch-check: {}",
                files[0].rsplit_once('/').map_or("", |(d, _)| d)
            )) && stderr.contains(expected),
            "{expected:?} not in {stderr}"
        );
        assert!(stdout.is_empty(), "{stdout}");
    }

    // --container chooses; an option Init refuses is reported as with -p, exit status 1.
    let out = check_without_credentials(&[
        "--task-definition",
        &two,
        "--container",
        "b",
        "-p",
        "auto_create_group=maybe",
        "--dry-run",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("container 'b': FireLens's [OUTPUT] Name cloudwatch, Match b-firelens*")
    );
    assert!(
        stdout.contains("✗ options: invalid 'auto_create_group' \"maybe\": expected true/false, on/off or yes/no\n  hint: "),
        "{stdout}"
    );
}

/// A group named by a record key alone: the resources have `*` for it, and a warning says so.
#[test]
fn an_unbounded_template_is_a_star_and_a_warning() {
    let task = scratch(
        "unbounded.json",
        r#"{"containerDefinitions": [{"name": "app", "logConfiguration": {"logDriver": "awsfirelens",
          "options": {"Name": "cloudwatch", "region": "eu-west-1", "log_group_name": "$(team)",
                      "log_stream_name": "s", "auto_create_group": "on",
                      "role_arn": "arn:aws:iam::222222222222:role/writer"}}}]}"#,
    );
    let out = check_without_credentials(&["--task-definition", &task, "--print-iam", "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("! iam: log_group_name '$(team)': the group is named by record keys with no fixed prefix, so the resources have '*'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"arn:aws:logs:eu-west-1:222222222222:log-group:*\""),
        "{stdout}"
    );
    // No task role: the source account is a placeholder, said in a warning.
    assert!(
        stdout.contains("! iam: the source account is not known"),
        "{stdout}"
    );
}

/// Creates the principals with the printed documents (moto, as `flb_host::moto` runs it,
/// evaluates their CloudWatch Logs resource ARNs too), replaces the
/// role's permission policy (`POLICY`) or the user's (`SOURCE_POLICY`), and prints keys.
const SETUP: &str = r#"
import json, os, boto3
url = os.environ["MOTO_URL"]
admins = json.loads(os.environ["MOTO_ADMINS"])
def client(service, account):
    key, secret = admins[account]
    return boto3.client(service, endpoint_url=url, region_name="ap-northeast-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
src, dst = client("iam", "111111111111"), client("iam", "222222222222")
step = os.environ["STEP"]
if step == "create":
    src.create_user(UserName="httpd-task")
    key = src.create_access_key(UserName="httpd-task")["AccessKey"]
    dst.create_role(RoleName="firelens-cross-account",
                    AssumeRolePolicyDocument=os.environ["TRUST"])
    print(json.dumps([key["AccessKeyId"], key["SecretAccessKey"]]))
if "SOURCE_POLICY" in os.environ:
    src.put_user_policy(UserName="httpd-task", PolicyName="assume",
                        PolicyDocument=os.environ["SOURCE_POLICY"])
if "POLICY" in os.environ:
    logs = client("logs", "222222222222")
    if any(g["logGroupName"] == "/ecs/httpd" for g in logs.describe_log_groups()["logGroups"]):
        logs.delete_log_group(logGroupName="/ecs/httpd")
    dst.put_role_policy(RoleName="firelens-cross-account", PolicyName="write",
                        PolicyDocument=os.environ["POLICY"])
"#;

/// Under moto's enforced IAM, the check of the example task definition (its endpoints
/// pointed at moto with `-p`) passes every step with the printed documents; without any one
/// action of the permission policy the send step fails with the plugin's line and a hint
/// naming the permission; without the source statement the assume role step fails.
#[test]
fn the_printed_documents_pass_and_each_missing_action_fails_the_send_step() {
    let task = example_task();
    let out =
        check_without_credentials(&["--task-definition", &task, "--print-iam=json", "--dry-run"]);
    let docs = printed(&text(&out).0);
    let doc = |name: &str| {
        docs.iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .expect(name)
    };
    let permissions = doc("destination-role-permissions");

    let moto = Moto::start_enforcing_iam(&[SOURCE, DEST]).expect("moto");
    let setup = |vars: &[(&str, &str)]| moto.python(SETUP, vars).expect("set-up");
    let keys: Vec<String> = serde_json::from_str(
        setup(&[
            ("STEP", "create"),
            ("TRUST", &doc("destination-role-trust-policy").to_string()),
            ("SOURCE_POLICY", &doc("source-task-role-policy").to_string()),
        ])
        .trim(),
    )
    .expect("keys");
    let agent = JsonServer::start(vec![(
        "/v4/iam/task",
        vec![(
            200,
            format!(
                r#"{{"Cluster":"arn:aws:ecs:{REGION}:{SOURCE}:cluster/default","TaskARN":"arn:aws:ecs:{REGION}:{SOURCE}:task/default/{TASK_ID}","Family":"httpd"}}"#
            ),
        )],
    )]);
    let url = moto.url();
    let endpoint = format!("endpoint={url}");
    let sts_endpoint = format!("sts_endpoint={url}");
    let metadata = agent.url("/v4/iam");
    let run = || {
        let out = check(
            &[
                "--task-definition",
                &task,
                "-p",
                &endpoint,
                "-p",
                &sts_endpoint,
            ],
            &[
                ("AWS_ACCESS_KEY_ID", &keys[0]),
                ("AWS_SECRET_ACCESS_KEY", &keys[1]),
                ("ECS_CONTAINER_METADATA_URI_V4", &metadata),
            ],
        );
        let (stdout, stderr) = text(&out);
        assert!(
            !stdout.contains(&keys[1]) && !stderr.contains(&keys[1]),
            "a secret was shown"
        );
        (out.status.code(), stdout, stderr)
    };

    for action in [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ] {
        setup(&[
            ("STEP", "policy"),
            ("POLICY", &without_action(&permissions, action).to_string()),
        ]);
        let (code, stdout, stderr) = run();
        let context = format!("without {action}:\n--- stdout\n{stdout}--- stderr\n{stderr}");
        assert_eq!(code, Some(1), "{context}");
        let operation = action.trim_start_matches("logs:");
        assert!(
            stdout.contains(&format!(
                "✗ send: {operation} to group '/ecs/httpd' stream '{TASK_ID}' failed: "
            )),
            "{context}"
        );
        assert!(
            stdout.contains(&format!(
                "  hint: the writing role's policy does not allow {action} on this group and stream: --print-iam prints the policy these options need"
            )),
            "{context}"
        );
        assert!(
            stderr.contains(&format!(
                "[error] [output:cloudwatch:cloudwatch.0] {operation} to group '/ecs/httpd' stream '{TASK_ID}' failed: "
            )) && stderr.contains(&format!("its policy must allow {action} on group '/ecs/httpd' stream '{TASK_ID}'")),
            "{context}"
        );
    }

    setup(&[("STEP", "policy"), ("POLICY", &permissions.to_string())]);
    let (code, stdout, stderr) = run();
    let context = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(code, Some(0), "{context}");
    assert!(
        stdout.contains(&format!(
            "✓ assume role: arn:aws:sts::{DEST}:assumed-role/firelens-cross-account/"
        )),
        "{context}"
    );
    assert!(
        stdout.contains(&format!(
            "✓ send: 1 test event delivered to group '/ecs/httpd' stream '{TASK_ID}' in account {DEST}"
        )),
        "{context}"
    );

    let nothing = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]}"#;
    setup(&[("STEP", "policy"), ("SOURCE_POLICY", nothing)]);
    let (code, stdout, stderr) = run();
    let context = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(code, Some(1), "{context}");
    // STS's refusal, as AWS words it (flb_host::moto gives moto's the AWS shape).
    assert!(
        stdout.contains(&format!(
            "✗ assume role: AccessDenied: User: arn:aws:iam::111111111111:user/httpd-task is not authorized to perform: sts:AssumeRole on resource: {ROLE}\n  hint: the role's trust policy"
        )),
        "{context}"
    );
    assert!(stdout.contains("--print-iam prints both"), "{context}");
    assert!(stdout.contains("- send: skipped"), "{context}");
}

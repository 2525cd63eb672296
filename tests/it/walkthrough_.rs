//! The guide's cross-account walkthrough, run as written: the `sh` blocks of
//! `docs/guide.md`'s "Cross-account delivery, step by step", each under a heading naming its
//! account, are run in order with the AWS CLI against moto with IAM enforcement on. The test
//! gives each block its account's administrator credentials and the endpoint; the blocks set
//! nothing themselves. Then, as ECS would, the task gets its task role's credentials, and the
//! plugin, loaded with the FireLens options of `examples/ecs-task-definition.json`, delivers:
//! every record lands in the destination account, none in the source account. A step edited
//! into something that does not work fails here.

use crate::support::*;
use flb_host::fake::JsonServer;
use flb_host::msgpack::{Format, Writer, firelens_record};

const SOURCE: &str = "111111111111";
const DESTINATION: &str = "222222222222";
const TASK_ID: &str = "0123456789abcdef0123456789abcdef";
const RECORDS: u32 = 50;

fn repo_file(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// The `sh` blocks of the guide's section `section` (a `## ` heading), each with the
/// account named in parentheses by the `### ` heading above it.
fn account_blocks(guide: &str, section: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut inside = false;
    let mut account: Option<String> = None;
    let mut block: Option<String> = None;
    for line in guide.lines() {
        if let Some(text) = block.as_mut() {
            if line.trim_start().starts_with("```") {
                let account = account.clone().unwrap_or_else(|| {
                    panic!("a sh block of {section:?} sits under no account heading:\n{text}")
                });
                blocks.push((account, std::mem::take(text)));
                block = None;
            } else {
                text.push_str(line.trim_start());
                text.push('\n');
            }
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            inside = heading.trim() == section;
            account = None;
        } else if !inside {
            continue;
        } else if let Some(heading) = line.strip_prefix("### ") {
            account = heading
                .split(['(', ')'])
                .find(|part| part.len() == 12 && part.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned);
        } else if line.trim_start() == "```sh" && account.is_some() {
            block = Some(String::new());
        }
    }
    blocks
}

/// The FireLens options of the task definition's application container, and its task role.
fn task_definition() -> (Vec<(String, String)>, String) {
    let def: serde_json::Value =
        serde_json::from_str(&repo_file("examples/ecs-task-definition.json")).expect("JSON");
    let task_role = def["taskRoleArn"].as_str().expect("taskRoleArn").to_owned();
    let container = def["containerDefinitions"]
        .as_array()
        .expect("containerDefinitions")
        .iter()
        .find(|c| c["logConfiguration"]["logDriver"] == "awsfirelens")
        .expect("a container logging through awsfirelens");
    let options = container["logConfiguration"]["options"]
        .as_object()
        .expect("options")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("a string option").to_owned()))
        .collect();
    (options, task_role)
}

/// What ECS does for the task: its task role's credentials (an `AssumeRole` only ECS may
/// make, since the role trusts `ecs-tasks.amazonaws.com`: one request free of moto's
/// enforcement stands in for it).
fn task_role_credentials(moto: &Moto, task_role: &str) -> [String; 3] {
    moto.free_actions(1).expect("reset-auth");
    let out = moto
        .python(
            r#"
import json, os, boto3
key, secret = json.loads(os.environ["MOTO_ADMINS"])[os.environ["ACCOUNT"]]
sts = boto3.client("sts", endpoint_url=os.environ["MOTO_URL"], region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
c = sts.assume_role(RoleArn=os.environ["ROLE"], RoleSessionName="ecs-task")["Credentials"]
print(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
"#,
            &[("ACCOUNT", SOURCE), ("ROLE", task_role)],
        )
        .expect("ECS's AssumeRole of the task role");
    let mut parts = out.split_whitespace().map(str::to_owned);
    [(); 3].map(|()| parts.next().expect("three credential parts"))
}

/// The events each account holds, as `account group stream count` lines (read by each
/// account's administrator).
fn landed(moto: &Moto, region: &str) -> Vec<String> {
    let out = moto
        .python(
            r#"
import json, os, boto3
for account, (key, secret) in sorted(json.loads(os.environ["MOTO_ADMINS"]).items()):
    logs = boto3.client("logs", endpoint_url=os.environ["MOTO_URL"], region_name=os.environ["REGION"],
                        aws_access_key_id=key, aws_secret_access_key=secret)
    for g in logs.describe_log_groups()["logGroups"]:
        for s in logs.describe_log_streams(logGroupName=g["logGroupName"])["logStreams"]:
            n = len(logs.get_log_events(logGroupName=g["logGroupName"],
                                        logStreamName=s["logStreamName"])["events"])
            print(account, g["logGroupName"], s["logStreamName"], n)
"#,
            &[("REGION", region)],
        )
        .expect("read back");
    out.lines().map(str::to_owned).collect()
}

#[test]
fn the_guide_s_cross_account_steps_deliver_into_the_destination_account_only() {
    if is_child() {
        let options: Vec<(String, String)> =
            serde_json::from_str(&var("OPTIONS")).expect("options");
        let refs: Vec<(&str, &str)> = options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let out = plugin().init(&refs).expect("init");
        // Now, within CloudWatch's acceptance window (moto's clock is the real one here).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as u32;
        let mut chunk = Writer::new();
        for i in 0..RECORDS {
            let log = format!("GET /walkthrough?q={i} HTTP/1.1 200");
            firelens_record(&mut chunk, Format::V2, now, i * 1000, "stdout", &log);
        }
        assert_eq!(out.flush("httpd-firelens-walkthrough", &chunk.buf), FLB_OK);
        assert_eq!(out.exit(), FLB_OK);
        return;
    }
    let guide = repo_file("docs/guide.md");
    let blocks = account_blocks(&guide, "Cross-account delivery, step by step");
    for account in [DESTINATION, SOURCE] {
        assert!(
            blocks.iter().any(|(a, _)| a == account),
            "the guide's steps have no sh block for account {account}"
        );
    }
    let (options, task_role) = task_definition();
    let region = options
        .iter()
        .find(|(k, _)| k == "region")
        .map(|(_, v)| v.clone())
        .expect("region");

    let moto = Moto::start_enforcing_iam(&[SOURCE, DESTINATION]).expect("moto");
    let aws = flb_host::moto::ensure_aws_cli().expect("AWS CLI");
    let path = format!(
        "{}:{}",
        aws.parent().expect("venv bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (account, block) in &blocks {
        let admin = moto
            .admin(account)
            .expect("an administrator for the account");
        let mut cmd = std::process::Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", block])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        flb_host::cloud::task_environment(&mut cmd);
        let out = cmd
            .env("PATH", &path)
            .env("AWS_ACCESS_KEY_ID", &admin.id)
            .env("AWS_SECRET_ACCESS_KEY", &admin.secret)
            .env("AWS_DEFAULT_REGION", &region)
            .env("AWS_ENDPOINT_URL", moto.url())
            .env("AWS_PAGER", "")
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "the guide's step for account {account} failed:\n{block}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The task: its task role's credentials, the ECS agent's metadata endpoint, and the
    // FireLens options as the [OUTPUT] (Name is the plugin's; the endpoints are moto).
    let [key, secret, token] = task_role_credentials(&moto, &task_role);
    let agent = JsonServer::start(vec![(
        "/v4/walkthrough/task",
        vec![(
            200,
            format!(
                r#"{{"Cluster":"arn:aws:ecs:{region}:{SOURCE}:cluster/default","TaskARN":"arn:aws:ecs:{region}:{SOURCE}:task/default/{TASK_ID}","Family":"httpd"}}"#
            ),
        )],
    )]);
    let mut options = options;
    options.push(("endpoint".into(), moto.url()));
    options.push(("sts_endpoint".into(), moto.url()));
    let options = serde_json::to_string(&options).expect("options as JSON");
    let metadata = agent.url("/v4/walkthrough");
    run_child(
        "walkthrough_::the_guide_s_cross_account_steps_deliver_into_the_destination_account_only",
        &[
            ("OPTIONS", options.as_str()),
            ("AWS_ACCESS_KEY_ID", key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
            ("AWS_SESSION_TOKEN", token.as_str()),
            ("ECS_CONTAINER_METADATA_URI_V4", metadata.as_str()),
        ],
    );

    assert_eq!(
        landed(&moto, &region),
        vec![format!("{DESTINATION} /ecs/httpd {TASK_ID} {RECORDS}")],
        "every record in the destination account's /ecs/httpd, nothing anywhere else"
    );
}

#[test]
fn the_blocks_are_found_under_their_account_headings() {
    let guide = "\
## Cross-account delivery, step by step
```sh
echo not under an account
```
### In the destination account (222222222222)
1. Create.
   ```sh
   aws iam create-role \\
     --role-name r
   ```
### In the source account (111111111111)
```json
{}
```
```sh
aws ecs register-task-definition
```
## Next
### In another account (333333333333)
```sh
echo elsewhere
```
";
    assert_eq!(
        account_blocks(guide, "Cross-account delivery, step by step"),
        vec![
            (
                DESTINATION.to_owned(),
                "aws iam create-role \\\n--role-name r\n".to_owned()
            ),
            (
                SOURCE.to_owned(),
                "aws ecs register-task-definition\n".to_owned()
            ),
        ]
    );
}

//! moto with its IAM enforcement on: the administrators exist in their own accounts, and a
//! key moto never issued is refused.

use flb_host::moto::Moto;

const SCRIPT: &str = r#"
import json, os, boto3
url = os.environ["MOTO_URL"]
admins = json.loads(os.environ["MOTO_ADMINS"])
def logs(key, secret):
    return boto3.client("logs", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
for account, (key, secret) in sorted(admins.items()):
    logs(key, secret).create_log_group(logGroupName="/g")
    print(account, logs(key, secret).describe_log_groups()["logGroups"][0]["arn"])
try:
    logs("AKIAUNKNOWN000000000", "nope").create_log_group(logGroupName="/h")
    print("unknown key allowed")
except Exception as e:
    print("unknown key refused:", type(e).__name__)
"#;

#[test]
fn each_account_has_an_administrator_and_unknown_keys_are_refused() {
    let moto = Moto::start_enforcing_iam(&["111111111111", "222222222222"]).expect("moto");
    assert!(moto.admin("111111111111").is_some());
    assert!(moto.admin("333333333333").is_none());
    let out = moto.python(SCRIPT, &[]).expect("script");
    assert!(
        out.contains("111111111111 arn:aws:logs:us-east-1:111111111111:log-group:/g"),
        "{out}"
    );
    assert!(
        out.contains("222222222222 arn:aws:logs:us-east-1:222222222222:log-group:/g"),
        "{out}"
    );
    assert!(out.contains("unknown key refused"), "{out}");
}

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

const UNKNOWN_KEYS: &str = r#"
import json, os, boto3, botocore
url = os.environ["MOTO_URL"]
key, secret = json.loads(os.environ["MOTO_ADMINS"])["123456789012"]
def client(service, k, s):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=k, aws_secret_access_key=s)
iam = client("iam", key, secret)
iam.create_user(UserName="writer")
gone = iam.create_access_key(UserName="writer")["AccessKey"]
iam.delete_access_key(UserName="writer", AccessKeyId=gone["AccessKeyId"])
calls = {
    "logs deleted key": lambda: client("logs", gone["AccessKeyId"], gone["SecretAccessKey"])
        .describe_log_groups(),
    "logs wrong secret": lambda: client("logs", key, "wrong").describe_log_groups(),
    "sts deleted key": lambda: client("sts", gone["AccessKeyId"], gone["SecretAccessKey"])
        .get_caller_identity(),
}
for name, call in calls.items():
    try:
        call()
        print(name, "allowed")
    except botocore.exceptions.ClientError as e:
        print(name, e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
"#;

/// A deleted key and a wrong secret get the codes AWS gives: CloudWatch Logs (JSON) its
/// own, STS (query) the XML ones.
#[test]
fn unknown_keys_get_each_service_s_own_error() {
    let moto = Moto::start_enforcing_iam(&["123456789012"]).expect("moto");
    let out = moto.python(UNKNOWN_KEYS, &[]).expect("script");
    assert!(
        out.contains("logs deleted key UnrecognizedClientException 400"),
        "{out}"
    );
    assert!(
        out.contains("logs wrong secret InvalidSignatureException 400"),
        "{out}"
    );
    assert!(
        out.contains("sts deleted key InvalidClientTokenId 403"),
        "{out}"
    );
}

//! moto with its IAM enforcement on: the administrators exist in their own accounts, a key
//! moto never issued is refused, and CloudWatch Logs calls are authorized against the
//! resource ARNs of their group or stream.

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
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id=admins["111111111111"][0], aws_secret_access_key=admins["111111111111"][1])
iam.create_user(UserName="writer")
iam.put_user_policy(UserName="writer", PolicyName="w", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "logs:CreateLogStream", "Resource": "arn:aws:logs:us-east-1:111111111111:log-group:/g:log-stream:a-*"},
    {"Effect": "Allow", "Action": "logs:PutRetentionPolicy", "Resource": "arn:aws:logs:us-east-1:111111111111:log-group:/g"}]}))
k = iam.create_access_key(UserName="writer")["AccessKey"]
w = logs(k["AccessKeyId"], k["SecretAccessKey"])
for name, call in [
        ("stream a-1", lambda: w.create_log_stream(logGroupName="/g", logStreamName="a-1")),
        ("stream b-1", lambda: w.create_log_stream(logGroupName="/g", logStreamName="b-1")),
        ("retention /g", lambda: w.put_retention_policy(logGroupName="/g", retentionInDays=1)),
        ("retention /h", lambda: w.put_retention_policy(logGroupName="/h", retentionInDays=1))]:
    try:
        call()
        print(name, "allowed")
    except Exception as e:
        print(name, "refused")
try:
    logs("AKIAUNKNOWN000000000", "nope").create_log_group(logGroupName="/h")
    print("unknown key allowed")
except Exception as e:
    print("unknown key refused:", type(e).__name__)
"#;

#[test]
fn keys_actions_and_logs_resources_are_enforced() {
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
    // CloudWatch Logs calls are authorized against their group's or stream's ARN.
    for line in [
        "stream a-1 allowed",
        "stream b-1 refused",
        "retention /g allowed",
        "retention /h refused",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
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

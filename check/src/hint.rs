//! One-line hints for the failures people meet most, keyed by AWS error code or by the
//! plugin's own error text; and notes about options the plugin does not read.

use flb_out_cloudwatch::config::{OPTION_NAMES, OptionError, UNSUPPORTED_OPTIONS};

use crate::aws::Failure;

pub const LIBRARY: &str = "give the plugin library with -e PATH (in the image: /fluent-bit/cloudwatch.so), built for this machine (cargo build --release --lib)";

/// Properties of every output that Fluent Bit handles itself.
const FLUENT_BIT: &[&str] = &[
    "name",
    "match",
    "match_regex",
    "alias",
    "log_level",
    "log_suppress_interval",
    "retry_limit",
    "workers",
];

/// A note for an option the plugin will not read, or `None` for one of its own.
pub fn option_note(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    if UNSUPPORTED_OPTIONS.contains(&key.as_str()) {
        Some(format!(
            "'{key}' is accepted for Fluent Bit's cloudwatch_logs configurations but not supported: it is ignored"
        ))
    } else if OPTION_NAMES.contains(&key.as_str()) {
        None
    } else if FLUENT_BIT.contains(&key.as_str())
        || ["tls", "net.", "storage."]
            .iter()
            .any(|p| key.starts_with(p))
    {
        Some(format!(
            "'{key}' is handled by Fluent Bit itself, not by the plugin: not checked"
        ))
    } else {
        Some(format!(
            "'{key}' is not an option of this plugin: it is ignored (its options: {})",
            OPTION_NAMES.join(", ")
        ))
    }
}

/// For an option Init refused.
pub fn options(error: Option<&OptionError>) -> &'static str {
    match error {
        Some(e) if e.option == "region" => {
            "set -p region=<the log group's region> (or AWS_REGION in the environment)"
        }
        _ => {
            "correct the option named in the line above; the options table of docs/reference.md says what each accepts"
        }
    }
}

/// For base credentials that could not be resolved.
pub fn credentials(failure: &Failure) -> &'static str {
    match failure.code.as_deref() {
        Some("AccessDenied" | "AccessDeniedException") => {
            "the web identity role refused this token: its trust policy must allow the cluster's OIDC provider and service account"
        }
        _ => {
            "no credentials were found: in ECS set the task definition's taskRoleArn; on EKS give the service account an IAM role (IRSA); elsewhere set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        }
    }
}

/// For GetCallerIdentity with the base credentials.
pub fn identity(failure: &Failure, role: bool) -> &'static str {
    match failure.code.as_deref() {
        Some("InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException") => {
            "STS does not know these keys: they are wrong, deleted, or for another partition"
        }
        Some("ExpiredToken" | "ExpiredTokenException") => {
            "the session token has expired: refresh the credentials"
        }
        Some(_) => "STS refused the credentials: the message says why",
        None if role => {
            "STS did not answer: check sts_endpoint, the region, and the network path to STS (a NAT gateway or an STS VPC endpoint)"
        }
        None => {
            "STS did not answer (only this check calls it without role_arn): check the network path to STS, or set sts_endpoint; the send step shows whether CloudWatch Logs is reachable"
        }
    }
}

/// For AssumeRole of `role_arn`.
pub fn assume_role(failure: &Failure, external_id: bool) -> &'static str {
    match failure.code.as_deref() {
        Some("AccessDenied") if external_id => {
            "the role's trust policy must name the source account (or its task role) and require this external_id; the task role needs sts:AssumeRole on the role"
        }
        Some("AccessDenied") => {
            "the role's trust policy must name the source account (or its task role) as principal, and the task role needs sts:AssumeRole on the role: --print-iam prints both"
        }
        Some("RegionDisabledException") => {
            "STS is not activated in this region for the destination account: activate it, or set sts_endpoint to another region's STS"
        }
        Some("ExpiredTokenException" | "ExpiredToken") => {
            "the base credentials' session has expired: refresh them"
        }
        Some(_) => "STS refused AssumeRole: the message says why",
        None if failure.message.starts_with("HTTP 403 ") => {
            "STS refused AssumeRole (HTTP 403, as for AccessDenied): the role's trust policy must allow these credentials, and their policy sts:AssumeRole on the role: --print-iam prints both"
        }
        None if failure.message.starts_with("HTTP ") => "STS refused AssumeRole: see the status",
        None => {
            "STS did not answer: check sts_endpoint, the region, and the network path to STS (a NAT gateway or an STS VPC endpoint)"
        }
    }
}

/// For a test event the plugin could not deliver, from its error line
/// (`Operation to group 'g' stream 's' failed: Code: message (…)`).
pub fn send(cause: &str, auto_create_group: bool) -> Option<String> {
    let fixed = |h: &str| Some(h.to_owned());
    if cause.contains("loading credentials") || cause.contains("no credentials found") {
        fixed(
            "the plugin got no credentials to write with: see the credentials and assume role steps above",
        )
    } else if cause.contains("ResourceNotFoundException") && !auto_create_group {
        fixed(
            "the log group does not exist: create it (in the destination account with role_arn), or set auto_create_group true (needs logs:CreateLogGroup)",
        )
    } else if cause.contains("ResourceNotFoundException") {
        fixed("the log group or stream could not be found even after creating it: check the region")
    } else if cause.contains("AccessDenied") || cause.contains("lacks a permission") {
        // The plugin's line names the permission: "… must allow logs:PutLogEvents on …".
        let permission = cause
            .split_once("must allow ")
            .and_then(|(_, rest)| rest.split_once(' '))
            .map(|(p, _)| p)
            .filter(|p| p.starts_with("logs:"));
        Some(match permission {
            Some(p) => format!(
                "the writing role's policy does not allow {p} on this group and stream: --print-iam prints the policy these options need"
            ),
            None => "the writing role lacks a permission: --print-iam prints the policy these options need".to_owned(),
        })
    } else if cause.contains("ThrottlingException") {
        fixed(
            "CloudWatch Logs throttled the call: Fluent Bit retries the chunk; fewer streams, fewer flushes or a quota increase help",
        )
    } else if cause.contains("UnrecognizedClientException") {
        fixed("CloudWatch Logs does not know these credentials: check the region and the partition")
    } else if cause.contains("dispatch failure") || cause.contains("timeout") {
        fixed(
            "CloudWatch Logs did not answer: check endpoint, the region, and the network path (a NAT gateway or a logs VPC endpoint)",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_name_whose_option_it_is() {
        assert_eq!(option_note("log_group_name"), None);
        assert_eq!(option_note("Role_ARN"), None);
        assert!(option_note("Match").unwrap().contains("Fluent Bit itself"));
        assert!(
            option_note("tls.verify")
                .unwrap()
                .contains("Fluent Bit itself")
        );
        assert_eq!(option_note("log_retention_days"), None);
        assert!(
            option_note("metric_namespace")
                .unwrap()
                .contains("not supported")
        );
        assert!(
            option_note("log_grup_name")
                .unwrap()
                .contains("not an option")
        );
    }

    #[test]
    fn hints_by_code() {
        let denied = Failure {
            code: Some("AccessDenied".into()),
            message: "not authorized".into(),
        };
        assert!(assume_role(&denied, false).contains("trust policy"));
        assert!(assume_role(&denied, true).contains("external_id"));
        let silent = Failure {
            code: None,
            message: "dispatch failure".into(),
        };
        assert!(assume_role(&silent, false).contains("did not answer"));
        let refused = Failure {
            code: None,
            message: "HTTP 403 from STS, with no error code AWS's SDK could read".into(),
        };
        assert!(assume_role(&refused, false).contains("trust policy"));
        assert!(
            send("CreateLogStream to group 'g' stream 's' failed: ResourceNotFoundException: The specified log group does not exist.", false)
                .unwrap()
                .contains("auto_create_group")
        );
        assert_eq!(send("something else", false), None);
        assert!(
            send(
                "PutLogEvents to group '/g' stream 's' failed: AccessDeniedException: no (role r lacks a permission: its policy must allow logs:PutLogEvents on group '/g' stream 's'; the credentials are kept)",
                true
            )
            .unwrap()
            .starts_with("the writing role's policy does not allow logs:PutLogEvents on")
        );
        assert!(
            send("X to group 'g' failed: AccessDeniedException: no", true)
                .unwrap()
                .starts_with("the writing role lacks a permission")
        );
    }
}

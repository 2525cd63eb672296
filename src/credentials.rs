//! AWS configuration and credentials, built once per instance at Init.
//!
//! Base credentials come from `aws-config`'s default chain (environment, shared profile, web
//! identity, ECS container credentials, IMDS). With `role_arn`, an `AssumeRoleProvider` on
//! top of them assumes the role through STS (the region's endpoint, or `sts_endpoint`), with
//! `external_id`; the SDK's identity cache keeps the temporary credentials and refreshes them
//! before they expire. Nothing here touches the network: credentials resolve on first use.
//! Nothing here logs a secret.

use std::time::Duration;

use aws_config::retry::RetryConfig;

use aws_config::{
    BehaviorVersion, Region, SdkConfig, sts::AssumeRoleProvider, timeout::TimeoutConfig,
};
use aws_sdk_cloudwatchlogs::config::SharedCredentialsProvider;

use crate::config::Config;

/// Bounds on one call, so a flush never hangs on a dead connection. (Retries are the
/// plugin's own: see `retry.rs`; the SDK's are off.)
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// STS's limit on a role session name.
const MAX_SESSION_NAME: usize = 64;

/// The SDK configuration every client of this instance is built from.
pub async fn sdk_config(config: &Config) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(ATTEMPT_TIMEOUT)
        .build();
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let Some(role_arn) = &config.role_arn else {
        return base;
    };
    let sts_config = match &config.sts_endpoint {
        Some(url) => base.to_builder().endpoint_url(url).build(),
        None => base.clone(),
    };
    let mut role = AssumeRoleProvider::builder(role_arn)
        .session_name(session_name(&host_name()))
        .configure(&sts_config);
    if let Some(id) = &config.external_id {
        role = role.external_id(id);
    }
    let provider = role.build().await;
    base.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// The CloudWatch Logs client, at `endpoint` when one is set.
pub fn logs_client(sdk: &SdkConfig, config: &Config) -> aws_sdk_cloudwatchlogs::Client {
    let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(sdk);
    if let Some(url) = &config.endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_cloudwatchlogs::Client::from_conf(builder.build())
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// `fluent-bit-cloudwatch-<host>`, cut to STS's 64 characters of `\w+=,.@-`, so that the
/// assumed role's ARN in CloudTrail shows which host wrote.
pub fn session_name(host: &str) -> String {
    let mut name = String::from("fluent-bit-cloudwatch");
    if !host.is_empty() {
        name.push('-');
        name.extend(host.chars().map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        }));
    }
    name.truncate(MAX_SESSION_NAME);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_valid_for_sts() {
        assert_eq!(session_name(""), "fluent-bit-cloudwatch");
        assert_eq!(
            session_name("ip-10-0-0-1.ec2 internal"),
            "fluent-bit-cloudwatch-ip-10-0-0-1.ec2-internal"
        );
        let long = session_name(&"é".repeat(100));
        assert_eq!(long.len(), MAX_SESSION_NAME);
        assert!(long.bytes().all(|b| b.is_ascii()));
    }
}

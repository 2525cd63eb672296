//! Reads back, per account, what landed in moto: the checks of the tests and the demo.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::Credentials;

/// The static keys the tests use as the source account's (task role's) credentials; moto
/// maps unknown keys to its default account.
pub const SOURCE_ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SOURCE_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// moto's default account: the source account of the tests.
pub const SOURCE_ACCOUNT: &str = "123456789012";

/// Gives `cmd` exactly the AWS environment of an ECS task, for a process that runs the
/// plugin: the source account's static keys, no inherited `AWS_*`/`ECS_*` variables, no
/// profile files, and IMDS off — so the SDK's default chain never reaches for a non-loopback
/// address. Callers add what their scenario needs afterwards.
pub fn task_environment(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy().to_ascii_uppercase();
        if name.starts_with("AWS_") || name.starts_with("ECS_") || name == "FLB_LOG_LEVEL" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", SOURCE_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SOURCE_SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
}

/// A log event as CloudWatch stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub timestamp: i64,
    pub message: String,
}

/// A view of one account in moto.
pub struct Account {
    client: Client,
    pub id: String,
    runtime: tokio::runtime::Runtime,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The SDK's hyper 1.x client with rustls on ring, as the plugin builds it (moto is
/// plain HTTP; TLS is never used here).
fn http_client() -> aws_sdk_cloudwatchlogs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

fn logs_client(url: &str, region: &str, creds: Credentials) -> Client {
    let conf = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client())
        .region(Region::new(region.to_owned()))
        .endpoint_url(url)
        .credentials_provider(creds)
        .build();
    Client::from_conf(conf)
}

impl Account {
    /// The source account, with the static keys.
    pub fn source(url: &str, region: &str) -> Account {
        let creds = Credentials::new(SOURCE_ACCESS_KEY, SOURCE_SECRET_KEY, None, None, "static");
        Account {
            client: logs_client(url, region, creds),
            id: SOURCE_ACCOUNT.into(),
            runtime: runtime(),
        }
    }

    /// The account of `role_arn`, through AssumeRole from the source account's keys.
    /// Returns it with the assumed role's ARN (which shows the session name).
    pub fn assume(url: &str, region: &str, role_arn: &str) -> Result<(Account, String), String> {
        let rt = runtime();
        let (creds, arn) = rt.block_on(async {
            let conf = aws_sdk_sts::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .http_client(http_client())
                .region(Region::new(region.to_owned()))
                .endpoint_url(url)
                .credentials_provider(Credentials::new(
                    SOURCE_ACCESS_KEY,
                    SOURCE_SECRET_KEY,
                    None,
                    None,
                    "static",
                ))
                .build();
            let out = aws_sdk_sts::Client::from_conf(conf)
                .assume_role()
                .role_arn(role_arn)
                .role_session_name("flb-host-check")
                .send()
                .await
                .map_err(|e| aws_sdk_sts::error::DisplayErrorContext(e).to_string())?;
            let c = out.credentials.ok_or("no credentials")?;
            let arn = out.assumed_role_user.map(|u| u.arn).unwrap_or_default();
            Ok::<_, String>((
                Credentials::new(
                    c.access_key_id,
                    c.secret_access_key,
                    Some(c.session_token),
                    None,
                    "assumed",
                ),
                arn,
            ))
        })?;
        let id = role_arn.split(':').nth(4).unwrap_or_default().to_owned();
        Ok((
            Account {
                client: logs_client(url, region, creds),
                id,
                runtime: rt,
            },
            arn,
        ))
    }

    /// Names of every log group in this account and region.
    pub fn groups(&self) -> Vec<String> {
        self.runtime.block_on(async {
            let mut names = Vec::new();
            let mut pages = self.client.describe_log_groups().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.expect("DescribeLogGroups");
                names.extend(
                    page.log_groups()
                        .iter()
                        .filter_map(|g| g.log_group_name().map(String::from)),
                );
            }
            names
        })
    }

    /// Creates a group (as an operator would, before the plugin runs).
    pub fn create_group(&self, name: &str) {
        self.runtime
            .block_on(self.client.create_log_group().log_group_name(name).send())
            .expect("CreateLogGroup");
    }

    /// A group's retention in days and KMS key id, as DescribeLogGroups shows them.
    pub fn group_details(&self, name: &str) -> (Option<i32>, Option<String>) {
        self.runtime.block_on(async {
            let out = self
                .client
                .describe_log_groups()
                .log_group_name_prefix(name)
                .send()
                .await
                .expect("DescribeLogGroups");
            out.log_groups()
                .iter()
                .find(|g| g.log_group_name() == Some(name))
                .map(|g| (g.retention_in_days(), g.kms_key_id().map(String::from)))
                .unwrap_or_default()
        })
    }

    /// A group's tags.
    #[allow(deprecated)] // ListTagsLogGroup: the call moto answers for tags given at creation.
    pub fn group_tags(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        self.runtime.block_on(async {
            let out = self
                .client
                .list_tags_log_group()
                .log_group_name(name)
                .send()
                .await
                .expect("ListTagsLogGroup");
            out.tags()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect()
        })
    }

    /// Names of the streams of `group`.
    pub fn streams(&self, group: &str) -> Vec<String> {
        self.runtime.block_on(async {
            let out = self
                .client
                .describe_log_streams()
                .log_group_name(group)
                .send()
                .await
                .expect("DescribeLogStreams");
            out.log_streams()
                .iter()
                .filter_map(|s| s.log_stream_name().map(String::from))
                .collect()
        })
    }

    /// Every event of a stream, oldest first; none if the stream does not exist.
    pub fn events(&self, group: &str, stream: &str) -> Vec<StoredEvent> {
        self.runtime.block_on(async {
            let mut events = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .get_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await;
                let out = match out {
                    Ok(out) => out,
                    // Never created: nothing was sent there.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_resource_not_found_exception()) =>
                    {
                        return events;
                    }
                    Err(e) => panic!("GetLogEvents: {e:?}"),
                };
                let page: Vec<_> = out
                    .events()
                    .iter()
                    .map(|e| StoredEvent {
                        timestamp: e.timestamp.unwrap_or_default(),
                        message: e.message.clone().unwrap_or_default(),
                    })
                    .collect();
                let next = out.next_forward_token().map(String::from);
                let done = page.is_empty() || next == token;
                events.extend(page);
                if done {
                    return events;
                }
                token = next;
            }
        })
    }
}

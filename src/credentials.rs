//! AWS configuration and credentials, built once per instance at Init (and again when a
//! credential error asks for fresh ones).
//!
//! Base credentials come from `aws-config`'s default chain (environment, shared profile —
//! `profile` picks one —, web identity, ECS container credentials, IMDS), or from
//! `credentials_endpoint`, an HTTP endpoint read without any proxy. With `role_arn`, an
//! `AssumeRoleProvider` on top of them assumes the role through STS (the region's endpoint,
//! or `sts_endpoint`), with `external_id`, `role_session_name` and `role_duration_seconds`;
//! the SDK's identity cache keeps the temporary credentials and refreshes them before they
//! expire. STS and CloudWatch Logs calls honour `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (the
//! SDK's client reads them). Nothing here touches the network: credentials resolve on first
//! use. Nothing here logs a secret.

use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::{
    AppName, BehaviorVersion, Region, SdkConfig, sts::AssumeRoleProvider, timeout::TimeoutConfig,
};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use aws_sdk_cloudwatchlogs::config::SharedCredentialsProvider;
use aws_sdk_cloudwatchlogs::config::SharedHttpClient;
use aws_sdk_cloudwatchlogs::primitives::{DateTime, DateTimeFormat};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{ConnectorBuilder, tls};

use crate::config::Config;
use crate::http;

/// Bounds on one call, so a flush never hangs on a dead connection. (Retries are the
/// plugin's own: see `retry.rs`; the SDK's are off.)
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `credentials_endpoint` may take to answer.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(2);

/// STS's limit on a role session name.
const MAX_SESSION_NAME: usize = 64;

/// The SDK configuration every client of this instance is built from.
pub async fn sdk_config(config: &Config) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(ATTEMPT_TIMEOUT)
        .build();
    let creds = &config.credentials;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new(config.region.clone()))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::disabled());
    if let Some(profile) = &creds.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &creds.credentials_endpoint {
        loader = loader.credentials_provider(EndpointCredentials {
            url: url.clone(),
            authorization: None,
        });
    } else if creds.profile.is_none()
        && let Some(endpoint) = container_credentials()
    {
        // What the default chain would use in this task, read here so that it is never
        // proxied (the SDK's own reader honours HTTP_PROXY).
        loader = loader.credentials_provider(endpoint);
    }
    if let Some(name) = config
        .extra_user_agent
        .as_ref()
        .and_then(|ua| AppName::new(ua.clone()).ok())
    {
        loader = loader.app_name(name);
    }
    let base = loader.load().await;
    let Some(role_arn) = &config.role_arn else {
        return base;
    };
    let sts_config = match &config.sts_endpoint {
        Some(url) => base.to_builder().endpoint_url(url).build(),
        None => base.clone(),
    };
    let name = creds
        .role_session_name
        .clone()
        .unwrap_or_else(|| session_name(&host_name()));
    let mut role = AssumeRoleProvider::builder(role_arn)
        .session_name(name)
        .session_length(creds.role_duration)
        .configure(&sts_config);
    if let Some(id) = &config.external_id {
        role = role.external_id(id);
    }
    let provider = role.build().await;
    base.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// The HTTPS client of every call: the SDK's own default (hyper 1.x, rustls, the system's
/// roots, `HTTP(S)_PROXY`/`NO_PROXY` from the environment, the SDK's timeouts), with ring
/// as rustls' crypto instead of aws-lc. aws-lc seeds its random generator from CPU jitter
/// on first use, ~30 ms of CPU in every process; ring reads the OS's.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The CloudWatch Logs client, at `endpoint` when one is set.
pub fn logs_client(sdk: &SdkConfig, config: &Config) -> aws_sdk_cloudwatchlogs::Client {
    let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(sdk);
    if let Some(url) = &config.endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_cloudwatchlogs::Client::from_conf(builder.build())
}

/// `credentials_endpoint`: GET → `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}`,
/// the container-credentials format the Go plugin reads. Never through a proxy.
#[derive(Debug)]
struct EndpointCredentials {
    url: String,
    /// The `Authorization` header, or the file it is read from (read at each fetch).
    authorization: Option<Authorization>,
}

#[derive(Debug)]
enum Authorization {
    Token(String),
    File(String),
}

/// The ECS (or EKS Pod Identity) container-credentials endpoint this task's default chain
/// would read: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on 169.254.170.2), else
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` on a loopback or ECS/EKS link-local host, with
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`. `None` when sources the chain tries first
/// (environment keys, a profile, web identity) are set.
fn container_credentials() -> Option<EndpointCredentials> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ]
    .iter()
    .any(|k| var(k).is_some())
    {
        return None;
    }
    if let Some(relative) = var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        return Some(EndpointCredentials {
            url: format!("http://169.254.170.2{relative}"),
            authorization: None,
        });
    }
    let full = var("AWS_CONTAINER_CREDENTIALS_FULL_URI")?;
    let host = full
        .strip_prefix("http://")?
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let allowed = host == "localhost"
        || host.starts_with("127.")
        || host == "169.254.170.2"
        || host == "169.254.170.23";
    if !allowed {
        return None; // Left to the SDK's provider, which knows the other cases.
    }
    let authorization = var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        .map(Authorization::File)
        .or_else(|| var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Authorization::Token));
    Some(EndpointCredentials {
        url: full,
        authorization,
    })
}

impl ProvideCredentials for EndpointCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let url = self.url.clone();
        let authorization = match &self.authorization {
            None => Ok(None),
            Some(Authorization::Token(t)) => Ok(Some(t.clone())),
            Some(Authorization::File(path)) => std::fs::read_to_string(path)
                .map(|t| Some(t.trim().to_owned()))
                .map_err(|e| {
                    CredentialsError::provider_error(format!(
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}: {e}"
                    ))
                }),
        };
        provider::future::ProvideCredentials::new(async move {
            let authorization = authorization?;
            tokio::task::spawn_blocking(move || fetch_endpoint(&url, authorization.as_deref()))
                .await
                .map_err(CredentialsError::provider_error)?
        })
    }
}

fn fetch_endpoint(url: &str, authorization: Option<&str>) -> provider::Result {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    let (status, body) =
        http::get(url, &headers, ENDPOINT_TIMEOUT).map_err(CredentialsError::provider_error)?;
    if status != 200 {
        return Err(CredentialsError::provider_error(format!(
            "credentials endpoint {url} answered HTTP {status}"
        )));
    }
    parse_endpoint_credentials(&body)
        .map_err(|e| CredentialsError::provider_error(format!("credentials endpoint {url}: {e}")))
}

/// The endpoint's JSON → credentials (the secret never leaves this function but in them).
pub fn parse_endpoint_credentials(body: &str) -> Result<Credentials, String> {
    let doc: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let field = |k: &str| {
        doc[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the answer has no {k}"))
    };
    let expiry = match doc["Expiration"].as_str() {
        Some(t) => Some(
            DateTime::from_str(t, DateTimeFormat::DateTime)
                .ok()
                .and_then(|d| SystemTime::try_from(d).ok())
                .ok_or_else(|| format!("Expiration {t:?} is not an RFC 3339 time"))?,
        ),
        None => None,
    };
    Ok(Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        doc["Token"].as_str().map(str::to_owned),
        expiry,
        "credentials_endpoint",
    ))
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
    fn reads_endpoint_credentials() {
        let c = parse_endpoint_credentials(
            r#"{"AccessKeyId":"AKID","SecretAccessKey":"S","Token":"T","Expiration":"2030-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        assert_eq!(c.access_key_id(), "AKID");
        assert_eq!(c.session_token(), Some("T"));
        assert!(c.expiry().is_some());
        assert!(parse_endpoint_credentials(r#"{"AccessKeyId":"A"}"#).is_err());
        assert!(
            parse_endpoint_credentials(
                r#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"soon"}"#
            )
            .is_err()
        );
    }

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

//! AWS configuration and credentials, built once per instance at Init (and again when a
//! credential error asks for fresh ones: [`crate::fresh`]).
//!
//! Base credentials come from `aws-config`'s default chain (environment, shared profile —
//! `profile` picks one —, web identity, ECS container credentials, IMDS), or from
//! `credentials_endpoint`, an HTTP(S) endpoint read without any proxy. With `role_arn`, an
//! `AssumeRoleProvider` on top of them assumes the role through STS (the region's endpoint,
//! or `sts_endpoint`), with `external_id`, `role_session_name` and `role_duration_seconds`;
//! the SDK's identity cache keeps the temporary credentials and refreshes them before they
//! expire. STS and CloudWatch Logs calls honour `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (the
//! SDK's client reads them). Nothing here touches the network: credentials resolve on first
//! use.
//!
//! Fetching is paced ([`Pace`]): after a failed fetch the next one waits 5 s, then 10, 20,
//! 40 and at most 60 s, however many calls need credentials meanwhile, so a fleet whose
//! trust policy is broken does not storm STS. A fetch has its own time limit (the identity
//! cache's 5 s) and its own error.
//!
//! Nothing here logs a secret: container-credentials URLs (their path is a bearer
//! capability) are shown without their path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

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
use crate::log::Logger;

/// A connection that cannot be made in this time is dead (nothing was sent: safe to try
/// again). An answer is awaited until the flush's deadline instead (see `deliver.rs`): slow
/// is not dead. (Retries are the plugin's own: see `retry.rs`; the SDK's are off.)
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// STS's answer to AssumeRole, within the identity cache's own 5-second limit on a fetch.
const STS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `credentials_endpoint` may take to answer.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(2);

/// STS's limit on a role session name.
const MAX_SESSION_NAME: usize = 64;

/// The SDK configuration every client of this instance is built from; credentials are
/// fetched no more often than `pace` allows.
pub async fn sdk_config(config: &Config, pace: Pace) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
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
            only: None,
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
        let Some(provider) = base.credentials_provider() else {
            return base;
        };
        return base
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(Paced { provider, pace }))
            .build();
    };
    let mut sts_config = base.to_builder().timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_timeout(STS_TIMEOUT)
            .build(),
    );
    if let Some(url) = &config.sts_endpoint {
        sts_config = sts_config.endpoint_url(url);
    }
    let sts_config = sts_config.build();
    let name = creds
        .role_session_name
        .clone()
        .unwrap_or_else(|| session_name(&host_name()));
    let assume = async |length: Duration| {
        let mut role = AssumeRoleProvider::builder(role_arn)
            .session_name(name.clone())
            .session_length(length)
            .configure(&sts_config);
        if let Some(id) = &config.external_id {
            role = role.external_id(id);
        }
        SharedCredentialsProvider::new(role.build().await)
    };
    let asked = creds.role_duration;
    let hour = match asked > ONE_HOUR {
        true => Some(assume(ONE_HOUR).await),
        false => None,
    };
    let role = Role {
        asked: assume(asked).await,
        hour,
        seconds: asked.as_secs(),
        use_hour: AtomicBool::new(false),
        pace: pace.clone(),
    };
    let provider = SharedCredentialsProvider::new(role);
    base.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Paced { provider, pace }))
        .build()
}

/// The longest session STS grants a role assumed with credentials of another role (role
/// chaining, as in an ECS task whose own credentials come from its task role).
const ONE_HOUR: Duration = Duration::from_secs(3600);

/// The assumed role, with the session length asked (`role_duration_seconds`); when STS
/// refuses that length (`ValidationError`: role chaining is capped at one hour, and a
/// role's `MaxSessionDuration` may be lower than asked), one hour from then on, with one
/// warning.
#[derive(Debug)]
struct Role {
    asked: SharedCredentialsProvider,
    hour: Option<SharedCredentialsProvider>,
    seconds: u64,
    use_hour: AtomicBool,
    pace: Pace,
}

impl ProvideCredentials for Role {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let Some(hour) = &self.hour else {
                return self.asked.provide_credentials().await;
            };
            if self.use_hour.load(Relaxed) {
                return hour.provide_credentials().await;
            }
            match self.asked.provide_credentials().await {
                Err(e) if sts_code(&e) == Some("ValidationError") => {
                    self.use_hour.store(true, Relaxed);
                    if let Some(log) = &self.pace.log {
                        log.warn(format_args!(
                            "STS refused role_duration_seconds {} ({}); assuming the role for 3600 s instead (role chaining, as with an ECS task role, is capped at one hour, and the role's MaxSessionDuration may be lower)",
                            self.seconds,
                            sts_message(&e).unwrap_or("ValidationError")
                        ));
                    }
                    hour.provide_credentials().await
                }
                other => other,
            }
        })
    }
}

pub(crate) type AssumeRoleFailure = aws_sdk_sts::error::SdkError<
    aws_sdk_sts::operation::assume_role::AssumeRoleError,
    aws_sdk_sts::config::http::HttpResponse,
>;

/// STS's answer to a refused AssumeRole, among the causes of `e`.
fn sts_failure(e: &CredentialsError) -> Option<&AssumeRoleFailure> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(failure) = cause.downcast_ref::<AssumeRoleFailure>() {
            return Some(failure);
        }
        source = cause.source();
    }
    None
}

fn sts_code(e: &CredentialsError) -> Option<&str> {
    use aws_sdk_sts::error::ProvideErrorMetadata;
    sts_failure(e)?.code()
}

fn sts_message(e: &CredentialsError) -> Option<&str> {
    use aws_sdk_sts::error::ProvideErrorMetadata;
    sts_failure(e)?.message()
}

/// When credentials may be fetched next: shared by every client an instance builds, so
/// rebuilding a client does not reset it. Also where credential warnings go.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    state: Arc<Mutex<PaceState>>,
    log: Option<Logger>,
}

#[derive(Debug, Default)]
struct PaceState {
    /// Failed fetches in a row.
    failures: u32,
    /// No fetch before then; the last failure, said again meanwhile.
    not_before: Option<(Instant, String)>,
}

/// The first wait after a failed fetch, and the longest.
const FIRST_PAUSE: Duration = Duration::from_secs(5);
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

impl Pace {
    /// A pace whose warnings go to `log`.
    pub fn new(log: Logger) -> Self {
        Pace {
            state: Arc::default(),
            log: Some(log),
        }
    }

    /// The next fetch may go at once (the failures in a row still count): for a re-read
    /// of the source, which its caller paces ([`crate::fresh`]).
    pub fn lift(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.not_before = None;
    }

    /// The last failure, if fetching again must wait.
    fn refused(&self, now: Instant) -> Option<(Duration, String)> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &state.not_before {
            Some((t, why)) if now < *t => Some((*t - now, why.clone())),
            _ => None,
        }
    }

    fn record(&self, now: Instant, failure: Option<String>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match failure {
            None => *state = PaceState::default(),
            Some(why) => {
                let pause = FIRST_PAUSE
                    .saturating_mul(1 << state.failures.min(8))
                    .min(MAX_PAUSE);
                state.failures += 1;
                state.not_before = Some((now + pause, why));
            }
        }
    }
}

/// A credentials provider fetched no more often than its [`Pace`] allows.
#[derive(Debug)]
struct Paced {
    provider: SharedCredentialsProvider,
    pace: Pace,
}

impl ProvideCredentials for Paced {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            if let Some((wait, why)) = self.pace.refused(Instant::now()) {
                return Err(CredentialsError::provider_error(format!(
                    "{why} (not fetched again for another {} s)",
                    wait.as_secs().max(1)
                )));
            }
            let result = self.provider.provide_credentials().await;
            let failure = result.as_ref().err().map(|e| crate::log::causes(e));
            self.pace.record(Instant::now(), failure);
            result
        })
    }
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
    /// The addresses the URL's host may resolve to, when not any.
    only: Option<http::Only>,
}

#[derive(Debug)]
enum Authorization {
    Token(String),
    File(String),
}

/// The task's container-credentials variables.
const RELATIVE_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
const FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";

/// The ECS (or EKS Pod Identity) container-credentials endpoint this task's default chain
/// would read: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on 169.254.170.2), else
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`.
/// Every FULL_URI is read here, not by the SDK (whose errors quote it whole), an `http://`
/// one only at the addresses the AWS SDKs allow ([`CONTAINER_ADDRESSES`]). `None` when
/// sources the chain tries first (environment keys, a profile, web identity) are set.
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
    if let Some(relative) = var(RELATIVE_URI) {
        return Some(EndpointCredentials {
            url: format!("http://169.254.170.2{relative}"),
            authorization: None,
            only: None,
        });
    }
    let full = var(FULL_URI)?;
    let https = full
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    let authorization = var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        .map(Authorization::File)
        .or_else(|| var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Authorization::Token));
    Some(EndpointCredentials {
        url: full,
        authorization,
        only: (!https).then_some(CONTAINER_ADDRESSES),
    })
}

/// Where a FULL_URI that is not `https://` may point, as in the AWS SDKs (aws-config's ECS
/// provider): its host resolves, and only to loopback addresses, ECS's 169.254.170.2, or EKS
/// Pod Identity's 169.254.170.23 or fd00:ec2::23.
const CONTAINER_ADDRESSES: http::Only = http::Only {
    allowed: container_address,
    rule: "an http:// AWS_CONTAINER_CREDENTIALS_FULL_URI must point at a loopback address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23, as in the AWS SDKs (an https:// one may point anywhere)",
};

fn container_address(ip: IpAddr) -> bool {
    const ALLOWED: [IpAddr; 3] = [
        IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
    ];
    ip.is_loopback() || ALLOWED.contains(&ip)
}

impl ProvideCredentials for EndpointCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let url = self.url.clone();
        let only = self.only;
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
            tokio::task::spawn_blocking(move || {
                fetch_endpoint(&url, authorization.as_deref(), only)
            })
            .await
            .map_err(CredentialsError::provider_error)?
        })
    }
}

fn fetch_endpoint(
    url: &str,
    authorization: Option<&str>,
    only: Option<http::Only>,
) -> provider::Result {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    let shown = redact(url);
    let (status, body) = http::get_if(url, &headers, ENDPOINT_TIMEOUT, only).map_err(|e| {
        CredentialsError::provider_error(format!("credentials endpoint {shown}: {e}"))
    })?;
    if status != 200 {
        return Err(CredentialsError::provider_error(format!(
            "credentials endpoint {shown} answered HTTP {status}"
        )));
    }
    parse_endpoint_credentials(&body)
        .map_err(|e| CredentialsError::provider_error(format!("credentials endpoint {shown}: {e}")))
}

/// A URL as it may be logged: scheme and host only. The path of a container-credentials
/// URL (`/v2/credentials/<id>`) is a bearer capability, and a query may hold a token.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    // user:password@ in the authority is a secret too.
    let host = authority.rsplit('@').next().unwrap_or_default();
    let hidden = if rest.len() > authority.len() {
        "/…"
    } else {
        ""
    };
    if scheme.is_empty() {
        format!("{host}{hidden}")
    } else {
        format!("{scheme}://{host}{hidden}")
    }
}

/// `text` with the task's container-credentials URLs (their paths are bearer capabilities)
/// [`redact`]ed: for errors that did not come from this module's reader (the SDK's default
/// chain, used with a profile or environment keys, reads `AWS_CONTAINER_CREDENTIALS_FULL_URI`
/// itself and quotes it whole in its errors).
pub fn scrub(mut text: String) -> String {
    for name in [FULL_URI, RELATIVE_URI] {
        let Ok(url) = std::env::var(name) else {
            continue;
        };
        text = scrub_url(text, &url);
    }
    text
}

/// `text` with `url`, and its path and query wherever they appear alone, redacted.
fn scrub_url(mut text: String, url: &str) -> String {
    if url.is_empty() {
        return text;
    }
    if text.contains(url) {
        text = text.replace(url, &redact(url));
    }
    // The path and query (a RELATIVE_URI is nothing else; the SDK may print a URI's parts).
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = if url.contains("://") {
        after_scheme
            .find(['/', '?', '#', '\\'])
            .map(|i| &after_scheme[i..])
    } else {
        Some(url)
    };
    // (Not when the redacted URL itself holds it, as `http://h/…` holds `/h`.)
    if let Some(path) = path.filter(|p| p.len() > 1)
        && text.contains(path)
        && !redact(url).contains(path)
    {
        text = text.replace(path, "/…");
    }
    text
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

    /// Regression (issue 13, defect 9): no credentials URL path in what may be logged.
    #[test]
    fn redacts_credential_urls() {
        assert_eq!(
            redact("http://169.254.170.2/v2/credentials/0a1b2c3d-secret"),
            "http://169.254.170.2/…"
        );
        assert_eq!(
            redact("http://u:pw@127.0.0.1:9/x?token=t"),
            "http://127.0.0.1:9/…"
        );
        assert_eq!(redact("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(redact(r"http:\\h\v2\credentials\x"), "http:/…");
        assert_eq!(redact("htps://h/v2/credentials/x"), "htps://h/…");
        let e = fetch_endpoint(
            "http://127.0.0.1:1/v2/credentials/the-secret-id",
            None,
            None,
        )
        .unwrap_err();
        let text = format!(
            "{e}: {:?}",
            std::error::Error::source(&e).map(|s| s.to_string())
        );
        assert!(!text.contains("the-secret-id"), "{text}");
    }

    /// Regression (issue 27, item 3): an http:// FULL_URI is held to the AWS SDKs' rule on
    /// the addresses its host resolves to, not to a prefix of its text.
    #[test]
    fn full_uri_addresses_follow_the_sdks_rule() {
        for ok in [
            "127.0.0.1",
            "127.9.8.7",
            "::1",
            "169.254.170.2",
            "169.254.170.23",
            "fd00:ec2::23",
        ] {
            assert!(container_address(ok.parse().unwrap()), "{ok}");
        }
        for refused in [
            "93.184.216.34",
            "10.0.0.1",
            "169.254.170.3",
            "169.254.169.254",
            "fd00:ec2::2",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!container_address(refused.parse().unwrap()), "{refused}");
        }
    }

    /// A name that merely starts like a loopback address is resolved (here it cannot be:
    /// `.invalid` never resolves) and refused; nothing is sent, and the error shows the URL
    /// without its path. A name that resolves to loopback is read.
    #[test]
    fn full_uri_hosts_are_resolved_before_anything_is_sent() {
        let e = fetch_endpoint(
            "http://127.0.0.1.invalid:9/v2/credentials/full-uri-secret",
            Some("task-auth-token"),
            Some(CONTAINER_ADDRESSES),
        )
        .unwrap_err();
        let text = crate::log::causes(&e);
        assert!(
            text.contains("credentials endpoint http://127.0.0.1.invalid:9/…: cannot resolve 127.0.0.1.invalid"),
            "{text}"
        );
        assert!(text.contains("must point at a loopback address"), "{text}");
        assert!(!text.contains("full-uri-secret"), "{text}");
        let server = flb_host::fake::JsonServer::start(vec![(
            "/v1/credentials",
            vec![(
                200,
                r#"{"AccessKeyId":"AKID","SecretAccessKey":"S","Token":"T"}"#.into(),
            )],
        )]);
        let url = server
            .url("/v1/credentials")
            .replace("127.0.0.1", "localhost");
        let c = fetch_endpoint(&url, None, Some(CONTAINER_ADDRESSES)).expect("localhost");
        assert_eq!(c.access_key_id(), "AKID");
    }

    /// Regression (issue 27, item 4): what the SDK says about the task's credentials URL
    /// (it quotes a FULL_URI whole) reaches a log line without the URL's path.
    #[test]
    fn scrubs_container_credential_urls_from_errors() {
        let full = "https://creds.example.com:8443/v1/full-uri-secret?token=t";
        assert_eq!(
            scrub_url(
                format!(
                    "invalid full URI for ECS provider (URI did not refer to an allowed IP address): {full}"
                ),
                full
            ),
            "invalid full URI for ECS provider (URI did not refer to an allowed IP address): https://creds.example.com:8443/…"
        );
        assert_eq!(
            scrub_url("GET /v1/full-uri-secret?token=t failed".into(), full),
            "GET /… failed"
        );
        let relative = "/v2/credentials/0a1b2c3d";
        assert_eq!(
            scrub_url(format!("http://169.254.170.2{relative}: refused"), relative),
            "http://169.254.170.2/…: refused"
        );
        assert_eq!(scrub_url("nothing here".into(), full), "nothing here");
        assert_eq!(
            scrub_url("http://h/h: x".into(), "http://h/h"),
            "http://h/…: x"
        );
    }

    #[test]
    fn paces_fetches_after_failures() {
        let pace = Pace::default();
        let t0 = Instant::now();
        assert!(pace.refused(t0).is_none());
        pace.record(t0, Some("refused".into()));
        let (wait, why) = pace.refused(t0).unwrap();
        assert_eq!((wait, why.as_str()), (FIRST_PAUSE, "refused"));
        assert!(pace.refused(t0 + FIRST_PAUSE).is_none());
        for _ in 0..10 {
            pace.record(t0, Some("refused".into()));
        }
        assert_eq!(pace.refused(t0).unwrap().0, MAX_PAUSE);
        pace.record(t0, None);
        assert!(pace.refused(t0).is_none(), "a success resets the pace");
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

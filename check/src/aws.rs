//! The credential steps, built with the plugin's own code: the same [`Config`], the same
//! [`credentials::sdk_config`] (default chain, region, timeouts, `sts_endpoint`,
//! `external_id`, session name), so the check resolves exactly what the plugin will. Errors
//! are read through AWS's error metadata (code and message); no secret is ever shown.

use std::error::Error;
use std::fmt;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use flb_out_cloudwatch::config::Config;
use flb_out_cloudwatch::credentials;
use flb_out_cloudwatch::log::causes;

/// An AWS failure: the service's error code and message when it answered, else the chain
/// of causes (connection refused, timeout, no credentials…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Who a set of credentials belongs to (STS GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub arn: String,
    pub account: String,
}

/// The SDK configuration the plugin would build without `role_arn`: its base credentials.
pub async fn base_config(config: &Config) -> SdkConfig {
    let mut base = config.clone();
    base.role_arn = None;
    base.external_id = None;
    credentials::sdk_config(&base, credentials::Pace::default()).await
}

/// The SDK configuration the plugin builds: with `role_arn`, the assumed role's.
pub async fn plugin_config(config: &Config) -> SdkConfig {
    credentials::sdk_config(config, credentials::Pace::default()).await
}

/// Resolves the credentials of `sdk` once (with `role_arn`, this is the AssumeRole call)
/// and says where they came from.
pub async fn resolve(sdk: &SdkConfig) -> Result<&'static str, Failure> {
    let provider = sdk.credentials_provider().ok_or_else(|| Failure {
        code: None,
        message: "no credential provider is configured".into(),
    })?;
    match provider.provide_credentials().await {
        Ok(creds) => Ok(source(&creds)),
        Err(e) => Err(failure(&e)),
    }
}

/// GetCallerIdentity with the credentials of `sdk`, at `sts_endpoint` when one is set.
pub async fn identity(sdk: &SdkConfig, config: &Config) -> Result<Identity, Failure> {
    let mut builder = aws_sdk_sts::config::Builder::from(sdk);
    if let Some(url) = &config.sts_endpoint {
        builder = builder.endpoint_url(url);
    }
    let client = aws_sdk_sts::Client::from_conf(builder.build());
    match client.get_caller_identity().send().await {
        Ok(out) => Ok(Identity {
            arn: out.arn.unwrap_or_default(),
            account: out.account.unwrap_or_default(),
        }),
        Err(e) => Err(match e.code() {
            Some(code) => Failure {
                code: Some(code.to_owned()),
                message: e.message().unwrap_or("(no message)").to_owned(),
            },
            None => Failure {
                code: None,
                message: causes(&e),
            },
        }),
    }
}

/// Where the default chain found credentials, from the features the SDK records on them.
fn source(creds: &Credentials) -> &'static str {
    use AwsCredentialFeature::*;
    let features = creds.get_property::<Vec<AwsCredentialFeature>>();
    for feature in features.into_iter().flatten() {
        let name = match feature {
            CredentialsEnvVars => "environment variables (AWS_ACCESS_KEY_ID)",
            CredentialsEnvVarsStsWebIdToken
            | CredentialsStsAssumeRoleWebId
            | CredentialsProfileStsWebIdToken => {
                "a web identity token (EKS IRSA: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)"
            }
            CredentialsHttp => {
                "the container credentials endpoint (ECS task role, EKS Pod Identity)"
            }
            CredentialsImds => "EC2 instance metadata (the instance's role)",
            CredentialsProfile
            | CredentialsProfileSourceProfile
            | CredentialsProfileNamedProvider => "a shared profile (AWS_PROFILE, ~/.aws)",
            CredentialsSso | CredentialsProfileSso => "AWS IAM Identity Center (SSO)",
            CredentialsProcess | CredentialsProfileProcess => "a credential_process",
            CredentialsStsAssumeRole => "AssumeRole",
            _ => continue,
        };
        return name;
    }
    "the plugin's credential provider"
}

/// A credentials error as code + message: AssumeRole's own error when STS answered. An
/// answer whose body carries no code (a proxy's page, or a mock's) is still an answer: its
/// HTTP status leads the message.
fn failure(err: &(dyn Error + 'static)) -> Failure {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(sts) = e.downcast_ref::<AssumeRoleError>()
            && let Some(code) = sts.code()
        {
            return Failure {
                code: Some(code.to_owned()),
                message: sts.message().unwrap_or("(no message)").to_owned(),
            };
        }
        if let Some(SdkError::ServiceError(answer)) =
            e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>()
            && answer.err().code().is_none()
        {
            return Failure {
                code: None,
                message: format!(
                    "HTTP {} from STS, with no error code AWS's SDK could read",
                    answer.raw().status().as_u16()
                ),
            };
        }
        cause = e.source();
    }
    Failure {
        code: None,
        message: causes(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_named_from_features() {
        let mut creds = Credentials::new("AKID", "secret", None, None, "test");
        assert_eq!(source(&creds), "the plugin's credential provider");
        creds
            .get_property_mut_or_default::<Vec<AwsCredentialFeature>>()
            .push(AwsCredentialFeature::CredentialsHttp);
        assert!(source(&creds).contains("ECS task role"));
    }

    #[test]
    fn failures_show_code_and_message() {
        let f = Failure {
            code: Some("AccessDenied".into()),
            message: "no".into(),
        };
        assert_eq!(f.to_string(), "AccessDenied: no");
        let plain = std::io::Error::other("connection refused");
        assert_eq!(failure(&plain).code, None);
        assert!(failure(&plain).message.contains("connection refused"));
    }
}

//! Credentials read afresh from their source after AWS refused the ones in use (a key that
//! is unknown or deleted, a wrong secret, an expired token): a key rotated in a shared
//! credentials file or a profile, or a new answer of `credential_process`, is picked up
//! without a restart. [`crate::deliver`] asks for it at most once a minute per instance.
//!
//! The SDK's identity cache keeps static keys for ever, so nothing else ever reads the
//! source again. Here the whole configuration is built anew (the profile files parsed again,
//! `credential_process` run again, the role assumed again with `role_arn`), and its
//! credentials are fetched *before* they replace the ones in use: when the source cannot give
//! any — a credentials file that became unreadable or malformed, a `credential_process` that
//! fails — the client with the last good credentials is kept, and the reason names the file,
//! never its contents.
//!
//! With `role_arn`, the base credentials are what STS is given to assume the role: STS
//! refusing them ([`sts_refused_base`]) asks for a re-read as CloudWatch refusing a key does.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials};
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::SharedCredentialsProvider;
use aws_types::os_shim_internal::{Env, Fs};

use crate::config::Config;
use crate::credentials::{self, AssumeRoleFailure, Pace};
use crate::retry::ErrorKind;

/// How long the fresh credentials may take (the SDK's identity cache gives a fetch as long).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A client whose credentials were read afresh from their source and fetched once, or why
/// there is none (one line, naming the file at fault when a profile file is).
pub async fn client(config: &Config, pace: &Pace) -> Result<Client, String> {
    // A re-read is paced by its caller (once a minute); the fetch pace (after a failure,
    // 5 s and longer) must not refuse it.
    pace.lift();
    let sdk = credentials::sdk_config(config, pace.clone()).await;
    let Some(provider) = sdk.credentials_provider() else {
        return Ok(credentials::logs_client(&sdk, config));
    };
    let fetched = tokio::time::timeout(FETCH_TIMEOUT, provider.provide_credentials()).await;
    let why = match fetched {
        Ok(Ok(creds)) => {
            let primed = Primed {
                first: Mutex::new(Some(creds)),
                then: provider,
            };
            let sdk = sdk
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(primed))
                .build();
            return Ok(credentials::logs_client(&sdk, config));
        }
        Ok(Err(e)) => crate::log::causes(&e),
        Err(_) => format!("no answer in {} s", FETCH_TIMEOUT.as_secs()),
    };
    Err(match profile_file_trouble().await {
        Some(trouble) => trouble,
        None => format!("fresh credentials could not be fetched: {why}"),
    })
}

/// Credentials fetched already, given to the client's identity cache on its first call, so
/// that they are not fetched twice; then the provider's own.
#[derive(Debug)]
struct Primed {
    first: Mutex<Option<Credentials>>,
    then: SharedCredentialsProvider,
}

impl ProvideCredentials for Primed {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let first = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match first {
            Some(creds) => provider::future::ProvideCredentials::ready(Ok(creds)),
            None => self.then.provide_credentials(),
        }
    }
}

/// What is wrong with the shared credentials and config files, if anything: one that
/// exists but cannot be read, or one that does not parse (its path and line, never its
/// contents). The paths are the SDK's: `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`,
/// else `~/.aws/credentials` and `~/.aws/config`.
pub async fn profile_file_trouble() -> Option<String> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, default) in [
        ("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
        ("AWS_CONFIG_FILE", ".aws/config"),
    ] {
        let path = match std::env::var_os(var).filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => match &home {
                Some(home) => home.join(default),
                None => continue,
            },
        };
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Some(format!(
                    "the AWS profile file {} cannot be read ({e})",
                    path.display()
                ));
            }
            Ok(_) => {}
        }
    }
    let loaded =
        aws_config::profile::load(&Fs::real(), &Env::real(), &EnvConfigFiles::default(), None)
            .await;
    let e = loaded.err()?;
    // "error parsing <path> on line <n>: <what was expected>" (the parser's error, under
    // "could not parse profile file"), on one line.
    let text = match std::error::Error::source(&e) {
        Some(parse) => crate::log::causes(parse),
        None => crate::log::causes(&e),
    };
    Some(format!(
        "an AWS profile file is malformed: {}",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

/// Whether STS refused the base credentials a role is assumed with — an unknown or deleted
/// key, a wrong secret, an expired token (the codes [`ErrorKind::Credentials`] stands for) —
/// among the causes of `err`. Fresh base credentials may fix it; a refusal for any other
/// reason (the trust policy, the session length) they would not.
pub fn sts_refused_base(err: &(dyn std::error::Error + 'static)) -> bool {
    use aws_sdk_sts::error::ProvideErrorMetadata;
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(failure) = e.downcast_ref::<AssumeRoleFailure>() {
            return ErrorKind::classify(failure.code(), None) == ErrorKind::Credentials;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn refused(code: &str, status: u16) -> CredentialsError {
        let error = AssumeRoleError::generic(ErrorMetadata::builder().code(code).build());
        let response = aws_sdk_sts::config::http::HttpResponse::new(
            status.try_into().expect("status"),
            SdkBody::empty(),
        );
        CredentialsError::provider_error(AssumeRoleFailure::service_error(error, response))
    }

    /// STS refusing the base key asks for a re-read; refusing the role does not.
    #[test]
    fn sts_refusals_of_the_base_key_are_told_apart() {
        for code in [
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
        ] {
            assert!(sts_refused_base(&refused(code, 403)), "{code}");
        }
        for code in ["AccessDenied", "ValidationError", "RegionDisabledException"] {
            assert!(!sts_refused_base(&refused(code, 403)), "{code}");
        }
        assert!(!sts_refused_base(&CredentialsError::provider_error(
            "no credentials"
        )));
    }

    /// The first fetch is the primed one; the provider's own come after.
    #[test]
    fn primed_credentials_are_given_once() {
        let primed = Primed {
            first: Mutex::new(Some(Credentials::new("AKIDFIRST", "S", None, None, "test"))),
            then: SharedCredentialsProvider::new(Credentials::new(
                "AKIDTHEN", "S", None, None, "test",
            )),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let first = rt.block_on(primed.provide_credentials()).expect("first");
        let then = rt.block_on(primed.provide_credentials()).expect("then");
        assert_eq!(first.access_key_id(), "AKIDFIRST");
        assert_eq!(then.access_key_id(), "AKIDTHEN");
    }
}

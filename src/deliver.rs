//! Batches → CloudWatch Logs.
//!
//! PutLogEvents goes straight to the stream; no sequence tokens and never DescribeLogStreams
//! (CloudWatch ignores tokens since 2023, and Describe has a low account-wide quota). A
//! stream is created once per process before its first put, when `auto_create_stream` is
//! on (already-exists is success); if CloudWatch then says the group is missing, the group
//! is created when `auto_create_group` allows it. A put that finds the stream gone recreates
//! it (and the group) and is sent again: never dropped.
//!
//! Every call goes through one retry loop ([`crate::retry`]): transient failures back off
//! within the flush's budget, credential failures refresh the credentials once, and at most
//! `max_concurrent_requests` calls of an instance are in flight at once. What still fails
//! is returned, described by operation, destination, AWS error code and message.
//!
//! Must not: decode records, render names, or build credentials (a refresher is given).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError, RwLock};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::LogGroupClass;
use tokio::sync::Semaphore;

use crate::batch::Event;
use crate::body;
use crate::config::{GroupClass, GroupOptions};
use crate::retry::{Budget, ErrorKind, jitter};

/// Where events go: a log group and a stream in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub group: String,
    pub stream: String,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group '{}' stream '{}'", self.group, self.stream)
    }
}

/// A failed AWS call: which, where, what kind of failure, and what AWS said.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub operation: &'static str,
    pub destination: Destination,
    pub kind: ErrorKind,
    /// AWS's error code (`AccessDeniedException`, …) when the service answered.
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {} failed: ", self.operation, self.destination)?;
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AwsError {}

impl AwsError {
    fn new<E, R>(operation: &'static str, destination: &Destination, err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug + HasStatus + 'static,
    {
        let status = err.raw_response().map(HasStatus::status);
        let (code, message) = match err.code() {
            Some(code) => (
                Some(code.to_owned()),
                err.message().unwrap_or("(no message)").to_owned(),
            ),
            // Not an answer from the service (credentials, connection, timeout): the chain
            // of causes says which.
            None => (None, causes(err)),
        };
        let kind = match err {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorKind::Transient,
            SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => ErrorKind::Transient,
            // The request could not be sent for another reason: in practice, credentials
            // that could not be loaded (an unreachable STS, a refused AssumeRole).
            SdkError::DispatchFailure(_) => ErrorKind::Credentials,
            SdkError::ServiceError(_) => ErrorKind::classify(code.as_deref(), status, &message),
            _ => ErrorKind::Other,
        };
        AwsError {
            operation,
            destination: destination.clone(),
            kind,
            code,
            message,
        }
    }

    /// CloudWatch refused an event as larger than its per-event limit (the whole batch
    /// fails: `InvalidParameterException: Log event too large: N bytes exceeds limit of M`).
    pub fn is_event_too_large(&self) -> bool {
        self.kind == ErrorKind::TooLarge
    }
}

/// An error and its sources as one line, `a: b: c`, each cause once (the SDK's own
/// rendering appends a debug dump of the whole error, too long and too raw for a log line).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// The HTTP status of a raw response, for classification.
pub trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_cloudwatchlogs::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Events of a batch that CloudWatch accepted the batch without: index ranges of the batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Older than 14 days or than the group's retention (`tooOld…`/`expired…EndIndex`).
    pub too_old: Range<usize>,
    /// More than 2 hours ahead (`tooNewLogEventStartIndex` on).
    pub too_new: Range<usize>,
}

impl Rejected {
    pub fn count(&self) -> usize {
        self.too_old.len() + self.too_new.len()
    }
}

/// Builds a client with fresh credentials (a new identity cache), for [`Deliverer`] to
/// swap in after a credential failure.
pub type Refresh = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Client> + Send>> + Send + Sync>;

/// Counters of what the retry loop did.
#[derive(Debug, Default)]
pub struct Stats {
    pub retries: AtomicU64,
    pub throttles: AtomicU64,
    pub refreshes: AtomicU64,
}

/// What the deliverer may create, and how.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub auto_create_group: bool,
    pub auto_create_stream: bool,
    pub max_concurrent_requests: usize,
    /// Tags, retention, class and KMS key of groups the plugin creates.
    pub group: GroupOptions,
    /// `x-amzn-logs-format` on PutLogEvents.
    pub log_format: Option<String>,
}

/// Sends events for one output instance; remembers which streams exist.
pub struct Deliverer {
    client: RwLock<Client>,
    refresh: Refresh,
    settings: Settings,
    /// Streams created (or found to exist) by this instance.
    ready: Mutex<HashSet<Destination>>,
    /// Groups whose retention this instance has set.
    retention_set: Mutex<HashSet<String>>,
    /// Calls in flight, at most `max_concurrent_requests`.
    permits: Semaphore,
    pub stats: Stats,
}

impl Deliverer {
    pub fn new(client: Client, refresh: Refresh, settings: Settings) -> Self {
        Deliverer {
            client: RwLock::new(client),
            refresh,
            permits: Semaphore::new(settings.max_concurrent_requests.max(1)),
            settings,
            ready: Mutex::new(HashSet::new()),
            retention_set: Mutex::new(HashSet::new()),
            stats: Stats::default(),
        }
    }

    fn client(&self) -> Client {
        self.client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn is_ready(&self, destination: &Destination) -> bool {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(destination)
    }

    fn set_ready(&self, destination: &Destination, ready: bool) {
        let mut set = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        if ready {
            set.insert(destination.clone());
        } else {
            set.remove(destination);
        }
    }

    /// Runs one AWS call until it succeeds or the budget says stop (see [`crate::retry`]).
    async fn with_retries<T>(
        &self,
        budget: &Budget,
        call: impl AsyncFn(Client) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut attempt = 0;
        loop {
            let result = {
                let _permit = self.permits.acquire().await.ok();
                call(self.client()).await
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if error.kind.is_transient() {
                if error.kind == ErrorKind::Throttled {
                    self.stats.throttles.fetch_add(1, Relaxed);
                }
                if let Some(wait) = budget.backoff(attempt, jitter()) {
                    attempt += 1;
                    self.stats.retries.fetch_add(1, Relaxed);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            } else if error.kind == ErrorKind::Credentials && budget.take_refresh() {
                let fresh = (self.refresh)().await;
                *self.client.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                self.stats.refreshes.fetch_add(1, Relaxed);
                if budget.retries() {
                    self.stats.retries.fetch_add(1, Relaxed);
                    continue;
                }
            }
            return Err(error);
        }
    }

    /// Makes sure the stream exists before the first batch, when `auto_create_stream` is on:
    /// once per stream per process.
    pub async fn ensure_stream(
        &self,
        budget: &Budget,
        destination: &Destination,
    ) -> Result<(), AwsError> {
        if self.settings.auto_create_group {
            self.apply_retention(budget, destination, false).await?;
        }
        if self.settings.auto_create_stream && !self.is_ready(destination) {
            self.create_stream(budget, destination).await?;
        }
        Ok(())
    }

    /// PutRetentionPolicy once per group per process (`log_retention_days`). A group that
    /// does not exist yet gets it when it is created (`created`).
    async fn apply_retention(
        &self,
        budget: &Budget,
        destination: &Destination,
        created: bool,
    ) -> Result<(), AwsError> {
        let Some(days) = self.settings.group.retention_days else {
            return Ok(());
        };
        let done = |group: &str| {
            self.retention_set
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(group)
        };
        if done(&destination.group) {
            return Ok(());
        }
        let put = async |client: Client| {
            client
                .put_retention_policy()
                .log_group_name(&destination.group)
                .retention_in_days(days)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| AwsError::new("PutRetentionPolicy", destination, &err))
        };
        match self.with_retries(budget, put).await {
            Ok(()) => {}
            // Not there yet: CreateLogGroup comes, and sets it then.
            Err(e) if e.kind == ErrorKind::NotFound && !created => return Ok(()),
            Err(e) => return Err(e),
        }
        self.retention_set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(destination.group.clone());
        Ok(())
    }

    /// Sends one batch (sorted, within CloudWatch's limits). A stream (or group) deleted
    /// behind our back is created again and the batch resent.
    pub async fn put_batch(
        &self,
        budget: &Budget,
        destination: &Destination,
        messages: &[u8],
        batch: &[Event],
    ) -> Result<Rejected, AwsError> {
        // Each attempt writes its body (retries are rare): the messages, escaped when they
        // were encoded, copied into the bytes the SDK signs and sends; nothing per event.
        let put = async |client: Client| {
            let mut body = Vec::new(); // `write` reserves what the body needs
            body::write(&mut body, destination, messages, batch);
            self.put(client, destination, body, batch.len()).await
        };
        match self.with_retries(budget, put).await {
            Err(e) if e.kind == ErrorKind::NotFound && self.settings.auto_create_stream => {
                self.set_ready(destination, false);
                self.create_stream(budget, destination).await?;
                self.with_retries(budget, put).await
            }
            other => other,
        }
    }

    /// One PutLogEvents.
    async fn put(
        &self,
        client: Client,
        destination: &Destination,
        body: Vec<u8>,
        len: usize,
    ) -> Result<Rejected, AwsError> {
        let mut request = body::put_log_events(&client, destination, body);
        if let Some(format) = &self.settings.log_format {
            let format = format.clone();
            request = request.mutate_request(move |req| {
                req.headers_mut()
                    .insert("x-amzn-logs-format", format.clone());
            });
        }
        let answer = request.send().await;
        match answer {
            Ok(out) => Ok(out
                .rejected_log_events_info()
                .map(|info| rejected(info, len))
                .unwrap_or_default()),
            // Only with sequence tokens, which we never send: the batch is stored.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_data_already_accepted_exception()) =>
            {
                Ok(Rejected::default())
            }
            Err(err) => Err(AwsError::new("PutLogEvents", destination, &err)),
        }
    }

    /// CreateLogStream; on a missing group, CreateLogGroup first when allowed.
    async fn create_stream(
        &self,
        budget: &Budget,
        destination: &Destination,
    ) -> Result<(), AwsError> {
        let create = async |client: Client| match client
            .create_log_stream()
            .log_group_name(&destination.group)
            .log_stream_name(&destination.stream)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(AwsError::new("CreateLogStream", destination, &err)),
        };
        match self.with_retries(budget, create).await {
            Err(e) if e.kind == ErrorKind::NotFound && self.settings.auto_create_group => {
                self.create_group(budget, destination).await?;
                self.with_retries(budget, create).await?;
            }
            Err(mut e) => {
                if e.kind == ErrorKind::NotFound {
                    e.message.push_str(
                        " (the log group does not exist; create it, or set auto_create_group true)",
                    );
                }
                return Err(e);
            }
            Ok(()) => {}
        }
        self.set_ready(destination, true);
        Ok(())
    }

    async fn create_group(
        &self,
        budget: &Budget,
        destination: &Destination,
    ) -> Result<(), AwsError> {
        let g = &self.settings.group;
        let tags: Option<HashMap<String, String>> =
            (!g.tags.is_empty()).then(|| g.tags.iter().cloned().collect());
        let class = g.class.map(|c| match c {
            GroupClass::Standard => LogGroupClass::Standard,
            GroupClass::InfrequentAccess => LogGroupClass::InfrequentAccess,
        });
        let create = async |client: Client| match client
            .create_log_group()
            .log_group_name(&destination.group)
            .set_tags(tags.clone())
            .set_kms_key_id(g.kms_key_id.clone())
            .set_log_group_class(class.clone())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(AwsError::new("CreateLogGroup", destination, &err)),
        };
        self.with_retries(budget, create).await?;
        self.apply_retention(budget, destination, true).await
    }
}

/// The events of a batch of `len` that `rejectedLogEventsInfo` names: those before
/// `tooOldLogEventEndIndex`/`expiredLogEventEndIndex` (exclusive, as the API reference says)
/// and from `tooNewLogEventStartIndex` on (inclusive).
fn rejected(info: &aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo, len: usize) -> Rejected {
    let index = |i: Option<i32>| i.and_then(|i| usize::try_from(i).ok()).map(|i| i.min(len));
    let old_end = index(info.too_old_log_event_end_index())
        .max(index(info.expired_log_event_end_index()))
        .unwrap_or(0);
    let new_start = index(info.too_new_log_event_start_index())
        .unwrap_or(len)
        .max(old_end);
    Rejected {
        too_old: 0..old_end,
        too_new: new_start..len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;

    #[test]
    fn counts_rejected_events() {
        let info = |old: Option<i32>, new: Option<i32>, expired: Option<i32>| {
            RejectedLogEventsInfo::builder()
                .set_too_old_log_event_end_index(old)
                .set_too_new_log_event_start_index(new)
                .set_expired_log_event_end_index(expired)
                .build()
        };
        assert_eq!(rejected(&info(None, None, None), 10).count(), 0);
        assert_eq!(rejected(&info(Some(2), None, None), 10).too_old, 0..2);
        assert_eq!(rejected(&info(None, Some(7), None), 10).too_new, 7..10);
        assert_eq!(rejected(&info(Some(1), Some(8), Some(3)), 10).count(), 5);
        assert_eq!(rejected(&info(Some(50), Some(0), None), 10).count(), 10);
    }
}

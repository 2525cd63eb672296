//! Batches → CloudWatch Logs.
//!
//! PutLogEvents goes straight to the stream; no sequence tokens and never DescribeLogStreams
//! (CloudWatch ignores tokens since 2023, and Describe has a low account-wide quota). A
//! stream is created once per process before its first put, when `auto_create_stream` is
//! on (already-exists is success); if CloudWatch then says the group is missing, the group
//! is created when `auto_create_group` allows it. A put that finds the stream gone recreates
//! it and is sent once more. Any other failure is returned, described by operation,
//! destination, AWS error code and message, for the flush to answer `FLB_RETRY`.
//!
//! Must not: decode records, render names, or build credentials.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Mutex;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

use crate::batch::Event;

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

/// A failed AWS call: which, where, and what AWS said.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub operation: &'static str,
    pub destination: Destination,
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
        R: fmt::Debug,
    {
        let (code, message) = match err.code() {
            Some(code) => (
                Some(code.to_owned()),
                err.message().unwrap_or("(no message)").to_owned(),
            ),
            // Not an answer from the service (credentials, connection, timeout): the full
            // chain says which.
            None => (None, DisplayErrorContext(err).to_string()),
        };
        AwsError {
            operation,
            destination: destination.clone(),
            code,
            message,
        }
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

impl AwsError {
    /// CloudWatch refused an event as larger than its per-event limit (the whole batch
    /// fails: `InvalidParameterException: Log event too large: N bytes exceeds limit of M`).
    pub fn is_event_too_large(&self) -> bool {
        self.code.as_deref() == Some("InvalidParameterException")
            && self.message.to_ascii_lowercase().contains("too large")
    }
}

/// Sends events for one output instance; remembers which streams exist.
#[derive(Debug)]
pub struct Deliverer {
    client: Client,
    auto_create_group: bool,
    auto_create_stream: bool,
    /// Streams created (or found to exist) by this instance.
    ready: Mutex<HashSet<Destination>>,
}

impl Deliverer {
    pub fn new(client: Client, auto_create_group: bool, auto_create_stream: bool) -> Self {
        Deliverer {
            client,
            auto_create_group,
            auto_create_stream,
            ready: Mutex::new(HashSet::new()),
        }
    }

    fn is_ready(&self, destination: &Destination) -> bool {
        self.ready.lock().is_ok_and(|set| set.contains(destination))
    }

    fn set_ready(&self, destination: &Destination, ready: bool) {
        if let Ok(mut set) = self.ready.lock() {
            if ready {
                set.insert(destination.clone());
            } else {
                set.remove(destination);
            }
        }
    }

    /// Makes sure the stream exists before the first batch, when `auto_create_stream` is on:
    /// once per stream per process.
    pub async fn ensure_stream(&self, destination: &Destination) -> Result<(), AwsError> {
        if self.auto_create_stream && !self.is_ready(destination) {
            self.create_stream(destination).await?;
        }
        Ok(())
    }

    /// Sends one batch (sorted, within CloudWatch's limits). A stream deleted behind our
    /// back is created again and the batch resent once.
    pub async fn put_batch(
        &self,
        destination: &Destination,
        messages: &str,
        batch: &[Event],
    ) -> Result<Rejected, AwsError> {
        match self.put(destination, messages, batch).await {
            Err(Put::StreamMissing(_)) if self.auto_create_stream => {
                self.set_ready(destination, false);
                self.create_stream(destination).await?;
                self.put(destination, messages, batch)
                    .await
                    .map_err(Put::into_error)
            }
            other => other.map_err(Put::into_error),
        }
    }

    /// One PutLogEvents. Returns how many events CloudWatch rejected.
    async fn put(
        &self,
        destination: &Destination,
        messages: &str,
        batch: &[Event],
    ) -> Result<Rejected, Put> {
        let events = batch
            .iter()
            .map(|e| {
                InputLogEvent::builder()
                    .timestamp(e.timestamp_ms)
                    .message(&messages[e.message.clone()])
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Put::Failed(AwsError {
                    operation: "PutLogEvents",
                    destination: destination.clone(),
                    code: None,
                    message: format!("could not build the request: {e}"),
                })
            })?;
        let answer = self
            .client
            .put_log_events()
            .log_group_name(&destination.group)
            .log_stream_name(&destination.stream)
            .set_log_events(Some(events))
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out
                .rejected_log_events_info()
                .map(|info| rejected(info, batch.len()))
                .unwrap_or_default()),
            Err(err) => {
                let error = AwsError::new("PutLogEvents", destination, &err);
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception())
                {
                    Err(Put::StreamMissing(error))
                } else {
                    Err(Put::Failed(error))
                }
            }
        }
    }

    /// CreateLogStream; on a missing group, CreateLogGroup first when allowed.
    async fn create_stream(&self, destination: &Destination) -> Result<(), AwsError> {
        let answer = self.create_stream_once(destination).await;
        let answer = match answer {
            Err(err)
                if self.auto_create_group
                    && err
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                self.create_group(destination).await?;
                self.create_stream_once(destination).await
            }
            other => other,
        };
        match answer {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_already_exists_exception()) => {}
            Err(err) => {
                let mut error = AwsError::new("CreateLogStream", destination, &err);
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception())
                {
                    error.message.push_str(
                        " (the log group does not exist; create it, or set auto_create_group true)",
                    );
                }
                return Err(error);
            }
        }
        self.set_ready(destination, true);
        Ok(())
    }

    async fn create_stream_once(
        &self,
        destination: &Destination,
    ) -> Result<
        aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamOutput,
        SdkError<
            aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError,
            aws_sdk_cloudwatchlogs::config::http::HttpResponse,
        >,
    > {
        self.client
            .create_log_stream()
            .log_group_name(&destination.group)
            .log_stream_name(&destination.stream)
            .send()
            .await
    }

    async fn create_group(&self, destination: &Destination) -> Result<(), AwsError> {
        match self
            .client
            .create_log_group()
            .log_group_name(&destination.group)
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
        }
    }
}

enum Put {
    StreamMissing(AwsError),
    Failed(AwsError),
}

impl Put {
    fn into_error(self) -> AwsError {
        match self {
            Put::StreamMissing(e) | Put::Failed(e) => e,
        }
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

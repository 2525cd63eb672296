//! Requests → CloudWatch Logs: the AWS calls of one instance and their retry loop.
//!
//! PutLogEvents goes straight to the stream; no sequence tokens and never DescribeLogStreams
//! (CloudWatch ignores tokens since 2023, and Describe has a low account-wide quota).
//!
//! Only the stream's existence gates data: with `auto_create_stream`, a stream is created
//! before its first put (already-exists is success) and, if CloudWatch says its group is
//! missing, the group is created first when `auto_create_group` allows. Group settings
//! (`log_retention_days`) are applied off the data path, by a task of their own that backs
//! off and tries again later on failure: a throttled or refused PutRetentionPolicy never
//! makes a flush fail. A put that finds the stream gone recreates it and is sent again.
//!
//! Every call goes through one retry loop: transient failures and throttling back off within
//! the flush's [`Budget`]; an answer is awaited until the flush's deadline (slow is not
//! dead); credential errors that fresh credentials can fix (CloudWatch refusing the key, or
//! STS refusing the key a role is assumed with) rebuild the client at most once a minute,
//! the source read again ([`crate::fresh`]) — a client whose source gives no credentials
//! then is not swapped in; an access error keeps the credentials. At most `max_concurrent_requests` calls of
//! an instance are in flight at once. Errors are classified by AWS code and transport kind.
//! A call whose group failed for good earlier in the flush (missing, or access denied: see
//! [`AwsError::ends_group`]) is not made: the flush's [`Gate`] ends it with that error.
//!
//! Must not: decode records, render names, split batches, or build credentials (a refresher
//! is given).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::LogGroupClass;
use tokio::sync::{Notify, Semaphore};

use crate::batch::Event;
use crate::body;
use crate::cache::IdleSet;
use crate::config::{GroupClass, GroupOptions};
use crate::entity::Entity;
use crate::gate::Gate;
use crate::log::Logger;
use crate::metrics::{Metric, Metrics};
use crate::retry::{Budget, ErrorKind, jitter};

/// Where events go: a log group and a stream in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub group: String,
    pub stream: String,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stream.is_empty() {
            return write!(f, "group '{}'", self.group);
        }
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
            None => (None, crate::log::causes(err)),
        };
        let kind = match err {
            SdkError::ServiceError(_) => ErrorKind::classify(code.as_deref(), status),
            // Credentials are resolved before the request is sent: their failure comes as
            // a dispatch or construction failure whose cause is a `CredentialsError`. STS
            // refusing the key a role is assumed with is fixed as CloudWatch refusing it is.
            _ if caused_by_credentials(err) => match crate::fresh::sts_refused_base(err) {
                true => ErrorKind::Credentials,
                false => ErrorKind::NoCredentials,
            },
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorKind::Transient,
            // Connection refused or reset, TLS, DNS: nothing was stored, try again.
            SdkError::DispatchFailure(d) if !d.is_user() => ErrorKind::Transient,
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

    /// Whether the failure holds for every stream of the group, so that the flush's other
    /// calls to the group would fail the same way: access denied (`AccessDenied` on any
    /// operation on the group), or the group missing (`ResourceNotFoundException` on
    /// CreateLogStream, whose only missing resource is the group; returned only when the
    /// group may not be created). A PutLogEvents `ResourceNotFoundException` is not: the
    /// code does not say whether the stream or the group is missing.
    pub fn ends_group(&self) -> bool {
        self.kind == ErrorKind::Denied
            || (self.kind == ErrorKind::NotFound && self.operation == "CreateLogStream")
    }

    /// No answer came before the flush's deadline. The request may still be stored by
    /// CloudWatch; the chunk is retried for what was not confirmed.
    fn no_answer(operation: &'static str, destination: &Destination) -> Self {
        AwsError {
            operation,
            destination: destination.clone(),
            kind: ErrorKind::Transient,
            code: None,
            message: "no answer within the flush's time (retry_timeout, throttle_timeout)"
                .to_owned(),
        }
    }

    /// Fluent Bit is stopping and no answer came in the short while it still waits
    /// ([`crate::shutdown::ANSWER_WAIT`]). As with [`AwsError::no_answer`], the chunk is
    /// retried for what was not confirmed (from disk at the next start, with filesystem
    /// buffering).
    fn stopping(operation: &'static str, destination: &Destination) -> Self {
        AwsError {
            operation,
            destination: destination.clone(),
            kind: ErrorKind::Transient,
            code: None,
            message: format!(
                "Fluent Bit is stopping: no answer within {}s of the stop signal",
                crate::shutdown::ANSWER_WAIT.as_secs()
            ),
        }
    }
}

/// Whether a `CredentialsError` is among the causes of `err`.
fn caused_by_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = err.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        source = cause.source();
    }
    false
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

/// What CloudWatch accepted a batch without: events (index ranges of the batch), and the
/// entity.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Older than 14 days or than the group's retention (`tooOld…`/`expired…EndIndex`).
    pub too_old: Range<usize>,
    /// More than 2 hours ahead (`tooNewLogEventStartIndex` on).
    pub too_new: Range<usize>,
    /// `rejectedEntityInfo.errorType`: the events were stored without the request's entity.
    pub entity: Option<String>,
}

impl Rejected {
    pub fn count(&self) -> usize {
        self.too_old.len() + self.too_new.len()
    }
}

/// Builds a client with fresh credentials (a new identity cache, the source read again), for
/// [`Deliverer`] to swap in after a credential error that fresh credentials can fix; or says
/// in one line why the source gives none.
pub type Refresh =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Client, String>> + Send>> + Send + Sync>;

/// A sent request's answer is awaited at least this long, whatever the flush's deadline.
pub const MIN_ANSWER_WAIT: Duration = Duration::from_secs(10);
/// ... and at most this long: an answer that has not come in a minute is not coming on that
/// connection (with `retry_timeout` at its 300 s default, a dead connection would otherwise
/// hold the flush to the end).
pub const MAX_ANSWER_WAIT: Duration = Duration::from_secs(60);

/// The client is rebuilt (credentials fetched afresh) at most this often.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Group settings: tries before a task gives up until a later flush schedules it again,
/// the wait after a refusal, and the cap of a wait after throttling.
const SETTINGS_TRIES: u32 = 8;
const SETTINGS_REFUSED_WAIT: Duration = Duration::from_secs(600);
const SETTINGS_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a settings call's answer is awaited.
const SETTINGS_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Settings of groups that exist already are spread over this much time after the first
/// flush, so that a fleet starting at once does not send them all in the same second.
const SETTINGS_SPREAD: Duration = Duration::from_secs(10);

/// Counters of what the retry loop did (also in Fluent Bit's metrics, where offered).
#[derive(Debug, Default)]
pub struct Stats {
    pub retries: AtomicU64,
    pub throttles: AtomicU64,
    pub refreshes: AtomicU64,
    pub metrics: Metrics,
}

impl Stats {
    fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
        self.metrics.add(Metric::Retries, 1);
    }

    fn throttled(&self) {
        self.throttles.fetch_add(1, Relaxed);
        self.metrics.add(Metric::Throttled, 1);
    }

    fn refreshed(&self) {
        self.refreshes.fetch_add(1, Relaxed);
        self.metrics.add(Metric::CredentialRefreshes, 1);
    }
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

/// Sends requests for one output instance; remembers which streams exist.
pub struct Deliverer {
    client: RwLock<Client>,
    refresh: Refresh,
    /// When the client was last rebuilt (or tried to be), and why the last try failed, if
    /// it did: held while a rebuild runs, so that the calls of a flush that need one wait for
    /// it.
    refreshed: tokio::sync::Mutex<(Option<Instant>, Option<String>)>,
    settings: Settings,
    log: Logger,
    /// Streams created (or found to exist), forgotten after an hour idle.
    ready: IdleSet<Destination>,
    /// Groups a PutLogEvents was accepted in (forgotten after an hour idle, or when the
    /// group fails for good): their streams go at once; a flush tries other groups with one
    /// stream first (see [`crate::gate`]).
    working: IdleSet<String>,
    /// Streams a call was denied for lately: a flush sends them after the other streams of
    /// the chunk, so that a group is tried first with a stream not known to be denied (IAM
    /// can allow a group's streams one by one).
    denied: IdleSet<Destination>,
    /// Groups whose settings were applied, or are being applied by a task.
    configured: IdleSet<String>,
    /// Calls in flight, at most `max_concurrent_requests`.
    permits: Semaphore,
    /// Set at exit: group-settings tasks stop.
    closed: AtomicBool,
    close: Notify,
    pub stats: Stats,
}

impl Deliverer {
    pub fn new(
        client: Client,
        refresh: Refresh,
        settings: Settings,
        log: Logger,
        metrics: Metrics,
    ) -> Self {
        Deliverer {
            client: RwLock::new(client),
            refresh,
            refreshed: tokio::sync::Mutex::new((None, None)),
            permits: Semaphore::new(settings.max_concurrent_requests.max(1)),
            settings,
            log,
            ready: IdleSet::default(),
            working: IdleSet::default(),
            denied: IdleSet::default(),
            configured: IdleSet::default(),
            closed: AtomicBool::new(false),
            close: Notify::new(),
            stats: Stats {
                metrics,
                ..Stats::default()
            },
        }
    }

    /// Stops the group-settings tasks (at exit).
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
        self.close.notify_waiters();
    }

    fn client(&self) -> Client {
        self.client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Rebuilds the client with fresh credentials, unless that was tried less than
    /// [`MIN_REFRESH_INTERVAL`] ago (then the client is likely fresh already). When the
    /// source gives no credentials, the client in use is kept, with one warning per distinct
    /// reason until a rebuild succeeds. Whether the client may now be worth another try.
    async fn refresh_client(&self) -> bool {
        let mut refreshed = self.refreshed.lock().await;
        let (at, failed) = &mut *refreshed;
        if at.is_some_and(|t| t.elapsed() < MIN_REFRESH_INTERVAL) {
            return failed.is_none();
        }
        *at = Some(Instant::now());
        match (self.refresh)().await {
            Ok(fresh) => {
                *self.client.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                *failed = None;
                self.stats.refreshed();
                true
            }
            Err(why) => {
                if failed.as_deref() != Some(why.as_str()) {
                    self.log.warn(format_args!(
                        "{why}: the last good credentials are kept, and their source is read again at most once a minute"
                    ));
                }
                *failed = Some(why);
                false
            }
        }
    }

    /// Runs one AWS call until it succeeds or the budget says stop (see [`crate::retry`]).
    async fn with_retries<T>(
        &self,
        budget: &Budget,
        gate: &Gate,
        operation: &'static str,
        destination: &Destination,
        call: impl AsyncFn(Client) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut attempt = 0;
        loop {
            let result = {
                let _permit = self.permits.acquire().await.ok();
                // After the wait for a turn: the call's group may have failed for good
                // meanwhile, and then this call would fail the same way.
                gate.check(destination)?;
                // Awaited until the flush's deadline, and at least MIN_ANSWER_WAIT: cutting
                // an answer short resends a request CloudWatch may have stored. But not more
                // than MAX_ANSWER_WAIT (a connection silent that long is gone), nor more than
                // shutdown::ANSWER_WAIT once Fluent Bit is stopping.
                let now = Instant::now();
                let deadline = tokio::time::Instant::from_std(
                    budget
                        .answer_deadline()
                        .max(now + MIN_ANSWER_WAIT)
                        .min(now + MAX_ANSWER_WAIT),
                );
                let answer = tokio::time::timeout_at(deadline, call(self.client()));
                // Boxed: unboxed, the race doubled the size of every call's future, and the
                // chunk's concurrent calls then kept a burst's memory from being given back
                // (engine_::a_burst_s_memory_is_given_back_once_it_pauses: 6 s → over 60 s).
                match Box::pin(budget.stop().unless_cut_off(answer)).await {
                    Some(Ok(result)) => result,
                    Some(Err(_)) => Err(AwsError::no_answer(operation, destination)),
                    None => Err(AwsError::stopping(operation, destination)),
                }
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if error.kind == ErrorKind::Throttled {
                self.stats.throttled();
            }
            if let Some(wait) = budget.backoff(error.kind, attempt, jitter()) {
                if !budget.stop().sleep(wait).await {
                    return Err(error);
                }
                attempt += 1;
                self.stats.retried();
                continue;
            }
            if error.kind == ErrorKind::Credentials && budget.take_refresh() {
                let renewed = self.refresh_client().await;
                if renewed && budget.retries() {
                    self.stats.retried();
                    continue;
                }
            }
            return Err(error);
        }
    }

    /// What must be true before the first put to a stream: with `auto_create_stream`, the
    /// stream exists (created once, then remembered for an hour of use). Also schedules the
    /// group's settings, off the data path.
    pub async fn ensure_stream(
        self: &Arc<Self>,
        budget: &Budget,
        gate: &Gate,
        destination: &Destination,
    ) -> Result<(), AwsError> {
        if self.settings.auto_create_group {
            self.schedule_settings(&destination.group, SETTINGS_SPREAD);
        }
        if self.settings.auto_create_stream && !self.ready.contains(destination) {
            self.create_stream(budget, gate, destination)
                .await
                .inspect_err(|e| self.failed(gate, e))?;
        }
        Ok(())
    }

    /// Whether the first put to `destination` must create the stream first (it is not
    /// known to exist, and `auto_create_stream` is on).
    pub fn must_create(&self, destination: &Destination) -> bool {
        self.settings.auto_create_stream && !self.ready.contains(destination)
    }

    /// Whether a PutLogEvents to `group` was accepted lately.
    pub fn knows_group(&self, group: &str) -> bool {
        self.working.contains(&group.to_owned())
    }

    /// Whether a call for `destination` was denied lately.
    pub fn denied_lately(&self, destination: &Destination) -> bool {
        !self.denied.is_empty() && self.denied.contains(destination)
    }

    /// A call failed: what it says about its group goes to the flush's gate, and the
    /// group's next flush tries one stream first.
    fn failed(&self, gate: &Gate, e: &AwsError) {
        if e.ends_group() {
            if e.kind == ErrorKind::Denied {
                self.denied.insert(e.destination.clone());
            }
            self.working.remove(&e.destination.group);
            gate.fail(e);
        }
    }

    /// Sends one PutLogEvents (events sorted, within CloudWatch's limits), with `entity` if
    /// there is one. A stream (or group) deleted behind our back is created again and the
    /// request resent.
    pub async fn put_batch(
        self: &Arc<Self>,
        budget: &Budget,
        gate: &Gate,
        destination: &Destination,
        messages: &Arc<Vec<u8>>,
        entity: Option<&Entity>,
        batch: &[Event],
    ) -> Result<Rejected, AwsError> {
        // Hashed once for every attempt; written piece by piece from the messages (escaped
        // when they were encoded) each time it is sent.
        let body = body::Body::with_entity(destination, entity, messages.clone(), batch);
        let put = async |client: Client| {
            self.put(client, destination, body.clone(), batch.len())
                .await
        };
        let result = match self
            .with_retries(budget, gate, "PutLogEvents", destination, put)
            .await
        {
            Err(e) if e.kind == ErrorKind::NotFound && self.settings.auto_create_stream => {
                self.ready.remove(destination);
                match self.create_stream(budget, gate, destination).await {
                    Ok(()) => {
                        self.with_retries(budget, gate, "PutLogEvents", destination, put)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match &result {
            Ok(_) => {
                self.working.insert(destination.group.clone());
                gate.worked(&destination.group);
            }
            Err(e) => self.failed(gate, e),
        }
        result
    }

    /// One PutLogEvents.
    async fn put(
        &self,
        client: Client,
        destination: &Destination,
        body: body::Body,
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
            Ok(out) => Ok(Rejected {
                entity: out
                    .rejected_entity_info()
                    .map(|info| info.error_type().as_str().to_owned()),
                ..out
                    .rejected_log_events_info()
                    .map(|info| rejected(info, len))
                    .unwrap_or_default()
            }),
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
        self: &Arc<Self>,
        budget: &Budget,
        gate: &Gate,
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
        let op = "CreateLogStream";
        match self
            .with_retries(budget, gate, op, destination, create)
            .await
        {
            Err(e) if e.kind == ErrorKind::NotFound && self.settings.auto_create_group => {
                self.create_group(budget, gate, destination).await?;
                self.with_retries(budget, gate, op, destination, create)
                    .await?;
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
        self.ready.insert(destination.clone());
        Ok(())
    }

    /// CreateLogGroup with the group's tags, class and KMS key (already-exists is
    /// success); its retention follows off the data path.
    async fn create_group(
        self: &Arc<Self>,
        budget: &Budget,
        gate: &Gate,
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
        self.with_retries(budget, gate, "CreateLogGroup", destination, create)
            .await?;
        self.configured.remove(&destination.group);
        self.schedule_settings(&destination.group, Duration::ZERO);
        Ok(())
    }

    /// Starts a task that applies `log_retention_days` to `group`, unless one did or is
    /// doing it. `spread`: the task first waits a random time up to this.
    fn schedule_settings(self: &Arc<Self>, group: &str, spread: Duration) {
        let Some(days) = self.settings.group.retention_days else {
            return;
        };
        if self.closed.load(Relaxed) || self.configured.contains(&group.to_owned()) {
            return;
        }
        self.configured.insert(group.to_owned());
        let this = Arc::clone(self);
        let group = group.to_owned();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.configured.remove(&group);
            return;
        };
        runtime.spawn(async move {
            let delay = Duration::from_nanos(jitter() % (spread.as_nanos() as u64).max(1));
            if !this.pause(delay).await {
                this.apply_retention(&group, days).await;
            }
        });
    }

    /// Waits `d`, or less if the instance closes: true when it closed.
    async fn pause(&self, d: Duration) -> bool {
        if self.closed.load(Relaxed) {
            return true;
        }
        let _ = tokio::time::timeout(d, self.close.notified()).await;
        self.closed.load(Relaxed)
    }

    /// PutRetentionPolicy until it succeeds, with backoff; a refusal is logged and tried
    /// again ten minutes later; a missing group ends the task (its creation starts another).
    async fn apply_retention(&self, group: &str, days: i32) {
        let destination = Destination {
            group: group.to_owned(),
            stream: String::new(),
        };
        let mut warned = false;
        for attempt in 0..SETTINGS_TRIES {
            let call = self
                .client()
                .put_retention_policy()
                .log_group_name(group)
                .retention_in_days(days)
                .send();
            let result = match tokio::time::timeout(SETTINGS_CALL_TIMEOUT, call).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(AwsError::new("PutRetentionPolicy", &destination, &err)),
                Err(_) => Err(AwsError::no_answer("PutRetentionPolicy", &destination)),
            };
            let wait = match result {
                Ok(()) => {
                    self.log.debug(format_args!(
                        "retention of {days} day(s) set on group '{group}'"
                    ));
                    return;
                }
                Err(e) if e.kind == ErrorKind::NotFound => break,
                Err(e) if e.kind.is_transient() => {
                    if e.kind == ErrorKind::Throttled {
                        self.stats.throttled();
                    }
                    let step = Duration::from_secs(1)
                        .saturating_mul(1 << attempt.min(16))
                        .min(SETTINGS_MAX_BACKOFF);
                    Duration::from_nanos(jitter() % (step.as_nanos() as u64).max(1))
                }
                Err(e) => {
                    if !warned {
                        warned = true;
                        let permission = if e.kind == ErrorKind::Denied {
                            " (the credentials must allow logs:PutRetentionPolicy on the group)"
                        } else {
                            ""
                        };
                        self.log.warn(format_args!(
                            "{e}{permission}: log_retention_days {days} is not applied yet; logs are still delivered, and it is tried again in 10 minutes"
                        ));
                    }
                    SETTINGS_REFUSED_WAIT
                }
            };
            if self.pause(wait).await {
                break;
            }
        }
        // A later flush schedules it again.
        self.configured.remove(&group.to_owned());
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
        entity: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;

    /// A failure to get credentials is `NoCredentials`, unless STS refused the key the role
    /// is assumed with (unknown, deleted, a wrong secret): fresh base credentials may fix
    /// that, so it is a `Credentials` error, which reads the source again.
    #[test]
    fn sts_refusing_the_base_key_is_a_credentials_error() {
        use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
        use aws_sdk_sts::operation::assume_role::AssumeRoleError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        type Response = aws_sdk_cloudwatchlogs::config::http::HttpResponse;
        let destination = Destination {
            group: "/g".into(),
            stream: "s".into(),
        };
        let kind = |code: &str| {
            let sts = crate::credentials::AssumeRoleFailure::service_error(
                AssumeRoleError::generic(ErrorMetadata::builder().code(code).build()),
                Response::new(403.try_into().expect("status"), SdkBody::empty()),
            );
            let err: SdkError<PutLogEventsError, Response> =
                SdkError::construction_failure(CredentialsError::provider_error(sts));
            AwsError::new("PutLogEvents", &destination, &err).kind
        };
        assert_eq!(kind("InvalidClientTokenId"), ErrorKind::Credentials);
        assert_eq!(kind("SignatureDoesNotMatch"), ErrorKind::Credentials);
        assert_eq!(kind("AccessDenied"), ErrorKind::NoCredentials);
        let none: SdkError<PutLogEventsError, Response> =
            SdkError::construction_failure(CredentialsError::not_loaded("no source"));
        assert_eq!(
            AwsError::new("PutLogEvents", &destination, &none).kind,
            ErrorKind::NoCredentials
        );
    }

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

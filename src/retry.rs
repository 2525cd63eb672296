//! Which failures are worth another try inside a flush, and when.
//!
//! The plugin owns retrying (the SDK's own retries are off, so no call is retried by two
//! layers). Failures are classified by AWS error code, HTTP status and transport kind —
//! never by the text of a message. Two clocks bound a flush:
//! - transient failures (5xx, connection errors, an answer that never comes) are retried
//!   with exponential backoff and full jitter until `retry_timeout`;
//! - throttling is CloudWatch asking us to wait, not a failure: throttled calls back off
//!   longer (up to [`MAX_THROTTLE_DELAY`] a wait, with full jitter so that a fleet spreads
//!   out) until `throttle_timeout`.
//!
//! Then the flush returns `FLB_RETRY` and Fluent Bit's scheduler takes over. Once Fluent
//! Bit is stopping ([`crate::shutdown`]) nothing is tried again. Credential
//! errors that fresh credentials can fix get one refresh per flush (and at most one a minute
//! per instance: see `deliver.rs`); an access error is never "fixed" by a refresh.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::shutdown::{STOP, Stop};

/// What kind of failure an AWS call had: decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ThrottlingException`, `RequestLimitExceeded`, HTTP 429: back off and retry.
    Throttled,
    /// HTTP 5xx, `ServiceUnavailableException`: retry.
    Server,
    /// The call could not be completed: connection refused or reset, TLS failure, an
    /// unreadable answer, no answer in time. Retry.
    Transient,
    /// Expired or unrecognised credentials, a bad signature: fresh credentials may fix it.
    Credentials,
    /// Access denied: the credentials are fine, a permission is missing. Not retried in
    /// the flush, and no refresh (fresh credentials carry the same permissions).
    Denied,
    /// The credentials could not be obtained (the chain, STS, the container endpoint).
    NoCredentials,
    /// `ResourceNotFoundException`: the group or stream is missing.
    NotFound,
    /// `InvalidParameterException`: CloudWatch will not take this request as it is.
    InvalidParameter,
    /// Anything else: retrying the same request would fail the same way.
    Other,
}

impl ErrorKind {
    /// From an AWS error code and HTTP status (either may be absent).
    pub fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
        match code {
            Some(
                "ThrottlingException"
                | "Throttling"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "LimitExceededException",
            ) => ErrorKind::Throttled,
            Some("ServiceUnavailableException" | "InternalFailure" | "InternalServerError") => {
                ErrorKind::Server
            }
            Some(
                "ExpiredTokenException"
                | "ExpiredToken"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "InvalidClientTokenId"
                | "IncompleteSignature"
                | "SignatureDoesNotMatch",
            ) => ErrorKind::Credentials,
            Some("AccessDeniedException" | "AccessDenied") => ErrorKind::Denied,
            Some("ResourceNotFoundException") => ErrorKind::NotFound,
            Some("InvalidParameterException") => ErrorKind::InvalidParameter,
            _ => match status {
                Some(429) => ErrorKind::Throttled,
                Some(500..=599) => ErrorKind::Server,
                Some(403) => ErrorKind::Denied,
                _ => ErrorKind::Other,
            },
        }
    }

    /// Worth another try after a backoff.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled | ErrorKind::Server | ErrorKind::Transient
        )
    }
}

/// First backoff step and the cap of any one wait, for transient failures.
const BASE_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// The same for throttling: longer, so that throttled instances spread out.
const BASE_THROTTLE_DELAY: Duration = Duration::from_millis(500);
pub const MAX_THROTTLE_DELAY: Duration = Duration::from_secs(10);

/// The retry allowance of one flush, shared by its concurrent calls.
#[derive(Debug)]
pub struct Budget {
    /// Transient failures are retried, and answers awaited, until then.
    deadline: Instant,
    /// Throttled calls are retried until then.
    throttle_deadline: Instant,
    retries: bool,
    refreshed: AtomicBool,
    /// Fluent Bit is stopping once this is set: no more tries, short waits.
    stop: &'static Stop,
}

impl Budget {
    /// Retries of transient failures until `timeout` from now, of throttled calls until
    /// `throttle_timeout` from now; none at all when `retries` is false
    /// (`auto_retry_requests false`).
    pub fn new(timeout: Duration, throttle_timeout: Duration, retries: bool) -> Budget {
        Budget::stopped_by(&STOP, timeout, throttle_timeout, retries)
    }

    /// The same, ended early by `stop` (the process's [`STOP`] in [`Budget::new`]).
    pub fn stopped_by(
        stop: &'static Stop,
        timeout: Duration,
        throttle_timeout: Duration,
        retries: bool,
    ) -> Budget {
        let now = Instant::now();
        Budget {
            deadline: now + timeout,
            throttle_deadline: now + throttle_timeout.max(timeout),
            retries,
            refreshed: AtomicBool::new(false),
            stop,
        }
    }

    /// What ends this flush's waits when Fluent Bit is stopping.
    pub fn stop(&self) -> &'static Stop {
        self.stop
    }

    /// How long to wait before try number `attempt + 1` after a failure of `kind`, or
    /// `None` when the flush must give up: full jitter over an exponential step, never past
    /// the kind's deadline.
    pub fn backoff(&self, kind: ErrorKind, attempt: u32, random: u64) -> Option<Duration> {
        if !self.retries || !kind.is_transient() || self.stop.has_begun() {
            return None;
        }
        let (base, cap, deadline) = if kind == ErrorKind::Throttled {
            (
                BASE_THROTTLE_DELAY,
                MAX_THROTTLE_DELAY,
                self.throttle_deadline,
            )
        } else {
            (BASE_DELAY, MAX_DELAY, self.deadline)
        };
        let step = base.saturating_mul(1 << attempt.min(16)).min(cap);
        let wait = Duration::from_nanos(random % (step.as_nanos() as u64).max(1));
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        // The last wait ends at the deadline, for one last try there.
        Some(wait.min(deadline - now))
    }

    /// How long an answer may still be awaited: a live but slow answer is not cut before
    /// the flush's deadline (the later one: a throttled flush keeps waiting).
    pub fn answer_deadline(&self) -> Instant {
        self.deadline.max(self.throttle_deadline)
    }

    /// True the first time per flush: the caller may refresh the credentials and retry
    /// once (if retries are allowed at all).
    pub fn take_refresh(&self) -> bool {
        !self.refreshed.swap(true, Ordering::Relaxed)
    }

    pub fn retries(&self) -> bool {
        self.retries
    }
}

/// A cheap random number for jitter (xorshift on a per-thread state seeded from the clock
/// and the thread, so that instances and threads started together do not draw alike).
pub fn jitter() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, RandomState};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            RandomState::new().hash_one(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x9e37_79b9, |d| d.as_nanos() as u64),
            ) | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_code_then_status_never_by_message() {
        use ErrorKind::*;
        let c = ErrorKind::classify;
        assert_eq!(c(Some("ThrottlingException"), Some(400)), Throttled);
        assert_eq!(c(None, Some(429)), Throttled);
        assert_eq!(c(None, Some(503)), Server);
        assert_eq!(c(Some("ExpiredTokenException"), Some(400)), Credentials);
        // Regression (issue 13, defect 1): an access error is not a credential problem.
        assert_eq!(c(Some("AccessDeniedException"), Some(400)), Denied);
        assert_eq!(c(Some("ResourceNotFoundException"), Some(400)), NotFound);
        assert_eq!(
            c(Some("InvalidParameterException"), Some(400)),
            InvalidParameter
        );
        assert_eq!(c(None, Some(400)), Other);
    }

    #[test]
    fn backoff_is_bounded_by_the_deadlines_and_the_switch() {
        let b = Budget::new(Duration::from_secs(60), Duration::from_secs(60), true);
        for attempt in 0..40 {
            let wait = b.backoff(ErrorKind::Server, attempt, u64::MAX - 1).unwrap();
            assert!(wait < MAX_DELAY);
            let wait = b
                .backoff(ErrorKind::Throttled, attempt, u64::MAX - 1)
                .unwrap();
            assert!(wait < MAX_THROTTLE_DELAY);
        }
        assert_eq!(b.backoff(ErrorKind::Denied, 0, 5), None);
        let none = Budget::new(Duration::ZERO, Duration::ZERO, true);
        assert_eq!(none.backoff(ErrorKind::Server, 0, 5), None);
        let off = Budget::new(Duration::from_secs(60), Duration::from_secs(60), false);
        assert_eq!(off.backoff(ErrorKind::Throttled, 0, 5), None);
        // Throttling has its own, longer clock.
        let b = Budget::new(Duration::ZERO, Duration::from_secs(60), true);
        assert_eq!(b.backoff(ErrorKind::Server, 0, 5), None);
        assert!(b.backoff(ErrorKind::Throttled, 0, 5).is_some());
        assert!(b.take_refresh());
        assert!(!b.take_refresh());
    }

    #[test]
    fn nothing_is_tried_again_once_fluent_bit_is_stopping() {
        static FLAG: Stop = Stop::new();
        let b = Budget::stopped_by(&FLAG, Duration::from_secs(300), Duration::ZERO, true);
        assert!(b.backoff(ErrorKind::Server, 0, 5).is_some());
        assert!(b.backoff(ErrorKind::Throttled, 3, 5).is_some());
        FLAG.note_signal();
        assert_eq!(b.backoff(ErrorKind::Server, 0, 5), None);
        assert_eq!(b.backoff(ErrorKind::Throttled, 3, 5), None);
    }
}

//! Which failures are worth another try inside a flush, and when.
//!
//! The plugin owns retrying (the SDK's own retries are off, so no call is retried by two
//! layers). Throttling, 5xx answers, timeouts and connection errors are retried with
//! exponential backoff and full jitter until the flush's `retry_timeout` would pass; then the
//! flush returns `FLB_RETRY` and Fluent Bit's scheduler takes over. Credential errors get one
//! refresh of the credentials and one more try. Everything else is not retried here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What kind of failure an AWS call had: decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ThrottlingException`, `RequestLimitExceeded`, HTTP 429: back off and retry.
    Throttled,
    /// HTTP 5xx, `ServiceUnavailableException`: retry.
    Server,
    /// Timeout, connection refused or reset, unreadable answer: retry.
    Transient,
    /// Expired or rejected credentials, access denied, credentials that could not be
    /// loaded: refresh them once and retry once.
    Credentials,
    /// `ResourceNotFoundException`: the group or stream is missing.
    NotFound,
    /// `InvalidParameterException` for an event over the per-event limit.
    TooLarge,
    /// Anything else: retrying the same request would fail the same way.
    Other,
}

impl ErrorKind {
    /// From an AWS error code and HTTP status (either may be absent).
    pub fn classify(code: Option<&str>, status: Option<u16>, message: &str) -> ErrorKind {
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
                | "AccessDeniedException"
                | "AccessDenied"
                | "IncompleteSignature"
                | "SignatureDoesNotMatch",
            ) => ErrorKind::Credentials,
            Some("ResourceNotFoundException") => ErrorKind::NotFound,
            Some("InvalidParameterException")
                if message.to_ascii_lowercase().contains("too large") =>
            {
                ErrorKind::TooLarge
            }
            _ => match status {
                Some(429) => ErrorKind::Throttled,
                Some(500..=599) => ErrorKind::Server,
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

/// The retry allowance of one flush, shared by its concurrent calls.
#[derive(Debug)]
pub struct Budget {
    deadline: Instant,
    retries: bool,
    refreshed: AtomicBool,
}

/// First backoff step and the cap of any one wait.
const BASE_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);

impl Budget {
    /// Retries allowed until `timeout` from now; none at all when `retries` is false
    /// (`auto_retry_requests false`).
    pub fn new(timeout: Duration, retries: bool) -> Budget {
        Budget {
            deadline: Instant::now() + timeout,
            retries,
            refreshed: AtomicBool::new(false),
        }
    }

    /// How long to wait before try number `attempt + 1` of a transient failure, or `None`
    /// when the flush must give up: full jitter over an exponential step, never past the
    /// deadline.
    pub fn backoff(&self, attempt: u32, random: u64) -> Option<Duration> {
        if !self.retries {
            return None;
        }
        let step = BASE_DELAY
            .saturating_mul(1 << attempt.min(16))
            .min(MAX_DELAY);
        let wait = Duration::from_nanos(random % (step.as_nanos() as u64).max(1));
        (Instant::now() + wait < self.deadline).then_some(wait)
    }

    /// True the first time per flush: the caller refreshes the credentials and may retry
    /// once (if retries are allowed at all).
    pub fn take_refresh(&self) -> bool {
        !self.refreshed.swap(true, Ordering::Relaxed)
    }

    pub fn retries(&self) -> bool {
        self.retries
    }
}

/// A cheap random number for jitter (xorshift on a per-thread state seeded from the clock).
pub fn jitter() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
                | 1,
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
    fn classifies_by_code_then_status() {
        use ErrorKind::*;
        assert_eq!(
            ErrorKind::classify(Some("ThrottlingException"), Some(400), ""),
            Throttled
        );
        assert_eq!(ErrorKind::classify(None, Some(429), ""), Throttled);
        assert_eq!(ErrorKind::classify(None, Some(503), ""), Server);
        assert_eq!(
            ErrorKind::classify(Some("ExpiredTokenException"), Some(400), ""),
            Credentials
        );
        assert_eq!(
            ErrorKind::classify(Some("AccessDeniedException"), Some(400), ""),
            Credentials
        );
        assert_eq!(
            ErrorKind::classify(Some("ResourceNotFoundException"), Some(400), ""),
            NotFound
        );
        assert_eq!(
            ErrorKind::classify(
                Some("InvalidParameterException"),
                Some(400),
                "Log event too large: 300000 bytes exceeds limit of 262144"
            ),
            TooLarge
        );
        assert_eq!(
            ErrorKind::classify(Some("InvalidParameterException"), Some(400), "bad"),
            Other
        );
        assert_eq!(ErrorKind::classify(None, Some(400), ""), Other);
    }

    #[test]
    fn backoff_is_bounded_by_the_deadline_and_the_switch() {
        let b = Budget::new(Duration::from_secs(60), true);
        for attempt in 0..40 {
            let wait = b.backoff(attempt, u64::MAX - 1).unwrap();
            assert!(wait < MAX_DELAY);
        }
        assert_eq!(Budget::new(Duration::ZERO, true).backoff(0, 5), None);
        assert_eq!(
            Budget::new(Duration::from_secs(60), false).backoff(0, 5),
            None
        );
        let b = Budget::new(Duration::from_secs(1), true);
        assert!(b.take_refresh());
        assert!(!b.take_refresh());
    }
}

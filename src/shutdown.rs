//! Fluent Bit is stopping: flushes stop waiting.
//!
//! On SIGTERM (or SIGINT) Fluent Bit pauses its inputs and gives pending chunks `Grace`
//! seconds, then stops its outputs, waiting for each running flush to return. A flush of
//! ours may be waiting out a CloudWatch outage for minutes (`retry_timeout`): left alone it
//! would hold Fluent Bit past its grace, and past the 30 s after which ECS sends SIGKILL.
//! No plugin callback comes before the grace ends, so the C boundary chains a handler in
//! front of Fluent Bit's own for those signals (`abi::hook_stop_signals`), which only calls
//! [`Stop::note_signal`] and then Fluent Bit's handler. From then on:
//! - no failed call is tried again inside a flush ([`has_begun`], read by
//!   `retry::Budget::backoff`), and a backoff wait under way ends ([`Stop::begun`]);
//! - a call already sent, or sent now, is awaited [`ANSWER_WAIT`] more at most
//!   ([`Stop::cut_off`]): CloudWatch answers in well under a second when it answers at all.
//!
//! So each flush after the signal makes one attempt per request and returns within about
//! [`ANSWER_WAIT`]: what was delivered is `FLB_OK`, the rest `FLB_RETRY`, which Fluent Bit
//! keeps on disk with `storage.type filesystem` for the next start. Nothing here resets:
//! a stop signal ends the process.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

/// How long an answer is still awaited once Fluent Bit is stopping.
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How often a wait looks at the flag. The handler can only set a flag (nothing else is
/// async-signal-safe), so waits poll it; they are few (a backoff, an unanswered call).
const POLL: Duration = Duration::from_millis(100);

/// Whether a stop signal came. One per process: [`STOP`].
#[derive(Debug)]
pub struct Stop(AtomicBool);

/// The process's stop flag, set by the signal handler the C boundary chains.
pub static STOP: Stop = Stop::new();

impl Stop {
    pub const fn new() -> Stop {
        Stop(AtomicBool::new(false))
    }

    /// Notes that a stop signal came. Async-signal-safe: one atomic store.
    pub fn note_signal(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Forgets the signal: only for a start after every instance stopped (tests, a host
    /// that loads the plugin again); a real stop signal ends the process.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether Fluent Bit is stopping.
    pub fn has_begun(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Resolves once Fluent Bit is stopping.
    pub async fn begun(&self) {
        while !self.has_begun() {
            tokio::time::sleep(POLL).await;
        }
    }

    /// Resolves [`ANSWER_WAIT`] after this call saw that Fluent Bit is stopping: race an
    /// awaited answer against it.
    pub async fn cut_off(&self) {
        self.begun().await;
        tokio::time::sleep(ANSWER_WAIT).await;
    }
}

impl Stop {
    /// `work`'s output, unless Fluent Bit started stopping and [`ANSWER_WAIT`] passed
    /// first (then `None`, and `work` is dropped).
    pub async fn unless_cut_off<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        first(async { Some(work.await) }, async {
            self.cut_off().await;
            None
        })
        .await
    }

    /// Sleeps `wait`, or less if Fluent Bit starts stopping: true if it slept it all.
    pub async fn sleep(&self, wait: Duration) -> bool {
        first(
            async {
                tokio::time::sleep(wait).await;
                true
            },
            async {
                self.begun().await;
                false
            },
        )
        .await
    }
}

/// The output of whichever future is ready first (`a` when both are).
async fn first<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| match a.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(v),
        Poll::Pending => b.as_mut().poll(cx),
    })
    .await
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

/// [`STOP`]'s [`Stop::has_begun`].
pub fn has_begun() -> bool {
    STOP.has_begun()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_ends_the_waits() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            static FLAG: Stop = Stop::new();
            let waiting = tokio::spawn(FLAG.cut_off());
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert!(!waiting.is_finished(), "no signal yet");
            FLAG.note_signal();
            assert!(FLAG.has_begun());
            tokio::time::timeout(ANSWER_WAIT * 3, waiting)
                .await
                .expect("the cut-off came")
                .expect("task");
            // A wait that starts after the signal ends at once.
            tokio::time::timeout(POLL, FLAG.begun())
                .await
                .expect("at once");
            // Once stopping: a sleep ends at once, an answer gets ANSWER_WAIT more.
            assert!(!FLAG.sleep(Duration::from_secs(60)).await);
            assert_eq!(FLAG.unless_cut_off(async { 7 }).await, Some(7));
            let never = std::future::pending::<u8>();
            assert_eq!(FLAG.unless_cut_off(never).await, None);
            FLAG.reset();
            assert!(!FLAG.has_begun());
            assert!(FLAG.sleep(Duration::from_millis(10)).await);
        });
    }
}

//! The one async runtime shared by every instance of the plugin in a process.
//!
//! Started by the first Init, stopped by the last ExitCtx, so that a Fluent Bit that stops
//! every output of ours keeps no thread of ours. Holds no per-instance state.

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};

/// How long the last ExitCtx waits for in-flight work before abandoning it.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Async worker threads: AWS calls are I/O; the CPU work of a flush runs on the flushing
/// thread's own blocking-pool thread.
const WORKER_THREADS: usize = 2;

struct Shared {
    runtime: Runtime,
    users: usize,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

/// A handle on the shared runtime, starting it if this is the first user. Pair with
/// [`release`].
pub fn acquire() -> io::Result<Handle> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = shared.as_mut() {
        s.users += 1;
        return Ok(s.runtime.handle().clone());
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("flb-cloudwatch")
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    *shared = Some(Shared { runtime, users: 1 });
    Ok(handle)
}

/// Gives back what [`acquire`] gave; the last user stops the runtime and its threads.
/// Must not be called from a thread of the runtime itself.
pub fn release() {
    let last = {
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        match shared.as_mut() {
            Some(s) if s.users > 1 => {
                s.users -= 1;
                None
            }
            _ => shared.take(),
        }
    };
    if let Some(s) = last {
        s.runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
    }
}

/// Whether the shared runtime is started (some instance is alive).
pub fn is_running() -> bool {
    SHARED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
}

/// Runs futures concurrently on the current task and returns their outputs in order.
/// (The futures may borrow: a flush's streams share its message buffer.)
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut pending: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, out) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_all_keeps_order_and_runs_concurrently() {
        let rt = Builder::new_current_thread().enable_time().build().unwrap();
        let out = rt.block_on(join_all(
            (0..4u64)
                .map(|i| async move {
                    tokio::time::sleep(Duration::from_millis(40 - 10 * i)).await;
                    i
                })
                .collect(),
        ));
        assert_eq!(out, vec![0, 1, 2, 3]);
    }
}

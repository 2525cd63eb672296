//! The plugin's threads: the one async runtime shared by every instance in a process, and
//! the threads flushes run on.
//!
//! The runtime is started by the first Init and stopped by the last ExitCtx, which also
//! stops the flush threads, so that a Fluent Bit that stops every output of ours keeps no
//! thread of ours. Holds no per-instance state.
//!
//! A flush runs on a thread of ours with a big stack ([`on_flush_thread`]). A thread that
//! finished a flush waits [`FLUSH_THREAD_IDLE`] for the next one before it ends, so a steady
//! stream of flushes runs on the same threads: their stacks and the malloc arenas they were
//! given are reused, instead of a thread being started (its stack mapped, later unmapped)
//! and buffers being freed and faulted in again per flush. There are never more flush
//! threads than flushes that ran at once. What big flushes freed is given back to the
//! system once they pause ([`BigFlush`]), so a burst's peak does not stay.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};

/// How long the last ExitCtx waits for in-flight work before abandoning it.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Async worker threads: AWS calls are I/O; the CPU work of a flush runs on its flush
/// thread ([`on_flush_thread`]).
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

/// Gives back what [`acquire`] gave; the last user stops the runtime and its threads, and
/// the flush threads. Must not be called from a thread of the runtime itself, nor from a
/// flush thread.
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
        stop_flush_threads();
    }
}

/// The stack of a flush thread: decoding, encoding and the AWS SDK's frames.
pub const FLUSH_STACK: usize = 2 << 20;
/// How long a flush thread waits for the next flush before it ends.
pub const FLUSH_THREAD_IDLE: Duration = Duration::from_secs(60);

type Job = Box<dyn FnOnce() + Send>;

/// The flush threads.
struct Pool {
    /// Threads waiting for a job (with an id each), the last to finish last: it runs next.
    idle: Vec<(u64, SyncSender<Job>)>,
    /// Every flush thread started and not yet joined.
    threads: Vec<JoinHandle<()>>,
    next_id: u64,
    /// Set while [`stop_flush_threads`] runs: a thread that finishes a job then ends.
    stopping: bool,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    idle: Vec::new(),
    threads: Vec::new(),
    next_id: 0,
    stopping: false,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `work` on a flush thread (an idle one, else a new one) and waits for its result.
/// `None` if it panicked, or if no thread was idle and none could be started (a pids
/// limit, `EAGAIN`): then `work` is dropped without running, now or later.
///
/// Returns only when `work` is over: it returned, it panicked, or it was dropped without
/// running and never will run. `abi` relies on this to let `work` read the chunk the host
/// lent for the duration of the call, as `std::thread::scope` lets a thread borrow.
pub fn on_flush_thread<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = mpsc::sync_channel(1);
    // A panic drops `tx` unsent: the caller sees `None`.
    let mut job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    loop {
        let Some((_, thread)) = pool().idle.pop() else {
            break;
        };
        // An idle thread that took itself off the list ends; one on it always receives.
        match thread.send(job) {
            Ok(()) => return rx.recv().ok(),
            Err(mpsc::SendError(back)) => job = back,
        }
    }
    let thread = std::thread::Builder::new()
        .name("flb-cw-flush".into())
        .stack_size(FLUSH_STACK)
        .spawn(move || flush_thread(job))
        .ok()?;
    let mut p = pool();
    p.threads.retain(|t| !t.is_finished());
    p.threads.push(thread);
    drop(p);
    rx.recv().ok()
}

/// A flush thread: runs `job`, then waits for the next one, until it has been idle for
/// [`FLUSH_THREAD_IDLE`] or the threads are stopped.
fn flush_thread(mut job: Job) {
    loop {
        // A panic ends the flush (the caller sees `None`), not the thread.
        let _ = catch_unwind(AssertUnwindSafe(job));
        let (tx, rx) = mpsc::sync_channel(1);
        let id = {
            let mut p = pool();
            if p.stopping {
                return;
            }
            let id = p.next_id;
            p.next_id += 1;
            p.idle.push((id, tx));
            id
        };
        job = match rx.recv_timeout(FLUSH_THREAD_IDLE) {
            Ok(next) => next,
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                let mut p = pool();
                if let Some(at) = p.idle.iter().position(|(i, _)| *i == id) {
                    p.idle.remove(at);
                    return;
                }
                drop(p);
                // Taken off the list by a flush just now: its job is on the way.
                match rx.recv() {
                    Ok(next) => next,
                    Err(_) => return,
                }
            }
        };
    }
}

/// Ends the idle flush threads and waits for every flush thread to end.
fn stop_flush_threads() {
    let threads = {
        let mut p = pool();
        p.stopping = true;
        p.idle.clear(); // their receivers see `Disconnected`
        std::mem::take(&mut p.threads)
    };
    for thread in threads {
        let _ = thread.join();
    }
    pool().stopping = false;
}

/// Whether the shared runtime is started (some instance is alive).
pub fn is_running() -> bool {
    SHARED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
}

/// How long after the last big flush ended, with none running, the memory the flushes
/// freed is given back to the system ([`BigFlush`]).
pub const QUIET: Duration = Duration::from_secs(5);

/// Big flushes running, and a count of their starts and ends: a trim scheduled when one
/// ended goes ahead only if no big flush started or ended since.
#[derive(Default)]
struct Quiet {
    running: usize,
    generation: u64,
}

impl Quiet {
    fn start(&mut self) {
        self.running += 1;
        self.generation += 1;
    }

    /// The generation a trim scheduled now must still find.
    fn end(&mut self) -> u64 {
        self.running = self.running.saturating_sub(1);
        self.generation += 1;
        self.generation
    }

    fn is_quiet_since(&self, generation: u64) -> bool {
        self.running == 0 && self.generation == generation
    }
}

static QUIETING: Mutex<Quiet> = Mutex::new(Quiet {
    running: 0,
    generation: 0,
});

fn quieting() -> std::sync::MutexGuard<'static, Quiet> {
    QUIETING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A big flush (one whose chunk is big, see `instance::BIG_CHUNK`) while it runs. When the last one ends and
/// none starts for [`QUIET`], `release` runs once, on the runtime's blocking pool.
///
/// Why: malloc keeps what a thread freed for the next allocations (glibc gives each thread
/// an arena, and after a freed 2 MB buffer raises its threshold for mapping big blocks
/// apart, same-sized buffers come from the arena and stay resident). Under load that saves
/// faulting the pages in again; after a burst it kept a sidecar at its peak for good (four
/// concurrent flushes of 2 MB chunks: 16 MiB anonymous still resident a minute later).
/// Small flushes neither schedule nor delay the release: a quiet application's trickle
/// after a burst does not keep the burst's memory.
pub struct BigFlush {
    handle: Handle,
    quiet: Duration,
    release: fn(),
}

impl BigFlush {
    pub fn start(handle: &Handle, release: fn()) -> BigFlush {
        Self::start_with(handle, QUIET, release)
    }

    fn start_with(handle: &Handle, quiet: Duration, release: fn()) -> BigFlush {
        quieting().start();
        BigFlush {
            handle: handle.clone(),
            quiet,
            release,
        }
    }
}

impl Drop for BigFlush {
    fn drop(&mut self) {
        let generation = quieting().end();
        let (quiet, release) = (self.quiet, self.release);
        // On a runtime shutting down the task is dropped: nothing to give back then.
        self.handle.spawn(async move {
            tokio::time::sleep(quiet).await;
            if quieting().is_quiet_since(generation) {
                let _ = tokio::task::spawn_blocking(release).await;
            }
        });
    }
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
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    #[test]
    fn flush_threads_run_work_and_are_reused() {
        let owned = [1u8, 2, 3];
        let sum = on_flush_thread(move || owned.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert_eq!(sum, Some(6));
        let none: Option<u32> = on_flush_thread(|| panic!("boom"));
        assert_eq!(none, None);
        // One flush after another: a thread that ran an earlier one (and survived its panic)
        // runs a later one. (Tests running at once take idle flush threads too, so the reuse
        // need not be by the very next flush.)
        let ids: Vec<_> = (0..8)
            .filter_map(|_| on_flush_thread(|| std::thread::current().id()))
            .collect();
        assert_eq!(ids.len(), 8);
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert!(distinct.len() < ids.len(), "{ids:?}");
        assert!(
            on_flush_thread(|| std::thread::current().name().map(str::to_owned)).flatten()
                == Some("flb-cw-flush".to_owned())
        );
    }

    #[test]
    fn the_caller_waits_until_the_work_is_over() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
        // What `abi` relies on to lend the host's chunk: when the call returns, the work has
        // finished (or unwound), however long it took.
        let state = Arc::new(AtomicU32::new(0));
        let s = state.clone();
        let done = on_flush_thread(move || {
            std::thread::sleep(Duration::from_millis(200));
            s.store(1, SeqCst);
        });
        assert_eq!((done, state.load(SeqCst)), (Some(()), 1));
        let s = state.clone();
        let panicked: Option<()> = on_flush_thread(move || {
            std::thread::sleep(Duration::from_millis(200));
            s.store(2, SeqCst);
            panic!("after the write");
        });
        assert_eq!((panicked, state.load(SeqCst)), (None, 2));
    }

    #[test]
    fn concurrent_flushes_get_threads_of_their_own() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
        std::thread::scope(|s| {
            let waits: Vec<_> = (0..3)
                .map(|_| {
                    let b = barrier.clone();
                    // Each waits for the other two: this ends only if all three run at once.
                    s.spawn(move || on_flush_thread(move || b.wait().is_leader()))
                })
                .collect();
            let leaders = waits
                .into_iter()
                .filter_map(|w| w.join().ok().flatten())
                .filter(|&l| l)
                .count();
            assert_eq!(leaders, 1);
        });
    }

    #[test]
    fn only_the_last_big_flush_to_end_with_none_running_releases() {
        let mut q = Quiet::default();
        q.start();
        q.start();
        let first = q.end();
        assert!(!q.is_quiet_since(first), "one is still running");
        let second = q.end();
        assert!(!q.is_quiet_since(first), "the later end supersedes it");
        assert!(q.is_quiet_since(second));
        q.start();
        assert!(!q.is_quiet_since(second), "a new big flush started");
        let third = q.end();
        assert!(q.is_quiet_since(third));
    }

    static RELEASED: AtomicUsize = AtomicUsize::new(0);

    fn count_release() {
        RELEASED.fetch_add(1, SeqCst);
    }

    /// Two big flushes at once: once both ended and the quiet time passed, the memory is
    /// released, once (the first end's timer finds a later end).
    #[test]
    fn a_pause_after_big_flushes_releases_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let quiet = Duration::from_millis(20);
        let (a, b) = (
            BigFlush::start_with(rt.handle(), quiet, count_release),
            BigFlush::start_with(rt.handle(), quiet, count_release),
        );
        drop(a);
        drop(b);
        rt.block_on(async {
            // Both timers have fired once the release came and twice the quiet time passed.
            for _ in 0..250 {
                if RELEASED.load(SeqCst) > 0 {
                    break;
                }
                tokio::time::sleep(quiet).await;
            }
            tokio::time::sleep(2 * quiet).await;
        });
        assert_eq!(RELEASED.load(SeqCst), 1);
    }

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

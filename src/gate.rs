//! What one flush has learned that holds for its other calls, shared by its concurrent
//! streams: which groups fail for good in this flush, which group one stream is trying
//! first, and how many new streams the flush may still create.
//!
//! - A group the instance has not yet written to is tried by one stream first; the group's
//!   other streams wait for it. When that stream finds the group missing or finds access
//!   denied ([`AwsError::ends_group`]), the group's other streams end with the same error
//!   without a call; otherwise they all go. A group known to work goes at once; if it fails
//!   for good in a flush, the calls of its streams that have not been made yet end there
//!   (the check comes after a call's turn among the instance's concurrent calls).
//! - Access denied after a PutLogEvents to the group was accepted (in this flush, or lately)
//!   ends no other stream: IAM can allow a group's streams one by one, and the denial is
//!   then about its stream.
//! - A flush takes at most a given number of new streams ([`Gate::take_new_stream`]); the
//!   streams beyond wait for the chunk's retry (the ledger remembers what was settled, so the
//!   retry goes on with the next ones).
//!
//! Every stream ended here is counted: per failed group ([`Gate::ended`]) and in
//! [`Gate::waiting`]; the caller logs them once per group and once per flush.
//!
//! Must not: make calls, or log. Which errors can end a group is
//! [`AwsError::ends_group`]'s to say.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use crate::deliver::{AwsError, Destination};
use crate::retry::ErrorKind;

/// What a flush knows about one group.
#[derive(Debug)]
enum Group {
    /// One stream tries the group first; the group's other streams wait for it.
    /// `worked`: see `Open`.
    Trying { worked: bool },
    /// Its streams go at once. `worked`: a PutLogEvents to the group was accepted in this
    /// flush, or lately.
    Open { worked: bool },
    /// Failed for good in this flush: the error, and the other streams it ended.
    Failed {
        error: AwsError,
        ended: HashSet<String>,
    },
}

/// One flush's gate. See the module's documentation.
#[derive(Debug)]
pub struct Gate {
    groups: Mutex<HashMap<String, Group>>,
    /// Woken when a group's first stream is done, or a group failed.
    turn: Notify,
    /// New streams the flush may still create.
    new_streams: AtomicUsize,
    /// Streams that wait for the chunk's retry: the flush's new streams were used up.
    waiting: AtomicUsize,
}

/// A stream's turn to go. The group's first stream holds the group's turn until it is
/// dropped; then the group's other streams go (or end, if the group failed).
#[derive(Debug)]
pub struct Turn<'a> {
    gate: &'a Gate,
    /// The group this stream tries first, if it does.
    trying: Option<String>,
}

impl Turn<'_> {
    /// Whether this stream tries its group before the group's other streams.
    pub fn is_first(&self) -> bool {
        self.trying.is_some()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Some(group) = self.trying.take() else {
            return;
        };
        let mut groups = self.gate.lock();
        if let Some(state @ Group::Trying { .. }) = groups.get_mut(&group) {
            let worked = matches!(state, Group::Trying { worked: true });
            *state = Group::Open { worked };
        }
        drop(groups);
        self.gate.turn.notify_waiters();
    }
}

impl Gate {
    /// A gate for a flush that may create `new_streams` streams.
    pub fn new(new_streams: usize) -> Gate {
        Gate {
            groups: Mutex::new(HashMap::new()),
            turn: Notify::new(),
            new_streams: AtomicUsize::new(new_streams),
            waiting: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one of the flush's new streams: false when they are used up, and the stream
    /// is counted as waiting for the chunk's retry.
    pub fn take_new_stream(&self) -> bool {
        let taken = self
            .new_streams
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !taken {
            self.waiting.fetch_add(1, Relaxed);
        }
        taken
    }

    /// Streams that wait for the chunk's retry because the flush's new streams were used up.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Relaxed)
    }

    /// Before a stream's first call. `known`: whether the instance has written to the group
    /// before (then its streams go at once). Waits while another stream tries the group
    /// first; the group's error if it failed for good in this flush (the stream is counted
    /// as ended by it).
    pub async fn enter(
        &self,
        destination: &Destination,
        known: bool,
    ) -> Result<Turn<'_>, AwsError> {
        let group = &destination.group;
        loop {
            let notified = self.turn.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the state is read: a wake-up in between is not missed.
            notified.as_mut().enable();
            {
                let mut groups = self.lock();
                match groups.get_mut(group) {
                    Some(Group::Failed { error, ended }) => {
                        ended.insert(destination.stream.clone());
                        return Err(error.clone());
                    }
                    Some(Group::Open { .. }) => return Ok(self.turn(None)),
                    Some(Group::Trying { .. }) => {}
                    None if known => {
                        groups.insert(group.clone(), Group::Open { worked: true });
                        return Ok(self.turn(None));
                    }
                    None => {
                        groups.insert(group.clone(), Group::Trying { worked: false });
                        return Ok(self.turn(Some(group.clone())));
                    }
                }
            }
            notified.await;
        }
    }

    fn turn(&self, trying: Option<String>) -> Turn<'_> {
        Turn { gate: self, trying }
    }

    /// Before each call: the group's error if it failed for good in this flush (the stream
    /// is counted as ended by it, unless it is the stream that failed).
    pub fn check(&self, destination: &Destination) -> Result<(), AwsError> {
        let mut groups = self.lock();
        match groups.get_mut(&destination.group) {
            Some(Group::Failed { error, ended }) => {
                if error.destination != *destination {
                    ended.insert(destination.stream.clone());
                }
                Err(error.clone())
            }
            _ => Ok(()),
        }
    }

    /// A PutLogEvents to `group` was accepted.
    pub fn worked(&self, group: &str) {
        let mut groups = self.lock();
        match groups.get_mut(group) {
            Some(Group::Trying { worked } | Group::Open { worked }) => *worked = true,
            Some(Group::Failed { .. }) => {}
            None => {
                groups.insert(group.to_owned(), Group::Open { worked: true });
            }
        }
    }

    /// A call failed. If it failed for good for its whole group, the group's other streams
    /// end with `error` (the first such error of the group stays); access denied in a group
    /// that accepted a put is about its stream, and ends no other.
    pub fn fail(&self, error: &AwsError) {
        if !error.ends_group() {
            return;
        }
        let mut groups = self.lock();
        let state = groups
            .entry(error.destination.group.clone())
            .or_insert(Group::Open { worked: false });
        let about_its_stream = error.kind == ErrorKind::Denied
            && matches!(
                state,
                Group::Trying { worked: true } | Group::Open { worked: true }
            );
        if !about_its_stream && !matches!(state, Group::Failed { .. }) {
            *state = Group::Failed {
                error: error.clone(),
                ended: HashSet::new(),
            };
        }
        drop(groups);
        self.turn.notify_waiters();
    }

    /// The groups that failed for good, each with its error and how many other streams it
    /// ended; in the order of their names.
    pub fn ended(&self) -> Vec<(AwsError, usize)> {
        let groups = self.lock();
        let mut failed: Vec<(AwsError, usize)> = groups
            .values()
            .filter_map(|g| match g {
                Group::Failed { error, ended } => Some((error.clone(), ended.len())),
                _ => None,
            })
            .collect();
        failed.sort_by(|a, b| a.0.destination.group.cmp(&b.0.destination.group));
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(group: &str, stream: &str) -> Destination {
        Destination {
            group: group.to_owned(),
            stream: stream.to_owned(),
        }
    }

    fn error(kind: ErrorKind, operation: &'static str, destination: Destination) -> AwsError {
        AwsError {
            operation,
            destination,
            kind,
            code: None,
            message: String::new(),
        }
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(f))
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    #[test]
    fn new_streams_are_counted_and_capped() {
        let gate = Gate::new(2);
        assert!(gate.take_new_stream());
        assert!(gate.take_new_stream());
        assert!(!gate.take_new_stream());
        assert!(!gate.take_new_stream());
        assert_eq!(gate.waiting(), 2);
        let none = Gate::new(0);
        assert!(!none.take_new_stream());
        assert_eq!(none.waiting(), 1);
    }

    #[test]
    fn a_new_group_is_tried_by_one_stream_first() {
        run(async {
            let gate = Gate::new(10);
            let first = gate.enter(&to("g", "a"), false).await.unwrap();
            assert!(first.is_first());
            // Another group, and a group the instance knows, go at once.
            assert!(gate.enter(&to("h", "a"), false).await.unwrap().is_first());
            assert!(!gate.enter(&to("k", "a"), true).await.unwrap().is_first());
            // The group's second stream waits until the first is done, then goes.
            let b = to("g", "b");
            let second = gate.enter(&b, false);
            let mut second = std::pin::pin!(second);
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            assert!(second.as_mut().poll(&mut cx).is_pending());
            drop(first);
            match second.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(Ok(turn)) => assert!(!turn.is_first()),
                other => panic!("{other:?}"),
            }
        });
    }

    #[test]
    fn a_group_that_fails_for_good_ends_its_other_streams_once_each() {
        run(async {
            let gate = Gate::new(10);
            let first = gate.enter(&to("g", "a"), false).await.unwrap();
            let missing = error(ErrorKind::NotFound, "CreateLogStream", to("g", "a"));
            gate.fail(&missing);
            drop(first);
            for stream in ["b", "c", "c"] {
                let e = gate.enter(&to("g", stream), false).await.unwrap_err();
                assert_eq!(e.destination, to("g", "a"), "the first stream's error");
            }
            assert!(gate.check(&to("g", "d")).is_err());
            assert!(gate.check(&to("g", "a")).is_err());
            assert!(gate.check(&to("other", "a")).is_ok());
            let ended = gate.ended();
            assert_eq!(ended.len(), 1);
            assert_eq!(ended[0].1, 3, "b, c, d: not a itself, c once");
            // A later error of the group does not replace the first.
            gate.fail(&error(ErrorKind::Denied, "PutLogEvents", to("g", "x")));
            assert_eq!(gate.ended()[0].0.kind, ErrorKind::NotFound);
        });
    }

    #[test]
    fn only_errors_of_the_whole_group_end_it() {
        let gate = Gate::new(10);
        for (kind, operation) in [
            (ErrorKind::Throttled, "CreateLogStream"),
            (ErrorKind::Server, "PutLogEvents"),
            (ErrorKind::Credentials, "PutLogEvents"),
            // A missing stream, not its group: the other streams may exist.
            (ErrorKind::NotFound, "PutLogEvents"),
            (ErrorKind::InvalidParameter, "PutLogEvents"),
        ] {
            gate.fail(&error(kind, operation, to("g", "a")));
            assert!(gate.check(&to("g", "b")).is_ok(), "{kind:?} {operation}");
        }
        gate.fail(&error(ErrorKind::Denied, "PutLogEvents", to("g", "a")));
        assert!(gate.check(&to("g", "b")).is_err());
    }

    #[test]
    fn a_denial_after_an_accepted_put_is_about_its_stream() {
        run(async {
            let gate = Gate::new(10);
            let denied = |s| error(ErrorKind::Denied, "PutLogEvents", to("g", s));
            // Accepted in this flush.
            let first = gate.enter(&to("g", "a"), false).await.unwrap();
            gate.worked("g");
            drop(first);
            gate.fail(&denied("b"));
            assert!(gate.enter(&to("g", "c"), false).await.is_ok());
            assert!(gate.check(&to("g", "c")).is_ok());
            // Accepted lately (known at entry).
            let _ = gate.enter(&to("k", "a"), true).await.unwrap();
            gate.fail(&error(ErrorKind::Denied, "CreateLogStream", to("k", "a")));
            assert!(gate.check(&to("k", "b")).is_ok());
            // A missing group is missing for every stream, whatever worked before.
            gate.fail(&error(ErrorKind::NotFound, "CreateLogStream", to("k", "z")));
            assert!(gate.check(&to("k", "b")).is_err());
            assert!(
                gate.ended()
                    .iter()
                    .all(|(e, _)| e.kind == ErrorKind::NotFound)
            );
        });
    }
}

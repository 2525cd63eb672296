//! The sending policy of one flush: a chunk's events → PutLogEvents requests, each with a
//! stable [`RequestKey`], sent concurrently (bounded by the deliverer's
//! `max_concurrent_requests`; requests that share an event time across their boundary go in
//! order), and the fixes for what CloudWatch refuses in a request.
//!
//! - A request CloudWatch refuses with `InvalidParameterException` that holds an event over
//!   the older 256 KiB per-event limit is re-cut to that limit by the `oversize_event`
//!   policy and its parts sent (`…/r0`, `…/r1`, …).
//! - Any other refused request is halved once (`…/h0`, `…/h1`); a half still refused is
//!   dropped with an error line (resending it unchanged could never succeed).
//!
//! Every request's fate is recorded in the flush's [`Progress`]: settled (accepted, or
//! dropped with a counted reason) or split. On `FLB_RETRY` the ledger keeps it, and the
//! retried chunk sends exactly the requests that were not settled, split the same way.
//!
//! A chunk may spread over many streams (names from record keys). The flush's [`Gate`]
//! keeps that from multiplying calls that cannot succeed or that the account cannot afford:
//! - a group new to the instance is tried by one of its streams first; if that finds the
//!   group missing (`auto_create_group` off) or access denied, the group's other streams end
//!   with the same error and without a call (the chunk is retried, as for the first), with
//!   one line per group;
//! - a flush creates at most [`MAX_NEW_STREAMS_PER_FLUSH`] streams, in the order its streams
//!   go; the streams beyond wait for the chunk's retry (one line), which skips the settled
//!   ones and goes on with them.
//!
//! Must not: make AWS calls itself (that is [`Deliverer`]'s), or count and log anything
//! but through the [`Reporter`].

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use crate::batch::{self, EVENT_OVERHEAD, Event, LEGACY_MAX_EVENT_BYTES};
use crate::config::Oversize;
use crate::deliver::{AwsError, Deliverer, Destination};
use crate::entity::{Entities, Entity};
use crate::gate::Gate;
use crate::ledger::{Progress, RequestKey, Split};
use crate::prepare::{Prepared, recut};
use crate::report::Reporter;
use crate::retry::{Budget, ErrorKind};
use crate::runtime;

/// New streams one flush may create (CreateLogStream calls, but for a stream deleted behind
/// the plugin's back and created again). CloudWatch allows 50 CreateLogStream calls a second
/// per account and region, shared by every task that writes there (hundreds of sidecars):
/// one flush takes at most one second of that quota, whatever its chunk's fan-out, instead
/// of holding the account's quota (and its own flush) for as long as thousands of streams
/// take. Streams beyond wait for the chunk's retry. With Fluent Bit's default `Retry_Limit
/// 1` (two flushes of a chunk) a chunk reaches 2 × 50 new streams; the guide's "Many
/// streams from one chunk" (`docs/guide.md`) says what more costs and which settings to use.
pub const MAX_NEW_STREAMS_PER_FLUSH: usize = 50;

/// One flush's sending: what it sends with, and how far it got.
pub struct Flush<'a> {
    pub deliverer: &'a Arc<Deliverer>,
    pub report: &'a Reporter,
    pub oversize: Oversize,
    pub tag: &'a str,
    pub budget: &'a Budget,
    gate: Gate,
    progress: Mutex<Progress>,
}

/// How a flush's sending ended.
#[derive(Debug)]
pub enum Sent {
    /// Every request was settled.
    All,
    /// A call failed (the first error): the chunk is to be retried.
    Failed(AwsError),
    /// No call failed, but streams wait for the chunk's retry (the flush's new streams were
    /// used up; the warning is logged).
    Waiting,
}

type Sending<'b> = Pin<Box<dyn Future<Output = Result<(), AwsError>> + 'b>>;

/// What a request's events refer to: the buffer their messages lie in, and their entity.
type Payload<'b> = (&'b Arc<Vec<u8>>, Option<&'b Entity>);

impl<'a> Flush<'a> {
    /// A flush that starts from `progress` (what an earlier try of the same chunk settled).
    pub fn new(
        deliverer: &'a Arc<Deliverer>,
        report: &'a Reporter,
        oversize: Oversize,
        tag: &'a str,
        budget: &'a Budget,
        progress: Progress,
    ) -> Self {
        Flush {
            deliverer,
            report,
            oversize,
            tag,
            budget,
            gate: Gate::new(MAX_NEW_STREAMS_PER_FLUSH),
            progress: Mutex::new(progress),
        }
    }

    /// What this flush and the earlier tries of the chunk settled.
    pub fn into_progress(self) -> Progress {
        self.progress
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn with_progress<T>(&self, f: impl FnOnce(&mut Progress) -> T) -> T {
        f(&mut self.progress.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sends every stream's requests, all concurrently (within what the gate lets go).
    /// Every request that could be sent was sent; logs the streams the gate ended or held
    /// back, once per group and once per flush.
    pub async fn send(&self, prepared: &mut Prepared) -> Sent {
        // Shared with the request bodies, which are written from it as they are sent.
        let messages = &Arc::new(std::mem::take(&mut prepared.messages));
        let entities = &std::mem::take(&mut prepared.entities);
        // Streams a call was denied for lately go last, so that a group is tried first with
        // another stream (IAM can allow a group's streams one by one).
        let (mut streams, mut denied) = (Vec::new(), Vec::new());
        for (destination, events) in prepared.streams.iter_mut() {
            let later = self.deliverer.denied_lately(destination);
            let stream = self.stream(destination, messages, entities, events);
            if later {
                denied.push(stream);
            } else {
                streams.push(stream);
            }
        }
        streams.append(&mut denied);
        let error = runtime::join_all(streams)
            .await
            .into_iter()
            .flatten()
            .next();
        for (error, n) in self.gate.ended() {
            if n > 0 {
                self.report.group_ended(self.tag, &error, n);
            }
        }
        let waiting = self.gate.waiting();
        if waiting > 0 {
            self.report
                .streams_waiting(self.tag, MAX_NEW_STREAMS_PER_FLUSH, waiting);
        }
        match error {
            Some(e) => Sent::Failed(e),
            None if waiting > 0 => Sent::Waiting,
            None => Sent::All,
        }
    }

    /// One stream: its batches in time order (per entity), each a request.
    async fn stream(
        &self,
        destination: &Destination,
        messages: &Arc<Vec<u8>>,
        entities: &Entities,
        events: &mut [Event],
    ) -> Option<AwsError> {
        let plan = batch::plan(events);
        let keys: Vec<RequestKey> = (0..plan.len())
            .map(|n| RequestKey::batch(&destination.group, &destination.stream, n))
            .collect();
        if keys.iter().all(|k| self.with_progress(|p| p.is_settled(k))) {
            self.report.not_resent(destination, keys.len());
            return None;
        }
        let known = self.deliverer.knows_group(&destination.group);
        // Held until the stream is done: if it tries its group first, the group's other
        // streams wait for it.
        let _turn = match self.gate.enter(destination, known).await {
            Ok(turn) => turn,
            Err(e) => return Some(e),
        };
        // After the group's check (a stream of a failed group ends, it does not wait). The
        // streams take the flush's new streams in the order they go; what one flush does not
        // create, the chunk's retry does (settled streams are skipped).
        if self.deliverer.must_create(destination) && !self.gate.take_new_stream() {
            return None;
        }
        if let Err(e) = self
            .deliverer
            .ensure_stream(self.budget, &self.gate, destination)
            .await
        {
            return Some(e);
        }
        let events = &*events;
        // Requests go at once, except that requests whose events share a time across their
        // boundary go one after another: CloudWatch keeps events of equal time in the order
        // they arrive, and the pieces of a split message (or the records of one instant)
        // must stay in order. Such a chain stops at its first failure, for the same reason.
        // (Records of one instant with different entities are in different requests, and
        // may be stored in either order.)
        let mut chains: Vec<Vec<(Range<usize>, RequestKey)>> = Vec::new();
        for (range, key) in plan.into_iter().zip(keys) {
            let same_time =
                chains
                    .last()
                    .and_then(|chain| chain.last())
                    .is_some_and(|(prev, _)| {
                        events[prev.end - 1].timestamp_ms == events[range.start].timestamp_ms
                    });
            match chains.last_mut() {
                Some(chain) if same_time => chain.push((range, key)),
                _ => chains.push(vec![(range, key)]),
            }
        }
        let sends = chains
            .into_iter()
            .map(|chain| async move {
                for (range, key) in chain {
                    let entity = events.get(range.start).and_then(|e| entities.get(e.entity));
                    self.request(destination, key, (messages, entity), &events[range])
                        .await?;
                }
                Ok::<(), AwsError>(())
            })
            .collect();
        runtime::join_all(sends)
            .await
            .into_iter()
            .find_map(Result::err)
    }

    /// One request, unless settled before; split as before if it was split before. Its
    /// events' messages lie in `messages`; `entity` goes with them.
    fn request<'b>(
        &'b self,
        destination: &'b Destination,
        key: RequestKey,
        (messages, entity): Payload<'b>,
        batch: &'b [Event],
    ) -> Sending<'b> {
        Box::pin(async move {
            let (settled, split) = self.with_progress(|p| (p.is_settled(&key), p.split_of(&key)));
            if settled {
                self.report.not_resent(destination, 1);
                return Ok(());
            }
            match split {
                Some(Split::Halved) => {
                    return self
                        .halves(destination, &key, (messages, entity), batch)
                        .await;
                }
                Some(Split::Recut) => {
                    return self
                        .recut(destination, &key, (messages, entity), batch, false)
                        .await;
                }
                None => {}
            }
            let e = match self
                .deliverer
                .put_batch(
                    self.budget,
                    &self.gate,
                    destination,
                    messages,
                    entity,
                    batch,
                )
                .await
            {
                Ok(rejected) => {
                    self.report
                        .accepted(self.tag, destination, batch, &rejected);
                    self.with_progress(|p| p.settle(key));
                    return Ok(());
                }
                Err(e) if e.kind == ErrorKind::InvalidParameter => e,
                Err(e) => return Err(e),
            };
            // CloudWatch will not take this request as it is.
            if batch.iter().any(|e| e.cost() > LEGACY_MAX_EVENT_BYTES) {
                let max = LEGACY_MAX_EVENT_BYTES - EVENT_OVERHEAD;
                self.report.recutting(&e, max, self.oversize);
                self.with_progress(|p| p.set_split(key.clone(), Split::Recut));
                self.recut(destination, &key, (messages, entity), batch, true)
                    .await
            } else if !key.is_half() && batch.len() > 1 {
                self.report.halving(&e, batch.len());
                self.with_progress(|p| p.set_split(key.clone(), Split::Halved));
                self.halves(destination, &key, (messages, entity), batch)
                    .await
            } else {
                self.report.dropped(&e, self.tag, batch);
                self.with_progress(|p| p.settle(key));
                Ok(())
            }
        })
    }

    /// Both halves of a request, the second even when the first fails.
    async fn halves(
        &self,
        destination: &Destination,
        key: &RequestKey,
        payload: Payload<'_>,
        batch: &[Event],
    ) -> Result<(), AwsError> {
        let (a, b) = batch.split_at(batch.len() / 2);
        let first = self
            .request(destination, key.part(Split::Halved, 0), payload, a)
            .await;
        let second = self
            .request(destination, key.part(Split::Halved, 1), payload, b)
            .await;
        first.and(second)
    }

    /// The request's events cut to the older per-event limit by the `oversize_event`
    /// policy (deterministic: a retry cuts the same parts), then batched and sent.
    async fn recut(
        &self,
        destination: &Destination,
        key: &RequestKey,
        (messages, entity): Payload<'_>,
        batch: &[Event],
        first_time: bool,
    ) -> Result<(), AwsError> {
        let max = LEGACY_MAX_EVENT_BYTES - EVENT_OVERHEAD;
        let (smaller, mut events, done) = recut(messages, batch, max, self.oversize);
        let smaller = Arc::new(smaller);
        if first_time {
            self.report.oversized(self.tag, &done, max);
        }
        let mut result = Ok(());
        for (i, range) in batch::plan(&mut events).into_iter().enumerate() {
            let part = self
                .request(
                    destination,
                    key.part(Split::Recut, i),
                    (&smaller, entity),
                    &events[range],
                )
                .await;
            result = result.and(part);
        }
        result
    }
}

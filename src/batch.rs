//! Events of one stream → PutLogEvents batches that CloudWatch accepts.
//!
//! The rules, from the PutLogEvents reference: events in chronological order; at most
//! 10,000 events; at most 1,048,576 bytes, counted as the UTF-8 bytes of each message plus
//! 26; the first and last event less than 24 hours apart. Pure: no I/O, no clock.

use std::ops::Range;

/// PutLogEvents' limit on the bytes of a batch (messages + [`EVENT_OVERHEAD`] each).
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes CloudWatch adds to each message when counting a batch.
pub const EVENT_OVERHEAD: usize = 26;
/// PutLogEvents' limit on the events of a batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// The span a batch must stay under, first to last event, in milliseconds.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// The largest message that fits a batch: CloudWatch takes up to 1 MB per event, counted
/// with its 26 bytes of overhead. `max_event_size` is at most this.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES - EVENT_OVERHEAD;
/// The per-event limit some regions and older documentation still have (256 KiB, counted
/// with the overhead). A batch CloudWatch rejects as "too large" is re-cut to fit it.
pub const LEGACY_MAX_EVENT_BYTES: usize = 262_144;

/// One log event: its time, where its message lies in the chunk's message buffer (in its
/// wire form: escaped for the PutLogEvents body, see [`crate::encode::Out`]), the
/// message's own bytes, which are what CloudWatch counts, and its record's entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub timestamp_ms: i64,
    pub message: Range<usize>,
    pub size: usize,
    /// The number of its record's entity among the chunk's ([`crate::entity::Entities`]);
    /// 0: none.
    pub entity: u32,
}

impl Event {
    /// An event without an entity.
    pub fn new(timestamp_ms: i64, message: Range<usize>, size: usize) -> Self {
        Event {
            timestamp_ms,
            message,
            size,
            entity: 0,
        }
    }

    /// The same event, of the entity numbered `entity`.
    pub fn with_entity(self, entity: u32) -> Self {
        Event { entity, ..self }
    }

    /// Bytes this event counts for in a batch.
    pub fn cost(&self) -> usize {
        self.size + EVENT_OVERHEAD
    }
}

/// Sorts `events` by entity, then time (stable: equal times keep record order) and cuts
/// them into batches, returned as ranges of the sorted slice. A PutLogEvents call has one
/// entity, so events of different entities are in different batches.
///
/// Every message must be at most [`MAX_MESSAGE_BYTES`]; `max_event_size` guarantees it.
pub fn plan(events: &mut [Event]) -> Vec<Range<usize>> {
    events.sort_by_key(|e| (e.entity, e.timestamp_ms));
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, event) in events.iter().enumerate() {
        let full = i - start == MAX_BATCH_EVENTS
            || bytes + event.cost() > MAX_BATCH_BYTES
            || event.entity != events[start].entity
            || event.timestamp_ms - events[start].timestamp_ms >= MAX_BATCH_SPAN_MS;
        if i > start && full {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += event.cost();
    }
    if start < events.len() {
        batches.push(start..events.len());
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, len: usize) -> Event {
        Event::new(ts, 0..len, len)
    }

    fn check(events: &[Event], batches: &[Range<usize>]) {
        let mut next = 0;
        for b in batches {
            assert_eq!(b.start, next, "batches cover every event once");
            next = b.end;
            let batch = &events[b.clone()];
            assert!(!batch.is_empty());
            assert!(batch.len() <= MAX_BATCH_EVENTS);
            assert!(batch.iter().map(Event::cost).sum::<usize>() <= MAX_BATCH_BYTES);
            assert!(batch.iter().all(|e| e.entity == batch[0].entity));
            assert!(
                batch
                    .windows(2)
                    .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
            );
            assert!(batch.last().unwrap().timestamp_ms - batch[0].timestamp_ms < MAX_BATCH_SPAN_MS);
        }
        assert_eq!(next, events.len());
    }

    #[test]
    fn sorts_stably() {
        let mut events = vec![
            Event::new(2, 0..1, 1),
            Event::new(1, 1..2, 1),
            Event::new(2, 2..3, 1),
            Event::new(1, 3..4, 1),
        ];
        assert_eq!(plan(&mut events), vec![0..4]);
        let order: Vec<_> = events.iter().map(|e| e.message.start).collect();
        assert_eq!(order, vec![1, 3, 0, 2]);
    }

    #[test]
    fn one_entity_per_batch() {
        let mut events = vec![
            ev(3, 1).with_entity(2),
            ev(1, 1),
            ev(2, 1).with_entity(1),
            ev(0, 1).with_entity(2),
            ev(4, 1),
        ];
        let batches = plan(&mut events);
        assert_eq!(batches, vec![0..2, 2..3, 3..5]);
        let order: Vec<_> = events.iter().map(|e| (e.entity, e.timestamp_ms)).collect();
        assert_eq!(order, vec![(0, 1), (0, 4), (1, 2), (2, 0), (2, 3)]);
        check(&events, &batches);
    }

    #[test]
    fn splits_at_count() {
        let mut events: Vec<_> = (0..25_001).map(|i| ev(i, 1)).collect();
        let batches = plan(&mut events);
        assert_eq!(batches, vec![0..10_000, 10_000..20_000, 20_000..25_001]);
        check(&events, &batches);
    }

    #[test]
    fn splits_at_bytes_exactly() {
        // Four events of exactly a quarter of the limit fit; a fifth does not.
        let quarter = MAX_BATCH_BYTES / 4 - EVENT_OVERHEAD;
        let mut events: Vec<_> = (0..5).map(|i| ev(i, quarter)).collect();
        let batches = plan(&mut events);
        assert_eq!(batches, vec![0..4, 4..5]);
        check(&events, &batches);
        let mut big = vec![ev(0, MAX_MESSAGE_BYTES), ev(1, MAX_MESSAGE_BYTES)];
        assert_eq!(plan(&mut big), vec![0..1, 1..2]);
    }

    #[test]
    fn splits_at_24_hours() {
        let mut events = vec![
            ev(0, 1),
            ev(MAX_BATCH_SPAN_MS - 1, 1),
            ev(MAX_BATCH_SPAN_MS, 1),
            ev(3 * MAX_BATCH_SPAN_MS, 1),
        ];
        let batches = plan(&mut events);
        assert_eq!(batches, vec![0..2, 2..3, 3..4]);
        check(&events, &batches);
    }

    #[test]
    fn mixed_sizes_and_times_obey_every_rule() {
        // A deterministic pseudo-random mix (the property tests come with the events issue).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut events: Vec<_> = (0..30_000)
            .map(|_| {
                ev(
                    (next() % (3 * MAX_BATCH_SPAN_MS as u64)) as i64,
                    (next() % 5_000) as usize,
                )
            })
            .collect();
        let batches = plan(&mut events);
        check(&events, &batches);
        assert_eq!(plan(&mut []), Vec::<Range<usize>>::new());
    }
}

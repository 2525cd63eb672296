//! What CloudWatch already has of a chunk that Fluent Bit will flush again, so that the retry
//! sends exactly the requests that were not accepted (no duplicates, nothing lost).
//!
//! The unit is the request, not the batch: a chunk becomes a plan of PutLogEvents requests,
//! each with a stable [`RequestKey`] — its stream, its batch number in that stream, and the
//! splits that made it (a batch halved after an `InvalidParameterException`, or re-cut to
//! an older per-event limit). [`Progress`] records which requests are settled (accepted, or
//! dropped with a counted reason) and which batches were split, and how. When a flush
//! answers `FLB_RETRY`, the ledger keeps its progress; Fluent Bit later hands the very same
//! bytes with the same tag, `prepare` and `batch::plan` are deterministic, so the same
//! requests come out with the same keys: settled ones are skipped, and a batch split before
//! is split the same way again instead of being sent whole.
//!
//! Bounded: at most [`MAX_ENTRIES`] chunks and [`MAX_BYTES`] of keys, each entry forgotten
//! after [`TTL`] (Fluent Bit's retries come well within it) or when its retry succeeds. The
//! normal path costs one comparison of the tag and length with each pending entry; the chunk
//! is hashed only when one matches.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Chunks remembered at most.
pub const MAX_ENTRIES: usize = 256;
/// Bytes of remembered keys at most (names are up to 512 bytes each).
pub const MAX_BYTES: usize = 8 << 20;
/// How long an entry is kept.
pub const TTL: Duration = Duration::from_secs(6 * 3600);

/// One PutLogEvents request of a chunk's plan: group, stream, and its path — the batch
/// number among the stream's batches, then `/h0`, `/h1` for halves and `/r0`, `/r1`, … for
/// the parts of a re-cut (`"3"`, `"3/h1"`, `"3/h1/r0"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    pub group: String,
    pub stream: String,
    pub path: String,
}

impl RequestKey {
    pub fn batch(group: &str, stream: &str, number: usize) -> Self {
        RequestKey {
            group: group.to_owned(),
            stream: stream.to_owned(),
            path: number.to_string(),
        }
    }

    /// The key of part `index` of this request after a split of `kind`.
    pub fn part(&self, kind: Split, index: usize) -> Self {
        let letter = match kind {
            Split::Halved => 'h',
            Split::Recut => 'r',
        };
        RequestKey {
            group: self.group.clone(),
            stream: self.stream.clone(),
            path: format!("{}/{letter}{index}", self.path),
        }
    }

    /// Whether this request is a half already (a batch is halved at most once).
    pub fn is_half(&self) -> bool {
        self.path.contains("/h")
    }

    fn bytes(&self) -> usize {
        self.group.len() + self.stream.len() + self.path.len() + 3 * size_of::<String>()
    }
}

/// How a refused request was split into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// In two halves (a batch CloudWatch judged malformed).
    Halved,
    /// Its events cut to the older 256 KiB per-event limit, then batched again.
    Recut,
}

/// Which requests of a chunk are settled, and which were split.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    settled: HashSet<RequestKey>,
    splits: HashMap<RequestKey, Split>,
}

impl Progress {
    /// Accepted by CloudWatch, or dropped with a counted reason: never sent again.
    pub fn is_settled(&self, key: &RequestKey) -> bool {
        self.settled.contains(key)
    }

    pub fn settle(&mut self, key: RequestKey) {
        self.settled.insert(key);
    }

    pub fn split_of(&self, key: &RequestKey) -> Option<Split> {
        self.splits.get(key).copied()
    }

    pub fn set_split(&mut self, key: RequestKey, split: Split) {
        self.splits.insert(key, split);
    }

    pub fn is_empty(&self) -> bool {
        self.settled.is_empty() && self.splits.is_empty()
    }

    fn bytes(&self) -> usize {
        self.settled.iter().map(RequestKey::bytes).sum::<usize>()
            + self.splits.keys().map(|k| k.bytes() + 8).sum::<usize>()
    }
}

#[derive(Debug)]
struct Entry {
    tag: String,
    len: usize,
    hash: u64,
    progress: Progress,
    bytes: usize,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<Vec<Entry>>,
}

fn hash(chunk: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    chunk.hash(&mut h);
    h.finish()
}

impl Ledger {
    /// The progress of this chunk if it was seen failing before (else empty); the entry is
    /// taken out (a new failure puts it back with [`Ledger::remember`]).
    pub fn take(&self, tag: &str, chunk: &[u8]) -> Progress {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        entries.retain(|e| now.duration_since(e.at) < TTL);
        if !entries.iter().any(|e| e.len == chunk.len() && e.tag == tag) {
            return Progress::default();
        }
        let h = hash(chunk);
        match entries
            .iter()
            .position(|e| e.len == chunk.len() && e.tag == tag && e.hash == h)
        {
            Some(i) => entries.swap_remove(i).progress,
            None => Progress::default(),
        }
    }

    /// Records the progress of a chunk whose flush answered `FLB_RETRY`.
    pub fn remember(&self, tag: &str, chunk: &[u8], progress: Progress) {
        if progress.is_empty() {
            return;
        }
        let bytes = progress.bytes() + tag.len();
        if bytes > MAX_BYTES {
            return; // At worst the retry resends (duplicates), never loses.
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest go first: at worst their retries resend what was accepted.
        while entries.len() >= MAX_ENTRIES
            || entries.iter().map(|e| e.bytes).sum::<usize>() + bytes > MAX_BYTES
        {
            let Some(oldest) = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.at)
                .map(|(i, _)| i)
            else {
                break;
            };
            entries.swap_remove(oldest);
        }
        entries.push(Entry {
            tag: tag.to_owned(),
            len: chunk.len(),
            hash: hash(chunk),
            progress,
            bytes,
            at: Instant::now(),
        });
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys held.
    pub fn bytes(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| e.bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(n: &[usize]) -> Progress {
        let mut p = Progress::default();
        for &i in n {
            p.settle(RequestKey::batch("g", "s", i));
        }
        p
    }

    #[test]
    fn remembers_per_chunk_and_tag_and_forgets_on_take() {
        let l = Ledger::default();
        l.remember("t", b"chunk", settled(&[0, 1]));
        assert!(l.take("other", b"chunk").is_empty());
        assert!(l.take("t", b"chunK").is_empty(), "same length, other bytes");
        assert_eq!(l.take("t", b"chunk"), settled(&[0, 1]));
        assert!(l.take("t", b"chunk").is_empty(), "taken");
        l.remember("t", b"chunk", Progress::default());
        assert!(l.is_empty(), "nothing accepted: nothing to remember");
    }

    #[test]
    fn keys_of_parts_are_stable_and_distinct() {
        let k = RequestKey::batch("g", "s", 3);
        let h1 = k.part(Split::Halved, 1);
        assert_eq!(h1.path, "3/h1");
        assert!(h1.is_half() && !k.is_half());
        assert_eq!(h1.part(Split::Recut, 0).path, "3/h1/r0");
        assert_ne!(k.part(Split::Halved, 0), k.part(Split::Recut, 0));
    }

    #[test]
    fn is_bounded_by_entries_and_bytes() {
        let l = Ledger::default();
        for i in 0..MAX_ENTRIES + 10 {
            l.remember("t", i.to_string().as_bytes(), settled(&[0]));
        }
        assert_eq!(l.len(), MAX_ENTRIES);
        let l = Ledger::default();
        let long = "s".repeat(512);
        for i in 0..200 {
            let mut p = Progress::default();
            for b in 0..100 {
                p.settle(RequestKey::batch(&long, &long, b));
            }
            l.remember("t", i.to_string().as_bytes(), p);
            assert!(l.bytes() <= MAX_BYTES);
        }
    }
}

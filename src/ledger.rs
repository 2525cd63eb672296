//! Which batches of a retried chunk CloudWatch already accepted, so that a retry sends only
//! the rest (no duplicates).
//!
//! When a flush answers `FLB_RETRY` after some of its batches were accepted, the ledger
//! keeps the chunk's identity and the accepted batches' keys. Fluent Bit later hands the very
//! same bytes with the same tag; `prepare` and `plan` are deterministic, so the same batches
//! come out with the same keys, and the accepted ones are skipped.
//!
//! Bounded: at most [`MAX_ENTRIES`] chunks, each forgotten after [`TTL`] (Fluent Bit's
//! retries come well within it) or when its retry succeeds. The normal path costs one
//! comparison of the tag and length with each pending entry; the chunk is hashed only when
//! one matches.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Chunks remembered at most.
pub const MAX_ENTRIES: usize = 256;
/// How long an entry is kept.
pub const TTL: Duration = Duration::from_secs(6 * 3600);

/// A batch of a chunk: its destination (group, stream) and its number among that
/// destination's batches.
pub type BatchKey = (String, String, usize);

#[derive(Debug)]
struct Entry {
    tag: String,
    len: usize,
    hash: u64,
    done: HashSet<BatchKey>,
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
    /// The batches already accepted for this chunk, if it was seen failing before; the
    /// entry is taken out (a new failure puts it back with [`Ledger::remember`]).
    pub fn take(&self, tag: &str, chunk: &[u8]) -> HashSet<BatchKey> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        entries.retain(|e| now.duration_since(e.at) < TTL);
        if !entries.iter().any(|e| e.len == chunk.len() && e.tag == tag) {
            return HashSet::new();
        }
        let h = hash(chunk);
        match entries
            .iter()
            .position(|e| e.len == chunk.len() && e.tag == tag && e.hash == h)
        {
            Some(i) => entries.swap_remove(i).done,
            None => HashSet::new(),
        }
    }

    /// Records that `done` batches of this chunk were accepted although the flush failed.
    pub fn remember(&self, tag: &str, chunk: &[u8], done: HashSet<BatchKey>) {
        if done.is_empty() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            // The oldest goes: at worst its retry resends what was accepted (duplicates),
            // never loses anything.
            if let Some(oldest) = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.at)
                .map(|(i, _)| i)
            {
                entries.swap_remove(oldest);
            }
        }
        entries.push(Entry {
            tag: tag.to_owned(),
            len: chunk.len(),
            hash: hash(chunk),
            done,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: &[usize]) -> HashSet<BatchKey> {
        n.iter().map(|&i| ("g".into(), "s".into(), i)).collect()
    }

    #[test]
    fn remembers_per_chunk_and_tag_and_forgets_on_take() {
        let l = Ledger::default();
        l.remember("t", b"chunk", keys(&[0, 1]));
        assert!(l.take("other", b"chunk").is_empty());
        assert!(l.take("t", b"chunK").is_empty(), "same length, other bytes");
        assert_eq!(l.take("t", b"chunk"), keys(&[0, 1]));
        assert!(l.take("t", b"chunk").is_empty(), "taken");
        l.remember("t", b"chunk", HashSet::new());
        assert!(l.is_empty(), "nothing accepted: nothing to remember");
    }

    #[test]
    fn is_bounded() {
        let l = Ledger::default();
        for i in 0..MAX_ENTRIES + 10 {
            l.remember("t", i.to_string().as_bytes(), keys(&[0]));
        }
        assert_eq!(l.len(), MAX_ENTRIES);
    }
}

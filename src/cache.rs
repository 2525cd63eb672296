//! A set that forgets: entries idle for longer than a time-to-live are dropped, and there
//! are never more than a hard cap of them (the least recently used goes first).
//!
//! For what an instance remembers about names that come from records or tags (streams it
//! created, groups whose settings it applied): with per-record templates or pod names as
//! stream names, a set that never forgets grows for the life of the process. Forgetting is
//! always safe here: a forgotten stream is created again (already-exists is success).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an unused entry is kept (as AWS's Go plugin forgets idle streams).
pub const IDLE_TTL: Duration = Duration::from_secs(3600);
/// The most entries kept.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct IdleSet<K> {
    inner: Mutex<Inner<K>>,
    ttl: Duration,
    cap: usize,
}

#[derive(Debug)]
struct Inner<K> {
    last_used: HashMap<K, Instant>,
    /// When expired entries were last swept.
    swept: Instant,
}

impl<K: Eq + Hash + Clone> Default for IdleSet<K> {
    fn default() -> Self {
        IdleSet::new(IDLE_TTL, MAX_ENTRIES)
    }
}

impl<K: Eq + Hash + Clone> IdleSet<K> {
    pub fn new(ttl: Duration, cap: usize) -> Self {
        IdleSet {
            inner: Mutex::new(Inner {
                last_used: HashMap::new(),
                swept: Instant::now(),
            }),
            ttl,
            cap: cap.max(1),
        }
    }

    /// Whether `key` is there (and not expired); a hit counts as a use.
    pub fn contains(&self, key: &K) -> bool {
        self.contains_at(key, Instant::now())
    }

    pub fn insert(&self, key: K) {
        self.insert_at(key, Instant::now());
    }

    pub fn remove(&self, key: &K) {
        self.lock().last_used.remove(key);
    }

    pub fn len(&self) -> usize {
        self.lock().last_used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn contains_at(&self, key: &K, now: Instant) -> bool {
        let mut inner = self.lock();
        match inner.last_used.get_mut(key) {
            Some(at) if now.saturating_duration_since(*at) < self.ttl => {
                *at = now;
                true
            }
            Some(_) => {
                inner.last_used.remove(key);
                false
            }
            None => false,
        }
    }

    fn insert_at(&self, key: K, now: Instant) {
        let mut inner = self.lock();
        let ttl = self.ttl;
        // Sweep expired entries at most once per tenth of the TTL: amortised O(1).
        if now.saturating_duration_since(inner.swept) >= ttl / 10 {
            inner
                .last_used
                .retain(|_, at| now.saturating_duration_since(*at) < ttl);
            inner.swept = now;
        }
        if !inner.last_used.contains_key(&key) && inner.last_used.len() >= self.cap {
            // Full of live entries: the least recently used tenth goes, in one pass (so
            // this O(n log n) step comes once per cap/10 inserts).
            let mut times: Vec<Instant> = inner.last_used.values().copied().collect();
            let cut = (self.cap / 10).max(1).min(times.len() - 1);
            let (_, limit, _) = times.select_nth_unstable(cut);
            let limit = *limit;
            inner.last_used.retain(|_, at| *at > limit);
        }
        inner.last_used.insert(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_idle_entries() {
        let set = IdleSet::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        set.insert_at("a", t0);
        set.insert_at("b", t0);
        assert!(
            set.contains_at(&"a", t0 + Duration::from_secs(9)),
            "used: kept"
        );
        assert!(
            !set.contains_at(&"b", t0 + Duration::from_secs(11)),
            "idle: gone"
        );
        assert!(
            set.contains_at(&"a", t0 + Duration::from_secs(18)),
            "a use renews"
        );
    }

    /// Regression (issue 13, defect 5): 100,000 distinct stream names rendered over time
    /// leave at most the cap behind, and idle ones go entirely.
    #[test]
    fn stays_bounded_under_100_000_distinct_names() {
        let set = IdleSet::new(Duration::from_secs(3600), 1000);
        let t0 = Instant::now();
        for i in 0..100_000u64 {
            // One new name every 50 ms: ~83 minutes of a name per record.
            set.insert_at(format!("pod-{i}"), t0 + Duration::from_millis(50 * i));
            assert!(set.len() <= 1000);
        }
        assert!(set.contains_at(&"pod-99999".to_owned(), t0 + Duration::from_secs(5000)));
        assert!(!set.contains_at(&"pod-0".to_owned(), t0 + Duration::from_secs(5000)));
        // Long after, one insert sweeps everything idle.
        set.insert_at("late".to_owned(), t0 + Duration::from_secs(20_000));
        assert_eq!(set.len(), 1);
    }
}

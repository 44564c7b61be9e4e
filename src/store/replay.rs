//! The inbox's replay filter on SQLite: the dedupe keys of recently stored
//! requests, in memory. One process owns a SQLite file (a second `serve`
//! refuses to start), so its memory sees every write; a UNIQUE index on the
//! random keys would cost a random B-tree page per stored request (about
//! three times the WAL pages per commit). PostgreSQL, shared by instances,
//! keeps its UNIQUE index instead.
//!
//! Pure data: the caller passes each key's receive time; nothing here reads
//! a clock or the store.

use crate::clock::Millis;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

/// How long a key is remembered. A replay of a signed request is accepted
/// by its signature for at most 10 minutes after it was first received (a
/// timestamp up to 5 minutes in the future, then 5 minutes of window);
/// platforms retry an undelivered event within minutes (after about 1 and
/// 5 minutes).
pub const REPLAY_WINDOW: Millis = 15 * 60 * 1000;

/// At most this many keys are held (about 100 MB at worst): only genuine,
/// freshly signed requests add keys, so a replay cannot push others out;
/// past this, the oldest are forgotten before their window ends.
const MAX_KEYS: usize = 4_000_000;

/// The keys seen within [`REPLAY_WINDOW`] of the newest one, as 64-bit keyed
/// hashes (the key of the hash is random per process, so collisions cannot
/// be arranged; by chance one in 10^12 at a million keys).
pub(super) struct Recent {
    /// hash → when it was reserved (the latest reservation wins on expiry).
    seen: HashMap<u64, Millis>,
    /// Reservations in arrival order, for expiry.
    order: VecDeque<(Millis, u64)>,
    hasher: std::collections::hash_map::RandomState,
    newest: Millis,
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent").field("keys", &self.seen.len()).finish()
    }
}

impl Recent {
    pub(super) fn new() -> Recent {
        Recent {
            seen: HashMap::new(),
            order: VecDeque::new(),
            hasher: Default::default(),
            newest: Millis::MIN,
        }
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Takes `key`, received at `at`, unless it was seen within the window:
    /// true when the request is new.
    pub(super) fn reserve(&mut self, key: &str, at: Millis) -> bool {
        self.newest = self.newest.max(at);
        self.expire();
        let h = self.hash(key);
        if self.seen.contains_key(&h) {
            return false;
        }
        self.seen.insert(h, at);
        self.order.push_back((at, h));
        true
    }

    /// Forgets `key` (its request was not stored after all, or was
    /// abandoned): the platform's retry is accepted.
    pub(super) fn release(&mut self, key: &str) {
        let h = self.hash(key);
        self.seen.remove(&h);
    }

    fn expire(&mut self) {
        let cutoff = self.newest.saturating_sub(REPLAY_WINDOW);
        while let Some(&(at, h)) = self.order.front() {
            if at >= cutoff && self.order.len() <= MAX_KEYS {
                break;
            }
            self.order.pop_front();
            // Only this reservation's entry: a key released and taken again
            // later has a later time.
            if self.seen.get(&h) == Some(&at) {
                self.seen.remove(&h);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_within_the_window_and_accepted_after_it() {
        let mut r = Recent::new();
        assert!(r.reserve("cmd:1", 1_000));
        assert!(!r.reserve("cmd:1", 1_000 + REPLAY_WINDOW - 1));
        assert!(r.reserve("cmd:2", 1_000 + REPLAY_WINDOW));
        // The window is over for the first key once a newer one moved it on.
        assert!(r.reserve("cmd:1", 1_001 + REPLAY_WINDOW));
    }

    #[test]
    fn a_released_key_is_accepted_again_and_expires_by_its_new_time() {
        let mut r = Recent::new();
        assert!(r.reserve("k", 0));
        r.release("k");
        assert!(r.reserve("k", 10));
        // The first reservation's expiry must not forget the second one.
        assert!(r.reserve("other", REPLAY_WINDOW + 5));
        assert!(!r.reserve("k", REPLAY_WINDOW + 6));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn old_keys_leave_memory() {
        let mut r = Recent::new();
        for i in 0..1_000 {
            assert!(r.reserve(&format!("k{i}"), i));
        }
        assert!(r.reserve("late", 2 * REPLAY_WINDOW));
        assert_eq!(r.len(), 1);
    }
}

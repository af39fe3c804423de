//! What hashing found, by file identity: (device, inode) and the stat key (size, mtime, ctime)
//! to SHA-256. Any change to a file moves its ctime (and a write its mtime), so a file is hashed
//! at most once per change; files changed within [`crate::cache::RACY_WINDOW`] of the lookup are
//! not kept (a second change inside one timestamp tick would not show). Bounded: past `cap`
//! entries the least recently used quarter goes.

use crate::cache::StatKey;
use std::collections::HashMap;
use std::time::SystemTime;

pub struct DigestCache {
    map: HashMap<StatKey, ([u8; 32], u64)>,
    cap: usize,
    tick: u64,
    pub hits: u64,
    pub misses: u64,
}

impl DigestCache {
    pub fn new(cap: usize) -> DigestCache {
        DigestCache { map: HashMap::new(), cap: cap.max(4), tick: 0, hits: 0, misses: 0 }
    }

    pub fn get(&mut self, key: &StatKey) -> Option<[u8; 32]> {
        self.tick += 1;
        let tick = self.tick;
        match self.map.get_mut(key) {
            Some((d, used)) => {
                *used = tick;
                self.hits += 1;
                Some(*d)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keeps a digest unless the file changed too recently to trust its stat key.
    pub fn insert(&mut self, key: StatKey, sha256: [u8; 32], now: SystemTime) {
        if key.racy(now) {
            return;
        }
        if self.map.len() >= self.cap {
            let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks[self.cap / 4];
            self.map.retain(|_, (_, t)| *t > cut);
        }
        self.tick += 1;
        self.map.insert(key, (sha256, self.tick));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(ino: u64, mtime: i64) -> StatKey {
        StatKey { dev: 1, ino, size: 10, mtime: (mtime, 0), ctime: (mtime, 0) }
    }

    #[test]
    fn a_changed_file_misses_and_a_racy_one_is_not_kept() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut c = DigestCache::new(16);
        c.insert(key(1, 100), [1; 32], now);
        assert_eq!(c.get(&key(1, 100)), Some([1; 32]));
        // Same inode, moved ctime/mtime: another key.
        assert_eq!(c.get(&key(1, 101)), None);
        // Changed a second ago: not trusted yet.
        c.insert(key(2, 999), [2; 32], now);
        assert_eq!(c.get(&key(2, 999)), None);
        assert_eq!((c.hits, c.misses), (1, 2));
    }

    #[test]
    fn it_stays_bounded_and_keeps_what_is_used() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut c = DigestCache::new(8);
        for i in 0..8 {
            c.insert(key(i, 1), [i as u8; 32], now);
        }
        // Inode 0 is the most recently used.
        assert!(c.get(&key(0, 1)).is_some());
        for i in 8..100 {
            c.insert(key(i, 1), [0; 32], now);
            assert!(c.len() <= 8, "{}", c.len());
        }
        assert!(!c.is_empty());
    }
}

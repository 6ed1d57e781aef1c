//! A bounded DRAM cache of decoded chunks in front of the device: with
//! O_DIRECT there is no page cache, and vector-database queries reread the
//! same index slices. Sharded to keep lock hold times short; each shard is a
//! FIFO with one reinsertion for entries hit since they were queued (CLOCK),
//! so a single large scan passes through without flushing the hot set.
//! Entries are keyed by location and content hash together: once compaction
//! reuses a segment, a location can hold other bytes, and such a lookup
//! simply misses.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::format::{ChunkRef, Location};

type Key = (Location, [u8; 32]);

const SHARDS: usize = 16;

pub struct ChunkCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity_bytes: usize,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<Key, (Bytes, bool)>,
    queue: VecDeque<Key>,
    bytes: usize,
}

impl ChunkCache {
    pub fn new(capacity_bytes: usize) -> Self {
        ChunkCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity_bytes: capacity_bytes / SHARDS,
        }
    }

    fn shard(&self, location: &Location) -> &Mutex<Shard> {
        let h = (location.segment as usize).wrapping_mul(0x9E37_79B9)
            ^ (location.offset as usize >> 12);
        &self.shards[h % SHARDS]
    }

    pub fn get(&self, chunk: &ChunkRef) -> Option<Bytes> {
        let mut shard = self.shard(&chunk.location).lock();
        let entry = shard.entries.get_mut(&(chunk.location, chunk.hash))?;
        entry.1 = true;
        Some(entry.0.clone())
    }

    pub fn insert(&self, chunk: &ChunkRef, data: Bytes) {
        if data.len() > self.shard_capacity_bytes {
            return;
        }
        let key = (chunk.location, chunk.hash);
        let mut shard = self.shard(&chunk.location).lock();
        if shard.entries.contains_key(&key) {
            return;
        }
        shard.bytes += data.len();
        shard.entries.insert(key, (data, false));
        shard.queue.push_back(key);
        while shard.bytes > self.shard_capacity_bytes {
            let Some(victim) = shard.queue.pop_front() else {
                break;
            };
            let reinsert = match shard.entries.get_mut(&victim) {
                Some(entry) if entry.1 => {
                    entry.1 = false;
                    true
                }
                Some(_) => false,
                None => continue,
            };
            if reinsert {
                shard.queue.push_back(victim);
            } else if let Some((data, _)) = shard.entries.remove(&victim) {
                shard.bytes -= data.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(i: u32) -> ChunkRef {
        ChunkRef {
            location: Location {
                segment: 0,
                offset: i * 4096,
                len: 100,
            },
            raw_len: 1000,
            hash: [0; 32],
        }
    }

    #[test]
    fn bounded_and_keeps_hot_entries_through_a_scan() {
        let cache = ChunkCache::new(SHARDS * 10_000);
        let hot = loc(0);
        cache.insert(&hot, Bytes::from(vec![1; 1000]));
        for i in 1..2000 {
            assert!(cache.get(&hot).is_some(), "hot entry evicted at {i}");
            cache.insert(&loc(i), Bytes::from(vec![2; 1000]));
        }
        let total: usize = cache.shards.iter().map(|s| s.lock().bytes).sum();
        assert!(total <= SHARDS * 10_000, "{total}");
    }
}

//! A bounded DRAM cache of decoded chunks in front of the device: with
//! O_DIRECT there is no page cache, and vector-database queries reread the
//! same index slices. Sharded to keep lock hold times short; each shard is a
//! FIFO with one reinsertion for entries hit since they were queued (CLOCK),
//! so a single large scan passes through without flushing the hot set.
//! Chunk records are never rewritten in place and segments are not reused
//! yet, so an entry never goes stale; compaction must evict a segment's
//! entries before it reuses it.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::format::Location;

const SHARDS: usize = 16;

pub struct ChunkCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity_bytes: usize,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<Location, (Bytes, bool)>,
    queue: VecDeque<Location>,
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

    pub fn get(&self, location: &Location) -> Option<Bytes> {
        let mut shard = self.shard(location).lock();
        let entry = shard.entries.get_mut(location)?;
        entry.1 = true;
        Some(entry.0.clone())
    }

    pub fn insert(&self, location: Location, data: Bytes) {
        if data.len() > self.shard_capacity_bytes {
            return;
        }
        let mut shard = self.shard(&location).lock();
        if shard.entries.contains_key(&location) {
            return;
        }
        shard.bytes += data.len();
        shard.entries.insert(location, (data, false));
        shard.queue.push_back(location);
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

    fn loc(i: u32) -> Location {
        Location {
            segment: 0,
            offset: i * 4096,
            len: 100,
        }
    }

    #[test]
    fn bounded_and_keeps_hot_entries_through_a_scan() {
        let cache = ChunkCache::new(SHARDS * 10_000);
        let hot = loc(0);
        cache.insert(hot, Bytes::from(vec![1; 1000]));
        for i in 1..2000 {
            assert!(cache.get(&hot).is_some(), "hot entry evicted at {i}");
            cache.insert(loc(i), Bytes::from(vec![2; 1000]));
        }
        let total: usize = cache.shards.iter().map(|s| s.lock().bytes).sum();
        assert!(total <= SHARDS * 10_000, "{total}");
    }
}

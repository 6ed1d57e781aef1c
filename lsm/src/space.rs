//! Who uses which bytes: a reference count per stored chunk (chunk records
//! and small objects' inline data), the content-hash table that dedup looks
//! chunks up in, each segment's live records as a roaring bitmap of offsets
//! with its live byte count, and pins for references held outside the index
//! (a body being uploaded, a copy or Complete being committed).
//!
//! None of it is stored: `Index::apply` keeps it current as records apply,
//! and recovery rebuilds it from the manifests (`SpaceMap::recount`), so a
//! counter on the device is never trusted.

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;

use crate::format::{ChunkRef, Location, SegmentHeader, SegmentKind};
use crate::index::Index;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpaceMap {
    refs: HashMap<Location, Referenced>,
    by_hash: HashMap<[u8; 32], Location>,
    segments: BTreeMap<u32, SegmentSpace>,
    pins: HashMap<Location, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Referenced {
    count: u32,
    hash: [u8; 32],
}

/// One segment's liveness.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentSpace {
    /// Order the segment was opened in (its header's sequence).
    pub sequence: u64,
    pub kind: SegmentKind,
    /// Offsets of the referenced records in it.
    pub live: RoaringBitmap,
    pub live_bytes: u64,
}

impl SpaceMap {
    /// Counts every reference the index holds: objects and open uploads' parts.
    pub fn recount(index: &Index) -> SpaceMap {
        let mut space = SpaceMap::default();
        for chunk in index.all_chunk_refs() {
            space.add_ref(chunk);
        }
        space
    }

    /// Records which incarnation `segment` holds.
    pub fn note_segment(&mut self, segment: u32, header: &SegmentHeader) {
        let space = self.segments.entry(segment).or_default();
        space.sequence = header.sequence;
        space.kind = header.kind;
    }

    pub fn add_ref(&mut self, chunk: &ChunkRef) {
        let entry = self.refs.entry(chunk.location).or_insert(Referenced {
            count: 0,
            hash: chunk.hash,
        });
        entry.count += 1;
        if entry.count == 1 {
            self.by_hash.entry(chunk.hash).or_insert(chunk.location);
            let segment = self.segments.entry(chunk.location.segment).or_default();
            segment.live.insert(chunk.location.offset);
            segment.live_bytes += chunk.location.len as u64;
        }
    }

    pub fn drop_ref(&mut self, chunk: &ChunkRef) {
        let Some(entry) = self.refs.get_mut(&chunk.location) else {
            return;
        };
        entry.count -= 1;
        if entry.count > 0 {
            return;
        }
        let hash = entry.hash;
        self.refs.remove(&chunk.location);
        if self.by_hash.get(&hash) == Some(&chunk.location) {
            self.by_hash.remove(&hash);
        }
        if let Some(segment) = self.segments.get_mut(&chunk.location.segment) {
            segment.live.remove(chunk.location.offset);
            segment.live_bytes -= chunk.location.len as u64;
        }
    }

    /// Where a referenced chunk with this content is stored, if any.
    pub fn find(&self, hash: &[u8; 32]) -> Option<Location> {
        self.by_hash.get(hash).copied()
    }

    /// Whether the record at `location` is referenced as this content.
    pub fn holds(&self, location: &Location, hash: &[u8; 32]) -> bool {
        self.refs
            .get(location)
            .is_some_and(|r| &r.hash == hash && r.count > 0)
    }

    pub fn references(&self, location: &Location) -> u32 {
        self.refs.get(location).map_or(0, |r| r.count)
    }

    pub fn pin(&mut self, location: Location) {
        *self.pins.entry(location).or_insert(0) += 1;
    }

    pub fn unpin(&mut self, location: &Location) {
        if let Some(count) = self.pins.get_mut(location) {
            *count -= 1;
            if *count == 0 {
                self.pins.remove(location);
            }
        }
    }

    pub fn is_pinned(&self, segment: u32) -> bool {
        self.pins.keys().any(|l| l.segment == segment)
    }

    pub fn segments(&self) -> &BTreeMap<u32, SegmentSpace> {
        &self.segments
    }

    pub fn segment(&self, segment: u32) -> Option<&SegmentSpace> {
        self.segments.get(&segment)
    }

    /// Offsets of the referenced records of a segment, in order.
    pub fn live_offsets(&self, segment: u32) -> Vec<u32> {
        self.segments
            .get(&segment)
            .map(|s| s.live.iter().collect())
            .unwrap_or_default()
    }

    /// Moves the references of relocated records to their new place.
    pub fn relocate(&mut self, from: Location, to: Location) {
        let Some(referenced) = self.refs.remove(&from) else {
            return;
        };
        if let Some(segment) = self.segments.get_mut(&from.segment) {
            segment.live.remove(from.offset);
            segment.live_bytes -= from.len as u64;
        }
        let segment = self.segments.entry(to.segment).or_default();
        segment.live.insert(to.offset);
        segment.live_bytes += to.len as u64;
        if self.by_hash.get(&referenced.hash) == Some(&from) {
            self.by_hash.insert(referenced.hash, to);
        }
        self.refs.insert(to, referenced);
    }

    /// Forgets a released segment (it holds nothing referenced).
    pub fn release_segment(&mut self, segment: u32) {
        self.segments.remove(&segment);
    }

    /// Counts that differ from a recount, for fsck and tests: empty when the
    /// incrementally kept figures agree with the manifests.
    pub fn differences(&self, recount: &SpaceMap) -> Vec<String> {
        let mut out = Vec::new();
        for (location, referenced) in &recount.refs {
            let kept = self.references(location);
            if kept != referenced.count {
                out.push(format!(
                    "segment {} offset {}: {} references kept, {} counted",
                    location.segment, location.offset, kept, referenced.count
                ));
            }
        }
        for (location, referenced) in &self.refs {
            if !recount.refs.contains_key(location) {
                out.push(format!(
                    "segment {} offset {}: {} references kept, none counted",
                    location.segment, location.offset, referenced.count
                ));
            }
        }
        for (segment, counted) in &recount.segments {
            let kept = self.segments.get(segment);
            if kept.map(|s| (&s.live, s.live_bytes)) != Some((&counted.live, counted.live_bytes)) {
                out.push(format!(
                    "segment {segment}: liveness differs from a recount"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(segment: u32, offset: u32, hash: u8) -> ChunkRef {
        ChunkRef {
            location: Location {
                segment,
                offset,
                len: 100,
            },
            raw_len: 68,
            hash: [hash; 32],
        }
    }

    #[test]
    fn references_drive_liveness_and_the_hash_table() {
        let mut space = SpaceMap::default();
        let a = chunk(1, 4096, 1);
        space.add_ref(&a);
        space.add_ref(&a);
        assert_eq!(space.find(&[1; 32]), Some(a.location));
        assert_eq!(space.segment(1).map(|s| s.live_bytes), Some(100));
        space.drop_ref(&a);
        assert_eq!(space.references(&a.location), 1);
        space.drop_ref(&a);
        assert_eq!(space.references(&a.location), 0);
        assert_eq!(space.find(&[1; 32]), None);
        assert_eq!(space.segment(1).map(|s| s.live_bytes), Some(0));
    }

    #[test]
    fn relocation_moves_references_and_the_hash() {
        let mut space = SpaceMap::default();
        let a = chunk(1, 4096, 1);
        space.add_ref(&a);
        let to = Location {
            segment: 2,
            offset: 8192,
            len: 100,
        };
        space.relocate(a.location, to);
        assert_eq!(space.references(&to), 1);
        assert_eq!(space.find(&[1; 32]), Some(to));
        assert_eq!(space.segment(1).map(|s| s.live_bytes), Some(0));
        assert_eq!(space.live_offsets(2), vec![8192]);
    }
}

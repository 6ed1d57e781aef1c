//! The in-memory index: buckets, objects in key order per bucket, and open
//! multipart uploads. `apply` is the one place a record changes state; the
//! writer calls it after a batch is durable and recovery calls it on replay,
//! so the live state and the recovered state cannot disagree. It decides
//! conditions (bucket exists, empty, If-None-Match) itself, deterministically,
//! in log order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::{
    decode_chunk_payload, ChunkRef, Location, MultipartCreate, MultipartPart, ObjectMeta, Record,
};
use crate::space::SpaceMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    buckets: BTreeMap<String, Bucket>,
    uploads: BTreeMap<String, Arc<Upload>>,
    /// The lsn of the newest applied record.
    pub applied_lsn: u64,
    /// Just past the newest applied record: where a replay resumes.
    pub tail: Option<LogPosition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    pub segment: u32,
    pub sequence: u64,
    pub offset: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bucket {
    pub created_ms: u64,
    objects: BTreeMap<String, Arc<ObjectEntry>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub lsn: u64,
    /// The record that made this version (put, copy or multipart complete).
    pub location: Location,
    pub meta: ObjectMeta,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub create: MultipartCreate,
    pub parts: BTreeMap<u32, Arc<MultipartPart>>,
}

/// The index and the space map, guarded by one lock: every apply changes
/// both. Only the index is checkpointed; the space map is recounted.
#[derive(Debug, Default)]
pub struct Catalog {
    pub index: Index,
    pub space: SpaceMap,
}

impl Catalog {
    /// Starts from a recovered index, recounting every reference.
    pub fn new(index: Index) -> Catalog {
        let space = SpaceMap::recount(&index);
        Catalog { index, space }
    }

    pub fn apply(&mut self, lsn: u64, location: Location, record: &Record) -> Result<()> {
        self.index.apply(lsn, location, record, &mut self.space)
    }
}

impl Upload {
    pub fn chunk_refs(&self) -> impl Iterator<Item = &ChunkRef> {
        self.parts.values().flat_map(|p| p.chunks.iter())
    }
}

/// Entries found referencing segments about to be compacted.
#[derive(Debug, Default)]
pub struct Referencing {
    objects: Vec<(String, String, Arc<ObjectEntry>)>,
    parts: Vec<(String, u32, Arc<MultipartPart>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: u64,
}

/// A page of a listing: keys and common prefixes in key order.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<(String, Arc<ObjectEntry>)>,
    pub common_prefixes: Vec<String>,
    /// Set when more follows: the last key or common prefix returned.
    pub next_marker: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Exclusive: listing starts after this key (marker, start-after,
    /// continuation token).
    pub start_after: Option<&'a str>,
    pub max_keys: usize,
}

impl Index {
    /// Applies one durable record, keeping `space`'s reference counts in
    /// step. The error is the operation's outcome (e.g. BucketNotEmpty); the
    /// record stays in the log and replays to the same outcome.
    pub fn apply(
        &mut self,
        lsn: u64,
        location: Location,
        record: &Record,
        space: &mut SpaceMap,
    ) -> Result<()> {
        self.applied_lsn = self.applied_lsn.max(lsn);
        match record {
            Record::Chunk { .. } | Record::Checkpoint(_) => Ok(()),
            Record::ObjectPut(put) => self.put_object(lsn, location, put, space),
            Record::Tombstone(t) => {
                let bucket = self.buckets.get_mut(&t.bucket).ok_or(Error::NoSuchBucket)?;
                if let Some(old) = bucket.objects.remove(&t.key) {
                    old.chunks.iter().for_each(|c| space.drop_ref(c));
                }
                Ok(())
            }
            Record::BucketCreate(op) => {
                if self.buckets.contains_key(&op.bucket) {
                    return Err(Error::BucketExists);
                }
                self.buckets.insert(
                    op.bucket.clone(),
                    Bucket {
                        created_ms: op.at_ms,
                        objects: BTreeMap::new(),
                    },
                );
                Ok(())
            }
            Record::BucketDelete(op) => {
                let bucket = self.buckets.get(&op.bucket).ok_or(Error::NoSuchBucket)?;
                let has_uploads = self.uploads.values().any(|u| u.create.bucket == op.bucket);
                if !bucket.objects.is_empty() || has_uploads {
                    return Err(Error::BucketNotEmpty);
                }
                self.buckets.remove(&op.bucket);
                Ok(())
            }
            Record::MultipartCreate(create) => {
                if !self.buckets.contains_key(&create.bucket) {
                    return Err(Error::NoSuchBucket);
                }
                self.uploads.insert(
                    create.upload_id.clone(),
                    Arc::new(Upload {
                        create: create.clone(),
                        parts: BTreeMap::new(),
                    }),
                );
                Ok(())
            }
            Record::MultipartPart(part) => {
                let upload = self
                    .uploads
                    .get_mut(&part.upload_id)
                    .ok_or(Error::NoSuchUpload)?;
                part.chunks.iter().for_each(|c| space.add_ref(c));
                let replaced = Arc::make_mut(upload)
                    .parts
                    .insert(part.part_number, Arc::new(part.clone()));
                if let Some(old) = replaced {
                    old.chunks.iter().for_each(|c| space.drop_ref(c));
                }
                Ok(())
            }
            Record::MultipartComplete(complete) => {
                if !self.uploads.contains_key(&complete.upload_id) {
                    return Err(Error::NoSuchUpload);
                }
                self.put_object(lsn, location, &complete.object, space)?;
                if let Some(upload) = self.uploads.remove(&complete.upload_id) {
                    upload.chunk_refs().for_each(|c| space.drop_ref(c));
                }
                Ok(())
            }
            Record::MultipartAbort(abort) => {
                let upload = self
                    .uploads
                    .remove(&abort.upload_id)
                    .ok_or(Error::NoSuchUpload)?;
                upload.chunk_refs().for_each(|c| space.drop_ref(c));
                Ok(())
            }
        }
    }

    fn put_object(
        &mut self,
        lsn: u64,
        location: Location,
        put: &crate::format::ObjectPut,
        space: &mut SpaceMap,
    ) -> Result<()> {
        let bucket = self
            .buckets
            .get_mut(&put.bucket)
            .ok_or(Error::NoSuchBucket)?;
        if put.if_absent && bucket.objects.contains_key(&put.key) {
            return Err(Error::PreconditionFailed);
        }
        // Inline data is read from this very record.
        let chunks = if put.inline.is_empty() {
            put.chunks.clone()
        } else {
            let hash = decode_chunk_payload(&put.inline).map_or([0; 32], |c| c.hash);
            vec![ChunkRef {
                location,
                raw_len: put.meta.size as u32,
                hash,
            }]
        };
        // New references first: an overwrite that shares chunks with the old
        // version never lets their count touch zero.
        chunks.iter().for_each(|c| space.add_ref(c));
        let replaced = bucket.objects.insert(
            put.key.clone(),
            Arc::new(ObjectEntry {
                lsn,
                location,
                meta: put.meta.clone(),
                chunks,
            }),
        );
        if let Some(old) = replaced {
            old.chunks.iter().for_each(|c| space.drop_ref(c));
        }
        Ok(())
    }

    pub fn bucket_exists(&self, bucket: &str) -> bool {
        self.buckets.contains_key(bucket)
    }

    pub fn buckets(&self) -> Vec<BucketInfo> {
        self.buckets
            .iter()
            .map(|(name, b)| BucketInfo {
                name: name.clone(),
                created_ms: b.created_ms,
            })
            .collect()
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Arc<ObjectEntry>> {
        let bucket = self.buckets.get(bucket).ok_or(Error::NoSuchBucket)?;
        bucket.objects.get(key).cloned().ok_or(Error::NoSuchKey)
    }

    pub fn upload(&self, upload_id: &str) -> Result<Arc<Upload>> {
        self.uploads
            .get(upload_id)
            .cloned()
            .ok_or(Error::NoSuchUpload)
    }

    /// Open uploads of a bucket, ordered by key then upload id.
    pub fn uploads(&self, bucket: &str, prefix: &str) -> Vec<Arc<Upload>> {
        let mut uploads: Vec<_> = self
            .uploads
            .values()
            .filter(|u| u.create.bucket == bucket && u.create.key.starts_with(prefix))
            .cloned()
            .collect();
        uploads.sort_by(|a, b| {
            (&a.create.key, &a.create.upload_id).cmp(&(&b.create.key, &b.create.upload_id))
        });
        uploads
    }

    pub fn object_count(&self) -> usize {
        self.buckets.values().map(|b| b.objects.len()).sum()
    }

    pub fn logical_bytes(&self) -> u64 {
        self.buckets
            .values()
            .flat_map(|b| b.objects.values())
            .map(|o| o.meta.size)
            .fold(0, u64::saturating_add)
    }

    /// Every live object, for fsck and statistics.
    pub fn all_objects(&self) -> impl Iterator<Item = (&str, &str, &Arc<ObjectEntry>)> {
        self.buckets.iter().flat_map(|(b, bucket)| {
            bucket
                .objects
                .iter()
                .map(move |(k, o)| (b.as_str(), k.as_str(), o))
        })
    }

    /// Every chunk reference held: objects' and open uploads' parts'.
    pub fn all_chunk_refs(&self) -> impl Iterator<Item = &ChunkRef> {
        self.all_objects()
            .flat_map(|(_, _, o)| o.chunks.iter())
            .chain(self.uploads.values().flat_map(|u| u.chunk_refs()))
    }

    /// The entries that reference records in `segments`: the first half of
    /// a relocation, taken under a read lock.
    pub fn referencing(&self, segments: &BTreeSet<u32>) -> Referencing {
        let hit = |chunks: &[ChunkRef]| {
            chunks
                .iter()
                .any(|c| segments.contains(&c.location.segment))
        };
        Referencing {
            objects: self
                .all_objects()
                .filter(|(_, _, o)| hit(&o.chunks))
                .map(|(b, k, o)| (b.to_string(), k.to_string(), o.clone()))
                .collect(),
            parts: self
                .uploads
                .iter()
                .flat_map(|(id, u)| u.parts.iter().map(move |(n, p)| (id, n, p)))
                .filter(|(_, _, p)| hit(&p.chunks))
                .map(|(id, n, p)| (id.clone(), *n, p.clone()))
                .collect(),
        }
    }

    /// The second half, under the write lock: a compare-and-set. A segment's
    /// records move only if the entries found earlier are still current and
    /// are all the references there are (nothing pinned, nothing new);
    /// otherwise that segment stays where it is. Returns the segments moved.
    pub fn relocate(
        &mut self,
        found: &Referencing,
        moved: &HashMap<Location, Location>,
        victims: &BTreeSet<u32>,
        space: &mut SpaceMap,
    ) -> BTreeSet<u32> {
        let current_objects: Vec<&(String, String, Arc<ObjectEntry>)> = found
            .objects
            .iter()
            .filter(|(b, k, o)| {
                self.buckets
                    .get(b)
                    .and_then(|bucket| bucket.objects.get(k))
                    .is_some_and(|now| Arc::ptr_eq(now, o))
            })
            .collect();
        let current_parts: Vec<&(String, u32, Arc<MultipartPart>)> = found
            .parts
            .iter()
            .filter(|(id, n, p)| {
                self.uploads
                    .get(id)
                    .and_then(|u| u.parts.get(n))
                    .is_some_and(|now| Arc::ptr_eq(now, p))
            })
            .collect();
        let mut counted: HashMap<Location, u32> = HashMap::new();
        let chunks = current_objects
            .iter()
            .flat_map(|(_, _, o)| o.chunks.iter())
            .chain(current_parts.iter().flat_map(|(_, _, p)| p.chunks.iter()));
        for chunk in chunks {
            *counted.entry(chunk.location).or_insert(0) += 1;
        }
        let mut segments = victims.clone();
        let unsettled: BTreeSet<u32> = moved
            .keys()
            .filter(|l| counted.get(l).copied().unwrap_or(0) != space.references(l))
            .map(|l| l.segment)
            .chain(segments.iter().copied().filter(|s| space.is_pinned(*s)))
            .collect();
        segments.retain(|s| !unsettled.contains(s));
        // Every referenced record of a moved segment must have a new place.
        let has_place: HashSet<(u32, u32)> = moved.keys().map(|l| (l.segment, l.offset)).collect();
        segments.retain(|s| {
            space
                .live_offsets(*s)
                .iter()
                .all(|offset| has_place.contains(&(*s, *offset)))
        });
        let remap = |chunks: &mut Vec<ChunkRef>| {
            for chunk in chunks.iter_mut() {
                if segments.contains(&chunk.location.segment) {
                    if let Some(to) = moved.get(&chunk.location) {
                        chunk.location = *to;
                    }
                }
            }
        };
        for (b, k, _) in current_objects {
            if let Some(entry) = self.buckets.get_mut(b).and_then(|x| x.objects.get_mut(k)) {
                remap(&mut Arc::make_mut(entry).chunks);
            }
        }
        for (id, n, _) in current_parts {
            if let Some(part) = self
                .uploads
                .get_mut(id)
                .and_then(|u| Arc::make_mut(u).parts.get_mut(n))
            {
                remap(&mut Arc::make_mut(part).chunks);
            }
        }
        for (from, to) in moved {
            if segments.contains(&from.segment) {
                space.relocate(*from, *to);
            }
        }
        segments
    }

    /// Keys and common prefixes in order, at most `max_keys` of them together.
    pub fn list(&self, bucket: &str, query: &ListQuery<'_>) -> Result<ListPage> {
        let objects = &self.buckets.get(bucket).ok_or(Error::NoSuchBucket)?.objects;
        let mut page = ListPage::default();
        if query.max_keys == 0 {
            return Ok(page);
        }
        let mut lower: Bound<String> = match query.start_after {
            Some(after) if after >= query.prefix => Bound::Excluded(after.to_string()),
            _ => Bound::Included(query.prefix.to_string()),
        };
        let mut returned = 0;
        'scan: loop {
            let range = objects.range::<String, _>((lower.clone(), Bound::Unbounded));
            for (key, entry) in range {
                if !key.starts_with(query.prefix) {
                    break 'scan;
                }
                if returned == query.max_keys {
                    page.next_marker = page
                        .objects
                        .last()
                        .map(|(k, _)| k.clone())
                        .into_iter()
                        .chain(page.common_prefixes.last().cloned())
                        .max();
                    break 'scan;
                }
                let rest = &key[query.prefix.len()..];
                let split = query
                    .delimiter
                    .filter(|d| !d.is_empty())
                    .and_then(|d| rest.find(d).map(|at| at + d.len()));
                match split {
                    Some(end) => {
                        let common = &key[..query.prefix.len() + end];
                        if query.start_after.is_some_and(|after| common <= after) {
                            // Resuming after this common prefix: skip its keys.
                            continue;
                        }
                        page.common_prefixes.push(common.to_string());
                        returned += 1;
                        // Jump past every key under this common prefix.
                        match prefix_successor(common) {
                            Some(next) => lower = Bound::Included(next),
                            None => break 'scan,
                        }
                        continue 'scan;
                    }
                    None => {
                        page.objects.push((key.clone(), entry.clone()));
                        returned += 1;
                    }
                }
            }
            break;
        }
        Ok(page)
    }
}

/// The least string above every string that starts with `prefix`, or
/// `None` when no string is (the prefix is all U+10FFFF). Strings compare
/// by UTF-8 bytes, which is code point order.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{BucketOp, ObjectPut, Tombstone};

    const LOC: Location = Location {
        segment: 0,
        offset: 4096,
        len: 64,
    };

    fn put(index: &mut Index, key: &str) {
        let record = Record::ObjectPut(ObjectPut {
            bucket: "b".into(),
            key: key.into(),
            meta: ObjectMeta::default(),
            chunks: vec![],
            if_absent: false,
            inline: vec![],
            inline_flags: 0,
        });
        index
            .apply(1, LOC, &record, &mut SpaceMap::default())
            .unwrap();
    }

    fn with_keys(keys: &[&str]) -> Index {
        let mut index = Index::default();
        index
            .apply(
                1,
                LOC,
                &Record::BucketCreate(BucketOp {
                    bucket: "b".into(),
                    at_ms: 0,
                }),
                &mut SpaceMap::default(),
            )
            .unwrap();
        for key in keys {
            put(&mut index, key);
        }
        index
    }

    fn names(page: &ListPage) -> (Vec<&str>, Vec<&str>) {
        (
            page.objects.iter().map(|(k, _)| k.as_str()).collect(),
            page.common_prefixes.iter().map(|s| s.as_str()).collect(),
        )
    }

    #[test]
    fn list_with_prefix_delimiter_and_paging() {
        let index = with_keys(&["a/1", "a/2", "b", "c/x/1", "c/y", "d"]);
        let all = ListQuery {
            max_keys: 1000,
            delimiter: Some("/"),
            ..Default::default()
        };
        let page = index.list("b", &all).unwrap();
        assert_eq!(names(&page), (vec!["b", "d"], vec!["a/", "c/"]));
        assert!(page.next_marker.is_none());

        // Page through two at a time; resuming after a common prefix skips its keys.
        let mut after: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let q = ListQuery {
                max_keys: 2,
                delimiter: Some("/"),
                start_after: after.as_deref(),
                ..Default::default()
            };
            let page = index.list("b", &q).unwrap();
            let (o, p) = names(&page);
            seen.extend(o.iter().chain(p.iter()).map(|s| s.to_string()));
            match page.next_marker {
                Some(m) => after = Some(m),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, vec!["a/", "b", "c/", "d"]);

        let q = ListQuery {
            prefix: "c/",
            delimiter: Some("/"),
            max_keys: 10,
            ..Default::default()
        };
        assert_eq!(
            names(&index.list("b", &q).unwrap()),
            (vec!["c/y"], vec!["c/x/"])
        );
        let q = ListQuery {
            prefix: "c/",
            max_keys: 10,
            ..Default::default()
        };
        assert_eq!(
            names(&index.list("b", &q).unwrap()),
            (vec!["c/x/1", "c/y"], vec![])
        );
    }

    /// Found by fuzzing: a key with U+10FFFF after the delimiter escaped the
    /// skip past its common prefix, which was then listed twice.
    #[test]
    fn common_prefix_is_listed_once_whatever_follows_it() {
        let index = with_keys(&[
            "a/\u{10FFFF}z",
            "a/b",
            "a/\u{10FFFF}",
            "b/\u{10FFFF}/x",
            "c",
        ]);
        let q = ListQuery {
            max_keys: 1000,
            delimiter: Some("/"),
            ..Default::default()
        };
        assert_eq!(
            names(&index.list("b", &q).unwrap()),
            (vec!["c"], vec!["a/", "b/"])
        );
        let q = ListQuery {
            prefix: "b/",
            max_keys: 1000,
            delimiter: Some("/"),
            ..Default::default()
        };
        assert_eq!(
            names(&index.list("b", &q).unwrap()),
            (vec![], vec!["b/\u{10FFFF}/"])
        );
        assert_eq!(prefix_successor("a/"), Some("a0".to_string()));
        assert_eq!(prefix_successor("a\u{10FFFF}"), Some("b".to_string()));
        assert_eq!(prefix_successor("\u{D7FF}"), Some("\u{E000}".to_string()));
        assert_eq!(prefix_successor("\u{10FFFF}\u{10FFFF}"), None);
    }

    #[test]
    fn logical_bytes_saturate_instead_of_overflowing() {
        let mut index = with_keys(&["x", "y"]);
        for entry in index.buckets.get_mut("b").unwrap().objects.values_mut() {
            Arc::make_mut(entry).meta.size = u64::MAX - 1;
        }
        assert_eq!(index.logical_bytes(), u64::MAX);
    }

    #[test]
    fn conditions_are_decided_at_apply() {
        let mut index = with_keys(&["k"]);
        let del = Record::BucketDelete(BucketOp {
            bucket: "b".into(),
            at_ms: 0,
        });
        assert!(matches!(
            index.apply(2, LOC, &del, &mut SpaceMap::default()),
            Err(Error::BucketNotEmpty)
        ));
        let again = Record::ObjectPut(ObjectPut {
            bucket: "b".into(),
            key: "k".into(),
            meta: ObjectMeta::default(),
            chunks: vec![],
            if_absent: true,
            inline: vec![],
            inline_flags: 0,
        });
        assert!(matches!(
            index.apply(3, LOC, &again, &mut SpaceMap::default()),
            Err(Error::PreconditionFailed)
        ));
        index
            .apply(
                4,
                LOC,
                &Record::Tombstone(Tombstone {
                    bucket: "b".into(),
                    key: "k".into(),
                }),
                &mut SpaceMap::default(),
            )
            .unwrap();
        index.apply(5, LOC, &del, &mut SpaceMap::default()).unwrap();
        assert!(!index.bucket_exists("b"));
        assert!(matches!(
            index.apply(6, LOC, &again, &mut SpaceMap::default()),
            Err(Error::NoSuchBucket)
        ));
    }
}

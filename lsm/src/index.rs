//! The in-memory index: buckets, objects in key order per bucket, and open
//! multipart uploads. `apply` is the one place a record changes state; the
//! writer calls it after a batch is durable and recovery calls it on replay,
//! so the live state and the recovered state cannot disagree. It decides
//! conditions (bucket exists, empty, If-None-Match) itself, deterministically,
//! in log order.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::{ChunkRef, Location, MultipartCreate, MultipartPart, ObjectMeta, Record};

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
    /// Applies one durable record. The error is the operation's outcome
    /// (e.g. BucketNotEmpty); the record stays in the log and replays to the
    /// same outcome.
    pub fn apply(&mut self, lsn: u64, location: Location, record: &Record) -> Result<()> {
        self.applied_lsn = self.applied_lsn.max(lsn);
        match record {
            Record::Chunk { .. } | Record::Checkpoint(_) => Ok(()),
            Record::ObjectPut(put) => self.put_object(lsn, location, put),
            Record::Tombstone(t) => {
                let bucket = self.buckets.get_mut(&t.bucket).ok_or(Error::NoSuchBucket)?;
                bucket.objects.remove(&t.key);
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
                Arc::make_mut(upload)
                    .parts
                    .insert(part.part_number, Arc::new(part.clone()));
                Ok(())
            }
            Record::MultipartComplete(complete) => {
                if !self.uploads.contains_key(&complete.upload_id) {
                    return Err(Error::NoSuchUpload);
                }
                self.put_object(lsn, location, &complete.object)?;
                self.uploads.remove(&complete.upload_id);
                Ok(())
            }
            Record::MultipartAbort(abort) => {
                self.uploads
                    .remove(&abort.upload_id)
                    .ok_or(Error::NoSuchUpload)?;
                Ok(())
            }
        }
    }

    fn put_object(
        &mut self,
        lsn: u64,
        location: Location,
        put: &crate::format::ObjectPut,
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
            vec![ChunkRef {
                location,
                raw_len: put.meta.size as u32,
            }]
        };
        bucket.objects.insert(
            put.key.clone(),
            Arc::new(ObjectEntry {
                lsn,
                location,
                meta: put.meta.clone(),
                chunks,
            }),
        );
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
            .sum()
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
                        lower = Bound::Excluded(format!("{common}\u{10FFFF}"));
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
        index.apply(1, LOC, &record).unwrap();
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

    #[test]
    fn conditions_are_decided_at_apply() {
        let mut index = with_keys(&["k"]);
        let del = Record::BucketDelete(BucketOp {
            bucket: "b".into(),
            at_ms: 0,
        });
        assert!(matches!(
            index.apply(2, LOC, &del),
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
            index.apply(3, LOC, &again),
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
            )
            .unwrap();
        index.apply(5, LOC, &del).unwrap();
        assert!(!index.bucket_exists("b"));
        assert!(matches!(
            index.apply(6, LOC, &again),
            Err(Error::NoSuchBucket)
        ));
    }
}

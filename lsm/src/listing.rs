//! Listings over the index: keys whose current version is an object
//! (ListObjects v1 and v2), and every version with its delete markers
//! (ListObjectVersions). Both fold keys into common prefixes at a
//! delimiter, page by a marker, and count a common prefix once.

use std::ops::Bound;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::VersionRef;
use crate::index::{Index, ObjectEntry};
use crate::versions::Versions;

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

#[derive(Debug, Clone, Default)]
pub struct VersionQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Listing starts after this key, or, with `version_marker`, after
    /// that version of it.
    pub key_marker: Option<&'a str>,
    pub version_marker: Option<VersionRef>,
    pub max_keys: usize,
}

/// One listed version.
#[derive(Debug, Clone)]
pub struct ListedVersion {
    pub key: String,
    pub entry: Arc<ObjectEntry>,
    pub is_latest: bool,
}

#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub versions: Vec<ListedVersion>,
    pub common_prefixes: Vec<String>,
    /// Set when more follows: the key and version id to resume after (no
    /// version id when the page ended with a common prefix).
    pub next: Option<(String, Option<String>)>,
}

/// Where a key folds into a common prefix, if it does.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let rest = &key[prefix.len()..];
    delimiter
        .filter(|d| !d.is_empty())
        .and_then(|d| rest.find(d).map(|at| &key[..prefix.len() + at + d.len()]))
}

impl Index {
    /// Keys whose current version is an object, and common prefixes, in
    /// order, at most `max_keys` of them together.
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
            for (key, versions) in range {
                if !key.starts_with(query.prefix) {
                    break 'scan;
                }
                let entry = versions.newest();
                if entry.delete_marker {
                    continue;
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
                match common_prefix(key, query.prefix, query.delimiter) {
                    Some(common) => {
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

    /// Every version (delete markers included), keys in order and each
    /// key's versions newest first, with common prefixes; at most
    /// `max_keys` entries and prefixes together.
    pub fn list_versions(&self, bucket: &str, query: &VersionQuery<'_>) -> Result<VersionPage> {
        let objects = &self.buckets.get(bucket).ok_or(Error::NoSuchBucket)?.objects;
        let mut page = VersionPage::default();
        if query.max_keys == 0 {
            return Ok(page);
        }
        let resume_in_key = query.key_marker.filter(|_| query.version_marker.is_some());
        let mut lower: Bound<String> = match query.key_marker {
            Some(marker) if marker >= query.prefix => match resume_in_key {
                Some(_) => Bound::Included(marker.to_string()),
                None => Bound::Excluded(marker.to_string()),
            },
            _ => Bound::Included(query.prefix.to_string()),
        };
        let mut returned = 0;
        // What was returned last, for the next page's markers.
        let mut last: Option<(String, Option<String>)> = None;
        'scan: loop {
            let range = objects.range::<String, _>((lower.clone(), Bound::Unbounded));
            for (key, versions) in range {
                if !key.starts_with(query.prefix) {
                    break 'scan;
                }
                if let Some(common) = common_prefix(key, query.prefix, query.delimiter) {
                    if query.key_marker.is_some_and(|marker| common <= marker) {
                        continue;
                    }
                    if returned == query.max_keys {
                        page.next = last;
                        break 'scan;
                    }
                    page.common_prefixes.push(common.to_string());
                    last = Some((common.to_string(), None));
                    returned += 1;
                    match prefix_successor(common) {
                        Some(next) => lower = Bound::Included(next),
                        None => break 'scan,
                    }
                    continue 'scan;
                }
                for (i, entry) in versions_after(versions, key, resume_in_key, query.version_marker)
                {
                    if returned == query.max_keys {
                        page.next = last;
                        break 'scan;
                    }
                    page.versions.push(ListedVersion {
                        key: key.clone(),
                        entry: entry.clone(),
                        is_latest: i == 0,
                    });
                    last = Some((key.clone(), Some(entry.version_id())));
                    returned += 1;
                }
            }
            break;
        }
        Ok(page)
    }
}

/// A key's versions newest first, with their rank (0 = the latest): after
/// the marker version when resuming inside this key.
fn versions_after<'v>(
    versions: &'v Versions,
    key: &str,
    resume_in_key: Option<&str>,
    marker: Option<VersionRef>,
) -> impl Iterator<Item = (usize, &'v Arc<ObjectEntry>)> {
    let skip = match (resume_in_key, marker) {
        (Some(k), Some(m)) if k == key => versions
            .iter()
            .position(|e| match m {
                VersionRef::Null => e.null_version,
                VersionRef::Lsn(lsn) => e.lsn == lsn,
                VersionRef::Current => false,
            })
            .map_or(versions.len(), |at| at + 1),
        _ => 0,
    };
    versions.iter().enumerate().skip(skip)
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
    use crate::format::{
        BucketConfigChange, BucketCreate, BucketSetting, Condition, Delete, DeleteCondition,
        Location, ObjectMeta, ObjectPut, Record, VersioningState,
    };
    use crate::space::SpaceMap;

    const LOC: Location = Location {
        segment: 0,
        offset: 4096,
        len: 64,
    };

    struct Fixture {
        index: Index,
        lsn: u64,
    }

    impl Fixture {
        fn new(versioned: bool) -> Fixture {
            let mut f = Fixture {
                index: Index::default(),
                lsn: 0,
            };
            f.apply(Record::BucketCreate(BucketCreate {
                bucket: "b".into(),
                at_ms: 0,
                settings: vec![],
            }));
            if versioned {
                f.apply(Record::BucketConfig(BucketConfigChange {
                    bucket: "b".into(),
                    at_ms: 0,
                    setting: BucketSetting::Versioning(VersioningState::Enabled),
                }));
            }
            f
        }

        fn apply(&mut self, record: Record) -> u64 {
            self.lsn += 1;
            self.index
                .apply(self.lsn, LOC, &record, &mut SpaceMap::default())
                .unwrap();
            self.lsn
        }

        fn put(&mut self, key: &str) -> u64 {
            self.apply(Record::Object(ObjectPut {
                bucket: "b".into(),
                key: key.into(),
                meta: ObjectMeta::default(),
                chunks: vec![],
                condition: Condition::Always,
                inline: vec![],
                inline_flags: 0,
            }))
        }

        fn delete(&mut self, key: &str) -> u64 {
            self.apply(Record::Delete(Delete {
                bucket: "b".into(),
                key: key.into(),
                version: VersionRef::Current,
                at_ms: 0,
                bypass_governance: false,
                condition: DeleteCondition::default(),
            }))
        }
    }

    fn with_keys(keys: &[&str]) -> Index {
        let mut f = Fixture::new(false);
        for key in keys {
            f.put(key);
        }
        f.index
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
    fn keys_under_a_delete_marker_are_not_listed_nor_counted() {
        let mut f = Fixture::new(true);
        for key in ["a", "d/1", "d/2", "e/1", "z"] {
            f.put(key);
        }
        for key in ["a", "d/1", "d/2"] {
            f.delete(key);
        }
        let q = ListQuery {
            max_keys: 2,
            delimiter: Some("/"),
            ..Default::default()
        };
        let page = f.index.list("b", &q).unwrap();
        assert_eq!(names(&page), (vec!["z"], vec!["e/"]));
        assert!(page.next_marker.is_none());
    }

    #[test]
    fn versions_list_newest_first_and_page_by_key_and_version() {
        let mut f = Fixture::new(true);
        let a1 = f.put("a");
        let a2 = f.put("a");
        let dm = f.delete("a");
        let b1 = f.put("b");
        let c1 = f.put("c/x");
        fn all(
            f: &Fixture,
            max: usize,
            key_marker: Option<&str>,
            version_marker: Option<VersionRef>,
        ) -> VersionPage {
            let query = VersionQuery {
                delimiter: Some("/"),
                key_marker,
                version_marker,
                max_keys: max,
                ..Default::default()
            };
            f.index.list_versions("b", &query).unwrap()
        }
        let page = all(&f, 100, None, None);
        let got: Vec<(u64, bool)> = page
            .versions
            .iter()
            .map(|v| (v.entry.lsn, v.is_latest))
            .collect();
        assert_eq!(got, vec![(dm, true), (a2, false), (a1, false), (b1, true)]);
        assert_eq!(page.common_prefixes, vec!["c/"]);
        let _ = c1;
        // Two at a time, resuming from the markers each page gives.
        let mut seen = Vec::new();
        let (mut key, mut version): (Option<String>, Option<VersionRef>) = (None, None);
        loop {
            let page = all(&f, 2, key.as_deref(), version);
            seen.extend(page.versions.iter().map(|v| v.entry.lsn.to_string()));
            seen.extend(page.common_prefixes.iter().cloned());
            match page.next {
                Some((k, v)) => {
                    key = Some(k);
                    version = v.as_deref().and_then(crate::format::parse_version_id);
                }
                None => break,
            }
        }
        let want: Vec<String> = [dm, a2, a1, b1]
            .iter()
            .map(|l| l.to_string())
            .chain(["c/".to_string()])
            .collect();
        assert_eq!(seen, want);
    }
}

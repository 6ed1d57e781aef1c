//! Lifecycle rules against random versions: validation never panics, and
//! what `due_for_key` decides is always an action lifecycle may take (only
//! the newest version is expired, and only if it is an object; a version
//! removed is one of the key's; a delete marker goes only with nothing left
//! under it), and the `x-amz-expiration` date is a midnight no earlier than
//! the object.

#![no_main]

use std::sync::Arc;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use lsm::format::{Location, ObjectMeta};
use lsm::lifecycle::{
    due_for_key, expiry, upload_due, Due, Expiration, FilterAnd, LifecycleConfig, LifecycleRule,
    NoncurrentExpiration, RuleFilter, DAY_MS,
};
use lsm::ObjectEntry;

const KEYS: [&str; 4] = ["", "logs/a", "logs/b/c", "data"];
const PREFIXES: [&str; 4] = ["", "logs/", "logs/b", "x"];
const TAGS: [(&str, &str); 3] = [("a", "1"), ("a", "2"), ("b", "1")];

fn small(u: &mut Unstructured, max: u32) -> Option<u32> {
    u.arbitrary::<bool>()
        .ok()?
        .then(|| u.int_in_range(0..=max).unwrap_or(0))
}

fn pick<T: Copy>(u: &mut Unstructured, from: &[T]) -> T {
    *u.choose(from).unwrap_or(&from[0])
}

fn tag(u: &mut Unstructured) -> (String, String) {
    let (k, v) = pick(u, &TAGS);
    (k.to_string(), v.to_string())
}

fn rule(u: &mut Unstructured, i: usize) -> LifecycleRule {
    let prefix = |u: &mut Unstructured| {
        u.arbitrary::<bool>()
            .unwrap_or(false)
            .then(|| pick(u, &PREFIXES).to_string())
    };
    LifecycleRule {
        id: format!("r{}", i % 3),
        enabled: u.ratio(3, 4).unwrap_or(true),
        prefix: prefix(u),
        filter: u.arbitrary::<bool>().unwrap_or(false).then(|| RuleFilter {
            prefix: prefix(u),
            tag: u.arbitrary::<bool>().unwrap_or(false).then(|| tag(u)),
            size_greater_than: small(u, 300).map(u64::from),
            size_less_than: small(u, 300).map(u64::from),
            and: u.arbitrary::<bool>().unwrap_or(false).then(|| FilterAnd {
                prefix: prefix(u),
                tags: (0..u.int_in_range(0..=2).unwrap_or(0))
                    .map(|_| tag(u))
                    .collect(),
                size_greater_than: small(u, 300).map(u64::from),
                size_less_than: small(u, 300).map(u64::from),
            }),
        }),
        expiration: u.arbitrary::<bool>().unwrap_or(false).then(|| Expiration {
            days: small(u, 5),
            date_ms: small(u, 5).map(|d| u64::from(d) * DAY_MS),
            expired_object_delete_marker: u.arbitrary().ok(),
        }),
        noncurrent_expiration: u.arbitrary::<bool>().unwrap_or(false).then(|| {
            NoncurrentExpiration {
                noncurrent_days: small(u, 5),
                newer_noncurrent_versions: small(u, 4),
            }
        }),
        abort_incomplete_upload_days: small(u, 5),
    }
}

fn version(u: &mut Unstructured, lsn: u64, modified_ms: u64) -> Arc<ObjectEntry> {
    let tags: Vec<(String, String)> = (0..u.int_in_range(0..=2).unwrap_or(0))
        .map(|_| tag(u))
        .collect();
    let mut meta = ObjectMeta {
        size: u64::from(u.int_in_range(0..=400u32).unwrap_or(0)),
        last_modified_ms: modified_ms,
        ..Default::default()
    };
    meta.set_tags(tags);
    Arc::new(ObjectEntry {
        lsn,
        location: Location {
            segment: 0,
            offset: 0,
            len: 0,
        },
        meta,
        chunks: vec![],
        null_version: u.ratio(1, 4).unwrap_or(false),
        delete_marker: u.ratio(1, 4).unwrap_or(false),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let config = LifecycleConfig {
        rules: (0..u.int_in_range(0..=4).unwrap_or(1))
            .map(|i| rule(&mut u, i))
            .collect(),
    };
    let day_ms = u64::from(u.int_in_range(1..=100u32).unwrap_or(10));
    let now = u64::from(u.int_in_range(0..=2000u32).unwrap_or(0));
    let key = pick(&mut u, &KEYS);
    // Newest first: lsns and times fall as the list goes on.
    let count = u.int_in_range(0..=6).unwrap_or(0);
    let mut modified = now;
    let versions: Vec<Arc<ObjectEntry>> = (0..count)
        .map(|i| {
            modified = modified.saturating_sub(u64::from(u.int_in_range(0..=300u32).unwrap_or(0)));
            version(&mut u, 100 - i, modified)
        })
        .collect();

    let _ = config.clone().validated();
    let due = due_for_key(&config, key, &versions, now, day_ms);
    let mut seen = std::collections::HashSet::new();
    for d in &due {
        let lsn = match d {
            Due::ExpireCurrent(lsn) | Due::Remove(lsn) => *lsn,
        };
        assert!(seen.insert(lsn), "{lsn} decided twice: {due:?}");
        let at = versions
            .iter()
            .position(|v| v.lsn == lsn)
            .expect("a version of this key");
        match d {
            Due::ExpireCurrent(_) => assert!(at == 0 && !versions[0].delete_marker, "{due:?}"),
            Due::Remove(_) if at == 0 => {
                assert!(
                    versions[0].delete_marker,
                    "a current object is removed: {due:?}"
                );
                let removed = due.iter().filter(|d| matches!(d, Due::Remove(_))).count();
                assert_eq!(
                    removed,
                    versions.len(),
                    "a marker goes with versions under it: {due:?}"
                );
            }
            Due::Remove(_) => {}
        }
    }
    if config.rules.iter().all(|r| !r.enabled) {
        assert!(due.is_empty());
        assert!(!upload_due(&config, key, 0, now, day_ms));
    }
    if let Some(v) = versions.first() {
        if let Some((at, _)) = expiry(
            &config,
            key,
            v.meta.tags(),
            v.meta.size,
            v.meta.last_modified_ms,
        ) {
            assert_eq!(at % DAY_MS, 0, "expiry at midnight");
        }
    }
});

//! Lifecycle rules: their stored form (part of the on-disk format, inside a
//! bucket's `BucketConfig` record and the checkpoint) and the pure decisions
//! made from them: which rules match a version, what is due, and the
//! `x-amz-expiration` date S3 reports. The worker that acts on them is
//! `expirer.rs`; nothing here touches the store.

use serde::{Deserialize, Serialize};

use crate::index::ObjectEntry;

pub const DAY_MS: u64 = 86_400_000;

/// A bucket's rules, in the order they were put (GET echoes them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    pub rules: Vec<LifecycleRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    /// The rule-level Prefix of the older API, kept apart from `filter` so
    /// that a GET gives back the shape that was put.
    pub prefix: Option<String>,
    pub filter: Option<RuleFilter>,
    pub expiration: Option<Expiration>,
    pub noncurrent_expiration: Option<NoncurrentExpiration>,
    pub abort_incomplete_upload_days: Option<u32>,
}

/// Every condition given must hold (the outer ones and the `And`'s alike).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFilter {
    pub prefix: Option<String>,
    pub tag: Option<(String, String)>,
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
    pub and: Option<FilterAnd>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterAnd {
    pub prefix: Option<String>,
    pub tags: Vec<(String, String)>,
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiration {
    pub days: Option<u32>,
    /// Midnight UTC, in ms since the epoch.
    pub date_ms: Option<u64>,
    pub expired_object_delete_marker: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    pub noncurrent_days: Option<u32>,
    pub newer_noncurrent_versions: Option<u32>,
}

/// S3's limits on a configuration.
pub const MAX_RULES: usize = 1000;
pub const MAX_RULE_ID_CHARS: usize = 255;

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Malformed(String),
}

impl LifecycleConfig {
    /// Checks what S3 checks; rules without an id get one.
    pub fn validated(mut self) -> Result<LifecycleConfig, RuleProblem> {
        use RuleProblem::*;
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err(Malformed(format!(
                "a lifecycle configuration holds 1 to {MAX_RULES} rules"
            )));
        }
        for (i, rule) in self.rules.iter_mut().enumerate() {
            if rule.id.is_empty() {
                rule.id = format!("rule-{}", i + 1);
            }
            if rule.id.chars().count() > MAX_RULE_ID_CHARS {
                return Err(InvalidArgument(format!(
                    "ID length should not exceed allowed limit of {MAX_RULE_ID_CHARS}"
                )));
            }
            if let Some(e) = &rule.expiration {
                if e.days == Some(0) {
                    return Err(InvalidArgument(
                        "'Days' for Expiration action must be a positive integer".into(),
                    ));
                }
                if e.date_ms.is_some_and(|d| d % DAY_MS != 0) {
                    return Err(InvalidArgument("'Date' must be at midnight GMT".into()));
                }
                let given = [
                    e.days.is_some(),
                    e.date_ms.is_some(),
                    e.expired_object_delete_marker.is_some(),
                ];
                if given.iter().filter(|g| **g).count() != 1 {
                    return Err(Malformed(
                        "Expiration takes exactly one of Days, Date and ExpiredObjectDeleteMarker"
                            .into(),
                    ));
                }
            }
            if let Some(n) = &rule.noncurrent_expiration {
                if n.noncurrent_days == Some(0) {
                    return Err(InvalidArgument(
                        "'NoncurrentDays' must be a positive integer".into(),
                    ));
                }
            }
            if rule.abort_incomplete_upload_days == Some(0) {
                return Err(InvalidArgument(
                    "'DaysAfterInitiation' must be a positive integer".into(),
                ));
            }
            if rule.expiration.is_none()
                && rule.noncurrent_expiration.is_none()
                && rule.abort_incomplete_upload_days.is_none()
            {
                return Err(Malformed("a rule needs at least one action".into()));
            }
        }
        let mut ids: Vec<&str> = self.rules.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(InvalidArgument("Rule ID must be unique".into()));
        }
        Ok(self)
    }
}

impl LifecycleRule {
    /// Whether the rule covers a version with this key, tags and size.
    pub fn matches(&self, key: &str, tags: &[(String, String)], size: u64) -> bool {
        let has_tag = |(k, v): &(String, String)| tags.iter().any(|(tk, tv)| tk == k && tv == v);
        let sized = |gt: Option<u64>, lt: Option<u64>| {
            gt.is_none_or(|gt| size > gt) && lt.is_none_or(|lt| size < lt)
        };
        let prefixed = |p: &Option<String>| p.as_deref().is_none_or(|p| key.starts_with(p));
        if !self.enabled || !prefixed(&self.prefix) {
            return false;
        }
        let Some(f) = &self.filter else {
            return true;
        };
        let outer = prefixed(&f.prefix)
            && f.tag.as_ref().is_none_or(has_tag)
            && sized(f.size_greater_than, f.size_less_than);
        let inner = f.and.as_ref().is_none_or(|a| {
            prefixed(&a.prefix)
                && a.tags.iter().all(has_tag)
                && sized(a.size_greater_than, a.size_less_than)
        });
        outer && inner
    }

    /// Whether the rule filters on tags (uploads have none yet, so such a
    /// rule never aborts them).
    fn uses_tags(&self) -> bool {
        self.filter
            .as_ref()
            .is_some_and(|f| f.tag.is_some() || f.and.as_ref().is_some_and(|a| !a.tags.is_empty()))
    }
}

/// Something lifecycle has decided to do to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Expire the current version (lsn): a delete marker in a versioned
    /// bucket, a removal in an unversioned one. Applies only if that
    /// version is still current.
    ExpireCurrent(u64),
    /// Remove this version for good: a noncurrent version past its days,
    /// or a delete marker with nothing left under it.
    Remove(u64),
}

/// The actions due now for one key, from its versions newest first. A day
/// lasts `day_ms` (shortened in tests).
pub fn due_for_key(
    config: &LifecycleConfig,
    key: &str,
    versions: &[std::sync::Arc<ObjectEntry>],
    now_ms: u64,
    day_ms: u64,
) -> Vec<Due> {
    let mut due = Vec::new();
    let Some(current) = versions.first() else {
        return due;
    };
    let days_passed = |since_ms: u64, days: u32| {
        now_ms.saturating_sub(since_ms) >= u64::from(days).saturating_mul(day_ms)
    };
    let rules_for = |entry: &ObjectEntry| -> Vec<&LifecycleRule> {
        config
            .rules
            .iter()
            .filter(|r| r.matches(key, entry.meta.tags(), entry.meta.size))
            .collect()
    };
    // Noncurrent versions, newest first: each became noncurrent when the
    // version above it was written.
    let mut removed_noncurrent = 0;
    for (i, version) in versions.iter().enumerate().skip(1) {
        let since = versions[i - 1].meta.last_modified_ms;
        let rank = i as u32; // 1 = the newest noncurrent version
        let expire = rules_for(version).into_iter().any(|r| {
            r.noncurrent_expiration.as_ref().is_some_and(|n| {
                let old_enough = n.noncurrent_days.is_none_or(|d| days_passed(since, d));
                let beyond_kept = n.newer_noncurrent_versions.is_none_or(|keep| rank > keep);
                n.noncurrent_days.is_some() && old_enough && beyond_kept
            })
        });
        if expire {
            due.push(Due::Remove(version.lsn));
            removed_noncurrent += 1;
        }
    }
    let rest_gone = removed_noncurrent + 1 == versions.len();
    if current.delete_marker {
        // A delete marker with nothing under it is an expired object
        // delete marker: removed by ExpiredObjectDeleteMarker, or by a
        // Days rule once it is that old.
        let remove = rest_gone
            && rules_for(current).into_iter().any(|r| {
                r.expiration.as_ref().is_some_and(|e| {
                    e.expired_object_delete_marker == Some(true)
                        || e.days
                            .is_some_and(|d| days_passed(current.meta.last_modified_ms, d))
                })
            });
        if remove {
            due.push(Due::Remove(current.lsn));
        }
    } else {
        let expire = rules_for(current).into_iter().any(|r| {
            r.expiration.as_ref().is_some_and(|e| {
                e.days
                    .is_some_and(|d| days_passed(current.meta.last_modified_ms, d))
                    || e.date_ms.is_some_and(|date| now_ms >= date)
            })
        });
        if expire {
            due.push(Due::ExpireCurrent(current.lsn));
        }
    }
    due
}

/// Whether an upload begun at `initiated_ms` is due to be aborted.
pub fn upload_due(
    config: &LifecycleConfig,
    key: &str,
    initiated_ms: u64,
    now_ms: u64,
    day_ms: u64,
) -> bool {
    config.rules.iter().any(|r| {
        !r.uses_tags()
            && r.matches(key, &[], 0)
            && r.abort_incomplete_upload_days.is_some_and(|d| {
                now_ms.saturating_sub(initiated_ms) >= u64::from(d).saturating_mul(day_ms)
            })
    })
}

/// When the current version expires by these rules, as S3 reports it in
/// `x-amz-expiration`: in real days, at the midnight UTC after the object's
/// age reaches them (or the rule's date). The earliest rule wins.
pub fn expiry<'c>(
    config: &'c LifecycleConfig,
    key: &str,
    tags: &[(String, String)],
    size: u64,
    last_modified_ms: u64,
) -> Option<(u64, &'c str)> {
    config
        .rules
        .iter()
        .filter(|r| r.matches(key, tags, size))
        .filter_map(|r| {
            let e = r.expiration.as_ref()?;
            let at = match (e.days, e.date_ms) {
                (Some(days), _) => {
                    let due = last_modified_ms.saturating_add(u64::from(days) * DAY_MS);
                    due.div_ceil(DAY_MS).saturating_mul(DAY_MS)
                }
                (None, Some(date)) => date,
                (None, None) => return None,
            };
            Some((at, r.id.as_str()))
        })
        .min_by_key(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Location, ObjectMeta};
    use std::sync::Arc;

    fn version(
        lsn: u64,
        modified_ms: u64,
        marker: bool,
        tags: &[(&str, &str)],
    ) -> Arc<ObjectEntry> {
        let mut meta = ObjectMeta {
            size: 100,
            last_modified_ms: modified_ms,
            ..Default::default()
        };
        meta.set_tags(
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Arc::new(ObjectEntry {
            lsn,
            location: Location {
                segment: 0,
                offset: 0,
                len: 0,
            },
            meta,
            chunks: vec![],
            null_version: false,
            delete_marker: marker,
        })
    }

    fn rule(filter: Option<RuleFilter>) -> LifecycleRule {
        LifecycleRule {
            id: "r".into(),
            enabled: true,
            filter,
            expiration: Some(Expiration {
                days: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_condition_of_a_filter_must_hold() {
        let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
        let r = rule(Some(RuleFilter {
            prefix: Some("days1/".into()),
            tag: Some(tag("tom", "sawyer")),
            and: Some(FilterAnd {
                prefix: Some("days1".into()),
                tags: vec![tag("huck", "finn")],
                ..Default::default()
            }),
            ..Default::default()
        }));
        assert!(!r.matches("days1/tom", &[tag("tom", "sawyer")], 10));
        assert!(r.matches(
            "days1/huck",
            &[tag("tom", "sawyer"), tag("huck", "finn")],
            10
        ));
        assert!(!r.matches(
            "days2/huck",
            &[tag("tom", "sawyer"), tag("huck", "finn")],
            10
        ));
        let sized = rule(Some(RuleFilter {
            size_greater_than: Some(2000),
            ..Default::default()
        }));
        assert!(sized.matches("k", &[], 3000));
        assert!(!sized.matches("k", &[], 2000));
        let disabled = LifecycleRule {
            enabled: false,
            ..rule(None)
        };
        assert!(!disabled.matches("k", &[], 1));
    }

    #[test]
    fn noncurrent_versions_keep_the_newest_and_markers_go_last() {
        let config = LifecycleConfig {
            rules: vec![LifecycleRule {
                id: "n".into(),
                enabled: true,
                noncurrent_expiration: Some(NoncurrentExpiration {
                    noncurrent_days: Some(1),
                    newer_noncurrent_versions: Some(2),
                }),
                expiration: Some(Expiration {
                    expired_object_delete_marker: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let day = 10;
        // Newest first: a marker over four versions, all old.
        let versions: Vec<_> = (0..5)
            .map(|i| version(10 - i, 100 - i * 10, i == 0, &[]))
            .collect();
        let due = due_for_key(&config, "k", &versions, 1000, day);
        // Ranks 1 and 2 are kept; 3 and 4 go; the marker stays (versions remain under it).
        assert_eq!(due, vec![Due::Remove(7), Due::Remove(6)]);
        let alone = vec![version(10, 100, true, &[])];
        assert_eq!(
            due_for_key(&config, "k", &alone, 1000, day),
            vec![Due::Remove(10)]
        );
        // Not yet a day since the version above was written: nothing.
        let young: Vec<_> = (0..2).map(|i| version(10 - i, 995, false, &[])).collect();
        assert!(due_for_key(&config, "k", &young, 1000, day).is_empty());
    }

    #[test]
    fn current_versions_expire_by_days_or_date_and_markers_are_not_expired_twice() {
        let config = LifecycleConfig {
            rules: vec![rule(None)],
        };
        let v = vec![version(3, 0, false, &[])];
        assert_eq!(
            due_for_key(&config, "k", &v, 10, 10),
            vec![Due::ExpireCurrent(3)]
        );
        assert!(due_for_key(&config, "k", &v, 9, 10).is_empty());
        // Current is a marker over a version: a Days rule adds nothing.
        let marked = vec![version(4, 0, true, &[]), version(3, 0, false, &[])];
        assert!(due_for_key(&config, "k", &marked, 100, 10).is_empty());
        let dated = LifecycleConfig {
            rules: vec![LifecycleRule {
                expiration: Some(Expiration {
                    date_ms: Some(DAY_MS),
                    ..Default::default()
                }),
                ..rule(None)
            }],
        };
        assert!(due_for_key(&dated, "k", &v, DAY_MS - 1, 10).is_empty());
        assert_eq!(
            due_for_key(&dated, "k", &v, DAY_MS, 10),
            vec![Due::ExpireCurrent(3)]
        );
    }

    #[test]
    fn expiry_is_reported_at_the_next_midnight() {
        let config = LifecycleConfig {
            rules: vec![rule(None)],
        };
        let noon = 10 * DAY_MS + DAY_MS / 2;
        assert_eq!(expiry(&config, "k", &[], 1, noon), Some((12 * DAY_MS, "r")));
        assert_eq!(
            expiry(&config, "k", &[], 1, 10 * DAY_MS),
            Some((11 * DAY_MS, "r"))
        );
    }

    #[test]
    fn validation_refuses_what_s3_refuses() {
        let ok = LifecycleConfig {
            rules: vec![LifecycleRule {
                id: String::new(),
                ..rule(None)
            }],
        };
        assert_eq!(ok.validated().unwrap().rules[0].id, "rule-1");
        let long = LifecycleConfig {
            rules: vec![LifecycleRule {
                id: "x".repeat(256),
                ..rule(None)
            }],
        };
        assert!(matches!(
            long.validated(),
            Err(RuleProblem::InvalidArgument(_))
        ));
        let twice = LifecycleConfig {
            rules: vec![rule(None), rule(None)],
        };
        assert!(matches!(
            twice.validated(),
            Err(RuleProblem::InvalidArgument(_))
        ));
        let zero = LifecycleConfig {
            rules: vec![LifecycleRule {
                expiration: Some(Expiration {
                    days: Some(0),
                    ..Default::default()
                }),
                ..rule(None)
            }],
        };
        assert!(matches!(
            zero.validated(),
            Err(RuleProblem::InvalidArgument(_))
        ));
        let off_midnight = LifecycleConfig {
            rules: vec![LifecycleRule {
                expiration: Some(Expiration {
                    date_ms: Some(DAY_MS + 1),
                    ..Default::default()
                }),
                ..rule(None)
            }],
        };
        assert!(off_midnight.validated().is_err());
    }
}

//! Object lock: the one answer to "may this version go?", and the rules for
//! changing a retention. Every path that removes a version (DELETE of a
//! version, batch delete, lifecycle, a suspended bucket's overwrite of the
//! null version) reaches `may_remove` through `Index::apply`; the time it
//! compares with is the record's, so replay decides the same.

use crate::error::{Error, Result};
use crate::format::{LockMode, Retention};
use crate::index::ObjectEntry;

/// Whether `version` may be removed at `at_ms`: not under legal hold, not
/// under an unexpired COMPLIANCE retention, and not under an unexpired
/// GOVERNANCE retention unless the request bypasses governance.
pub fn may_remove(version: &ObjectEntry, at_ms: u64, bypass_governance: bool) -> Result<()> {
    if version.meta.legal_hold() {
        return Err(Error::Locked("the version is under a legal hold".into()));
    }
    match version.meta.retention() {
        Some(r) if r.until_ms > at_ms => match r.mode {
            LockMode::Compliance => Err(Error::Locked(
                "the version is under COMPLIANCE retention".into(),
            )),
            LockMode::Governance if !bypass_governance => Err(Error::Locked(
                "the version is under GOVERNANCE retention".into(),
            )),
            LockMode::Governance => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether a version's retention may change from `old` to `new` at
/// `at_ms`. A retention may always be extended; shortening it, removing
/// it or weakening its mode needs the governance bypass under GOVERNANCE
/// and is never allowed under COMPLIANCE. Changing GOVERNANCE to
/// COMPLIANCE also needs the bypass (AWS treats it as replacing a
/// governance setting).
pub fn may_change_retention(
    old: Option<Retention>,
    new: Option<Retention>,
    at_ms: u64,
    bypass_governance: bool,
) -> Result<()> {
    let Some(old) = old.filter(|r| r.until_ms > at_ms) else {
        return Ok(());
    };
    let keeps = new.is_some_and(|n| n.mode == old.mode && n.until_ms >= old.until_ms);
    if keeps {
        return Ok(());
    }
    match old.mode {
        LockMode::Governance if bypass_governance => Ok(()),
        LockMode::Governance => Err(Error::Locked(
            "a GOVERNANCE retention may only be extended without the bypass".into(),
        )),
        LockMode::Compliance => Err(Error::Locked(
            "a COMPLIANCE retention may only be extended".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Location, ObjectMeta};

    fn locked(retention: Option<Retention>, legal_hold: bool) -> ObjectEntry {
        ObjectEntry {
            lsn: 1,
            location: Location {
                segment: 0,
                offset: 0,
                len: 0,
            },
            meta: {
                let mut meta = ObjectMeta::default();
                meta.set_retention(retention);
                meta.set_legal_hold(legal_hold);
                meta
            },
            chunks: vec![],
            null_version: false,
            delete_marker: false,
        }
    }

    const GOV: Retention = Retention {
        mode: LockMode::Governance,
        until_ms: 100,
    };
    const COMP: Retention = Retention {
        mode: LockMode::Compliance,
        until_ms: 100,
    };

    #[test]
    fn locked_versions_stay_until_their_date() {
        assert!(may_remove(&locked(Some(GOV), false), 50, false).is_err());
        assert!(may_remove(&locked(Some(GOV), false), 50, true).is_ok());
        assert!(may_remove(&locked(Some(COMP), false), 50, true).is_err());
        assert!(may_remove(&locked(Some(COMP), false), 100, false).is_ok());
        assert!(may_remove(&locked(None, true), 50, true).is_err());
        assert!(may_remove(&locked(None, false), 50, false).is_ok());
    }

    #[test]
    fn retention_changes_follow_aws() {
        let later = |r: Retention| Retention { until_ms: 200, ..r };
        let sooner = |r: Retention| Retention { until_ms: 60, ..r };
        assert!(may_change_retention(Some(GOV), Some(later(GOV)), 50, false).is_ok());
        assert!(may_change_retention(Some(GOV), Some(sooner(GOV)), 50, false).is_err());
        assert!(may_change_retention(Some(GOV), Some(sooner(GOV)), 50, true).is_ok());
        assert!(may_change_retention(Some(GOV), None, 50, false).is_err());
        assert!(may_change_retention(Some(GOV), Some(COMP), 50, false).is_err());
        assert!(may_change_retention(Some(GOV), Some(COMP), 50, true).is_ok());
        assert!(may_change_retention(Some(COMP), Some(GOV), 50, true).is_err());
        assert!(may_change_retention(Some(COMP), Some(later(COMP)), 50, false).is_ok());
        assert!(may_change_retention(Some(COMP), Some(sooner(COMP)), 50, true).is_err());
        // An expired retention no longer binds.
        assert!(may_change_retention(Some(COMP), None, 150, false).is_ok());
    }
}

//! A key's versions, newest first to every reader. Almost every key has one
//! version, so that case holds a single pointer; a key with more keeps them
//! oldest first in a vector, so that a new version is a push.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::format::VersionRef;
use crate::index::ObjectEntry;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Versions {
    One(Arc<ObjectEntry>),
    /// Oldest first; never fewer than two.
    Many(Vec<Arc<ObjectEntry>>),
}

impl Versions {
    pub fn newest(&self) -> &Arc<ObjectEntry> {
        match self {
            Versions::One(entry) => entry,
            // `Many` holds at least two.
            Versions::Many(all) => &all[all.len() - 1],
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Versions::One(_) => 1,
            Versions::Many(all) => all.len(),
        }
    }

    /// Newest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<ObjectEntry>> {
        let all: &[Arc<ObjectEntry>] = match self {
            Versions::One(entry) => std::slice::from_ref(entry),
            Versions::Many(all) => all,
        };
        all.iter().rev()
    }

    fn slots(&mut self) -> &mut [Arc<ObjectEntry>] {
        match self {
            Versions::One(entry) => std::slice::from_mut(entry),
            Versions::Many(all) => all,
        }
    }

    /// The version a reference names.
    pub fn find(&self, version: VersionRef) -> Option<&Arc<ObjectEntry>> {
        match version {
            VersionRef::Current => Some(self.newest()),
            VersionRef::Null => self.iter().find(|e| e.null_version),
            VersionRef::Lsn(lsn) => self.iter().find(|e| e.lsn == lsn),
        }
    }

    pub fn find_mut(&mut self, version: VersionRef) -> Option<&mut Arc<ObjectEntry>> {
        let slots = self.slots();
        match version {
            VersionRef::Current => slots.last_mut(),
            VersionRef::Null => slots.iter_mut().find(|e| e.null_version),
            VersionRef::Lsn(lsn) => slots.iter_mut().find(|e| e.lsn == lsn),
        }
    }

    /// Adds the newest version.
    pub fn push(&mut self, entry: Arc<ObjectEntry>) {
        match self {
            Versions::One(only) => *self = Versions::Many(vec![only.clone(), entry]),
            Versions::Many(all) => all.push(entry),
        }
    }

    /// Takes out the version with this lsn. Returns it, and whether any
    /// version is left (the caller removes an empty key).
    pub fn remove(&mut self, lsn: u64) -> (Option<Arc<ObjectEntry>>, bool) {
        match self {
            Versions::One(only) if only.lsn == lsn => (Some(only.clone()), false),
            Versions::One(_) => (None, true),
            Versions::Many(all) => {
                let Some(at) = all.iter().position(|e| e.lsn == lsn) else {
                    return (None, true);
                };
                let removed = all.remove(at);
                if all.len() == 1 {
                    *self = Versions::One(all[0].clone());
                }
                (Some(removed), true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Location;

    fn entry(lsn: u64, null_version: bool) -> Arc<ObjectEntry> {
        Arc::new(ObjectEntry {
            lsn,
            location: Location {
                segment: 0,
                offset: 0,
                len: 0,
            },
            meta: Default::default(),
            chunks: vec![],
            null_version,
            delete_marker: false,
        })
    }

    #[test]
    fn versions_are_newest_first_and_shrink_back_to_one() {
        let mut v = Versions::One(entry(1, true));
        v.push(entry(2, false));
        v.push(entry(3, false));
        let lsns: Vec<u64> = v.iter().map(|e| e.lsn).collect();
        assert_eq!(lsns, vec![3, 2, 1]);
        assert_eq!(v.find(VersionRef::Null).map(|e| e.lsn), Some(1));
        assert_eq!(v.find(VersionRef::Current).map(|e| e.lsn), Some(3));
        let (gone, left) = v.remove(2);
        assert_eq!((gone.map(|e| e.lsn), left), (Some(2), true));
        assert_eq!(v.remove(9).0, None);
        let (_, left) = v.remove(3);
        assert!(left);
        assert!(matches!(v, Versions::One(_)));
        assert_eq!(v.newest().lsn, 1);
        let (gone, left) = v.remove(1);
        assert_eq!((gone.map(|e| e.lsn), left), (Some(1), false));
    }
}

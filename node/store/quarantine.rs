//! The parent's quarantine: entries a child sent that this node refused (R-FED-1).
//!
//! A parent moves a child's cursor past a refused entry, so one bad entry cannot stall
//! the uplink; the entry is never dropped. It is kept here, in the records tree under
//! `q` child region (6 ASCII digits) child sequence (8 bytes big-endian) -> a
//! `Quarantined` (codec format byte 1, postcard), written in the same records-tree batch
//! as the cursor move, so a crash loses neither or both (and the child then resends).
//! The notice to the child goes into the notices tree just before that batch: a crash
//! between the two can send the child a second notice, never none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::backend::Commit;
use super::codec::encode;
use super::{Store, StoreError};
use crate::domain::notice::Notice;
use crate::domain::region::RegionCode;
use crate::domain::usage::UsageEntry;

/// An entry refused from a child, as the parent keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub child: RegionCode,
    /// The entry's sequence in the child's changelog.
    pub child_seq: u64,
    /// The record id (or `consent <id>`, `checkpoint <node>/<seq>`) the entry names.
    pub label: String,
    pub field: String,
    pub rule: String,
    pub message: String,
    /// When it was refused (Unix ms).
    pub at_ms: i64,
    /// The whole entry as the child sent it: a protobuf `credit.v1.ChangeEntry`, kept as
    /// bytes (the store never sees protobuf types), so it can be examined or applied
    /// once the cause is fixed. Empty for an entry refused as data never to be stored
    /// (R-DATA-3) or no longer released (R-SEC-2): its name and reason only.
    pub entry: Vec<u8>,
}

/// A refused entry to keep, and the notice that tells the child (sent only the first
/// time the entry is refused: a resent entry replaces the kept one silently).
#[derive(Clone, Debug)]
pub struct Refused {
    pub kept: Quarantined,
    pub notice: Notice,
}

/// What a batch from a child (or a retry of its quarantined entries) writes beside the
/// records: its usage entries, the entries to keep in quarantine, and the child
/// sequences to release from it (applied now).
#[derive(Debug, Default)]
pub struct ChildLog {
    pub usage: Vec<UsageEntry>,
    pub refused: Vec<Refused>,
    pub released: Vec<u64>,
}

impl Store {
    /// Adds `refused` to `commit` (the caller's, with the cursor) and queues each new
    /// one's notice for its child. Returns how many notices were queued.
    pub(super) fn put_quarantined(
        &self,
        commit: &mut Commit,
        refused: Vec<Refused>,
    ) -> Result<usize, StoreError> {
        let mut notices = 0;
        for Refused { kept, notice } in refused {
            if !self
                .inner
                .backend
                .is_quarantined(&kept.child, kept.child_seq)?
            {
                self.put_notice(&kept.child, &notice, commit)?;
                notices += 1;
            }
            let value = encode(&kept)?;
            commit
                .current
                .quarantine
                .push((kept.child, kept.child_seq, Some(value)));
        }
        Ok(notices)
    }

    /// Every entry kept in quarantine, by child and sequence; at most `limit`, the
    /// latest first when there are more.
    pub fn quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, StoreError> {
        self.inner.backend.quarantine(None, limit)
    }

    /// Every entry of `child` kept in quarantine, by sequence.
    pub fn quarantined_from(&self, child: &RegionCode) -> Result<Vec<Quarantined>, StoreError> {
        self.inner.backend.quarantine(Some(child), usize::MAX)
    }

    /// How many entries of each child are kept in quarantine.
    pub fn quarantine_counts(&self) -> Result<BTreeMap<RegionCode, u64>, StoreError> {
        self.inner.backend.quarantine_counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notice::NoticeKind;
    use crate::store::StoreOptions;

    fn refused(child: RegionCode, seq: u64, notice_id: u64) -> Refused {
        let city = RegionCode::parse("211300").unwrap();
        Refused {
            kept: Quarantined {
                child,
                child_seq: seq,
                label: format!("record {seq}"),
                field: "category".into(),
                rule: "R-DATA-2".into(),
                message: "unknown category".into(),
                at_ms: 1,
                entry: vec![1, 2, 3],
            },
            notice: Notice {
                id: notice_id,
                kind: NoticeKind::EntryRefused,
                target: child,
                record_id: format!("record {seq}"),
                subject_id: String::new(),
                text: "refused".into(),
                from: city,
                created_at_ms: 1,
                objection: None,
            },
        }
    }

    /// The cursor, the kept entry and the notice are written by one call, across a
    /// reopen; a resent refusal replaces the kept entry and tells the child only once;
    /// a release drops it (R-FED-1).
    #[test]
    fn refused_entries_are_kept_with_the_cursor_and_told_once_r_fed_1() {
        let dir = tempfile::tempdir().unwrap();
        let child = RegionCode::parse("211382").unwrap();
        let city = RegionCode::parse("211300").unwrap();
        let keep = |store: &Store, seq: u64, id: u64| {
            store
                .apply_from_child(child, city, Vec::new(), seq, 0, |_| {
                    Ok(ChildLog {
                        refused: vec![refused(child, seq, id)],
                        ..ChildLog::default()
                    })
                })
                .unwrap();
        };
        {
            let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            keep(&store, 7, 1);
            assert_eq!(store.cursor(&child).unwrap(), 7);
        }
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(store.cursor(&child).unwrap(), 7);
        let kept = store.quarantined(10).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].child_seq, kept[0].entry.as_slice()),
            (7, &[1u8, 2, 3][..])
        );
        assert_eq!(store.quarantined_from(&child).unwrap(), kept);
        assert_eq!(store.quarantine_counts().unwrap().get(&child), Some(&1));
        assert_eq!(store.pending_notices(&child).unwrap().len(), 1);
        // The same entry refused again (a resend after a lost acknowledgement).
        keep(&store, 7, 2);
        assert_eq!(store.quarantined(10).unwrap().len(), 1);
        assert_eq!(store.pending_notices(&child).unwrap().len(), 1);
        // Released by a retry: gone, the cursor where it was.
        store
            .apply_from_child(child, city, Vec::new(), 0, 0, |_| {
                Ok(ChildLog {
                    released: vec![7],
                    ..ChildLog::default()
                })
            })
            .unwrap();
        assert!(store.quarantined(10).unwrap().is_empty());
        assert_eq!(store.cursor(&child).unwrap(), 7);
    }
}

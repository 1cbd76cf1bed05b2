//! Notices queued for children until they acknowledge them, and notices received here
//! (`backend::NoticeRow`; sled's keys in `keys::notices`).

use std::collections::HashSet;

use super::backend::{Commit, NoticeRow};
use super::codec::{decode, encode};
use super::{Store, StoreError};
use crate::domain::notice::Notice;
use crate::domain::region::RegionCode;
use crate::domain::usage::UsageEntry;

/// A stored notice, also one stored before notices could carry a case.
pub(in crate::store) fn decode_notice(bytes: &[u8]) -> Result<Notice, StoreError> {
    decode::<Notice>(bytes, "notice").or_else(|e| {
        decode::<crate::domain::notice::LegacyNotice>(bytes, "notice")
            .map(Notice::from)
            .map_err(|_| e)
    })
}

impl Store {
    /// A new notice id, unique on this node across restarts.
    pub fn new_notice_id(&self) -> Result<u64, StoreError> {
        self.inner.backend.new_notice_id()
    }

    /// Queues `notice` for the child `next_hop`, durably, with its usage entries.
    pub fn queue_notice(
        &self,
        next_hop: &RegionCode,
        notice: &Notice,
        usage: Vec<UsageEntry>,
    ) -> Result<(), StoreError> {
        self.write(|w| {
            let mut commit = Commit::default();
            self.write_usage(w, usage, &mut commit)?;
            self.put_notice(next_hop, notice, &mut commit)?;
            self.commit(commit, HashSet::new())
        })?;
        self.inner.notices_changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Puts a notice in `next_hop`'s queue, as part of the caller's `commit`.
    pub(super) fn put_notice(
        &self,
        next_hop: &RegionCode,
        notice: &Notice,
        commit: &mut Commit,
    ) -> Result<(), StoreError> {
        commit.notices.push(NoticeRow::Queued {
            next_hop: *next_hop,
            from: notice.from,
            id: notice.id,
            notice: encode(notice)?,
        });
        Ok(())
    }

    /// Notices waiting for `next_hop`'s acknowledgement, oldest first per sender.
    pub fn pending_notices(&self, next_hop: &RegionCode) -> Result<Vec<Notice>, StoreError> {
        self.inner.backend.pending_notices(next_hop)
    }

    /// Drops a notice `next_hop` acknowledged; false when it was not pending.
    pub fn ack_notice(
        &self,
        next_hop: &RegionCode,
        from: &RegionCode,
        id: u64,
    ) -> Result<bool, StoreError> {
        self.write(|_| {
            if !self.inner.backend.notice_pending(next_hop, from, id)? {
                return Ok(false);
            }
            let mut commit = Commit::default();
            commit.notices.push(NoticeRow::Acked {
                next_hop: *next_hop,
                from: *from,
                id,
            });
            self.commit(commit, HashSet::new())?;
            Ok(true)
        })
    }

    /// Keeps a notice meant for this node; false when it was already here (a resend).
    pub fn receive_notice(
        &self,
        notice: &Notice,
        usage: Vec<UsageEntry>,
    ) -> Result<bool, StoreError> {
        // A resend is usual (a parent retries until acknowledged): answered without the
        // writer lock; the check that decides is made again under it, so two deliveries
        // at once keep one notice and log one receipt.
        if self.inner.backend.received(&notice.from, notice.id)? {
            return Ok(false);
        }
        let row = NoticeRow::Received {
            from: notice.from,
            id: notice.id,
            notice: encode(notice)?,
        };
        self.write(|w| {
            if self.inner.backend.received(&notice.from, notice.id)? {
                return Ok(false);
            }
            let mut commit = Commit::default();
            self.write_usage(w, usage, &mut commit)?;
            commit.notices.push(row);
            self.commit(commit, HashSet::new())?;
            Ok(true)
        })
    }

    /// Notices received for this node.
    pub fn inbox(&self) -> Result<Vec<Notice>, StoreError> {
        self.inner.backend.inbox()
    }

    /// Changes whenever a notice is queued here.
    pub fn watch_notices(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.notices_changed.subscribe()
    }
}

//! `Reads` on the in-memory engine: point reads and ordered ranges of its maps, each
//! value decoded as its table says.

use std::collections::BTreeMap;
use std::ops::Bound;

use chrono::NaiveDate;
use uuid::Uuid;

use super::{Data, MemoryBackend, get};
use crate::domain::case::Case;
use crate::domain::census::{Figures, Monthly, PlatformReport};
use crate::domain::consent::Consent;
use crate::domain::notice::Notice;
use crate::domain::record::Record;
use crate::domain::region::RegionCode;
use crate::domain::usage::{Chained, Checkpoint};
use crate::store::backend::{Heads, NaturalKey, Reads};
use crate::store::chunks::decode_change;
use crate::store::codec::decode;
use crate::store::notices::decode_notice;
use crate::store::{Change, Quarantined, StoreError, keys};

impl Data {
    fn change(&self, seq: u64) -> Result<Option<Change>, StoreError> {
        self.changelog
            .get(&seq)
            .map(|(tag, v)| decode_change(*tag, v))
            .transpose()
    }

    fn case(&self, id: &Uuid) -> Result<Option<Case>, StoreError> {
        get(self.cases.get(id), "objection case")
    }

    fn consent(&self, id: &Uuid) -> Result<Option<Consent>, StoreError> {
        get(self.consents.get(id), "consent")
    }

    /// Current records whose natural key starts with `prefix`, in natural-key order,
    /// strictly after `resume` (which must lie inside the prefix), at most `limit`.
    fn records_under(
        &self,
        prefix: &[u8],
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(NaturalKey, Record)>, StoreError> {
        let from = match resume {
            Some(after) if after.starts_with(prefix) => Bound::Excluded(after),
            Some(_) => return Ok(Vec::new()),
            None => Bound::Included(prefix),
        };
        self.records
            .range::<[u8], _>((from, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| Ok((k.clone(), decode(v, "record")?)))
            .collect()
    }
}

impl Reads for MemoryBackend {
    fn heads(&self) -> Result<Heads, StoreError> {
        let data = self.data()?;
        let next_change = data.changelog.keys().next_back().map_or(1, |s| s + 1);
        let (next_usage, usage_head) = match data.usage.iter().next_back() {
            Some((seq, v)) => (seq + 1, decode::<Chained>(v, "usage entry")?.hash),
            None => (1, [0u8; 32]),
        };
        Ok(Heads {
            next_change,
            next_usage,
            usage_head,
        })
    }

    fn record(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        get(self.data()?.records.get(key), "record")
    }

    /// As on sled: through the replica index for a record applied from a child, else
    /// through the sequence of its first version, which the id carries (`ids`).
    fn record_by_id(&self, id: &Uuid) -> Result<Option<Record>, StoreError> {
        let data = self.data()?;
        if let Some(key) = data.replica_ids.get(id) {
            return match data.records.get(key) {
                Some(v) => Ok(Some(decode(v, "record")?)),
                None => Err(StoreError::Corrupt {
                    what: "replica index",
                    detail: format!("record {id} is indexed but missing"),
                }),
            };
        }
        let Some((_, first)) = crate::domain::ids::locate(id) else {
            return Ok(None);
        };
        let Some(Change::Record(first_version)) = data.change(first)? else {
            return Ok(None);
        };
        // A sequence from another origin's id points at some other record here.
        if first_version.id != *id {
            return Ok(None);
        }
        let key = keys::natural(&first_version.content, &first_version.origin);
        match data.records.get(&key) {
            Some(v) => Ok(Some(decode(v, "record")?)),
            // As on sled: a commit stopped after its changelog part (a crash before the
            // reopen's replay) leaves the record in the changelog alone, not yet here.
            None if data.applied < first => Ok(None),
            None => Err(StoreError::Corrupt {
                what: "records",
                detail: format!("record {id} is in the changelog only"),
            }),
        }
    }

    fn replica_key(&self, id: &Uuid) -> Result<Option<NaturalKey>, StoreError> {
        Ok(self.data()?.replica_ids.get(id).cloned())
    }

    fn records_of(
        &self,
        subject: &str,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::subject_records(subject);
        Ok(self
            .data()?
            .records_under(&prefix, resume, limit)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Vec<(u64, Change)>, StoreError> {
        self.data()?
            .changelog
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(seq, (tag, v))| Ok((*seq, decode_change(*tag, v)?)))
            .collect()
    }

    fn all_records(
        &self,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(NaturalKey, Record)>, StoreError> {
        self.data()?
            .records_under(&[keys::records::RECORD], resume, limit)
    }

    fn record_count(&self) -> Result<u64, StoreError> {
        Ok(self.data()?.records.len() as u64)
    }

    fn usage_rows(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .data()?
            .usage
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(seq, v)| (*seq, v.clone()))
            .collect())
    }

    fn usage_of(&self, subject: &str, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        let data = self.data()?;
        let mut out = Vec::new();
        for (_, seq) in data
            .usage_index
            .range((subject.to_string(), 0)..)
            .take_while(|(s, _)| s == subject)
            .take(limit)
        {
            // An index row without its entry is skipped (see the trait).
            if let Some(v) = data.usage.get(seq) {
                out.push((*seq, decode(v, "usage entry")?));
            }
        }
        Ok(out)
    }

    fn region(&self) -> Result<Option<String>, StoreError> {
        Ok(self.data()?.region.map(|r| r.as_str().to_string()))
    }

    fn applied(&self) -> Result<u64, StoreError> {
        Ok(self.data()?.applied)
    }

    fn cursor(&self, child: &RegionCode) -> Result<u64, StoreError> {
        Ok(self.data()?.cursors.get(child).copied().unwrap_or(0))
    }

    fn figures(&self) -> Result<Option<Figures>, StoreError> {
        get(self.data()?.figures.as_ref(), "census figures")
    }

    fn monthly(&self, provider: &str, period: &str) -> Result<Option<Monthly>, StoreError> {
        let data = self.data()?;
        let key = (provider.to_string(), period.to_string());
        get(data.monthly.get(&key), "monthly submissions")
    }

    fn last_day(&self) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self.data()?.last_day)
    }

    fn figures_at(&self, day: NaiveDate) -> Result<Option<Figures>, StoreError> {
        let data = self.data()?;
        get(
            data.days.range(..=day).next_back().map(|(_, v)| v),
            "census snapshot",
        )
    }

    fn child_reports(&self) -> Result<Vec<PlatformReport>, StoreError> {
        self.data()?
            .child_reports
            .values()
            .map(|v| decode(v, "child census report"))
            .collect()
    }

    fn redact_queue(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        Ok(self
            .data()?
            .redact_queue
            .iter()
            .map(|(id, v)| (*id, v.clone()))
            .collect())
    }

    fn quarantine(
        &self,
        child: Option<&RegionCode>,
        limit: usize,
    ) -> Result<Vec<Quarantined>, StoreError> {
        let data = self.data()?;
        let mut out = data
            .quarantine
            .iter()
            .rev()
            .filter(|((c, _), _)| child.is_none_or(|child| c == child))
            .take(limit)
            .map(|(_, v)| decode(v, "quarantined entry"))
            .collect::<Result<Vec<Quarantined>, _>>()?;
        out.reverse();
        Ok(out)
    }

    fn quarantine_counts(&self) -> Result<BTreeMap<RegionCode, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for (child, _) in self.data()?.quarantine.keys() {
            *counts.entry(*child).or_insert(0) += 1;
        }
        Ok(counts)
    }

    fn is_quarantined(&self, child: &RegionCode, seq: u64) -> Result<bool, StoreError> {
        Ok(self.data()?.quarantine.contains_key(&(*child, seq)))
    }

    fn consent(&self, id: &Uuid) -> Result<Option<Consent>, StoreError> {
        self.data()?.consent(id)
    }

    fn consents_of(&self, subject: &str) -> Result<Vec<Consent>, StoreError> {
        let data = self.data()?;
        let mut out = Vec::new();
        for (_, id) in data
            .consents_by_subject
            .range((subject.to_string(), Uuid::nil())..)
            .take_while(|(s, _)| s == subject)
        {
            match data.consent(id)? {
                Some(c) => out.push(c),
                None => {
                    return Err(StoreError::Corrupt {
                        what: "consent index",
                        detail: format!("consent {id} is indexed but missing"),
                    });
                }
            }
        }
        Ok(out)
    }

    fn checkpoint(&self, node: &RegionCode, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
        get(self.data()?.checkpoints.get(&(*node, seq)), "checkpoint")
    }

    fn checkpoints(&self, node: Option<&RegionCode>) -> Result<Vec<Checkpoint>, StoreError> {
        self.data()?
            .checkpoints
            .iter()
            .filter(|((n, _), _)| node.is_none_or(|node| n == node))
            .map(|(_, v)| decode(v, "checkpoint"))
            .collect()
    }

    fn case(&self, id: &Uuid) -> Result<Option<Case>, StoreError> {
        self.data()?.case(id)
    }

    fn cases(&self) -> Result<Vec<Case>, StoreError> {
        self.data()?
            .cases
            .values()
            .map(|v| decode(v, "objection case"))
            .collect()
    }

    fn cases_of_record(&self, record: &Uuid) -> Result<Vec<Case>, StoreError> {
        let data = self.data()?;
        let mut out = Vec::new();
        for (_, id) in data
            .cases_by_record
            .range((*record, Uuid::nil())..)
            .take_while(|(r, _)| r == record)
        {
            if let Some(c) = data.case(id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn pending_notices(&self, next_hop: &RegionCode) -> Result<Vec<Notice>, StoreError> {
        self.data()?
            .outbox
            .iter()
            .filter(|((hop, _, _), _)| hop == next_hop)
            .map(|(_, v)| decode_notice(v))
            .collect()
    }

    fn notice_pending(
        &self,
        next_hop: &RegionCode,
        from: &RegionCode,
        id: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.data()?.outbox.contains_key(&(*next_hop, *from, id)))
    }

    fn inbox(&self) -> Result<Vec<Notice>, StoreError> {
        self.data()?
            .inbox
            .values()
            .map(|v| decode_notice(v))
            .collect()
    }

    fn received(&self, from: &RegionCode, id: u64) -> Result<bool, StoreError> {
        Ok(self.data()?.inbox.contains_key(&(*from, id)))
    }
}

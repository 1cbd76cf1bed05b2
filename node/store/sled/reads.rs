//! The reading half of the seam on sled: point reads and prefix scans of the trees, each
//! value decoded as the type its key says (layouts in `keys` and `chunks`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use uuid::Uuid;

use super::SledBackend;
use crate::domain::case::Case;
use crate::domain::census::{Figures, Monthly, PlatformReport};
use crate::domain::consent::Consent;
use crate::domain::notice::Notice;
use crate::domain::record::Record;
use crate::domain::region::RegionCode;
use crate::domain::usage::{Chained, Checkpoint};
use crate::store::backend::{Heads, NaturalKey, Reads};
use crate::store::codec::decode;
use crate::store::notices::decode_notice;
use crate::store::{Change, Quarantined, StoreError, decode_chunk, keys, seq_of};

/// The uuid after a 1-byte (or longer) prefix of an index key.
fn uuid_after(key: &[u8], at: usize, what: &'static str) -> Result<Uuid, StoreError> {
    Uuid::from_slice(key.get(at..).unwrap_or_default()).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

fn decode_day(v: &[u8]) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&String::from_utf8_lossy(v), "%Y-%m-%d").ok()
}

impl SledBackend {
    /// Decodes every value under `prefix` of `tree` as `what`.
    fn scan<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        prefix: impl AsRef<[u8]>,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        tree.scan_prefix(prefix)
            .map(|item| decode(&item?.1, what))
            .collect()
    }

    fn get<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        key: impl AsRef<[u8]>,
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        match tree.get(key)? {
            Some(v) => Ok(Some(decode(&v, what)?)),
            None => Ok(None),
        }
    }
}

impl Reads for SledBackend {
    fn heads(&self) -> Result<Heads, StoreError> {
        let next_change = match self.changelog.last()? {
            Some((k, v)) => seq_of(&k)? + decode_chunk(&v)?.len() as u64,
            None => 1,
        };
        let (next_usage, usage_head) = match self
            .usage
            .range(..keys::usage::END)
            .next_back()
            .transpose()?
        {
            Some((k, v)) => (seq_of(&k)? + 1, decode::<Chained>(&v, "usage entry")?.hash),
            None => (1, [0u8; 32]),
        };
        Ok(Heads {
            next_change,
            next_usage,
            usage_head,
        })
    }

    fn record(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        Self::get(&self.records, key, "record")
    }

    /// Through the replica index for a record applied from a child; else through the
    /// sequence of its first version, which the id carries (`ids`).
    fn record_by_id(&self, id: &Uuid) -> Result<Option<Record>, StoreError> {
        if let Some(key) = self.records.get(keys::replica_id(id))? {
            return match self.records.get(key)? {
                Some(v) => Ok(Some(decode::<Record>(&v, "record")?)),
                None => Err(StoreError::Corrupt {
                    what: "replica index",
                    detail: format!("record {id} is indexed but missing"),
                }),
            };
        }
        let Some((_, first)) = crate::domain::ids::locate(id) else {
            return Ok(None);
        };
        let Some((_, Change::Record(first_version))) =
            self.changes(first.saturating_sub(1), 1)?.into_iter().next()
        else {
            return Ok(None);
        };
        // A sequence from another origin's id points at some other record here.
        if first_version.id != *id {
            return Ok(None);
        }
        let key = keys::natural(&first_version.content, &first_version.origin);
        if let Some(v) = self.records.get(&key)? {
            return Ok(Some(decode::<Record>(&v, "record")?));
        }
        // A commit writes the changelog before the records tree (a tree batch each): a
        // record whose commit is under way is in the changelog alone, not yet here.
        // Missing once the applied mark has passed it (read again after the mark, which
        // the records tree's batch writes with the record), it is damage.
        if self.applied()? < first {
            return Ok(None);
        }
        match self.records.get(&key)? {
            Some(v) => Ok(Some(decode::<Record>(&v, "record")?)),
            None => Err(StoreError::Corrupt {
                what: "records",
                detail: format!("record {id} is in the changelog only"),
            }),
        }
    }

    fn replica_key(&self, id: &Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.records.get(keys::replica_id(id))?.map(|k| k.to_vec()))
    }

    fn records_of(
        &self,
        subject: &str,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::subject_records(subject);
        Ok(self
            .records_under(&prefix, resume, limit)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    fn all_records(
        &self,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(NaturalKey, Record)>, StoreError> {
        self.records_under(&[keys::records::RECORD], resume, limit)
    }

    fn record_count(&self) -> Result<u64, StoreError> {
        Ok(self.records.scan_prefix([keys::records::RECORD]).count() as u64)
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Vec<(u64, Change)>, StoreError> {
        let from = after.saturating_add(1);
        // The chunk holding `from` starts at or before it.
        let start = match self.changelog.range(..=from.to_be_bytes()).next_back() {
            Some(item) => seq_of(&item?.0)?,
            None => from,
        };
        let mut out = Vec::new();
        for item in self.changelog.range(start.to_be_bytes()..) {
            let (k, v) = item?;
            let first = seq_of(&k)?;
            for (i, change) in decode_chunk(&v)?.into_iter().enumerate() {
                let seq = first + i as u64;
                if seq >= from {
                    if out.len() == limit {
                        return Ok(out);
                    }
                    out.push((seq, change));
                }
            }
        }
        Ok(out)
    }

    fn usage_rows(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.usage
            .range((after.saturating_add(1)).to_be_bytes().to_vec()..keys::usage::END.to_vec())
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((seq_of(&k)?, v.to_vec()))
            })
            .collect()
    }

    fn usage_of(&self, subject: &str, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        let prefix = keys::usage_subject(subject);
        let mut out = Vec::new();
        for item in self.usage.scan_prefix(&prefix).take(limit) {
            let (k, _) = item?;
            // Exactly a sequence after the prefix: anything else is another subject's key.
            let Ok(seq) = seq_of(&k[prefix.len()..]) else {
                continue;
            };
            match self.usage.get(seq.to_be_bytes())? {
                Some(v) => out.push((seq, decode::<Chained>(&v, "usage entry")?)),
                // An index entry without its entry: the entry was removed. `audit
                // verify` names the gap; history shows what is there.
                None => continue,
            }
        }
        Ok(out)
    }

    fn region(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .records
            .get(keys::records::REGION)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn applied(&self) -> Result<u64, StoreError> {
        match self.records.get(keys::records::APPLIED)? {
            Some(v) => seq_of(&v),
            None => Ok(0),
        }
    }

    fn cursor(&self, child: &RegionCode) -> Result<u64, StoreError> {
        match self.records.get(keys::cursor(child))? {
            Some(v) => seq_of(&v),
            None => Ok(0),
        }
    }

    fn figures(&self) -> Result<Option<Figures>, StoreError> {
        Self::get(&self.records, keys::records::FIGURES, "census figures")
    }

    fn monthly(&self, provider: &str, period: &str) -> Result<Option<Monthly>, StoreError> {
        Self::get(
            &self.records,
            keys::monthly(provider, period),
            "monthly submissions",
        )
    }

    fn last_day(&self) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self
            .records
            .get(keys::records::LAST_DAY)?
            .and_then(|v| decode_day(&v)))
    }

    fn figures_at(&self, day: NaiveDate) -> Result<Option<Figures>, StoreError> {
        match self
            .records
            .range(vec![keys::records::DAY]..=keys::day(day))
            .next_back()
            .transpose()?
        {
            Some((_, v)) => Ok(Some(decode(&v, "census snapshot")?)),
            None => Ok(None),
        }
    }

    fn child_reports(&self) -> Result<Vec<PlatformReport>, StoreError> {
        Self::scan(
            &self.records,
            [keys::records::CHILD_REPORT],
            "child census report",
        )
    }

    fn redact_queue(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        self.records
            .scan_prefix([keys::records::REDACT_QUEUE])
            .map(|item| {
                let (k, v) = item?;
                Ok((uuid_after(&k, 1, "redaction queue")?, v.to_vec()))
            })
            .collect()
    }

    fn quarantine(
        &self,
        child: Option<&RegionCode>,
        limit: usize,
    ) -> Result<Vec<Quarantined>, StoreError> {
        let mut prefix = vec![keys::records::QUARANTINE];
        if let Some(child) = child {
            prefix.extend_from_slice(child.as_str().as_bytes());
        }
        let mut out = Vec::new();
        for item in self.records.scan_prefix(prefix).rev().take(limit) {
            out.push(decode::<Quarantined>(&item?.1, "quarantined entry")?);
        }
        out.reverse();
        Ok(out)
    }

    fn quarantine_counts(&self) -> Result<BTreeMap<RegionCode, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for item in self.records.scan_prefix([keys::records::QUARANTINE]) {
            let (key, _) = item?;
            let region = std::str::from_utf8(key.get(1..7).unwrap_or_default())
                .ok()
                .and_then(|r| RegionCode::parse(r).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    what: "quarantine key",
                    detail: format!("{key:?}"),
                })?;
            *counts.entry(region).or_insert(0) += 1;
        }
        Ok(counts)
    }

    fn is_quarantined(&self, child: &RegionCode, seq: u64) -> Result<bool, StoreError> {
        Ok(self.records.contains_key(keys::quarantine(child, seq))?)
    }

    fn consent(&self, id: &Uuid) -> Result<Option<Consent>, StoreError> {
        Self::get(&self.consents, keys::consent(id), "consent")
    }

    fn consents_of(&self, subject: &str) -> Result<Vec<Consent>, StoreError> {
        let prefix = keys::consents_of(subject);
        let mut out = Vec::new();
        for item in self.consents.scan_prefix(&prefix) {
            let (k, _) = item?;
            let id = uuid_after(&k, prefix.len(), "consent index")?;
            match self.consent(&id)? {
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
        Self::get(&self.checkpoints, keys::checkpoint(node, seq), "checkpoint")
    }

    fn checkpoints(&self, node: Option<&RegionCode>) -> Result<Vec<Checkpoint>, StoreError> {
        let prefix = match node {
            Some(n) => keys::checkpoints_of(n),
            None => vec![keys::checkpoints::CHECKPOINT],
        };
        Self::scan(&self.checkpoints, prefix, "checkpoint")
    }

    fn case(&self, id: &Uuid) -> Result<Option<Case>, StoreError> {
        Self::get(&self.objections, keys::case(id), "objection case")
    }

    fn cases(&self) -> Result<Vec<Case>, StoreError> {
        Self::scan(&self.objections, [keys::objections::CASE], "objection case")
    }

    fn cases_of_record(&self, record: &Uuid) -> Result<Vec<Case>, StoreError> {
        let mut prefix = vec![keys::objections::BY_RECORD];
        prefix.extend_from_slice(record.as_bytes());
        let mut out = Vec::new();
        for item in self.objections.scan_prefix(&prefix) {
            let (k, _) = item?;
            let id = uuid_after(&k, 17, "objection index")?;
            if let Some(c) = self.case(&id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn pending_notices(&self, next_hop: &RegionCode) -> Result<Vec<Notice>, StoreError> {
        self.notices
            .scan_prefix(keys::outbox_prefix(next_hop))
            .map(|item| decode_notice(&item?.1))
            .collect()
    }

    fn notice_pending(
        &self,
        next_hop: &RegionCode,
        from: &RegionCode,
        id: u64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .notices
            .contains_key(keys::outbox(next_hop, from, id))?)
    }

    fn inbox(&self) -> Result<Vec<Notice>, StoreError> {
        self.notices
            .scan_prefix([keys::notices::INBOX])
            .map(|item| decode_notice(&item?.1))
            .collect()
    }

    fn received(&self, from: &RegionCode, id: u64) -> Result<bool, StoreError> {
        Ok(self.notices.contains_key(keys::inbox(from, id))?)
    }
}

impl SledBackend {
    /// Current records under `prefix` of the records tree, in key order, strictly after
    /// `resume` (which must lie inside the prefix: a key of another subject never sorts
    /// between, the NUL ends the subject), at most `limit`.
    fn records_under(
        &self,
        prefix: &[u8],
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(NaturalKey, Record)>, StoreError> {
        let scan = match resume {
            Some(after) if after.starts_with(prefix) => self
                .records
                .range::<&[u8], _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            Some(_) => return Ok(Vec::new()),
            None => self.records.range::<&[u8], _>(prefix..),
        };
        let mut out = Vec::new();
        for item in scan {
            if out.len() == limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), decode::<Record>(&v, "record")?));
        }
        Ok(out)
    }
}

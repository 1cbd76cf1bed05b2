//! The in-memory engine's integrity check and fingerprint.

use uuid::Uuid;

use super::Data;
use crate::domain::case::Case;
use crate::domain::census::{Figures, Monthly, PlatformReport};
use crate::domain::consent::Consent;
use crate::domain::record::{Hash, Status};
use crate::domain::region::RegionCode;
use crate::domain::usage::Checkpoint;
use crate::store::Quarantined;
use crate::store::check::{self, CheckReport, LatestVersions, UsageChain};
use crate::store::chunks::decode_change;
use crate::store::codec::decode;
use crate::store::notices::decode_notice;

impl Data {
    /// What can be checked of data that no disk can damage: every value decodes as its
    /// table says; record versions match their content hash and sit under their own
    /// natural key; the current records agree with the changelog's latest versions and
    /// the census figures with a recount (the rules in `store::check`, shared with
    /// sled); the changelog and the usage log run from 1 without gap and the usage chain
    /// links; every index names a row that is held. It catches a `Store` that wrote
    /// inconsistent data through the seam, not a damaged medium.
    pub(super) fn check(&self) -> CheckReport {
        let mut rep = CheckReport::default();
        let seq_at = |seq: u64| format!("sequence {seq}");

        let mut latest = LatestVersions::new();
        for (&seq, (tag, v)) in &self.changelog {
            // One row per entry: each is its own "chunk" in the report.
            rep.chunks += 1;
            rep.changes += 1;
            if seq <= rep.last_change {
                rep.find("changelog", seq_at(seq), "an entry out of sequence");
            } else if seq != rep.last_change + 1 {
                rep.find(
                    "changelog",
                    seq_at(seq),
                    format!("entries {} to {} are missing", rep.last_change + 1, seq - 1),
                );
            }
            rep.last_change = seq;
            match decode_change(*tag, v) {
                Ok(change) => check::changelog_entry(&mut rep, seq, &change, &mut latest),
                Err(e) => rep.find("changelog", seq_at(seq), e.to_string()),
            }
        }

        rep.applied = self.applied;
        let caught_up = self.applied == rep.last_change;
        let mut figures = Figures::default();
        for (k, v) in &self.records {
            if let Some(problem) =
                check::current_record(&mut rep, k, v, caught_up, &mut latest, &mut figures)
            {
                rep.find("records", check::show_key(k), problem);
            }
        }
        let stored = match self.figures.as_deref().map(|v| decode(v, "census figures")) {
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                rep.find("records", "census figures", e.to_string());
                None
            }
            None => None,
        };
        check::current_against_changelog(
            &mut rep,
            &latest,
            stored,
            &figures,
            ("the replay mark", "census figures"),
        );
        self.check_current(&mut rep);

        let mut chain = UsageChain::default();
        for (&seq, v) in &self.usage {
            chain.entry(&mut rep, seq, v, || seq_at(seq));
        }
        for (subject, seq) in &self.usage_index {
            rep.usage_index += 1;
            if !self.usage.contains_key(seq) {
                rep.find(
                    "usage",
                    format!("usage index of {}", crate::domain::record::mask_id(subject)),
                    format!("names entry {seq}, but the log ends at {}", chain.last()),
                );
            }
        }
        self.check_side(&mut rep);
        rep
    }

    /// Over every row of every table but the usage log and the notices, table by table
    /// in key order.
    pub(super) fn fingerprint(&self) -> Hash {
        let mut fp = Fingerprint(ring::digest::Context::new(&ring::digest::SHA256));
        fp.table("records", self.records.iter().map(|(k, v)| (k.clone(), v)));
        fp.table(
            "replica ids",
            self.replica_ids.iter().map(|(id, k)| (id_key(id), k)),
        );
        fp.table(
            "redaction queue",
            self.redact_queue.iter().map(|(id, v)| (id_key(id), v)),
        );
        let cursors: Vec<(Vec<u8>, Vec<u8>)> = self
            .cursors
            .iter()
            .map(|(c, s)| (region_key(c), s.to_be_bytes().to_vec()))
            .collect();
        fp.table("cursors", cursors.iter().map(|(k, v)| (k.clone(), v)));
        fp.table(
            "quarantine",
            self.quarantine
                .iter()
                .map(|((c, s), v)| (seq_key(region_key(c), *s), v)),
        );
        fp.table("figures", self.figures.iter().map(|v| (Vec::new(), v)));
        fp.table(
            "monthly",
            self.monthly.iter().map(|((p, m), v)| {
                let mut k = p.as_bytes().to_vec();
                k.push(0);
                k.extend_from_slice(m.as_bytes());
                (k, v)
            }),
        );
        fp.table(
            "days",
            self.days
                .iter()
                .map(|(d, v)| (d.to_string().into_bytes(), v)),
        );
        let marks: Vec<(Vec<u8>, Vec<u8>)> = [
            self.last_day
                .map(|d| (b"last day".to_vec(), d.to_string().into_bytes())),
            Some((b"applied".to_vec(), self.applied.to_be_bytes().to_vec())),
            self.region
                .map(|r| (b"region".to_vec(), r.as_str().as_bytes().to_vec())),
        ]
        .into_iter()
        .flatten()
        .collect();
        fp.table("marks", marks.iter().map(|(k, v)| (k.clone(), v)));
        fp.table(
            "child reports",
            self.child_reports.iter().map(|(c, v)| (region_key(c), v)),
        );
        let changelog: Vec<(Vec<u8>, Vec<u8>)> = self
            .changelog
            .iter()
            .map(|(s, (tag, v))| {
                let mut value = vec![*tag];
                value.extend_from_slice(v);
                (s.to_be_bytes().to_vec(), value)
            })
            .collect();
        fp.table("changelog", changelog.iter().map(|(k, v)| (k.clone(), v)));
        fp.table(
            "consents",
            self.consents.iter().map(|(id, v)| (id_key(id), v)),
        );
        fp.table(
            "consents by subject",
            self.consents_by_subject.iter().map(|(s, id)| {
                let mut k = s.as_bytes().to_vec();
                k.push(0);
                k.extend_from_slice(id.as_bytes());
                (k, &EMPTY)
            }),
        );
        fp.table(
            "checkpoints",
            self.checkpoints
                .iter()
                .map(|((n, s), v)| (seq_key(region_key(n), *s), v)),
        );
        fp.table("cases", self.cases.iter().map(|(id, v)| (id_key(id), v)));
        fp.table(
            "cases by record",
            self.cases_by_record.iter().map(|(r, c)| {
                let mut k = id_key(r);
                k.extend_from_slice(c.as_bytes());
                (k, &EMPTY)
            }),
        );
        let mut out = [0u8; 32];
        out.copy_from_slice(fp.0.finish().as_ref());
        out
    }
}

/// The value of an index row (the row is its key).
static EMPTY: Vec<u8> = Vec::new();

fn id_key(id: &Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

fn region_key(region: &RegionCode) -> Vec<u8> {
    region.as_str().as_bytes().to_vec()
}

fn seq_key(mut key: Vec<u8>, seq: u64) -> Vec<u8> {
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// SHA-256 over tables of rows, each length-prefixed so no two contents hash alike.
struct Fingerprint(ring::digest::Context);

impl Fingerprint {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(&(b.len() as u64).to_be_bytes());
        self.0.update(b);
    }

    fn table<'a>(&mut self, name: &str, rows: impl Iterator<Item = (Vec<u8>, &'a Vec<u8>)>) {
        self.bytes(name.as_bytes());
        for (k, v) in rows {
            self.bytes(&k);
            self.bytes(v);
        }
    }
}

impl Data {
    /// The current state's values other than records: each decodes, each index names a
    /// record held, a quarantined entry sits under its own child and sequence.
    fn check_current(&self, rep: &mut CheckReport) {
        let find = |rep: &mut CheckReport, at: String, problem: String| {
            rep.find("records", at, problem);
        };
        rep.other += (self.replica_ids.len()
            + self.redact_queue.len()
            + self.cursors.len()
            + self.quarantine.len()
            + self.monthly.len()
            + self.days.len()
            + self.child_reports.len()) as u64;
        for (id, key) in &self.replica_ids {
            if !self.records.contains_key(key) {
                find(
                    rep,
                    format!("replica index of {id}"),
                    "the replica index names a record that is not held".into(),
                );
            }
        }
        for (id, v) in &self.redact_queue {
            if let Err(e) = decode::<(u64, Status)>(v, "redaction queue") {
                find(rep, format!("redaction queue, {id}"), e.to_string());
            }
        }
        for ((child, seq), v) in &self.quarantine {
            match decode::<Quarantined>(v, "quarantined entry") {
                Ok(q) if (q.child, q.child_seq) != (*child, *seq) => find(
                    rep,
                    format!("quarantine of {child}, {seq}"),
                    "a quarantined entry under another child's or sequence's key".into(),
                ),
                Ok(_) => {}
                Err(e) => find(rep, format!("quarantine of {child}, {seq}"), e.to_string()),
            }
        }
        for ((provider, period), v) in &self.monthly {
            if let Err(e) = decode::<Monthly>(v, "monthly submissions") {
                find(
                    rep,
                    format!("monthly of {provider}, {period}"),
                    e.to_string(),
                );
            }
        }
        for (day, v) in &self.days {
            if let Err(e) = decode::<Figures>(v, "census snapshot") {
                find(rep, format!("census snapshot of {day}"), e.to_string());
            }
        }
        for (child, v) in &self.child_reports {
            if let Err(e) = decode::<PlatformReport>(v, "child census report") {
                find(rep, format!("census report of {child}"), e.to_string());
            }
        }
    }

    /// Consents, checkpoints, cases and notices: each decodes; each index names what is
    /// held.
    fn check_side(&self, rep: &mut CheckReport) {
        for (id, v) in &self.consents {
            rep.consents += 1;
            if let Err(e) = decode::<Consent>(v, "consent") {
                rep.find("consents", format!("consent {id}"), e.to_string());
            }
        }
        for (_, id) in &self.consents_by_subject {
            if !self.consents.contains_key(id) {
                rep.find(
                    "consents",
                    "subject index",
                    "names a consent that is not held",
                );
            }
        }
        for ((node, seq), v) in &self.checkpoints {
            rep.checkpoints += 1;
            if let Err(e) = decode::<Checkpoint>(v, "checkpoint") {
                rep.find("checkpoints", format!("{node}/{seq}"), e.to_string());
            }
        }
        for (id, v) in &self.cases {
            rep.objections += 1;
            if let Err(e) = decode::<Case>(v, "objection case") {
                rep.find("objections", format!("case {id}"), e.to_string());
            }
        }
        for (record, id) in &self.cases_by_record {
            if !self.cases.contains_key(id) {
                rep.find(
                    "objections",
                    format!("cases of record {record}"),
                    "names a case that is not held",
                );
            }
        }
        let queued = self.outbox.iter().map(|((_, from, id), v)| (from, id, v));
        let received = self.inbox.iter().map(|((from, id), v)| (from, id, v));
        for (from, id, v) in queued.chain(received) {
            rep.notices += 1;
            if let Err(e) = decode_notice(v) {
                rep.find("notices", format!("notice {from}/{id}"), e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::Store;
    use crate::store::backend::Backend;
    use crate::store::codec::encode;
    use crate::store::memory::MemoryEngine;
    use crate::store::tests::{content, push_usage, region};

    /// A way to damage the data.
    type Harm = Box<dyn Fn(&mut Data)>;

    /// The check applies the rules sled's check applies: a store written through the
    /// seam passes, and each inconsistency a `Store` could write is named.
    #[test]
    fn the_check_names_each_inconsistency() {
        let dir = tempfile::tempdir().unwrap();
        let engine = MemoryEngine::new();
        let store = Store::open_in_memory(&engine, dir.path()).unwrap();
        let batch = vec![content("S1", "R-1", "1"), content("S2", "R-2", "1")];
        store.accept(batch, region(), 10, push_usage).unwrap();
        let batch = vec![content("S1", "R-1", "2")];
        store.accept(batch, region(), 11, push_usage).unwrap();
        let report = store.check();
        assert!(report.ok(), "{:?}", report.damage);
        assert_eq!((report.records, report.changes), (2, 3));
        assert_eq!((report.usage_entries, report.applied), (2, 3));
        assert!(
            Store::open_in_memory(&engine, dir.path()).is_err(),
            "open twice"
        );
        drop(store);
        let pristine = engine.data.lock().unwrap().clone();
        let first_version = pristine.changelog[&1].1.clone();
        let damages: Vec<(&str, Harm)> = vec![
            (
                "does not link to the one before it",
                Box::new(|d| {
                    let first = d.usage[&1].clone();
                    d.usage.insert(2, first);
                }),
            ),
            (
                "holds v1 but the changelog's latest is v2",
                Box::new(move |d| {
                    let key = d.records.keys().next().unwrap().clone();
                    d.records.insert(key, first_version.clone());
                }),
            ),
            (
                "differ from a recount",
                Box::new(|d| d.figures = Some(encode(&Figures::default()).unwrap())),
            ),
            (
                "entries 2 to 2 are missing",
                Box::new(|d| {
                    d.changelog.remove(&2);
                }),
            ),
            ("applied the changelog up to 9", Box::new(|d| d.applied = 9)),
            (
                "not under its own key",
                Box::new(|d| {
                    let (_, v) = d.records.pop_first().unwrap();
                    d.records.insert(b"kS9\0x".to_vec(), v);
                }),
            ),
            (
                "unknown format byte",
                Box::new(|d| {
                    d.inbox.insert((region(), 1), vec![9, 9]);
                }),
            ),
            (
                "names a case that is not held",
                Box::new(|d| {
                    d.cases_by_record.insert((Uuid::nil(), Uuid::nil()));
                }),
            ),
        ];
        for (expected, damage) in damages {
            let mut data = pristine.clone();
            damage(&mut data);
            let damaged = MemoryEngine {
                data: Arc::new(Mutex::new(data)),
                ..MemoryEngine::default()
            };
            let report = damaged.backend().unwrap().check();
            assert!(
                report.damage.iter().any(|d| d.problem.contains(expected)),
                "{expected}: {:?}",
                report.damage
            );
        }
    }
}

//! The store's integrity check (R-SEC-1): a damaged store is refused, never served.
//!
//! Run at every start (`Store::open_checked`, from `Node::open`) before anything is read
//! for serving or replayed, and offline by `credit-node store check`. It reads every value
//! of every tree once and checks that:
//! * every value decodes as the type its key says (records, changelog chunks, usage
//!   entries, consents, checkpoints, objection cases, notices, census figures and
//!   submissions, cursors, marks) and no key has an unknown shape;
//! * every record version's content matches the content hash its origin set, and a
//!   current record sits under the natural key its content makes;
//! * the changelog's chunks follow each other without gap or overlap, and the records
//!   tree is not ahead of it (`a` mark);
//! * each current record is the latest version of its id in the changelog, and the
//!   changelog names exactly the records the records tree holds;
//! * the census figures equal a recount of the records (`Store::recount`);
//! * the usage log's sequences run from 1 without gap and its hash chain links; every
//!   subject-index entry names an entry that exists; consent and case indexes name a
//!   consent or case that exists.
//!
//! The rules over what is read (`changelog_entry`, `current_record`,
//! `current_against_changelog`, `UsageChain`) are shared with the in-memory engine
//! (`memory`), which walks its own tables; the walk of sled's trees and their key shapes
//! is sled's alone.
//!
//! sled has no checksums on every page it serves back (a flipped byte in a live value
//! can come back as a silently different value), so these checks, not sled's own, are
//! what catch most damage. sled can also panic or spin on a damaged page: callers run the
//! check under a time bound and catch panics (`bounded`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

use super::codec::decode;
use super::keys;
use super::{Change, StoreError, decode_chunk};
use crate::domain::record::{Hash, Record, Status, mask_id};
use crate::domain::usage::{Chained, chain_hash};

/// Damage past this many places is counted, not listed.
const MAX_FINDINGS: usize = 100;

/// One damaged place: the tree, the key (identifiers masked) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub tree: &'static str,
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tree {}, {}: {}", self.tree, self.key, self.problem)
    }
}

/// What was checked, and what was found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Current records in the records tree.
    pub records: u64,
    /// Changelog chunks and the entries they hold; the last sequence.
    pub chunks: u64,
    pub changes: u64,
    pub last_change: u64,
    /// The records tree's replay mark (`a`).
    pub applied: u64,
    pub usage_entries: u64,
    pub usage_index: u64,
    pub consents: u64,
    pub checkpoints: u64,
    pub objections: u64,
    pub notices: u64,
    /// Other values of the records tree (census, cursors, marks, indexes).
    pub other: u64,
    /// How long sled took to open the store, and the check to read it (for `store check`
    /// and the start log; never asserted).
    pub open_ms: u64,
    pub check_ms: u64,
    pub damage: Vec<Damage>,
    /// Damage beyond what is listed.
    pub more: u64,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.damage.is_empty()
    }

    pub(super) fn find(
        &mut self,
        tree: &'static str,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) {
        if self.damage.len() < MAX_FINDINGS {
            self.damage.push(Damage {
                tree,
                key: key.into(),
                problem: problem.into(),
            });
        } else {
            self.more += 1;
        }
    }

    /// One line per figure, for `store check`.
    pub fn summary(&self) -> String {
        format!(
            "records {}, changelog {} entries in {} chunks (last {}, applied {}), usage log {} \
             entries ({} index keys), consents {}, checkpoints {}, objection cases {}, \
             notices {}, other values {}",
            self.records,
            self.changes,
            self.chunks,
            self.last_change,
            self.applied,
            self.usage_entries,
            self.usage_index,
            self.consents,
            self.checkpoints,
            self.objections,
            self.notices,
            self.other
        )
    }
}

/// The trees the check reads.
pub(super) struct Trees<'a> {
    pub records: &'a sled::Tree,
    pub changelog: &'a sled::Tree,
    pub usage: &'a sled::Tree,
    pub notices: &'a sled::Tree,
    pub consents: &'a sled::Tree,
    pub checkpoints: &'a sled::Tree,
    pub objections: &'a sled::Tree,
}

/// A key for a report: readable ASCII as is, a subject's identifier masked, anything
/// else in hex.
pub(super) fn show_key(key: &[u8]) -> String {
    if key.len() == 8 {
        return format!(
            "sequence {}",
            u64::from_be_bytes(key.try_into().unwrap_or([0; 8]))
        );
    }
    // A usage-index key: the subject's identifier, then the entry's sequence.
    if let Some(rest) = key.strip_prefix(&keys::usage::INDEX[..])
        && let Some(nul) = rest.len().checked_sub(9)
        && rest[nul] == 0
    {
        let seq = <[u8; 8]>::try_from(&rest[nul + 1..]).map_or(0, u64::from_be_bytes);
        return format!(
            "usage index of {}, entry {seq}",
            mask_id(&String::from_utf8_lossy(&rest[..nul]))
        );
    }
    let printable = |b: &[u8]| b.iter().all(|c| c.is_ascii_graphic() || *c == 0);
    if printable(key) {
        let parts: Vec<String> = String::from_utf8_lossy(key)
            .split('\0')
            .enumerate()
            .map(|(i, p)| {
                // The part after a one-letter prefix that keys by subject.
                if i == 0 && p.len() > 1 && matches!(p.as_bytes()[0], b'k' | b's') {
                    format!("{}{}", &p[..1], mask_id(&p[1..]))
                } else {
                    p.to_string()
                }
            })
            .collect();
        return format!("key \"{}\"", parts.join("\\0"));
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("key 0x{hex}")
}

/// Scans `tree`, handing each key and value to `f`; a read error ends the scan of that
/// tree and is reported (sled cannot go on past a page it cannot read).
fn scan(
    report: &mut CheckReport,
    name: &'static str,
    iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    mut f: impl FnMut(&mut CheckReport, &[u8], &[u8]),
) {
    let mut last: Option<sled::IVec> = None;
    for item in iter {
        match item {
            Ok((k, v)) => {
                f(report, &k, &v);
                last = Some(k);
            }
            Err(e) => {
                let at = last.map_or_else(
                    || "at its start".to_string(),
                    |k| format!("after {}", show_key(&k)),
                );
                report.find(name, at, format!("cannot be read: {e}"));
                return;
            }
        }
    }
}

fn hash_ok(r: &Record) -> bool {
    r.content.hash() == r.content_hash
}

/// Checks every tree; see the module doc.
pub(super) fn run(t: &Trees<'_>) -> CheckReport {
    let mut report = CheckReport::default();

    // The changelog first: the latest version of each record id, for the records tree.
    // Kept small (a big store has millions of ids): the version, the first bytes of the
    // content hash, and whether the records tree was seen to hold it.
    let mut latest = LatestVersions::new();
    let mut next: Option<u64> = None;
    scan(&mut report, "changelog", t.changelog.iter(), |rep, k, v| {
        rep.chunks += 1;
        let Ok(first) = <[u8; 8]>::try_from(k).map(u64::from_be_bytes) else {
            rep.find("changelog", show_key(k), "a key that is not a sequence");
            return;
        };
        if let Some(expected) = next
            && first != expected
        {
            rep.find(
                "changelog",
                show_key(k),
                format!(
                    "the chunk starts at {first}, but the one before ends at {}",
                    expected - 1
                ),
            );
        }
        let changes = match decode_chunk(v) {
            Ok(c) => c,
            Err(e) => {
                rep.find(
                    "changelog",
                    show_key(k),
                    format!("the chunk does not decode: {e}"),
                );
                next = None;
                return;
            }
        };
        if changes.is_empty() || first == 0 {
            rep.find(
                "changelog",
                show_key(k),
                "an empty chunk, or one at sequence 0",
            );
            next = None;
            return;
        }
        for (i, change) in changes.iter().enumerate() {
            changelog_entry(rep, first + i as u64, change, &mut latest);
        }
        rep.changes += changes.len() as u64;
        rep.last_change = first + changes.len() as u64 - 1;
        next = Some(first + changes.len() as u64);
    });

    // The records tree: current records, then everything else by its one-byte prefix.
    // Each record is compared with the changelog as it is read, so the check holds no
    // records in memory, only `latest`.
    let mut figures = crate::domain::census::Figures::default();
    let mut stored_figures = None;
    let mut applied = None;
    let last_change = report.last_change;
    scan(&mut report, "records", t.records.iter(), |rep, k, v| {
        let at = || show_key(k);
        let Some(&prefix) = k.first() else {
            rep.find("records", "the empty key", "a key of unknown shape");
            return;
        };
        let problem: Option<String> = match prefix {
            // The replay mark `a` sorts before the records (`k`), so it is read by now.
            keys::records::RECORD => current_record(
                rep,
                k,
                v,
                applied.unwrap_or(0) == last_change,
                &mut latest,
                &mut figures,
            ),
            _ => {
                rep.other += 1;
                other_value(k, v, t.records, &mut stored_figures, &mut applied)
            }
        };
        if let Some(p) = problem {
            rep.find("records", at(), p);
        }
    });
    report.applied = applied.unwrap_or(0);
    current_against_changelog(
        &mut report,
        &latest,
        stored_figures,
        &figures,
        ("key \"a\"", "key \"n\""),
    );

    usage(t.usage, &mut report);
    side_trees(t, &mut report);
    report
}

/// The latest version of a record id in the changelog, as the check keeps it.
#[derive(Default)]
pub(super) struct Latest {
    version: u64,
    /// The first 8 bytes of the content hash: enough to tell damage from chance.
    hash: [u8; 8],
    /// The records tree holds it.
    seen: bool,
}

fn short_hash(h: &Hash) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&h[..8]);
    out
}

/// A current record `r` against the latest version of its id in the changelog
/// (`latest`), which it marks as held.
fn against_changelog(r: &Record, latest: Option<&mut Latest>, caught_up: bool) -> Option<String> {
    let Some(l) = latest else {
        return Some(format!("record {} is held, but not in the changelog", r.id));
    };
    if l.seen {
        return Some(format!("record {} is held under two keys", r.id));
    }
    l.seen = true;
    let same = l.version == r.version && l.hash == short_hash(&r.content_hash);
    ((caught_up && !same) || r.version > l.version).then(|| {
        format!(
            "record {} holds v{} but the changelog's latest is v{}{}",
            r.id,
            r.version,
            l.version,
            if l.version == r.version {
                " with other content"
            } else {
                ""
            }
        )
    })
}

/// The latest version of each record id in the changelog: what the current records are
/// checked against. Kept small (a big store has millions of ids): the version, the first
/// bytes of the content hash, and whether the current state was seen to hold it.
pub(super) type LatestVersions = HashMap<Uuid, Latest>;

/// One changelog entry at `seq`: a record version must match its content hash, and is
/// noted in `latest`. (The rules of the check, shared by every engine; how an engine
/// walks its rows is its own.)
pub(super) fn changelog_entry(
    rep: &mut CheckReport,
    seq: u64,
    change: &Change,
    latest: &mut LatestVersions,
) {
    if let Change::Record(r) = change {
        if !hash_ok(r) {
            rep.find(
                "changelog",
                format!("sequence {seq}"),
                format!(
                    "record {} v{} does not match its content hash",
                    r.id, r.version
                ),
            );
        }
        let e = latest.entry(r.id).or_default();
        if r.version >= e.version {
            e.version = r.version;
            e.hash = short_hash(&r.content_hash);
        }
    }
}

/// One current record, stored as `v` under the natural key `key`: it decodes, sits under
/// its own key, matches its content hash and agrees with the changelog (`latest`); it is
/// counted into `figures` for the recount. `caught_up`: the current state has applied
/// the whole changelog (with a tail not yet replayed, records may lag it). Returns the
/// problem found, if any.
pub(super) fn current_record(
    rep: &mut CheckReport,
    key: &[u8],
    v: &[u8],
    caught_up: bool,
    latest: &mut LatestVersions,
    figures: &mut crate::domain::census::Figures,
) -> Option<String> {
    let r = match decode::<Record>(v, "record") {
        Ok(r) => r,
        Err(e) => return Some(e.to_string()),
    };
    rep.records += 1;
    let problem = if keys::natural(&r.content, &r.origin) != key {
        Some(format!("record {} is not under its own key", r.id))
    } else if !hash_ok(&r) {
        Some(format!(
            "record {} v{} does not match its content hash",
            r.id, r.version
        ))
    } else {
        against_changelog(&r, latest.get_mut(&r.id), caught_up)
    };
    figures.count(&r, true);
    problem
}

/// After every current record was read: the replay mark (`report.applied`) is not ahead
/// of the changelog; once caught up, the current state holds exactly the changelog's
/// records; the stored census figures equal the recount `figures`. `at`: how the
/// engine names where it keeps the replay mark and the figures.
pub(super) fn current_against_changelog(
    report: &mut CheckReport,
    latest: &LatestVersions,
    stored_figures: Option<crate::domain::census::Figures>,
    figures: &crate::domain::census::Figures,
    at: (&str, &str),
) {
    if report.applied > report.last_change {
        report.find(
            "records",
            at.0,
            format!(
                "the records tree says it applied the changelog up to {}, but the changelog \
                 ends at {}",
                report.applied, report.last_change
            ),
        );
    }
    let caught_up = report.applied == report.last_change;
    let unseen = latest.values().filter(|l| !l.seen).count();
    if caught_up && (latest.len() as u64 != report.records || unseen > 0) {
        report.find(
            "records",
            "all records",
            format!(
                "the changelog names {} records, the records tree holds {} ({unseen} of the \
                 changelog's not held)",
                latest.len(),
                report.records
            ),
        );
    }
    match stored_figures {
        Some(stored) if stored != *figures => report.find(
            "records",
            at.1,
            format!(
                "the census figures (total {}) differ from a recount of the records (total {})",
                stored.total, figures.total
            ),
        ),
        None if report.records > 0 => {
            // A store from before the census: `open` counts it once.
        }
        _ => {}
    }
}

/// The usage log read in sequence order: sequences from 1 without gap, each entry
/// decoding, matching its hash and linking to the one before.
pub(super) struct UsageChain {
    expected: u64,
    /// The hash the next entry must link to (`None` after a gap or damage: not checked).
    prev: Option<Hash>,
}

impl Default for UsageChain {
    fn default() -> Self {
        UsageChain {
            expected: 1,
            prev: Some([0; 32]),
        }
    }
}

impl UsageChain {
    /// The entry stored as `v` at `seq`; `at` names it in a finding (made only for one:
    /// the check reads every entry at every start).
    pub(super) fn entry(
        &mut self,
        rep: &mut CheckReport,
        seq: u64,
        v: &[u8],
        at: impl Fn() -> String,
    ) {
        if seq != self.expected {
            let problem = if seq > self.expected {
                format!("entries {} to {} are missing", self.expected, seq - 1)
            } else {
                format!("an entry out of sequence (expected {})", self.expected)
            };
            rep.find("usage", at(), problem);
            self.prev = None;
        }
        self.expected = seq.saturating_add(1);
        rep.usage_entries += 1;
        match decode::<Chained>(v, "usage entry") {
            Err(e) => {
                rep.find("usage", at(), e.to_string());
                self.prev = None;
            }
            Ok(c) => {
                match chain_hash(&c.prev_hash, &c.entry) {
                    // The check reports, it does not fail: an entry that decodes but
                    // cannot be hashed is one whose hash cannot be confirmed.
                    Err(e) => rep.find("usage", at(), StoreError::from(e).to_string()),
                    Ok(hash) if hash != c.hash => {
                        rep.find("usage", at(), "the entry does not match its hash");
                    }
                    Ok(_) if self.prev.is_some_and(|p| p != c.prev_hash) => rep.find(
                        "usage",
                        at(),
                        "the entry does not link to the one before it",
                    ),
                    Ok(_) => {}
                }
                self.prev = Some(c.hash);
            }
        }
    }

    /// The last sequence read.
    pub(super) fn last(&self) -> u64 {
        self.expected - 1
    }
}

/// A records-tree value other than a current record; an index entry is looked up in
/// `records`.
fn other_value(
    k: &[u8],
    v: &[u8],
    records: &sled::Tree,
    figures: &mut Option<crate::domain::census::Figures>,
    applied: &mut Option<u64>,
) -> Option<String> {
    let seq = |v: &[u8]| <[u8; 8]>::try_from(v).map(u64::from_be_bytes).ok();
    let err = |e: StoreError| Some(e.to_string());
    match k[0] {
        _ if k == keys::records::APPLIED => match seq(v) {
            Some(s) => {
                *applied = Some(s);
                None
            }
            None => Some("the replay mark is not a sequence".into()),
        },
        _ if k == keys::records::REGION => {
            match crate::domain::region::RegionCode::parse(&String::from_utf8_lossy(v)) {
                Ok(_) => None,
                Err(e) => Some(format!("the region does not parse: {e}")),
            }
        }
        _ if k == keys::records::FIGURES => {
            match decode::<crate::domain::census::Figures>(v, "census figures") {
                Ok(f) => {
                    *figures = Some(f);
                    None
                }
                Err(e) => err(e),
            }
        }
        b'l' if k.len() == 1 => {
            chrono::NaiveDate::parse_from_str(&String::from_utf8_lossy(v), "%Y-%m-%d")
                .err()
                .map(|e| format!("the last day written does not parse: {e}"))
        }
        b'c' if k.len() == 7 => seq(v)
            .is_none()
            .then(|| "a cursor that is not a sequence".into()),
        b'o' if k.len() == 17 => match records.contains_key(v) {
            Ok(true) => None,
            Ok(false) => Some("the replica index names a record that is not held".into()),
            Err(e) => Some(format!(
                "the record the replica index names cannot be read: {e}"
            )),
        },
        b'm' => decode::<crate::domain::census::Monthly>(v, "monthly submissions")
            .err()
            .and_then(err),
        b'd' => decode::<crate::domain::census::Figures>(v, "census snapshot")
            .err()
            .and_then(err),
        b'f' => decode::<crate::domain::census::PlatformReport>(v, "child census report")
            .err()
            .and_then(err),
        b'x' if k.len() == 17 => decode::<(u64, Status)>(v, "redaction queue")
            .err()
            .and_then(err),
        b'q' if k.len() == 15 => {
            match decode::<super::quarantine::Quarantined>(v, "quarantined entry") {
                Ok(q) if keys::quarantine(&q.child, q.child_seq)[..] != k[..] => {
                    Some("a quarantined entry under another child's or sequence's key".into())
                }
                Ok(_) => None,
                Err(e) => err(e),
            }
        }
        _ => Some("a key of unknown shape".into()),
    }
}

/// The usage log: sequences from 1 without gap, each entry decoding and linking to the
/// one before; then the subject index.
fn usage(tree: &sled::Tree, report: &mut CheckReport) {
    let mut chain = UsageChain::default();
    scan(
        report,
        "usage",
        tree.range(..keys::usage::END),
        |rep, k, v| {
            let Ok(seq) = <[u8; 8]>::try_from(k).map(u64::from_be_bytes) else {
                rep.find("usage", show_key(k), "a key that is not a sequence");
                return;
            };
            chain.entry(rep, seq, v, || show_key(k));
        },
    );
    let last = chain.last();
    scan(
        report,
        "usage",
        tree.range(keys::usage::END..),
        |rep, k, _| {
            rep.usage_index += 1;
            let shaped = k.len() > keys::usage::INDEX.len() + 9
                && k.starts_with(&keys::usage::INDEX)
                && k[k.len() - 9] == 0;
            let seq = k
                .len()
                .checked_sub(8)
                .and_then(|at| <[u8; 8]>::try_from(&k[at..]).ok())
                .map(u64::from_be_bytes);
            match seq {
                Some(s) if shaped && (1..=last).contains(&s) => {}
                Some(s) if shaped => rep.find(
                    "usage",
                    format!("subject index of entry {s}"),
                    format!("names entry {s}, but the log ends at {last}"),
                ),
                _ => rep.find("usage", "subject index", "a key of unknown shape"),
            }
        },
    );
}

/// Consents, checkpoints, objection cases and notices: each decodes; each index names
/// what exists.
fn side_trees(t: &Trees<'_>, report: &mut CheckReport) {
    let mut consent_ids: HashSet<Vec<u8>> = HashSet::new();
    scan(report, "consents", t.consents.iter(), |rep, k, v| {
        match k.first() {
            Some(b'c') => {
                rep.consents += 1;
                consent_ids.insert(k[1..].to_vec());
                if let Err(e) = decode::<crate::domain::consent::Consent>(v, "consent") {
                    rep.find("consents", show_key(k), e.to_string());
                }
            }
            Some(b's') => {
                // `s` subject \0 id (16 bytes).
                let id = k
                    .len()
                    .checked_sub(16)
                    .filter(|at| *at >= 2)
                    .map(|at| &k[at..]);
                if !id.is_some_and(|id| consent_ids.contains(id)) {
                    rep.find(
                        "consents",
                        "subject index",
                        "names a consent that is not held",
                    );
                }
            }
            _ => rep.find("consents", show_key(k), "a key of unknown shape"),
        }
    });
    scan(report, "checkpoints", t.checkpoints.iter(), |rep, k, v| {
        rep.checkpoints += 1;
        if k.first() != Some(&b'p') {
            rep.find("checkpoints", show_key(k), "a key of unknown shape");
        } else if let Err(e) = decode::<crate::domain::usage::Checkpoint>(v, "checkpoint") {
            rep.find("checkpoints", show_key(k), e.to_string());
        }
    });
    let mut case_ids: HashSet<Vec<u8>> = HashSet::new();
    scan(
        report,
        "objections",
        t.objections.iter(),
        |rep, k, v| match k.first() {
            Some(b'c') => {
                rep.objections += 1;
                case_ids.insert(k[1..].to_vec());
                if let Err(e) = decode::<crate::domain::case::Case>(v, "objection case") {
                    rep.find("objections", show_key(k), e.to_string());
                }
            }
            Some(b'r') if k.len() == 33 => {
                if !case_ids.contains(&k[17..]) {
                    rep.find("objections", show_key(k), "names a case that is not held");
                }
            }
            _ => rep.find("objections", show_key(k), "a key of unknown shape"),
        },
    );
    scan(report, "notices", t.notices.iter(), |rep, k, v| {
        rep.notices += 1;
        if !matches!(k.first(), Some(b'q' | b'i')) {
            rep.find("notices", show_key(k), "a key of unknown shape");
        } else if let Err(e) = super::notices::decode_notice(v) {
            rep.find("notices", show_key(k), e.to_string());
        }
    });
}

/// Runs `f` (an open or a check of the store in `dir`) on a thread of its own, within
/// `bound`: sled can spin for ever or panic on a damaged page. A panic becomes an error
/// naming sled's file; past the bound the thread is abandoned (it holds no lock anyone
/// waits for) and the caller gets an error naming the file.
pub(super) fn bounded<T: Send + 'static>(
    dir: &Path,
    bound: Duration,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let file: PathBuf = dir.join("db");
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("store-open".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(StoreError::Io(e));
    }
    match rx.recv_timeout(bound) {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(StoreError::Damaged {
                file: file.display().to_string(),
                detail: format!("the storage engine panicked reading it ({what})"),
            })
        }
        // Slow is not damaged: a big store on a slow disk can pass the bound (exit 1).
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(StoreError::OpenTimedOut {
            file: file.display().to_string(),
            secs: bound.as_secs(),
        }),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::Engine(format!(
            "the thread opening {} ended without an answer",
            file.display()
        ))),
    }
}

/// The file beside sled's that records how far the store had come when it was last
/// opened clean or closed (after a sync): sled recovers only a prefix of its log, and at
/// a damaged page it silently drops everything after it, so a store that came back
/// shorter than its mark lost data that was acknowledged.
pub const MARK_FILE: &str = "store-mark";
const MARK_HEADER: &str = "credit-node store mark v1";

/// How far the store had come: the last changelog sequence and usage-log entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub changelog: u64,
    pub usage: u64,
}

/// The mark in `dir`, or `None` for a store from before marks (or never closed).
pub fn read_mark(dir: &Path) -> Result<Option<Mark>, StoreError> {
    let file = dir.join(MARK_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // Not readable (permissions, I/O) is not damaged (exit 1); the file is named.
        Err(e) => {
            return Err(StoreError::Io(std::io::Error::new(
                e.kind(),
                format!("{} cannot be read: {e}", file.display()),
            )));
        }
    };
    let mut lines = text.lines();
    let header = lines.next() == Some(MARK_HEADER);
    let mut number = |name: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    let parsed = number("changelog ")
        .zip(number("usage "))
        .filter(|_| header)
        .map(|(changelog, usage)| Mark { changelog, usage });
    match parsed {
        Some(m) => Ok(Some(m)),
        None => Err(StoreError::Damaged {
            file: file.display().to_string(),
            detail: "does not parse as a store mark".into(),
        }),
    }
}

/// Writes the mark atomically (a new file, synced, renamed over the old one).
pub(super) fn write_mark(dir: &Path, mark: Mark) -> Result<(), StoreError> {
    use std::io::Write;
    let tmp = dir.join(format!("{MARK_FILE}.new"));
    let mut f = std::fs::File::create(&tmp)?;
    write!(
        f,
        "{MARK_HEADER}\nchangelog {}\nusage {}\n",
        mark.changelog, mark.usage
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(MARK_FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Damage when the store came back shorter than its mark.
pub(super) fn against_mark(report: &mut CheckReport, mark: Option<Mark>, dir: &Path) {
    let Some(mark) = mark else {
        return;
    };
    let file = dir.join(MARK_FILE);
    if report.last_change < mark.changelog {
        report.find(
            "changelog",
            format!("sequences {} to {}", report.last_change + 1, mark.changelog),
            format!(
                "missing: the changelog ends at {}, but it had reached {} when the store was \
                 last closed ({}); the storage engine dropped the rest of its log, likely at a \
                 damaged page",
                report.last_change,
                mark.changelog,
                file.display()
            ),
        );
    }
    if report.usage_entries < mark.usage {
        report.find(
            "usage",
            format!("entries {} to {}", report.usage_entries + 1, mark.usage),
            format!(
                "missing: the usage log ends at {}, but it had reached {} when the store was \
                 last closed ({})",
                report.usage_entries,
                mark.usage,
                file.display()
            ),
        );
    }
}

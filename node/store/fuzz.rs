//! The stored-value side of the fuzz harness (`crate::fuzzing`): every value type the
//! store decodes, decoded from arbitrary bytes the way the store decodes it, and sample
//! values of each for seed corpora. Lives here because the codec is private to `store`.

use chrono::NaiveDate;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::codec::{decode, encode};
use super::{Change, chunk_value, decode_chunk};
use crate::domain::case::{
    Answer, Case, Checked, Fault, Outcome as CaseOutcome, Reply, Resolution,
};
use crate::domain::census::PlatformReport;
use crate::domain::census::{Figures, Monthly};
use crate::domain::consent::{Consent, Purpose, Terms, Withdrawal};
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::record::{Content, Disclosure, Record, Status, Subject, SubjectKind};
use crate::domain::region::RegionCode;
use crate::domain::signature::Signature;
use crate::domain::usage::{Action, Chained, Checkpoint, Outcome, UsageEntry};

/// The kinds of stored value, in the order of the selector byte of a fuzz input
/// (`child census report` is 9).
pub const STORED_KINDS: [&str; 11] = [
    "record",
    "changelog chunk",
    "consent",
    "checkpoint",
    "objection case",
    "notice",
    "usage entry",
    "census figures",
    "monthly submissions",
    "child census report",
    "redaction queue",
];

/// Decodes `bytes` as the stored value of kind `kind % STORED_KINDS.len()`, as the store
/// would. A value that decodes must survive encode and decode unchanged (and encode to
/// the same bytes again); a value that does not decode must be an error, never a panic.
/// Returns whether the bytes decoded, or what broke.
pub fn check_stored(kind: u8, bytes: &[u8]) -> Result<bool, String> {
    let what = STORED_KINDS[usize::from(kind) % STORED_KINDS.len()];
    match what {
        "record" => round_trip::<Record>(bytes, what),
        "changelog chunk" => chunk_round_trip(bytes),
        "consent" => round_trip::<Consent>(bytes, what),
        "checkpoint" => round_trip::<Checkpoint>(bytes, what),
        "objection case" => round_trip::<Case>(bytes, what),
        "notice" => notice_round_trip(bytes),
        "usage entry" => round_trip::<Chained>(bytes, what),
        "census figures" => round_trip::<Figures>(bytes, what),
        "monthly submissions" => round_trip::<Monthly>(bytes, what),
        "child census report" => round_trip::<PlatformReport>(bytes, what),
        _ => round_trip::<(u64, Status)>(bytes, what),
    }
}

fn round_trip<T>(bytes: &[u8], what: &'static str) -> Result<bool, String>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = decode::<T>(bytes, what) else {
        return Ok(false);
    };
    let encoded =
        encode(&value).map_err(|e| format!("{what}: a decoded value does not encode: {e}"))?;
    let again = decode::<T>(&encoded, what)
        .map_err(|e| format!("{what}: its own encoding does not decode: {e}"))?;
    if again != value {
        return Err(format!(
            "{what}: changed on a round trip: {value:?} became {again:?}"
        ));
    }
    let re_encoded =
        encode(&again).map_err(|e| format!("{what}: a decoded value does not encode: {e}"))?;
    if re_encoded != encoded {
        return Err(format!("{what}: encoding is not deterministic"));
    }
    Ok(true)
}

/// A chunk is written by `chunk_value` from each change's own encoding, not by postcard:
/// what decodes must come back the same through the writer's path.
fn chunk_round_trip(bytes: &[u8]) -> Result<bool, String> {
    let Ok(changes) = decode_chunk(bytes) else {
        return Ok(false);
    };
    let entries = changes
        .iter()
        .map(Change::tag_and_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("changelog chunk: a decoded change does not encode: {e}"))?;
    let written = chunk_value(&entries);
    let again = decode_chunk(&written)
        .map_err(|e| format!("changelog chunk: a chunk as written does not decode: {e}"))?;
    if again != changes {
        return Err(format!(
            "changelog chunk: changed on a round trip: {changes:?} became {again:?}"
        ));
    }
    Ok(true)
}

fn notice_round_trip(bytes: &[u8]) -> Result<bool, String> {
    let Ok(notice) = super::notices::decode_notice(bytes) else {
        return Ok(false);
    };
    let encoded = encode(&notice).map_err(|e| format!("notice: does not encode: {e}"))?;
    let again = super::notices::decode_notice(&encoded)
        .map_err(|e| format!("notice: its own encoding does not decode: {e}"))?;
    if again != notice {
        return Err(format!(
            "notice: changed on a round trip: {notice:?} became {again:?}"
        ));
    }
    Ok(true)
}

/// One encoded sample of each stored kind (selector byte first), for seed corpora.
pub fn stored_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let samples = Samples::new();
    let mut push = |name: &str, kind: usize, bytes: Result<Vec<u8>, super::StoreError>| {
        if let Ok(bytes) = bytes {
            let mut seed = vec![kind as u8];
            seed.extend_from_slice(&bytes);
            out.push((name.to_string(), seed));
        }
    };
    push("record", 0, encode(&samples.record));
    let mut tombstone = samples.record.clone();
    tombstone.status = Status::Deleted;
    tombstone.content.fields.clear();
    tombstone.status_reason = "R-OBJ-3: cannot be verified".into();
    push("record-deleted", 0, encode(&tombstone));
    let changes = [
        Change::Record(samples.record.clone()),
        Change::Consent(samples.consent.clone()),
        Change::Checkpoint(samples.checkpoint.clone()),
        Change::Objection(samples.case.clone()),
    ];
    let entries: Result<Vec<_>, _> = changes.iter().map(Change::tag_and_value).collect();
    push("chunk", 1, entries.map(|e| chunk_value(&e)));
    push(
        "chunk-legacy-records",
        1,
        encode(&vec![samples.record.clone(), tombstone]),
    );
    push("consent", 2, encode(&samples.consent));
    let mut withdrawn = samples.consent.clone();
    withdrawn.withdrawal = Some(Withdrawal {
        at_ms: 1_780_000_000_000,
        by: "credit://operator/211300/op".into(),
        reason: "subject withdrew".into(),
        node: samples.region,
        signature: samples.signature.clone(),
    });
    push("consent-withdrawn", 2, encode(&withdrawn));
    push("checkpoint", 3, encode(&samples.checkpoint));
    push("case", 4, encode(&samples.case));
    let mut resolved = samples.case.clone();
    resolved.version = 3;
    resolved.checked = Some(Checked {
        at_ms: 1_780_000_000_000,
        by: "credit://operator/211382/op".into(),
        fault: Fault::Provider,
        note: "asked the provider".into(),
    });
    resolved.reply = Some(Reply {
        at_ms: 1_780_100_000_000,
        by: "credit://provider/211382/tax".into(),
        answer: Answer::Confirmed,
        text: "correct".into(),
    });
    resolved.resolution = Some(Resolution {
        at_ms: 1_780_200_000_000,
        by: "credit://operator/211382/op".into(),
        outcome: CaseOutcome::Upheld,
        fault: Fault::Provider,
        reason: "confirmed".into(),
        record_version: 2,
    });
    push("case-resolved", 4, encode(&resolved));
    let notice = Notice {
        id: 7,
        kind: NoticeKind::Objection,
        target: samples.region,
        record_id: samples.record.id.to_string(),
        subject_id: samples.record.content.subject.id.clone(),
        text: "objection filed".into(),
        from: samples.parent,
        created_at_ms: 1_780_000_000_000,
        objection: Some(samples.case.clone()),
    };
    push("notice", 5, encode(&notice));
    push("usage-entry", 6, encode(&samples.usage));
    let mut refused = samples.usage.entry.clone();
    refused.outcome = Outcome::Refused {
        code: 3,
        field: "subject_id".into(),
        rule: "R-DATA-1".into(),
        message: "check character".into(),
    };
    push(
        "usage-entry-refused",
        6,
        refused
            .chain([1; 32])
            .map_err(super::StoreError::from)
            .and_then(|c| encode(&c)),
    );
    let mut figures = Figures {
        total: 3,
        natural: 1,
        legal: 2,
        ..Figures::default()
    };
    figures.by_category.insert("tax".into(), 2);
    figures.by_provider.insert("211382/tax".into(), 3);
    figures.via_child.insert("211382".into(), 3);
    push("figures", 7, encode(&figures));
    push(
        "monthly",
        8,
        encode(&Monthly {
            records: 4,
            first_ms: 1_780_000_000_000,
            last_ms: 1_780_100_000_000,
        }),
    );
    push(
        "platform-report",
        9,
        encode(&PlatformReport {
            region: "211382".into(),
            name: "凌源市".into(),
            total: 3,
            natural: 1,
            legal: 2,
            ..PlatformReport::default()
        }),
    );
    push("redaction-queue", 10, encode(&(4u64, Status::Expired)));
    out
}

struct Samples {
    region: RegionCode,
    parent: RegionCode,
    signature: Signature,
    record: Record,
    consent: Consent,
    checkpoint: Checkpoint,
    case: Case,
    usage: Chained,
}

impl Samples {
    fn new() -> Samples {
        // Both codes are valid; a parse failure would be a bug in `RegionCode` itself.
        let region = RegionCode::parse("211382").unwrap_or_else(|e| panic!("{e}"));
        let parent = RegionCode::parse("211300").unwrap_or_else(|e| panic!("{e}"));
        let content = Content {
            subject: Subject {
                kind: SubjectKind::Natural,
                id: "211382199001010015".into(),
                name: "王伟".into(),
            },
            category: "penalty".into(),
            provider_id: "tax".into(),
            provider_ref: "CF-2026-001".into(),
            occurred_on: "2026-05-03".into(),
            ended_on: Some("2026-05-20".into()),
            period: "2026-05".into(),
            adverse: true,
            disclosure: Disclosure::Public,
            fields: [
                ("decision_no".to_string(), "朝税罚〔2026〕1号".to_string()),
                ("amount".to_string(), "1200.50".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let record = Record {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_2113_8200_0001),
            content_hash: content.hash(),
            content,
            origin: region,
            path: vec![region, parent],
            reported_at_ms: 1_780_000_000_000,
            version: 2,
            status: Status::Active,
            status_reason: String::new(),
        };
        let signature = Signature {
            signature: vec![0x30, 0x44, 0x02, 0x20, 1, 2, 3],
            cert: vec![0x30, 0x82, 0x01, 0x00],
        };
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        let consent = Consent {
            terms: Terms {
                id: Uuid::from_u128(0x0190_0000_0000_7000_8000_2113_8200_0002),
                subject_id: "211382199001010015".into(),
                grantee: "credit://agency/211300/bank".into(),
                purpose: Purpose::Lending,
                purpose_text: "loan application".into(),
                categories: vec!["penalty".into(), "tax".into()],
                valid_from: date(2026, 5, 1),
                valid_until: date(2027, 4, 30),
                evidence: "SQ-2026-17".into(),
                recorded_by: "credit://operator/211382/op".into(),
                recorded_at_ms: 1_780_000_000_000,
                node: region,
            },
            signature: signature.clone(),
            withdrawal: None,
            path: vec![region],
        };
        let checkpoint = Checkpoint {
            node: region,
            seq: 42,
            head: [7; 32],
            at_ms: 1_780_000_000_000,
            signature: signature.clone(),
            path: vec![region, parent],
        };
        let case = Case {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_2113_0000_0003),
            record_id: record.id,
            subject_id: "211382199001010015".into(),
            owner: region,
            filed_at: parent,
            filed_by: "credit://operator/211300/op".into(),
            received_ms: 1_780_000_000_000,
            reason: "not mine".into(),
            evidence: "OBJ-17".into(),
            record_version: 2,
            record_hash: record.content_hash,
            version: 0,
            checked: None,
            reply: None,
            resolution: None,
            path: vec![parent],
        };
        let mut entry = UsageEntry::new(
            "credit://agency/211300/bank",
            Action::Query,
            "Query",
            1_780_000_000_000,
        );
        entry.subject = Some("211382199001010015".into());
        entry.purpose = Some("lending".into());
        entry.record_ids = vec![record.id];
        entry.count = 1;
        // A fixed entry of plain fields encodes; failing would be a bug in postcard.
        let usage = entry.chain([0; 32]).unwrap_or_else(|e| panic!("{e}"));
        Samples {
            region,
            parent,
            signature,
            record,
            consent,
            checkpoint,
            case,
            usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_decodes_and_round_trips() {
        let seeds = stored_seeds();
        assert!(seeds.len() >= STORED_KINDS.len(), "a kind has no seed");
        for (name, seed) in seeds {
            let (kind, bytes) = seed.split_first().unwrap();
            assert_eq!(check_stored(*kind, bytes), Ok(true), "{name}");
        }
    }

    /// The chunk decoder read `Change`s with postcard's `from_bytes`, which ignores what
    /// follows: a chunk with bytes after its entries passed as whole.
    #[test]
    fn a_changelog_chunk_with_bytes_after_it_is_corrupt_r_sec_1() {
        let (_, seed) = stored_seeds()
            .into_iter()
            .find(|(n, _)| n == "chunk")
            .unwrap();
        let mut chunk = seed[1..].to_vec();
        assert_eq!(decode_chunk(&chunk).unwrap().len(), 4);
        chunk.push(0);
        assert!(decode_chunk(&chunk).is_err());
    }
}

//! Golden bytes: every value the store writes, encoded by the function that writes it,
//! compared with bytes fixed here; and the fixed bytes read back to the value.
//!
//! A failing test here means the stored format changed: the data folders of nodes
//! already running would no longer read (and a changed usage-chain hash would make every
//! existing usage log fail its audit). Add a migration, a new format byte and a decoder
//! for the old bytes (see `codec`), and pin the new bytes beside the old ones; do not just
//! update the hex.

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::NaiveDate;
use uuid::Uuid;

use super::codec::{CHANGES_FORMAT, FORMAT, decode, encode};
use super::notices::decode_notice;
use super::{Change, Quarantined, StoreError, chunk_value, decode_chunk};
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
use crate::domain::usage::{Action, Chained, Checkpoint, Outcome, UsageEntry, chain_hash};

/// 2026-05-28T20:26:40Z (Unix ms); later steps come whole days after it.
const AT: i64 = 1_780_000_000_000;
const DAY: i64 = 86_400_000;

// ---- the pinned bytes (hex; whitespace between lines is ignored) ----

const RECORD: &str = "\
    0110019000000000700080002113820000010112323131333832313939303031\
    30313030313506e78e8be4bc9f0d61646d696e5f70656e616c74790c6c696e67\
    7975616e2d7461780b43462d323032362d3030310a323032362d30352d303301\
    0a323032362d30352d323007323032362d30350102020b6465636973696f6e5f\
    6e6f17e5878ce7a88ee7bd9ae3809432303236e3809531e58fb70b66696e655f\
    616d6f756e7407313230302e3530063231313338320206323131333832063231\
    3133303080a0a484ce67020414e4bfa1e794a8e4bfaee5a48d20522d4f424a2d\
    335a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\
    5a";
const CONSENT: &str = "\
    0110019000000000700080002113820000021232313133383231393930303130\
    31303031351b6372656469743a2f2f6167656e63792f3231313330302f62616e\
    6b060ce8b4b7e6acbee5aea1e689b9020d61646d696e5f70656e616c74790374\
    61780a323032362d30352d30310a323032372d30342d33300a53512d32303236\
    2d31371b6372656469743a2f2f6f70657261746f722f3231313338322f6f7080\
    a0a484ce670632313133383207304402200102030530820100ff000106323131\
    333832";
const CONSENT_WITHDRAWN: &str = "\
    0110019000000000700080002113820000021232313133383231393930303130\
    31303031351b6372656469743a2f2f6167656e63792f3231313330302f62616e\
    6b060ce8b4b7e6acbee5aea1e689b9020d61646d696e5f70656e616c74790374\
    61780a323032362d30352d30310a323032372d30342d33300a53512d32303236\
    2d31371b6372656469743a2f2f6f70657261746f722f3231313338322f6f7080\
    a0a484ce670632313133383207304402200102030530820100ff018090d7d6ce\
    671b6372656469743a2f2f6f70657261746f722f3231313338322f6f700ce69c\
    ace4babae692a4e59b9e06323131333832023045023082020632313133383206\
    323131333030";
const CASE_FILED: &str = "\
    0110019000000000700080002113000000031001900000000070008000211382\
    0000011232313133383231393930303130313030313506323131333832063231\
    313330301b6372656469743a2f2f6f70657261746f722f3231313330302f6f70\
    80a0a484ce6715e4b88de698afe69cace4babae79a84e8aeb0e5bd95064f424a\
    2d3137025a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\
    5a5a5a5a000000000106323131333832";
const CASE_RESOLVED: &str = "\
    0110019000000000700080002113000000031001900000000070008000211382\
    0000011232313133383231393930303130313030313506323131333832063231\
    313330301b6372656469743a2f2f6f70657261746f722f3231313330302f6f70\
    80a0a484ce6715e4b88de698afe69cace4babae79a84e8aeb0e5bd95064f424a\
    2d3137025a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\
    5a5a5a5a03018090d7d6ce671b6372656469743a2f2f6f70657261746f722f32\
    31313338322f6f700115e5b7b2e9809ae79fa5e68f90e4be9be58d95e4bd8d01\
    80808aa9cf67256372656469743a2f2f70726f76696465722f3231313338322f\
    6c696e677975616e2d746178020ce697a0e6b395e6a0b8e5ae9e0180f0bcfbcf\
    671b6372656469743a2f2f6f70657261746f722f3231313338322f6f70010114\
    522d4f424a2d3320e697a0e6b395e6a0b8e5ae9e030206323131333832063231\
    31333030";
const NOTICE: &str = "\
    0107010632313133383200123231313338323139393030313031303031350fe6\
    8e88e69d83e5b7b2e692a4e59b9e0632313133303080a0a484ce6700";
const NOTICE_WITH_CASE: &str = "\
    01ac0200063231313338322430313930303030302d303030302d373030302d38\
    3030302d32313133383230303030303112323131333832313939303031303130\
    3031350fe5bc82e8aeaee5b7b2e58f97e790860632313133303080a0a484ce67\
    0110019000000000700080002113000000031001900000000070008000211382\
    0000011232313133383231393930303130313030313506323131333832063231\
    313330301b6372656469743a2f2f6f70657261746f722f3231313330302f6f70\
    80a0a484ce6715e4b88de698afe69cace4babae79a84e8aeb0e5bd95064f424a\
    2d3137025a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\
    5a5a5a5a000000000106323131333832";
/// A notice as written before notices could carry a case: `NOTICE` without its last byte.
const NOTICE_LEGACY: &str = "\
    0107010632313133383200123231313338323139393030313031303031350fe6\
    8e88e69d83e5b7b2e692a4e59b9e0632313133303080a0a484ce67";
const CHECKPOINT: &str = "\
    01063231313338322a0707070707070707070707070707070707070707070707\
    07070707070707070780a0a484ce6707304402200102030530820100ff020632\
    313133383206323131333030";
const USAGE_FULL: &str = "\
    0180a0a484ce671b6372656469743a2f2f6167656e63792f3231313330302f62\
    616e6b011f6372656469743a2f2f6167656e63792f3231303030302f70726f76\
    696e636507055175657279011232313133383231393930303130313030313501\
    076c656e64696e670127e3808ae5be81e4bfa1e4b89ae7aea1e79086e69da1e4\
    be8be3808be7acace58d81e59b9be69da1012230313930303030303030303037\
    3030303830303032313133383230303030303030320210019000000000700080\
    00211382000001100190000000007000800021130000000302010e0770757270\
    6f736507522d52454c2d361be794a8e98094e4b88de59ca8e68e88e69d83e88c\
    83e59bb4e586850f616e7377657265642030206f662032424242424242424242\
    4242424242424242424242424242424242424242424242da044d6a6890eb7dc6\
    11f9db0db44f80c1d991cf1608e0c188e9d96a28e40aab";
const USAGE_BARE: &str = "\
    0180a0a484ce671c6372656469743a2f2f6f70657261746f722f323131333832\
    2f6f707300080656657269667900000000000000000000000000000000000000\
    000000000000000000000000000000000000000000aab6f5987f668da31bcef2\
    9f2f20922549a86fbfe814f635b06790b376f10637";
const CHAIN_HASH: &str = "da044d6a6890eb7dc611f9db0db44f80c1d991cf1608e0c188e9d96a28e40aab";
const FIGURES: &str = "\
    01ac0278b401020d61646d696e5f70656e616c7479c801037461786401133231\
    313338322f6c696e677975616e2d746178ac020106323131333832fa01";
const MONTHLY: &str = "010480a0a484ce678090d7d6ce67";
const PLATFORM_REPORT: &str = "\
    010632313133303009e69c9de998b3e5b88290039601fa0180a0a484ce670106\
    32313133383209e5878ce6ba90e5b882ac0278b40180b0f1b1cd6700fa01";
const QUARANTINED: &str = "\
    0106323131333832112430313930303030302d303030302d373030302d383030\
    302d3231313338323030303030310c7375626a6563745f6e616d6508522d4441\
    54412d3118e5a793e5908de4b88ee8af81e4bbb6e58fb7e4b88de7aca680a0a4\
    84ce67050a03010203";
const REDACTION_QUEUE: &str = "010302";
const CHUNK: &str = "\
    0204001001900000000070008000211382000001011232313133383231393930\
    303130313030313506e78e8be4bc9f0d61646d696e5f70656e616c74790c6c69\
    6e677975616e2d7461780b43462d323032362d3030310a323032362d30352d30\
    33010a323032362d30352d323007323032362d30350102020b6465636973696f\
    6e5f6e6f17e5878ce7a88ee7bd9ae3809432303236e3809531e58fb70b66696e\
    655f616d6f756e7407313230302e353006323131333832020632313133383206\
    32313133303080a0a484ce67020414e4bfa1e794a8e4bfaee5a48d20522d4f42\
    4a2d335a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\
    5a5a5a0110019000000000700080002113820000021232313133383231393930\
    30313031303031351b6372656469743a2f2f6167656e63792f3231313330302f\
    62616e6b060ce8b4b7e6acbee5aea1e689b9020d61646d696e5f70656e616c74\
    79037461780a323032362d30352d30310a323032372d30342d33300a53512d32\
    3032362d31371b6372656469743a2f2f6f70657261746f722f3231313338322f\
    6f7080a0a484ce670632313133383207304402200102030530820100ff018090\
    d7d6ce671b6372656469743a2f2f6f70657261746f722f3231313338322f6f70\
    0ce69cace4babae692a4e59b9e06323131333832023045023082020632313133\
    38320632313133303002063231313338322a0707070707070707070707070707\
    07070707070707070707070707070707070780a0a484ce670730440220010203\
    0530820100ff0206323131333832063231313330300310019000000000700080\
    0021130000000310019000000000700080002113820000011232313133383231\
    393930303130313030313506323131333832063231313330301b637265646974\
    3a2f2f6f70657261746f722f3231313330302f6f7080a0a484ce6715e4b88de6\
    98afe69cace4babae79a84e8aeb0e5bd95064f424a2d3137025a5a5a5a5a5a5a\
    5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a03018090d7d6ce\
    671b6372656469743a2f2f6f70657261746f722f3231313338322f6f700115e5\
    b7b2e9809ae79fa5e68f90e4be9be58d95e4bd8d0180808aa9cf672563726564\
    69743a2f2f70726f76696465722f3231313338322f6c696e677975616e2d7461\
    78020ce697a0e6b395e6a0b8e5ae9e0180f0bcfbcf671b6372656469743a2f2f\
    6f70657261746f722f3231313338322f6f70010114522d4f424a2d3320e697a0\
    e6b395e6a0b8e5ae9e03020632313133383206323131333030";
const CONTENT_HASH: &str = "e6f48236ba4ae26ad0ce886b43630a3ecff5918329c71dc61b534d6680ed2fc6";
/// Each enum's variants in declaration order, one postcard byte each.
const VARIANTS: &str = "\
    0001000102000102030400010203040506070001000102000102000102030001\
    02030405060708090a0b";

// ---- comparing ----

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).unwrap();
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("not hex: {pair}"))
        })
        .collect()
}

/// Fails unless `written` is `golden`, naming the bytes written so a reviewer sees what
/// moved.
#[track_caller]
fn same_bytes(what: &str, written: &[u8], golden: &str) {
    assert!(
        written == unhex(golden),
        "{what}: the bytes the store writes changed (see the module doc: add a migration)\n\
         pinned:  {}\nwritten: {}",
        hex(&unhex(golden)),
        hex(written),
    );
}

/// Pins both directions: `value` as the store writes it is `golden`, and `golden` as the
/// store reads it is `value`.
#[track_caller]
fn pin<T: PartialEq + Debug>(
    what: &str,
    value: &T,
    written: Result<Vec<u8>, StoreError>,
    golden: &str,
    read: impl Fn(&[u8]) -> Result<T, StoreError>,
) {
    let written = written.unwrap_or_else(|e| panic!("{what}: does not encode: {e}"));
    same_bytes(what, &written, golden);
    let back = read(&unhex(golden))
        .unwrap_or_else(|e| panic!("{what}: the pinned bytes no longer read: {e}"));
    assert_eq!(
        &back, value,
        "{what}: the pinned bytes read as another value"
    );
}

// ---- the fixed values ----

fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn signature() -> Signature {
    Signature {
        signature: vec![0x30, 0x44, 0x02, 0x20, 0x01, 0x02, 0x03],
        cert: vec![0x30, 0x82, 0x01, 0x00, 0xff],
    }
}

fn record() -> Record {
    Record {
        id: Uuid::from_u128(0x0190_0000_0000_7000_8000_2113_8200_0001),
        content: Content {
            subject: Subject {
                kind: SubjectKind::Natural,
                id: "211382199001010015".into(),
                name: "王伟".into(),
            },
            category: "admin_penalty".into(),
            provider_id: "lingyuan-tax".into(),
            provider_ref: "CF-2026-001".into(),
            occurred_on: "2026-05-03".into(),
            ended_on: Some("2026-05-20".into()),
            period: "2026-05".into(),
            adverse: true,
            disclosure: Disclosure::Statutory,
            fields: BTreeMap::from([
                ("decision_no".to_string(), "凌税罚〔2026〕1号".to_string()),
                ("fine_amount".to_string(), "1200.50".to_string()),
            ]),
        },
        origin: code("211382"),
        path: vec![code("211382"), code("211300")],
        reported_at_ms: AT,
        version: 2,
        status: Status::Repaired,
        status_reason: "信用修复 R-OBJ-3".into(),
        content_hash: [0x5a; 32],
    }
}

fn consent() -> Consent {
    Consent {
        terms: Terms {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_2113_8200_0002),
            subject_id: "211382199001010015".into(),
            grantee: "credit://agency/211300/bank".into(),
            purpose: Purpose::Lending,
            purpose_text: "贷款审批".into(),
            categories: vec!["admin_penalty".into(), "tax".into()],
            valid_from: day(2026, 5, 1),
            valid_until: day(2027, 4, 30),
            evidence: "SQ-2026-17".into(),
            recorded_by: "credit://operator/211382/op".into(),
            recorded_at_ms: AT,
            node: code("211382"),
        },
        signature: signature(),
        withdrawal: None,
        path: vec![code("211382")],
    }
}

fn consent_withdrawn() -> Consent {
    Consent {
        withdrawal: Some(Withdrawal {
            at_ms: AT + DAY,
            by: "credit://operator/211382/op".into(),
            reason: "本人撤回".into(),
            node: code("211382"),
            signature: Signature {
                signature: vec![0x30, 0x45],
                cert: vec![0x30, 0x82],
            },
        }),
        path: vec![code("211382"), code("211300")],
        ..consent()
    }
}

fn case_filed() -> Case {
    Case {
        id: Uuid::from_u128(0x0190_0000_0000_7000_8000_2113_0000_0003),
        record_id: record().id,
        subject_id: "211382199001010015".into(),
        owner: code("211382"),
        filed_at: code("211300"),
        filed_by: "credit://operator/211300/op".into(),
        received_ms: AT,
        reason: "不是本人的记录".into(),
        evidence: "OBJ-17".into(),
        record_version: 2,
        record_hash: [0x5a; 32],
        version: 0,
        checked: None,
        reply: None,
        resolution: None,
        path: vec![code("211382")],
    }
}

fn case_resolved() -> Case {
    Case {
        version: 3,
        checked: Some(Checked {
            at_ms: AT + DAY,
            by: "credit://operator/211382/op".into(),
            fault: Fault::Provider,
            note: "已通知提供单位".into(),
        }),
        reply: Some(Reply {
            at_ms: AT + 2 * DAY,
            by: "credit://provider/211382/lingyuan-tax".into(),
            answer: Answer::Unverifiable,
            text: "无法核实".into(),
        }),
        resolution: Some(Resolution {
            at_ms: AT + 3 * DAY,
            by: "credit://operator/211382/op".into(),
            outcome: CaseOutcome::Deleted,
            fault: Fault::Provider,
            reason: "R-OBJ-3 无法核实".into(),
            record_version: 3,
        }),
        path: vec![code("211382"), code("211300")],
        ..case_filed()
    }
}

fn notice() -> Notice {
    Notice {
        id: 7,
        kind: NoticeKind::ConsentWithdrawal,
        target: code("211382"),
        record_id: String::new(),
        subject_id: "211382199001010015".into(),
        text: "授权已撤回".into(),
        from: code("211300"),
        created_at_ms: AT,
        objection: None,
    }
}

fn notice_with_case() -> Notice {
    Notice {
        id: 300,
        kind: NoticeKind::Objection,
        record_id: record().id.to_string(),
        text: "异议已受理".into(),
        objection: Some(case_filed()),
        ..notice()
    }
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        node: code("211382"),
        seq: 42,
        head: [0x07; 32],
        at_ms: AT,
        signature: signature(),
        path: vec![code("211382"), code("211300")],
    }
}

/// Every optional field set, a refusal, record ids.
fn usage_full() -> UsageEntry {
    UsageEntry {
        at_ms: AT,
        caller: "credit://agency/211300/bank".into(),
        on_behalf_of: Some("credit://agency/210000/province".into()),
        action: Action::Query,
        rpc: "Query".into(),
        subject: Some("211382199001010015".into()),
        purpose: Some("lending".into()),
        legal_basis: Some("《征信业管理条例》第十四条".into()),
        consent_id: Some("0190000000007000800021138200000002".into()),
        record_ids: vec![record().id, case_filed().id],
        count: 2,
        outcome: Outcome::Refused {
            code: 7,
            field: "purpose".into(),
            rule: "R-REL-6".into(),
            message: "用途不在授权范围内".into(),
        },
        detail: "answered 0 of 2".into(),
    }
}

/// No optional field set, no record ids, the entry answered.
fn usage_bare() -> UsageEntry {
    UsageEntry::new("credit://operator/211382/ops", Action::Audit, "Verify", AT)
}

/// The hash the chain continues from in these tests.
const PREV: [u8; 32] = [0x42; 32];

fn figures() -> Figures {
    Figures {
        total: 300,
        natural: 120,
        legal: 180,
        by_category: BTreeMap::from([("admin_penalty".into(), 200), ("tax".into(), 100)]),
        by_provider: BTreeMap::from([("211382/lingyuan-tax".into(), 300)]),
        via_child: BTreeMap::from([("211382".into(), 250)]),
    }
}

fn platform_report() -> PlatformReport {
    PlatformReport {
        region: "211300".into(),
        name: "朝阳市".into(),
        total: 400,
        natural: 150,
        legal: 250,
        at_ms: AT,
        children: vec![(
            PlatformReport {
                region: "211382".into(),
                name: "凌源市".into(),
                total: 300,
                natural: 120,
                legal: 180,
                at_ms: AT - DAY,
                children: Vec::new(),
            },
            250,
        )],
    }
}

fn quarantined() -> Quarantined {
    Quarantined {
        child: code("211382"),
        child_seq: 17,
        label: record().id.to_string(),
        field: "subject_name".into(),
        rule: "R-DATA-1".into(),
        message: "姓名与证件号不符".into(),
        at_ms: AT,
        entry: vec![0x0a, 0x03, 0x01, 0x02, 0x03],
    }
}

// ---- the tests ----

#[test]
fn a_record_is_pinned() {
    pin("record", &record(), encode(&record()), RECORD, |b| {
        decode(b, "record")
    });
}

#[test]
fn a_consent_is_pinned_as_recorded_and_withdrawn() {
    pin("consent", &consent(), encode(&consent()), CONSENT, |b| {
        decode(b, "consent")
    });
    let withdrawn = consent_withdrawn();
    pin(
        "withdrawn consent",
        &withdrawn,
        encode(&withdrawn),
        CONSENT_WITHDRAWN,
        |b| decode(b, "consent"),
    );
}

#[test]
fn an_objection_case_is_pinned_as_filed_and_resolved() {
    pin(
        "filed case",
        &case_filed(),
        encode(&case_filed()),
        CASE_FILED,
        |b| decode(b, "objection case"),
    );
    let resolved = case_resolved();
    pin(
        "resolved case",
        &resolved,
        encode(&resolved),
        CASE_RESOLVED,
        |b| decode(b, "objection case"),
    );
}

#[test]
fn a_notice_is_pinned_with_and_without_a_case_and_the_legacy_form_reads() {
    pin(
        "notice",
        &notice(),
        encode(&notice()),
        NOTICE,
        decode_notice,
    );
    let with_case = notice_with_case();
    pin(
        "notice with a case",
        &with_case,
        encode(&with_case),
        NOTICE_WITH_CASE,
        decode_notice,
    );
    // Read, never written: only the reading direction is pinned.
    assert_eq!(decode_notice(&unhex(NOTICE_LEGACY)).unwrap(), notice());
}

#[test]
fn a_checkpoint_is_pinned() {
    pin(
        "checkpoint",
        &checkpoint(),
        encode(&checkpoint()),
        CHECKPOINT,
        |b| decode(b, "checkpoint"),
    );
}

/// A usage entry is stored as `Store::write_usage` stores it: chained, then encoded.
#[test]
fn a_chained_usage_entry_is_pinned_with_and_without_its_optional_fields() {
    let full = usage_full().chain(PREV).unwrap();
    pin("usage entry", &full, encode(&full), USAGE_FULL, |b| {
        decode::<Chained>(b, "usage entry")
    });
    let bare = usage_bare().chain([0; 32]).unwrap();
    pin("bare usage entry", &bare, encode(&bare), USAGE_BARE, |b| {
        decode::<Chained>(b, "usage entry")
    });
}

/// Every usage log verifies by recomputing this hash (R-SEC-3); checkpoints signed by
/// other nodes hold it.
#[test]
fn the_usage_chain_hash_of_a_fixed_entry_is_pinned_r_sec_3() {
    let hash = chain_hash(&PREV, &usage_full()).unwrap();
    same_bytes("usage chain hash", &hash, CHAIN_HASH);
}

#[test]
fn the_census_figures_and_reports_are_pinned() {
    // `n` (the figures) and `d` YYYY-MM-DD (a day's snapshot) hold the same type.
    pin(
        "census figures",
        &figures(),
        encode(&figures()),
        FIGURES,
        |b| decode(b, "census figures"),
    );
    let monthly = Monthly {
        records: 4,
        first_ms: AT,
        last_ms: AT + DAY,
    };
    pin(
        "monthly submissions",
        &monthly,
        encode(&monthly),
        MONTHLY,
        |b| decode(b, "monthly submissions"),
    );
    let report = platform_report();
    pin(
        "child census report",
        &report,
        encode(&report),
        PLATFORM_REPORT,
        |b| decode(b, "child census report"),
    );
}

#[test]
fn a_quarantined_entry_and_the_redaction_queue_are_pinned() {
    pin(
        "quarantined entry",
        &quarantined(),
        encode(&quarantined()),
        QUARANTINED,
        |b| decode(b, "quarantined entry"),
    );
    let queued = (3u64, Status::Expired);
    pin(
        "redaction queue",
        &queued,
        encode(&queued),
        REDACTION_QUEUE,
        |b| decode(b, "redaction queue"),
    );
}

/// A chunk is written from each change's own encoding (`tag_and_value`, `chunk_value`),
/// not by postcard over the `Vec`: both must give the pinned bytes.
#[test]
fn a_changelog_chunk_of_every_change_is_pinned() {
    let changes = vec![
        Change::Record(record()),
        Change::Consent(consent_withdrawn()),
        Change::Checkpoint(checkpoint()),
        Change::Objection(case_resolved()),
    ];
    let written = changes
        .iter()
        .map(Change::tag_and_value)
        .collect::<Result<Vec<_>, _>>()
        .map(|entries| chunk_value(&entries));
    pin("changelog chunk", &changes, written, CHUNK, decode_chunk);
    assert_eq!(unhex(CHUNK)[0], CHANGES_FORMAT);
    let mut by_postcard = vec![CHANGES_FORMAT];
    by_postcard.extend_from_slice(&encode(&changes).unwrap()[1..]);
    same_bytes("changelog chunk by postcard", &by_postcard, CHUNK);
}

/// Chunks written before consents existed hold records only, under `FORMAT`; they are
/// read, never written.
#[test]
fn a_changelog_chunk_of_records_only_still_reads() {
    let record_bytes = unhex(RECORD);
    assert_eq!(record_bytes[0], FORMAT);
    let mut legacy = vec![FORMAT, 2];
    legacy.extend_from_slice(&record_bytes[1..]);
    legacy.extend_from_slice(&record_bytes[1..]);
    assert_eq!(
        decode_chunk(&legacy).unwrap(),
        vec![Change::Record(record()), Change::Record(record())]
    );
}

/// Every record carries the hash of its content, made by its origin and checked by every
/// node above and by the integrity check: it is a format too.
#[test]
fn a_records_content_hash_is_pinned() {
    same_bytes("content hash", &record().content.hash(), CONTENT_HASH);
}

/// postcard writes a variant as its index: reordering or removing a variant would read
/// stored values as another variant. Appending one is safe (add it here).
#[test]
fn every_stored_enums_variants_keep_their_places() {
    let mut out = Vec::new();
    let mut put = |bytes: Vec<u8>| out.extend_from_slice(&bytes[1..]);
    for v in [SubjectKind::Legal, SubjectKind::Natural] {
        put(encode(&v).unwrap());
    }
    for v in [
        Disclosure::Public,
        Disclosure::Consent,
        Disclosure::Statutory,
    ] {
        put(encode(&v).unwrap());
    }
    for v in [
        Status::Active,
        Status::Suspended,
        Status::Expired,
        Status::Deleted,
        Status::Repaired,
    ] {
        put(encode(&v).unwrap());
    }
    for v in [
        Purpose::Procurement,
        Purpose::Bidding,
        Purpose::ProjectApproval,
        Purpose::SpecialFunds,
        Purpose::Subsidy,
        Purpose::InvestmentPromotion,
        Purpose::Lending,
        Purpose::Other,
    ] {
        put(encode(&v).unwrap());
    }
    for v in [Fault::Platform, Fault::Provider] {
        put(encode(&v).unwrap());
    }
    for v in [
        CaseOutcome::Corrected,
        CaseOutcome::Deleted,
        CaseOutcome::Upheld,
    ] {
        put(encode(&v).unwrap());
    }
    for v in [Answer::Confirmed, Answer::Corrected, Answer::Unverifiable] {
        put(encode(&v).unwrap());
    }
    for v in [
        NoticeKind::Objection,
        NoticeKind::ConsentWithdrawal,
        NoticeKind::CorrectionRequest,
        NoticeKind::EntryRefused,
    ] {
        put(encode(&v).unwrap());
    }
    for v in [
        Action::Push,
        Action::Pull,
        Action::Call,
        Action::Sync,
        Action::Notice,
        Action::Status,
        Action::Consent,
        Action::Query,
        Action::Audit,
        Action::Objection,
        Action::Repair,
        Action::Purge,
    ] {
        put(encode(&v).unwrap());
    }
    same_bytes("enum variants", &out, VARIANTS);
}

//! What a query may release (R-REL-1..5, R-SEC-2, R-OBJ-3): the one place that decides
//! whether a held record leaves the node, on which legal basis, and masked or not.

use chrono::NaiveDate;

use super::mask::{Masking, mask_name, mask_text};
use super::publication::{Publication, retained_until};
use super::{Catalog, FieldSpec, FieldType, PublicRule};
use crate::domain::consent::{Consent, Purpose, State};
use crate::domain::record::{Disclosure, Record, Status, SubjectKind, mask_id};

/// The legal basis a query states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The subject's written consent (R-REL-4).
    Consent,
    /// The subject itself, its identity checked at a service window (R-REL-3).
    OwnRecord,
    /// A government provider's statutory duty (R-REL-5).
    StatutoryDuty,
    /// Public disclosure (R-REL-2).
    Public,
}

impl Basis {
    pub fn as_str(&self) -> &'static str {
        match self {
            Basis::Consent => "consent",
            Basis::OwnRecord => "self",
            Basis::StatutoryDuty => "statutory_duty",
            Basis::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Basis> {
        [
            Basis::Consent,
            Basis::OwnRecord,
            Basis::StatutoryDuty,
            Basis::Public,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }

    /// Whether records of `class` may be released on this basis.
    pub fn releases(&self, class: Disclosure) -> bool {
        match self {
            // Everything about oneself.
            Basis::OwnRecord => true,
            // Consent opens the subject's non-public information (R-REL-4); what is
            // shared only among government bodies for their duties stays there.
            Basis::Consent => matches!(class, Disclosure::Public | Disclosure::Consent),
            Basis::StatutoryDuty => matches!(class, Disclosure::Public | Disclosure::Statutory),
            Basis::Public => class == Disclosure::Public,
        }
    }
}

/// Why a held record does not leave the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Withheld {
    /// Suspended by its origin (an objection, R-OBJ-3), expired (R-SEC-2), deleted
    /// (R-OBJ-3), or withdrawn by credit repair.
    Status(Status),
    /// An objection is open here, before the origin's suspension has arrived (R-OBJ-3).
    Objection,
    /// Adverse information about a person, past its five years (R-SEC-2).
    Retention { until: NaiveDate },
    /// Past its publication period: no longer public, still shared for statutory duty.
    PublicationEnded { until: NaiveDate, version: String },
}

impl Withheld {
    /// A short name for usage-log details and tests.
    pub fn as_str(&self) -> &'static str {
        match self {
            Withheld::Status(Status::Suspended) => "suspended",
            Withheld::Status(Status::Expired) => "expired",
            Withheld::Status(Status::Deleted) => "deleted",
            Withheld::Status(Status::Repaired) => "repaired",
            Withheld::Status(Status::Active) => "active",
            Withheld::Objection => "objection",
            Withheld::Retention { .. } => "retention",
            Withheld::PublicationEnded { .. } => "publication",
        }
    }
}

/// The one decision whether a held record may leave the node today, on `basis` (`None`
/// for a node or operator pulling the node's holdings, where no disclosure class
/// applies). The class itself is `Basis::releases`; this is everything else:
/// * only active records leave; one withdrawn by credit repair still shows to its
///   subject (`self`), nothing else does;
/// * not while an objection is open here (`objection_open`), even before the origin's
///   suspension arrives (R-OBJ-3);
/// * adverse information about a person, not after its five years (R-SEC-2), whatever
///   the status: the rule holds at read time on every node, purge or no purge;
/// * a public record past its publication period, only for statutory duty or to its
///   subject.
pub fn withheld(
    record: &Record,
    basis: Option<Basis>,
    today: NaiveDate,
    publication: &Publication,
    objection_open: bool,
) -> Option<Withheld> {
    match record.status {
        Status::Active => {}
        Status::Repaired if basis == Some(Basis::OwnRecord) => {}
        other => return Some(Withheld::Status(other)),
    }
    if objection_open {
        return Some(Withheld::Objection);
    }
    if let Some(until) = retained_until(record)
        && today > until
    {
        return Some(Withheld::Retention { until });
    }
    if matches!(basis, Some(Basis::Public | Basis::Consent))
        && let Some(period) = publication.period(record, today)
        && today > period.public_until
    {
        return Some(Withheld::PublicationEnded {
            until: period.public_until,
            version: period.version,
        });
    }
    None
}

/// A consent check that failed: which check, and why (R-REL-4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentFailure {
    /// `grantee`, `subject`, `purpose`, `categories`, `validity`, `withdrawn`.
    pub check: &'static str,
    pub message: String,
}

fn failed(check: &'static str, message: String) -> Result<(), ConsentFailure> {
    Err(ConsentFailure { check, message })
}

/// Checks a consent (its signatures already verified) against a query: the caller is the
/// grantee, the subject and purpose match, every category asked for is covered, today
/// lies within its validity, and it is not withdrawn.
pub fn check_consent(
    consent: &Consent,
    requester: &str,
    subject_id: &str,
    purpose: Purpose,
    categories: &[String],
    today: NaiveDate,
) -> Result<(), ConsentFailure> {
    let t = &consent.terms;
    if t.grantee != requester {
        return failed(
            "grantee",
            format!(
                "consent {} was given to {}, not to {requester}",
                t.id, t.grantee
            ),
        );
    }
    if t.subject_id != subject_id {
        return failed(
            "subject",
            format!("consent {} is not from this subject", t.id),
        );
    }
    if t.purpose != purpose {
        return failed(
            "purpose",
            format!(
                "consent {} is for {}, not {purpose}; the information may be used only for \
                 the purpose agreed with the subject",
                t.id, t.purpose
            ),
        );
    }
    if let Some(c) = categories.iter().find(|c| !t.categories.contains(c)) {
        return failed(
            "categories",
            format!(
                "consent {} does not cover category {c} (it covers {})",
                t.id,
                t.categories.join(", ")
            ),
        );
    }
    match consent.state(today) {
        State::Given => Ok(()),
        State::Withdrawn => failed("withdrawn", format!("consent {} was withdrawn", t.id)),
        State::Expired => failed(
            "validity",
            format!("consent {} expired after {}", t.id, t.valid_until),
        ),
        State::Pending => failed(
            "validity",
            format!("consent {} is valid from {}", t.id, t.valid_from),
        ),
    }
}

/// Whether a subject is a person for public release (R-REL-2, R-DATA-3): a natural
/// person, or a sole trader (个体工商户, a USCC of type `92`), whose code and trade name
/// identify its owner. `policy::mask` masks a type-92 code in any text; its own record
/// is masked the same way, id, name and the name inside text.
pub fn is_personal(kind: SubjectKind, id: &str) -> bool {
    kind == SubjectKind::Natural || id.trim_start().starts_with("92")
}

/// Masks what identifies a person in a record released publicly (R-REL-2, R-DATA-3):
/// a personal subject's ([`is_personal`]) identity number and name; each field as its
/// catalog rule says (`public`: released, masked, withheld; a field the catalog no
/// longer knows is withheld; a released number is still checked for identifier shapes);
/// identifiers and the subject's name inside the provider's reference and the status
/// reason. Everything that leaves a node on the `public` basis passes here.
pub fn mask_public(record: &mut Record, catalog: &Catalog) {
    let c = &mut record.content;
    let personal = is_personal(c.subject.kind, &c.subject.id);
    let name = c.subject.name.clone();
    let names = [name.as_str()];
    let how = Masking::released(personal, if personal { &names } else { &[] });
    let category = catalog.get(&c.category);
    c.fields = std::mem::take(&mut c.fields)
        .into_iter()
        .filter_map(|(field, value)| {
            let spec = category.and_then(|cat| cat.field(&field));
            public_field(spec, &value, how).map(|v| (field, v))
        })
        .collect();
    c.provider_ref = mask_text(&c.provider_ref, how);
    record.status_reason = mask_text(&record.status_reason, how);
    if personal {
        c.subject.id = mask_id(&c.subject.id);
        c.subject.name = mask_name(&c.subject.name);
    }
}

/// What public release makes of one field's value (R-REL-2): `None` when it is
/// withheld, including a field `spec` the catalog does not know. A released integer or
/// decimal still has identifier shapes masked (an id in a shifted column), as in a legal
/// person's text, so that amounts stay as they are.
pub fn public_field(spec: Option<&FieldSpec>, value: &str, how: Masking<'_>) -> Option<String> {
    let spec = spec?;
    match spec.public_rule() {
        PublicRule::Released => Some(match spec.kind {
            FieldType::Integer | FieldType::Decimal => mask_text(value, Masking::default()),
            _ => value.to_string(),
        }),
        PublicRule::Withheld => None,
        PublicRule::Masked => Some(match spec.kind {
            FieldType::ResidentId | FieldType::Uscc => mask_id(value),
            _ => mask_text(value, how),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::consent::tests::terms;
    use crate::domain::signature::Signature;
    use crate::policy::publication::tests::record;

    /// `r` as a public release shows it (`mask_public` with the built-in catalog).
    fn released(mut r: Record) -> Record {
        mask_public(&mut r, &Catalog::builtin().unwrap());
        r
    }

    fn consent() -> Consent {
        let t = terms("211382");
        Consent {
            path: vec![t.node],
            terms: t,
            signature: Signature {
                signature: vec![],
                cert: vec![],
            },
            withdrawal: None,
        }
    }

    #[test]
    fn each_consent_check_fails_alone() {
        let c = consent();
        let who = c.terms.grantee.clone();
        let subject = c.terms.subject_id.clone();
        let cats = c.terms.categories.clone();
        let day = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        assert_eq!(
            check_consent(&c, &who, &subject, Purpose::Subsidy, &cats, day),
            Ok(())
        );
        let check = |r: Result<(), ConsentFailure>| r.unwrap_err().check;
        assert_eq!(
            check(check_consent(
                &c,
                "credit://agency/211300/other",
                &subject,
                Purpose::Subsidy,
                &cats,
                day
            )),
            "grantee"
        );
        assert_eq!(
            check(check_consent(&c, &who, "X", Purpose::Subsidy, &cats, day)),
            "subject"
        );
        assert_eq!(
            check(check_consent(
                &c,
                &who,
                &subject,
                Purpose::Lending,
                &cats,
                day
            )),
            "purpose"
        );
        assert_eq!(
            check(check_consent(
                &c,
                &who,
                &subject,
                Purpose::Subsidy,
                &["tax_arrears".into()],
                day
            )),
            "categories"
        );
        let later = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        assert_eq!(
            check(check_consent(
                &c,
                &who,
                &subject,
                Purpose::Subsidy,
                &cats,
                later
            )),
            "validity"
        );
    }

    #[test]
    fn status_objection_retention_and_publication_each_withhold() {
        let p = Publication::builtin();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let today = d("2026-11-28");
        let all = [
            None,
            Some(Basis::Public),
            Some(Basis::Consent),
            Some(Basis::StatutoryDuty),
            Some(Basis::OwnRecord),
        ];
        let mut person = record(SubjectKind::Natural, true, &[]);
        person.content.ended_on = Some("2021-11-28".into());
        for b in all {
            assert_eq!(withheld(&person, b, today, &p, false), None);
            assert_eq!(
                withheld(&person, b, today, &p, true),
                Some(Withheld::Objection)
            );
            assert_eq!(
                withheld(&person, b, d("2026-11-29"), &p, false).map(|w| w.as_str()),
                Some("retention")
            );
        }
        let mut repaired = person.clone();
        repaired.status = Status::Repaired;
        assert_eq!(
            withheld(&repaired, Some(Basis::OwnRecord), today, &p, false),
            None
        );
        assert_eq!(
            withheld(&repaired, Some(Basis::StatutoryDuty), today, &p, false),
            Some(Withheld::Status(Status::Repaired))
        );
        let firm = record(SubjectKind::Legal, true, &[("decided_on", "2025-06-10")]);
        for (b, out) in [
            (Some(Basis::Public), Some("publication")),
            (Some(Basis::Consent), Some("publication")),
            (Some(Basis::StatutoryDuty), None),
            (Some(Basis::OwnRecord), None),
            (None, None),
        ] {
            assert_eq!(
                withheld(&firm, b, today, &p, false).map(|w| w.as_str()),
                out
            );
        }
    }

    #[test]
    fn public_release_masks_identifiers_in_free_text_and_withholds_remarks_r_rel_2() {
        let id = "211382198002290134";
        let text = format!("当事人王建国（身份证{id}，电话13812345678，卡号6222021234567890128）");
        let mut r = record(
            SubjectKind::Natural,
            true,
            &[
                ("facts", text.as_str()),
                (
                    "decision_no",
                    "凌市监罚决〔2026〕7号 王建国 211382198002290134",
                ),
                ("remarks", "内部备注 王建国"),
                ("fine_amount", "0.5"),
                ("authority_uscc", "11211382MB1234567X"),
                ("no_longer_in_catalog", "王建国"),
            ],
        );
        r.content.subject.id = id.into();
        r.content.subject.name = "王建国".into();
        r.content.provider_ref = format!("CF-{id}");
        let r = released(r);
        let c = &r.content;
        let all = format!("{:?}", c);
        for secret in [id, "王建国", "13812345678", "6222021234567890128"] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
        assert_eq!(c.subject.id, "2113**********0134");
        assert_eq!(c.subject.name, "王**");
        assert_eq!(c.provider_ref, "CF-2113**********0134");
        assert!(
            c.fields["facts"].starts_with("当事人王**（身份证2113**********0134，电话138****5678"),
            "{}",
            c.fields["facts"]
        );
        assert_eq!(c.fields["fine_amount"], "0.5");
        assert_eq!(c.fields["authority_uscc"], "11211382MB1234567X");
        assert!(!c.fields.contains_key("remarks"));
        assert!(!c.fields.contains_key("no_longer_in_catalog"));
    }

    #[test]
    fn a_legal_persons_public_record_keeps_its_names_but_not_a_persons_id_r_rel_2() {
        let mut r = record(
            SubjectKind::Legal,
            true,
            &[("facts", "法定代表人李四（211382198002290134）")],
        );
        r.content.subject.name = "凌源市某某有限公司".into();
        let r = released(r);
        assert_eq!(r.content.subject.id, "91210000MA0TEST001");
        assert_eq!(r.content.subject.name, "凌源市某某有限公司");
        assert_eq!(
            r.content.fields["facts"],
            "法定代表人李四（2113**********0134）"
        );
    }

    #[test]
    fn each_basis_releases_its_classes_only() {
        use Disclosure::*;
        assert!(Basis::Public.releases(Public));
        assert!(!Basis::Public.releases(Consent));
        assert!(!Basis::Consent.releases(Statutory));
        assert!(Basis::Consent.releases(Consent));
        assert!(Basis::StatutoryDuty.releases(Statutory));
        assert!(!Basis::StatutoryDuty.releases(Consent));
        assert!(Basis::OwnRecord.releases(Statutory));
        assert_eq!(Basis::parse("self"), Some(Basis::OwnRecord));
    }

    #[test]
    fn a_released_number_holding_an_id_is_masked_r_rel_2() {
        for kind in [SubjectKind::Legal, SubjectKind::Natural] {
            let r = released(record(kind, true, &[("fine_amount", "211382198002290134")]));
            assert_eq!(r.content.fields["fine_amount"], "2113**********0134");
        }
        let r = released(record(
            SubjectKind::Natural,
            true,
            &[("fine_amount", "500000")],
        ));
        assert_eq!(r.content.fields["fine_amount"], "500000");
    }

    #[test]
    fn a_sole_trader_is_released_like_a_person_r_rel_2() {
        let mut r = record(
            SubjectKind::Legal,
            true,
            &[("facts", "凌海市王建国五金店经营者王建国无照经营")],
        );
        r.content.subject.id = "92211382MA0Y8L6X3K".into();
        r.content.subject.name = "凌海市王建国五金店".into();
        r.content.provider_ref = "CF-92211382MA0Y8L6X3K".into();
        let r = released(r);
        let c = &r.content;
        assert_eq!(c.subject.id, mask_id("92211382MA0Y8L6X3K"));
        assert_eq!(c.subject.name, "凌********");
        assert!(
            !c.fields["facts"].contains("凌海市王建国五金店"),
            "{}",
            c.fields["facts"]
        );
        assert!(!c.provider_ref.contains("MA0Y8L"), "{}", c.provider_ref);
        // An enterprise (type 91) keeps its code and name.
        assert!(!is_personal(SubjectKind::Legal, "91211382MA0Y3K1050"));
    }
}

//! What a query may release (R-REL-1..5, R-SEC-2): the one place that decides whether a
//! held record leaves the node, on which legal basis, and masked or not.

use chrono::NaiveDate;

use super::{Catalog, FieldType};
use crate::consent::{Consent, Purpose, State};
use crate::record::{Disclosure, Record, Status, SubjectKind, mask_id};

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

/// Whether a held record may leave the node at all today. Suspended records (a subject's
/// objection, R-OBJ) and expired or deleted ones never do. Retention periods (R-SEC-2)
/// are decided here too once records carry them.
pub fn releasable(record: &Record, _today: NaiveDate) -> bool {
    record.status == Status::Active
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

/// Masks what identifies a natural person in a record released publicly (R-REL-2): the
/// subject's identity number and name, and every resident-identity field.
pub fn mask_personal(record: &mut Record, catalog: &Catalog) {
    let c = &mut record.content;
    if c.subject.kind == SubjectKind::Natural {
        c.subject.id = mask_id(&c.subject.id);
        let mut name = c.subject.name.chars();
        c.subject.name = match name.next() {
            Some(first) => format!("{first}{}", "*".repeat(name.count())),
            None => String::new(),
        };
    }
    if let Some(category) = catalog.get(&c.category) {
        for (field, value) in c.fields.iter_mut() {
            if category
                .field(field)
                .is_some_and(|f| f.kind == FieldType::ResidentId)
            {
                *value = mask_id(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::tests::terms;
    use crate::identity::signing::Signature;

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
}

//! Signing and checking the domain's signed values with a node's key: consents and their
//! withdrawals (R-REL-4), usage-log checkpoints (R-SEC-3). The values and the bytes that
//! are signed are in `domain`; the keys and the checks of the signer's certificate are
//! in `signing`.

use crate::domain::consent::{Consent, Terms, Withdrawal, terms_message, withdrawal_message};
use crate::domain::record::Hash;
use crate::domain::region::RegionCode;
use crate::domain::usage::{Checkpoint, checkpoint_message};
use crate::identity::signing::{NodeSigner, SignError, SignatureVerifier, VerifyError};

impl Consent {
    /// Signs `terms` as the recording node.
    pub fn sign(terms: Terms, signer: &NodeSigner) -> Result<Consent, SignError> {
        let message = terms_message(&terms).map_err(|e| SignError::Encode(e.to_string()))?;
        let signature = signer.sign(&message)?;
        let node = terms.node;
        Ok(Consent {
            terms,
            signature,
            withdrawal: None,
            path: vec![node],
        })
    }

    /// Withdraws the consent, signed by `node`'s signer.
    pub fn withdraw(
        &mut self,
        by: &str,
        reason: &str,
        node: RegionCode,
        at_ms: i64,
        signer: &NodeSigner,
    ) -> Result<(), SignError> {
        let message = withdrawal_message(&self.terms.id, at_ms, by, reason, &node)
            .map_err(|e| SignError::Encode(e.to_string()))?;
        let signature = signer.sign(&message)?;
        self.withdrawal = Some(Withdrawal {
            at_ms,
            by: by.to_string(),
            reason: reason.to_string(),
            node,
            signature,
        });
        Ok(())
    }

    /// Checks the signatures: the terms by the recording node, a withdrawal by the node
    /// that recorded it.
    pub fn verify(&self, verifier: &SignatureVerifier) -> Result<(), VerifyError> {
        let encode = |e: crate::domain::usage::EncodeError| VerifyError::Encode(e.to_string());
        verifier.verify(
            &terms_message(&self.terms).map_err(encode)?,
            &self.signature,
            &self.terms.node,
            self.terms.recorded_at_ms,
        )?;
        if let Some(w) = &self.withdrawal {
            verifier.verify(
                &withdrawal_message(&self.terms.id, w.at_ms, &w.by, &w.reason, &w.node)
                    .map_err(encode)?,
                &w.signature,
                &w.node,
                w.at_ms,
            )?;
        }
        Ok(())
    }
}

impl Checkpoint {
    pub fn sign(
        node: RegionCode,
        seq: u64,
        head: Hash,
        at_ms: i64,
        signer: &NodeSigner,
    ) -> Result<Checkpoint, SignError> {
        let signature = signer.sign(&checkpoint_message(&node, seq, &head, at_ms))?;
        Ok(Checkpoint {
            node,
            seq,
            head,
            at_ms,
            signature,
            path: vec![node],
        })
    }

    pub fn verify(&self, verifier: &SignatureVerifier) -> Result<(), VerifyError> {
        verifier.verify(
            &checkpoint_message(&self.node, self.seq, &self.head, self.at_ms),
            &self.signature,
            &self.node,
            self.at_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::domain::caller::{CallerId, Role};
    use crate::domain::consent::tests::terms;
    use crate::domain::consent::{Purpose, State};
    use crate::identity::DevCa;

    /// A node of 211382 with a certificate of a fresh CA: its region, its signer, and a
    /// verifier that trusts the CA.
    fn lingyuan() -> (RegionCode, NodeSigner, SignatureVerifier) {
        let ca = DevCa::generate("test ca").unwrap();
        let region = RegionCode::parse("211382").unwrap();
        let node = ca
            .issue(&CallerId::new(Role::Node, region, "lingyuan"), &[])
            .unwrap();
        let signer = NodeSigner::from_pem(&node.cert_pem, &node.key_pem).unwrap();
        let verifier = SignatureVerifier::from_ca_pem(ca.cert_pem()).unwrap();
        (region, signer, verifier)
    }

    #[test]
    fn signed_terms_verify_and_an_edit_or_a_forged_withdrawal_does_not() {
        let (region, signer, verifier) = lingyuan();
        let mut consent = Consent::sign(terms("211382"), &signer).unwrap();
        consent.verify(&verifier).unwrap();

        let mut edited = consent.clone();
        edited.terms.categories.push("tax_arrears".into());
        assert_eq!(edited.verify(&verifier), Err(VerifyError::Signature));

        let now = crate::domain::clock::Clock::system().now_ms(); // wall-clock: signing times only
        consent
            .withdraw(
                "credit://operator/211382/w",
                "subject asked",
                region,
                now,
                &signer,
            )
            .unwrap();
        consent.verify(&verifier).unwrap();
        let mut forged = consent.clone();
        forged.withdrawal.as_mut().unwrap().reason = "other".into();
        assert_eq!(forged.verify(&verifier), Err(VerifyError::Signature));
    }

    #[test]
    fn states_follow_the_dates_and_the_withdrawal() {
        let (region, signer, _) = lingyuan();
        let mut c = Consent::sign(terms("211382"), &signer).unwrap();
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        assert_eq!(c.state(day(6, 1)), State::Given);
        assert_eq!(c.state(day(12, 31)), State::Given);
        assert_eq!(
            c.state(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()),
            State::Expired
        );
        assert_eq!(
            c.state(NaiveDate::from_ymd_opt(2025, 12, 31).unwrap()),
            State::Pending
        );
        let before = c.clone();
        c.withdraw("op", "", region, 1, &signer).unwrap();
        assert_eq!(c.state(day(6, 1)), State::Withdrawn);
        assert!(before.is_superseded_by(&c));
        assert!(!c.is_superseded_by(&before));
        assert_eq!(
            Purpose::parse("project_approval"),
            Some(Purpose::ProjectApproval)
        );
        assert_eq!(Purpose::parse("fun"), None);
    }
}

//! The Consents service: an operator records a subject's written consent from the signed
//! paper, withdraws it, reads it, lists a subject's consents (R-REL-4, R-REL-6).

use chrono::{Months, NaiveDate};
use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use super::AccessService;
use crate::config::next_hop;
use crate::domain::caller::{CallerId, Role};
use crate::domain::consent::{Consent, Purpose, Terms};
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::record::mask_id;
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::authz::Rpc;
use crate::policy::identifier::{check_resident_id, check_uscc, normalise_id};
use crate::rpc::convert::consent::consent_to_wire;
use crate::rpc::input;
use crate::rpc::refusal::{Refusal, store_status};
use crate::store::{Change, ReplicaOutcome};

const MAX_TEXT: usize = 500;

/// A subject identifier as consents and queries take it: a valid USCC or resident
/// identity number (a birth date not after `today`, the node's day), or one of the
/// node's known legacy codes (R-DATA-1). Anything not ASCII is neither.
pub(super) fn subject_id(
    raw: &str,
    legacy: &[String],
    today: NaiveDate,
) -> Result<String, Refusal> {
    let id = normalise_id(raw);
    if legacy.contains(&id) {
        return Ok(id);
    }
    let ok = match id.len() {
        _ if !id.is_ascii() => false,
        18 if id.as_bytes()[0].is_ascii_digit() && id[..17].bytes().all(|b| b.is_ascii_digit()) => {
            check_resident_id(&id, today).is_ok() || check_uscc(&id).is_ok()
        }
        18 => check_uscc(&id).is_ok(),
        _ => false,
    };
    if ok {
        Ok(id)
    } else {
        Err(Refusal::invalid(
            "subject_id",
            "R-DATA-1",
            "must be a valid Unified Social Credit Code or resident identity number",
        ))
    }
}

pub(super) fn consent_id(s: &str) -> Result<Uuid, Refusal> {
    input::uuid(s, "consent_id", "R-REL-4")
        .map_err(|r| r.with_message("must be a consent id (a UUID)"))
}

impl AccessService {
    /// Admits a caller of the Consents service: every one of its RPCs has one gate row.
    async fn admit_consents<T>(&self, request: &Request<T>) -> Result<CallerId, Status> {
        self.ctx
            .gate
            .admit(request, Rpc::Consents, Action::Consent)
            .await
    }

    /// A consent as a caller sees it: its state as of the node's today.
    fn consent_wire(&self, consent: &Consent) -> pb::Consent {
        consent_to_wire(consent, self.ctx.clock.today())
    }

    fn terms(&self, caller: &CallerId, req: pb::GrantRequest) -> Result<Terms, Refusal> {
        let subject_id = subject_id(
            &req.subject_id,
            &self.ctx.config.legacy_codes,
            self.ctx.clock.today(),
        )?;
        let grantee = match CallerId::parse_uri(req.grantee.trim()) {
            Ok(g) if g.role == Role::Agency => g.uri(),
            _ => {
                return Err(Refusal::invalid(
                    "grantee",
                    "R-REL-4",
                    "must be the agency's identity as in its certificate, \
                     credit://agency/<region>/<id>",
                ));
            }
        };
        let purpose = Purpose::parse(req.purpose.trim()).ok_or_else(|| {
            Refusal::invalid(
                "purpose",
                "R-REL-6",
                format!("must be one of {}", Purpose::codes()),
            )
        })?;
        if req.purpose_text.chars().count() > MAX_TEXT {
            return Err(Refusal::invalid(
                "purpose_text",
                "R-REL-4",
                format!("at most {MAX_TEXT} characters"),
            ));
        }
        let mut categories: Vec<String> = req
            .categories
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        categories.sort();
        categories.dedup();
        if categories.is_empty() {
            return Err(Refusal::invalid(
                "categories",
                "R-REL-4",
                "a consent names the categories it covers",
            ));
        }
        let catalog = self.ctx.validator.catalog();
        if let Some(c) = categories.iter().find(|c| catalog.get(c).is_none()) {
            return Err(Refusal::invalid(
                "categories",
                "R-DATA-2",
                format!("unknown category {c:?}"),
            ));
        }
        let today = self.ctx.clock.today();
        let valid_from = if req.valid_from.trim().is_empty() {
            today
        } else {
            input::date(&req.valid_from, "valid_from", "R-REL-4")?
        };
        let valid_until = input::date(&req.valid_until, "valid_until", "R-REL-4")?;
        if valid_until < valid_from || valid_until < today {
            return Err(Refusal::invalid(
                "valid_until",
                "R-REL-4",
                "must be today or later, and not before valid_from",
            ));
        }
        // A consent is for a purpose at hand, not for ever: its term is capped, and so is
        // how far ahead it may start.
        let years = self.ctx.config.consent_max_term_years;
        let term = Months::new(12 * years);
        if today
            .checked_add_months(term)
            .is_none_or(|last| valid_from > last)
        {
            return Err(Refusal::invalid(
                "valid_from",
                "R-REL-4",
                format!("must be within {years} years from today"),
            ));
        }
        // Both days count: a term of five years from 2026-01-01 ends on 2030-12-31
        // (the day before plus the term; from 29 February, on 28 February).
        if let Some(last) = valid_from
            .pred_opt()
            .and_then(|before| before.checked_add_months(term))
            && valid_until > last
        {
            return Err(Refusal::invalid(
                "valid_until",
                "R-REL-4",
                format!(
                    "a consent lasts at most {years} years ([consent] max_term_years): from \
                     {valid_from} the last day is {last}"
                ),
            ));
        }
        // The paper's number is a reference and the purpose is read by people: neither
        // may hide characters (see `policy::text`).
        for (field, text) in [
            ("evidence", &req.evidence),
            ("purpose_text", &req.purpose_text),
        ] {
            if let Some(m) = crate::policy::text::hidden(text) {
                return Err(Refusal::invalid(field, "R-REL-4", m));
            }
        }
        let evidence = req.evidence.trim().to_string();
        if evidence.is_empty() || evidence.chars().count() > 200 {
            return Err(Refusal::invalid(
                "evidence",
                "R-REL-4",
                "the number of the subject's signed paper is required (at most 200 characters)",
            ));
        }
        Ok(Terms {
            id: Uuid::now_v7(),
            subject_id,
            grantee,
            purpose,
            purpose_text: req.purpose_text.trim().to_string(),
            categories,
            valid_from,
            valid_until,
            evidence,
            recorded_by: caller.uri(),
            recorded_at_ms: self.ctx.clock.signing_ms(),
            node: self.ctx.config.region,
        })
    }

    fn entry(&self, caller: &CallerId, rpc: &str) -> UsageEntry {
        UsageEntry::new(caller.uri(), Action::Consent, rpc, self.ctx.clock.now_ms())
    }

    async fn write_consent(
        &self,
        consent: Consent,
        entry: UsageEntry,
    ) -> Result<ReplicaOutcome, Status> {
        let store = self.ctx.store.clone();
        self.ctx
            .store
            .call(move |_| store.append_local(Change::Consent(consent), vec![entry]))
            .await
            .map_err(|e| store_status(&e))
    }

    async fn held(&self, caller: &CallerId, rpc: &str, raw_id: &str) -> Result<Consent, Status> {
        let id = match consent_id(raw_id) {
            Ok(id) => id,
            Err(r) => return Err(self.refuse(self.entry(caller, rpc), r).await),
        };
        let store = self.ctx.store.clone();
        let found = self
            .ctx
            .store
            .call(move |_| store.consent(&id))
            .await
            .map_err(|e| store_status(&e))?;
        match found {
            Some(c) => Ok(c),
            None => {
                let mut e = self.entry(caller, rpc);
                e.consent_id = Some(id.to_string());
                Err(self
                    .refuse(
                        e,
                        Refusal::new(
                            Code::NotFound,
                            "consent_id",
                            "R-REL-4",
                            format!("no consent {id} is held at this node"),
                        ),
                    )
                    .await)
            }
        }
    }
}

#[tonic::async_trait]
impl pb::consents_server::Consents for AccessService {
    async fn grant(
        &self,
        request: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::Consent>, Status> {
        let caller = self.admit_consents(&request).await?;
        let terms = match self.terms(&caller, request.into_inner()) {
            Ok(t) => t,
            Err(r) => return Err(self.refuse(self.entry(&caller, "Grant"), r).await),
        };
        let consent = Consent::sign(terms, &self.ctx.signer)
            .map_err(|e| Status::internal(format!("cannot sign the consent: {e}")))?;
        let t = &consent.terms;
        let mut e = self.entry(&caller, "Grant");
        e.subject = Some(t.subject_id.clone());
        e.purpose = Some(t.purpose.to_string());
        e.consent_id = Some(t.id.to_string());
        e.detail = format!(
            "consent recorded for {} over {} from {} to {}, evidence {}",
            t.grantee,
            t.categories.join(","),
            t.valid_from,
            t.valid_until,
            t.evidence
        );
        self.write_consent(consent.clone(), e).await?;
        tracing::info!(consent = %consent.terms.id, subject = %mask_id(&consent.terms.subject_id),
            grantee = %consent.terms.grantee, "consent recorded");
        Ok(Response::new(self.consent_wire(&consent)))
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::Consent>, Status> {
        let caller = self.admit_consents(&request).await?;
        let req = request.into_inner();
        let mut consent = self.held(&caller, "Withdraw", &req.id).await?;
        let mut e = self.entry(&caller, "Withdraw");
        e.subject = Some(consent.terms.subject_id.clone());
        e.consent_id = Some(consent.terms.id.to_string());
        if let Some(w) = &consent.withdrawal {
            let r = Refusal::new(
                Code::FailedPrecondition,
                "id",
                "R-REL-4",
                format!("already withdrawn by {} at node {}", w.by, w.node),
            );
            return Err(self.refuse(e, r).await);
        }
        let reason = req.reason.trim().chars().take(MAX_TEXT).collect::<String>();
        consent
            .withdraw(
                &caller.uri(),
                &reason,
                self.ctx.config.region,
                self.ctx.clock.signing_ms(),
                &self.ctx.signer,
            )
            .map_err(|e| Status::internal(format!("cannot sign the withdrawal: {e}")))?;
        e.detail = format!("consent withdrawn: {reason}");
        let refused_entry = e.clone();
        match self.write_consent(consent.clone(), e).await? {
            ReplicaOutcome::Applied => {}
            // Withdrawn meanwhile by a concurrent call: the first one stands.
            _ => {
                let r = Refusal::new(
                    Code::FailedPrecondition,
                    "id",
                    "R-REL-4",
                    "already withdrawn by a concurrent call",
                );
                return Err(self.refuse(refused_entry, r).await);
            }
        }
        // A consent recorded below: its node and the nodes between learn of the
        // withdrawal through a notice (the changelog only flows upward).
        if consent.terms.node != self.ctx.config.region
            && let Some(hop) = next_hop(&self.ctx.config.children, &consent.terms.node)
        {
            let hop = hop.region;
            let store = self.ctx.store.clone();
            let notice = Notice {
                id: 0,
                kind: NoticeKind::ConsentWithdrawal,
                target: consent.terms.node,
                record_id: consent.terms.id.to_string(),
                subject_id: consent.terms.subject_id.clone(),
                text: format!(
                    "consent {} withdrawn at {}: {reason}",
                    consent.terms.id, self.ctx.config.region
                ),
                from: self.ctx.config.region,
                created_at_ms: self.ctx.clock.now_ms(),
                objection: None,
            };
            let queued = self
                .ctx
                .store
                .call(move |_| {
                    let notice = Notice {
                        id: store.new_notice_id()?,
                        ..notice
                    };
                    store.queue_notice(&hop, &notice, Vec::new())
                })
                .await;
            if !matches!(queued, Ok(())) {
                tracing::error!(consent = %consent.terms.id, "could not queue the withdrawal notice");
            }
        }
        tracing::info!(consent = %consent.terms.id, "consent withdrawn");
        Ok(Response::new(self.consent_wire(&consent)))
    }

    async fn get(&self, request: Request<pb::ConsentId>) -> Result<Response<pb::Consent>, Status> {
        let caller = self.admit_consents(&request).await?;
        let consent = self.held(&caller, "Get", &request.get_ref().id).await?;
        let mut e = self.entry(&caller, "Get");
        e.subject = Some(consent.terms.subject_id.clone());
        e.consent_id = Some(consent.terms.id.to_string());
        self.log(vec![e]).await?;
        Ok(Response::new(self.consent_wire(&consent)))
    }

    async fn list(
        &self,
        request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ConsentList>, Status> {
        let caller = self.admit_consents(&request).await?;
        let subject = match subject_id(
            &request.get_ref().subject_id,
            &self.ctx.config.legacy_codes,
            self.ctx.clock.today(),
        ) {
            Ok(s) => s,
            Err(r) => return Err(self.refuse(self.entry(&caller, "List"), r).await),
        };
        let store = self.ctx.store.clone();
        let s = subject.clone();
        let consents = self
            .ctx
            .store
            .call(move |_| store.consents_of(&s))
            .await
            .map_err(|e| store_status(&e))?;
        let mut e = self.entry(&caller, "List");
        e.subject = Some(subject);
        e.count = consents.len() as u64;
        self.log(vec![e]).await?;
        let today = self.ctx.clock.today();
        Ok(Response::new(pb::ConsentList {
            consents: consents.iter().map(|c| consent_to_wire(c, today)).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_ascii_subject_id_is_refused_not_a_panic_r_data_1() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        // 18 bytes, the 18th inside `é`: slicing at 17 would panic.
        for raw in [
            "1234567890123456é",
            "21138219800229013４",
            "é1234567890123456",
        ] {
            let r = subject_id(raw, &[], today).unwrap_err();
            assert_eq!(
                (r.code, r.field.as_str(), r.rule.as_str()),
                (Code::InvalidArgument, "subject_id", "R-DATA-1"),
                "{raw}"
            );
        }
        assert_eq!(
            subject_id("211382198002290134", &[], today).unwrap(),
            "211382198002290134"
        );
        // The birth date is checked against the node's day, not the system's.
        let before_birth = NaiveDate::from_ymd_opt(1980, 2, 28).unwrap();
        assert!(subject_id("211382198002290134", &[], before_birth).is_err());
    }
}

//! The Query service (R-REL-1..6): a subject's records, for a stated purpose, on one
//! legal basis, from this node's holdings or, with federation scope, from the top node,
//! which holds everything below it (R-FED-1).
//!
//! Who may use which basis:
//! * `consent`: agencies, with a consent whose grantee they are (R-REL-4);
//! * `self`: operators at a service window, who checked the subject's identity and name
//!   the document in `legal_reference` (R-REL-3);
//! * `statutory_duty`: government providers registered at the node, naming the law in
//!   `legal_reference` (R-REL-5);
//! * `public`: anyone; public-class records only, personal identifiers masked (R-REL-2).
//!
//! A forwarding node asks as itself, naming the party in `on_behalf_of`; the answering
//! node accepts that only from its configured children, and checks the consent itself.

use std::collections::BTreeMap;

use tonic::{Code, Request, Response, Status};

use super::consents::{consent_id, subject_id};
use super::{AccessService, MAX_IDS_PER_ENTRY};
use crate::domain::caller::{CallerId, Role};
use crate::domain::consent::{Consent, Purpose};
use crate::domain::record::{Record, SubjectKind, mask_id};
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::authz::Rpc;
use crate::policy::mask::{Masking, mask_name, mask_text};
use crate::policy::release::{
    Basis, check_consent, is_personal, mask_public, public_field, withheld,
};
use crate::rpc::convert::consent::{consent_from_wire, consent_to_wire};
use crate::rpc::convert::record::record_to_wire;
use crate::rpc::refusal::{Refusal, store_status};

/// A checked query: who asks, for what, on which basis.
struct Asked {
    /// The party the data is for: the caller, or the party a forwarding node names.
    requester: CallerId,
    subject: String,
    purpose: Purpose,
    basis: Basis,
    categories: Vec<String>,
    federation: bool,
    legal_reference: String,
    consent_id: Option<uuid::Uuid>,
}

/// Whether `node`, the caller, forwards for `requester`: the requester is at the node's
/// region or below it.
fn forwards_for(node: &CallerId, requester: &CallerId) -> bool {
    node.region == requester.region || node.region.contains(&requester.region)
}

fn basis_of(b: i32) -> Option<Basis> {
    match pb::LegalBasis::try_from(b).ok()? {
        pb::LegalBasis::Consent => Some(Basis::Consent),
        pb::LegalBasis::Self_ => Some(Basis::OwnRecord),
        pb::LegalBasis::StatutoryDuty => Some(Basis::StatutoryDuty),
        pb::LegalBasis::Public => Some(Basis::Public),
        pb::LegalBasis::Unspecified => None,
    }
}

impl AccessService {
    /// The usage entry every outcome of this query fills in.
    fn query_entry(&self, caller: &CallerId, req: &pb::QueryRequest) -> UsageEntry {
        let mut e = UsageEntry::new(
            caller.uri(),
            Action::Query,
            "Query",
            self.ctx.clock.now_ms(),
        );
        e.on_behalf_of = (!req.on_behalf_of.is_empty()).then(|| req.on_behalf_of.clone());
        // Only an identifier's shape goes into the permanent log and its subject index; a
        // refused id of any other shape is in the refusal's message alone.
        let subject = crate::policy::identifier::normalise_id(&req.subject_id);
        e.subject = crate::domain::record::has_id_shape(&subject).then_some(subject);
        e.purpose = (!req.purpose.is_empty()).then(|| req.purpose.clone());
        e.legal_basis = basis_of(req.basis).map(|b| b.as_str().to_string());
        e.consent_id = (!req.consent_id.is_empty()).then(|| req.consent_id.clone());
        e
    }

    /// Parses the request and checks the caller may use its basis.
    fn asked(&self, caller: &CallerId, req: &pb::QueryRequest) -> Result<Asked, Refusal> {
        let requester = if caller.role == Role::Node {
            if !self.is_child(caller) {
                return Err(Refusal::new(
                    Code::PermissionDenied,
                    "",
                    "R-FED-1",
                    format!(
                        "node {} is not a configured child of this node; queries are \
                         forwarded upward only",
                        caller.region
                    ),
                ));
            }
            CallerId::parse_uri(&req.on_behalf_of)
                .map_err(|e| Refusal::invalid("on_behalf_of", "R-REL-4", e.to_string()))?
        } else {
            if !req.on_behalf_of.is_empty() {
                return Err(Refusal::invalid(
                    "on_behalf_of",
                    "R-REL-4",
                    "only a forwarding node names another party",
                ));
            }
            caller.clone()
        };
        let subject = subject_id(
            &req.subject_id,
            &self.ctx.config.legacy_codes,
            self.ctx.clock.today(),
        )?;
        let purpose = Purpose::parse(req.purpose.trim()).ok_or_else(|| {
            Refusal::invalid(
                "purpose",
                "R-REL-6",
                format!("a query states its purpose, one of {}", Purpose::codes()),
            )
        })?;
        let basis = basis_of(req.basis).ok_or_else(|| {
            Refusal::invalid(
                "basis",
                "R-REL-1",
                "must be consent, self, statutory_duty or public",
            )
        })?;
        let catalog = self.ctx.validator.catalog();
        let mut categories: Vec<String> = req
            .categories
            .iter()
            .map(|c| c.trim().to_string())
            .collect();
        categories.sort();
        categories.dedup();
        if let Some(c) = categories.iter().find(|c| catalog.get(c).is_none()) {
            return Err(Refusal::invalid(
                "categories",
                "R-DATA-2",
                format!("unknown category {c:?}"),
            ));
        }
        let federation = match pb::Scope::try_from(req.scope) {
            Ok(pb::Scope::Federation) => true,
            Ok(pb::Scope::Local | pb::Scope::Unspecified) => false,
            Err(_) => {
                return Err(Refusal::invalid(
                    "scope",
                    "R-FED-1",
                    "must be local or federation",
                ));
            }
        };
        let legal_reference = req.legal_reference.trim().to_string();
        // The self and statutory bases name what the query rests on (R-REL-3, R-REL-5).
        let cited = |rule: &str, what: &str| {
            if legal_reference.is_empty() {
                Err(Refusal::invalid("legal_reference", rule, what))
            } else {
                Ok(())
            }
        };
        let mut consent = None;
        match basis {
            Basis::Consent => {
                if requester.role != Role::Agency {
                    return Err(Refusal::new(
                        Code::PermissionDenied,
                        "basis",
                        "R-REL-4",
                        "a query on a subject's consent is made by the agency the consent names",
                    ));
                }
                if req.consent_id.trim().is_empty() {
                    return Err(Refusal::invalid(
                        "consent_id",
                        "R-REL-4",
                        "a query on consent names the consent",
                    ));
                }
                consent = Some(consent_id(&req.consent_id)?);
            }
            Basis::OwnRecord => {
                // The window's operator belongs to this node, or to a node below that
                // forwarded the query.
                let own_window = if caller.role == Role::Node {
                    forwards_for(caller, &requester)
                } else {
                    requester.region == self.ctx.config.region
                };
                if requester.role != Role::Operator || !own_window {
                    return Err(Refusal::new(
                        Code::PermissionDenied,
                        "basis",
                        "R-REL-3",
                        "a subject reads its own records through an operator at a service \
                         window, who checks its identity",
                    ));
                }
                cited(
                    "R-REL-3",
                    "name the identity document or written authorisation checked",
                )?;
            }
            Basis::StatutoryDuty => {
                // Registration and the government flag are checked where the provider is
                // registered; a node forwarding for it vouches for that check.
                let government = if caller.role == Role::Node {
                    forwards_for(caller, &requester)
                } else {
                    requester.region == self.ctx.config.region
                        && self
                            .ctx
                            .config
                            .providers
                            .iter()
                            .any(|p| p.id == requester.id && p.government)
                };
                if requester.role != Role::Provider || !government {
                    return Err(Refusal::new(
                        Code::PermissionDenied,
                        "basis",
                        "R-REL-5",
                        "shared information goes to government providers registered at the \
                         node, for their statutory duties",
                    ));
                }
                cited("R-REL-5", "name the law or regulation that sets the duty")?;
            }
            Basis::Public => {}
        }
        Ok(Asked {
            requester,
            subject,
            purpose,
            basis,
            categories,
            federation,
            legal_reference,
            consent_id: consent,
        })
    }

    /// The consent to check: this node's copy, or the forwarding node's (signed, so it
    /// cannot be forged); of two, the one with a withdrawal wins, since a withdrawal is
    /// never undone.
    async fn consent_for(
        &self,
        id: uuid::Uuid,
        carried: Option<pb::Consent>,
    ) -> Result<Consent, Refusal> {
        // Bounded like every store call: sled can spin on a damaged page (R-SEC-1).
        let local = self
            .ctx
            .store
            .call(move |s| s.consent(&id))
            .await
            .map_err(|e| {
                let status = store_status(&e);
                Refusal::new(status.code(), "", "R-SEC-1", status.message())
            })?;
        let carried = match carried.map(consent_from_wire) {
            Some(Ok(c)) if c.terms.id == id => Some(c),
            Some(Ok(_)) => None,
            Some(Err(v)) => return Err(Refusal::from(v)),
            None => None,
        };
        let failed = |check: &str, message: String| {
            Refusal::new(Code::FailedPrecondition, check, "R-REL-4", message)
        };
        let Some(consent) = Consent::latest(local, carried) else {
            return Err(failed(
                "consent_id",
                format!("unknown consent {id}: it is not held at this node"),
            ));
        };
        self.verify_cached(&consent)
            .map_err(|e| failed("signature", format!("consent {id}: {e}")))?;
        Ok(consent)
    }

    /// Answers from this node's holdings; logs the use before returning.
    async fn answer(
        &self,
        mut entry: UsageEntry,
        asked: Asked,
        carried: Option<pb::Consent>,
    ) -> Result<pb::QueryResult, Status> {
        let today = self.ctx.clock.today();
        let mut categories = asked.categories.clone();
        if let Some(id) = asked.consent_id {
            let consent = match self.consent_for(id, carried).await {
                Ok(c) => c,
                Err(r) => return Err(self.refuse(entry, r).await),
            };
            if categories.is_empty() {
                categories = consent.terms.categories.clone();
            }
            if let Err(f) = check_consent(
                &consent,
                &asked.requester.uri(),
                &asked.subject,
                asked.purpose,
                &categories,
                today,
            ) {
                let r = Refusal::new(Code::FailedPrecondition, f.check, "R-REL-4", f.message);
                return Err(self.refuse(entry, r).await);
            }
        }
        let subject = asked.subject.clone();
        let held = self
            .ctx
            .store
            .call(move |s| s.records_of(&subject))
            .await
            .map_err(|e| store_status(&e))?;
        let catalog = self.ctx.validator.catalog();
        let mut kept_back: BTreeMap<&'static str, u32> = BTreeMap::new();
        let mut records: Vec<Record> = Vec::new();
        for r in held {
            if !categories.is_empty() && !categories.contains(&r.content.category) {
                continue;
            }
            let why = withheld(
                &r,
                Some(asked.basis),
                today,
                &self.ctx.config.publication,
                self.ctx.store.objection_open(&r.id),
            );
            match why {
                Some(w) => *kept_back.entry(w.as_str()).or_default() += 1,
                None if !asked.basis.releases(r.content.disclosure) => {
                    *kept_back.entry("class").or_default() += 1;
                }
                None => records.push(r),
            }
        }
        let withheld: u32 = kept_back.values().sum();
        let masked = asked.basis == Basis::Public;
        entry.count = records.len() as u64;
        entry.record_ids = records
            .iter()
            .take(MAX_IDS_PER_ENTRY)
            .map(|r| r.id)
            .collect();
        entry.detail = format!(
            "returned {} records, withheld {withheld}{}{}{}",
            records.len(),
            if kept_back.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> =
                    kept_back.iter().map(|(k, n)| format!("{k} {n}")).collect();
                format!(" ({})", parts.join(", "))
            },
            if masked { ", identifiers masked" } else { "" },
            if asked.legal_reference.is_empty() {
                String::new()
            } else {
                format!("; reference: {}", asked.legal_reference)
            }
        );
        self.log(vec![entry]).await?;
        if masked {
            for r in &mut records {
                mask_public(r, catalog);
            }
        }
        tracing::debug!(requester = %asked.requester, subject = %mask_id(&asked.subject),
            basis = asked.basis.as_str(), records = records.len(), "query answered");
        Ok(pb::QueryResult {
            answered_by: self.ctx.config.region.to_string(),
            as_of_ms: self.ctx.clock.now_ms(),
            records: records
                .iter()
                .map(|r| {
                    let mut wire = record_to_wire(r);
                    // The hash covers the unmasked content: with the subject id the
                    // caller already has, it would let the masked name be guessed.
                    if masked {
                        wire.content_hash.clear();
                    }
                    wire
                })
                .collect(),
            masked,
            withheld,
            path: vec![self.ctx.config.region.to_string()],
        })
    }

    /// Drops from a parent's answer what this node knows must be withheld and the parent
    /// may not know yet: a record with an objection open here, or whose copy here is
    /// newer (suspended, deleted, repaired, purged, not yet synced up) or withheld by
    /// this node's own rules (R-OBJ-3, R-SEC-2). Returns how many it dropped.
    async fn withhold_newer_here(&self, records: &mut Vec<pb::Record>, basis: Basis) -> u32 {
        let today = self.ctx.clock.today();
        let ids: Vec<Option<uuid::Uuid>> = records
            .iter()
            .map(|r| uuid::Uuid::parse_str(&r.id).ok())
            .collect();
        // One bounded store call for the copies held here; past the bound nothing can
        // be checked here, so nothing is released.
        let lookup = ids.clone();
        let here: Vec<Result<Option<Record>, ()>> = self
            .ctx
            .store
            .call(move |s| {
                Ok::<_, crate::store::StoreError>(
                    lookup
                        .iter()
                        .map(|id| match id {
                            Some(id) => s.record(id).map_err(|_| ()),
                            None => Ok(None),
                        })
                        .collect(),
                )
            })
            .await
            .unwrap_or_else(|_| vec![Err(()); ids.len()]);
        let mut here = here.into_iter();
        let mut ids = ids.into_iter();
        let mut dropped = 0;
        records.retain(|r| {
            let (Some(id), Some(copy)) = (ids.next(), here.next()) else {
                return false;
            };
            let Some(id) = id else {
                return true;
            };
            let keep = !self.ctx.store.objection_open(&id)
                && match copy {
                    Ok(Some(here)) => {
                        here.version <= r.version
                            && withheld(
                                &here,
                                Some(basis),
                                today,
                                &self.ctx.config.publication,
                                false,
                            )
                            .is_none()
                    }
                    Ok(None) => true,
                    // Cannot be checked here: withheld, not released.
                    Err(_) => false,
                };
            if !keep {
                dropped += 1;
            }
            keep
        });
        dropped
    }

    /// Forwards the query to the parent as this node, for `asked.requester`.
    async fn forward(
        &self,
        mut entry: UsageEntry,
        asked: &Asked,
        mut req: pb::QueryRequest,
    ) -> Result<pb::QueryResult, Status> {
        let Some(channel) = self.parent.clone() else {
            return Err(Status::internal("no parent to forward to"));
        };
        let parent = self
            .ctx
            .config
            .parent
            .as_ref()
            .map(|p| p.region.to_string())
            .unwrap_or_default();
        req.on_behalf_of = asked.requester.uri();
        req.subject_id = asked.subject.clone();
        // Carry this node's copy, or the child's if that one is withdrawn and this is not
        // (a withdrawal is never undone), so the node that answers sees the latest state.
        if let Some(id) = asked.consent_id {
            let carried = req.consent.take().and_then(|c| consent_from_wire(c).ok());
            let local = self
                .ctx
                .store
                .call(move |s| s.consent(&id))
                .await
                .map_err(|e| store_status(&e))?;
            req.consent = Consent::latest(local, carried)
                .map(|c| consent_to_wire(&c, self.ctx.clock.today()));
        }
        let mut client = pb::query_client::QueryClient::new(channel);
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(30), client.query(req)).await;
        let mut result = match answer {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => {
                let r = Refusal::new(
                    status.code(),
                    "",
                    "R-FED-1",
                    format!("node {parent} answered: {}", status.message()),
                );
                entry = r.mark(entry);
                self.log(vec![entry]).await?;
                return Err(status);
            }
            Err(_) => {
                let r = Refusal::new(
                    Code::Unavailable,
                    "scope",
                    "R-FED-1",
                    format!("node {parent} did not answer within 30 s; try scope local"),
                );
                return Err(self.refuse(entry, r).await);
            }
        };
        let held_back = self
            .withhold_newer_here(&mut result.records, asked.basis)
            .await;
        result.withheld += held_back;
        if asked.basis == Basis::Public {
            // The answering node masked them; masking again costs little and holds
            // should that node run an older release (R-REL-2). The parent masked the
            // names too: the names masked here are the ones this node holds for the
            // subject, from its own records.
            let held = self
                .ctx
                .store
                .records_of(&asked.subject)
                .map_err(|e| store_status(&e))?;
            let mut names: Vec<String> = held.into_iter().map(|r| r.content.subject.name).collect();
            names.sort();
            names.dedup();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let catalog = self.ctx.validator.catalog();
            for r in &mut result.records {
                mask_public_wire(r, catalog, &names);
            }
            result.masked = true;
        }
        entry.count = result.records.len() as u64;
        entry.record_ids = result
            .records
            .iter()
            .take(MAX_IDS_PER_ENTRY)
            .filter_map(|r| uuid::Uuid::parse_str(&r.id).ok())
            .collect();
        entry.detail = format!(
            "forwarded to {parent}; answered by {}, {} records, {held_back} more withheld here",
            result.answered_by,
            result.records.len()
        );
        self.log(vec![entry]).await?;
        result.path.push(self.ctx.config.region.to_string());
        Ok(result)
    }
}

/// `policy::release::mask_public` on a record as it came from the parent, with `held`
/// (the names this node holds for the subject) masked besides the record's own. Masking
/// is idempotent: a masked value comes back unchanged.
fn mask_public_wire(r: &mut pb::Record, catalog: &crate::policy::Catalog, held: &[&str]) {
    let personal = r.subject.as_ref().is_some_and(|s| {
        let kind = if s.kind == pb::SubjectKind::Natural as i32 {
            SubjectKind::Natural
        } else {
            SubjectKind::Legal
        };
        is_personal(kind, &s.id)
    });
    let name = r
        .subject
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let mut names: Vec<&str> = held.to_vec();
    names.push(name.as_str());
    let how = Masking::released(personal, if personal { &names } else { &[] });
    let category = catalog.get(&r.category);
    r.fields = std::mem::take(&mut r.fields)
        .into_iter()
        .filter_map(|(field, value)| {
            let spec = category.and_then(|c| c.field(&field));
            public_field(spec, &value, how).map(|v| (field, v))
        })
        .collect();
    r.provider_ref = mask_text(&r.provider_ref, how);
    r.status_reason = mask_text(&r.status_reason, how);
    r.content_hash.clear();
    if let Some(s) = r.subject.as_mut().filter(|_| personal) {
        s.id = mask_id(&s.id);
        s.name = mask_name(&s.name);
    }
}

#[tonic::async_trait]
impl pb::query_server::Query for AccessService {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResult>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Query, Action::Query)
            .await?;
        let mut req = request.into_inner();
        let entry = self.query_entry(&caller, &req);
        let asked = match self.asked(&caller, &req) {
            Ok(a) => a,
            Err(r) => return Err(self.refuse(entry, r).await),
        };
        // Only a configured child forwarding a query may carry a consent: an agency could
        // otherwise bring a copy from before its withdrawal.
        let carried = req.consent.take().filter(|_| caller.role == Role::Node);
        let result = if asked.federation && self.parent.is_some() {
            req.consent = carried;
            self.forward(entry, &asked, req).await?
        } else {
            self.answer(entry, asked, carried).await?
        };
        Ok(Response::new(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::publication::tests::record;

    /// A record as an older parent might send it, unmasked, and as a current parent
    /// sends it, name masked: either way the forwarding node masks the name it holds.
    #[test]
    fn a_forwarded_public_record_is_masked_with_the_name_held_here_r_rel_2() {
        let catalog = crate::policy::Catalog::builtin().unwrap();
        for parent_masked in [false, true] {
            let mut r = record(
                SubjectKind::Natural,
                true,
                &[("facts", "当事人王建国（电话13812345678）无证经营")],
            );
            r.content.subject.id = "211382198002290134".into();
            r.content.subject.name = "王建国".into();
            r.content.provider_ref = "王建国-211382198002290134".into();
            if parent_masked {
                r.content.subject.id = mask_id(&r.content.subject.id);
                r.content.subject.name = mask_name("王建国");
            }
            let mut w = record_to_wire(&r);
            mask_public_wire(&mut w, &catalog, &["王建国"]);
            let all = format!("{w:?}");
            for secret in ["王建国", "211382198002290134", "13812345678"] {
                assert!(!all.contains(secret), "{secret} in {all}");
            }
            assert_eq!(w.subject.as_ref().unwrap().name, "王**");
        }
    }
}

//! 信用修复 (R-REL-1): the origin withdraws an adverse record from publication and
//! sharing once its minimum publication period has passed. `repair` is the pure
//! transition; the RPC around it is one atomic `Store::origin_write`, as every case step.

use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::service::{MAX_REASON, ObjectionService};
use super::steps::{Actor, Kind, Refused};
use crate::domain::caller::CallerId;
use crate::domain::record::next_version;
use crate::domain::record::{Record, Status as RecordStatus};
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::publication::Publication;
use crate::rpc::input;
use crate::store::OriginChange;

/// The repaired version of record `id` (held here as `record`) and the usage entry, or
/// why it cannot be repaired now: only its origin repairs it, only adverse information,
/// only an active record with no objection open, and not before its publication period
/// allows.
pub fn repair(
    id: Uuid,
    record: Option<Record>,
    objection_open: bool,
    reason: String,
    publication: &Publication,
    at: &Actor,
) -> Result<(Record, UsageEntry), Refused> {
    let (local, now, today) = (at.local, at.now_ms, at.today);
    let refuse = |field: &str, rule: &'static str, message: String| {
        Err(Refused::new(Kind::FailedPrecondition, field, rule, message))
    };
    let Some(cur) = record else {
        let message = format!("record {id} is not held here");
        return Err(Refused::new(
            Kind::NotFound,
            "record_id",
            "R-REL-1",
            message,
        ));
    };
    if cur.origin != local {
        let message = format!(
            "record {id} originated at {}; only its origin changes it, so repair it there",
            cur.origin
        );
        return refuse("record_id", "R-FED-1", message);
    }
    if !cur.content.adverse {
        let message = "credit repair withdraws adverse information only".to_string();
        return refuse("record_id", "R-REL-1", message);
    }
    let open = objection_open;
    if open || cur.status != RecordStatus::Active {
        let message = format!(
            "record {id} is {:?}{}",
            cur.status,
            if open { " with an objection open" } else { "" }
        );
        return refuse("record_id", "R-OBJ-3", message);
    }
    if let Some(p) = publication.period(&cur, today)
        && today < p.repairable_from
    {
        return refuse(
            "record_id",
            "R-REL-1",
            format!(
                "a {} penalty is published at least until {}; it can be repaired \
                 from {} ({})",
                p.class,
                p.repairable_from.pred_opt().unwrap_or(p.repairable_from),
                p.repairable_from,
                p.version
            ),
        );
    }
    let reason = format!("信用修复: {reason}");
    let next = next_version(&cur, RecordStatus::Repaired, reason, now);
    let mut e = UsageEntry::new(at.by.clone(), Action::Repair, "Repair", now);
    e.subject = Some(cur.content.subject.id.clone());
    e.record_ids = vec![id];
    e.count = 1;
    e.detail = format!(
        "credit repair: withdrawn from publication and sharing at version {}",
        next.version
    );
    Ok((next, e))
}

impl ObjectionService {
    /// The `Repair` RPC, admitted: the record's repaired version, or the refusal logged.
    pub(super) async fn repair_rpc(
        &self,
        caller: CallerId,
        request: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResult>, Status> {
        let mut entry = UsageEntry::new(
            caller.uri(),
            Action::Repair,
            "Repair",
            self.ctx.clock.now_ms(),
        );
        entry.record_ids = Uuid::parse_str(request.get_ref().record_id.trim())
            .into_iter()
            .collect();
        match self.repair_record(&caller, request.into_inner()).await {
            Ok(r) => {
                tracing::info!(record = %r.id, version = r.version,
                    "record withdrawn by credit repair");
                Ok(Response::new(pb::RepairResult {
                    record_id: r.id.to_string(),
                    version: r.version,
                }))
            }
            Err(f) => Err(self.fail(entry, f).await),
        }
    }

    async fn repair_record(
        &self,
        caller: &CallerId,
        req: pb::RepairRequest,
    ) -> Result<Record, super::service::Fail> {
        let id = input::uuid(&req.record_id, "record_id", "R-REL-1")?;
        let reason = input::required(
            &req.reason,
            "reason",
            "R-REL-1",
            MAX_REASON,
            "the repair decision",
        )?;
        let at = self.actor(caller);
        let publication = self.ctx.config.publication.clone();
        self.step(move |s| {
            let record = s.record(&id)?;
            let open = s.objection_open(&id);
            let repaired = repair(id, record, open, reason, &publication, &at);
            Ok(repaired.map(|(next, e)| {
                let out = next.clone();
                let change = OriginChange {
                    records: vec![next],
                    cases: vec![],
                    usage: vec![e],
                };
                (change, out)
            }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::SubjectKind;
    use crate::domain::region::RegionCode;
    use crate::policy::publication::tests::record;
    use chrono::NaiveDate;

    fn at(today: &str) -> Actor {
        Actor {
            local: RegionCode::parse("211382").unwrap(),
            by: "credit://operator/211382/ops".into(),
            now_ms: 7,
            today: NaiveDate::parse_from_str(today, "%Y-%m-%d").unwrap(),
        }
    }

    fn refusal(r: Result<(Record, UsageEntry), Refused>) -> (Kind, &'static str) {
        let r = r.unwrap_err();
        (r.kind, r.rule)
    }

    #[test]
    fn an_adverse_record_of_its_origin_is_withdrawn_in_a_new_version() {
        let cur = record(SubjectKind::Natural, true, &[]);
        let id = cur.id;
        let pb = Publication::builtin();
        let (next, e) = repair(
            id,
            Some(cur.clone()),
            false,
            "decided".into(),
            &pb,
            &at("2030-01-01"),
        )
        .unwrap();
        assert_eq!(next.version, cur.version + 1);
        assert_eq!(next.status, RecordStatus::Repaired);
        assert_eq!(next.status_reason, "信用修复: decided");
        assert_eq!(next.reported_at_ms, 7);
        assert_eq!(next.content, cur.content);
        assert_eq!(e.action, Action::Repair);
        assert_eq!(e.record_ids, vec![id]);
        assert_eq!(e.count, 1);
    }

    #[test]
    fn only_an_active_adverse_record_held_and_owned_here_is_repaired() {
        let pb = Publication::builtin();
        let at = at("2030-01-01");
        let cur = record(SubjectKind::Natural, true, &[]);
        let id = cur.id;
        let go = |r: Option<Record>, open: bool| repair(id, r, open, "x".into(), &pb, &at);
        assert_eq!(refusal(go(None, false)), (Kind::NotFound, "R-REL-1"));
        let mut elsewhere = cur.clone();
        elsewhere.origin = RegionCode::parse("211300").unwrap();
        assert_eq!(
            refusal(go(Some(elsewhere), false)),
            (Kind::FailedPrecondition, "R-FED-1")
        );
        let good = record(SubjectKind::Natural, false, &[]);
        assert_eq!(
            refusal(go(Some(good), false)),
            (Kind::FailedPrecondition, "R-REL-1")
        );
        let r = go(Some(cur.clone()), true).unwrap_err();
        assert_eq!((r.kind, r.rule), (Kind::FailedPrecondition, "R-OBJ-3"));
        assert!(
            r.message.ends_with("with an objection open"),
            "{}",
            r.message
        );
        let mut suspended = cur;
        suspended.status = RecordStatus::Suspended;
        assert_eq!(
            refusal(go(Some(suspended), false)),
            (Kind::FailedPrecondition, "R-OBJ-3")
        );
    }

    #[test]
    fn a_published_penalty_waits_for_its_minimum_period() {
        let pb = Publication::builtin();
        let cur = record(SubjectKind::Legal, true, &[]);
        let today = at("2026-05-02");
        let Some(p) = pb.period(&cur, today.today) else {
            panic!("a public penalty of a legal person has a publication period");
        };
        let r = repair(cur.id, Some(cur.clone()), false, "x".into(), &pb, &today).unwrap_err();
        assert_eq!((r.kind, r.rule), (Kind::FailedPrecondition, "R-REL-1"));
        assert!(
            r.message.contains(&p.repairable_from.to_string()),
            "{}",
            r.message
        );
        let mut then = today.clone();
        then.today = p.repairable_from;
        assert!(repair(cur.id, Some(cur), false, "x".into(), &pb, &then).is_ok());
    }
}

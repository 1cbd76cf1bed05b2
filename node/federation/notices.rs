//! The notices that come down a child's Sync stream: kept here, or passed on towards the
//! child they are for, and acknowledged to the parent (R-NODE-5).

use tokio::sync::mpsc;

use super::uplink::{Link, SessionError, Uplink};
use crate::config::next_hop;
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::record::mask_id;
use crate::domain::region::RegionCode;
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::store::Store;

impl Uplink {
    /// Takes a notice that came down the stream, and acknowledges it when it may be.
    pub(super) async fn notice_from_parent(
        &self,
        link: &Link,
        n: pb::Notice,
        tx: &mpsc::Sender<pb::SyncUp>,
    ) -> Result<(), SessionError> {
        let notice = Notice::from_wire(&n)
            .map_err(|(field, why)| SessionError::Protocol(format!("notice {field}: {why}")))?;
        if self.take_notice(link, &notice).await? {
            let ack = pb::NoticeAck {
                id: notice.id,
                from_region: notice.from.to_string(),
            };
            let message = pb::SyncUp {
                message: Some(pb::sync_up::Message::NoticeAck(ack)),
            };
            // Sent beside, not in, the receive loop: the up channel may be full of
            // change batches, and that loop must keep reading what comes down.
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(message).await;
            });
        }
        Ok(())
    }

    /// Keeps a notice for this node, or queues it for the child it must go through.
    /// Returns whether the notice may be acknowledged: kept here, already here, or queued
    /// for the next hop. One this node cannot route is not acknowledged, so it stays in
    /// the parent's queue, visible in the parent's status, instead of vanishing.
    async fn take_notice(&self, link: &Link, notice: &Notice) -> Result<bool, SessionError> {
        let store = link.store.clone();
        let kept = notice.clone();
        let local = link.local;
        let hop = next_hop(&link.children, &notice.target).map(|c| c.region);
        let parent = link.parent.region;
        let signer = link.signer.clone();
        let now = link.clock.now_ms();
        let signed_at = link.clock.signing_ms();
        let (received, routable) = tokio::task::spawn_blocking(
            move || -> Result<(bool, bool), crate::store::StoreError> {
                let notice = kept;
                let mut e = UsageEntry::new(
                    format!("node {parent}"),
                    Action::Notice,
                    "Sync",
                    now,
                );
                e.subject = (!notice.subject_id.is_empty()).then(|| notice.subject_id.clone());
                if notice.target == local {
                    e.detail = format!(
                        "received {:?} notice {} from {} for record {}",
                        notice.kind, notice.id, notice.from, notice.record_id
                    );
                    let new = store.receive_notice(&notice, vec![e])?;
                    if new && notice.kind == NoticeKind::EntryRefused {
                        // The entry is kept in the parent's quarantine; the operator here
                        // sees the notice in `status` (R-FED-1).
                        tracing::warn!(parent = %notice.from, record_id = %notice.record_id,
                            "the parent refused an entry and keeps it in quarantine; see `credit-node status`");
                    }
                    // Also for a notice seen before: a crash may have come between
                    // keeping it and acting on it, and acting twice changes nothing.
                    if notice.kind == NoticeKind::ConsentWithdrawal {
                        withdraw_here(&store, &notice, local, (now, signed_at), signer.as_deref())?;
                    }
                    if let Some(case) = notice.filed_case() {
                        // This node owns the record: take the case and suspend it.
                        let by = format!("credit://node/{}/notice-{}", notice.from, notice.id);
                        crate::objection::origin::take_case(
                            &store,
                            case.clone(),
                            local,
                            now,
                            &by,
                            "Take",
                        )?;
                    }
                    Ok((new, true))
                } else if let Some(hop) = hop {
                    e.detail = format!(
                        "forwarded {:?} notice {} from {} towards {} via {hop}",
                        notice.kind, notice.id, notice.from, notice.target
                    );
                    // A node on the way holds the consent too: withdraw it here at once.
                    if notice.kind == NoticeKind::ConsentWithdrawal {
                        withdraw_here(&store, &notice, local, (now, signed_at), signer.as_deref())?;
                    }
                    match notice.filed_case() {
                        // A node on the way holds a copy of the record: withhold it here
                        // too, at once, while the notice goes on.
                        Some(case) => store
                            .keep_case(case, Some((&hop, &notice)), vec![e])
                            .map(|_| (true, true)),
                        None => store
                            .queue_notice(&hop, &notice, vec![e])
                            .map(|()| (true, true)),
                    }
                } else {
                    e.detail = format!(
                        "cannot route {:?} notice {} from {}: {} is not at or below this node's \
                         configured children; left unacknowledged at the parent",
                        notice.kind, notice.id, notice.from, notice.target
                    );
                    store.append_usage(vec![e]).map(|()| (false, false))
                }
            },
        )
        .await
        .map_err(|e| SessionError::Protocol(format!("notice task: {e}")))??;
        if received {
            self.update(|s| s.notices_received += 1);
        }
        if routable {
            tracing::info!(from = %notice.from, target = %notice.target, id = notice.id,
                subject = %mask_id(&notice.subject_id), "notice from the parent");
        } else {
            tracing::warn!(from = %notice.from, target = %notice.target, id = notice.id,
                "notice for a region this node does not route; left at the parent");
        }
        Ok(routable)
    }
}

/// A node above withdrew a consent recorded at or below this node: withdraw it here too,
/// signed by this node, so it is refused on this level as well (the changelog flows only
/// upward). Nodes on the way down do this as they pass the notice on; the withdrawal goes
/// up again, where the consent is already withdrawn and stays so.
fn withdraw_here(
    store: &Store,
    notice: &Notice,
    local: RegionCode,
    (now, signed_at): (i64, i64),
    signer: Option<&crate::identity::signing::NodeSigner>,
) -> Result<(), crate::store::StoreError> {
    let Ok(id) = uuid::Uuid::parse_str(&notice.record_id) else {
        return Ok(());
    };
    let Some(signer) = signer else {
        tracing::warn!(consent = %id, "no signer: a withdrawal reported from above is not applied here");
        return Ok(());
    };
    let Some(mut consent) = store.consent(&id)? else {
        return Ok(());
    };
    if consent.withdrawal.is_some() {
        return Ok(());
    }
    let by = format!("credit://node/{}/notice-{}", notice.from, notice.id);
    if let Err(e) = consent.withdraw(&by, &notice.text, local, signed_at, signer) {
        tracing::error!(consent = %id, error = %e, "cannot sign a withdrawal reported from above");
        return Ok(());
    }
    let mut entry = UsageEntry::new(by, Action::Consent, "Withdraw", now);
    entry.subject = Some(consent.terms.subject_id.clone());
    entry.consent_id = Some(id.to_string());
    entry.detail = format!(
        "withdrawn here after notice {} from {}",
        notice.id, notice.from
    );
    store.append_local(crate::store::Change::Consent(consent), vec![entry])?;
    tracing::info!(consent = %id, from = %notice.from, "consent withdrawn on notice from above");
    Ok(())
}

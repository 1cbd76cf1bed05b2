//! The consent scene of the demo (R-REL-1..6, R-SEC-3).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{CHAOYANG, LIAONING, LINGYUAN};
use crate::cli::CliError;
use crate::cli::client::Target;
use crate::devnet::DevNet;
use crate::domain::caller::Role;
use crate::domain::record::mask_id;
use crate::server::NodeHandle;

/// A subject's consent recorded at Lingyuan, an agency's query answered by Liaoning, a
/// refused one, a public query, the withdrawal reaching Liaoning, and the subject's usage
/// history (R-REL-1..6, R-SEC-3). Returns (subject, consent id, agency identity folder)
/// for the paste-ready commands, or None when no consent-class record was pushed.
pub(super) async fn consent_walkthrough(
    net: &DevNet,
    county: &NodeHandle,
    province: &NodeHandle,
) -> Result<Option<(String, String, PathBuf)>, CliError> {
    use crate::pb;
    let Some(subject) = county
        .store()
        .changes_since(0, usize::MAX)?
        .into_iter()
        .filter_map(|(_, c)| c.into_record())
        .find(|r| r.content.category == "power")
        .map(|r| r.content.subject.id)
    else {
        return Ok(None);
    };
    let agency_uri = format!("credit://agency/{LINGYUAN}/lingyuan-rcb");
    let agency = net.identity(Role::Agency, LINGYUAN, "lingyuan-rcb")?;
    let connect = |node: &NodeHandle, identity: PathBuf| {
        let endpoint = node.endpoint();
        async move { Target { endpoint, identity }.connect().await }
    };
    let ops_county = net.identity(Role::Operator, LINGYUAN, &format!("ops-{LINGYUAN}"))?;
    let mut consents =
        pb::consents_client::ConsentsClient::new(connect(county, ops_county.clone()).await?);
    let until = crate::domain::clock::Clock::system().today() + chrono::Days::new(90);
    let granted = consents
        .grant(pb::GrantRequest {
            subject_id: subject.clone(),
            grantee: agency_uri.clone(),
            purpose: "lending".into(),
            purpose_text: "凌源农商银行 loan application".into(),
            categories: vec!["power".into()],
            valid_from: String::new(),
            valid_until: until.to_string(),
            evidence: "凌源-授权-2026-0001".into(),
        })
        .await
        .map_err(crate::cli::client::status_error)?
        .into_inner();
    let id = granted.terms.map(|t| t.id).unwrap_or_default();
    println!("Consent and query:");
    println!(
        "  Lingyuan's operator recorded subject {}'s written consent {id}: {agency_uri} may read its power records for lending until {until}.",
        mask_id(&subject)
    );

    let mut bank = pb::query_client::QueryClient::new(connect(county, agency.clone()).await?);
    let ask = |purpose: &str, basis: pb::LegalBasis| pb::QueryRequest {
        subject_id: subject.clone(),
        purpose: purpose.into(),
        basis: basis as i32,
        consent_id: if basis == pb::LegalBasis::Consent {
            id.clone()
        } else {
            String::new()
        },
        scope: pb::Scope::Federation as i32,
        ..Default::default()
    };
    let answer = bank
        .query(ask("lending", pb::LegalBasis::Consent))
        .await
        .map_err(crate::cli::client::status_error)?
        .into_inner();
    println!(
        "  the bank asked at Lingyuan with scope federation: answered by {} (via {}), {} records; logged at every node on the way",
        answer.answered_by,
        answer.path.join(" <- "),
        answer.records.len()
    );
    match bank.query(ask("bidding", pb::LegalBasis::Consent)).await {
        Ok(_) => println!("  a query for another purpose was answered (unexpected)"),
        Err(s) => println!(
            "  the same consent for bidding: refused, {:?}: {}",
            s.code(),
            s.message()
        ),
    }
    let public = bank
        .query(ask("other", pb::LegalBasis::Public))
        .await
        .map_err(crate::cli::client::status_error)?
        .into_inner();
    println!(
        "  a public query for the subject: {} public records (identifiers masked: {}), {} withheld",
        public.records.len(),
        public.masked,
        public.withheld
    );

    consents
        .withdraw(pb::WithdrawRequest {
            id: id.clone(),
            reason: "the subject withdrew it in writing".into(),
        })
        .await
        .map_err(crate::cli::client::status_error)?;
    let uuid = uuid::Uuid::parse_str(&id)?;
    let started = Instant::now();
    while province
        .store()
        .consent(&uuid)?
        .is_none_or(|c| c.withdrawal.is_none())
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut at_province =
        pb::query_client::QueryClient::new(connect(province, agency.clone()).await?);
    let mut local = ask("lending", pb::LegalBasis::Consent);
    local.scope = pb::Scope::Local as i32;
    match at_province.query(local).await {
        Ok(_) => println!("  after the withdrawal Liaoning still answered (unexpected)"),
        Err(s) => println!(
            "  withdrawn at Lingyuan; {:.1} s later Liaoning refuses it: {}",
            started.elapsed().as_secs_f64(),
            s.message()
        ),
    }

    let mut audit = pb::audit_client::AuditClient::new(connect(county, ops_county).await?);
    let history = audit
        .history(pb::HistoryRequest {
            subject_id: subject.clone(),
            scope: pb::Scope::Federation as i32,
            on_behalf_of: String::new(),
        })
        .await
        .map_err(crate::cli::client::status_error)?
        .into_inner();
    let count = |node: &str| history.entries.iter().filter(|e| e.node == node).count();
    println!(
        "  the subject's usage history across the federation: {} uses (Lingyuan {}, Chaoyang {}, Liaoning {})",
        history.entries.len(),
        count(LINGYUAN),
        count(CHAOYANG),
        count(LIAONING)
    );
    println!();
    Ok(Some((subject, id, agency)))
}

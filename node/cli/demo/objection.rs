//! The objection scene of the demo (R-OBJ-1..3).

use std::time::{Duration, Instant};

use super::{LIAONING, LINGYUAN};
use crate::cli::CliError;
use crate::cli::client::Target;
use crate::devnet::DevNet;
use crate::domain::caller::Role;
use crate::domain::record::mask_id;
use crate::server::NodeHandle;

/// Waits until `node` holds record `id` with `status`; the seconds it took.
async fn until_status(
    node: &NodeHandle,
    id: &uuid::Uuid,
    status: crate::domain::record::Status,
    started: Instant,
) -> Result<f64, CliError> {
    while node.store().record(id)?.is_none_or(|r| r.status != status)
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// An objection filed at Liaoning about a penalty Lingyuan holds: withheld at once,
/// suspended on every level, referred to the provider, answered, upheld, released again.
pub(super) async fn objection_walkthrough(
    net: &DevNet,
    county: &NodeHandle,
    province: &NodeHandle,
) -> Result<(), CliError> {
    use crate::domain::record::Status;
    use crate::pb;
    let Some(record) = county
        .store()
        .changes_since(0, usize::MAX)?
        .into_iter()
        .filter_map(|(_, c)| c.into_record())
        .find(|r| r.content.category == "admin_penalty" && r.path.len() == 1)
    else {
        return Ok(());
    };
    let connect = |node: &NodeHandle, role: Role, region: &str, id: &str| {
        let endpoint = node.endpoint();
        let identity = net.identity(role, region, id);
        async move {
            Ok::<_, CliError>(pb::objections_client::ObjectionsClient::new(
                Target {
                    endpoint,
                    identity: identity?,
                }
                .connect()
                .await?,
            ))
        }
    };
    let fail = crate::cli::client::status_error;
    println!("Objection (R-OBJ-1..3):");
    let mut at_province = connect(
        province,
        Role::Operator,
        LIAONING,
        &format!("ops-{LIAONING}"),
    )
    .await?;
    let started = Instant::now();
    let case = at_province
        .file(pb::FileObjection {
            record_id: record.id.to_string(),
            reason: "the subject says the penalty was annulled on review".into(),
            evidence: "辽宁异议〔2026〕1号".into(),
        })
        .await
        .map_err(fail)?
        .into_inner();
    let due = |c: &pb::ObjectionCase| {
        c.deadlines
            .iter()
            .map(|d| format!("{} by {}", d.step, d.due))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  filed at Liaoning about penalty {} (subject {}), owned by its origin {}: withheld at Liaoning at once; {}",
        record.id,
        mask_id(&record.content.subject.id),
        case.owner_region,
        due(&case)
    );
    let suspended = until_status(province, &record.id, Status::Suspended, started).await?;
    println!(
        "  the notice went down to Lingyuan, which suspended the record; the suspension was back at Liaoning {suspended:.2} s after filing"
    );
    let mut at_county =
        connect(county, Role::Operator, LINGYUAN, &format!("ops-{LINGYUAN}")).await?;
    let checked = at_county
        .check(pb::CheckObjection {
            case_id: case.id.clone(),
            fault: "provider".into(),
            note: "referred to the market regulator".into(),
        })
        .await
        .map_err(fail)?
        .into_inner();
    println!(
        "  Lingyuan checked it and referred it to the provider: {}",
        due(&checked)
    );
    connect(county, Role::Provider, LINGYUAN, "lingyuan-amr")
        .await?
        .reply(pb::ReplyObjection {
            case_id: case.id.clone(),
            answer: "confirmed".into(),
            text: "the review upheld the decision".into(),
        })
        .await
        .map_err(fail)?;
    let started = Instant::now();
    let resolved = at_county
        .resolve(pb::ResolveObjection {
            case_id: case.id.clone(),
            outcome: "upheld".into(),
            reason: "the provider confirmed the decision; the applicant was told in writing".into(),
            fault: "provider".into(),
            ..Default::default()
        })
        .await
        .map_err(fail)?
        .into_inner();
    let lifted = until_status(province, &record.id, Status::Active, started).await?;
    println!(
        "  the provider answered; Lingyuan upheld the record ({}), and Liaoning released it again {lifted:.2} s later",
        due(&resolved)
    );
    println!();
    Ok(())
}

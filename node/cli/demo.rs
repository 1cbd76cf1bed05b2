//! `credit-node demo`: the federation of the source documents on one machine. Lingyuan
//! (211382) -> Chaoyang (211300) -> Liaoning (210000), a generated development PKI,
//! realistic providers at Lingyuan and Chaoyang pushing record files through the real
//! client path (some records refused, and why), then an account of what arrived where.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::client::{PushReport, Target, open_records, push_lines};
use super::records::draft_json;
use super::{CliError, Exit};
use crate::devnet::{DevNet, DevProvider};
use crate::domain::caller::Role;
use crate::domain::record::mask_id;
use crate::policy::Catalog;
use crate::policy::sample::generate_drafts_in;
use crate::server::{NodeHandle, start};

const AMR_SAMPLE: &str = include_str!("../../samples/lingyuan-amr.jsonl");
const POWER_SAMPLE: &str = include_str!("../../samples/lingyuan-power.csv");

const LIAONING: &str = "210000";
const CHAOYANG: &str = "211300";
const LINGYUAN: &str = "211382";

fn provider(id: &str, name: &str, categories: &[&str], uscc: &str) -> DevProvider {
    DevProvider {
        id: id.into(),
        name: name.into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        uscc: Some(uscc.into()),
        // The regulators and the tax bureau are; the utilities are not.
        government: !id.contains("power") && !id.contains("water") && !id.contains("gas"),
    }
}

/// One file pushed by one provider at one node.
struct Push {
    region: &'static str,
    provider: DevProvider,
    file: PathBuf,
}

pub async fn run(dir: Option<PathBuf>, exit: bool) -> Result<Exit, CliError> {
    // A temporary folder lives as long as this value; `--dir` keeps everything.
    let (tmp, dir) = match dir {
        Some(dir) => (None, dir),
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("credit-node-demo-")
                .tempdir()?;
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    };
    std::fs::create_dir_all(&dir)?;
    let net = DevNet::create(&dir)?;
    let period = super::previous_month();

    let lingyuan_providers = vec![
        provider(
            "lingyuan-amr",
            "凌源市市场监督管理局",
            &["registration", "admin_license", "admin_penalty"],
            "11211382012345671P",
        ),
        provider(
            "lingyuan-power",
            "国网辽宁省电力有限公司凌源市供电分公司",
            &["power"],
            "91211382MA0Q2K8P1U",
        ),
    ];
    let chaoyang_providers = vec![
        provider(
            "chaoyang-tax",
            "国家税务总局朝阳市税务局",
            &["tax"],
            "11211300001144559B",
        ),
        provider(
            "chaoyang-hpf",
            "朝阳市住房公积金管理中心",
            &["housing_fund"],
            "122113004567123489",
        ),
    ];

    // Top down, so each child knows its parent's address.
    let province = start(net.federated_node_config(
        LIAONING,
        "辽宁省公共信用信息平台 (demo)",
        &[],
        None,
        &[CHAOYANG],
    )?)
    .await?;
    let city = start(net.federated_node_config(
        CHAOYANG,
        "朝阳市公共信用信息平台 (demo)",
        &chaoyang_providers,
        Some((LIAONING, &province.endpoint())),
        &[LINGYUAN],
    )?)
    .await?;
    let county = start(net.federated_node_config(
        LINGYUAN,
        "凌源市公共信用信息平台 (demo)",
        &lingyuan_providers,
        Some((CHAOYANG, &city.endpoint())),
        &[],
    )?)
    .await?;

    println!("credit-node demo: the Liaoning federation on this machine");
    println!(
        "  Liaoning 辽宁省 {LIAONING} (province) at {}",
        province.endpoint()
    );
    println!(
        "  Chaoyang 朝阳市 {CHAOYANG} (city)     at {}, uplink to Liaoning",
        city.endpoint()
    );
    println!(
        "  Lingyuan 凌源市 {LINGYUAN} (county)   at {}, uplink to Chaoyang",
        county.endpoint()
    );
    println!(
        "  development CA, identities, configs, data and record files in {}",
        dir.display()
    );
    println!();

    let files = dir.join("records");
    std::fs::create_dir_all(&files)?;
    let pushes = record_files(&files, &lingyuan_providers, &chaoyang_providers, &period)?;

    let mut accepted = 0u64;
    for p in &pushes {
        let node = if p.region == LINGYUAN { &county } else { &city };
        let identity = net.identity(Role::Provider, p.region, &p.provider.id)?;
        let target = Target {
            endpoint: node.endpoint(),
            identity,
        };
        let (lines, _) = open_records(&p.file, &period)?;
        let report = push_lines(target.connect().await?, lines, 500, |_| {}).await?;
        accepted += report.created;
        print_report(p, &period, &report);
    }

    // Everything accepted below must arrive at the province (R-FED-1).
    let started = Instant::now();
    let arrived = wait_for(&province, accepted, Duration::from_secs(60)).await?;
    println!("Upward sync:");
    for (label, node) in [
        ("Lingyuan", &county),
        ("Chaoyang", &city),
        ("Liaoning", &province),
    ] {
        let s = node.store().stats()?;
        let own = node
            .store()
            .changes_since(0, usize::MAX)?
            .iter()
            .filter_map(|(_, c)| c.as_record())
            .filter(|r| r.origin == node.node.config.region && r.version == 1)
            .count();
        println!(
            "  {label:<9} holds {:>4} records ({:>4} pushed here, {:>4} from below); usage log {} entries",
            s.records,
            own,
            s.records as usize - own.min(s.records as usize),
            s.usage_entries
        );
    }
    if arrived {
        println!(
            "  Liaoning holds all {accepted} records accepted below, {:.1} s after the last push.",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "  Liaoning does not yet hold all {accepted} records accepted below; see `status`."
        );
    }
    println!();

    let ops = |region: &str| net.identity(Role::Operator, region, &format!("ops-{region}"));
    let (ops_province, ops_city, ops_county) = (ops(LIAONING)?, ops(CHAOYANG)?, ops(LINGYUAN)?);
    let example = first_subject(AMR_SAMPLE).unwrap_or_default();
    let at_province = super::client::pull(
        Target {
            endpoint: province.endpoint(),
            identity: ops_province.clone(),
        }
        .connect()
        .await?,
        &example,
    )
    .await?;
    if let Some(r) = at_province.first() {
        println!(
            "At Liaoning, subject {example} has {} records; one came from {} along {}.",
            at_province.len(),
            r.origin_region,
            r.path.join(" -> ")
        );
        println!();
    }

    let consent = consent_walkthrough(&net, &county, &province).await?;
    objection_walkthrough(&net, &county, &province).await?;

    // The census table from the top (R-FED-2..4), and Lingyuan's monthly duty (R-DATA-5).
    println!("Census at Liaoning (the NDRC table, with each level's collection ratio):");
    super::census::census(super::census::CensusArgs {
        json: false,
        csv: false,
        tree: true,
        as_of: None,
        target: super::TargetArgs {
            endpoint: province.endpoint(),
            identity: ops_province.clone(),
        },
    })
    .await?;
    println!();
    super::census::report(super::census::ReportCommand::Monthly {
        period: period.clone(),
        csv: false,
        target: super::TargetArgs {
            endpoint: county.endpoint(),
            identity: ops_county.clone(),
        },
    })
    .await?;
    println!();

    println!("Try it (paste into another shell while the demo runs):");
    println!(
        "  export CREDIT_NODE_ENDPOINT={} CREDIT_NODE_IDENTITY={}",
        province.endpoint(),
        ops_province.display()
    );
    println!("  cargo run --release -- pull {example}");
    println!(
        "  cargo run --release -- status --endpoint {} --identity {}",
        city.endpoint(),
        ops_city.display()
    );
    println!(
        "  cargo run --release -- status --endpoint {} --identity {}",
        county.endpoint(),
        ops_county.display()
    );
    if let Some(p) = pushes.first() {
        println!(
            "  cargo run --release -- push {} --period {period} --endpoint {} --identity {}",
            p.file.display(),
            county.endpoint(),
            net.identity(Role::Provider, p.region, &p.provider.id)?
                .display()
        );
    }
    if let Some((subject, id, agency)) = &consent {
        println!(
            "  cargo run --release -- query {subject} --purpose lending --basis consent --consent {id} --scope federation --endpoint {} --identity {}",
            county.endpoint(),
            agency.display()
        );
        println!(
            "  cargo run --release -- audit history {subject} --scope federation --endpoint {} --identity {}",
            county.endpoint(),
            ops_county.display()
        );
        println!(
            "  cargo run --release -- audit verify --endpoint {} --identity {}",
            county.endpoint(),
            ops_county.display()
        );
    }
    println!(
        "  cargo run --release -- objection list --endpoint {} --identity {}",
        county.endpoint(),
        ops_county.display()
    );
    println!(
        "  cargo run --release -- census --tree --endpoint {} --identity {}",
        province.endpoint(),
        ops_province.display()
    );
    println!(
        "  cargo run --release -- report monthly --period {period} --endpoint {} --identity {}",
        county.endpoint(),
        ops_county.display()
    );
    println!(
        "  cargo run --release -- pki revoke --ca {} {}/cert.pem",
        net.ca_dir().display(),
        ops_county.display()
    );
    println!(
        "    (each node rereads the CRL within a second; that certificate's next call is refused)"
    );
    std::io::stdout().flush()?;

    if !exit {
        println!();
        println!("Serving until Ctrl-C.");
        super::shutdown_signal().await;
    }
    county.shutdown().await?;
    city.shutdown().await?;
    province.shutdown().await?;
    drop(tmp);
    Ok(Exit::Ok)
}

/// The record files each provider pushes: the two shipped samples at Lingyuan, plus
/// generated, realistic files (market regulator at Lingyuan, tax bureau and housing fund
/// at Chaoyang) with a few records that must be refused.
fn record_files(
    dir: &Path,
    lingyuan: &[DevProvider],
    chaoyang: &[DevProvider],
    period: &str,
) -> Result<Vec<Push>, CliError> {
    let catalog = Catalog::builtin()?;
    let write = |name: &str, lines: &[serde_json::Value]| -> Result<PathBuf, CliError> {
        let path = dir.join(name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let generated = |categories: &[&str], n: usize, seed: u64| -> Vec<serde_json::Value> {
        generate_drafts_in(&catalog, categories, n, n / 2, seed, period)
            .iter()
            .map(draft_json)
            .collect()
    };

    let amr_sample = dir.join("lingyuan-amr.jsonl");
    std::fs::write(&amr_sample, AMR_SAMPLE)?;
    let power_sample = dir.join("lingyuan-power.csv");
    std::fs::write(&power_sample, POWER_SAMPLE)?;
    let amr_more = write(
        "lingyuan-amr-licences.jsonl",
        &generated(&["admin_license", "admin_penalty"], 120, 11),
    )?;

    let mut tax = generated(&["tax"], 150, 21);
    // Refused at Chaoyang: a natural person's tax amount (R-DATA-3), and a code with a
    // wrong check character (R-DATA-1).
    if let Some(person) = tax.iter().find(|r| r["subject_kind"] == "natural").cloned() {
        let mut bad = person;
        bad["provider_ref"] = "DEMO-TAX-AMOUNT".into();
        bad["fields"]["tax_amount"] = "12800.00".into();
        tax.push(bad);
    }
    if let Some(company) = tax.iter().find(|r| r["subject_kind"] == "legal").cloned() {
        let mut bad = company;
        bad["provider_ref"] = "DEMO-BAD-USCC".into();
        let id = bad["subject_id"].as_str().unwrap_or_default().to_string();
        let last = if id.ends_with('0') { '1' } else { '0' };
        bad["subject_id"] = format!("{}{last}", &id[..id.len().saturating_sub(1)]).into();
        tax.push(bad);
    }
    let tax = write("chaoyang-tax.jsonl", &tax)?;
    let hpf = write(
        "chaoyang-housing-fund.jsonl",
        &generated(&["housing_fund"], 100, 22),
    )?;

    Ok(vec![
        Push {
            region: LINGYUAN,
            provider: lingyuan[0].clone(),
            file: amr_sample,
        },
        Push {
            region: LINGYUAN,
            provider: lingyuan[1].clone(),
            file: power_sample,
        },
        Push {
            region: LINGYUAN,
            provider: lingyuan[0].clone(),
            file: amr_more,
        },
        Push {
            region: CHAOYANG,
            provider: chaoyang[0].clone(),
            file: tax,
        },
        Push {
            region: CHAOYANG,
            provider: chaoyang[1].clone(),
            file: hpf,
        },
    ])
}

/// Polls the province until it holds `n` records or `limit` passes.
async fn wait_for(node: &NodeHandle, n: u64, limit: Duration) -> Result<bool, CliError> {
    let deadline = Instant::now() + limit;
    loop {
        if node.store().stats()?.records >= n {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_report(p: &Push, period: &str, r: &PushReport) {
    let place = if p.region == LINGYUAN {
        "Lingyuan"
    } else {
        "Chaoyang"
    };
    println!(
        "{} ({}) pushed {} to {place} for {period}:",
        p.provider.name,
        p.provider.id,
        p.file.file_name().and_then(|f| f.to_str()).unwrap_or("?")
    );
    println!(
        "  accepted {} (created {}, new versions {}, unchanged {}), rejected {}",
        r.accepted(),
        r.created,
        r.new_versions,
        r.unchanged,
        r.rejected()
    );
    for x in &r.rejections {
        println!(
            "    line {}: {}: {} ({})",
            x.line, x.field, x.message, x.rule
        );
    }
    println!();
}

fn first_subject(jsonl: &str) -> Option<String> {
    let line = jsonl.lines().next()?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("subject_id")?.as_str().map(str::to_string)
}

/// A subject's consent recorded at Lingyuan, an agency's query answered by Liaoning, a
/// refused one, a public query, the withdrawal reaching Liaoning, and the subject's usage
/// history (R-REL-1..6, R-SEC-3). Returns (subject, consent id, agency identity folder)
/// for the paste-ready commands, or None when no consent-class record was pushed.
async fn consent_walkthrough(
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
        .map_err(super::client::status_error)?
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
        .map_err(super::client::status_error)?
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
        .map_err(super::client::status_error)?
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
        .map_err(super::client::status_error)?;
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
        .map_err(super::client::status_error)?
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
async fn objection_walkthrough(
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
    let fail = super::client::status_error;
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

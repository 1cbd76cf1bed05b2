//! `credit-node demo`: one development node for Lingyuan (211382) with a generated PKI,
//! two registered providers and the sample record files pushed through the real client
//! path; prints what happened and how to call the node, then serves until Ctrl-C.

use std::path::{Path, PathBuf};

use super::client::{PushReport, Target, open_records, push_lines};
use super::{CliError, Exit};
use crate::devnet::DevNet;
use crate::identity::Role;

const AMR_SAMPLE: &str = include_str!("../../samples/lingyuan-amr.jsonl");
const POWER_SAMPLE: &str = include_str!("../../samples/lingyuan-power.csv");

const REGION: &str = "211382";

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
    let providers = crate::devnet::sample_providers();
    let config = net.node_config(REGION, "凌源市公共信用信息平台 (demo)", &providers)?;
    let node = crate::server::start(config).await?;
    let endpoint = node.endpoint();
    let operator = net.identity(Role::Operator, REGION, "lingyuan-ops")?;
    let samples = dir.join("samples");
    std::fs::create_dir_all(&samples)?;
    let amr_file = samples.join("lingyuan-amr.jsonl");
    let power_file = samples.join("lingyuan-power.csv");
    std::fs::write(&amr_file, AMR_SAMPLE)?;
    std::fs::write(&power_file, POWER_SAMPLE)?;

    println!("credit-node demo: Lingyuan node {REGION} serving at {endpoint}");
    println!(
        "  development CA, identities, config and data in {}",
        dir.display()
    );
    println!();
    let period = super::previous_month();
    let mut identities = Vec::new();
    for (provider, file) in [(&providers[0], &amr_file), (&providers[1], &power_file)] {
        let identity = net.identity(Role::Provider, REGION, &provider.id)?;
        let target = Target {
            endpoint: endpoint.clone(),
            identity: identity.clone(),
        };
        let (lines, _) = open_records(file, &period)?;
        let report = push_lines(target.connect().await?, lines, 500, |_| {}).await?;
        print_report(&provider.name, &provider.id, file, &period, &report);
        identities.push(identity);
    }

    let stats = node.store().stats()?;
    println!(
        "The node now holds {} records ({} changelog entries ready for the uplink); its usage log has {} entries.",
        stats.records, stats.last_change, stats.usage_entries
    );
    let example = first_subject(AMR_SAMPLE).unwrap_or_default();
    let records = super::client::pull(
        Target {
            endpoint: endpoint.clone(),
            identity: operator.clone(),
        }
        .connect()
        .await?,
        &example,
    )
    .await?;
    println!(
        "An operator's pull of subject {example} returns {} records.",
        records.len()
    );
    println!();
    println!("Try it (paste into another shell):");
    println!("  export CREDIT_NODE_ENDPOINT={endpoint}");
    println!("  export CREDIT_NODE_IDENTITY={}", operator.display());
    println!("  cargo run --release -- pull {example}");
    println!(
        "  CREDIT_NODE_IDENTITY={} cargo run --release -- push {} --period {period}",
        identities[0].display(),
        amr_file.display()
    );
    println!(
        "  cargo run --release -- pki revoke --ca {} {}/cert.pem",
        net.ca_dir().display(),
        identities[1].display()
    );
    println!(
        "    (the node rereads the CRL within a second; that provider's next call is refused)"
    );

    if exit {
        node.shutdown().await?;
        return Ok(Exit::Ok);
    }
    println!();
    println!("Serving until Ctrl-C.");
    super::shutdown_signal().await;
    node.shutdown().await?;
    drop(tmp);
    Ok(Exit::Ok)
}

fn print_report(name: &str, id: &str, file: &Path, period: &str, r: &PushReport) {
    println!(
        "{name} ({id}) pushed {} for period {period}:",
        file.file_name().and_then(|f| f.to_str()).unwrap_or("?")
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

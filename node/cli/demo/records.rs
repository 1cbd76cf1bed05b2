//! The record files the demo's providers push: the two shipped samples, and generated,
//! realistic files with a few records that must be refused.

use std::path::{Path, PathBuf};

use super::{CHAOYANG, LINGYUAN};
use crate::cli::CliError;
use crate::cli::records::draft_json;
use crate::devnet::DevProvider;
use crate::policy::Catalog;
use crate::policy::sample::generate_drafts_in;

pub(super) const AMR_SAMPLE: &str = include_str!("../../../samples/lingyuan-amr.jsonl");
const POWER_SAMPLE: &str = include_str!("../../../samples/lingyuan-power.csv");

/// One file pushed by one provider at one node.
pub(super) struct Push {
    pub region: &'static str,
    pub provider: DevProvider,
    pub file: PathBuf,
}

/// The record files each provider pushes: the two shipped samples at Lingyuan, plus
/// generated, realistic files (market regulator at Lingyuan, tax bureau and housing fund
/// at Chaoyang) with a few records that must be refused.
pub(super) fn record_files(
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

    // Who pushes which file where, in the order the demo pushes them.
    let pushes = [
        (LINGYUAN, &lingyuan[0], amr_sample),
        (LINGYUAN, &lingyuan[1], power_sample),
        (LINGYUAN, &lingyuan[0], amr_more),
        (CHAOYANG, &chaoyang[0], tax),
        (CHAOYANG, &chaoyang[1], hpf),
    ];
    Ok(pushes
        .into_iter()
        .map(|(region, provider, file)| Push {
            region,
            provider: provider.clone(),
            file,
        })
        .collect())
}

/// The subject of the first record in a JSON-lines file.
pub(super) fn first_subject(jsonl: &str) -> Option<String> {
    let line = jsonl.lines().next()?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("subject_id")?.as_str().map(str::to_string)
}

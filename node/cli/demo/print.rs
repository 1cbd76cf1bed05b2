//! What the demo prints between its scenes: where the nodes run, each push's report,
//! the upward sync, and the commands to try by hand.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::federation::{Federation, Operators};
use super::records::Push;
use super::{CHAOYANG, LIAONING, LINGYUAN};
use crate::cli::CliError;
use crate::cli::client::PushReport;
use crate::devnet::DevNet;
use crate::domain::caller::Role;

/// Where each node runs, and where the demo keeps its files.
pub(super) fn nodes(fed: &Federation, dir: &Path) {
    let (province, city, county) = (&fed.province, &fed.city, &fed.county);
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
}

/// What one push was: accepted, and each line refused with its rule.
pub(super) fn report(p: &Push, period: &str, r: &PushReport) {
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

/// What each node holds after the upward sync, and whether the province holds all
/// `accepted` records (`arrived`), timed from `started`.
pub(super) fn upward_sync(
    fed: &Federation,
    accepted: u64,
    arrived: bool,
    started: Instant,
) -> Result<(), CliError> {
    let (province, city, county) = (&fed.province, &fed.city, &fed.county);
    println!("Upward sync:");
    for (label, node) in [
        ("Lingyuan", county),
        ("Chaoyang", city),
        ("Liaoning", province),
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
    Ok(())
}

/// Paste-ready commands against the running federation.
pub(super) fn try_it(
    net: &DevNet,
    fed: &Federation,
    ops: &Operators,
    pushes: &[Push],
    period: &str,
    example: &str,
    consent: Option<&(String, String, PathBuf)>,
) -> Result<(), CliError> {
    let (province, city, county) = (&fed.province, &fed.city, &fed.county);
    let (ops_province, ops_city, ops_county) = (&ops.province, &ops.city, &ops.county);
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
    if let Some((subject, id, agency)) = consent {
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
    Ok(())
}

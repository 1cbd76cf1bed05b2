//! `credit-node demo`: the federation of the source documents on one machine. Lingyuan
//! (211382) -> Chaoyang (211300) -> Liaoning (210000), a generated development PKI,
//! realistic providers at Lingyuan and Chaoyang pushing record files through the real
//! client path (some records refused, and why), then an account of what arrived where.

mod consent;
mod federation;
mod objection;
mod print;
mod records;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::client::{Target, open_records, push_lines};
use super::{CliError, Exit};
use crate::devnet::DevNet;
use crate::domain::caller::Role;
use federation::{Federation, Operators};
use records::{AMR_SAMPLE, first_subject, record_files};

const LIAONING: &str = "210000";
const CHAOYANG: &str = "211300";
const LINGYUAN: &str = "211382";

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

    let fed = Federation::start(&net).await?;
    let (province, city, county) = (&fed.province, &fed.city, &fed.county);
    print::nodes(&fed, &dir);

    let files = dir.join("records");
    std::fs::create_dir_all(&files)?;
    let pushes = record_files(
        &files,
        &fed.lingyuan_providers,
        &fed.chaoyang_providers,
        &period,
    )?;

    let mut accepted = 0u64;
    for p in &pushes {
        let node = if p.region == LINGYUAN { county } else { city };
        let identity = net.identity(Role::Provider, p.region, &p.provider.id)?;
        let target = Target {
            endpoint: node.endpoint(),
            identity,
        };
        let (lines, _) = open_records(&p.file, &period)?;
        let report = push_lines(target.connect().await?, lines, 500, |_| {}).await?;
        accepted += report.created;
        print::report(p, &period, &report);
    }

    // Everything accepted below must arrive at the province (R-FED-1).
    let started = Instant::now();
    let arrived = fed.wait_for(accepted, Duration::from_secs(60)).await?;
    print::upward_sync(&fed, accepted, arrived, started)?;

    let ops = Operators::of(&net)?;
    let example = first_subject(AMR_SAMPLE).unwrap_or_default();
    let at_province = super::client::pull(
        Target {
            endpoint: province.endpoint(),
            identity: ops.province.clone(),
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

    let consent = consent::consent_walkthrough(&net, county, province).await?;
    objection::objection_walkthrough(&net, county, province).await?;

    // The census table from the top (R-FED-2..4), and Lingyuan's monthly duty (R-DATA-5).
    println!("Census at Liaoning (the NDRC table, with each level's collection ratio):");
    super::census::census(super::census::CensusArgs {
        json: false,
        csv: false,
        tree: true,
        as_of: None,
        target: super::TargetArgs {
            endpoint: province.endpoint(),
            identity: ops.province.clone(),
        },
    })
    .await?;
    println!();
    super::census::report(super::census::ReportCommand::Monthly {
        period: period.clone(),
        csv: false,
        target: super::TargetArgs {
            endpoint: county.endpoint(),
            identity: ops.county.clone(),
        },
    })
    .await?;
    println!();

    print::try_it(
        &net,
        &fed,
        &ops,
        &pushes,
        &period,
        &example,
        consent.as_ref(),
    )?;
    std::io::stdout().flush()?;

    if !exit {
        println!();
        println!("Serving until Ctrl-C.");
        super::shutdown_signal().await;
    }
    fed.shutdown().await?;
    drop(tmp);
    Ok(Exit::Ok)
}

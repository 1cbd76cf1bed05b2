//! `store check`: the store's integrity check, offline (R-SEC-1).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{CliError, Exit};
use crate::store::{Store, StoreError, StoreOptions};

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Check a stopped node's store: every record, changelog chunk, usage entry, consent,
    /// checkpoint, objection case and notice decodes, content hashes match, the usage
    /// log's chain links, and the counts agree (records against the changelog, census
    /// figures against a recount, indexes against what they index), and nothing the store
    /// held when it was last closed is missing (DIR/store-mark: sled silently drops the
    /// rest of its log at a damaged page). The node runs the same check at every start and refuses to start on damage. Prints what it checked
    /// and each damaged place (tree, key, sequence). Exits 0 clean, 4 damaged (the file
    /// named), 1 any other failure (no store there, or the node still running).
    Check {
        /// The stopped node's data folder.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

pub fn store(command: StoreCommand) -> Result<Exit, CliError> {
    match command {
        StoreCommand::Check { data_dir } => check(&data_dir),
    }
}

/// Prints a damaged store as `DAMAGED: FILE: what` on stderr and returns exit 4; any other
/// store error is returned as an error (exit 1).
pub(crate) fn damaged(dir: &Path, e: StoreError) -> Result<Exit, CliError> {
    if e.is_damage() {
        let file = match &e {
            StoreError::Damaged { .. } => String::new(),
            _ => format!("{}: ", dir.join("db").display()),
        };
        eprintln!("DAMAGED: {file}{e}");
        Ok(Exit::Damaged)
    } else {
        Err(format!("{}: {e}", dir.display()).into())
    }
}

fn check(dir: &Path) -> Result<Exit, CliError> {
    let started = std::time::Instant::now();
    let report = match Store::check_dir(dir, &StoreOptions::default()) {
        Ok(r) => r,
        Err(e) => return damaged(dir, e),
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "checked {}: {}",
        dir.join("db").display(),
        report.summary()
    )?;
    writeln!(
        out,
        "in {} ms (opening {} ms, checking {} ms)",
        started.elapsed().as_millis(),
        report.open_ms,
        report.check_ms
    )?;
    if report.ok() {
        writeln!(out, "OK: every value decodes and every count agrees")?;
        return Ok(Exit::Ok);
    }
    writeln!(
        out,
        "DAMAGED: {}: {} damaged place(s)",
        dir.join("db").display(),
        report.damage.len() as u64 + report.more
    )?;
    for d in &report.damage {
        writeln!(out, "  {d}")?;
    }
    if report.more > 0 {
        writeln!(out, "  ... and {} more", report.more)?;
    }
    Ok(Exit::Damaged)
}

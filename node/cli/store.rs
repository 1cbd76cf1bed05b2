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
    ///
    /// It checks a copy of the folder: sled's recovery, at the open of a damaged store,
    /// overwrites what follows the damage. The copy goes beside the folder (or under
    /// --scratch) and is removed after; the original is never opened.
    Check {
        /// The stopped node's data folder.
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        copy: CopyArgs,
    },
}

/// Where an offline command opens a stopped node's store (R-SEC-1): a copy by default.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CopyArgs {
    /// Open the folder itself rather than a copy. sled's recovery may then rewrite a
    /// damaged store past the damage: only for a folder already copied elsewhere.
    #[arg(long)]
    pub in_place: bool,
    /// Where to put the copy (a folder on a filesystem with room for the store); by
    /// default beside the data folder.
    #[arg(long, conflicts_with = "in_place")]
    pub scratch: Option<PathBuf>,
}

/// The folder an offline command opens: `dir` itself with `--in-place`, else a fresh copy
/// of it (removed when the returned guard drops). A folder whose `db` another process
/// holds (a running node) is refused before anything is copied: a copy of a live store
/// is not a consistent one.
pub(crate) fn working_copy(
    dir: &Path,
    copy: &CopyArgs,
) -> Result<(PathBuf, Option<tempfile::TempDir>), CliError> {
    let db = dir.join("db");
    if !db.is_file() {
        return Err(format!("{} holds no node store (no db file)", dir.display()).into());
    }
    if copy.in_place {
        return Ok((dir.to_path_buf(), None));
    }
    // sled holds an exclusive lock on `db` while open (fs2, as sled itself takes it).
    let file = std::fs::File::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    if let Err(e) = fs2::FileExt::try_lock_exclusive(&file) {
        if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() {
            return Err(format!(
                "{} is in use by another process (sled holds a lock on its db file); stop the \
                 node first",
                dir.display()
            )
            .into());
        }
        return Err(format!("{}: cannot lock it: {e}", db.display()).into());
    }
    let base = match &copy.scratch {
        Some(s) => s.clone(),
        None => dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".credit-node-check-")
        .tempdir_in(&base)
        .map_err(|e| {
            format!(
                "cannot make a folder for the copy in {}: {e}",
                base.display()
            )
        })?;
    let to = tmp.path().join("data");
    copy_tree(dir, &to).map_err(|e| {
        format!(
            "cannot copy {} to {} (use --scratch DIR with room for it): {e}",
            dir.display(),
            to.display()
        )
    })?;
    drop(file);
    Ok((to, Some(tmp)))
}

/// Copies the folder `from` to `to`, files and subfolders (`blobs/`).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

pub fn store(command: StoreCommand) -> Result<Exit, CliError> {
    match command {
        StoreCommand::Check { data_dir, copy } => check(&data_dir, &copy),
    }
}

/// Prints a damaged store as `DAMAGED: FILE: what` on stderr and returns exit 4; any other
/// store error is returned as an error (exit 1). `opened` is the folder the store was
/// opened in (a copy of `dir`, see `working_copy`); the message names `dir`.
pub(crate) fn damaged(dir: &Path, opened: &Path, e: StoreError) -> Result<Exit, CliError> {
    let named = |m: String| {
        if opened == dir {
            m
        } else {
            m.replace(&opened.display().to_string(), &dir.display().to_string())
        }
    };
    if e.is_damage() {
        let file = match &e {
            StoreError::Damaged { .. } => String::new(),
            _ => format!("{}: ", dir.join("db").display()),
        };
        eprintln!("DAMAGED: {file}{}", named(e.to_string()));
        Ok(Exit::Damaged)
    } else {
        Err(named(format!("{}: {e}", dir.display())).into())
    }
}

fn check(dir: &Path, copy: &CopyArgs) -> Result<Exit, CliError> {
    let started = std::time::Instant::now();
    let (opened, _copy) = working_copy(dir, copy)?;
    if opened != dir {
        eprintln!(
            "checking a copy of {} (the original is not opened; --in-place to skip the copy)",
            dir.display()
        );
    }
    let report = match Store::check_dir(&opened, &StoreOptions::default()) {
        Ok(r) => r,
        Err(e) => return damaged(dir, &opened, e),
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

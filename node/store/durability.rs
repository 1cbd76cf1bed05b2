//! Making "durable" true on sled 0.34.7.
//!
//! sled's `flush` writes its log buffers with `pwrite` and then, on Linux,
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` (pagecache/iobuf.rs; sled issue
//! #1452). That pushes the written pages to the device but does not persist the file's
//! metadata (its size grows as the log grows) and does not flush the device's volatile
//! write cache, so a power cut can lose writes that `flush` reported done. Only sled's
//! background flusher and snapshots call `sync_all`. Values that exceed the blob
//! threshold (segment size / 4, so 128 KiB by default: a leaf page of large records can
//! reach it) go to files under `blobs/` that sled never syncs at all, nor their directory.
//!
//! After `flush`, `sync` therefore calls `fdatasync` on sled's `db` file (through its own
//! descriptor: fsync acts on the inode, whatever descriptor asks), fsyncs every blob file
//! it has not synced before and the `blobs/` directory, and, once at start, the data
//! directory itself, so the file entries exist after a power cut.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

pub(super) struct Durability {
    db_file: File,
    blobs: PathBuf,
    /// Blob files synced so far, with the length they had. A blob is keyed by name and
    /// length because `sync` runs outside the writer lock: another thread may list the
    /// folder while sled is still writing a blob, and its length tells the two apart.
    synced_blobs: Mutex<HashMap<OsString, Seen>>,
    /// How many times `sync` reached the disk; tests check the write paths call it.
    syncs: AtomicU64,
}

impl Durability {
    /// The handles of the store in `dir`. With `settle`, first makes durable whatever a
    /// previous process left written but unsynced (before anything is served from it);
    /// the offline check, which reads a copy, skips that.
    pub(super) fn new(dir: &Path, settle: bool) -> Result<Durability, StoreError> {
        let db_file = File::open(dir.join("db"))?;
        if settle {
            db_file.sync_all()?;
            sync_dir(dir)?;
        }
        Ok(Durability {
            db_file,
            blobs: dir.join("blobs"),
            synced_blobs: Mutex::new(HashMap::new()),
            syncs: AtomicU64::new(0),
        })
    }

    pub(super) fn sync(&self) -> Result<(), StoreError> {
        self.db_file.sync_data()?;
        self.sync_blobs()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Lists `blobs/` and fsyncs every file not synced at its current length. sled writes a
    /// blob once and never changes it, so a file whose last change is `SETTLED` old and
    /// that was synced at that length is not looked at again: a sync then costs a
    /// directory listing, not a `statx` per blob (which grew with the store and cost three
    /// times the fdatasync itself in `bench query`).
    fn sync_blobs(&self) -> Result<(), StoreError> {
        let now = std::time::SystemTime::now();
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut synced = self.synced_blobs.lock().map_err(|_| StoreError::Lock)?;
        let mut any_new = false;
        let mut present = HashMap::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(seen) = synced.get(&name)
                && seen.settled
            {
                present.insert(name, *seen);
                continue;
            }
            let (len, settled) = match entry.metadata() {
                Ok(m) => (
                    m.len(),
                    m.modified()
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age > SETTLED),
                ),
                // sled removes blobs it has rewritten; a vanished file needs no sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if synced.get(&name).map(|s| s.len) != Some(len) {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_all()?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                any_new = true;
            }
            present.insert(name, Seen { len, settled });
        }
        if any_new {
            sync_dir(&self.blobs)?;
        }
        *synced = present;
        Ok(())
    }
}

/// A blob file as last synced: its length, and whether it was past `SETTLED` then.
#[derive(Clone, Copy, Debug)]
struct Seen {
    len: u64,
    settled: bool,
}

/// How long after its last change a blob is taken as complete. sled writes a blob in
/// one go, within milliseconds; this leaves a wide margin, and coarse file times too.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(5);

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

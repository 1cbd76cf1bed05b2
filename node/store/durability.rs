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
    synced_blobs: Mutex<HashMap<OsString, u64>>,
    /// How many times `sync` reached the disk; tests check the write paths call it.
    syncs: AtomicU64,
}

impl Durability {
    pub(super) fn new(dir: &Path) -> Result<Durability, StoreError> {
        let db_file = File::open(dir.join("db"))?;
        db_file.sync_all()?;
        sync_dir(dir)?;
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

    fn sync_blobs(&self) -> Result<(), StoreError> {
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
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                // sled removes blobs it has rewritten; a vanished file needs no sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if synced.get(&name) != Some(&len) {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_all()?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                any_new = true;
            }
            present.insert(name, len);
        }
        if any_new {
            sync_dir(&self.blobs)?;
        }
        *synced = present;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

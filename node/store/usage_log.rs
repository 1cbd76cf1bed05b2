//! Group commit for usage entries written by many concurrent readers (R-SEC-3).
//!
//! Every query and pull must have its usage entry on disk before it answers. Written one
//! by one, each would take the writer lock, a sled flush and an fdatasync of its own, on
//! a blocking thread that then sits waiting for the disk. Instead one thread takes every
//! entry waiting at that moment, writes them as one batch with one sync, and wakes their
//! callers; a caller waits on a channel, holding no thread.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};
use crate::domain::usage::UsageEntry;

/// Entries one batch takes at most.
const MAX_BATCH: usize = 4096;
/// Writer threads. Two (one gathering and writing while the other waits for its
/// fdatasync) measured no better than one on this machine (`bench query`): each sync
/// then covers fewer entries. One keeps the fewest syncs.
const WRITERS: usize = 1;

type Done = oneshot::Sender<Result<(), Arc<StoreError>>>;

/// A handle to the node's usage-log writer thread; clone it freely. The thread ends when
/// the last handle is dropped.
#[derive(Clone)]
pub struct UsageLog {
    tx: mpsc::Sender<(Vec<UsageEntry>, Done)>,
    /// `[store] call_timeout_secs`: a caller waits no longer for its entry.
    bound: std::time::Duration,
    /// To fail at once, as `Store::call` does, while a store call is stuck.
    store: Store,
}

impl UsageLog {
    pub fn spawn(store: Store) -> UsageLog {
        let (tx, rx) = mpsc::channel::<(Vec<UsageEntry>, Done)>(MAX_BATCH);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..WRITERS {
            let store = store.clone();
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("usage-log-{i}"))
                .spawn(move || writer(&store, &rx));
            if let Err(e) = spawned {
                // Without any thread every append fails loudly (the receiver is gone).
                tracing::error!(error = %e, "cannot start a usage-log writer");
            }
        }
        UsageLog {
            tx,
            bound: store.call_timeout(),
            store,
        }
    }

    /// Appends `entries` and returns once they are durable.
    pub async fn append(&self, entries: Vec<UsageEntry>) -> Result<(), Arc<StoreError>> {
        if entries.is_empty() {
            return Ok(());
        }
        // While a store call is stuck (sled looping), the writer would likely block too:
        // fail at once, as `Store::call` does, rather than queue for the bound.
        if self.store.stalled() {
            return Err(Arc::new(StoreError::Stalled));
        }
        let (done, wait) = oneshot::channel();
        let gone = || {
            Arc::new(StoreError::Engine(
                "the usage-log writer has stopped".into(),
            ))
        };
        // Bounded like every store call a request makes (`Store::call`): a writer stuck
        // in sled must not hang the request.
        let timed_out = || {
            Arc::new(StoreError::TimedOut {
                secs: self.bound.as_secs(),
            })
        };
        match tokio::time::timeout(self.bound, async {
            self.tx.send((entries, done)).await.map_err(|_| gone())?;
            wait.await.map_err(|_| gone())?
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        }
    }
}

type Queue = std::sync::Mutex<mpsc::Receiver<(Vec<UsageEntry>, Done)>>;

/// Takes everything waiting (holding the queue only while taking), writes it as one
/// batch with one sync, and answers each caller; until every handle is dropped.
fn writer(store: &Store, queue: &Queue) {
    loop {
        let waiting = {
            let Ok(mut rx) = queue.lock() else {
                return;
            };
            let Some(first) = rx.blocking_recv() else {
                return;
            };
            let mut waiting = vec![first];
            while waiting.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(more) => waiting.push(more),
                    Err(_) => break,
                }
            }
            waiting
        };
        let mut entries = Vec::with_capacity(waiting.len());
        let mut done = Vec::with_capacity(waiting.len());
        for (e, d) in waiting {
            entries.extend(e);
            done.push(d);
        }
        let result = store.append_usage(entries).map_err(Arc::new);
        for d in done {
            let _ = d.send(result.clone());
        }
    }
}

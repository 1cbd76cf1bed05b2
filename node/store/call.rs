//! Bounded store calls: a request never waits on a store call past its bound.

use std::sync::atomic::Ordering;

use super::{Store, StoreError};

/// A bounded call's state, so that exactly one side counts it as stuck and uncounts it.
const CALL_RUNNING: u8 = 0;
const CALL_DONE: u8 = 1;
const CALL_ABANDONED: u8 = 2;

/// Marks a bounded call done on drop (see `Store::call_within`).
struct CallDone {
    store: Store,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl Drop for CallDone {
    fn drop(&mut self) {
        if self.state.swap(CALL_DONE, Ordering::SeqCst) == CALL_ABANDONED {
            self.store.inner.stuck.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("a store call that had passed its bound returned");
        }
    }
}

impl Store {
    /// Runs `f` on a blocking thread within `[store] call_timeout_secs`: the one way a
    /// request handler calls the store. sled can spin for ever on a damaged page; then the
    /// handler gets `TimedOut` (`Unavailable`) at the bound instead of hanging a runtime
    /// thread, and until that call returns every further call fails at once (`Stalled`)
    /// rather than queueing behind it.
    pub async fn call<T, E>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.call_within(self.inner.call_timeout, f).await
    }

    /// `call` with a bound of its own (a whole-log verification takes longer).
    pub async fn call_within<T, E>(
        &self,
        bound: std::time::Duration,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if self.inner.stuck.load(Ordering::SeqCst) > 0 {
            return Err(StoreError::Stalled.into());
        }
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(CALL_RUNNING));
        let (store, mine) = (self.clone(), state.clone());
        let task = tokio::task::spawn_blocking(move || {
            // Marks the call done when it returns or panics: a call abandoned at its bound
            // that then panics must uncount itself too, or every call after it is
            // `Stalled` until a restart.
            let _done = CallDone {
                store: store.clone(),
                state: mine,
            };
            f(&store)
        });
        match tokio::time::timeout(bound, task).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => Err(StoreError::Engine(format!("a store call failed: {e}")).into()),
            Err(_) => {
                self.inner.stuck.fetch_add(1, Ordering::SeqCst);
                if state
                    .compare_exchange(
                        CALL_RUNNING,
                        CALL_ABANDONED,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_err()
                {
                    // It returned just now: not stuck.
                    self.inner.stuck.fetch_sub(1, Ordering::SeqCst);
                }
                tracing::error!(bound_ms = bound.as_millis() as u64, dir = %self.inner.dir.display(),
                    "a store call did not return within its bound");
                Err(StoreError::TimedOut {
                    secs: bound.as_secs(),
                }
                .into())
            }
        }
    }

    /// Whether the store answers: no call stuck past its bound (`call`) and no failed
    /// write or sync (poisoned). Health reports NOT_SERVING while it does not.
    pub fn answering(&self) -> bool {
        self.inner.stuck.load(Ordering::SeqCst) == 0 && !self.inner.poisoned.load(Ordering::SeqCst)
    }

    /// Whether a call is stuck past its bound: calls fail at once (`Stalled`).
    pub fn stalled(&self) -> bool {
        self.inner.stuck.load(Ordering::SeqCst) > 0
    }

    /// Holds the writer lock until `release` says (or is dropped), as a push stuck in
    /// sled would: for tests of what must not wait on it.
    #[cfg(test)]
    pub(crate) fn hold_writer_until(
        &self,
        release: std::sync::mpsc::Receiver<()>,
    ) -> Result<(), StoreError> {
        let _w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        let _ = release.recv();
        Ok(())
    }

    /// The bound on one request's store call.
    pub fn call_timeout(&self) -> std::time::Duration {
        self.inner.call_timeout
    }
}

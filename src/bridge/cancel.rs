//! The registry of live runs' cancellation tokens, keyed by run id, so JS can cancel a run it
//! only knows by id. Entries leave when their run settles; nothing else is kept here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio_util::sync::CancellationToken;

/// One live run: a serial (two runs may share an id by mistake), its run id and its token.
type Entry = (u64, String, CancellationToken);

static LIVE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// Holds a run's place in the registry; dropping it removes the run.
pub(super) struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        live().retain(|(serial, _, _)| *serial != self.0);
    }
}

/// The registry, even if a thread panicked while holding it: a `Vec` push or retain cannot leave
/// it half-changed.
fn live() -> MutexGuard<'static, Vec<Entry>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `token` cancellable by [`cancel`] under `run_id` until the registration is dropped.
pub(super) fn register(run_id: &str, token: CancellationToken) -> Registration {
    let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    live().push((serial, run_id.to_owned(), token));
    Registration(serial)
}

/// Cancels every live run registered under `run_id`; returns whether there was one.
pub(super) fn cancel(run_id: &str) -> bool {
    let live = live();
    let mut found = false;
    for (_, id, token) in live.iter().filter(|(_, id, _)| id == run_id) {
        tracing::info!(run_id = %id, "cancel requested");
        token.cancel();
        found = true;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reaches_every_live_run_with_the_id_and_no_other() {
        let (a, b, other) = (
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let _ra = register("run-cancel-1", a.clone());
        let _rb = register("run-cancel-1", b.clone());
        let _ro = register("run-cancel-2", other.clone());
        assert!(cancel("run-cancel-1"));
        assert!(a.is_cancelled() && b.is_cancelled());
        assert!(!other.is_cancelled());
    }

    #[test]
    fn a_settled_run_leaves_the_registry() {
        let token = CancellationToken::new();
        drop(register("run-cancel-3", token.clone()));
        assert!(!cancel("run-cancel-3"));
        assert!(!token.is_cancelled());
    }
}

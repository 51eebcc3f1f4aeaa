//! The hub's vital tasks are watched, and every wait after a stop is
//! bounded.
//!
//! Why: a hub whose pipeline died would answer `/readyz` with 200 while
//! nothing consumes — the worst kind of outage, one nobody is told about.
//! When a vital task (the pipeline, the dead-letter consumer, the outbox
//! relay, the HTTP server) ends before the hub was asked to stop, the hub
//! turns unready at once, shuts down and exits non-zero, so that its
//! supervisor (systemd, Kubernetes) starts a fresh one; what it had taken
//! but not acked is redelivered to it or another instance.
//!
//! And a stop must end: with the broker unreachable a publish may wait for
//! a confirm that never comes, so every task gets a bounded time to finish
//! and is aborted after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tracing::{error, warn};

/// Whether every vital task still runs; `/readyz` reads it.
#[derive(Clone, Debug)]
pub(crate) struct Liveness(Arc<AtomicBool>);

impl Default for Liveness {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl Liveness {
    pub(crate) fn is_alive(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn lost(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// A task the hub cannot run without.
pub(crate) struct Vital<T> {
    pub(crate) name: &'static str,
    handle: JoinHandle<T>,
    done: bool,
}

/// How a wait for a task ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    Finished,
    /// It did not finish in time and was aborted.
    Aborted,
}

impl<T> Vital<T> {
    pub(crate) fn new(name: &'static str, handle: JoinHandle<T>) -> Self {
        Self {
            name,
            handle,
            done: false,
        }
    }

    /// Resolves when the task ends (for `select!`); once only.
    pub(crate) async fn ended(&mut self) -> Result<T, JoinError> {
        if self.done {
            return std::future::pending().await;
        }
        let result = (&mut self.handle).await;
        self.done = true;
        result
    }

    /// Waits at most `limit` for the task to end, then aborts it.
    pub(crate) async fn join_within(&mut self, limit: Duration) -> Joined {
        if self.done {
            return Joined::Finished;
        }
        match tokio::time::timeout(limit, &mut self.handle).await {
            Ok(_) => {
                self.done = true;
                Joined::Finished
            }
            Err(_) => {
                warn!(
                    task = self.name,
                    ?limit,
                    "Task did not stop in time; aborted."
                );
                self.handle.abort();
                self.done = true;
                Joined::Aborted
            }
        }
    }
}

/// Records that `name` ended before the hub was asked to stop: the hub is
/// unready from now on.
pub(crate) fn lost<T>(liveness: &Liveness, name: &'static str, how: &Result<T, JoinError>) {
    liveness.lost();
    match how {
        Err(e) if e.is_panic() => error!(task = name, "Vital task panicked; the hub stops."),
        _ => error!(task = name, "Vital task ended on its own; the hub stops."),
    }
}

/// Runs `fut` for at most `limit`; says so when it did not finish.
pub(crate) async fn within<F: std::future::Future>(what: &str, limit: Duration, fut: F) {
    if tokio::time::timeout(limit, fut).await.is_err() {
        warn!(what, ?limit, "Did not finish in time; going on without it.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_dies_is_seen_and_the_hub_turns_unready() {
        let liveness = Liveness::default();
        let mut steady = Vital::new("steady", tokio::spawn(std::future::pending::<()>()));
        let mut dying = Vital::new(
            "dying",
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                panic!("a bug");
            }),
        );
        let name = tokio::select! {
            r = steady.ended() => { lost(&liveness, steady.name, &r); steady.name }
            r = dying.ended() => {
                assert!(r.as_ref().is_err_and(|e| e.is_panic()));
                lost(&liveness, dying.name, &r);
                dying.name
            }
        };
        assert_eq!(name, "dying");
        assert!(!liveness.is_alive());
        // Joining what already ended returns at once; a task that will not
        // end is aborted after the limit.
        assert_eq!(
            dying.join_within(Duration::from_secs(60)).await,
            Joined::Finished
        );
        assert_eq!(
            steady.join_within(Duration::from_millis(20)).await,
            Joined::Aborted
        );
    }

    #[tokio::test]
    async fn a_wait_is_bounded() {
        let started = std::time::Instant::now();
        within(
            "forever",
            Duration::from_millis(20),
            std::future::pending::<()>(),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

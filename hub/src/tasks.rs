//! The hub's periodic background work (outbox relay, deadline checks,
//! reminders, retention, registry refresh) runs through one helper: a pass
//! now, then one every interval until shutdown. A failed pass is logged and
//! retried at the next tick; it never stops the task.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Runs `pass` at once and then every `interval` until `stop` is cancelled.
/// A pass in progress when `stop` fires is finished, not abandoned.
pub(crate) async fn every<F, Fut, T, E>(
    task: &'static str,
    interval: Duration,
    stop: CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    loop {
        if let Err(error) = pass().await {
            warn!(task, %error, "Background pass failed; retrying at the next tick.");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn passes_repeat_through_failures_until_stopped() {
        let passes = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let counted = passes.clone();
        let task = tokio::spawn(every(
            "test",
            Duration::from_secs(10),
            stop.clone(),
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n.is_multiple_of(2) {
                        Err("odd failure")
                    } else {
                        Ok(())
                    }
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(35)).await;
        stop.cancel();
        task.await.unwrap();
        // At 0, 10, 20 and 30 s, failures included.
        assert_eq!(passes.load(Ordering::SeqCst), 4);
    }
}

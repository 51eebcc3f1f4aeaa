//! The outbox relay: publishes rows that were committed but never confirmed
//! (the hub crashed, or the broker was down), so that nothing committed is
//! ever lost. Receivers de-duplicate by `message_id`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use imi_broker::PublishOutcome;

use super::PipelineContext;
use crate::error::HubError;
use crate::outgoing::OutboxRow;
use crate::store;
use crate::tasks;

/// Rows younger than this belong to the live pipeline.
const GRACE_SECONDS: f64 = 5.0;
/// Batches per pass (each whole, however many rows it has).
const PAGE: i64 = 50;

/// Relays until `stop`. The first pass takes every unpublished batch at
/// once (a previous hub's leftovers); later passes leave the live pipeline
/// its grace.
pub(crate) async fn run_relay(ctx: PipelineContext, stop: CancellationToken) {
    let interval = Duration::from_secs(ctx.settings.relay_interval_secs.max(1));
    let mut grace = 0.0;
    tasks::every("outbox relay", interval, stop, move || {
        let (ctx, this_grace) = (ctx.clone(), grace);
        grace = GRACE_SECONDS;
        async move {
            let n = relay_once(&ctx, this_grace).await?;
            if n > 0 {
                info!(rows = n, "Outbox relay re-published unconfirmed messages.");
            }
            Ok::<_, HubError>(())
        }
    })
    .await;
}

/// One pass; returns how many rows were published.
pub(crate) async fn relay_once(ctx: &PipelineContext, grace: f64) -> Result<usize, HubError> {
    store::close_empty_batches(&ctx.pool, grace).await?;
    let mut total = 0;
    loop {
        let rows = store::unpublished(&ctx.pool, grace, PAGE).await?;
        if rows.is_empty() {
            return Ok(total);
        }
        let mut batches: Vec<_> = rows.iter().map(|(b, _)| *b).collect();
        batches.dedup();
        let now = chrono::Utc::now();
        let whole_batches = batches.len() as i64;
        let ids: Vec<_> = rows.iter().map(|(_, r)| r.id).collect();
        let outgoing: Vec<_> = rows
            .into_iter()
            .map(|(_, r)| OutboxRow::into_amqp(r))
            .collect();
        let outcomes = ctx.publishers[0].publish_all(&outgoing).await?;
        let (mut routed, mut unroutable) = (Vec::new(), Vec::new());
        for (id, outcome) in ids.into_iter().zip(outcomes) {
            match outcome {
                PublishOutcome::Confirmed => routed.push(id),
                PublishOutcome::Unroutable => unroutable.push(id),
            }
        }
        store::mark_unroutable(&ctx.pool, &unroutable, &routed).await?;
        let published: Vec<_> = batches.iter().map(|b| (*b, now)).collect();
        store::mark_published(&ctx.pool, &published).await?;
        ctx.metrics.relayed.inc_by(routed.len() as u64);
        total += routed.len();
        // Pages hold whole batches; stop when this one was the last (or the
        // broker still has no queue for some rows: the next pass retries).
        if !unroutable.is_empty() || whole_batches < PAGE {
            return Ok(total);
        }
    }
}

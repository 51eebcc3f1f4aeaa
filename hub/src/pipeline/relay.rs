//! The outbox relay: publishes rows that were committed but never confirmed
//! (the hub crashed, or the broker was down), so that nothing committed is
//! ever lost. Receivers de-duplicate by `message_id`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use imi_broker::PublishOutcome;

use super::{to_outgoing, PipelineContext};
use crate::store;

/// Rows younger than this belong to the live pipeline.
const GRACE_SECONDS: f64 = 5.0;
/// Batches per pass (each whole, however many rows it has).
const PAGE: i64 = 50;

pub async fn run_relay(
    ctx: PipelineContext,
    stop: CancellationToken,
    first_pass_immediately: bool,
) {
    let interval = Duration::from_secs(ctx.settings.relay_interval_secs.max(1));
    let mut grace = if first_pass_immediately {
        0.0
    } else {
        GRACE_SECONDS
    };
    loop {
        match relay_once(&ctx, grace).await {
            Ok(0) => {}
            Ok(n) => info!(rows = n, "Outbox relay re-published unconfirmed messages."),
            Err(error) => warn!(%error, "Outbox relay pass failed."),
        }
        grace = GRACE_SECONDS;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One pass; returns how many rows were published.
pub async fn relay_once(
    ctx: &PipelineContext,
    grace: f64,
) -> Result<usize, crate::error::HubError> {
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
        let outgoing: Vec<_> = rows.into_iter().map(|(_, r)| to_outgoing(r)).collect();
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

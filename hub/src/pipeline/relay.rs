//! The outbox relay: publishes rows that were committed but never confirmed
//! (the hub crashed, or the broker was down), so that nothing committed is
//! ever lost. Receivers de-duplicate by `message_id`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{to_outgoing, PipelineContext};
use crate::store;

/// Rows younger than this belong to the live pipeline.
const GRACE_SECONDS: f64 = 5.0;
const PAGE: i64 = 500;

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
        let rows = store::unconfirmed_older_than(&ctx.pool, grace, PAGE).await?;
        if rows.is_empty() {
            return Ok(total);
        }
        let n = rows.len();
        let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
        let outgoing: Vec<_> = rows.into_iter().map(to_outgoing).collect();
        let outcomes = ctx.publisher.publish_all(&outgoing).await?;
        let confirmed: Vec<_> = ids
            .into_iter()
            .zip(outcomes)
            .filter(|(_, o)| *o == imi_broker::PublishOutcome::Confirmed)
            .map(|(id, _)| id)
            .collect();
        let stuck = confirmed.len() < n;
        store::mark_confirmed(&ctx.pool, &confirmed).await?;
        ctx.metrics.relayed.inc_by(confirmed.len() as u64);
        total += confirmed.len();
        if stuck || (n as i64) < PAGE {
            return Ok(total);
        }
    }
}

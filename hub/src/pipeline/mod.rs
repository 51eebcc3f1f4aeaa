//! The routing pipeline: consume in micro-batches → decode and
//! validate → one transaction per batch → publish with confirms → ack.
//!
//! Three stages run concurrently, joined by bounded channels, so batch N+1 is
//! being committed while batch N waits for its confirms:
//!
//! ```text
//! collect+decode ──► commit (≤ C at once, handed on in order) ──► publish (≤ K batches in flight, in order) ──► ack
//!                                                                   ├──► receipts held ≤ R ms, one message per sender
//!                                                                   └──► mark batches published
//! ```
//!
//! Invariants: an ingress delivery is acked only after its batch committed and
//! every message it routes was confirmed; a batch is marked published only
//! once its receipts were confirmed too (`receipts.rs`); a transient failure is
//! retried, never dropped; an unacked delivery comes back and is absorbed as a
//! duplicate.

mod dead_letters;
pub(crate) mod decode;
mod receipts;
mod relay;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::{self, BoxFuture, FutureExt, Shared};
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use futures_util::StreamExt;
use imi_broker::{
    Acker, Backoff, BrokerError, Deliveries, Delivery, Outgoing, PublishOutcome, Publisher,
};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};
use uuid::Uuid;

pub(crate) use dead_letters::{redrive_pass as redrive_dead_letters, run as run_dead_letters};
pub(crate) use relay::run_relay;

use crate::activity::Activity;
use crate::catalogue::SharedCatalogue;
use crate::config::PipelineSettings;
use crate::inbound::Decoded;
use crate::metrics::{CodeLabel, Metrics, OutcomeLabel};
use crate::outgoing::{OutboxKind, OutboxRow, ReceiptsFor};
use crate::registry::SharedRegistry;
use crate::store::{self, BatchInput, CommitError};
use decode::{decode, DecodeContext};
use imi_schemas::protocol::RejectionCode;
use receipts::{Flush, Parts, ReceiptHold};

/// What the pipeline needs; cheap to clone.
#[derive(Clone)]
pub(crate) struct PipelineContext {
    pub(crate) pool: PgPool,
    pub(crate) catalogue: SharedCatalogue,
    pub(crate) registry: SharedRegistry,
    /// Several channels: RabbitMQ runs each channel as one process, so one
    /// channel caps the hub's publish rate at what one core can route.
    pub(crate) publishers: Arc<Vec<Publisher>>,
    pub(crate) settings: PipelineSettings,
    pub(crate) metrics: Arc<Metrics>,
    /// The live figures the console shows.
    pub(crate) activity: Arc<Activity>,
    /// This hub instance's name, recorded on every batch it commits.
    pub(crate) instance: String,
    /// Cancelled when draining takes too long: retries give up and the
    /// unacked deliveries are left to the broker to redeliver.
    pub(crate) abort: CancellationToken,
    /// Keys who each accepted payload is about (`subjects`).
    pub(crate) subjects: crate::subjects::SubjectKeyer,
    /// Seals what is stored (`at_rest`).
    pub(crate) data_keys: crate::at_rest::DataKeys,
}

/// Commit retries (the database is down or refused) wait this long.
const COMMIT_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(6));

struct Batch {
    items: Vec<Decoded>,
    ackers: Vec<Acker>,
}

struct Committed {
    batch_id: Uuid,
    /// Holds a 1:N message to many endpoints (see `publish_stage`).
    fan_out: bool,
    outgoing: Vec<Outgoing>,
    outbox_ids: Vec<Uuid>,
    /// Receipts that may wait for later batches' (see `receipts.rs`).
    receipts: Vec<ReceiptsFor>,
    ackers: Vec<Acker>,
}

/// What the publish stage learned about one batch, for the marker.
struct Published {
    batch_id: Uuid,
    confirmed_at: chrono::DateTime<Utc>,
    unroutable: Vec<Uuid>,
}

/// Runs until `deliveries` ends (the consumer was stopped) and everything
/// taken has been committed, published and acked.
pub(crate) async fn run(ctx: PipelineContext, mut deliveries: Deliveries) {
    let (commit_tx, commit_rx) = mpsc::channel::<Batch>(2);
    let (publish_tx, publish_rx) =
        mpsc::channel::<Committed>(ctx.settings.publish_in_flight_batches.max(1));
    let (confirmed_tx, confirmed_rx) = mpsc::channel::<Published>(64);
    let committer = tokio::spawn(commit_stage(ctx.clone(), commit_rx, publish_tx));
    let publisher = tokio::spawn(publish_stage(ctx.clone(), publish_rx, confirmed_tx));
    let marker = tokio::spawn(mark_stage(ctx.clone(), confirmed_rx));

    let linger = Duration::from_millis(ctx.settings.batch_linger_ms);
    let size = ctx.settings.batch_size.max(1);
    let mut open = true;
    while open {
        let Some(first) = deliveries.recv().await else {
            break;
        };
        let mut taken = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while taken.len() < size {
            if let Some(d) = deliveries.try_recv() {
                taken.push(d);
                continue;
            }
            tokio::select! {
                next = deliveries.recv() => match next {
                    Some(d) => taken.push(d),
                    None => { open = false; break; }
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let batch = decode_batch(&ctx, taken);
        if commit_tx.send(batch).await.is_err() {
            break;
        }
    }
    drop(commit_tx);
    for (name, task) in [
        ("commit", committer),
        ("publish", publisher),
        ("mark", marker),
    ] {
        if let Err(error) = task.await {
            error!(%error, stage = name, "Pipeline stage panicked.");
        }
    }
}

fn decode_batch(ctx: &PipelineContext, taken: Vec<Delivery>) -> Batch {
    let catalogue = ctx.catalogue.current();
    let registry = ctx.registry.current();
    let decode_ctx = DecodeContext {
        catalogue: &catalogue,
        registry: &registry,
        max_body_bytes: ctx.settings.max_body_bytes,
        now: Utc::now(),
        subjects: &ctx.subjects,
        data_keys: &ctx.data_keys,
    };
    let mut items = Vec::with_capacity(taken.len());
    let mut ackers = Vec::with_capacity(taken.len());
    for d in taken {
        items.push(decode(&decode_ctx, &d.properties, d.body));
        ackers.push(d.acker);
    }
    Batch { items, ackers }
}

/// Commits up to `commit_concurrency` batches at once and hands them on in
/// arrival order. Each batch signals `done` only once it and every earlier
/// batch committed, so a batch that must see its predecessors' effects (see
/// `CommitError::NeedsEarlier`) waits on one signal.
async fn commit_stage(
    ctx: PipelineContext,
    mut rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<Committed>,
) {
    let max = ctx.settings.commit_concurrency.max(1);
    let mut in_flight = FuturesOrdered::new();
    let mut previous: Shared<BoxFuture<'static, ()>> = future::ready(()).boxed().shared();
    let mut open = true;
    loop {
        tokio::select! {
            next = rx.recv(), if open && in_flight.len() < max => match next {
                Some(batch) => {
                    let (done_tx, done_rx) = oneshot::channel::<()>();
                    let earlier = std::mem::replace(
                        &mut previous,
                        async move {
                            let _ = done_rx.await;
                        }
                        .boxed()
                        .shared(),
                    );
                    in_flight.push_back(commit_one(ctx.clone(), batch, earlier, done_tx));
                }
                None => open = false,
            },
            Some(committed) = in_flight.next(), if !in_flight.is_empty() => {
                // None: aborted; the deliveries stay unacked and come back.
                if let Some(committed) = committed {
                    if tx.send(committed).await.is_err() {
                        return;
                    }
                }
            }
            else => break,
        }
        if !open && in_flight.is_empty() {
            break;
        }
    }
}

async fn commit_one(
    ctx: PipelineContext,
    batch: Batch,
    earlier: Shared<BoxFuture<'static, ()>>,
    done: oneshot::Sender<()>,
) -> Option<Committed> {
    let started = Instant::now();
    let mut attempt = 0u32;
    let outcome = loop {
        let registry = ctx.registry.current();
        let earlier_in_flight = earlier.peek().is_none();
        let input = BatchInput {
            data_keys: &ctx.data_keys,
            items: &batch.items,
            registry: &registry,
            now: Utc::now(),
            earlier_in_flight,
            instance: &ctx.instance,
        };
        match store::commit_batch(&ctx.pool, input).await {
            Ok(outcome) => break Some(outcome),
            Err(CommitError::StaleRegistry(authority)) => {
                warn!(%authority, attempt, "Registry snapshot behind the exchange; reloading it and planning again.");
                if let Err(error) = ctx.registry.reload(&ctx.pool).await {
                    warn!(%error, "Registry reload failed.");
                }
                tokio::select! {
                    _ = tokio::time::sleep(COMMIT_RETRY.delay(attempt)) => {}
                    _ = ctx.abort.cancelled() => break None,
                }
                attempt += 1;
            }
            Err(CommitError::Race) => {
                debug!("Batch raced with another transaction; planning it again.")
            }
            Err(CommitError::NeedsEarlier) => {
                debug!("Batch waits for earlier batches before its workflow verdicts.");
                earlier.clone().await;
            }
            Err(CommitError::Database(error)) => {
                ctx.metrics.commit_retries.inc();
                warn!(%error, attempt, "Batch transaction failed; retrying (nothing is acked).");
                tokio::select! {
                    _ = tokio::time::sleep(COMMIT_RETRY.delay(attempt)) => {}
                    _ = ctx.abort.cancelled() => break None,
                }
                attempt += 1;
            }
        }
    };
    earlier.await;
    let _ = done.send(());
    let outcome = outcome?;
    let m = &ctx.metrics;
    m.commit_seconds.observe(started.elapsed().as_secs_f64());
    m.batches.inc();
    m.batch_size.observe(batch.items.len() as f64);
    let count = |outcome: &'static str, n: usize| {
        m.ingress_messages
            .get_or_create(&OutcomeLabel { outcome })
            .inc_by(n as u64);
    };
    record_activity(&ctx.activity, &batch.items, &outcome);
    count("accepted", outcome.accepted);
    count("acknowledgement", outcome.acknowledgements);
    count("duplicate", outcome.duplicates);
    count("rejected", outcome.rejections.len());
    for code in &outcome.rejections {
        m.rejections
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }
    let (rows, receipts) = if ctx.settings.receipt_linger_ms == 0 {
        (outcome.outbox, Vec::new())
    } else {
        // The receipt rows wait in the publish stage's hold instead.
        let rows = outcome
            .outbox
            .into_iter()
            .filter(|r| r.kind != OutboxKind::Receipts)
            .collect();
        (rows, outcome.receipts)
    };
    Some(Committed {
        batch_id: outcome.batch_id,
        fan_out: is_fan_out(&rows),
        outbox_ids: rows.iter().map(|r| r.id).collect(),
        outgoing: rows.into_iter().map(OutboxRow::into_amqp).collect(),
        receipts,
        ackers: batch.ackers,
    })
}

/// Counts the batch for the console's live figures, and notes who sent it.
fn record_activity(activity: &Activity, items: &[Decoded], outcome: &store::BatchOutcome) {
    let senders = items.iter().filter_map(|d| match d {
        Decoded::Inbound(i) => Some(i.sender_endpoint.as_str()),
        Decoded::Acknowledgement(a) => Some(a.sender_endpoint.as_str()),
        Decoded::Refused(r) => r.user_id.as_deref(),
    });
    let accepted = (outcome.accepted + outcome.acknowledgements) as u64;
    activity.record(
        Utc::now(),
        accepted,
        outcome.rejections.len() as u64,
        senders,
    );
}

/// A message copied to at least this many endpoints makes its batch a fan-out.
const FAN_OUT_COPIES: usize = 64;

fn is_fan_out(rows: &[OutboxRow]) -> bool {
    let mut copies: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    rows.iter()
        .filter(|r| r.kind == OutboxKind::Delivery)
        .any(|r| {
            let n = copies.entry(r.source_message_id.as_str()).or_default();
            *n += 1;
            *n >= FAN_OUT_COPIES
        })
}

/// Receipt messages awaiting confirms at once before the pipeline waits.
const MAX_RECEIPT_PUBLICATIONS: usize = 64;

/// Publishes committed batches (at most `publish_in_flight_batches` awaiting
/// confirms) and acks each batch's deliveries in commit order once its
/// messages are confirmed. Receipts wait in a [`ReceiptHold`] and go out on
/// their own; a batch is reported to the marker once all of its parts are
/// confirmed.
async fn publish_stage(
    ctx: PipelineContext,
    mut rx: mpsc::Receiver<Committed>,
    confirmed: mpsc::Sender<Published>,
) {
    let max_in_flight = ctx.settings.publish_in_flight_batches.max(1);
    let mut hold = ReceiptHold::new(Duration::from_millis(ctx.settings.receipt_linger_ms));
    let mut parts = Parts::default();
    // Batches complete in commit order (acks must); receipt messages as they come.
    let mut batches = FuturesOrdered::new();
    let mut receipts = FuturesUnordered::new();
    let mut open = true;
    let mut next_channel = 0;
    let mut take_channel = || {
        next_channel += 1;
        next_channel % ctx.publishers.len()
    };
    loop {
        let due = hold.next_due();
        tokio::select! {
            // Receipt messages count too: if one endpoint's receipts cannot
            // be confirmed (its queue is unavailable), the pipeline stops
            // taking batches, as it did when receipts went with their batch.
            next = rx.recv(), if open && batches.len() < max_in_flight && receipts.len() < MAX_RECEIPT_PUBLICATIONS => match next {
                Some(mut committed) => {
                    // Receipts held for an endpoint this batch sends to go
                    // first, on the same channel (order within a channel holds).
                    let first = hold.take_for(committed.outgoing.iter().map(|o| o.routing_key.as_str()));
                    let rows = std::mem::take(&mut committed.receipts);
                    parts.expect(committed.batch_id, 1 + rows.len());
                    let full = hold.hold(committed.batch_id, rows, tokio::time::Instant::now());
                    if !full.is_empty() {
                        receipts.push(publish(ctx.publishers.clone(), take_channel(), full, None));
                    }
                    // A channel's first publish to a quorum queue registers it
                    // with the queue (about 1 ms per queue on our machine), so
                    // fan-outs to hundreds of endpoints all take the same
                    // channel, which stays registered with every inbox; other
                    // batches take the channels in turn.
                    let channel = if committed.fan_out { 0 } else { take_channel() };
                    batches.push_back(publish(ctx.publishers.clone(), channel, first, Some(committed)));
                }
                None => {
                    open = false;
                    // Nothing more will join the held receipts.
                    let all = hold.take_all();
                    if !all.is_empty() {
                        receipts.push(publish(ctx.publishers.clone(), take_channel(), all, None));
                    }
                }
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                let flushes = hold.take_due(tokio::time::Instant::now());
                receipts.push(publish(ctx.publishers.clone(), take_channel(), flushes, None));
            }
            Some(publication) = batches.next(), if !batches.is_empty() => {
                settle(&ctx, publication, &mut parts, &confirmed).await;
            }
            Some(publication) = receipts.next(), if !receipts.is_empty() => {
                settle(&ctx, publication, &mut parts, &confirmed).await;
            }
            else => break,
        }
        if !open && batches.is_empty() && receipts.is_empty() && hold.is_empty() {
            break;
        }
    }
}

/// Receipt messages that go first, then (if any) a batch's own messages, on
/// one channel; and how that went.
struct Publication {
    /// Each receipt message's (batch, outbox row) pairs.
    flushes: Vec<Vec<(Uuid, Uuid)>>,
    batch: Option<Committed>,
    result: Result<Vec<PublishOutcome>, BrokerError>,
    elapsed: Duration,
}

async fn publish(
    publishers: Arc<Vec<Publisher>>,
    channel: usize,
    flushes: Vec<Flush>,
    mut batch: Option<Committed>,
) -> Publication {
    let started = Instant::now();
    let (flushes, mut messages): (Vec<_>, Vec<Outgoing>) =
        flushes.into_iter().map(|f| (f.rows, f.message)).unzip();
    if let Some(batch) = batch.as_mut() {
        messages.append(&mut batch.outgoing);
    }
    let result = publishers[channel].publish_all(&messages).await;
    Publication {
        flushes,
        batch,
        result,
        elapsed: started.elapsed(),
    }
}

/// Acks a published batch's deliveries and reports the batches whose every
/// part is now confirmed to the marker.
async fn settle(
    ctx: &PipelineContext,
    publication: Publication,
    parts: &mut Parts,
    confirmed: &mpsc::Sender<Published>,
) {
    let Publication {
        flushes,
        batch,
        result,
        elapsed,
    } = publication;
    let Ok(outcomes) = result else {
        // Shutting down before confirms: leave unacked and unmarked; the
        // outbox relay and redelivery finish the job after restart.
        return;
    };
    let (flush_outcomes, batch_outcomes) = outcomes.split_at(flushes.len());
    let mut done = Vec::new();
    for (flush, outcome) in flushes.iter().zip(flush_outcomes) {
        done.extend(parts.flush_confirmed(flush, *outcome == PublishOutcome::Confirmed));
    }
    if let Some(batch) = batch {
        ctx.metrics.publish_seconds.observe(elapsed.as_secs_f64());
        ack_batch(&batch.ackers).await;
        let unroutable: Vec<Uuid> = batch
            .outbox_ids
            .iter()
            .zip(batch_outcomes)
            .filter(|(_, o)| **o == PublishOutcome::Unroutable)
            .map(|(id, _)| *id)
            .collect();
        if !unroutable.is_empty() {
            warn!(
                unroutable = unroutable.len(),
                "Publishes returned unroutable; the relay retries them."
            );
        }
        done.extend(parts.confirmed(batch.batch_id, &unroutable));
    }
    for published in done {
        let _ = confirmed.send(published).await;
    }
}

/// One multiple-ack per channel: the last delivery of each channel in the
/// batch covers the channel's earlier ones (earlier batches are acked first).
/// After a reconnect the old channel's acks fail harmlessly: those deliveries
/// come again and are absorbed as duplicates.
async fn ack_batch(ackers: &[Acker]) {
    let mut last: Vec<&Acker> = Vec::new();
    for acker in ackers {
        match last
            .iter_mut()
            .find(|a| a.channel_key() == acker.channel_key())
        {
            Some(slot) => *slot = acker,
            None => last.push(acker),
        }
    }
    for acker in last {
        if let Err(error) = acker.ack_up_to().await {
            debug!(%error, "Ack failed (channel gone); the broker will redeliver.");
        }
    }
}

/// How long the marker gathers published batches into one statement. The
/// mark only tells the relay (which waits `relay::GRACE_SECONDS`) that a
/// batch needs nothing more, so it can wait; one UPDATE per batch cost
/// PostgreSQL as much as the batch's own insert at low rates.
const MARK_EVERY: Duration = Duration::from_millis(100);

async fn mark_stage(ctx: PipelineContext, mut rx: mpsc::Receiver<Published>) {
    while let Some(first) = rx.recv().await {
        let mut batches = vec![(first.batch_id, first.confirmed_at)];
        let mut unroutable = first.unroutable;
        let until = tokio::time::Instant::now() + MARK_EVERY;
        // Gathers until the window closes or the publish stage is done
        // (shutdown: mark at once).
        while let Ok(Some(more)) = tokio::time::timeout_at(until, rx.recv()).await {
            batches.push((more.batch_id, more.confirmed_at));
            unroutable.extend(more.unroutable);
        }
        let marked = async {
            store::mark_unroutable(&ctx.pool, &unroutable, &[]).await?;
            store::mark_published(&ctx.pool, &batches).await
        };
        if let Err(error) = marked.await {
            // Not fatal: the relay publishes these batches again; receivers
            // de-duplicate.
            warn!(%error, batches = batches.len(), "Could not mark batches published.");
        }
    }
}

/// What re-driving stored messages came to.
#[derive(Debug, Default)]
pub(crate) struct Redriven {
    pub(crate) accepted: usize,
    pub(crate) duplicates: usize,
    /// Refused again, by code.
    pub(crate) refused: Vec<RejectionCode>,
}

/// Re-drives messages kept from an earlier delivery (a refused message,
/// after its cause was fixed) through the pipeline: decoded against the
/// catalogue and registry in force, committed as a batch, and its outbox
/// published, like any ingress delivery and under its own `message_id`.
/// Nothing is acked: the messages left the ingress queue long ago.
pub(crate) async fn redrive(
    ctx: &PipelineContext,
    messages: Vec<(imi_broker::Properties, Vec<u8>)>,
) -> Result<Redriven, crate::error::HubError> {
    let catalogue = ctx.catalogue.current();
    let mut attempt = 0u32;
    let (outcome, items) = loop {
        let registry = ctx.registry.current();
        let decode_ctx = DecodeContext {
            catalogue: &catalogue,
            registry: &registry,
            max_body_bytes: ctx.settings.max_body_bytes,
            now: Utc::now(),
            subjects: &ctx.subjects,
            data_keys: &ctx.data_keys,
        };
        let items: Vec<Decoded> = messages
            .iter()
            .map(|(p, body)| decode(&decode_ctx, p, body.clone()))
            .collect();
        let input = BatchInput {
            data_keys: &ctx.data_keys,
            items: &items,
            registry: &registry,
            now: Utc::now(),
            earlier_in_flight: false,
            instance: &ctx.instance,
        };
        match store::commit_batch(&ctx.pool, input).await {
            Ok(outcome) => break (outcome, items),
            Err(CommitError::Database(error)) => return Err(error.into()),
            Err(CommitError::StaleRegistry(_)) if attempt < 5 => {
                ctx.registry.reload(&ctx.pool).await?;
            }
            Err(CommitError::Race | CommitError::NeedsEarlier) if attempt < 5 => {}
            Err(other) => {
                return Err(crate::error::HubError::Redrive(other.to_string()));
            }
        }
        attempt += 1;
    };
    record_activity(&ctx.activity, &items, &outcome);
    let redriven = Redriven {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        refused: outcome.rejections.clone(),
    };
    crate::dispatch::publish_own::<crate::error::HubError>(
        &ctx.publishers[0],
        &ctx.pool,
        outcome.batch_id,
        outcome.outbox,
    )
    .await?;
    Ok(redriven)
}

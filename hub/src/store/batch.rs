//! One database commit per micro-batch: read what the workflow needs, let
//! the engine (`workflow`) plan, write the plan. Nothing is published before
//! the commit.
//!
//! A batch that only opens exchanges is planned without reading and written
//! as one statement (`writes.rs`). Any other batch takes a transaction that
//! locks the exchanges it continues, finds duplicates, plans, and writes
//! messages, exchanges, transitions, outbox rows and rejections in two
//! combined statements around the 1:N and acknowledgement work.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use imi_schemas::protocol::{Receipt, RejectionCode};
use sqlx::{PgConnection, PgPool};
use thiserror::Error;
use tracing::instrument;
use uuid::Uuid;

use super::writes::{is_unique_violation, OnConflict, Writes};
use super::{acks, replay};
use crate::inbound::{Ack, Decoded, Inbound};
use crate::outgoing::{OutboxRow, ReceiptsFor};
use crate::registry::Registry;
use crate::workflow::{self, Change, ExchangeState, Plan, Replan, Stored};

#[derive(Debug, Error)]
pub(crate) enum CommitError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Another transaction (another hub instance, or an earlier batch of this
    /// one) committed one of the batch's messages meanwhile; the batch is
    /// planned again.
    #[error("a message of the batch was committed concurrently")]
    Race,
    /// The workflow refused a message while earlier batches were still being
    /// committed; their commits may change the verdict (e.g. open the exchange
    /// the message continues), so the batch is planned again after them.
    #[error("the batch must be planned again after the earlier batches")]
    NeedsEarlier,
    /// The registry snapshot does not know an authority the batch reaches
    /// (registered moments ago through another hub); nothing was written.
    #[error("the registry snapshot does not know `{0}` yet")]
    StaleRegistry(String),
}

impl From<Replan> for CommitError {
    fn from(replan: Replan) -> Self {
        match replan {
            Replan::StaleRegistry(authority) => CommitError::StaleRegistry(authority),
            Replan::NeedsEarlier => CommitError::NeedsEarlier,
        }
    }
}

/// What the committed batch asks the publisher to do, and counts for metrics.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    pub(crate) batch_id: Uuid,
    pub(crate) outbox: Vec<OutboxRow>,
    /// The receipts of the outbox's `Receipts` rows, unserialized (the
    /// pipeline may merge them with later batches').
    pub(crate) receipts: Vec<ReceiptsFor>,
    pub(crate) accepted: usize,
    /// Acknowledgements of 1:N copies applied (or already applied).
    pub(crate) acknowledgements: usize,
    pub(crate) duplicates: usize,
    pub(crate) rejections: Vec<RejectionCode>,
}

/// What both commit paths plan and write a batch from.
#[derive(Clone, Copy)]
pub(crate) struct BatchInput<'a> {
    pub(crate) items: &'a [Decoded],
    pub(crate) registry: &'a Registry,
    pub(crate) now: DateTime<Utc>,
    /// Earlier batches may still be uncommitted (batches commit
    /// concurrently): a workflow refusal is then not final.
    pub(crate) earlier_in_flight: bool,
    /// This hub instance's name, recorded on the batch.
    pub(crate) instance: &'a str,
    /// Seals refused bodies (accepted ones are sealed when decoded).
    pub(crate) data_keys: &'a crate::at_rest::DataKeys,
}

/// Commits one batch. Safe to call again with the same batch after an error:
/// the batch either committed whole or not at all.
///
/// A batch that only opens exchanges (the common case: new requests, and
/// refusals) needs nothing from the database to be planned, so it is written
/// at once, as one statement; if one of its messages turns out to be stored
/// already, that statement fails whole and the batch takes the careful path:
/// a transaction that locks the exchanges it continues and reads what is
/// stored before planning.
#[instrument(skip_all, fields(messages = input.items.len()))]
pub(crate) async fn commit_batch(
    pool: &PgPool,
    input: BatchInput<'_>,
) -> Result<BatchOutcome, CommitError> {
    if let Some(outcome) = commit_fresh(pool, &input).await? {
        return Ok(outcome);
    }
    commit_careful(pool, &input).await
}

/// Needs the batch anything stored to be planned?
fn needs_reads(items: &[Decoded]) -> bool {
    items.iter().any(|d| match d {
        Decoded::Refused(_) => false,
        Decoded::Acknowledgement(_) => true,
        Decoded::Inbound(i) => {
            i.exchange.is_some() || i.step.one_to_many.as_ref().is_some_and(|s| s.broadcasts)
        }
    })
}

/// The one-statement path; `None` when the batch needs the careful one.
async fn commit_fresh(
    pool: &PgPool,
    input: &BatchInput<'_>,
) -> Result<Option<BatchOutcome>, CommitError> {
    if needs_reads(input.items) {
        return Ok(None);
    }
    let mut plan = workflow::plan(input.items, Stored::default(), input.registry, input.now);
    if !plan.only_opens() {
        // The careful path plans it again from what is stored.
        return Ok(None);
    }
    plan.check(input.earlier_in_flight)?;
    let batch_id = Uuid::now_v7();
    let (outbox, receipts) = plan.finish_outbox(Vec::new());
    let refusals = plan.refusals();
    let mut writes = Writes::core(&plan, batch_id, input.instance, OnConflict::Fail);
    writes.outbox(batch_id, &outbox);
    writes.rejected(&refusals, input.data_keys);
    let mut conn = pool.acquire().await?;
    match writes.execute(&mut conn).await {
        Ok(_) => {}
        Err(error) if is_unique_violation(&error) => return Ok(None),
        Err(error) => return Err(error.into()),
    }
    Ok(Some(BatchOutcome {
        batch_id,
        accepted: plan.messages.len(),
        acknowledgements: 0,
        duplicates: 0,
        rejections: refusals.iter().map(|r| r.rejection.code).collect(),
        outbox,
        receipts,
    }))
}

async fn commit_careful(
    pool: &PgPool,
    input: &BatchInput<'_>,
) -> Result<BatchOutcome, CommitError> {
    let BatchInput {
        items,
        registry,
        now,
        earlier_in_flight,
        instance,
        data_keys,
    } = *input;
    let mut tx = pool.begin().await?;
    let inbound: Vec<&Inbound> = items
        .iter()
        .filter_map(|d| match d {
            Decoded::Inbound(i) => Some(i.as_ref()),
            Decoded::Acknowledgement(_) | Decoded::Refused(_) => None,
        })
        .collect();
    let stored = read_stored(&mut tx, &inbound).await?;
    let mut plan = workflow::plan(items, stored, registry, now);
    plan.check(earlier_in_flight)?;
    let batch_id = Uuid::now_v7();

    let inserted = Writes::core(&plan, batch_id, instance, OnConflict::Skip)
        .execute(&mut tx)
        .await?;
    if inserted != plan.messages.len() {
        return Err(CommitError::Race);
    }
    // After the inserts: a message may continue an exchange opened earlier
    // in the same batch.
    update_exchanges(&mut tx, &plan).await?;
    replay::insert_field_deadlines(&mut tx, &plan.field_deadlines).await?;
    write_replays(&mut tx, &mut plan, registry).await?;
    replay::insert_deliveries(&mut tx, &plan.deliveries).await?;
    let ack_items: Vec<&Ack> = items
        .iter()
        .filter_map(|d| match d {
            Decoded::Acknowledgement(a) => Some(a.as_ref()),
            _ => None,
        })
        .collect();
    let acked = acks::apply(&mut tx, &ack_items, registry, now).await?;
    if earlier_in_flight && !acked.refused.is_empty() {
        // The acknowledged copy may be in a batch not yet committed.
        return Err(CommitError::NeedsEarlier);
    }
    let acknowledgements = acked.receipts.len();
    plan.receipts.extend(acked.receipts);
    plan.outbox.extend(acked.to_originators);
    plan.workflow_refusals.extend(acked.refused);
    // A duplicate gets its receipt again (the sender probably retried because
    // it missed it), rebuilt from what was stored; deliveries not yet
    // published are the relay's job.
    let stored = stored_receipts(&mut tx, &plan.duplicates).await?;
    let (outbox, receipts) = plan.finish_outbox(stored);
    let refusals = plan.refusals();
    let mut writes = Writes::default();
    writes.outbox(batch_id, &outbox);
    writes.rejected(&refusals, data_keys);
    writes.execute(&mut tx).await?;
    tx.commit().await?;

    Ok(BatchOutcome {
        batch_id,
        accepted: plan.messages.len(),
        acknowledgements,
        duplicates: plan.duplicates.len(),
        rejections: refusals.iter().map(|r| r.rejection.code).collect(),
        outbox,
        receipts,
    })
}

/// What the plan depends on: the exchanges the batch continues (locked, in a
/// stable order), which of its messages are stored, and the validation
/// gates when a message broadcasts.
async fn read_stored(tx: &mut PgConnection, inbound: &[&Inbound]) -> Result<Stored, sqlx::Error> {
    let mut continued: Vec<Uuid> = inbound
        .iter()
        .filter_map(|i| i.exchange.map(|e| e.as_uuid()))
        .collect();
    continued.sort();
    continued.dedup();
    let exchanges = lock_exchanges(tx, &continued).await?;
    let ids: Vec<Uuid> = inbound.iter().map(|i| i.message_id.as_uuid()).collect();
    let digests: HashMap<Uuid, Vec<u8>> =
        sqlx::query_as("SELECT id, raw_sha256 FROM messages WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    // National validation gates are read here, not from the registry
    // snapshot, so a gate switched on through another hub applies at once.
    let broadcasts = inbound
        .iter()
        .any(|i| i.step.one_to_many.as_ref().is_some_and(|s| s.broadcasts));
    let gates: HashSet<(String, String)> = if broadcasts {
        sqlx::query_as("SELECT country, area FROM validation_gates")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    Ok(Stored {
        exchanges,
        digests,
        gates,
    })
}

/// An exchange row as the workflow needs it.
#[derive(sqlx::FromRow)]
struct ExchangeRow {
    id: Uuid,
    procedure: String,
    state: String,
    requester: String,
    responder: String,
    recipients: Option<Vec<String>>,
    released: bool,
}

#[instrument(skip_all, fields(exchanges = ids.len()))]
async fn lock_exchanges(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, ExchangeState>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Sorted ids and ORDER BY keep lock order stable across hub instances.
    let rows: Vec<ExchangeRow> = sqlx::query_as(
        "SELECT id, procedure, state, requester, responder, recipients,
                recipients IS NULL OR released_at IS NOT NULL AS released
         FROM exchanges WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let state = ExchangeState {
                procedure: r.procedure,
                state: r.state,
                requester: r.requester,
                responder: r.responder,
                recipients: r.recipients,
                released: r.released,
            };
            (r.id, state)
        })
        .collect())
}

/// Replays read what this batch wrote, so they come after it; their rows
/// go before the message that caused them (latest position first, so the
/// earlier positions stay valid).
async fn write_replays(
    tx: &mut PgConnection,
    plan: &mut Plan<'_>,
    registry: &Registry,
) -> Result<(), CommitError> {
    let mut replays = std::mem::take(&mut plan.replays);
    replays.sort_by_key(|r| std::cmp::Reverse(r.outbox_pos));
    for r in replays {
        let mut stored = replay::exchange_messages(tx, r.exchange_id, Some(r.before)).await?;
        if let Some(skip) = &r.skip_type {
            stored.retain(|m| &m.message_type != skip);
        }
        let (rows, deliveries) = replay::replay_rows(
            &stored,
            r.exchange_id,
            &r.recipients,
            &r.tag,
            r.broadcast.as_ref(),
            registry,
        )
        .map_err(CommitError::StaleRegistry)?;
        plan.outbox.splice(r.outbox_pos..r.outbox_pos, rows);
        plan.deliveries.extend(deliveries);
    }
    Ok(())
}

/// A stored message's receipt, rebuilt.
#[derive(sqlx::FromRow)]
struct ReceiptRow {
    message_id: Uuid,
    exchange_id: Uuid,
    message_type: String,
    state: String,
    recipients: Vec<String>,
    accepted_at: DateTime<Utc>,
    sender_endpoint: String,
}

/// Receipts of messages already stored, rebuilt from the database.
async fn stored_receipts(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(String, Receipt)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<ReceiptRow> = sqlx::query_as(
        "SELECT m.id AS message_id, m.exchange_id, m.message_type, t.to_state AS state, m.recipients,
                m.received_at AS accepted_at, m.sender_endpoint
         FROM messages m JOIN transitions t ON t.message_id = m.id AND t.exchange_id = m.exchange_id
         WHERE m.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let receipt = Receipt {
                message_id: r.message_id,
                exchange_id: r.exchange_id,
                message_type: r.message_type,
                state: r.state,
                recipients: r.recipients,
                accepted_at: r.accepted_at,
            };
            (r.sender_endpoint, receipt)
        })
        .collect())
}

/// The plan's changes to stored exchanges: state, responder and release;
/// recipients added by dissemination; formal closure.
async fn update_exchanges(conn: &mut PgConnection, plan: &Plan<'_>) -> Result<(), sqlx::Error> {
    if !plan.changed.is_empty() {
        let ids: Vec<Uuid> = plan.changed.keys().copied().collect();
        let changes: Vec<&Change> = ids.iter().map(|id| &plan.changed[id]).collect();
        let states: Vec<&str> = changes.iter().map(|c| c.state.as_str()).collect();
        let responders: Vec<&str> = changes.iter().map(|c| c.responder.as_str()).collect();
        let released: Vec<bool> = changes.iter().map(|c| c.released).collect();
        sqlx::query(
            "UPDATE exchanges e SET state = u.state, responder = u.responder, updated_at = now(),
                    released_at = CASE WHEN e.recipients IS NOT NULL AND u.released
                                       THEN coalesce(e.released_at, now()) END
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bool[]) AS u(id, state, responder, released)
             WHERE e.id = u.id",
        )
        .bind(&ids)
        .bind(states)
        .bind(responders)
        .bind(released)
        .execute(&mut *conn)
        .await?;
    }
    // Rare (dissemination): one statement per exchange.
    for (id, all) in &plan.recipient_changes {
        sqlx::query("UPDATE exchanges SET recipients = $2 WHERE id = $1")
            .bind(id)
            .bind(all)
            .execute(&mut *conn)
            .await?;
    }
    if !plan.closed.is_empty() {
        sqlx::query(
            "UPDATE exchanges SET closed_at = coalesce(closed_at, now()) WHERE id = ANY($1)",
        )
        .bind(&plan.closed)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

//! One database commit per micro-batch (DESIGN.md §5 step 3).
//!
//! A batch that only opens exchanges is planned in memory and written as one
//! statement (`store::writes`). Any other batch takes a transaction that locks
//! the exchanges it continues, finds duplicates, applies the workflow in
//! arrival order, and writes messages, exchanges, transitions, outbox rows and
//! rejections in two combined statements around the 1:N and acknowledgement
//! work. Nothing is published before the commit.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use imi_schemas::catalogue::Role;
use imi_schemas::ids::MessageId;
use imi_schemas::protocol::{
    receipt_id, Receipt, RejectionCode, HEADER_PARENT_EXCHANGE, HEADER_RECIPIENTS,
    HEADER_SCHEMA_VERSION, HEADER_SENDER, HEADER_TRACEPARENT, TYPE_RECEIPTS, TYPE_REJECTION,
};
use sqlx::{PgConnection, PgPool};
use thiserror::Error;
use tracing::instrument;
use uuid::Uuid;

use super::writes::{is_unique_violation, OnConflict, Writes};
use super::{acks, fanout, OutboxKind, OutboxRow, ReceiptsFor};
use crate::pipeline::decode::{Ack, Decoded, Inbound, Refusal};
use crate::registry::Registry;

#[derive(Debug, Error)]
pub enum CommitError {
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

/// What the committed batch asks the publisher to do, and counts for metrics.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub batch_id: Uuid,
    pub outbox: Vec<OutboxRow>,
    /// The receipts of the outbox's `Receipts` rows, unserialized (the
    /// pipeline may merge them with later batches').
    pub receipts: Vec<ReceiptsFor>,
    pub accepted: usize,
    /// Acknowledgements of 1:N copies applied (or already applied).
    pub acknowledgements: usize,
    pub duplicates: usize,
    pub rejections: Vec<RejectionCode>,
}

#[derive(Debug, Clone)]
pub(super) struct ExchangeState {
    pub procedure: String,
    pub state: String,
    pub requester: String,
    /// 1:1: the authority addressed; empty for 1:N.
    pub responder: String,
    /// 1:N: the frozen recipients.
    pub recipients: Option<Vec<String>>,
    /// 1:N: released to its recipients (1:1 exchanges always are).
    pub released: bool,
}

pub(super) struct NewExchange {
    pub id: Uuid,
    pub opened_by: Uuid,
    pub state: ExchangeState,
    /// Set for a child exchange opened by a split.
    pub parent: Option<Uuid>,
}

pub(super) struct Transition {
    pub exchange_id: Uuid,
    pub message_id: Uuid,
    pub action: String,
    pub from: Option<String>,
    pub to: String,
}

struct Rejected<'a> {
    refusal: &'a Refusal,
}

#[derive(Default)]
pub(super) struct Plan<'a> {
    pub new_exchanges: Vec<NewExchange>,
    /// Exchange → (new state, responder, released).
    pub changed: HashMap<Uuid, (String, String, bool)>,
    /// 1:N exchanges whose recipients grew (dissemination) → all of them.
    pub recipient_changes: HashMap<Uuid, Vec<String>>,
    pub messages: Vec<(&'a Inbound, Uuid, Vec<String>)>,
    pub transitions: Vec<Transition>,
    pub outbox: Vec<OutboxRow>,
    /// 1:N: one row per recipient authority of each copy.
    pub deliveries: Vec<fanout::DeliveryRow>,
    /// 1:N: stored messages to send once this batch's rows are written.
    pub replays: Vec<fanout::Replay>,
    /// Exchanges formally closed by the batch (retention counts from now).
    pub closed: Vec<Uuid>,
    /// (exchange, deadline, date in the payload, due at).
    pub field_deadlines: Vec<(Uuid, String, NaiveDate, DateTime<Utc>)>,
    /// An authority this registry snapshot does not know yet: the plan is
    /// void and the batch is planned again on a reloaded registry.
    pub stale: Option<String>,
    rejected: Vec<Rejected<'a>>,
    /// Refusals made by the workflow (owned, since they are built here).
    pub workflow_refusals: Vec<Refusal>,
    /// (sender endpoint, receipt) in arrival order.
    pub receipts: Vec<(String, Receipt)>,
    duplicates: Vec<Uuid>,
}

/// Commits one batch. Safe to call again with the same batch after an error:
/// the batch either committed whole or not at all. `earlier_in_flight`
/// says whether earlier batches may still be uncommitted (batches commit
/// concurrently); a workflow refusal is then not final.
///
/// A batch that only opens exchanges (the common case: new requests, and
/// refusals) needs nothing from the database to be planned, so it is written
/// at once, as one statement; if one of its messages turns out to be stored
/// already, that statement fails whole and the batch takes the careful path:
/// a transaction that locks the exchanges it continues and reads what is
/// stored before planning.
#[instrument(skip_all, fields(messages = items.len()))]
pub async fn commit_batch(
    pool: &PgPool,
    items: &[Decoded],
    registry: &Registry,
    now: DateTime<Utc>,
    earlier_in_flight: bool,
    instance: &str,
) -> Result<BatchOutcome, CommitError> {
    let input = BatchInput {
        items,
        registry,
        now,
        earlier_in_flight,
        instance,
    };
    if let Some(outcome) = commit_fresh(pool, &input).await? {
        return Ok(outcome);
    }
    commit_careful(pool, &input).await
}

/// What both commit paths plan and write a batch from.
struct BatchInput<'a> {
    items: &'a [Decoded],
    registry: &'a Registry,
    now: DateTime<Utc>,
    earlier_in_flight: bool,
    instance: &'a str,
}

/// The one-statement path; `None` when the batch needs the careful one.
async fn commit_fresh(
    pool: &PgPool,
    input: &BatchInput<'_>,
) -> Result<Option<BatchOutcome>, CommitError> {
    let BatchInput {
        items,
        registry,
        now,
        ..
    } = *input;
    let needs_reads = items.iter().any(|d| match d {
        Decoded::Refused(_) => false,
        Decoded::Acknowledgement(_) => true,
        Decoded::Inbound(i) => {
            i.exchange.is_some() || i.step.one_to_many.as_ref().is_some_and(|s| s.broadcasts)
        }
    });
    if needs_reads {
        return Ok(None);
    }
    let mut plan = plan(
        items,
        HashMap::new(),
        HashMap::new(),
        registry,
        &HashSet::new(),
        now,
    );
    let only_writes = plan.changed.is_empty()
        && plan.recipient_changes.is_empty()
        && plan.closed.is_empty()
        && plan.replays.is_empty()
        && plan.field_deadlines.is_empty()
        && plan.deliveries.is_empty()
        && plan.duplicates.is_empty();
    if !only_writes {
        // The careful path plans it again from what is stored.
        return Ok(None);
    }
    plan.check(input.earlier_in_flight)?;
    let batch_id = Uuid::now_v7();
    let (outbox, receipts) = finish_outbox(&mut plan, Vec::new());
    let refusals = plan.refusals();
    let mut writes = plan.core_writes(batch_id, input.instance, OnConflict::Fail);
    writes.outbox(batch_id, &outbox);
    writes.rejected(&refusals);
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

/// The whole outbox of a planned batch: its rows so far, then the replies to
/// workflow refusals, then the receipts (with those of `stored_receipts`).
fn finish_outbox(
    plan: &mut Plan<'_>,
    stored_receipts: Vec<(String, Receipt)>,
) -> (Vec<OutboxRow>, Vec<ReceiptsFor>) {
    let mut outbox = std::mem::take(&mut plan.outbox);
    outbox.extend(plan.workflow_refusals.iter().filter_map(rejection_reply));
    let mut receipts = std::mem::take(&mut plan.receipts);
    receipts.extend(stored_receipts);
    let mut by_endpoint: BTreeMap<String, Vec<Receipt>> = BTreeMap::new();
    for (endpoint, receipt) in receipts {
        by_endpoint.entry(endpoint).or_default().push(receipt);
    }
    // One outbox row per sender endpoint, carrying all its receipts.
    let mut held = Vec::with_capacity(by_endpoint.len());
    for (endpoint, receipts) in by_endpoint {
        let row = receipt_row(endpoint.clone(), &receipts);
        held.push(ReceiptsFor {
            row_id: row.id,
            endpoint,
            receipts,
        });
        outbox.push(row);
    }
    (outbox, held)
}

impl Plan<'_> {
    /// Whether the plan may be written now: not if the registry snapshot was
    /// behind, nor if the workflow refused something while earlier batches
    /// (which may change the verdict) are still committing.
    fn check(&mut self, earlier_in_flight: bool) -> Result<(), CommitError> {
        if let Some(authority) = self.stale.take() {
            return Err(CommitError::StaleRegistry(authority));
        }
        if earlier_in_flight && !self.workflow_refusals.is_empty() {
            return Err(CommitError::NeedsEarlier);
        }
        Ok(())
    }

    /// The batch row and what the plan opens and records, as one statement.
    fn core_writes(&self, batch_id: Uuid, instance: &str, on_conflict: OnConflict) -> Writes {
        let mut writes = Writes::default();
        writes.batch(batch_id, instance);
        writes.exchanges(&self.new_exchanges);
        writes.messages(batch_id, &self.messages, on_conflict);
        writes.transitions(&self.transitions);
        writes
    }

    /// Every refusal of the batch, to be kept with its reasons.
    fn refusals(&self) -> Vec<&Refusal> {
        let mut all: Vec<&Refusal> = self.rejected.iter().map(|r| r.refusal).collect();
        all.extend(self.workflow_refusals.iter());
        all
    }
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
    } = *input;
    let mut tx = pool.begin().await?;

    let inbound: Vec<&Inbound> = items
        .iter()
        .filter_map(|d| match d {
            Decoded::Inbound(i) => Some(i.as_ref()),
            Decoded::Acknowledgement(_) | Decoded::Refused(_) => None,
        })
        .collect();
    let mut continued: Vec<Uuid> = inbound
        .iter()
        .filter_map(|i| i.exchange.map(|e| e.as_uuid()))
        .collect();
    continued.sort();
    continued.dedup();
    let locked = lock_exchanges(&mut tx, &continued).await?;
    let ids: Vec<Uuid> = inbound.iter().map(|i| i.message_id.as_uuid()).collect();
    let existing: HashMap<Uuid, Vec<u8>> =
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
    let mut plan = plan(items, locked, existing, registry, &gates, now);
    plan.check(earlier_in_flight)?;
    let batch_id = Uuid::now_v7();

    let inserted = plan
        .core_writes(batch_id, instance, OnConflict::Skip)
        .execute(&mut tx)
        .await?;
    if inserted != plan.messages.len() {
        return Err(CommitError::Race);
    }
    // After the inserts: a message may continue an exchange opened earlier
    // in the same batch.
    update_exchanges(&mut tx, &plan.changed, &plan.recipient_changes).await?;
    if !plan.closed.is_empty() {
        sqlx::query(
            "UPDATE exchanges SET closed_at = coalesce(closed_at, now()) WHERE id = ANY($1)",
        )
        .bind(&plan.closed)
        .execute(&mut *tx)
        .await?;
    }
    fanout::insert_field_deadlines(&mut tx, &plan.field_deadlines).await?;
    // Replays read what this batch wrote, so they come after it; their rows
    // go before the message that caused them (latest position first, so the
    // earlier positions stay valid).
    let mut replays = std::mem::take(&mut plan.replays);
    replays.sort_by_key(|r| std::cmp::Reverse(r.outbox_pos));
    for replay in replays {
        let mut stored =
            fanout::exchange_messages(&mut tx, replay.exchange_id, Some(replay.before)).await?;
        if let Some(skip) = &replay.skip_type {
            stored.retain(|m| &m.message_type != skip);
        }
        let Ok((rows, deliveries)) = fanout::replay_rows(
            &stored,
            replay.exchange_id,
            &replay.recipients,
            &replay.tag,
            replay.broadcast.as_ref(),
            registry,
        ) else {
            return Err(CommitError::StaleRegistry("a recipient of a replay".into()));
        };
        plan.outbox
            .splice(replay.outbox_pos..replay.outbox_pos, rows);
        plan.deliveries.extend(deliveries);
    }
    fanout::insert_deliveries(&mut tx, &plan.deliveries).await?;
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
    let (outbox, receipts) = finish_outbox(&mut plan, stored);
    let refusals = plan.refusals();
    let mut writes = Writes::default();
    writes.outbox(batch_id, &outbox);
    writes.rejected(&refusals);
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

async fn lock_exchanges(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, ExchangeState>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Sorted ids and ORDER BY keep lock order stable across hub instances.
    type Row = (
        Uuid,
        String,
        String,
        String,
        String,
        Option<Vec<String>>,
        bool,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, procedure, state, requester, responder, recipients,
                recipients IS NULL OR released_at IS NOT NULL
         FROM exchanges WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, procedure, state, requester, responder, recipients, released)| {
                (
                    id,
                    ExchangeState {
                        procedure,
                        state,
                        requester,
                        responder,
                        recipients,
                        released,
                    },
                )
            },
        )
        .collect())
}

/// Applies the workflow to the batch in arrival order, in memory.
fn plan<'a>(
    items: &'a [Decoded],
    mut exchanges: HashMap<Uuid, ExchangeState>,
    existing: HashMap<Uuid, Vec<u8>>,
    registry: &Registry,
    gates: &HashSet<(String, String)>,
    now: DateTime<Utc>,
) -> Plan<'a> {
    let mut plan = Plan::default();
    let mut seen: HashMap<Uuid, [u8; 32]> = HashMap::new();
    let mut new_ids: HashSet<Uuid> = HashSet::new();

    for item in items {
        let inbound = match item {
            Decoded::Refused(r) => {
                plan.outbox.extend(rejection_reply(r));
                plan.rejected.push(Rejected { refusal: r });
                continue;
            }
            Decoded::Acknowledgement(_) => continue,
            Decoded::Inbound(i) => i.as_ref(),
        };
        let id = inbound.message_id.as_uuid();
        let earlier = existing
            .get(&id)
            .map(|d| d.as_slice())
            .or(seen.get(&id).map(|d| d.as_slice()));
        if let Some(digest) = earlier {
            if digest == inbound.digest {
                plan.duplicates.push(id);
            } else {
                plan.workflow_refusals.push(refuse(
                    inbound,
                    RejectionCode::MessageIdReused,
                    format!(
                        "message_id {id} was already used for a message with different content"
                    ),
                    now,
                ));
            }
            continue;
        }

        if let Some(step) = &inbound.step.one_to_many {
            let planned = fanout::plan_message(
                &mut plan,
                inbound,
                step,
                &mut exchanges,
                &mut new_ids,
                registry,
                gates,
                now,
            );
            match planned {
                Ok(()) if plan.stale.is_some() => return plan,
                Ok(()) => {
                    seen.insert(id, inbound.digest);
                }
                Err(refusal) => plan.workflow_refusals.push(refusal),
            }
            continue;
        }

        let procedure = inbound.message_type.procedure.as_str();
        let action = inbound.message_type.action.as_str();
        let mut parent: Option<Uuid> = None;
        let mut next_state = inbound.step.to.clone();
        let (exchange_id, from, recipients) = if inbound.step.opens {
            let exchange_id = inbound.message_id.opened_exchange().as_uuid();
            let responder = inbound.recipients[0].to_string();
            let state = ExchangeState {
                procedure: procedure.to_owned(),
                state: inbound.step.to.clone(),
                requester: inbound.sender.to_string(),
                responder: responder.clone(),
                recipients: None,
                released: true,
            };
            plan.open(
                &mut exchanges,
                &mut new_ids,
                NewExchange {
                    id: exchange_id,
                    opened_by: id,
                    state,
                    parent: None,
                },
            );
            (exchange_id, None, vec![responder])
        } else {
            let (exchange_id, exchange) = match continued(&mut exchanges, inbound, now) {
                Ok(found) => found,
                Err(refusal) => {
                    plan.workflow_refusals.push(refusal);
                    continue;
                }
            };
            let sender = inbound.sender.as_str();
            let role = if sender == exchange.requester {
                Role::Requester
            } else if sender == exchange.responder {
                Role::Responder
            } else {
                plan.workflow_refusals.push(refuse(
                    inbound,
                    RejectionCode::ActionNotAllowedForRole,
                    format!("`{sender}` is not a party to exchange {exchange_id}"),
                    now,
                ));
                continue;
            };
            if let Err(refusal) = check_step(inbound, role, &exchange.state, now) {
                plan.workflow_refusals.push(refusal);
                continue;
            }
            // A split opens a child exchange between the requester and the
            // message's one recipient; the parent goes on.
            let mut child: Option<(Uuid, ExchangeState)> = None;
            let recipients = if inbound.step.splits || inbound.step.reassigns {
                // Forward/refer hands the exchange to the message's one
                // recipient; a split opens a child exchange with it. The
                // requester is told either way.
                let Some(target) = hand_over_target(inbound, exchange) else {
                    plan.workflow_refusals.push(refuse(
                        inbound,
                        RejectionCode::InvalidRecipients,
                        format!("`{action}` names exactly one authority, other than the parties"),
                        now,
                    ));
                    continue;
                };
                if inbound.step.splits {
                    let state = ExchangeState {
                        procedure: procedure.to_owned(),
                        state: inbound.step.opening_state.clone(),
                        requester: exchange.requester.clone(),
                        responder: target.clone(),
                        recipients: None,
                        released: true,
                    };
                    child = Some((inbound.message_id.opened_exchange().as_uuid(), state));
                } else {
                    exchange.responder = target.clone();
                }
                vec![target, exchange.requester.clone()]
            } else {
                let counterpart = match role {
                    Role::Requester => exchange.responder.clone(),
                    Role::Responder => exchange.requester.clone(),
                };
                if !inbound.recipients.is_empty()
                    && (inbound.recipients.len() != 1
                        || inbound.recipients[0].as_str() != counterpart)
                {
                    plan.workflow_refusals.push(refuse(
                        inbound,
                        RejectionCode::InvalidRecipients,
                        format!("a follow-up goes to the other party, `{counterpart}`; leave recipients empty or name it"),
                        now,
                    ));
                    continue;
                }
                vec![counterpart]
            };
            let from = std::mem::replace(&mut exchange.state, inbound.step.to.clone());
            plan.record_change(&new_ids, exchange_id, exchange);
            match child {
                Some((child_id, state)) => {
                    // The parent's step is recorded on the parent; the message
                    // itself opens (and belongs to) the child.
                    plan.transitions.push(Transition {
                        exchange_id,
                        message_id: id,
                        action: action.to_owned(),
                        from: Some(from),
                        to: inbound.step.to.clone(),
                    });
                    let opening = state.state.clone();
                    plan.open(
                        &mut exchanges,
                        &mut new_ids,
                        NewExchange {
                            id: child_id,
                            opened_by: id,
                            state,
                            parent: Some(exchange_id),
                        },
                    );
                    parent = Some(exchange_id);
                    next_state = opening;
                    (child_id, None, recipients)
                }
                None => (exchange_id, Some(from), recipients),
            }
        };

        // Group recipients by endpoint: one copy per endpoint queue.
        let mut by_endpoint: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut missing = None;
        for r in &recipients {
            match registry.authority(r) {
                Some(a) => by_endpoint
                    .entry(a.endpoint.to_string())
                    .or_default()
                    .push(r.clone()),
                None => missing = Some(r.clone()),
            }
        }
        if let Some(r) = missing {
            // Authorities are never removed, so this snapshot is older than
            // the exchange (another hub registered `r` moments ago): the whole
            // plan is dropped and made again on a fresh registry.
            plan.stale = Some(r);
            return plan;
        }

        seen.insert(id, inbound.digest);
        if inbound.step.closes {
            plan.closed.push(exchange_id);
        }
        plan.transitions.push(Transition {
            exchange_id,
            message_id: id,
            action: action.to_owned(),
            from,
            to: next_state.clone(),
        });
        for (endpoint, rcpts) in by_endpoint {
            let mut headers = BTreeMap::new();
            headers.insert(HEADER_SENDER.to_owned(), inbound.sender.to_string());
            headers.insert(HEADER_RECIPIENTS.to_owned(), rcpts.join(","));
            headers.insert(
                HEADER_SCHEMA_VERSION.to_owned(),
                inbound.schema_version.to_string(),
            );
            if let Some(tp) = &inbound.traceparent {
                headers.insert(HEADER_TRACEPARENT.to_owned(), tp.clone());
            }
            if let Some(parent) = parent {
                headers.insert(HEADER_PARENT_EXCHANGE.to_owned(), parent.to_string());
            }
            plan.outbox.push(OutboxRow {
                // The recipient sees the sender's message_id: with several
                // endpoints each gets its own queue copy under the same id.
                id: if recipients.len() == rcpts.len() {
                    id
                } else {
                    derived(id, &endpoint)
                },
                kind: OutboxKind::Delivery,
                source_message_id: id.to_string(),
                endpoint,
                recipients: rcpts,
                exchange_id: Some(exchange_id),
                message_type: inbound.message_type.to_string(),
                headers,
                body: inbound.raw.clone(),
            });
        }
        let receipt = Receipt {
            message_id: id,
            exchange_id,
            message_type: inbound.message_type.to_string(),
            state: next_state.clone(),
            recipients: recipients.clone(),
            accepted_at: now,
        };
        plan.receipts
            .push((inbound.sender_endpoint.to_string(), receipt));
        plan.messages.push((inbound, exchange_id, recipients));
    }
    plan
}

impl Plan<'_> {
    /// Records an exchange the batch opens (by a message, or a split's child).
    pub(super) fn open(
        &mut self,
        exchanges: &mut HashMap<Uuid, ExchangeState>,
        new_ids: &mut HashSet<Uuid>,
        exchange: NewExchange,
    ) {
        exchanges.insert(exchange.id, exchange.state.clone());
        new_ids.insert(exchange.id);
        self.new_exchanges.push(exchange);
    }

    /// Records an exchange's new state: on its row if this batch opens it,
    /// else as an update.
    pub(super) fn record_change(
        &mut self,
        new_ids: &HashSet<Uuid>,
        id: Uuid,
        exchange: &ExchangeState,
    ) {
        if new_ids.contains(&id) {
            if let Some(n) = self.new_exchanges.iter_mut().find(|n| n.id == id) {
                n.state = exchange.clone();
            }
        } else {
            self.changed.insert(
                id,
                (
                    exchange.state.clone(),
                    exchange.responder.clone(),
                    exchange.released,
                ),
            );
        }
    }
}

/// The exchange a follow-up continues (locked by this batch), or why not.
// A refusal is the cold path (see fanout::plan_message).
#[allow(clippy::result_large_err)]
pub(super) fn continued<'e>(
    exchanges: &'e mut HashMap<Uuid, ExchangeState>,
    inbound: &Inbound,
    now: DateTime<Utc>,
) -> Result<(Uuid, &'e mut ExchangeState), Refusal> {
    let procedure = inbound.message_type.procedure.as_str();
    let id = inbound
        .exchange
        .expect("decode guarantees a follow-up names its exchange")
        .as_uuid();
    match exchanges.get_mut(&id).filter(|e| e.procedure == procedure) {
        Some(exchange) => Ok((id, exchange)),
        None => Err(refuse(
            inbound,
            RejectionCode::UnknownExchange,
            format!("no {procedure} exchange has id {id}"),
            now,
        )),
    }
}

/// May the sender, in `role`, take the message's action from `state`?
// A refusal is the cold path (see fanout::plan_message).
#[allow(clippy::result_large_err)]
pub(super) fn check_step(
    inbound: &Inbound,
    role: Role,
    state: &str,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let action = inbound.message_type.action.as_str();
    if role != inbound.step.by {
        return Err(refuse(
            inbound,
            RejectionCode::ActionNotAllowedForRole,
            format!(
                "`{action}` is taken by the {}, and `{}` is the {}",
                inbound.step.by.as_str(),
                inbound.sender,
                role.as_str()
            ),
            now,
        ));
    }
    if !inbound.step.from.iter().any(|s| s == state) {
        return Err(refuse(
            inbound,
            RejectionCode::ActionNotAllowedInState,
            format!("`{action}` is not allowed in state `{state}`"),
            now,
        ));
    }
    Ok(())
}

/// The authority a forward or split names: exactly one recipient, not already
/// a party to the exchange.
fn hand_over_target(inbound: &Inbound, exchange: &ExchangeState) -> Option<String> {
    match inbound.recipients.as_slice() {
        [one] if one.as_str() != exchange.responder && one.as_str() != exchange.requester => {
            Some(one.to_string())
        }
        _ => None,
    }
}

/// `ReceiptBatch` as it goes on the wire, serialized from borrowed receipts:
/// a batch's receipts are both stored (in this row) and held by the pipeline,
/// and need not be copied for it.
#[derive(serde::Serialize)]
struct ReceiptBatchOf<'a> {
    receipts: &'a [Receipt],
}

/// The message carrying `receipts` to a sender endpoint. Its id is derived
/// from the receipts it carries, so the same set re-sent has the same id.
pub fn receipt_row(endpoint: String, receipts: &[Receipt]) -> OutboxRow {
    let mut name = Vec::with_capacity(receipts.len() * 16);
    for r in receipts {
        name.extend_from_slice(
            receipt_id(MessageId::new(r.message_id))
                .as_uuid()
                .as_bytes(),
        );
    }
    OutboxRow {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
        kind: OutboxKind::Receipts,
        source_message_id: receipts
            .first()
            .map(|r| r.message_id.to_string())
            .unwrap_or_default(),
        endpoint,
        recipients: Vec::new(),
        exchange_id: None,
        message_type: TYPE_RECEIPTS.to_owned(),
        headers: BTreeMap::new(),
        body: serde_json::to_vec(&ReceiptBatchOf { receipts }).expect("receipts serialize"),
    }
}

/// Receipts of messages already stored, rebuilt from the database.
async fn stored_receipts(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(String, Receipt)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    type Row = (
        Uuid,
        Uuid,
        String,
        String,
        Vec<String>,
        DateTime<Utc>,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT m.id, m.exchange_id, m.message_type, t.to_state, m.recipients, m.received_at, m.sender_endpoint
         FROM messages m JOIN transitions t ON t.message_id = m.id AND t.exchange_id = m.exchange_id
         WHERE m.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(message_id, exchange_id, message_type, state, recipients, accepted_at, endpoint)| {
                let receipt = Receipt {
                    message_id,
                    exchange_id,
                    message_type,
                    state,
                    recipients,
                    accepted_at,
                };
                (endpoint, receipt)
            },
        )
        .collect())
}

pub(super) fn derived(id: Uuid, purpose: &str) -> Uuid {
    let mut name = id.as_bytes().to_vec();
    name.extend_from_slice(purpose.as_bytes());
    Uuid::new_v5(&Uuid::NAMESPACE_OID, &name)
}

pub(super) fn refuse(
    inbound: &Inbound,
    code: RejectionCode,
    detail: String,
    now: DateTime<Utc>,
) -> Refusal {
    let id = inbound.message_id.to_string();
    Refusal {
        message_id: Some(id.clone()),
        user_id: Some(inbound.sender_endpoint.to_string()),
        message_type: Some(inbound.message_type.to_string()),
        reply_to: Some(inbound.sender_endpoint.clone()),
        rejection: imi_schemas::protocol::Rejection::new(Some(id), code, detail, Vec::new(), now),
        body: inbound.raw.clone(),
        body_size: inbound.raw.len(),
        digest: inbound.digest,
    }
}

/// The rejection's outbox row, when the sender has an inbox to answer.
fn rejection_reply(refusal: &Refusal) -> Option<OutboxRow> {
    refusal.reply_to.as_ref().map(|endpoint| {
        let mut name = refusal.message_id.clone().unwrap_or_default().into_bytes();
        name.extend_from_slice(&refusal.digest);
        name.extend_from_slice(refusal.rejection.code.as_str().as_bytes());
        OutboxRow {
            id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
            kind: OutboxKind::Rejection,
            source_message_id: refusal.message_id.clone().unwrap_or_default(),
            endpoint: endpoint.to_string(),
            recipients: Vec::new(),
            exchange_id: None,
            message_type: TYPE_REJECTION.to_owned(),
            headers: BTreeMap::new(),
            body: serde_json::to_vec(&refusal.rejection).expect("rejection serializes"),
        }
    })
}

async fn update_exchanges(
    conn: &mut PgConnection,
    changed: &HashMap<Uuid, (String, String, bool)>,
    recipients: &HashMap<Uuid, Vec<String>>,
) -> Result<(), sqlx::Error> {
    if !changed.is_empty() {
        let ids: Vec<Uuid> = changed.keys().copied().collect();
        let states: Vec<&str> = ids.iter().map(|id| changed[id].0.as_str()).collect();
        let responders: Vec<&str> = ids.iter().map(|id| changed[id].1.as_str()).collect();
        let released: Vec<bool> = ids.iter().map(|id| changed[id].2).collect();
        sqlx::query(
            "UPDATE exchanges e SET state = u.state, responder = u.responder, updated_at = now(),
                    released_at = CASE WHEN e.recipients IS NOT NULL AND u.released
                                       THEN coalesce(e.released_at, now()) END
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bool[]) AS u(id, state, responder, released)
             WHERE e.id = u.id",
        )
        .bind(ids)
        .bind(states)
        .bind(responders)
        .bind(released)
        .execute(&mut *conn)
        .await?;
    }
    // Rare (dissemination): one statement per exchange.
    for (id, all) in recipients {
        sqlx::query("UPDATE exchanges SET recipients = $2 WHERE id = $1")
            .bind(id)
            .bind(all)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Opens a batch and writes its outbox rows, in the caller's transaction: how
/// the hub's own messages (notices, a coordinator's step) reach the relay's
/// safety net before they are published.
pub async fn write_batch(
    conn: &mut PgConnection,
    instance: &str,
    rows: &[OutboxRow],
) -> Result<Uuid, sqlx::Error> {
    let batch_id = Uuid::now_v7();
    let mut writes = Writes::default();
    writes.batch(batch_id, instance);
    writes.outbox(batch_id, rows);
    writes.execute(conn).await?;
    Ok(batch_id)
}

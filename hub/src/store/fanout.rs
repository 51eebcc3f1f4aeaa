//! 1:N exchanges (notifications, alerts) inside the batch transaction.
//!
//! Recipients are resolved once, when the exchange opens (decode), and frozen
//! on the exchange. Until an action that broadcasts succeeds, and the
//! sender's national coordinator validated it where its country requires
//! that, the exchange's messages are *held*: stored, answered with a receipt,
//! delivered to nobody. On release every held message goes to every recipient
//! in order; after it, each message reaches every party but its author.
//!
//! Cost follows recipient *endpoints*, not authorities: one outbox row (one
//! queue copy) per endpoint, naming that endpoint's recipient authorities in
//! a header; per-authority delivery rows are written with one `UNNEST`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use imi_schemas::catalogue::{Role, VALIDATION_STATE};
use imi_schemas::protocol::{
    alert_routing_key, RejectionCode, HEADER_ACKNOWLEDGEMENT, HEADER_RECIPIENTS,
    HEADER_SCHEMA_VERSION, HEADER_SENDER, HEADER_TRACEPARENT,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::batch::{
    check_step, continued, derived, refuse, ExchangeState, NewExchange, Plan, Transition,
};
use super::{OutboxKind, OutboxRow};
use crate::pipeline::decode::{Inbound, OneToMany, Refusal};
use crate::registry::Registry;

/// One recipient authority's copy of a message (see migration 8).
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub outbox_id: Uuid,
    pub authority: String,
    pub message_id: Uuid,
    pub exchange_id: Uuid,
    pub endpoint: String,
}

/// A message to send, as stored or as just received.
pub struct Copy<'a> {
    pub message_id: Uuid,
    pub exchange_id: Uuid,
    pub message_type: String,
    pub sender: &'a str,
    pub schema_version: i32,
    pub traceparent: Option<&'a str>,
    pub raw: &'a [u8],
}

/// Messages already stored that must go to (more) recipients once the batch
/// has written its own: the held messages of an exchange being released, or
/// everything released so far for authorities added by dissemination.
pub struct Replay {
    pub exchange_id: Uuid,
    /// Replays the exchange's messages before this one.
    pub before: Uuid,
    pub recipients: Vec<String>,
    /// Distinguishes these copies' ids from earlier copies to the same
    /// endpoints (a dissemination's new authorities need a copy of their own).
    pub tag: String,
    /// Also publish each on `imi.alerts` (a release, not a dissemination).
    pub broadcast: Option<(String, String)>,
    /// Messages of this type are not replayed.
    pub skip_type: Option<String>,
    /// Where in the batch's outbox the copies go: before the current message.
    pub outbox_pos: usize,
}

/// The outbox rows (one per endpoint) and delivery rows (one per authority)
/// of one message to `recipients`. Errs with an authority no longer
/// registered.
pub fn fan_out(
    copy: &Copy<'_>,
    recipients: &[String],
    registry: &Registry,
    tag: &str,
) -> Result<(Vec<OutboxRow>, Vec<DeliveryRow>), String> {
    let mut by_endpoint: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in recipients {
        let authority = registry.authority(r).ok_or_else(|| r.clone())?;
        by_endpoint
            .entry(authority.endpoint.as_str())
            .or_default()
            .push(r.as_str());
    }
    let mut outbox = Vec::with_capacity(by_endpoint.len());
    let mut deliveries = Vec::with_capacity(recipients.len());
    for (endpoint, rcpts) in by_endpoint {
        let id = derived(copy.message_id, &format!("delivery:{endpoint}{tag}"));
        deliveries.extend(rcpts.iter().map(|a| DeliveryRow {
            outbox_id: id,
            authority: (*a).to_owned(),
            message_id: copy.message_id,
            exchange_id: copy.exchange_id,
            endpoint: endpoint.to_owned(),
        }));
        outbox.push(OutboxRow {
            id,
            kind: OutboxKind::Delivery,
            source_message_id: copy.message_id.to_string(),
            endpoint: endpoint.to_owned(),
            recipients: rcpts.iter().map(|a| (*a).to_owned()).collect(),
            exchange_id: Some(copy.exchange_id),
            message_type: copy.message_type.clone(),
            headers: delivery_headers(copy, &rcpts),
            body: copy.raw.to_vec(),
        });
    }
    Ok((outbox, deliveries))
}

fn delivery_headers(copy: &Copy<'_>, recipients: &[&str]) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    headers.insert(HEADER_ACKNOWLEDGEMENT.to_owned(), "requested".to_owned());
    headers.insert(HEADER_SENDER.to_owned(), copy.sender.to_owned());
    headers.insert(HEADER_RECIPIENTS.to_owned(), recipients.join(","));
    headers.insert(
        HEADER_SCHEMA_VERSION.to_owned(),
        copy.schema_version.to_string(),
    );
    if let Some(tp) = copy.traceparent {
        headers.insert(HEADER_TRACEPARENT.to_owned(), tp.to_owned());
    }
    headers
}

/// The copy of a released message on the `imi.alerts` topic exchange; its
/// routing key (`<area>.<procedure>.<origin country>`) travels in the
/// outbox's endpoint column.
pub fn broadcast_row(copy: &Copy<'_>, area: &str, procedure: &str) -> OutboxRow {
    let origin = copy.sender.get(..2).unwrap_or("");
    let mut headers = delivery_headers(copy, &[]);
    headers.remove(HEADER_RECIPIENTS);
    // Subscribers are not recipients: nothing to acknowledge.
    headers.remove(HEADER_ACKNOWLEDGEMENT);
    OutboxRow {
        id: derived(copy.message_id, "broadcast:"),
        kind: OutboxKind::Broadcast,
        source_message_id: copy.message_id.to_string(),
        endpoint: alert_routing_key(area, procedure, origin),
        recipients: Vec::new(),
        exchange_id: Some(copy.exchange_id),
        message_type: copy.message_type.clone(),
        headers,
        body: copy.raw.to_vec(),
    }
}

fn copy_of(inbound: &Inbound, exchange_id: Uuid) -> Copy<'_> {
    Copy {
        message_id: inbound.message_id.as_uuid(),
        exchange_id,
        message_type: inbound.message_type.to_string(),
        sender: inbound.sender.as_str(),
        schema_version: inbound.schema_version as i32,
        traceparent: inbound.traceparent.as_deref(),
        raw: &inbound.raw,
    }
}

/// Plans one message of a 1:N exchange. On success the message, its
/// transition, its copies and its receipt are in `plan`.
// A refusal is the cold path, built once per refused message; boxing it
// would only move the allocation.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
pub(super) fn plan_message<'a>(
    plan: &mut Plan<'a>,
    inbound: &'a Inbound,
    step: &OneToMany,
    exchanges: &mut HashMap<Uuid, ExchangeState>,
    new_ids: &mut HashSet<Uuid>,
    registry: &Registry,
    gates: &HashSet<(String, String)>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let id = inbound.message_id.as_uuid();
    let procedure = inbound.message_type.procedure.as_str();
    let action = inbound.message_type.action.as_str();
    let sender = inbound.sender.as_str();
    let message_type = inbound.message_type.to_string();
    let gated =
        || step.can_be_validated && gates.contains(&(sender[..2].to_owned(), step.area.clone()));

    let (exchange_id, from, to, recipients): (Uuid, Option<String>, String, Vec<String>) =
        if inbound.step.opens {
            let exchange_id = inbound.message_id.opened_exchange().as_uuid();
            let frozen: Vec<String> = inbound.recipients.iter().map(|a| a.to_string()).collect();
            let (to, release) = match (step.broadcasts, gated()) {
                (true, true) => (VALIDATION_STATE.to_owned(), false),
                (true, false) => (inbound.step.to.clone(), true),
                (false, _) => (inbound.step.to.clone(), false),
            };
            let state = ExchangeState {
                procedure: procedure.to_owned(),
                state: to.clone(),
                requester: sender.to_owned(),
                responder: String::new(),
                recipients: Some(frozen.clone()),
                released: release,
            };
            plan.open(
                exchanges,
                new_ids,
                NewExchange {
                    id: exchange_id,
                    opened_by: id,
                    state,
                    parent: None,
                },
            );
            for (code, date, days) in &step.field_deadlines {
                let due = (*date + Duration::days(i64::from(*days) + 1))
                    .and_time(NaiveTime::MIN)
                    .and_utc();
                plan.field_deadlines
                    .push((exchange_id, code.clone(), *date, due));
            }
            let recipients = if release { frozen } else { Vec::new() };
            (exchange_id, None, to, recipients)
        } else {
            let (exchange_id, exchange) = continued(exchanges, inbound, now)?;
            let frozen = exchange.recipients.clone().unwrap_or_default();
            let role = if sender == exchange.requester {
                Role::Requester
            } else if frozen.iter().any(|r| r == sender) {
                Role::Responder
            } else {
                return Err(refuse(
                inbound,
                RejectionCode::ActionNotAllowedForRole,
                format!("`{sender}` is neither the originator nor a recipient of exchange {exchange_id}"),
                now,
            ));
            };
            check_step(inbound, role, &exchange.state, now)?;
            let mut to = inbound.step.to.clone();
            let mut release = false;
            let recipients: Vec<String> = if step.disseminates {
                // Further authorities of the disseminator's own country, not yet
                // recipients; the originator learns who was added.
                let mut added: Vec<String> =
                    inbound.recipients.iter().map(|a| a.to_string()).collect();
                added.sort();
                added.dedup();
                let fits = !added.is_empty()
                    && added.iter().all(|a| {
                        a.get(..2) == sender.get(..2)
                            && *a != exchange.requester
                            && !frozen.contains(a)
                    });
                if !fits {
                    return Err(refuse(
                    inbound,
                    RejectionCode::InvalidRecipients,
                    format!("`{action}` names authorities of `{sender}`'s own country that are not yet recipients"),
                    now,
                ));
                }
                let mut all = frozen.clone();
                all.extend(added.iter().cloned());
                exchange.recipients = Some(all.clone());
                plan.recipient_changes.insert(exchange_id, all);
                plan.replays.push(Replay {
                    exchange_id,
                    before: id,
                    recipients: added.clone(),
                    tag: format!("#{id}"),
                    broadcast: None,
                    // Earlier disseminations went to other newcomers only.
                    skip_type: Some(inbound.message_type.to_string()),
                    outbox_pos: plan.outbox.len(),
                });
                let mut to_them = added;
                to_them.push(exchange.requester.clone());
                to_them
            } else if !inbound.recipients.is_empty() {
                return Err(refuse(
                    inbound,
                    RejectionCode::InvalidRecipients,
                    "a follow-up of a 1:N exchange goes to all its parties; leave recipients empty"
                        .into(),
                    now,
                ));
            } else if step.broadcasts && !exchange.released {
                if gated() {
                    to = VALIDATION_STATE.to_owned();
                    Vec::new()
                } else {
                    release = true;
                    plan.replays.push(Replay {
                        exchange_id,
                        before: id,
                        recipients: frozen.clone(),
                        tag: String::new(),
                        broadcast: Some((step.area.clone(), procedure.to_owned())),
                        skip_type: None,
                        outbox_pos: plan.outbox.len(),
                    });
                    frozen
                }
            } else if exchange.released {
                let mut parties = frozen;
                parties.push(exchange.requester.clone());
                parties.retain(|p| p != sender);
                parties
            } else {
                // Held: a draft (or one awaiting validation) reaches nobody yet.
                Vec::new()
            };
            let from = std::mem::replace(&mut exchange.state, to.clone());
            exchange.released |= release;
            plan.record_change(new_ids, exchange_id, exchange);
            (exchange_id, Some(from), to, recipients)
        };

    let copy = copy_of(inbound, exchange_id);
    let (rows, deliveries) = match fan_out(&copy, &recipients, registry, "") {
        Ok(r) => r,
        Err(authority) => {
            // This registry snapshot is older than the exchange: the batch is
            // planned again on a fresh one (the plan, mutated above, is void).
            plan.stale = Some(authority);
            return Ok(());
        }
    };
    let released = exchanges.get(&exchange_id).is_some_and(|e| e.released);
    plan.outbox.extend(rows);
    plan.deliveries.extend(deliveries);
    // Dissemination copies are not news for subscribers; everything else
    // released is.
    if released && !step.disseminates {
        plan.outbox
            .push(broadcast_row(&copy, &step.area, procedure));
    }
    if inbound.step.closes && to == inbound.step.to {
        plan.closed.push(exchange_id);
    }
    plan.transitions.push(Transition {
        exchange_id,
        message_id: id,
        action: action.to_owned(),
        from,
        to: to.clone(),
    });
    plan.receipts.push((
        inbound.sender_endpoint.to_string(),
        imi_schemas::protocol::Receipt {
            message_id: id,
            exchange_id,
            message_type,
            state: to,
            recipients: recipients.clone(),
            accepted_at: now,
        },
    ));
    plan.messages.push((inbound, exchange_id, recipients));
    Ok(())
}

/// A message of an exchange, as stored.
pub struct StoredMessage {
    pub id: Uuid,
    pub message_type: String,
    pub sender: String,
    pub schema_version: i32,
    pub traceparent: Option<String>,
    pub raw: Vec<u8>,
}

impl StoredMessage {
    pub fn copy(&self, exchange_id: Uuid) -> Copy<'_> {
        Copy {
            message_id: self.id,
            exchange_id,
            message_type: self.message_type.clone(),
            sender: &self.sender,
            schema_version: self.schema_version,
            traceparent: self.traceparent.as_deref(),
            raw: &self.raw,
        }
    }
}

/// The exchange's messages in the order the workflow took them, up to (not
/// including) `before` when given.
pub async fn exchange_messages(
    conn: &mut PgConnection,
    exchange_id: Uuid,
    before: Option<Uuid>,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    type Row = (Uuid, String, String, i32, Option<String>, Vec<u8>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT m.id, m.message_type, m.sender, m.schema_version, m.traceparent, m.raw
         FROM messages m JOIN transitions t ON t.message_id = m.id AND t.exchange_id = m.exchange_id
         WHERE m.exchange_id = $1 ORDER BY t.id",
    )
    .bind(exchange_id)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, message_type, sender, schema_version, traceparent, raw) in rows {
        if Some(id) == before {
            break;
        }
        out.push(StoredMessage {
            id,
            message_type,
            sender,
            schema_version,
            traceparent,
            raw,
        });
    }
    Ok(out)
}

/// Rows for replaying stored messages to recipients (release, dissemination).
pub fn replay_rows(
    messages: &[StoredMessage],
    exchange_id: Uuid,
    recipients: &[String],
    tag: &str,
    broadcast: Option<&(String, String)>,
    registry: &Registry,
) -> Result<(Vec<OutboxRow>, Vec<DeliveryRow>), String> {
    let mut outbox = Vec::new();
    let mut deliveries = Vec::new();
    for m in messages {
        let copy = m.copy(exchange_id);
        let (rows, dels) = fan_out(&copy, recipients, registry, tag)?;
        outbox.extend(rows);
        deliveries.extend(dels);
        if let Some((area, procedure)) = broadcast {
            outbox.push(broadcast_row(&copy, area, procedure));
        }
    }
    Ok((outbox, deliveries))
}

pub async fn insert_deliveries(
    conn: &mut PgConnection,
    rows: &[DeliveryRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let outbox: Vec<Uuid> = rows.iter().map(|r| r.outbox_id).collect();
    let authorities: Vec<&str> = rows.iter().map(|r| r.authority.as_str()).collect();
    let messages: Vec<Uuid> = rows.iter().map(|r| r.message_id).collect();
    let exchanges: Vec<Uuid> = rows.iter().map(|r| r.exchange_id).collect();
    let endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint.as_str()).collect();
    sqlx::query(
        "INSERT INTO deliveries (outbox_id, authority_id, message_id, exchange_id, endpoint_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(outbox)
    .bind(authorities)
    .bind(messages)
    .bind(exchanges)
    .bind(endpoints)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_field_deadlines(
    conn: &mut PgConnection,
    rows: &[(Uuid, String, chrono::NaiveDate, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    for (exchange, code, date, due) in rows {
        sqlx::query(
            "INSERT INTO field_deadlines (exchange_id, deadline, field_date, due_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(exchange)
        .bind(code)
        .bind(date)
        .bind(due)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

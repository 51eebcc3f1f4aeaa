//! Acknowledgements of 1:N deliveries: a recipient system says it has a
//! message (`imi.acknowledgement`). Applied in the batch transaction with two
//! statements for the whole batch; the originator learns who acknowledged in
//! one `imi.acknowledgements` message per batch.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use imi_schemas::protocol::{Acknowledged, Receipt, TYPE_ACKNOWLEDGEMENT};
use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use crate::inbound::{Ack, Refusal};
use crate::outgoing::{self, OutboxRow};
use crate::registry::Registry;

#[derive(Default)]
pub(crate) struct AckOutcome {
    /// (acknowledging endpoint, receipt).
    pub(crate) receipts: Vec<(String, Receipt)>,
    /// `imi.acknowledgements` for the originators' endpoints.
    pub(crate) to_originators: Vec<OutboxRow>,
    pub(crate) refused: Vec<Refusal>,
}

/// One delivery row an acknowledgement names.
#[derive(sqlx::FromRow)]
struct Matched {
    idx: i32,
    outbox_id: Uuid,
    authority_id: String,
    exchange_id: Uuid,
    message_id: Uuid,
    acknowledged_at: Option<DateTime<Utc>>,
    requester: String,
}

#[instrument(skip_all, fields(acks = acks.len()))]
pub(crate) async fn apply(
    conn: &mut PgConnection,
    acks: &[&Ack],
    registry: &Registry,
    now: DateTime<Utc>,
) -> Result<AckOutcome, sqlx::Error> {
    let mut outcome = AckOutcome::default();
    if acks.is_empty() {
        return Ok(outcome);
    }
    // As PostgreSQL keeps it, so a receipt sent again for a retried
    // acknowledgement carries the very time the first one did.
    let now = now.trunc_subsecs(6);
    // One (copy, endpoint, authority or NULL = all) line per named authority.
    let (mut copies, mut endpoints, mut authorities, mut index) = (vec![], vec![], vec![], vec![]);
    for (i, ack) in acks.iter().enumerate() {
        let named: Vec<Option<&str>> = if ack.authorities.is_empty() {
            vec![None]
        } else {
            ack.authorities.iter().map(|a| Some(a.as_str())).collect()
        };
        for a in named {
            copies.push(ack.acknowledged);
            endpoints.push(ack.sender_endpoint.as_str());
            authorities.push(a);
            index.push(i as i32);
        }
    }
    let rows: Vec<Matched> = sqlx::query_as(
        "SELECT a.idx, d.outbox_id, d.authority_id, d.exchange_id, d.message_id, d.acknowledged_at, e.requester
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int[]) AS a(outbox_id, endpoint_id, authority_id, idx)
         JOIN deliveries d ON d.outbox_id = a.outbox_id AND d.endpoint_id = a.endpoint_id
                          AND (a.authority_id IS NULL OR d.authority_id = a.authority_id)
         JOIN exchanges e ON e.id = d.exchange_id
         ORDER BY a.idx, d.authority_id
         FOR UPDATE OF d",
    )
    .bind(&copies)
    .bind(&endpoints)
    .bind(&authorities)
    .bind(&index)
    .fetch_all(&mut *conn)
    .await?;

    let mut matched: HashMap<usize, Vec<&Matched>> = HashMap::new();
    for row in &rows {
        matched.entry(row.idx as usize).or_default().push(row);
    }
    let (mut new_copies, mut new_authorities) = (Vec::new(), Vec::new());
    let mut recorded: HashSet<(Uuid, &str)> = HashSet::new();
    let mut by_originator: BTreeMap<String, Vec<Acknowledged>> = BTreeMap::new();
    for (i, ack) in acks.iter().enumerate() {
        let found = matched.remove(&i).unwrap_or_default();
        let complete = !found.is_empty()
            && (ack.authorities.is_empty() || found.len() == ack.authorities.len());
        if !complete {
            outcome.refused.push(ack.refused(now));
            continue;
        }
        // The exchange and its originator, for the receipt.
        let summary = found.first().map(|r| (r.exchange_id, r.requester.clone()));
        // A retry of an acknowledgement already recorded is answered with
        // the receipt it got then.
        let mut accepted_at = found.iter().filter_map(|r| r.acknowledged_at).min();
        for row in found {
            // Already acknowledged (a retry): nothing new to record or tell.
            let first = recorded.insert((row.outbox_id, row.authority_id.as_str()));
            if row.acknowledged_at.is_some() || !first {
                continue;
            }
            accepted_at = Some(now);
            new_copies.push(row.outbox_id);
            new_authorities.push(row.authority_id.clone());
            if let Some(origin) = registry.authority(&row.requester) {
                by_originator
                    .entry(origin.endpoint.to_string())
                    .or_default()
                    .push(Acknowledged {
                        exchange_id: row.exchange_id,
                        message_id: row.message_id,
                        authority: row.authority_id.clone(),
                        acknowledged_at: now,
                    });
            }
        }
        outcome.receipts.push((
            ack.sender_endpoint.to_string(),
            Receipt {
                message_id: ack.message_id.as_uuid(),
                exchange_id: summary.as_ref().map(|s| s.0).unwrap_or_default(),
                message_type: TYPE_ACKNOWLEDGEMENT.to_owned(),
                state: "acknowledged".to_owned(),
                recipients: summary.map(|s| vec![s.1]).unwrap_or_default(),
                accepted_at: accepted_at.unwrap_or(now),
            },
        ));
    }
    if !new_copies.is_empty() {
        sqlx::query(
            "UPDATE deliveries d SET acknowledged_at = $3
             FROM UNNEST($1::uuid[], $2::text[]) AS u(outbox_id, authority_id)
             WHERE d.outbox_id = u.outbox_id AND d.authority_id = u.authority_id",
        )
        .bind(&new_copies)
        .bind(&new_authorities)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    outcome.to_originators = by_originator
        .into_iter()
        .map(|(endpoint, acknowledged)| outgoing::acknowledgements(endpoint, acknowledged))
        .collect();
    Ok(outcome)
}

//! Acknowledgements of 1:N deliveries: a recipient system says it has a
//! message (`imi.acknowledgement`). Applied in the batch transaction with two
//! statements for the whole batch; the originator learns who acknowledged in
//! one `imi.acknowledgements` message per batch.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use imi_schemas::protocol::{
    Acknowledged, AcknowledgementBatch, Receipt, Rejection, RejectionCode, TYPE_ACKNOWLEDGEMENT,
    TYPE_ACKNOWLEDGEMENTS,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{OutboxKind, OutboxRow};
use crate::pipeline::decode::{Ack, Refusal};
use crate::registry::Registry;

#[derive(Default)]
pub struct AckOutcome {
    /// (acknowledging endpoint, receipt).
    pub receipts: Vec<(String, Receipt)>,
    /// `imi.acknowledgements` for the originators' endpoints.
    pub to_originators: Vec<OutboxRow>,
    pub refused: Vec<Refusal>,
}

pub async fn apply(
    conn: &mut PgConnection,
    acks: &[&Ack],
    registry: &Registry,
    now: DateTime<Utc>,
) -> Result<AckOutcome, sqlx::Error> {
    let mut outcome = AckOutcome::default();
    if acks.is_empty() {
        return Ok(outcome);
    }
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
    type Row = (i32, Uuid, String, Uuid, Uuid, Option<DateTime<Utc>>, String);
    let rows: Vec<Row> = sqlx::query_as(
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

    let mut matched: HashMap<usize, Vec<&Row>> = HashMap::new();
    for row in &rows {
        matched.entry(row.0 as usize).or_default().push(row);
    }
    let (mut new_copies, mut new_authorities) = (Vec::new(), Vec::new());
    let mut recorded: HashSet<(Uuid, &str)> = HashSet::new();
    let mut by_originator: BTreeMap<String, Vec<Acknowledged>> = BTreeMap::new();
    for (i, ack) in acks.iter().enumerate() {
        let found = matched.remove(&i).unwrap_or_default();
        let complete = !found.is_empty()
            && (ack.authorities.is_empty() || found.len() == ack.authorities.len());
        if !complete {
            outcome.refused.push(refusal(ack, now));
            continue;
        }
        // The exchange and its originator, for the receipt.
        let summary = found.first().map(|r| (r.3, r.6.clone()));
        for (_, copy, authority, exchange, message, acknowledged_at, originator) in found {
            // Already acknowledged (a retry): nothing new to record or tell.
            if acknowledged_at.is_some() || !recorded.insert((*copy, authority.as_str())) {
                continue;
            }
            new_copies.push(*copy);
            new_authorities.push(authority.clone());
            if let Some(origin) = registry.authority(originator) {
                by_originator
                    .entry(origin.endpoint.to_string())
                    .or_default()
                    .push(Acknowledged {
                        exchange_id: *exchange,
                        message_id: *message,
                        authority: authority.clone(),
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
                accepted_at: now,
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
    for (endpoint, acknowledgements) in by_originator {
        let mut name = Vec::new();
        for a in &acknowledgements {
            name.extend_from_slice(a.message_id.as_bytes());
            name.extend_from_slice(a.authority.as_bytes());
        }
        outcome.to_originators.push(OutboxRow {
            id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
            kind: OutboxKind::Acknowledgements,
            source_message_id: acknowledgements[0].message_id.to_string(),
            endpoint,
            recipients: Vec::new(),
            exchange_id: None,
            message_type: TYPE_ACKNOWLEDGEMENTS.to_owned(),
            headers: BTreeMap::new(),
            body: serde_json::to_vec(&AcknowledgementBatch { acknowledgements })
                .expect("acknowledgements serialize"),
        });
    }
    Ok(outcome)
}

fn refusal(ack: &Ack, now: DateTime<Utc>) -> Refusal {
    let id = ack.message_id.to_string();
    let detail = format!(
        "endpoint `{}` received no copy {} for {}",
        ack.sender_endpoint,
        ack.acknowledged,
        if ack.authorities.is_empty() {
            "any of its authorities".to_owned()
        } else {
            ack.authorities.join(", ")
        }
    );
    Refusal {
        message_id: Some(id.clone()),
        user_id: Some(ack.sender_endpoint.to_string()),
        message_type: Some(TYPE_ACKNOWLEDGEMENT.to_owned()),
        reply_to: Some(ack.sender_endpoint.clone()),
        rejection: Rejection::new(
            Some(id),
            RejectionCode::UnknownDelivery,
            detail,
            Vec::new(),
            now,
        ),
        body: ack.raw.clone(),
        body_size: ack.raw.len(),
        digest: ack.digest,
    }
}

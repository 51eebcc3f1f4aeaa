//! Outbox queries: marking batches published, finding what a crash or an
//! outage left unpublished.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use crate::outgoing::{DeliveryHeaders, OutboxKind, OutboxRow};

/// Marks batches published: every row confirmed (or recorded unroutable),
/// each at the moment its last confirm arrived.
#[instrument(skip_all, fields(batches = batches.len()))]
pub(crate) async fn mark_published(
    pool: &PgPool,
    batches: &[(Uuid, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = batches.iter().map(|(id, _)| *id).collect();
    let times: Vec<DateTime<Utc>> = batches.iter().map(|(_, at)| *at).collect();
    sqlx::query(
        "UPDATE batches b SET published_at = u.at
         FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, at)
         WHERE b.id = u.id AND b.published_at IS NULL",
    )
    .bind(ids)
    .bind(times)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks published the unpublished batches older than `grace` seconds that
/// have nothing to publish: a batch whose every message was a duplicate
/// holds no rows of its own, and a hub killed before marking it leaves it
/// open. Left open, such batches would fill the relay's page (it takes the
/// oldest batches first) and keep it from the batches that do have rows.
#[instrument(skip_all)]
pub(crate) async fn close_empty_batches(pool: &PgPool, grace: f64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE batches b SET published_at = now()
         WHERE b.published_at IS NULL AND b.created_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.batch_id = b.id)",
    )
    .bind(grace)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Records rows the broker returned as unroutable (their endpoint's queue is
/// missing), so the relay keeps retrying them; clears rows now confirmed.
#[instrument(skip_all, fields(unroutable = unroutable.len(), routed = routed.len()))]
pub(crate) async fn mark_unroutable(
    pool: &PgPool,
    unroutable: &[Uuid],
    routed: &[Uuid],
) -> Result<(), sqlx::Error> {
    if !unroutable.is_empty() {
        sqlx::query("UPDATE outbox SET unroutable_since = coalesce(unroutable_since, now()) WHERE id = ANY($1)")
            .bind(unroutable)
            .execute(pool)
            .await?;
    }
    if !routed.is_empty() {
        sqlx::query("UPDATE outbox SET unroutable_since = NULL WHERE id = ANY($1) AND unroutable_since IS NOT NULL")
            .bind(routed)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// An outbox row as stored, with what its headers are derived from when it
/// copies a stored message.
#[derive(sqlx::FromRow)]
struct UnpublishedRow {
    batch_id: Uuid,
    id: Uuid,
    kind: String,
    source_message_id: String,
    endpoint_id: String,
    recipients: Vec<String>,
    exchange_id: Option<Uuid>,
    message_type: String,
    headers: serde_json::Value,
    body: Option<Vec<u8>>,
    sender: Option<String>,
    schema_version: Option<i32>,
    traceparent: Option<String>,
    parent_exchange: Option<Uuid>,
    one_to_many: Option<bool>,
}

impl UnpublishedRow {
    fn into_outbox_row(mut self) -> (Uuid, OutboxRow) {
        // A delivery's body is the stored message, sealed at rest.
        if let Some(body) = &mut self.body {
            crate::at_rest::open_in_place(body);
        }
        let kind = OutboxKind::parse(&self.kind);
        let headers = match (kind, &self.sender) {
            (OutboxKind::Delivery | OutboxKind::Broadcast, Some(sender)) => {
                let delivery = kind == OutboxKind::Delivery;
                DeliveryHeaders {
                    sender,
                    recipients: if delivery { &self.recipients } else { &[] },
                    schema_version: self.schema_version.unwrap_or(1),
                    traceparent: self.traceparent.as_deref(),
                    parent_exchange: self.parent_exchange.filter(|_| delivery),
                    acknowledgement_requested: delivery && self.one_to_many == Some(true),
                }
                .to_map()
            }
            _ => serde_json::from_value(self.headers).unwrap_or_default(),
        };
        let row = OutboxRow {
            id: self.id,
            kind,
            source_message_id: self.source_message_id,
            endpoint: self.endpoint_id,
            recipients: self.recipients,
            exchange_id: self.exchange_id,
            message_type: self.message_type,
            headers,
            body: self.body.unwrap_or_default(),
        };
        (self.batch_id, row)
    }
}

/// Rows of batches not published `grace_seconds` after they committed (a
/// crash or a broker outage left them), and rows recorded unroutable: the
/// relay publishes them again. At most `limit` batches, each whole (a batch
/// is marked published only once all its rows went out), in commit order and
/// each batch's rows in the order it wrote them. Returns (batch id, row).
#[instrument(skip_all)]
pub(crate) async fn unpublished(
    pool: &PgPool,
    grace_seconds: f64,
    limit: i64,
) -> Result<Vec<(Uuid, OutboxRow)>, sqlx::Error> {
    let rows: Vec<UnpublishedRow> = sqlx::query_as(
        // A copy's headers are built from its message and exchange, as the
        // live pipeline built them (outgoing::DeliveryHeaders).
        "WITH due AS (
             SELECT id, created_at FROM batches
             WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1)
             ORDER BY created_at LIMIT $2
         )
         SELECT o.batch_id, o.id, o.kind, o.source_message_id, o.endpoint_id, o.recipients, o.exchange_id,
                o.message_type, o.headers, coalesce(o.body, m.raw) AS body,
                m.sender, m.schema_version, m.traceparent,
                -- the message that opened a child exchange (a split)
                CASE WHEN e.opened_by = m.id THEN e.parent_id END AS parent_exchange,
                e.recipients IS NOT NULL AS one_to_many
         FROM outbox o
         JOIN batches b ON b.id = o.batch_id
         LEFT JOIN messages m
                ON o.kind IN ('delivery', 'broadcast')
               AND m.id = CASE WHEN o.kind IN ('delivery', 'broadcast') THEN o.source_message_id::uuid END
         LEFT JOIN exchanges e ON e.id = m.exchange_id
         WHERE o.batch_id IN (SELECT id FROM due) OR o.unroutable_since IS NOT NULL
         ORDER BY b.created_at, b.id, o.seq",
    )
    .bind(grace_seconds)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(UnpublishedRow::into_outbox_row)
        .collect())
}

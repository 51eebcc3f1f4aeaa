//! Outbox queries: marking batches published, finding what a crash or an
//! outage left unpublished.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use super::{OutboxKind, OutboxRow};

/// Marks batches published: every row confirmed (or recorded unroutable),
/// each at the moment its last confirm arrived.
#[instrument(skip_all, fields(batches = batches.len()))]
pub async fn mark_published(
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

/// Records rows the broker returned as unroutable (their endpoint's queue is
/// missing), so the relay keeps retrying them; clears rows now confirmed.
#[instrument(skip_all, fields(unroutable = unroutable.len(), routed = routed.len()))]
pub async fn mark_unroutable(
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

type Row = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    Vec<String>,
    Option<Uuid>,
    String,
    serde_json::Value,
    Option<Vec<u8>>,
);

fn to_outbox_row(row: Row) -> (Uuid, OutboxRow) {
    let (
        batch_id,
        id,
        kind,
        source,
        endpoint,
        recipients,
        exchange_id,
        message_type,
        headers,
        body,
    ) = row;
    let headers: BTreeMap<String, String> = serde_json::from_value(headers).unwrap_or_default();
    let row = OutboxRow {
        id,
        kind: OutboxKind::parse(&kind),
        source_message_id: source,
        endpoint,
        recipients,
        exchange_id,
        message_type,
        headers,
        body: body.unwrap_or_default(),
    };
    (batch_id, row)
}

/// Rows of batches not published `grace_seconds` after they committed (a
/// crash or a broker outage left them), and rows recorded unroutable: the
/// relay publishes them again. At most `limit` batches, each whole (a batch
/// is marked published only once all its rows went out), in commit order and
/// each batch's rows in the order it wrote them. Returns (batch id, row).
#[instrument(skip_all)]
pub async fn unpublished(
    pool: &PgPool,
    grace_seconds: f64,
    limit: i64,
) -> Result<Vec<(Uuid, OutboxRow)>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        // A delivery's headers are those store::batch builds for it.
        "WITH due AS (
             SELECT id, created_at FROM batches
             WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1)
             ORDER BY created_at LIMIT $2
         )
         SELECT o.batch_id, o.id, o.kind, o.source_message_id, o.endpoint_id, o.recipients, o.exchange_id,
                o.message_type,
                CASE WHEN o.kind = 'delivery' THEN jsonb_strip_nulls(jsonb_build_object(
                    'imi-sender', m.sender,
                    'imi-recipients', array_to_string(o.recipients, ','),
                    'imi-schema-version', m.schema_version::text,
                    'traceparent', m.traceparent,
                    -- the message that opened a child exchange (a split)
                    'imi-parent-exchange', CASE WHEN e.opened_by = m.id THEN e.parent_id::text END,
                    -- a copy of a 1:N message asks for an acknowledgement
                    'imi-acknowledgement', CASE WHEN e.recipients IS NOT NULL THEN 'requested' END))
                ELSE o.headers END,
                coalesce(o.body, m.raw)
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
    Ok(rows.into_iter().map(to_outbox_row).collect())
}

//! Outbox queries: marking rows confirmed, finding rows a crash left behind.

use std::collections::BTreeMap;

use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use super::{OutboxKind, OutboxRow};

/// Marks rows as confirmed by the broker.
#[instrument(skip_all, fields(rows = ids.len()))]
pub async fn mark_confirmed(pool: &PgPool, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET confirmed_at = now() WHERE id = ANY($1) AND confirmed_at IS NULL",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) const SELECT_ROWS: &str = "
    SELECT o.id, o.kind, o.source_message_id, o.endpoint_id, o.recipients, o.exchange_id,
           o.message_type, o.headers, coalesce(o.body, m.raw) AS body
    FROM outbox o
    LEFT JOIN messages m
           ON o.kind = 'delivery' AND m.id = CASE WHEN o.kind = 'delivery' THEN o.source_message_id::uuid END";

type Row = (
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

pub(super) fn to_outbox_row(row: Row) -> OutboxRow {
    let (id, kind, source, endpoint, recipients, exchange_id, message_type, headers, body) = row;
    let headers: BTreeMap<String, String> = serde_json::from_value(headers).unwrap_or_default();
    OutboxRow {
        id,
        kind: OutboxKind::parse(&kind),
        source_message_id: source,
        endpoint,
        recipients,
        exchange_id,
        message_type,
        headers,
        body: body.unwrap_or_default(),
    }
}

/// Rows not confirmed `seconds` after they were written: a crash or a broker
/// outage left them; the relay publishes them again.
#[instrument(skip_all)]
pub async fn unconfirmed_older_than(
    pool: &PgPool,
    seconds: f64,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let sql = format!(
        "{SELECT_ROWS} WHERE o.confirmed_at IS NULL AND o.created_at < now() - make_interval(secs => $1)
         ORDER BY o.created_at LIMIT $2"
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(seconds)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(to_outbox_row).collect())
}

/// Rows to publish again for a message that arrived a second time: its
/// receipt always (the sender is probably retrying because it missed it) and
/// any delivery not yet confirmed.
pub(super) async fn for_duplicates(
    conn: &mut sqlx::PgConnection,
    message_ids: &[String],
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let sql = format!(
        "{SELECT_ROWS} WHERE o.source_message_id = ANY($1) AND (o.kind <> 'delivery' OR o.confirmed_at IS NULL)"
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(message_ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(to_outbox_row).collect())
}

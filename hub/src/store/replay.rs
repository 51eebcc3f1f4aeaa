//! 1:N rows around the plan: the stored messages a release or dissemination
//! replays, the per-authority delivery rows, and deadlines counted from a
//! payload's date.

use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use crate::outgoing::{self, Copy, DeliveryRow, OutboxRow};
use crate::registry::Registry;
use crate::workflow::DueFromField;

/// A message of an exchange, as stored.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StoredMessage {
    pub(crate) id: Uuid,
    pub(crate) message_type: String,
    pub(crate) sender: String,
    pub(crate) schema_version: i32,
    pub(crate) traceparent: Option<String>,
    pub(crate) raw: Vec<u8>,
}

impl StoredMessage {
    pub(crate) fn copy(&self, exchange_id: Uuid) -> Copy<'_> {
        Copy {
            message_id: self.id,
            exchange_id,
            message_type: &self.message_type,
            sender: &self.sender,
            schema_version: self.schema_version,
            traceparent: self.traceparent.as_deref(),
            raw: &self.raw,
        }
    }
}

/// The exchange's messages in the order the workflow took them, up to (not
/// including) `before` when given.
#[instrument(skip_all, fields(exchange = %exchange_id))]
pub(crate) async fn exchange_messages(
    conn: &mut PgConnection,
    exchange_id: Uuid,
    before: Option<Uuid>,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let mut rows: Vec<StoredMessage> = sqlx::query_as(
        "SELECT m.id, m.message_type, m.sender, m.schema_version, m.traceparent, m.raw
         FROM messages m JOIN transitions t ON t.message_id = m.id AND t.exchange_id = m.exchange_id
         WHERE m.exchange_id = $1 ORDER BY t.id",
    )
    .bind(exchange_id)
    .fetch_all(conn)
    .await?;
    for m in &mut rows {
        crate::at_rest::open_in_place(&mut m.raw);
    }
    Ok(rows
        .into_iter()
        .take_while(|m| Some(m.id) != before)
        .collect())
}

/// Rows for replaying stored messages to recipients (release,
/// dissemination); `broadcast` is (area, procedure) for a release. Errs with
/// an authority the registry does not know.
pub(crate) fn replay_rows(
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
        let (rows, dels) = outgoing::fan_out(&copy, recipients, registry, tag)?;
        outbox.extend(rows);
        deliveries.extend(dels);
        if let Some((area, procedure)) = broadcast {
            outbox.push(outgoing::broadcast(&copy, area, procedure));
        }
    }
    Ok((outbox, deliveries))
}

#[instrument(skip_all, fields(rows = rows.len()))]
pub(crate) async fn insert_deliveries(
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

pub(crate) async fn insert_field_deadlines(
    conn: &mut PgConnection,
    rows: &[DueFromField],
) -> Result<(), sqlx::Error> {
    for row in rows {
        sqlx::query(
            "INSERT INTO field_deadlines (exchange_id, deadline, field_date, due_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(row.exchange_id)
        .bind(&row.deadline)
        .bind(row.field_date)
        .bind(row.due_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

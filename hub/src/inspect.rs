//! Read-only views of the hub's internals for the end-to-end tests: what
//! the outbox relay would publish now.

use std::collections::BTreeMap;

use sqlx::PgPool;
use uuid::Uuid;

/// A message the relay would publish, as it would publish it.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub batch_id: Uuid,
    pub message_id: Uuid,
    pub exchange_id: Option<Uuid>,
    /// The recipient endpoint (or a broadcast's routing key).
    pub endpoint: String,
    pub message_type: String,
    pub headers: BTreeMap<String, String>,
}

/// Every message of batches committed more than `grace_seconds` ago and
/// never marked published (at most `batches` batches), in the order the
/// relay would publish them.
pub async fn relay_queue(
    pool: &PgPool,
    grace_seconds: f64,
    batches: i64,
) -> Result<Vec<QueuedMessage>, sqlx::Error> {
    let rows = crate::store::unpublished(pool, grace_seconds, batches).await?;
    Ok(rows
        .into_iter()
        .map(|(batch_id, row)| QueuedMessage {
            batch_id,
            message_id: row.id,
            exchange_id: row.exchange_id,
            endpoint: row.endpoint,
            message_type: row.message_type,
            headers: row.headers,
        })
        .collect())
}

//! Dead letters from the ingress queue, taken for an automatic re-drive and
//! marked done after it.

use sqlx::PgPool;
use tracing::instrument;

/// A kept dead letter, as re-driving needs it.
#[derive(sqlx::FromRow)]
pub(crate) struct DeadLetter {
    pub(crate) id: i64,
    pub(crate) message_id: String,
    pub(crate) user_id: String,
    pub(crate) message_type: Option<String>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) headers: serde_json::Value,
    pub(crate) body: Vec<u8>,
}

/// Takes up to `limit` open dead letters of the ingress queue (a sender's
/// message, whole) re-driven fewer than `max_tries` times, counting this
/// try before it is made: a try that crashes the hub still counts.
#[instrument(skip_all)]
pub(crate) async fn take_dead_letters(
    pool: &PgPool,
    max_tries: i32,
    limit: i64,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "WITH taken AS (
             SELECT id FROM rejected_messages
             WHERE code = 'dead_lettered' AND resolved_at IS NULL
               AND user_id IS NOT NULL AND message_id IS NOT NULL
               AND auto_redrives < $1 AND body_erased_at IS NULL AND length(body) = body_size
             ORDER BY id LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE rejected_messages r SET auto_redrives = r.auto_redrives + 1
         FROM taken WHERE r.id = taken.id
         RETURNING r.id, r.message_id, r.user_id, r.message_type, r.correlation_id, r.headers,
                   r.body",
    )
    .bind(max_tries)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Marks re-driven the dead letters that went through: those refused this
/// time have a code of their new refusal instead (one record per sender and
/// message id), and stay open.
#[instrument(skip_all, fields(rows = ids.len()))]
pub(crate) async fn resolve_redriven(pool: &PgPool, ids: &[i64]) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE rejected_messages SET resolution = 'redriven', resolved_by = 'hub', resolved_at = now()
         WHERE id = ANY($1) AND code = 'dead_lettered' AND resolved_at IS NULL",
    )
    .bind(ids)
    .execute(pool)
    .await?
    .rows_affected())
}

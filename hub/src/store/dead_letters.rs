//! Dead letters from the ingress queue, taken for an automatic re-drive and
//! marked done after it.

use sqlx::{PgConnection, PgPool};
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

/// Which dead letters to take: those never tried (many at once), or those
/// whose try did not finish — the hub failed during it — one at a time,
/// so that a message that makes the hub fail takes no other with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Take {
    Fresh,
    Retried,
}

/// Takes open dead letters of the ingress queue (a sender's message, whole)
/// re-driven fewer than `max_tries` times, counting this try before it is
/// made: a try that crashes the hub still counts.
#[instrument(skip_all, fields(?take))]
pub(crate) async fn take_dead_letters(
    pool: &PgPool,
    take: Take,
    max_tries: i32,
    limit: i64,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let (tried, limit) = match take {
        Take::Fresh => ((0, 0), limit),
        Take::Retried => ((1, max_tries - 1), 1),
    };
    sqlx::query_as(
        "WITH taken AS (
             SELECT id FROM rejected_messages
             WHERE code = 'dead_lettered' AND resolved_at IS NULL
               AND user_id IS NOT NULL AND message_id IS NOT NULL
               AND auto_redrives BETWEEN $1 AND $2
               AND body_erased_at IS NULL
               -- whole: as received, or sealed (41 bytes more, `at_rest`)
               AND length(body) = body_size + CASE WHEN substring(body from 1 for 5) = 'IMIE1'::bytea
                                                   THEN 41 ELSE 0 END
             ORDER BY id LIMIT $3
             FOR UPDATE SKIP LOCKED)
         UPDATE rejected_messages r SET auto_redrives = r.auto_redrives + 1
         FROM taken WHERE r.id = taken.id
         RETURNING r.id, r.message_id, r.user_id, r.message_type, r.correlation_id, r.headers,
                   r.body",
    )
    .bind(tried.0)
    .bind(tried.1)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map(opened)
}

/// Dead letters with their bodies opened (`at_rest`).
fn opened(mut letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    for d in &mut letters {
        crate::at_rest::open_in_place(&mut d.body);
    }
    letters
}

/// The dead letters that made the hub fail on every try: turned into a
/// refusal with `code` and `detail`, returned so the sender can be told.
#[instrument(skip_all)]
pub(crate) async fn give_up_dead_letters(
    conn: &mut PgConnection,
    max_tries: i32,
    code: &str,
    detail: &str,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE rejected_messages SET code = $2, detail = $3
         WHERE code = 'dead_lettered' AND resolved_at IS NULL
           AND user_id IS NOT NULL AND message_id IS NOT NULL AND auto_redrives >= $1
         RETURNING id, message_id, user_id, message_type, correlation_id, headers, body",
    )
    .bind(max_tries)
    .bind(code)
    .bind(detail)
    .fetch_all(conn)
    .await
    .map(opened)
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

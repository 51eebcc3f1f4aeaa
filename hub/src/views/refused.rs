//! Refused messages as an operator works them: grouped by cause (code,
//! sending endpoint, message type) with counts and first and last seen; a
//! group's messages; one message with its problem list; and what became of
//! it (re-driven or discarded, by whom).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

use crate::scope::Scope;

/// A cause of refusals: what was refused, how often, since when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Group {
    pub(crate) code: String,
    /// The sending endpoint (the broker user), if known.
    pub(crate) endpoint: Option<String>,
    pub(crate) message_type: Option<String>,
    pub(crate) count: i64,
    pub(crate) first_seen: DateTime<Utc>,
    pub(crate) last_seen: DateTime<Utc>,
    /// A sample of the refusals' explanation.
    pub(crate) detail: String,
}

/// A group's key, as it appears in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct GroupKey {
    pub(crate) code: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) message_type: Option<String>,
}

/// One refused message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Refused {
    pub(crate) id: i64,
    pub(crate) message_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) message_type: Option<String>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) headers: serde_json::Value,
    pub(crate) code: String,
    pub(crate) detail: String,
    pub(crate) errors: serde_json::Value,
    /// As received (truncated to the hub's limit; erased after the
    /// retention period).
    pub(crate) body: Vec<u8>,
    pub(crate) body_size: i32,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) resolution: Option<String>,
    pub(crate) resolved_by: Option<String>,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
}

impl Refused {
    /// The whole body is still here: it was neither truncated nor erased.
    pub(crate) fn can_be_redriven(&self) -> bool {
        self.resolution.is_none()
            && !self.body.is_empty()
            && self.body.len() == self.body_size.max(0) as usize
            && self.message_id.is_some()
            && self.user_id.is_some()
    }
}

/// A coordinator sees the refusals of its country's endpoints: those whose
/// authorities are of its country.
const IN_SCOPE: &str = "($1::text IS NULL OR EXISTS (
        SELECT 1 FROM authorities a WHERE a.endpoint_id = r.user_id AND a.country = $1))";

/// Open (unresolved) refusals grouped by cause, the most recent first.
#[instrument(skip_all)]
pub(crate) async fn groups(pool: &PgPool, scope: &Scope) -> Result<Vec<Group>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT r.code, r.user_id AS endpoint, r.message_type, count(*) AS count,
                min(r.received_at) AS first_seen, max(r.received_at) AS last_seen,
                (array_agg(r.detail ORDER BY r.received_at DESC))[1] AS detail
         FROM rejected_messages r
         WHERE r.resolved_at IS NULL AND {IN_SCOPE}
         GROUP BY r.code, r.user_id, r.message_type
         ORDER BY max(r.received_at) DESC
         LIMIT 500"
    ))
    .bind(scope.country_filter())
    .fetch_all(pool)
    .await
}

const COLUMNS: &str = "r.id, r.message_id, r.user_id, r.message_type, r.correlation_id, r.headers,
     r.code, r.detail, r.errors, r.body, r.body_size, r.received_at, r.resolution, r.resolved_by,
     r.resolved_at";

/// The open refusals of one group, oldest first (the order to re-drive
/// them in).
#[instrument(skip_all, fields(code = %key.code))]
pub(crate) async fn in_group(
    pool: &PgPool,
    scope: &Scope,
    key: &GroupKey,
) -> Result<Vec<Refused>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rejected_messages r
         WHERE r.resolved_at IS NULL AND {IN_SCOPE}
           AND r.code = $2 AND r.user_id IS NOT DISTINCT FROM $3
           AND r.message_type IS NOT DISTINCT FROM $4
         ORDER BY r.received_at, r.id
         LIMIT 1000"
    ))
    .bind(scope.country_filter())
    .bind(&key.code)
    .bind(&key.endpoint)
    .bind(&key.message_type)
    .fetch_all(pool)
    .await
    .map(opened)
}

/// Refused rows with their bodies opened (`at_rest`).
fn opened(mut rows: Vec<Refused>) -> Vec<Refused> {
    for r in &mut rows {
        crate::at_rest::open_in_place(&mut r.body);
    }
    rows
}

/// One refused message, if the caller may see it.
#[instrument(skip_all, fields(refused = id))]
pub(crate) async fn one(
    pool: &PgPool,
    scope: &Scope,
    id: i64,
) -> Result<Option<Refused>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rejected_messages r WHERE {IN_SCOPE} AND r.id = $2"
    ))
    .bind(scope.country_filter())
    .bind(id)
    .fetch_optional(pool)
    .await
    .map(|r| r.and_then(|r| opened(vec![r]).pop()))
}

/// Records what became of refused messages: `redriven` or `discarded`, by
/// whom. Only open ones change; returns how many did.
#[instrument(skip_all, fields(resolution, rows = ids.len()))]
pub(crate) async fn resolve(
    pool: &PgPool,
    ids: &[i64],
    resolution: &str,
    by: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE rejected_messages SET resolution = $2, resolved_by = $3, resolved_at = now()
         WHERE id = ANY($1) AND resolved_at IS NULL",
    )
    .bind(ids)
    .bind(resolution)
    .bind(by)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Opens again what `resolve` closed as `resolution` (a re-drive that did
/// not get through).
#[instrument(skip_all, fields(rows = ids.len()))]
pub(crate) async fn reopen(
    pool: &PgPool,
    ids: &[i64],
    resolution: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE rejected_messages SET resolution = NULL, resolved_by = NULL, resolved_at = NULL
         WHERE id = ANY($1) AND resolution = $2",
    )
    .bind(ids)
    .bind(resolution)
    .execute(pool)
    .await?
    .rows_affected())
}

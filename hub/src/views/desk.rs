//! The coordinator's desk: overdue and referred requests, and the notices
//! the hub made for the caller's office. The API and the console read them
//! here, through the caller's scope.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use crate::accounts::Account;
use crate::coordination::REFERRED;
use crate::scope::Scope;

/// A request whose deadline passed and that is still where it was.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Overdue {
    pub(crate) exchange_id: Uuid,
    pub(crate) procedure: String,
    pub(crate) state: String,
    pub(crate) deadline: String,
    pub(crate) due_at: DateTime<Utc>,
    /// The authority expected to act.
    pub(crate) authority: String,
    /// When the hub sent its overdue notice.
    pub(crate) fired_at: DateTime<Utc>,
}

/// Overdue requests, oldest deadline first: a coordinator's country's, or
/// all.
#[instrument(skip_all)]
pub(crate) async fn overdue(pool: &PgPool, scope: &Scope) -> Result<Vec<Overdue>, sqlx::Error> {
    // Still overdue: the exchange has not left the state the deadline ran in
    // (it would have a newer due time otherwise).
    sqlx::query_as(
        "SELECT d.exchange_id, e.procedure, e.state, d.deadline, d.due_at, d.authority, d.fired_at
         FROM deadline_events d
         JOIN exchanges e ON e.id = d.exchange_id
         JOIN authorities a ON a.id = d.authority
         WHERE d.kind = 'overdue' AND e.updated_at < d.due_at
           AND ($1::text IS NULL OR a.country = $1)
         ORDER BY d.due_at",
    )
    .bind(scope.country_filter())
    .fetch_all(pool)
    .await
}

/// A request its responder referred to its coordinator.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Referred {
    pub(crate) exchange_id: Uuid,
    pub(crate) procedure: String,
    /// The authority that referred it.
    pub(crate) responder: String,
    pub(crate) requester: String,
    pub(crate) since: DateTime<Utc>,
}

/// Requests in state `referred`, for their responder's coordinator.
#[instrument(skip_all)]
pub(crate) async fn referred(pool: &PgPool, scope: &Scope) -> Result<Vec<Referred>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.id AS exchange_id, e.procedure, e.responder, e.requester, e.updated_at AS since
         FROM exchanges e JOIN authorities a ON a.id = e.responder
         WHERE e.state = $1 AND ($2::text IS NULL OR a.country = $2)
         ORDER BY e.updated_at",
    )
    .bind(REFERRED)
    .bind(scope.country_filter())
    .fetch_all(pool)
    .await
}

/// A notice the hub made for a coordinator's office.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Notice {
    pub(crate) id: i64,
    /// `overdue` (a deadline passed) or `inactive` (no step for 30 days).
    pub(crate) kind: String,
    pub(crate) exchange_id: Uuid,
    pub(crate) procedure: String,
    /// The exchange's state when the notice was made.
    pub(crate) state: String,
    /// The authority expected to act.
    pub(crate) authority: String,
    pub(crate) due_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    /// Read by the calling account.
    pub(crate) read: bool,
}

/// The notices of the caller's office (country, and area or region when
/// delegated; all for operators and auditors), oldest first.
#[instrument(skip_all, fields(account = %account.name, unread))]
pub(crate) async fn notices(
    pool: &PgPool,
    account: &Account,
    unread: bool,
) -> Result<Vec<Notice>, sqlx::Error> {
    let (country, area, region) = Scope::of(account).office_filter();
    sqlx::query_as(
        "SELECT n.id, n.kind, n.exchange_id, n.procedure, n.state, n.authority, n.due_at, n.created_at,
                r.notice_id IS NOT NULL AS read
         FROM coordinator_notices n
         LEFT JOIN coordinator_notice_reads r ON r.notice_id = n.id AND r.account_id = $1
         WHERE ($2::text IS NULL OR n.country = $2)
           AND ($3::text IS NULL OR n.area = $3)
           AND ($4::text IS NULL OR n.region = $4)
           AND (NOT $5 OR r.notice_id IS NULL)
         ORDER BY n.created_at, n.id
         LIMIT 1000",
    )
    .bind(account.id)
    .bind(country)
    .bind(area)
    .bind(region)
    .bind(unread)
    .fetch_all(pool)
    .await
}

/// Marks a notice of the caller's office read; `false` if there is none.
#[instrument(skip_all, fields(account = %account.name, notice = id))]
pub(crate) async fn mark_notice_read(
    pool: &PgPool,
    account: &Account,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let (country, area, region) = Scope::of(account).office_filter();
    let exists: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM coordinator_notices WHERE id = $1
           AND ($2::text IS NULL OR country = $2)
           AND ($3::text IS NULL OR area = $3)
           AND ($4::text IS NULL OR region = $4)",
    )
    .bind(id)
    .bind(country)
    .bind(area)
    .bind(region)
    .fetch_optional(pool)
    .await?;
    if exists.is_none() {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO coordinator_notice_reads (notice_id, account_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(account.id)
    .execute(pool)
    .await?;
    Ok(true)
}

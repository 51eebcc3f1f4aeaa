//! The audit log people read: the one hash-chained log (`audit_events`:
//! registry steps, coordination, what people did and saw in the console,
//! the hub's erasures), newest first, filterable by action and account.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use crate::accounts::Account;
use crate::audit_log::{self, NewEntry};

/// Records what a person did or saw, as the next entry of the audit chain.
/// A failed login has no account, only the name typed.
#[instrument(skip_all, fields(action, name = account_name))]
pub(crate) async fn record(
    pool: &PgPool,
    account: Option<Uuid>,
    account_name: &str,
    action: &str,
    subject: Option<&str>,
    detail: Value,
) -> Result<(), sqlx::Error> {
    audit_log::append_now(
        pool,
        NewEntry {
            account_id: account,
            account_name,
            source: "console",
            action,
            subject,
            detail,
        },
    )
    .await?;
    Ok(())
}

/// Records what `account` did or saw.
pub(crate) async fn record_by(
    pool: &PgPool,
    account: &Account,
    action: &str,
    subject: Option<&str>,
    detail: Value,
) -> Result<(), sqlx::Error> {
    record(
        pool,
        Some(account.id),
        &account.name,
        action,
        subject,
        detail,
    )
    .await
}

/// One entry of the audit log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Entry {
    pub(crate) at: DateTime<Utc>,
    /// `console`, `api`, `registry`, `coordination` or `hub`.
    pub(crate) source: String,
    pub(crate) account: Option<String>,
    pub(crate) action: String,
    pub(crate) subject: Option<String>,
    pub(crate) detail: Value,
}

/// What the log is filtered by, and in which order it is read.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    pub(crate) action: Option<String>,
    pub(crate) account: Option<String>,
    /// An exchange, authority or endpoint the entry is about.
    pub(crate) subject: Option<String>,
    /// From this time on (inclusive).
    pub(crate) from: Option<DateTime<Utc>>,
    /// Before this time.
    pub(crate) until: Option<DateTime<Utc>>,
    /// Oldest first instead of newest first.
    pub(crate) oldest_first: bool,
    /// Where the previous page ended (keyset): entries after it in the
    /// order read.
    pub(crate) past: Option<DateTime<Utc>>,
}

/// Up to `limit` entries in the filter's order.
#[instrument(skip_all)]
pub(crate) async fn entries(
    pool: &PgPool,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    // Two fixed texts, not a CASE in ORDER BY: a plain `ORDER BY at` lets
    // PostgreSQL walk the time index and stop at the limit.
    let (past, order) = if filter.oldest_first {
        ("at > $6", "ASC")
    } else {
        ("at < $6", "DESC")
    };
    let sql = format!(
        "SELECT * FROM (
             SELECT at, source, account_name AS account, action, subject, detail FROM audit_events
         ) log
         WHERE ($1::text IS NULL OR action = $1)
           AND ($2::text IS NULL OR account = $2)
           AND ($3::text IS NULL OR subject = $3)
           AND ($4::timestamptz IS NULL OR at >= $4)
           AND ($5::timestamptz IS NULL OR at < $5)
           AND ($6::timestamptz IS NULL OR {past})
         ORDER BY at {order}
         LIMIT $7"
    );
    sqlx::query_as(&sql)
        .bind(&filter.action)
        .bind(&filter.account)
        .bind(&filter.subject)
        .bind(filter.from)
        .bind(filter.until)
        .bind(filter.past)
        .bind(limit)
        .fetch_all(pool)
        .await
}

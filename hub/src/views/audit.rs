//! The audit log people read: registry steps (`registry_events`) and what
//! people did and saw in the console (`audit_events`), one list, newest
//! first, filterable by action and account.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use crate::accounts::Account;

/// Records what a person did or saw. A failed login has no account, only
/// the name typed.
#[instrument(skip_all, fields(action, name = account_name))]
pub(crate) async fn record(
    pool: &PgPool,
    account: Option<Uuid>,
    account_name: &str,
    action: &str,
    subject: Option<&str>,
    detail: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (account_id, account_name, action, subject, detail)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(account)
    .bind(account_name)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .execute(pool)
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
    /// `registry` or `console`.
    pub(crate) source: String,
    pub(crate) account: Option<String>,
    pub(crate) action: String,
    pub(crate) subject: Option<String>,
    pub(crate) detail: Value,
}

/// What the log is filtered by.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    pub(crate) action: Option<String>,
    pub(crate) account: Option<String>,
    pub(crate) before: Option<DateTime<Utc>>,
}

/// Up to `limit` entries, newest first.
#[instrument(skip_all)]
pub(crate) async fn entries(
    pool: &PgPool,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM (
             SELECT ev.at, 'registry' AS source, ac.name AS account, ev.action,
                    coalesce(ev.authority_id, ev.endpoint_id) AS subject, ev.detail
             FROM registry_events ev LEFT JOIN accounts ac ON ac.id = ev.account_id
             UNION ALL
             SELECT at, 'console', account_name, action, subject, detail FROM audit_events
         ) log
         WHERE ($1::text IS NULL OR action = $1)
           AND ($2::text IS NULL OR account = $2)
           AND ($3::timestamptz IS NULL OR at < $3)
         ORDER BY at DESC
         LIMIT $4",
    )
    .bind(&filter.action)
    .bind(&filter.account)
    .bind(filter.before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

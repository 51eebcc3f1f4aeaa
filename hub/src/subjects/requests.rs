//! Requests, their exchanges and statements, and the audit entries of each
//! step (written in the step's transaction).

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use super::keyed::SubjectKey;
use crate::accounts::Account;
use crate::audit_log::{self, NewEntry};
use crate::scope::Scope;

/// What the person asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    /// Which data IMI holds about them (GDPR Art. 15).
    Access,
    /// To correct inaccurate data (Art. 16).
    Correction,
    /// An objection to the processing (Art. 21), or a contest of its
    /// accuracy (Art. 18).
    Contest,
}

impl RequestKind {
    pub(crate) const ALL: [RequestKind; 3] = [Self::Access, Self::Correction, Self::Contest];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Correction => "correction",
            Self::Contest => "contest",
        }
    }
}

impl TryFrom<&str> for RequestKind {
    type Error = String;
    fn try_from(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| format!("`{raw}` is not access, correction or contest"))
    }
}

/// What is recorded on an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatementKind {
    Correction,
    Contest,
}

impl StatementKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Correction => "correction",
            Self::Contest => "contest",
        }
    }
}

impl TryFrom<&str> for StatementKind {
    type Error = String;
    fn try_from(raw: &str) -> Result<Self, String> {
        match raw {
            "correction" => Ok(Self::Correction),
            "contest" => Ok(Self::Contest),
            other => Err(format!("`{other}` is not correction or contest")),
        }
    }
}

/// A request as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Request {
    pub(crate) id: Uuid,
    pub(crate) kind: String,
    pub(crate) language: String,
    pub(crate) reference: String,
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) country: Option<String>,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) due_at: DateTime<Utc>,
    pub(crate) answered_at: Option<DateTime<Utc>>,
    pub(crate) answer: Option<String>,
    pub(crate) opened_by: String,
}

impl Request {
    /// The person's keys, to search again.
    pub(crate) fn subject_keys(&self) -> Vec<SubjectKey> {
        self.keys
            .iter()
            .filter_map(|k| k.as_slice().try_into().ok())
            .collect()
    }
}

/// A correction or objection recorded on an exchange.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Statement {
    pub(crate) exchange_id: Uuid,
    pub(crate) kind: String,
    /// `None` once the exchange's personal data were erased.
    pub(crate) statement: Option<String>,
    pub(crate) recorded_by: String,
    pub(crate) recorded_at: DateTime<Utc>,
}

/// A request to open.
pub(crate) struct NewRequest<'a> {
    pub(crate) kind: RequestKind,
    pub(crate) language: &'a str,
    pub(crate) reference: &'a str,
    pub(crate) keys: &'a [SubjectKey],
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) due_at: DateTime<Utc>,
    pub(crate) exchanges: &'a [Uuid],
}

/// Appends `action` on request `id` by `account` to the audit log, and
/// commits it with the step it records.
async fn commit_recorded(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    account: &Account,
    action: &str,
    id: Uuid,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let subject = id.to_string();
    audit_log::append(
        &mut tx,
        NewEntry {
            account_id: Some(account.id),
            account_name: &account.name,
            source: "console",
            action,
            subject: Some(&subject),
            detail,
        },
    )
    .await?;
    tx.commit().await
}

/// Opens a request, handled by the account's country (operators: none).
#[instrument(skip_all, fields(account = %account.name))]
pub(crate) async fn open(
    pool: &PgPool,
    account: &Account,
    new: NewRequest<'_>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let keys: Vec<&[u8]> = new.keys.iter().map(|k| k.as_slice()).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO subject_requests (id, kind, language, reference, keys, country, received_at,
                                       due_at, opened_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(new.kind.as_str())
    .bind(new.language)
    .bind(new.reference)
    .bind(&keys)
    .bind(account.country.map(|c| c.as_str().to_owned()))
    .bind(new.received_at)
    .bind(new.due_at)
    .bind(&account.name)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO subject_request_exchanges (request_id, exchange_id)
         SELECT $1, x FROM UNNEST($2::uuid[]) AS x",
    )
    .bind(id)
    .bind(new.exchanges)
    .execute(&mut *tx)
    .await?;
    commit_recorded(
        tx,
        account,
        "subject_request_opened",
        id,
        json!({"kind": new.kind.as_str(), "reference": new.reference,
                   "due_at": new.due_at, "exchanges": new.exchanges}),
    )
    .await?;
    Ok(id)
}

/// The requests the caller's office handles (all for operators and
/// auditors), open ones first, then by due date.
#[instrument(skip_all, fields(account = %account.name))]
pub(crate) async fn list(pool: &PgPool, account: &Account) -> Result<Vec<Request>, sqlx::Error> {
    let country = Scope::of(account).country_filter();
    sqlx::query_as(
        "SELECT id, kind, language, reference, keys, country, received_at, due_at, answered_at,
                answer, opened_by
         FROM subject_requests WHERE ($1::text IS NULL OR country = $1)
         ORDER BY answered_at IS NOT NULL, due_at LIMIT 1000",
    )
    .bind(country)
    .fetch_all(pool)
    .await
}

/// One request, if the caller's office handles it.
#[instrument(skip_all, fields(request = %id))]
pub(crate) async fn request(
    pool: &PgPool,
    account: &Account,
    id: Uuid,
) -> Result<Option<Request>, sqlx::Error> {
    let country = Scope::of(account).country_filter();
    sqlx::query_as(
        "SELECT id, kind, language, reference, keys, country, received_at, due_at, answered_at,
                answer, opened_by
         FROM subject_requests WHERE id = $1 AND ($2::text IS NULL OR country = $2)",
    )
    .bind(id)
    .bind(country)
    .fetch_optional(pool)
    .await
}

/// The exchanges a request concerns.
pub(crate) async fn request_exchanges(pool: &PgPool, id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT r.exchange_id FROM subject_request_exchanges r
         JOIN exchanges e ON e.id = r.exchange_id
         WHERE r.request_id = $1 ORDER BY e.created_at DESC",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// The statements recorded on an exchange, oldest first.
pub(crate) async fn exchange_statements(
    pool: &PgPool,
    exchange: Uuid,
) -> Result<Vec<Statement>, sqlx::Error> {
    sqlx::query_as(
        "SELECT exchange_id, kind, statement, recorded_by, recorded_at
         FROM subject_statements WHERE exchange_id = $1 ORDER BY id",
    )
    .bind(exchange)
    .fetch_all(pool)
    .await
}

/// The notices the deadline pass fired for a request: (kind, fired at).
pub(crate) async fn notices(
    pool: &PgPool,
    id: Uuid,
) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, fired_at FROM subject_request_notices WHERE request_id = $1 ORDER BY fired_at",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// Records a correction or objection on one of the request's exchanges;
/// `false` if the exchange is not one of them.
#[instrument(skip_all, fields(request = %request.id, exchange = %exchange))]
pub(crate) async fn record_statement(
    pool: &PgPool,
    account: &Account,
    request: &Request,
    exchange: Uuid,
    kind: StatementKind,
    statement: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO subject_statements (request_id, exchange_id, kind, statement, recorded_by)
         SELECT $1, $2, $3, $4, $5 FROM subject_request_exchanges
         WHERE request_id = $1 AND exchange_id = $2",
    )
    .bind(request.id)
    .bind(exchange)
    .bind(kind.as_str())
    .bind(statement)
    .bind(&account.name)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    // The statement's text is personal data: the log says that one was
    // recorded, not what it says.
    commit_recorded(
        tx,
        account,
        "subject_statement",
        request.id,
        json!({"exchange": exchange, "kind": kind.as_str()}),
    )
    .await?;
    Ok(true)
}

/// Marks the request answered; `false` if it already was.
#[instrument(skip_all, fields(request = %request.id))]
pub(crate) async fn answer(
    pool: &PgPool,
    account: &Account,
    request: &Request,
    answer: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE subject_requests SET answered_at = now(), answer = $2
         WHERE id = $1 AND answered_at IS NULL",
    )
    .bind(request.id)
    .bind(answer)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(false);
    }
    commit_recorded(
        tx,
        account,
        "subject_request_answered",
        request.id,
        json!({"due_at": request.due_at}),
    )
    .await?;
    Ok(true)
}

/// Adds exchanges found since the request was opened (the person's keys
/// searched again); returns how many were new.
#[instrument(skip_all, fields(request = %request.id))]
pub(crate) async fn add_exchanges(
    pool: &PgPool,
    account: &Account,
    request: &Request,
    exchanges: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let added: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO subject_request_exchanges (request_id, exchange_id)
         SELECT $1, x FROM UNNEST($2::uuid[]) AS x
         ON CONFLICT DO NOTHING RETURNING exchange_id",
    )
    .bind(request.id)
    .bind(exchanges)
    .fetch_all(&mut *tx)
    .await?;
    commit_recorded(
        tx,
        account,
        "subject_search_again",
        request.id,
        json!({"added": added}),
    )
    .await?;
    Ok(added.len() as u64)
}

/// A request on the desk: its id, reference, due date and latest notice.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DueRequest {
    pub(crate) id: Uuid,
    pub(crate) reference: String,
    pub(crate) due_at: DateTime<Utc>,
    /// `reminder` or `overdue`.
    pub(crate) notice: String,
}

/// The unanswered requests of the caller's office the deadline pass has
/// fired a notice for, with the latest notice's kind; soonest due first.
#[instrument(skip_all, fields(account = %account.name))]
pub(crate) async fn due(pool: &PgPool, account: &Account) -> Result<Vec<DueRequest>, sqlx::Error> {
    let country = Scope::of(account).country_filter();
    sqlx::query_as(
        "SELECT r.id, r.reference, r.due_at,
                (SELECT n.kind FROM subject_request_notices n WHERE n.request_id = r.id
                 ORDER BY n.fired_at DESC, n.kind LIMIT 1) AS notice
         FROM subject_requests r
         WHERE r.answered_at IS NULL AND ($1::text IS NULL OR r.country = $1)
           AND EXISTS (SELECT 1 FROM subject_request_notices n WHERE n.request_id = r.id)
         ORDER BY r.due_at LIMIT 200",
    )
    .bind(country)
    .fetch_all(pool)
    .await
}

//! The audit log, tamper-evident (docs/audit.md). One hash chain holds every
//! view of personal data, every change a person makes (registry,
//! coordination, validation of alerts, re-drives), every login and failed
//! login, and every erasure. Each entry carries its place, the hash of the
//! entry before it and its own hash ([`chain`]); every
//! `audit.checkpoint_every` entries, or hourly, the head is signed with the
//! hub's Ed25519 key ([`checkpoints`]); `imi-hub audit verify` ([`verify`])
//! recomputes the chain and names the first entry that is not what was
//! written.

pub(crate) mod chain;
pub mod checkpoints;
pub mod verify;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tracing::instrument;
use uuid::Uuid;

use chain::{entry_hash, EntryFields};

/// What a new entry says.
#[derive(Debug, Clone)]
pub(crate) struct NewEntry<'a> {
    pub(crate) account_id: Option<Uuid>,
    /// The account's name, the name typed at a failed login, or `imi-hub`
    /// for the hub's own passes (erasure).
    pub(crate) account_name: &'a str,
    /// `console`, `api`, `registry`, `coordination` or `hub`.
    pub(crate) source: &'a str,
    pub(crate) action: &'a str,
    /// What it concerned: an exchange, an authority, a refused message.
    pub(crate) subject: Option<&'a str>,
    pub(crate) detail: Value,
}

impl<'a> NewEntry<'a> {
    /// An entry for what the hub did by itself (an erasure).
    pub(crate) fn by_hub(action: &'a str, detail: Value) -> Self {
        Self {
            account_id: None,
            account_name: "imi-hub",
            source: "hub",
            action,
            subject: None,
            detail,
        }
    }
}

/// The head of the chain, locked for the append.
#[derive(sqlx::FromRow)]
struct Head {
    seq: i64,
    hash: Vec<u8>,
}

/// Appends an entry at the end of the chain, in the caller's transaction
/// (the head row stays locked until it commits, so appends are serialized).
/// Returns its place.
#[instrument(skip_all, fields(action = entry.action))]
pub(crate) async fn append(
    conn: &mut PgConnection,
    entry: NewEntry<'_>,
) -> Result<i64, sqlx::Error> {
    append_at(conn, entry, Utc::now(), None).await
}

/// Appends on its own transaction.
pub(crate) async fn append_now(pool: &PgPool, entry: NewEntry<'_>) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let seq = append(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(seq)
}

/// Appends `entry` as written at `at`; `existing` chains a row written
/// before the chain existed instead of inserting one.
async fn append_at(
    conn: &mut PgConnection,
    entry: NewEntry<'_>,
    at: DateTime<Utc>,
    existing: Option<i64>,
) -> Result<i64, sqlx::Error> {
    // The hash covers the time as stored: PostgreSQL keeps microseconds.
    let at = at.trunc_subsecs(6);
    let head: Head = sqlx::query_as("SELECT seq, hash FROM audit_chain_head FOR UPDATE")
        .fetch_one(&mut *conn)
        .await?;
    let seq = head.seq + 1;
    let hash = entry_hash(
        &head.hash,
        seq,
        &EntryFields {
            at,
            account_id: entry.account_id,
            account_name: entry.account_name,
            source: entry.source,
            action: entry.action,
            subject: entry.subject,
            detail: &entry.detail,
        },
    );
    match existing {
        None => {
            sqlx::query(
                "INSERT INTO audit_events (at, account_id, account_name, source, action, subject, detail,
                                           seq, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(at)
            .bind(entry.account_id)
            .bind(entry.account_name)
            .bind(entry.source)
            .bind(entry.action)
            .bind(entry.subject)
            .bind(&entry.detail)
            .bind(seq)
            .bind(&head.hash)
            .bind(hash.as_slice())
            .execute(&mut *conn)
            .await?;
        }
        Some(id) => {
            sqlx::query(
                "UPDATE audit_events SET at = $2, seq = $3, prev_hash = $4, hash = $5, before_chain = false
                 WHERE id = $1 AND before_chain",
            )
            .bind(id)
            .bind(at)
            .bind(seq)
            .bind(&head.hash)
            .bind(hash.as_slice())
            .execute(&mut *conn)
            .await?;
        }
    }
    sqlx::query("UPDATE audit_chain_head SET seq = $1, hash = $2")
        .bind(seq)
        .bind(hash.as_slice())
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// An entry written before the chain existed.
#[derive(sqlx::FromRow)]
struct Unchained {
    id: i64,
    at: DateTime<Utc>,
    account_id: Option<Uuid>,
    account_name: String,
    source: String,
    action: String,
    subject: Option<String>,
    detail: Value,
}

/// Chains, once, the entries written before the chain existed (marked by
/// the migration), in the order they happened. Returns how many.
#[instrument(skip_all)]
pub(crate) async fn chain_earlier_entries(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The head first: a second hub starting at the same time waits here,
    // then finds nothing left to chain.
    sqlx::query("SELECT seq FROM audit_chain_head FOR UPDATE")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<Unchained> = sqlx::query_as(
        "SELECT id, at, account_id, account_name, source, action, subject, detail
         FROM audit_events WHERE before_chain ORDER BY at, id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &rows {
        let entry = NewEntry {
            account_id: r.account_id,
            account_name: &r.account_name,
            source: &r.source,
            action: &r.action,
            subject: r.subject.as_deref(),
            detail: r.detail.clone(),
        };
        append_at(&mut tx, entry, r.at, Some(r.id)).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

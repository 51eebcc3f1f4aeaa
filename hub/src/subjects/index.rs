//! The index of who payloads are about: searching it, forgetting an
//! exchange's entries at erasure, and rebuilding it (a new key, or messages
//! stored before the index existed).

use std::collections::BTreeSet;

use imi_schemas::catalogue::Catalogue;
use imi_schemas::ids::{MessageType, ProcedureCode};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tracing::{info, instrument};
use uuid::Uuid;

use super::keyed::{SubjectKey, SubjectKeyer};
use crate::error::HubError;
use crate::scope::{PayloadAccess, Scope};
use crate::views::exchanges::{self, DetailError, Head};

/// A search lists at most this many exchanges.
const MAX_FOUND: i64 = 500;
/// Messages re-indexed per transaction.
const REINDEX_PAGE: i64 = 500;

/// An exchange about the person that the caller sees.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) head: Head,
    /// Whether the caller reads its content (need-to-know).
    pub(crate) access: PayloadAccess,
}

impl Found {
    /// The content may go into a request's export, and its statements be
    /// read: a coordinator of a party, or an operator on a request the
    /// operators handle (its opening search gave the recorded reason).
    pub(crate) fn content_readable(&self, handled_by_operators: bool) -> bool {
        match self.access {
            PayloadAccess::Granted => true,
            PayloadAccess::WithReason => handled_by_operators,
            PayloadAccess::Denied(_) => false,
        }
    }
}

/// The exchanges whose payloads name one of `keys`, as far as `scope` sees
/// them (a coordinator: its country's, within its area), newest first.
#[instrument(skip_all, fields(keys = keys.len()))]
pub(crate) async fn find(
    pool: &PgPool,
    catalogue: &Catalogue,
    scope: &Scope,
    keys: &[SubjectKey],
) -> Result<Vec<Found>, sqlx::Error> {
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT e.id FROM exchanges e
         WHERE e.id IN (SELECT exchange_id FROM subject_index WHERE key = ANY($1))
         ORDER BY e.created_at DESC LIMIT $2",
    )
    .bind(&keys)
    .bind(MAX_FOUND)
    .fetch_all(pool)
    .await?;
    within_scope(pool, catalogue, scope, &ids).await
}

/// `ids` as far as `scope` sees them, each with its need-to-know.
pub(crate) async fn within_scope(
    pool: &PgPool,
    catalogue: &Catalogue,
    scope: &Scope,
    ids: &[Uuid],
) -> Result<Vec<Found>, sqlx::Error> {
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let detail = match exchanges::detail(pool, scope, *id).await {
            Ok(d) => d,
            Err(DetailError::Database(e)) => return Err(e),
            Err(DetailError::NotFound(_) | DetailError::Denied(_)) => continue,
        };
        let area = ProcedureCode::try_from(detail.head.procedure.as_str())
            .ok()
            .and_then(|c| catalogue.procedure(&c))
            .map(|p| p.area.to_string());
        let access = scope.payload_access(
            &detail.visibility,
            detail.head.blocked_at.is_some(),
            area.as_deref(),
        );
        found.push(Found {
            head: detail.head,
            access,
        });
    }
    Ok(found)
}

/// Forgets who the exchanges' payloads were about (their personal data are
/// being erased), in the erasure's transaction.
pub(crate) async fn forget_exchanges(
    conn: &mut PgConnection,
    exchanges: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM subject_index WHERE exchange_id = ANY($1)")
        .bind(exchanges)
        .execute(&mut *conn)
        .await?;
    // The person's statements are personal data too.
    sqlx::query("UPDATE subject_statements SET statement = NULL WHERE exchange_id = ANY($1)")
        .bind(exchanges)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct StoredMessage {
    id: Uuid,
    exchange_id: Uuid,
    message_type: String,
    raw: Vec<u8>,
}

/// Rebuilds the whole index with `keyer` (`imi-hub subjects reindex`): after
/// a new index key, or for messages stored before the index existed.
/// Page by page, each in its own transaction, while the hub runs; a search
/// during the rebuild may miss what is not re-indexed yet. Returns the
/// number of messages read.
#[instrument(skip_all)]
pub async fn reindex(
    pool: &PgPool,
    catalogue: &Catalogue,
    keyer: &SubjectKeyer,
) -> Result<u64, HubError> {
    let mut after = Uuid::nil();
    let mut read = 0u64;
    let mut first = true;
    loop {
        let mut tx = pool.begin().await?;
        if first {
            // Entries of an older key find nothing any more.
            sqlx::query("DELETE FROM subject_index")
                .execute(&mut *tx)
                .await?;
            first = false;
        }
        let page: Vec<StoredMessage> = sqlx::query_as(
            "SELECT id, exchange_id, message_type, raw FROM messages
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(REINDEX_PAGE)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = page.last() else {
            tx.commit().await?;
            break;
        };
        after = last.id;
        read += page.len() as u64;
        let (mut keys, mut messages, mut exchanges) = (Vec::new(), Vec::new(), Vec::new());
        for m in &page {
            for key in keys_of_stored(catalogue, keyer, m) {
                keys.push(key.to_vec());
                messages.push(m.id);
                exchanges.push(m.exchange_id);
            }
        }
        sqlx::query(
            "INSERT INTO subject_index (key, message_id, exchange_id)
             SELECT * FROM UNNEST($1::bytea[], $2::uuid[], $3::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(&keys)
        .bind(&messages)
        .bind(&exchanges)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    info!(messages = read, "Rebuilt the data-subject index.");
    Ok(read)
}

fn keys_of_stored(
    catalogue: &Catalogue,
    keyer: &SubjectKeyer,
    m: &StoredMessage,
) -> BTreeSet<SubjectKey> {
    let procedure = MessageType::try_from(m.message_type.as_str())
        .ok()
        .and_then(|t| catalogue.resolve(&t).map(|(p, _)| p));
    let payload = crate::at_rest::open(&m.raw)
        .ok()
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .and_then(|mut v| v.get_mut("payload").map(Value::take));
    match (procedure, payload) {
        (Some(p), Some(payload)) => keyer.keys_of(p, &payload).into_iter().collect(),
        _ => BTreeSet::new(),
    }
}

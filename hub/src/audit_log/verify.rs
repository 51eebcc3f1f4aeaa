//! `imi-hub audit verify`: recomputes the chain from its first entry and
//! checks every signed checkpoint (in the database and, if given, in the
//! file kept outside it). The first entry that is not what was written is
//! named with what happened to it: modified, deleted, inserted or moved.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use super::chain::{entry_hash, EntryFields, GENESIS};
use super::checkpoints::Checkpoint;

/// A stored entry, as the verifier reads it.
#[derive(sqlx::FromRow)]
struct Stored {
    id: i64,
    seq: Option<i64>,
    at: DateTime<Utc>,
    account_id: Option<Uuid>,
    account_name: String,
    source: String,
    action: String,
    subject: Option<String>,
    detail: Value,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
}

impl Stored {
    fn fields(&self) -> EntryFields<'_> {
        EntryFields {
            at: self.at,
            account_id: self.account_id,
            account_name: &self.account_name,
            source: &self.source,
            action: &self.action,
            subject: self.subject.as_deref(),
            detail: &self.detail,
        }
    }
}

/// What the verifier found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Entries in the chain.
    pub entries: i64,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints: usize,
    /// The first problem, naming where: `None` when the chain is intact.
    pub broken: Option<String>,
}

impl Verdict {
    /// The last line `imi-hub audit verify` prints.
    pub fn last_line(&self) -> String {
        match &self.broken {
            None => format!("audit: {} entries, chain intact", self.entries),
            Some(problem) => format!("audit: {problem}"),
        }
    }
}

/// Verifies the chain and the checkpoints (those in the database, and
/// `external` ones kept elsewhere). With `trusted`, every checkpoint must
/// be signed by that key (the hub's own, from its key file).
#[instrument(skip_all)]
pub async fn verify(
    pool: &PgPool,
    external: &[Checkpoint],
    trusted: Option<VerifyingKey>,
) -> Result<Verdict, sqlx::Error> {
    // One snapshot for the entries, the checkpoints and the head: a hub
    // appending meanwhile must not look like a deleted entry.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<Stored> = sqlx::query_as(
        "SELECT id, seq, at, account_id, account_name, source, action, subject, detail, prev_hash, hash
         FROM audit_events ORDER BY seq NULLS FIRST, id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let stored_checkpoints: Vec<Checkpoint> = sqlx::query_as(
        "SELECT seq, hash, signed_at, public_key, signature FROM audit_checkpoints ORDER BY seq",
    )
    .fetch_all(&mut *tx)
    .await?;
    let (head_seq, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_chain_head")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let chained: Vec<&Stored> = rows.iter().filter(|r| r.seq.is_some()).collect();
    let entries = chained.len() as i64;
    let verdict = |broken: String| Verdict {
        entries,
        checkpoints: 0,
        broken: Some(broken),
    };
    if let Some(outside) = rows.iter().find(|r| r.seq.is_none()) {
        return Ok(verdict(format!(
            "entry id {} ({} at {}) has no place in the chain: inserted",
            outside.id, outside.action, outside.at
        )));
    }
    if let Some(problem) = walk(&chained) {
        return Ok(verdict(problem));
    }
    // The head row records the last append: entries cut from the end show.
    let last = chained.last().and_then(|r| Some((r.seq?, r.hash.clone()?)));
    let last_seq = last.as_ref().map_or(0, |(s, _)| *s);
    if head_seq > last_seq {
        return Ok(verdict(format!(
            "entry {} is missing: the chain ends at entry {last_seq} but {head_seq} were appended: deleted",
            last_seq + 1
        )));
    }
    if head_seq < last_seq || last.is_some_and(|(_, h)| h != head_hash) {
        return Ok(verdict(format!(
            "entry {last_seq} is not the last one appended (entry {head_seq} was): inserted at the end"
        )));
    }
    let hashes: HashMap<i64, &[u8]> = chained
        .iter()
        .filter_map(|r| Some((r.seq?, r.hash.as_deref()?)))
        .collect();
    let mut checked = 0;
    for (origin, cp) in stored_checkpoints
        .iter()
        .map(|c| ("", c))
        .chain(external.iter().map(|c| (" (kept outside the database)", c)))
    {
        let place = cp.seq;
        if !cp.signature_holds() {
            return Ok(verdict(format!(
                "checkpoint at entry {place}{origin}: the signature does not hold"
            )));
        }
        if trusted.is_some_and(|k| k.as_bytes().as_slice() != cp.public_key.as_slice()) {
            return Ok(verdict(format!(
                "checkpoint at entry {place}{origin}: signed by a key that is not the hub's"
            )));
        }
        match hashes.get(&place) {
            None => {
                return Ok(verdict(format!(
                    "entry {place} is missing: the chain ends at entry {entries}, but checkpoint {place}{origin} signed it: entries deleted"
                )))
            }
            Some(h) if *h != cp.hash.as_slice() => {
                return Ok(verdict(format!(
                    "entry {place}: its hash is not the one checkpoint {place}{origin} signed: the chain was rewritten up to it"
                )))
            }
            Some(_) => checked += 1,
        }
    }
    Ok(Verdict {
        entries,
        checkpoints: checked,
        broken: None,
    })
}

/// The first entry that does not follow from the one before it.
fn walk(chained: &[&Stored]) -> Option<String> {
    let last_place = chained.iter().filter_map(|r| r.seq).max().unwrap_or(0);
    let mut prev: Vec<u8> = GENESIS.to_vec();
    let mut expected = 1;
    for r in chained {
        let seq = r.seq.expect("chained");
        if seq > expected {
            return Some(if seq == expected + 1 {
                format!("entry {expected} is missing: deleted")
            } else {
                format!("entries {expected} to {} are missing: deleted", seq - 1)
            });
        }
        let (Some(stored), Some(own_prev)) = (r.hash.as_deref(), r.prev_hash.as_deref()) else {
            return Some(format!("entry {seq} has no hash: inserted"));
        };
        if entry_hash(&prev, seq, &r.fields()).as_slice() == stored && own_prev == prev.as_slice() {
            prev = stored.to_vec();
            expected = seq + 1;
            continue;
        }
        // Intact in itself but written at another place: moved. (Once, at
        // the first broken entry: one hash per place.)
        let origin = (1..=last_place)
            .filter(|p| *p != seq)
            .find(|p| entry_hash(own_prev, *p, &r.fields()).as_slice() == stored);
        if let Some(origin) = origin {
            return Some(format!(
                "entry {seq} is the entry written at place {origin}: reordered"
            ));
        }
        if entry_hash(own_prev, seq, &r.fields()).as_slice() == stored {
            return Some(format!(
                "entry {seq} does not follow entry {}: an entry was inserted or replaced before it",
                seq - 1
            ));
        }
        return Some(format!(
            "entry {seq} ({} at {}) is not what was written: modified",
            r.action, r.at
        ));
    }
    None
}

//! Retention after formal closure (Regulation (EU) 1024/2012 Art. 14): each
//! procedure says how many months after closure personal data are blocked
//! and when they are deleted. A periodic pass records the blocking and, when
//! the deletion date passed, erases the fields the catalogue lists as
//! personal data (`personal_data`, pointers into the payload) from every
//! stored message of the exchange. What remains is the case's skeleton:
//! codes, dates of steps, parties; the SHA-256 of the original bytes stays as
//! evidence of what was exchanged.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tracing::{info, instrument, warn};
use uuid::Uuid;

use crate::catalogue::SharedCatalogue;
use crate::clock::Clock;
use crate::error::HubError;

/// Exchanges erased per statement batch (the pass repeats until done).
const ERASE_PAGE: i64 = 100;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub blocked: usize,
    pub erased: usize,
    /// Refused messages whose bodies were erased.
    pub rejected_erased: usize,
}

#[derive(Clone)]
pub struct RetentionPass {
    pub(crate) pool: PgPool,
    pub(crate) catalogue: SharedCatalogue,
    pub(crate) clock: Arc<dyn Clock>,
    /// How long a refused message's body is kept for inspection.
    pub(crate) rejected_after: Duration,
}

/// A stored message's body, to erase personal data from.
#[derive(sqlx::FromRow)]
struct Stored {
    id: Uuid,
    raw: Vec<u8>,
}

/// Removes the value at `pointer` (RFC 6901, into the payload) if present.
fn erase(payload: &mut Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let target = if parent.is_empty() {
        Some(payload)
    } else {
        payload.pointer_mut(parent)
    };
    match target {
        Some(Value::Object(map)) => map.remove(&last).is_some(),
        _ => false,
    }
}

impl RetentionPass {
    #[instrument(skip_all)]
    pub async fn run_once(&self) -> Result<RetentionOutcome, HubError> {
        let now = self.clock.now();
        let catalogue = self.catalogue.current();
        let mut outcome = RetentionOutcome::default();
        for p in catalogue.procedures() {
            let blocked: Vec<Uuid> = sqlx::query_scalar(
                "UPDATE exchanges SET blocked_at = $3
                 WHERE procedure = $1 AND closed_at IS NOT NULL AND blocked_at IS NULL
                   AND closed_at + make_interval(months => $2) <= $3
                 RETURNING id",
            )
            .bind(p.code.as_str())
            .bind(p.retention.block_after_closure_months as i32)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            outcome.blocked += blocked.len();
            loop {
                let n = self
                    .erase_page(
                        p.code.as_str(),
                        p.retention.delete_after_closure_months,
                        &p.personal_data,
                        now,
                    )
                    .await?;
                outcome.erased += n;
                if (n as i64) < ERASE_PAGE {
                    break;
                }
            }
        }
        // Refused messages: the body and the values quoted in the error
        // details go; the code, the pointers, the size and the digest stay.
        outcome.rejected_erased = sqlx::query(
            "UPDATE rejected_messages
             SET body = ''::bytea, body_erased_at = $1,
                 errors = coalesce((SELECT jsonb_agg(jsonb_build_object('pointer', e -> 'pointer'))
                                    FROM jsonb_array_elements(errors) e), '[]'::jsonb)
             WHERE body_erased_at IS NULL AND received_at + make_interval(secs => $2) <= $1",
        )
        .bind(now)
        .bind(self.rejected_after.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected() as usize;
        if outcome != RetentionOutcome::default() {
            info!(
                blocked = outcome.blocked,
                erased = outcome.erased,
                rejected_erased = outcome.rejected_erased,
                "Retention periods applied."
            );
        }
        Ok(outcome)
    }

    /// Erases the personal data of up to a page of exchanges due for it, in
    /// one transaction; returns how many.
    async fn erase_page(
        &self,
        procedure: &str,
        months: u32,
        pointers: &[String],
        now: DateTime<Utc>,
    ) -> Result<usize, HubError> {
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: several hub instances share the work. An exchange
        // erased before comes again if a message arrived since (e.g. a
        // modification after closure).
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT e.id FROM exchanges e
             WHERE e.procedure = $1 AND e.closed_at IS NOT NULL
               AND e.closed_at + make_interval(months => $2) <= $3
               AND (e.personal_data_erased_at IS NULL
                    OR EXISTS (SELECT 1 FROM messages m WHERE m.exchange_id = e.id
                                                       AND m.received_at > e.personal_data_erased_at))
             ORDER BY e.closed_at LIMIT $4 FOR UPDATE SKIP LOCKED",
        )
        .bind(procedure)
        .bind(months as i32)
        .bind(now)
        .bind(ERASE_PAGE)
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let messages: Vec<Stored> =
            sqlx::query_as("SELECT id, raw FROM messages WHERE exchange_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?;
        for Stored { id, raw } in messages {
            let Ok(mut body) = serde_json::from_slice::<Value>(&raw) else {
                warn!(message = %id, "A stored message is not JSON; left as it is.");
                continue;
            };
            let Some(payload) = body.get_mut("payload") else {
                continue;
            };
            let mut changed = false;
            for pointer in pointers {
                changed |= erase(payload, pointer);
            }
            if changed {
                sqlx::query("UPDATE messages SET raw = $2 WHERE id = $1")
                    .bind(id)
                    .bind(serde_json::to_vec(&body).expect("JSON serializes"))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Stamped with the database's time, which `received_at` uses too.
        sqlx::query(
            "UPDATE exchanges SET personal_data_erased_at = greatest(now(), $2),
                                  blocked_at = coalesce(blocked_at, $2)
             WHERE id = ANY($1)",
        )
        .bind(&ids)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::erase;
    use serde_json::json;

    #[test]
    fn erase_removes_only_the_pointed_field() {
        let mut p = json!({"professional": {"family_name": "Virtanen", "given_names": "Aino"}, "profession": "PQ-NURSE"});
        assert!(erase(&mut p, "/professional/family_name"));
        assert!(!erase(&mut p, "/professional/family_name"), "already gone");
        assert!(!erase(&mut p, "/missing/field"));
        assert_eq!(
            p,
            json!({"professional": {"given_names": "Aino"}, "profession": "PQ-NURSE"})
        );
        assert!(erase(&mut p, "/profession"));
        assert_eq!(p, json!({"professional": {"given_names": "Aino"}}));
    }
}

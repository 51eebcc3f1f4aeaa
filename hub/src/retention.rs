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

use imi_schemas::catalogue::Procedure;

use crate::audit_log::{self, NewEntry};
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
    /// Exchanges formally closed by the expiry date they carry.
    pub expired: usize,
}

#[derive(Clone)]
pub struct RetentionPass {
    pub(crate) pool: PgPool,
    pub(crate) catalogue: SharedCatalogue,
    pub(crate) clock: Arc<dyn Clock>,
    /// How long a refused message's body is kept for inspection.
    pub(crate) rejected_after: Duration,
    /// Seals what an erasure rewrites.
    pub(crate) data_keys: crate::at_rest::DataKeys,
}

/// A stored message's body, to erase personal data from.
#[derive(sqlx::FromRow)]
struct Stored {
    id: Uuid,
    raw: Vec<u8>,
}

/// Removes the value at `pointer` (RFC 6901, into the payload, with `*` for
/// every index of an array) wherever present.
fn erase(payload: &mut Value, pointer: &str) -> bool {
    let Some(rest) = pointer.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    erase_at(payload, &segments)
}

fn erase_at(value: &mut Value, segments: &[String]) -> bool {
    let [first, rest @ ..] = segments else {
        return false;
    };
    if rest.is_empty() {
        return match (value, first.as_str()) {
            // `/list/*`: every item of the list (or value of the map) goes.
            (Value::Array(items), "*") => {
                let had = !items.is_empty();
                items.clear();
                had
            }
            (Value::Object(map), "*") => {
                let had = !map.is_empty();
                map.clear();
                had
            }
            (Value::Object(map), key) => map.remove(key).is_some(),
            _ => false,
        };
    }
    match (value, first.as_str()) {
        (Value::Array(items), "*") => items
            .iter_mut()
            .fold(false, |changed, item| erase_at(item, rest) | changed),
        (Value::Object(map), "*") => map
            .values_mut()
            .fold(false, |changed, item| erase_at(item, rest) | changed),
        (Value::Array(items), index) => index
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get_mut(i))
            .is_some_and(|item| erase_at(item, rest)),
        (Value::Object(map), key) => map.get_mut(key).is_some_and(|v| erase_at(v, rest)),
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
            if let Some(field) = &p.expires_with {
                outcome.expired += self
                    .close_expired(p.code.as_str(), field, &p.closure_states, now)
                    .await?;
            }
            let delete_days = p.retention.delete_after_closure_days.map(|d| d as i32);
            let blocked: Vec<Uuid> = sqlx::query_scalar(
                "UPDATE exchanges SET blocked_at = $3
                 WHERE procedure = $1 AND closed_at IS NOT NULL AND blocked_at IS NULL
                   AND (closed_at + make_interval(months => $2) <= $3
                        OR closed_at + make_interval(days => $4) <= $3)
                 RETURNING id",
            )
            .bind(p.code.as_str())
            .bind(p.retention.block_after_closure_months as i32)
            .bind(now)
            .bind(delete_days)
            .fetch_all(&self.pool)
            .await?;
            outcome.blocked += blocked.len();
            loop {
                let n = self.erase_page(p, delete_days, now).await?;
                outcome.erased += n;
                if (n as i64) < ERASE_PAGE {
                    break;
                }
            }
        }
        // Refused messages: the body and the values quoted in the error
        // details go; the code, the pointers, the size and the digest stay.
        let mut tx = self.pool.begin().await?;
        outcome.rejected_erased = sqlx::query(
            "UPDATE rejected_messages
             SET body = ''::bytea, body_erased_at = $1,
                 errors = coalesce((SELECT jsonb_agg(jsonb_build_object('pointer', e -> 'pointer'))
                                    FROM jsonb_array_elements(errors) e), '[]'::jsonb)
             WHERE body_erased_at IS NULL AND received_at + make_interval(secs => $2) <= $1",
        )
        .bind(now)
        .bind(self.rejected_after.as_secs_f64())
        .execute(&mut *tx)
        .await?
        .rows_affected() as usize;
        if outcome.rejected_erased > 0 {
            audit_log::append(
                &mut tx,
                NewEntry::by_hub(
                    "erase_refused_bodies",
                    serde_json::json!({"messages": outcome.rejected_erased}),
                ),
            )
            .await?;
        }
        tx.commit().await?;
        if outcome != RetentionOutcome::default() {
            info!(
                blocked = outcome.blocked,
                erased = outcome.erased,
                rejected_erased = outcome.rejected_erased,
                expired = outcome.expired,
                "Retention periods applied."
            );
        }
        Ok(outcome)
    }

    /// Formally closes, at the end of the date in `field` (the latest
    /// message carrying it decides), the open exchanges whose date passed:
    /// e.g. an alert whose restriction expired. One closed that way whose
    /// latest message moved the date later (a restriction extended) before
    /// its data were erased is open again. Returns how many were closed.
    #[instrument(skip_all, fields(procedure = %procedure))]
    async fn close_expired(
        &self,
        procedure: &str,
        field: &str,
        closure_states: &[String],
        now: DateTime<Utc>,
    ) -> Result<usize, HubError> {
        // Open exchanges, and those closed by their date (not by a closing
        // step) whose data are still there.
        let ends = "WITH latest AS (
                 SELECT DISTINCT ON (m.exchange_id) m.exchange_id,
                        m.facts ->> $2 AS ends_on
                 FROM messages m JOIN exchanges e ON e.id = m.exchange_id
                 WHERE e.procedure = $1
                   AND (e.closed_at IS NULL
                        OR (NOT e.state = ANY($4) AND e.personal_data_erased_at IS NULL))
                   AND m.facts ? $2
                 ORDER BY m.exchange_id, m.received_at DESC
             ), ends AS (
                 SELECT exchange_id, (ends_on::date + 1)::timestamp AT TIME ZONE 'UTC' AS at
                 FROM latest WHERE ends_on ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
             )";
        let reopened = sqlx::query(&format!(
            "{ends}
             UPDATE exchanges e SET closed_at = NULL, blocked_at = NULL
             FROM ends WHERE e.id = ends.exchange_id AND e.closed_at IS NOT NULL
               AND ends.at > e.closed_at AND ends.at > $3"
        ))
        .bind(procedure)
        .bind(field)
        .bind(now)
        .bind(closure_states)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let closed: Vec<Uuid> = sqlx::query_scalar(&format!(
            "{ends}
             UPDATE exchanges e SET closed_at = ends.at
             FROM ends WHERE e.id = ends.exchange_id AND ends.at <= $3 AND e.closed_at IS NULL
             RETURNING e.id"
        ))
        .bind(procedure)
        .bind(field)
        .bind(now)
        .bind(closure_states)
        .fetch_all(&self.pool)
        .await?;
        if !closed.is_empty() || reopened > 0 {
            info!(
                procedure,
                expired = closed.len(),
                reopened,
                "Exchanges closed (or open again) by the expiry date they carry."
            );
        }
        Ok(closed.len())
    }

    /// Erases the personal data of up to a page of exchanges due for it, in
    /// one transaction; returns how many.
    async fn erase_page(
        &self,
        p: &Procedure,
        days: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<usize, HubError> {
        let (procedure, months, pointers) = (
            p.code.as_str(),
            p.retention.delete_after_closure_months,
            &p.personal_data,
        );
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: several hub instances share the work. An exchange
        // erased before comes again if a message arrived since (e.g. a
        // modification after closure).
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT e.id FROM exchanges e
             WHERE e.procedure = $1 AND e.closed_at IS NOT NULL
               AND e.closed_at + CASE WHEN $5::int IS NULL THEN make_interval(months => $2)
                                      ELSE make_interval(days => $5) END <= $3
               AND (e.personal_data_erased_at IS NULL
                    OR EXISTS (SELECT 1 FROM messages m WHERE m.exchange_id = e.id
                                                       AND m.received_at > e.personal_data_erased_at))
             ORDER BY e.closed_at LIMIT $4 FOR UPDATE SKIP LOCKED",
        )
        .bind(procedure)
        .bind(months as i32)
        .bind(now)
        .bind(ERASE_PAGE)
        .bind(days)
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
            let raw = match crate::at_rest::open(&raw) {
                Ok(plain) => plain,
                Err(error) => {
                    warn!(message = %id, %error, "A stored message cannot be opened; left as it is.");
                    continue;
                }
            };
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
                // The facts lose what was erased (an end date is personal
                // data too).
                let facts = crate::facts::of(p, payload);
                let plain = serde_json::to_vec(&body).expect("JSON serializes");
                let stored = self.data_keys.seal(&plain).unwrap_or(plain);
                sqlx::query("UPDATE messages SET raw = $2, facts = $3 WHERE id = $1")
                    .bind(id)
                    .bind(stored)
                    .bind(facts)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Nobody is found by these exchanges any more.
        crate::subjects::forget_exchanges(&mut tx, &ids).await?;
        // The erasure is itself recorded, in the tamper-evident log.
        audit_log::append(
            &mut tx,
            NewEntry::by_hub(
                "erase_personal_data",
                serde_json::json!({"procedure": procedure, "exchanges": ids}),
            ),
        )
        .await?;
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

    #[test]
    fn a_star_erases_the_field_in_every_item_of_an_array() {
        let mut p = json!({"answers": [
            {"question": "Q1", "answer": "YES", "comment": "Suspended in 2021 for misconduct."},
            {"question": "Q2", "answer": "NO"},
            {"question": "Q3", "answer": "NO", "comment": "Known to the police."}
        ]});
        assert!(erase(&mut p, "/answers/*/comment"));
        assert_eq!(
            p,
            json!({"answers": [
                {"question": "Q1", "answer": "YES"},
                {"question": "Q2", "answer": "NO"},
                {"question": "Q3", "answer": "NO"}
            ]})
        );
        assert!(!erase(&mut p, "/answers/*/comment"), "already gone");
    }

    #[test]
    fn a_trailing_star_erases_every_item_of_a_list() {
        let mut p = json!({"vehicle_registrations": ["B-XY 123", "B-XY 124"], "country": "DE"});
        assert!(erase(&mut p, "/vehicle_registrations/*"));
        assert_eq!(p, json!({"vehicle_registrations": [], "country": "DE"}));
        assert!(!erase(&mut p, "/vehicle_registrations/*"), "already gone");
    }
}

//! What the hub writes outside the ingress pipeline, in the caller's
//! transaction: its own messages (notices, a coordinator's step) as an
//! outbox batch, so that the relay's safety net holds them before they are
//! published; and a person's step on an exchange (reassignment, validation).

use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use super::writes::Writes;
use sqlx::PgPool;

use crate::audit_log::{self, NewEntry};
use crate::inbound::Refusal;
use crate::outgoing::OutboxRow;
use crate::workflow::Transition;

/// Opens a batch and writes its outbox rows; returns the batch id, which
/// `dispatch` marks published once the rows are confirmed.
#[instrument(skip_all, fields(rows = rows.len()))]
pub(crate) async fn write_own(
    conn: &mut PgConnection,
    instance: &str,
    rows: &[OutboxRow],
) -> Result<Uuid, sqlx::Error> {
    let batch_id = Uuid::now_v7();
    let mut writes = Writes::default();
    writes.batch(batch_id, instance);
    writes.outbox(batch_id, rows);
    writes.execute(conn).await?;
    Ok(batch_id)
}

/// A step an account took on an exchange over HTTP: the exchange's new
/// state (and responder, and release of a 1:N exchange), and the
/// transition, recorded with the account's name.
#[instrument(skip_all, fields(exchange = %step.exchange_id, action = %step.action))]
pub(crate) async fn record_step(
    conn: &mut PgConnection,
    step: &Transition,
    responder: Option<&str>,
    releases: bool,
    actor: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE exchanges SET state = $2, responder = coalesce($3, responder), updated_at = now(),
                released_at = CASE WHEN $4 THEN now() ELSE released_at END
         WHERE id = $1",
    )
    .bind(step.exchange_id)
    .bind(&step.to)
    .bind(responder)
    .bind(releases)
    .execute(&mut *conn)
    .await?;
    let mut writes = Writes::default();
    writes.transitions(std::slice::from_ref(step), Some(actor));
    writes.execute(&mut *conn).await?;
    let exchange = step.exchange_id.to_string();
    audit_log::append(
        conn,
        NewEntry {
            account_id: None,
            account_name: actor,
            source: "coordination",
            action: &step.action,
            subject: Some(&exchange),
            detail: serde_json::json!({"from": step.from, "to": step.to, "responder": responder}),
        },
    )
    .await?;
    Ok(())
}

/// Keeps refused messages that came from outside the pipeline's batches
/// (dead letters) with their reasons.
#[instrument(skip_all, fields(rows = refusals.len()))]
pub(crate) async fn record_refusals(
    pool: &PgPool,
    refusals: &[Refusal],
    keys: &crate::at_rest::DataKeys,
) -> Result<(), sqlx::Error> {
    let rows: Vec<&Refusal> = refusals.iter().collect();
    let mut writes = Writes::default();
    writes.rejected(&rows, keys);
    let mut conn = pool.acquire().await?;
    writes.execute(&mut conn).await?;
    Ok(())
}

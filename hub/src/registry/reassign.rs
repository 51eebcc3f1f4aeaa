//! A coordinator reassigns a request (typically an overdue one) to another
//! authority of its country: the case keeps its exchange id, the new
//! responder receives the opening message, and its deadline starts afresh.

use std::collections::BTreeMap;

use imi_schemas::protocol::{
    HEADER_RECIPIENTS, HEADER_SCHEMA_VERSION, HEADER_SENDER, HEADER_TRACEPARENT,
};
use tracing::instrument;
use uuid::Uuid;

use super::accounts::{Account, AccountRole};
use super::workflow::{RegistryContext, WorkflowError};
use crate::pipeline::publish_batch;
use crate::store::{self, OutboxKind, OutboxRow};

/// The state a responder puts a request in to refer it to its coordinator
/// (a catalogue convention: `GET /api/v1/referred` lists such exchanges).
pub const REFERRED: &str = "referred";

/// Reassigns exchange `exchange` to authority `to`.
#[instrument(skip_all, fields(exchange = %exchange, to = %to, account = %account.name))]
pub async fn reassign(
    ctx: &RegistryContext,
    publisher: &imi_broker::Publisher,
    account: &Account,
    exchange: Uuid,
    to: &str,
) -> Result<(), WorkflowError> {
    type Row = (
        String,
        String,
        String,
        String,
        Uuid,
        String,
        String,
        i32,
        Option<String>,
        Vec<u8>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT e.procedure, e.state, e.requester, e.responder, e.opened_by,
                m.message_type, m.sender, m.schema_version, m.traceparent, m.raw
         FROM exchanges e JOIN messages m ON m.id = e.opened_by WHERE e.id = $1",
    )
    .bind(exchange)
    .fetch_optional(&ctx.pool)
    .await?;
    let (
        procedure,
        state,
        requester,
        responder,
        opened_by,
        message_type,
        sender,
        version,
        traceparent,
        raw,
    ) = row.ok_or_else(|| WorkflowError::NotFound(format!("no exchange {exchange}")))?;

    let registry = ctx.registry.current();
    let current = registry.authority(&responder);
    match account.role {
        AccountRole::Operator => {}
        AccountRole::Auditor => {
            return Err(WorkflowError::Forbidden(
                "auditors have read-only access".into(),
            ))
        }
        AccountRole::Coordinator => {
            let country = account.country.map(|c| c.as_str().to_owned());
            if current.map(|a| a.id.country().as_str().to_owned()) != country {
                return Err(WorkflowError::Forbidden(format!(
                    "only a coordinator of {}'s country may reassign its requests",
                    responder
                )));
            }
        }
    }
    let code = imi_schemas::ids::ProcedureCode::try_from(procedure.as_str())
        .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
    let target = registry
        .authority(to)
        .filter(|a| a.may_use(&code))
        .filter(|a| {
            registry
                .endpoint(a.endpoint.as_str())
                .is_some_and(|e| e.status == super::Status::Active)
        })
        .ok_or_else(|| {
            WorkflowError::Invalid(format!(
                "`{to}` is not an active authority registered for {procedure}"
            ))
        })?;
    if to == requester || to == responder {
        return Err(WorkflowError::Invalid(format!(
            "`{to}` is already a party to the exchange"
        )));
    }

    let mut headers = BTreeMap::new();
    headers.insert(HEADER_SENDER.to_owned(), sender);
    headers.insert(HEADER_RECIPIENTS.to_owned(), to.to_owned());
    headers.insert(HEADER_SCHEMA_VERSION.to_owned(), version.to_string());
    if let Some(tp) = traceparent {
        headers.insert(HEADER_TRACEPARENT.to_owned(), tp);
    }
    let mut name = opened_by.as_bytes().to_vec();
    name.extend_from_slice(b"reassign");
    name.extend_from_slice(to.as_bytes());
    let row = OutboxRow {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
        kind: OutboxKind::Delivery,
        source_message_id: opened_by.to_string(),
        endpoint: target.endpoint.to_string(),
        recipients: vec![to.to_owned()],
        exchange_id: Some(exchange),
        // The new responder receives the opening message as it was sent.
        message_type,
        headers,
        body: raw,
    };

    // A request referred to the coordinator starts again where requests
    // start; otherwise it keeps its state.
    let new_state = if state == REFERRED {
        ctx.catalogue
            .current()
            .procedure(&code)
            .and_then(|p| p.opening_state().map(str::to_owned))
            .unwrap_or_else(|| state.clone())
    } else {
        state.clone()
    };
    let mut tx = ctx.pool.begin().await?;
    sqlx::query(
        "UPDATE exchanges SET responder = $2, state = $3, updated_at = now() WHERE id = $1",
    )
    .bind(exchange)
    .bind(to)
    .bind(&new_state)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO transitions (exchange_id, message_id, action, from_state, to_state, actor)
         VALUES ($1, $2, 'reassign', $3, $5, $4)",
    )
    .bind(exchange)
    .bind(row.id)
    .bind(&state)
    .bind(&account.name)
    .bind(&new_state)
    .execute(&mut *tx)
    .await?;
    let batch_id = store::write_batch(&mut tx, "api", std::slice::from_ref(&row)).await?;
    tx.commit().await?;
    publish_batch::<WorkflowError>(publisher, &ctx.pool, batch_id, vec![row]).await?;
    Ok(())
}

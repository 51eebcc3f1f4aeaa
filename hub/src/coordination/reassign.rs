//! A coordinator reassigns a request (typically an overdue one) to another
//! authority of its country: the case keeps its exchange id, the new
//! responder receives the opening message, and its deadline starts afresh.

use imi_broker::Publisher;
use imi_schemas::ids::ProcedureCode;
use tracing::instrument;
use uuid::Uuid;

use crate::accounts::Account;
use crate::dispatch;
use crate::outgoing::{self, Copy};
use crate::registry::workflow::{RegistryContext, WorkflowError};
use crate::registry::Status;
use crate::scope::{Scope, Target};
use crate::store::{self, StoredMessage};
use crate::workflow::Transition;

/// The state a responder puts a request in to refer it to its coordinator
/// (a catalogue convention: `GET /api/v1/referred` lists such exchanges).
pub(crate) const REFERRED: &str = "referred";

/// The exchange to reassign, with its opening message.
#[derive(sqlx::FromRow)]
struct Reassigned {
    procedure: String,
    state: String,
    requester: String,
    responder: String,
    responder_region: Option<String>,
    parent_id: Option<Uuid>,
    #[sqlx(flatten)]
    opening: StoredMessage,
}

/// Reassigns exchange `exchange` to authority `to`.
#[instrument(skip_all, fields(exchange = %exchange, to = %to, account = %account.name))]
pub(crate) async fn reassign(
    ctx: &RegistryContext,
    publisher: &Publisher,
    account: &Account,
    exchange: Uuid,
    to: &str,
) -> Result<(), WorkflowError> {
    let row: Option<Reassigned> = sqlx::query_as(
        "SELECT e.procedure, e.state, e.requester, e.responder, a.region AS responder_region, e.parent_id,
                m.id, m.message_type, m.sender, m.schema_version, m.traceparent, m.raw
         FROM exchanges e JOIN messages m ON m.id = e.opened_by
         LEFT JOIN authorities a ON a.id = e.responder
         WHERE e.id = $1",
    )
    .bind(exchange)
    .fetch_optional(&ctx.pool)
    .await?;
    let mut row = row.ok_or_else(|| WorkflowError::NotFound(format!("no exchange {exchange}")))?;
    crate::at_rest::open_in_place(&mut row.opening.raw);
    let code = ProcedureCode::try_from(row.procedure.as_str())
        .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
    let catalogue = ctx.catalogue.current();
    let procedure = catalogue.procedure(&code);
    // The coordinator of the current responder's office decides.
    Scope::of(account).may_act(Target {
        country: row.responder.get(..2).unwrap_or_default(),
        area: procedure.map(|p| p.area.as_str()),
        region: row.responder_region.as_deref(),
    })?;

    let registry = ctx.registry.current();
    let target = registry
        .authority(to)
        .filter(|a| a.may_use(&code))
        .filter(|a| {
            registry
                .endpoint(a.endpoint.as_str())
                .is_some_and(|e| e.status == Status::Active)
        })
        .ok_or_else(|| {
            WorkflowError::Invalid(format!(
                "`{to}` is not an active authority registered for {}",
                row.procedure
            ))
        })?;
    if to == row.requester || to == row.responder {
        return Err(WorkflowError::Invalid(format!(
            "`{to}` is already a party to the exchange"
        )));
    }
    // The new responder receives the opening message as it was sent.
    let copy: Copy<'_> = row.opening.copy(exchange);
    let message = outgoing::reassigned(&copy, to, target.endpoint.to_string(), row.parent_id);

    // A request referred to the coordinator starts again where requests
    // start; otherwise it keeps its state.
    let new_state = if row.state == REFERRED {
        procedure
            .and_then(|p| p.opening_state().map(str::to_owned))
            .unwrap_or_else(|| row.state.clone())
    } else {
        row.state.clone()
    };
    let step = Transition {
        exchange_id: exchange,
        message_id: message.id,
        action: "reassign".into(),
        from: Some(row.state.clone()),
        to: new_state,
    };
    let mut tx = ctx.pool.begin().await?;
    store::record_step(&mut tx, &step, Some(to), false, &account.name).await?;
    let batch_id = store::write_own(&mut tx, "api", std::slice::from_ref(&message)).await?;
    tx.commit().await?;
    dispatch::publish_own::<WorkflowError>(publisher, &ctx.pool, batch_id, vec![message]).await?;
    Ok(())
}

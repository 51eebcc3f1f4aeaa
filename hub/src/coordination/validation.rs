//! National validation of outgoing 1:N messages: a coordinator switches the
//! gate of its country and area on or off, lists what waits, and approves
//! (the exchange is released to every recipient, held messages in order) or
//! refuses (it goes back to its draft state and the originator is told why).

use chrono::{DateTime, Utc};
use imi_broker::Publisher;
use imi_schemas::catalogue::VALIDATION_STATE;
use imi_schemas::ids::{AreaCode, CountryCode, ProcedureCode};
use imi_schemas::protocol::{Decision, ValidationDecision};
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use crate::accounts::Account;
use crate::dispatch;
use crate::outgoing;
use crate::registry::workflow::{RegistryContext, WorkflowError};
use crate::scope::{Scope, Target};
use crate::store;
use crate::workflow::Transition;

/// Turns national validation of outgoing 1:N messages on or off for a
/// country and area.
#[instrument(skip_all, fields(country = %country, area = %area, on))]
pub(crate) async fn set_gate(
    ctx: &RegistryContext,
    account: &Account,
    country: &CountryCode,
    area: &AreaCode,
    on: bool,
) -> Result<(), WorkflowError> {
    Scope::of(account).may_act(Target {
        country: country.as_str(),
        area: Some(area.as_str()),
        region: None,
    })?;
    if on {
        sqlx::query(
            "INSERT INTO validation_gates (country, area, account_id) VALUES ($1, $2, $3)
             ON CONFLICT (country, area) DO UPDATE SET account_id = $3, set_at = now()",
        )
        .bind(country.as_str())
        .bind(area.as_str())
        .bind(account.id)
        .execute(&ctx.pool)
        .await?;
    } else {
        sqlx::query("DELETE FROM validation_gates WHERE country = $1 AND area = $2")
            .bind(country.as_str())
            .bind(area.as_str())
            .execute(&ctx.pool)
            .await?;
    }
    // The pipeline reads the gates in each batch's transaction: every hub
    // instance applies the change at once.
    Ok(())
}

/// A 1:N exchange waiting for validation, for the coordinators' list.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PendingValidation {
    pub(crate) exchange_id: Uuid,
    pub(crate) procedure: String,
    pub(crate) originator: String,
    pub(crate) recipients: i32,
    pub(crate) since: DateTime<Utc>,
}

/// What waits for validation: a coordinator's country's, or everything.
#[instrument(skip_all, fields(account = %account.name))]
pub(crate) async fn pending_validations(
    pool: &PgPool,
    account: &Account,
) -> Result<Vec<PendingValidation>, WorkflowError> {
    Ok(sqlx::query_as(
        "SELECT id AS exchange_id, procedure, requester AS originator,
                coalesce(cardinality(recipients), 0) AS recipients, updated_at AS since
         FROM exchanges
         WHERE state = $1 AND recipients IS NOT NULL AND ($2::text IS NULL OR left(requester, 2) = $2)
         ORDER BY updated_at",
    )
    .bind(VALIDATION_STATE)
    .bind(Scope::of(account).country_filter())
    .fetch_all(pool)
    .await?)
}

#[derive(sqlx::FromRow)]
struct Waiting {
    procedure: String,
    state: String,
    requester: String,
    recipients: Option<Vec<String>>,
}

/// The originator's national coordinator approves or refuses; returns the
/// exchange's new state.
#[instrument(skip_all, fields(exchange = %exchange, approve, account = %account.name))]
pub(crate) async fn decide_validation(
    ctx: &RegistryContext,
    publisher: &Publisher,
    account: &Account,
    exchange: Uuid,
    approve: bool,
    reason: Option<String>,
) -> Result<String, WorkflowError> {
    let mut tx = ctx.pool.begin().await?;
    let row: Option<Waiting> = sqlx::query_as(
        "SELECT procedure, state, requester, recipients FROM exchanges WHERE id = $1 FOR UPDATE",
    )
    .bind(exchange)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| WorkflowError::NotFound(format!("no exchange {exchange}")))?;
    let catalogue = ctx.catalogue.current();
    let code = ProcedureCode::try_from(row.procedure.as_str())
        .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
    let procedure = catalogue
        .procedure(&code)
        .ok_or_else(|| WorkflowError::Invalid(format!("{} left the catalogue", row.procedure)))?;
    Scope::of(account).may_act(Target {
        country: row.requester.get(..2).unwrap_or_default(),
        area: Some(procedure.area.as_str()),
        region: None,
    })?;
    if row.state != VALIDATION_STATE {
        return Err(WorkflowError::Conflict(format!(
            "exchange {exchange} is `{}`, not `{VALIDATION_STATE}`",
            row.state
        )));
    }
    // Approval moves on to where the broadcasting action leads; refusal back
    // to where a draft waits.
    let next = if approve {
        procedure
            .actions()
            .find(|a| a.broadcasts)
            .map(|a| a.to.clone())
    } else {
        procedure
            .actions()
            .find(|a| a.opens && !a.broadcasts)
            .map(|a| a.to.clone())
    }
    .ok_or_else(|| {
        WorkflowError::Invalid(format!(
            "{} has no state to move this exchange to",
            row.procedure
        ))
    })?;
    let registry = ctx.registry.current();
    let (mut rows, deliveries) = if approve {
        let messages = store::exchange_messages(&mut tx, exchange, None).await?;
        let broadcast = (procedure.area.to_string(), row.procedure.clone());
        store::replay_rows(
            &messages,
            exchange,
            row.recipients.as_deref().unwrap_or_default(),
            "",
            Some(&broadcast),
            &registry,
        )
        .map_err(|a| WorkflowError::Conflict(format!("recipient `{a}` is no longer registered")))?
    } else {
        (Vec::new(), Vec::new())
    };
    // The originator is told either way.
    if let Some(origin) = registry.authority(&row.requester) {
        let decision = ValidationDecision {
            exchange_id: exchange,
            procedure: row.procedure.clone(),
            decision: if approve {
                Decision::Approved
            } else {
                Decision::Refused
            },
            state: next.clone(),
            reason,
            by: account.name.clone(),
        };
        rows.push(outgoing::validation_notice(
            &decision,
            &row.requester,
            origin.endpoint.to_string(),
        ));
    }
    let step = Transition {
        exchange_id: exchange,
        message_id: Uuid::new_v4(),
        action: if approve {
            "validate"
        } else {
            "refuse-validation"
        }
        .into(),
        from: Some(row.state),
        to: next.clone(),
    };
    store::record_step(&mut tx, &step, None, approve, &account.name).await?;
    let batch_id = store::write_own(&mut tx, "api", &rows).await?;
    store::insert_deliveries(&mut tx, &deliveries).await?;
    tx.commit().await?;
    // Published here for speed; the relay would do it after a crash.
    dispatch::publish_own::<WorkflowError>(publisher, &ctx.pool, batch_id, rows).await?;
    Ok(next)
}

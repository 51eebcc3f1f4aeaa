//! `GET /api/v1/exchanges/{id}` — one case as everyone follows it: its
//! parties, state, the linked parent and child requests, every step with who
//! took it, and when its formal closure started the retention period.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Months, Utc};
use imi_schemas::ids::ProcedureCode;
use serde::Serialize;
use uuid::Uuid;

use super::{ApiError, Caller};
use crate::http::AppState;
use crate::scope::{Parties, Scope};

#[derive(Serialize)]
pub(crate) struct StepView {
    at: DateTime<Utc>,
    action: String,
    from: Option<String>,
    to: String,
    /// The message that took it (absent for a coordinator's step).
    message_id: Option<Uuid>,
    sender: Option<String>,
    /// The account, for a step taken over HTTP (reassignment, validation).
    by_account: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct RetentionView {
    /// Personal data is blocked from this date (Regulation 1024/2012 Art. 14).
    block_at: DateTime<Utc>,
    /// And deleted from this one.
    delete_at: DateTime<Utc>,
    /// When the hub recorded the blocking.
    blocked_at: Option<DateTime<Utc>>,
    /// When the hub erased the personal data from the stored messages.
    personal_data_erased_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub(crate) struct ExchangeView {
    exchange_id: Uuid,
    procedure: String,
    state: String,
    requester: String,
    /// The 1:1 counterpart; empty for 1:N.
    responder: String,
    /// 1:N: the frozen recipients.
    recipients: Option<Vec<String>>,
    parent_id: Option<Uuid>,
    children: Vec<Uuid>,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Formal closure: when it entered a closure state of its procedure.
    closed_at: Option<DateTime<Utc>>,
    retention: Option<RetentionView>,
    steps: Vec<StepView>,
}

#[derive(sqlx::FromRow)]
struct Head {
    procedure: String,
    state: String,
    requester: String,
    responder: String,
    recipients: Option<Vec<String>>,
    parent_id: Option<Uuid>,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    blocked_at: Option<DateTime<Utc>>,
    personal_data_erased_at: Option<DateTime<Utc>>,
    released: bool,
}

#[derive(sqlx::FromRow)]
struct Step {
    at: DateTime<Utc>,
    action: String,
    from_state: Option<String>,
    to_state: String,
    message_id: Uuid,
    sender: Option<String>,
    actor: Option<String>,
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name, exchange = %id))]
pub(crate) async fn show(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExchangeView>, ApiError> {
    let exchange = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not an exchange id")))?;
    let head: Option<Head> = sqlx::query_as(
        "SELECT procedure, state, requester, responder, recipients, parent_id, created_at AS opened_at,
                updated_at, closed_at, blocked_at, personal_data_erased_at,
                recipients IS NULL OR released_at IS NOT NULL AS released
         FROM exchanges WHERE id = $1",
    )
    .bind(exchange)
    .fetch_optional(&state.pool)
    .await?;
    let head = head.ok_or_else(|| ApiError::NotFound(format!("no exchange {exchange}")))?;
    // A coordinator sees the exchanges its country's authorities are party
    // to (a held 1:N draft only in the originator's country).
    Scope::of(&caller.0).sees(Parties {
        requester: &head.requester,
        responder: &head.responder,
        recipients: head.recipients.as_deref().unwrap_or_default(),
        released: head.released,
    })?;
    let children: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM exchanges WHERE parent_id = $1 ORDER BY created_at")
            .bind(exchange)
            .fetch_all(&state.pool)
            .await?;
    let steps: Vec<Step> = sqlx::query_as(
        "SELECT t.at, t.action, t.from_state, t.to_state, t.message_id, m.sender, t.actor
         FROM transitions t LEFT JOIN messages m ON m.id = t.message_id
         WHERE t.exchange_id = $1 ORDER BY t.id",
    )
    .bind(exchange)
    .fetch_all(&state.pool)
    .await?;
    let catalogue = state.registry.catalogue.current();
    let retention = ProcedureCode::try_from(head.procedure.as_str())
        .ok()
        .and_then(|code| catalogue.procedure(&code).map(|p| p.retention))
        .zip(head.closed_at)
        .map(|(r, closed)| RetentionView {
            block_at: closed + Months::new(r.block_after_closure_months),
            delete_at: closed + Months::new(r.delete_after_closure_months),
            blocked_at: head.blocked_at,
            personal_data_erased_at: head.personal_data_erased_at,
        });
    Ok(Json(ExchangeView {
        exchange_id: exchange,
        procedure: head.procedure,
        state: head.state,
        requester: head.requester,
        responder: head.responder,
        recipients: head.recipients,
        parent_id: head.parent_id,
        children,
        opened_at: head.opened_at,
        updated_at: head.updated_at,
        closed_at: head.closed_at,
        retention,
        steps: steps
            .into_iter()
            .map(|s| StepView {
                at: s.at,
                action: s.action,
                from: s.from_state,
                to: s.to_state,
                message_id: s.actor.is_none().then_some(s.message_id),
                sender: s.sender,
                by_account: s.actor,
            })
            .collect(),
    }))
}

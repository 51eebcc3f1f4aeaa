//! `GET /api/v1/exchanges/{id}` — one case as everyone follows it: its
//! parties, state, the linked parent and child requests, every step with who
//! took it, and when its formal closure started the retention period.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use imi_schemas::ids::ProcedureCode;
use serde::Serialize;
use uuid::Uuid;

use super::{ApiError, Caller, ProblemView};
use crate::http::AppState;
use crate::scope::Scope;
use crate::views::exchanges::{self, Detail};

#[derive(Serialize, utoipa::ToSchema)]
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

#[derive(Serialize, utoipa::ToSchema)]
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

/// A deadline running in the exchange's current state.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunningDeadlineView {
    /// The deadline's code in the catalogue, e.g. `answer`.
    deadline: String,
    started_at: DateTime<Utc>,
    /// Absent while a request for more information stops the clock.
    due_at: Option<DateTime<Utc>>,
    /// Where the deadline comes from: an act and article, or `default: …`.
    source: String,
}

#[derive(Serialize, utoipa::ToSchema)]
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
    /// Deadlines running (or stopped) in the current state, computed from
    /// the exchange's history when asked.
    deadlines: Vec<RunningDeadlineView>,
    steps: Vec<StepView>,
}

/// One case: its parties, links, every step, and its retention.
#[utoipa::path(get, path = "/api/v1/exchanges/{id}", tag = "exchanges",
    params(("id" = String, Path, description = "The exchange id")),
    responses((status = 200, body = ExchangeView), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, exchange = %id))]
pub(crate) async fn show(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExchangeView>, ApiError> {
    let exchange = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not an exchange id")))?;
    // A coordinator sees the exchanges its country's authorities are party
    // to (a held 1:N draft only in the originator's country).
    let Detail {
        head,
        children,
        steps,
        ..
    } = exchanges::detail(&state.pool, &Scope::of(&caller.0), exchange).await?;
    let catalogue = state.registry.catalogue.current();
    let running = exchanges::running_deadlines(&state.pool, &catalogue, &head).await?;
    let procedure = ProcedureCode::try_from(head.procedure.as_str())
        .ok()
        .and_then(|code| catalogue.procedure(&code));
    let deadlines = running
        .into_iter()
        .map(|r| RunningDeadlineView {
            source: procedure
                .and_then(|p| p.deadlines.iter().find(|d| d.code == r.deadline))
                .map(|d| d.source_text())
                .unwrap_or_default(),
            deadline: r.deadline,
            started_at: r.started_at,
            due_at: r.due_at,
        })
        .collect();
    let retention = procedure
        .map(|p| p.retention)
        .zip(head.closed_at)
        .map(|(r, closed)| RetentionView {
            block_at: r.block_at(closed),
            delete_at: r.delete_at(closed),
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
        deadlines,
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

//! `GET /api/v1/overdue` — exchanges whose deadline passed, for the
//! coordinators who must intervene (their country only) and operators (all);
//! `GET /api/v1/referred` — requests referred to their coordinator.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{ApiError, Caller, ProblemView};
use crate::http::AppState;
use crate::scope::Scope;
use crate::views::desk::{self, Overdue, Referred};

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OverdueView {
    exchange_id: Uuid,
    procedure: String,
    state: String,
    deadline: String,
    due_at: DateTime<Utc>,
    /// The authority expected to act.
    authority: String,
    notified_at: DateTime<Utc>,
}

impl From<Overdue> for OverdueView {
    fn from(o: Overdue) -> Self {
        Self {
            exchange_id: o.exchange_id,
            procedure: o.procedure,
            state: o.state,
            deadline: o.deadline,
            due_at: o.due_at,
            authority: o.authority,
            notified_at: o.fired_at,
        }
    }
}

/// Requests past a deadline, still where they were.
#[utoipa::path(get, path = "/api/v1/overdue", tag = "coordination",
    responses((status = 200, body = Vec<OverdueView>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn list(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<OverdueView>>, ApiError> {
    let rows = desk::overdue(&state.pool, &Scope::of(&caller.0)).await?;
    Ok(Json(rows.into_iter().map(OverdueView::from).collect()))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReferredView {
    exchange_id: Uuid,
    procedure: String,
    /// The authority that referred it.
    responder: String,
    requester: String,
    since: DateTime<Utc>,
}

impl From<Referred> for ReferredView {
    fn from(r: Referred) -> Self {
        Self {
            exchange_id: r.exchange_id,
            procedure: r.procedure,
            responder: r.responder,
            requester: r.requester,
            since: r.since,
        }
    }
}

/// `GET /api/v1/referred` — requests their responder referred to its
/// coordinator (state `referred`), for that coordinator to reassign.
#[utoipa::path(get, path = "/api/v1/referred", tag = "coordination",
    responses((status = 200, body = Vec<ReferredView>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn referred(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<ReferredView>>, ApiError> {
    let rows = desk::referred(&state.pool, &Scope::of(&caller.0)).await?;
    Ok(Json(rows.into_iter().map(ReferredView::from).collect()))
}

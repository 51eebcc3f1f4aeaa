//! `GET /api/v1/overdue` — exchanges whose deadline passed, for the
//! coordinators who must intervene (their country only) and operators (all).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{ApiError, Caller};
use crate::coordination::REFERRED;
use crate::http::AppState;
use crate::scope::Scope;

#[derive(Serialize)]
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

/// An overdue notice as stored, with its exchange.
#[derive(sqlx::FromRow)]
struct OverdueRow {
    exchange_id: Uuid,
    procedure: String,
    state: String,
    deadline: String,
    due_at: DateTime<Utc>,
    authority: String,
    fired_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn list(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<OverdueView>>, ApiError> {
    let country = Scope::of(&caller.0).country_filter();
    // Still overdue: the exchange has not left the state the deadline ran in
    // (it would have a newer due time otherwise).
    let rows: Vec<OverdueRow> = sqlx::query_as(
        "SELECT d.exchange_id, e.procedure, e.state, d.deadline, d.due_at, d.authority, d.fired_at
         FROM deadline_events d
         JOIN exchanges e ON e.id = d.exchange_id
         JOIN authorities a ON a.id = d.authority
         WHERE d.kind = 'overdue' AND e.updated_at < d.due_at
           AND ($1::text IS NULL OR a.country = $1)
         ORDER BY d.due_at",
    )
    .bind(country)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| OverdueView {
                exchange_id: row.exchange_id,
                procedure: row.procedure,
                state: row.state,
                deadline: row.deadline,
                due_at: row.due_at,
                authority: row.authority,
                notified_at: row.fired_at,
            })
            .collect(),
    ))
}

#[derive(Serialize)]
pub(crate) struct ReferredView {
    exchange_id: Uuid,
    procedure: String,
    /// The authority that referred it.
    responder: String,
    requester: String,
    since: DateTime<Utc>,
}

/// A referred exchange as stored.
#[derive(sqlx::FromRow)]
struct ReferredRow {
    id: Uuid,
    procedure: String,
    responder: String,
    requester: String,
    updated_at: DateTime<Utc>,
}

/// `GET /api/v1/referred` — requests their responder referred to its
/// coordinator (state `referred`), for that coordinator to reassign.
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn referred(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<ReferredView>>, ApiError> {
    let country = Scope::of(&caller.0).country_filter();
    let rows: Vec<ReferredRow> = sqlx::query_as(
        "SELECT e.id, e.procedure, e.responder, e.requester, e.updated_at
         FROM exchanges e JOIN authorities a ON a.id = e.responder
         WHERE e.state = $1 AND ($2::text IS NULL OR a.country = $2)
         ORDER BY e.updated_at",
    )
    .bind(REFERRED)
    .bind(country)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| ReferredView {
                exchange_id: row.id,
                procedure: row.procedure,
                responder: row.responder,
                requester: row.requester,
                since: row.updated_at,
            })
            .collect(),
    ))
}

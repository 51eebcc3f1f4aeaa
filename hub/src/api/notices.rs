//! The coordinators' inbox: `GET /api/v1/notices` lists what the hub told
//! the caller's office (overdue and inactive requests whose expected actor is
//! of its country, area and region); `POST /api/v1/notices/{id}/read` marks
//! one read for the calling account.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiError, Caller, ProblemView};
use crate::http::AppState;
use crate::views::desk::{self, Notice};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NoticeParams {
    /// Only those the caller has not marked read.
    #[serde(default)]
    unread: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NoticeView {
    id: i64,
    /// `overdue` (a deadline passed) or `inactive` (no step for 30 days).
    kind: String,
    exchange_id: Uuid,
    procedure: String,
    /// The exchange's state when the notice was made.
    state: String,
    /// The authority expected to act.
    authority: String,
    due_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    read: bool,
}

/// A notice marked read.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NoticeRead {
    id: i64,
    read: bool,
}

impl From<Notice> for NoticeView {
    fn from(n: Notice) -> Self {
        Self {
            id: n.id,
            kind: n.kind,
            exchange_id: n.exchange_id,
            procedure: n.procedure,
            state: n.state,
            authority: n.authority,
            due_at: n.due_at,
            created_at: n.created_at,
            read: n.read,
        }
    }
}

/// The notices of the caller's office.
#[utoipa::path(get, path = "/api/v1/notices", tag = "coordination", params(NoticeParams),
    responses((status = 200, body = Vec<NoticeView>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn list(
    caller: Caller,
    State(state): State<AppState>,
    params: Result<Query<NoticeParams>, QueryRejection>,
) -> Result<Json<Vec<NoticeView>>, ApiError> {
    let unread = params?.0.unread;
    let rows = desk::notices(&state.pool, &caller.0, unread).await?;
    Ok(Json(rows.into_iter().map(NoticeView::from).collect()))
}

/// Marks a notice read for the calling account.
#[utoipa::path(post, path = "/api/v1/notices/{id}/read", tag = "coordination",
    params(("id" = i64, Path, description = "The notice")),
    responses((status = 200, body = NoticeRead), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, notice = %raw))]
pub(crate) async fn mark_read(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<NoticeRead>, ApiError> {
    let id: i64 = raw
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{raw}` is not a notice id")))?;
    if !desk::mark_notice_read(&state.pool, &caller.0, id).await? {
        return Err(ApiError::NotFound(format!("no notice {id}")));
    }
    Ok(Json(NoticeRead { id, read: true }))
}

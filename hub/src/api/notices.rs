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

use super::{ApiError, Caller};
use crate::http::AppState;
use crate::scope::Scope;

#[derive(Deserialize)]
pub(crate) struct NoticeParams {
    /// Only those the caller has not marked read.
    #[serde(default)]
    unread: bool,
}

#[derive(Serialize)]
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

/// A notice as stored, with whether the caller has read it.
#[derive(sqlx::FromRow)]
struct NoticeRow {
    id: i64,
    kind: String,
    exchange_id: Uuid,
    procedure: String,
    state: String,
    authority: String,
    due_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    read: bool,
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn list(
    caller: Caller,
    State(state): State<AppState>,
    params: Result<Query<NoticeParams>, QueryRejection>,
) -> Result<Json<Vec<NoticeView>>, ApiError> {
    let unread = params?.0.unread;
    let account = &caller.0;
    let (country, area, region) = Scope::of(account).office_filter();
    let rows: Vec<NoticeRow> = sqlx::query_as(
        "SELECT n.id, n.kind, n.exchange_id, n.procedure, n.state, n.authority, n.due_at, n.created_at,
                r.notice_id IS NOT NULL AS read
         FROM coordinator_notices n
         LEFT JOIN coordinator_notice_reads r ON r.notice_id = n.id AND r.account_id = $1
         WHERE ($2::text IS NULL OR n.country = $2)
           AND ($3::text IS NULL OR n.area = $3)
           AND ($4::text IS NULL OR n.region = $4)
           AND (NOT $5 OR r.notice_id IS NULL)
         ORDER BY n.created_at, n.id
         LIMIT 1000",
    )
    .bind(account.id)
    .bind(country)
    .bind(area)
    .bind(region)
    .bind(unread)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| NoticeView {
                id: row.id,
                kind: row.kind,
                exchange_id: row.exchange_id,
                procedure: row.procedure,
                state: row.state,
                authority: row.authority,
                due_at: row.due_at,
                created_at: row.created_at,
                read: row.read,
            })
            .collect(),
    ))
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name, notice = %raw))]
pub(crate) async fn mark_read(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id: i64 = raw
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{raw}` is not a notice id")))?;
    let (country, area, region) = Scope::of(&caller.0).office_filter();
    let exists: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM coordinator_notices WHERE id = $1
           AND ($2::text IS NULL OR country = $2)
           AND ($3::text IS NULL OR area = $3)
           AND ($4::text IS NULL OR region = $4)",
    )
    .bind(id)
    .bind(country)
    .bind(area)
    .bind(region)
    .fetch_optional(&state.pool)
    .await?;
    if exists.is_none() {
        return Err(ApiError::NotFound(format!("no notice {id}")));
    }
    sqlx::query(
        "INSERT INTO coordinator_notice_reads (notice_id, account_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(caller.0.id)
    .execute(&state.pool)
    .await?;
    Ok(Json(serde_json::json!({"id": id, "read": true})))
}

//! Refused messages through the API, as the console shows them: grouped by
//! cause (`GET /api/v1/refused`), a group's messages
//! (`GET /api/v1/refused/messages`), and re-driving one after its cause is
//! fixed (`POST /api/v1/refused/{id}/redrive`). Metadata only: a refused
//! body may hold personal data, and stays on the console's page for it.
//! Coordinators see their country's endpoints' refusals; auditors read and
//! change nothing.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, Caller, ProblemView};
use crate::accounts::AccountRole;
use crate::http::AppState;
use crate::refusals::{self, RedriveError};
use crate::scope::Scope;
use crate::views::refused::{self, Group, GroupKey, Refused};

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RefusalGroupView {
    /// The rejection code (`dead_lettered`, `processing_failed`, …).
    code: String,
    /// The sending endpoint, when known.
    endpoint: Option<String>,
    message_type: Option<String>,
    count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    /// One of the refusals' explanations.
    detail: String,
}

impl From<Group> for RefusalGroupView {
    fn from(g: Group) -> Self {
        Self {
            code: g.code,
            endpoint: g.endpoint,
            message_type: g.message_type,
            count: g.count,
            first_seen: g.first_seen,
            last_seen: g.last_seen,
            detail: g.detail,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RefusedView {
    /// The record's id (for `redrive`).
    id: i64,
    message_id: Option<String>,
    endpoint: Option<String>,
    message_type: Option<String>,
    code: String,
    detail: String,
    /// Where the problems are (`pointer` of each): their explanations may
    /// quote the payload, and are on the console's page for it.
    errors: serde_json::Value,
    body_size: i32,
    received_at: DateTime<Utc>,
    /// Whether it can be re-driven (open, its whole body kept).
    can_be_redriven: bool,
}

impl From<Refused> for RefusedView {
    fn from(r: Refused) -> Self {
        let can_be_redriven = r.can_be_redriven();
        Self {
            id: r.id,
            message_id: r.message_id,
            endpoint: r.user_id,
            message_type: r.message_type,
            code: r.code,
            detail: r.detail,
            errors: pointers_only(&r.errors),
            body_size: r.body_size,
            received_at: r.received_at,
            can_be_redriven,
        }
    }
}

/// The problems' pointers, without the explanations that may quote values.
fn pointers_only(errors: &serde_json::Value) -> serde_json::Value {
    errors
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| serde_json::json!({"pointer": e.get("pointer").cloned().unwrap_or_default()}))
        .collect()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GroupParams {
    /// The group's code.
    code: String,
    /// The group's sending endpoint (absent: none known).
    endpoint: Option<String>,
    /// The group's message type (absent: none).
    #[serde(rename = "type")]
    message_type: Option<String>,
}

/// What a re-drive made of the message.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RedriveView {
    id: i64,
    /// Taken this time: stored, routed, receipted.
    accepted: usize,
    /// Already taken before (nothing done again).
    duplicates: usize,
    /// Refused again, with these codes (its record is open again).
    refused_again: Vec<String>,
}

/// Open refusals grouped by cause, the most recent first.
#[utoipa::path(get, path = "/api/v1/refused", tag = "refused",
    responses((status = 200, body = Vec<RefusalGroupView>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn groups(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<RefusalGroupView>>, ApiError> {
    let scope = Scope::of(&caller.0);
    let groups = refused::groups(&state.pool, &scope).await?;
    Ok(Json(
        groups.into_iter().map(RefusalGroupView::from).collect(),
    ))
}

/// The open refusals of one group (at most 1,000, oldest first).
#[utoipa::path(get, path = "/api/v1/refused/messages", tag = "refused", params(GroupParams),
    responses((status = 200, body = Vec<RefusedView>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn in_group(
    caller: Caller,
    State(state): State<AppState>,
    params: Result<Query<GroupParams>, QueryRejection>,
) -> Result<Json<Vec<RefusedView>>, ApiError> {
    let p = params?.0;
    let key = GroupKey {
        code: p.code,
        endpoint: p.endpoint,
        message_type: p.message_type,
    };
    let scope = Scope::of(&caller.0);
    let rows = refused::in_group(&state.pool, &scope, &key).await?;
    Ok(Json(rows.into_iter().map(RefusedView::from).collect()))
}

/// Re-drives one refused message through the pipeline, under its own
/// `message_id`, after its cause was fixed; recorded in the audit log.
#[utoipa::path(post, path = "/api/v1/refused/{id}/redrive", tag = "refused",
    params(("id" = i64, Path, description = "The refusal record")),
    responses((status = 200, body = RedriveView), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, refused = id))]
pub(crate) async fn redrive(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<RedriveView>, ApiError> {
    if caller.0.role == AccountRole::Auditor {
        return Err(ApiError::Forbidden("auditors have read-only access".into()));
    }
    let scope = Scope::of(&caller.0);
    let row = refused::one(&state.pool, &scope, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no refused message {id}")))?;
    let (_, outcome) = refusals::redrive(&state.pipeline, &caller.0, vec![row], None)
        .await
        .map_err(|e| match e {
            RedriveError::Database(e) => ApiError::Internal(e),
            other => ApiError::Conflict(other.to_string()),
        })?;
    Ok(Json(RedriveView {
        id,
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        refused_again: outcome
            .refused
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    }))
}

//! The registration workflow over HTTP:
//!
//! - `POST /api/v1/applications` — an authority applies (no account needed;
//!   it stays pending and unusable until approved);
//! - `POST /api/v1/authorities/{id}/approve` — grant procedures; returns the
//!   endpoint's broker credentials once if it was newly provisioned;
//! - `POST /api/v1/authorities/{id}/refuse`;
//! - `GET  /api/v1/authorities/{id}/events` — who did what, when;
//! - `POST /api/v1/endpoints/{id}/credentials` — rotate (new password, once);
//! - `POST /api/v1/endpoints/{id}/suspend` — revoke and disconnect.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use imi_schemas::ids::{AuthorityId, EndpointId, ProcedureCode};
use serde::{Deserialize, Serialize};

use super::{ApiError, Caller, ProblemView};
use crate::http::AppState;
use crate::registry::workflow::{self, Application, Credentials};
use crate::scope::Scope;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplicationBody {
    authority: String,
    names: BTreeMap<String, String>,
    #[serde(default)]
    competences: BTreeMap<String, String>,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    region: Option<String>,
    endpoint: String,
    procedures: Vec<String>,
}

fn procedures(raw: &[String]) -> Result<Vec<ProcedureCode>, ApiError> {
    raw.iter()
        .map(|p| {
            ProcedureCode::try_from(p.as_str()).map_err(|e| ApiError::BadRequest(e.to_string()))
        })
        .collect()
}

impl TryFrom<ApplicationBody> for Application {
    type Error = ApiError;
    fn try_from(b: ApplicationBody) -> Result<Self, ApiError> {
        let bad = |e: imi_schemas::ids::IdError| ApiError::BadRequest(e.to_string());
        Ok(Application {
            authority: AuthorityId::try_from(b.authority.as_str()).map_err(bad)?,
            names: b.names,
            competences: b.competences,
            contact: b.contact,
            region: b.region,
            endpoint: EndpointId::try_from(b.endpoint.as_str()).map_err(bad)?,
            procedures: procedures(&b.procedures)?,
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CredentialsView {
    endpoint: String,
    password: String,
    vhost: String,
    inbox: String,
}

impl From<Credentials> for CredentialsView {
    fn from(c: Credentials) -> Self {
        Self {
            inbox: imi_schemas::protocol::inbox_queue(c.endpoint.as_str()),
            endpoint: c.endpoint.to_string(),
            password: c.password,
            vhost: c.vhost,
        }
    }
}

/// An application waiting for a decision.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PendingView {
    authority: String,
    country: String,
    region: Option<String>,
    #[schema(value_type = Object)]
    names: serde_json::Value,
    endpoint: String,
    /// `pending`: approval provisions it and returns its credentials once.
    endpoint_status: String,
    procedures: Vec<String>,
    applied_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /api/v1/applications` — applications waiting for the caller's
/// decision (a coordinator's country's; all for operators and auditors).
/// Applications waiting for the caller's decision.
#[utoipa::path(get, path = "/api/v1/applications", tag = "registry",
    responses((status = 200, body = Vec<PendingView>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn pending(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<PendingView>>, ApiError> {
    let rows = crate::views::registry::pending(&state.pool, &Scope::of(&caller.0)).await?;
    Ok(Json(
        rows.into_iter()
            .map(|a| PendingView {
                authority: a.id,
                country: a.country,
                region: a.region,
                names: a.names,
                endpoint: a.endpoint,
                endpoint_status: a.endpoint_status,
                procedures: a.requested_procedures,
                applied_at: a.applied_at,
            })
            .collect(),
    ))
}

/// An authority and its status after a registration step.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuthorityStatus {
    authority: String,
    /// `pending`, `active`, `refused` or `suspended`.
    status: &'static str,
}

/// An authority applies (no account needed); it stays pending, unusable,
/// until its coordinator approves it.
#[utoipa::path(post, path = "/api/v1/applications", tag = "registry", request_body = ApplicationBody,
    responses((status = 202, body = AuthorityStatus), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn apply(
    State(state): State<AppState>,
    body: Result<Json<ApplicationBody>, JsonRejection>,
) -> Result<(StatusCode, Json<AuthorityStatus>), ApiError> {
    let app = Application::try_from(body?.0)?;
    workflow::apply(&state.registry, &app).await?;
    let status = AuthorityStatus {
        authority: app.authority.to_string(),
        status: "pending",
    };
    Ok((StatusCode::ACCEPTED, Json(status)))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    /// Procedures to grant; those applied for when absent.
    procedures: Option<Vec<String>>,
}

/// An approved authority, with its endpoint's credentials if approval
/// provisioned the endpoint (shown this once).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Approved {
    authority: String,
    status: &'static str,
    endpoint_credentials: Option<CredentialsView>,
}

/// Approves an authority and grants it procedures (those it applied for
/// when the body names none).
#[utoipa::path(post, path = "/api/v1/authorities/{id}/approve", tag = "registry",
    params(("id" = String, Path, description = "The authority")),
    request_body(content = Option<ApproveBody>, description = "Optional: the procedures to grant"),
    responses((status = 200, body = Approved), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, authority = %id))]
pub(crate) async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Approved>, ApiError> {
    // The body is optional: empty means "grant what was applied for".
    let body: ApproveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid: {e}")))?
    };
    let granted = body.procedures.map(|p| procedures(&p)).transpose()?;
    let credentials = workflow::approve(&state.registry, &caller.0, &id, granted).await?;
    Ok(Json(Approved {
        authority: id,
        status: "active",
        endpoint_credentials: credentials.map(CredentialsView::from),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefuseBody {
    reason: String,
}

/// Refuses an application.
#[utoipa::path(post, path = "/api/v1/authorities/{id}/refuse", tag = "registry",
    params(("id" = String, Path, description = "The authority")), request_body = RefuseBody,
    responses((status = 200, body = AuthorityStatus), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, authority = %id))]
pub(crate) async fn refuse(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<RefuseBody>, JsonRejection>,
) -> Result<Json<AuthorityStatus>, ApiError> {
    let body = body?.0;
    workflow::refuse(&state.registry, &caller.0, &id, &body.reason).await?;
    Ok(Json(AuthorityStatus {
        authority: id,
        status: "refused",
    }))
}

/// Suspends an authority: nothing is routed from or to it any more.
#[utoipa::path(post, path = "/api/v1/authorities/{id}/suspend", tag = "registry",
    params(("id" = String, Path, description = "The authority")), request_body = RefuseBody,
    responses((status = 200, body = AuthorityStatus), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, authority = %id))]
pub(crate) async fn suspend_authority(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<RefuseBody>, JsonRejection>,
) -> Result<Json<AuthorityStatus>, ApiError> {
    let body = body?.0;
    workflow::suspend_authority(&state.registry, &caller.0, &id, &body.reason).await?;
    Ok(Json(AuthorityStatus {
        authority: id,
        status: "suspended",
    }))
}

/// New credentials for an endpoint (shown this once); the old password
/// stops working.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/credentials", tag = "registry",
    params(("id" = String, Path, description = "The endpoint")),
    responses((status = 200, body = CredentialsView), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, endpoint = %id))]
pub(crate) async fn rotate(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CredentialsView>, ApiError> {
    Ok(Json(
        workflow::rotate(&state.registry, &caller.0, &id)
            .await?
            .into(),
    ))
}

/// A suspended endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointSuspended {
    endpoint: String,
    status: &'static str,
}

/// Suspends an endpoint: its broker user is deleted and its connections
/// closed.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/suspend", tag = "registry",
    params(("id" = String, Path, description = "The endpoint")),
    responses((status = 200, body = EndpointSuspended), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, endpoint = %id))]
pub(crate) async fn suspend(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointSuspended>, ApiError> {
    workflow::suspend(&state.registry, &caller.0, &id).await?;
    Ok(Json(EndpointSuspended {
        endpoint: id,
        status: "suspended",
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    at: chrono::DateTime<chrono::Utc>,
    by: Option<String>,
    action: String,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// The recorded registration steps of an authority and its endpoint.
#[utoipa::path(get, path = "/api/v1/authorities/{id}/events", tag = "registry",
    params(("id" = String, Path, description = "The authority")),
    responses((status = 200, body = Vec<EventView>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, authority = %id))]
pub(crate) async fn events(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let _ = caller;
    let events = workflow::events(&state.pool, &id).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| EventView {
                at: e.at,
                by: e.by,
                action: e.action,
                detail: e.detail,
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReassignBody {
    to: String,
}

/// `POST /api/v1/exchanges/{id}/reassign` — a coordinator hands a request
/// (e.g. an overdue one) to another authority of its country.
/// A reassigned request and its new responder.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Reassigned {
    exchange_id: uuid::Uuid,
    responder: String,
}

#[utoipa::path(post, path = "/api/v1/exchanges/{id}/reassign", tag = "coordination",
    params(("id" = String, Path, description = "The exchange")), request_body = ReassignBody,
    responses((status = 200, body = Reassigned), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, exchange = %id))]
pub(crate) async fn reassign(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ReassignBody>, JsonRejection>,
) -> Result<Json<Reassigned>, ApiError> {
    let body = body?.0;
    let exchange = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not an exchange id")))?;
    let publisher = state.broker.publisher();
    crate::coordination::reassign(&state.registry, &publisher, &caller.0, exchange, &body.to)
        .await?;
    Ok(Json(Reassigned {
        exchange_id: exchange,
        responder: body.to,
    }))
}

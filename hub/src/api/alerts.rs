//! 1:N exchanges over HTTP:
//!
//! - `PUT|DELETE /api/v1/validation-gates/{country}/{area}` — the country's
//!   coordinator validates outgoing 1:N messages of the area (or stops);
//! - `GET  /api/v1/validations` — exchanges waiting for validation;
//! - `POST /api/v1/exchanges/{id}/validation` — approve (broadcast) or refuse;
//! - `GET  /api/v1/exchanges/{id}/deliveries` — who has and has not
//!   acknowledged;
//! - `POST /api/v1/subscribers` — register a broadcast subscriber (its
//!   credentials are returned once).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use imi_schemas::ids::{AreaCode, CountryCode, EndpointId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use chrono::{DateTime, NaiveDate, Utc};

use super::{ApiError, Caller, ProblemView};
use crate::alerts::{self, Counts, Delivery, ExchangeDeliveries, FieldDeadline};
use crate::coordination::{self, PendingValidation};
use crate::http::AppState;

/// A 1:N exchange waiting for validation.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PendingView {
    exchange_id: Uuid,
    procedure: String,
    originator: String,
    recipients: usize,
    since: DateTime<Utc>,
}

impl From<PendingValidation> for PendingView {
    fn from(p: PendingValidation) -> Self {
        Self {
            exchange_id: p.exchange_id,
            procedure: p.procedure,
            originator: p.originator,
            recipients: p.recipients.max(0) as usize,
            since: p.since,
        }
    }
}

/// One recipient's copy of a message.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveryView {
    authority: String,
    endpoint: String,
    message_id: Uuid,
    /// `queued`, `routed` (broker-confirmed) or `acknowledged`.
    state: String,
    routed_at: Option<DateTime<Utc>>,
    acknowledged_at: Option<DateTime<Utc>>,
    reminded_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FieldDeadlineView {
    deadline: String,
    field_date: NaiveDate,
    due_at: DateTime<Utc>,
    /// Released after it was due (or still held past it).
    late: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CountsView {
    queued: usize,
    routed: usize,
    acknowledged: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveriesView {
    exchange_id: Uuid,
    procedure: String,
    state: String,
    originator: String,
    released_at: Option<DateTime<Utc>>,
    /// Every recipient, frozen when the exchange opened (plus disseminations).
    recipients: Vec<String>,
    deadlines: Vec<FieldDeadlineView>,
    counts: CountsView,
    deliveries: Vec<DeliveryView>,
}

impl From<ExchangeDeliveries> for DeliveriesView {
    fn from(e: ExchangeDeliveries) -> Self {
        let Counts {
            queued,
            routed,
            acknowledged,
        } = e.counts;
        Self {
            exchange_id: e.exchange_id,
            procedure: e.procedure,
            state: e.state,
            originator: e.originator,
            released_at: e.released_at,
            recipients: e.recipients,
            deadlines: e
                .deadlines
                .into_iter()
                .map(FieldDeadlineView::from)
                .collect(),
            counts: CountsView {
                queued,
                routed,
                acknowledged,
            },
            deliveries: e.deliveries.into_iter().map(DeliveryView::from).collect(),
        }
    }
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            authority: d.authority,
            endpoint: d.endpoint,
            message_id: d.message_id,
            state: d.state,
            routed_at: d.routed_at,
            acknowledged_at: d.acknowledged_at,
            reminded_at: d.reminded_at,
        }
    }
}

impl From<FieldDeadline> for FieldDeadlineView {
    fn from(d: FieldDeadline) -> Self {
        Self {
            deadline: d.deadline,
            field_date: d.field_date,
            due_at: d.due_at,
            late: d.late,
        }
    }
}

fn gate_path(country: &str, area: &str) -> Result<(CountryCode, AreaCode), ApiError> {
    let country =
        CountryCode::try_from(country).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let area = AreaCode::try_from(area).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((country, area))
}

fn exchange_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest(format!("`{raw}` is not an exchange id")))
}

/// A validation gate after a switch.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GateView {
    country: String,
    area: String,
    /// Outgoing 1:N messages of the country and area wait for validation.
    validation: bool,
}

/// The country's coordinator validates outgoing 1:N messages of the area.
#[utoipa::path(put, path = "/api/v1/validation-gates/{country}/{area}", tag = "alerts",
    params(("country" = String, Path), ("area" = String, Path)),
    responses((status = 200, body = GateView), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, country = %country, area = %area))]
pub(crate) async fn gate_on(
    caller: Caller,
    State(state): State<AppState>,
    Path((country, area)): Path<(String, String)>,
) -> Result<Json<GateView>, ApiError> {
    let (c, a) = gate_path(&country, &area)?;
    coordination::set_gate(&state.registry, &caller.0, &c, &a, true).await?;
    Ok(Json(GateView {
        country,
        area,
        validation: true,
    }))
}

/// Stops validating outgoing 1:N messages of the country and area.
#[utoipa::path(delete, path = "/api/v1/validation-gates/{country}/{area}", tag = "alerts",
    params(("country" = String, Path), ("area" = String, Path)),
    responses((status = 200, body = GateView), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, country = %country, area = %area))]
pub(crate) async fn gate_off(
    caller: Caller,
    State(state): State<AppState>,
    Path((country, area)): Path<(String, String)>,
) -> Result<Json<GateView>, ApiError> {
    let (c, a) = gate_path(&country, &area)?;
    coordination::set_gate(&state.registry, &caller.0, &c, &a, false).await?;
    Ok(Json(GateView {
        country,
        area,
        validation: false,
    }))
}

/// 1:N exchanges waiting for the caller's validation.
#[utoipa::path(get, path = "/api/v1/validations", tag = "alerts",
    responses((status = 200, body = Vec<PendingView>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn pending(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<PendingView>>, ApiError> {
    let pending = coordination::pending_validations(&state.pool, &caller.0).await?;
    Ok(Json(pending.into_iter().map(PendingView::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    approve: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// A 1:N exchange's state after its coordinator's decision.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DecisionView {
    exchange_id: Uuid,
    state: String,
}

/// Approves (broadcast) or refuses an outgoing 1:N message.
#[utoipa::path(post, path = "/api/v1/exchanges/{id}/validation", tag = "alerts",
    params(("id" = String, Path, description = "The exchange")), request_body = DecisionBody,
    responses((status = 200, body = DecisionView), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, exchange = %id))]
pub(crate) async fn decide(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<DecisionView>, ApiError> {
    let body = body?.0;
    let exchange = exchange_id(&id)?;
    let publisher = state.broker.publisher();
    let next = coordination::decide_validation(
        &state.registry,
        &publisher,
        &caller.0,
        exchange,
        body.approve,
        body.reason,
    )
    .await?;
    Ok(Json(DecisionView {
        exchange_id: exchange,
        state: next,
    }))
}

/// Who has and has not acknowledged a 1:N exchange, per copy.
#[utoipa::path(get, path = "/api/v1/exchanges/{id}/deliveries", tag = "alerts",
    params(("id" = String, Path, description = "The exchange")),
    responses((status = 200, body = DeliveriesView), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name, exchange = %id))]
pub(crate) async fn deliveries(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveriesView>, ApiError> {
    let exchange = exchange_id(&id)?;
    let deliveries = alerts::deliveries(&state.pool, &caller.0, exchange).await?;
    Ok(Json(deliveries.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriberBody {
    id: String,
    country: String,
    areas: Vec<String>,
}

/// A subscriber's broker credentials, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SubscriberCredentials {
    endpoint: String,
    password: String,
    vhost: String,
    /// Its queues' names must start with this.
    queue_prefix: String,
    /// The topic exchange it binds them to.
    exchange: &'static str,
}

/// Registers a broadcast subscriber; its credentials are returned once.
#[utoipa::path(post, path = "/api/v1/subscribers", tag = "alerts", request_body = SubscriberBody,
    responses((status = 201, body = SubscriberCredentials), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn create_subscriber(
    caller: Caller,
    State(state): State<AppState>,
    body: Result<Json<SubscriberBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SubscriberCredentials>), ApiError> {
    let body = body?.0;
    let bad = |e: imi_schemas::ids::IdError| ApiError::BadRequest(e.to_string());
    let endpoint = EndpointId::try_from(body.id.as_str()).map_err(bad)?;
    let country = CountryCode::try_from(body.country.as_str()).map_err(bad)?;
    let areas = body
        .areas
        .iter()
        .map(|a| AreaCode::try_from(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let credentials =
        alerts::create_subscriber(&state.registry, &caller.0, &endpoint, &country, &areas).await?;
    Ok((
        StatusCode::CREATED,
        Json(SubscriberCredentials {
            queue_prefix: imi_schemas::protocol::subscriber_queue_prefix(
                credentials.endpoint.as_str(),
            ),
            endpoint: credentials.endpoint.to_string(),
            password: credentials.password,
            vhost: credentials.vhost,
            exchange: imi_schemas::protocol::ALERTS_EXCHANGE,
        }),
    ))
}

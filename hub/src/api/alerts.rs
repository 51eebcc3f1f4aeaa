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
use serde_json::json;
use uuid::Uuid;

use super::{ApiError, Caller};
use crate::alerts::{self, ExchangeDeliveries, PendingValidation};
use crate::http::AppState;

fn gate_path(country: &str, area: &str) -> Result<(CountryCode, AreaCode), ApiError> {
    let country =
        CountryCode::try_from(country).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let area = AreaCode::try_from(area).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((country, area))
}

fn exchange_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest(format!("`{raw}` is not an exchange id")))
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name, country = %country, area = %area))]
pub async fn gate_on(
    caller: Caller,
    State(state): State<AppState>,
    Path((country, area)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (c, a) = gate_path(&country, &area)?;
    alerts::set_gate(&state.registry, &caller.0, &c, &a, true).await?;
    Ok(Json(
        json!({"country": country, "area": area, "validation": true}),
    ))
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name, country = %country, area = %area))]
pub async fn gate_off(
    caller: Caller,
    State(state): State<AppState>,
    Path((country, area)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (c, a) = gate_path(&country, &area)?;
    alerts::set_gate(&state.registry, &caller.0, &c, &a, false).await?;
    Ok(Json(
        json!({"country": country, "area": area, "validation": false}),
    ))
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub async fn pending(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<PendingValidation>>, ApiError> {
    Ok(Json(
        alerts::pending_validations(&state.pool, &caller.0).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    approve: bool,
    #[serde(default)]
    reason: Option<String>,
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name, exchange = %id))]
pub async fn decide(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body?.0;
    let exchange = exchange_id(&id)?;
    let publisher = state.broker.publisher();
    let next = alerts::decide_validation(
        &state.registry,
        &publisher,
        &caller.0,
        exchange,
        body.approve,
        body.reason,
    )
    .await?;
    Ok(Json(json!({"exchange_id": exchange, "state": next})))
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name, exchange = %id))]
pub async fn deliveries(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExchangeDeliveries>, ApiError> {
    let exchange = exchange_id(&id)?;
    Ok(Json(
        alerts::deliveries(&state.pool, &caller.0, exchange).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberBody {
    id: String,
    country: String,
    areas: Vec<String>,
}

/// A subscriber's broker credentials, shown once.
#[derive(Serialize)]
pub struct SubscriberCredentials {
    endpoint: String,
    password: String,
    vhost: String,
    /// Its queues' names must start with this.
    queue_prefix: String,
    /// The topic exchange it binds them to.
    exchange: &'static str,
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub async fn create_subscriber(
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

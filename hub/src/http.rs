//! HTTP: health, readiness and Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use imi_broker::Broker;
use serde::Serialize;
use sqlx::PgPool;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::metrics::Metrics;

#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub broker: Broker,
    pub metrics: Arc<Metrics>,
    pub registry: crate::registry::workflow::RegistryContext,
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::api::router())
        .with_state(state)
        // A span per request (method, path, status, latency), and no request
        // may hold a connection longer than this (408 after it).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
}

/// Longer than any API call takes when the database and broker are up (the
/// slowest provisions a broker user); short enough that a stuck request
/// does not pin a connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The process is alive.
async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    database: bool,
    broker: bool,
}

/// Ready when both the database and the broker are reachable.
#[tracing::instrument(skip_all)]
async fn readyz(State(state): State<AppState>) -> Response {
    let database = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let broker = state.broker.is_connected();
    let ready = database && broker;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            database,
            broker,
        }),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    state
        .metrics
        .broker_connected
        .set(i64::from(state.broker.is_connected()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

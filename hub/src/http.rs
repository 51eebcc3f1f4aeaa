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
    pub(crate) pool: PgPool,
    pub(crate) broker: Broker,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) registry: crate::registry::workflow::RegistryContext,
    /// For re-driving refused messages through the pipeline.
    pub(crate) pipeline: crate::pipeline::PipelineContext,
    /// The live figures the console shows.
    pub(crate) activity: Arc<crate::activity::Activity>,
    pub(crate) console: ConsoleSettings,
    /// Cancelled when the hub stops: endless responses (the console's live
    /// stream) end then, so shutdown need not wait for browsers.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// False once a vital task died: `/readyz` says so.
    pub(crate) liveness: crate::supervise::Liveness,
}

/// How the console is served.
#[derive(Clone, Debug)]
pub(crate) struct ConsoleSettings {
    /// Mark cookies `Secure` (the console is reached over TLS).
    pub(crate) secure_cookies: bool,
    /// Days a data-subject request has for its answer.
    pub(crate) subject_answer_days: u32,
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::api::router())
        .merge(crate::console::router(state.clone()))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/console") }),
        )
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
    /// The pipeline and the hub's other vital tasks run.
    consuming: bool,
}

/// Ready when the database and the broker are reachable and the pipeline
/// runs.
#[tracing::instrument(skip_all)]
async fn readyz(State(state): State<AppState>) -> Response {
    let database = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let broker = state.broker.is_connected();
    let consuming = state.liveness.is_alive();
    let ready = database && broker && consuming;
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
            consuming,
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

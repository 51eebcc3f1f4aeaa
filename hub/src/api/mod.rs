//! The JSON API under `/api/v1`. Every route needs a bearer token of an
//! account; every error is an RFC 9457 problem document (one `IntoResponse`,
//! in `error.rs`), never a stack trace.

mod alerts;
mod auth;
mod authorities;
mod error;
mod exchanges;
mod figures;
mod notices;
mod openapi;
mod overdue;
mod refused;
mod registry;

use axum::routing::{get, post, put};
use axum::Router;

pub(crate) use auth::Caller;
pub(crate) use error::ApiError;
pub(crate) use openapi::ProblemView;

use crate::http::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/authorities", get(authorities::search))
        .route(
            "/api/v1/applications",
            post(registry::apply).get(registry::pending),
        )
        .route("/api/v1/overdue", get(overdue::list))
        .route("/api/v1/referred", get(overdue::referred))
        .route("/api/v1/figures", get(figures::figures))
        .route("/api/v1/exchanges/{id}/reassign", post(registry::reassign))
        .route("/api/v1/authorities/{id}/approve", post(registry::approve))
        .route("/api/v1/authorities/{id}/refuse", post(registry::refuse))
        .route(
            "/api/v1/authorities/{id}/suspend",
            post(registry::suspend_authority),
        )
        .route("/api/v1/authorities/{id}/events", get(registry::events))
        .route("/api/v1/endpoints/{id}/credentials", post(registry::rotate))
        .route("/api/v1/endpoints/{id}/suspend", post(registry::suspend))
        .route(
            "/api/v1/validation-gates/{country}/{area}",
            put(alerts::gate_on).delete(alerts::gate_off),
        )
        .route("/api/v1/validations", get(alerts::pending))
        .route("/api/v1/exchanges/{id}/validation", post(alerts::decide))
        .route("/api/v1/exchanges/{id}/deliveries", get(alerts::deliveries))
        .route("/api/v1/subscribers", post(alerts::create_subscriber))
        .route("/api/v1/exchanges/{id}", get(exchanges::show))
        .route("/api/v1/notices", get(notices::list))
        .route("/api/v1/notices/{id}/read", post(notices::mark_read))
        .route("/api/v1/refused", get(refused::groups))
        .route("/api/v1/refused/messages", get(refused::in_group))
        .route("/api/v1/refused/{id}/redrive", post(refused::redrive))
}

//! The web console under `/console`, served by the hub on its HTTP port:
//! server-rendered pages (maud) that work without JavaScript; a little
//! script adds live updates (server-sent events) and local times.
//!
//! Routers by trust level: public (login, static files), pages (a session),
//! actions (a session, its CSRF token, not an auditor), live (a session).
//! Security headers (a strict CSP with no inline script, frame-ancestors,
//! nosniff) cover all of it. Every query is the API's (`views`, `scope`);
//! no page has its own copy.

mod auth;
mod exports;
mod headers;
mod i18n;
mod layout;
mod pages;
mod svg;
mod table;

use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tracing::error;

use crate::http::AppState;
use auth::Viewer;
use i18n::t;

/// Everything under `/console`.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    let public = Router::new()
        .route(
            "/console/login",
            get(pages::login::form).post(pages::login::submit),
        )
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .route("/favicon.ico", get(favicon));
    let pages = Router::new()
        .route("/console", get(pages::dashboard::show))
        .route(
            "/console/partials/dashboard",
            get(pages::dashboard::live_parts),
        )
        .route("/console/live", get(pages::dashboard::live))
        .route("/console/exchanges", get(pages::exchanges::list))
        .route("/console/exchanges/{id}", get(pages::exchange::show))
        .route(
            "/console/exchanges/{id}/deliveries",
            get(pages::exchange::deliveries_part),
        )
        .route("/console/refused", get(pages::refused::groups))
        .route("/console/refused/group", get(pages::refused::group))
        .route("/console/refused/{id}", get(pages::refused::one))
        .route("/console/authorities", get(pages::authorities::list))
        .route("/console/desk", get(pages::desk::show))
        .route("/console/catalogue", get(pages::catalogue::index))
        .route(
            "/console/catalogue/{code}",
            get(pages::catalogue::procedure),
        )
        .route("/console/statistics", get(pages::statistics::show))
        .route("/console/audit", get(pages::audit::list))
        .route("/console/subjects", get(pages::subjects::index))
        .route(
            "/console/subjects/requests/{id}",
            get(pages::subjects::show),
        )
        .route(
            "/console/subjects/requests/{id}/{file}",
            get(pages::subjects::export),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            exports::audit_exports,
        ));
    let actions = Router::new()
        .route("/console/logout", post(pages::login::logout))
        .route("/console/refused/redrive", post(pages::refused::redrive))
        .route("/console/refused/discard", post(pages::refused::discard))
        .route(
            "/console/authorities/{id}/approve",
            post(pages::authorities::approve),
        )
        .route(
            "/console/authorities/{id}/refuse",
            post(pages::authorities::refuse),
        )
        .route(
            "/console/endpoints/{id}/suspend",
            post(pages::authorities::suspend),
        )
        .route(
            "/console/endpoints/{id}/rotate",
            post(pages::authorities::rotate),
        )
        .route("/console/exchanges/{id}/read", post(pages::exchange::read))
        .route("/console/refused/{id}/read", post(pages::refused::read))
        .route(
            "/console/exchanges/{id}/reassign",
            post(pages::desk::reassign),
        )
        .route(
            "/console/exchanges/{id}/validation",
            post(pages::desk::decide),
        )
        .route("/console/gates", post(pages::desk::gate))
        .route("/console/notices/{id}/read", post(pages::desk::mark_read))
        .route("/console/subjects/search", post(pages::subjects::search))
        .route("/console/subjects/requests", post(pages::subjects::open))
        .route(
            "/console/subjects/requests/{id}/statements",
            post(pages::subjects::statement),
        )
        .route(
            "/console/subjects/requests/{id}/search-again",
            post(pages::subjects::search_again),
        )
        .route(
            "/console/subjects/requests/{id}/answer",
            post(pages::subjects::answer),
        )
        // `route_layer`: only these routes; a path no route has stays a 404
        // and is never taken for an action.
        .route_layer(middleware::from_fn_with_state(state, auth::require_csrf));
    Router::new()
        .merge(public)
        .merge(pages)
        .merge(actions)
        .layer(middleware::from_fn(headers::security_headers))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/console.css"),
    )
        .into_response()
}

/// The browser asks for it on every first visit; an answer keeps the log
/// and the login quiet.
async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("static/favicon.svg"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/console.js"),
    )
        .into_response()
}

/// A page saying what went wrong, in the console's shell.
pub(crate) fn error_page(status: StatusCode, key: &str, viewer: &Viewer) -> Response {
    let body = maud::html! { p class="error" role="alert" { (t(key)) } };
    let title = t("error.title");
    (
        status,
        Html(layout::page(viewer, "", title, body).into_string()),
    )
        .into_response()
}

/// What a console handler can fail with; every one becomes a page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the broker could not be provisioned")]
    Unavailable(#[source] imi_broker::BrokerError),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

impl From<crate::scope::Denied> for ConsoleError {
    fn from(denied: crate::scope::Denied) -> Self {
        ConsoleError::Forbidden(denied.to_string())
    }
}

impl From<crate::registry::workflow::WorkflowError> for ConsoleError {
    fn from(e: crate::registry::workflow::WorkflowError) -> Self {
        use crate::registry::workflow::WorkflowError as W;
        match e {
            W::NotFound(_) => ConsoleError::NotFound,
            W::Forbidden(m) => ConsoleError::Forbidden(m),
            W::Conflict(m) => ConsoleError::Conflict(m),
            W::Invalid(m) => ConsoleError::Invalid(m),
            W::Database(e) => ConsoleError::Database(e),
            W::Broker(e) => ConsoleError::Unavailable(e),
        }
    }
}

impl From<crate::views::exchanges::DetailError> for ConsoleError {
    fn from(e: crate::views::exchanges::DetailError) -> Self {
        use crate::views::exchanges::DetailError as D;
        match e {
            D::NotFound(_) => ConsoleError::NotFound,
            D::Denied(d) => ConsoleError::Forbidden(d.to_string()),
            D::Database(e) => ConsoleError::Database(e),
        }
    }
}

/// A failure, with who was looking (for the page's shell); boxed, as it
/// travels the cold path only.
pub(crate) struct Failed(Box<(ConsoleError, Viewer)>);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        let (error, viewer) = *self.0;
        let (status, key, detail) = match &error {
            ConsoleError::NotFound => (StatusCode::NOT_FOUND, "error.not_found", None),
            ConsoleError::Forbidden(m) => {
                (StatusCode::FORBIDDEN, "error.forbidden", Some(m.clone()))
            }
            ConsoleError::Invalid(m) => (StatusCode::BAD_REQUEST, "error.invalid", Some(m.clone())),
            ConsoleError::Conflict(m) => (StatusCode::CONFLICT, "error.conflict", Some(m.clone())),
            ConsoleError::Unavailable(cause) => {
                error!(error = %cause, "Broker provisioning failed.");
                (StatusCode::SERVICE_UNAVAILABLE, "error.unavailable", None)
            }
            ConsoleError::Database(cause) => {
                // The cause is logged, never shown.
                error!(error = %cause, "Console request failed.");
                (StatusCode::INTERNAL_SERVER_ERROR, "error.internal", None)
            }
        };
        let body = maud::html! {
            div class="error" role="alert" {
                p { (t(key)) }
                @if let Some(d) = detail { p class="detail" { (d) } }
            }
        };
        let page = layout::page(&viewer, "", t("error.title"), body);
        (status, Html(page.into_string())).into_response()
    }
}

/// A console handler's result: a page, or a failure shown as one.
pub(crate) type PageResult = Result<Response, Failed>;

/// Attaches the viewer to an error, for `?`.
pub(crate) trait OrFail<T> {
    fn or_fail(self, viewer: &Viewer) -> Result<T, Failed>;
}

impl<T, E: Into<ConsoleError>> OrFail<T> for Result<T, E> {
    fn or_fail(self, viewer: &Viewer) -> Result<T, Failed> {
        self.map_err(|e| Failed(Box::new((e.into(), viewer.clone()))))
    }
}

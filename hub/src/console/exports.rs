//! Every download the console hands out (a list as CSV, a data-subject
//! export) is in the audit log: a response layer records each response
//! that is an attachment, with who asked and for what (the path and query).
//! A handler that records a richer entry itself marks its response
//! [`Audited`]. An export that cannot be recorded is not handed out.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::error;

use super::auth::{cookie, session_of, SESSION_COOKIE};
use crate::http::AppState;
use crate::views::audit;

/// Marks a response whose handler recorded it in the audit log already.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Audited;

pub(crate) async fn audit_exports(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let uri = request.uri().clone();
    let token = cookie(request.headers(), SESSION_COOKIE).map(str::to_owned);
    let response = next.run(request).await;
    let attachment = response
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("attachment"));
    if !attachment || response.extensions().get::<Audited>().is_some() {
        return response;
    }
    let viewer = match token {
        Some(token) => session_of(&state.pool, &token).await.ok().flatten(),
        None => None,
    };
    let Some(viewer) = viewer else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let recorded = audit::record_by(
        &state.pool,
        &viewer.account,
        "export",
        Some(uri.path()),
        serde_json::json!({"query": uri.query().unwrap_or_default()}),
    )
    .await;
    match recorded {
        Ok(()) => response,
        Err(e) => {
            error!(error = %e, "An export could not be recorded; not handed out.");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

//! The JSON API under `/api/v1`. Every route needs a bearer token of an
//! account; every error is an RFC 9457 problem document (one `IntoResponse`,
//! in `error.rs`), never a stack trace.

mod auth;
mod authorities;
mod error;

use axum::routing::get;
use axum::Router;

pub use auth::Caller;
pub use error::ApiError;

use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/authorities", get(authorities::search))
}

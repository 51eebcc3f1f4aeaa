use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use thiserror::Error;
use tracing::error;

/// Everything an API handler can fail with, mapped to HTTP in one place.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    #[error("{0}")]
    BadRequest(String),
    #[error("internal error")]
    Internal(#[from] sqlx::Error),
}

/// RFC 9457 problem details.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, problem_type, title) = match &self {
            Self::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "urn:imi:problem:unauthenticated",
                "Authentication required",
            ),
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "urn:imi:problem:bad-request",
                "The request is not valid",
            ),
            Self::Internal(cause) => {
                // The cause is logged, never sent.
                error!(error.message = %cause, error.cause_chain = ?cause, "API request failed.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "urn:imi:problem:internal",
                    "Internal error",
                )
            }
        };
        let body = Problem {
            problem_type,
            title,
            status: status.as_u16(),
            detail: match &self {
                Self::Internal(_) => {
                    "The hub could not complete the request; the operators can see why in its log."
                        .into()
                }
                other => other.to_string(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

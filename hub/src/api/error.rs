use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use thiserror::Error;
use tracing::error;

/// Everything an API handler can fail with, mapped to HTTP in one place.
#[derive(Debug, Error)]
pub(crate) enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the broker could not be provisioned; try again")]
    Unavailable(#[source] imi_broker::BrokerError),
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
            Self::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "urn:imi:problem:forbidden",
                "Not allowed for this account",
            ),
            Self::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "urn:imi:problem:not-found",
                "No such resource",
            ),
            Self::Conflict(_) => (
                StatusCode::CONFLICT,
                "urn:imi:problem:conflict",
                "Not possible in the current state",
            ),
            Self::Unavailable(cause) => {
                error!(error.message = %cause, "Provisioning failed.");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "urn:imi:problem:unavailable",
                    "A service the hub needs is unavailable",
                )
            }
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

impl From<crate::registry::workflow::WorkflowError> for ApiError {
    fn from(e: crate::registry::workflow::WorkflowError) -> Self {
        use crate::registry::workflow::WorkflowError as W;
        match e {
            W::NotFound(m) => Self::NotFound(m),
            W::Forbidden(m) => Self::Forbidden(m),
            W::Conflict(m) => Self::Conflict(m),
            W::Invalid(m) => Self::BadRequest(m),
            W::Database(e) => Self::Internal(e),
            W::Broker(e) => Self::Unavailable(e),
        }
    }
}

impl From<crate::views::exchanges::DetailError> for ApiError {
    fn from(e: crate::views::exchanges::DetailError) -> Self {
        use crate::views::exchanges::DetailError as D;
        match e {
            D::NotFound(id) => Self::NotFound(format!("no exchange {id}")),
            D::Denied(denied) => Self::Forbidden(denied.to_string()),
            D::Database(e) => Self::Internal(e),
        }
    }
}

impl From<crate::scope::Denied> for ApiError {
    fn from(denied: crate::scope::Denied) -> Self {
        Self::Forbidden(denied.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        Self::BadRequest(format!("the body is not valid: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::BadRequest(format!("the query is not valid: {}", r.body_text()))
    }
}

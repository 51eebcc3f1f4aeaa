//! `GET /api/v1/figures?procedure=` — the figures the Commission tracks for
//! requests (see `views::figures`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiError, Caller, ProblemView};
use crate::http::AppState;
use crate::views::figures::{self, Grouping};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FiguresParams {
    /// One procedure only.
    procedure: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Figures {
    procedure: String,
    opened: i64,
    accepted: i64,
    accepted_within_7_days: i64,
    average_hours_to_accept: Option<f64>,
    answered: i64,
    average_days_to_answer: Option<f64>,
    answered_by_agreed_date: i64,
    /// answered_by_agreed_date / answered (the Scoreboard's ≥ 80 % is green).
    share_answered_by_agreed_date: Option<f64>,
    /// Closures where the requester rated the reply (1–5).
    rated: i64,
    average_rating: Option<f64>,
}

impl From<figures::Figures> for Figures {
    fn from(f: figures::Figures) -> Self {
        Self {
            share_answered_by_agreed_date: f.share_answered_by_agreed_date(),
            procedure: f.procedure,
            opened: f.opened,
            accepted: f.accepted,
            accepted_within_7_days: f.accepted_within_7_days,
            average_hours_to_accept: f.average_hours_to_accept,
            answered: f.answered,
            average_days_to_answer: f.average_days_to_answer,
            answered_by_agreed_date: f.answered_by_agreed_date,
            rated: f.rated,
            average_rating: f.average_rating,
        }
    }
}

/// The figures the Commission tracks for requests, per procedure.
#[utoipa::path(get, path = "/api/v1/figures", tag = "figures", params(FiguresParams),
    responses((status = 200, body = Vec<Figures>), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn figures(
    caller: Caller,
    State(state): State<AppState>,
    params: Result<Query<FiguresParams>, QueryRejection>,
) -> Result<Json<Vec<Figures>>, ApiError> {
    let _ = caller;
    let procedure = params?.0.procedure;
    let rows = figures::figures(&state.pool, procedure.as_deref(), Grouping::Procedure).await?;
    Ok(Json(rows.into_iter().map(Figures::from).collect()))
}

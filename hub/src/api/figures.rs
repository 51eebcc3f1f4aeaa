//! `GET /api/v1/figures?procedure=` — the figures the Commission tracks for
//! requests, computed from the stored transitions: time to accept (and the
//! share accepted within 7 days), days to answer, and the share answered by
//! the agreed date (the responder's counter-proposal if it made one, else the
//! requested date).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiError, Caller};
use crate::http::AppState;

#[derive(Deserialize)]
pub(crate) struct FiguresParams {
    procedure: Option<String>,
}

#[derive(Serialize)]
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

/// One procedure's figures as the query computes them.
#[derive(sqlx::FromRow)]
struct FiguresRow {
    procedure: String,
    opened: i64,
    accepted: i64,
    accepted_within_7_days: i64,
    average_hours_to_accept: Option<f64>,
    answered: i64,
    average_days_to_answer: Option<f64>,
    answered_by_agreed_date: i64,
    rated: i64,
    average_rating: Option<f64>,
}

#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn figures(
    caller: Caller,
    State(state): State<AppState>,
    params: Result<Query<FiguresParams>, QueryRejection>,
) -> Result<Json<Vec<Figures>>, ApiError> {
    let _ = caller;
    let procedure = params?.0.procedure;
    let rows: Vec<FiguresRow> = sqlx::query_as(
        r"WITH opened AS (
              SELECT e.id, e.procedure, t.at AS opened_at,
                     convert_from(m.raw, 'UTF8')::jsonb -> 'payload' ->> 'requested_answer_date' AS requested
              FROM exchanges e
              JOIN transitions t ON t.exchange_id = e.id AND t.from_state IS NULL
              JOIN messages m ON m.id = t.message_id
              WHERE $1::text IS NULL OR e.procedure = $1
          ),
          accepted AS (
              SELECT DISTINCT ON (t.exchange_id) t.exchange_id, t.at,
                     convert_from(m.raw, 'UTF8')::jsonb -> 'payload' ->> 'requested_answer_date' AS proposed
              FROM transitions t JOIN messages m ON m.id = t.message_id
              WHERE t.action = 'accept' ORDER BY t.exchange_id, t.at
          ),
          answered AS (
              SELECT DISTINCT ON (exchange_id) exchange_id, at FROM transitions
              WHERE action = 'answer' ORDER BY exchange_id, at
          ),
          rated AS (
              SELECT DISTINCT ON (t.exchange_id) t.exchange_id,
                     (convert_from(m.raw, 'UTF8')::jsonb -> 'payload' ->> 'rating')::int AS rating
              FROM transitions t JOIN messages m ON m.id = t.message_id
              WHERE t.action = 'close'
                AND convert_from(m.raw, 'UTF8')::jsonb -> 'payload' ? 'rating'
              ORDER BY t.exchange_id, t.at DESC
          ),
          agreed AS (
              SELECT o.*, a.at AS accepted_at, n.at AS answered_at, r.rating,
                     CASE WHEN coalesce(a.proposed, o.requested) ~ '^\d{4}-\d{2}-\d{2}$'
                          THEN coalesce(a.proposed, o.requested)::date END AS agreed_date
              FROM opened o
              LEFT JOIN accepted a ON a.exchange_id = o.id
              LEFT JOIN answered n ON n.exchange_id = o.id
              LEFT JOIN rated r ON r.exchange_id = o.id
          )
          SELECT procedure,
                 count(*) AS opened,
                 count(accepted_at) AS accepted,
                 count(*) FILTER (WHERE accepted_at - opened_at <= interval '7 days') AS accepted_within_7_days,
                 (avg(extract(epoch FROM accepted_at - opened_at)) / 3600)::float8 AS average_hours_to_accept,
                 count(answered_at) AS answered,
                 (avg(extract(epoch FROM answered_at - opened_at)) / 86400)::float8 AS average_days_to_answer,
                 count(*) FILTER (WHERE answered_at::date <= agreed_date) AS answered_by_agreed_date,
                 count(rating) AS rated,
                 avg(rating)::float8 AS average_rating
          FROM agreed GROUP BY procedure ORDER BY procedure",
    )
    .bind(procedure)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| Figures {
                procedure: row.procedure,
                opened: row.opened,
                accepted: row.accepted,
                accepted_within_7_days: row.accepted_within_7_days,
                average_hours_to_accept: row.average_hours_to_accept,
                answered: row.answered,
                average_days_to_answer: row.average_days_to_answer,
                answered_by_agreed_date: row.answered_by_agreed_date,
                share_answered_by_agreed_date: (row.answered > 0)
                    .then(|| row.answered_by_agreed_date as f64 / row.answered as f64),
                rated: row.rated,
                average_rating: row.average_rating,
            })
            .collect(),
    ))
}

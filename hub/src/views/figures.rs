//! The figures the Commission tracks for requests, computed from the stored
//! transitions: time to accept (and the share accepted within 7 days), days
//! to answer, the share answered by the agreed date (the responder's
//! counter-proposal if it made one, else the requested date), and the
//! requesters' ratings. Per procedure, or per month and procedure. The API
//! and the console's statistics read them here.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

/// One procedure's figures (in one month, when grouped by month).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Figures {
    pub(crate) procedure: String,
    /// The month the exchanges opened in, when grouped by month.
    pub(crate) month: Option<DateTime<Utc>>,
    pub(crate) opened: i64,
    pub(crate) accepted: i64,
    pub(crate) accepted_within_7_days: i64,
    pub(crate) average_hours_to_accept: Option<f64>,
    pub(crate) answered: i64,
    pub(crate) average_days_to_answer: Option<f64>,
    pub(crate) answered_by_agreed_date: i64,
    /// Closures where the requester rated the reply (1–5).
    pub(crate) rated: i64,
    pub(crate) average_rating: Option<f64>,
}

impl Figures {
    /// answered_by_agreed_date / answered (the Scoreboard's ≥ 80 % is green).
    pub(crate) fn share_answered_by_agreed_date(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answered_by_agreed_date as f64 / self.answered as f64)
    }
}

/// How the figures are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grouping {
    Procedure,
    MonthAndProcedure,
}

/// The figures of every procedure (or one), by procedure or by month too.
#[instrument(skip_all)]
pub(crate) async fn figures(
    pool: &PgPool,
    procedure: Option<&str>,
    grouping: Grouping,
) -> Result<Vec<Figures>, sqlx::Error> {
    let (month, group, order) = match grouping {
        Grouping::Procedure => ("NULL::timestamptz", "", "procedure"),
        Grouping::MonthAndProcedure => (
            "date_trunc('month', opened_at)",
            ", date_trunc('month', opened_at)",
            "month, procedure",
        ),
    };
    let sql = format!(
        r"WITH opened AS (
              SELECT e.id, e.procedure, t.at AS opened_at,
                     m.facts ->> 'requested_answer_date' AS requested
              FROM exchanges e
              JOIN transitions t ON t.exchange_id = e.id AND t.from_state IS NULL
              JOIN messages m ON m.id = t.message_id
              WHERE $1::text IS NULL OR e.procedure = $1
          ),
          accepted AS (
              SELECT DISTINCT ON (t.exchange_id) t.exchange_id, t.at,
                     m.facts ->> 'requested_answer_date' AS proposed
              FROM transitions t JOIN messages m ON m.id = t.message_id
              WHERE t.action = 'accept' ORDER BY t.exchange_id, t.at
          ),
          answered AS (
              SELECT DISTINCT ON (exchange_id) exchange_id, at FROM transitions
              WHERE action = 'answer' ORDER BY exchange_id, at
          ),
          rated AS (
              SELECT DISTINCT ON (t.exchange_id) t.exchange_id,
                     (m.facts ->> 'rating')::int AS rating
              FROM transitions t JOIN messages m ON m.id = t.message_id
              WHERE t.action = 'close'
                AND m.facts ? 'rating'
              ORDER BY t.exchange_id, t.at DESC
          ),
          agreed AS (
              SELECT o.*, a.at AS accepted_at, n.at AS answered_at, r.rating,
                     CASE WHEN coalesce(a.proposed, o.requested) ~ '^\d{{4}}-\d{{2}}-\d{{2}}$'
                          THEN coalesce(a.proposed, o.requested)::date END AS agreed_date
              FROM opened o
              LEFT JOIN accepted a ON a.exchange_id = o.id
              LEFT JOIN answered n ON n.exchange_id = o.id
              LEFT JOIN rated r ON r.exchange_id = o.id
          )
          SELECT procedure, {month} AS month,
                 count(*) AS opened,
                 count(accepted_at) AS accepted,
                 count(*) FILTER (WHERE accepted_at - opened_at <= interval '7 days') AS accepted_within_7_days,
                 (avg(extract(epoch FROM accepted_at - opened_at)) / 3600)::float8 AS average_hours_to_accept,
                 count(answered_at) AS answered,
                 (avg(extract(epoch FROM answered_at - opened_at)) / 86400)::float8 AS average_days_to_answer,
                 count(*) FILTER (WHERE answered_at::date <= agreed_date) AS answered_by_agreed_date,
                 count(rating) AS rated,
                 avg(rating)::float8 AS average_rating
          FROM agreed GROUP BY procedure{group} ORDER BY {order}"
    );
    sqlx::query_as(&sql).bind(procedure).fetch_all(pool).await
}

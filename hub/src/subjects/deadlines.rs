//! The one-month deadline of data-subject requests: a reminder to the
//! handling office a week before, an overdue notice when it passes. Each
//! fires once (the notice's primary key), whatever the number of hub
//! instances; the console's desk and the request's page show them.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use tracing::{instrument, warn};
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::HubError;

/// The deadline pass; cheap to clone.
#[derive(Clone)]
pub struct SubjectDeadlines {
    pub(crate) pool: PgPool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) remind_before: Duration,
}

impl SubjectDeadlines {
    /// Fires the notices that came due; returns how many.
    #[instrument(skip_all, fields(fired))]
    pub async fn check_once(&self) -> Result<usize, HubError> {
        let now = self.clock.now();
        let fired: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "INSERT INTO subject_request_notices (request_id, kind, due_at, fired_at)
             SELECT id, CASE WHEN due_at <= $1 THEN 'overdue' ELSE 'reminder' END, due_at, $1
             FROM subject_requests
             WHERE answered_at IS NULL AND due_at - $2 <= $1
             ON CONFLICT DO NOTHING
             RETURNING request_id, kind, due_at",
        )
        .bind(now)
        .bind(self.remind_before)
        .fetch_all(&self.pool)
        .await?;
        for (request, kind, due_at) in &fired {
            warn!(%request, kind, %due_at, "A data-subject request is due: see the console's desk.");
        }
        tracing::Span::current().record("fired", fired.len());
        Ok(fired.len())
    }
}

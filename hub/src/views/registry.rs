//! The registry as coordinators work it: applications waiting for a
//! decision, in the caller's scope.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

use crate::scope::Scope;

/// An authority that applied and waits for its coordinator.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PendingApplication {
    pub(crate) id: String,
    pub(crate) country: String,
    pub(crate) region: Option<String>,
    pub(crate) names: serde_json::Value,
    pub(crate) endpoint: String,
    /// A new endpoint is provisioned on approval; else the authority joins
    /// an endpoint that is already active.
    pub(crate) endpoint_status: String,
    pub(crate) requested_procedures: Vec<String>,
    pub(crate) applied_at: Option<DateTime<Utc>>,
}

/// Applications waiting for a decision: a coordinator's country's, or all.
#[instrument(skip_all)]
pub(crate) async fn pending(
    pool: &PgPool,
    scope: &Scope,
) -> Result<Vec<PendingApplication>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.id, a.country, a.region, a.names, a.endpoint_id AS endpoint,
                e.status AS endpoint_status, a.requested_procedures,
                (SELECT min(ev.at) FROM registry_events ev
                  WHERE ev.authority_id = a.id AND ev.action = 'applied') AS applied_at
         FROM authorities a JOIN endpoints e ON e.id = a.endpoint_id
         WHERE a.status = 'pending' AND ($1::text IS NULL OR a.country = $1)
         ORDER BY a.id",
    )
    .bind(scope.country_filter())
    .fetch_all(pool)
    .await
}

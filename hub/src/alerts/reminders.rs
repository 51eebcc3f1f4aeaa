//! Reminders to recipients that have not acknowledged a routed 1:N copy.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use imi_schemas::protocol::DeadlineNotice;
use tracing::{info, instrument};
use uuid::Uuid;

use crate::clock::Clock;
use crate::dispatch::Sender;
use crate::error::HubError;
use crate::outgoing::{self, OutboxRow};
use crate::store;

/// Reminds recipients that have not acknowledged a routed 1:N copy within
/// `after`: one `imi.deadline` notice (deadline `acknowledge`) per copy and
/// authority, once.
#[derive(Clone)]
pub struct AckReminders {
    pub(crate) sender: Sender,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) after: Duration,
}

/// A copy not acknowledged in time, now marked reminded.
#[derive(sqlx::FromRow)]
struct Unacknowledged {
    outbox_id: Uuid,
    authority_id: String,
    exchange_id: Uuid,
    endpoint_id: String,
    procedure: String,
    due_at: DateTime<Utc>,
}

impl AckReminders {
    #[instrument(skip_all)]
    pub async fn check_once(&self) -> Result<usize, HubError> {
        let now = self.clock.now();
        let after = self.after.as_secs_f64();
        let mut tx = self.sender.pool.begin().await?;
        let rows: Vec<Unacknowledged> = sqlx::query_as(
            "UPDATE deliveries d SET reminded_at = $1
             FROM outbox o, batches b, exchanges e
             WHERE o.id = d.outbox_id AND b.id = o.batch_id AND e.id = d.exchange_id
               AND d.acknowledged_at IS NULL AND d.reminded_at IS NULL
               AND b.published_at IS NOT NULL
               AND b.published_at + make_interval(secs => $2) <= $1
             RETURNING d.outbox_id, d.authority_id, d.exchange_id, d.endpoint_id, e.procedure,
                       b.published_at + make_interval(secs => $2) AS due_at",
        )
        .bind(now)
        .bind(after)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let outbox: Vec<OutboxRow> = rows
            .into_iter()
            .map(|r| {
                let notice = DeadlineNotice {
                    exchange_id: r.exchange_id,
                    procedure: r.procedure,
                    deadline: "acknowledge".into(),
                    kind: "reminder".into(),
                    due_at: r.due_at,
                    authority: r.authority_id,
                    consequence: None,
                };
                outgoing::ack_reminder(r.outbox_id, &notice, r.endpoint_id)
            })
            .collect();
        let batch_id = store::write_own(&mut tx, &self.sender.instance, &outbox).await?;
        tx.commit().await?;
        let n = outbox.len();
        self.sender.publish::<HubError>(batch_id, outbox).await?;
        info!(reminded = n, "Acknowledgement reminders sent.");
        Ok(n)
    }
}

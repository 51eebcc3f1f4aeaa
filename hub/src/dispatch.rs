//! Publishing the hub's own messages (deadline notices, reminders, a
//! coordinator's step): the caller writes them with `store::write_own` in
//! its transaction and, once that committed, publishes them here. A crash in
//! between leaves them to the outbox relay.

use std::sync::Arc;

use chrono::Utc;
use imi_broker::{PublishOutcome, Publisher};
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use crate::outgoing::OutboxRow;
use crate::store;

/// What a periodic pass (deadlines, reminders) needs to send the hub's own
/// messages: the database, a publisher, and the instance name batches are
/// recorded under.
#[derive(Clone)]
pub(crate) struct Sender {
    pub(crate) pool: PgPool,
    /// The hub's publishing channels; the passes use the first.
    pub(crate) publishers: Arc<Vec<Publisher>>,
    pub(crate) instance: String,
}

impl Sender {
    /// Publishes a batch written with `store::write_own` (committed).
    pub(crate) async fn publish<E>(&self, batch_id: Uuid, rows: Vec<OutboxRow>) -> Result<(), E>
    where
        E: From<sqlx::Error> + From<imi_broker::BrokerError>,
    {
        publish_own(&self.publishers[0], &self.pool, batch_id, rows).await
    }
}

/// Publishes a committed batch of the hub's own messages and marks it
/// published; rows the broker returned unroutable stay marked for the relay.
#[instrument(skip_all, fields(batch = %batch_id, rows = rows.len()))]
pub(crate) async fn publish_own<E>(
    publisher: &Publisher,
    pool: &PgPool,
    batch_id: Uuid,
    rows: Vec<OutboxRow>,
) -> Result<(), E>
where
    E: From<sqlx::Error> + From<imi_broker::BrokerError>,
{
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let outgoing: Vec<_> = rows.into_iter().map(OutboxRow::into_amqp).collect();
    let outcomes = publisher.publish_all(&outgoing).await?;
    let unroutable: Vec<Uuid> = ids
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o == PublishOutcome::Unroutable)
        .map(|(id, _)| *id)
        .collect();
    store::mark_unroutable(pool, &unroutable, &[]).await?;
    store::mark_published(pool, &[(batch_id, Utc::now())]).await?;
    Ok(())
}

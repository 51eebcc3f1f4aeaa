//! What needs attention now: each endpoint's heartbeat (connected to the
//! broker or not, its inbox's depth and consumers, when it was last heard
//! from) and the counts an operator or coordinator acts on (overdue
//! requests, alerts awaiting acknowledgement, open refusals).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use imi_broker::Management;
use imi_schemas::protocol::inbox_queue;
use sqlx::PgPool;
use tracing::{instrument, warn};

use crate::activity::Activity;
use crate::registry::{Registry, Status};
use crate::scope::Scope;

/// One endpoint's heartbeat.
#[derive(Debug, Clone)]
pub(crate) struct EndpointHealth {
    pub(crate) id: String,
    pub(crate) status: Status,
    pub(crate) authorities: Vec<String>,
    /// Open broker connections of its user; `None` when the broker's
    /// management API did not answer.
    pub(crate) connections: Option<usize>,
    pub(crate) inbox_depth: Option<u64>,
    pub(crate) inbox_consumers: Option<u64>,
    /// Since this hub started.
    pub(crate) last_seen: Option<DateTime<Utc>>,
}

impl EndpointHealth {
    /// Active, connected and consuming its inbox (or with no inbox: a
    /// broadcast subscriber consumes its own queues).
    pub(crate) fn healthy(&self) -> Option<bool> {
        let connected = self.connections? > 0;
        let consuming = self.inbox_consumers.is_none_or(|c| c > 0);
        Some(self.status == Status::Active && connected && consuming)
    }
}

/// The endpoints the caller may see (a coordinator: those acting for its
/// country's authorities), worst first: not connected, then the rest.
#[instrument(skip_all)]
pub(crate) async fn endpoints(
    registry: &Registry,
    management: &Management,
    vhost: &str,
    activity: &Activity,
    scope: &Scope,
) -> Vec<EndpointHealth> {
    let country = scope.country_filter();
    let connections = match management.connections(vhost).await {
        Ok(list) => {
            let mut by_user: HashMap<String, usize> = HashMap::new();
            for c in list {
                *by_user.entry(c.user).or_default() += 1;
            }
            Some(by_user)
        }
        Err(error) => {
            warn!(%error, "Broker connections unavailable for the console.");
            None
        }
    };
    let queues: Option<HashMap<String, (u64, u64)>> = match management.queues(vhost).await {
        Ok(list) => Some(
            list.into_iter()
                .map(|q| (q.name, (q.messages, q.consumers)))
                .collect(),
        ),
        Err(error) => {
            warn!(%error, "Broker queues unavailable for the console.");
            None
        }
    };
    let mut out: Vec<EndpointHealth> = registry
        .endpoints()
        .filter(|e| {
            country
                .as_deref()
                .is_none_or(|c| e.authorities.iter().any(|a| a.country().as_str() == c))
        })
        .map(|e| {
            let id = e.id.to_string();
            let inbox = queues
                .as_ref()
                .and_then(|q| q.get(&inbox_queue(&id)).copied());
            let mut authorities: Vec<String> =
                e.authorities.iter().map(|a| a.to_string()).collect();
            authorities.sort();
            EndpointHealth {
                connections: connections
                    .as_ref()
                    .map(|c| c.get(&id).copied().unwrap_or(0)),
                inbox_depth: inbox.map(|(depth, _)| depth),
                inbox_consumers: inbox.map(|(_, consumers)| consumers),
                last_seen: activity.last_seen(&id),
                status: e.status,
                authorities,
                id,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        let worst = |e: &EndpointHealth| e.healthy() == Some(true);
        worst(a).cmp(&worst(b)).then_with(|| a.id.cmp(&b.id))
    });
    out
}

/// Counts that call for action.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub(crate) struct Attention {
    /// Requests past a deadline, still where they were.
    pub(crate) overdue: i64,
    /// 1:N exchanges with copies routed but not acknowledged.
    pub(crate) awaiting_acknowledgement: i64,
    /// Refused messages nobody has re-driven or discarded.
    pub(crate) open_refusals: i64,
}

#[instrument(skip_all)]
pub(crate) async fn attention(pool: &PgPool, scope: &Scope) -> Result<Attention, sqlx::Error> {
    sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM deadline_events d
              JOIN exchanges e ON e.id = d.exchange_id
             WHERE d.kind = 'overdue' AND e.updated_at < d.due_at
               AND ($1::text IS NULL OR left(d.authority, 2) = $1)) AS overdue,
           (SELECT count(DISTINCT exchange_id) FROM delivery_status
             WHERE state = 'routed' AND ($1::text IS NULL OR left(authority_id, 2) = $1))
             AS awaiting_acknowledgement,
           (SELECT count(*) FROM rejected_messages r
             WHERE r.resolved_at IS NULL
               AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM authorities a
                                                WHERE a.endpoint_id = r.user_id AND a.country = $1)))
             AS open_refusals",
    )
    .bind(scope.country_filter())
    .fetch_one(pool)
    .await
}

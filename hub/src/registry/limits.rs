//! What the broker lets one endpoint hold: connections and channels per
//! broker user, messages per inbox. Set by the hub, so that a misbehaving
//! adapter exhausts its own allowance, not the broker.

use futures_util::stream::{self, StreamExt};
use imi_broker::{Management, QueuePolicy, UserLimits};
use tracing::{instrument, warn};

use super::seed::regex_escape;
use crate::error::HubError;

/// The policy's name in the hub's vhost.
const INBOX_POLICY: &str = "imi-inbox-limits";

/// Management calls in flight at once when limits are set at start.
const CONCURRENT: usize = 16;

/// Every inbox holds at most `max_messages`; the oldest beyond it is
/// dead-lettered (the inbox's dead-letter exchange), where the hub keeps it.
/// A policy, not a queue argument: a new limit applies to existing inboxes
/// without re-declaring them.
pub(crate) fn inbox_policy(max_messages: u64) -> QueuePolicy {
    QueuePolicy {
        name: INBOX_POLICY.into(),
        pattern: format!(
            "^{}",
            regex_escape(imi_schemas::protocol::INBOX_QUEUE_PREFIX)
        ),
        definition: serde_json::json!({ "max-length": max_messages }),
    }
}

/// Sets the inbox policy, and the limits of every endpoint's broker user
/// (those created before a change of the limits included). A user that is
/// missing (an endpoint not provisioned yet) is logged, not fatal.
#[instrument(skip_all, fields(vhost))]
pub(crate) async fn apply_at_start<'a>(
    management: &Management,
    vhost: &str,
    limits: UserLimits,
    inbox_max_messages: u64,
    endpoints: impl Iterator<Item = &'a str>,
) -> Result<(), HubError> {
    management
        .put_queue_policy(vhost, &inbox_policy(inbox_max_messages))
        .await?;
    let endpoints: Vec<&str> = endpoints.collect();
    stream::iter(endpoints)
        .map(|endpoint| async move {
            if let Err(error) = management.set_user_limits(endpoint, limits).await {
                warn!(%error, endpoint, "Could not set the endpoint's broker limits.");
            }
        })
        .buffer_unordered(CONCURRENT)
        .collect::<()>()
        .await;
    Ok(())
}

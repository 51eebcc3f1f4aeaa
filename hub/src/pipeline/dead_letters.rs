//! What the broker dead-letters (a message delivered too often without
//! being processed, or expired) is not dropped: the hub consumes
//! `imi.dead-letters`, keeps each message with the broker's reason among
//! the refused messages (code `dead_lettered`), where the console shows it,
//! and acks it only once that is committed.
//!
//! A sender's message dead-lettered from the ingress queue was delivered 50
//! times without being acked: the hub crashed (or was killed) 50 times while
//! holding it, whatever the message says. The hub re-drives it itself, from
//! the kept copy, through the pipeline (stored, routed, receipted, or
//! refused with a reason like any message). Each try is counted before it is
//! made and the hub stops after [`MAX_TRIES`]: a message that makes the hub
//! fail is refused to its sender (`processing_failed`) and stays kept for
//! the operators instead of crashing the hub for ever. Fresh dead letters
//! are tried many at a time; one whose try did not finish (the hub failed
//! during it) is tried alone, so that a message that makes the hub fail
//! takes no other with it. A pass also runs on a timer, for what a crash
//! interrupted.

use std::collections::BTreeMap;

use chrono::Utc;
use imi_broker::{Deliveries, Delivery, Properties};
use imi_schemas::ids::EndpointId;
use imi_schemas::protocol::{
    Rejection, RejectionCode, HEADER_SCHEMA_VERSION, HEADER_TRACEPARENT, INBOX_QUEUE_PREFIX,
};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::PipelineContext;
use crate::inbound::Refusal;
use crate::store::{self, DeadLetter, Take};

/// Dead letters recorded per statement at most.
const BATCH: usize = 100;

/// Automatic re-drives of one dead letter at most.
pub(crate) const MAX_TRIES: i32 = 3;

/// The broker's headers saying why and where a message died.
const FIRST_DEATH_REASON: &str = "x-first-death-reason";
const FIRST_DEATH_QUEUE: &str = "x-first-death-queue";

/// Records dead letters until `deliveries` ends (the hub stops).
pub(crate) async fn run(ctx: PipelineContext, mut deliveries: Deliveries) {
    while let Some(first) = deliveries.recv().await {
        let mut taken = vec![first];
        while taken.len() < BATCH {
            match deliveries.try_recv() {
                Some(d) => taken.push(d),
                None => break,
            }
        }
        let refusals: Vec<Refusal> = taken
            .iter()
            .map(|d| refusal(d, ctx.settings.max_body_bytes))
            .collect();
        let mut attempt = 0;
        loop {
            match store::record_refusals(&ctx.pool, &refusals, &ctx.data_keys).await {
                Ok(()) => break,
                Err(error) => {
                    warn!(%error, attempt, "Recording dead letters failed; retrying (nothing is acked).");
                    tokio::select! {
                        _ = tokio::time::sleep(super::COMMIT_RETRY.delay(attempt)) => {}
                        _ = ctx.abort.cancelled() => return,
                    }
                    attempt += 1;
                }
            }
        }
        info!(dead_letters = taken.len(), "Dead-lettered messages kept.");
        for d in taken {
            if let Err(error) = d.acker.ack().await {
                warn!(%error, "Ack of a dead letter failed; it comes again and is kept again.");
            }
        }
        if let Err(error) = redrive_pass(&ctx).await {
            warn!(%error, "Re-driving dead letters failed; the next pass tries again.");
        }
    }
}

/// Re-drives the kept dead letters of the ingress queue (see the module
/// comment); returns how many it tried.
pub(crate) async fn redrive_pass(ctx: &PipelineContext) -> Result<usize, crate::error::HubError> {
    // One pass at a time in a process (the consumer's and the timer's),
    // so that a dead letter is not tried twice at once and counted twice.
    // Hubs in other processes may still meet on one: the second try is
    // absorbed as a duplicate.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut tried = 0;
    for take in [Take::Fresh, Take::Retried] {
        loop {
            let taken = store::take_dead_letters(&ctx.pool, take, MAX_TRIES, BATCH as i64).await?;
            if taken.is_empty() {
                break;
            }
            tried += taken.len();
            let ids: Vec<i64> = taken.iter().map(|d| d.id).collect();
            let messages = taken.into_iter().map(as_delivered).collect();
            let outcome = super::redrive(ctx, messages).await?;
            let done = store::resolve_redriven(&ctx.pool, &ids).await?;
            info!(
                re_driven = ids.len(),
                accepted = outcome.accepted,
                duplicates = outcome.duplicates,
                refused = outcome.refused.len(),
                resolved = done,
                "Dead letters re-driven."
            );
        }
    }
    give_up(ctx).await?;
    Ok(tried)
}

/// A kept dead letter as its sender published it.
fn as_delivered(d: DeadLetter) -> (Properties, Vec<u8>) {
    let headers = serde_json::from_value(d.headers).unwrap_or_default();
    let properties = Properties {
        message_id: Some(d.message_id),
        correlation_id: d.correlation_id,
        message_type: d.message_type,
        user_id: Some(d.user_id),
        content_type: Some("application/json".into()),
        timestamp: None,
        headers,
    };
    (properties, d.body)
}

/// The dead letters the hub failed on every time are refused: their senders
/// are told, with a reason, and the operators keep them to look into and
/// re-drive after a fix.
async fn give_up(ctx: &PipelineContext) -> Result<(), crate::error::HubError> {
    let code = RejectionCode::ProcessingFailed;
    let detail = format!(
        "the hub failed each of the {MAX_TRIES} times it processed this message; it is kept for the operators"
    );
    let mut tx = ctx.pool.begin().await?;
    let given_up = store::give_up_dead_letters(&mut tx, MAX_TRIES, code.as_str(), &detail).await?;
    if given_up.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows: Vec<_> = given_up
        .iter()
        .filter_map(|d| {
            let refusal = Refusal {
                message_id: Some(d.message_id.clone()),
                user_id: Some(d.user_id.clone()),
                message_type: d.message_type.clone(),
                correlation_id: d.correlation_id.clone(),
                headers: BTreeMap::new(),
                reply_to: EndpointId::try_from(d.user_id.as_str()).ok(),
                rejection: Rejection::new(
                    Some(d.message_id.clone()),
                    code,
                    detail.clone(),
                    Vec::new(),
                    now,
                ),
                body: Vec::new(),
                body_size: d.body.len(),
                digest: Sha256::digest(&d.body).into(),
            };
            crate::outgoing::rejection(&refusal)
        })
        .collect();
    let batch = store::write_own(&mut tx, &ctx.instance, &rows).await?;
    tx.commit().await?;
    warn!(messages = given_up.len(), "Dead letters the hub failed on every time: refused to their senders, kept for the operators.");
    crate::dispatch::publish_own::<crate::error::HubError>(
        &ctx.publishers[0],
        &ctx.pool,
        batch,
        rows,
    )
    .await
}

fn refusal(d: &Delivery, max_body_bytes: usize) -> Refusal {
    let p = &d.properties;
    let reason = p
        .headers
        .get(FIRST_DEATH_REASON)
        .map(String::as_str)
        .unwrap_or("unknown");
    let queue = p
        .headers
        .get(FIRST_DEATH_QUEUE)
        .map(String::as_str)
        .unwrap_or("unknown");
    // From an inbox it is one of the hub's own deliveries that the
    // recipient's system never took: the exchange is committed, so it is
    // kept to be looked into, not to be re-driven as if an endpoint sent it.
    let from_inbox = queue.starts_with(INBOX_QUEUE_PREFIX);
    let detail = if from_inbox {
        format!("the broker dead-lettered this delivery from `{queue}` ({reason}): the recipient's system did not take it")
    } else {
        format!("the broker dead-lettered it from `{queue}`: {reason}")
    };
    let mut body = d.body.clone();
    body.truncate(max_body_bytes);
    let headers: BTreeMap<String, String> = p
        .headers
        .iter()
        .filter(|(k, _)| *k == HEADER_SCHEMA_VERSION || *k == HEADER_TRACEPARENT)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Refusal {
        message_id: p.message_id.clone(),
        user_id: if from_inbox { None } else { p.user_id.clone() },
        message_type: p.message_type.clone(),
        correlation_id: p.correlation_id.clone(),
        headers,
        // Not answered: whether the sender should hear of it is the
        // operator's call (re-drive or discard).
        reply_to: None::<EndpointId>,
        rejection: Rejection::new(
            p.message_id.clone(),
            RejectionCode::DeadLettered,
            detail,
            Vec::new(),
            Utc::now(),
        ),
        body_size: d.body.len(),
        digest: Sha256::digest(&d.body).into(),
        body,
    }
}

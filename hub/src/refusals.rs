//! Re-driving refused messages after their cause is fixed, for the console
//! and the API alike: the records are closed first (a message refused again
//! reopens its own record with the new cause), the messages go through the
//! pipeline under their own ids, and the step is recorded in the audit log.

use imi_broker::Properties;
use thiserror::Error;

use crate::accounts::Account;
use crate::pipeline::{self, PipelineContext, Redriven};
use crate::views::audit;
use crate::views::refused::{self, GroupKey, Refused};

#[derive(Debug, Error)]
pub(crate) enum RedriveError {
    #[error("nothing to re-drive: resolved already, or its body was truncated or erased")]
    Nothing,
    #[error("the re-drive failed: {0}")]
    Pipeline(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Re-drives the `rows` that still can be; returns their record ids and
/// what the pipeline made of them.
pub(crate) async fn redrive(
    ctx: &PipelineContext,
    account: &Account,
    rows: Vec<Refused>,
    key: Option<&GroupKey>,
) -> Result<(Vec<i64>, Redriven), RedriveError> {
    let rows: Vec<Refused> = rows.into_iter().filter(Refused::can_be_redriven).collect();
    if rows.is_empty() {
        return Err(RedriveError::Nothing);
    }
    let messages: Vec<(Properties, Vec<u8>)> = rows
        .iter()
        .map(|r| {
            let headers = serde_json::from_value(r.headers.clone()).unwrap_or_default();
            let properties = Properties {
                message_id: r.message_id.clone(),
                correlation_id: r.correlation_id.clone(),
                message_type: r.message_type.clone(),
                user_id: r.user_id.clone(),
                content_type: Some("application/json".into()),
                timestamp: None,
                headers,
            };
            (properties, r.body.clone())
        })
        .collect();
    // Closed first: a message refused again reopens its own record (one
    // per sender and message_id) with the new cause, and must not be
    // closed after that.
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    refused::resolve(&ctx.pool, &ids, "redriven", &account.name).await?;
    let outcome = match pipeline::redrive(ctx, messages).await {
        Ok(outcome) => outcome,
        Err(error) => {
            refused::reopen(&ctx.pool, &ids, "redriven").await?;
            return Err(RedriveError::Pipeline(error.to_string()));
        }
    };
    audit::record_by(
        &ctx.pool,
        account,
        "redrive",
        key.map(|k| k.code.as_str()),
        serde_json::json!({
            "refused": ids,
            "accepted": outcome.accepted,
            "duplicates": outcome.duplicates,
            "refused_again": outcome.refused.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok((ids, outcome))
}

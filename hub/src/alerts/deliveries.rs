//! Who has and has not acknowledged a 1:N exchange, per recipient copy.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use crate::accounts::Account;
use crate::registry::workflow::WorkflowError;
use crate::scope::{Parties, Scope, Visibility};

/// One recipient authority's copy of a message.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Delivery {
    pub(crate) authority: String,
    pub(crate) endpoint: String,
    pub(crate) message_id: Uuid,
    /// `queued`, `routed` (broker-confirmed) or `acknowledged`.
    pub(crate) state: String,
    pub(crate) routed_at: Option<DateTime<Utc>>,
    pub(crate) acknowledged_at: Option<DateTime<Utc>>,
    pub(crate) reminded_at: Option<DateTime<Utc>>,
}

/// A deadline counted from a date of the opening payload.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FieldDeadline {
    pub(crate) deadline: String,
    pub(crate) field_date: NaiveDate,
    pub(crate) due_at: DateTime<Utc>,
    /// Released after it was due (or still held past it).
    pub(crate) late: bool,
}

/// The deliveries of a 1:N exchange as one caller may see them.
#[derive(Debug)]
pub(crate) struct ExchangeDeliveries {
    pub(crate) exchange_id: Uuid,
    pub(crate) procedure: String,
    pub(crate) state: String,
    pub(crate) originator: String,
    pub(crate) released_at: Option<DateTime<Utc>>,
    /// Every recipient, frozen when the exchange opened (plus disseminations).
    pub(crate) recipients: Vec<String>,
    pub(crate) deadlines: Vec<FieldDeadline>,
    pub(crate) counts: Counts,
    pub(crate) deliveries: Vec<Delivery>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) queued: usize,
    pub(crate) routed: usize,
    pub(crate) acknowledged: usize,
}

#[derive(sqlx::FromRow)]
struct Head {
    procedure: String,
    state: String,
    requester: String,
    released_at: Option<DateTime<Utc>>,
    recipients: Option<Vec<String>>,
}

/// Who has and has not acknowledged, per copy: for operators and auditors
/// (all), coordinators of the originator's country (all), and coordinators
/// of a recipient country (their country's rows, once released).
#[instrument(skip_all, fields(exchange = %exchange))]
pub(crate) async fn deliveries(
    pool: &PgPool,
    account: &Account,
    exchange: Uuid,
) -> Result<ExchangeDeliveries, WorkflowError> {
    let head: Option<Head> = sqlx::query_as(
        "SELECT procedure, state, requester, released_at, recipients FROM exchanges WHERE id = $1",
    )
    .bind(exchange)
    .fetch_optional(pool)
    .await?;
    let head = head.ok_or_else(|| WorkflowError::NotFound(format!("no exchange {exchange}")))?;
    let recipients = head
        .recipients
        .ok_or_else(|| WorkflowError::Invalid(format!("exchange {exchange} is 1:1, not 1:N")))?;
    let visibility = Scope::of(account).sees(Parties {
        requester: &head.requester,
        responder: "",
        recipients: &recipients,
        released: head.released_at.is_some(),
    })?;
    let only_country = match visibility {
        Visibility::Whole => None,
        Visibility::CountryPart(country) => Some(country),
    };
    let rows: Vec<Delivery> = sqlx::query_as(
        "SELECT authority_id AS authority, endpoint_id AS endpoint, outbox_id AS message_id, state,
                routed_at, acknowledged_at, reminded_at
         FROM delivery_status
         WHERE exchange_id = $1 AND ($2::text IS NULL OR left(authority_id, 2) = $2)
         ORDER BY delivery_status.message_id, delivery_status.authority_id",
    )
    .bind(exchange)
    .bind(&only_country)
    .fetch_all(pool)
    .await?;
    let deadlines: Vec<FieldDeadline> = sqlx::query_as(
        "SELECT f.deadline, f.field_date, f.due_at, coalesce(e.released_at, now()) > f.due_at AS late
         FROM field_deadlines f JOIN exchanges e ON e.id = f.exchange_id WHERE f.exchange_id = $1",
    )
    .bind(exchange)
    .fetch_all(pool)
    .await?;
    let mut counts = Counts::default();
    for d in &rows {
        match d.state.as_str() {
            "acknowledged" => counts.acknowledged += 1,
            "routed" => counts.routed += 1,
            _ => counts.queued += 1,
        }
    }
    Ok(ExchangeDeliveries {
        exchange_id: exchange,
        procedure: head.procedure,
        state: head.state,
        originator: head.requester,
        released_at: head.released_at,
        recipients: match &only_country {
            Some(c) => recipients
                .into_iter()
                .filter(|r| r.starts_with(c.as_str()))
                .collect(),
            None => recipients,
        },
        deadlines,
        counts,
        deliveries: rows,
    })
}

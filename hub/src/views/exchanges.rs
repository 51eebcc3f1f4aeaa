//! Exchanges as people look at them: a filtered list, newest first, paged by
//! keyset (the position is the last row's creation time and id, so page
//! 1,000 costs what page 1 does), and one exchange with its steps, messages
//! and links. The API and the console read them here, through the caller's
//! scope.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use tracing::instrument;
use uuid::Uuid;

use crate::scope::{Parties, Scope, Visibility};

/// What a list is filtered by; every field is optional.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExchangeFilter {
    pub(crate) procedure: Option<String>,
    pub(crate) state: Option<String>,
    /// Exchanges an authority of this country is party to.
    pub(crate) country: Option<String>,
    /// Exchanges this authority is party to.
    pub(crate) authority: Option<String>,
    /// Opened at or after.
    pub(crate) from: Option<DateTime<Utc>>,
    /// Opened before.
    pub(crate) until: Option<DateTime<Utc>>,
}

/// Where a page starts: after this row, in the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) id: Uuid,
}

impl Cursor {
    /// `<microseconds since the epoch>.<id>`, for a URL.
    pub(crate) fn encode(&self) -> String {
        format!("{}.{}", self.created_at.timestamp_micros(), self.id)
    }

    pub(crate) fn decode(raw: &str) -> Option<Cursor> {
        let (micros, id) = raw.split_once('.')?;
        Some(Cursor {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Newest first (the default) or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Order {
    #[default]
    Newest,
    Oldest,
}

/// One exchange in a list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ExchangeRow {
    pub(crate) id: Uuid,
    pub(crate) procedure: String,
    pub(crate) state: String,
    pub(crate) requester: String,
    /// The 1:1 counterpart; empty for 1:N.
    pub(crate) responder: String,
    /// 1:N: how many recipients.
    pub(crate) recipients: Option<i32>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) closed_at: Option<DateTime<Utc>>,
}

impl ExchangeRow {
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// "An authority of `country` is party": the requester, or (once released)
/// the responder or a recipient.
fn push_party_of_country(q: &mut QueryBuilder<'_, Postgres>, country: &str) {
    q.push("(left(e.requester, 2) = ")
        .push_bind(country.to_owned())
        .push(
            " OR ((e.recipients IS NULL OR e.released_at IS NOT NULL) AND (left(e.responder, 2) = ",
        )
        .push_bind(country.to_owned())
        .push(" OR EXISTS (SELECT 1 FROM unnest(e.recipients) AS r(a) WHERE left(r.a, 2) = ")
        .push_bind(country.to_owned())
        .push("))))");
}

/// One page of exchanges the caller may see, matching `filter`, after
/// `after`. Asks for one row more than `limit`: the caller knows from it
/// whether a next page exists.
#[instrument(skip_all, fields(limit))]
pub(crate) async fn list(
    pool: &PgPool,
    scope: &Scope,
    filter: &ExchangeFilter,
    order: Order,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<ExchangeRow>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT e.id, e.procedure, e.state, e.requester, e.responder,
                cardinality(e.recipients) AS recipients, e.created_at, e.updated_at, e.closed_at
         FROM exchanges e WHERE true",
    );
    if let Some(p) = &filter.procedure {
        q.push(" AND e.procedure = ").push_bind(p.clone());
    }
    if let Some(s) = &filter.state {
        q.push(" AND e.state = ").push_bind(s.clone());
    }
    if let Some(c) = &filter.country {
        q.push(" AND ");
        push_party_of_country(&mut q, c);
    }
    if let Some(a) = &filter.authority {
        q.push(" AND (e.requester = ")
            .push_bind(a.clone())
            .push(" OR e.responder = ")
            .push_bind(a.clone())
            .push(" OR ")
            .push_bind(a.clone())
            .push(" = ANY (e.recipients))");
    }
    if let Some(from) = filter.from {
        q.push(" AND e.created_at >= ").push_bind(from);
    }
    if let Some(until) = filter.until {
        q.push(" AND e.created_at < ").push_bind(until);
    }
    if let Some(country) = scope.country_filter() {
        q.push(" AND ");
        push_party_of_country(&mut q, &country);
    }
    let (compare, direction) = match order {
        Order::Newest => ("<", "DESC"),
        Order::Oldest => (">", "ASC"),
    };
    if let Some(c) = after {
        q.push(format!(" AND (e.created_at, e.id) {compare} ("))
            .push_bind(c.created_at)
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
    q.push(format!(
        " ORDER BY e.created_at {direction}, e.id {direction} LIMIT "
    ))
    .push_bind(limit + 1);
    q.build_query_as().fetch_all(pool).await
}

/// An exchange's own row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Head {
    pub(crate) id: Uuid,
    pub(crate) procedure: String,
    pub(crate) state: String,
    pub(crate) requester: String,
    pub(crate) responder: String,
    pub(crate) recipients: Option<Vec<String>>,
    pub(crate) parent_id: Option<Uuid>,
    pub(crate) opened_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) closed_at: Option<DateTime<Utc>>,
    pub(crate) blocked_at: Option<DateTime<Utc>>,
    pub(crate) personal_data_erased_at: Option<DateTime<Utc>>,
    /// 1:1 exchanges always are; a 1:N one once released.
    pub(crate) released: bool,
}

impl Head {
    pub(crate) fn parties(&self) -> Parties<'_> {
        Parties {
            requester: &self.requester,
            responder: &self.responder,
            recipients: self.recipients.as_deref().unwrap_or_default(),
            released: self.released,
        }
    }
}

/// A step of an exchange: a message's, or a person's (reassignment,
/// validation).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Step {
    pub(crate) at: DateTime<Utc>,
    pub(crate) action: String,
    pub(crate) from_state: Option<String>,
    pub(crate) to_state: String,
    pub(crate) message_id: Uuid,
    /// The sending authority of the message that took it.
    pub(crate) sender: Option<String>,
    /// The message's recipients.
    pub(crate) recipients: Option<Vec<String>>,
    /// The account, for a step a person took over HTTP.
    pub(crate) actor: Option<String>,
}

/// A message of an exchange, as received.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Message {
    pub(crate) id: Uuid,
    pub(crate) message_type: String,
    pub(crate) sender: String,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) raw: Vec<u8>,
}

/// A deadline that fired (or was recorded) for an exchange.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DeadlineEvent {
    pub(crate) deadline: String,
    /// `reminder`, `overdue` or `inactive`.
    pub(crate) kind: String,
    pub(crate) due_at: DateTime<Utc>,
    pub(crate) authority: String,
    pub(crate) fired_at: DateTime<Utc>,
}

/// The deadlines running (or stopped) in an exchange's current state, each
/// computed from its history now (the checker's replay); none once closed.
pub(crate) async fn running_deadlines(
    pool: &PgPool,
    catalogue: &imi_schemas::catalogue::Catalogue,
    head: &Head,
) -> Result<Vec<crate::deadline_clocks::RunningNow>, sqlx::Error> {
    let procedure = imi_schemas::ids::ProcedureCode::try_from(head.procedure.as_str())
        .ok()
        .and_then(|c| catalogue.procedure(&c));
    let (Some(p), None) = (procedure, head.closed_at) else {
        return Ok(Vec::new());
    };
    crate::deadline_clocks::running_now(
        pool,
        catalogue,
        p,
        head.id,
        &head.state,
        (&head.requester, &head.responder),
        |d| crate::deadlines::acting_role(p, d),
    )
    .await
}

/// One exchange as a caller may see it.
#[derive(Debug, Clone)]
pub(crate) struct Detail {
    pub(crate) head: Head,
    pub(crate) visibility: Visibility,
    pub(crate) children: Vec<Uuid>,
    pub(crate) steps: Vec<Step>,
    pub(crate) deadlines: Vec<DeadlineEvent>,
}

/// Why an exchange cannot be shown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DetailError {
    #[error("no exchange {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Denied(#[from] crate::scope::Denied),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// An exchange's row, its links, steps and deadlines, if the caller may see
/// it.
#[instrument(skip_all, fields(exchange = %id))]
pub(crate) async fn detail(pool: &PgPool, scope: &Scope, id: Uuid) -> Result<Detail, DetailError> {
    let head: Option<Head> = sqlx::query_as(
        "SELECT id, procedure, state, requester, responder, recipients, parent_id,
                created_at AS opened_at, updated_at, closed_at, blocked_at,
                personal_data_erased_at, recipients IS NULL OR released_at IS NOT NULL AS released
         FROM exchanges WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let head = head.ok_or(DetailError::NotFound(id))?;
    let visibility = scope.sees(head.parties())?;
    let children: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM exchanges WHERE parent_id = $1 ORDER BY created_at")
            .bind(id)
            .fetch_all(pool)
            .await?;
    let steps: Vec<Step> = sqlx::query_as(
        "SELECT t.at, t.action, t.from_state, t.to_state, t.message_id, m.sender, m.recipients,
                t.actor
         FROM transitions t LEFT JOIN messages m ON m.id = t.message_id
         WHERE t.exchange_id = $1 ORDER BY t.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let deadlines: Vec<DeadlineEvent> = sqlx::query_as(
        "SELECT deadline, kind, due_at, authority, fired_at FROM deadline_events
         WHERE exchange_id = $1 ORDER BY due_at",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Detail {
        head,
        visibility,
        children,
        steps,
        deadlines,
    })
}

/// The exchange's messages, as received, in the order the workflow took
/// them. Their content: the caller records the view.
#[instrument(skip_all, fields(exchange = %id))]
pub(crate) async fn messages(pool: &PgPool, id: Uuid) -> Result<Vec<Message>, sqlx::Error> {
    let mut messages: Vec<Message> = sqlx::query_as(
        "SELECT m.id, m.message_type, m.sender, m.received_at, m.raw
         FROM messages m JOIN transitions t ON t.message_id = m.id AND t.exchange_id = m.exchange_id
         WHERE m.exchange_id = $1 ORDER BY t.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    for m in &mut messages {
        crate::at_rest::open_in_place(&mut m.raw);
    }
    Ok(messages)
}

//! What coordinators and operators do with 1:N exchanges over HTTP: national
//! validation of outgoing alerts (gates, approve or refuse), the
//! per-recipient delivery view, broadcast subscribers, and reminders to
//! recipients that have not acknowledged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use imi_broker::Permissions;
use imi_schemas::catalogue::VALIDATION_STATE;
use imi_schemas::ids::{AreaCode, CountryCode, EndpointId};
use imi_schemas::protocol::{
    subscriber_queue_prefix, DeadlineNotice, ALERTS_EXCHANGE, TYPE_DEADLINE,
};
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::HubError;
use crate::pipeline::{publish_batch, PipelineContext};
use crate::registry::accounts::{Account, AccountRole};
use crate::registry::regex_escape;
use crate::registry::workflow::{Credentials, RegistryContext, WorkflowError};
use crate::store::{self, fanout, OutboxKind, OutboxRow};

/// May `account` act for `country` in `area` (operator, or a coordinator of
/// the country whose delegation covers the area)?
fn coordinates(account: &Account, country: &str, area: &str) -> Result<(), WorkflowError> {
    match account.role {
        AccountRole::Operator => Ok(()),
        AccountRole::Auditor => Err(WorkflowError::Forbidden(
            "auditors have read-only access".into(),
        )),
        AccountRole::Coordinator => {
            let same_country = account.country.map(|c| c.as_str() == country) == Some(true);
            let area_ok = account.area.as_ref().is_none_or(|a| a.as_str() == area);
            if same_country && area_ok && account.region.is_none() {
                Ok(())
            } else {
                Err(WorkflowError::Forbidden(format!(
                    "only a coordinator of {country} for area `{area}` may do this"
                )))
            }
        }
    }
}

/// Turns national validation of outgoing 1:N messages on or off for a
/// country and area.
#[instrument(skip_all, fields(country = %country, area = %area, on))]
pub async fn set_gate(
    ctx: &RegistryContext,
    account: &Account,
    country: &CountryCode,
    area: &AreaCode,
    on: bool,
) -> Result<(), WorkflowError> {
    coordinates(account, country.as_str(), area.as_str())?;
    if on {
        sqlx::query(
            "INSERT INTO validation_gates (country, area, account_id) VALUES ($1, $2, $3)
             ON CONFLICT (country, area) DO UPDATE SET account_id = $3, set_at = now()",
        )
        .bind(country.as_str())
        .bind(area.as_str())
        .bind(account.id)
        .execute(&ctx.pool)
        .await?;
    } else {
        sqlx::query("DELETE FROM validation_gates WHERE country = $1 AND area = $2")
            .bind(country.as_str())
            .bind(area.as_str())
            .execute(&ctx.pool)
            .await?;
    }
    // The pipeline reads the gates in each batch's transaction: every hub
    // instance applies the change at once.
    Ok(())
}

/// A 1:N exchange waiting for validation, for the coordinators' list.
#[derive(Debug, Serialize)]
pub struct PendingValidation {
    pub exchange_id: Uuid,
    pub procedure: String,
    pub originator: String,
    pub recipients: usize,
    pub since: DateTime<Utc>,
}

pub async fn pending_validations(
    pool: &PgPool,
    account: &Account,
) -> Result<Vec<PendingValidation>, WorkflowError> {
    let country = match account.role {
        AccountRole::Coordinator => account.country.map(|c| c.as_str().to_owned()),
        _ => None,
    };
    let rows: Vec<(Uuid, String, String, i32, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, procedure, requester, coalesce(cardinality(recipients), 0), updated_at
         FROM exchanges
         WHERE state = $1 AND recipients IS NOT NULL AND ($2::text IS NULL OR left(requester, 2) = $2)
         ORDER BY updated_at",
    )
    .bind(VALIDATION_STATE)
    .bind(country)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(exchange_id, procedure, originator, recipients, since)| PendingValidation {
                exchange_id,
                procedure,
                originator,
                recipients: recipients as usize,
                since,
            },
        )
        .collect())
}

/// The originator's national coordinator approves (the exchange is released
/// to every recipient, held messages in order) or refuses (it goes back to
/// `draft` and the originator is told why).
#[instrument(skip_all, fields(exchange = %exchange, approve, account = %account.name))]
pub async fn decide_validation(
    ctx: &RegistryContext,
    publisher: &imi_broker::Publisher,
    account: &Account,
    exchange: Uuid,
    approve: bool,
    reason: Option<String>,
) -> Result<String, WorkflowError> {
    let mut tx = ctx.pool.begin().await?;
    let row: Option<(String, String, String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT procedure, state, requester, recipients FROM exchanges WHERE id = $1 FOR UPDATE",
    )
    .bind(exchange)
    .fetch_optional(&mut *tx)
    .await?;
    let (procedure, state, originator, recipients) =
        row.ok_or_else(|| WorkflowError::NotFound(format!("no exchange {exchange}")))?;
    let catalogue = ctx.catalogue.current();
    let code = imi_schemas::ids::ProcedureCode::try_from(procedure.as_str())
        .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
    let proc = catalogue
        .procedure(&code)
        .ok_or_else(|| WorkflowError::Invalid(format!("{procedure} left the catalogue")))?;
    coordinates(account, &originator[..2], proc.area.as_str())?;
    if state != VALIDATION_STATE {
        return Err(WorkflowError::Conflict(format!(
            "exchange {exchange} is `{state}`, not `{VALIDATION_STATE}`"
        )));
    }
    // Approval moves on to where the broadcasting action leads; refusal back
    // to where a draft waits.
    let broadcaster = proc.actions().find(|a| a.broadcasts);
    let draft = proc
        .actions()
        .find(|a| a.opens && !a.broadcasts)
        .map(|a| a.to.clone());
    let next = if approve {
        broadcaster.map(|a| a.to.clone())
    } else {
        draft
    }
    .ok_or_else(|| {
        WorkflowError::Invalid(format!("{procedure} has no state to move this exchange to"))
    })?;
    let registry = ctx.registry.current();
    let mut rows = Vec::new();
    let mut deliveries = Vec::new();
    if approve {
        let messages = fanout::exchange_messages(&mut tx, exchange, None).await?;
        let broadcast = (proc.area.to_string(), procedure.clone());
        (rows, deliveries) = fanout::replay_rows(
            &messages,
            exchange,
            recipients.as_deref().unwrap_or_default(),
            "",
            Some(&broadcast),
            &registry,
        )
        .map_err(|a| WorkflowError::Conflict(format!("recipient `{a}` is no longer registered")))?;
    }
    // The originator is told either way.
    if let Some(origin) = registry.authority(&originator) {
        let notice = serde_json::json!({
            "exchange_id": exchange,
            "procedure": procedure,
            "decision": if approve { "approved" } else { "refused" },
            "state": next,
            "reason": reason,
            "by": account.name,
        });
        rows.push(OutboxRow {
            id: Uuid::new_v4(),
            kind: OutboxKind::Notice,
            source_message_id: exchange.to_string(),
            endpoint: origin.endpoint.to_string(),
            recipients: vec![originator.clone()],
            exchange_id: Some(exchange),
            message_type: TYPE_VALIDATION.to_owned(),
            headers: Default::default(),
            body: serde_json::to_vec(&notice).expect("notice serializes"),
        });
    }
    sqlx::query(
        "UPDATE exchanges SET state = $2, updated_at = now(),
                released_at = CASE WHEN $3 THEN now() ELSE released_at END
         WHERE id = $1",
    )
    .bind(exchange)
    .bind(&next)
    .bind(approve)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO transitions (exchange_id, message_id, action, from_state, to_state, actor)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(exchange)
    .bind(Uuid::new_v4())
    .bind(if approve {
        "validate"
    } else {
        "refuse-validation"
    })
    .bind(&state)
    .bind(&next)
    .bind(&account.name)
    .execute(&mut *tx)
    .await?;
    let batch_id = store::write_batch(&mut tx, "api", &rows).await?;
    fanout::insert_deliveries(&mut tx, &deliveries).await?;
    tx.commit().await?;
    // Published here for speed; the relay would do it after a crash.
    publish_batch::<WorkflowError>(publisher, &ctx.pool, batch_id, rows).await?;
    Ok(next)
}

/// AMQP `type` of the notice telling an originator its coordinator refused to
/// validate an outgoing 1:N message.
pub const TYPE_VALIDATION: &str = "imi.validation";

/// One recipient's copy of a message, for the delivery view.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub authority: String,
    pub endpoint: String,
    pub message_id: Uuid,
    /// `queued`, `routed` (broker-confirmed) or `acknowledged`.
    pub state: String,
    pub routed_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub reminded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct FieldDeadlineView {
    pub deadline: String,
    pub field_date: chrono::NaiveDate,
    pub due_at: DateTime<Utc>,
    /// Released after it was due (or still held past it).
    pub late: bool,
}

#[derive(Debug, Serialize)]
pub struct ExchangeDeliveries {
    pub exchange_id: Uuid,
    pub procedure: String,
    pub state: String,
    pub originator: String,
    pub released_at: Option<DateTime<Utc>>,
    /// Every recipient, frozen when the exchange opened (plus disseminations).
    pub recipients: Vec<String>,
    pub deadlines: Vec<FieldDeadlineView>,
    pub counts: Counts,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub queued: usize,
    pub routed: usize,
    pub acknowledged: usize,
}

/// Who has and has not acknowledged, per copy: for the operator and
/// auditors (all), coordinators of the originator's country (all), and
/// coordinators of a recipient country (their country's rows).
#[instrument(skip_all, fields(exchange = %exchange))]
pub async fn deliveries(
    pool: &PgPool,
    account: &Account,
    exchange: Uuid,
) -> Result<ExchangeDeliveries, WorkflowError> {
    type Head = (
        String,
        String,
        String,
        Option<DateTime<Utc>>,
        Option<Vec<String>>,
    );
    let head: Option<Head> = sqlx::query_as(
        "SELECT procedure, state, requester, released_at, recipients FROM exchanges WHERE id = $1",
    )
    .bind(exchange)
    .fetch_optional(pool)
    .await?;
    let (procedure, state, originator, released_at, recipients) =
        head.ok_or_else(|| WorkflowError::NotFound(format!("no exchange {exchange}")))?;
    let recipients = recipients
        .ok_or_else(|| WorkflowError::Invalid(format!("exchange {exchange} is 1:1, not 1:N")))?;
    // A coordinator of the originator's country sees everything; of a
    // recipient country, its country's rows once the exchange was released
    // (a held draft is nobody else's business); of any other, nothing.
    let only_country = match account.role {
        AccountRole::Coordinator => {
            let mine = account
                .country
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default();
            if mine.is_empty() {
                return Err(WorkflowError::Forbidden(
                    "a coordinator without a country".into(),
                ));
            } else if originator.get(..2) == Some(mine.as_str()) {
                None
            } else if released_at.is_some() && recipients.iter().any(|r| r.starts_with(&mine)) {
                Some(mine)
            } else {
                return Err(WorkflowError::Forbidden(format!(
                    "no authority of {mine} is a party to exchange {exchange}"
                )));
            }
        }
        _ => None,
    };
    type Row = (
        String,
        String,
        Uuid,
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT authority_id, endpoint_id, outbox_id, state, routed_at, acknowledged_at, reminded_at
         FROM delivery_status
         WHERE exchange_id = $1 AND ($2::text IS NULL OR left(authority_id, 2) = $2)
         ORDER BY message_id, authority_id",
    )
    .bind(exchange)
    .bind(&only_country)
    .fetch_all(pool)
    .await?;
    let deadlines: Vec<(String, chrono::NaiveDate, DateTime<Utc>, bool)> = sqlx::query_as(
        "SELECT f.deadline, f.field_date, f.due_at, coalesce(e.released_at, now()) > f.due_at
         FROM field_deadlines f JOIN exchanges e ON e.id = f.exchange_id WHERE f.exchange_id = $1",
    )
    .bind(exchange)
    .fetch_all(pool)
    .await?;
    let mut counts = Counts::default();
    let deliveries: Vec<DeliveryView> = rows
        .into_iter()
        .map(
            |(authority, endpoint, message_id, state, routed_at, acknowledged_at, reminded_at)| {
                match state.as_str() {
                    "acknowledged" => counts.acknowledged += 1,
                    "routed" => counts.routed += 1,
                    _ => counts.queued += 1,
                }
                DeliveryView {
                    authority,
                    endpoint,
                    message_id,
                    state,
                    routed_at,
                    acknowledged_at,
                    reminded_at,
                }
            },
        )
        .collect();
    Ok(ExchangeDeliveries {
        exchange_id: exchange,
        procedure,
        state,
        originator,
        released_at,
        recipients: match &only_country {
            Some(c) => recipients
                .into_iter()
                .filter(|r| r.starts_with(c.as_str()))
                .collect(),
            None => recipients,
        },
        deadlines: deadlines
            .into_iter()
            .map(|(deadline, field_date, due_at, late)| FieldDeadlineView {
                deadline,
                field_date,
                due_at,
                late,
            })
            .collect(),
        counts,
        deliveries,
    })
}

/// The broker permissions of a subscriber: declare, bind and read its own
/// `imi.sub.<endpoint>.*` queues, read (bind to) `imi.alerts`, publish
/// nowhere; topic permissions limit its binding keys to its areas.
pub fn subscriber_permissions(endpoint: &EndpointId) -> Permissions {
    let own = format!(
        "^{}.*",
        regex_escape(&subscriber_queue_prefix(endpoint.as_str()))
    );
    Permissions {
        configure: own.clone(),
        write: own.clone(),
        read: format!("{own}|^{}$", regex_escape(ALERTS_EXCHANGE)),
    }
}

/// Registers a broadcast subscriber for some areas and provisions its
/// broker user; returns its credentials (shown once).
#[instrument(skip_all, fields(endpoint = %endpoint, country = %country))]
pub async fn create_subscriber(
    ctx: &RegistryContext,
    account: &Account,
    endpoint: &EndpointId,
    country: &CountryCode,
    areas: &[AreaCode],
) -> Result<Credentials, WorkflowError> {
    if areas.is_empty() {
        return Err(WorkflowError::Invalid("name at least one area".into()));
    }
    let catalogue = ctx.catalogue.current();
    for area in areas {
        if !catalogue.areas().any(|a| &a.code == area) {
            return Err(WorkflowError::Invalid(format!(
                "`{area}` is not an area of the catalogue"
            )));
        }
        coordinates(account, country.as_str(), area.as_str())?;
    }
    let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM endpoints WHERE id = $1")
        .bind(endpoint.as_str())
        .fetch_optional(&ctx.pool)
        .await?;
    if exists.is_some() {
        return Err(WorkflowError::Conflict(format!(
            "endpoint `{endpoint}` exists"
        )));
    }
    let names: Vec<String> = areas.iter().map(|a| a.to_string()).collect();
    // The broker user first: if provisioning fails nothing is recorded and
    // the call can simply be repeated.
    let password = crate::registry::workflow::new_password();
    ctx.management
        .put_user(endpoint.as_str(), &password)
        .await?;
    ctx.management
        .set_permissions(
            &ctx.vhost,
            endpoint.as_str(),
            &subscriber_permissions(endpoint),
        )
        .await?;
    let areas_regex = names
        .iter()
        .map(|a| regex_escape(a))
        .collect::<Vec<_>>()
        .join("|");
    ctx.management
        .set_topic_permissions(
            &ctx.vhost,
            endpoint.as_str(),
            ALERTS_EXCHANGE,
            "^$",
            &format!("^({areas_regex})\\."),
        )
        .await?;
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("INSERT INTO endpoints (id, status) VALUES ($1, 'active')")
        .bind(endpoint.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO subscribers (endpoint_id, country, areas) VALUES ($1, $2, $3)")
        .bind(endpoint.as_str())
        .bind(country.as_str())
        .bind(&names)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    info!(areas = ?names, "Subscriber registered.");
    Ok(Credentials {
        endpoint: endpoint.clone(),
        password,
        vhost: ctx.vhost.clone(),
    })
}

/// Reminds recipients that have not acknowledged a routed 1:N copy within
/// `after`: one `imi.deadline` notice (deadline `acknowledge`) per copy and
/// authority, once.
#[derive(Clone)]
pub struct AckReminders {
    pub(crate) ctx: PipelineContext,
    pub(crate) clock: std::sync::Arc<dyn Clock>,
    pub(crate) after: Duration,
}

impl AckReminders {
    #[instrument(skip_all)]
    pub async fn check_once(&self) -> Result<usize, HubError> {
        let now = self.clock.now();
        let after = self.after.as_secs_f64();
        let mut tx = self.ctx.pool.begin().await?;
        type Row = (Uuid, String, Uuid, String, String, DateTime<Utc>);
        let rows: Vec<Row> = sqlx::query_as(
            "UPDATE deliveries d SET reminded_at = $1
             FROM outbox o, batches b, exchanges e
             WHERE o.id = d.outbox_id AND b.id = o.batch_id AND e.id = d.exchange_id
               AND d.acknowledged_at IS NULL AND d.reminded_at IS NULL
               AND b.published_at IS NOT NULL
               AND b.published_at + make_interval(secs => $2) <= $1
             RETURNING d.outbox_id, d.authority_id, d.exchange_id, d.endpoint_id, e.procedure,
                       b.published_at + make_interval(secs => $2)",
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
            .iter()
            .map(
                |(copy, authority, exchange_id, endpoint, procedure, due_at)| {
                    let notice = DeadlineNotice {
                        exchange_id: *exchange_id,
                        procedure: procedure.clone(),
                        deadline: "acknowledge".into(),
                        kind: "reminder".into(),
                        due_at: *due_at,
                        authority: authority.clone(),
                    };
                    let mut name = copy.as_bytes().to_vec();
                    name.extend_from_slice(authority.as_bytes());
                    name.extend_from_slice(b"ack-reminder");
                    OutboxRow {
                        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
                        kind: OutboxKind::Notice,
                        source_message_id: copy.to_string(),
                        endpoint: endpoint.clone(),
                        recipients: vec![authority.clone()],
                        exchange_id: Some(*exchange_id),
                        message_type: TYPE_DEADLINE.to_owned(),
                        headers: Default::default(),
                        body: serde_json::to_vec(&notice).expect("notice serializes"),
                    }
                },
            )
            .collect();
        let batch_id = store::write_batch(&mut tx, &self.ctx.instance, &outbox).await?;
        tx.commit().await?;
        let n = outbox.len();
        publish_batch::<HubError>(&self.ctx.publishers[0], &self.ctx.pool, batch_id, outbox)
            .await?;
        info!(reminded = n, "Acknowledgement reminders sent.");
        Ok(n)
    }

    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        loop {
            if let Err(error) = self.check_once().await {
                warn!(%error, "Acknowledgement reminder pass failed; retrying at the next tick.");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

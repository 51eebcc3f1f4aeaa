//! The registration workflow: an authority applies; its coordinator (national,
//! or delegated for the area) approves and grants procedures, or refuses;
//! approval provisions the endpoint's broker user. Endpoint credentials are
//! shown once and can be rotated; suspension revokes them and closes the
//! endpoint's connections. Every step is recorded with who and when.

use std::collections::BTreeMap;

use imi_broker::{Broker, BrokerError, Management, QueueType, UserLimits};
use imi_schemas::ids::{AuthorityId, EndpointId, ProcedureCode};
use imi_schemas::protocol::ALERTS_EXCHANGE;
use sqlx::PgPool;
use thiserror::Error;
use tracing::{info, instrument};
use uuid::Uuid;

use super::seed::{endpoint_permissions, regex_escape, subscriber_permissions};
use super::SharedRegistry;
use crate::accounts::Account;
use crate::audit_log::{self, NewEntry};
use crate::catalogue::SharedCatalogue;
use crate::scope::{Denied, Scope, Target};
use crate::topology;

#[derive(Debug, Error)]
pub(crate) enum WorkflowError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("broker provisioning failed: {0}")]
    Broker(#[from] BrokerError),
}

impl From<Denied> for WorkflowError {
    fn from(denied: Denied) -> Self {
        WorkflowError::Forbidden(denied.to_string())
    }
}

/// What the workflow needs from the running hub.
#[derive(Clone)]
pub(crate) struct RegistryContext {
    pub pool: PgPool,
    pub management: Management,
    pub broker: Broker,
    pub vhost: String,
    pub queue_type: QueueType,
    /// Set on every endpoint's broker user it creates.
    pub endpoint_limits: UserLimits,
    pub registry: SharedRegistry,
    pub catalogue: SharedCatalogue,
}

/// An application, parsed at the API edge.
#[derive(Debug, Clone)]
pub(crate) struct Application {
    pub authority: AuthorityId,
    pub names: BTreeMap<String, String>,
    pub competences: BTreeMap<String, String>,
    pub contact: Option<String>,
    /// The region of its country, for regional coordinators.
    pub region: Option<String>,
    pub endpoint: EndpointId,
    pub procedures: Vec<ProcedureCode>,
}

/// Credentials of an endpoint's broker user, shown once.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub endpoint: EndpointId,
    pub password: String,
    pub vhost: String,
}

pub(crate) fn new_password() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

async fn record(
    pool: &PgPool,
    account: Option<&Account>,
    action: &str,
    authority: Option<&str>,
    endpoint: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO registry_events (account_id, action, authority_id, endpoint_id, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(account.map(|a| a.id))
    .bind(action)
    .bind(authority)
    .bind(endpoint)
    .bind(&detail)
    .execute(&mut *tx)
    .await?;
    // The same step in the one tamper-evident log.
    audit_log::append(
        &mut tx,
        NewEntry {
            account_id: account.map(|a| a.id),
            account_name: account.map_or("imi-hub", |a| a.name.as_str()),
            source: "registry",
            action,
            subject: authority.or(endpoint),
            detail,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An authority applies. It stays pending (unusable, not routed to) until
/// approved. The endpoint it names is created pending if new.
#[instrument(skip_all, fields(authority = %app.authority))]
pub(crate) async fn apply(ctx: &RegistryContext, app: &Application) -> Result<(), WorkflowError> {
    let catalogue = ctx.catalogue.current();
    if let Some(p) = app
        .procedures
        .iter()
        .find(|p| catalogue.procedure(p).is_none())
    {
        return Err(WorkflowError::Invalid(format!(
            "`{p}` is not a procedure of the catalogue"
        )));
    }
    if app.names.is_empty() {
        return Err(WorkflowError::Invalid(
            "an authority needs a name in at least one language".into(),
        ));
    }
    let mut tx = ctx.pool.begin().await?;
    sqlx::query(
        "INSERT INTO endpoints (id, status) VALUES ($1, 'pending') ON CONFLICT (id) DO NOTHING",
    )
    .bind(app.endpoint.as_str())
    .execute(&mut *tx)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO authorities (id, country, names, competences, contact, status, endpoint_id,
                                  requested_procedures, region)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(app.authority.as_str())
    .bind(app.authority.country().as_str())
    .bind(serde_json::to_value(&app.names).unwrap_or_default())
    .bind(serde_json::to_value(&app.competences).unwrap_or_default())
    .bind(&app.contact)
    .bind(app.endpoint.as_str())
    .bind(
        app.procedures
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect::<Vec<_>>(),
    )
    .bind(&app.region)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(WorkflowError::Conflict(format!(
            "authority `{}` is already registered",
            app.authority
        )));
    }
    tx.commit().await?;
    // Known from now on, though pending: a message to it is refused as not
    // authorised rather than as unknown. (Other hub instances see it at
    // their next registry refresh.)
    ctx.registry.reload(&ctx.pool).await?;
    let detail = serde_json::json!({"procedures": app.procedures.iter().map(|p| p.as_str()).collect::<Vec<_>>()});
    record(
        &ctx.pool,
        None,
        "applied",
        Some(app.authority.as_str()),
        Some(app.endpoint.as_str()),
        detail,
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuthorityRow {
    country: String,
    region: Option<String>,
    status: String,
    endpoint: String,
    endpoint_status: String,
}

async fn authority_row(pool: &PgPool, id: &str) -> Result<AuthorityRow, WorkflowError> {
    let row: Option<AuthorityRow> = sqlx::query_as(
        "SELECT a.country, a.region, a.status, a.endpoint_id AS endpoint, e.status AS endpoint_status
         FROM authorities a JOIN endpoints e ON e.id = a.endpoint_id
         WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| WorkflowError::NotFound(format!("no authority `{id}`")))
}

/// May `account` decide on an authority of `country` (and `region`) for
/// these procedures? Operators may; a coordinator only in its own country
/// and, if delegated, only in its region and for procedures of its area;
/// auditors never.
fn may_decide(
    account: &Account,
    country: &str,
    region: Option<&str>,
    procedures: &[ProcedureCode],
    ctx: &RegistryContext,
) -> Result<(), WorkflowError> {
    let scope = Scope::of(account);
    let target = Target {
        country,
        area: None,
        region,
    };
    scope.may_act(target)?;
    let catalogue = ctx.catalogue.current();
    for p in procedures {
        // A procedure that left the catalogue is in no coordinator's area.
        let area = catalogue.procedure(p).map_or("", |x| x.area.as_str());
        scope.may_act(Target {
            area: Some(area),
            ..target
        })?;
    }
    Ok(())
}

/// Approves an authority and grants it procedures (those it applied for when
/// none are given). If its endpoint was pending, the endpoint is provisioned
/// and its credentials returned (once).
#[instrument(skip_all, fields(authority = %authority, account = %account.name))]
pub(crate) async fn approve(
    ctx: &RegistryContext,
    account: &Account,
    authority: &str,
    procedures: Option<Vec<ProcedureCode>>,
) -> Result<Option<Credentials>, WorkflowError> {
    let row = authority_row(&ctx.pool, authority).await?;
    let procedures = match procedures {
        Some(p) => p,
        None => {
            let requested: Vec<String> = sqlx::query_scalar(
                "SELECT unnest(requested_procedures) FROM authorities WHERE id = $1",
            )
            .bind(authority)
            .fetch_all(&ctx.pool)
            .await?;
            requested
                .iter()
                .filter_map(|p| ProcedureCode::try_from(p.as_str()).ok())
                .collect()
        }
    };
    may_decide(
        account,
        &row.country,
        row.region.as_deref(),
        &procedures,
        ctx,
    )?;
    if row.status == "suspended" || row.status == "refused" {
        return Err(WorkflowError::Conflict(format!(
            "authority `{authority}` is {}",
            row.status
        )));
    }
    let endpoint = EndpointId::try_from(row.endpoint.as_str())
        .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
    if row.status == "active" {
        return grant(ctx, account, authority, &endpoint, &procedures).await;
    }
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("UPDATE authorities SET status = 'active' WHERE id = $1")
        .bind(authority)
        .execute(&mut *tx)
        .await?;
    for p in &procedures {
        sqlx::query("INSERT INTO authority_procedures VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(authority)
            .bind(p.as_str())
            .execute(&mut *tx)
            .await?;
    }
    let provision = row.endpoint_status == "pending";
    if provision {
        sqlx::query("UPDATE endpoints SET status = 'active' WHERE id = $1")
            .bind(endpoint.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let credentials = if provision {
        Some(provision_endpoint(ctx, &endpoint).await?)
    } else {
        None
    };
    let detail = serde_json::json!({
        "procedures": procedures.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "endpoint_provisioned": provision,
    });
    record(
        &ctx.pool,
        Some(account),
        "approved",
        Some(authority),
        Some(endpoint.as_str()),
        detail,
    )
    .await?;
    ctx.registry.reload(&ctx.pool).await?;
    info!(provisioned = provision, "Authority approved.");
    Ok(credentials)
}

/// Approving an authority that is already active grants the procedures it
/// does not have yet (recorded as `granted`); with none new, it is a
/// conflict and nothing is recorded.
async fn grant(
    ctx: &RegistryContext,
    account: &Account,
    authority: &str,
    endpoint: &EndpointId,
    procedures: &[ProcedureCode],
) -> Result<Option<Credentials>, WorkflowError> {
    let names: Vec<&str> = procedures.iter().map(|p| p.as_str()).collect();
    let added: Vec<String> = sqlx::query_scalar(
        "INSERT INTO authority_procedures SELECT $1, p FROM unnest($2::text[]) AS p
         ON CONFLICT DO NOTHING RETURNING procedure",
    )
    .bind(authority)
    .bind(&names)
    .fetch_all(&ctx.pool)
    .await?;
    if added.is_empty() {
        return Err(WorkflowError::Conflict(format!(
            "authority `{authority}` is already active and registered for these procedures"
        )));
    }
    record(
        &ctx.pool,
        Some(account),
        "granted",
        Some(authority),
        Some(endpoint.as_str()),
        serde_json::json!({"procedures": added}),
    )
    .await?;
    ctx.registry.reload(&ctx.pool).await?;
    info!(procedures = added.len(), "Procedures granted.");
    Ok(None)
}

/// Creates (or resets) `endpoint`'s broker user with a new password, the
/// endpoints' limits and `permissions`; returns the password.
async fn broker_user(
    ctx: &RegistryContext,
    endpoint: &EndpointId,
    permissions: &imi_broker::Permissions,
) -> Result<String, WorkflowError> {
    let password = new_password();
    let user = endpoint.as_str();
    ctx.management.put_user(user, &password).await?;
    ctx.management
        .set_user_limits(user, ctx.endpoint_limits)
        .await?;
    ctx.management
        .set_permissions(&ctx.vhost, user, permissions)
        .await?;
    Ok(password)
}

/// Creates (or resets) the endpoint's broker user with least privilege and
/// declares its inbox.
async fn provision_endpoint(
    ctx: &RegistryContext,
    endpoint: &EndpointId,
) -> Result<Credentials, WorkflowError> {
    let password = broker_user(ctx, endpoint, &endpoint_permissions(endpoint)).await?;
    ctx.broker
        .declare(topology::inboxes(
            ctx.queue_type,
            std::iter::once(endpoint.as_str()),
        ))
        .await?;
    Ok(Credentials {
        endpoint: endpoint.clone(),
        password,
        vhost: ctx.vhost.clone(),
    })
}

/// Creates (or resets) a broadcast subscriber's broker user: its own
/// queues, binding to `imi.alerts` with its areas' keys only; returns the
/// password.
pub(crate) async fn provision_subscriber(
    ctx: &RegistryContext,
    endpoint: &EndpointId,
    areas: &[String],
) -> Result<String, WorkflowError> {
    let password = broker_user(ctx, endpoint, &subscriber_permissions(endpoint)).await?;
    let areas_regex = areas
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
    Ok(password)
}

/// Refuses an application.
#[instrument(skip_all, fields(authority = %authority, account = %account.name))]
pub(crate) async fn refuse(
    ctx: &RegistryContext,
    account: &Account,
    authority: &str,
    reason: &str,
) -> Result<(), WorkflowError> {
    let row = authority_row(&ctx.pool, authority).await?;
    may_decide(account, &row.country, row.region.as_deref(), &[], ctx)?;
    if row.status != "pending" {
        return Err(WorkflowError::Conflict(format!(
            "authority `{authority}` is {}, not pending",
            row.status
        )));
    }
    sqlx::query("UPDATE authorities SET status = 'refused' WHERE id = $1")
        .bind(authority)
        .execute(&ctx.pool)
        .await?;
    record(
        &ctx.pool,
        Some(account),
        "refused",
        Some(authority),
        Some(&row.endpoint),
        serde_json::json!({"reason": reason}),
    )
    .await?;
    Ok(())
}

/// An endpoint's status and the country of the authorities it acts for.
#[derive(sqlx::FromRow)]
struct EndpointCountry {
    status: String,
    country: Option<String>,
}

/// The country of the authorities an endpoint acts for (all of one country,
/// or an operator decides).
async fn endpoint_country(
    pool: &PgPool,
    endpoint: &str,
) -> Result<(String, String), WorkflowError> {
    let row: Option<EndpointCountry> = sqlx::query_as(
        "SELECT e.status, min(a.country) AS country FROM endpoints e LEFT JOIN authorities a ON a.endpoint_id = e.id
         WHERE e.id = $1 GROUP BY e.id",
    )
    .bind(endpoint)
    .fetch_optional(pool)
    .await?;
    let row = row.ok_or_else(|| WorkflowError::NotFound(format!("no endpoint `{endpoint}`")))?;
    Ok((row.status, row.country.unwrap_or_default()))
}

/// New credentials for an active endpoint; the old password stops working.
#[instrument(skip_all, fields(endpoint = %endpoint, account = %account.name))]
pub(crate) async fn rotate(
    ctx: &RegistryContext,
    account: &Account,
    endpoint: &str,
) -> Result<Credentials, WorkflowError> {
    let (status, mut country) = endpoint_country(&ctx.pool, endpoint).await?;
    // A broadcast subscriber acts for no authority; its country is its own.
    let subscriber: Option<(String, Vec<String>)> =
        sqlx::query_as("SELECT country, areas FROM subscribers WHERE endpoint_id = $1")
            .bind(endpoint)
            .fetch_optional(&ctx.pool)
            .await?;
    let subscriber_areas = subscriber.map(|(c, areas)| {
        country = c;
        areas
    });
    may_decide(account, &country, None, &[], ctx)?;
    if status != "active" {
        return Err(WorkflowError::Conflict(format!(
            "endpoint `{endpoint}` is {status}"
        )));
    }
    let id = EndpointId::try_from(endpoint).map_err(|e| WorkflowError::Invalid(e.to_string()))?;
    // A new password would leave the connections opened with the old one
    // open: the user is deleted (RabbitMQ closes every connection of it at
    // once) and made again with the new password and the same rights. The
    // national system reconnects with the new password.
    ctx.management.delete_user(id.as_str()).await?;
    let credentials = match subscriber_areas {
        Some(areas) => Credentials {
            password: provision_subscriber(ctx, &id, &areas).await?,
            endpoint: id.clone(),
            vhost: ctx.vhost.clone(),
        },
        None => provision_endpoint(ctx, &id).await?,
    };
    record(
        &ctx.pool,
        Some(account),
        "credentials_rotated",
        None,
        Some(endpoint),
        serde_json::json!({}),
    )
    .await?;
    Ok(credentials)
}

/// Suspends an endpoint: its broker user is deleted, its open connections
/// closed, and nothing is routed from or to it.
#[instrument(skip_all, fields(endpoint = %endpoint, account = %account.name))]
pub(crate) async fn suspend(
    ctx: &RegistryContext,
    account: &Account,
    endpoint: &str,
) -> Result<(), WorkflowError> {
    let (_, country) = endpoint_country(&ctx.pool, endpoint).await?;
    may_decide(account, &country, None, &[], ctx)?;
    sqlx::query("UPDATE endpoints SET status = 'suspended' WHERE id = $1")
        .bind(endpoint)
        .execute(&ctx.pool)
        .await?;
    ctx.registry.reload(&ctx.pool).await?;
    // Deleting the user makes RabbitMQ close every connection of it at once
    // and refuse new ones. (How many it closed is not known: the management
    // API lists a new connection only seconds later.)
    ctx.management.delete_user(endpoint).await?;
    record(
        &ctx.pool,
        Some(account),
        "suspended",
        None,
        Some(endpoint),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

/// Suspends an authority: nothing is routed from or to it any more.
#[instrument(skip_all, fields(authority = %authority, account = %account.name))]
pub(crate) async fn suspend_authority(
    ctx: &RegistryContext,
    account: &Account,
    authority: &str,
    reason: &str,
) -> Result<(), WorkflowError> {
    let row = authority_row(&ctx.pool, authority).await?;
    may_decide(account, &row.country, row.region.as_deref(), &[], ctx)?;
    sqlx::query("UPDATE authorities SET status = 'suspended' WHERE id = $1")
        .bind(authority)
        .execute(&ctx.pool)
        .await?;
    ctx.registry.reload(&ctx.pool).await?;
    record(
        &ctx.pool,
        Some(account),
        "suspended",
        Some(authority),
        Some(&row.endpoint),
        serde_json::json!({"reason": reason}),
    )
    .await?;
    Ok(())
}

/// A recorded step of the registration workflow.
#[derive(sqlx::FromRow)]
pub(crate) struct Event {
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    /// The account that took it (none for an application).
    pub(crate) by: Option<String>,
    pub(crate) action: String,
    pub(crate) detail: serde_json::Value,
}

/// The recorded steps for an authority (and its endpoint), oldest first.
pub(crate) async fn events(pool: &PgPool, authority: &str) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(
        "SELECT ev.at, ac.name AS by, ev.action, ev.detail FROM registry_events ev LEFT JOIN accounts ac ON ac.id = ev.account_id
         WHERE ev.authority_id = $1
            OR ev.endpoint_id = (SELECT endpoint_id FROM authorities WHERE id = $1) AND ev.authority_id IS NULL
         ORDER BY ev.id",
    )
    .bind(authority)
    .fetch_all(pool)
    .await
}

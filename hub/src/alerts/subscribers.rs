//! Broadcast subscribers: an endpoint with its own queues bound to the
//! `imi.alerts` topic exchange, limited by the broker to its areas' keys.

use imi_schemas::ids::{AreaCode, CountryCode, EndpointId};
use tracing::{info, instrument};

use crate::accounts::Account;
use crate::registry::workflow::{
    provision_subscriber, Credentials, RegistryContext, WorkflowError,
};
use crate::scope::{Scope, Target};

/// Registers a broadcast subscriber for some areas and provisions its
/// broker user; returns its credentials (shown once).
#[instrument(skip_all, fields(endpoint = %endpoint, country = %country))]
pub(crate) async fn create_subscriber(
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
        Scope::of(account).may_act(Target {
            country: country.as_str(),
            area: Some(area.as_str()),
            region: None,
        })?;
    }
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM endpoints WHERE id = $1")
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
    let password = provision_subscriber(ctx, endpoint, &names).await?;
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

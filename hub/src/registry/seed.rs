//! The seed file: endpoints and authorities registered at start, with broker
//! users provisioned for each endpoint. (The full registry workflow replaces
//! this later; the seed stays for demos and tests.)

use std::collections::BTreeMap;

use imi_broker::{Management, Permissions};
use imi_schemas::ids::{AuthorityId, EndpointId, ProcedureCode};
use imi_schemas::protocol::{subscriber_queue_prefix, ALERTS_EXCHANGE};
use serde::Deserialize;
use sqlx::PgPool;
use tracing::{info, instrument};

use crate::error::{HubError, SeedError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeedFile {
    pub endpoints: Vec<SeedEndpoint>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeedEndpoint {
    pub id: String,
    /// The broker password the endpoint connects with.
    pub password: String,
    pub authorities: Vec<SeedAuthority>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeedAuthority {
    pub id: String,
    pub country: String,
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// What the authority is competent for, per language (searchable).
    #[serde(default)]
    pub competences: BTreeMap<String, String>,
    pub procedures: Vec<String>,
}

impl SeedFile {
    pub(crate) fn parse(text: &str) -> Result<SeedFile, SeedError> {
        let seed: SeedFile = serde_yaml_ng::from_str(text)?;
        for e in &seed.endpoints {
            EndpointId::try_from(e.id.as_str())?;
            for a in &e.authorities {
                let id = AuthorityId::try_from(a.id.as_str())?;
                if id.country().as_str() != a.country {
                    return Err(SeedError::CountryMismatch {
                        authority: a.id.clone(),
                        country: a.country.clone(),
                    });
                }
                for p in &a.procedures {
                    ProcedureCode::try_from(p.as_str())?;
                }
            }
        }
        Ok(seed)
    }
}

/// What an endpoint's broker user may do: publish to the ingress exchange,
/// consume its own inbox, configure nothing.
pub(super) fn endpoint_permissions(endpoint: &EndpointId) -> Permissions {
    Permissions {
        configure: "^$".into(),
        write: format!(
            "^{}$",
            regex_escape(imi_schemas::protocol::INGRESS_EXCHANGE)
        ),
        read: format!(
            "^{}$",
            regex_escape(&imi_schemas::protocol::inbox_queue(endpoint.as_str()))
        ),
    }
}

/// The broker permissions of a subscriber: declare, bind and read its own
/// `imi.sub.<endpoint>.*` queues, read (bind to) `imi.alerts`, publish
/// nowhere; topic permissions limit its binding keys to its areas.
pub(super) fn subscriber_permissions(endpoint: &EndpointId) -> Permissions {
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

/// Escapes the one metacharacter our resource names contain (`.`) for a
/// RabbitMQ permission regex.
pub(crate) fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

/// Registers the seed's endpoints and authorities (idempotent) and provisions
/// each endpoint's broker user.
#[instrument(skip_all, fields(endpoints = seed.endpoints.len()))]
pub(crate) async fn apply_seed(
    seed: &SeedFile,
    pool: &PgPool,
    management: &Management,
    vhost: &str,
) -> Result<(), HubError> {
    let mut tx = pool.begin().await?;
    for e in &seed.endpoints {
        sqlx::query(
            "INSERT INTO endpoints (id, status) VALUES ($1, 'active') ON CONFLICT (id) DO NOTHING",
        )
        .bind(&e.id)
        .execute(&mut *tx)
        .await?;
        for a in &e.authorities {
            sqlx::query(
                "INSERT INTO authorities (id, country, names, competences, status, endpoint_id)
                 VALUES ($1, $2, $3, $5, 'active', $4)
                 ON CONFLICT (id) DO UPDATE
                 SET names = EXCLUDED.names, competences = EXCLUDED.competences, endpoint_id = EXCLUDED.endpoint_id",
            )
            .bind(&a.id)
            .bind(&a.country)
            .bind(serde_json::to_value(&a.names).unwrap_or_default())
            .bind(&e.id)
            .bind(serde_json::to_value(&a.competences).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
            for p in &a.procedures {
                sqlx::query(
                    "INSERT INTO authority_procedures VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(&a.id)
                .bind(p)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    for e in &seed.endpoints {
        let id = EndpointId::try_from(e.id.as_str()).map_err(SeedError::from)?;
        management.put_user(&e.id, &e.password).await?;
        management
            .set_permissions(vhost, &e.id, &endpoint_permissions(&id))
            .await?;
    }
    info!("Seed applied.");
    Ok(())
}

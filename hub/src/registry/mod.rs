//! Who may speak for whom: endpoints, the authorities they act for, and the
//! procedures each authority is registered for.
//!
//! The pipeline reads an in-memory [`Registry`] snapshot (no database round
//! trip per message); the snapshot is reloaded from PostgreSQL after changes
//! and periodically.

pub(crate) mod limits;
pub(crate) mod search;
mod seed;
pub(crate) mod workflow;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use imi_schemas::ids::{AuthorityId, EndpointId, ProcedureCode};
use sqlx::PgPool;
use tracing::instrument;

pub(crate) use seed::{apply_seed, SeedFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Active,
    Suspended,
}

impl Status {
    fn parse(raw: &str) -> Status {
        match raw {
            "active" => Status::Active,
            "suspended" => Status::Suspended,
            _ => Status::Pending,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub id: EndpointId,
    pub status: Status,
    pub authorities: HashSet<AuthorityId>,
}

#[derive(Debug, Clone)]
pub(crate) struct Authority {
    pub id: AuthorityId,
    pub status: Status,
    pub endpoint: EndpointId,
    pub procedures: HashSet<ProcedureCode>,
}

impl Authority {
    /// Active and registered for the procedure.
    pub(crate) fn may_use(&self, procedure: &ProcedureCode) -> bool {
        self.status == Status::Active && self.procedures.contains(procedure)
    }
}

/// An endpoint as stored.
#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    status: String,
}

/// An authority as stored, with the procedures it is registered for.
#[derive(sqlx::FromRow)]
struct AuthorityRow {
    id: String,
    status: String,
    endpoint_id: String,
    procedures: Vec<String>,
}

/// An immutable snapshot of the registry.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    endpoints: HashMap<String, Endpoint>,
    authorities: HashMap<String, Authority>,
}

impl Registry {
    pub(crate) fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.get(id)
    }
    pub(crate) fn authority(&self, id: &str) -> Option<&Authority> {
        self.authorities.get(id)
    }
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.values()
    }
    /// Authorities that may receive the procedure now: active, registered for
    /// it, behind an active endpoint.
    pub(crate) fn reachable<'a>(
        &'a self,
        procedure: &'a ProcedureCode,
    ) -> impl Iterator<Item = &'a AuthorityId> + 'a {
        self.authorities
            .values()
            .filter(move |a| {
                a.may_use(procedure)
                    && self
                        .endpoints
                        .get(a.endpoint.as_str())
                        .is_some_and(|e| e.status == Status::Active)
            })
            .map(|a| &a.id)
    }

    #[instrument(skip_all)]
    pub(crate) async fn load(pool: &PgPool) -> Result<Registry, sqlx::Error> {
        let mut registry = Registry::default();
        let endpoints: Vec<EndpointRow> = sqlx::query_as("SELECT id, status FROM endpoints")
            .fetch_all(pool)
            .await?;
        for row in endpoints {
            let Ok(eid) = EndpointId::try_from(row.id.as_str()) else {
                continue;
            };
            registry.endpoints.insert(
                row.id,
                Endpoint {
                    id: eid,
                    status: Status::parse(&row.status),
                    authorities: HashSet::new(),
                },
            );
        }
        let authorities: Vec<AuthorityRow> = sqlx::query_as(
            "SELECT a.id, a.status, a.endpoint_id,
                    coalesce(array_agg(p.procedure) FILTER (WHERE p.procedure IS NOT NULL), '{}') AS procedures
             FROM authorities a LEFT JOIN authority_procedures p ON p.authority_id = a.id
             GROUP BY a.id",
        )
        .fetch_all(pool)
        .await?;
        for row in authorities {
            let (Ok(aid), Ok(eid)) = (
                AuthorityId::try_from(row.id.as_str()),
                EndpointId::try_from(row.endpoint_id.as_str()),
            ) else {
                continue;
            };
            if let Some(e) = registry.endpoints.get_mut(&row.endpoint_id) {
                e.authorities.insert(aid.clone());
            }
            registry.authorities.insert(
                row.id,
                Authority {
                    id: aid,
                    status: Status::parse(&row.status),
                    endpoint: eid,
                    procedures: row
                        .procedures
                        .iter()
                        .filter_map(|p| ProcedureCode::try_from(p.as_str()).ok())
                        .collect(),
                },
            );
        }
        Ok(registry)
    }
}

/// The current snapshot, swapped whole on reload.
#[derive(Clone, Default)]
pub(crate) struct SharedRegistry(Arc<RwLock<Arc<Registry>>>);

impl SharedRegistry {
    pub(crate) fn current(&self) -> Arc<Registry> {
        self.0.read().expect("registry lock").clone()
    }
    pub(crate) fn replace(&self, registry: Registry) {
        *self.0.write().expect("registry lock") = Arc::new(registry);
    }
    pub(crate) async fn reload(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        self.replace(Registry::load(pool).await?);
        Ok(())
    }
}

#[cfg(test)]
impl Registry {
    /// Adds an endpoint acting for `authorities`: (id, status, procedures).
    pub(crate) fn with_endpoint(
        mut self,
        endpoint: &str,
        status: Status,
        authorities: &[(&str, Status, &[&str])],
    ) -> Registry {
        let id = EndpointId::try_from(endpoint).expect("endpoint id");
        let mut served = HashSet::new();
        for (authority, authority_status, procedures) in authorities {
            let aid = AuthorityId::try_from(*authority).expect("authority id");
            served.insert(aid.clone());
            self.authorities.insert(
                (*authority).to_owned(),
                Authority {
                    id: aid,
                    status: *authority_status,
                    endpoint: id.clone(),
                    procedures: procedures
                        .iter()
                        .map(|p| ProcedureCode::try_from(*p).expect("procedure code"))
                        .collect(),
                },
            );
        }
        self.endpoints.insert(
            endpoint.to_owned(),
            Endpoint {
                id,
                status,
                authorities: served,
            },
        );
        self
    }
}

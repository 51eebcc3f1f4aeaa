//! Who may speak for whom: endpoints, the authorities they act for, and the
//! procedures each authority is registered for.
//!
//! The pipeline reads an in-memory [`Registry`] snapshot (no database round
//! trip per message); the snapshot is reloaded from PostgreSQL after changes
//! and periodically.

pub mod accounts;
pub mod reassign;
pub mod search;
mod seed;
pub mod workflow;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use imi_schemas::ids::{AuthorityId, EndpointId, ProcedureCode};
use sqlx::PgPool;
use tracing::instrument;

pub(crate) use seed::regex_escape;
pub use seed::{apply_seed, SeedFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
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
pub struct Endpoint {
    pub id: EndpointId,
    pub status: Status,
    pub authorities: HashSet<AuthorityId>,
}

#[derive(Debug, Clone)]
pub struct Authority {
    pub id: AuthorityId,
    pub status: Status,
    pub endpoint: EndpointId,
    pub procedures: HashSet<ProcedureCode>,
}

impl Authority {
    /// Active and registered for the procedure.
    pub fn may_use(&self, procedure: &ProcedureCode) -> bool {
        self.status == Status::Active && self.procedures.contains(procedure)
    }
}

/// An immutable snapshot of the registry.
#[derive(Debug, Default)]
pub struct Registry {
    endpoints: HashMap<String, Endpoint>,
    authorities: HashMap<String, Authority>,
}

impl Registry {
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.get(id)
    }
    pub fn authority(&self, id: &str) -> Option<&Authority> {
        self.authorities.get(id)
    }
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.values()
    }
    /// Authorities that may receive the procedure now: active, registered for
    /// it, behind an active endpoint.
    pub fn reachable<'a>(
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
    pub async fn load(pool: &PgPool) -> Result<Registry, sqlx::Error> {
        let mut registry = Registry::default();
        let endpoints: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM endpoints")
            .fetch_all(pool)
            .await?;
        for (id, status) in endpoints {
            let Ok(eid) = EndpointId::try_from(id.as_str()) else {
                continue;
            };
            registry.endpoints.insert(
                id,
                Endpoint {
                    id: eid,
                    status: Status::parse(&status),
                    authorities: HashSet::new(),
                },
            );
        }
        let authorities: Vec<(String, String, String, Vec<String>)> = sqlx::query_as(
            "SELECT a.id, a.status, a.endpoint_id,
                    coalesce(array_agg(p.procedure) FILTER (WHERE p.procedure IS NOT NULL), '{}')
             FROM authorities a LEFT JOIN authority_procedures p ON p.authority_id = a.id
             GROUP BY a.id",
        )
        .fetch_all(pool)
        .await?;
        for (id, status, endpoint, procedures) in authorities {
            let (Ok(aid), Ok(eid)) = (
                AuthorityId::try_from(id.as_str()),
                EndpointId::try_from(endpoint.as_str()),
            ) else {
                continue;
            };
            if let Some(e) = registry.endpoints.get_mut(&endpoint) {
                e.authorities.insert(aid.clone());
            }
            registry.authorities.insert(
                id,
                Authority {
                    id: aid,
                    status: Status::parse(&status),
                    endpoint: eid,
                    procedures: procedures
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
pub struct SharedRegistry(Arc<RwLock<Arc<Registry>>>);

impl SharedRegistry {
    pub fn current(&self) -> Arc<Registry> {
        self.0.read().expect("registry lock").clone()
    }
    pub fn replace(&self, registry: Registry) {
        *self.0.write().expect("registry lock") = Arc::new(registry);
    }
    pub async fn reload(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        self.replace(Registry::load(pool).await?);
        Ok(())
    }
}

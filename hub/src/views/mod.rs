//! The query layer people read through: what the JSON API returns and the
//! console shows, each filtered by the caller's scope. Neither the API nor
//! the console has its own copy of these queries.

pub(crate) mod audit;
pub(crate) mod desk;
pub(crate) mod exchanges;
pub(crate) mod figures;
pub(crate) mod health;
pub(crate) mod refused;
pub(crate) mod registry;

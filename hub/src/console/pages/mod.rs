//! One module per console section. Each handler asks `views` (the query
//! layer the API shares) through the viewer's scope and renders a page.

pub(super) mod audit;
pub(super) mod authorities;
pub(super) mod catalogue;
pub(super) mod dashboard;
pub(super) mod desk;
pub(super) mod exchange;
pub(super) mod exchanges;
pub(super) mod login;
pub(super) mod refused;
pub(super) mod statistics;
pub(super) mod subjects;

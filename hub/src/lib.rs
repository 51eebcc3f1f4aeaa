//! The IMI Hub service.
//!
//! - [`app`]: builds the hub from [`config`] and runs it until shutdown.
//! - [`pipeline`]: the routing pipeline (decode → commit → publish → ack).
//! - [`store`]: the batch transaction, outbox and relay queries.
//! - [`registry`]: endpoints and authorities, registration.
//! - [`alerts`]: 1:N validation gates, delivery view, subscribers, reminders.
//! - [`catalogue`]: reading and holding the procedure catalogue.
//! - [`http`]: health, readiness, metrics; [`api`]: the JSON API.

pub mod alerts;
pub mod api;
pub mod app;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deadlines;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod retention;
pub mod store;
pub mod telemetry;
pub mod topology;

pub use app::Hub;
pub use config::Config;
pub use error::HubError;

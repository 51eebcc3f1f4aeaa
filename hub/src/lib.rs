//! The IMI Hub service. The map of its modules is in ARCHITECTURE.md; in
//! short, from the wire inwards:
//!
//! - [`app`]: builds the hub from [`config`] and runs it until shutdown;
//! - `pipeline`: consume → decode → commit → publish → ack;
//! - `inbound`: what decoding makes of a delivery; `outgoing`: everything
//!   the hub sends, built in one place;
//! - `workflow`: the pure workflow engine (no IO); `store`: its SQL;
//! - `registry`, `coordination`, `alerts`, `deadlines`, `retention`: the
//!   registry, coordinators' steps, 1:N follow-up, and periodic work;
//! - `scope`: who may see and do what; `api`, `http`: the HTTP side.
//!
//! The crate exports only what the `imi-hub` binary and the end-to-end
//! tests use.

pub mod accounts;
mod activity;
mod alerts;
mod api;
pub mod app;
pub mod at_rest;
pub mod audit_log;
pub mod bench;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod config;
mod console;
mod coordination;
mod deadline_clocks;
mod deadlines;
mod dispatch;
pub mod error;
mod facts;
mod http;
mod inbound;
pub mod inspect;
mod key_file;
mod metrics;
mod outgoing;
mod pipeline;
mod refusals;
mod registry;
mod retention;
mod scope;
mod store;
pub mod subjects;
mod supervise;
mod tasks;
mod telemetry;
mod topology;
mod views;
mod workflow;

#[cfg(test)]
mod testing;

pub use alerts::AckReminders;
pub use app::Hub;
pub use config::Config;
pub use deadlines::DeadlineChecker;
pub use error::HubError;
pub use retention::{RetentionOutcome, RetentionPass};

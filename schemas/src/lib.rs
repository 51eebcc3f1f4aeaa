//! Wire types and the procedure catalogue of IMI Hub.
//!
//! This crate is the single owner of the wire format. It is pure: it has no
//! async runtime, no database and no broker. It parses catalogue *text* that the
//! hub reads from disk, compiles the payload validators once, and defines the
//! JSON bodies that travel over AMQP (the ingress [`envelope::Envelope`], the
//! hub's [`protocol::Receipt`] and [`protocol::Rejection`]).
//!
//! - [`ids`]: parsed newtypes for ids, country codes and message types.
//! - [`envelope`]: what an adapter publishes to the ingress exchange.
//! - [`protocol`]: what the hub answers (receipts, rejections) and the AMQP
//!   header names every party uses.
//! - [`catalogue`]: legislative areas and procedures as data, with compiled forms.
//! - [`json_schema`]: the generated JSON Schema files for integrators.

pub mod catalogue;
pub mod envelope;
pub mod ids;
pub mod json_schema;
pub mod protocol;

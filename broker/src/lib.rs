//! Everything AMQP for IMI Hub. Only this crate imports lapin.
//!
//! lapin's own recovery is not trusted (see ARCHITECTURE.md): [`Broker`] runs a
//! supervisor task that detects a lost connection, reconnects with backoff,
//! re-declares the [`Topology`], and tells consumers and publishers about the
//! new connection. [`Publisher::publish_all`] re-publishes whatever was not
//! confirmed when a connection died; [`Broker::consume`] re-consumes after a
//! reconnect. [`Management`] talks to the RabbitMQ management HTTP API to
//! provision users, permissions and vhosts.

mod backoff;
mod connection;
mod consumer;
mod error;
mod management;
mod message;
mod publisher;
mod topology;
mod url;

pub use backoff::Backoff;
pub use connection::{Broker, BrokerConfig, TlsConfig};
pub use consumer::{Acker, Deliveries, Delivery};
pub use error::BrokerError;
pub use management::{
    ConnectionInfo, Management, ManagementConfig, Permissions, QueueInfo, QueuePolicy, UserLimits,
};
pub use message::{Headers, Outgoing, Properties};
pub use publisher::{PublishOutcome, Publisher};
pub use topology::{ExchangeDecl, ExchangeKind, QueueDecl, QueueType, Topology};
pub use url::{connection_url, user_of};

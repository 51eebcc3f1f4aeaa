//! What a national system embeds to talk to IMI Hub.
//!
//! - [`Adapter`]: connect as an endpoint (its own broker user), send messages
//!   on behalf of the authorities it acts for, and open its [`Inbox`].
//! - [`Inbox`]: the stream of what the hub delivers — routed messages,
//!   receipts, rejections — with manual acks; redeliveries of a message the
//!   application already acknowledged are dropped by `message_id`, also
//!   after a restart when the inbox keeps its record in a file
//!   ([`Adapter::inbox_remembering`]).
//!
//! The wire protocol is documented in `docs/protocol.md`; any AMQP client can
//! speak it. This SDK is the reference implementation.

mod adapter;
mod error;
mod inbox;
mod seen;

pub use adapter::{Adapter, EndpointConfig, EndpointTls, OutgoingMessage};
pub use error::AdapterError;
pub use inbox::{Inbox, InboxItem, Incoming, RoutedMessage};

//! Everything the hub sends, built in one place: the outbox row each message
//! is stored as before it is published, its headers, its id, and the AMQP
//! message it becomes. The pipeline, the relay, the deadline checker, the
//! reminders and the coordinators' steps all build through here, so a
//! message re-published after a crash is the one first published, id and
//! headers included.
//!
//! Ids are derived (UUIDv5) from what a message answers or copies, so a
//! retry, a redelivery or the relay re-publishes under the same id and
//! receivers de-duplicate it (docs/protocol.md, "Message ids").

mod build;
mod headers;

use std::collections::BTreeMap;

use chrono::Utc;
use imi_broker::{Outgoing, Properties};
use imi_schemas::protocol::{ALERTS_EXCHANGE, DELIVER_EXCHANGE};
use uuid::Uuid;

pub(crate) use build::{
    ack_reminder, acknowledgements, broadcast, deadline_notice, fan_out, reassigned, receipts,
    rejection, request_copies, validation_notice, Copy, DeliveryRow,
};
pub(crate) use headers::DeliveryHeaders;

/// One message the hub must publish, as stored in the outbox.
#[derive(Debug, Clone)]
pub(crate) struct OutboxRow {
    /// The outgoing AMQP `message_id`.
    pub(crate) id: Uuid,
    pub(crate) kind: OutboxKind,
    pub(crate) source_message_id: String,
    /// The recipient endpoint (the routing key on `imi.deliver`), or for a
    /// broadcast its routing key on `imi.alerts`.
    pub(crate) endpoint: String,
    pub(crate) recipients: Vec<String>,
    pub(crate) exchange_id: Option<Uuid>,
    pub(crate) message_type: String,
    pub(crate) headers: BTreeMap<String, String>,
    /// What is published. For deliveries and broadcasts it is the original
    /// message's raw body, which the outbox does not store twice.
    pub(crate) body: Vec<u8>,
}

/// A batch's receipts for one sender endpoint: what its `Receipts` outbox
/// row `row_id` carries, before serialization (the pipeline may merge them
/// with later batches').
#[derive(Debug, Clone)]
pub(crate) struct ReceiptsFor {
    pub(crate) row_id: Uuid,
    pub(crate) endpoint: String,
    pub(crate) receipts: Vec<imi_schemas::protocol::Receipt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutboxKind {
    Delivery,
    /// One batch's receipts for one sender endpoint.
    Receipts,
    Rejection,
    /// A hub-originated notice (deadline reminder, overdue, validation).
    Notice,
    /// A released 1:N message on the `imi.alerts` topic exchange; `endpoint`
    /// holds its routing key. Unroutable is normal (no subscriber bound).
    Broadcast,
    /// Recipients' acknowledgements, for the originator.
    Acknowledgements,
}

impl OutboxKind {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            OutboxKind::Delivery => "delivery",
            OutboxKind::Receipts => "receipts",
            OutboxKind::Rejection => "rejection",
            OutboxKind::Notice => "notice",
            OutboxKind::Broadcast => "broadcast",
            OutboxKind::Acknowledgements => "acknowledgements",
        }
    }

    pub(crate) fn parse(raw: &str) -> OutboxKind {
        match raw {
            "delivery" => OutboxKind::Delivery,
            "receipts" => OutboxKind::Receipts,
            "notice" => OutboxKind::Notice,
            "broadcast" => OutboxKind::Broadcast,
            "acknowledgements" => OutboxKind::Acknowledgements,
            _ => OutboxKind::Rejection,
        }
    }

    /// Deliveries and broadcasts carry a stored message's body (read back
    /// from `messages.raw`); every other kind stores its own body and
    /// headers.
    pub(crate) fn copies_a_message(&self) -> bool {
        matches!(self, OutboxKind::Delivery | OutboxKind::Broadcast)
    }
}

impl OutboxRow {
    /// The AMQP message this row is published as.
    pub(crate) fn into_amqp(self) -> Outgoing {
        let broadcast = self.kind == OutboxKind::Broadcast;
        Outgoing {
            exchange: if broadcast {
                ALERTS_EXCHANGE
            } else {
                DELIVER_EXCHANGE
            }
            .to_owned(),
            routing_key: self.endpoint,
            // Broadcasts may reach no subscriber; every other message must
            // reach its endpoint's inbox.
            mandatory: !broadcast,
            properties: Properties {
                message_id: Some(self.id.to_string()),
                correlation_id: self.exchange_id.map(|e| e.to_string()),
                message_type: Some(self.message_type),
                user_id: None,
                content_type: Some("application/json".into()),
                timestamp: Some(Utc::now().timestamp().max(0) as u64),
                headers: self.headers,
            },
            body: self.body,
        }
    }
}

/// A UUIDv5 of `id` and `purpose`: the id of a copy or answer of message
/// `id`, the same each time it is made.
pub(crate) fn derived(id: Uuid, purpose: &str) -> Uuid {
    let mut name = id.as_bytes().to_vec();
    name.extend_from_slice(purpose.as_bytes());
    Uuid::new_v5(&Uuid::NAMESPACE_OID, &name)
}

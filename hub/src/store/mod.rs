//! PostgreSQL: the batch transaction, the outbox and its relay.

mod acks;
mod batch;
pub mod fanout;
mod outbox;
mod writes;

use std::collections::BTreeMap;

use uuid::Uuid;

pub use batch::{commit_batch, receipt_row, write_batch, BatchOutcome, CommitError};
pub use outbox::{mark_published, mark_unroutable, unpublished};

/// One message the hub must publish, as stored in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The outgoing AMQP `message_id`.
    pub id: Uuid,
    pub kind: OutboxKind,
    pub source_message_id: String,
    pub endpoint: String,
    pub recipients: Vec<String>,
    pub exchange_id: Option<Uuid>,
    pub message_type: String,
    pub headers: BTreeMap<String, String>,
    /// What is published. For deliveries it is the original message's raw
    /// body, which the outbox does not store twice.
    pub body: Vec<u8>,
}

/// A batch's receipts for one sender endpoint: what its `Receipts` outbox
/// row `row_id` carries, before serialization.
#[derive(Debug, Clone)]
pub struct ReceiptsFor {
    pub row_id: Uuid,
    pub endpoint: String,
    pub receipts: Vec<imi_schemas::protocol::Receipt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    Delivery,
    /// One batch's receipts for one sender endpoint.
    Receipts,
    Rejection,
    /// A hub-originated notice (deadline reminder, overdue).
    Notice,
    /// A released 1:N message on the `imi.alerts` topic exchange; `endpoint`
    /// holds its routing key. Unroutable is normal (no subscriber bound).
    Broadcast,
    /// Recipients' acknowledgements, for the originator.
    Acknowledgements,
}

impl OutboxKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            OutboxKind::Delivery => "delivery",
            OutboxKind::Receipts => "receipts",
            OutboxKind::Rejection => "rejection",
            OutboxKind::Notice => "notice",
            OutboxKind::Broadcast => "broadcast",
            OutboxKind::Acknowledgements => "acknowledgements",
        }
    }
    fn parse(raw: &str) -> OutboxKind {
        match raw {
            "delivery" => OutboxKind::Delivery,
            "receipts" => OutboxKind::Receipts,
            "notice" => OutboxKind::Notice,
            "broadcast" => OutboxKind::Broadcast,
            "acknowledgements" => OutboxKind::Acknowledgements,
            _ => OutboxKind::Rejection,
        }
    }
}

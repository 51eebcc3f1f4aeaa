use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imi_broker::{Acker, Deliveries, Delivery, Properties};
use imi_schemas::envelope::Envelope;
use imi_schemas::ids::MessageId;
use imi_schemas::protocol::{
    receipt_id, AcknowledgementBatch, DeadlineNotice, Receipt, ReceiptBatch, Rejection,
    ValidationDecision, HEADER_ACKNOWLEDGEMENT, HEADER_PARENT_EXCHANGE, HEADER_RECIPIENTS,
    HEADER_SENDER, TYPE_ACKNOWLEDGEMENTS, TYPE_DEADLINE, TYPE_RECEIPTS, TYPE_REJECTION,
    TYPE_VALIDATION,
};

use crate::seen::Seen;
use crate::AdapterError;

/// A message another authority sent, routed by the hub.
#[derive(Debug, Clone)]
pub struct RoutedMessage {
    pub message_type: String,
    pub sender: String,
    /// The recipient authorities this endpoint serves.
    pub recipients: Vec<String>,
    pub envelope: Envelope,
    /// For a message that opened a child exchange (a split): the parent.
    pub parent_exchange: Option<String>,
    /// A copy of a 1:N message: acknowledge it once stored
    /// (`Adapter::acknowledge`), so the originator knows you have it.
    pub acknowledgement_requested: bool,
    /// The body exactly as the sender sent it.
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Incoming {
    Message(Box<RoutedMessage>),
    Receipt(Receipt),
    Rejection(Rejection),
    /// A deadline is near or passed on an exchange this endpoint must act on.
    Deadline(DeadlineNotice),
    /// Recipients acknowledged messages of a 1:N exchange this endpoint's
    /// authority originated.
    Acknowledgements(AcknowledgementBatch),
    /// The national coordinator approved or refused an outgoing 1:N message
    /// this endpoint's authority originated.
    Validation(ValidationDecision),
    /// Something this SDK version does not understand (kept, not dropped).
    Unknown {
        message_type: Option<String>,
        body: Vec<u8>,
    },
}

/// One item of the inbox; ack it once it is safely handled.
#[derive(Debug)]
pub struct InboxItem {
    pub message_id: String,
    /// The exchange (case) it belongs to.
    pub exchange_id: Option<String>,
    pub redelivered: bool,
    pub incoming: Incoming,
    ack: Arc<SharedAck>,
    seen: Arc<Mutex<Seen>>,
}

/// One AMQP delivery may carry several items (a batch of receipts): it is
/// acknowledged when the last of them is.
#[derive(Debug)]
struct SharedAck {
    acker: Acker,
    remaining: AtomicUsize,
}

impl InboxItem {
    /// Acknowledges: the broker forgets it, and a redelivery of the same
    /// `message_id` is dropped by this inbox. If the connection died before
    /// the ack got through, the broker delivers the message again and the
    /// inbox drops (and acks) that copy, so the application is done with it
    /// either way.
    ///
    /// With a record on file ([`crate::Adapter::inbox_remembering`]), the id
    /// is on disk before the broker is told; if writing it fails, the
    /// broker is not told either and the message comes again.
    pub async fn ack(self) -> Result<(), AdapterError> {
        self.seen
            .lock()
            .expect("seen lock")
            .insert(self.message_id)
            .map_err(AdapterError::SeenRecord)?;
        if self.ack.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Err(error) = self.ack.acker.ack().await {
                tracing::debug!(%error, "Ack lost with its channel; the redelivery will be dropped.");
            }
        }
        Ok(())
    }
}

/// The endpoint's inbox.
pub struct Inbox {
    deliveries: Deliveries,
    seen: Arc<Mutex<Seen>>,
    /// Items split from a delivery and not yet handed out.
    pending: VecDeque<InboxItem>,
    /// Redeliveries dropped so far (already acknowledged by the application).
    pub duplicates_dropped: u64,
}

impl Inbox {
    pub(crate) fn new(deliveries: Deliveries, seen: Seen) -> Self {
        Self {
            deliveries,
            seen: Arc::new(Mutex::new(seen)),
            pending: VecDeque::new(),
            duplicates_dropped: 0,
        }
    }

    /// The next item not yet acknowledged by the application; `None` when the
    /// inbox stopped.
    pub async fn next(&mut self) -> Option<InboxItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let delivery = self.deliveries.recv().await?;
            let items = self.split(delivery);
            if items.is_empty() {
                continue;
            }
            self.pending.extend(items);
        }
    }

    fn is_seen(&self, id: &str) -> bool {
        self.seen.lock().expect("seen lock").contains(id)
    }

    /// The items of one delivery the application has not acknowledged yet;
    /// a delivery with none left is acked here.
    fn split(&mut self, d: Delivery) -> Vec<InboxItem> {
        let Delivery {
            properties,
            body,
            redelivered,
            acker,
            ..
        } = d;
        let mut items: Vec<(String, Option<String>, Incoming)> = Vec::new();
        if properties.message_type.as_deref() == Some(TYPE_RECEIPTS) {
            if let Ok(batch) = serde_json::from_slice::<ReceiptBatch>(&body) {
                for r in batch.receipts {
                    let id = receipt_id(MessageId::new(r.message_id)).to_string();
                    let exchange = Some(r.exchange_id.to_string());
                    items.push((id, exchange, Incoming::Receipt(r)));
                }
            }
        }
        if items.is_empty() {
            let id = properties.message_id.clone().unwrap_or_default();
            let exchange = properties.correlation_id.clone();
            items.push((id, exchange, incoming(&properties, body)));
        }
        let before = items.len();
        items.retain(|(id, _, _)| !self.is_seen(id));
        self.duplicates_dropped += (before - items.len()) as u64;
        let ack = Arc::new(SharedAck {
            acker,
            remaining: AtomicUsize::new(items.len()),
        });
        if items.is_empty() {
            let acker = ack.acker.clone();
            tokio::spawn(async move {
                let _ = acker.ack().await;
            });
        }
        items
            .into_iter()
            .map(|(message_id, exchange_id, incoming)| InboxItem {
                message_id,
                exchange_id,
                redelivered,
                incoming,
                ack: ack.clone(),
                seen: self.seen.clone(),
            })
            .collect()
    }

    /// Like [`Inbox::next`], with a timeout.
    pub async fn next_within(&mut self, timeout: Duration) -> Result<InboxItem, AdapterError> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(AdapterError::InboxClosed),
            Err(_) => Err(AdapterError::Timeout("an inbox message")),
        }
    }
}

/// What one delivery holds; the body is moved, not copied.
fn incoming(p: &Properties, body: Vec<u8>) -> Incoming {
    match p.message_type.as_deref() {
        Some(TYPE_REJECTION) => match serde_json::from_slice(&body) {
            Ok(r) => Incoming::Rejection(r),
            Err(_) => unknown(p, body),
        },
        Some(TYPE_DEADLINE) => match serde_json::from_slice(&body) {
            Ok(n) => Incoming::Deadline(n),
            Err(_) => unknown(p, body),
        },
        Some(TYPE_ACKNOWLEDGEMENTS) => match serde_json::from_slice(&body) {
            Ok(a) => Incoming::Acknowledgements(a),
            Err(_) => unknown(p, body),
        },
        Some(TYPE_VALIDATION) => match serde_json::from_slice(&body) {
            Ok(v) => Incoming::Validation(v),
            Err(_) => unknown(p, body),
        },
        Some(t) => match serde_json::from_slice::<Envelope>(&body) {
            Ok(envelope) => Incoming::Message(Box::new(RoutedMessage {
                message_type: t.to_owned(),
                sender: p.headers.get(HEADER_SENDER).cloned().unwrap_or_default(),
                recipients: p
                    .headers
                    .get(HEADER_RECIPIENTS)
                    .map(|r| r.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
                envelope,
                parent_exchange: p.headers.get(HEADER_PARENT_EXCHANGE).cloned(),
                acknowledgement_requested: p
                    .headers
                    .get(HEADER_ACKNOWLEDGEMENT)
                    .is_some_and(|v| v == "requested"),
                raw: body,
            })),
            Err(_) => unknown(p, body),
        },
        None => unknown(p, body),
    }
}

fn unknown(p: &Properties, body: Vec<u8>) -> Incoming {
    Incoming::Unknown {
        message_type: p.message_type.clone(),
        body,
    }
}

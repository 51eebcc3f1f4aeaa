use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imi_broker::{Acker, Deliveries, Delivery};
use imi_schemas::envelope::Envelope;
use imi_schemas::protocol::{
    Receipt, Rejection, HEADER_RECIPIENTS, HEADER_SENDER, TYPE_RECEIPT, TYPE_REJECTION,
};

use crate::AdapterError;

/// How many acknowledged message ids the inbox remembers to drop redeliveries.
const REMEMBERED: usize = 100_000;

/// A message another authority sent, routed by the hub.
#[derive(Debug, Clone)]
pub struct RoutedMessage {
    pub message_type: String,
    pub sender: String,
    /// The recipient authorities this endpoint serves.
    pub recipients: Vec<String>,
    pub envelope: Envelope,
    /// The body exactly as the sender sent it.
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Incoming {
    Message(Box<RoutedMessage>),
    Receipt(Receipt),
    Rejection(Rejection),
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
    acker: Acker,
    seen: Arc<Mutex<Seen>>,
}

impl InboxItem {
    /// Acknowledges: the broker forgets it, and a redelivery of the same
    /// `message_id` is dropped by this inbox. If the connection died before
    /// the ack got through, the broker delivers the message again and the
    /// inbox drops (and acks) that copy, so the application is done with it
    /// either way.
    pub async fn ack(self) -> Result<(), AdapterError> {
        self.seen.lock().expect("seen lock").insert(self.message_id);
        if let Err(error) = self.acker.ack().await {
            tracing::debug!(%error, "Ack lost with its channel; the redelivery will be dropped.");
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The endpoint's inbox.
pub struct Inbox {
    deliveries: Deliveries,
    seen: Arc<Mutex<Seen>>,
    /// Redeliveries dropped so far (already acknowledged by the application).
    pub duplicates_dropped: u64,
}

impl Inbox {
    pub(crate) fn new(deliveries: Deliveries) -> Self {
        Self {
            deliveries,
            seen: Arc::default(),
            duplicates_dropped: 0,
        }
    }

    /// The next item not yet acknowledged by the application; `None` when the
    /// inbox stopped.
    pub async fn next(&mut self) -> Option<InboxItem> {
        loop {
            let delivery = self.deliveries.recv().await?;
            let id = delivery.properties.message_id.clone().unwrap_or_default();
            if self.seen.lock().expect("seen lock").set.contains(&id) {
                self.duplicates_dropped += 1;
                let _ = delivery.acker.ack().await;
                continue;
            }
            return Some(self.item(delivery, id));
        }
    }

    /// Like [`Inbox::next`], with a timeout.
    pub async fn next_within(&mut self, timeout: Duration) -> Result<InboxItem, AdapterError> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(AdapterError::InboxClosed),
            Err(_) => Err(AdapterError::Timeout("an inbox message")),
        }
    }

    fn item(&self, d: Delivery, message_id: String) -> InboxItem {
        let p = &d.properties;
        let incoming = match p.message_type.as_deref() {
            Some(TYPE_RECEIPT) => serde_json::from_slice(&d.body).map(Incoming::Receipt).ok(),
            Some(TYPE_REJECTION) => serde_json::from_slice(&d.body)
                .map(Incoming::Rejection)
                .ok(),
            Some(t) => serde_json::from_slice::<Envelope>(&d.body)
                .ok()
                .map(|envelope| {
                    Incoming::Message(Box::new(RoutedMessage {
                        message_type: t.to_owned(),
                        sender: p.headers.get(HEADER_SENDER).cloned().unwrap_or_default(),
                        recipients: p
                            .headers
                            .get(HEADER_RECIPIENTS)
                            .map(|r| r.split(',').map(str::to_owned).collect())
                            .unwrap_or_default(),
                        envelope,
                        raw: d.body.clone(),
                    }))
                }),
            None => None,
        }
        .unwrap_or_else(|| Incoming::Unknown {
            message_type: p.message_type.clone(),
            body: d.body.clone(),
        });
        InboxItem {
            message_id,
            exchange_id: p.correlation_id.clone(),
            redelivered: d.redelivered,
            incoming,
            acker: d.acker,
            seen: self.seen.clone(),
        }
    }
}

//! What the pipeline's decoding makes of one ingress delivery, and what the
//! workflow engine and the store take: a message that passed every check
//! needing no database ([`Inbound`]), an acknowledgement of a 1:N copy
//! ([`Ack`]), or a message that can never pass ([`Refusal`]). These types
//! live here, below both `pipeline` and `store`, so neither imports the
//! other.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use imi_schemas::catalogue::Role;
use imi_schemas::ids::{AuthorityId, EndpointId, ExchangeId, MessageId, MessageType};
use imi_schemas::protocol::{
    FieldError, Rejection, RejectionCode, HEADER_SCHEMA_VERSION, HEADER_TRACEPARENT,
    TYPE_ACKNOWLEDGEMENT,
};

/// A message that passed every check that needs no database.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) message_id: MessageId,
    pub(crate) message_type: MessageType,
    pub(crate) schema_version: u32,
    pub(crate) sender: AuthorityId,
    pub(crate) sender_endpoint: EndpointId,
    /// As named in the envelope (checked to exist and be authorized); for an
    /// opening 1:N message, resolved by the procedure's recipients rule.
    pub(crate) recipients: Vec<AuthorityId>,
    /// The `correlation_id` of a follow-up.
    pub(crate) exchange: Option<ExchangeId>,
    pub(crate) step: Step,
    pub(crate) raw: Vec<u8>,
    pub(crate) digest: [u8; 32],
    pub(crate) traceparent: Option<String>,
    /// Who the payload is about, as keyed hashes (`subjects`).
    pub(crate) subject_keys: Vec<crate::subjects::SubjectKey>,
    /// `raw` sealed for storage (`at_rest`); `None` when encryption is off.
    pub(crate) sealed: Option<Vec<u8>>,
    /// The payload's few fields the database's own queries read (an agreed
    /// answer date, a rating, an end date); they stay readable when `raw`
    /// is sealed.
    pub(crate) facts: serde_json::Value,
}

impl Inbound {
    /// The bytes stored in `messages.raw`.
    pub(crate) fn stored(&self) -> &[u8] {
        self.sealed.as_deref().unwrap_or(&self.raw)
    }
}

/// What the catalogue says of the action, copied so the batch does not hold
/// the catalogue (which may be swapped while it is in flight).
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) opens: bool,
    pub(crate) reassigns: bool,
    pub(crate) splits: bool,
    /// Where a child exchange starts (the opening action's state).
    pub(crate) opening_state: String,
    pub(crate) by: Role,
    pub(crate) from: Vec<String>,
    pub(crate) to: String,
    /// Entering `to` formally closes the exchange (retention counts from it).
    pub(crate) closes: bool,
    /// Set for a 1:N procedure (notification, alert).
    pub(crate) one_to_many: Option<OneToMany>,
}

/// What a 1:N step needs beyond a 1:1 one.
#[derive(Debug, Clone)]
pub(crate) struct OneToMany {
    /// The procedure's area (validation gates and the broadcast routing key).
    pub(crate) area: String,
    pub(crate) broadcasts: bool,
    pub(crate) disseminates: bool,
    /// The procedure can wait for national validation (lists the state).
    pub(crate) can_be_validated: bool,
    /// Deadlines counted from a date of the opening payload.
    pub(crate) field_deadlines: Vec<FieldDeadline>,
}

/// A deadline counted from a date in the opening payload (e.g. an alert is
/// due within 3 days of the decision it reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldDeadline {
    pub(crate) code: String,
    pub(crate) date: NaiveDate,
    pub(crate) due_at: DateTime<Utc>,
}

/// A recipient system acknowledges a 1:N message it received.
#[derive(Debug)]
pub(crate) struct Ack {
    /// The acknowledgement's own `message_id`, answered in a receipt.
    pub(crate) message_id: MessageId,
    pub(crate) sender_endpoint: EndpointId,
    /// The `message_id` of the copy the recipient received.
    pub(crate) acknowledged: uuid::Uuid,
    /// Its authorities that acknowledge; empty = all it serves.
    pub(crate) authorities: Vec<String>,
    pub(crate) raw: Vec<u8>,
    pub(crate) digest: [u8; 32],
}

/// A message that can never pass, with everything needed to keep it and
/// answer it.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) message_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) message_type: Option<String>,
    /// The `correlation_id` as sent (a follow-up's exchange).
    pub(crate) correlation_id: Option<String>,
    /// The headers the hub reads (schema version, trace context), as sent:
    /// with the rest, what re-driving the message needs.
    pub(crate) headers: BTreeMap<String, String>,
    /// The sender's endpoint, when there is one to answer.
    pub(crate) reply_to: Option<EndpointId>,
    pub(crate) rejection: Rejection,
    /// The body as received, truncated to the hub's limit.
    pub(crate) body: Vec<u8>,
    pub(crate) body_size: usize,
    pub(crate) digest: [u8; 32],
}

#[derive(Debug)]
pub(crate) enum Decoded {
    Inbound(Box<Inbound>),
    Acknowledgement(Box<Ack>),
    Refused(Box<Refusal>),
}

impl Inbound {
    /// The refusal of this message by the workflow (its state, its parties),
    /// answered to its sender.
    pub(crate) fn refused(
        &self,
        code: RejectionCode,
        detail: String,
        now: DateTime<Utc>,
    ) -> Refusal {
        let id = self.message_id.to_string();
        let mut headers = BTreeMap::new();
        headers.insert(
            HEADER_SCHEMA_VERSION.to_owned(),
            self.schema_version.to_string(),
        );
        if let Some(tp) = &self.traceparent {
            headers.insert(HEADER_TRACEPARENT.to_owned(), tp.clone());
        }
        Refusal {
            message_id: Some(id.clone()),
            user_id: Some(self.sender_endpoint.to_string()),
            message_type: Some(self.message_type.to_string()),
            correlation_id: self.exchange.map(|e| e.to_string()),
            headers,
            reply_to: Some(self.sender_endpoint.clone()),
            rejection: Rejection::new(Some(id), code, detail, Vec::new(), now),
            body: self.raw.clone(),
            body_size: self.raw.len(),
            digest: self.digest,
        }
    }
}

impl Ack {
    /// The refusal of an acknowledgement of a copy its endpoint never got.
    pub(crate) fn refused(&self, now: DateTime<Utc>) -> Refusal {
        let id = self.message_id.to_string();
        let whom = if self.authorities.is_empty() {
            "any of its authorities".to_owned()
        } else {
            self.authorities.join(", ")
        };
        let detail = format!(
            "endpoint `{}` received no copy {} for {whom}",
            self.sender_endpoint, self.acknowledged
        );
        Refusal {
            message_id: Some(id.clone()),
            user_id: Some(self.sender_endpoint.to_string()),
            message_type: Some(TYPE_ACKNOWLEDGEMENT.to_owned()),
            correlation_id: None,
            headers: BTreeMap::new(),
            reply_to: Some(self.sender_endpoint.clone()),
            rejection: Rejection::new(
                Some(id),
                RejectionCode::UnknownDelivery,
                detail,
                Vec::new(),
                now,
            ),
            body: self.raw.clone(),
            body_size: self.raw.len(),
            digest: self.digest,
        }
    }
}

/// A one-item problem list pointing at `pointer`.
pub(crate) fn at(pointer: &str, detail: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }]
}

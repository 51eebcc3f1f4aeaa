//! The hub's own protocol: AMQP names every party uses, and the answers the
//! hub sends to a sender's inbox (a receipt or a rejection) for every message.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::MessageId;

/// Exchange every adapter publishes to (fanout to the hub's ingress queue).
pub const INGRESS_EXCHANGE: &str = "imi.ingress";
/// Direct exchange the hub publishes to; routing key = recipient endpoint id.
pub const DELIVER_EXCHANGE: &str = "imi.deliver";
/// Exchange for dead letters (delivery limit exceeded, expired).
pub const DEAD_LETTER_EXCHANGE: &str = "imi.dead";
/// Queue holding dead letters for inspection.
pub const DEAD_LETTER_QUEUE: &str = "imi.dead-letters";
/// The hub's durable ingress queue (competing consumers when several hubs run).
pub const INGRESS_QUEUE: &str = "imi.hub.ingress";

/// Topic exchange carrying every broadcast 1:N message for subscribers;
/// routing key [`alert_routing_key`].
pub const ALERTS_EXCHANGE: &str = "imi.alerts";

/// Routing key of a broadcast on [`ALERTS_EXCHANGE`]:
/// `<area>.<procedure>.<origin country>`, e.g. `pq.pq-alert.DE`. Subscribers
/// bind with patterns such as `pq.#` or `services.*.AT`.
pub fn alert_routing_key(area: &str, procedure: &str, origin_country: &str) -> String {
    format!("{area}.{procedure}.{origin_country}")
}

/// The queues a subscriber endpoint may declare, bind and read: its name
/// starts with this prefix.
pub fn subscriber_queue_prefix(endpoint: &str) -> String {
    format!("imi.sub.{endpoint}.")
}

/// What every endpoint's inbox queue name starts with.
pub const INBOX_QUEUE_PREFIX: &str = "imi.inbox.";

/// The inbox queue of an endpoint.
pub fn inbox_queue(endpoint: &str) -> String {
    format!("{INBOX_QUEUE_PREFIX}{endpoint}")
}

/// AMQP header: the schema version of the payload (integer). Absent means 1.
pub const HEADER_SCHEMA_VERSION: &str = "imi-schema-version";
/// AMQP header: W3C trace context, passed through to recipients.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// AMQP header on routed messages: the sending authority.
pub const HEADER_SENDER: &str = "imi-sender";
/// AMQP header on a message that opened a child exchange (a split): the
/// parent exchange id.
pub const HEADER_PARENT_EXCHANGE: &str = "imi-parent-exchange";
/// AMQP header on a copy of a 1:N message: `requested` — the recipient
/// system should acknowledge it (`imi.acknowledgement`).
pub const HEADER_ACKNOWLEDGEMENT: &str = "imi-acknowledgement";
/// AMQP header on routed messages: the recipient authorities served by the
/// receiving endpoint, comma-separated.
pub const HEADER_RECIPIENTS: &str = "imi-recipients";

/// AMQP `type` of a batch of receipts (one per accepted message).
pub const TYPE_RECEIPTS: &str = "imi.receipts";
/// AMQP `type` of a deadline notice (a reminder, or an overdue notice).
pub const TYPE_DEADLINE: &str = "imi.deadline";

/// AMQP `type` an endpoint sends (to the ingress exchange, `correlation_id` =
/// the exchange id) to say its system has a 1:N message; body:
/// [`Acknowledgement`].
pub const TYPE_ACKNOWLEDGEMENT: &str = "imi.acknowledgement";
/// AMQP `type` of what the originator of a 1:N exchange receives when
/// recipients acknowledge; body: [`AcknowledgementBatch`].
pub const TYPE_ACKNOWLEDGEMENTS: &str = "imi.acknowledgements";

/// AMQP `type` of a rejection.
pub const TYPE_REJECTION: &str = "imi.rejection";

/// AMQP `type` of what the originator of a 1:N exchange receives when its
/// national coordinator decides on validating it; body:
/// [`ValidationDecision`].
pub const TYPE_VALIDATION: &str = "imi.validation";

/// The originator's national coordinator approved an outgoing 1:N message
/// (it is released to every recipient) or refused it (it is back in its
/// draft state, with the reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "IMI Hub validation decision",
    extend("$id" = "urn:imi:schema:validation")
)]
pub struct ValidationDecision {
    pub exchange_id: Uuid,
    /// The procedure of the exchange.
    pub procedure: String,
    pub decision: Decision,
    /// The exchange's state after the decision.
    pub state: String,
    /// Why, as the coordinator wrote it (mostly for a refusal).
    pub reason: Option<String>,
    /// The coordinator's account.
    pub by: String,
}

/// A coordinator's decision on an outgoing 1:N message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approved,
    Refused,
}

/// A recipient system acknowledges a message of a 1:N exchange it received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "IMI Hub acknowledgement",
    extend("$id" = "urn:imi:schema:acknowledgement")
)]
pub struct Acknowledgement {
    /// The `message_id` of the message as the recipient received it.
    pub message_id: Uuid,
    /// The recipient authorities (served by the sending endpoint) that
    /// acknowledge; empty means all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<String>,
}

/// Recipients that acknowledged messages of the originator's 1:N exchanges,
/// as recorded in one hub batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "IMI Hub acknowledgements",
    extend("$id" = "urn:imi:schema:acknowledgements")
)]
pub struct AcknowledgementBatch {
    pub acknowledgements: Vec<Acknowledged>,
}

/// One recipient authority acknowledged one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Acknowledged {
    pub exchange_id: Uuid,
    pub message_id: Uuid,
    pub authority: String,
    pub acknowledged_at: DateTime<Utc>,
}

/// The receipts for one endpoint's messages accepted in one hub batch. The hub
/// answers in batches so that a busy sender gets one AMQP message per batch,
/// not one per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "IMI Hub receipts", extend("$id" = "urn:imi:schema:receipts"))]
pub struct ReceiptBatch {
    pub receipts: Vec<Receipt>,
}

/// The id a receipt is known by (for de-duplication): derived from the
/// accepted message's id, so a re-sent receipt has the same id.
pub fn receipt_id(message_id: MessageId) -> MessageId {
    message_id.derive("receipt")
}

/// The hub accepted a message: it is stored and will reach its recipients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "IMI Hub receipt", extend("$id" = "urn:imi:schema:receipt"))]
pub struct Receipt {
    /// The `message_id` of the accepted message.
    pub message_id: Uuid,
    /// The exchange (case) the message belongs to; quote it as `correlation_id`
    /// on every follow-up.
    pub exchange_id: Uuid,
    /// Message type, `<procedure>.<action>`.
    #[serde(rename = "type")]
    pub message_type: String,
    /// State of the exchange after the action.
    pub state: String,
    /// Authorities the message is routed to.
    pub recipients: Vec<String>,
    /// When the hub committed the message.
    pub accepted_at: DateTime<Utc>,
}

/// A deadline of an exchange is near (`reminder`) or passed (`overdue`); sent
/// to the authority expected to act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "IMI Hub deadline notice", extend("$id" = "urn:imi:schema:deadline"))]
pub struct DeadlineNotice {
    pub exchange_id: Uuid,
    /// Message type family: the procedure of the exchange.
    pub procedure: String,
    /// The deadline's code in the catalogue, e.g. `answer`.
    pub deadline: String,
    /// `reminder` or `overdue`.
    pub kind: String,
    pub due_at: DateTime<Utc>,
    /// The authority expected to act.
    pub authority: String,
    /// On an overdue notice: what missing the deadline means in law, as a
    /// catalogue code (e.g. `tacit-recognition`); absent when nothing follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consequence: Option<String>,
}

/// The hub refused a message. Shaped after RFC 9457 problem details; `code`
/// is the stable, machine-readable part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "IMI Hub rejection", extend("$id" = "urn:imi:schema:rejection"))]
pub struct Rejection {
    /// The `message_id` of the refused message as it was sent (absent or not a
    /// UUID in some rejections, hence a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// A URI naming the problem kind: `urn:imi:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Stable machine-readable code.
    pub code: RejectionCode,
    /// A short, human-readable summary of the problem kind.
    pub title: String,
    /// A human-readable explanation of this occurrence.
    pub detail: String,
    /// Where in the message the problems are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// When the hub refused the message.
    pub rejected_at: DateTime<Utc>,
}

/// One problem at one place of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// JSON pointer (RFC 6901) into the message body, or `#/properties/<name>`
    /// for an AMQP property.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

/// Every reason the hub refuses a message. Stable: integrators match on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    /// The AMQP `user_id` is missing or names no registered, active endpoint.
    /// Never sent (there is no inbox to send it to); kept for the operator.
    UnknownEndpoint,
    /// The AMQP `message_id` is missing or not a UUID.
    InvalidMessageId,
    /// The body is larger than the hub accepts.
    OversizedBody,
    /// The body is not JSON.
    MalformedJson,
    /// The body is JSON but not an envelope.
    InvalidEnvelope,
    /// The AMQP `type` names no procedure action in the catalogue.
    UnknownMessageType,
    /// The `imi-schema-version` header names a version the catalogue does not list.
    UnsupportedSchemaVersion,
    /// The payload does not match the action's form.
    InvalidPayload,
    /// The sending endpoint does not act for the named sender authority.
    SenderNotServedByEndpoint,
    /// The sender is not active or not registered for the procedure.
    SenderNotAuthorized,
    /// A recipient authority is unknown.
    UnknownRecipient,
    /// A recipient is not active or not registered for the procedure.
    RecipientNotAuthorized,
    /// The number of recipients does not fit the action.
    InvalidRecipients,
    /// The `correlation_id` names no exchange, or is missing on a follow-up.
    UnknownExchange,
    /// The action is not allowed in the exchange's current state.
    ActionNotAllowedInState,
    /// The sender's role in the exchange may not take this action.
    ActionNotAllowedForRole,
    /// The `message_id` was already used for a different message.
    MessageIdReused,
    /// An acknowledgement names a message the endpoint did not receive for
    /// the named authorities.
    UnknownDelivery,
    /// The recipients rule of a 1:N procedure found nobody to send it to.
    NoRecipients,
    /// The broker dead-lettered the message (delivered too often without
    /// being processed, or expired). Kept for the operator, who can re-drive
    /// it; not sent.
    DeadLettered,
    /// The hub failed every time it processed the message (after the broker
    /// had given up on it): it is set aside for the operators.
    ProcessingFailed,
}

impl RejectionCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UnknownEndpoint => "unknown_endpoint",
            Self::InvalidMessageId => "invalid_message_id",
            Self::OversizedBody => "oversized_body",
            Self::MalformedJson => "malformed_json",
            Self::InvalidEnvelope => "invalid_envelope",
            Self::UnknownMessageType => "unknown_message_type",
            Self::UnsupportedSchemaVersion => "unsupported_schema_version",
            Self::InvalidPayload => "invalid_payload",
            Self::SenderNotServedByEndpoint => "sender_not_served_by_endpoint",
            Self::SenderNotAuthorized => "sender_not_authorized",
            Self::UnknownRecipient => "unknown_recipient",
            Self::RecipientNotAuthorized => "recipient_not_authorized",
            Self::InvalidRecipients => "invalid_recipients",
            Self::UnknownExchange => "unknown_exchange",
            Self::ActionNotAllowedInState => "action_not_allowed_in_state",
            Self::ActionNotAllowedForRole => "action_not_allowed_for_role",
            Self::MessageIdReused => "message_id_reused",
            Self::UnknownDelivery => "unknown_delivery",
            Self::NoRecipients => "no_recipients",
            Self::DeadLettered => "dead_lettered",
            Self::ProcessingFailed => "processing_failed",
        }
    }

    /// The RFC 9457 `title` of this problem kind.
    pub fn title(&self) -> &'static str {
        match self {
            Self::UnknownEndpoint => "The user_id names no active endpoint",
            Self::InvalidMessageId => "The message_id property is missing or not a UUID",
            Self::OversizedBody => "The message body is too large",
            Self::MalformedJson => "The message body is not valid JSON",
            Self::InvalidEnvelope => "The message body is not a valid envelope",
            Self::UnknownMessageType => "The message type is not in the catalogue",
            Self::UnsupportedSchemaVersion => "The schema version is not supported",
            Self::InvalidPayload => "The payload does not match the form",
            Self::SenderNotServedByEndpoint => "The endpoint does not act for this sender",
            Self::SenderNotAuthorized => "The sender may not use this procedure",
            Self::UnknownRecipient => "A recipient is unknown",
            Self::RecipientNotAuthorized => "A recipient may not receive this procedure",
            Self::InvalidRecipients => "The recipients do not fit the action",
            Self::UnknownExchange => "The exchange is unknown",
            Self::ActionNotAllowedInState => "The action is not allowed in the current state",
            Self::ActionNotAllowedForRole => "The sender's role may not take this action",
            Self::MessageIdReused => "The message_id was already used for another message",
            Self::UnknownDelivery => "No such delivery to acknowledge",
            Self::NoRecipients => "The recipients rule found no recipient",
            Self::DeadLettered => "The broker dead-lettered the message",
            Self::ProcessingFailed => "The hub failed each time it processed the message",
        }
    }
}

impl Rejection {
    pub fn new(
        message_id: Option<String>,
        code: RejectionCode,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
        rejected_at: DateTime<Utc>,
    ) -> Self {
        Self {
            message_id,
            problem_type: format!("urn:imi:problem:{}", code.as_str()),
            code,
            title: code.title().to_owned(),
            detail: detail.into(),
            errors,
            rejected_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_codes_serialize_as_their_stable_strings() {
        for code in [
            RejectionCode::InvalidPayload,
            RejectionCode::MessageIdReused,
            RejectionCode::ActionNotAllowedForRole,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }

    /// The layout docs/protocol.md gives integrators, computed there in
    /// Python: UUIDv5 in the hub's namespace of the id's bytes + `receipt`.
    #[test]
    fn a_receipt_id_is_what_the_protocol_document_says() {
        let id = MessageId::new(Uuid::parse_str("01a233ec-de1c-709d-a3f2-b7d881e5796b").unwrap());
        assert_eq!(
            receipt_id(id).to_string(),
            "9087eefd-8995-53d6-8606-9d5adf2f3559"
        );
    }
}

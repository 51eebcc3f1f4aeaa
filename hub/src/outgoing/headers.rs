//! The AMQP headers of a routed message, built in one place for the live
//! pipeline, the relay and a coordinator's reassignment alike.

use std::collections::BTreeMap;

use imi_schemas::protocol::{
    HEADER_ACKNOWLEDGEMENT, HEADER_PARENT_EXCHANGE, HEADER_RECIPIENTS, HEADER_SCHEMA_VERSION,
    HEADER_SENDER, HEADER_TRACEPARENT,
};
use uuid::Uuid;

/// What a recipient learns beside the sender's body, which travels byte for
/// byte.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryHeaders<'a> {
    /// The sending authority.
    pub(crate) sender: &'a str,
    /// The recipient authorities this copy is for (those its endpoint
    /// serves); empty on a broadcast.
    pub(crate) recipients: &'a [String],
    pub(crate) schema_version: i32,
    pub(crate) traceparent: Option<&'a str>,
    /// Set on the message that opened a child exchange (a split).
    pub(crate) parent_exchange: Option<Uuid>,
    /// A copy of a 1:N message: its recipient should acknowledge it.
    pub(crate) acknowledgement_requested: bool,
}

impl DeliveryHeaders<'_> {
    pub(crate) fn to_map(&self) -> BTreeMap<String, String> {
        let mut headers = BTreeMap::new();
        headers.insert(HEADER_SENDER.to_owned(), self.sender.to_owned());
        if !self.recipients.is_empty() {
            headers.insert(HEADER_RECIPIENTS.to_owned(), self.recipients.join(","));
        }
        headers.insert(
            HEADER_SCHEMA_VERSION.to_owned(),
            self.schema_version.to_string(),
        );
        if let Some(tp) = self.traceparent {
            headers.insert(HEADER_TRACEPARENT.to_owned(), tp.to_owned());
        }
        if let Some(parent) = self.parent_exchange {
            headers.insert(HEADER_PARENT_EXCHANGE.to_owned(), parent.to_string());
        }
        if self.acknowledgement_requested {
            headers.insert(HEADER_ACKNOWLEDGEMENT.to_owned(), "requested".to_owned());
        }
        headers
    }
}

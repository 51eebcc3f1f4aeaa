//! The body an adapter publishes to the ingress exchange.
//!
//! Routing facts travel as AMQP properties (see [`crate::protocol`]); the body
//! names who speaks, to whom, and carries the form payload. The hub forwards
//! the body byte for byte to the recipients, so what they receive is exactly
//! what was sent (and what the hub stored and digested).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The JSON body of every message an adapter sends.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "IMI Hub envelope", extend("$id" = "urn:imi:schema:envelope"))]
pub struct Envelope {
    /// The authority on whose behalf the endpoint speaks (`CC-NAME`). The hub
    /// accepts it only if the sending endpoint (the broker-validated `user_id`)
    /// is registered to act for it.
    pub sender: String,
    /// Recipient authorities. A message that opens a request names exactly one;
    /// a 1:N notification with the `explicit` rule names each; a follow-up on an
    /// existing exchange may leave it empty (the hub routes it to the other
    /// parties of the exchange); a dissemination names the authorities added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// For a 1:N procedure whose recipients rule is `countries`: the countries
    /// whose authorities (registered for the procedure) receive it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// The form of the procedure's action, as declared in the catalogue.
    pub payload: serde_json::Value,
}

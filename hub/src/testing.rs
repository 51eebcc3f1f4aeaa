//! Fixtures for the unit tests of decoding and the workflow engine: the
//! shipped catalogue, a registry of a few authorities, and messages as an
//! adapter would publish them. No database, no broker.

use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use imi_broker::Properties;
use imi_schemas::catalogue::{read_folder, Catalogue};
use imi_schemas::ids::MessageId;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::inbound::Decoded;
use crate::pipeline::decode::{decode, DecodeContext};
use crate::registry::{Registry, Status};

/// The catalogue the hub ships, loaded once for all tests.
pub(crate) fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/catalogue");
        Catalogue::parse(&read_folder(dir.as_ref()).expect("catalogue folder"))
            .expect("the shipped catalogue loads")
    })
}

pub(crate) const NOW: fn() -> DateTime<Utc> =
    || Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();

const PROCEDURES: &[&str] = &[
    "pq-information-request",
    "pq-alert",
    "services-alert",
    "gdpr-draft-decision",
];

/// Endpoints and authorities:
/// - `fi-gw`: FI-VALVIRA and FI-OTHER;
/// - `de-gw`: DE-AEKNO; `at-gw`: AT-KAMMER; `se-gw`: SE-SOCIAL;
/// - `fr-gw`: FR-NONE, registered for nothing;
/// - `dk-gw`: DK-PENDING, pending; `it-gw` (suspended): IT-ORDINE.
pub(crate) fn registry() -> Registry {
    let active = Status::Active;
    Registry::default()
        .with_endpoint(
            "fi-gw",
            active,
            &[
                ("FI-VALVIRA", active, PROCEDURES),
                ("FI-OTHER", active, PROCEDURES),
            ],
        )
        .with_endpoint("de-gw", active, &[("DE-AEKNO", active, PROCEDURES)])
        .with_endpoint("at-gw", active, &[("AT-KAMMER", active, PROCEDURES)])
        .with_endpoint("se-gw", active, &[("SE-SOCIAL", active, PROCEDURES)])
        .with_endpoint("fr-gw", active, &[("FR-NONE", active, &[])])
        .with_endpoint(
            "dk-gw",
            active,
            &[("DK-PENDING", Status::Pending, PROCEDURES)],
        )
        .with_endpoint(
            "it-gw",
            Status::Suspended,
            &[("IT-ORDINE", active, PROCEDURES)],
        )
}

/// A message as published to the ingress exchange.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) properties: Properties,
    pub(crate) body: Vec<u8>,
}

impl Published {
    /// `message_type` from `user` speaking for `sender`, with the
    /// catalogue's example payload for it.
    pub(crate) fn new(user: &str, message_type: &str, sender: &str, recipients: &[&str]) -> Self {
        let payload = example(message_type);
        Self::with_body(
            user,
            message_type,
            json!({"sender": sender, "recipients": recipients, "payload": payload}),
        )
    }

    pub(crate) fn with_body(user: &str, message_type: &str, body: Value) -> Self {
        Published {
            properties: Properties {
                message_id: Some(Uuid::now_v7().to_string()),
                correlation_id: None,
                message_type: Some(message_type.to_owned()),
                user_id: Some(user.to_owned()),
                content_type: Some("application/json".into()),
                timestamp: None,
                headers: Default::default(),
            },
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    /// The same message under another AMQP `type`.
    pub(crate) fn retyped(mut self, message_type: &str) -> Self {
        self.properties.message_type = Some(message_type.to_owned());
        self
    }

    /// A follow-up on `exchange`.
    pub(crate) fn on(mut self, exchange: Uuid) -> Self {
        self.properties.correlation_id = Some(exchange.to_string());
        self
    }

    pub(crate) fn message_id(&self) -> Uuid {
        Uuid::parse_str(self.properties.message_id.as_deref().unwrap()).unwrap()
    }

    /// The exchange this message opens (if it opens one).
    pub(crate) fn opened(&self) -> Uuid {
        MessageId::new(self.message_id())
            .opened_exchange()
            .as_uuid()
    }

    pub(crate) fn decode(&self, registry: &Registry) -> Decoded {
        let ctx = DecodeContext {
            catalogue: catalogue(),
            registry,
            max_body_bytes: 256 * 1024,
            now: NOW(),
            subjects: &crate::subjects::SubjectKeyer::from_key([7; 32]),
            data_keys: &crate::at_rest::DataKeys::default(),
        };
        decode(&ctx, &self.properties, self.body.clone())
    }
}

/// The catalogue's example payload for a message type.
pub(crate) fn example(message_type: &str) -> Value {
    let t = imi_schemas::ids::MessageType::try_from(message_type).expect("message type");
    let (_, action) = catalogue().resolve(&t).expect("a catalogue message type");
    action.example.clone().expect("every action has an example")
}

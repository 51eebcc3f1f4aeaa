//! Decoding, rule by rule: each case is one message as an adapter would
//! publish it and what the hub must make of it, with no database or broker.

use imi_schemas::protocol::RejectionCode as Code;
use serde_json::json;
use uuid::Uuid;

use crate::inbound::Decoded;
use crate::testing::{example, registry, Published};

/// What decoding must give.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Accepted for the workflow, with these recipients.
    Inbound {
        recipients: Vec<&'static str>,
    },
    Acknowledgement,
    /// Refused with this code, pointing here (when the rule points).
    Refused(Code, Option<&'static str>),
}

/// What decoding gave, in comparable form.
#[derive(Debug)]
enum Got {
    Inbound(Vec<String>),
    Acknowledgement,
    /// The code and the problems' pointers.
    Refused(Code, Vec<String>),
}

fn outcome(decoded: Decoded) -> Got {
    match decoded {
        Decoded::Inbound(i) => Got::Inbound(i.recipients.iter().map(|a| a.to_string()).collect()),
        Decoded::Acknowledgement(_) => Got::Acknowledgement,
        Decoded::Refused(r) => Got::Refused(
            r.rejection.code,
            r.rejection
                .errors
                .iter()
                .map(|e| e.pointer.clone())
                .collect(),
        ),
    }
}

fn check(rule: &str, message: Published, expect: Expect) {
    let got = outcome(message.decode(&registry()));
    match (expect, got) {
        (Expect::Inbound { recipients }, Got::Inbound(got)) => {
            assert_eq!(got, recipients, "{rule}");
        }
        (Expect::Acknowledgement, Got::Acknowledgement) => {}
        (Expect::Refused(code, pointer), Got::Refused(got, pointers)) => {
            assert_eq!(got, code, "{rule}");
            if let Some(p) = pointer {
                assert!(
                    pointers.iter().any(|x| x == p),
                    "{rule}: pointers {pointers:?} lack {p}"
                );
            }
        }
        (expect, got) => panic!("{rule}: expected {expect:?}, got {got:?}"),
    }
}

const REQUEST: &str = "pq-information-request.send";

fn request() -> Published {
    Published::new("fi-gw", REQUEST, "FI-VALVIRA", &["DE-AEKNO"])
}

#[test]
fn every_decoding_rule() {
    let follow_up = |m: Published| m.on(Uuid::now_v7());
    let mut bad_payload = example(REQUEST);
    bad_payload["professional"]["date_of_birth"] = json!("12/05/1980");
    let cases: Vec<(&str, Published, Expect)> = vec![
        (
            "a valid opening request goes to its one recipient",
            request(),
            Expect::Inbound {
                recipients: vec!["DE-AEKNO"],
            },
        ),
        (
            "without user_id the sender is unknown",
            {
                let mut m = request();
                m.properties.user_id = None;
                m
            },
            Expect::Refused(Code::UnknownEndpoint, Some("#/properties/user_id")),
        ),
        (
            "a suspended endpoint is unknown",
            Published::new("it-gw", REQUEST, "IT-ORDINE", &["DE-AEKNO"]),
            Expect::Refused(Code::UnknownEndpoint, None),
        ),
        (
            "a message_id must be a UUID",
            {
                let mut m = request();
                m.properties.message_id = Some("seven".into());
                m
            },
            Expect::Refused(Code::InvalidMessageId, Some("#/properties/message_id")),
        ),
        (
            "a message_id is required",
            {
                let mut m = request();
                m.properties.message_id = None;
                m
            },
            Expect::Refused(Code::InvalidMessageId, Some("#/properties/message_id")),
        ),
        (
            "a body over the limit is refused",
            {
                let mut m = request();
                m.body = vec![b' '; 300 * 1024];
                m
            },
            Expect::Refused(Code::OversizedBody, None),
        ),
        (
            "a type that is no procedure's action is unknown",
            Published::new("fi-gw", REQUEST, "FI-VALVIRA", &["DE-AEKNO"])
                .retyped("pq-information-request.teleport"),
            Expect::Refused(Code::UnknownMessageType, Some("#/properties/type")),
        ),
        (
            "a schema version the procedure does not list is refused",
            {
                let mut m = request();
                m.properties
                    .headers
                    .insert("imi-schema-version".into(), "99".into());
                m
            },
            Expect::Refused(
                Code::UnsupportedSchemaVersion,
                Some("#/properties/headers/imi-schema-version"),
            ),
        ),
        (
            "a schema version sent as an AMQP field table is refused, not taken as absent",
            {
                let mut m = request();
                m.properties
                    .headers
                    .insert("imi-schema-version".into(), "<field table>".into());
                m
            },
            Expect::Refused(
                Code::UnsupportedSchemaVersion,
                Some("#/properties/headers/imi-schema-version"),
            ),
        ),
        (
            "a schema version sent as an AMQP integer is read",
            {
                let mut m = request();
                m.properties
                    .headers
                    .insert("imi-schema-version".into(), "1".into());
                m
            },
            Expect::Inbound {
                recipients: vec!["DE-AEKNO"],
            },
        ),
        (
            "JSON nested deeper than the parser follows is malformed",
            {
                let mut m = request();
                let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
                m.body = format!(
                    r#"{{"sender":"FI-VALVIRA","recipients":["DE-AEKNO"],"payload":{deep}}}"#
                )
                .into_bytes();
                m
            },
            Expect::Refused(Code::MalformedJson, None),
        ),
        (
            "a body that is not UTF-8 is malformed",
            {
                let mut m = request();
                m.body = b"{\"sender\": \"\xff\xfe\"}".to_vec();
                m
            },
            Expect::Refused(Code::MalformedJson, None),
        ),
        (
            "a body that is not JSON is malformed",
            {
                let mut m = request();
                m.body = b"{not json".to_vec();
                m
            },
            Expect::Refused(Code::MalformedJson, None),
        ),
        (
            "JSON of the wrong shape is not an envelope",
            Published::with_body("fi-gw", REQUEST, json!({"from": "FI-VALVIRA"})),
            Expect::Refused(Code::InvalidEnvelope, None),
        ),
        (
            "an endpoint speaks only for its own authorities",
            Published::new("fi-gw", REQUEST, "DE-AEKNO", &["AT-KAMMER"]),
            Expect::Refused(Code::SenderNotServedByEndpoint, Some("/sender")),
        ),
        (
            "the sender must be registered for the procedure",
            Published::new("fr-gw", REQUEST, "FR-NONE", &["DE-AEKNO"]),
            Expect::Refused(Code::SenderNotAuthorized, Some("/sender")),
        ),
        (
            "the payload must match the action's form",
            Published::with_body(
                "fi-gw",
                REQUEST,
                json!({"sender": "FI-VALVIRA", "recipients": ["DE-AEKNO"], "payload": bad_payload}),
            ),
            Expect::Refused(
                Code::InvalidPayload,
                Some("/payload/professional/date_of_birth"),
            ),
        ),
        (
            "a recipient must be a registered authority",
            Published::new("fi-gw", REQUEST, "FI-VALVIRA", &["DE-NOBODY"]),
            Expect::Refused(Code::UnknownRecipient, Some("/recipients/0")),
        ),
        (
            "a recipient must be registered for the procedure",
            Published::new("fi-gw", REQUEST, "FI-VALVIRA", &["FR-NONE"]),
            Expect::Refused(Code::RecipientNotAuthorized, Some("/recipients/0")),
        ),
        (
            "a recipient behind a suspended endpoint is not authorized",
            Published::new("fi-gw", REQUEST, "FI-VALVIRA", &["IT-ORDINE"]),
            Expect::Refused(Code::RecipientNotAuthorized, Some("/recipients/0")),
        ),
        (
            "a pending recipient is not authorized",
            Published::new("fi-gw", REQUEST, "FI-VALVIRA", &["DK-PENDING"]),
            Expect::Refused(Code::RecipientNotAuthorized, Some("/recipients/0")),
        ),
        (
            "a request opens with exactly one recipient",
            Published::new("fi-gw", REQUEST, "FI-VALVIRA", &["DE-AEKNO", "AT-KAMMER"]),
            Expect::Refused(Code::InvalidRecipients, Some("/recipients")),
        ),
        (
            "only a 1:N procedure chooses countries",
            Published::with_body(
                "fi-gw",
                REQUEST,
                json!({"sender": "FI-VALVIRA", "recipients": ["DE-AEKNO"], "countries": ["AT"], "payload": example(REQUEST)}),
            ),
            Expect::Refused(Code::InvalidRecipients, Some("/countries")),
        ),
        (
            "a follow-up names its exchange in correlation_id",
            Published::new("de-gw", "pq-information-request.accept", "DE-AEKNO", &[]),
            Expect::Refused(Code::UnknownExchange, Some("#/properties/correlation_id")),
        ),
        (
            "a follow-up with its exchange goes to the workflow",
            follow_up(Published::new(
                "de-gw",
                "pq-information-request.accept",
                "DE-AEKNO",
                &[],
            )),
            Expect::Inbound { recipients: vec![] },
        ),
        (
            "an alert to all countries reaches every registered authority but the sender",
            Published::new("de-gw", "pq-alert.send", "DE-AEKNO", &[]),
            Expect::Inbound {
                recipients: vec!["AT-KAMMER", "FI-OTHER", "FI-VALVIRA", "SE-SOCIAL"],
            },
        ),
        (
            "an alert to all countries names no recipients",
            Published::new("de-gw", "pq-alert.send", "DE-AEKNO", &["AT-KAMMER"]),
            Expect::Refused(Code::InvalidRecipients, Some("/recipients")),
        ),
        (
            "an alert by country reaches the countries named",
            Published::with_body(
                "de-gw",
                "services-alert.broadcast",
                json!({"sender": "DE-AEKNO", "countries": ["FI"], "payload": example("services-alert.broadcast")}),
            ),
            Expect::Inbound {
                recipients: vec!["FI-OTHER", "FI-VALVIRA"],
            },
        ),
        (
            "an alert by country needs countries",
            Published::new("de-gw", "services-alert.broadcast", "DE-AEKNO", &[]),
            Expect::Refused(Code::InvalidRecipients, Some("/countries")),
        ),
        (
            "the Commission is no Member State to choose",
            Published::with_body(
                "de-gw",
                "services-alert.broadcast",
                json!({"sender": "DE-AEKNO", "countries": ["EU"], "payload": example("services-alert.broadcast")}),
            ),
            Expect::Refused(Code::InvalidRecipients, Some("/countries/0")),
        ),
        (
            "an alert to countries where nobody is registered has no recipients",
            Published::with_body(
                "de-gw",
                "services-alert.broadcast",
                json!({"sender": "DE-AEKNO", "countries": ["PT"], "payload": example("services-alert.broadcast")}),
            ),
            Expect::Refused(Code::NoRecipients, Some("/recipients")),
        ),
        (
            "an explicit 1:N procedure reaches those named",
            Published::new(
                "de-gw",
                "gdpr-draft-decision.submit",
                "DE-AEKNO",
                &["SE-SOCIAL"],
            ),
            Expect::Inbound {
                recipients: vec!["SE-SOCIAL"],
            },
        ),
        (
            "an endpoint acknowledges for its own authorities",
            Published::with_body(
                "fi-gw",
                "imi.acknowledgement",
                json!({"message_id": Uuid::now_v7(), "authorities": ["FI-VALVIRA"]}),
            ),
            Expect::Acknowledgement,
        ),
        (
            "an endpoint does not acknowledge for others",
            Published::with_body(
                "fi-gw",
                "imi.acknowledgement",
                json!({"message_id": Uuid::now_v7(), "authorities": ["DE-AEKNO"]}),
            ),
            Expect::Refused(Code::SenderNotServedByEndpoint, Some("/authorities")),
        ),
        (
            "an acknowledgement names the copy it acknowledges",
            Published::with_body("fi-gw", "imi.acknowledgement", json!({"copy": 1})),
            Expect::Refused(Code::InvalidEnvelope, None),
        ),
    ];
    for (rule, message, expect) in cases {
        check(rule, message, expect);
    }
}

#[test]
fn a_refused_body_is_kept_truncated_with_the_digest_of_all_of_it() {
    let mut m = request();
    m.body = vec![b'x'; 300 * 1024];
    let Decoded::Refused(refusal) = m.decode(&registry()) else {
        panic!("accepted an oversized body");
    };
    assert_eq!(refusal.body_size, 300 * 1024);
    assert_eq!(refusal.body.len(), 256 * 1024);
    assert_eq!(refusal.reply_to.as_ref().map(|e| e.as_str()), Some("fi-gw"));
    let digest: [u8; 32] =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&m.body)).into();
    assert_eq!(refusal.digest, digest);
}

#[test]
fn an_unknown_sender_is_not_answered() {
    let mut m = request();
    m.properties.user_id = Some("nobody".into());
    let Decoded::Refused(refusal) = m.decode(&registry()) else {
        panic!("accepted");
    };
    assert!(refusal.reply_to.is_none(), "no inbox to answer");
}

#[test]
fn a_payload_deadline_is_read_from_the_opening_message() {
    let m = Published::new("de-gw", "pq-alert.send", "DE-AEKNO", &[]);
    let Decoded::Inbound(inbound) = m.decode(&registry()) else {
        panic!("refused");
    };
    let step = inbound.step.one_to_many.expect("1:N");
    let deadlines = &step.field_deadlines;
    assert!(
        !deadlines.is_empty(),
        "pq-alert counts a deadline from a payload date"
    );
    assert!(step.broadcasts && step.can_be_validated);
}

#[test]
fn a_traceparent_is_passed_on_only_in_w3c_form() {
    let traced = |value: &str| {
        let mut m = request();
        m.properties
            .headers
            .insert("traceparent".into(), value.into());
        let Decoded::Inbound(inbound) = m.decode(&registry()) else {
            panic!("refused");
        };
        inbound.traceparent
    };
    let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(traced(w3c).as_deref(), Some(w3c));
    for junk in ["<field table>", "00-xyz-00f067aa0ba902b7-01", "", "1"] {
        assert_eq!(traced(junk), None, "{junk:?} is not passed on");
    }
}

/// Whatever arrives, decoding never panics: it accepts or refuses with a
/// reason, and a refused body is kept within the limit.
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    const MAX_BODY: usize = 256 * 1024;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[A-Z0-9-]{0,12}".prop_map(Value::from),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}".prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,14}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A property value: absent, one that means something here, or noise.
    fn text(meaningful: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            prop::sample::select(meaningful).prop_map(|s| Some(s.to_owned())),
            any::<String>().prop_map(Some),
        ]
    }

    fn assert_sound(decoded: Decoded) -> Result<(), TestCaseError> {
        if let Decoded::Refused(r) = decoded {
            prop_assert!(!r.rejection.detail.is_empty(), "a refusal says why");
            prop_assert!(r.body.len() <= MAX_BODY, "a kept body is truncated");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any properties, headers and bytes.
        #[test]
        fn any_delivery_is_accepted_or_refused_with_a_reason(
            message_id in text(&["0190b5d2-4a35-7c3e-8a2b-1c2d3e4f5a6b", "seven"]),
            message_type in text(&[REQUEST, "pq-information-request.answer", "pq-alert.send", "imi.acknowledgement"]),
            user_id in text(&["fi-gw", "de-gw", "it-gw"]),
            correlation_id in text(&["0190b5d2-4a35-7c3e-8a2b-1c2d3e4f5a6b"]),
            headers in prop::collection::btree_map(
                prop_oneof![Just("imi-schema-version".to_owned()), Just("traceparent".to_owned()), any::<String>()],
                any::<String>(),
                0..4,
            ),
            body in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut m = request();
            m.properties.message_id = message_id;
            m.properties.message_type = message_type;
            m.properties.user_id = user_id;
            m.properties.correlation_id = correlation_id;
            m.properties.headers = headers;
            m.body = body;
            assert_sound(m.decode(&registry()))?;
        }

        /// A well-formed envelope around any payload and recipients: the
        /// form decides, never a panic.
        #[test]
        fn any_payload_is_validated_not_a_panic(
            payload in json_value(),
            recipients in prop::collection::vec(
                prop_oneof![Just("DE-AEKNO".to_owned()), Just("DK-PENDING".to_owned()), any::<String>()],
                0..3,
            ),
            countries in prop::collection::vec(prop_oneof![Just("DE".to_owned()), any::<String>()], 0..3),
            message_type in prop::sample::select(&[REQUEST, "pq-alert.send"][..]),
        ) {
            let sender = if message_type == REQUEST { ("fi-gw", "FI-VALVIRA") } else { ("de-gw", "DE-AEKNO") };
            let m = Published::with_body(
                sender.0,
                message_type,
                json!({"sender": sender.1, "recipients": recipients, "countries": countries, "payload": payload}),
            );
            assert_sound(m.decode(&registry()))?;
        }

        /// The catalogue's example with one node replaced by any value.
        #[test]
        fn an_example_with_any_node_replaced_is_validated_not_a_panic(
            choice in any::<prop::sample::Index>(),
            replacement in json_value(),
        ) {
            let mut payload = example(REQUEST);
            let mut all = Vec::new();
            pointers(&payload, String::new(), &mut all);
            let at = choice.get(&all).clone();
            match payload.pointer_mut(&at) {
                Some(node) if !at.is_empty() => *node = replacement,
                _ => payload = replacement,
            }
            let m = Published::with_body(
                "fi-gw",
                REQUEST,
                json!({"sender": "FI-VALVIRA", "recipients": ["DE-AEKNO"], "payload": payload}),
            );
            assert_sound(m.decode(&registry()))?;
        }
    }

    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, c)| pointers(c, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
            _ => {}
        }
    }
}

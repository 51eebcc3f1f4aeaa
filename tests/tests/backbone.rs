//! The backbone end to end: adapters → RabbitMQ → hub → PostgreSQL → RabbitMQ
//! → adapters, against the machine's real services.

use std::time::Duration;

use imi_adapters::{Incoming, OutgoingMessage};
use imi_broker::Properties;
use imi_schemas::ids::{AuthorityId, ExchangeId, MessageId, MessageType};
use imi_schemas::protocol::RejectionCode;
use imi_tests::{
    assert_quiet, diploma_request, finish, next_acked, next_receipt, next_rejection, request_to_de,
    TestEnv, World,
};
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reaches_the_recipient_and_the_sender_gets_a_receipt() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;

    let id = fi.send(&request_to_de()).await.unwrap();

    let (delivered_id, exchange, incoming) = next_acked(&mut de_inbox, 20).await;
    assert_eq!(
        delivered_id,
        id.to_string(),
        "the recipient sees the sender's message_id"
    );
    let Incoming::Message(m) = incoming else {
        panic!("expected a routed message, got {incoming:?}")
    };
    assert_eq!(m.sender, "FI-VALVIRA");
    assert_eq!(m.recipients, vec!["DE-AEKNO".to_owned()]);
    assert_eq!(m.message_type, "pq-information-request.send");
    assert_eq!(m.envelope.payload, diploma_request());
    let exchange = exchange.expect("routed messages carry the exchange id");

    let receipt = next_receipt(&mut fi_inbox).await;
    assert_eq!(receipt.message_id, id.as_uuid());
    assert_eq!(receipt.exchange_id.to_string(), exchange);
    assert_eq!(receipt.state, "sent");
    assert_eq!(receipt.recipients, vec!["DE-AEKNO".to_owned()]);

    // All of it is in the database, the body byte for byte.
    let pool = env.pool().await;
    let (sender, raw, state): (String, Vec<u8>, String) = sqlx::query_as(
        "SELECT m.sender, m.raw, e.state FROM messages m JOIN exchanges e ON e.id = m.exchange_id WHERE m.id = $1",
    )
    .bind(id.as_uuid())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sender, "FI-VALVIRA");
    // Stored sealed (the tests run with encryption at rest on), as sent.
    assert_ne!(raw, m.raw);
    assert_eq!(imi_hub::at_rest::read_stored(&raw).unwrap(), m.raw);
    assert_eq!(state, "sent");
    let stored: serde_json::Value =
        serde_json::from_slice(&imi_hub::at_rest::read_stored(&raw).unwrap()).unwrap();
    assert_eq!(stored["payload"], diploma_request());
    // The batch's publishes were all confirmed by the broker and marked so.
    let mut unconfirmed = 1;
    for _ in 0..50 {
        unconfirmed =
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM batches WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if unconfirmed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(unconfirmed, 0);
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM outbox ORDER BY kind")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(kinds, vec!["delivery", "receipts"]);

    // Health and metrics answer.
    let ready = reqwest::get(format!("{}/readyz", hub.http)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", hub.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("imi_ingress_messages_total{outcome=\"accepted\"} 1"),
        "{metrics}"
    );

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

/// The references between a batch's rows are checked once per statement
/// (migration 13) instead of by per-row foreign keys: a row naming no exchange
/// or batch is refused with the foreign-key error, and so is deleting an
/// exchange or batch that rows still name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_rows_that_name_no_exchange_or_batch() {
    let World {
        env,
        hub,
        fi,
        de,
        mut de_inbox,
        ..
    } = World::start(TestEnv::new().await).await;
    let id = fi.send(&request_to_de()).await.unwrap();
    next_acked(&mut de_inbox, 20).await;
    let pool = env.pool().await;
    let (exchange, batch): (Uuid, Uuid) =
        sqlx::query_as("SELECT exchange_id, batch_id FROM messages WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();

    let refused = |result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(
            error.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("23503"),
            "{what}: {error}"
        );
    };
    let unknown = Uuid::new_v4();
    refused(
        sqlx::query(
            "INSERT INTO transitions (exchange_id, message_id, action, to_state) VALUES ($1, $2, 'x', 'y')",
        )
        .bind(unknown)
        .bind(Uuid::new_v4())
        .execute(&pool)
        .await,
        "a transition of no exchange",
    );
    refused(
        sqlx::query(
            "INSERT INTO messages (id, exchange_id, message_type, schema_version, sender, sender_endpoint,
                                   recipients, raw, raw_sha256, batch_id)
             SELECT $1, exchange_id, message_type, schema_version, sender, sender_endpoint, recipients,
                    raw, raw_sha256, $2 FROM messages WHERE id = $3",
        )
        .bind(Uuid::new_v4())
        .bind(unknown)
        .bind(id.as_uuid())
        .execute(&pool)
        .await,
        "a message of no batch",
    );
    refused(
        sqlx::query("UPDATE messages SET exchange_id = $1 WHERE id = $2")
            .bind(unknown)
            .bind(id.as_uuid())
            .execute(&pool)
            .await,
        "a message moved to no exchange",
    );
    refused(
        sqlx::query("DELETE FROM exchanges WHERE id = $1")
            .bind(exchange)
            .execute(&pool)
            .await,
        "deleting an exchange with messages",
    );
    refused(
        sqlx::query("DELETE FROM batches WHERE id = $1")
            .bind(batch)
            .execute(&pool)
            .await,
        "deleting a batch with messages",
    );
    // Rows that name what exists still go in.
    sqlx::query(
        "INSERT INTO transitions (exchange_id, message_id, action, to_state) VALUES ($1, $2, 'x', 'y')",
    )
    .bind(exchange)
    .bind(id.as_uuid())
    .execute(&pool)
    .await
    .unwrap();

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_flows_back_on_the_same_exchange_and_the_workflow_is_enforced() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;

    fi.send(&request_to_de()).await.unwrap();
    let (_, exchange, _) = next_acked(&mut de_inbox, 20).await;
    let exchange = ExchangeId::try_from(exchange.unwrap().as_str()).unwrap();
    next_acked(&mut fi_inbox, 20).await; // receipt

    let answer = |sender: &str, action: &str, payload: serde_json::Value| OutgoingMessage {
        message_type: MessageType::try_from(format!("pq-information-request.{action}").as_str())
            .unwrap(),
        sender: AuthorityId::try_from(sender).unwrap(),
        recipients: vec![],
        exchange: Some(exchange),
        payload,
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    };
    let answers = json!({"answers": [{"question": "PQ-Q-DIPLOMA-AUTHENTIC", "answer": "YES"}]});

    // The requester may not answer its own request.
    fi.send(&answer("FI-VALVIRA", "answer", answers.clone()))
        .await
        .unwrap();
    let r = next_rejection(&mut fi_inbox).await;
    assert_eq!(r.code, RejectionCode::ActionNotAllowedForRole);

    // Closing before the answer is not allowed in state `sent`.
    fi.send(&answer("FI-VALVIRA", "close", json!({"satisfied": true})))
        .await
        .unwrap();
    let r = next_rejection(&mut fi_inbox).await;
    assert_eq!(r.code, RejectionCode::ActionNotAllowedInState);

    // The responder answers; the requester receives it under the same exchange.
    let answer_id = de
        .send(&answer("DE-AEKNO", "answer", answers.clone()))
        .await
        .unwrap();
    let receipt = next_receipt(&mut de_inbox).await;
    assert_eq!(receipt.state, "answered");
    assert_eq!(receipt.exchange_id, exchange.as_uuid());
    let (id, ex, incoming) = next_acked(&mut fi_inbox, 20).await;
    assert_eq!(id, answer_id.to_string());
    assert_eq!(ex.as_deref(), Some(exchange.to_string().as_str()));
    let Incoming::Message(m) = incoming else {
        panic!("expected the answer, got {incoming:?}")
    };
    assert_eq!(m.envelope.payload, answers);

    // A follow-up on an exchange that does not exist.
    let mut lost = answer("FI-VALVIRA", "close", json!({"satisfied": true}));
    lost.exchange = Some(ExchangeId::new(Uuid::new_v4()));
    fi.send(&lost).await.unwrap();
    let r = next_rejection(&mut fi_inbox).await;
    assert_eq!(r.code, RejectionCode::UnknownExchange);

    let pool = env.pool().await;
    let transitions: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT from_state, to_state FROM transitions WHERE exchange_id = $1 ORDER BY id",
    )
    .bind(exchange.as_uuid())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        transitions,
        vec![
            (None, "sent".into()),
            (Some("sent".into()), "answered".into())
        ]
    );

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_payload_is_rejected_naming_the_field_and_nothing_is_routed() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;

    let mut message = request_to_de();
    message.payload["professional"]["date_of_birth"] = json!("12.04.1988");
    let id = fi.send(&message).await.unwrap();

    let r = next_rejection(&mut fi_inbox).await;
    assert_eq!(r.code, RejectionCode::InvalidPayload);
    assert_eq!(r.message_id.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(r.problem_type, "urn:imi:problem:invalid_payload");
    assert!(
        r.errors
            .iter()
            .any(|e| e.pointer == "/payload/professional/date_of_birth"),
        "{:?}",
        r.errors
    );
    assert_quiet(&mut de_inbox, 1500).await;

    // Kept for inspection, not stored as a message.
    let pool = env.pool().await;
    let (code, body): (String, Vec<u8>) =
        sqlx::query_as("SELECT code, body FROM rejected_messages WHERE message_id = $1")
            .bind(id.to_string())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(code, "invalid_payload");
    // Sealed at rest (the tests run with encryption on), kept whole.
    let body = imi_hub::at_rest::read_stored(&body).unwrap();
    assert!(String::from_utf8(body).unwrap().contains("12.04.1988"));
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(messages, 0);

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_processed_again_is_recorded_once() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        de_inbox: _de_inbox,
    } = World::start(TestEnv::new().await).await;
    let user = env.endpoints[0].id.clone();
    let mut payload = diploma_request();
    payload["professional"]["date_of_birth"] = json!("12.04.1988");
    let body = serde_json::to_vec(&json!({
        "sender": "FI-VALVIRA", "recipients": ["DE-AEKNO"], "payload": payload
    }))
    .unwrap();
    // The same delivery twice, as after a crash before its ack: in one
    // batch, and again in a later one.
    let properties = props("pq-information-request.send", &user);
    let id = properties.message_id.clone().unwrap();
    for _ in 0..2 {
        fi.send_raw(properties.clone(), body.clone()).await.unwrap();
    }
    let first = next_rejection(&mut fi_inbox).await;
    assert_eq!(first.message_id.as_deref(), Some(id.as_str()));
    fi.send_raw(properties.clone(), body.clone()).await.unwrap();
    // A later message's rejection: everything before it is processed.
    let mut marker = props("pq-information-request.send", &user);
    marker
        .headers
        .insert("imi-schema-version".into(), "7".into());
    let marker_id = marker.message_id.clone().unwrap();
    fi.send_raw(marker, body.clone()).await.unwrap();
    loop {
        let r = next_rejection(&mut fi_inbox).await;
        if r.message_id.as_deref() == Some(marker_id.as_str()) {
            break;
        }
    }

    let pool = env.pool().await;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rejected_messages WHERE message_id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows, 1,
        "one refusal per message_id, however often it comes"
    );

    // Another sender's message under the same id is its own refusal.
    let de_user = env.endpoints[1].id.clone();
    let mut theirs = props("pq-information-request.send", &de_user);
    theirs.message_id = Some(id.clone());
    theirs.user_id = Some(de_user.clone());
    de.send_raw(theirs, body.clone()).await.unwrap();
    let mut rows: i64 = 0;
    for _ in 0..100 {
        rows = sqlx::query_scalar("SELECT count(*) FROM rejected_messages WHERE message_id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
        if rows == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows, 2);

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

fn props(message_type: &str, user: &str) -> Properties {
    Properties {
        message_id: Some(Uuid::new_v4().to_string()),
        message_type: Some(message_type.into()),
        user_id: Some(user.into()),
        content_type: Some("application/json".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_rejections_and_the_hub_stays_up() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;
    let user = env.endpoints[0].id.clone();
    let good_body = serde_json::to_vec(&json!({
        "sender": "FI-VALVIRA", "recipients": ["DE-AEKNO"], "payload": diploma_request()
    }))
    .unwrap();

    let mut no_id = props("pq-information-request.send", &user);
    no_id.message_id = None;
    let oversized = {
        let mut v = json!({"sender": "FI-VALVIRA", "recipients": ["DE-AEKNO"], "payload": diploma_request()});
        v["payload"]["free_text"] = json!("x".repeat(300 * 1024));
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(&str, Properties, Vec<u8>, RejectionCode, &str)> = vec![
        ("unknown type", props("pq-made-up.send", &user), good_body.clone(), RejectionCode::UnknownMessageType, "#/properties/type"),
        ("malformed JSON", props("pq-information-request.send", &user), b"{\"sender\": ".to_vec(), RejectionCode::MalformedJson, ""),
        ("not an envelope", props("pq-information-request.send", &user), b"[1,2,3]".to_vec(), RejectionCode::InvalidEnvelope, ""),
        ("oversized", props("pq-information-request.send", &user), oversized, RejectionCode::OversizedBody, ""),
        ("no message id", no_id, good_body.clone(), RejectionCode::InvalidMessageId, "#/properties/message_id"),
        (
            "unknown recipient",
            props("pq-information-request.send", &user),
            serde_json::to_vec(&json!({"sender": "FI-VALVIRA", "recipients": ["SE-NOBODY"], "payload": diploma_request()})).unwrap(),
            RejectionCode::UnknownRecipient,
            "/recipients/0",
        ),
        (
            "recipient not registered for the procedure",
            props("pq-information-request.send", &user),
            serde_json::to_vec(&json!({"sender": "FI-VALVIRA", "recipients": ["FR-CNOM"], "payload": diploma_request()})).unwrap(),
            RejectionCode::RecipientNotAuthorized,
            "/recipients/0",
        ),
        (
            "two recipients for a 1:1 request",
            props("pq-information-request.send", &user),
            serde_json::to_vec(&json!({"sender": "FI-VALVIRA", "recipients": ["DE-AEKNO", "FI-TEO"], "payload": diploma_request()})).unwrap(),
            RejectionCode::InvalidRecipients,
            "/recipients",
        ),
        (
            "unsupported schema version",
            {
                let mut p = props("pq-information-request.send", &user);
                p.headers.insert("imi-schema-version".into(), "7".into());
                p
            },
            good_body.clone(),
            RejectionCode::UnsupportedSchemaVersion,
            "#/properties/headers/imi-schema-version",
        ),
    ];
    for (name, properties, body, code, pointer) in cases {
        fi.send_raw(properties, body).await.unwrap();
        let (_, _, incoming) = next_acked(&mut fi_inbox, 20).await;
        let Incoming::Rejection(r) = incoming else {
            panic!("{name}: expected a rejection, got {incoming:?}")
        };
        assert_eq!(r.code, code, "{name}: {}", r.detail);
        assert!(!r.detail.is_empty(), "{name}");
        if !pointer.is_empty() {
            assert!(
                r.errors.iter().any(|e| e.pointer == pointer),
                "{name}: {:?}",
                r.errors
            );
        }
    }
    assert_quiet(&mut de_inbox, 500).await;

    // Still up: a good message flows.
    fi.send(&request_to_de()).await.unwrap();
    let (_, _, incoming) = next_acked(&mut de_inbox, 20).await;
    assert!(matches!(incoming, Incoming::Message(_)), "{incoming:?}");

    let pool = env.pool().await;
    let rejected: i64 = sqlx::query_scalar("SELECT count(*) FROM rejected_messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rejected, 9);
    let (size, kept): (i32, Vec<u8>) = sqlx::query_as(
        "SELECT body_size, body FROM rejected_messages WHERE code = 'oversized_body'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let kept = imi_hub::at_rest::read_stored(&kept).unwrap().len();
    assert!(size > 300 * 1024 && kept == 256 * 1024, "{size} {kept}");

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_cannot_speak_for_an_authority_it_does_not_serve_nor_forge_its_user_id() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;

    // fi claims to send for DE-AEKNO, which only de serves.
    let mut message = request_to_de();
    message.sender = AuthorityId::try_from("DE-AEKNO").unwrap();
    message.recipients = vec![AuthorityId::try_from("FI-VALVIRA").unwrap()];
    fi.send(&message).await.unwrap();
    let r = next_rejection(&mut fi_inbox).await;
    assert_eq!(r.code, RejectionCode::SenderNotServedByEndpoint);
    assert!(r.errors.iter().any(|e| e.pointer == "/sender"));

    // fi forges de's user_id: the broker itself refuses the publish.
    let mut forged = props("pq-information-request.send", &env.endpoints[1].id);
    forged.message_id = Some(Uuid::new_v4().to_string());
    let body = serde_json::to_vec(
        &json!({"sender": "DE-AEKNO", "recipients": ["FI-VALVIRA"], "payload": diploma_request()}),
    )
    .unwrap();
    let refused = fi.send_raw(forged, body).await;
    assert!(
        refused.is_err(),
        "the broker must refuse a forged user_id, got {refused:?}"
    );

    assert_quiet(&mut de_inbox, 1000).await;
    assert_quiet(&mut fi_inbox, 200).await;
    let pool = env.pool().await;
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(messages, 0);

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_id_sent_twice_is_delivered_once() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;

    let mut message = request_to_de();
    message.message_id = Some(MessageId::new(Uuid::new_v4()));
    fi.send(&message).await.unwrap();
    let (first, _, _) = next_acked(&mut de_inbox, 20).await;
    fi.send(&message).await.unwrap();
    // The sender gets its receipt (again: the retry probably means it missed it);
    // its SDK inbox drops the second copy, so the application sees one receipt.
    let (_, _, incoming) = next_acked(&mut fi_inbox, 20).await;
    assert!(matches!(incoming, Incoming::Receipt(_)), "{incoming:?}");
    assert_quiet(&mut de_inbox, 1500).await;
    assert_quiet(&mut fi_inbox, 200).await;
    assert_eq!(first, message.message_id.unwrap().to_string());

    // The same id with different content is refused, not silently absorbed.
    let mut reused = message.clone();
    reused.payload["free_text"] = json!("changed");
    fi.send(&reused).await.unwrap();
    let r = next_rejection(&mut fi_inbox).await;
    assert_eq!(r.code, RejectionCode::MessageIdReused);

    let pool = env.pool().await;
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM outbox WHERE kind = 'delivery')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counts, (1, 1));

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_sent_again_is_the_same_receipt() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let fi = env.adapter(0).await;
    // The receipts as they travel, read from the sender's inbox with a
    // plain consumer (the SDK would drop the repeated one).
    let url = imi_broker::connection_url(&imi_tests::amqp_base_url(), &env.vhost, None).unwrap();
    let reader = imi_broker::Broker::start(
        imi_broker::BrokerConfig {
            tls: None,
            url,
            connection_name: "test-receipts".into(),
        },
        imi_broker::Topology::default(),
    );
    reader
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let inbox = imi_schemas::protocol::inbox_queue(&env.endpoints[0].id);
    let mut deliveries = reader.consume(&inbox, 10, stop.clone());

    let mut message = request_to_de();
    let id = MessageId::new(Uuid::now_v7());
    message.message_id = Some(id);
    let mut accepted = Vec::new();
    for _ in 0..2 {
        fi.send(&message).await.unwrap();
        let receipt = loop {
            let d = tokio::time::timeout(Duration::from_secs(20), deliveries.recv())
                .await
                .expect("a receipt")
                .expect("the inbox is consumed");
            d.acker.ack().await.unwrap();
            let Ok(batch) = serde_json::from_slice::<imi_schemas::protocol::ReceiptBatch>(&d.body)
            else {
                continue;
            };
            if let Some(r) = batch
                .receipts
                .into_iter()
                .find(|r| r.message_id == id.as_uuid())
            {
                break r;
            }
        };
        accepted.push(receipt.accepted_at);
    }
    assert_eq!(
        accepted[0], accepted[1],
        "the receipt sent again says when the message was accepted, as the first did"
    );

    stop.cancel();
    reader.close().await;
    finish(env, hub, vec![fi]).await;
}

//! What the broker dead-letters is not dropped: the hub consumes
//! `imi.dead-letters`, keeps each message with the broker's reason among the
//! refused messages (`dead_lettered`), acks it only then, and the console
//! shows it grouped by cause. A sender's message the broker gave up on
//! because the hub kept failing while holding it is re-driven by the hub.

use std::collections::HashSet;
use std::time::Duration;

use imi_broker::{Broker, BrokerConfig, Outgoing, Properties, Topology};
use imi_hub::accounts::{AccountRole, Scope};
use imi_schemas::protocol::{DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, INGRESS_QUEUE};
use imi_tests::console::{console_account, ConsoleUser};
use imi_tests::{
    amqp_base_url, finish, next_acked, next_receipt, open_inbox, request_to_de, TestEnv,
};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_kept_with_their_reason_and_shown() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;

    // What RabbitMQ does when a message exceeds its delivery limit: it
    // republishes it to the dead-letter exchange with its reason.
    let url = imi_broker::connection_url(&amqp_base_url(), &env.vhost, None).unwrap();
    let broker = Broker::start(
        BrokerConfig {
            tls: None,
            url,
            connection_name: "test-dead-letters".into(),
        },
        Topology::default(),
    );
    broker
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let message_id = uuid::Uuid::now_v7().to_string();
    let dead_letter = |message_id: &str, queue: &str| {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert(
            "x-first-death-reason".to_owned(),
            "delivery_limit".to_owned(),
        );
        headers.insert("x-first-death-queue".to_owned(), queue.to_owned());
        headers.insert("imi-schema-version".to_owned(), "1".to_owned());
        Outgoing {
            exchange: DEAD_LETTER_EXCHANGE.into(),
            routing_key: String::new(),
            mandatory: true,
            properties: Properties {
                message_id: Some(message_id.to_owned()),
                correlation_id: None,
                message_type: Some("pq-information-request.send".into()),
                user_id: None,
                content_type: Some("application/json".into()),
                timestamp: None,
                headers,
            },
            body: br#"{"sender": "FI-VALVIRA", "recipients": ["DE-AEKNO"], "payload": {}}"#
                .to_vec(),
        }
    };
    // One from a sender the hub never got through, one of the hub's
    // own deliveries that a recipient's system never took.
    let delivery_id = uuid::Uuid::now_v7().to_string();
    broker
        .publisher()
        .publish_all(&[
            dead_letter(&message_id, "imi.hub.ingress"),
            dead_letter(&delivery_id, "imi.inbox.de-aekno"),
        ])
        .await
        .unwrap();

    // Kept, with the broker's reason and the headers re-driving needs.
    let mut kept = None;
    for _ in 0..100 {
        kept = sqlx::query_as::<_, (String, String, serde_json::Value)>(
            "SELECT code, detail, headers FROM rejected_messages WHERE message_id = $1",
        )
        .bind(&message_id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, detail, headers) = kept.expect("the dead letter is kept");
    assert_eq!(code, "dead_lettered");
    assert!(
        detail.contains("delivery_limit") && detail.contains("imi.hub.ingress"),
        "{detail}"
    );
    assert_eq!(headers["imi-schema-version"], "1");

    // A delivery dead-lettered from an inbox is kept to be looked into, and
    // not offered for re-driving as if an endpoint had sent it.
    let mut kept = None;
    for _ in 0..100 {
        kept = sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT detail, user_id FROM rejected_messages WHERE message_id = $1",
        )
        .bind(&delivery_id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (detail, user_id) = kept.expect("the inbox's dead letter is kept");
    assert!(
        detail.contains("imi.inbox.de-aekno") && detail.contains("recipient"),
        "{detail}"
    );
    assert_eq!(user_id, None);

    // And acked: the dead-letter queue is empty again.
    let mut depth = u64::MAX;
    for _ in 0..50 {
        let queues = env.management.queues(&env.vhost).await.unwrap();
        depth = queues
            .iter()
            .find(|q| q.name == DEAD_LETTER_QUEUE)
            .map_or(0, |q| q.messages);
        if depth == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(depth, 0, "the dead letter was acked once kept");

    // The console shows it among the refused, grouped by cause.
    let (name, password) =
        console_account(&pool, "ops", AccountRole::Operator, Scope::default()).await;
    let mut user = ConsoleUser::new(&hub.http, &name, &password);
    user.log_in().await;
    let page = user.get("/console/refused").await;
    assert!(page.body.contains("dead_lettered"), "{}", page.body);
    broker.close().await;
    pool.close().await;
    finish(env, hub, vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_the_broker_gave_up_on_are_re_driven_and_reach_their_recipients() {
    let env = TestEnv::new().await;
    // Declares the topology, then is gone: nothing consumes.
    env.start_hub().await.stop().await;
    let fi = env.adapter(0).await;
    let requests: Vec<_> = (0..10).map(|_| request_to_de()).collect();
    let ids: HashSet<String> = fi
        .send_batch(&requests)
        .await
        .unwrap()
        .iter()
        .map(|id| id.to_string())
        .collect();

    // What 50 crashes of a hub holding them do: each delivery goes back to
    // the queue unacked, until the broker dead-letters it.
    let url = imi_broker::connection_url(&amqp_base_url(), &env.vhost, None).unwrap();
    let broker = Broker::start(
        BrokerConfig {
            tls: None,
            url,
            connection_name: "test-crashing-consumer".into(),
        },
        Topology::default(),
    );
    broker
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let mut deliveries = broker.consume(INGRESS_QUEUE, 50, stop.clone());
    let mut returned = 0;
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(3), deliveries.recv()).await {
        d.acker.reject(true).await.unwrap();
        returned += 1;
    }
    stop.cancel();
    broker.close().await;
    assert!(
        returned >= 10 * 50,
        "every message came back 50 times: {returned}"
    );

    // A hub starts: it keeps them, re-drives them, and they go through as
    // if nothing had happened: stored, routed, receipted.
    let hub = env.start_hub().await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _a) = open_inbox(&fi);
    let (mut de_inbox, _b) = open_inbox(&de);
    let mut receipted = HashSet::new();
    while receipted.len() < ids.len() {
        let r = next_receipt(&mut fi_inbox).await;
        receipted.insert(r.message_id.to_string());
    }
    assert_eq!(receipted, ids);
    let mut delivered = HashSet::new();
    while delivered.len() < ids.len() {
        let (id, _, _) = next_acked(&mut de_inbox, 30).await;
        delivered.insert(id);
    }
    assert_eq!(delivered, ids);
    let pool = env.pool().await;
    // Marked done once the re-drive has published what it committed (the
    // recipient may see the message a moment before).
    let mut kept: Vec<(String, Option<String>, Option<String>, i32)> = Vec::new();
    for _ in 0..100 {
        kept = sqlx::query_as(
            "SELECT code, resolution, resolved_by, auto_redrives FROM rejected_messages",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        if kept.iter().all(|k| k.1.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kept.len(), ids.len(), "each kept once: {kept:?}");
    assert!(
        kept.iter().all(|k| k
            == &(
                "dead_lettered".to_owned(),
                Some("redriven".to_owned()),
                Some("hub".to_owned()),
                1
            )),
        "{kept:?}"
    );

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_hub_fails_on_every_time_is_refused_to_its_sender() {
    let env = TestEnv::new().await;
    env.start_hub().await.stop().await;
    let pool = env.pool().await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _stop) = open_inbox(&fi);
    let body = serde_json::to_vec(&serde_json::json!({
        "sender": "FI-VALVIRA", "recipients": ["DE-AEKNO"], "payload": imi_tests::diploma_request()
    }))
    .unwrap();
    // Two kept dead letters of the sender's: one the hub already failed on
    // three times (each try counted before it was made), one whose first
    // try did not finish.
    let (exhausted, interrupted) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (id, tries) in [(exhausted, 3), (interrupted, 1)] {
        sqlx::query(
            "INSERT INTO rejected_messages (message_id, user_id, message_type, code, detail, body,
                                            body_size, body_sha256, headers, auto_redrives)
             VALUES ($1, $2, 'pq-information-request.send', 'dead_lettered', 'delivery_limit', $3, $4,
                     '\\x00', '{}', $5)",
        )
        .bind(id.to_string())
        .bind(&env.endpoints[0].id)
        .bind(&body)
        .bind(body.len() as i32)
        .bind(tries)
        .execute(&pool)
        .await
        .unwrap();
    }

    // A hub starts: the interrupted one is tried again, alone, and goes
    // through; the exhausted one is refused to its sender with a reason.
    let hub = env.start_hub().await;
    let (mut receipt, mut rejection) = (None, None);
    while receipt.is_none() || rejection.is_none() {
        match next_acked(&mut fi_inbox, 30).await.2 {
            imi_adapters::Incoming::Receipt(r) => receipt = Some(r),
            imi_adapters::Incoming::Rejection(r) => rejection = Some(r),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(receipt.unwrap().message_id, interrupted);
    let rejection = rejection.unwrap();
    assert_eq!(rejection.message_id, Some(exhausted.to_string()));
    assert_eq!(
        rejection.code,
        imi_schemas::protocol::RejectionCode::ProcessingFailed
    );
    let mut expected = vec![
        (
            exhausted.to_string(),
            "processing_failed".to_owned(),
            None,
            3,
        ),
        (
            interrupted.to_string(),
            "dead_lettered".to_owned(),
            Some("redriven".to_owned()),
            2,
        ),
    ];
    expected.sort();
    // Marked re-driven once what it committed is published.
    let mut rows: Vec<(String, String, Option<String>, i32)> = Vec::new();
    for _ in 0..100 {
        rows = sqlx::query_as(
            "SELECT message_id, code, resolution, auto_redrives FROM rejected_messages ORDER BY message_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        if rows == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows, expected, "the one given up waits for the operators");

    pool.close().await;
    finish(env, hub, vec![fi]).await;
}

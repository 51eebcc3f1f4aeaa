//! Two hub processes consume the same ingress queue (competing consumers) and
//! the database decides conflicts: of two answers to the same request, taken
//! by different hubs at the same moment, exactly one is applied.

use std::collections::HashMap;

use imi_adapters::{Incoming, OutgoingMessage};
use imi_schemas::ids::{ExchangeId, MessageType};
use imi_schemas::protocol::RejectionCode;
use imi_tests::{finish, next_acked, request_to_de, TestEnv, World};
use serde_json::json;

const EXCHANGES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_actions_taken_by_two_hubs_end_with_exactly_one_applied() {
    let World {
        env,
        hub,
        fi,
        de,
        mut de_inbox,
        ..
    } = World::start(TestEnv::new().await).await;
    // The second hub is a separate OS process.
    let mut second = env
        .spawn_ready_hub_process(env!("CARGO_BIN_EXE_imi-hub-under-test"), "second-hub")
        .await;
    // Let its consumer register before the traffic starts.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Open the requests.
    let requests: Vec<_> = (0..EXCHANGES).map(|_| request_to_de()).collect();
    fi.send_batch(&requests).await.unwrap();
    let mut exchanges = Vec::new();
    while exchanges.len() < EXCHANGES {
        if let (_, Some(exchange), Incoming::Message(_)) = next_acked(&mut de_inbox, 30).await {
            exchanges.push(ExchangeId::try_from(exchange.as_str()).unwrap());
        }
    }

    // Two different answers to every request, sent together, so the two hubs
    // take them at the same time.
    let answer = |exchange: ExchangeId, verdict: &str| OutgoingMessage {
        message_type: MessageType::try_from("pq-information-request.answer").unwrap(),
        sender: imi_schemas::ids::AuthorityId::try_from("DE-AEKNO").unwrap(),
        recipients: vec![],
        exchange: Some(exchange),
        payload: json!({"answers": [{"question": "PQ-Q-DIPLOMA-AUTHENTIC", "answer": verdict}]}),
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    };
    let answers: Vec<_> = exchanges
        .iter()
        .flat_map(|e| [answer(*e, "YES"), answer(*e, "NO")])
        .collect();
    de.send_batch(&answers).await.unwrap();

    // Per exchange: one receipt (answered), never two; the other answer is
    // rejected.
    let mut receipts: HashMap<String, usize> = HashMap::new();
    let mut rejections = 0;
    while receipts.values().sum::<usize>() + rejections < answers.len() {
        match next_acked(&mut de_inbox, 60).await.2 {
            Incoming::Receipt(r) => {
                assert_eq!(r.state, "answered");
                *receipts.entry(r.exchange_id.to_string()).or_default() += 1;
            }
            Incoming::Rejection(r) => {
                assert_eq!(r.code, RejectionCode::ActionNotAllowedInState, "{r:?}");
                rejections += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        receipts.len(),
        EXCHANGES,
        "every exchange got an applied answer"
    );
    assert!(receipts.values().all(|n| *n == 1), "{receipts:?}");
    assert_eq!(rejections, EXCHANGES);

    let pool = env.pool().await;
    let (transitions, answered): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM transitions WHERE action = 'answer'),
                (SELECT count(*) FROM exchanges WHERE state = 'answered')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (transitions, answered),
        (EXCHANGES as i64, EXCHANGES as i64)
    );
    // Both took part: RabbitMQ hands competing consumers deliveries in
    // turn, so each hub committed batches of its own.
    let instances: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT instance FROM batches ORDER BY instance")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut expected = vec![env.config.instance.clone(), "second-hub".to_owned()];
    expected.sort();
    assert_eq!(instances, expected, "both hubs committed work");

    pool.close().await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    finish(env, hub, vec![fi, de]).await;
}

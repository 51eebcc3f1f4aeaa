//! Splitting a request: the responder moves some questions to another
//! authority; a child exchange, linked to the parent, carries them; both
//! parts are answered and the requester follows both.

use imi_adapters::Incoming;
use imi_schemas::ids::ExchangeId;
use imi_tests::{follow_up, next_acked, next_receipt, request_to_de, TestEnv, World};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_request_is_answered_in_both_parts_under_linked_exchanges() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;

    let request = fi.send(&request_to_de()).await.unwrap().to_string();
    let (_, parent, _) = next_acked(&mut de_inbox, 20).await;
    let parent = ExchangeId::try_from(parent.unwrap().as_str()).unwrap();
    assert_eq!(
        next_receipt(&mut fi_inbox).await.message_id.to_string(),
        request
    );
    de.send(&follow_up("accept", "DE-AEKNO", &[], parent, json!({})))
        .await
        .unwrap();
    assert_eq!(next_receipt(&mut de_inbox).await.state, "accepted");

    // DE-AEKNO moves the good-standing question to FI-TEO.
    let split =
        json!({"questions": ["PQ-Q-GOOD-STANDING"], "reason": "Kept by the Finnish register."});
    de.send(&follow_up("split", "DE-AEKNO", &["FI-TEO"], parent, split))
        .await
        .unwrap();
    let receipt = next_receipt(&mut de_inbox).await;
    let child = ExchangeId::new(receipt.exchange_id);
    assert_ne!(child, parent);
    assert_eq!(
        receipt.state, "sent",
        "the child starts where a request starts"
    );

    // The requester (and FI-TEO, on the same endpoint) see the child, linked.
    let mut saw_split = false;
    while !saw_split {
        if let (_, Some(ex), Incoming::Message(m)) = next_acked(&mut fi_inbox, 20).await {
            if m.message_type == "pq-information-request.split" {
                assert!(
                    !m.acknowledgement_requested,
                    "1:1 messages need no acknowledgement"
                );
                assert_eq!(ex, child.to_string());
                assert_eq!(
                    m.parent_exchange.as_deref(),
                    Some(parent.to_string().as_str())
                );
                assert_eq!(
                    m.recipients,
                    vec!["FI-TEO".to_owned(), "FI-VALVIRA".to_owned()]
                );
                saw_split = true;
            }
        }
    }

    // Both parts are answered, each by its responder, each on its exchange.
    let answer = |q: &str| json!({"answers": [{"question": q, "answer": "YES"}]});
    fi.send(&follow_up(
        "answer",
        "FI-TEO",
        &[],
        child,
        answer("PQ-Q-GOOD-STANDING"),
    ))
    .await
    .unwrap();
    de.send(&follow_up(
        "answer",
        "DE-AEKNO",
        &[],
        parent,
        answer("PQ-Q-DIPLOMA-AUTHENTIC"),
    ))
    .await
    .unwrap();
    assert_eq!(next_receipt(&mut de_inbox).await.state, "answered");
    let mut answered = Vec::new();
    while answered.len() < 2 {
        match next_acked(&mut fi_inbox, 20).await {
            (_, Some(ex), Incoming::Message(m))
                if m.message_type == "pq-information-request.answer" =>
            {
                answered.push(ex)
            }
            (_, _, Incoming::Receipt(r)) => assert_eq!(r.state, "answered"),
            _ => {}
        }
    }
    answered.sort();
    let mut expected = vec![parent.to_string(), child.to_string()];
    expected.sort();
    assert_eq!(answered, expected);

    let pool = env.pool().await;
    let (linked, state): (Option<uuid::Uuid>, String) =
        sqlx::query_as("SELECT parent_id, state FROM exchanges WHERE id = $1")
            .bind(child.as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (linked, state.as_str()),
        (Some(parent.as_uuid()), "answered")
    );

    // After a crash the relay rebuilds the split's delivery from the store,
    // link to the parent included. (Read with the hub stopped, so its own
    // relay does not take the row first.)
    for a in [fi, de] {
        a.close().await;
    }
    hub.stop().await;
    sqlx::query(
        "UPDATE batches SET published_at = NULL, created_at = now() - interval '1 hour'
         WHERE id IN (SELECT batch_id FROM outbox WHERE exchange_id = $1 AND kind = 'delivery')",
    )
    .bind(child.as_uuid())
    .execute(&pool)
    .await
    .unwrap();
    let rows = imi_hub::inspect::relay_queue(&pool, 0.0, 100)
        .await
        .unwrap();
    let split_copy = rows
        .iter()
        .find(|r| r.exchange_id == Some(child.as_uuid()) && r.message_type.ends_with(".split"))
        .expect("the split's delivery is unpublished again");
    assert_eq!(
        split_copy
            .headers
            .get(imi_schemas::protocol::HEADER_PARENT_EXCHANGE),
        Some(&parent.to_string())
    );
    pool.close().await;
    env.cleanup().await;
}

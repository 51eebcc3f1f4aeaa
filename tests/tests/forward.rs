//! Forwarding keeps the case under one exchange id: the responder, after
//! accepting, hands the request to another authority, which answers; the requester follows one
//! thread, and the old responder is no longer a party.

use imi_adapters::Incoming;
use imi_schemas::ids::ExchangeId;
use imi_schemas::protocol::RejectionCode;
use imi_tests::{
    finish, follow_up, next_acked, next_receipt, next_rejection, request_to_de, TestEnv, World,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_is_answered_by_the_new_responder_under_the_same_exchange() {
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
    next_receipt(&mut fi_inbox).await;

    // DE-AEKNO accepts, then finds it is not competent and forwards to FI-TEO
    // (a request can be forwarded even after acceptance).
    de.send(&follow_up("accept", "DE-AEKNO", &[], exchange, json!({})))
        .await
        .unwrap();
    assert_eq!(next_receipt(&mut de_inbox).await.state, "accepted");
    let (_, _, incoming) = next_acked(&mut fi_inbox, 20).await;
    assert!(
        matches!(&incoming, Incoming::Message(m) if m.message_type == "pq-information-request.accept"),
        "the requester sees the acceptance: {incoming:?}"
    );
    let reason = json!({"reason": "Registered in Finland; FI-TEO keeps the register."});
    de.send(&follow_up(
        "forward",
        "DE-AEKNO",
        &["FI-TEO"],
        exchange,
        reason,
    ))
    .await
    .unwrap();
    let receipt = next_receipt(&mut de_inbox).await;
    assert_eq!(
        (receipt.exchange_id, receipt.state.as_str()),
        (exchange.as_uuid(), "sent")
    );
    assert_eq!(
        receipt.recipients,
        vec!["FI-TEO".to_owned(), "FI-VALVIRA".to_owned()]
    );
    // Both the new responder and the requester (same endpoint here) get it, once.
    let (_, ex, incoming) = next_acked(&mut fi_inbox, 20).await;
    let Incoming::Message(m) = incoming else {
        panic!("expected the forward, got {incoming:?}")
    };
    assert_eq!(ex.as_deref(), Some(exchange.to_string().as_str()));
    assert_eq!(m.message_type, "pq-information-request.forward");
    assert_eq!(
        m.recipients,
        vec!["FI-TEO".to_owned(), "FI-VALVIRA".to_owned()]
    );

    // The old responder is no longer a party.
    let answers = json!({"answers": [{"question": "PQ-Q-DIPLOMA-AUTHENTIC", "answer": "YES"}]});
    de.send(&follow_up(
        "answer",
        "DE-AEKNO",
        &[],
        exchange,
        answers.clone(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_rejection(&mut de_inbox).await.code,
        RejectionCode::ActionNotAllowedForRole
    );

    // The new responder answers; the requester receives it on the same exchange.
    let answer_id = fi
        .send(&follow_up("answer", "FI-TEO", &[], exchange, answers))
        .await
        .unwrap();
    let mut got_receipt = false;
    let mut got_answer = false;
    while !(got_receipt && got_answer) {
        match next_acked(&mut fi_inbox, 20).await {
            (_, _, Incoming::Receipt(r)) => {
                assert_eq!(r.state, "answered");
                got_receipt = true;
            }
            (id, Some(ex), Incoming::Message(m)) => {
                assert_eq!((id, ex), (answer_id.to_string(), exchange.to_string()));
                assert_eq!(m.recipients, vec!["FI-VALVIRA".to_owned()]);
                got_answer = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    let pool = env.pool().await;
    let (responder, transitions): (String, i64) = sqlx::query_as(
        "SELECT responder, (SELECT count(*) FROM transitions WHERE exchange_id = $1) FROM exchanges WHERE id = $1",
    )
    .bind(exchange.as_uuid())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((responder.as_str(), transitions), ("FI-TEO", 4));

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

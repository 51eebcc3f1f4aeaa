//! The 1:1 request workflow of `pq-information-request`, as its catalogue file
//! declares it: every allowed transition, and a forbidden action in each
//! state, which is rejected and changes nothing.

use imi_adapters::{Adapter, Inbox, Incoming, OutgoingMessage};
use imi_schemas::ids::{AuthorityId, ExchangeId, MessageType};
use imi_schemas::protocol::RejectionCode;
use imi_tests::{finish, next_acked, request_to_de, TestEnv, World};
use serde_json::{json, Value};

struct Party<'a> {
    adapter: &'a Adapter,
    inbox: &'a mut Inbox,
    authority: &'static str,
}

fn payload(action: &str) -> Value {
    match action {
        // A counter-proposal a month ahead, so "answered by the agreed date"
        // holds whenever the test runs.
        "accept" => {
            json!({"requested_answer_date": (chrono::Utc::now() + chrono::Duration::days(30)).date_naive().to_string()})
        }
        "request-information" | "provide-information" | "ask-more" => {
            json!({"comment": "See the register."})
        }
        "answer" => json!({"answers": [{"question": "PQ-Q-DIPLOMA-AUTHENTIC", "answer": "YES"}]}),
        "close" => json!({"satisfied": true, "rating": 4}),
        "withdraw" => json!({"reason": "No longer needed."}),
        other => panic!("no payload for {other}"),
    }
}

/// Takes `action` as `party` and returns the hub's verdict: `Ok(new state)`
/// or `Err(rejection code)`. Routed copies to the party are skipped.
async fn act(
    party: &mut Party<'_>,
    exchange: ExchangeId,
    action: &str,
) -> Result<String, RejectionCode> {
    let message = OutgoingMessage {
        message_type: MessageType::try_from(format!("pq-information-request.{action}").as_str())
            .unwrap(),
        sender: AuthorityId::try_from(party.authority).unwrap(),
        recipients: vec![],
        exchange: Some(exchange),
        payload: payload(action),
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    };
    let id = party.adapter.send(&message).await.unwrap();
    loop {
        match next_acked(party.inbox, 20).await.2 {
            Incoming::Receipt(r) if r.message_id == id.as_uuid() => return Ok(r.state),
            Incoming::Rejection(r) if r.message_id.as_deref() == Some(id.to_string().as_str()) => {
                return Err(r.code)
            }
            _ => {}
        }
    }
}

async fn open(fi: &mut Party<'_>, de: &mut Party<'_>) -> ExchangeId {
    let id = fi.adapter.send(&request_to_de()).await.unwrap().to_string();
    // Routed copies of earlier steps may still wait in the inbox: take ours.
    let exchange = loop {
        if let (delivered, Some(e), Incoming::Message(_)) = next_acked(de.inbox, 20).await {
            if delivered == id {
                break ExchangeId::try_from(e.as_str()).unwrap();
            }
        }
    };
    loop {
        if let Incoming::Receipt(r) = next_acked(fi.inbox, 20).await.2 {
            if r.message_id.to_string() == id {
                break exchange;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_allowed_transition_and_a_forbidden_one_in_each_state() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;
    let mut fi_party = Party {
        adapter: &fi,
        inbox: &mut fi_inbox,
        authority: "FI-VALVIRA",
    };
    let mut de_party = Party {
        adapter: &de,
        inbox: &mut de_inbox,
        authority: "DE-AEKNO",
    };
    use RejectionCode::{ActionNotAllowedForRole as Role, ActionNotAllowedInState as State};

    let x = open(&mut fi_party, &mut de_party).await;
    // sent
    assert_eq!(act(&mut fi_party, x, "close").await, Err(State));
    assert_eq!(
        act(&mut fi_party, x, "accept").await,
        Err(Role),
        "only the responder accepts"
    );
    assert_eq!(
        act(&mut de_party, x, "accept").await.as_deref(),
        Ok("accepted")
    );
    // accepted
    assert_eq!(act(&mut de_party, x, "accept").await, Err(State));
    assert_eq!(
        act(&mut fi_party, x, "withdraw").await,
        Err(State),
        "no withdrawal after acceptance"
    );
    assert_eq!(
        act(&mut de_party, x, "request-information")
            .await
            .as_deref(),
        Ok("information-requested")
    );
    // information-requested
    assert_eq!(act(&mut de_party, x, "answer").await, Err(State));
    assert_eq!(
        act(&mut fi_party, x, "provide-information")
            .await
            .as_deref(),
        Ok("accepted")
    );
    assert_eq!(
        act(&mut de_party, x, "answer").await.as_deref(),
        Ok("answered")
    );
    // answered
    assert_eq!(act(&mut de_party, x, "answer").await, Err(State));
    assert_eq!(
        act(&mut fi_party, x, "ask-more").await.as_deref(),
        Ok("accepted")
    );
    assert_eq!(
        act(&mut de_party, x, "answer").await.as_deref(),
        Ok("answered")
    );
    assert_eq!(
        act(&mut fi_party, x, "close").await.as_deref(),
        Ok("closed")
    );
    // closed
    assert_eq!(act(&mut fi_party, x, "ask-more").await, Err(State));

    // Withdrawal before acceptance, and nothing after it.
    let y = open(&mut fi_party, &mut de_party).await;
    assert_eq!(
        act(&mut de_party, y, "withdraw").await,
        Err(Role),
        "only the requester withdraws"
    );
    assert_eq!(
        act(&mut fi_party, y, "withdraw").await.as_deref(),
        Ok("withdrawn")
    );
    assert_eq!(act(&mut de_party, y, "accept").await, Err(State));

    // Rejected actions changed nothing: the history holds only applied steps.
    let pool = env.pool().await;
    let history: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, to_state FROM transitions WHERE exchange_id = $1 ORDER BY id",
    )
    .bind(x.as_uuid())
    .fetch_all(&pool)
    .await
    .unwrap();
    let steps: Vec<(&str, &str)> = history
        .iter()
        .map(|(a, s)| (a.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("send", "sent"),
            ("accept", "accepted"),
            ("request-information", "information-requested"),
            ("provide-information", "accepted"),
            ("answer", "answered"),
            ("ask-more", "accepted"),
            ("answer", "answered"),
            ("close", "closed"),
        ]
    );

    // The Commission's figures come from those transitions.
    let (_, operator) = imi_hub::accounts::create(
        &pool,
        "helpdesk",
        imi_hub::accounts::AccountRole::Operator,
        Default::default(),
    )
    .await
    .unwrap();
    let figures: Vec<Value> = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/figures?procedure=pq-information-request",
            hub.http
        ))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let f = &figures[0];
    assert_eq!(f["procedure"], "pq-information-request");
    assert_eq!(
        (f["opened"].as_i64(), f["accepted"].as_i64()),
        (Some(2), Some(1)),
        "{f}"
    );
    assert_eq!(f["accepted_within_7_days"], 1, "{f}");
    assert_eq!(f["answered"], 1, "{f}");
    // Answered today, before the agreed date a month ahead.
    assert_eq!(f["answered_by_agreed_date"], 1, "{f}");
    assert_eq!(f["share_answered_by_agreed_date"], 1.0, "{f}");
    assert!(f["average_days_to_answer"].as_f64().unwrap() < 1.0, "{f}");
    // The requester rated the reply when it closed the case.
    assert_eq!(
        (f["rated"].as_i64(), f["average_rating"].as_f64()),
        (Some(1), Some(4.0)),
        "{f}"
    );

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

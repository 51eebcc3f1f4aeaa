//! A coordinator reassigns a request to another authority of its country: the
//! case keeps its exchange id, the new responder receives the request and
//! answers it, the old one is no longer a party, and the step is on record.

use imi_adapters::{Incoming, OutgoingMessage};
use imi_hub::accounts::{self, AccountRole, Scope};
use imi_schemas::ids::{AuthorityId, CountryCode, ExchangeId, MessageType};
use imi_schemas::protocol::RejectionCode;
use imi_tests::{finish, next_acked, next_receipt, next_rejection, request_to_de, TestEnv, World};
use serde_json::json;

async fn reassign(
    http: &str,
    token: &str,
    exchange: ExchangeId,
    to: &str,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{http}/api/v1/exchanges/{exchange}/reassign"))
        .bearer_auth(token)
        .json(&json!({"to": to}))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_reassigns_a_request_within_its_country() {
    let env =
        TestEnv::with_endpoints(&[("fi", &["FI-VALVIRA"]), ("de", &["DE-AEKNO", "DE-BAEK"])]).await;
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(env).await;
    let pool = env.pool().await;
    let scope = |c: &str| Scope {
        country: Some(CountryCode::try_from(c).unwrap()),
        ..Scope::default()
    };
    let (_, de_nimic) = accounts::create(&pool, "de-nimic", AccountRole::Coordinator, scope("DE"))
        .await
        .unwrap();
    let (_, fi_nimic) = accounts::create(&pool, "fi-nimic", AccountRole::Coordinator, scope("FI"))
        .await
        .unwrap();

    let request_id = fi.send(&request_to_de()).await.unwrap();
    let (_, exchange, _) = next_acked(&mut de_inbox, 20).await;
    let exchange = ExchangeId::try_from(exchange.unwrap().as_str()).unwrap();
    next_receipt(&mut fi_inbox).await;

    let (status, body) = reassign(&hub.http, &fi_nimic, exchange, "DE-BAEK").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = reassign(&hub.http, &de_nimic, exchange, "FI-VALVIRA").await;
    assert_eq!(
        status, 400,
        "the requester cannot become the responder: {body}"
    );
    let (status, body) = reassign(&hub.http, &de_nimic, exchange, "DE-BAEK").await;
    assert_eq!(status, 200, "{body}");

    // DE-BAEK receives the original request, under the same exchange.
    let (id, ex, incoming) = next_acked(&mut de_inbox, 20).await;
    let Incoming::Message(m) = incoming else {
        panic!("expected the request, got {incoming:?}")
    };
    assert_eq!(ex.as_deref(), Some(exchange.to_string().as_str()));
    assert_eq!(m.message_type, "pq-information-request.send");
    assert_eq!(m.recipients, vec!["DE-BAEK".to_owned()]);
    assert_ne!(
        id,
        request_id.to_string(),
        "a new delivery id, so receivers do not drop it as a duplicate"
    );

    let answer = |sender: &str| OutgoingMessage {
        message_type: MessageType::try_from("pq-information-request.answer").unwrap(),
        sender: AuthorityId::try_from(sender).unwrap(),
        recipients: vec![],
        exchange: Some(exchange),
        payload: json!({"answers": [{"question": "PQ-Q-GOOD-STANDING", "answer": "YES"}]}),
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    };
    de.send(&answer("DE-AEKNO")).await.unwrap();
    assert_eq!(
        next_rejection(&mut de_inbox).await.code,
        RejectionCode::ActionNotAllowedForRole
    );
    de.send(&answer("DE-BAEK")).await.unwrap();
    assert_eq!(next_receipt(&mut de_inbox).await.state, "answered");
    let (_, _, incoming) = next_acked(&mut fi_inbox, 20).await;
    assert!(matches!(incoming, Incoming::Message(_)), "{incoming:?}");

    let actor: Option<String> = sqlx::query_scalar(
        "SELECT actor FROM transitions WHERE exchange_id = $1 AND action = 'reassign'",
    )
    .bind(exchange.as_uuid())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor.as_deref(), Some("de-nimic"));

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_referred_to_the_coordinator_is_reassigned_and_starts_again() {
    let env =
        TestEnv::with_endpoints(&[("fi", &["FI-VALVIRA"]), ("de", &["DE-AEKNO", "DE-BAEK"])]).await;
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(env).await;
    let pool = env.pool().await;
    let scope = Scope {
        country: Some(CountryCode::try_from("DE").unwrap()),
        ..Scope::default()
    };
    let (_, de_nimic) = accounts::create(&pool, "de-nimic", AccountRole::Coordinator, scope)
        .await
        .unwrap();

    fi.send(&request_to_de()).await.unwrap();
    let (_, exchange, _) = next_acked(&mut de_inbox, 20).await;
    let exchange = ExchangeId::try_from(exchange.unwrap().as_str()).unwrap();
    next_receipt(&mut fi_inbox).await;

    let refer = OutgoingMessage {
        message_type: MessageType::try_from("pq-information-request.refer").unwrap(),
        sender: AuthorityId::try_from("DE-AEKNO").unwrap(),
        recipients: vec![],
        exchange: Some(exchange),
        payload: json!({"reason": "Not ours; please find the competent chamber."}),
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    };
    de.send(&refer).await.unwrap();
    assert_eq!(next_receipt(&mut de_inbox).await.state, "referred");

    let listed: Vec<serde_json::Value> = reqwest::Client::new()
        .get(format!("{}/api/v1/referred", hub.http))
        .bearer_auth(&de_nimic)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["exchange_id"], exchange.to_string().as_str());

    let (status, body) = reassign(&hub.http, &de_nimic, exchange, "DE-BAEK").await;
    assert_eq!(status, 200, "{body}");
    let state: String = sqlx::query_scalar("SELECT state FROM exchanges WHERE id = $1")
        .bind(exchange.as_uuid())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        state, "sent",
        "a reassigned referral starts again where requests start"
    );

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

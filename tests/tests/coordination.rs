//! Coordinator intervention and one thread per case: overdue and inactive
//! requests land in the inbox of the coordinators of the authority expected
//! to act (its country, and area if delegated), once; a case's file shows
//! every step, its formal closure and the retention dates counted from it;
//! the requester's rating reaches the Commission's figures.

use std::sync::Arc;

use chrono::{DateTime, Duration, Months, Utc};
use imi_hub::accounts::{self, AccountRole, Scope};
use imi_hub::clock::ManualClock;
use imi_schemas::ids::{AreaCode, CountryCode, ExchangeId};
use imi_tests::{call_api, finish, follow_up, next_acked, next_receipt, request_to_de, TestEnv};
use serde_json::{json, Value};

async fn coordinator(env: &TestEnv, name: &str, country: &str, area: Option<&str>) -> String {
    let pool = env.pool().await;
    let scope = Scope {
        country: Some(CountryCode::try_from(country).unwrap()),
        area: area.map(|a| AreaCode::try_from(a).unwrap()),
        region: None,
    };
    let token = accounts::create(&pool, name, AccountRole::Coordinator, scope)
        .await
        .unwrap()
        .1;
    pool.close().await;
    token
}

async fn notices(http: &str, token: &str, unread: bool) -> Vec<Value> {
    let path = if unread {
        "/api/v1/notices?unread=true"
    } else {
        "/api/v1/notices"
    };
    let (status, body) = call_api(http, "GET", path, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_and_inactive_requests_reach_the_coordinators_inbox_once() {
    let mut env = TestEnv::new().await;
    env.config.pipeline.deadline_check_secs = 3600;
    let clock = ManualClock::starting_now();
    let hub = env.start_hub_with("hub", Arc::new(clock.clone())).await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = imi_tests::open_inbox(&fi);
    let (mut de_inbox, _s2) = imi_tests::open_inbox(&de);
    let de_nimic = coordinator(&env, "de-nimic", "DE", None).await;
    let de_pq = coordinator(&env, "de-pq", "DE", Some("pq")).await;
    let de_services = coordinator(&env, "de-services", "DE", Some("services")).await;
    let fi_nimic = coordinator(&env, "fi-nimic", "FI", None).await;

    fi.send(&request_to_de()).await.unwrap();
    let (_, exchange, _) = next_acked(&mut de_inbox, 20).await;
    let exchange = ExchangeId::try_from(exchange.unwrap().as_str()).unwrap();
    next_receipt(&mut fi_inbox).await;

    // DE-AEKNO lets the 7-day acceptance deadline pass: its coordinators
    // (national, and delegated for the area) are told; others are not.
    clock.advance(Duration::days(8));
    hub.deadlines.check_once().await.unwrap();
    for token in [&de_nimic, &de_pq] {
        let inbox = notices(&hub.http, token, false).await;
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        assert_eq!(inbox[0]["kind"], "overdue");
        assert_eq!(inbox[0]["authority"], "DE-AEKNO");
        assert_eq!(inbox[0]["exchange_id"], json!(exchange.as_uuid()));
        assert_eq!(inbox[0]["read"], false);
    }
    assert!(notices(&hub.http, &de_services, false).await.is_empty());
    assert!(notices(&hub.http, &fi_nimic, false).await.is_empty());
    hub.deadlines.check_once().await.unwrap();
    assert_eq!(notices(&hub.http, &de_nimic, false).await.len(), 1, "once");

    // Read by the national coordinator: gone from its unread list only.
    let id = notices(&hub.http, &de_nimic, false).await[0]["id"]
        .as_i64()
        .unwrap();
    let (status, _) = call_api(
        &hub.http,
        "POST",
        &format!("/api/v1/notices/{id}/read"),
        Some(&de_nimic),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(notices(&hub.http, &de_nimic, true).await.is_empty());
    assert_eq!(notices(&hub.http, &de_pq, true).await.len(), 1);
    let (status, _) = call_api(
        &hub.http,
        "POST",
        "/api/v1/notices/999999/read",
        Some(&de_nimic),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, problem) = call_api(
        &hub.http,
        "POST",
        "/api/v1/notices/seven/read",
        Some(&de_nimic),
        None,
    )
    .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (400, Some("urn:imi:problem:bad-request"))
    );
    let other = format!("/api/v1/notices/{id}/read");
    let (status, _) = call_api(&hub.http, "POST", &other, Some(&fi_nimic), None).await;
    assert_eq!(status, 404, "another country's notice is not there for it");

    // DE-AEKNO accepts, then nothing happens for a month: inactive.
    de.send(&follow_up("accept", "DE-AEKNO", &[], exchange, json!({})))
        .await
        .unwrap();
    // (DE-AEKNO's inbox also holds its overdue notice.)
    let receipt = loop {
        match next_acked(&mut de_inbox, 20).await.2 {
            imi_adapters::Incoming::Receipt(r) => break r,
            imi_adapters::Incoming::Deadline(_) => continue,
            other => panic!("expected the receipt, got {other:?}"),
        }
    };
    assert_eq!(receipt.state, "accepted");
    clock.advance(Duration::days(31));
    hub.deadlines.check_once().await.unwrap();
    let inbox = notices(&hub.http, &de_nimic, true).await;
    let kinds: Vec<(&str, &str)> = inbox
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("inactive", "accepted")), "{inbox:?}");
    assert!(
        kinds.contains(&("overdue", "accepted")),
        "the answer deadline too: {inbox:?}"
    );
    let before = inbox.len();
    hub.deadlines.check_once().await.unwrap();
    assert_eq!(
        notices(&hub.http, &de_nimic, true).await.len(),
        before,
        "once"
    );
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_file_shows_every_step_its_closure_and_retention_and_the_rating_is_counted() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = imi_tests::open_inbox(&fi);
    let (mut de_inbox, _s2) = imi_tests::open_inbox(&de);
    let de_nimic = coordinator(&env, "de-nimic", "DE", None).await;
    let it_nimic = coordinator(&env, "it-nimic", "IT", None).await;

    fi.send(&request_to_de()).await.unwrap();
    let (_, exchange, _) = next_acked(&mut de_inbox, 20).await;
    let exchange = ExchangeId::try_from(exchange.unwrap().as_str()).unwrap();
    next_receipt(&mut fi_inbox).await;
    let path = format!("/api/v1/exchanges/{}", exchange.as_uuid());
    let (_, open) = call_api(&hub.http, "GET", &path, Some(&de_nimic), None).await;
    assert_eq!(
        (open["state"].clone(), open["closed_at"].clone()),
        (json!("sent"), Value::Null)
    );
    assert_eq!(
        open["retention"],
        Value::Null,
        "no retention before formal closure"
    );

    let answers = json!({"answers": [{"question": "PQ-Q-DIPLOMA-AUTHENTIC", "answer": "YES"},
                                     {"question": "PQ-Q-GOOD-STANDING", "answer": "YES"}]});
    de.send(&follow_up("answer", "DE-AEKNO", &[], exchange, answers))
        .await
        .unwrap();
    next_receipt(&mut de_inbox).await;
    next_acked(&mut fi_inbox, 20).await;
    let close = json!({"satisfied": true, "rating": 5});
    fi.send(&follow_up("close", "FI-VALVIRA", &[], exchange, close))
        .await
        .unwrap();
    assert_eq!(next_receipt(&mut fi_inbox).await.state, "closed");

    let (status, file) = call_api(&hub.http, "GET", &path, Some(&de_nimic), None).await;
    assert_eq!(status, 200, "{file}");
    let steps: Vec<(&str, &str)> = file["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["action"].as_str().unwrap(), s["sender"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("send", "FI-VALVIRA"),
            ("answer", "DE-AEKNO"),
            ("close", "FI-VALVIRA")
        ]
    );
    // Formal closure starts the retention period of the procedure (6 months
    // to blocking, 36 to deletion for pq-information-request).
    let closed: DateTime<Utc> = serde_json::from_value(file["closed_at"].clone()).unwrap();
    let block: DateTime<Utc> =
        serde_json::from_value(file["retention"]["block_at"].clone()).unwrap();
    let delete: DateTime<Utc> =
        serde_json::from_value(file["retention"]["delete_at"].clone()).unwrap();
    assert_eq!(block, closed + Months::new(6));
    assert_eq!(delete, closed + Months::new(36));
    assert!((Utc::now() - closed).num_seconds().abs() < 60);
    // A coordinator of a country with no party sees nothing of it.
    let (status, _) = call_api(&hub.http, "GET", &path, Some(&it_nimic), None).await;
    assert_eq!(status, 403);

    let (_, figures) = call_api(
        &hub.http,
        "GET",
        "/api/v1/figures?procedure=pq-information-request",
        Some(&de_nimic),
        None,
    )
    .await;
    assert_eq!(figures[0]["rated"], 1, "{figures}");
    assert_eq!(figures[0]["average_rating"], 5.0, "{figures}");
    finish(env, hub, vec![fi, de]).await;
}

/// A receipt and a routed message, in whichever order they arrive (the
/// requester and the new responder share an endpoint).
async fn receipt_and_message(inbox: &mut imi_adapters::Inbox) -> (String, String) {
    let (mut state, mut routed) = (None, None);
    while state.is_none() || routed.is_none() {
        match next_acked(inbox, 20).await.2 {
            imi_adapters::Incoming::Receipt(r) => state = Some(r.state),
            imi_adapters::Incoming::Message(m) => routed = Some(m.message_type.clone()),
            other => panic!("unexpected {other:?}"),
        }
    }
    (state.unwrap(), routed.unwrap())
}

/// A message of `procedure`: its catalogue example as the payload.
fn step(
    hub: &imi_tests::RunningHub,
    procedure: &str,
    action: &str,
    sender: &str,
    to: &[&str],
    exchange: Option<ExchangeId>,
) -> imi_adapters::OutgoingMessage {
    let mut payload = imi_tests::example(hub, procedure, action);
    // The examples' answer dates are in the past; a past agreed date is
    // overdue at once, and its notice would come between the test's steps.
    let later = (chrono::Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    for field in ["requested_answer_date", "proposed_answer_date"] {
        if let Some(date) = payload.get_mut(field) {
            *date = serde_json::json!(later);
        }
    }
    let mut m = imi_tests::one_to_many(
        &format!("{procedure}.{action}"),
        sender,
        to,
        &[],
        exchange,
        payload,
    );
    m.countries.clear();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generic_request_steps_work_for_other_procedures_too() {
    // services-information-request: accepted, forwarded to another
    // authority (same exchange), answered by it, closed with a rating.
    let env = TestEnv::with_registrations(
        &[("fi", &["FI-VALVIRA", "FI-TEO"]), ("de", &["DE-AEKNO"])],
        &["services-information-request"],
    )
    .await;
    let hub = env.start_hub().await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = imi_tests::open_inbox(&fi);
    let (mut de_inbox, _s2) = imi_tests::open_inbox(&de);
    let p = "services-information-request";

    fi.send(&step(&hub, p, "send", "FI-VALVIRA", &["DE-AEKNO"], None))
        .await
        .unwrap();
    let (_, exchange, _) = next_acked(&mut de_inbox, 20).await;
    let ex = ExchangeId::try_from(exchange.unwrap().as_str()).unwrap();
    next_receipt(&mut fi_inbox).await;
    de.send(&step(&hub, p, "accept", "DE-AEKNO", &[], Some(ex)))
        .await
        .unwrap();
    assert_eq!(next_receipt(&mut de_inbox).await.state, "accepted");
    next_acked(&mut fi_inbox, 20).await;
    de.send(&step(&hub, p, "forward", "DE-AEKNO", &["FI-TEO"], Some(ex)))
        .await
        .unwrap();
    let r = next_receipt(&mut de_inbox).await;
    assert_eq!((r.exchange_id, r.state.as_str()), (ex.as_uuid(), "sent"));
    // FI-TEO (on the fi endpoint, like the requester) now answers.
    next_acked(&mut fi_inbox, 20).await;
    fi.send(&step(&hub, p, "accept", "FI-TEO", &[], Some(ex)))
        .await
        .unwrap();
    assert_eq!(
        receipt_and_message(&mut fi_inbox).await,
        ("accepted".into(), format!("{p}.accept"))
    );

    fi.send(&step(&hub, p, "answer", "FI-TEO", &[], Some(ex)))
        .await
        .unwrap();
    assert_eq!(
        receipt_and_message(&mut fi_inbox).await,
        ("answered".into(), format!("{p}.answer"))
    );

    // The former responder is no longer a party.
    de.send(&step(&hub, p, "answer", "DE-AEKNO", &[], Some(ex)))
        .await
        .unwrap();
    assert_eq!(
        imi_tests::next_rejection(&mut de_inbox).await.code,
        imi_schemas::protocol::RejectionCode::ActionNotAllowedForRole
    );
    fi.send(&step(&hub, p, "close", "FI-VALVIRA", &[], Some(ex)))
        .await
        .unwrap();
    assert_eq!(
        receipt_and_message(&mut fi_inbox).await,
        ("closed".into(), format!("{p}.close"))
    );
    let operator = {
        let pool = env.pool().await;
        accounts::create(&pool, "helpdesk", AccountRole::Operator, Scope::default())
            .await
            .unwrap()
            .1
    };
    let (_, file) = call_api(
        &hub.http,
        "GET",
        &format!("/api/v1/exchanges/{}", ex.as_uuid()),
        Some(&operator),
        None,
    )
    .await;
    let actions: Vec<&str> = file["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["send", "accept", "forward", "accept", "answer", "close"]
    );
    assert_eq!(file["responder"], "FI-TEO");
    assert!(file["closed_at"].is_string());
    let (_, figures) = call_api(
        &hub.http,
        "GET",
        &format!("/api/v1/figures?procedure={p}"),
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(figures[0]["rated"], 1, "{figures}");
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_blocks_then_erases_personal_data_counted_from_formal_closure() {
    let mut env = TestEnv::new().await;
    env.config.pipeline.deadline_check_secs = 3600;
    let clock = ManualClock::starting_now();
    let hub = env.start_hub_with("hub", Arc::new(clock.clone())).await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = imi_tests::open_inbox(&fi);
    let (mut de_inbox, _s2) = imi_tests::open_inbox(&de);
    let de_nimic = coordinator(&env, "de-nimic", "DE", None).await;

    // A refused request (its body holds personal data, and the error quotes
    // the bad value) is kept for inspection for 90 days.
    let mut bad = request_to_de();
    bad.payload["professional"]["date_of_birth"] = json!("12.04.1988");
    fi.send(&bad).await.unwrap();
    assert_eq!(
        imi_tests::next_rejection(&mut fi_inbox).await.code,
        imi_schemas::protocol::RejectionCode::InvalidPayload
    );

    // Two requests; only the first is formally closed (withdrawn).
    fi.send(&request_to_de()).await.unwrap();
    let (_, closed, _) = next_acked(&mut de_inbox, 20).await;
    let closed = ExchangeId::try_from(closed.unwrap().as_str()).unwrap();
    next_receipt(&mut fi_inbox).await;
    fi.send(&request_to_de()).await.unwrap();
    let (_, open, _) = next_acked(&mut de_inbox, 20).await;
    let open = ExchangeId::try_from(open.unwrap().as_str()).unwrap();
    next_receipt(&mut fi_inbox).await;
    let reason = json!({"reason": "The professional withdrew the application."});
    fi.send(&follow_up("withdraw", "FI-VALVIRA", &[], closed, reason))
        .await
        .unwrap();
    assert_eq!(next_receipt(&mut fi_inbox).await.state, "withdrawn");

    let pool = env.pool().await;
    let raw_of = |exchange: ExchangeId| {
        let pool = pool.clone();
        async move {
            let (raw,): (Vec<u8>,) = sqlx::query_as(
                "SELECT m.raw FROM messages m JOIN exchanges e ON e.opened_by = m.id WHERE e.id = $1",
            )
            .bind(exchange.as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();
            serde_json::from_slice::<Value>(&imi_hub::at_rest::read_stored(&raw).unwrap()).unwrap()
        }
    };
    assert_eq!(hub.retention.run_once().await.unwrap(), Default::default());

    // pq-information-request: blocked 6 months after closure, erased at 36.
    clock.advance(Duration::days(31 * 7));
    let outcome = hub.retention.run_once().await.unwrap();
    assert_eq!(
        (outcome.blocked, outcome.erased, outcome.rejected_erased),
        (1, 0, 1)
    );
    let (body, errors): (Vec<u8>, Value) =
        sqlx::query_as("SELECT body, errors FROM rejected_messages")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(body.is_empty(), "the refused body is erased");
    assert_eq!(
        errors,
        json!([{"pointer": "/payload/professional/date_of_birth"}])
    );
    let path = format!("/api/v1/exchanges/{}", closed.as_uuid());
    let (_, file) = call_api(&hub.http, "GET", &path, Some(&de_nimic), None).await;
    assert!(file["retention"]["blocked_at"].is_string(), "{file}");
    assert!(file["retention"]["personal_data_erased_at"].is_null());
    assert_eq!(
        raw_of(closed).await["payload"]["professional"]["family_name"],
        "Virtanen"
    );

    clock.advance(Duration::days(31 * 30));
    let outcome = hub.retention.run_once().await.unwrap();
    assert_eq!(
        (outcome.blocked, outcome.erased, outcome.rejected_erased),
        (0, 1, 0)
    );
    let payload = raw_of(closed).await["payload"].clone();
    assert!(
        payload["professional"].get("family_name").is_none(),
        "{payload}"
    );
    assert!(
        payload["professional"].get("date_of_birth").is_none(),
        "{payload}"
    );
    assert_eq!(
        payload["profession"], "PQ-NURSE",
        "the codes stay: {payload}"
    );
    let (_, file) = call_api(&hub.http, "GET", &path, Some(&de_nimic), None).await;
    assert!(
        file["retention"]["personal_data_erased_at"].is_string(),
        "{file}"
    );
    // The request never closed keeps everything.
    assert_eq!(
        raw_of(open).await["payload"]["professional"]["family_name"],
        "Virtanen"
    );
    assert_eq!(
        hub.retention.run_once().await.unwrap(),
        Default::default(),
        "once"
    );
    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

//! Fan-out at scale and the broadcast stream: one alert to 1,000 recipient
//! authorities behind 20 endpoints is persisted per recipient and received
//! once per endpoint (each authority named once); a subscriber reads the
//! `imi.alerts` topic only for the areas the hub provisioned it for.

use std::collections::HashSet;
use std::time::Duration;

use imi_adapters::{Adapter, EndpointConfig, Incoming};
use imi_hub::accounts::{self, AccountRole, Scope};
use imi_schemas::ids::{CountryCode, ExchangeId};
use imi_schemas::protocol::inbox_queue;
use imi_tests::{
    assert_quiet, call_api, example, finish, next_acked, one_to_many, open_inbox, TestEnv,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const COUNTRIES: &[&str] = &["AT", "BE", "FI", "DK", "IT", "NL", "PL", "SE"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_to_1000_authorities_is_persisted_per_recipient_and_received_once() {
    // 20 endpoints (national gateways) of 50 authorities each, plus the sender.
    let mut specs: Vec<(String, Vec<String>)> = vec![("origin".into(), vec!["DE-ORIGIN".into()])];
    for e in 0..20 {
        let authorities = (0..50)
            .map(|a| {
                let n = e * 50 + a;
                format!("{}-AUTH-{n}", COUNTRIES[n % COUNTRIES.len()])
            })
            .collect();
        specs.push((format!("gw{e:02}"), authorities));
    }
    let refs: Vec<Vec<&str>> = specs
        .iter()
        .map(|(_, a)| a.iter().map(String::as_str).collect())
        .collect();
    let spec_refs: Vec<(&str, &[&str])> = specs
        .iter()
        .zip(&refs)
        .map(|((id, _), a)| (id.as_str(), a.as_slice()))
        .collect();
    let env = TestEnv::with_registrations(&spec_refs, &["pq-alert"]).await;
    let expected: HashSet<String> = specs[1..]
        .iter()
        .flat_map(|(_, a)| a.iter().cloned())
        .collect();
    assert_eq!(expected.len(), 1000);

    let hub = env.start_hub().await;
    let mut adapters = Vec::new();
    let mut inboxes = Vec::new();
    for i in 0..specs.len() {
        let a = env.adapter(i).await;
        inboxes.push(open_inbox(&a).0);
        adapters.push(a);
    }
    let alert = one_to_many(
        "pq-alert.send",
        "DE-ORIGIN",
        &[],
        &[],
        None,
        example(&hub, "pq-alert", "send"),
    );
    adapters[0].send(&alert).await.unwrap();
    let receipt = loop {
        if let (_, _, Incoming::Receipt(r)) = next_acked(&mut inboxes[0], 30).await {
            break r;
        }
    };
    assert_eq!(receipt.recipients.len(), expected.len());

    let mut named: Vec<String> = Vec::new();
    for inbox in inboxes.iter_mut().skip(1) {
        let (_, exchange, incoming) = next_acked(inbox, 30).await;
        assert_eq!(exchange, Some(receipt.exchange_id.to_string()));
        let Incoming::Message(m) = incoming else {
            panic!("expected the alert, got {incoming:?}");
        };
        assert_eq!(m.message_type, "pq-alert.send");
        named.extend(m.recipients.iter().cloned());
    }
    let distinct: HashSet<String> = named.iter().cloned().collect();
    assert_eq!(named.len(), distinct.len(), "no authority named twice");
    assert_eq!(distinct, expected, "every recipient reached");
    for inbox in inboxes.iter_mut().skip(1) {
        assert_quiet(inbox, 200).await;
    }

    // Persisted per recipient, and broker-confirmed (routed).
    let pool = env.pool().await;
    let mut routed = 0i64;
    for _ in 0..50 {
        routed = sqlx::query_scalar(
            "SELECT count(*) FROM delivery_status WHERE exchange_id = $1 AND state = 'routed'",
        )
        .bind(receipt.exchange_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        if routed == expected.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(routed, expected.len() as i64);
    let copies: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE exchange_id = $1 AND kind = 'delivery'",
    )
    .bind(receipt.exchange_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(copies, 20, "one queue copy per endpoint, not per authority");
    pool.close().await;
    finish(env, hub, adapters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_reads_the_broadcasts_of_its_areas_and_nothing_else() {
    let env = TestEnv::with_registrations(
        &[("de", &["DE-LAGESO"]), ("at", &["AT-GESUNDHEIT"])],
        &["pq-alert", "services-alert"],
    )
    .await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let (_, operator) =
        accounts::create(&pool, "helpdesk", AccountRole::Operator, Scope::default())
            .await
            .unwrap();
    let fi_scope = Scope {
        country: Some(CountryCode::try_from("FI").unwrap()),
        ..Scope::default()
    };
    let (_, fi_nimic) = accounts::create(&pool, "fi-nimic", AccountRole::Coordinator, fi_scope)
        .await
        .unwrap();
    let dashboard = format!("dash-{}", env.suffix);
    let request = json!({"id": dashboard, "country": "AT", "areas": ["pq"]});
    let (status, _) = call_api(
        &hub.http,
        "POST",
        "/api/v1/subscribers",
        Some(&fi_nimic),
        Some(request.clone()),
    )
    .await;
    assert_eq!(
        status, 403,
        "FI's coordinator may not register an Austrian subscriber"
    );
    let (status, credentials) = call_api(
        &hub.http,
        "POST",
        "/api/v1/subscribers",
        Some(&operator),
        Some(request),
    )
    .await;
    assert_eq!(status, 201, "{credentials}");

    let dash = Adapter::connect(&EndpointConfig {
        tls: None,
        endpoint: dashboard.clone(),
        password: credentials["password"].as_str().unwrap().to_owned(),
        ..env.endpoint_config(0)
    })
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let mut stream = dash.subscribe("pq", &["pq.#"], stop.clone()).await.unwrap();
    // Outside its areas, or everything: the broker refuses the binding.
    assert!(dash
        .subscribe("services", &["services.#"], stop.clone())
        .await
        .is_err());
    assert!(dash.subscribe("all", &["#"], stop.clone()).await.is_err());
    assert!(dash
        .subscribe("sneaky", &["*.pq-alert.#"], stop.clone())
        .await
        .is_err());
    // Nor may it read an authority's inbox or declare queues of another name.
    let de_inbox = inbox_queue(&env.endpoints[0].id);
    assert!(dash.probe_consume(&de_inbox).await.is_err());
    assert!(dash.probe_declare("imi.sub.someone-else.q").await.is_err());

    let de = env.adapter(0).await;
    let (mut de_inbox, _) = open_inbox(&de);
    // A draft is not news; its submission releases both, in order.
    let mut draft = one_to_many(
        "pq-alert.draft",
        "DE-LAGESO",
        &[],
        &[],
        None,
        example(&hub, "pq-alert", "send"),
    );
    de.send(&draft).await.unwrap();
    let exchange = loop {
        if let (_, _, Incoming::Receipt(r)) = next_acked(&mut de_inbox, 20).await {
            break ExchangeId::try_from(r.exchange_id.to_string().as_str()).unwrap();
        }
    };
    assert_quiet(&mut stream, 300).await;
    draft = one_to_many(
        "pq-alert.submit",
        "DE-LAGESO",
        &[],
        &[],
        Some(exchange),
        json!({}),
    );
    de.send(&draft).await.unwrap();
    for expected in ["pq-alert.draft", "pq-alert.submit"] {
        let (_, ex, incoming) = next_acked(&mut stream, 20).await;
        assert_eq!(ex, Some(exchange.to_string()));
        let Incoming::Message(m) = incoming else {
            panic!("expected a broadcast, got {incoming:?}");
        };
        assert_eq!(
            (m.message_type.as_str(), m.sender.as_str()),
            (expected, "DE-LAGESO")
        );
        assert!(
            !m.acknowledgement_requested,
            "a subscriber is not a recipient"
        );
    }
    // Another area's alert never reaches it.
    let services = one_to_many(
        "services-alert.broadcast",
        "DE-LAGESO",
        &[],
        &["AT"],
        None,
        example(&hub, "services-alert", "broadcast"),
    );
    de.send(&services).await.unwrap();
    assert_quiet(&mut stream, 500).await;

    stop.cancel();
    dash.close().await;

    // New credentials for the subscriber keep its narrow permissions.
    let (status, rotated) = call_api(
        &hub.http,
        "POST",
        &format!("/api/v1/endpoints/{dashboard}/credentials"),
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let dash = Adapter::connect(&EndpointConfig {
        tls: None,
        endpoint: dashboard.clone(),
        password: rotated["password"].as_str().unwrap().to_owned(),
        ..env.endpoint_config(0)
    })
    .await
    .unwrap();
    let stop = CancellationToken::new();
    assert!(dash.subscribe("pq", &["pq.#"], stop.clone()).await.is_ok());
    assert!(dash
        .subscribe("services", &["services.#"], stop.clone())
        .await
        .is_err());
    stop.cancel();
    dash.close().await;
    let _ = env.management.delete_user(&dashboard).await;
    pool.close().await;
    finish(env, hub, vec![de]).await;
}

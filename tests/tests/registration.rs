//! The registration workflow end to end: apply → (unusable while pending) →
//! coordinator scope enforced → approval provisions the endpoint's broker user
//! → messages flow → rotation → suspension revokes and disconnects. Every step
//! is recorded.

use std::time::Duration;

use imi_adapters::{Adapter, EndpointConfig, Incoming};
use imi_hub::accounts::{self, AccountRole, Scope};
use imi_schemas::ids::{AreaCode, AuthorityId, CountryCode};
use imi_schemas::protocol::RejectionCode;
use imi_tests::{finish, next_acked, next_rejection, request_to_de, TestEnv, World};
use serde_json::{json, Value};

async fn call(
    http: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = match method {
        "POST" => client.post(format!("{http}{path}")),
        _ => client.get(format!("{http}{path}")),
    };
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn endpoint_config(env: &TestEnv, endpoint: &str, password: &str) -> EndpointConfig {
    EndpointConfig {
        tls: None,
        password: password.into(),
        endpoint: endpoint.into(),
        ..env.endpoint_config(0)
    }
}

async fn cannot_connect(env: &TestEnv, endpoint: &str, password: &str) -> bool {
    Adapter::connect_within(
        &endpoint_config(env, endpoint, password),
        Duration::from_secs(2),
    )
    .await
    .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_is_usable_only_after_its_coordinator_approves_it_and_suspension_disconnects_it(
) {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        ..
    } = World::start(TestEnv::new().await).await;
    let pool = env.pool().await;
    let http = hub.http.clone();
    let scope = |country: &str, area: Option<&str>, region: Option<&str>| Scope {
        country: Some(CountryCode::try_from(country).unwrap()),
        area: area.map(|a| AreaCode::try_from(a).unwrap()),
        region: region.map(str::to_owned),
    };
    let coordinator = AccountRole::Coordinator;
    let (_, operator) =
        accounts::create(&pool, "helpdesk", AccountRole::Operator, Scope::default())
            .await
            .unwrap();
    let (_, fi_nimic) = accounts::create(&pool, "fi-nimic", coordinator, scope("FI", None, None))
        .await
        .unwrap();
    let (_, de_services) = accounts::create(
        &pool,
        "de-services",
        coordinator,
        scope("DE", Some("services"), None),
    )
    .await
    .unwrap();
    let (_, de_nrw) =
        accounts::create(&pool, "de-nrw", coordinator, scope("DE", None, Some("NRW")))
            .await
            .unwrap();
    let (_, de_nimic) = accounts::create(&pool, "de-nimic", coordinator, scope("DE", None, None))
        .await
        .unwrap();
    assert!(
        accounts::create(&pool, "de-nimic-2", coordinator, scope("DE", None, None))
            .await
            .is_err(),
        "one national coordinator per country"
    );

    // An authority applies, behind a new endpoint.
    let endpoint = format!("bw-{}", env.suffix);
    let application = json!({
        "authority": "DE-LAEKBW",
        "names": {"de": "Landesärztekammer Baden-Württemberg", "en": "Baden-Württemberg Medical Association"},
        "endpoint": endpoint,
        "region": "BW",
        "procedures": ["pq-information-request"]
    });
    let (status, body) = call(
        &http,
        "POST",
        "/api/v1/applications",
        None,
        Some(application.clone()),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = call(
        &http,
        "POST",
        "/api/v1/applications",
        None,
        Some(application),
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:imi:problem:conflict")),
        "{body}"
    );

    // A body that is not an application is a problem document too.
    let response = reqwest::Client::new()
        .post(format!("{http}/api/v1/applications"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );

    // Pending: its endpoint has no broker user, and nothing is routed to it.
    assert!(
        cannot_connect(&env, &endpoint, "any").await,
        "a pending endpoint must not connect"
    );
    let mut to_bw = request_to_de();
    to_bw.recipients = vec![AuthorityId::try_from("DE-LAEKBW").unwrap()];
    fi.send(&to_bw).await.unwrap();
    // Known, though pending: not authorised, rather than unknown.
    let r = next_rejection(&mut fi_inbox).await;
    assert_eq!(r.code, RejectionCode::RecipientNotAuthorized, "{r:?}");

    // Coordinators decide only in their country and, if delegated, their area.
    let approve = "/api/v1/authorities/DE-LAEKBW/approve";
    let (status, body) = call(&http, "POST", approve, Some(&fi_nimic), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(&http, "POST", approve, Some(&de_services), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("services"),
        "{body}"
    );
    let (status, body) = call(&http, "POST", approve, Some(&de_nrw), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("NRW"), "{body}");
    let (status, body) = call(&http, "POST", approve, None, None).await;
    assert_eq!(status, 401, "{body}");

    // The national coordinator approves: the endpoint is provisioned, its
    // credentials shown this once.
    let (status, body) = call(&http, "POST", approve, Some(&de_nimic), None).await;
    assert_eq!(status, 200, "{body}");
    let password = body["endpoint_credentials"]["password"]
        .as_str()
        .expect("credentials")
        .to_owned();
    assert_eq!(body["endpoint_credentials"]["endpoint"], endpoint.as_str());

    let bw = Adapter::connect_within(
        &endpoint_config(&env, &endpoint, &password),
        Duration::from_secs(10),
    )
    .await
    .expect("the approved endpoint connects");
    let (mut bw_inbox, _stop) = imi_tests::open_inbox(&bw);
    let id = fi.send(&to_bw).await.unwrap();
    let (delivered, _, incoming) = next_acked(&mut bw_inbox, 20).await;
    assert_eq!(delivered, id.to_string());
    assert!(matches!(incoming, Incoming::Message(_)), "{incoming:?}");

    // Approving it again changes nothing and is said to be a conflict.
    let (status, body) = call(&http, "POST", approve, Some(&de_nimic), None).await;
    assert_eq!(status, 409, "{body}");

    // Rotation: the old password stops working, the new one works.
    let (status, body) = call(
        &http,
        "POST",
        &format!("/api/v1/endpoints/{endpoint}/credentials"),
        Some(&de_nimic),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["password"].as_str().unwrap().to_owned();
    assert_ne!(rotated, password);
    assert!(
        cannot_connect(&env, &endpoint, &password).await,
        "the old password must stop working"
    );
    // The connection opened with the old password is closed too, and does
    // not come back.
    let mut waited = 0;
    while bw.is_connected() && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert!(
        !bw.is_connected(),
        "a connection opened with the old password must be closed"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!bw.is_connected(), "nor may it reconnect");
    let again = Adapter::connect_within(
        &endpoint_config(&env, &endpoint, &rotated),
        Duration::from_secs(10),
    )
    .await
    .expect("the new password works");

    // A suspended authority is no longer routed to.
    let reason = json!({"reason": "licence withdrawn by the Land"});
    let path = "/api/v1/authorities/DE-LAEKBW/suspend";
    let (status, body) = call(&http, "POST", path, Some(&de_nimic), Some(reason)).await;
    assert_eq!(status, 200, "{body}");
    fi.send(&to_bw).await.unwrap();
    let rejected = loop {
        if let (_, _, Incoming::Rejection(r)) = next_acked(&mut fi_inbox, 20).await {
            break r;
        }
    };
    assert_eq!(
        rejected.code,
        RejectionCode::RecipientNotAuthorized,
        "{rejected:?}"
    );

    // Suspending the endpoint revokes its user and closes its open connection.
    let (status, body) = call(
        &http,
        "POST",
        &format!("/api/v1/endpoints/{endpoint}/suspend"),
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "suspended", "{body}");
    // The open connection is closed, and does not come back.
    let mut waited = 0;
    while again.is_connected() && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert!(
        !again.is_connected(),
        "the suspended endpoint's open connection must be closed"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !again.is_connected(),
        "the suspended endpoint must not reconnect"
    );
    assert!(
        cannot_connect(&env, &endpoint, &rotated).await,
        "a suspended endpoint must not connect"
    );
    fi.send(&to_bw).await.unwrap();
    let rejected = loop {
        if let (_, _, Incoming::Rejection(r)) = next_acked(&mut fi_inbox, 20).await {
            break r;
        }
    };
    assert_eq!(
        rejected.code,
        RejectionCode::RecipientNotAuthorized,
        "{rejected:?}"
    );

    // Every step is on record, with who did it.
    let (status, events) = call(
        &http,
        "GET",
        "/api/v1/authorities/DE-LAEKBW/events",
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let steps: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["by"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("applied".into(), "".into()),
            ("approved".into(), "de-nimic".into()),
            ("credentials_rotated".into(), "de-nimic".into()),
            ("suspended".into(), "de-nimic".into()),
            ("suspended".into(), "helpdesk".into()),
        ]
    );

    bw.close().await;
    again.close().await;
    pool.close().await;
    let _ = env.management.delete_user(&endpoint).await;
    finish(env, hub, vec![fi, de]).await;
}

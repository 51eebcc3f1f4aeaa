//! Refused messages through the API: listed by cause and one by one with
//! metadata only, re-driven after the cause is fixed (the sender then gets
//! its receipt), never by an auditor, and recorded.

use imi_hub::accounts::{self, AccountRole, Scope};
use imi_tests::{
    call_api, finish, next_receipt, next_rejection, open_inbox, request_to_de, TestEnv,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_is_listed_and_re_driven_through_the_api_once_its_cause_is_fixed() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _stop) = open_inbox(&fi);
    let (_, operator) = accounts::create(&pool, "ops", AccountRole::Operator, Scope::default())
        .await
        .unwrap();
    let (_, auditor) = accounts::create(&pool, "audit", AccountRole::Auditor, Scope::default())
        .await
        .unwrap();

    // To an authority not registered for the procedure: refused.
    let mut message = request_to_de();
    message.recipients = vec!["FR-CNOM".try_into().unwrap()];
    let id = fi.send(&message).await.unwrap().to_string();
    let rejection = next_rejection(&mut fi_inbox).await;
    assert_eq!(rejection.code.as_str(), "recipient_not_authorized");

    let (status, groups) =
        call_api(&hub.http, "GET", "/api/v1/refused", Some(&auditor), None).await;
    assert_eq!(status, 200, "{groups}");
    let group = &groups.as_array().unwrap()[0];
    assert_eq!(group["code"], "recipient_not_authorized");
    assert_eq!(group["count"], 1);
    let path = format!(
        "/api/v1/refused/messages?code=recipient_not_authorized&endpoint={}&type={}",
        group["endpoint"].as_str().unwrap(),
        group["message_type"].as_str().unwrap()
    );
    let (status, rows) = call_api(&hub.http, "GET", &path, Some(&auditor), None).await;
    assert_eq!(status, 200, "{rows}");
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["message_id"], id.as_str());
    assert_eq!(row["can_be_redriven"], true);
    assert!(row.get("body").is_none(), "metadata only: {row}");
    let record = row["id"].as_i64().unwrap();
    let redrive = format!("/api/v1/refused/{record}/redrive");

    let (status, _) = call_api(&hub.http, "POST", &redrive, Some(&auditor), None).await;
    assert_eq!(status, 403, "auditors change nothing");

    // The cause fixed: FR-CNOM registered for the procedure.
    let (status, body) = call_api(
        &hub.http,
        "POST",
        "/api/v1/authorities/FR-CNOM/approve",
        Some(&operator),
        Some(serde_json::json!({"procedures": ["pq-information-request"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, outcome) = call_api(&hub.http, "POST", &redrive, Some(&operator), None).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 1, "{outcome}");
    let receipt = next_receipt(&mut fi_inbox).await;
    assert_eq!(receipt.message_id.to_string(), id);

    // Resolved: no longer listed, and not re-driven twice.
    let (_, groups) = call_api(&hub.http, "GET", "/api/v1/refused", Some(&operator), None).await;
    assert_eq!(groups.as_array().unwrap().len(), 0, "{groups}");
    let (status, _) = call_api(&hub.http, "POST", &redrive, Some(&operator), None).await;
    assert_eq!(status, 409);
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'redrive'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, 1);

    pool.close().await;
    finish(env, hub, vec![fi]).await;
}

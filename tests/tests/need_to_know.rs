//! Need-to-know, proven by walking every route: every GET page of the
//! console (read from its route table in `hub/src/console/mod.rs`) and every
//! GET route of the API (read from `docs/openapi.json`) is fetched by each
//! role, with the path's parameters filled with the test's exchange. A
//! marker only the payload holds may appear only where need-to-know allows
//! it: the exchange's page, for the coordinators of its parties' countries
//! and for an operator who posted a reason (recorded); the refused
//! message's page, for its sender's country's coordinator and such an
//! operator. A route added later
//! that shows a payload without this check fails here. Once the exchange's
//! data are blocked, only an operator's reasoned view shows them.

use std::path::Path;

use imi_hub::accounts::{self, AccountRole, Scope};
use imi_schemas::ids::CountryCode;
use imi_tests::console::ConsoleUser;
use imi_tests::{call_api, next_receipt, open_inbox, request_to_de, TestEnv};
use reqwest::StatusCode;

/// Only the payload holds this.
const MARKER: &str = "Quaxelbrunn";

fn coordinator(country: &str) -> Scope {
    Scope {
        country: Some(CountryCode::try_from(country).unwrap()),
        ..Scope::default()
    }
}

/// Every GET route of the console's route table (`.route("…", get(…))`).
fn console_routes() -> Vec<String> {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/src/console/mod.rs"),
    )
    .unwrap();
    let mut routes = Vec::new();
    let mut rest = source.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let Some(start) = rest.find('"') else { break };
        let Some(len) = rest[start + 1..].find('"') else {
            break;
        };
        let path = &rest[start + 1..start + 1 + len];
        let call = &rest[start + 1 + len..rest.find(".route(").unwrap_or(rest.len())];
        // `/console/live` is an event stream that never ends; it carries
        // counts only.
        if call.contains("get(") && path.starts_with("/console") && !path.ends_with("/live") {
            routes.push(path.to_owned());
        }
    }
    assert!(routes.len() >= 15, "the console's route table: {routes:?}");
    routes
}

/// Every GET route of the API's OpenAPI document.
fn api_routes() -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json"))
            .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let routes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, ops)| ops.get("get").is_some())
        .map(|(path, _)| path.clone())
        .collect();
    assert!(routes.len() >= 10, "the API's GET routes: {routes:?}");
    routes
}

/// A route with its parameters filled in for the test's exchange, refused
/// message and data-subject request (one path per export format).
fn fill(route: &str, exchange: &str, refused: i64, request: &str) -> Vec<String> {
    if route.starts_with("/console/refused/{id}") || route.starts_with("/api/v1/refused/{id}") {
        return vec![route.replace("{id}", &refused.to_string())];
    }
    if route.starts_with("/console/subjects/requests/{id}") {
        let route = route.replace("{id}", request);
        return ["export.json", "export.html"]
            .iter()
            .map(|f| route.replace("{file}", f))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
    }
    vec![route
        .replace("{id}", exchange)
        .replace("{exchange_id}", exchange)
        .replace("{code}", "pq-information-request")
        .replace("{authority}", "FI-VALVIRA")
        .replace("{endpoint}", "fi")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_shows_a_payload_only_to_those_who_need_to_know() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _s) = open_inbox(&fi);
    let mut request = request_to_de();
    request.payload["professional"]["family_name"] = serde_json::json!(MARKER);
    fi.send(&request).await.unwrap();
    let exchange = next_receipt(&mut fi_inbox).await.exchange_id.to_string();
    // And a refused one: the same payload with a property the form does not
    // know; its body and the explanations quote the marker.
    let mut refused = request_to_de();
    refused.payload["professional"]["family_name"] = serde_json::json!(MARKER);
    refused.payload["professional"]["alias"] = serde_json::json!(MARKER);
    fi.send(&refused).await.unwrap();
    imi_tests::next_rejection(&mut fi_inbox).await;
    let refused_id: i64 =
        sqlx::query_scalar("SELECT id FROM rejected_messages ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();

    // Each role, in the console and with an API token.
    let mut people = Vec::new();
    for (name, role, scope, party) in [
        ("ops", AccountRole::Operator, Scope::default(), false),
        ("aud", AccountRole::Auditor, Scope::default(), false),
        (
            "fi-nimic",
            AccountRole::Coordinator,
            coordinator("FI"),
            true,
        ),
        (
            "de-nimic",
            AccountRole::Coordinator,
            coordinator("DE"),
            true,
        ),
        (
            "fr-nimic",
            AccountRole::Coordinator,
            coordinator("FR"),
            false,
        ),
    ] {
        // One account each, for the console (a password) and the API (its token).
        let (account, token) = accounts::create(&pool, name, role, scope).await.unwrap();
        let password = format!("pw-{name}-long-enough");
        accounts::set_password(&pool, account.id, &password)
            .await
            .unwrap();
        let name = name.to_owned();
        let mut user = ConsoleUser::new(&hub.http, &name, &password);
        user.log_in().await;
        people.push((name, user, token, party));
    }
    // Germany's coordinator opens a data-subject request about the
    // professional: its export carries the payload, to that office only.
    let (_, de, _, _) = &mut people[3];
    let found = de
        .post_from(
            "/console/subjects",
            "/console/subjects/search",
            &[
                ("family_name", MARKER),
                ("given_names", "Aino"),
                ("date_of_birth", "1988-04-12"),
                ("reason", "Letter DE-DSR-2026-9 from the professional"),
            ],
        )
        .await;
    let keys = {
        let marker = "name=\"keys\" value=\"";
        let at = found.body.find(marker).expect("keys") + marker.len();
        found.body[at..at + found.body[at..].find('"').unwrap()].to_owned()
    };
    let opened = de
        .post_from(
            "/console/subjects",
            "/console/subjects/requests",
            &[
                ("keys", &keys),
                ("kind", "access"),
                ("language", "de"),
                ("reference", "DE-DSR-2026-9"),
                ("received_on", &chrono::Utc::now().date_naive().to_string()),
            ],
        )
        .await;
    let page_of_request = opened.location.expect("the request opens");
    let request_id = page_of_request.rsplit('/').next().unwrap().to_owned();
    let page_of_exchange = format!("/console/exchanges/{exchange}");
    let page_of_refused = format!("/console/refused/{refused_id}");
    let console = console_routes();
    let api = api_routes();
    for (name, user, token, party) in &mut people {
        for path in console
            .iter()
            .flat_map(|r| fill(r, &exchange, refused_id, &request_id))
        {
            let page = user.get(&path).await;
            let shown = page.body.contains(MARKER);
            // The refused message came from a Finnish endpoint: Finland's
            // coordinator may read it, to fix its system.
            let allowed = (*party && path == page_of_exchange)
                || (name == "fi-nimic" && path == page_of_refused)
                || (name == "de-nimic" && path.starts_with(&format!("{page_of_request}/export")));
            assert!(
                !shown || allowed,
                "{path} shows the payload to {name} ({})",
                page.status
            );
            if allowed {
                assert!(
                    shown,
                    "{path} hides the payload from {name}, a party's coordinator"
                );
            }
        }
        let group = "/api/v1/refused/messages?code=invalid_payload".to_owned();
        for path in api
            .iter()
            .flat_map(|r| fill(r, &exchange, refused_id, &request_id))
            .chain([group])
        {
            let (_, body) = call_api(&hub.http, "GET", &path, Some(token.as_str()), None).await;
            assert!(
                !body.to_string().contains(MARKER),
                "the API's {path} shows the payload to {name}"
            );
        }
    }

    // The operator reads it only with a reason, posted (a link cannot make
    // a browser record one), which is recorded.
    let (_, ops, _, _) = &mut people[0];
    let read = format!("{page_of_exchange}/read");
    assert!(!ops.get(&page_of_exchange).await.body.contains(MARKER));
    let linked = ops
        .get(&format!(
            "{page_of_exchange}?reason={}",
            urlencode("A reason in a link someone sent")
        ))
        .await;
    assert!(
        !linked.body.contains(MARKER),
        "a reason in a link shows nothing"
    );
    let short = ops
        .post_from(
            &page_of_exchange,
            &read,
            &[("reason", "because"), ("lang", "en")],
        )
        .await;
    assert!(
        !short.body.contains(MARKER),
        "a reason is at least ten characters"
    );
    let reason = "Complaint 2026-118 by the professional: checking what was sent";
    let reasoned = ops
        .post_from(
            &page_of_exchange,
            &read,
            &[("reason", reason), ("lang", "en")],
        )
        .await;
    assert_eq!(reasoned.status, StatusCode::OK);
    assert!(reasoned.body.contains(MARKER));
    let recorded: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE action = 'view_exchange' AND account_name = 'ops' AND subject = $1",
    )
    .bind(&exchange)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["reason"], reason);
    assert_eq!(recorded[0]["blocked"], false);

    // The same for the refused message's body.
    let (_, ops, _, _) = &mut people[0];
    assert!(!ops.get(&page_of_refused).await.body.contains(MARKER));
    let reasoned = ops
        .post_from(
            &page_of_refused,
            &format!("{page_of_refused}/read"),
            &[("reason", "Ticket 4712: the sender cannot see why")],
        )
        .await;
    assert!(reasoned.body.contains(MARKER));

    // Closed long ago: the retention pass blocks its data. Hidden from the
    // parties' coordinators now; an operator's reasoned view is proof.
    sqlx::query(
        "UPDATE exchanges SET state = 'closed', closed_at = now() - interval '7 months' WHERE id = $1::uuid",
    )
    .bind(&exchange)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(hub.retention.run_once().await.unwrap().blocked, 1);
    for i in [2, 3] {
        let (name, user, _, _) = &mut people[i];
        let page = user.get(&page_of_exchange).await;
        assert!(!page.body.contains(MARKER), "blocked data shown to {name}");
        assert!(page.body.contains("are blocked"), "{}", page.body);
    }
    // Nor in the data-subject export: blocked is blocked.
    let (_, de, _, _) = &mut people[3];
    let export = de.get(&format!("{page_of_request}/export.json")).await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(!export.body.contains(MARKER), "a blocked payload exported");
    let (_, ops, _, _) = &mut people[0];
    let proof = ops
        .post_from(
            &page_of_exchange,
            &read,
            &[
                ("reason", "Court order 4 C 17/26 asks for the record"),
                ("lang", "en"),
            ],
        )
        .await;
    assert!(proof.body.contains(MARKER));
    let blocked_views: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'view_exchange' AND subject = $1 AND detail ->> 'blocked' = 'true'",
    )
    .bind(&exchange)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(blocked_views, 1);
    pool.close().await;
    imi_tests::finish(env, hub, vec![fi]).await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

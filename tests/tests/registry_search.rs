//! Multilingual authority search through the authenticated HTTP API.

use imi_hub::accounts::{self, AccountRole, Scope};
use imi_tests::TestEnv;
use serde_json::{json, Value};

async fn names(pool: &sqlx::PgPool, id: &str, names: Value, competences: Value) {
    sqlx::query("UPDATE authorities SET names = $2, competences = $3 WHERE id = $1")
        .bind(id)
        .bind(names)
        .bind(competences)
        .execute(pool)
        .await
        .unwrap();
}

async fn get(http: &str, path: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new().get(format!("{http}{path}"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        content_type,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn ids(body: &Value) -> Vec<String> {
    body["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorities_are_found_in_any_language_without_accents_and_with_typos() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    names(
        &pool,
        "FI-VALVIRA",
        json!({"fi": "Sosiaali- ja terveysalan lupa- ja valvontavirasto Valvira",
               "sv": "Tillstånds- och tillsynsverket för social- och hälsovården Valvira",
               "en": "National Supervisory Authority for Welfare and Health (Valvira)"}),
        json!({"en": "Registration of health care professionals", "fi": "Terveydenhuollon ammattihenkilöiden rekisteröinti"}),
    )
    .await;
    names(
        &pool,
        "DE-AEKNO",
        json!({"de": "Ärztekammer Nordrhein", "fr": "Ordre des médecins de Rhénanie-du-Nord",
               "en": "North Rhine Medical Association"}),
        json!({"de": "Approbation und Berufsaufsicht der Ärztinnen und Ärzte"}),
    )
    .await;
    names(
        &pool,
        "FR-CNOM",
        json!({"fr": "Conseil national de l'Ordre des médecins", "en": "French National Medical Council"}),
        json!({}),
    )
    .await;
    let (_, token) = accounts::create(&pool, "helpdesk", AccountRole::Operator, Scope::default())
        .await
        .unwrap();
    let t = Some(token.as_str());

    // Who is asking must be known; the answer is a problem document.
    let (status, content_type, body) = get(&hub.http, "/api/v1/authorities?q=valvira", None).await;
    assert_eq!(status, 401);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["type"], "urn:imi:problem:unauthenticated");
    assert_eq!(body["status"], 401);
    let (status, _, _) = get(
        &hub.http,
        "/api/v1/authorities?q=valvira",
        Some("imi_not-a-token"),
    )
    .await;
    assert_eq!(status, 401);

    // Case-insensitive.
    let (status, _, body) = get(&hub.http, "/api/v1/authorities?q=valvira", t).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&body).first().map(String::as_str),
        Some("FI-VALVIRA"),
        "{body}"
    );
    // Accent-insensitive.
    let (_, _, body) = get(&hub.http, "/api/v1/authorities?q=Arztekammer", t).await;
    assert_eq!(ids(&body), vec!["DE-AEKNO"], "{body}");
    // A German authority from its French name.
    let (_, _, body) = get(
        &hub.http,
        "/api/v1/authorities?q=ordre%20des%20medecins%20de%20rhenanie",
        t,
    )
    .await;
    assert_eq!(
        ids(&body).first().map(String::as_str),
        Some("DE-AEKNO"),
        "{body}"
    );
    // Competences are searchable too.
    let (_, _, body) = get(&hub.http, "/api/v1/authorities?q=berufsaufsicht", t).await;
    assert_eq!(ids(&body), vec!["DE-AEKNO"], "{body}");
    // A small typo.
    let (_, _, body) = get(&hub.http, "/api/v1/authorities?q=Valvria", t).await;
    assert_eq!(
        ids(&body).first().map(String::as_str),
        Some("FI-VALVIRA"),
        "{body}"
    );
    // Filters.
    let (_, _, body) = get(&hub.http, "/api/v1/authorities?q=medecins&country=FR", t).await;
    assert_eq!(ids(&body), vec!["FR-CNOM"], "{body}");
    let (_, _, body) = get(
        &hub.http,
        "/api/v1/authorities?procedure=pq-information-request",
        t,
    )
    .await;
    let found = ids(&body);
    assert!(
        found.contains(&"DE-AEKNO".to_owned()) && !found.contains(&"FR-CNOM".to_owned()),
        "{body}"
    );
    // A bad filter is a clear 400, not a 500.
    let (status, content_type, body) = get(&hub.http, "/api/v1/authorities?country=XX", t).await;
    assert_eq!(status, 400);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(body["detail"].as_str().unwrap().contains("XX"), "{body}");

    pool.close().await;
    hub.stop().await;
    env.cleanup().await;
}

//! Data-subject requests end to end, on the real broker and database: a
//! coordinator finds a person's exchanges by name with date of birth
//! (spelled differently from the payload), and nobody else's; opens a
//! request; exports it as JSON and as a page in the person's language;
//! records an objection on an exchange; is reminded of the one-month
//! deadline and told when it passes; answers. The index holds no readable
//! name, every step is in the audit log, other offices and auditors see
//! what they may only, and the index can be rebuilt.

use chrono::{Duration, Utc};
use imi_hub::accounts::{AccountRole, Scope};
use imi_schemas::ids::CountryCode;
use imi_tests::console::{console_account, ConsoleUser, Page};
use imi_tests::{next_receipt, open_inbox, request_to_de, TestEnv};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn coordinator(country: &str) -> Scope {
    Scope {
        country: Some(CountryCode::try_from(country).unwrap()),
        ..Scope::default()
    }
}

/// The value of the hidden field `name` of a page's form.
fn field(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {body}"));
    let rest = &body[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A search by name and date of birth (empty for a field left out), with
/// its reason.
async fn search_person(user: &mut ConsoleUser, name: [&str; 3], reason: &str) -> Page {
    user.post_from(
        "/console/subjects",
        "/console/subjects/search",
        &[
            ("family_name", name[0]),
            ("given_names", name[1]),
            ("date_of_birth", name[2]),
            ("reason", reason),
        ],
    )
    .await
}

async fn user(
    env: &TestEnv,
    hub: &str,
    name: &str,
    role: AccountRole,
    scope: Scope,
) -> ConsoleUser {
    let pool = env.pool().await;
    let (name, password) = console_account(&pool, name, role, scope).await;
    let mut user = ConsoleUser::new(hub, &name, &password);
    user.log_in().await;
    user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_finds_exports_and_answers_what_concerns_one_person_only() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let fi = env.adapter(0).await;
    let (mut inbox, _s) = open_inbox(&fi);

    // Two requests about Élodie Marchetti-Brunner, one about someone else
    // with the same name but another birth date, one about a third person.
    let mut exchanges = Vec::new();
    for (family, given, born, marker) in [
        (
            "Marchetti-Brunner",
            "Élodie",
            "1979-03-14",
            "Sairaanhoitaja Alfa",
        ),
        (
            "MARCHETTI BRUNNER",
            "elodie",
            "1979-03-14",
            "Sairaanhoitaja Beta",
        ),
        (
            "Marchetti-Brunner",
            "Élodie",
            "1981-07-02",
            "Sairaanhoitaja Gamma",
        ),
        ("Korhonen", "Aino", "1979-03-14", "Sairaanhoitaja Delta"),
    ] {
        let mut request = request_to_de();
        request.payload["professional"] =
            json!({"family_name": family, "given_names": given, "date_of_birth": born});
        request.payload["diploma"]["title"] = json!(marker);
        fi.send(&request).await.unwrap();
        exchanges.push(next_receipt(&mut inbox).await.exchange_id.to_string());
    }

    // The index holds keyed hashes only: no name, no date, readable.
    let index: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key FROM subject_index")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(index.len(), 4, "one person per payload");
    assert!(index.iter().all(|k| k.len() == 32));
    let dump: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(encode(key, 'escape'), ''), '') FROM subject_index",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!dump.contains("Marchetti") && !dump.contains("1979"));

    let mut de = user(
        &env,
        &hub.http,
        "de-nimic",
        AccountRole::Coordinator,
        coordinator("DE"),
    )
    .await;
    // A search needs a reason, and a whole name with its date.
    let no_reason = search_person(
        &mut de,
        ["Marchetti Brunner", "Elodie", "1979-03-14"],
        "short",
    )
    .await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    let no_date = search_person(
        &mut de,
        ["Marchetti Brunner", "Elodie", ""],
        "Request DE-DSR-2026-17 received by post",
    )
    .await;
    assert_eq!(no_date.status, StatusCode::BAD_REQUEST);

    // Spelled without accents or hyphen, in other case: the same person.
    let found = search_person(
        &mut de,
        ["marchetti brunner", "ELODIE", "1979-03-14"],
        "Request DE-DSR-2026-17 received by post",
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(found.body.contains(&exchanges[0]) && found.body.contains(&exchanges[1]));
    assert!(
        !found.body.contains(&exchanges[2]),
        "another birth date is another person"
    );
    assert!(!found.body.contains(&exchanges[3]));
    // The search is recorded with its reason, never with whom it sought.
    let search: Value = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE action = 'subject_search' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(search["found"], 2);
    assert_eq!(search["reason"], "Request DE-DSR-2026-17 received by post");
    assert!(!search.to_string().to_lowercase().contains("marchetti"));

    // Another country's coordinator finds none of it: not its exchanges.
    let mut fr = user(
        &env,
        &hub.http,
        "fr-nimic",
        AccountRole::Coordinator,
        coordinator("FR"),
    )
    .await;
    let elsewhere = search_person(
        &mut fr,
        ["Marchetti-Brunner", "Élodie", "1979-03-14"],
        "Checking a complaint we received",
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    assert!(!elsewhere.body.contains(&exchanges[0]));

    // Open a request: an objection, in French, received 25 days ago.
    let received = (Utc::now() - Duration::days(25)).date_naive().to_string();
    let keys = field(&found.body, "keys");
    let opened = de
        .post_from(
            "/console/subjects",
            "/console/subjects/requests",
            &[
                ("keys", &keys),
                ("kind", "contest"),
                ("language", "fr"),
                ("reference", "DE-DSR-2026-17"),
                ("received_on", &received),
            ],
        )
        .await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.body);
    let page_path = opened.location.unwrap();
    let page = de.get(&page_path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("DE-DSR-2026-17") && page.body.contains(&exchanges[1]));

    // The JSON export holds that person's exchanges, with their content,
    // and nobody else's.
    let export = de.get(&format!("{page_path}/export.json")).await;
    assert_eq!(export.status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&export.body).unwrap();
    let ids: Vec<&str> = doc["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&exchanges[0].as_str()) && ids.contains(&exchanges[1].as_str()));
    assert!(
        export.body.contains("Sairaanhoitaja Alfa") && export.body.contains("Sairaanhoitaja Beta")
    );
    for other in [
        "Sairaanhoitaja Gamma",
        "Sairaanhoitaja Delta",
        "Korhonen",
        "1981-07-02",
    ] {
        assert!(!export.body.contains(other), "the export shows {other}");
    }
    // The page speaks the person's language: French phrases and labels.
    let html = de.get(&format!("{page_path}/export.html")).await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.body.contains("<html lang=\"fr\""));
    assert!(
        html.body.contains("Vos données à caractère personnel"),
        "{}",
        html.body
    );
    assert!(html.body.contains("Sairaanhoitaja Alfa") && !html.body.contains("Korhonen"));
    if let Ok(dir) = std::env::var("IMI_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/data-subject-export.html"), &html.body).unwrap();
    }

    // An objection recorded on one exchange shows on the exchange's page
    // to a party's coordinator; the log says one was recorded, not what.
    let statement = "Je conteste: je n'ai jamais exercé comme infirmière en Allemagne.";
    let recorded = de
        .post_from(
            &page_path,
            &format!("{page_path}/statements"),
            &[
                ("exchange", &exchanges[0]),
                ("kind", "contest"),
                ("statement", statement),
            ],
        )
        .await;
    assert_eq!(recorded.status, StatusCode::SEE_OTHER, "{}", recorded.body);
    let exchange_page = de
        .get(&format!("/console/exchanges/{}", exchanges[0]))
        .await;
    assert!(exchange_page.body.contains("jamais exercé"));
    let logged: Value = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE action = 'subject_statement' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(logged["kind"], "contest");
    assert!(!logged.to_string().contains("jamais"));
    // Not on an exchange outside the request.
    let outside = de
        .post_from(
            &page_path,
            &format!("{page_path}/statements"),
            &[
                ("exchange", &exchanges[3]),
                ("kind", "correction"),
                ("statement", "x"),
            ],
        )
        .await;
    assert_ne!(outside.status, StatusCode::SEE_OTHER);

    // Other offices do not see the request; an auditor sees its outline,
    // never its export.
    assert_eq!(fr.get(&page_path).await.status, StatusCode::NOT_FOUND);
    let mut aud = user(
        &env,
        &hub.http,
        "aud",
        AccountRole::Auditor,
        Scope::default(),
    )
    .await;
    let outline = aud.get(&page_path).await;
    assert_eq!(outline.status, StatusCode::OK);
    assert!(outline.body.contains("DE-DSR-2026-17") && !outline.body.contains("jamais"));
    assert_eq!(
        aud.get(&format!("{page_path}/export.json")).await.status,
        StatusCode::FORBIDDEN
    );

    // The deadline: received 25 days ago, due in about 6 days: a reminder,
    // once, and it shows on the desk.
    assert_eq!(hub.subject_deadlines.check_once().await.unwrap(), 1);
    assert_eq!(hub.subject_deadlines.check_once().await.unwrap(), 0, "once");
    let desk = de.get("/console/desk").await;
    assert!(desk.body.contains("DE-DSR-2026-17"), "{}", desk.body);
    // Received 31 days ago: overdue.
    sqlx::query("UPDATE subject_requests SET due_at = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(hub.subject_deadlines.check_once().await.unwrap(), 1);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM subject_request_notices ORDER BY fired_at, kind")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["reminder", "overdue"]);
    assert!(de.get(&page_path).await.body.contains("overdue"));

    // Answered: off the desk, nothing fires any more, recorded.
    let answered = de
        .post_from(
            &page_path,
            &format!("{page_path}/answer"),
            &[("answer", "Sent the export by post on 2026-12-02.")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    assert!(!de
        .get("/console/desk")
        .await
        .body
        .contains("DE-DSR-2026-17"));
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE action LIKE 'subject_%' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        // A refused search (no reason, no date) searched nothing.
        [
            "subject_search",
            "subject_search",
            "subject_request_opened",
            "subject_export",
            "subject_export",
            "subject_statement",
            "subject_request_answered"
        ],
    );

    // The index rebuilt (a new key, or older messages) finds the same.
    sqlx::query("DELETE FROM subject_index")
        .execute(&pool)
        .await
        .unwrap();
    let keyer =
        imi_hub::subjects::SubjectKeyer::load_or_create(&env.config.subjects.index_key_file)
            .unwrap();
    let catalogue = hub.catalogue.current();
    let read = imi_hub::subjects::reindex(&pool, &catalogue, &keyer)
        .await
        .unwrap();
    assert_eq!(read, 4);
    let again = search_person(
        &mut de,
        ["Marchetti-Brunner", "Élodie", "1979-03-14"],
        "Request DE-DSR-2026-17, second look",
    )
    .await;
    assert!(again.body.contains(&exchanges[0]) && again.body.contains(&exchanges[1]));
    hub.stop().await;
    env.cleanup().await;
}

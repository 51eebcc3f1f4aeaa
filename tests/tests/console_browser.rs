//! The console in a real browser (headless Chromium through ChromeDriver),
//! as its users work: an operator logs in, watches a new message appear on
//! the dashboard without reloading, finds an exchange by filter and reads
//! its payload in Finnish and in French; approves a registration and
//! re-drives the messages refused before it; watches an alert's
//! acknowledgement progress move. axe-core checks each page; screenshots go
//! to `$CARGO_TARGET_DIR/screenshots/<test>/`.

use std::time::Duration;

use fantoccini::Locator;
use imi_adapters::{Adapter, EndpointConfig, Incoming, OutgoingMessage};
use imi_hub::accounts::{AccountRole, Scope};
use imi_schemas::catalogue::{read_folder, Catalogue};
use imi_schemas::ids::{AuthorityId, MessageType, ProcedureCode};
use imi_tests::browser::Browser;
use imi_tests::console::console_account;
use imi_tests::{
    call_api, diploma_request, example, finish, next_acked, next_receipt, next_rejection,
    one_to_many, open_inbox, request_to_de, TestEnv,
};
use serde_json::json;

fn catalogue() -> Catalogue {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/catalogue");
    Catalogue::parse(&read_folder(&dir).unwrap()).unwrap()
}

/// Waits until an element matching `css` is on the page (without reloading).
async fn wait_for_element(browser: &Browser, css: &str, within: Duration) {
    browser
        .client
        .wait()
        .at_most(within)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("`{css}` did not appear within {within:?}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watches_traffic_finds_an_exchange_and_reads_it_in_finnish_and_french() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let (name, password) =
        console_account(&pool, "ops", AccountRole::Operator, Scope::default()).await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _) = open_inbox(&fi);
    fi.send(&request_to_de()).await.unwrap();
    next_receipt(&mut fi_inbox).await;

    let mut browser = Browser::start("operator", &hub.http).await;
    browser.log_in(&name, &password).await;
    assert_eq!(browser.path().await, "/console");
    browser.screenshot("dashboard").await;
    browser.assert_accessible("dashboard").await;

    // A new message, while the dashboard is open: it appears by itself.
    browser
        .client
        .execute("window.imiNotReloaded = true;", vec![])
        .await
        .unwrap();
    fi.send(&request_to_de()).await.unwrap();
    let exchange = next_receipt(&mut fi_inbox).await.exchange_id;
    let link = format!("a[href=\"/console/exchanges/{exchange}\"]");
    wait_for_element(&browser, &link, Duration::from_secs(20)).await;
    let same_page = browser
        .client
        .execute("return window.imiNotReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, json!(true), "the dashboard was not reloaded");
    browser.screenshot("dashboard-new-message").await;

    // Find it by filter: the procedure and the requester's country.
    browser.goto("/console/exchanges").await;
    browser.assert_accessible("exchanges").await;
    browser
        .select("#f-procedure", "pq-information-request")
        .await;
    browser.fill("#f-country", "FI").await;
    browser.click("form.filters button[type=submit]").await;
    // The unfiltered list shows the link too: wait for the filtered page
    // itself (its URL), not for the link.
    let mut path = String::new();
    for _ in 0..100 {
        path = browser.path().await;
        if path.contains("procedure=pq-information-request") && path.contains("country=FI") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        path.contains("procedure=pq-information-request") && path.contains("country=FI"),
        "the filters are in the URL: {path}"
    );
    wait_for_element(&browser, &link, Duration::from_secs(10)).await;
    browser.screenshot("exchanges-filtered").await;
    // A country with no party to it does not list it.
    browser.goto("/console/exchanges?country=SE").await;
    assert!(browser.client.find(Locator::Css(&link)).await.is_err());

    // Its page, with the payload in Finnish, then in French.
    browser
        .goto("/console/exchanges?procedure=pq-information-request")
        .await;
    browser.click(&link).await;
    browser
        .wait_for_text("Messages and steps", Duration::from_secs(10))
        .await;
    // An operator reads the content only with a reason, which is recorded.
    browser
        .wait_for_text("only with a reason", Duration::from_secs(10))
        .await;
    assert!(!browser.text().await.contains("\"family_name\""));
    browser.assert_accessible("exchange-reason").await;
    browser.screenshot("exchange-reason").await;
    browser
        .fill(
            "#reason",
            "Helpdesk ticket 4711: the sender asks why the answer is late",
        )
        .await;
    browser.click("form.filters button[type=submit]").await;
    browser
        .wait_for_text("Shown for the reason you gave", Duration::from_secs(10))
        .await;
    browser.assert_accessible("exchange").await;
    let catalogue = catalogue();
    let procedure = catalogue
        .procedure(&ProcedureCode::try_from("pq-information-request").unwrap())
        .unwrap();
    for lang in ["fi", "fr"] {
        browser.select("#lang", lang).await;
        browser.click("form.inline button[type=submit]").await;
        let diploma = catalogue.field_label(procedure, "diploma", lang).unwrap();
        let family = catalogue
            .field_label(procedure, "family_name", lang)
            .unwrap();
        browser
            .wait_for_text(diploma, Duration::from_secs(10))
            .await;
        browser.wait_for_text(family, Duration::from_secs(1)).await;

        browser.screenshot(&format!("exchange-{lang}")).await;
    }
    // The raw JSON is beside it.
    assert!(browser.text().await.contains("\"family_name\""));
    let reasons: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT detail -> 'reason' FROM audit_events WHERE action = 'view_exchange' AND account_name = 'ops'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        !reasons.is_empty()
            && reasons
                .iter()
                .all(|r| r == "Helpdesk ticket 4711: the sender asks why the answer is late"),
        "every view of the content is recorded with its reason: {reasons:?}"
    );

    for (page, path) in [
        ("refused", "/console/refused"),
        ("authorities", "/console/authorities"),
        ("desk", "/console/desk"),
        ("catalogue", "/console/catalogue"),
        ("procedure", "/console/catalogue/pq-information-request"),
        ("statistics", "/console/statistics"),
        ("audit", "/console/audit"),
    ] {
        browser.goto(path).await;
        browser.assert_accessible(page).await;
        browser.screenshot(page).await;
    }
    browser.close().await;
    pool.close().await;
    finish(env, hub, vec![fi]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_a_registration_then_re_drives_what_was_refused_before_it() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let (name, password) =
        console_account(&pool, "ops", AccountRole::Operator, Scope::default()).await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _) = open_inbox(&fi);

    // A new authority applies; until it is approved it cannot receive.
    let endpoint = format!("at-new-{}", &env.vhost[9..]);
    let (status, _) = call_api(
        &hub.http,
        "POST",
        "/api/v1/applications",
        None,
        Some(json!({
            "authority": "AT-NEWBODY",
            "names": {"en": "New body", "de": "Neue Stelle"},
            "endpoint": endpoint,
            "procedures": ["pq-information-request"],
        })),
    )
    .await;
    assert_eq!(status, 202);
    let to_newbody = || OutgoingMessage {
        message_type: MessageType::try_from("pq-information-request.send").unwrap(),
        sender: AuthorityId::try_from("FI-VALVIRA").unwrap(),
        recipients: vec![AuthorityId::try_from("AT-NEWBODY").unwrap()],
        countries: vec![],
        exchange: None,
        payload: diploma_request(),
        schema_version: 1,
        message_id: None,
    };
    let mut refused_ids = Vec::new();
    for _ in 0..2 {
        let id = fi.send(&to_newbody()).await.unwrap();
        let rejection = next_rejection(&mut fi_inbox).await;
        assert_eq!(
            rejection.message_id.as_deref(),
            Some(id.to_string().as_str())
        );
        refused_ids.push(id.to_string());
    }

    let mut browser = Browser::start("registration-and-redrive", &hub.http).await;
    browser.log_in(&name, &password).await;
    browser.goto("/console/authorities").await;
    browser
        .wait_for_text("AT-NEWBODY", Duration::from_secs(5))
        .await;
    browser.screenshot("pending-application").await;
    browser
        .click("form[action=\"/console/authorities/AT-NEWBODY/approve\"] button[type=submit]")
        .await;
    browser
        .wait_for_text("shown this once", Duration::from_secs(20))
        .await;
    browser.assert_accessible("credentials").await;
    let password_shown = browser
        .client
        .find(Locator::Css("code.secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    browser.screenshot("credentials-once").await;

    // The refused messages, grouped; re-drive the group.
    browser.goto("/console/refused").await;
    browser.screenshot("refused-groups").await;
    browser.click("table.list tbody a").await;
    browser
        .wait_for_text("Re-drive 2 messages", Duration::from_secs(10))
        .await;
    browser.assert_accessible("refused-group").await;
    browser.screenshot("refused-group").await;
    browser
        .click("form[action=\"/console/refused/redrive\"] button[type=submit]")
        .await;
    browser
        .wait_for_text("2 messages re-driven", Duration::from_secs(20))
        .await;
    browser.screenshot("re-driven").await;

    // They went through the pipeline under their own ids: the sender gets
    // receipts, the new authority the messages.
    let mut receipted = Vec::new();
    for _ in 0..2 {
        receipted.push(next_receipt(&mut fi_inbox).await.message_id.to_string());
    }
    receipted.sort();
    refused_ids.sort();
    assert_eq!(receipted, refused_ids);
    let config = EndpointConfig {
        tls: None,
        endpoint: endpoint.clone(),
        password: password_shown,
        ..env.endpoint_config(0)
    };
    let newbody = Adapter::connect(&config)
        .await
        .expect("the new endpoint connects");
    let (mut inbox, _) = open_inbox(&newbody);
    let mut delivered = Vec::new();
    for _ in 0..2 {
        let (id, _, incoming) = next_acked(&mut inbox, 20).await;
        assert!(matches!(incoming, Incoming::Message(_)));
        delivered.push(id);
    }
    delivered.sort();
    assert_eq!(
        delivered, refused_ids,
        "delivered under the ids they were sent with"
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'redrive' AND account_name = $1",
    )
    .bind(&name)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, 1);
    browser.close().await;
    pool.close().await;
    newbody.close().await;
    finish(env, hub, vec![fi]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_watches_an_alerts_acknowledgements_come_in() {
    let env = TestEnv::with_registrations(
        &[
            ("fi", &["FI-VALVIRA"]),
            ("de", &["DE-AEKNO"]),
            ("at", &["AT-KAMMER"]),
        ],
        &["pq-alert"],
    )
    .await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let (name, password) = console_account(
        &pool,
        "de-nimic",
        AccountRole::Coordinator,
        Scope {
            country: Some(imi_schemas::ids::CountryCode::try_from("DE").unwrap()),
            ..Scope::default()
        },
    )
    .await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _) = open_inbox(&fi);
    let (mut de_inbox, _) = open_inbox(&de);
    de.send(&one_to_many(
        "pq-alert.send",
        "DE-AEKNO",
        &[],
        &[],
        None,
        example(&hub, "pq-alert", "send"),
    ))
    .await
    .unwrap();
    let exchange = next_receipt(&mut de_inbox).await.exchange_id;

    let mut browser = Browser::start("alert-progress", &hub.http).await;
    browser.log_in(&name, &password).await;
    browser
        .goto(&format!("/console/exchanges/{exchange}"))
        .await;
    browser
        .wait_for_text("0 / 2", Duration::from_secs(10))
        .await;
    browser.assert_accessible("alert").await;
    browser.screenshot("alert-sent").await;

    // Finland's system acknowledges its copy: the bar moves by itself.
    let (copy, exchange_id, incoming) = next_acked(&mut fi_inbox, 20).await;
    assert!(matches!(incoming, Incoming::Message(_)));
    fi.acknowledge(copy.parse().unwrap(), exchange_id.as_deref(), &[])
        .await
        .unwrap();
    browser
        .wait_for_text("1 / 2", Duration::from_secs(20))
        .await;
    browser.screenshot("alert-one-acknowledged").await;
    browser.close().await;
    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_finds_a_persons_exchanges_and_hands_over_an_export_in_their_language() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let (name, password) = console_account(
        &pool,
        "de-nimic",
        AccountRole::Coordinator,
        Scope {
            country: Some(imi_schemas::ids::CountryCode::try_from("DE").unwrap()),
            ..Scope::default()
        },
    )
    .await;
    let fi = env.adapter(0).await;
    let (mut inbox, _) = open_inbox(&fi);
    let mut request = request_to_de();
    request.payload["professional"] = json!({"family_name": "Nieminen", "given_names": "Aino Maria", "date_of_birth": "1979-03-14"});
    fi.send(&request).await.unwrap();
    let exchange = next_receipt(&mut inbox).await.exchange_id.to_string();

    let mut browser = Browser::start("data-subjects", &hub.http).await;
    browser.log_in(&name, &password).await;
    browser.goto("/console/subjects").await;
    browser.assert_accessible("subjects").await;
    browser.screenshot("subjects-empty").await;
    browser.fill("#family_name", "NIEMINEN").await;
    browser.fill("#given_names", "aino maria").await;
    browser
        .client
        .execute(
            "document.querySelector('#date_of_birth').value = arguments[0]",
            vec![json!("1979-03-14")],
        )
        .await
        .unwrap();
    browser
        .fill("#reason", "Letter DE-DSR-2026-40 of 1 December")
        .await;
    browser
        .click("form[action='/console/subjects/search'] button")
        .await;
    browser
        .wait_for_text(&exchange, Duration::from_secs(10))
        .await;
    browser.assert_accessible("subjects-found").await;
    browser.screenshot("subjects-found").await;
    browser.select("#kind", "access").await;
    browser.select("#language", "fi").await;
    browser.fill("#reference", "DE-DSR-2026-40").await;
    browser
        .click("form[action='/console/subjects/requests'] button")
        .await;
    browser
        .wait_for_text(
            "Data-subject request DE-DSR-2026-40",
            Duration::from_secs(10),
        )
        .await;
    browser.assert_accessible("subject-request").await;
    browser.screenshot("subject-request").await;

    // The export, as the person receives it: in Finnish.
    let path = browser.path().await;
    let mut user = imi_tests::console::ConsoleUser::new(&hub.http, &name, &password);
    user.log_in().await;
    let export = user.get(&format!("{path}/export.html")).await;
    assert!(export.body.contains("<html lang=\"fi\""));
    assert!(export.body.contains("Nieminen"));
    let file = std::env::temp_dir().join(format!("imi-export-{exchange}.html"));
    std::fs::write(&file, &export.body).unwrap();
    browser
        .client
        .goto(&format!("file://{}", file.display()))
        .await
        .unwrap();
    browser.assert_accessible("subject-export").await;
    browser.screenshot("subject-export-fi").await;
    let _ = std::fs::remove_file(&file);
    browser.close().await;
    pool.close().await;
    finish(env, hub, vec![fi]).await;
}

//! The web console over HTTP, per role: logging in, the lock after
//! repeated failures, CSRF on every form, an auditor who can change
//! nothing, a coordinator who sees and acts on its own country only, and
//! the security headers on every page.

use imi_hub::accounts::{AccountRole, Scope};
use imi_schemas::ids::CountryCode;
use imi_tests::console::{console_account, ConsoleUser};
use imi_tests::{finish, next_receipt, open_inbox, request_to_de, TestEnv};
use reqwest::StatusCode;

fn country(c: &str) -> Scope {
    Scope {
        country: Some(CountryCode::try_from(c).unwrap()),
        ..Scope::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_the_lock_after_repeated_failures() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let (name, password) =
        console_account(&pool, "ops", AccountRole::Operator, Scope::default()).await;
    let mut user = ConsoleUser::new(&hub.http, &name, &password);

    // Pages need a session: the browser is sent to the login page.
    let page = user.get("/console/exchanges?state=sent").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some("/console/login?next=%2Fconsole%2Fexchanges%3Fstate%3Dsent")
    );

    // A login without the login page's token is refused.
    let refused = user
        .post(
            "/console/login",
            &[("name", &name), ("password", &password), ("csrf", "forged")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // The session cookie is HttpOnly and SameSite; the page works.
    let login = user.log_in_with(&password).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let set = login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("imi_console="))
        .expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "not over TLS here: {set}");
    let dashboard = user.get("/console").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(dashboard.body.contains("Dashboard"));

    // Logging out ends the session on the server, not only in the browser.
    let session = user.get("/console").await;
    let csrf = session.csrf().unwrap();
    let out = user.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(user.get("/console").await.status, StatusCode::SEE_OTHER);

    // Five wrong passwords lock the account; while locked, the right one
    // does not open it either.
    let mut intruder = ConsoleUser::new(&hub.http, &name, "wrong");
    for i in 0..4 {
        let page = intruder.log_in_with("wrong password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    assert_eq!(
        intruder.log_in_with("wrong password").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let locked = user.log_in_with(&password).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a locked user stays out"
    );
    assert!(locked.body.contains("locked"));
    // When the lock ends, the right password works again.
    sqlx::query("UPDATE accounts SET locked_until = now() - interval '1 second' WHERE name = $1")
        .bind(&name)
        .execute(&pool)
        .await
        .unwrap();
    user.log_in().await;

    // Every attempt is in the audit log.
    let recorded: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, detail->>'reason' FROM audit_events WHERE account_name = $1 AND action LIKE 'login%' ORDER BY id",
    )
    .bind(&name)
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(a, r): (String, Option<String>)| (a, r.unwrap_or_default()))
    .collect();
    let actions: Vec<&str> = recorded.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions.first(), Some(&"login"));
    assert_eq!(actions.last(), Some(&"login"));
    assert_eq!(actions.iter().filter(|a| **a == "login_failed").count(), 6);
    assert!(recorded.iter().any(|(_, r)| r == "locked_now"));
    assert!(recorded.iter().any(|(_, r)| r == "locked"));
    pool.close().await;
    finish(env, hub, vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_needs_its_csrf_token_and_pages_carry_security_headers() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let (name, password) =
        console_account(&pool, "ops", AccountRole::Operator, Scope::default()).await;
    let mut user = ConsoleUser::new(&hub.http, &name, &password);
    user.log_in().await;

    for path in [
        "/console/refused/discard",
        "/console/gates",
        "/console/logout",
    ] {
        let without = user.post(path, &[("code", "invalid_payload")]).await;
        assert_eq!(
            without.status,
            StatusCode::FORBIDDEN,
            "{path} without a token"
        );
        let forged = user
            .post(path, &[("code", "invalid_payload"), ("csrf", "0123456789")])
            .await;
        assert_eq!(
            forged.status,
            StatusCode::FORBIDDEN,
            "{path} with another token"
        );
    }
    // With the page's token the same post goes through.
    let discard = user
        .post_from(
            "/console/refused",
            "/console/refused/discard",
            &[("code", "invalid_payload")],
        )
        .await;
    assert_eq!(discard.status, StatusCode::SEE_OTHER, "{}", discard.body);

    for path in [
        "/console",
        "/console/exchanges",
        "/console/login",
        "/console/catalogue",
    ] {
        let page = user.get(path).await;
        let header = |h: &str| {
            page.headers
                .get(h)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let csp = header("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        // No inline script anywhere: the policy would block it.
        assert!(!page.body.contains("<script>"), "{path} has inline script");
    }
    pool.close().await;
    finish(env, hub, vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_every_record_but_no_content_and_changes_nothing() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _) = open_inbox(&fi);
    fi.send(&request_to_de()).await.unwrap();
    let receipt = next_receipt(&mut fi_inbox).await;
    let (name, password) =
        console_account(&pool, "audit", AccountRole::Auditor, Scope::default()).await;
    let mut auditor = ConsoleUser::new(&hub.http, &name, &password);
    auditor.log_in().await;

    for path in [
        "/console".to_owned(),
        "/console/exchanges".to_owned(),
        format!("/console/exchanges/{}", receipt.exchange_id),
        "/console/refused".to_owned(),
        "/console/authorities".to_owned(),
        "/console/desk".to_owned(),
        "/console/catalogue".to_owned(),
        "/console/catalogue/pq-information-request".to_owned(),
        "/console/statistics".to_owned(),
        "/console/audit".to_owned(),
    ] {
        let page = auditor.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        // No form but logging out is offered to an auditor.
        let forms = page.body.matches("method=\"post\"").count();
        assert_eq!(forms, 1, "{path} offers an auditor {forms} forms");
    }
    // Even a well-formed post, with the session's token, changes nothing.
    let csrf = auditor.get("/console").await.csrf().unwrap();
    for (path, form) in [
        (
            "/console/gates",
            vec![("country", "FI"), ("area", "pq"), ("on", "true")],
        ),
        (
            "/console/refused/discard",
            vec![("code", "invalid_payload")],
        ),
        ("/console/endpoints/x/suspend", vec![]),
    ] {
        let mut fields = form.clone();
        fields.push(("csrf", &csrf));
        let page = auditor.post(path, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    let gates: i64 = sqlx::query_scalar("SELECT count(*) FROM validation_gates")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(gates, 0);
    // It read the exchange's metadata, never its content (need-to-know):
    // nothing of the payload is on the page, and no view of content is
    // recorded.
    let page = auditor
        .get(&format!("/console/exchanges/{}", receipt.exchange_id))
        .await;
    assert!(page.body.contains("metadata only"), "{}", page.body);
    assert!(
        !page.body.contains("Virtanen"),
        "the payload's name is shown to an auditor"
    );
    let views: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE account_name = $1 AND action = 'view_exchange' AND subject = $2",
    )
    .bind(&name)
    .bind(receipt.exchange_id.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(views, 0);
    pool.close().await;
    finish(env, hub, vec![fi]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_sees_and_acts_on_its_own_country_only() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _) = open_inbox(&fi);
    // FI-VALVIRA asks DE-AEKNO: an exchange of Finland and Germany.
    fi.send(&request_to_de()).await.unwrap();
    let exchange = next_receipt(&mut fi_inbox).await.exchange_id;
    let page_of = format!("/console/exchanges/{exchange}");

    let (name, password) =
        console_account(&pool, "fi-nimic", AccountRole::Coordinator, country("FI")).await;
    let mut finn = ConsoleUser::new(&hub.http, &name, &password);
    finn.log_in().await;
    let seen = finn.get(&page_of).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(finn
        .get("/console/exchanges")
        .await
        .body
        .contains(&exchange.to_string()));

    let (name, password) =
        console_account(&pool, "se-nimic", AccountRole::Coordinator, country("SE")).await;
    let mut swede = ConsoleUser::new(&hub.http, &name, &password);
    swede.log_in().await;
    let hidden = swede.get(&page_of).await;
    assert_eq!(hidden.status, StatusCode::FORBIDDEN);
    assert!(
        !hidden.body.contains("FI-VALVIRA"),
        "nothing of the exchange is shown"
    );
    let list = swede.get("/console/exchanges").await;
    assert!(
        !list.body.contains(&exchange.to_string()),
        "not in its list either"
    );
    // Nor can it act on it: reassigning the German responder's request is
    // for a German coordinator.
    let reassign = swede
        .post_from(
            "/console/desk",
            &format!("{page_of}/reassign"),
            &[("to", "SE-X")],
        )
        .await;
    assert_eq!(reassign.status, StatusCode::FORBIDDEN);
    // Nor switch another country's gate.
    let gate = swede
        .post_from(
            "/console/desk",
            "/console/gates",
            &[("country", "FI"), ("area", "pq"), ("on", "true")],
        )
        .await;
    assert_eq!(gate.status, StatusCode::FORBIDDEN);
    let gates: i64 = sqlx::query_scalar("SELECT count(*) FROM validation_gates")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(gates, 0);
    pool.close().await;
    finish(env, hub, vec![fi]).await;
}

/// The rows of a CSV download without its header, first field of each.
fn first_fields(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .map(|l| {
            l.split("\",\"")
                .next()
                .unwrap()
                .trim_matches('"')
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_sorts_through_the_url_and_downloads_as_csv() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let (first, first_password) =
        console_account(&pool, "first", AccountRole::Operator, Scope::default()).await;
    let (second, second_password) =
        console_account(&pool, "second", AccountRole::Operator, Scope::default()).await;
    let mut one = ConsoleUser::new(&hub.http, &first, &first_password);
    one.log_in().await;
    // Logins are recorded a moment apart, so the order is certain.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut user = ConsoleUser::new(&hub.http, &second, &second_password);
    user.log_in().await;

    // A list sorted by a column, both ways; the heading says which way and
    // links to the other; the CSV holds the rows in the order shown.
    let ascending = user.get("/console/catalogue?sort=code&format=csv").await;
    assert_eq!(ascending.status, StatusCode::OK);
    assert_eq!(
        ascending.headers["content-disposition"],
        "attachment; filename=\"procedures.csv\""
    );
    assert!(
        ascending
            .body
            .starts_with("\"area\",\"procedure\",\"code\""),
        "{}",
        ascending.body
    );
    let codes: Vec<String> = ascending
        .body
        .lines()
        .skip(1)
        .map(|l| l.split("\",\"").nth(2).unwrap().to_owned())
        .collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert!(codes.len() > 3, "{codes:?}");
    assert_eq!(codes, sorted, "ascending by code");
    let descending = user.get("/console/catalogue?sort=-code&format=csv").await;
    let mut reversed: Vec<String> = descending
        .body
        .lines()
        .skip(1)
        .map(|l| l.split("\",\"").nth(2).unwrap().to_owned())
        .collect();
    reversed.reverse();
    assert_eq!(reversed, codes, "descending by code");
    let page = user.get("/console/catalogue?sort=code").await;
    assert!(
        page.body.contains(r#"aria-sort="ascending""#)
            && page.body.contains("href=\"?sort=-code\""),
        "{}",
        page.body
    );

    // One of several lists on a page: its own sort and CSV parameters.
    let endpoints = user
        .get("/console?endpoints.sort=-endpoint&format=csv&table=endpoints")
        .await;
    assert!(
        endpoints.body.starts_with("\"endpoint\",\"health\""),
        "{}",
        endpoints.body
    );
    let ids = first_fields(&endpoints.body);
    let mut expected = ids.clone();
    expected.sort();
    expected.reverse();
    assert!(ids.len() >= 2, "{ids:?}");
    assert_eq!(ids, expected);

    // The audit log sorts in the database, newest first unless asked,
    // with its filters in the URL.
    let accounts = |csv: &str| -> Vec<String> {
        csv.lines()
            .skip(1)
            .map(|l| l.split("\",\"").nth(2).unwrap().to_owned())
            .collect()
    };
    let newest = user.get("/console/audit?action=login&format=csv").await;
    assert_eq!(
        accounts(&newest.body),
        [second.as_str(), first.as_str()],
        "{}",
        newest.body
    );
    let oldest = user
        .get("/console/audit?action=login&sort=at&format=csv")
        .await;
    assert_eq!(accounts(&oldest.body), [first.as_str(), second.as_str()]);
    let theirs = user
        .get(&format!("/console/audit?account={first}&format=csv"))
        .await;
    assert_eq!(accounts(&theirs.body), [first.as_str()]);
    // Every download is itself in the audit log, with what was asked for.
    let exports: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT subject, detail FROM audit_events WHERE action = 'export' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let asked: Vec<String> = exports
        .iter()
        .map(|(path, detail)| format!("{path}?{}", detail["query"].as_str().unwrap()))
        .collect();
    assert_eq!(
        asked,
        [
            "/console/catalogue?sort=code&format=csv",
            "/console/catalogue?sort=-code&format=csv",
            "/console?endpoints.sort=-endpoint&format=csv&table=endpoints",
            "/console/audit?action=login&format=csv",
            "/console/audit?action=login&sort=at&format=csv",
            &format!("/console/audit?account={first}&format=csv"),
        ]
    );

    pool.close().await;
    finish(env, hub, vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_refused_again_after_a_re_drive_is_open_again() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _) = open_inbox(&fi);

    // To an authority that is not registered, and still is not when the
    // operator re-drives it.
    let mut message = request_to_de();
    message.recipients = vec!["FR-CNOM".try_into().unwrap()];
    let id = fi.send(&message).await.unwrap().to_string();
    let _ = imi_tests::next_rejection(&mut fi_inbox).await;
    let (row, code, endpoint, message_type): (i64, String, String, String) = sqlx::query_as(
        "SELECT id, code, user_id, message_type FROM rejected_messages WHERE message_id = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();

    let (name, password) =
        console_account(&pool, "ops", AccountRole::Operator, Scope::default()).await;
    let mut user = ConsoleUser::new(&hub.http, &name, &password);
    user.log_in().await;
    let group =
        format!("/console/refused/group?code={code}&endpoint={endpoint}&type={message_type}");
    let done = user
        .post_from(
            &group,
            "/console/refused/redrive",
            &[
                ("code", &code),
                ("endpoint", &endpoint),
                ("type", &message_type),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);

    // Refused again: the same record, open, with the cause of this time;
    // the audit log says so.
    let (rows, open_row, resolution): (i64, i64, Option<String>) = sqlx::query_as(
        "SELECT count(*) OVER (), id, resolution FROM rejected_messages WHERE message_id = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rows, open_row), (1, row));
    assert_eq!(resolution, None, "refused again, it waits again");
    let page = user.get(&group).await;
    assert!(page.body.contains(&id), "{}", page.body);
    let audit = user.get("/console/audit?action=redrive&format=csv").await;
    assert!(audit.body.contains(&code), "{}", audit.body);

    pool.close().await;
    finish(env, hub, vec![fi]).await;
}

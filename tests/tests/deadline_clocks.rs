//! Deadlines as the acts say them, end to end through the real broker and
//! database: a posting request's answer is due within 25 working days of its
//! receipt (2 when urgent), counted on the answering country's calendar; a
//! professional-qualifications request is due by the answer date the
//! responder counter-proposed; and a request for more information stops its
//! clock, which resumes with the time it had left. Each is read back where
//! operators and parties read it: `GET /api/v1/exchanges/{id}`.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc, Weekday};
use imi_adapters::{Incoming, OutgoingMessage};
use imi_hub::accounts::{self, AccountRole, Scope};
use imi_hub::clock::ManualClock;
use imi_schemas::catalogue::Catalogue;
use imi_schemas::ids::{AuthorityId, ExchangeId, MessageType};
use imi_tests::{follow_up, next_acked, request_to_de, TestEnv};
use serde_json::{json, Value};

/// The shipped catalogue, to read the forms' examples and the calendars.
fn catalogue() -> Catalogue {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/catalogue");
    Catalogue::parse(&imi_schemas::catalogue::read_folder(&dir).unwrap()).unwrap()
}

async fn exchange(http: &str, token: &str, id: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{http}/api/v1/exchanges/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A hub whose deadline passes run when the test says, and an operator's
/// API token.
async fn start(env: &mut TestEnv) -> (imi_tests::RunningHub, String) {
    env.config.pipeline.deadline_check_secs = 3600;
    let hub = env
        .start_hub_with("hub", Arc::new(ManualClock::starting_now()))
        .await;
    let (_, operator) = accounts::create(
        &env.pool().await,
        "helpdesk",
        AccountRole::Operator,
        Scope::default(),
    )
    .await
    .unwrap();
    (hub, operator)
}

/// The running deadline `code` of the exchange view.
fn deadline<'a>(view: &'a Value, code: &str) -> &'a Value {
    view["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deadline"] == code)
        .unwrap_or_else(|| panic!("no running deadline `{code}` in {view}"))
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a time").parse().unwrap()
}

/// The exchange id of the next inbox item that is a delivery.
async fn delivered(inbox: &mut imi_adapters::Inbox) -> String {
    loop {
        let (_, exchange, incoming) = next_acked(inbox, 30).await;
        if let Incoming::Message(_) = incoming {
            return exchange.expect("a delivery names its exchange");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posting_request_is_due_in_25_working_days_and_an_urgent_one_in_2() {
    let mut env = TestEnv::with_registrations(
        &[("fi", &["FI-VALVIRA"]), ("de", &["DE-AEKNO"])],
        &["posting-information-request"],
    )
    .await;
    let (hub, operator) = start(&mut env).await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut de_inbox, _s) = imi_tests::open_inbox(&de);

    let catalogue = catalogue();
    let send = MessageType::try_from("posting-information-request.send").unwrap();
    let (_, action) = catalogue.resolve(&send).unwrap();
    let mut payload = action.example.clone().unwrap();
    payload["urgent"] = json!(true);
    fi.send(&OutgoingMessage {
        message_type: send,
        sender: AuthorityId::try_from("FI-VALVIRA").unwrap(),
        recipients: vec![AuthorityId::try_from("DE-AEKNO").unwrap()],
        exchange: None,
        payload,
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    })
    .await
    .unwrap();
    let id = delivered(&mut de_inbox).await;

    // Computed when asked: no checker pass has run since the request came.
    let view = exchange(&hub.http, &operator, &id).await;
    let german = catalogue.calendar("DE");
    let answer = deadline(&view, "answer");
    let (started, due) = (time(&answer["started_at"]), time(&answer["due_at"]));
    assert_eq!(answer["source"], "Directive 2014/67/EU, Art. 6(6)(b)");
    // 25 working days are at least five calendar weeks and end with the
    // last hour of a German working day (the day of receipt not counted).
    let last_day = due.date_naive() - chrono::Duration::days(1);
    let days = (last_day - started.date_naive()).num_days();
    assert!(
        (35..=45).contains(&days),
        "25 working days took {days} days"
    );
    assert!(
        german.is_working_day(last_day),
        "{last_day} is no working day"
    );
    assert!(!matches!(last_day.weekday(), Weekday::Sat | Weekday::Sun));
    assert_eq!(due.time(), chrono::NaiveTime::MIN);
    let working_days = started
        .date_naive()
        .iter_days()
        .skip(1)
        .take_while(|d| *d <= last_day)
        .filter(|d| german.is_working_day(*d))
        .count();
    assert_eq!(working_days, 25);

    let urgent = deadline(&view, "answer-urgent");
    let days = (time(&urgent["due_at"]).date_naive() - started.date_naive()).num_days();
    assert!((3..=7).contains(&days), "2 working days took {days} days");
    assert_eq!(urgent["source"], "Directive 2014/67/EU, Art. 6(6)(a)");

    // The checker's pass stores the same clocks it fires from.
    hub.deadlines.check_once().await.unwrap();
    let stored: Vec<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT deadline, due_at FROM deadline_clocks WHERE exchange_id = $1::uuid ORDER BY deadline",
    )
    .bind(&id)
    .fetch_all(&env.pool().await)
    .await
    .unwrap();
    assert_eq!(
        stored,
        vec![
            ("accept".to_owned(), stored[0].1),
            ("answer".to_owned(), Some(due)),
            ("answer-urgent".to_owned(), Some(time(&urgent["due_at"]))),
        ]
    );

    // Clocks computed with other deadlines or calendars (before a reload
    // or a release changed them) are computed again.
    let pool = env.pool().await;
    sqlx::query("UPDATE deadline_clocks SET due_at = due_at + interval '3 days'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE deadline_clock_basis SET fingerprint = 'an earlier catalogue'")
        .execute(&pool)
        .await
        .unwrap();
    hub.deadlines.check_once().await.unwrap();
    let again: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT due_at FROM deadline_clocks WHERE exchange_id = $1::uuid AND deadline = 'answer'",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(again, Some(due));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agreed_date_sets_the_answer_deadline_and_a_request_for_information_stops_it() {
    let mut env = TestEnv::new().await;
    let (hub, operator) = start(&mut env).await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = imi_tests::open_inbox(&fi);
    let (mut de_inbox, _s2) = imi_tests::open_inbox(&de);

    fi.send(&request_to_de()).await.unwrap();
    let id = delivered(&mut de_inbox).await;
    let exchange_id = ExchangeId::try_from(id.as_str()).unwrap();
    let step = |action: &str, sender: &str, to: &str, payload: Value| -> OutgoingMessage {
        follow_up(action, sender, &[to], exchange_id, payload)
    };
    // The requester asked for 15 December; the responder counter-proposes.
    de.send(&step(
        "accept",
        "DE-AEKNO",
        "FI-VALVIRA",
        json!({"requested_answer_date": "2027-01-20"}),
    ))
    .await
    .unwrap();
    delivered(&mut fi_inbox).await;
    hub.deadlines.check_once().await.unwrap();
    let view = exchange(&hub.http, &operator, &id).await;
    let agreed = time(&deadline(&view, "answer")["due_at"]);
    assert_eq!(
        agreed,
        "2027-01-21T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );

    // Asking the requester for information stops the clock …
    de.send(&step(
        "request-information",
        "DE-AEKNO",
        "FI-VALVIRA",
        json!({"comment": "Please send the diploma's registration number."}),
    ))
    .await
    .unwrap();
    delivered(&mut fi_inbox).await;
    hub.deadlines.check_once().await.unwrap();
    let view = exchange(&hub.http, &operator, &id).await;
    assert_eq!(view["state"], "information-requested");
    assert_eq!(deadline(&view, "answer")["due_at"], Value::Null, "stopped");

    // … and the answer resumes it with the time it had left: later than the
    // agreed date by the time it stood still.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    fi.send(&step(
        "provide-information",
        "FI-VALVIRA",
        "DE-AEKNO",
        json!({"comment": "Registration number MET-2012-0457."}),
    ))
    .await
    .unwrap();
    delivered(&mut de_inbox).await;
    hub.deadlines.check_once().await.unwrap();
    let view = exchange(&hub.http, &operator, &id).await;
    let resumed = time(&deadline(&view, "answer")["due_at"]);
    let stood = resumed - agreed;
    assert!(
        stood >= chrono::Duration::seconds(1) && stood < chrono::Duration::minutes(1),
        "resumed {resumed}, agreed {agreed}"
    );
}

//! Deadlines from the catalogue (pq-information-request: accept within 7
//! days of the request, to the end of the day), on a clock the test moves: a
//! reminder the day before, an
//! overdue notice after, each fired once across two hub instances, listed for
//! the coordinator of the late authority's country, and fired by a restarted
//! hub for what came due while none was running.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use imi_adapters::Incoming;
use imi_hub::accounts::{self, AccountRole, Scope};
use imi_hub::clock::{Clock, ManualClock};
use imi_schemas::ids::CountryCode;
use imi_tests::{assert_quiet, finish, next_acked, request_to_de, TestEnv};

fn coordinator(country: &str) -> Scope {
    Scope {
        country: Some(CountryCode::try_from(country).unwrap()),
        ..Scope::default()
    }
}

async fn overdue(http: &str, token: &str) -> Vec<serde_json::Value> {
    let response = reqwest::Client::new()
        .get(format!("{http}/api/v1/overdue"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_and_overdue_notices_fire_once_across_hubs_and_restarts() {
    let mut env = TestEnv::new().await;
    // Passes are run by the test, not by the timer.
    env.config.pipeline.deadline_check_secs = 3600;
    let clock = ManualClock::starting_now();
    let hub_a = env.start_hub_with("hub-a", Arc::new(clock.clone())).await;
    let hub_b = env.start_hub_with("hub-b", Arc::new(clock.clone())).await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = imi_tests::open_inbox(&fi);
    let (mut de_inbox, _s2) = imi_tests::open_inbox(&de);
    let pool = env.pool().await;
    let (_, de_nimic) = accounts::create(
        &pool,
        "de-nimic",
        AccountRole::Coordinator,
        coordinator("DE"),
    )
    .await
    .unwrap();
    let (_, fi_nimic) = accounts::create(
        &pool,
        "fi-nimic",
        AccountRole::Coordinator,
        coordinator("FI"),
    )
    .await
    .unwrap();

    fi.send(&request_to_de()).await.unwrap();
    let (_, exchange, _) = next_acked(&mut de_inbox, 20).await;
    let exchange = exchange.unwrap();
    next_acked(&mut fi_inbox, 20).await; // receipt

    // Five days on: nothing yet.
    clock.advance(Duration::days(5));
    assert_eq!(hub_a.deadlines.check_once().await.unwrap(), 0);
    assert_quiet(&mut de_inbox, 300).await;
    // Accept within 7 days: to the end of the 7th day after the request
    // (of the next German working day, when that one is not).
    let due: DateTime<Utc> = sqlx::query_scalar(
        "SELECT due_at FROM deadline_clocks WHERE exchange_id = $1::uuid AND deadline = 'accept'",
    )
    .bind(&exchange)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        due.time(),
        chrono::NaiveTime::MIN,
        "a period ends with its last day"
    );
    let days = (due - clock.now()).num_days();
    assert!((1..=7).contains(&days), "due {due}, {days} days from now");

    // A day before the deadline: one reminder to DE-AEKNO, whichever hub checks.
    clock.advance(due - Duration::hours(23) - clock.now());
    let (a, b) = tokio::join!(hub_a.deadlines.check_once(), hub_b.deadlines.check_once());
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "the reminder fires once across both hubs"
    );
    let (_, _, incoming) = next_acked(&mut de_inbox, 20).await;
    let Incoming::Deadline(notice) = incoming else {
        panic!("expected a deadline notice, got {incoming:?}")
    };
    assert_eq!(
        (
            notice.kind.as_str(),
            notice.deadline.as_str(),
            notice.authority.as_str()
        ),
        ("reminder", "accept", "DE-AEKNO")
    );
    assert_eq!(notice.exchange_id.to_string(), exchange);
    assert!(overdue(&hub_a.http, &de_nimic).await.is_empty());

    // Past the deadline: one overdue notice, and the German coordinator (not
    // the Finnish one) sees the exchange.
    clock.advance(Duration::hours(24));
    let (a, b) = tokio::join!(hub_a.deadlines.check_once(), hub_b.deadlines.check_once());
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "the overdue notice fires once across both hubs"
    );
    let (_, _, incoming) = next_acked(&mut de_inbox, 20).await;
    let Incoming::Deadline(notice) = incoming else {
        panic!("expected a deadline notice, got {incoming:?}")
    };
    assert_eq!(notice.kind, "overdue");
    let listed = overdue(&hub_a.http, &de_nimic).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["exchange_id"], exchange.as_str());
    assert_eq!(listed[0]["authority"], "DE-AEKNO");
    assert!(overdue(&hub_a.http, &fi_nimic).await.is_empty());
    assert_quiet(&mut de_inbox, 300).await;

    // A second request; then no hub runs while its deadline passes.
    fi.send(&request_to_de()).await.unwrap();
    let (_, second, _) = next_acked(&mut de_inbox, 20).await;
    hub_a.stop().await;
    hub_b.stop().await;
    clock.advance(Duration::days(15));
    let hub_c = env.start_hub_with("hub-c", Arc::new(clock.clone())).await;
    // The restarted hub checks at start (and here); either pass fires the
    // second request's overdue notice, once, and only that one: the first
    // request's notices are on record.
    hub_c.deadlines.check_once().await.unwrap();
    let (_, _, incoming) = next_acked(&mut de_inbox, 20).await;
    let Incoming::Deadline(notice) = incoming else {
        panic!("expected a deadline notice, got {incoming:?}")
    };
    assert_eq!(
        (notice.kind.as_str(), notice.exchange_id.to_string()),
        ("overdue", second.unwrap())
    );
    assert_eq!(
        hub_c.deadlines.check_once().await.unwrap(),
        0,
        "nothing fires twice"
    );
    assert_quiet(&mut de_inbox, 300).await;

    pool.close().await;
    finish(env, hub_c, vec![fi, de]).await;
}

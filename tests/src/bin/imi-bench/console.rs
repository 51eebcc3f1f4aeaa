//! `imi-bench console`: the console's pages on a large database. Seeds
//! exchanges (5 messages each) through the hub's own decode → workflow →
//! store path, then times four pages as a logged-in operator: the exchanges
//! list unfiltered, filtered by country and procedure, its 1,000th page,
//! and one exchange's page. Last line: `console p95: T ms`.

use std::time::{Duration, Instant};

use imi_hub::accounts::{AccountRole, Scope};
use imi_tests::console::{console_account, ConsoleUser};
use imi_tests::TestEnv;
use uuid::Uuid;

/// Rows per list page (the console's).
const PAGE: i64 = 50;

pub(crate) async fn run(exchanges: usize, samples: usize) -> anyhow::Result<()> {
    let countries = ["FI", "DE", "AT", "SE", "NL", "BE", "IT", "ES", "PT", "PL"];
    let names: Vec<(String, Vec<String>)> = countries
        .iter()
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            (lower, vec![format!("{c}-ONE"), format!("{c}-TWO")])
        })
        .collect();
    let specs: Vec<(&str, Vec<&str>)> = names
        .iter()
        .map(|(e, a)| (e.as_str(), a.iter().map(String::as_str).collect()))
        .collect();
    let specs: Vec<(&str, &[&str])> = specs.iter().map(|(e, a)| (*e, a.as_slice())).collect();
    let env = TestEnv::with_endpoints(&specs).await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;

    let started = Instant::now();
    let total = exchanges * 5;
    let step = (total / 20).max(1);
    imi_hub::bench::seed_requests(&pool, &env.config.catalogue_dir, exchanges, |n| {
        if n % step < 1000 {
            eprintln!(
                "seeded {n} of {total} messages ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    })
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let seeded = started.elapsed();
    let (rows, messages): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM exchanges), (SELECT count(*) FROM messages)")
            .fetch_one(&pool)
            .await?;
    println!(
        "seeded {rows} exchanges with {messages} messages through the hub's writes in {:.0} s",
        seeded.as_secs_f64()
    );

    let (name, password) = console_account(
        &pool,
        "bench-operator",
        AccountRole::Operator,
        Scope::default(),
    )
    .await;
    let mut user = ConsoleUser::new(&hub.http, &name, &password);
    user.log_in().await;

    let (at, id): (chrono::DateTime<chrono::Utc>, Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM exchanges ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
    )
    // Page 1,000 starts after row 49,950 (fewer rows: the last page).
    .bind((PAGE * 999).min(rows - 1))
    .fetch_one(&pool)
    .await?;
    let page_1000 = format!("/console/exchanges?after={}.{id}", at.timestamp_micros());
    let middle: Uuid = sqlx::query_scalar(
        "SELECT id FROM exchanges ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
    )
    .bind(rows / 2)
    .fetch_one(&pool)
    .await?;
    let pages = [
        ("exchanges, unfiltered", "/console/exchanges".to_owned()),
        (
            "exchanges by country and procedure",
            "/console/exchanges?procedure=pq-information-request&country=FI".to_owned(),
        ),
        ("exchanges, page 1,000", page_1000),
        ("one exchange", format!("/console/exchanges/{middle}")),
    ];
    let mut worst = Duration::ZERO;
    for (label, path) in &pages {
        // Warm-up: the first requests fill PostgreSQL's cache.
        for _ in 0..5 {
            let page = user.get(path).await;
            anyhow::ensure!(page.status == 200, "{path}: {}", page.status);
        }
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            let page = user.get(path).await;
            times.push(t.elapsed());
            anyhow::ensure!(page.status == 200, "{path}: {}", page.status);
        }
        times.sort();
        let pct =
            |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
        let (p50, p95) = (pct(0.5), pct(0.95));
        println!(
            "{label:38} p50 {:6.1} ms  p95 {:6.1} ms  ({samples} requests)",
            p50.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0
        );
        worst = worst.max(p95);
    }
    pool.close().await;
    hub.stop().await;
    env.cleanup().await;
    println!("console p95: {:.1} ms", worst.as_secs_f64() * 1000.0);
    Ok(())
}

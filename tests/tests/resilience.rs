//! Failures under load: the database going away, the hub being SIGKILLed.
//! Nothing accepted may be lost; nothing may reach the application twice.

use std::collections::HashSet;

use imi_adapters::Incoming;
use imi_tests::{
    assert_quiet, finish, next_acked, next_receipt, open_inbox, request_to_de, TestEnv, World,
};
use sqlx::{Connection, PgConnection};

async fn admin() -> PgConnection {
    PgConnection::connect(&format!("{}/postgres", imi_tests::database_base_url()))
        .await
        .unwrap()
}

/// Makes this test's database refuse connections and cuts the open ones: a
/// real PostgreSQL outage, scoped to one database so other tests run on.
async fn take_database_down(db: &str) {
    let mut admin = admin().await;
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(db)
        .execute(&mut admin)
        .await
        .unwrap();
}

async fn bring_database_back(db: &str) {
    let mut admin = admin().await;
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_down_messages_wait_then_flow_and_none_is_lost() {
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;

    fi.send(&request_to_de()).await.unwrap();
    next_acked(&mut de_inbox, 20).await;
    next_acked(&mut fi_inbox, 20).await;

    take_database_down(&env.db_name).await;
    let mut sent = HashSet::new();
    for _ in 0..50 {
        sent.insert(fi.send(&request_to_de()).await.unwrap().to_string());
    }
    // Nothing is routed before it is committed.
    assert_quiet(&mut de_inbox, 3000).await;
    let ready = reqwest::get(format!("{}/readyz", hub.http)).await.unwrap();
    assert_eq!(ready.status(), 503, "readiness reports the database outage");

    bring_database_back(&env.db_name).await;
    let mut delivered = HashSet::new();
    while delivered.len() < sent.len() {
        let (id, _, incoming) = next_acked(&mut de_inbox, 60).await;
        assert!(matches!(incoming, Incoming::Message(_)), "{incoming:?}");
        assert!(delivered.insert(id), "delivered twice to the application");
    }
    assert_eq!(delivered, sent);
    let mut receipts = HashSet::new();
    while receipts.len() < sent.len() {
        let r = next_receipt(&mut fi_inbox).await;
        receipts.insert(r.message_id.to_string());
    }
    assert_eq!(receipts, sent);

    finish(env, hub, vec![fi, de]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_flight_loses_nothing_and_delivers_nothing_twice_to_the_application() {
    const N: usize = 1000;
    let env = TestEnv::new().await;
    let binary = env!("CARGO_BIN_EXE_imi-hub-under-test");
    // Ready = connected with its topology declared: the ingress queue exists
    // *and* is bound (a publish before the binding would be unroutable).
    let mut hub = env
        .spawn_ready_hub_process(binary, &env.config.instance)
        .await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut de_inbox, _s2) = open_inbox(&de);

    let sender = tokio::spawn(async move {
        let mut ids = HashSet::new();
        for _ in 0..N {
            ids.insert(fi.send(&request_to_de()).await.unwrap().to_string());
        }
        fi.close().await;
        ids
    });

    let mut delivered = HashSet::new();
    while delivered.len() < N / 5 {
        let (id, _, _) = next_acked(&mut de_inbox, 60).await;
        assert!(delivered.insert(id), "delivered twice to the application");
    }
    hub.start_kill().expect("SIGKILL the hub");
    hub.wait().await.unwrap();
    let killed_at = delivered.len();

    let sent = sender.await.unwrap();
    let mut hub = env.spawn_hub_process(binary);
    while delivered.len() < N {
        let (id, exchange, incoming) = next_acked(&mut de_inbox, 90).await;
        // Whether routed live or re-published by the relay, a delivery
        // carries the same routing facts.
        let Incoming::Message(m) = incoming else {
            panic!("expected a message, got {incoming:?}")
        };
        assert_eq!(
            (m.sender.as_str(), m.recipients.as_slice()),
            ("FI-VALVIRA", &["DE-AEKNO".to_owned()][..])
        );
        assert!(exchange.is_some());
        assert!(delivered.insert(id), "delivered twice to the application");
    }
    assert_eq!(delivered, sent);
    assert!(
        killed_at < N,
        "the kill happened mid-flight ({killed_at} of {N} delivered)"
    );

    let pool = env.pool().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored as usize, N);
    println!(
        "killed after {killed_at} deliveries; broker-level redeliveries dropped by the SDK: {}",
        de_inbox.duplicates_dropped
    );

    pool.close().await;
    de.close().await;
    hub.start_kill().unwrap();
    hub.wait().await.unwrap();
    env.cleanup().await;
}

/// Acks do not wait for receipts (they are held to share a message): a hub
/// killed after acking a message but before its receipt went out leaves the
/// receipt in the outbox, and the next hub's relay sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_held_when_the_hub_dies_is_sent_by_the_next_hub() {
    let mut env = TestEnv::new().await;
    let binary = env!("CARGO_BIN_EXE_imi-hub-under-test");
    // Held as long as the hub allows, and this hub's relay passes once at
    // start only: the receipt can only come from the next hub's relay.
    env.config.pipeline.receipt_linger_ms = imi_hub::config::MAX_RECEIPT_LINGER_MS;
    env.config.pipeline.relay_interval_secs = 3600;
    let mut hub = env
        .spawn_ready_hub_process(binary, &env.config.instance)
        .await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = open_inbox(&fi);
    let (mut de_inbox, _s2) = open_inbox(&de);

    let pool = env.pool().await;
    // The receipt is held at most 4 s: on a loaded machine the delivery can
    // take longer, and the receipt is out before the hub can be killed
    // holding it. Then that message proves nothing: send another.
    let mut sent = String::new();
    for attempt in 1..=5 {
        sent = fi.send(&request_to_de()).await.unwrap().to_string();
        let (delivered, _, _) = next_acked(&mut de_inbox, 30).await;
        assert_eq!(delivered, sent);
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM batches WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if unpublished == 1 {
            break;
        }
        assert!(attempt < 5, "the receipt always went out before the kill");
        assert_eq!(
            next_receipt(&mut fi_inbox).await.message_id.to_string(),
            sent
        );
    }
    hub.start_kill().expect("SIGKILL the hub");
    hub.wait().await.unwrap();
    // Checked once the hub is dead, not by waiting while it lives: a wait
    // could outlast the linger on a loaded machine. Nothing can arrive now,
    // so an empty inbox proves the first hub never sent the receipt.
    assert_quiet(&mut fi_inbox, 500).await;

    env.config.pipeline.receipt_linger_ms = 10;
    env.config.pipeline.relay_interval_secs = 1;
    let mut hub = env
        .spawn_ready_hub_process(binary, &env.config.instance)
        .await;
    let receipt = next_receipt(&mut fi_inbox).await;
    assert_eq!(receipt.message_id.to_string(), sent);
    // The relay also sent the message again; the SDK drops it.
    assert_quiet(&mut de_inbox, 1000).await;
    // One batch: the ingress delivery had been acked, so the receipt came
    // from the outbox, not from a redelivery answered as a duplicate.
    // The relay marks the batch once the broker confirmed what it re-sent.
    let mut counts = (0, 0);
    for _ in 0..100 {
        counts = sqlx::query_as(
            "SELECT count(*), count(published_at) FROM batches
             WHERE id IN (SELECT batch_id FROM messages WHERE id = $1::uuid)
                OR published_at IS NULL",
        )
        .bind(&sent)
        .fetch_one(&pool)
        .await
        .unwrap();
        if counts.1 == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(counts, (1i64, 1i64), "(batches, published)");

    pool.close().await;
    fi.close().await;
    de.close().await;
    hub.start_kill().unwrap();
    hub.wait().await.unwrap();
    env.cleanup().await;
}

/// A batch whose every message was a duplicate has no rows of its own; a
/// hub killed before marking it leaves it unpublished. Such batches must
/// not keep the relay (which takes the oldest batches first, a page at a
/// time) from a batch that does have rows to re-send. Found by imi-chaos.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_batches_left_open_do_not_block_the_relay() {
    let mut env = TestEnv::new().await;
    env.config.pipeline.relay_interval_secs = 1;
    let hub = env.start_hub().await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = open_inbox(&fi);
    let (mut de_inbox, _s2) = open_inbox(&de);
    let sent = fi.send(&request_to_de()).await.unwrap().to_string();
    let _ = next_receipt(&mut fi_inbox).await;
    let (delivered, _, _) = next_acked(&mut de_inbox, 30).await;
    assert_eq!(delivered, sent);

    // As a killed hub leaves them: the message's batch not marked, and
    // older than it, more empty open batches than the relay's page.
    let pool = env.pool().await;
    sqlx::query("UPDATE batches SET published_at = NULL, created_at = now() - interval '1 minute'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO batches (id, instance, created_at)
         SELECT gen_random_uuid(), 'killed-hub', now() - interval '1 hour' FROM generate_series(1, 120)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let mut open: i64 = -1;
    for _ in 0..100 {
        open = sqlx::query_scalar("SELECT count(*) FROM batches WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Without closing the empty ones, the relay's page (the 50 oldest open
    // batches) held only empty batches, and the message's batch stayed open.
    assert_eq!(
        open, 0,
        "every batch closed: the empty ones and the real one"
    );

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

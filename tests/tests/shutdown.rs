//! Graceful shutdown drains: whatever the hub committed is published and
//! confirmed before it exits; what it had not taken stays queued.

use std::collections::HashSet;

use imi_tests::{next_acked, open_inbox, request_to_de, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_finishes_in_flight_work_and_a_restart_delivers_the_rest() {
    const N: usize = 600;
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;

    let batch: Vec<_> = (0..N).map(|_| request_to_de()).collect();
    let sent: HashSet<String> = fi
        .send_batch(&batch)
        .await
        .unwrap()
        .iter()
        .map(|id| id.to_string())
        .collect();
    hub.stop().await;

    // Drained: nothing committed is left unpublished.
    let pool = env.pool().await;
    let (committed, unconfirmed): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM batches WHERE published_at IS NULL)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        unconfirmed, 0,
        "a graceful stop publishes everything it committed"
    );
    println!("committed before the stop: {committed} of {N}");

    let hub = env.start_hub().await;
    let (mut de_inbox, _stop) = open_inbox(&de);
    let mut delivered = HashSet::new();
    while delivered.len() < N {
        let (id, _, _) = next_acked(&mut de_inbox, 60).await;
        assert!(delivered.insert(id), "delivered twice to the application");
    }
    assert_eq!(delivered, sent);

    pool.close().await;
    fi.close().await;
    de.close().await;
    hub.stop().await;
    env.cleanup().await;
}

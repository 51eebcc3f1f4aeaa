//! Graceful shutdown drains: whatever the hub committed is published and
//! confirmed before it exits; what it had not taken stays queued.

use std::collections::HashSet;

use std::time::{Duration, Instant};

use imi_tests::proxy::Proxy;
use imi_tests::{next_acked, open_inbox, request_to_de, TestEnv};
use secrecy::ExposeSecret;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_finishes_in_flight_work_and_a_restart_delivers_the_rest() {
    const N: usize = 4000;
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;

    let batch: Vec<_> = (0..N).map(|_| request_to_de()).collect();
    // Stopped mid-stream: as soon as the hub has committed something, while
    // the sender is still publishing (waiting for the whole batch to be
    // sent first let a fast hub commit all of it before the stop).
    let pool = env.pool().await;
    let stop_once_committing = async {
        for _ in 0..1000 {
            let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
                .fetch_one(&pool)
                .await
                .unwrap();
            if committed > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        hub.stop().await;
    };
    let (sent, ()) = tokio::join!(fi.send_batch(&batch), stop_once_committing);
    let sent: HashSet<String> = sent.unwrap().iter().map(|id| id.to_string()).collect();

    // Drained: nothing committed is left unpublished.
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
    assert!(
        committed > 0 && committed < N as i64,
        "the stop came mid-stream: {committed} of {N} committed before it"
    );

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_in_bounded_time_when_the_broker_goes_silent() {
    let env = TestEnv::new().await;
    // The hub reaches RabbitMQ through a proxy the test can silence.
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let mut config = env.config.clone();
    let url = url::Url::parse(config.amqp.url.expose_secret()).unwrap();
    let mut through = url.clone();
    through.set_port(Some(proxy.addr.port())).unwrap();
    config.amqp.url = through.to_string().into();
    config.pipeline.drain_secs = 2;
    let hub =
        TestEnv::start_hub_configured(config, std::sync::Arc::new(imi_hub::clock::SystemClock))
            .await;
    let fi = env.adapter(0).await;
    let pool = env.pool().await;

    // Traffic, then silence in the middle of it: publishes wait for
    // confirms that do not come.
    let batch: Vec<_> = (0..3000).map(|_| request_to_de()).collect();
    fi.send_batch(&batch).await.unwrap();
    for _ in 0..500 {
        let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&pool)
            .await
            .unwrap();
        if committed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.pause();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The stop ends: the drain's 2 s, then a bounded grace for each task.
    let started = Instant::now();
    hub.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(45),
        "a stop with the broker silent took {took:?}"
    );

    // Nothing is lost: a hub on the direct connection delivers everything.
    proxy.cut();
    let hub = env.start_hub().await;
    let de = env.adapter(1).await;
    let (mut de_inbox, _stop) = open_inbox(&de);
    let mut delivered = HashSet::new();
    while delivered.len() < batch.len() {
        let (id, _, _) = next_acked(&mut de_inbox, 60).await;
        delivered.insert(id);
    }

    pool.close().await;
    fi.close().await;
    de.close().await;
    hub.stop().await;
    env.cleanup().await;
}

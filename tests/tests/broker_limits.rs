//! The broker protects itself from a misbehaving adapter with limits the hub
//! sets: connections and channels per endpoint user, messages per inbox (the
//! oldest beyond it dead-lettered, and kept by the hub, not lost).

use std::collections::BTreeSet;
use std::time::Duration;

use imi_adapters::Adapter;
use imi_broker::Management;
use imi_tests::{assert_quiet, TestEnv};
use imi_tests::{finish, management_config, next_acked, next_receipt, open_inbox, request_to_de};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_gets_no_more_connections_than_its_limit() {
    let mut env = TestEnv::new().await;
    env.config.amqp.endpoint_max_connections = 1;
    env.config.amqp.endpoint_max_channels = 8;
    let hub = env.start_hub().await;
    let management = Management::new(management_config());
    let user = env.endpoints[0].id.clone();
    assert_eq!(
        management.user_limits(&user).await.unwrap(),
        (Some(1), Some(8)),
        "the broker holds the limits the hub set"
    );

    let first = env.adapter(0).await;
    let second = Adapter::connect_within(&env.endpoint_config(0), Duration::from_secs(3)).await;
    assert!(
        second.is_err(),
        "a second connection beyond the limit of one must be refused"
    );
    first.close().await;
    // With the first closed, the same credentials connect: it was the limit.
    let again = Adapter::connect_within(&env.endpoint_config(0), Duration::from_secs(15))
        .await
        .expect("a connection within the limit");
    finish(env, hub, vec![again]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_beyond_its_limit_dead_letters_its_oldest_and_the_hub_keeps_them() {
    const SENT: usize = 5;
    const LIMIT: u64 = 3;
    let mut env = TestEnv::new().await;
    env.config.amqp.inbox_max_messages = LIMIT;
    let hub = env.start_hub().await;
    let fi = env.adapter(0).await;
    // DE's system is connected but does not consume: its inbox fills.
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = open_inbox(&fi);

    let mut sent = BTreeSet::new();
    for _ in 0..SENT {
        sent.insert(fi.send(&request_to_de()).await.unwrap().to_string());
    }
    for _ in 0..SENT {
        let receipt = next_receipt(&mut fi_inbox).await;
        assert!(sent.contains(&receipt.message_id.to_string()));
    }

    // The deliveries beyond the limit are kept by the hub as dead letters
    // from DE's inbox: visible to the operators, not lost.
    let pool = env.pool().await;
    let overflow = SENT - LIMIT as usize;
    let mut kept: Vec<(String, String)> = Vec::new();
    for _ in 0..150 {
        kept = sqlx::query_as(
            "SELECT message_id, detail FROM rejected_messages WHERE code = 'dead_lettered'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        if kept.len() >= overflow {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kept.len(), overflow, "{kept:?}");
    for (_, detail) in &kept {
        assert!(
            detail.contains("maxlen") && detail.contains(&env.endpoints[1].id),
            "{detail}"
        );
    }

    // DE's system finds the newest in its inbox; together with the kept
    // ones, every message sent.
    let (mut de_inbox, _s2) = open_inbox(&de);
    let mut delivered = BTreeSet::new();
    for _ in 0..LIMIT {
        delivered.insert(next_acked(&mut de_inbox, 30).await.0);
    }
    assert_quiet(&mut de_inbox, 500).await;
    let kept: BTreeSet<String> = kept.into_iter().map(|(id, _)| id).collect();
    assert!(delivered.is_disjoint(&kept));
    assert_eq!(
        delivered.union(&kept).cloned().collect::<BTreeSet<_>>(),
        sent
    );

    pool.close().await;
    finish(env, hub, vec![fi, de]).await;
}

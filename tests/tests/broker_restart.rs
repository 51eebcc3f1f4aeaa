//! RabbitMQ restarted under a running hub. This restarts the machine's broker
//! application, so the suite runs alone (`--test-threads=1`, after the others:
//! see run-tests.sh).

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use imi_adapters::Incoming;
use imi_tests::{finish, next_acked, request_to_de, TestEnv, World};

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_the_hub_reconnects_by_itself_and_continues() {
    const BEFORE: usize = 20;
    const DURING: usize = 200;
    let World {
        env,
        hub,
        fi,
        de,
        mut fi_inbox,
        mut de_inbox,
    } = World::start(TestEnv::new().await).await;

    let mut sent = HashSet::new();
    for _ in 0..BEFORE {
        sent.insert(fi.send(&request_to_de()).await.unwrap().to_string());
    }
    let mut delivered = HashSet::new();
    while delivered.len() < BEFORE {
        let (id, _, _) = next_acked(&mut de_inbox, 30).await;
        assert!(delivered.insert(id), "delivered twice to the application");
    }

    // Keep sending while the broker goes away and comes back; the adapter's
    // sends wait for the reconnect and retry.
    let sender = tokio::spawn(async move {
        let mut ids = HashSet::new();
        for _ in 0..DURING {
            ids.insert(fi.send(&request_to_de()).await.unwrap().to_string());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (fi, ids)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(|| {
        rabbitmqctl(&["stop_app"]);
        std::thread::sleep(Duration::from_secs(2));
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    })
    .await
    .unwrap();

    let (fi, more) = sender.await.unwrap();
    sent.extend(more);
    while delivered.len() < sent.len() {
        let (id, _, incoming) = next_acked(&mut de_inbox, 90).await;
        assert!(matches!(incoming, Incoming::Message(_)), "{incoming:?}");
        assert!(delivered.insert(id), "delivered twice to the application");
    }
    assert_eq!(delivered, sent);
    let mut receipts = HashSet::new();
    while receipts.len() < sent.len() {
        if let (_, _, Incoming::Receipt(r)) = next_acked(&mut fi_inbox, 90).await {
            receipts.insert(r.message_id.to_string());
        }
    }
    assert_eq!(receipts, sent);
    let ready = reqwest::get(format!("{}/readyz", hub.http)).await.unwrap();
    assert_eq!(ready.status(), 200);

    finish(env, hub, vec![fi, de]).await;
}

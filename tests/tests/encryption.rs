//! Encryption at rest on the real database: stored payloads are sealed
//! (nothing readable in the table, only the few non-personal facts the
//! database's own queries need), every reader opens them, and a key
//! rotation done as a rolling restart of two hub processes, under traffic,
//! loses nothing and leaves every payload sealed with the new key.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use imi_hub::at_rest::{DataKeys, Reencryption};
use imi_tests::{next_receipt, open_inbox, request_to_de, TestEnv};
use sha2::{Digest, Sha256};

/// Only the payload holds this.
const MARKER: &str = "Quaxelbrunn";

/// The id a sealed value carries for the key in `path` (bytes 5..13).
fn key_id(path: &Path) -> Vec<u8> {
    let key = hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap();
    Sha256::digest(&key)[..8].to_vec()
}

fn new_key(path: &Path) {
    let key: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    std::fs::write(path, hex::encode(key)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_payloads_are_sealed_and_read_back_by_every_path() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    let fi = env.adapter(0).await;
    let de = env.adapter(1).await;
    let (mut fi_inbox, _a) = open_inbox(&fi);
    let (mut de_inbox, _b) = open_inbox(&de);
    let mut request = request_to_de();
    request.payload["professional"]["family_name"] = serde_json::json!(MARKER);
    fi.send(&request).await.unwrap();
    let exchange = next_receipt(&mut fi_inbox).await.exchange_id;
    // Delivered as sent: the relay opened it.
    let (_, _, incoming) = imi_tests::next_acked(&mut de_inbox, 20).await;
    assert!(format!("{incoming:?}").contains(MARKER));

    let (raw, facts): (Vec<u8>, serde_json::Value) =
        sqlx::query_as("SELECT raw, facts FROM messages WHERE exchange_id = $1")
            .bind(exchange)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(raw.starts_with(b"IMIE1"));
    assert_eq!(
        raw[5..13],
        key_id(env.config.encryption.key_file.as_ref().unwrap())
    );
    assert!(!raw.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
    assert!(
        !raw.windows(7).any(|w| w == b"payload"),
        "no JSON in the table"
    );
    // What the statistics read stays: the requested answer date, nothing
    // that names anyone.
    assert_eq!(
        facts,
        serde_json::json!({"requested_answer_date": request.payload["requested_answer_date"]})
    );
    // Nothing readable anywhere in the row's table.
    let dump: String = sqlx::query_scalar("SELECT string_agg(m::text, ' ') FROM messages m")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!dump.contains(MARKER));

    // A refused message's body is sealed too, and still shown to those
    // who may read it (need_to_know.rs checks who).
    let mut refused = request_to_de();
    refused.payload["professional"]["family_name"] = serde_json::json!(MARKER);
    refused.payload["professional"]["alias"] = serde_json::json!("not in the form");
    fi.send(&refused).await.unwrap();
    imi_tests::next_rejection(&mut fi_inbox).await;
    let (body, size): (Vec<u8>, i32) =
        sqlx::query_as("SELECT body, body_size FROM rejected_messages ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(body.starts_with(b"IMIE1"));
    assert!(!body.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
    let opened = imi_hub::at_rest::read_stored(&body).unwrap();
    assert_eq!(opened.len(), size as usize);
    assert!(String::from_utf8(opened).unwrap().contains(MARKER));

    // Off by configuration: stored as sent.
    let mut plain_env = TestEnv::new().await;
    plain_env.config.encryption.key_file = None;
    let plain_hub = plain_env.start_hub().await;
    let plain_fi = plain_env.adapter(0).await;
    let (mut inbox, _c) = open_inbox(&plain_fi);
    plain_fi.send(&request).await.unwrap();
    let plain_exchange = next_receipt(&mut inbox).await.exchange_id;
    let plain: Vec<u8> = sqlx::query_scalar("SELECT raw FROM messages WHERE exchange_id = $1")
        .bind(plain_exchange)
        .fetch_one(&plain_env.pool().await)
        .await
        .unwrap();
    assert!(plain.starts_with(b"{"));
    plain_hub.stop().await;
    plain_env.cleanup().await;
    hub.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_under_traffic_loses_nothing_and_seals_everything_anew() {
    let binary = env!("CARGO_BIN_EXE_imi-hub-under-test");
    let mut env = TestEnv::new().await;
    let old_key = env.config.encryption.key_file.clone().unwrap();
    let new_key_file = env.dir.join("data-2.key");
    new_key(&old_key);
    new_key(&new_key_file);
    let pool = env.pool().await;

    // Phase 0: hub A on the old key.
    let mut a = env.spawn_ready_hub_process(binary, "hub-a").await;
    let fi = env.adapter(0).await;
    let (mut fi_inbox, _s) = open_inbox(&fi);
    // Traffic all along: a request every 20 ms.
    const SENT: usize = 240;
    let sender = {
        let fi = env.adapter(0).await;
        tokio::spawn(async move {
            for _ in 0..SENT {
                fi.send(&request_to_de()).await.expect("send");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            fi.close().await;
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Phase 1: hub B can read the new key, still seals with the old one.
    env.config.encryption.previous_key_files = vec![new_key_file.clone()];
    let mut b = env.spawn_ready_hub_process(binary, "hub-b").await;
    // Phase 2: A restarts on the new key (reading the old one); B goes.
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    env.config.encryption.key_file = Some(new_key_file.clone());
    env.config.encryption.previous_key_files = vec![old_key.clone()];
    let a2 = env.spawn_ready_hub_process(binary, "hub-a2").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.start_kill().unwrap();
    b.wait().await.unwrap();
    sender.await.unwrap();

    // Every message was taken and answered, once.
    let mut receipted = HashSet::new();
    while receipted.len() < SENT {
        receipted.insert(next_receipt(&mut fi_inbox).await.message_id);
    }
    // What B sealed with the old key after A2's first scan: the reseal
    // (the command's pass) seals it with the new key, while A2 runs.
    let keys = DataKeys::load(Some(&new_key_file), std::slice::from_ref(&old_key)).unwrap();
    Reencryption::new(pool.clone(), keys)
        .run_once()
        .await
        .unwrap();
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT raw FROM messages")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), SENT, "a message lost or stored twice");
    let new_id = key_id(&new_key_file);
    for raw in &rows {
        assert_eq!(
            raw[5..13],
            new_id[..],
            "a payload not sealed with the new key"
        );
        let plain = imi_hub::at_rest::read_stored(raw).expect("opens");
        let body: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(body["payload"], request_to_de().payload);
    }
    drop(a2);
    fi.close().await;
    env.cleanup().await;
}

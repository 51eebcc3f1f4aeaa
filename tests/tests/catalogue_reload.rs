//! The catalogue is reloaded while the hub runs: validation changes at once,
//! a broken catalogue is refused and the old one stays, and no message of the
//! traffic running meanwhile is lost.

use std::collections::HashSet;

use imi_adapters::Incoming;
use imi_schemas::protocol::RejectionCode;
use imi_tests::{next_acked, open_inbox, own_catalogue, request_to_de, TestEnv};
use serde_json::json;

const TRAFFIC: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_the_catalogue_under_traffic_changes_validation_and_loses_nothing() {
    let mut env = TestEnv::new().await;
    let dir = own_catalogue(&mut env);
    let hub = env.start_hub().await;
    let fi = std::sync::Arc::new(env.adapter(0).await);
    let de = env.adapter(1).await;
    let (mut fi_inbox, _s1) = open_inbox(&fi);
    let (mut de_inbox, _s2) = open_inbox(&de);

    // Traffic of doctors' diplomas keeps flowing across both reloads.
    let mut doctor = request_to_de();
    doctor.payload["profession"] = json!("PQ-DOCTOR");
    let sender = {
        let fi = fi.clone();
        tokio::spawn(async move {
            let mut ids = HashSet::new();
            for _ in 0..TRAFFIC {
                ids.insert(fi.send(&doctor).await.unwrap().to_string());
            }
            ids
        })
    };

    // New version of the form: nurses are no longer asked about in this procedure.
    let file = dir.join("pq/information-request.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let changed = original
        .replacen("enum: [PQ-DOCTOR, PQ-NURSE,", "enum: [PQ-DOCTOR,", 1)
        // The form's example must still pass the new form.
        .replace(
            "\"profession\": \"PQ-NURSE\"",
            "\"profession\": \"PQ-DOCTOR\"",
        );
    assert_ne!(
        changed, original,
        "the test edits the profession enum of the send form"
    );
    std::fs::write(&file, &changed).unwrap();
    hub.catalogue
        .reload()
        .expect("the changed catalogue is valid");

    // A broken catalogue is refused; the changed one stays in force.
    let broken = dir.join("pq/broken.yaml");
    std::fs::write(&broken, "code: pq-broken\narea: pq\n").unwrap();
    assert!(
        hub.catalogue.reload().is_err(),
        "a broken catalogue must be refused"
    );

    let nurse_id = fi.send(&request_to_de()).await.unwrap().to_string();

    let sent = sender.await.unwrap();
    let mut delivered = HashSet::new();
    while delivered.len() < sent.len() {
        let (id, _, incoming) = next_acked(&mut de_inbox, 60).await;
        assert!(matches!(incoming, Incoming::Message(_)), "{incoming:?}");
        assert_ne!(
            id, nurse_id,
            "the nurse request must not be routed after the reload"
        );
        delivered.insert(id);
    }
    assert_eq!(
        delivered, sent,
        "no message of the traffic is lost across reloads"
    );

    let mut rejection = None;
    while rejection.is_none() {
        if let (_, _, Incoming::Rejection(r)) = next_acked(&mut fi_inbox, 60).await {
            rejection = Some(r);
        }
    }
    let r = rejection.unwrap();
    assert_eq!(r.message_id.as_deref(), Some(nurse_id.as_str()));
    assert_eq!(r.code, RejectionCode::InvalidPayload);
    assert!(
        r.errors.iter().any(|e| e.pointer == "/payload/profession"),
        "{:?}",
        r.errors
    );

    std::fs::remove_file(&broken).unwrap();
    fi.close().await;
    de.close().await;
    hub.stop().await;
    env.cleanup().await;
}

//! Support for `imi-bench console`: filling a database with exchanges
//! through the hub's own path (decode → workflow → the store's writes), so
//! the console is measured on rows exactly like the ones the pipeline
//! writes.

use std::path::Path;

use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use imi_broker::Properties;
use imi_schemas::ids::{MessageId, MessageType};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::catalogue;
use crate::error::HubError;
use crate::inbound::Decoded;
use crate::pipeline::decode::{decode, DecodeContext};
use crate::registry::{Registry, Status};
use crate::store::{self, BatchInput, CommitError};

/// The steps every seeded request takes, in order: (action, by the
/// responder?). The exchange ends `answered`.
const STEPS: [(&str, bool); 5] = [
    ("send", false),
    ("accept", true),
    ("request-information", true),
    ("provide-information", false),
    ("answer", true),
];

/// Messages per committed batch.
const BATCH: usize = 1000;
/// Batches committed at once (as the pipeline does).
const CONCURRENT: usize = 3;

/// Seeds `exchanges` pq-information-request exchanges of five messages each
/// between the registry's active authorities (requester and responder of
/// different countries), batch by batch through the pipeline's decode, the
/// workflow engine and the store; marks every batch published so no relay
/// sends them. Calls `progress` with the messages written so far.
pub async fn seed_requests(
    pool: &PgPool,
    catalogue_dir: &Path,
    exchanges: usize,
    progress: impl Fn(usize),
) -> Result<(), HubError> {
    let catalogue = catalogue::load(catalogue_dir)?;
    let registry = Registry::load(pool).await?;
    let mut authorities: Vec<(String, String)> = registry
        .endpoints()
        .filter(|e| e.status == Status::Active)
        .flat_map(|e| {
            e.authorities.iter().filter_map(|a| {
                let known = registry.authority(a.as_str())?;
                let code =
                    imi_schemas::ids::ProcedureCode::try_from("pq-information-request").ok()?;
                known
                    .may_use(&code)
                    .then(|| (a.to_string(), e.id.to_string()))
            })
        })
        .collect();
    authorities.sort();
    assert!(authorities.len() >= 2, "the registry needs two authorities");
    // Requester i, responder the next one of another country.
    let pair = |i: usize| {
        let a = &authorities[i % authorities.len()];
        let b = (1..authorities.len())
            .map(|k| &authorities[(i + k) % authorities.len()])
            .find(|b| b.0[..2] != a.0[..2])
            .unwrap_or(&authorities[(i + 1) % authorities.len()]);
        (a.clone(), b.clone())
    };
    let payloads: Vec<serde_json::Value> = STEPS
        .iter()
        .map(|(action, _)| {
            let t = MessageType::try_from(format!("pq-information-request.{action}").as_str())
                .expect("a message type");
            catalogue
                .resolve(&t)
                .and_then(|(_, a)| a.example.clone())
                .expect("every action has an example")
        })
        .collect();
    let mut exchange_of: Vec<Uuid> = vec![Uuid::nil(); exchanges];
    let mut written = 0;
    for (step, (action, by_responder)) in STEPS.iter().enumerate() {
        let message_type = format!("pq-information-request.{action}");
        let chunks: Vec<Vec<(Properties, Vec<u8>, usize)>> = (0..exchanges)
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|&i| {
                        let ((requester, requester_endpoint), (responder, responder_endpoint)) =
                            pair(i);
                        let (sender, user) = if *by_responder {
                            (&responder, &responder_endpoint)
                        } else {
                            (&requester, &requester_endpoint)
                        };
                        let recipients: Vec<&str> = if step == 0 { vec![&responder] } else { vec![] };
                        let id = Uuid::now_v7();
                        let body = json!({"sender": sender, "recipients": recipients, "payload": payloads[step]});
                        let properties = Properties {
                            message_id: Some(id.to_string()),
                            correlation_id: (step > 0).then(|| exchange_of[i].to_string()),
                            message_type: Some(message_type.clone()),
                            user_id: Some(user.clone()),
                            content_type: Some("application/json".into()),
                            timestamp: None,
                            headers: Default::default(),
                        };
                        (properties, serde_json::to_vec(&body).expect("JSON"), i)
                    })
                    .collect()
            })
            .collect();
        if step == 0 {
            for chunk in &chunks {
                for (p, _, i) in chunk {
                    let id = Uuid::parse_str(p.message_id.as_deref().unwrap_or_default())
                        .expect("a UUID");
                    exchange_of[*i] = MessageId::new(id).opened_exchange().as_uuid();
                }
            }
        }
        let mut results = stream::iter(chunks)
            .map(|chunk| commit_chunk(pool, &catalogue, &registry, chunk))
            .buffer_unordered(CONCURRENT);
        while let Some(r) = results.next().await {
            written += r?;
            progress(written);
        }
    }
    Ok(())
}

async fn commit_chunk(
    pool: &PgPool,
    catalogue: &imi_schemas::catalogue::Catalogue,
    registry: &Registry,
    chunk: Vec<(Properties, Vec<u8>, usize)>,
) -> Result<usize, HubError> {
    let ctx = DecodeContext {
        catalogue,
        registry,
        max_body_bytes: 256 * 1024,
        now: Utc::now(),
        subjects: &crate::subjects::SubjectKeyer::from_key([7; 32]),
        data_keys: &crate::at_rest::DataKeys::default(),
    };
    let items: Vec<Decoded> = chunk
        .iter()
        .map(|(p, body, _)| decode(&ctx, p, body.clone()))
        .collect();
    loop {
        let input = BatchInput {
            data_keys: &crate::at_rest::DataKeys::default(),
            items: &items,
            registry,
            now: Utc::now(),
            earlier_in_flight: false,
            instance: "bench-seed",
        };
        match store::commit_batch(pool, input).await {
            Ok(outcome) => {
                if !outcome.rejections.is_empty() {
                    return Err(HubError::Redrive(format!(
                        "seeding was refused: {:?}",
                        outcome.rejections.first()
                    )));
                }
                store::mark_published(pool, &[(outcome.batch_id, Utc::now())]).await?;
                return Ok(outcome.accepted);
            }
            Err(CommitError::Database(e)) => return Err(e.into()),
            Err(_) => continue,
        }
    }
}

/// Support for `imi-bench --data-protection`: appends what a console's
/// readers would (a view of an exchange, with its reason) to the audit
/// chain, `per_second` entries a second, until `stop` is cancelled; returns
/// how many it appended.
pub async fn audit_traffic(
    pool: &PgPool,
    per_second: u32,
    stop: tokio_util::sync::CancellationToken,
) -> Result<u64, HubError> {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1) / per_second.max(1));
    let mut appended = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(appended),
            _ = every.tick() => {}
        }
        crate::audit_log::append_now(
            pool,
            crate::audit_log::NewEntry {
                account_id: None,
                account_name: "imi-bench",
                source: "console",
                action: "view_exchange",
                subject: Some(&Uuid::now_v7().to_string()),
                detail: json!({"lang": "en", "reason": "benchmark: an operator reads an exchange"}),
            },
        )
        .await?;
        appended += 1;
    }
}

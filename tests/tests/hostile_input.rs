//! Hostile input from a misbehaving national system, published with a raw
//! AMQP client (lapin, not the SDK, as a foreign system could): every
//! message gets a clear rejection or is processed, the hub never crashes,
//! and its memory stays bounded, measured on the hub's own process.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use imi_adapters::Incoming;
use imi_schemas::protocol::{HEADER_SCHEMA_VERSION, HEADER_TRACEPARENT, INGRESS_EXCHANGE};
use imi_tests::{diploma_request, next_acked, open_inbox, TestEnv};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::json;

const REQUEST: &str = "pq-information-request.send";

/// What the hub must answer.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Receipt,
    Rejected(String),
}

fn rejected(code: &str) -> Answer {
    Answer::Rejected(code.to_owned())
}

/// A raw connection as an endpoint, publishing with confirms.
struct Raw {
    connection: Connection,
    channel: Channel,
    user: String,
}

impl Raw {
    async fn connect(env: &TestEnv, endpoint: usize) -> Raw {
        let config = env.endpoint_config(endpoint);
        let url = imi_broker::connection_url(
            &config.amqp_url,
            &config.vhost,
            Some((&config.endpoint, &config.password)),
        )
        .unwrap();
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let connection = Connection::connect(&url, properties).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Raw {
            connection,
            channel,
            user: config.endpoint,
        }
    }

    /// Properties of a message of `message_type` with a fresh id.
    fn properties(&self, message_type: &str) -> (String, BasicProperties) {
        let id = uuid::Uuid::now_v7().to_string();
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(id.as_str()))
            .with_type(ShortString::from(message_type))
            .with_user_id(ShortString::from(self.user.as_str()))
            .with_delivery_mode(2);
        (id, properties)
    }

    /// Publishes to the ingress exchange; the broker's confirm, or its error.
    async fn publish(&self, properties: BasicProperties, body: &[u8]) -> Result<(), String> {
        let confirm = self
            .channel
            .basic_publish(
                INGRESS_EXCHANGE,
                "",
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .map_err(|e| e.to_string())?;
        match confirm.await.map_err(|e| e.to_string())? {
            c if c.is_ack() => Ok(()),
            c => Err(format!("not confirmed: {c:?}")),
        }
    }
}

fn envelope(payload: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "sender": "FI-VALVIRA",
        "recipients": ["DE-AEKNO"],
        "payload": payload,
    }))
    .unwrap()
}

fn headers(entries: impl IntoIterator<Item = (String, AMQPValue)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in entries {
        table.insert(ShortString::from(k), v);
    }
    table
}

fn memory_mib(pid: u32) -> (u64, u64) {
    imi_tests::resident_mib(pid).expect("the hub process runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_get_clear_answers_and_the_hub_stays_up_with_bounded_memory() {
    const FLOOD: usize = 100_000;
    let env = TestEnv::new().await;
    let binary = env!("CARGO_BIN_EXE_imi-hub-under-test");
    let mut hub = env
        .spawn_ready_hub_process(binary, &env.config.instance)
        .await;
    let pid = hub.id().expect("the hub process runs");
    let (_, started_mib) = memory_mib(pid);
    let fi = env.adapter(0).await;
    let (mut fi_inbox, stop_inbox) = open_inbox(&fi);
    let raw = Raw::connect(&env, 0).await;

    let valid = envelope(diploma_request());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep = format!(r#"{{"sender":"FI-VALVIRA","recipients":["DE-AEKNO"],"payload":{deep}}}"#);
    let mut long_string = diploma_request();
    long_string["profession"] = json!("x".repeat(10 * 1024 * 1024));
    let junk_headers = headers((0..3_000).map(|i| {
        (
            format!("x-junk-{i}"),
            AMQPValue::LongString(LongString::from("junk")),
        )
    }));
    let typed = |value: AMQPValue| headers([(HEADER_SCHEMA_VERSION.to_owned(), value)]);
    let cases: Vec<(&str, Option<FieldTable>, Vec<u8>, Answer)> = vec![
        (
            "JSON nested 10,000 deep",
            None,
            deep.into_bytes(),
            rejected("malformed_json"),
        ),
        (
            "a 10 MB string",
            None,
            envelope(long_string),
            rejected("oversized_body"),
        ),
        (
            "invalid UTF-8",
            None,
            b"{\"sender\": \"\xff\xfe\"}".to_vec(),
            rejected("malformed_json"),
        ),
        (
            "an empty body",
            None,
            Vec::new(),
            rejected("malformed_json"),
        ),
        (
            "JSON null",
            None,
            b"null".to_vec(),
            rejected("invalid_envelope"),
        ),
        (
            "the schema version as a field table",
            Some(typed(AMQPValue::FieldTable(FieldTable::default()))),
            valid.clone(),
            rejected("unsupported_schema_version"),
        ),
        (
            "the schema version as an array",
            Some(typed(AMQPValue::FieldArray(FieldArray::default()))),
            valid.clone(),
            rejected("unsupported_schema_version"),
        ),
        (
            "the schema version as a boolean",
            Some(typed(AMQPValue::Boolean(true))),
            valid.clone(),
            rejected("unsupported_schema_version"),
        ),
        (
            "the schema version as a 64-bit integer (allowed)",
            Some(typed(AMQPValue::LongLongInt(1))),
            valid.clone(),
            Answer::Receipt,
        ),
        (
            "a traceparent as a field table (ignored)",
            Some(headers([(
                HEADER_TRACEPARENT.to_owned(),
                AMQPValue::FieldTable(FieldTable::default()),
            )])),
            valid.clone(),
            Answer::Receipt,
        ),
        (
            "3,000 unknown headers (ignored)",
            Some(junk_headers),
            valid.clone(),
            Answer::Receipt,
        ),
    ];

    for (name, table, body, expected) in cases {
        let (id, mut properties) = raw.properties(REQUEST);
        if let Some(table) = table {
            properties = properties.with_headers(table);
        }
        raw.publish(properties, &body)
            .await
            .unwrap_or_else(|e| panic!("{name}: the broker took it: {e}"));
        let (answered, _, incoming) = next_acked(&mut fi_inbox, 60).await;
        let got = match incoming {
            Incoming::Receipt(r) => {
                assert_eq!(r.message_id.to_string(), id, "{name}");
                Answer::Receipt
            }
            Incoming::Rejection(r) => {
                assert_eq!(r.message_id.as_deref(), Some(id.as_str()), "{name}");
                assert!(!r.detail.is_empty(), "{name}: a rejection says why");
                rejected(r.code.as_str())
            }
            other => panic!("{name}: expected an answer, got {other:?}"),
        };
        assert_eq!(got, expected, "{name} (answered {answered})");
        assert!(hub.try_wait().unwrap().is_none(), "{name}: the hub is up");
    }
    let (_, corpus_peak_mib) = memory_mib(pid);

    // A 100 MB body never reaches the hub: the broker's largest message
    // (16 MiB, set by the set-up script) refuses it and closes the channel.
    let (_, properties) = raw.properties(REQUEST);
    let refused = raw
        .publish(properties, &vec![b' '; 100 * 1024 * 1024])
        .await;
    let error = refused.expect_err("a 100 MB message is refused by the broker");
    assert!(error.contains("larger than configured max size"), "{error}");
    let _ = raw.connection.close(0, "done").await;
    let raw = Raw::connect(&env, 0).await;

    // A header table larger than an AMQP frame never reaches the hub: the
    // broker closes the connection that sent it.
    let (_, properties) = raw.properties(REQUEST);
    let huge = headers((0..100_000).map(|i| {
        (
            format!("x-junk-{i}"),
            AMQPValue::LongString(LongString::from("junk")),
        )
    }));
    let refused = raw.publish(properties.with_headers(huge), &valid).await;
    assert!(
        refused.is_err(),
        "a header table beyond the frame size is refused"
    );
    let _ = raw.connection.close(0, "done").await;

    // A flood of tiny invalid messages: each refused, none lost.
    stop_inbox.cancel();
    let raw = Raw::connect(&env, 0).await;
    let started = Instant::now();
    for chunk in (0..FLOOD).collect::<Vec<_>>().chunks(5_000) {
        let confirms = join_all(chunk.iter().map(|_| {
            let (_, properties) = raw.properties(REQUEST);
            raw.publish(properties, b"{}")
        }))
        .await;
        assert!(
            confirms.iter().all(Result::is_ok),
            "the broker took the flood"
        );
    }
    let published = started.elapsed();
    let pool = env.pool().await;
    let mut refused: i64 = 0;
    for _ in 0..1200 {
        refused = sqlx::query_scalar(
            "SELECT count(*) FROM rejected_messages WHERE code = 'invalid_envelope'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if refused as usize > FLOOD {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let decided = started.elapsed();
    // The flood and the corpus's JSON `null`.
    assert_eq!(
        refused as usize,
        FLOOD + 1,
        "every flooded message refused once"
    );
    assert!(
        hub.try_wait().unwrap().is_none(),
        "the hub is up after the flood"
    );
    let (now_mib, peak_mib) = memory_mib(pid);
    println!(
        "hostile input: hub memory {started_mib} MiB at start, peak {corpus_peak_mib} MiB after the corpus \
         (a 10 MB body), peak {peak_mib} MiB and {now_mib} MiB now after {FLOOD} flooded messages \
         (published in {:.1} s, all refused in {:.1} s)",
        published.as_secs_f64(),
        decided.as_secs_f64()
    );
    // Bounded: the 10 MB body is held once while it is decided, and the
    // flood is taken a prefetch window at a time.
    assert!(peak_mib < 512, "hub peak memory {peak_mib} MiB");

    pool.close().await;
    let _ = raw.connection.close(0, "done").await;
    fi.close().await;
    hub.start_kill().unwrap();
    hub.wait().await.unwrap();
    env.cleanup().await;
}

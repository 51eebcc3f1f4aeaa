//! The SDK's record of acknowledged messages survives a restart of the
//! national system: the broker redelivers what a dead connection had not
//! acked, and an inbox that keeps its record in a file drops the copy of a
//! message the application had already handled.

use std::collections::BTreeMap;
use std::time::Duration;

use imi_adapters::{Inbox, Incoming};
use imi_broker::{Broker, BrokerConfig, Outgoing, Properties, Topology};
use imi_schemas::protocol::{
    DELIVER_EXCHANGE, HEADER_RECIPIENTS, HEADER_SCHEMA_VERSION, HEADER_SENDER,
};
use imi_tests::{amqp_base_url, finish, next_acked, request_to_de, TestEnv};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_a_restart_of_the_national_system_is_dropped() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let fi = env.adapter(0).await;
    let record = std::env::temp_dir()
        .join(format!("imi-sdk-restart-{}", uuid::Uuid::now_v7()))
        .join("acknowledged");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();

    // DE's system handles a message and acknowledges it.
    let de = env.adapter(1).await;
    let stop = CancellationToken::new();
    let mut inbox = de.inbox_remembering(stop.clone(), &record).unwrap();
    let first = fi.send(&request_to_de()).await.unwrap().to_string();
    let item = inbox.next_within(Duration::from_secs(30)).await.unwrap();
    assert_eq!(item.message_id, first);
    let Incoming::Message(m) = item.incoming.clone() else {
        panic!("expected the message, got {:?}", item.incoming)
    };
    let copy = Outgoing {
        exchange: DELIVER_EXCHANGE.into(),
        routing_key: env.endpoints[1].id.clone(),
        mandatory: true,
        properties: Properties {
            message_id: Some(item.message_id.clone()),
            correlation_id: item.exchange_id.clone(),
            message_type: Some(m.message_type.clone()),
            content_type: Some("application/json".into()),
            headers: BTreeMap::from([
                (HEADER_SENDER.to_owned(), m.sender.clone()),
                (HEADER_RECIPIENTS.to_owned(), m.recipients.join(",")),
                (HEADER_SCHEMA_VERSION.to_owned(), "1".to_owned()),
            ]),
            ..Default::default()
        },
        body: m.raw.clone(),
    };
    item.ack().await.unwrap();
    stop.cancel();
    de.close().await;

    // The system restarts; meanwhile the broker redelivers the message (as
    // when the ack died with the connection), then a new one arrives.
    let url = imi_broker::connection_url(&amqp_base_url(), &env.vhost, None).unwrap();
    let broker = Broker::start(
        BrokerConfig {
            tls: None,
            url,
            connection_name: "test-redelivery".into(),
        },
        Topology::default(),
    );
    broker
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let redeliver = || async {
        broker
            .publisher()
            .publish_all(std::slice::from_ref(&copy))
            .await
            .unwrap()
    };
    redeliver().await;
    let second = fi.send(&request_to_de()).await.unwrap().to_string();

    let de = env.adapter(1).await;
    let stop = CancellationToken::new();
    let mut inbox: Inbox = de.inbox_remembering(stop.clone(), &record).unwrap();
    let (next, _, _) = next_acked(&mut inbox, 30).await;
    assert_eq!(next, second, "the copy of the handled message is dropped");
    assert_eq!(inbox.duplicates_dropped, 1);
    stop.cancel();
    de.close().await;

    // Control: an inbox that remembers in memory only hands the copy out
    // again after a restart.
    redeliver().await;
    let de = env.adapter(1).await;
    let stop = CancellationToken::new();
    let mut inbox = de.inbox(stop.clone());
    let (again, _, _) = next_acked(&mut inbox, 30).await;
    assert_eq!(again, first);
    stop.cancel();

    broker.close().await;
    std::fs::remove_dir_all(record.parent().unwrap()).unwrap();
    finish(env, hub, vec![fi, de]).await;
}

//! The hub's broker topology (docs/protocol.md §5), as data for the supervisor.

use imi_broker::{ExchangeDecl, ExchangeKind, QueueDecl, QueueType, Topology};
use imi_schemas::protocol::{
    inbox_queue, ALERTS_EXCHANGE, DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, DELIVER_EXCHANGE,
    INGRESS_EXCHANGE, INGRESS_QUEUE,
};

/// Redeliveries before a message is dead-lettered: high, because a hub crash
/// loop also counts, but finite, so a message that crashes the hub cannot
/// block the queue forever.
const DELIVERY_LIMIT: u32 = 50;

/// Exchanges, the ingress queue and the dead-letter queue.
pub(crate) fn core(queue_type: QueueType) -> Topology {
    Topology {
        exchanges: vec![
            ExchangeDecl {
                name: INGRESS_EXCHANGE.into(),
                kind: ExchangeKind::Fanout,
            },
            ExchangeDecl {
                name: DELIVER_EXCHANGE.into(),
                kind: ExchangeKind::Direct,
            },
            ExchangeDecl {
                name: ALERTS_EXCHANGE.into(),
                kind: ExchangeKind::Topic,
            },
            ExchangeDecl {
                name: DEAD_LETTER_EXCHANGE.into(),
                kind: ExchangeKind::Fanout,
            },
        ],
        queues: vec![
            QueueDecl {
                name: DEAD_LETTER_QUEUE.into(),
                queue_type,
                dead_letter_exchange: None,
                delivery_limit: None,
                bindings: vec![(DEAD_LETTER_EXCHANGE.into(), String::new())],
            },
            QueueDecl {
                name: INGRESS_QUEUE.into(),
                queue_type,
                dead_letter_exchange: Some(DEAD_LETTER_EXCHANGE.into()),
                delivery_limit: Some(DELIVERY_LIMIT),
                bindings: vec![(INGRESS_EXCHANGE.into(), String::new())],
            },
        ],
    }
}

/// One inbox queue per endpoint, bound under the endpoint id.
pub(crate) fn inboxes<'a>(
    queue_type: QueueType,
    endpoints: impl Iterator<Item = &'a str>,
) -> Topology {
    Topology {
        exchanges: Vec::new(),
        queues: endpoints
            .map(|e| QueueDecl {
                name: inbox_queue(e),
                queue_type,
                dead_letter_exchange: Some(DEAD_LETTER_EXCHANGE.into()),
                delivery_limit: Some(DELIVERY_LIMIT),
                bindings: vec![(DELIVER_EXCHANGE.into(), e.to_owned())],
            })
            .collect(),
    }
}

//! Declarative topology, re-declared on every (re)connect. Declarations are
//! idempotent in RabbitMQ as long as the arguments do not change.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Channel;

use crate::BrokerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeDecl {
    pub name: String,
    pub kind: ExchangeKind,
}

/// Quorum queues are what a RabbitMQ cluster replicates; classic v2 is the
/// fast single-node alternative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    Quorum,
    Classic,
}

impl QueueType {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "quorum" => Some(Self::Quorum),
            "classic" => Some(Self::Classic),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDecl {
    pub name: String,
    pub queue_type: QueueType,
    /// Where messages go when dropped (delivery limit, expiry).
    pub dead_letter_exchange: Option<String>,
    /// Quorum queues only: deliveries before a message is dead-lettered, so a
    /// poison message cannot loop forever (RabbitMQ 3.10 has no default).
    pub delivery_limit: Option<u32>,
    /// (exchange, routing key) bindings.
    pub bindings: Vec<(String, String)>,
}

/// Exchanges and queues to keep declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub exchanges: Vec<ExchangeDecl>,
    pub queues: Vec<QueueDecl>,
}

impl Topology {
    pub fn merge(&mut self, other: Topology) {
        for e in other.exchanges {
            if !self.exchanges.contains(&e) {
                self.exchanges.push(e);
            }
        }
        for q in other.queues {
            if !self.queues.contains(&q) {
                self.queues.push(q);
            }
        }
    }

    pub(crate) async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for e in &self.exchanges {
            let kind = match e.kind {
                ExchangeKind::Direct => lapin::ExchangeKind::Direct,
                ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
                ExchangeKind::Topic => lapin::ExchangeKind::Topic,
            };
            channel
                .exchange_declare(&e.name, kind, durable, FieldTable::default())
                .await?;
        }
        for q in &self.queues {
            let mut args = FieldTable::default();
            let text = |s: &str| AMQPValue::LongString(LongString::from(s));
            match q.queue_type {
                QueueType::Quorum => {
                    args.insert(ShortString::from("x-queue-type"), text("quorum"));
                    if let Some(limit) = q.delivery_limit {
                        args.insert(
                            ShortString::from("x-delivery-limit"),
                            AMQPValue::LongLongInt(i64::from(limit)),
                        );
                    }
                }
                QueueType::Classic => {
                    args.insert(
                        ShortString::from("x-queue-version"),
                        AMQPValue::LongLongInt(2),
                    );
                }
            }
            if let Some(dlx) = &q.dead_letter_exchange {
                args.insert(ShortString::from("x-dead-letter-exchange"), text(dlx));
            }
            let options = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel.queue_declare(&q.name, options, args).await?;
            for (exchange, key) in &q.bindings {
                channel
                    .queue_bind(
                        &q.name,
                        exchange,
                        key,
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

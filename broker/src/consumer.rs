//! Consuming with manual acks, re-consuming after reconnects.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::Channel;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, instrument, warn};

use crate::connection::RECONNECT;
use crate::{Broker, BrokerError, Properties};

/// One message taken from a queue; it stays unacknowledged until acked.
#[derive(Debug)]
pub struct Delivery {
    pub properties: Properties,
    pub body: Vec<u8>,
    pub redelivered: bool,
    pub routing_key: String,
    pub acker: Acker,
}

/// Acknowledges deliveries on the channel they came from. After a reconnect the
/// old channel is gone, its deliveries come again, and acking fails harmlessly.
#[derive(Debug, Clone)]
pub struct Acker {
    channel: Channel,
    delivery_tag: u64,
    /// Connection generation: channel ids repeat across connections.
    generation: u64,
}

impl Acker {
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.send_ack(false).await
    }

    /// Acks this delivery and every earlier one of the same channel: one frame
    /// per batch.
    pub async fn ack_up_to(&self) -> Result<(), BrokerError> {
        self.send_ack(true).await
    }

    async fn send_ack(&self, multiple: bool) -> Result<(), BrokerError> {
        Ok(self
            .channel
            .basic_ack(self.delivery_tag, BasicAckOptions { multiple })
            .await?)
    }

    /// Gives the delivery back to the queue (or dead-letters it).
    pub async fn reject(&self, requeue: bool) -> Result<(), BrokerError> {
        Ok(self
            .channel
            .basic_reject(self.delivery_tag, BasicRejectOptions { requeue })
            .await?)
    }

    /// Identifies the channel a delivery came from: one multiple-ack per
    /// channel covers every earlier delivery of that channel.
    pub fn channel_key(&self) -> (u64, u16) {
        (self.generation, self.channel.id())
    }
}

/// The stream of deliveries of one queue.
pub struct Deliveries {
    rx: mpsc::Receiver<Delivery>,
}

impl Deliveries {
    /// The next delivery; `None` once consuming has stopped.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// Takes what is already buffered, up to `max`, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }
}

pub(crate) fn spawn_consumer(
    broker: Broker,
    queue: String,
    prefetch: u16,
    stop: CancellationToken,
) -> Deliveries {
    let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
    tokio::spawn(consume_loop(broker, queue, prefetch, stop, tx));
    Deliveries { rx }
}

#[instrument(skip_all, fields(queue = %queue))]
async fn consume_loop(
    broker: Broker,
    queue: String,
    prefetch: u16,
    stop: CancellationToken,
    tx: mpsc::Sender<Delivery>,
) {
    let mut attempt = 0;
    while !stop.is_cancelled() {
        let started = async {
            let (generation, conn) = broker.connection().await?;
            let channel = conn.create_channel().await?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    &queue,
                    "",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, BrokerError>((generation, channel, consumer))
        };
        let (generation, channel, mut consumer) = tokio::select! {
            started = started => match started {
                Ok(c) => c,
                Err(BrokerError::ShuttingDown) => return,
                Err(error) => {
                    warn!(%error, attempt, "Could not start consuming; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(RECONNECT.delay(attempt)) => {}
                        _ = stop.cancelled() => return,
                    }
                    attempt += 1;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        attempt = 0;
        debug!("Consuming.");
        // One timer for the whole loop: a fresh 500 ms sleep per delivery
        // cost a timer registration per message.
        let mut check = tokio::time::interval(Duration::from_millis(500));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = consumer.next() => match next {
                    Some(Ok(d)) => {
                        let delivery = Delivery {
                            properties: Properties::from_lapin(&d.properties),
                            body: d.data,
                            redelivered: d.redelivered,
                            routing_key: d.routing_key.as_str().to_owned(),
                            acker: Acker { channel: channel.clone(), delivery_tag: d.delivery_tag, generation },
                        };
                        if tx.send(delivery).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(error)) => {
                        warn!(%error, "Consumer failed; consuming again.");
                        break;
                    }
                    None => {
                        warn!("Consumer stream ended; consuming again.");
                        break;
                    }
                },
                // lapin issue #389: a consumer stream can stop silently when the
                // broker dies, so the channel's state is checked too.
                _ = check.tick() => {
                    if !channel.status().connected() {
                        warn!("Consumer channel closed; consuming again.");
                        break;
                    }
                }
                _ = stop.cancelled() => {
                    let _ = channel.basic_cancel(consumer.tag().as_str(), BasicCancelOptions::default()).await;
                    return;
                }
            }
        }
    }
}

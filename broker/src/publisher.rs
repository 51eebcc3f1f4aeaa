//! Publishing with publisher confirms, many in flight, re-publishing what a
//! dead connection left unconfirmed.

use std::future::Future;
use std::task::Poll;

use futures_util::future::{join_all, maybe_done};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::Channel;
use tokio::sync::Mutex;
use tracing::{instrument, warn};

use crate::connection::RECONNECT;
use crate::{Broker, BrokerError, Outgoing};

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The broker took responsibility for it (written to every queue it routes to).
    Confirmed,
    /// No queue was bound for it; the broker returned it (mandatory flag).
    Unroutable,
}

/// A confirmed publisher. Safe to share between tasks.
pub struct Publisher {
    broker: Broker,
    channel: Mutex<Option<(u64, Channel)>>,
}

impl Publisher {
    pub(crate) fn new(broker: Broker) -> Self {
        Self {
            broker,
            channel: Mutex::new(None),
        }
    }

    async fn channel(&self) -> Result<(u64, Channel), BrokerError> {
        let mut cached = self.channel.lock().await;
        if let Some((generation, channel)) = cached.as_ref() {
            if channel.status().connected() {
                return Ok((*generation, channel.clone()));
            }
        }
        let (generation, conn) = self.broker.connection().await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *cached = Some((generation, channel.clone()));
        Ok((generation, channel))
    }

    async fn forget(&self, generation: u64) {
        let mut cached = self.channel.lock().await;
        if cached.as_ref().is_some_and(|(g, _)| *g == generation) {
            *cached = None;
        }
    }

    /// Publishes every message and waits for all confirms. Messages that were
    /// not confirmed (connection lost, nack) are published again, after a
    /// backoff, on the next connection, so every message is eventually
    /// confirmed; receivers de-duplicate by `message_id`. Returns an error only
    /// when the broker is shutting down.
    #[instrument(skip_all, fields(messages = messages.len()))]
    pub async fn publish_all(
        &self,
        messages: &[Outgoing],
    ) -> Result<Vec<PublishOutcome>, BrokerError> {
        let mut outcomes = vec![PublishOutcome::Confirmed; messages.len()];
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let (generation, channel) = match self.channel().await {
                Ok(c) => c,
                Err(BrokerError::ShuttingDown) => return Err(BrokerError::ShuttingDown),
                Err(error) => {
                    warn!(%error, "Could not open a publishing channel; retrying.");
                    self.pause(attempt).await?;
                    attempt += 1;
                    continue;
                }
            };
            let mut failed = Vec::new();
            let mut confirms = Vec::with_capacity(pending.len());
            for (i, sent) in send_all(&channel, messages, &pending).await {
                match sent {
                    Ok(confirm) => confirms.push(async move { (i, confirm.await) }),
                    Err(_) => failed.push(i),
                }
            }
            for (i, result) in join_all(confirms).await {
                match result {
                    Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {
                        outcomes[i] = PublishOutcome::Confirmed
                    }
                    Ok(Confirmation::Ack(Some(_))) => outcomes[i] = PublishOutcome::Unroutable,
                    Ok(Confirmation::Nack(_)) | Err(_) => failed.push(i),
                }
            }
            if !failed.is_empty() {
                warn!(
                    unconfirmed = failed.len(),
                    "Publishes not confirmed; publishing them again."
                );
                self.forget(generation).await;
                self.pause(attempt).await?;
                attempt += 1;
            }
            pending = failed;
        }
        Ok(outcomes)
    }

    /// Publishes one message once and reports any refusal, without retrying.
    /// For callers that need to see the broker's verdict (e.g. a refused
    /// `user_id`).
    pub async fn publish_once(&self, message: &Outgoing) -> Result<PublishOutcome, BrokerError> {
        let (generation, channel) = self.channel().await?;
        let result = async {
            match publish_one(&channel, message).await?.await? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {
                    Ok(PublishOutcome::Confirmed)
                }
                Confirmation::Ack(Some(_)) => Ok(PublishOutcome::Unroutable),
                Confirmation::Nack(_) => Err(BrokerError::Nacked),
            }
        }
        .await;
        if result.is_err() {
            self.forget(generation).await;
        }
        result
    }

    async fn pause(&self, attempt: u32) -> Result<(), BrokerError> {
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT.delay(attempt)) => Ok(()),
            _ = self.broker.stopping().cancelled() => Err(BrokerError::ShuttingDown),
        }
    }
}

/// Hands every message to lapin before waiting for any: lapin resolves a
/// publish only once its I/O thread has written the frames, so awaiting each
/// in turn cost a wake-up of that thread and a socket write per message. The
/// first poll of each publish queues its frames and takes its confirm tag,
/// in the order given, so the order on the wire is the order of `which`.
async fn send_all(
    channel: &Channel,
    messages: &[Outgoing],
    which: &[usize],
) -> Vec<(
    usize,
    Result<lapin::publisher_confirm::PublisherConfirm, BrokerError>,
)> {
    let mut sends: Vec<_> = which
        .iter()
        .map(|&i| Box::pin(maybe_done(publish_one(channel, &messages[i]))))
        .collect();
    std::future::poll_fn(|cx| {
        for send in &mut sends {
            let _ = send.as_mut().poll(cx);
        }
        Poll::Ready(())
    })
    .await;
    let mut results = Vec::with_capacity(sends.len());
    for (send, &i) in sends.iter_mut().zip(which) {
        send.as_mut().await;
        let result = send
            .as_mut()
            .take_output()
            .expect("a finished publish has its output");
        results.push((i, result));
    }
    results
}

async fn publish_one(
    channel: &Channel,
    message: &Outgoing,
) -> Result<lapin::publisher_confirm::PublisherConfirm, BrokerError> {
    Ok(channel
        .basic_publish(
            &message.exchange,
            &message.routing_key,
            BasicPublishOptions {
                mandatory: message.mandatory,
                ..Default::default()
            },
            &message.body,
            message.properties.to_lapin(),
        )
        .await?)
}

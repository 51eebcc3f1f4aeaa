//! The connection supervisor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::LongString;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

use crate::consumer::{spawn_consumer, Deliveries};
use crate::publisher::Publisher;
use crate::{Backoff, BrokerError, Topology};

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `amqp://user:password@host:port/vhost` (vhost URL-encoded, `%2f` for
    /// `/`), or `amqps://…` over TLS (`?auth_mechanism=external` to log in
    /// with the client certificate of `tls`).
    pub url: String,
    /// Shown in the management UI, so an operator can tell connections apart.
    pub connection_name: String,
    /// What an `amqps://` connection trusts and presents; `None`: the
    /// system's root certificates, no client certificate.
    pub tls: Option<TlsConfig>,
}

/// TLS of an `amqps://` connection. The broker's certificate must chain to
/// `ca_pem` (or to the system's roots) and name the URL's host.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// The CA certificates (PEM) that sign the broker's certificate.
    pub ca_pem: Option<String>,
    /// This client's certificate and key as PKCS#12 (DER) with the file's
    /// password: the broker logs the client in as the certificate's common
    /// name (RabbitMQ's EXTERNAL mechanism), without a password.
    pub client_pkcs12: Option<(Vec<u8>, String)>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "…"))
            .field(
                "client_pkcs12",
                &self.client_pkcs12.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The live connection, if any, with a generation that changes on reconnect.
#[derive(Clone)]
pub(crate) struct Link {
    pub generation: u64,
    pub connection: Option<Arc<Connection>>,
}

struct Inner {
    link: watch::Receiver<Link>,
    topology: Mutex<Topology>,
    stop: CancellationToken,
}

/// A supervised broker connection. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

/// Reconnects, re-consumes and re-publishes wait this long between attempts.
pub(crate) const RECONNECT: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

impl Broker {
    /// Starts the supervisor; it connects in the background and keeps
    /// reconnecting until [`Broker::close`]. `topology` is declared on every
    /// connect (pass an empty one for clients without configure permission).
    pub fn start(config: BrokerConfig, topology: Topology) -> Broker {
        let (tx, rx) = watch::channel(Link {
            generation: 0,
            connection: None,
        });
        let broker = Broker {
            inner: Arc::new(Inner {
                link: rx,
                topology: Mutex::new(topology),
                stop: CancellationToken::new(),
            }),
        };
        tokio::spawn(supervise(config, broker.clone(), tx));
        broker
    }

    /// Waits until connected (or `timeout`).
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), BrokerError> {
        tokio::time::timeout(timeout, self.connection())
            .await
            .map_err(|_| BrokerError::NotConnected(timeout))?
            .map(|_| ())
    }

    pub fn is_connected(&self) -> bool {
        self.inner
            .link
            .borrow()
            .connection
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }

    /// The current connection, waiting for one if the link is down.
    pub(crate) async fn connection(&self) -> Result<(u64, Arc<Connection>), BrokerError> {
        let mut rx = self.inner.link.clone();
        loop {
            {
                let link = rx.borrow_and_update();
                if let Some(c) = &link.connection {
                    if c.status().connected() {
                        return Ok((link.generation, c.clone()));
                    }
                }
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Err(BrokerError::ShuttingDown) },
                _ = self.inner.stop.cancelled() => return Err(BrokerError::ShuttingDown),
                // A connection that died without our error callback firing is
                // noticed by polling its status.
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.inner.stop
    }

    /// Declares `topology` now and, once the broker accepted it, adds it to
    /// what is declared again on every reconnect (a refused declaration is
    /// not repeated forever).
    #[instrument(skip_all, fields(queues = topology.queues.len()))]
    pub async fn declare(&self, topology: Topology) -> Result<(), BrokerError> {
        let (_, conn) = self.connection().await?;
        let channel = conn.create_channel().await?;
        topology.declare(&channel).await?;
        let _ = channel.close(200, "declared").await;
        self.inner
            .topology
            .lock()
            .expect("topology lock")
            .merge(topology);
        Ok(())
    }

    /// Tries once to consume `queue` on a fresh channel and reports the
    /// broker's verdict (then cancels). For permission checks and tooling.
    pub async fn probe_consume(&self, queue: &str) -> Result<(), BrokerError> {
        let (_, conn) = self.connection().await?;
        let channel = conn.create_channel().await?;
        let consumer = channel
            .basic_consume(
                queue,
                "probe",
                lapin::options::BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await?;
        let _ = channel
            .basic_cancel(
                consumer.tag().as_str(),
                lapin::options::BasicCancelOptions::default(),
            )
            .await;
        let _ = channel.close(200, "probe done").await;
        Ok(())
    }

    /// Tries once to declare a durable queue and reports the broker's verdict.
    pub async fn probe_declare(&self, queue: &str) -> Result<(), BrokerError> {
        let (_, conn) = self.connection().await?;
        let channel = conn.create_channel().await?;
        channel
            .queue_declare(
                queue,
                lapin::options::QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "probe done").await;
        Ok(())
    }

    /// Tries once to bind `queue` to `exchange` and reports the broker's verdict.
    pub async fn probe_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), BrokerError> {
        let (_, conn) = self.connection().await?;
        let channel = conn.create_channel().await?;
        channel
            .queue_bind(
                queue,
                exchange,
                routing_key,
                lapin::options::QueueBindOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "probe done").await;
        Ok(())
    }

    /// A publisher with publisher confirms on its own channel.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.clone())
    }

    /// Consumes `queue` with manual acks and `prefetch`, re-consuming after a
    /// reconnect, until `stop` is cancelled.
    pub fn consume(&self, queue: &str, prefetch: u16, stop: CancellationToken) -> Deliveries {
        spawn_consumer(self.clone(), queue.to_owned(), prefetch, stop)
    }

    /// Closes the connection and stops reconnecting.
    pub async fn close(&self) {
        self.inner.stop.cancel();
        let conn = self.inner.link.borrow().connection.clone();
        if let Some(conn) = conn {
            let _ = conn.close(200, "closing").await;
        }
    }
}

async fn connect_once(config: &BrokerConfig) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(config.connection_name.as_str()))
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    match &config.tls {
        None => Connection::connect(&config.url, properties).await,
        Some(tls) => {
            let tls = OwnedTLSConfig {
                identity: tls
                    .client_pkcs12
                    .as_ref()
                    .map(|(der, password)| OwnedIdentity {
                        der: der.clone(),
                        password: password.clone(),
                    }),
                cert_chain: tls.ca_pem.clone(),
            };
            Connection::connect_with_config(&config.url, properties, tls).await
        }
    }
}

#[instrument(skip_all, fields(name = %config.connection_name))]
async fn supervise(config: BrokerConfig, broker: Broker, link: watch::Sender<Link>) {
    let stop = broker.inner.stop.clone();
    let mut generation = 0;
    let mut attempt = 0u32;
    while !stop.is_cancelled() {
        let conn = match connect_once(&config).await {
            Ok(conn) => Arc::new(conn),
            Err(error) => {
                warn!(%error, attempt, "Broker connection failed; retrying.");
                sleep_or_stop(RECONNECT.delay(attempt), &stop).await;
                attempt += 1;
                continue;
            }
        };
        let topology = broker.inner.topology.lock().expect("topology lock").clone();
        let declared = async {
            let channel = conn.create_channel().await?;
            topology.declare(&channel).await?;
            let _ = channel.close(200, "declared").await;
            Ok::<_, BrokerError>(())
        };
        if let Err(error) = declared.await {
            warn!(%error, attempt, "Topology declaration failed; reconnecting.");
            let _ = conn.close(200, "topology failed").await;
            sleep_or_stop(RECONNECT.delay(attempt), &stop).await;
            attempt += 1;
            continue;
        }
        let (lost_tx, lost_rx) = oneshot::channel::<String>();
        let lost_tx = Mutex::new(Some(lost_tx));
        conn.on_error(move |error| {
            if let Some(tx) = lost_tx.lock().expect("lost lock").take() {
                let _ = tx.send(error.to_string());
            }
        });
        generation += 1;
        attempt = 0;
        info!(generation, "Broker connected.");
        link.send_replace(Link {
            generation,
            connection: Some(conn.clone()),
        });

        let watch_status = async {
            while conn.status().connected() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::select! {
            reason = lost_rx => warn!(reason = reason.unwrap_or_default(), "Broker connection lost; reconnecting."),
            _ = watch_status => warn!("Broker connection closed; reconnecting."),
            _ = stop.cancelled() => {}
        }
        link.send_replace(Link {
            generation,
            connection: None,
        });
    }
}

async fn sleep_or_stop(duration: Duration, stop: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stop.cancelled() => {}
    }
}

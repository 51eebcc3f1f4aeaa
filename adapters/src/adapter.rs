use std::path::{Path, PathBuf};
use std::time::Duration;

use imi_broker::{
    Broker, BrokerConfig, Outgoing, Properties, PublishOutcome, Publisher, QueueDecl, QueueType,
    TlsConfig, Topology,
};
use imi_schemas::ids::{AuthorityId, CountryCode, EndpointId, ExchangeId, MessageId, MessageType};
use imi_schemas::protocol::{
    inbox_queue, subscriber_queue_prefix, Acknowledgement, ALERTS_EXCHANGE, HEADER_SCHEMA_VERSION,
    INGRESS_EXCHANGE, TYPE_ACKNOWLEDGEMENT,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::instrument;
use uuid::Uuid;

use crate::inbox::Inbox;
use crate::seen::Seen;
use crate::AdapterError;

/// How an endpoint connects.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// `amqp://host:port`, or `amqps://host:port` over TLS (credentials come
    /// from `endpoint`/`password`, or from `tls`'s client certificate).
    pub amqp_url: String,
    pub vhost: String,
    /// The endpoint id, which is also its broker user name.
    pub endpoint: String,
    /// Not used when `tls` has a client certificate.
    pub password: String,
    /// For an `amqps://` URL: the CA to trust and, optionally, the
    /// endpoint's client certificate (docs/tls.md).
    pub tls: Option<EndpointTls>,
}

/// TLS of an endpoint's connection.
#[derive(Clone, Default)]
pub struct EndpointTls {
    /// PEM file of the CA that signs the broker's certificate; `None`: the
    /// system's root certificates.
    pub ca_file: Option<PathBuf>,
    /// PKCS#12 file with the endpoint's certificate and key, and the file's
    /// password. The broker logs the endpoint in as the certificate's common
    /// name (EXTERNAL): no password travels.
    pub client_certificate: Option<(PathBuf, String)>,
}

impl std::fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointTls")
            .field("ca_file", &self.ca_file)
            .field(
                "client_certificate",
                &self.client_certificate.as_ref().map(|(path, _)| path),
            )
            .finish()
    }
}

impl EndpointConfig {
    fn url(&self) -> Result<String, AdapterError> {
        let invalid = |detail: String| AdapterError::Invalid {
            what: "AMQP URL",
            detail,
        };
        let by_certificate = self
            .tls
            .as_ref()
            .is_some_and(|t| t.client_certificate.is_some());
        let (base, credentials) = if by_certificate {
            let mut url = url::Url::parse(&self.amqp_url)
                .map_err(|e| invalid(format!("`{}`: {e}", self.amqp_url)))?;
            url.query_pairs_mut()
                .append_pair("auth_mechanism", "external");
            (url.to_string(), Some((self.endpoint.as_str(), "")))
        } else {
            (
                self.amqp_url.clone(),
                Some((self.endpoint.as_str(), self.password.as_str())),
            )
        };
        imi_broker::connection_url(&base, &self.vhost, credentials)
            .map_err(|e| invalid(format!("`{}`: {e}", self.amqp_url)))
    }

    /// The files of `tls`, read.
    fn broker_tls(&self) -> Result<Option<TlsConfig>, AdapterError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| AdapterError::Invalid {
                what: "TLS file",
                detail: format!("{}: {e}", path.display()),
            })
        };
        let ca_pem = match &tls.ca_file {
            Some(path) => Some(String::from_utf8_lossy(&read(path)?).into_owned()),
            None => None,
        };
        let client_pkcs12 = match &tls.client_certificate {
            Some((path, password)) => Some((read(path)?, password.clone())),
            None => None,
        };
        Ok(Some(TlsConfig {
            ca_pem,
            client_pkcs12,
        }))
    }
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// `<procedure>.<action>`.
    pub message_type: MessageType,
    pub sender: AuthorityId,
    pub recipients: Vec<AuthorityId>,
    /// For a 1:N procedure with the `countries` rule: the countries whose
    /// registered authorities receive it.
    pub countries: Vec<CountryCode>,
    /// The exchange a follow-up continues (`correlation_id`).
    pub exchange: Option<ExchangeId>,
    pub payload: serde_json::Value,
    pub schema_version: u32,
    /// Set it to retry a send idempotently; a fresh one is made otherwise.
    pub message_id: Option<MessageId>,
}

/// A connected endpoint.
pub struct Adapter {
    broker: Broker,
    publisher: Publisher,
    endpoint: EndpointId,
}

impl Adapter {
    /// Connects (and keeps reconnecting) as the endpoint. The endpoint may
    /// configure nothing on the broker, so it declares nothing.
    #[instrument(skip_all, fields(endpoint = %config.endpoint))]
    pub async fn connect(config: &EndpointConfig) -> Result<Adapter, AdapterError> {
        Self::connect_within(config, Duration::from_secs(15)).await
    }

    /// Like [`Adapter::connect`], giving up after `timeout` (a refused login
    /// is retried until then, as the broker may be restarting).
    pub async fn connect_within(
        config: &EndpointConfig,
        timeout: Duration,
    ) -> Result<Adapter, AdapterError> {
        let endpoint =
            EndpointId::try_from(config.endpoint.as_str()).map_err(|e| AdapterError::Invalid {
                what: "endpoint",
                detail: e.to_string(),
            })?;
        let broker = Broker::start(
            BrokerConfig {
                tls: config.broker_tls()?,
                url: config.url()?,
                connection_name: format!("adapter {endpoint}"),
            },
            Topology::default(),
        );
        if let Err(error) = broker.wait_connected(timeout).await {
            broker.close().await;
            return Err(error.into());
        }
        Ok(Adapter {
            publisher: broker.publisher(),
            broker,
            endpoint,
        })
    }

    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    /// Is the broker connection up right now?
    pub fn is_connected(&self) -> bool {
        self.broker.is_connected()
    }

    /// Sends a message; returns once the broker confirmed it (retrying across
    /// reconnects with the same `message_id`). The hub answers in the inbox.
    #[instrument(skip_all, fields(message_type = %message.message_type))]
    pub async fn send(&self, message: &OutgoingMessage) -> Result<MessageId, AdapterError> {
        let (id, outgoing) = self.build(message);
        let outcome = self
            .publisher
            .publish_all(std::slice::from_ref(&outgoing))
            .await?;
        if outcome.first() == Some(&PublishOutcome::Unroutable) {
            return Err(AdapterError::Unroutable);
        }
        Ok(id)
    }

    /// Sends many messages with their publishes in flight together (one
    /// confirm wait for the lot): what a gateway with a backlog should use.
    /// Returns the ids in order; fails if any was unroutable.
    #[instrument(skip_all, fields(messages = messages.len()))]
    pub async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<MessageId>, AdapterError> {
        let (ids, outgoing): (Vec<_>, Vec<_>) = messages.iter().map(|m| self.build(m)).unzip();
        let outcomes = self.publisher.publish_all(&outgoing).await?;
        if outcomes.contains(&PublishOutcome::Unroutable) {
            return Err(AdapterError::Unroutable);
        }
        Ok(ids)
    }

    fn build(&self, message: &OutgoingMessage) -> (MessageId, Outgoing) {
        // Time-ordered (UUIDv7): the hub's primary-key index on messages then
        // grows at its right edge instead of at random pages.
        let id = message
            .message_id
            .unwrap_or_else(|| MessageId::new(Uuid::now_v7()));
        // Borrowed, so the payload is serialized without being copied first;
        // same fields and order as `imi_schemas::envelope::Envelope`.
        #[derive(Serialize)]
        struct EnvelopeRef<'a> {
            sender: &'a str,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            recipients: Vec<&'a str>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            countries: Vec<&'a str>,
            payload: &'a serde_json::Value,
        }
        let envelope = EnvelopeRef {
            sender: message.sender.as_str(),
            recipients: message.recipients.iter().map(|r| r.as_str()).collect(),
            countries: message.countries.iter().map(|c| c.as_str()).collect(),
            payload: &message.payload,
        };
        let mut properties = Properties {
            message_id: Some(id.to_string()),
            correlation_id: message.exchange.map(|e| e.to_string()),
            message_type: Some(message.message_type.to_string()),
            user_id: Some(self.endpoint.to_string()),
            content_type: Some("application/json".into()),
            timestamp: Some(chrono::Utc::now().timestamp().max(0) as u64),
            ..Default::default()
        };
        properties.headers.insert(
            HEADER_SCHEMA_VERSION.into(),
            message.schema_version.to_string(),
        );
        let outgoing = Outgoing {
            exchange: INGRESS_EXCHANGE.into(),
            routing_key: message.message_type.to_string(),
            mandatory: true,
            properties,
            body: serde_json::to_vec(&envelope).expect("envelope serializes"),
        };
        (id, outgoing)
    }

    /// Publishes arbitrary properties and body to the ingress exchange, once,
    /// reporting the broker's verdict. For integration tests and tooling; real
    /// senders use [`Adapter::send`].
    pub async fn send_raw(
        &self,
        properties: Properties,
        body: Vec<u8>,
    ) -> Result<PublishOutcome, AdapterError> {
        let outgoing = Outgoing {
            exchange: INGRESS_EXCHANGE.into(),
            routing_key: properties.message_type.clone().unwrap_or_default(),
            mandatory: true,
            properties,
            body,
        };
        Ok(self.publisher.publish_once(&outgoing).await?)
    }

    /// Publishes to any exchange once (tests of broker permissions).
    pub async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Vec<u8>,
    ) -> Result<PublishOutcome, AdapterError> {
        let outgoing = Outgoing {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: true,
            properties: Properties {
                user_id: Some(self.endpoint.to_string()),
                ..Default::default()
            },
            body,
        };
        Ok(self.publisher.publish_once(&outgoing).await?)
    }

    /// Acknowledges a 1:N message the application has safely handled: the
    /// hub records it per recipient authority and tells the originator.
    /// `message_id` is the id the message arrived with; `authorities` empty
    /// means every authority of this endpoint it was addressed to.
    #[instrument(skip_all, fields(message_id = %message_id))]
    pub async fn acknowledge(
        &self,
        message_id: Uuid,
        exchange: Option<&str>,
        authorities: &[AuthorityId],
    ) -> Result<MessageId, AdapterError> {
        let id = MessageId::new(Uuid::now_v7());
        let body = Acknowledgement {
            message_id,
            authorities: authorities.iter().map(|a| a.to_string()).collect(),
        };
        let properties = Properties {
            message_id: Some(id.to_string()),
            correlation_id: exchange.map(str::to_owned),
            message_type: Some(TYPE_ACKNOWLEDGEMENT.into()),
            user_id: Some(self.endpoint.to_string()),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let outgoing = Outgoing {
            exchange: INGRESS_EXCHANGE.into(),
            routing_key: TYPE_ACKNOWLEDGEMENT.into(),
            mandatory: true,
            properties,
            body: serde_json::to_vec(&body).expect("acknowledgement serializes"),
        };
        let outcome = self
            .publisher
            .publish_all(std::slice::from_ref(&outgoing))
            .await?;
        if outcome.first() == Some(&PublishOutcome::Unroutable) {
            return Err(AdapterError::Unroutable);
        }
        Ok(id)
    }

    /// For a broadcast subscriber: declares its durable queue
    /// `imi.sub.<endpoint>.<name>`, binds it to `imi.alerts` with each pattern
    /// (e.g. `pq.#`, `services.*.AT`) and consumes it until `stop`. The
    /// broker refuses a pattern outside the subscriber's areas.
    #[instrument(skip_all, fields(name = %name))]
    pub async fn subscribe(
        &self,
        name: &str,
        patterns: &[&str],
        stop: CancellationToken,
    ) -> Result<Inbox, AdapterError> {
        let queue = format!("{}{name}", subscriber_queue_prefix(self.endpoint.as_str()));
        self.broker
            .declare(Topology {
                exchanges: Vec::new(),
                queues: vec![QueueDecl {
                    name: queue.clone(),
                    queue_type: QueueType::Quorum,
                    dead_letter_exchange: None,
                    delivery_limit: None,
                    bindings: patterns
                        .iter()
                        .map(|p| (ALERTS_EXCHANGE.to_owned(), (*p).to_owned()))
                        .collect(),
                }],
            })
            .await?;
        Ok(Inbox::new(
            self.broker.consume(&queue, 200, stop),
            Seen::default(),
        ))
    }

    /// Consumes this endpoint's inbox until `stop` is cancelled. The ids of
    /// acknowledged messages are remembered in memory: a redelivery is
    /// dropped while this process lives.
    pub fn inbox(&self, stop: CancellationToken) -> Inbox {
        Inbox::new(
            self.broker
                .consume(&inbox_queue(self.endpoint.as_str()), 200, stop),
            Seen::default(),
        )
    }

    /// Like [`Adapter::inbox`], remembering acknowledged ids in the file at
    /// `record` (created when missing): a redelivery is dropped also after
    /// the national system restarts. Each ack writes and syncs one line.
    pub fn inbox_remembering(
        &self,
        stop: CancellationToken,
        record: &Path,
    ) -> Result<Inbox, AdapterError> {
        let seen = Seen::open(record).map_err(AdapterError::SeenRecord)?;
        Ok(Inbox::new(
            self.broker
                .consume(&inbox_queue(self.endpoint.as_str()), 200, stop),
            seen,
        ))
    }

    /// Tries once to consume any queue and reports the broker's verdict
    /// (tests of broker permissions: another endpoint's inbox is refused).
    pub async fn probe_consume(&self, queue: &str) -> Result<(), AdapterError> {
        Ok(self.broker.probe_consume(queue).await?)
    }

    /// Tries once to bind a queue to an exchange (an endpoint may not).
    pub async fn probe_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), AdapterError> {
        Ok(self.broker.probe_bind(queue, exchange, routing_key).await?)
    }

    /// Tries once to declare a queue (an endpoint may configure nothing).
    pub async fn probe_declare(&self, queue: &str) -> Result<(), AdapterError> {
        Ok(self.broker.probe_declare(queue).await?)
    }

    pub async fn close(&self) {
        self.broker.close().await;
    }
}

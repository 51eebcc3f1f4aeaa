//! `imi-adapter`: send and receive IMI Hub messages from the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use imi_adapters::{Adapter, EndpointConfig, EndpointTls, Incoming, OutgoingMessage};
use imi_schemas::ids::{AuthorityId, CountryCode, ExchangeId, MessageId, MessageType};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "imi-adapter",
    about = "Send and receive IMI Hub messages as an endpoint"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Connection {
    /// Broker address: `amqp://…:5672`, or `amqps://…:5671` over TLS.
    #[arg(long, env = "IMI_AMQP_URL", default_value = "amqp://127.0.0.1:5672")]
    amqp_url: String,
    #[arg(long, env = "IMI_AMQP_VHOST", default_value = "imi")]
    vhost: String,
    /// Endpoint id (= broker user).
    #[arg(long, env = "IMI_ENDPOINT")]
    endpoint: String,
    /// The endpoint's password (not needed with --client-cert).
    #[arg(long, env = "IMI_ENDPOINT_PASSWORD", default_value = "")]
    password: String,
    /// With amqps://: PEM file of the CA that signs the broker's
    /// certificate (default: the system's roots).
    #[arg(long, env = "IMI_AMQP_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// With amqps://: PKCS#12 file of the endpoint's certificate and key; it
    /// logs in with it instead of a password.
    #[arg(long, env = "IMI_CLIENT_CERT")]
    client_cert: Option<PathBuf>,
    /// The PKCS#12 file's password.
    #[arg(long, env = "IMI_CLIENT_CERT_PASSWORD", default_value = "")]
    client_cert_password: String,
}

impl Connection {
    fn config(&self) -> EndpointConfig {
        let tls = (self.ca_file.is_some() || self.client_cert.is_some()).then(|| EndpointTls {
            ca_file: self.ca_file.clone(),
            client_certificate: self
                .client_cert
                .clone()
                .map(|p| (p, self.client_cert_password.clone())),
        });
        EndpointConfig {
            tls,
            amqp_url: self.amqp_url.clone(),
            vhost: self.vhost.clone(),
            endpoint: self.endpoint.clone(),
            password: self.password.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Send one message and print the hub's answer (receipt or rejection).
    Send {
        #[command(flatten)]
        connection: Connection,
        /// `<procedure>.<action>`, e.g. pq-information-request.send
        #[arg(long = "type")]
        message_type: String,
        /// The authority you send for.
        #[arg(long)]
        sender: String,
        /// Recipient authority (repeat for several).
        #[arg(long = "to")]
        recipients: Vec<String>,
        /// For a 1:N procedure sent by country: a country code (repeat).
        #[arg(long = "country")]
        countries: Vec<String>,
        /// The exchange a follow-up continues.
        #[arg(long)]
        exchange: Option<String>,
        /// Payload JSON file (`-` for standard input).
        #[arg(long)]
        payload: PathBuf,
        #[arg(long, default_value_t = 1)]
        schema_version: u32,
        /// Reuse an id to retry idempotently.
        #[arg(long)]
        message_id: Option<String>,
        /// Seconds to wait for the hub's answer (0: do not wait).
        #[arg(long, default_value_t = 15)]
        wait: u64,
    },
    /// The demo of `run-demo.sh`: a Finnish and a German authority exchange
    /// diploma-verification requests through the hub, narrated.
    Demo {
        #[arg(long, env = "IMI_AMQP_URL", default_value = "amqp://127.0.0.1:5672")]
        amqp_url: String,
        #[arg(long, env = "IMI_AMQP_VHOST", default_value = "imi")]
        vhost: String,
        /// Requesting endpoint `id:password:authority` (config/demo-seed.yaml).
        #[arg(long, default_value = "fi-valvira-gw:demo-fi-valvira:FI-VALVIRA")]
        requester: String,
        /// Answering endpoint `id:password:authority`.
        #[arg(long, default_value = "de-aekno-gw:demo-de-aekno:DE-AEKNO")]
        responder: String,
        /// With amqps://: PEM file of the CA that signs the broker's certificate.
        #[arg(long, env = "IMI_AMQP_CA_FILE")]
        ca_file: Option<PathBuf>,
        /// With amqps://: the responder logs in with this PKCS#12 certificate.
        #[arg(long)]
        responder_cert: Option<PathBuf>,
        /// The responder certificate's password.
        #[arg(long, default_value = "")]
        responder_cert_password: String,
        /// Requests to exchange (0: until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        rounds: usize,
        /// Pause between requests, milliseconds.
        #[arg(long, default_value_t = 2000)]
        interval_ms: u64,
    },
    /// Render a coded payload in one of the 24 languages, using the catalogue.
    Render {
        /// `<procedure>.<action>`
        #[arg(long = "type")]
        message_type: String,
        /// Payload JSON file (`-` for standard input); an envelope's
        /// `payload` is taken if the file holds a whole envelope.
        #[arg(long)]
        payload: PathBuf,
        /// Language code, e.g. fi, de, fr.
        #[arg(long, default_value = "en")]
        lang: String,
        /// The catalogue folder.
        #[arg(long, env = "IMI_CATALOGUE_DIR", default_value = "schemas/catalogue")]
        catalogue: PathBuf,
    },
    /// Search competent authorities (any language, accents and small typos
    /// forgiven) through the hub's HTTP API.
    Search {
        /// The hub's HTTP address.
        #[arg(long, env = "IMI_HUB_URL", default_value = "http://127.0.0.1:8080")]
        hub: String,
        /// An API account's bearer token (`imi-hub account create`).
        #[arg(long, env = "IMI_API_TOKEN")]
        token: String,
        /// Free text: a name or competence in any language.
        text: Option<String>,
        #[arg(long)]
        country: Option<String>,
        #[arg(long)]
        procedure: Option<String>,
        /// Language of the names to print.
        #[arg(long, default_value = "en")]
        lang: String,
    },
    /// Print (as JSON lines) and acknowledge what arrives in the inbox.
    Listen {
        #[command(flatten)]
        connection: Connection,
        /// Stop after this many items.
        #[arg(long)]
        count: Option<usize>,
        /// Acknowledge every copy of a 1:N message (alert, notification)
        /// once printed, so its originator sees you have it.
        #[arg(long)]
        acknowledge: bool,
        /// Remember acknowledged message ids in this file, so that a
        /// redelivery is not printed again after a restart.
        #[arg(long, value_name = "FILE")]
        remember: Option<std::path::PathBuf>,
    },
}

mod demo;
mod render;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,lapin=off,pinky_swear=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Send {
            connection,
            message_type,
            sender,
            recipients,
            countries,
            exchange,
            payload,
            schema_version,
            message_id,
            wait,
        } => {
            let text = if payload.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&payload)
                    .with_context(|| format!("reading {}", payload.display()))?
            };
            let message = OutgoingMessage {
                message_type: MessageType::try_from(message_type.as_str())?,
                sender: AuthorityId::try_from(sender.as_str())?,
                recipients: recipients
                    .iter()
                    .map(|r| AuthorityId::try_from(r.as_str()))
                    .collect::<Result<_, _>>()?,
                exchange: exchange.as_deref().map(ExchangeId::try_from).transpose()?,
                payload: serde_json::from_str(&text).context("the payload is not JSON")?,
                schema_version,
                countries: countries
                    .iter()
                    .map(|c| CountryCode::try_from(c.as_str()))
                    .collect::<Result<_, _>>()?,
                message_id: message_id.as_deref().map(MessageId::try_from).transpose()?,
            };
            let adapter = Adapter::connect(&connection.config()).await?;
            let stop = CancellationToken::new();
            let mut inbox = adapter.inbox(stop.clone());
            let id = adapter.send(&message).await?;
            eprintln!("sent {id}");
            if wait > 0 {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
                loop {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let item = inbox
                        .next_within(left)
                        .await
                        .context("no answer from the hub")?;
                    let answer = match &item.incoming {
                        Incoming::Receipt(r) if r.message_id.to_string() == id.to_string() => {
                            Some(("receipt", serde_json::to_value(r)?))
                        }
                        Incoming::Rejection(r)
                            if r.message_id.as_deref() == Some(&id.to_string()) =>
                        {
                            Some(("rejection", serde_json::to_value(r)?))
                        }
                        // Anything else stays unacked for `listen`.
                        _ => None,
                    };
                    if let Some((kind, value)) = answer {
                        item.ack().await?;
                        println!("{}", json!({"kind": kind, "answer": value}));
                        stop.cancel();
                        adapter.close().await;
                        if kind == "rejection" {
                            bail!("the hub rejected the message");
                        }
                        break;
                    }
                }
            }
            adapter.close().await;
        }
        Command::Demo {
            amqp_url,
            vhost,
            requester,
            responder,
            ca_file,
            responder_cert,
            responder_cert_password,
            rounds,
            interval_ms,
        } => {
            let link = demo::Link {
                amqp_url: &amqp_url,
                vhost: &vhost,
                ca_file,
                responder_certificate: responder_cert.map(|p| (p, responder_cert_password)),
            };
            demo::run(&link, &requester, &responder, rounds, interval_ms).await?
        }
        Command::Render {
            message_type,
            payload,
            lang,
            catalogue,
        } => {
            let text = if payload.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&payload)
                    .with_context(|| format!("reading {}", payload.display()))?
            };
            let mut value: serde_json::Value =
                serde_json::from_str(&text).context("the payload is not JSON")?;
            if value.get("payload").is_some() && value.get("sender").is_some() {
                value = value["payload"].take();
            }
            let catalogue = render::load_catalogue(&catalogue)?;
            let message_type = MessageType::try_from(message_type.as_str())?;
            print!("{}", catalogue.render(&message_type, &value, &lang)?);
        }
        Command::Search {
            hub,
            token,
            text,
            country,
            procedure,
            lang,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(text.map(|t| ("q", t)));
            query.extend(country.map(|c| ("country", c)));
            query.extend(procedure.map(|p| ("procedure", p)));
            let response = reqwest::Client::new()
                .get(format!("{}/api/v1/authorities", hub.trim_end_matches('/')))
                .bearer_auth(token)
                .query(&query)
                .send()
                .await
                .context("the hub's HTTP API is not reachable")?;
            let status = response.status();
            let body: serde_json::Value = response
                .json()
                .await
                .context("the hub answered something that is not JSON")?;
            if !status.is_success() {
                bail!(
                    "{}: {}",
                    body["title"].as_str().unwrap_or("error"),
                    body["detail"].as_str().unwrap_or("")
                );
            }
            for a in body["authorities"].as_array().into_iter().flatten() {
                let name = a["names"][lang.as_str()]
                    .as_str()
                    .or_else(|| a["names"]["en"].as_str())
                    .unwrap_or("");
                println!(
                    "{}\t{}\t{}\t{}",
                    a["id"].as_str().unwrap_or(""),
                    a["country"].as_str().unwrap_or(""),
                    a["status"].as_str().unwrap_or(""),
                    name
                );
            }
        }
        Command::Listen {
            connection,
            count,
            acknowledge,
            remember,
        } => {
            let adapter = Adapter::connect(&connection.config()).await?;
            let stop = CancellationToken::new();
            let mut inbox = match &remember {
                Some(path) => adapter.inbox_remembering(stop.clone(), path)?,
                None => adapter.inbox(stop.clone()),
            };
            let mut n = 0;
            loop {
                let item = tokio::select! {
                    item = inbox.next() => match item { Some(i) => i, None => break },
                    _ = tokio::signal::ctrl_c() => break,
                };
                let line = match &item.incoming {
                    Incoming::Message(m) => json!({
                        "kind": "message", "message_id": item.message_id, "exchange_id": item.exchange_id,
                        "type": m.message_type, "sender": m.sender, "recipients": m.recipients,
                        "acknowledgement_requested": m.acknowledgement_requested,
                        "payload": m.envelope.payload,
                    }),
                    Incoming::Receipt(r) => json!({"kind": "receipt", "receipt": r}),
                    Incoming::Rejection(r) => json!({"kind": "rejection", "rejection": r}),
                    Incoming::Deadline(n) => json!({"kind": "deadline", "deadline": n}),
                    Incoming::Acknowledgements(a) => {
                        json!({"kind": "acknowledgements", "acknowledgements": a.acknowledgements})
                    }
                    Incoming::Validation(v) => json!({"kind": "validation", "validation": v}),
                    Incoming::Unknown { message_type, body } => json!({
                        "kind": "unknown", "type": message_type, "body": String::from_utf8_lossy(body),
                    }),
                };
                println!("{line}");
                if let Incoming::Message(m) = &item.incoming {
                    if acknowledge && m.acknowledgement_requested {
                        let copy = uuid::Uuid::parse_str(&item.message_id)?;
                        adapter
                            .acknowledge(copy, item.exchange_id.as_deref(), &[])
                            .await?;
                    }
                }
                item.ack().await?;
                n += 1;
                if count.is_some_and(|c| n >= c) {
                    break;
                }
            }
            stop.cancel();
            adapter.close().await;
        }
    }
    Ok(())
}

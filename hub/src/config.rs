//! Typed configuration: a TOML file, then `IMI_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::HubError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Shown in logs and as the broker connection name.
    #[serde(default = "default_instance")]
    pub instance: String,
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    #[serde(default)]
    pub pipeline: PipelineSettings,
    /// Folder of the procedure catalogue.
    pub catalogue_dir: PathBuf,
    /// Authorities and endpoints to register at start (until the registry issue).
    #[serde(default)]
    pub seed_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port` without the vhost.
    pub url: String,
    pub vhost: String,
    pub management_url: String,
    pub management_user: String,
    pub management_password: String,
    /// `quorum` (default) or `classic`.
    #[serde(default = "default_queue_type")]
    pub queue_type: String,
}

impl AmqpSettings {
    /// The full AMQP URL with the vhost.
    pub fn url_with_vhost(&self) -> String {
        amqp_url(&self.url, &self.vhost)
    }
}

/// Joins a broker URL and a vhost (percent-encoding the vhost).
pub fn amqp_url(base: &str, vhost: &str) -> String {
    let encoded: String = vhost
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{}/{}?heartbeat=10", base.trim_end_matches('/'), encoded)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Port 0 picks a free port (tests).
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Most messages in one database transaction.
    pub batch_size: usize,
    /// How long a batch waits for more messages once it has one.
    pub batch_linger_ms: u64,
    /// Unacknowledged ingress deliveries the broker may push to each consumer.
    pub prefetch: u16,
    /// Consumers (channels) on the ingress queue.
    pub ingress_consumers: usize,
    /// Larger bodies are refused (and kept truncated).
    pub max_body_bytes: usize,
    /// Batch transactions that may run at once (on separate connections);
    /// results are still published and acked in arrival order.
    pub commit_concurrency: usize,
    /// Committed batches whose publishes may be awaiting confirms at once.
    pub publish_in_flight_batches: usize,
    /// AMQP channels the hub publishes on (batches take them in turn).
    pub publish_channels: usize,
    /// How long a batch's receipts wait for later batches' receipts to the
    /// same sender, so one message answers several batches. Acks do not wait
    /// for receipts. 0: each batch's receipts go out with its messages. At
    /// most [`MAX_RECEIPT_LINGER_MS`].
    pub receipt_linger_ms: u64,
    /// Seconds between outbox relay passes (re-publishing what a crash left).
    pub relay_interval_secs: u64,
    /// Seconds between deadline checks (and acknowledgement reminder passes).
    pub deadline_check_secs: u64,
    /// Hours after which a recipient that has not acknowledged a 1:N message
    /// gets a reminder.
    pub ack_reminder_after_hours: u64,
    /// Days a refused message's body is kept for inspection before it is
    /// erased (it may hold personal data).
    pub rejected_retention_days: u64,
}

/// Receipts held longer than this could still be held when the outbox relay
/// (which takes a batch unpublished 5 s after its commit for one a crash
/// left) sends their batch again.
pub const MAX_RECEIPT_LINGER_MS: u64 = 4_000;

impl PipelineSettings {
    /// Refuses settings that would make the hub misbehave.
    pub fn validate(&self) -> Result<(), HubError> {
        if self.receipt_linger_ms > MAX_RECEIPT_LINGER_MS {
            return Err(HubError::Config(format!(
                "pipeline.receipt_linger_ms = {} is above {MAX_RECEIPT_LINGER_MS} (the outbox relay would send held receipts again)",
                self.receipt_linger_ms
            )));
        }
        Ok(())
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            batch_size: 200,
            batch_linger_ms: 2,
            prefetch: 2000,
            ingress_consumers: 1,
            max_body_bytes: 256 * 1024,
            commit_concurrency: 3,
            publish_in_flight_batches: 8,
            publish_channels: 4,
            receipt_linger_ms: 50,
            relay_interval_secs: 2,
            deadline_check_secs: 60,
            ack_reminder_after_hours: 24,
            rejected_retention_days: 90,
        }
    }
}

fn default_instance() -> String {
    "imi-hub".into()
}
fn default_queue_type() -> String {
    "quorum".into()
}
fn default_max_connections() -> u32 {
    8
}

impl Config {
    /// Reads the TOML file, then applies environment overrides.
    pub fn load(path: &Path) -> Result<Config, HubError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HubError::Config(format!("cannot read {}: {e}", path.display())))?;
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| HubError::Config(format!("{}: {e}", path.display())))?;
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// Environment overrides, one variable per setting an operator changes
    /// between machines.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), HubError> {
        let parse_err = |k: &str, v: &str| HubError::Config(format!("{k}={v} is not valid"));
        if let Some(v) = get("IMI_INSTANCE") {
            self.instance = v;
        }
        if let Some(v) = get("IMI_AMQP_URL") {
            self.amqp.url = v;
        }
        if let Some(v) = get("IMI_AMQP_VHOST") {
            self.amqp.vhost = v;
        }
        if let Some(v) = get("IMI_AMQP_MANAGEMENT_URL") {
            self.amqp.management_url = v;
        }
        if let Some(v) = get("IMI_AMQP_QUEUE_TYPE") {
            self.amqp.queue_type = v;
        }
        if let Some(v) = get("IMI_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = get("IMI_HTTP_LISTEN") {
            self.http.listen = v.parse().map_err(|_| parse_err("IMI_HTTP_LISTEN", &v))?;
        }
        if let Some(v) = get("IMI_CATALOGUE_DIR") {
            self.catalogue_dir = v.into();
        }
        if let Some(v) = get("IMI_SEED_FILE") {
            self.seed_file = Some(v.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_may_not_be_held_into_the_relays_grace() {
        let mut settings = PipelineSettings::default();
        assert!(settings.validate().is_ok());
        settings.receipt_linger_ms = MAX_RECEIPT_LINGER_MS + 1;
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("receipt_linger_ms"), "{error}");
    }

    #[test]
    fn the_shipped_config_parses_and_env_overrides_it() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hub.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut config: Config = toml::from_str(&text).unwrap();
        config
            .apply_env(|k| (k == "IMI_DATABASE_URL").then(|| "postgres://x/y".to_owned()))
            .unwrap();
        assert_eq!(config.database.url, "postgres://x/y");
        assert!(config
            .apply_env(|k| (k == "IMI_HTTP_LISTEN").then(|| "nope".into()))
            .is_err());
    }

    #[test]
    fn vhosts_are_percent_encoded_in_the_url() {
        assert_eq!(
            amqp_url("amqp://g:g@h:5672/", "/"),
            "amqp://g:g@h:5672/%2F?heartbeat=10"
        );
        assert_eq!(
            amqp_url("amqp://g:g@h:5672", "imi-t1"),
            "amqp://g:g@h:5672/imi-t1?heartbeat=10"
        );
    }
}

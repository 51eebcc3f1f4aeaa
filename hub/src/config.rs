//! Typed configuration, layered with figment: the TOML file, then `IMI_*`
//! environment variables. Every key can be overridden: `IMI_<KEY>` for a
//! top-level key, `IMI_<SECTION>_<KEY>` for a key of a section (e.g.
//! `IMI_PIPELINE_BATCH_SIZE`). An unknown key in the file, or an unknown
//! `IMI_<SECTION>_…` variable, is an error. Values that may hold a password
//! (URLs with credentials, the management password) are secrets: `Debug`
//! prints them redacted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use imi_broker::{QueueType, UserLimits};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::HubError;

/// The sections of the file; `IMI_<SECTION>_<KEY>` overrides a key of one.
const SECTIONS: [&str; 7] = [
    "amqp",
    "database",
    "http",
    "pipeline",
    "audit",
    "subjects",
    "encryption",
];
/// The top-level keys; `IMI_<KEY>` overrides one.
const TOP_LEVEL: [&str; 3] = ["instance", "catalogue_dir", "seed_file"];

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
    /// Authorities and endpoints to register at start (demos and tests).
    #[serde(default)]
    pub seed_file: Option<PathBuf>,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub subjects: SubjectSettings,
    #[serde(default)]
    pub encryption: EncryptionSettings,
}

/// Encryption at rest of stored payloads (docs/encryption.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionSettings {
    /// The data key that seals payloads (32 bytes, hex), created (readable
    /// by its owner only) when missing; unset: payloads are stored plain.
    pub key_file: Option<PathBuf>,
    /// Earlier data keys, still opened while the re-encryption pass seals
    /// what they sealed with the current key.
    pub previous_key_files: Vec<PathBuf>,
}

/// Data-subject requests (docs/data-subjects.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubjectSettings {
    /// The key of the keyed hashes (HMAC-SHA256) that index who a payload is
    /// about (32 bytes, hex). Created (readable by its owner only) when
    /// missing; every hub instance of one database needs the same one.
    pub index_key_file: PathBuf,
    /// A request must be answered within this many days of its receipt
    /// (GDPR Art. 12(3): one month).
    pub answer_within_days: u32,
    /// The handling office is reminded this many days before.
    pub remind_days_before: u32,
}

impl Default for SubjectSettings {
    fn default() -> Self {
        Self {
            index_key_file: PathBuf::from(".imi-hub/subject-index.key"),
            answer_within_days: 30,
            remind_days_before: 7,
        }
    }
}

/// The tamper-evident audit log (docs/audit.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The hub's Ed25519 key that signs checkpoints (32 bytes, hex). Created
    /// (readable by its owner only) when missing.
    pub signing_key_file: PathBuf,
    /// A checkpoint is signed once this many entries followed the last one …
    pub checkpoint_every: i64,
    /// … or, when anything was appended, this many seconds after it.
    pub checkpoint_max_age_secs: u64,
    /// Each checkpoint is also appended here, as one JSON line, so a copy is
    /// kept outside the database (`imi-hub audit verify --checkpoints`).
    pub checkpoint_file: Option<PathBuf>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            signing_key_file: PathBuf::from(".imi-hub/audit-signing.key"),
            checkpoint_every: 1000,
            checkpoint_max_age_secs: 3600,
            checkpoint_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port` without the vhost.
    pub url: SecretString,
    pub vhost: String,
    pub management_url: String,
    pub management_user: String,
    pub management_password: SecretString,
    /// `quorum` (default) or `classic`.
    #[serde(default = "default_queue_type")]
    pub queue_type: String,
    /// Connections one endpoint's broker user may hold open at once; the
    /// broker refuses more (a runaway adapter cannot exhaust the broker).
    #[serde(default = "default_endpoint_max_connections")]
    pub endpoint_max_connections: u32,
    /// Channels one endpoint's broker user may hold open at once, across
    /// its connections.
    #[serde(default = "default_endpoint_max_channels")]
    pub endpoint_max_channels: u32,
    /// Messages an endpoint's inbox holds at most. Beyond it the broker
    /// dead-letters the oldest, and the hub keeps it among the dead letters
    /// for the operators (a recipient that stopped consuming cannot fill
    /// the broker's disk).
    #[serde(default = "default_inbox_max_messages")]
    pub inbox_max_messages: u64,
    /// With an `amqps://` URL: the PEM file of the CA that signs the
    /// broker's certificate (default: the system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl AmqpSettings {
    /// The full AMQP URL with the vhost.
    pub fn url_with_vhost(&self) -> Result<SecretString, HubError> {
        imi_broker::connection_url(self.url.expose_secret(), &self.vhost, None)
            .map(SecretString::from)
            .map_err(|e| HubError::Setting {
                key: "amqp.url",
                problem: format!("is not a URL: {e}"),
            })
    }

    /// What the hub's `amqps://` connection trusts (`None` for `amqp://`).
    pub fn broker_tls(&self) -> Result<Option<imi_broker::TlsConfig>, HubError> {
        if !self.url.expose_secret().starts_with("amqps://") {
            return Ok(None);
        }
        let ca_pem = match &self.ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path).map_err(|e| HubError::Setting {
                    key: "amqp.ca_file",
                    problem: format!("cannot read {}: {e}", path.display()),
                })?,
            ),
            None => None,
        };
        Ok(Some(imi_broker::TlsConfig {
            ca_pem,
            client_pkcs12: None,
        }))
    }

    /// What each endpoint's broker user may hold open.
    pub fn endpoint_limits(&self) -> UserLimits {
        UserLimits {
            max_connections: self.endpoint_max_connections,
            max_channels: self.endpoint_max_channels,
        }
    }

    fn validate(&self) -> Result<(), HubError> {
        self.queue_type()?;
        self.url_with_vhost()?;
        for (key, value) in [
            (
                "amqp.endpoint_max_connections",
                u64::from(self.endpoint_max_connections),
            ),
            (
                "amqp.endpoint_max_channels",
                u64::from(self.endpoint_max_channels),
            ),
            ("amqp.inbox_max_messages", self.inbox_max_messages),
        ] {
            if value == 0 {
                return Err(HubError::Setting {
                    key,
                    problem: "is 0: nothing could connect or be delivered".into(),
                });
            }
        }
        Ok(())
    }

    pub fn queue_type(&self) -> Result<QueueType, HubError> {
        QueueType::parse(&self.queue_type).ok_or_else(|| HubError::Setting {
            key: "amqp.queue_type",
            problem: format!("is `{}`, not quorum or classic", self.queue_type),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user[:password]@host:port/database`.
    pub url: SecretString,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Console cookies are marked `Secure`: set it when the console is
    /// reached over TLS (directly or through a proxy).
    #[serde(default)]
    pub secure_cookies: bool,
    /// Serve HTTPS with this certificate chain (PEM)…
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// … and its private key (PEM, PKCS#8 or PKCS#1). Both or neither.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Most messages in one database transaction.
    pub batch_size: usize,
    /// How long a batch waits for more messages once it has one.
    pub batch_linger_ms: u64,
    /// Unacknowledged ingress deliveries the broker may push to the hub.
    pub prefetch: u16,
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
    /// On stop, how long in-flight batches get to be committed, published
    /// and acked; what is left stays unacked and is redelivered.
    pub drain_secs: u64,
}

/// Receipts held longer than this could still be held when the outbox relay
/// (which takes a batch unpublished 5 s after its commit for one a crash
/// left) sends their batch again.
pub const MAX_RECEIPT_LINGER_MS: u64 = 4_000;

impl PipelineSettings {
    /// Refuses settings that would make the hub misbehave.
    pub fn validate(&self) -> Result<(), HubError> {
        if self.receipt_linger_ms > MAX_RECEIPT_LINGER_MS {
            return Err(HubError::Setting {
                key: "pipeline.receipt_linger_ms",
                problem: format!(
                    "is {}, above {MAX_RECEIPT_LINGER_MS} (the outbox relay would send held receipts again)",
                    self.receipt_linger_ms
                ),
            });
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
            max_body_bytes: 256 * 1024,
            commit_concurrency: 3,
            publish_in_flight_batches: 8,
            publish_channels: 4,
            receipt_linger_ms: 50,
            relay_interval_secs: 2,
            deadline_check_secs: 60,
            ack_reminder_after_hours: 24,
            rejected_retention_days: 90,
            drain_secs: 30,
        }
    }
}

fn default_instance() -> String {
    "imi-hub".into()
}
fn default_queue_type() -> String {
    "quorum".into()
}
fn default_endpoint_max_connections() -> u32 {
    20
}
fn default_endpoint_max_channels() -> u32 {
    200
}
fn default_inbox_max_messages() -> u64 {
    1_000_000
}
fn default_max_connections() -> u32 {
    8
}

/// `IMI_PIPELINE_BATCH_SIZE` → `pipeline.batch_size`, `IMI_INSTANCE` →
/// `instance`; `None` for a variable that is not the hub's (another tool's,
/// such as `IMI_LOG_FORMAT` or the adapter's `IMI_ENDPOINT`).
fn config_key(variable: &str) -> Option<String> {
    let variable = variable.to_ascii_lowercase();
    if TOP_LEVEL.contains(&variable.as_str()) {
        return Some(variable);
    }
    SECTIONS.iter().find_map(|section| {
        let key = variable.strip_prefix(section)?.strip_prefix('_')?;
        Some(format!("{section}.{key}"))
    })
}

impl Config {
    /// The file's layers: the TOML file, then the environment.
    pub fn figment(path: &Path) -> Figment {
        Figment::new().merge(Toml::file_exact(path)).merge(
            Env::prefixed("IMI_")
                .filter(|key| config_key(key.as_str()).is_some())
                .map(|key| config_key(key.as_str()).unwrap_or_default().into()),
        )
    }

    /// Reads the TOML file, applies environment overrides, and checks the
    /// values that can be checked without connecting anywhere.
    pub fn load(path: &Path) -> Result<Config, HubError> {
        let config: Config = Self::figment(path)
            .extract()
            .map_err(|e| HubError::Config(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what can be checked without connecting.
    pub fn validate(&self) -> Result<(), HubError> {
        self.pipeline.validate()?;
        self.amqp.validate()
    }
}

#[cfg(test)]
// figment's `Jail` closures return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hub.toml")
    }

    #[test]
    fn receipts_may_not_be_held_into_the_relays_grace() {
        let mut settings = PipelineSettings::default();
        assert!(settings.validate().is_ok());
        settings.receipt_linger_ms = MAX_RECEIPT_LINGER_MS + 1;
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("receipt_linger_ms"), "{error}");
    }

    #[test]
    fn every_key_can_be_overridden_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("IMI_DATABASE_URL", "postgres://x/y");
            jail.set_env("IMI_PIPELINE_BATCH_SIZE", "17");
            jail.set_env("IMI_PIPELINE_RECEIPT_LINGER_MS", "0");
            jail.set_env("IMI_AMQP_MANAGEMENT_PASSWORD", "s3cret");
            jail.set_env("IMI_INSTANCE", "hub-7");
            jail.set_env("IMI_HTTP_LISTEN", "127.0.0.1:9999");
            // Another tool's variable is not the hub's business.
            jail.set_env("IMI_LOG_FORMAT", "json");
            let config = Config::load(&shipped()).expect("loads");
            assert_eq!(config.database.url.expose_secret(), "postgres://x/y");
            assert_eq!(config.pipeline.batch_size, 17);
            assert_eq!(config.pipeline.receipt_linger_ms, 0);
            assert_eq!(config.amqp.management_password.expose_secret(), "s3cret");
            assert_eq!(config.instance, "hub-7");
            assert_eq!(config.http.listen.port(), 9999);
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_is_an_error() {
        Jail::expect_with(|jail| {
            jail.set_env("IMI_PIPELINE_BATCH_SIZ", "17");
            let error = Config::load(&shipped()).unwrap_err().to_string();
            assert!(error.contains("batch_siz"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("IMI_HTTP_LISTEN", "nope");
            assert!(Config::load(&shipped()).is_err());
            Ok(())
        });
        Jail::expect_with(|jail| {
            let text = std::fs::read_to_string(shipped()).unwrap();
            jail.create_file("hub.toml", &format!("colour = \"blue\"\n{text}"))?;
            let error = Config::load(Path::new("hub.toml")).unwrap_err().to_string();
            assert!(error.contains("colour"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_not_printed() {
        Jail::expect_with(|_| {
            let config = Config::load(&shipped()).expect("loads");
            let printed = format!("{config:?}");
            assert!(!printed.contains("guest:guest"), "{printed}");
            assert!(
                !printed.contains("management_password: \"guest\""),
                "{printed}"
            );
            Ok(())
        });
    }
}

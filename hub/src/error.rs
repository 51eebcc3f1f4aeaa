use std::path::PathBuf;

use imi_schemas::catalogue::CatalogueErrors;
use imi_schemas::ids::IdError;
use thiserror::Error;

/// Failures at the hub's boundaries. Per-message problems are not errors:
/// they become rejections (see `pipeline`). Each variant keeps its cause as
/// its `source()`; the message repeats it so one log line says enough.
#[derive(Debug, Error)]
pub enum HubError {
    #[error("configuration: {0}")]
    Config(#[from] Box<figment::Error>),
    #[error("configuration: `{key}` {problem}")]
    Setting { key: &'static str, problem: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalogue in {}: {source}", path.display())]
    Catalogue {
        path: PathBuf,
        #[source]
        source: CatalogueErrors,
    },
    #[error("seed file: {0}")]
    Seed(#[from] SeedError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("broker: {0}")]
    Broker(#[from] imi_broker::BrokerError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Re-driving messages could not be planned (the registry or the
    /// exchanges kept changing under it).
    #[error("re-drive: {0}")]
    Redrive(String),
    /// A task the hub cannot run without ended before it was asked to stop.
    #[error("the {0} stopped on its own; the hub stopped with it")]
    TaskEnded(&'static str),
}

/// What is wrong with a seed file.
#[derive(Debug, Error)]
pub enum SeedError {
    #[error("not valid YAML for a seed file: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("{0}")]
    Id(#[from] IdError),
    #[error("authority `{authority}` is in country {country}, but its id says otherwise")]
    CountryMismatch { authority: String, country: String },
}

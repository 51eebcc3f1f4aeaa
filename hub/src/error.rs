use thiserror::Error;

/// Failures at the hub's boundaries. Per-message problems are not errors:
/// they become rejections (see `pipeline`).
#[derive(Debug, Error)]
pub enum HubError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("catalogue: {0}")]
    Catalogue(String),
    #[error("seed file: {0}")]
    Seed(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("broker: {0}")]
    Broker(#[from] imi_broker::BrokerError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

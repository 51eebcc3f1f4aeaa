use thiserror::Error;

/// Failures at the broker boundary. Connection-level failures are retried by
/// the supervisor; callers see them only where retrying is not theirs to do.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the publish: {0}")]
    Refused(String),
    #[error("shutting down")]
    ShuttingDown,
    #[error("management API: {0}")]
    Management(String),
    #[error("management API request failed: {0}")]
    Http(#[from] reqwest::Error),
}

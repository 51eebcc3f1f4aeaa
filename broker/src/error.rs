use thiserror::Error;

/// Failures at the broker boundary. Connection-level failures are retried by
/// the supervisor; callers see them only where retrying is not theirs to do.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the publish (nack)")]
    Nacked,
    #[error("no broker connection within {0:?}")]
    NotConnected(std::time::Duration),
    #[error("shutting down")]
    ShuttingDown,
    #[error("management API: {what}: HTTP {status}: {body}")]
    Management {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("management API URL `{url}` is not valid: {source}")]
    ManagementUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("management API: {what} failed: {source}")]
    Http {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

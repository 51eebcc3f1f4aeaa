use thiserror::Error;

#[derive(Debug, Error)]
pub enum AdapterError {
    #[error("broker: {0}")]
    Broker(#[from] imi_broker::BrokerError),
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the broker could not route the message: is the hub's ingress queue declared?")]
    Unroutable,
    #[error("the inbox closed")]
    InboxClosed,
    #[error("the record of acknowledged messages: {0}")]
    SeenRecord(#[source] std::io::Error),
}

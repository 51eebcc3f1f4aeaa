//! Prometheus metrics. Labels are bounded: outcomes and rejection codes are
//! fixed sets, never message ids or raw error text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabel {
    pub code: &'static str,
}

pub(crate) struct Metrics {
    registry: Registry,
    pub ingress_messages: Family<OutcomeLabel, Counter>,
    pub rejections: Family<CodeLabel, Counter>,
    pub batches: Counter,
    pub batch_size: Histogram,
    pub commit_seconds: Histogram,
    pub publish_seconds: Histogram,
    pub commit_retries: Counter,
    pub relayed: Counter,
    pub broker_connected: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("imi");
        let ingress_messages = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "ingress_messages",
            "Ingress messages by outcome",
            ingress_messages.clone(),
        );
        let rejections = Family::<CodeLabel, Counter>::default();
        registry.register(
            "rejections",
            "Rejected messages by code",
            rejections.clone(),
        );
        let batches = Counter::default();
        registry.register("batches", "Committed micro-batches", batches.clone());
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "batch_size_messages",
            "Messages per micro-batch",
            batch_size.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "commit_seconds",
            "Batch transaction time",
            commit_seconds.clone(),
        );
        let publish_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "publish_seconds",
            "Publish-to-confirm time per batch",
            publish_seconds.clone(),
        );
        let commit_retries = Counter::default();
        registry.register(
            "commit_retries",
            "Batch transactions retried after a failure",
            commit_retries.clone(),
        );
        let relayed = Counter::default();
        registry.register(
            "outbox_relayed",
            "Outbox rows re-published by the relay",
            relayed.clone(),
        );
        let broker_connected = Gauge::default();
        registry.register(
            "broker_connected",
            "1 when the broker connection is up",
            broker_connected.clone(),
        );
        Self {
            registry,
            ingress_messages,
            rejections,
            batches,
            batch_size,
            commit_seconds,
            publish_seconds,
            commit_retries,
            relayed,
            broker_connected,
        }
    }
}

impl Metrics {
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode");
        out
    }
}

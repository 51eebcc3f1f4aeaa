//! Message properties as the rest of the workspace sees them (no lapin types).

use std::collections::BTreeMap;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

/// String-valued AMQP headers (numbers are rendered as decimal strings).
pub type Headers = BTreeMap<String, String>;

/// The AMQP properties IMI uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub message_type: Option<String>,
    /// Validated by the broker against the connection's user.
    pub user_id: Option<String>,
    pub content_type: Option<String>,
    /// Seconds since the epoch.
    pub timestamp: Option<u64>,
    pub headers: Headers,
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    /// Ask the broker to return it when no queue is bound (reported as
    /// `Unroutable`); off for a broadcast nobody may be listening to.
    pub mandatory: bool,
    pub properties: Properties,
    pub body: Vec<u8>,
}

impl Properties {
    pub(crate) fn to_lapin(&self) -> BasicProperties {
        let mut p = BasicProperties::default().with_delivery_mode(2);
        if let Some(v) = &self.message_id {
            p = p.with_message_id(ShortString::from(v.as_str()));
        }
        if let Some(v) = &self.correlation_id {
            p = p.with_correlation_id(ShortString::from(v.as_str()));
        }
        if let Some(v) = &self.message_type {
            p = p.with_type(ShortString::from(v.as_str()));
        }
        if let Some(v) = &self.user_id {
            p = p.with_user_id(ShortString::from(v.as_str()));
        }
        if let Some(v) = &self.content_type {
            p = p.with_content_type(ShortString::from(v.as_str()));
        }
        if let Some(v) = self.timestamp {
            p = p.with_timestamp(v);
        }
        if !self.headers.is_empty() {
            let mut table = FieldTable::default();
            for (k, v) in &self.headers {
                table.insert(
                    ShortString::from(k.as_str()),
                    AMQPValue::LongString(LongString::from(v.as_str())),
                );
            }
            p = p.with_headers(table);
        }
        p
    }

    pub(crate) fn from_lapin(p: &BasicProperties) -> Self {
        let s = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_owned());
        let mut headers = Headers::new();
        if let Some(table) = p.headers() {
            for (k, v) in table.inner() {
                headers.insert(k.as_str().to_owned(), header_text(v));
            }
        }
        Self {
            message_id: s(p.message_id()),
            correlation_id: s(p.correlation_id()),
            message_type: s(p.kind()),
            user_id: s(p.user_id()),
            content_type: s(p.content_type()),
            timestamp: *p.timestamp(),
            headers,
        }
    }
}

/// A header's value as text. A type with no text form is named in angle
/// brackets (`<field table>`), so that a header the hub reads, sent with
/// the wrong AMQP type, is refused with what arrived rather than taken as
/// absent.
fn header_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::ShortShortInt(i) => i.to_string(),
        AMQPValue::ShortShortUInt(i) => i.to_string(),
        AMQPValue::ShortInt(i) => i.to_string(),
        AMQPValue::ShortUInt(i) => i.to_string(),
        AMQPValue::LongInt(i) => i.to_string(),
        AMQPValue::LongUInt(i) => i.to_string(),
        AMQPValue::LongLongInt(i) => i.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::Timestamp(t) => t.to_string(),
        AMQPValue::DecimalValue(_) => "<decimal>".to_owned(),
        AMQPValue::FieldTable(_) => "<field table>".to_owned(),
        AMQPValue::FieldArray(_) => "<array>".to_owned(),
        AMQPValue::ByteArray(_) => "<byte array>".to_owned(),
        AMQPValue::Void => "<void>".to_owned(),
    }
}

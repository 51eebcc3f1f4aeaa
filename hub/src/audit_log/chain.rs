//! The hash of an audit entry: SHA-256 over the previous entry's hash, the
//! entry's place and a canonical JSON text of its fields (object keys
//! sorted at every level, so the hash does not depend on the order in which
//! PostgreSQL's `jsonb` gives the keys back). Pure, so the hub that appends
//! and `imi-hub audit verify` compute the same thing.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hash before the first entry.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// The fields of an entry that its hash covers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EntryFields<'a> {
    pub(crate) at: DateTime<Utc>,
    pub(crate) account_id: Option<Uuid>,
    pub(crate) account_name: &'a str,
    pub(crate) source: &'a str,
    pub(crate) action: &'a str,
    pub(crate) subject: Option<&'a str>,
    pub(crate) detail: &'a Value,
}

/// The hash of the entry at `seq` that follows an entry hashed `prev`.
pub(crate) fn entry_hash(prev: &[u8], seq: i64, e: &EntryFields<'_>) -> [u8; 32] {
    let fields = serde_json::json!({
        "at": e.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "account_id": e.account_id,
        "account_name": e.account_name,
        "source": e.source,
        "action": e.action,
        "subject": e.subject,
        "detail": e.detail,
    });
    let mut text = String::new();
    canonical(&fields, &mut text);
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(text.as_bytes());
    h.finalize().into()
}

/// JSON with the keys of every object sorted.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The text a checkpoint's signature covers.
pub(crate) fn checkpoint_message(seq: i64, hash: &[u8]) -> Vec<u8> {
    format!("imi-hub audit checkpoint {seq} {}", hex::encode(hash)).into_bytes()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn fields(detail: &Value) -> EntryFields<'_> {
        EntryFields {
            at: Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap(),
            account_id: None,
            account_name: "ops",
            source: "console",
            action: "view_exchange",
            subject: Some("5f0e"),
            detail,
        }
    }

    #[test]
    fn the_order_of_keys_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"lang": "de", "reason": "case 7"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"reason": "case 7", "lang": "de"}"#).unwrap();
        assert_eq!(
            entry_hash(&GENESIS, 1, &fields(&a)),
            entry_hash(&GENESIS, 1, &fields(&b))
        );
    }

    #[test]
    fn every_field_place_and_predecessor_changes_the_hash() {
        let d = json!({"lang": "de"});
        let base = entry_hash(&GENESIS, 1, &fields(&d));
        assert_ne!(base, entry_hash(&GENESIS, 2, &fields(&d)), "place");
        assert_ne!(base, entry_hash(&[1; 32], 1, &fields(&d)), "predecessor");
        let other = json!({"lang": "fr"});
        assert_ne!(base, entry_hash(&GENESIS, 1, &fields(&other)), "detail");
        let mut f = fields(&d);
        f.account_name = "auditor";
        assert_ne!(base, entry_hash(&GENESIS, 1, &f), "account");
    }
}

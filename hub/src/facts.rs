//! The payload fields the database's own queries read (the statistics'
//! agreed answer dates and ratings, an alert's end date that closes it),
//! kept beside the stored message in `messages.facts` so these queries work
//! on sealed payloads (`at_rest`). None of them names a person.

use imi_schemas::catalogue::Procedure;
use serde_json::{Map, Value};

/// Top-level payload fields kept for every procedure.
const FIELDS: [&str; 2] = ["requested_answer_date", "rating"];

/// The facts of `payload`, a message of `procedure`.
pub(crate) fn of(procedure: &Procedure, payload: &Value) -> Value {
    let mut facts = Map::new();
    let expiry = procedure.expires_with.as_deref();
    for field in FIELDS.iter().copied().chain(expiry) {
        if let Some(v) = payload.get(field) {
            facts.insert(field.to_owned(), v.clone());
        }
    }
    Value::Object(facts)
}

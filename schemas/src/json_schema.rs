//! JSON Schema files for integrators and catalogue authors, generated from
//! the wire types, the catalogue format types, and the catalogue's forms.
//!
//! The files live in `schemas/json/` and are committed; tests fail when they
//! drift (`IMI_BLESS=1 cargo test -p imi-schemas` rewrites them).

use schemars::schema_for;
use serde_json::{json, Value};

use crate::catalogue::{
    AreaFile, CalendarFile, Catalogue, GlossaryFile, ProcedureFile, VocabularyFile,
};
use crate::envelope::Envelope;
use crate::protocol::{
    Acknowledgement, AcknowledgementBatch, DeadlineNotice, ReceiptBatch, Rejection,
    ValidationDecision,
};

/// Every schema generated from Rust types: (file name, schema).
pub fn wire_schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("envelope.schema.json", schema_for!(Envelope).to_value()),
        ("receipts.schema.json", schema_for!(ReceiptBatch).to_value()),
        (
            "acknowledgement.schema.json",
            schema_for!(Acknowledgement).to_value(),
        ),
        (
            "acknowledgements.schema.json",
            schema_for!(AcknowledgementBatch).to_value(),
        ),
        ("rejection.schema.json", schema_for!(Rejection).to_value()),
        (
            "deadline.schema.json",
            schema_for!(DeadlineNotice).to_value(),
        ),
        (
            "validation.schema.json",
            schema_for!(ValidationDecision).to_value(),
        ),
        (
            "catalogue-area.schema.json",
            schema_for!(AreaFile).to_value(),
        ),
        (
            "catalogue-procedure.schema.json",
            schema_for!(ProcedureFile).to_value(),
        ),
        (
            "catalogue-vocabulary.schema.json",
            schema_for!(VocabularyFile).to_value(),
        ),
        (
            "catalogue-calendar.schema.json",
            schema_for!(CalendarFile).to_value(),
        ),
        (
            "catalogue-glossary.schema.json",
            schema_for!(GlossaryFile).to_value(),
        ),
    ]
}

/// One schema per procedure action, for integrators:
/// (`<procedure>.<action>.schema.json`, schema).
pub fn form_schemas(catalogue: &Catalogue) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for p in catalogue.procedures() {
        for a in p.actions() {
            let name = p
                .names
                .get("en")
                .map(String::as_str)
                .unwrap_or(p.code.as_str());
            let mut schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": format!("urn:imi:form:{}.{}", p.code, a.code),
                "title": format!("{name} — {}", a.code),
            });
            if let (Some(target), Some(form)) = (schema.as_object_mut(), a.form_schema.as_object())
            {
                for (k, v) in form {
                    target.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            out.push((format!("{}.{}.schema.json", p.code, a.code), schema));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn json_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json")
    }

    #[test]
    fn committed_schema_files_match_the_types() {
        let bless = std::env::var_os("IMI_BLESS").is_some();
        let mut stale = Vec::new();
        for (name, schema) in wire_schemas() {
            let path = json_dir().join(name);
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if bless {
                std::fs::create_dir_all(json_dir()).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "schemas/json is stale for {stale:?}; run `IMI_BLESS=1 cargo test -p imi-schemas`"
        );
    }

    #[test]
    fn generated_schemas_accept_a_real_envelope_and_refuse_a_broken_one() {
        let (_, schema) = wire_schemas().remove(0);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let ok = serde_json::json!({"sender": "FI-VALVIRA", "recipients": ["DE-X"], "payload": {}});
        assert!(validator.is_valid(&ok));
        let broken = serde_json::json!({"recipients": ["DE-X"], "payload": {}, "extra": 1});
        assert!(!validator.is_valid(&broken));
    }
}

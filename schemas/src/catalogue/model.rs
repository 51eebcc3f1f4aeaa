//! The catalogue file format, as written by people.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// `area.yaml`: one legislative area.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaFile {
    /// Short code, e.g. `pq`.
    pub code: String,
    /// The EU act(s) the area rests on, e.g. `Directive 2005/36/EC`.
    pub legal_basis: String,
    /// Name per language code (`en`, `fr`, …).
    pub names: BTreeMap<String, String>,
}

/// One procedure file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcedureFile {
    /// Procedure code, e.g. `pq-information-request`.
    pub code: String,
    /// The area code this procedure belongs to.
    pub area: String,
    /// `request` (1:1), `notification` (1:N), `repository` or `intake`.
    pub kind: String,
    /// Name per language code.
    pub names: BTreeMap<String, String>,
    /// Payload schema versions the hub still accepts.
    pub schema_versions: Vec<u32>,
    /// The states of an exchange of this procedure.
    pub states: Vec<String>,
    /// What each party may do, from which state, with which form.
    pub actions: Vec<ActionFile>,
    /// Coded questions with their answer options (language-neutral codes).
    #[serde(default)]
    pub questions: Vec<QuestionFile>,
}

/// One action of a procedure's workflow.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionFile {
    /// Action code, e.g. `send`.
    pub code: String,
    /// True for the action that opens a new exchange.
    #[serde(default)]
    pub opens: bool,
    /// The role that takes it: `requester` or `responder`.
    pub by: String,
    /// States it may be taken from (empty for the opening action).
    #[serde(default)]
    pub from: Vec<String>,
    /// The state after it.
    pub to: String,
    /// JSON Schema (2020-12) of the payload.
    pub form: serde_json::Value,
}

/// A coded question and its answer options.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionFile {
    pub code: String,
    /// Question text per language code.
    pub labels: BTreeMap<String, String>,
    /// Answer option codes.
    pub answers: Vec<String>,
}

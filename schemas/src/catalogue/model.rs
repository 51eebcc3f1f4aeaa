//! The catalogue file format, as written by people (docs/catalogue-format.md).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// A label in each of the 24 official EU languages, keyed by language code.
pub type Labels = BTreeMap<String, String>;

/// The kind of exchange a procedure runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProcedureKind {
    /// 1:1: a request between two authorities.
    Request,
    /// 1:N: an alert or notification to many recipients.
    Notification,
    /// Entries other authorities consult.
    Repository,
    /// A case submitted through the public interface.
    Intake,
}

impl ProcedureKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Notification => "notification",
            Self::Repository => "repository",
            Self::Intake => "intake",
        }
    }
}

/// The party of an exchange that takes an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The authority that opened the exchange (the originator of a 1:N one).
    Requester,
    /// The authority it was addressed to (any recipient of a 1:N one).
    Responder,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Responder => "responder",
        }
    }
}

/// Who may receive a procedure's opening message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientRule {
    /// Exactly one authority, named by the sender.
    One,
    /// The authorities the sender names.
    Explicit,
    /// Every authority registered for the procedure in the countries named.
    Countries,
    /// Every authority registered for the procedure in every country.
    AllCountries,
    /// Nobody (repositories, intake).
    None,
}

/// `area.yaml`: one legislative area.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "IMI catalogue: legislative area")]
pub struct AreaFile {
    /// Short code, e.g. `pq`.
    pub code: String,
    /// The EU act(s) the area rests on, e.g. `Directive 2005/36/EC`.
    pub legal_basis: String,
    /// Name per language code.
    pub names: Labels,
}

/// `common/vocabulary.yaml`: labels shared by many procedures.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "IMI catalogue: shared vocabulary")]
pub struct VocabularyFile {
    /// Answer option code → labels.
    #[serde(default)]
    pub answers: BTreeMap<String, Labels>,
    /// Form property name → labels.
    #[serde(default)]
    pub fields: BTreeMap<String, Labels>,
}

/// One procedure file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "IMI catalogue: procedure")]
pub struct ProcedureFile {
    /// Procedure code, e.g. `pq-information-request`.
    pub code: String,
    /// The area code this procedure belongs to.
    pub area: String,
    /// `request` (1:1), `notification` (1:N), `repository` or `intake`.
    pub kind: ProcedureKind,
    /// Name per language code.
    pub names: Labels,
    /// Payload schema versions the hub still accepts.
    pub schema_versions: Vec<u32>,
    /// The states of an exchange of this procedure.
    pub states: Vec<String>,
    /// Who may receive the opening message.
    pub recipients: RecipientsFile,
    /// Deadlines the hub tracks.
    #[serde(default)]
    pub deadlines: Vec<DeadlineFile>,
    /// How long personal data is kept after formal closure.
    pub retention: RetentionFile,
    /// JSON pointers (into payloads) of the fields that hold personal data.
    #[serde(default)]
    pub personal_data: Vec<String>,
    /// What each party may do, from which state, with which form.
    pub actions: Vec<ActionFile>,
    /// Coded questions with their answer options (language-neutral codes).
    #[serde(default)]
    pub questions: Vec<QuestionFile>,
    /// This procedure's own answer options (code → labels).
    #[serde(default)]
    pub answers: BTreeMap<String, Labels>,
    /// Labels of this procedure's form properties (name → labels).
    #[serde(default)]
    pub fields: BTreeMap<String, Labels>,
    /// Labels of other coded values in the forms (code → labels).
    #[serde(default)]
    pub codes: BTreeMap<String, Labels>,
}

/// The recipients rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientsFile {
    /// `one`, `explicit`, `countries`, `all-countries` or `none`.
    pub rule: RecipientRule,
    /// The Commission receives it too.
    #[serde(default)]
    pub commission: bool,
}

/// A deadline: runs while the exchange is in `state`, or counts from a date
/// field of the opening payload.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadlineFile {
    pub code: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub after_field: Option<String>,
    pub days: u32,
}

/// Retention after formal closure (Regulation (EU) 1024/2012 Art. 14).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    pub block_after_closure_months: u32,
    pub delete_after_closure_months: u32,
    /// The states of formal closure, from which retention counts. Default:
    /// `closed` and `withdrawn`, those of them the procedure lists.
    #[serde(default)]
    pub closure_states: Option<Vec<String>>,
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
    /// True for an action that hands the exchange to another authority
    /// (forward, refer): the message names it as its one recipient, and it
    /// becomes the responder, under the same exchange id.
    #[serde(default)]
    pub reassigns: bool,
    /// True for an action that moves part of a request to another authority:
    /// the message names it as its one recipient and opens a child exchange
    /// (linked to this one) between the requester and that authority.
    #[serde(default)]
    pub splits: bool,
    /// 1:N only: the action releases the exchange to its recipients. Until
    /// an action with this flag succeeds (and, where the sender's country
    /// requires it, its coordinator validated it), the exchange's messages are
    /// held (a draft): nobody receives them. Then every held message goes to
    /// every recipient, in order.
    #[serde(default)]
    pub broadcasts: bool,
    /// 1:N only: a recipient adds further authorities of its own country (the
    /// message's recipients) to the exchange; they receive everything released
    /// so far.
    #[serde(default)]
    pub disseminates: bool,
    /// The role that takes it: `requester` or `responder`. In a 1:N
    /// procedure the requester is the originator and a responder is any
    /// recipient.
    pub by: Role,
    /// States it may be taken from (empty for the opening action).
    #[serde(default)]
    pub from: Vec<String>,
    /// The state after it.
    pub to: String,
    /// JSON Schema (2020-12) of the payload.
    pub form: serde_json::Value,
    /// A realistic payload; the loader checks it against the form.
    #[serde(default)]
    pub example: Option<serde_json::Value>,
}

/// A coded question and its answer options.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionFile {
    pub code: String,
    /// Question text per language code.
    pub labels: Labels,
    /// Answer option codes.
    pub answers: Vec<String>,
}

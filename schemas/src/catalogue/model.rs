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
    /// Coded values many procedures share (e.g. professions) → labels.
    #[serde(default)]
    pub codes: BTreeMap<String, Labels>,
    /// State code → labels (a case's status, as the official reads it).
    #[serde(default)]
    pub states: BTreeMap<String, Labels>,
    /// Action code → labels.
    #[serde(default)]
    pub actions: BTreeMap<String, Labels>,
}

/// `common/calendars/<COUNTRY>.yaml`: the days a country's authorities do
/// not count as working days.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "IMI catalogue: working-day calendar")]
pub struct CalendarFile {
    /// ISO 3166-1 alpha-2 code (EL for Greece), e.g. `DE`.
    pub country: String,
    /// Weekdays that are never working days.
    pub weekend: Vec<Weekday>,
    /// Public holidays are known up to this date; later, only the weekend
    /// counts.
    pub valid_until: chrono::NaiveDate,
    #[serde(default)]
    pub holidays: Vec<HolidayFile>,
}

/// A day of the week, as calendar files name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<Weekday> for chrono::Weekday {
    fn from(d: Weekday) -> Self {
        match d {
            Weekday::Monday => chrono::Weekday::Mon,
            Weekday::Tuesday => chrono::Weekday::Tue,
            Weekday::Wednesday => chrono::Weekday::Wed,
            Weekday::Thursday => chrono::Weekday::Thu,
            Weekday::Friday => chrono::Weekday::Fri,
            Weekday::Saturday => chrono::Weekday::Sat,
            Weekday::Sunday => chrono::Weekday::Sun,
        }
    }
}

/// One public holiday.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidayFile {
    pub date: chrono::NaiveDate,
    /// Its name in the country's language.
    pub name: String,
}

/// `common/glossary/<lang>.yaml`: the key terms of the official language
/// version of the acts, and the labels that name each concept.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "IMI catalogue: glossary")]
pub struct GlossaryFile {
    pub language: String,
    pub terms: BTreeMap<String, GlossaryTerm>,
}

/// One concept's official term.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GlossaryTerm {
    pub term: String,
    /// The act (and article) the term is taken from.
    pub act: String,
    /// Labels that name the concept: `procedure:<code>`, `area:<code>`,
    /// `code:<CODE>`, `field:<name>` (every label of that field) or
    /// `field:<procedure>/<name>` (one procedure's), `answer:<CODE>`,
    /// `state:<code>`, `action:<code>`.
    #[serde(default)]
    pub labels: Vec<String>,
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
    /// JSON pointers (into payloads, `*` for any array index) of personal
    /// data the free-text rule does not see: names, dates, references.
    #[serde(default)]
    pub personal_data: Vec<String>,
    /// Pointers of answers on suspensions, good standing, disciplinary
    /// measures or convictions (Regulation (EU) 1024/2012 Art. 16).
    #[serde(default)]
    pub special_categories: Vec<String>,
    /// Free text that is not personal data, each with its reason.
    #[serde(default)]
    pub not_personal_data: Vec<NotPersonalFile>,
    /// Labels of this procedure's own states (shared ones: vocabulary).
    #[serde(default)]
    pub state_labels: BTreeMap<String, Labels>,
    /// Labels of this procedure's own actions (shared ones: vocabulary).
    #[serde(default)]
    pub action_labels: BTreeMap<String, Labels>,
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

/// A free-text field that is not personal data.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotPersonalFile {
    /// A pointer into payloads (`*` for any array index).
    pub field: String,
    pub reason: String,
}

/// A deadline (docs/catalogue-format.md, "Deadlines"): runs while the
/// exchange is in `state`/`states`, from an event, or counts from a date
/// field of the opening payload.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadlineFile {
    pub code: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub states: Option<Vec<String>>,
    #[serde(default)]
    pub after_field: Option<String>,
    /// The event it counts from (default: entering the state).
    #[serde(default)]
    pub starts: Option<DeadlineEvent>,
    #[serde(default)]
    pub period: Option<PeriodFile>,
    /// Short for `period: {days: N}`.
    #[serde(default)]
    pub days: Option<u32>,
    /// Due by the agreed answer date when there is one.
    #[serde(default)]
    pub agreed_date: bool,
    #[serde(default)]
    pub more_information: Option<ClockRule>,
    /// Applies only when this boolean field of the opening payload is true.
    #[serde(default)]
    pub if_field: Option<String>,
    /// Where the deadline comes from; the loader requires it.
    #[serde(default)]
    pub source: Option<SourceOfDeadline>,
    /// What missing it means in law (a code with labels).
    #[serde(default)]
    pub consequence: Option<String>,
}

/// Exactly one of its fields.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodFile {
    #[serde(default)]
    pub days: Option<u32>,
    #[serde(default)]
    pub working_days: Option<u32>,
    #[serde(default)]
    pub weeks: Option<u32>,
    #[serde(default)]
    pub months: Option<u32>,
}

/// A legal act and article, or a default with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum SourceOfDeadline {
    Act { act: String, article: String },
    Default { default: String },
}

/// An event a deadline may count from, and that an action may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineEvent {
    /// The opening message (implicit: every opening action is it).
    RequestReceived,
    Acceptance,
    DocumentsRequested,
    DocumentsReceived,
    Decision,
    MoreInformationRequested,
    MoreInformationReceived,
}

impl DeadlineEvent {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RequestReceived => "request-received",
            Self::Acceptance => "acceptance",
            Self::DocumentsRequested => "documents-requested",
            Self::DocumentsReceived => "documents-received",
            Self::Decision => "decision",
            Self::MoreInformationRequested => "more-information-requested",
            Self::MoreInformationReceived => "more-information-received",
        }
    }
}

/// What a request for more information does to a running clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClockRule {
    /// It stops, and resumes with the time left on receipt.
    Stop,
    /// It starts again, with the whole period, on receipt.
    Restart,
    /// It runs on.
    #[default]
    None,
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
    /// Overrides `delete_after_closure_months` where an act sets a shorter
    /// period in days (e.g. a PQ alert's data within 3 days of its
    /// revocation or expiry, Directive 2005/36/EC Art. 56a(7)).
    #[serde(default)]
    pub delete_after_closure_days: Option<u32>,
    /// A date field of the payloads: the exchange is formally closed at the
    /// end of that date (the latest message carrying it decides), e.g. when
    /// the restriction an alert reports expires.
    #[serde(default)]
    pub expires_with: Option<String>,
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
    /// The events this action is, for deadlines (docs/catalogue-format.md).
    #[serde(default)]
    pub marks: Vec<DeadlineEvent>,
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

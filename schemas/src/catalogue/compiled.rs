//! The loaded catalogue: its procedures with compiled forms, and what the
//! hub asks of it. Loading and checking are in `check.rs` and `compile.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Months, Utc};
use jsonschema::Validator;

use super::deadline::{Calendar, Deadline};
use super::error::CatalogueError;
use super::model::{DeadlineEvent, Labels, VocabularyFile};
pub use super::model::{ProcedureKind, RecipientRule, Role};
use crate::ids::{ActionCode, AreaCode, MessageType, ProcedureCode};
use crate::protocol::FieldError;

/// The 24 official languages of the EU, as ISO 639-1 codes.
pub const LANGUAGES: [&str; 24] = [
    "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "it", "lt", "lv",
    "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv",
];

/// How many field errors a rejection lists at most: enough to fix a message,
/// bounded so a hostile payload cannot make the answer huge.
pub(super) const MAX_FIELD_ERRORS: usize = 20;

/// The state a 1:N exchange waits in while the sender's national coordinator
/// validates it, for procedures that list it (national gatekeeping).
pub const VALIDATION_STATE: &str = "awaiting-validation";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub block_after_closure_months: u32,
    pub delete_after_closure_months: u32,
    /// Overrides the months of deletion where an act sets days.
    pub delete_after_closure_days: Option<u32>,
}

impl Retention {
    /// When personal data closed at `closed` is deleted.
    pub fn delete_at(&self, closed: DateTime<Utc>) -> DateTime<Utc> {
        match self.delete_after_closure_days {
            Some(days) => closed + chrono::Duration::days(i64::from(days)),
            None => closed + Months::new(self.delete_after_closure_months),
        }
    }

    /// When it is blocked from normal use (at the latest when deleted).
    pub fn block_at(&self, closed: DateTime<Utc>) -> DateTime<Utc> {
        (closed + Months::new(self.block_after_closure_months)).min(self.delete_at(closed))
    }

    /// `36 months`, or `3 days` where an act sets days.
    pub fn deletion_period(&self) -> String {
        match self.delete_after_closure_days {
            Some(days) => format!("{days} days"),
            None => format!("{} months", self.delete_after_closure_months),
        }
    }
}

/// One action with its compiled form.
#[derive(Debug)]
pub struct Action {
    pub code: ActionCode,
    pub opens: bool,
    /// Hands the exchange to the message's recipient (forward, refer).
    pub reassigns: bool,
    /// Opens a child exchange with the message's recipient (split).
    pub splits: bool,
    /// 1:N: releases the held exchange to its recipients.
    pub broadcasts: bool,
    /// 1:N: a recipient adds authorities of its own country.
    pub disseminates: bool,
    /// The events this action is, for deadlines (`request-received` for the
    /// opening action).
    pub events: Vec<DeadlineEvent>,
    pub by: Role,
    pub from: Vec<String>,
    pub to: String,
    /// The form as written (for generated JSON Schema files).
    pub form_schema: serde_json::Value,
    pub example: Option<serde_json::Value>,
    pub(super) form: Validator,
}

impl Action {
    /// Validates a payload; errors point into the envelope (`/payload/...`).
    pub fn validate(&self, payload: &serde_json::Value) -> Result<(), Vec<FieldError>> {
        if self.form.is_valid(payload) {
            return Ok(());
        }
        Err(self
            .form
            .iter_errors(payload)
            .take(MAX_FIELD_ERRORS)
            .map(|e| FieldError {
                pointer: format!("/payload{}", e.instance_path.as_str()),
                detail: e.to_string(),
            })
            .collect())
    }

    /// Is the payload valid? (No error details: the fast path.)
    pub fn is_valid(&self, payload: &serde_json::Value) -> bool {
        self.form.is_valid(payload)
    }

    pub fn events(&self) -> &[DeadlineEvent] {
        &self.events
    }

    pub fn allowed_from(&self, state: &str) -> bool {
        self.from.iter().any(|s| s == state)
    }
}

/// A coded question.
#[derive(Debug, Clone)]
pub struct Question {
    pub code: String,
    pub labels: Labels,
    pub answers: Vec<String>,
}

/// One procedure of the catalogue.
#[derive(Debug)]
pub struct Procedure {
    pub code: ProcedureCode,
    pub area: AreaCode,
    pub kind: ProcedureKind,
    pub names: Labels,
    pub schema_versions: Vec<u32>,
    pub states: Vec<String>,
    pub recipients: RecipientRule,
    pub commission: bool,
    pub deadlines: Vec<Deadline>,
    pub retention: Retention,
    /// States of formal closure: entering one starts the retention period.
    pub closure_states: Vec<String>,
    /// A date field whose date, once passed, formally closes the exchange.
    pub expires_with: Option<String>,
    /// Pointers (`*` for any array index) of personal data: those listed
    /// and every free-text field not named as not personal.
    pub personal_data: Vec<String>,
    /// Answers on suspensions, good standing, disciplinary measures or
    /// convictions (Regulation (EU) 1024/2012 Art. 16).
    pub special_categories: Vec<String>,
    /// Free-text fields that are not personal data: (pointer, reason).
    pub not_personal_data: Vec<(String, String)>,
    /// Where payloads name a person (by rule, from `personal_data`): what
    /// a data subject's search matches.
    pub identifying: Vec<super::IdentifyingFields>,
    pub state_labels: BTreeMap<String, Labels>,
    pub action_labels: BTreeMap<String, Labels>,
    pub questions: Vec<Question>,
    pub answers: BTreeMap<String, Labels>,
    pub fields: BTreeMap<String, Labels>,
    pub codes: BTreeMap<String, Labels>,
    pub(super) actions: Vec<Action>,
}

impl Procedure {
    pub fn action(&self, code: &ActionCode) -> Option<&Action> {
        self.actions.iter().find(|a| &a.code == code)
    }
    /// Actions in the order the file declares them.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter()
    }
    /// The state the opening action leads to (where a child exchange starts).
    pub fn opening_state(&self) -> Option<&str> {
        self.actions.iter().find(|a| a.opens).map(|a| a.to.as_str())
    }

    /// Does entering `state` formally close the exchange?
    pub fn closes_in(&self, state: &str) -> bool {
        self.closure_states.iter().any(|s| s == state)
    }

    pub fn accepts_version(&self, version: u32) -> bool {
        self.schema_versions.contains(&version)
    }
}

/// One legislative area.
#[derive(Debug, Clone)]
pub struct Area {
    pub code: AreaCode,
    pub legal_basis: String,
    pub names: Labels,
}

/// What checking a catalogue found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub areas: usize,
    pub procedures: usize,
    /// Languages in which every label of the catalogue exists.
    pub languages_complete: usize,
    pub errors: Vec<CatalogueError>,
}

/// The whole catalogue, immutable once loaded; the hub swaps it as a whole.
#[derive(Debug, Default)]
pub struct Catalogue {
    pub(super) areas: BTreeMap<AreaCode, Area>,
    pub(super) procedures: BTreeMap<ProcedureCode, Procedure>,
    pub(super) vocabulary: VocabularyFile,
    /// Working-day calendars by country code.
    pub(super) calendars: BTreeMap<String, Calendar>,
}

impl Catalogue {
    pub fn procedure(&self, code: &ProcedureCode) -> Option<&Procedure> {
        self.procedures.get(code)
    }

    /// The procedure and action a message type names.
    pub fn resolve(&self, message_type: &MessageType) -> Option<(&Procedure, &Action)> {
        let p = self.procedures.get(&message_type.procedure)?;
        Some((p, p.action(&message_type.action)?))
    }

    /// Procedures in code order.
    pub fn procedures(&self) -> impl Iterator<Item = &Procedure> {
        self.procedures.values()
    }

    /// Areas in code order.
    pub fn areas(&self) -> impl Iterator<Item = &Area> {
        self.areas.values()
    }

    pub fn area_count(&self) -> usize {
        self.areas.len()
    }

    /// The label of a form property in `lang`: the procedure's own, else the
    /// shared vocabulary's.
    pub fn field_label<'a>(
        &'a self,
        procedure: &'a Procedure,
        name: &str,
        lang: &str,
    ) -> Option<&'a str> {
        procedure
            .fields
            .get(name)
            .or_else(|| self.vocabulary.fields.get(name))
            .and_then(|l| l.get(lang))
            .map(String::as_str)
    }

    /// The working days of `country` (Monday to Friday where the catalogue
    /// has no calendar for it).
    pub fn calendar(&self, country: &str) -> Calendar {
        self.calendars.get(country).cloned().unwrap_or_default()
    }

    /// Countries with a calendar, and each calendar.
    pub fn calendars(&self) -> impl Iterator<Item = (&String, &Calendar)> {
        self.calendars.iter()
    }

    /// A state's label in `lang` (the procedure's own, else the shared one).
    pub fn state_label<'a>(
        &'a self,
        procedure: &'a Procedure,
        state: &str,
        lang: &str,
    ) -> Option<&'a str> {
        procedure
            .state_labels
            .get(state)
            .or_else(|| self.vocabulary.states.get(state))
            .and_then(|l| l.get(lang))
            .map(String::as_str)
    }

    /// An action's label in `lang` (the procedure's own, else the shared one).
    pub fn action_label<'a>(
        &'a self,
        procedure: &'a Procedure,
        action: &str,
        lang: &str,
    ) -> Option<&'a str> {
        procedure
            .action_labels
            .get(action)
            .or_else(|| self.vocabulary.actions.get(action))
            .and_then(|l| l.get(lang))
            .map(String::as_str)
    }

    /// The label of a coded value in `lang`: a question, an answer option
    /// (procedure's or shared) or another code.
    pub fn code_label<'a>(
        &'a self,
        procedure: &'a Procedure,
        code: &str,
        lang: &str,
    ) -> Option<&'a str> {
        procedure
            .questions
            .iter()
            .find(|q| q.code == code)
            .map(|q| &q.labels)
            .or_else(|| procedure.answers.get(code))
            .or_else(|| self.vocabulary.answers.get(code))
            .or_else(|| procedure.codes.get(code))
            .or_else(|| self.vocabulary.codes.get(code))
            .and_then(|l| l.get(lang))
            .map(String::as_str)
    }
}

//! The loaded catalogue: parsed, cross-checked, validators compiled.

use std::collections::{BTreeMap, BTreeSet};

use jsonschema::{Draft, Validator};

use super::error::{CatalogueError, CatalogueErrors};
use super::model::{AreaFile, Labels, ProcedureFile, VocabularyFile};
use super::SourceFile;
use crate::ids::{ActionCode, AreaCode, MessageType, ProcedureCode};
use crate::protocol::FieldError;

/// The 24 official languages of the EU, as ISO 639-1 codes.
pub const LANGUAGES: [&str; 24] = [
    "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "it", "lt", "lv",
    "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv",
];

/// How many field errors a rejection lists at most: enough to fix a message,
/// bounded so a hostile payload cannot make the answer huge.
const MAX_FIELD_ERRORS: usize = 20;

/// The kind of exchange a procedure runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcedureKind {
    Request,
    Notification,
    Repository,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The authority that opened the exchange.
    Requester,
    /// The authority it was addressed to.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientRule {
    One,
    Explicit,
    Countries,
    AllCountries,
    None,
}

/// The state a 1:N exchange waits in while the sender's national coordinator
/// validates it, for procedures that list it (national gatekeeping).
pub const VALIDATION_STATE: &str = "awaiting-validation";

/// When a deadline starts counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadlineStart {
    /// On entering this state; runs while the exchange stays in it.
    State(String),
    /// From the date in this field of the opening payload.
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub code: String,
    pub start: DeadlineStart,
    pub days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub block_after_closure_months: u32,
    pub delete_after_closure_months: u32,
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
    pub by: Role,
    pub from: Vec<String>,
    pub to: String,
    /// The form as written (for generated JSON Schema files).
    pub form_schema: serde_json::Value,
    pub example: Option<serde_json::Value>,
    form: Validator,
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
    pub personal_data: Vec<String>,
    pub questions: Vec<Question>,
    pub answers: BTreeMap<String, Labels>,
    pub fields: BTreeMap<String, Labels>,
    pub codes: BTreeMap<String, Labels>,
    actions: Vec<Action>,
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
    areas: BTreeMap<AreaCode, Area>,
    procedures: BTreeMap<ProcedureCode, Procedure>,
    vocabulary: VocabularyFile,
}

/// Collects errors, and the languages with at least one gap.
struct Checker {
    errors: Vec<CatalogueError>,
    gaps: BTreeSet<&'static str>,
}

impl Checker {
    fn err(&mut self, file: &str, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(CatalogueError {
            file: file.to_owned(),
            path: path.into(),
            message: message.into(),
        });
    }

    fn labels(&mut self, file: &str, path: &str, labels: &Labels) {
        for lang in LANGUAGES {
            if labels.get(lang).is_none_or(|l| l.trim().is_empty()) {
                self.gaps.insert(lang);
                self.err(file, path, format!("label missing in `{lang}`"));
            }
        }
        for key in labels.keys() {
            if !LANGUAGES.contains(&key.as_str()) {
                self.err(
                    file,
                    path,
                    format!("`{key}` is not one of the 24 official languages"),
                );
            }
        }
    }

    /// Checks a file's shape against the generated JSON Schema of its type,
    /// so every error has a path inside the file.
    fn shape<T: serde::de::DeserializeOwned>(
        &mut self,
        file: &SourceFile,
        validator: &Validator,
    ) -> Option<T> {
        let value: serde_json::Value = match serde_yaml::from_str(&file.text) {
            Ok(v) => v,
            Err(e) => {
                let at = e
                    .location()
                    .map(|l| format!("line {} column {}", l.line(), l.column()))
                    .unwrap_or_else(|| "$".into());
                self.err(&file.path, at, format!("not valid YAML: {e}"));
                return None;
            }
        };
        let mut shaped = true;
        for e in validator.iter_errors(&value).take(MAX_FIELD_ERRORS) {
            shaped = false;
            let at = e.instance_path.as_str();
            self.err(
                &file.path,
                if at.is_empty() { "$" } else { at },
                e.to_string(),
            );
        }
        if !shaped {
            return None;
        }
        match serde_json::from_value(value) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(&file.path, "$", e.to_string());
                None
            }
        }
    }
}

fn format_validator<T: schemars::JsonSchema>() -> Validator {
    let schema = schemars::schema_for!(T).to_value();
    jsonschema::validator_for(&schema).expect("generated catalogue schemas are valid")
}

impl Catalogue {
    /// Parses and cross-checks catalogue files: `area.yaml` files declare
    /// areas, `vocabulary.yaml` the shared labels, every other file a
    /// procedure. Reports every error found.
    pub fn parse(files: &[SourceFile]) -> Result<Self, CatalogueErrors> {
        let (catalogue, report) = Self::check(files);
        if report.errors.is_empty() {
            Ok(catalogue)
        } else {
            Err(CatalogueErrors(report.errors))
        }
    }

    /// Like [`Catalogue::parse`], but returns what could be loaded together
    /// with the report (for `imi-hub catalogue check`).
    pub fn check(files: &[SourceFile]) -> (Self, CheckReport) {
        let mut ck = Checker {
            errors: Vec::new(),
            gaps: BTreeSet::new(),
        };
        let mut catalogue = Catalogue::default();
        let is = |f: &SourceFile, name: &str| f.path.rsplit(['/', '\\']).next() == Some(name);

        let vocabulary_validator = format_validator::<VocabularyFile>();
        for file in files.iter().filter(|f| is(f, "vocabulary.yaml")) {
            if let Some(v) = ck.shape::<VocabularyFile>(file, &vocabulary_validator) {
                for (code, labels) in &v.answers {
                    ck.labels(&file.path, &format!("answers.{code}"), labels);
                }
                for (name, labels) in &v.fields {
                    ck.labels(&file.path, &format!("fields.{name}"), labels);
                }
                catalogue.vocabulary.answers.extend(v.answers);
                catalogue.vocabulary.fields.extend(v.fields);
            }
        }

        let area_validator = format_validator::<AreaFile>();
        for file in files.iter().filter(|f| is(f, "area.yaml")) {
            let Some(area) = ck.shape::<AreaFile>(file, &area_validator) else {
                continue;
            };
            ck.labels(&file.path, "names", &area.names);
            match AreaCode::try_from(area.code.as_str()) {
                Ok(code) if catalogue.areas.contains_key(&code) => ck.err(
                    &file.path,
                    "code",
                    format!("area `{code}` is declared twice"),
                ),
                Ok(code) => {
                    catalogue.areas.insert(
                        code.clone(),
                        Area {
                            code,
                            legal_basis: area.legal_basis,
                            names: area.names,
                        },
                    );
                }
                Err(e) => ck.err(&file.path, "code", e.to_string()),
            }
        }

        let procedure_validator = format_validator::<ProcedureFile>();
        for file in files
            .iter()
            .filter(|f| !is(f, "area.yaml") && !is(f, "vocabulary.yaml"))
        {
            let Some(raw) = ck.shape::<ProcedureFile>(file, &procedure_validator) else {
                continue;
            };
            let before = ck.errors.len();
            let procedure = compile_procedure(&file.path, raw, &catalogue, &mut ck);
            if let Some(p) = procedure.filter(|_| ck.errors.len() == before) {
                if catalogue.procedures.contains_key(&p.code) {
                    ck.err(
                        &file.path,
                        "code",
                        format!("procedure `{}` is declared twice", p.code),
                    );
                } else {
                    catalogue.procedures.insert(p.code.clone(), p);
                }
            }
        }

        let report = CheckReport {
            areas: catalogue.areas.len(),
            procedures: catalogue.procedures.len(),
            languages_complete: LANGUAGES.len() - ck.gaps.len(),
            errors: ck.errors,
        };
        (catalogue, report)
    }

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
            .and_then(|l| l.get(lang))
            .map(String::as_str)
    }
}

/// Property names and string enum values of a form, found anywhere in it.
fn walk_form(
    schema: &serde_json::Value,
    properties: &mut BTreeSet<String>,
    values: &mut BTreeSet<String>,
) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            properties.insert(name.clone());
            walk_form(sub, properties, values);
        }
    }
    for v in obj
        .get("enum")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(s) = v.as_str() {
            values.insert(s.to_owned());
        }
    }
    if let Some(s) = obj.get("const").and_then(|c| c.as_str()) {
        values.insert(s.to_owned());
    }
    for key in ["items", "additionalProperties", "not", "if", "then", "else"] {
        if let Some(sub) = obj.get(key) {
            walk_form(sub, properties, values);
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        for sub in obj
            .get(key)
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            walk_form(sub, properties, values);
        }
    }
    for sub in obj
        .get("$defs")
        .and_then(|d| d.as_object())
        .into_iter()
        .flatten()
    {
        walk_form(sub.1, properties, values);
    }
}

fn compile_procedure(
    file: &str,
    raw: ProcedureFile,
    catalogue: &Catalogue,
    ck: &mut Checker,
) -> Option<Procedure> {
    let code = ProcedureCode::try_from(raw.code.as_str())
        .map_err(|e| ck.err(file, "code", e.to_string()))
        .ok();
    let area = match AreaCode::try_from(raw.area.as_str()) {
        Ok(a) if catalogue.areas.contains_key(&a) => Some(a),
        Ok(a) => {
            ck.err(
                file,
                "area",
                format!("unknown area `{a}` (no area.yaml declares it)"),
            );
            None
        }
        Err(e) => {
            ck.err(file, "area", e.to_string());
            None
        }
    };
    let kind = match raw.kind.as_str() {
        "request" => Some(ProcedureKind::Request),
        "notification" => Some(ProcedureKind::Notification),
        "repository" => Some(ProcedureKind::Repository),
        "intake" => Some(ProcedureKind::Intake),
        other => {
            ck.err(
                file,
                "kind",
                format!("unknown kind `{other}` (request, notification, repository, intake)"),
            );
            None
        }
    };
    let recipients = match raw.recipients.rule.as_str() {
        "one" => Some(RecipientRule::One),
        "explicit" => Some(RecipientRule::Explicit),
        "countries" => Some(RecipientRule::Countries),
        "all-countries" => Some(RecipientRule::AllCountries),
        "none" => Some(RecipientRule::None),
        other => {
            ck.err(
                file,
                "recipients.rule",
                format!("unknown rule `{other}` (one, explicit, countries, all-countries, none)"),
            );
            None
        }
    };
    if raw.schema_versions.is_empty() {
        ck.err(file, "schema_versions", "lists no version");
    }
    ck.labels(file, "names", &raw.names);

    let known_state = |s: &str| raw.states.iter().any(|x| x == s);
    let mut deadlines = Vec::new();
    for (i, d) in raw.deadlines.iter().enumerate() {
        let start = match (&d.state, &d.after_field) {
            (Some(s), None) if known_state(s) => Some(DeadlineStart::State(s.clone())),
            (Some(s), None) => {
                ck.err(
                    file,
                    format!("deadlines[{i}].state"),
                    format!("unknown state `{s}`"),
                );
                None
            }
            (None, Some(f)) => Some(DeadlineStart::Field(f.clone())),
            _ => {
                ck.err(
                    file,
                    format!("deadlines[{i}]"),
                    "needs exactly one of `state` and `after_field`",
                );
                None
            }
        };
        if let Some(start) = start {
            deadlines.push(Deadline {
                code: d.code.clone(),
                start,
                days: d.days,
            });
        }
    }

    let closure_states: Vec<String> = match &raw.retention.closure_states {
        Some(states) => {
            for s in states.iter().filter(|s| !known_state(s)) {
                ck.err(
                    file,
                    "retention.closure_states",
                    format!("unknown state `{s}`"),
                );
            }
            states.clone()
        }
        None => ["closed", "withdrawn"]
            .into_iter()
            .filter(|s| known_state(s))
            .map(str::to_owned)
            .collect(),
    };

    for (code, labels) in &raw.answers {
        ck.labels(file, &format!("answers.{code}"), labels);
    }
    for (name, labels) in &raw.fields {
        ck.labels(file, &format!("fields.{name}"), labels);
    }
    for (code, labels) in &raw.codes {
        ck.labels(file, &format!("codes.{code}"), labels);
    }
    let known_answer =
        |a: &str| raw.answers.contains_key(a) || catalogue.vocabulary.answers.contains_key(a);
    for (i, q) in raw.questions.iter().enumerate() {
        ck.labels(file, &format!("questions[{i}].labels"), &q.labels);
        for a in &q.answers {
            if !known_answer(a) {
                ck.err(
                    file,
                    format!("questions[{i}].answers"),
                    format!("unknown answer option `{a}`"),
                );
            }
        }
    }

    let mut actions: Vec<Action> = Vec::new();
    let mut openers = 0;
    let mut properties = BTreeSet::new();
    let mut values = BTreeSet::new();
    for (i, a) in raw.actions.into_iter().enumerate() {
        let at = |field: &str| format!("actions[{i}].{field}");
        walk_form(&a.form, &mut properties, &mut values);
        let action_code = match ActionCode::try_from(a.code.as_str()) {
            Ok(c) => c,
            Err(e) => {
                ck.err(file, at("code"), e.to_string());
                continue;
            }
        };
        let by = match a.by.as_str() {
            "requester" => Role::Requester,
            "responder" => Role::Responder,
            other => {
                ck.err(
                    file,
                    at("by"),
                    format!("unknown role `{other}` (requester, responder)"),
                );
                continue;
            }
        };
        for s in a.from.iter().chain(std::iter::once(&a.to)) {
            if !known_state(s) {
                ck.err(file, at("from/to"), format!("unknown state `{s}`"));
            }
        }
        if (a.reassigns || a.splits)
            && (a.opens || by != Role::Responder || (a.reassigns && a.splits))
        {
            ck.err(
                file,
                at("reassigns"),
                "only a responder's follow-up action can hand the exchange on",
            );
        }
        let one_to_many = kind == Some(ProcedureKind::Notification);
        if (a.broadcasts || a.disseminates) && !one_to_many {
            ck.err(
                file,
                at("broadcasts"),
                "only a notification (1:N) procedure broadcasts or disseminates",
            );
        }
        if a.disseminates && (a.opens || by != Role::Responder || a.broadcasts) {
            ck.err(
                file,
                at("disseminates"),
                "dissemination is a recipient's (responder's) follow-up action",
            );
        }
        if a.broadcasts && by != Role::Requester {
            ck.err(file, at("broadcasts"), "only the originator broadcasts");
        }
        if a.opens {
            openers += 1;
            if !a.from.is_empty() {
                ck.err(file, at("from"), "an opening action has no `from` states");
            }
        } else if a.from.is_empty() {
            ck.err(file, at("from"), "a follow-up action needs `from` states");
        }
        let form = match jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&a.form)
        {
            Ok(v) => v,
            Err(e) => {
                ck.err(file, at("form"), format!("not a valid JSON Schema: {e}"));
                continue;
            }
        };
        if let Some(example) = &a.example {
            for e in form.iter_errors(example).take(5) {
                ck.err(
                    file,
                    at("example"),
                    format!(
                        "does not match the form at `{}`: {e}",
                        e.instance_path.as_str()
                    ),
                );
            }
        }
        if actions.iter().any(|x| x.code == action_code) {
            ck.err(
                file,
                at("code"),
                format!("action `{action_code}` is declared twice"),
            );
            continue;
        }
        actions.push(Action {
            code: action_code,
            opens: a.opens,
            reassigns: a.reassigns,
            splits: a.splits,
            broadcasts: a.broadcasts,
            disseminates: a.disseminates,
            by,
            from: a.from,
            to: a.to,
            form_schema: a.form,
            example: a.example,
            form,
        });
    }
    if kind == Some(ProcedureKind::Notification) && !actions.iter().any(|a| a.broadcasts) {
        ck.err(
            file,
            "actions",
            "a notification needs an action that broadcasts (else nobody ever receives it)",
        );
    }
    // A notification may open either at once (broadcast) or as a draft.
    let many_openers = kind == Some(ProcedureKind::Notification) && openers == 2;
    if openers != 1 && !many_openers {
        ck.err(
            file,
            "actions",
            format!("needs exactly one opening action, found {openers}"),
        );
    }

    // Everything in a form can be rendered in every language.
    for name in &properties {
        if !raw.fields.contains_key(name) && !catalogue.vocabulary.fields.contains_key(name) {
            ck.err(file, "fields", format!("no label for form field `{name}`"));
        }
    }
    let question_codes: BTreeSet<&str> = raw.questions.iter().map(|q| q.code.as_str()).collect();
    for value in &values {
        let labelled = question_codes.contains(value.as_str())
            || known_answer(value)
            || raw.codes.contains_key(value);
        if !labelled {
            ck.err(file, "codes", format!("no label for coded value `{value}`"));
        }
    }
    for pointer in &raw.personal_data {
        let last = pointer
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        if !properties.contains(last) {
            ck.err(
                file,
                "personal_data",
                format!("`{pointer}` names no property of any form"),
            );
        }
    }
    for d in &deadlines {
        if let DeadlineStart::Field(f) = &d.start {
            if !properties.contains(f) {
                ck.err(
                    file,
                    "deadlines",
                    format!("`{}` counts from `{f}`, which no form has", d.code),
                );
            }
        }
    }

    Some(Procedure {
        code: code?,
        area: area?,
        kind: kind?,
        names: raw.names,
        schema_versions: raw.schema_versions,
        states: raw.states,
        recipients: recipients?,
        commission: raw.recipients.commission,
        deadlines,
        retention: Retention {
            block_after_closure_months: raw.retention.block_after_closure_months,
            delete_after_closure_months: raw.retention.delete_after_closure_months,
        },
        closure_states,
        personal_data: raw.personal_data,
        questions: raw
            .questions
            .into_iter()
            .map(|q| Question {
                code: q.code,
                labels: q.labels,
                answers: q.answers,
            })
            .collect(),
        answers: raw.answers,
        fields: raw.fields,
        codes: raw.codes,
        actions,
    })
}

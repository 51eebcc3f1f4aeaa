//! The loaded catalogue: parsed, cross-checked, validators compiled.

use std::collections::HashMap;

use jsonschema::{Draft, Validator};

use super::error::{CatalogueError, CatalogueErrors};
use super::model::{AreaFile, ProcedureFile};
use super::SourceFile;
use crate::ids::{ActionCode, AreaCode, MessageType, ProcedureCode};
use crate::protocol::FieldError;

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

/// One action with its compiled form.
#[derive(Debug)]
pub struct Action {
    pub code: ActionCode,
    pub opens: bool,
    pub by: Role,
    pub from: Vec<String>,
    pub to: String,
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

    pub fn allowed_from(&self, state: &str) -> bool {
        self.from.iter().any(|s| s == state)
    }
}

/// One procedure of the catalogue.
#[derive(Debug)]
pub struct Procedure {
    pub code: ProcedureCode,
    pub area: AreaCode,
    pub kind: ProcedureKind,
    pub names: std::collections::BTreeMap<String, String>,
    pub schema_versions: Vec<u32>,
    pub states: Vec<String>,
    actions: HashMap<ActionCode, Action>,
}

impl Procedure {
    pub fn action(&self, code: &ActionCode) -> Option<&Action> {
        self.actions.get(code)
    }
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.values()
    }
    pub fn accepts_version(&self, version: u32) -> bool {
        self.schema_versions.contains(&version)
    }
}

/// The whole catalogue, immutable once loaded; the hub swaps it as a whole.
#[derive(Debug, Default)]
pub struct Catalogue {
    areas: HashMap<AreaCode, AreaFile>,
    procedures: HashMap<ProcedureCode, Procedure>,
}

impl Catalogue {
    /// Parses and cross-checks catalogue files. `area.yaml` files declare areas,
    /// every other file a procedure. Reports every error found.
    pub fn parse(files: &[SourceFile]) -> Result<Self, CatalogueErrors> {
        let mut errors = Vec::new();
        let mut catalogue = Catalogue::default();
        let err = |file: &str, path: &str, message: String| CatalogueError {
            file: file.to_owned(),
            path: path.to_owned(),
            message,
        };

        let (area_files, procedure_files): (Vec<_>, Vec<_>) = files
            .iter()
            .partition(|f| f.path.ends_with("area.yaml") || f.path.ends_with("area.yml"));

        for file in area_files {
            match serde_yaml::from_str::<AreaFile>(&file.text) {
                Ok(area) => match AreaCode::try_from(area.code.as_str()) {
                    Ok(code) => {
                        catalogue.areas.insert(code, area);
                    }
                    Err(e) => errors.push(err(&file.path, "code", e.to_string())),
                },
                Err(e) => errors.push(err(&file.path, &yaml_location(&e), e.to_string())),
            }
        }

        for file in procedure_files {
            let raw = match serde_yaml::from_str::<ProcedureFile>(&file.text) {
                Ok(raw) => raw,
                Err(e) => {
                    errors.push(err(&file.path, &yaml_location(&e), e.to_string()));
                    continue;
                }
            };
            match compile_procedure(&file.path, raw, &catalogue) {
                Ok(p) => {
                    if catalogue.procedures.contains_key(&p.code) {
                        errors.push(err(
                            &file.path,
                            "code",
                            format!("procedure `{}` is declared twice", p.code),
                        ));
                    } else {
                        catalogue.procedures.insert(p.code.clone(), p);
                    }
                }
                Err(mut es) => errors.append(&mut es),
            }
        }

        if errors.is_empty() {
            Ok(catalogue)
        } else {
            Err(CatalogueErrors(errors))
        }
    }

    pub fn procedure(&self, code: &ProcedureCode) -> Option<&Procedure> {
        self.procedures.get(code)
    }

    /// The procedure and action a message type names.
    pub fn resolve(&self, message_type: &MessageType) -> Option<(&Procedure, &Action)> {
        let p = self.procedures.get(&message_type.procedure)?;
        Some((p, p.action(&message_type.action)?))
    }

    pub fn procedures(&self) -> impl Iterator<Item = &Procedure> {
        self.procedures.values()
    }

    pub fn area_count(&self) -> usize {
        self.areas.len()
    }
}

fn yaml_location(e: &serde_yaml::Error) -> String {
    e.location()
        .map(|l| format!("line {} column {}", l.line(), l.column()))
        .unwrap_or_else(|| "$".to_owned())
}

fn compile_procedure(
    file: &str,
    raw: ProcedureFile,
    catalogue: &Catalogue,
) -> Result<Procedure, Vec<CatalogueError>> {
    let mut errors = Vec::new();
    let mut push = |path: String, message: String| {
        errors.push(CatalogueError {
            file: file.to_owned(),
            path,
            message,
        })
    };

    let code = ProcedureCode::try_from(raw.code.as_str());
    if let Err(e) = &code {
        push("code".into(), e.to_string());
    }
    let area = AreaCode::try_from(raw.area.as_str());
    match &area {
        Ok(a) if !catalogue.areas.contains_key(a) => push(
            "area".into(),
            format!("unknown area `{a}` (no area.yaml declares it)"),
        ),
        Err(e) => push("area".into(), e.to_string()),
        _ => {}
    }
    let kind = match raw.kind.as_str() {
        "request" => Some(ProcedureKind::Request),
        "notification" => Some(ProcedureKind::Notification),
        "repository" => Some(ProcedureKind::Repository),
        "intake" => Some(ProcedureKind::Intake),
        other => {
            push(
                "kind".into(),
                format!("unknown kind `{other}` (request, notification, repository, intake)"),
            );
            None
        }
    };
    if raw.schema_versions.is_empty() {
        push("schema_versions".into(), "lists no version".into());
    }

    let mut actions = HashMap::new();
    let mut openers = 0;
    for (i, a) in raw.actions.into_iter().enumerate() {
        let at = |field: &str| format!("actions[{i}].{field}");
        let action_code = match ActionCode::try_from(a.code.as_str()) {
            Ok(c) => c,
            Err(e) => {
                push(at("code"), e.to_string());
                continue;
            }
        };
        let by = match a.by.as_str() {
            "requester" => Role::Requester,
            "responder" => Role::Responder,
            other => {
                push(
                    at("by"),
                    format!("unknown role `{other}` (requester, responder)"),
                );
                continue;
            }
        };
        for s in a.from.iter().chain(std::iter::once(&a.to)) {
            if !raw.states.contains(s) {
                push(at("from/to"), format!("unknown state `{s}`"));
            }
        }
        if a.opens {
            openers += 1;
            if !a.from.is_empty() {
                push(at("from"), "an opening action has no `from` states".into());
            }
        } else if a.from.is_empty() {
            push(at("from"), "a follow-up action needs `from` states".into());
        }
        let form = match jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&a.form)
        {
            Ok(v) => v,
            Err(e) => {
                push(at("form"), format!("not a valid JSON Schema: {e}"));
                continue;
            }
        };
        if actions.contains_key(&action_code) {
            push(
                at("code"),
                format!("action `{action_code}` is declared twice"),
            );
            continue;
        }
        actions.insert(
            action_code.clone(),
            Action {
                code: action_code,
                opens: a.opens,
                by,
                from: a.from,
                to: a.to,
                form,
            },
        );
    }
    if openers != 1 {
        push(
            "actions".into(),
            format!("needs exactly one opening action, found {openers}"),
        );
    }

    match (code, area, kind) {
        (Ok(code), Ok(area), Some(kind)) if errors.is_empty() => Ok(Procedure {
            code,
            area,
            kind,
            names: raw.names,
            schema_versions: raw.schema_versions,
            states: raw.states,
            actions,
        }),
        _ => Err(errors),
    }
}

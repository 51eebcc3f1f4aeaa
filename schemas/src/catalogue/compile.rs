//! One procedure file turned into a [`Procedure`]: its codes, deadlines,
//! retention, labels and actions checked, each action's form compiled once,
//! and every property and coded value of its forms checked for a label.

use std::collections::BTreeSet;

use jsonschema::Draft;

use super::check::Checker;
use super::compiled::{
    Action, Catalogue, Deadline, DeadlineStart, Procedure, ProcedureKind, Question, Retention, Role,
};
use super::model::{ActionFile, DeadlineFile, ProcedureFile, RetentionFile};
use crate::ids::{ActionCode, AreaCode, ProcedureCode};

/// Where a procedure file's errors are recorded.
struct At<'a> {
    file: &'a str,
    ck: &'a mut Checker,
}

impl At<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.ck.err(self.file, path, message);
    }
}

pub(super) fn compile_procedure(
    file: &str,
    raw: ProcedureFile,
    catalogue: &Catalogue,
    ck: &mut Checker,
) -> Option<Procedure> {
    let mut at = At { file, ck };
    let code = ProcedureCode::try_from(raw.code.as_str())
        .map_err(|e| at.err("code", e.to_string()))
        .ok();
    let area = area(&mut at, &raw.area, catalogue);
    if raw.schema_versions.is_empty() {
        at.err("schema_versions", "lists no version");
    }
    at.ck.labels(file, "names", &raw.names);
    let deadlines = deadlines(&mut at, &raw.deadlines, &raw.states);
    let closure_states = closure_states(&mut at, &raw.retention, &raw.states);
    check_labels(&mut at, &raw, catalogue);

    let openers = raw.actions.iter().filter(|a| a.opens).count();
    let mut forms = FormContents::default();
    let mut actions: Vec<Action> = Vec::new();
    for (i, a) in raw.actions.into_iter().enumerate() {
        forms.walk(&a.form);
        if let Some(action) = compile_action(&mut at, i, a, raw.kind, &raw.states) {
            if actions.iter().any(|x| x.code == action.code) {
                at.err(
                    format!("actions[{i}].code"),
                    format!("action `{}` is declared twice", action.code),
                );
            } else {
                actions.push(action);
            }
        }
    }
    check_openers(&mut at, raw.kind, &actions, openers);
    let known_answer =
        |a: &str| raw.answers.contains_key(a) || catalogue.vocabulary.answers.contains_key(a);
    // Everything in a form can be rendered in every language.
    for name in &forms.properties {
        if !raw.fields.contains_key(name) && !catalogue.vocabulary.fields.contains_key(name) {
            at.err("fields", format!("no label for form field `{name}`"));
        }
    }
    for value in &forms.values {
        let labelled = raw.questions.iter().any(|q| &q.code == value)
            || known_answer(value)
            || raw.codes.contains_key(value);
        if !labelled {
            at.err("codes", format!("no label for coded value `{value}`"));
        }
    }
    for pointer in &raw.personal_data {
        let last = pointer
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        if !forms.properties.contains(last) {
            at.err(
                "personal_data",
                format!("`{pointer}` names no property of any form"),
            );
        }
    }
    for d in &deadlines {
        if let DeadlineStart::Field(f) = &d.start {
            if !forms.properties.contains(f) {
                at.err(
                    "deadlines",
                    format!("`{}` counts from `{f}`, which no form has", d.code),
                );
            }
        }
    }

    Some(Procedure {
        code: code?,
        area: area?,
        kind: raw.kind,
        names: raw.names,
        schema_versions: raw.schema_versions,
        states: raw.states,
        recipients: raw.recipients.rule,
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

fn area(at: &mut At<'_>, raw: &str, catalogue: &Catalogue) -> Option<AreaCode> {
    match AreaCode::try_from(raw) {
        Ok(a) if catalogue.areas.contains_key(&a) => Some(a),
        Ok(a) => {
            at.err(
                "area",
                format!("unknown area `{a}` (no area.yaml declares it)"),
            );
            None
        }
        Err(e) => {
            at.err("area", e.to_string());
            None
        }
    }
}

fn deadlines(at: &mut At<'_>, raw: &[DeadlineFile], states: &[String]) -> Vec<Deadline> {
    let mut deadlines = Vec::with_capacity(raw.len());
    for (i, d) in raw.iter().enumerate() {
        let start = match (&d.state, &d.after_field) {
            (Some(s), None) if states.contains(s) => DeadlineStart::State(s.clone()),
            (Some(s), None) => {
                at.err(
                    format!("deadlines[{i}].state"),
                    format!("unknown state `{s}`"),
                );
                continue;
            }
            (None, Some(f)) => DeadlineStart::Field(f.clone()),
            _ => {
                at.err(
                    format!("deadlines[{i}]"),
                    "needs exactly one of `state` and `after_field`",
                );
                continue;
            }
        };
        deadlines.push(Deadline {
            code: d.code.clone(),
            start,
            days: d.days,
        });
    }
    deadlines
}

/// The states of formal closure: those the file lists, else `closed` and
/// `withdrawn` where the procedure has them.
fn closure_states(at: &mut At<'_>, raw: &RetentionFile, states: &[String]) -> Vec<String> {
    match &raw.closure_states {
        Some(listed) => {
            for s in listed.iter().filter(|s| !states.contains(s)) {
                at.err("retention.closure_states", format!("unknown state `{s}`"));
            }
            listed.clone()
        }
        None => ["closed", "withdrawn"]
            .into_iter()
            .filter(|s| states.iter().any(|x| x == s))
            .map(str::to_owned)
            .collect(),
    }
}

/// Every label the file declares exists in the 24 languages, and every
/// question's answers are known.
fn check_labels(at: &mut At<'_>, raw: &ProcedureFile, catalogue: &Catalogue) {
    for (code, labels) in &raw.answers {
        at.ck.labels(at.file, &format!("answers.{code}"), labels);
    }
    for (name, labels) in &raw.fields {
        at.ck.labels(at.file, &format!("fields.{name}"), labels);
    }
    for (code, labels) in &raw.codes {
        at.ck.labels(at.file, &format!("codes.{code}"), labels);
    }
    for (i, q) in raw.questions.iter().enumerate() {
        at.ck
            .labels(at.file, &format!("questions[{i}].labels"), &q.labels);
        for a in &q.answers {
            let known = raw.answers.contains_key(a) || catalogue.vocabulary.answers.contains_key(a);
            if !known {
                at.err(
                    format!("questions[{i}].answers"),
                    format!("unknown answer option `{a}`"),
                );
            }
        }
    }
}

/// One action: its flags checked against its role and the procedure's kind,
/// its states against the procedure's, its form compiled and its example
/// validated.
fn compile_action(
    at: &mut At<'_>,
    i: usize,
    a: ActionFile,
    kind: ProcedureKind,
    states: &[String],
) -> Option<Action> {
    let path = |field: &str| format!("actions[{i}].{field}");
    let code = ActionCode::try_from(a.code.as_str())
        .map_err(|e| at.err(path("code"), e.to_string()))
        .ok()?;
    for s in a.from.iter().chain(std::iter::once(&a.to)) {
        if !states.contains(s) {
            at.err(path("from/to"), format!("unknown state `{s}`"));
        }
    }
    let by = a.by;
    if (a.reassigns || a.splits) && (a.opens || by != Role::Responder || (a.reassigns && a.splits))
    {
        at.err(
            path("reassigns"),
            "only a responder's follow-up action can hand the exchange on",
        );
    }
    if (a.broadcasts || a.disseminates) && kind != ProcedureKind::Notification {
        at.err(
            path("broadcasts"),
            "only a notification (1:N) procedure broadcasts or disseminates",
        );
    }
    if a.disseminates && (a.opens || by != Role::Responder || a.broadcasts) {
        at.err(
            path("disseminates"),
            "dissemination is a recipient's (responder's) follow-up action",
        );
    }
    if a.broadcasts && by != Role::Requester {
        at.err(path("broadcasts"), "only the originator broadcasts");
    }
    if a.opens && !a.from.is_empty() {
        at.err(path("from"), "an opening action has no `from` states");
    } else if !a.opens && a.from.is_empty() {
        at.err(path("from"), "a follow-up action needs `from` states");
    }
    let form = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&a.form)
        .map_err(|e| at.err(path("form"), format!("not a valid JSON Schema: {e}")))
        .ok()?;
    if let Some(example) = &a.example {
        for e in form.iter_errors(example).take(5) {
            at.err(
                path("example"),
                format!(
                    "does not match the form at `{}`: {e}",
                    e.instance_path.as_str()
                ),
            );
        }
    }
    Some(Action {
        code,
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
    })
}

/// A notification needs an action that releases it, and may open either at
/// once (broadcast) or as a draft; every other procedure opens one way.
fn check_openers(at: &mut At<'_>, kind: ProcedureKind, actions: &[Action], openers: usize) {
    let notification = kind == ProcedureKind::Notification;
    if notification && !actions.iter().any(|a| a.broadcasts) {
        at.err(
            "actions",
            "a notification needs an action that broadcasts (else nobody ever receives it)",
        );
    }
    if openers != 1 && !(notification && openers == 2) {
        at.err(
            "actions",
            format!("needs exactly one opening action, found {openers}"),
        );
    }
}

/// Property names and string enum values found anywhere in a procedure's
/// forms.
#[derive(Default)]
struct FormContents {
    properties: BTreeSet<String>,
    values: BTreeSet<String>,
}

impl FormContents {
    fn walk(&mut self, schema: &serde_json::Value) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                self.properties.insert(name.clone());
                self.walk(sub);
            }
        }
        let enum_values = obj.get("enum").and_then(|e| e.as_array());
        for v in enum_values.into_iter().flatten() {
            if let Some(s) = v.as_str() {
                self.values.insert(s.to_owned());
            }
        }
        if let Some(s) = obj.get("const").and_then(|c| c.as_str()) {
            self.values.insert(s.to_owned());
        }
        for key in ["items", "additionalProperties", "not", "if", "then", "else"] {
            if let Some(sub) = obj.get(key) {
                self.walk(sub);
            }
        }
        for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
            let subs = obj.get(key).and_then(|a| a.as_array());
            for sub in subs.into_iter().flatten() {
                self.walk(sub);
            }
        }
        let defs = obj.get("$defs").and_then(|d| d.as_object());
        for (_, sub) in defs.into_iter().flatten() {
            self.walk(sub);
        }
    }
}

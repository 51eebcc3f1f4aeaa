//! One procedure file turned into a [`Procedure`]: its codes, deadlines,
//! retention, labels and actions checked, each action's form compiled once,
//! and every property and coded value of its forms checked for a label.

use std::collections::BTreeSet;

use jsonschema::Draft;

use super::check::Checker;
use super::compiled::{Action, Catalogue, Procedure, ProcedureKind, Question, Retention, Role};
use super::deadline::{Deadline, DeadlineRuns, Period};
use super::model::{
    ActionFile, DeadlineEvent, DeadlineFile, PeriodFile, ProcedureFile, RetentionFile,
};
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
    let mut deadlines = deadlines(&mut at, &raw.deadlines, &raw.states);
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
            || raw.codes.contains_key(value)
            || catalogue.vocabulary.codes.contains_key(value);
        if !labelled {
            at.err("codes", format!("no label for coded value `{value}`"));
        }
    }
    for (key, pointers) in [
        ("personal_data", &raw.personal_data),
        ("special_categories", &raw.special_categories),
    ] {
        for pointer in pointers {
            let last = pointer
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("");
            if !forms.properties.contains(last) {
                at.err(key, format!("`{pointer}` names no property of any form"));
            }
        }
    }
    if let Some(f) = &raw.retention.expires_with {
        if !forms.dates.contains(f) {
            at.err(
                "retention.expires_with",
                format!("`{f}` is no date field of the forms"),
            );
        }
    }
    for (i, n) in raw.not_personal_data.iter().enumerate() {
        if !forms.free_text.contains(&n.field) {
            at.err(
                format!("not_personal_data[{i}]"),
                format!("`{}` is not a free-text field of any form", n.field),
            );
        }
        if n.reason.trim().is_empty() {
            at.err(format!("not_personal_data[{i}].reason"), "gives no reason");
        }
    }
    let marked: BTreeSet<DeadlineEvent> = actions
        .iter()
        .flat_map(|a| a.events().iter().copied())
        .collect();
    for d in &mut deadlines {
        if let Some(f) = &d.if_field {
            if !forms.booleans.contains(f) {
                at.err(
                    "deadlines",
                    format!(
                        "`{}` applies if `{f}`, which is no boolean of the forms",
                        d.code
                    ),
                );
            }
        }
        if let Some(c) = &d.consequence {
            let labelled = raw.codes.contains_key(c) || catalogue.vocabulary.codes.contains_key(c);
            if !labelled {
                at.err("deadlines", format!("no label for the consequence `{c}`"));
            }
        }
        if let DeadlineRuns::InStates {
            from: Some(event), ..
        } = &d.runs
        {
            if !marked.contains(event) {
                at.err(
                    "deadlines",
                    format!(
                        "`{}` starts at `{}`, which no action marks",
                        d.code,
                        event.as_str()
                    ),
                );
            }
        }
        if let DeadlineRuns::FromField(f) = &d.runs {
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
            delete_after_closure_days: raw.retention.delete_after_closure_days,
        },
        closure_states,
        expires_with: raw.retention.expires_with.clone(),
        identifying: super::identifying_fields(&raw.personal_data),
        personal_data: personal_data(
            raw.personal_data
                .iter()
                .chain(&raw.special_categories)
                .cloned()
                .collect(),
            &forms.free_text,
            &raw.not_personal_data,
        ),
        special_categories: raw.special_categories,
        not_personal_data: raw
            .not_personal_data
            .into_iter()
            .map(|n| (n.field, n.reason))
            .collect(),
        state_labels: raw.state_labels,
        action_labels: raw.action_labels,
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
        let path = |f: &str| format!("deadlines[{i}]{f}");
        let in_states: Option<Vec<String>> = match (&d.state, &d.states) {
            (Some(s), None) => Some(vec![s.clone()]),
            (None, Some(list)) if !list.is_empty() => Some(list.clone()),
            (None, None) => None,
            _ => {
                at.err(path(""), "needs one of `state` and `states`, not both");
                continue;
            }
        };
        let runs = match (in_states, &d.after_field) {
            (Some(list), None) => {
                for s in list.iter().filter(|s| !states.contains(s)) {
                    at.err(path(".state"), format!("unknown state `{s}`"));
                }
                DeadlineRuns::InStates {
                    states: list,
                    from: d.starts,
                }
            }
            (None, Some(f)) if d.starts.is_none() => DeadlineRuns::FromField(f.clone()),
            _ => {
                at.err(
                    path(""),
                    "needs exactly one of `state` (or `states`, with an optional `starts`) and `after_field`",
                );
                continue;
            }
        };
        let Some(period) = period(d.period.as_ref(), d.days) else {
            at.err(
                path(".period"),
                "needs exactly one of `days`, `working_days`, `weeks` and `months`",
            );
            continue;
        };
        let Some(source) = d.source.clone() else {
            at.err(
                path(".source"),
                format!(
                    "`{}` names no source: `{{act: …, article: …}}` or `{{default: reason}}`",
                    d.code
                ),
            );
            continue;
        };
        deadlines.push(Deadline {
            code: d.code.clone(),
            runs,
            period,
            agreed_date: d.agreed_date,
            more_information: d.more_information.unwrap_or_default(),
            if_field: d.if_field.clone(),
            source,
            consequence: d.consequence.clone(),
        });
    }
    deadlines
}

/// The one period a deadline declares (`days: N` alone is short for
/// `period: {days: N}`).
fn period(raw: Option<&PeriodFile>, days: Option<u32>) -> Option<Period> {
    let p = raw.cloned().unwrap_or_default();
    let all = [
        p.days.or(days).map(Period::Days),
        p.working_days.map(Period::WorkingDays),
        p.weeks.map(Period::Weeks),
        p.months.map(Period::Months),
    ];
    let given: Vec<Period> = all.into_iter().flatten().collect();
    match (given.as_slice(), raw.and(days)) {
        ([one], None) => Some(*one),
        _ => None,
    }
}

/// Personal data by rule: the pointers listed (special categories
/// included), and every free-text field except those named as not personal
/// (with their reason).
fn personal_data(
    listed: Vec<String>,
    free_text: &BTreeSet<String>,
    not_personal: &[super::model::NotPersonalFile],
) -> Vec<String> {
    let mut all: BTreeSet<String> = listed.into_iter().collect();
    all.extend(
        free_text
            .iter()
            .filter(|p| !not_personal.iter().any(|n| &n.field == *p))
            .cloned(),
    );
    all.into_iter().collect()
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
    for (code, labels) in &raw.state_labels {
        at.ck
            .labels(at.file, &format!("state_labels.{code}"), labels);
    }
    for (code, labels) in &raw.action_labels {
        at.ck
            .labels(at.file, &format!("action_labels.{code}"), labels);
    }
    // A case's status and its actions read in the official's language.
    for state in &raw.states {
        let known =
            raw.state_labels.contains_key(state) || catalogue.vocabulary.states.contains_key(state);
        if !known {
            at.err("states", format!("no label for state `{state}`"));
        }
    }
    for (i, a) in raw.actions.iter().enumerate() {
        let known = raw.action_labels.contains_key(&a.code)
            || catalogue.vocabulary.actions.contains_key(&a.code);
        if !known {
            at.err(
                format!("actions[{i}].code"),
                format!("no label for action `{}`", a.code),
            );
        }
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
        events: {
            let mut events = a.marks.clone();
            if a.opens && !events.contains(&DeadlineEvent::RequestReceived) {
                events.insert(0, DeadlineEvent::RequestReceived);
            }
            events
        },
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
/// forms; the pointers of their free-text fields (`*` for any array index)
/// and the names of their boolean properties.
#[derive(Default)]
struct FormContents {
    properties: BTreeSet<String>,
    values: BTreeSet<String>,
    free_text: BTreeSet<String>,
    booleans: BTreeSet<String>,
    /// Names of top-level date properties (`format: date`).
    dates: BTreeSet<String>,
}

impl FormContents {
    fn walk(&mut self, schema: &serde_json::Value) {
        self.walk_at(schema, "");
    }

    fn walk_at(&mut self, schema: &serde_json::Value, at: &str) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                self.properties.insert(name.clone());
                let escaped = name.replace('~', "~0").replace('/', "~1");
                self.walk_at(sub, &format!("{at}/{escaped}"));
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
        let typed = |t: &str| match obj.get("type") {
            Some(serde_json::Value::String(s)) => s == t,
            Some(serde_json::Value::Array(a)) => a.iter().any(|x| x == t),
            _ => false,
        };
        let constrained = ["enum", "const", "pattern", "format"]
            .iter()
            .any(|k| obj.contains_key(*k));
        if typed("string") && !constrained && !at.is_empty() {
            self.free_text.insert(at.to_owned());
        }
        if typed("string") && obj.get("format").and_then(|f| f.as_str()) == Some("date") {
            if let Some(name) = at.strip_prefix('/').filter(|n| !n.contains('/')) {
                self.dates.insert(name.to_owned());
            }
        }
        if typed("boolean") {
            if let Some(name) = at.rsplit('/').next().filter(|n| !n.is_empty()) {
                self.booleans.insert(name.to_owned());
            }
        }
        for (key, sub_at) in [
            ("items", format!("{at}/*")),
            ("additionalProperties", format!("{at}/*")),
            ("not", at.to_owned()),
            ("if", at.to_owned()),
            ("then", at.to_owned()),
            ("else", at.to_owned()),
        ] {
            if let Some(sub) = obj.get(key) {
                self.walk_at(sub, &sub_at);
            }
        }
        for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
            let subs = obj.get(key).and_then(|a| a.as_array());
            for sub in subs.into_iter().flatten() {
                self.walk_at(sub, at);
            }
        }
        let defs = obj.get("$defs").and_then(|d| d.as_object());
        for (_, sub) in defs.into_iter().flatten() {
            self.walk_at(sub, "");
        }
    }
}

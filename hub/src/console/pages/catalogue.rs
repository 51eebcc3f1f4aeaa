//! The catalogue: areas and their procedures; for each procedure its
//! workflow drawn as a state diagram, each action's form fields with their
//! labels in the chosen language, and each form's JSON Schema to download.

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use imi_schemas::catalogue::{Procedure, LANGUAGES};
use imi_schemas::ids::ProcedureCode;
use maud::html;
use serde::Deserialize;

use crate::console::auth::Viewer;
use crate::console::i18n::{t, tf};
use crate::console::layout::{empty, page};
use crate::console::svg::states;
use crate::console::table::{query_pairs, Cell, Table};
use crate::console::{ConsoleError, OrFail, PageResult};
use crate::http::AppState;

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    lang: Option<String>,
    /// `<action>` to download its form's JSON Schema.
    schema: Option<String>,
}

pub(crate) async fn index(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let catalogue = state.registry.catalogue.current();
    let english = |labels: &std::collections::BTreeMap<String, String>, code: &str| {
        labels.get("en").cloned().unwrap_or_else(|| code.to_owned())
    };
    let mut table = Table::new("catalogue.procedures", "procedures")
        .column("area", "catalogue.area")
        .column("procedure", "catalogue.procedure")
        .column("code", "catalogue.code")
        .column("kind", "catalogue.kind")
        .column("deadlines", "catalogue.deadlines")
        .column("delete_after_months", "catalogue.delete_after");
    for area in catalogue.areas() {
        for p in catalogue.procedures().filter(|p| p.area == area.code) {
            table.row(vec![
                Cell::text(english(&area.names, area.code.as_str())),
                Cell::text(english(&p.names, p.code.as_str()))
                    .link(format!("/console/catalogue/{}", p.code)),
                Cell::code(p.code.to_string()),
                Cell::text(t(&format!("kind.{}", p.kind.as_str()))),
                Cell::number(p.deadlines.len() as f64),
                Cell::text(p.retention.deletion_period()),
            ]);
        }
    }
    let table = table.sorted(&query_pairs(raw.as_deref()));
    if table.csv_wanted() {
        return Ok(table.csv_response());
    }
    let body = html! {
        p class="intro" { (tf("catalogue.summary", &[
            ("areas", &catalogue.area_count()), ("procedures", &catalogue.procedures().count()),
        ])) }
        (table.render())
        h2 { (t("catalogue.legal_bases")) }
        dl class="facts" {
            @for area in catalogue.areas() {
                dt { (english(&area.names, area.code.as_str())) }
                dd { (area.legal_basis) }
            }
        }
    };
    Ok(
        Html(page(&viewer, "/console/catalogue", t("catalogue.title"), body).into_string())
            .into_response(),
    )
}

pub(crate) async fn procedure(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(code): Path<String>,
    Query(params): Query<Params>,
) -> PageResult {
    let catalogue = state.registry.catalogue.current();
    let p: &Procedure = ProcedureCode::try_from(code.as_str())
        .ok()
        .and_then(|c| catalogue.procedure(&c))
        .ok_or(ConsoleError::NotFound)
        .or_fail(&viewer)?;
    if let Some(action) = &params.schema {
        let a = p
            .actions()
            .find(|a| a.code.as_str() == action)
            .ok_or(ConsoleError::NotFound)
            .or_fail(&viewer)?;
        let text = serde_json::to_string_pretty(&a.form_schema).unwrap_or_default();
        let disposition = format!("attachment; filename=\"{}.{}.schema.json\"", p.code, a.code);
        return Ok((
            [
                (header::CONTENT_TYPE, "application/schema+json".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            text,
        )
            .into_response());
    }
    let lang = params
        .lang
        .filter(|l| LANGUAGES.contains(&l.as_str()))
        .unwrap_or_else(|| "en".into());
    let name = p
        .names
        .get(&lang)
        .or_else(|| p.names.get("en"))
        .cloned()
        .unwrap_or_else(|| p.code.to_string());
    let actions: Vec<(String, Vec<String>, String)> = p
        .actions()
        .map(|a| (a.code.to_string(), a.from.clone(), a.to.clone()))
        .collect();
    let body = html! {
        dl class="facts" {
            dt { (t("catalogue.code")) } dd { code { (p.code) } }
            dt { (t("catalogue.kind")) } dd { (t(&format!("kind.{}", p.kind.as_str()))) }
            dt { (t("catalogue.area")) } dd { (p.area) }
            dt { (t("catalogue.versions")) } dd { (p.schema_versions.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")) }
            dt { (t("catalogue.retention")) }
            dd { (tf("catalogue.retention_months", &[
                ("block", &p.retention.block_after_closure_months),
                ("delete", &p.retention.deletion_period()),
            ])) }
        }
        form method="get" class="inline" {
            label for="lang" { (t("exchange.language")) }
            select id="lang" name="lang" {
                @for l in LANGUAGES { option value=(l) selected[l == lang] { (t(&format!("lang.{l}"))) } }
            }
            button type="submit" { (t("exchange.show_in")) }
        }
        section aria-labelledby="workflow-h" {
            h2 id="workflow-h" { (t("catalogue.workflow")) }
            (states(&tf("catalogue.workflow_of", &[("name", &name)]), &p.states, &actions))
            table class="list" {
                caption { (t("catalogue.actions")) }
                thead { tr {
                    th scope="col" { (t("catalogue.action")) }
                    th scope="col" { (t("catalogue.by")) }
                    th scope="col" { (t("step.from")) }
                    th scope="col" { (t("step.to")) }
                    th scope="col" { (t("catalogue.form")) }
                } }
                tbody {
                    @for a in p.actions() {
                        tr {
                            td { code { (a.code) } }
                            td { (t(&format!("role.{}", a.by.as_str()))) }
                            td { @if a.from.is_empty() { (t("catalogue.opens")) } @else { (a.from.join(", ")) } }
                            td { (a.to) }
                            td { a href={ "?schema=" (a.code) } download { (t("catalogue.schema")) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="deadlines-h" {
            h2 id="deadlines-h" { (t("exchange.deadlines")) }
            @if p.deadlines.is_empty() { (empty("catalogue.no_deadlines")) } @else {
                ul { @for d in &p.deadlines { li { code { (d.code) } " · " (d.period.describe()) " · " (tf("catalogue.deadline_source", &[("source", &d.source_text())])) } } }
            }
        }
        section aria-labelledby="fields-h" {
            h2 id="fields-h" { (t("catalogue.fields")) }
            @for a in p.actions() {
                @let fields = form_fields(&a.form_schema);
                details {
                    summary { code { (a.code) } " · " (tf("catalogue.n_fields", &[("n", &fields.len())])) }
                    table class="list" {
                        thead { tr { th scope="col" { (t("catalogue.field")) } th scope="col" { (t("catalogue.label")) } } }
                        tbody {
                            @for f in &fields {
                                tr {
                                    td { code { (f) } }
                                    td lang=(lang) { (catalogue.field_label(p, f, &lang).unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !p.personal_data.is_empty() {
            section aria-labelledby="personal-h" {
                h2 id="personal-h" { (t("catalogue.personal_data")) }
                ul { @for ptr in &p.personal_data { li { code { (ptr) } } } }
            }
        }
    };
    Ok(Html(page(&viewer, "/console/catalogue", &name, body).into_string()).into_response())
}

/// The property names of a form, in order of appearance, each once.
fn form_fields(schema: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![schema];
    while let Some(s) = stack.pop() {
        if let Some(props) = s.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                if !out.contains(name) {
                    out.push(name.clone());
                }
                stack.push(sub);
            }
        }
        if let Some(items) = s.get("items") {
            stack.push(items);
        }
    }
    out
}

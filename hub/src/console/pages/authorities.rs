//! Authorities and endpoints: a multilingual search, applications waiting
//! for a decision (approve with the procedures granted, or refuse), each
//! endpoint's connection state, suspension, and credentials rotated and
//! shown once.

use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect};
use axum::Form;
use imi_schemas::ids::{CountryCode, ProcedureCode};
use maud::{html, Markup};
use serde::Deserialize;

use crate::console::auth::Viewer;
use crate::console::i18n::t;
use crate::console::layout::{csrf, empty, page};
use crate::console::table::{query_pairs, Cell, Table};
use crate::console::{ConsoleError, OrFail, PageResult};
use crate::http::AppState;
use crate::registry::search::{self, AuthorityQuery};
use crate::registry::workflow::{self, Credentials};
use crate::scope::Scope;
use crate::views::audit;
use crate::views::health;
use crate::views::registry as pending_views;

#[derive(Deserialize, Default)]
pub(crate) struct SearchParams {
    q: Option<String>,
    country: Option<String>,
    procedure: Option<String>,
    done: Option<String>,
}

fn name_of(names: &serde_json::Value) -> String {
    names
        .get("en")
        .or_else(|| names.as_object().and_then(|m| m.values().next()))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    axum::extract::Query(params): axum::extract::Query<SearchParams>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let query = query_pairs(raw.as_deref());
    let scope = Scope::of(&viewer.account);
    let pending = pending_views::pending(&state.pool, &scope)
        .await
        .or_fail(&viewer)?;
    let country = params
        .country
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| CountryCode::try_from(c.to_ascii_uppercase().as_str()))
        .transpose()
        .map_err(|e| ConsoleError::Invalid(e.to_string()))
        .or_fail(&viewer)?;
    let procedure = params
        .procedure
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(ProcedureCode::try_from)
        .transpose()
        .map_err(|e| ConsoleError::Invalid(e.to_string()))
        .or_fail(&viewer)?;
    let found = search::search(
        &state.pool,
        &AuthorityQuery {
            text: params.q.clone().filter(|q| !q.trim().is_empty()),
            country,
            procedure,
            limit: 100,
        },
    )
    .await
    .or_fail(&viewer)?;
    let registry = state.registry.registry.current();
    let endpoints = health::endpoints(
        &registry,
        &state.registry.management,
        &state.registry.vhost,
        &state.activity,
        &scope,
    )
    .await;
    let catalogue = state.registry.catalogue.current();
    let mut pending_table = Table::named("pending", "authorities.pending", "applications")
        .column("authority", "authority.id")
        .column("name", "authority.name")
        .column("endpoint", "authority.endpoint")
        .column("applied_at", "authorities.applied_at")
        .column("region", "authorities.region_heading")
        .column("requested", "authorities.requested");
    if !viewer.is_auditor() {
        pending_table = pending_table.actions("authorities.decision");
    }
    for a in &pending {
        let procedure_name = |p: &str| {
            ProcedureCode::try_from(p)
                .ok()
                .and_then(|c| catalogue.procedure(&c))
                .and_then(|x| x.names.get("en").cloned())
                .unwrap_or_else(|| p.to_owned())
        };
        let endpoint = if a.endpoint_status == "pending" {
            Cell::shown(
                html! { code { (a.endpoint) } " " span class="badge" { (t("authorities.new_endpoint")) } },
                a.endpoint.clone(),
            )
        } else {
            Cell::code(a.endpoint.clone())
        };
        let mut row = vec![
            Cell::code(a.id.clone()),
            Cell::text(name_of(&a.names)),
            endpoint,
            Cell::time(a.applied_at),
            Cell::maybe_text(a.region.clone()),
            Cell::text(a.requested_procedures.join(", ")),
        ];
        if !viewer.is_auditor() {
            row.push(Cell::action(html! {
                form method="post" action={ "/console/authorities/" (a.id) "/approve" } class="decide" {
                    (csrf(&viewer))
                    fieldset {
                        legend { (t("authorities.grant")) }
                        @for p in &a.requested_procedures {
                            label class="check" {
                                input type="checkbox" name="procedure" value=(p) checked;
                                (procedure_name(p)) " (" code { (p) } ")"
                            }
                        }
                    }
                    button type="submit" { (t("authorities.approve")) }
                }
                form method="post" action={ "/console/authorities/" (a.id) "/refuse" } class="decide" {
                    (csrf(&viewer))
                    label for={ "reason-" (a.id) } { (t("authorities.reason")) }
                    input id={ "reason-" (a.id) } name="reason" type="text" required;
                    button type="submit" class="secondary" { (t("authorities.refuse")) }
                }
            }));
        }
        pending_table.row(row);
    }
    let pending = pending_table.sorted(&query);
    let mut found_table = Table::named("authorities", "authorities.search", "authorities")
        .column("authority", "authority.id")
        .column("name", "authority.name")
        .column("status", "authority.status")
        .column("endpoint", "authority.endpoint")
        .column("endpoint_health", "endpoint.health")
        .column("procedures", "authority.procedures");
    for a in &found {
        let health = match endpoints.iter().find(|e| e.id == a.endpoint) {
            Some(e) => {
                let (badge, word) = super::dashboard::health_badge(e);
                Cell::shown(badge, word)
            }
            // Outside the viewer's scope, or not registered yet.
            None => Cell::maybe_text(None::<String>),
        };
        found_table.row(vec![
            Cell::code(a.id.clone()),
            Cell::text(
                a.names
                    .get("en")
                    .or_else(|| a.names.values().next())
                    .cloned()
                    .unwrap_or_default(),
            ),
            Cell::text(a.status.clone()),
            Cell::code(a.endpoint.clone()),
            health,
            Cell::number(a.procedures.len() as f64),
        ]);
    }
    let found = found_table.sorted(&query);
    let mut endpoint_table = Table::named("endpoints", "authorities.endpoints", "endpoints")
        .column("endpoint", "endpoint.id")
        .column("connections", "endpoint.connections")
        .column("authorities", "endpoint.authorities");
    if !viewer.is_auditor() {
        endpoint_table = endpoint_table.actions("endpoint.actions");
    }
    for e in &endpoints {
        let mut row = vec![
            Cell::code(e.id.clone()),
            match e.connections {
                Some(n) => Cell::number(n as f64),
                None => Cell::text(t("endpoint.unknown")),
            },
            Cell::text(e.authorities.join(", ")),
        ];
        if !viewer.is_auditor() {
            row.push(Cell::action(html! {
                form method="post" action={ "/console/endpoints/" (e.id) "/rotate" } {
                    (csrf(&viewer))
                    button type="submit" class="secondary" { (t("endpoint.rotate")) }
                }
                form method="post" action={ "/console/endpoints/" (e.id) "/suspend" } {
                    (csrf(&viewer))
                    button type="submit" class="danger" { (t("endpoint.suspend")) }
                }
            }));
        }
        endpoint_table.row(row);
    }
    let endpoints = endpoint_table.sorted(&query);
    for table in [&pending, &found, &endpoints] {
        if table.csv_wanted() {
            return Ok(table.csv_response());
        }
    }
    let body = html! {
        @match params.done.as_deref() {
            Some(done) => p class="ok" role="status" { (t(&format!("authorities.done_{done}"))) },
            None => {},
        }
        section aria-labelledby="pending-h" {
            h2 id="pending-h" { (t("authorities.pending")) }
            @if pending.is_empty() {
                (empty("authorities.pending_empty"))
            } @else { (pending.render()) }
        }
        section aria-labelledby="search-h" {
            h2 id="search-h" { (t("authorities.search")) }
            form method="get" class="filters" role="search" {
                div {
                    label for="q" { (t("authorities.text")) }
                    input id="q" name="q" type="search" value=(params.q.as_deref().unwrap_or("")) placeholder=(t("authorities.text_hint"));
                }
                div {
                    label for="country" { (t("exchange.country")) }
                    input id="country" name="country" type="text" size="3" maxlength="2" value=(params.country.as_deref().unwrap_or(""));
                }
                div {
                    label for="procedure" { (t("exchange.procedure")) }
                    select id="procedure" name="procedure" {
                        option value="" { (t("filter.any")) }
                        @for p in catalogue.procedures() {
                            option value=(p.code.as_str()) selected[params.procedure.as_deref() == Some(p.code.as_str())] { (p.code.as_str()) }
                        }
                    }
                }
                button type="submit" { (t("filter.apply")) }
            }
            @if found.is_empty() {
                (empty("authorities.none_found"))
            } @else {
                (found.render())
            }
        }
        section aria-labelledby="endpoints-h" {
            h2 id="endpoints-h" { (t("authorities.endpoints")) }
            @if endpoints.is_empty() {
                (empty("dashboard.endpoints_empty"))
            } @else {
                (endpoints.render())
            }
        }
    };
    Ok(Html(
        page(
            &viewer,
            "/console/authorities",
            t("authorities.title"),
            body,
        )
        .into_string(),
    )
    .into_response())
}

/// The procedures ticked on an approval form (`procedure=…` repeated).
fn ticked(body: &[u8]) -> Result<Vec<ProcedureCode>, ConsoleError> {
    url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == "procedure")
        .map(|(_, v)| {
            ProcedureCode::try_from(v.as_ref()).map_err(|e| ConsoleError::Invalid(e.to_string()))
        })
        .collect()
}

fn credentials_page(viewer: &Viewer, c: &Credentials) -> Markup {
    let body = html! {
        p class="warn" role="alert" { (t("credentials.once")) }
        dl class="facts" {
            dt { (t("credentials.endpoint")) } dd { code { (c.endpoint) } }
            dt { (t("credentials.vhost")) } dd { code { (c.vhost) } }
            dt { (t("credentials.password")) } dd { code class="secret" { (c.password) } }
            dt { (t("credentials.inbox")) } dd { code { (imi_schemas::protocol::inbox_queue(c.endpoint.as_str())) } }
        }
        p { a href="/console/authorities" { (t("credentials.back")) } }
    };
    page(viewer, "/console/authorities", t("credentials.title"), body)
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> PageResult {
    let procedures = ticked(&body).or_fail(&viewer)?;
    if procedures.is_empty() {
        return Err(ConsoleError::Invalid(t("authorities.none_granted").into())).or_fail(&viewer);
    }
    let credentials = workflow::approve(&state.registry, &viewer.account, &id, Some(procedures))
        .await
        .or_fail(&viewer)?;
    match credentials {
        Some(c) => Ok(Html(credentials_page(&viewer, &c).into_string()).into_response()),
        None => Ok(Redirect::to("/console/authorities?done=approved").into_response()),
    }
}

#[derive(Deserialize)]
pub(crate) struct Reason {
    reason: String,
}

pub(crate) async fn refuse(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<Reason>,
) -> PageResult {
    workflow::refuse(&state.registry, &viewer.account, &id, f.reason.trim())
        .await
        .or_fail(&viewer)?;
    Ok(Redirect::to("/console/authorities?done=refused").into_response())
}

pub(crate) async fn suspend(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    workflow::suspend(&state.registry, &viewer.account, &id)
        .await
        .or_fail(&viewer)?;
    Ok(Redirect::to("/console/authorities?done=suspended").into_response())
}

pub(crate) async fn rotate(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let c = workflow::rotate(&state.registry, &viewer.account, &id)
        .await
        .or_fail(&viewer)?;
    audit::record_by(
        &state.pool,
        &viewer.account,
        "credentials_shown",
        Some(&id),
        serde_json::json!({}),
    )
    .await
    .or_fail(&viewer)?;
    Ok(Html(credentials_page(&viewer, &c).into_string()).into_response())
}

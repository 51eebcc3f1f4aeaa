//! The coordinator's desk: the notices the hub made for the office, overdue
//! and referred requests with reassignment, outgoing alerts waiting for
//! validation, and the country's validation gates.

use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect};
use axum::Form;
use imi_schemas::ids::{AreaCode, CountryCode};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use crate::console::auth::Viewer;
use crate::console::i18n::t;
use crate::console::layout::{csrf, empty, page};
use crate::console::table::{query_pairs, Cell, Table};
use crate::console::{ConsoleError, OrFail, PageResult};
use crate::coordination;
use crate::http::AppState;
use crate::scope::Scope;
use crate::views::desk;

#[derive(sqlx::FromRow)]
struct Gate {
    country: String,
    area: String,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    axum::extract::Query(params): axum::extract::Query<Done>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let query = query_pairs(raw.as_deref());
    let scope = Scope::of(&viewer.account);
    let notices = desk::notices(&state.pool, &viewer.account, false)
        .await
        .or_fail(&viewer)?;
    let overdue = desk::overdue(&state.pool, &scope).await.or_fail(&viewer)?;
    let subject_requests = crate::subjects::due(&state.pool, &viewer.account)
        .await
        .or_fail(&viewer)?;
    let referred = desk::referred(&state.pool, &scope).await.or_fail(&viewer)?;
    let pending = coordination::pending_validations(&state.pool, &viewer.account)
        .await
        .or_fail(&viewer)?;
    let gates: Vec<Gate> = sqlx::query_as(
        "SELECT country, area FROM validation_gates WHERE $1::text IS NULL OR country = $1 ORDER BY country, area",
    )
    .bind(scope.country_filter())
    .fetch_all(&state.pool)
    .await
    .or_fail(&viewer)?;
    let catalogue = state.registry.catalogue.current();
    let acts = !viewer.is_auditor();
    let exchange_link =
        |id: Uuid, text: String| Cell::text(text).link(format!("/console/exchanges/{id}"));

    let mut table = Table::named("notices", "desk.notices", "notices")
        .column("kind", "notice.kind")
        .column("exchange", "exchange.title_one")
        .column("authority", "notice.authority")
        .column("due", "notice.due")
        .column("read", "notice.read");
    for n in &notices {
        let read = if n.read {
            Cell::text(t("notice.is_read"))
        } else if acts {
            Cell::shown(
                html! {
                    form method="post" action={ "/console/notices/" (n.id) "/read" } {
                        (csrf(&viewer))
                        button type="submit" class="link" { (t("notice.mark_read")) }
                    }
                },
                "",
            )
        } else {
            Cell::text("")
        };
        table.row_with_class(
            Some(if n.read { "read" } else { "unread" }),
            vec![
                Cell::text(t(&format!("notice.{}", n.kind))),
                exchange_link(n.exchange_id, format!("{} · {}", n.procedure, n.state)),
                Cell::code(n.authority.clone()),
                Cell::time(n.due_at),
                read,
            ],
        );
    }
    let notices = table.sorted(&query);

    let mut table = Table::named(
        "subjects",
        "desk.subject_requests",
        "data-subject-requests-due",
    )
    .column("request", "subjects.reference")
    .column("notice", "subjects.notices")
    .column("due", "subjects.due");
    for r in &subject_requests {
        table.row(vec![
            Cell::text(r.reference.clone()).link(format!("/console/subjects/requests/{}", r.id)),
            Cell::text(t(&format!("subjects.notice_{}", r.notice))),
            Cell::time(r.due_at),
        ]);
    }
    let subject_requests = table.sorted(&query);

    let mut table = Table::named("overdue", "desk.overdue", "overdue")
        .column("exchange", "exchange.title_one")
        .column("deadline", "desk.deadline")
        .column("due", "notice.due")
        .column("authority", "notice.authority");
    if acts {
        table = table.actions("desk.reassign");
    }
    for o in &overdue {
        let mut row = vec![
            exchange_link(o.exchange_id, format!("{} · {}", o.procedure, o.state)),
            Cell::text(o.deadline.clone()),
            Cell::time(o.due_at),
            Cell::code(o.authority.clone()),
        ];
        if acts {
            row.push(Cell::action(reassign_form(&viewer, o.exchange_id)));
        }
        table.row(row);
    }
    let overdue = table.sorted(&query);

    let mut table = Table::named("referred", "desk.referred", "referred")
        .column("exchange", "exchange.title_one")
        .column("requester", "exchange.requester")
        .column("referred_by", "desk.referred_by")
        .column("since", "desk.since");
    if acts {
        table = table.actions("desk.reassign");
    }
    for r in &referred {
        let mut row = vec![
            exchange_link(r.exchange_id, r.procedure.clone()),
            Cell::code(r.requester.clone()),
            Cell::code(r.responder.clone()),
            Cell::time(r.since),
        ];
        if acts {
            row.push(Cell::action(reassign_form(&viewer, r.exchange_id)));
        }
        table.row(row);
    }
    let referred = table.sorted(&query);

    let mut table = Table::named("validations", "desk.validations", "validations")
        .column("exchange", "exchange.title_one")
        .column("requester", "exchange.requester")
        .column("recipients", "exchange.recipients")
        .column("since", "desk.since");
    if acts {
        table = table.actions("desk.decide");
    }
    for p in &pending {
        let mut row = vec![
            exchange_link(p.exchange_id, p.procedure.clone()),
            Cell::code(p.originator.clone()),
            Cell::number(p.recipients as f64),
            Cell::time(p.since),
        ];
        if acts {
            row.push(Cell::action(html! {
                form method="post" action={ "/console/exchanges/" (p.exchange_id) "/validation" } {
                    (csrf(&viewer))
                    input type="hidden" name="approve" value="true";
                    button type="submit" { (t("desk.approve")) }
                }
                form method="post" action={ "/console/exchanges/" (p.exchange_id) "/validation" } {
                    (csrf(&viewer))
                    input type="hidden" name="approve" value="false";
                    label for={ "why-" (p.exchange_id) } class="visually-hidden" { (t("desk.reason")) }
                    input id={ "why-" (p.exchange_id) } name="reason" type="text" placeholder=(t("desk.reason")) required;
                    button type="submit" class="secondary" { (t("desk.refuse")) }
                }
            }));
        }
        table.row(row);
    }
    let pending = table.sorted(&query);
    for table in [&notices, &subject_requests, &overdue, &referred, &pending] {
        if table.csv_wanted() {
            return Ok(table.csv_response());
        }
    }

    let body = html! {
        @if let Some(done) = &params.done { p class="ok" role="status" { (t(&format!("desk.done_{done}"))) } }
        section aria-labelledby="notices-h" {
            h2 id="notices-h" { (t("desk.notices")) }
            @if notices.is_empty() { (empty("desk.notices_empty")) } @else { (notices.render()) }
        }
        section aria-labelledby="subjects-h" {
            h2 id="subjects-h" { (t("desk.subject_requests")) }
            @if subject_requests.is_empty() { (empty("desk.subject_requests_empty")) } @else { (subject_requests.render()) }
        }
        section aria-labelledby="overdue-h" id="overdue" {
            h2 id="overdue-h" { (t("desk.overdue")) }
            @if overdue.is_empty() { (empty("desk.overdue_empty")) } @else { (overdue.render()) }
        }
        section aria-labelledby="referred-h" {
            h2 id="referred-h" { (t("desk.referred")) }
            @if referred.is_empty() { (empty("desk.referred_empty")) } @else { (referred.render()) }
        }
        section aria-labelledby="validations-h" {
            h2 id="validations-h" { (t("desk.validations")) }
            @if pending.is_empty() { (empty("desk.validations_empty")) } @else { (pending.render()) }
        }
        section aria-labelledby="gates-h" {
            h2 id="gates-h" { (t("desk.gates")) }
            p class="note" { (t("desk.gates_note")) }
            @if gates.is_empty() { (empty("desk.gates_empty")) } @else {
                ul { @for g in &gates { li { (g.country) " · " (g.area)
                    @if acts {
                        form method="post" action="/console/gates" class="inline" {
                            (csrf(&viewer))
                            input type="hidden" name="country" value=(g.country);
                            input type="hidden" name="area" value=(g.area);
                            input type="hidden" name="on" value="false";
                            button type="submit" class="link" { (t("desk.gate_off")) }
                        }
                    }
                } } }
            }
            @if acts {
                form method="post" action="/console/gates" class="filters" {
                    (csrf(&viewer))
                    div {
                        label for="gate-country" { (t("exchange.country")) }
                        input id="gate-country" name="country" type="text" size="3" maxlength="2" required
                            value=(viewer.account.country.map(|c| c.to_string()).unwrap_or_default());
                    }
                    div {
                        label for="gate-area" { (t("desk.area")) }
                        select id="gate-area" name="area" {
                            @for a in catalogue.areas() { option value=(a.code.as_str()) { (a.names.get("en").map(String::as_str).unwrap_or(a.code.as_str())) } }
                        }
                    }
                    input type="hidden" name="on" value="true";
                    button type="submit" { (t("desk.gate_on")) }
                }
            }
        }
    };
    Ok(Html(page(&viewer, "/console/desk", t("desk.title"), body).into_string()).into_response())
}

fn reassign_form(viewer: &Viewer, exchange: Uuid) -> Markup {
    html! {
        form method="post" action={ "/console/exchanges/" (exchange) "/reassign" } class="inline" {
            (csrf(viewer))
            label for={ "to-" (exchange) } class="visually-hidden" { (t("desk.reassign_to")) }
            input id={ "to-" (exchange) } name="to" type="text" placeholder=(t("desk.reassign_to")) required size="16";
            button type="submit" { (t("desk.reassign")) }
        }
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ReassignForm {
    to: String,
}

pub(crate) async fn reassign(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Uuid>,
    Form(f): Form<ReassignForm>,
) -> PageResult {
    let publisher = state.broker.publisher();
    coordination::reassign(
        &state.registry,
        &publisher,
        &viewer.account,
        id,
        f.to.trim(),
    )
    .await
    .or_fail(&viewer)?;
    Ok(Redirect::to("/console/desk?done=reassigned").into_response())
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    approve: bool,
    #[serde(default)]
    reason: Option<String>,
}

pub(crate) async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Uuid>,
    Form(f): Form<DecisionForm>,
) -> PageResult {
    let publisher = state.broker.publisher();
    let reason = f.reason.filter(|r| !r.trim().is_empty());
    coordination::decide_validation(
        &state.registry,
        &publisher,
        &viewer.account,
        id,
        f.approve,
        reason,
    )
    .await
    .or_fail(&viewer)?;
    let done = if f.approve { "validated" } else { "refused" };
    Ok(Redirect::to(&format!("/console/desk?done={done}")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct GateForm {
    country: String,
    area: String,
    on: bool,
}

pub(crate) async fn gate(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(f): Form<GateForm>,
) -> PageResult {
    let country = CountryCode::try_from(f.country.trim().to_ascii_uppercase().as_str())
        .map_err(|e| ConsoleError::Invalid(e.to_string()))
        .or_fail(&viewer)?;
    let area = AreaCode::try_from(f.area.as_str())
        .map_err(|e| ConsoleError::Invalid(e.to_string()))
        .or_fail(&viewer)?;
    coordination::set_gate(&state.registry, &viewer.account, &country, &area, f.on)
        .await
        .or_fail(&viewer)?;
    let done = if f.on { "gate_on" } else { "gate_off" };
    Ok(Redirect::to(&format!("/console/desk?done={done}")).into_response())
}

pub(crate) async fn mark_read(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> PageResult {
    if !desk::mark_notice_read(&state.pool, &viewer.account, id)
        .await
        .or_fail(&viewer)?
    {
        return Err(ConsoleError::NotFound).or_fail(&viewer);
    }
    Ok(Redirect::to("/console/desk").into_response())
}

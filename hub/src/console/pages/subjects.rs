//! Data-subject requests (docs/data-subjects.md): the requests the office
//! handles with their one-month deadline; a search for a person's exchanges
//! by name with date of birth or a national identifier (with a recorded
//! reason); a request opened on what was found, its export (JSON, and a
//! page in the person's language), corrections and objections recorded on
//! its exchanges, and its answer. Auditors see the requests' outlines only.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::Form;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use imi_schemas::catalogue::{Identity, LANGUAGES};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::console::auth::Viewer;
use crate::console::i18n::{t, tf};
use crate::console::layout::{csrf, empty, maybe_time, page, time};
use crate::console::table::{query_pairs, Cell, Table};
use crate::console::{ConsoleError, OrFail, PageResult};
use crate::http::AppState;
use crate::scope::{PayloadAccess, Scope};
use crate::subjects::{self, Found, NewRequest, Request, RequestKind, StatementKind, SubjectKey};
use crate::views::{audit, exchanges};

/// A reason is a sentence, not a keystroke.
const MIN_REASON_CHARS: usize = 10;

/// Where a request stands.
fn status(r: &Request, now: DateTime<Utc>, remind: Duration) -> (&'static str, &'static str) {
    match r.answered_at {
        Some(_) => ("subjects.status_answered", "ok"),
        None if r.due_at <= now => ("subjects.status_overdue", "bad"),
        None if r.due_at - remind <= now => ("subjects.status_due_soon", "warn"),
        None => ("subjects.status_open", ""),
    }
}

/// A week: when the list calls a request "due soon" (the pass's reminder
/// has its own setting).
const DUE_SOON: Duration = Duration::days(7);

pub(crate) async fn index(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let requests = subjects::list(&state.pool, &viewer.account)
        .await
        .or_fail(&viewer)?;
    let now = Utc::now();
    let mut table = Table::new("subjects.requests_caption", "data-subject-requests")
        .column("reference", "subjects.reference")
        .column("kind", "subjects.kind")
        .column("received", "subjects.received")
        .column("due", "subjects.due")
        .column("status", "subjects.status")
        .column("office", "subjects.office");
    for r in &requests {
        let (key, class) = status(r, now, DUE_SOON);
        table.row(vec![
            Cell::text(r.reference.clone()).link(format!("/console/subjects/requests/{}", r.id)),
            Cell::text(t(&format!("subjects.kind_{}", r.kind))),
            Cell::time(r.received_at),
            Cell::time(r.due_at),
            Cell::shown(
                html! { span class={ "badge " (class) } { (t(key)) } },
                t(key),
            ),
            Cell::text(r.country.as_deref().unwrap_or("—")),
        ]);
    }
    let table = table.sorted(&query_pairs(raw.as_deref()));
    if table.csv_wanted() {
        return Ok(table.csv_response());
    }
    let body = html! {
        section aria-labelledby="requests-h" {
            h2 id="requests-h" { (t("subjects.requests")) }
            @if table.is_empty() { (empty("subjects.no_requests")) } @else { (table.render()) }
        }
        @if !viewer.is_auditor() {
            section aria-labelledby="search-h" {
                h2 id="search-h" { (t("subjects.search")) }
                p class="note" { (t("subjects.search_note")) }
                (search_form(&viewer, &SearchParams::default()))
            }
        } @else {
            p class="note" { (t("subjects.auditor_note")) }
        }
    };
    let html = page(&viewer, "/console/subjects", t("subjects.title"), body);
    Ok(Html(html.into_string()).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchParams {
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    given_names: String,
    #[serde(default)]
    date_of_birth: String,
    #[serde(default)]
    national_id: String,
    #[serde(default)]
    reason: String,
}

fn search_form(viewer: &Viewer, p: &SearchParams) -> Markup {
    html! {
        form method="post" action="/console/subjects/search" class="stacked" {
            (csrf(viewer))
            fieldset {
                legend { (t("subjects.by_name")) }
                div { label for="family_name" { (t("subjects.family_name")) }
                      input id="family_name" name="family_name" value=(p.family_name) autocomplete="off"; }
                div { label for="given_names" { (t("subjects.given_names")) }
                      input id="given_names" name="given_names" value=(p.given_names) autocomplete="off"; }
                div { label for="date_of_birth" { (t("subjects.date_of_birth")) }
                      input id="date_of_birth" name="date_of_birth" type="date" value=(p.date_of_birth) autocomplete="off"; }
            }
            fieldset {
                legend { (t("subjects.by_id")) }
                div { label for="national_id" { (t("subjects.national_id")) }
                      input id="national_id" name="national_id" value=(p.national_id) autocomplete="off"; }
            }
            div { label for="reason" { (t("subjects.reason")) }
                  input id="reason" name="reason" size="50" required minlength=(MIN_REASON_CHARS) maxlength="500" value=(p.reason) autocomplete="off"; }
            button type="submit" { (t("subjects.search_submit")) }
        }
    }
}

/// The identities a search names, or why it names none.
fn identities(p: &SearchParams) -> Result<Vec<Identity>, &'static str> {
    let mut out = Vec::new();
    let name = [&p.family_name, &p.given_names, &p.date_of_birth];
    if name.iter().any(|f| !f.trim().is_empty()) {
        if name.iter().any(|f| f.trim().is_empty()) {
            return Err("subjects.name_incomplete");
        }
        out.push(Identity::NameAndBirthDate {
            family_name: p.family_name.clone(),
            given_names: p.given_names.clone(),
            date_of_birth: p.date_of_birth.clone(),
        });
    }
    if !p.national_id.trim().is_empty() {
        out.push(Identity::NationalId(p.national_id.clone()));
    }
    if out.is_empty() {
        return Err("subjects.nothing_to_search");
    }
    Ok(out)
}

pub(crate) async fn search(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(params): Form<SearchParams>,
) -> PageResult {
    let invalid = |key: &str| ConsoleError::Invalid(t(key).to_owned());
    let reason = params.reason.trim();
    if reason.chars().count() < MIN_REASON_CHARS {
        return Err(invalid("subjects.reason_needed")).or_fail(&viewer);
    }
    let identities = identities(&params).map_err(invalid).or_fail(&viewer)?;
    let keyer = &state.pipeline.subjects;
    let keys: Vec<SubjectKey> = identities.iter().filter_map(|i| keyer.key(i)).collect();
    if keys.len() != identities.len() {
        return Err(invalid("subjects.not_an_identity")).or_fail(&viewer);
    }
    let catalogue = state.registry.catalogue.current();
    let scope = Scope::of(&viewer.account);
    let found = subjects::find(&state.pool, &catalogue, &scope, &keys)
        .await
        .or_fail(&viewer)?;
    // The log says who searched, why and how much was found; never whom.
    let by: Vec<&str> = identities
        .iter()
        .map(|i| match i {
            Identity::NameAndBirthDate { .. } => "name_and_birth_date",
            Identity::NationalId(_) => "national_id",
        })
        .collect();
    audit::record_by(
        &state.pool,
        &viewer.account,
        "subject_search",
        None,
        json!({"reason": reason, "by": by, "found": found.len()}),
    )
    .await
    .or_fail(&viewer)?;
    let keys_hex: Vec<String> = keys.iter().map(hex::encode).collect();
    let today = Utc::now().date_naive().to_string();
    let body = html! {
        p class="note" { (tf("subjects.found_n", &[("n", &found.len())])) }
        @if matches!(scope, Scope::Coordinator { .. }) { p class="note" { (t("subjects.office_only")) } }
        // The answer to a posted form: no link to fetch it again as CSV.
        @if found.is_empty() { (empty("subjects.nothing_found")) } @else { (found_list(&found).render_list()) }
        section aria-labelledby="open-h" {
            h2 id="open-h" { (t("subjects.open")) }
            form method="post" action="/console/subjects/requests" class="stacked" {
                (csrf(&viewer))
                input type="hidden" name="keys" value=(keys_hex.join(","));
                div { label for="kind" { (t("subjects.kind")) }
                      select id="kind" name="kind" {
                          @for k in RequestKind::ALL {
                              option value=(k.as_str()) { (t(&format!("subjects.kind_{}", k.as_str()))) }
                          }
                      } }
                div { label for="language" { (t("subjects.language")) }
                      select id="language" name="language" {
                          @for l in LANGUAGES {
                              option value=(l) selected[l == "en"] { (t(&format!("lang.{l}"))) }
                          }
                      } }
                div { label for="reference" { (t("subjects.reference")) }
                      input id="reference" name="reference" required maxlength="200" autocomplete="off";
                      p class="hint" { (t("subjects.reference_hint")) } }
                div { label for="received_on" { (t("subjects.received")) }
                      input id="received_on" name="received_on" type="date" required value=(today); }
                button type="submit" { (t("subjects.open_submit")) }
            }
        }
        p { a href="/console/subjects" { (t("subjects.back")) } }
    };
    let html = page(
        &viewer,
        "/console/subjects",
        t("subjects.search_title"),
        body,
    );
    Ok(Html(html.into_string()).into_response())
}

/// The exchanges found, as a list.
fn found_list(found: &[Found]) -> Table {
    let mut table = Table::named(
        "found",
        "subjects.found_caption",
        "exchanges-about-a-person",
    )
    .column("exchange", "exchange.id")
    .column("procedure", "exchange.procedure")
    .column("state", "exchange.state")
    .column("opened", "exchange.opened")
    .column("requester", "exchange.requester")
    .column("content", "subjects.content");
    for f in found {
        let content = match f.access {
            PayloadAccess::Denied(_) => "subjects.outline_only",
            _ => "subjects.readable",
        };
        table.row(vec![
            Cell::code(f.head.id.to_string()).link(format!("/console/exchanges/{}", f.head.id)),
            Cell::text(f.head.procedure.clone()),
            Cell::text(f.head.state.clone()),
            Cell::time(f.head.opened_at),
            Cell::text(f.head.requester.clone()),
            Cell::text(t(content)),
        ]);
    }
    table
}

#[derive(Debug, Deserialize)]
pub(crate) struct OpenParams {
    keys: String,
    kind: String,
    language: String,
    reference: String,
    received_on: String,
}

pub(crate) async fn open(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(p): Form<OpenParams>,
) -> PageResult {
    let invalid = |m: String| ConsoleError::Invalid(m);
    let keys: Vec<SubjectKey> = p
        .keys
        .split(',')
        .map(|k| hex::decode(k).ok().and_then(|b| b.try_into().ok()))
        .collect::<Option<Vec<_>>>()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid(t("subjects.bad_keys").to_owned()))
        .or_fail(&viewer)?;
    let kind = RequestKind::try_from(p.kind.as_str())
        .map_err(invalid)
        .or_fail(&viewer)?;
    if !LANGUAGES.contains(&p.language.as_str()) {
        return Err(invalid(t("subjects.bad_language").to_owned())).or_fail(&viewer);
    }
    let reference = p.reference.trim();
    if reference.is_empty() || reference.chars().count() > 200 {
        return Err(invalid(t("subjects.bad_reference").to_owned())).or_fail(&viewer);
    }
    let today = Utc::now().date_naive();
    let received = NaiveDate::parse_from_str(p.received_on.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| *d <= today)
        .ok_or_else(|| invalid(t("subjects.bad_received").to_owned()))
        .or_fail(&viewer)?;
    let received_at = received.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    // The answer is due by the end of the last day.
    let due_at = received_at + Duration::days(i64::from(state.console.subject_answer_days) + 1)
        - Duration::seconds(1);
    let catalogue = state.registry.catalogue.current();
    let found = subjects::find(&state.pool, &catalogue, &Scope::of(&viewer.account), &keys)
        .await
        .or_fail(&viewer)?;
    let exchanges: Vec<Uuid> = found.iter().map(|f| f.head.id).collect();
    let id = subjects::open(
        &state.pool,
        &viewer.account,
        NewRequest {
            kind,
            language: &p.language,
            reference,
            keys: &keys,
            received_at,
            due_at,
            exchanges: &exchanges,
        },
    )
    .await
    .or_fail(&viewer)?;
    Ok(Redirect::to(&format!("/console/subjects/requests/{id}")).into_response())
}

fn request_id(raw: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(raw).map_err(|_| ConsoleError::NotFound)
}

/// The request if the caller's office handles it.
async fn load(state: &AppState, viewer: &Viewer, raw: &str) -> Result<Request, ConsoleError> {
    let id = request_id(raw)?;
    subjects::request(&state.pool, &viewer.account, id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let query = query_pairs(query.as_deref());
    let request = load(&state, &viewer, &raw).await.or_fail(&viewer)?;
    let catalogue = state.registry.catalogue.current();
    let ids = subjects::request_exchanges(&state.pool, request.id)
        .await
        .or_fail(&viewer)?;
    let found = if viewer.is_auditor() {
        Vec::new()
    } else {
        subjects::within_scope(&state.pool, &catalogue, &Scope::of(&viewer.account), &ids)
            .await
            .or_fail(&viewer)?
    };
    let notices = subjects::notices(&state.pool, request.id)
        .await
        .or_fail(&viewer)?;
    let list = found_list(&found).sorted(&query);
    if list.csv_wanted() {
        return Ok(list.csv_response());
    }
    let statements = statements_of(&state, &request, &found)
        .await
        .or_fail(&viewer)?;
    let (status_key, class) = status(&request, Utc::now(), DUE_SOON);
    let base = format!("/console/subjects/requests/{}", request.id);
    let body = html! {
        dl class="facts" {
            dt { (t("subjects.reference")) } dd { (request.reference) }
            dt { (t("subjects.kind")) } dd { (t(&format!("subjects.kind_{}", request.kind))) }
            dt { (t("subjects.language")) } dd { (t(&format!("lang.{}", request.language))) }
            dt { (t("subjects.received")) } dd { (time(request.received_at)) }
            dt { (t("subjects.due")) } dd { (time(request.due_at)) }
            dt { (t("subjects.status")) } dd { span class={ "badge " (class) } { (t(status_key)) } }
            dt { (t("subjects.answered")) } dd { (maybe_time(request.answered_at)) }
            dt { (t("subjects.office")) } dd { (request.country.as_deref().unwrap_or("—")) }
            dt { (t("subjects.opened_by")) } dd { (request.opened_by) }
            dt { (t("subjects.exchanges")) } dd { (ids.len()) }
        }
        @if !notices.is_empty() {
            section aria-labelledby="notices-h" {
                h2 id="notices-h" { (t("subjects.notices")) }
                ul { @for (kind, at) in &notices {
                    li { (t(&format!("subjects.notice_{kind}"))) " · " (time(*at)) }
                } }
            }
        }
        @if viewer.is_auditor() {
            p class="note" { (t("subjects.auditor_note")) }
        } @else {
            section aria-labelledby="found-h" {
                h2 id="found-h" { (t("subjects.exchanges")) }
                @if found.is_empty() { (empty("subjects.nothing_found")) } @else { (list.render()) }
                @if request.answered_at.is_none() {
                    form method="post" action={ (base) "/search-again" } class="inline" {
                        (csrf(&viewer))
                        button type="submit" { (t("subjects.search_again")) }
                    }
                }
                p {
                    a href={ (base) "/export.html" } { (t("subjects.export_html")) }
                    " · "
                    a href={ (base) "/export.json" } { (t("subjects.export_json")) }
                }
            }
            section aria-labelledby="statements-h" {
                h2 id="statements-h" { (t("subjects.statements")) }
                @if statements.is_empty() { (empty("subjects.no_statements")) }
                ul { @for s in &statements {
                    li { (t(&format!("subjects.statement_{}", s.kind))) " · " (time(s.recorded_at)) " · "
                         a href={ "/console/exchanges/" (s.exchange_id) } { code { (s.exchange_id) } }
                         " · " (s.recorded_by)
                         @if let Some(text) = &s.statement { ": " (text) } }
                } }
                @if !found.is_empty() && request.answered_at.is_none() {
                    form method="post" action={ (base) "/statements" } class="stacked" {
                        (csrf(&viewer))
                        div { label for="exchange" { (t("subjects.statement_exchange")) }
                              select id="exchange" name="exchange" {
                                  @for f in &found { option value=(f.head.id) { (f.head.id) " · " (f.head.procedure) } }
                              } }
                        div { label for="statement_kind" { (t("subjects.kind")) }
                              select id="statement_kind" name="kind" {
                                  option value="correction" { (t("subjects.statement_correction")) }
                                  option value="contest" { (t("subjects.statement_contest")) }
                              } }
                        div { label for="statement" { (t("subjects.statement_text")) }
                              textarea id="statement" name="statement" required maxlength="4000" rows="3" {} }
                        button type="submit" { (t("subjects.statement_submit")) }
                    }
                }
            }
            @if request.answered_at.is_none() {
                section aria-labelledby="answer-h" {
                    h2 id="answer-h" { (t("subjects.answer")) }
                    form method="post" action={ (base) "/answer" } class="stacked" {
                        (csrf(&viewer))
                        div { label for="answer" { (t("subjects.answer_text")) }
                              textarea id="answer" name="answer" required maxlength="4000" rows="3" {} }
                        button type="submit" { (t("subjects.answer_submit")) }
                    }
                }
            } @else if let Some(a) = &request.answer {
                section aria-labelledby="answer-h" {
                    h2 id="answer-h" { (t("subjects.answer")) }
                    p { (a) }
                }
            }
        }
        p { a href="/console/subjects" { (t("subjects.back")) } }
    };
    let title = tf(
        "subjects.request_title",
        &[("reference", &request.reference)],
    );
    let html = page(&viewer, "/console/subjects", &title, body);
    Ok(Html(html.into_string()).into_response())
}

/// The statements on the found exchanges; the text only where the office
/// reads the exchange's content.
async fn statements_of(
    state: &AppState,
    request: &Request,
    found: &[Found],
) -> Result<Vec<subjects::Statement>, sqlx::Error> {
    let mut all = Vec::new();
    for f in found {
        let mut on = subjects::exchange_statements(&state.pool, f.head.id).await?;
        if !f.content_readable(request.country.is_none()) {
            on.iter_mut().for_each(|s| s.statement = None);
        }
        all.extend(on);
    }
    all.sort_by_key(|s| s.recorded_at);
    Ok(all)
}

/// `export.json` or `export.html`: the request's exchanges as the office
/// reads them, recorded in the audit log.
pub(crate) async fn export(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((raw, file)): Path<(String, String)>,
) -> PageResult {
    if viewer.is_auditor() {
        return Err(ConsoleError::Forbidden(
            t("subjects.auditor_note").to_owned(),
        ))
        .or_fail(&viewer);
    }
    let html_wanted = match file.as_str() {
        "export.html" => true,
        "export.json" => false,
        _ => return Err(ConsoleError::NotFound).or_fail(&viewer),
    };
    let request = load(&state, &viewer, &raw).await.or_fail(&viewer)?;
    let catalogue = state.registry.catalogue.current();
    let ids = subjects::request_exchanges(&state.pool, request.id)
        .await
        .or_fail(&viewer)?;
    let found = subjects::within_scope(&state.pool, &catalogue, &Scope::of(&viewer.account), &ids)
        .await
        .or_fail(&viewer)?;
    let mut messages = HashMap::new();
    let by_operators = request.country.is_none();
    for f in found.iter().filter(|f| f.content_readable(by_operators)) {
        let ms = exchanges::messages(&state.pool, f.head.id)
            .await
            .or_fail(&viewer)?;
        messages.insert(f.head.id, ms);
    }
    let statements = statements_of(&state, &request, &found)
        .await
        .or_fail(&viewer)?;
    let with_content: Vec<Uuid> = messages.keys().copied().collect();
    audit::record_by(
        &state.pool,
        &viewer.account,
        "subject_export",
        Some(&request.id.to_string()),
        json!({"format": if html_wanted { "html" } else { "json" },
               "exchanges": ids, "with_content": with_content}),
    )
    .await
    .or_fail(&viewer)?;
    let exported = subjects::Exported {
        request: &request,
        found: &found,
        messages: &messages,
        statements: &statements,
        generated_at: Utc::now(),
    };
    let name = format!("imi-data-subject-{}", request.id);
    Ok(if html_wanted {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.html\""),
                ),
            ],
            axum::Extension(crate::console::exports::Audited),
            subjects::export_html(&catalogue, &exported),
        )
            .into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, "application/json".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.json\""),
                ),
            ],
            axum::Extension(crate::console::exports::Audited),
            subjects::export_json(&catalogue, &exported).to_string(),
        )
            .into_response()
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatementParams {
    exchange: String,
    kind: String,
    statement: String,
}

pub(crate) async fn statement(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Form(p): Form<StatementParams>,
) -> PageResult {
    let request = load(&state, &viewer, &raw).await.or_fail(&viewer)?;
    let invalid = |m: String| ConsoleError::Invalid(m);
    let exchange = Uuid::parse_str(p.exchange.trim())
        .map_err(|e| invalid(e.to_string()))
        .or_fail(&viewer)?;
    let kind = StatementKind::try_from(p.kind.as_str())
        .map_err(invalid)
        .or_fail(&viewer)?;
    let text = p.statement.trim();
    if text.is_empty() {
        return Err(invalid(t("subjects.statement_empty").to_owned())).or_fail(&viewer);
    }
    if request.answered_at.is_some() {
        return Err(ConsoleError::Conflict(
            t("subjects.already_answered").to_owned(),
        ))
        .or_fail(&viewer);
    }
    // Only on an exchange the office reads.
    let catalogue = state.registry.catalogue.current();
    let found = subjects::within_scope(
        &state.pool,
        &catalogue,
        &Scope::of(&viewer.account),
        &[exchange],
    )
    .await
    .or_fail(&viewer)?;
    if !found
        .iter()
        .any(|f| f.content_readable(request.country.is_none()))
    {
        return Err(ConsoleError::Forbidden(
            t("subjects.not_readable").to_owned(),
        ))
        .or_fail(&viewer);
    }
    if !subjects::record_statement(&state.pool, &viewer.account, &request, exchange, kind, text)
        .await
        .or_fail(&viewer)?
    {
        return Err(invalid(t("subjects.not_in_request").to_owned())).or_fail(&viewer);
    }
    Ok(Redirect::to(&format!("/console/subjects/requests/{}", request.id)).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct AnswerParams {
    answer: String,
}

pub(crate) async fn answer(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Form(p): Form<AnswerParams>,
) -> PageResult {
    let request = load(&state, &viewer, &raw).await.or_fail(&viewer)?;
    let text = p.answer.trim();
    if text.is_empty() {
        return Err(ConsoleError::Invalid(t("subjects.answer_empty").to_owned())).or_fail(&viewer);
    }
    if !subjects::answer(&state.pool, &viewer.account, &request, text)
        .await
        .or_fail(&viewer)?
    {
        return Err(ConsoleError::Conflict(
            t("subjects.already_answered").to_owned(),
        ))
        .or_fail(&viewer);
    }
    Ok(Redirect::to(&format!("/console/subjects/requests/{}", request.id)).into_response())
}

/// Searches the person's keys again and adds what is new to the request.
pub(crate) async fn search_again(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> PageResult {
    let request = load(&state, &viewer, &raw).await.or_fail(&viewer)?;
    let catalogue = state.registry.catalogue.current();
    let found = subjects::find(
        &state.pool,
        &catalogue,
        &Scope::of(&viewer.account),
        &request.subject_keys(),
    )
    .await
    .or_fail(&viewer)?;
    let ids: Vec<Uuid> = found.iter().map(|f| f.head.id).collect();
    subjects::add_exchanges(&state.pool, &viewer.account, &request, &ids)
        .await
        .or_fail(&viewer)?;
    Ok(Redirect::to(&format!("/console/subjects/requests/{}", request.id)).into_response())
}

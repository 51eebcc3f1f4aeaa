//! One exchange: its parties, a sequence diagram of every message and step
//! with times, each payload rendered with the catalogue's labels in the
//! language the viewer picks (any of the 24) beside the raw JSON, its
//! deadlines, its parent and children, and for a 1:N exchange every
//! recipient's acknowledgement with a progress bar that moves by itself.
//! Viewing an exchange's content is recorded.

use axum::extract::{Path, Query, RawQuery, State};
use axum::response::{Html, IntoResponse};
use axum::Form;
use imi_schemas::catalogue::{Catalogue, Procedure, LANGUAGES};
use imi_schemas::ids::{MessageType, ProcedureCode};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use crate::alerts::{self, ExchangeDeliveries};
use crate::console::auth::Viewer;
use crate::console::i18n::{t, tf};
use crate::console::layout::{csrf, empty, encode_query, maybe_time, page, time};
use crate::console::svg::{progress, sequence, Arrow};
use crate::console::table::{query_pairs, Cell, Table};
use crate::console::{ConsoleError, OrFail, PageResult};
use crate::http::AppState;
use crate::scope::{PayloadAccess, Scope};
use crate::views::audit;
use crate::views::exchanges::{self, Detail, Message};

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    lang: Option<String>,
    /// An operator's reason for reading the content (recorded).
    reason: Option<String>,
}

/// A reason shorter than this is no reason.
const MIN_REASON_CHARS: usize = 10;

fn exchange_id(raw: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(raw)
        .map_err(|_| ConsoleError::Invalid(tf("exchanges.bad_id", &[("value", &raw)])))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Query(params): Query<Params>,
    RawQuery(query): RawQuery,
) -> PageResult {
    // A reason comes only in a posted form (`read`), never in a link: a
    // link cannot make an operator's browser record a reason.
    let params = Params {
        reason: None,
        ..params
    };
    render(state, viewer, raw, params, query).await
}

/// An operator's reason for reading the content, posted with the session's
/// CSRF token (checked before this runs); the page is answered directly.
pub(crate) async fn read(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Form(params): Form<Params>,
) -> PageResult {
    render(state, viewer, raw, params, None).await
}

async fn render(
    state: AppState,
    viewer: Viewer,
    raw: String,
    params: Params,
    query: Option<String>,
) -> PageResult {
    let id = exchange_id(&raw).or_fail(&viewer)?;
    let query = query_pairs(query.as_deref());
    let scope = Scope::of(&viewer.account);
    let detail = exchanges::detail(&state.pool, &scope, id)
        .await
        .or_fail(&viewer)?;
    let lang = params
        .lang
        .filter(|l| LANGUAGES.contains(&l.as_str()))
        .unwrap_or_else(|| "en".to_owned());
    // Need-to-know: content is shown (and the view recorded) to a party's
    // coordinator, and to an operator who gives a reason; never to an
    // auditor, a recipient country (its part of the deliveries only), or,
    // once blocked, to anyone without a recorded reason.
    let blocked = detail.head.blocked_at.is_some();
    let area = ProcedureCode::try_from(detail.head.procedure.as_str())
        .ok()
        .and_then(|c| {
            state
                .registry
                .catalogue
                .current()
                .procedure(&c)
                .map(|p| p.area.to_string())
        });
    let access = scope.payload_access(&detail.visibility, blocked, area.as_deref());
    let reason = params
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| r.chars().count() >= MIN_REASON_CHARS);
    let shown = match access {
        PayloadAccess::Granted => Some(serde_json::json!({"lang": lang})),
        PayloadAccess::WithReason => {
            reason.map(|r| serde_json::json!({"lang": lang, "reason": r, "blocked": blocked}))
        }
        PayloadAccess::Denied(_) => None,
    };
    let content_shown = shown.is_some();
    let messages = match shown {
        Some(detail) => {
            audit::record_by(
                &state.pool,
                &viewer.account,
                "view_exchange",
                Some(&id.to_string()),
                detail,
            )
            .await
            .or_fail(&viewer)?;
            exchanges::messages(&state.pool, id)
                .await
                .or_fail(&viewer)?
        }
        None => Vec::new(),
    };
    let deliveries = match &detail.head.recipients {
        Some(_) => Some(
            alerts::deliveries(&state.pool, &viewer.account, id)
                .await
                .or_fail(&viewer)?,
        ),
        None => None,
    };
    if let Some(d) = &deliveries {
        let table = deliveries_table(d, &query);
        if table.csv_wanted() {
            return Ok(table.csv_response());
        }
    }
    // Corrections and objections of data subjects: that they exist is
    // metadata; what they say is content.
    let statements = crate::subjects::exchange_statements(&state.pool, id)
        .await
        .or_fail(&viewer)?;
    let catalogue = state.registry.catalogue.current();
    let running = exchanges::running_deadlines(&state.pool, &catalogue, &detail.head)
        .await
        .or_fail(&viewer)?;
    let procedure = ProcedureCode::try_from(detail.head.procedure.as_str())
        .ok()
        .and_then(|c| catalogue.procedure(&c));
    let title = procedure
        .and_then(|p| p.names.get("en"))
        .map(|n| format!("{n} — {}", detail.head.state))
        .unwrap_or_else(|| detail.head.procedure.clone());
    let head = &detail.head;
    let words = Words {
        catalogue: &catalogue,
        procedure,
        lang: &lang,
    };
    let body = html! {
        section aria-labelledby="parties-h" {
            h2 id="parties-h" { (t("exchange.parties")) }
            dl class="facts" {
                dt { (t("exchange.id")) } dd { code { (head.id) } }
                dt { (t("exchange.procedure")) } dd { a href={ "/console/catalogue/" (head.procedure) } { (head.procedure) } }
                dt { (t("exchange.state")) } dd { (words.state(&head.state)) " " code class="muted" { (head.state) } }
                dt { (t("exchange.requester")) } dd { (head.requester) }
                @if head.recipients.is_none() {
                    dt { (t("exchange.responder")) } dd { (head.responder) }
                } @else {
                    dt { (t("exchange.recipients")) } dd { (head.recipients.as_ref().map_or(0, Vec::len)) }
                }
                dt { (t("exchange.opened")) } dd { (time(head.opened_at)) }
                dt { (t("exchange.updated")) } dd { (time(head.updated_at)) }
                dt { (t("exchange.closed")) } dd { (maybe_time(head.closed_at)) }
                @if let Some(parent) = head.parent_id {
                    dt { (t("exchange.parent")) } dd { a href={ "/console/exchanges/" (parent) } { (parent) } }
                }
                @if !detail.children.is_empty() {
                    dt { (t("exchange.children")) }
                    dd { ul class="plain" { @for c in &detail.children { li { a href={ "/console/exchanges/" (c) } { (c) } } } } }
                }
                @if let (Some(p), Some(closed)) = (procedure, head.closed_at) {
                    dt { (t("exchange.blocked_from")) }
                    dd { (time(p.retention.block_at(closed))) }
                    dt { (t("exchange.deleted_from")) }
                    dd { (time(p.retention.delete_at(closed))) }
                }
            }
        }
        section aria-labelledby="sequence-h" {
            h2 id="sequence-h" { (t("exchange.sequence")) }
            (sequence_diagram(&detail))
            (steps_table(&detail, &words))
        }
        section aria-labelledby="deadlines-h" {
            h2 id="deadlines-h" { (t("exchange.deadlines")) }
            (deadlines(&detail, &running, procedure, deliveries.as_ref()))
        }
        @if let Some(d) = &deliveries {
            section aria-labelledby="deliveries-h" {
                h2 id="deliveries-h" { (t("exchange.deliveries")) }
                div id="deliveries" data-poll={ "/console/exchanges/" (head.id) "/deliveries?" (encode_query(&query)) } aria-live="polite" {
                    (deliveries_markup(d, &query))
                }
            }
        }
        @if !statements.is_empty() {
            section aria-labelledby="statements-h" {
                h2 id="statements-h" { (t("subjects.statements")) }
                ul { @for s in &statements {
                    li { (t(&format!("subjects.statement_{}", s.kind))) " · " (time(s.recorded_at)) " · " (s.recorded_by)
                         @if content_shown { @if let Some(text) = &s.statement { ": " (text) } } }
                } }
            }
        }
        @match (access, content_shown) {
            (PayloadAccess::Denied(why), _) => {
                p class="note" { (t(why)) }
            }
            (_, false) => {
                section aria-labelledby="messages-h" {
                    h2 id="messages-h" { (t("exchange.messages")) }
                    p class="note" { (t(if blocked { "exchange.reason_blocked" } else { "exchange.reason_needed" })) }
                    form method="post" action={ "/console/exchanges/" (head.id) "/read" } class="filters" {
                        (csrf(&viewer))
                        input type="hidden" name="lang" value=(lang);
                        div {
                            label for="reason" { (t("exchange.reason")) }
                            input id="reason" name="reason" size="50" required minlength=(MIN_REASON_CHARS) maxlength="500" autocomplete="off";
                        }
                        button type="submit" { (t("exchange.show_with_reason")) }
                    }
                }
            }
            (_, true) => {
                section aria-labelledby="messages-h" {
                    h2 id="messages-h" { (t("exchange.messages")) }
                    @if let Some(r) = reason {
                        p class="note" { (tf("exchange.reason_recorded", &[("reason", &r)])) }
                    }
                    // With a reason, another language is posted again
                    // (and recorded again); without, a plain link.
                    form method=(if reason.is_some() { "post" } else { "get" })
                        action={ "/console/exchanges/" (head.id) @if reason.is_some() { "/read" } } class="inline" {
                        @if let Some(r) = reason {
                            (csrf(&viewer))
                            input type="hidden" name="reason" value=(r);
                        }
                        label for="lang" { (t("exchange.language")) }
                        select id="lang" name="lang" {
                            @for l in LANGUAGES {
                                option value=(l) selected[l == lang] { (t(&format!("lang.{l}"))) }
                            }
                        }
                        button type="submit" { (t("exchange.show_in")) }
                    }
                    @if messages.is_empty() {
                        (empty("exchange.no_messages"))
                    }
                    @for m in &messages {
                        (message(m, &catalogue, &lang))
                    }
                }
            }
        }
    };
    Ok(Html(page(&viewer, "/console/exchanges", &title, body).into_string()).into_response())
}

/// The deliveries part of a 1:N exchange, refetched by the page's script.
pub(crate) async fn deliveries_part(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let id = exchange_id(&raw).or_fail(&viewer)?;
    let d = alerts::deliveries(&state.pool, &viewer.account, id)
        .await
        .or_fail(&viewer)?;
    let query = query_pairs(query.as_deref());
    Ok(Html(deliveries_markup(&d, &query).into_string()).into_response())
}

/// Every delivery of an alert, sortable; its links are relative, so they
/// work from the exchange's page the part is shown in.
fn deliveries_table(d: &ExchangeDeliveries, query: &[(String, String)]) -> Table {
    let mut table = Table::named("deliveries", "exchange.deliveries", "deliveries")
        .column("authority", "delivery.authority")
        .column("endpoint", "delivery.endpoint")
        .column("state", "delivery.state")
        .column("routed_at", "delivery.routed")
        .column("acknowledged_at", "delivery.acknowledged")
        .column("reminded_at", "delivery.reminded");
    for x in &d.deliveries {
        let word = t(&format!("delivery.state_{}", x.state));
        table.row(vec![
            Cell::code(x.authority.clone()),
            Cell::code(x.endpoint.clone()),
            Cell::shown(html! { span class={ "badge " (x.state) } { (word) } }, word),
            Cell::time(x.routed_at),
            Cell::time(x.acknowledged_at),
            Cell::time(x.reminded_at),
        ]);
    }
    table.sorted(query)
}

fn deliveries_markup(d: &ExchangeDeliveries, query: &[(String, String)]) -> Markup {
    let authorities: std::collections::BTreeSet<&str> =
        d.deliveries.iter().map(|x| x.authority.as_str()).collect();
    let acknowledged: std::collections::BTreeSet<&str> = d
        .recipients
        .iter()
        .map(String::as_str)
        .filter(|r| {
            // An authority has acknowledged when every copy it got is.
            let mine: Vec<_> = d.deliveries.iter().filter(|x| x.authority == *r).collect();
            !mine.is_empty() && mine.iter().all(|x| x.acknowledged_at.is_some())
        })
        .collect();
    html! {
        (progress(t("exchange.ack_progress"), acknowledged.len(), d.recipients.len()))
        p { (tf("exchange.ack_counts", &[
            ("queued", &d.counts.queued), ("routed", &d.counts.routed), ("acknowledged", &d.counts.acknowledged),
        ])) }
        @if d.deliveries.is_empty() {
            (empty(if d.released_at.is_none() { "exchange.held" } else { "exchange.no_deliveries" }))
        } @else {
            (deliveries_table(d, query).render())
            @if authorities.len() < d.recipients.len() {
                p class="note" { (t("exchange.some_not_yet")) }
            }
        }
    }
}

fn sequence_diagram(detail: &Detail) -> Markup {
    let head = &detail.head;
    let many = head.recipients.is_some();
    let everyone = tf(
        "exchange.all_recipients",
        &[("n", &head.recipients.as_ref().map_or(0, Vec::len))],
    );
    let coordinator = t("exchange.coordinator").to_owned();
    let mut parties = vec![head.requester.clone()];
    let mut add = |p: &str| {
        if !parties.iter().any(|x| x == p) {
            parties.push(p.to_owned());
        }
    };
    let lane = |p: &str| -> String {
        if many && p != head.requester {
            everyone.clone()
        } else {
            p.to_owned()
        }
    };
    let mut arrows = Vec::new();
    for s in &detail.steps {
        let label = format!("{} → {}", s.action, s.to_state);
        let arrow = match (&s.actor, &s.sender) {
            (Some(_), _) => {
                add(&coordinator);
                Arrow {
                    from: coordinator.clone(),
                    to: Vec::new(),
                    label,
                    time: s.at.format("%m-%d %H:%M").to_string(),
                    by_person: true,
                }
            }
            (None, Some(sender)) => {
                let from = lane(sender);
                add(&from);
                let mut to: Vec<String> = s.recipients.iter().flatten().map(|r| lane(r)).collect();
                to.dedup();
                for x in &to {
                    add(x);
                }
                Arrow {
                    from,
                    to,
                    label,
                    time: s.at.format("%m-%d %H:%M").to_string(),
                    by_person: false,
                }
            }
            (None, None) => continue,
        };
        arrows.push(arrow);
    }
    if !many && !head.responder.is_empty() {
        add(&head.responder);
    }
    sequence(t("exchange.sequence"), &parties, &arrows)
}

/// States and actions in the viewer's language (the catalogue's labels),
/// falling back to the code.
struct Words<'a> {
    catalogue: &'a Catalogue,
    procedure: Option<&'a Procedure>,
    lang: &'a str,
}

impl Words<'_> {
    fn state(&self, code: &str) -> String {
        self.procedure
            .and_then(|p| self.catalogue.state_label(p, code, self.lang))
            .unwrap_or(code)
            .to_owned()
    }

    fn action(&self, code: &str) -> String {
        self.procedure
            .and_then(|p| self.catalogue.action_label(p, code, self.lang))
            .unwrap_or(code)
            .to_owned()
    }
}

fn steps_table(detail: &Detail, words: &Words<'_>) -> Markup {
    html! {
        table class="list" {
            caption { (t("exchange.steps")) }
            thead { tr {
                th scope="col" { (t("step.at")) }
                th scope="col" { (t("step.action")) }
                th scope="col" { (t("step.from")) }
                th scope="col" { (t("step.to")) }
                th scope="col" { (t("step.by")) }
            } }
            tbody {
                @for s in &detail.steps {
                    tr {
                        td { (time(s.at)) }
                        td { (words.action(&s.action)) }
                        td { (s.from_state.as_deref().map_or("—".to_owned(), |f| words.state(f))) }
                        td { (words.state(&s.to_state)) }
                        td { @if let Some(a) = &s.actor { (tf("step.by_account", &[("name", a)])) } @else { (s.sender.as_deref().unwrap_or("—")) } }
                    }
                }
            }
        }
    }
}

fn deadlines(
    detail: &Detail,
    running: &[crate::deadline_clocks::RunningNow],
    procedure: Option<&imi_schemas::catalogue::Procedure>,
    deliveries: Option<&ExchangeDeliveries>,
) -> Markup {
    let from_fields = deliveries
        .map(|d| d.deadlines.as_slice())
        .unwrap_or_default();
    // The clocks running (or stopped) in the current state, each with the
    // act and article it comes from.
    let source = |code: &str| {
        procedure
            .and_then(|p| p.deadlines.iter().find(|d| d.code == code))
            .map(|d| d.source_text())
            .unwrap_or_default()
    };
    let now = chrono::Utc::now();
    html! {
        @if running.is_empty() && detail.deadlines.is_empty() && from_fields.is_empty() {
            (empty("exchange.no_deadlines"))
        } @else {
            table class="list" {
                thead { tr {
                    th scope="col" { (t("deadline.code")) }
                    th scope="col" { (t("deadline.due")) }
                    th scope="col" { (t("deadline.state")) }
                } }
                tbody {
                    @for r in running {
                        tr {
                            td { (r.deadline) br; small class="muted" { (source(&r.deadline)) } }
                            td { (maybe_time(r.due_at)) }
                            td {
                                @match r.due_at {
                                    None => span class="badge" { (t("deadline.stopped")) },
                                    Some(due) if due < now => span class="badge bad" { (t("deadline.overdue")) },
                                    Some(_) => span class="badge" { (t("deadline.running")) },
                                }
                            }
                        }
                    }
                    @for d in from_fields {
                        tr {
                            td { (d.deadline) " · " (d.field_date) }
                            td { (time(d.due_at)) }
                            td { @if d.late { span class="badge bad" { (t("deadline.released_late")) } } @else { span class="badge good" { (t("deadline.met")) } } }
                        }
                    }
                    @for d in &detail.deadlines {
                        tr {
                            td { (d.deadline) }
                            td { (time(d.due_at)) }
                            td { (tf("deadline.fired", &[("kind", &d.kind), ("authority", &d.authority)])) " " (time(d.fired_at)) }
                        }
                    }
                }
            }
        }
    }
}

fn message(m: &Message, catalogue: &imi_schemas::catalogue::Catalogue, lang: &str) -> Markup {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&m.raw).ok();
    let raw = parsed
        .as_ref()
        .and_then(|v| serde_json::to_string_pretty(v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&m.raw).into_owned());
    let rendered = MessageType::try_from(m.message_type.as_str())
        .ok()
        .zip(parsed.as_ref().and_then(|v| v.get("payload")))
        .and_then(|(ty, payload)| catalogue.render_lines(&ty, payload, lang).ok());
    html! {
        article class="message" id={ "m-" (m.id) } {
            h3 { (m.message_type) " · " (m.sender) " · " (time(m.received_at)) }
            div class="side-by-side" {
                div class="rendered" lang=(lang) {
                    @if let Some((title, lines)) = &rendered {
                        p class="form-title" { (title) }
                        dl class="payload" {
                            @for line in lines {
                                @let indent = format!("indent-{}", line.depth.min(6));
                                @match (&line.label, &line.value) {
                                    (Some(l), Some(v)) => { dt class=(indent) { (l) } dd class=(indent) { (v) } }
                                    (Some(l), None) => { dt class={ (indent) " group" } { (l) } dd class=(indent) {} }
                                    (None, Some(v)) => { dt class=(indent) { "•" } dd class=(indent) { (v) } }
                                    (None, None) => { dt class=(indent) { "•" } dd class=(indent) {} }
                                }
                            }
                        }
                    } @else {
                        (empty("exchange.not_rendered"))
                    }
                }
                details class="raw" open {
                    summary { (t("exchange.raw")) }
                    // Focusable: a scrollable region must be reachable by keyboard.
                    pre tabindex="0" aria-label=(t("exchange.raw")) { code { (raw) } }
                }
            }
        }
    }
}

//! Refused messages, grouped by cause as an operator works them: code,
//! sending endpoint and message type, with counts and first and last seen.
//! A group's messages, one message with its problem list, and re-driving
//! one message or a whole group after the cause is fixed (it goes through
//! the pipeline like any message and keeps its id), or discarding them.
//! Both are recorded.

use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use crate::console::auth::Viewer;
use crate::console::i18n::{t, tf};
use crate::console::layout::{csrf, empty, encode_query, page, time};
use crate::console::table::{query_pairs, Cell, Table};
use crate::console::{ConsoleError, OrFail, PageResult};
use crate::http::AppState;
use crate::scope::{PayloadAccess, Scope, Visibility};
use crate::views::audit;
use crate::views::refused::{self, GroupKey, Refused};

fn group_query(key: &GroupKey) -> String {
    let mut pairs = vec![("code".to_owned(), key.code.clone())];
    if let Some(e) = &key.endpoint {
        pairs.push(("endpoint".into(), e.clone()));
    }
    if let Some(m) = &key.message_type {
        pairs.push(("type".into(), m.clone()));
    }
    encode_query(&pairs)
}

struct ListParams {
    done: Option<String>,
    n: Option<usize>,
}

fn done_note(done: Option<&str>, n: usize) -> Markup {
    html! {
        @match done {
            Some("redriven") => p class="ok" role="status" { (tf("refused.redriven_n", &[("n", &n)])) },
            Some("discarded") => p class="ok" role="status" { (tf("refused.discarded_n", &[("n", &n)])) },
            _ => {},
        }
    }
}

pub(crate) async fn groups(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let query = query_pairs(raw.as_deref());
    let params = list_params(&query);
    let scope = Scope::of(&viewer.account);
    let groups = refused::groups(&state.pool, &scope)
        .await
        .or_fail(&viewer)?;
    let mut table = Table::new("refused.title", "refused")
        .column("code", "refused.code")
        .column("endpoint", "refused.endpoint")
        .column("message_type", "refused.type")
        .column("count", "refused.count")
        .column("first_seen", "refused.first_seen")
        .column("last_seen", "refused.last_seen")
        .column("detail", "refused.detail");
    for g in groups {
        let key = GroupKey {
            code: g.code.clone(),
            endpoint: g.endpoint.clone(),
            message_type: g.message_type.clone(),
        };
        table.row(vec![
            Cell::code(g.code).link(format!("/console/refused/group?{}", group_query(&key))),
            Cell::maybe_text(g.endpoint),
            Cell::maybe_text(g.message_type),
            Cell::number(g.count as f64),
            Cell::time(g.first_seen),
            Cell::time(g.last_seen),
            Cell::text(g.detail).class("detail"),
        ]);
    }
    let table = table.sorted(&query);
    if table.csv_wanted() {
        return Ok(table.csv_response());
    }
    let body = html! {
        (done_note(params.done.as_deref(), params.n.unwrap_or(0)))
        p class="intro" { (t("refused.intro")) }
        @if table.is_empty() {
            (empty("refused.empty"))
        } @else {
            (table.render())
        }
    };
    Ok(
        Html(page(&viewer, "/console/refused", t("refused.title"), body).into_string())
            .into_response(),
    )
}

fn parse_key(query: &[(String, String)]) -> GroupKey {
    let mut key = GroupKey::default();
    for (k, v) in query {
        match k.as_str() {
            "code" => key.code = v.clone(),
            "endpoint" => key.endpoint = Some(v.clone()),
            "type" => key.message_type = Some(v.clone()),
            _ => {}
        }
    }
    key
}

/// The one-shot note after an action (`done=redriven&n=3`).
fn list_params(query: &[(String, String)]) -> ListParams {
    let value = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    ListParams {
        done: value("done"),
        n: value("n").and_then(|n| n.parse().ok()),
    }
}

pub(crate) async fn group(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let query = query_pairs(raw.as_deref());
    let (key, params) = (parse_key(&query), list_params(&query));
    let scope = Scope::of(&viewer.account);
    let rows = refused::in_group(&state.pool, &scope, &key)
        .await
        .or_fail(&viewer)?;
    let mut table = Table::new("refused.group_caption", "refused-group")
        .column("received_at", "refused.received")
        .column("message_id", "refused.message_id")
        .column("detail", "refused.detail");
    for r in &rows {
        table.row(vec![
            Cell::time(r.received_at).link(format!("/console/refused/{}", r.id)),
            match &r.message_id {
                Some(m) => Cell::code(m.clone()),
                None => Cell::maybe_text(None::<String>),
            },
            Cell::text(r.detail.clone()).class("detail"),
        ]);
    }
    let table = table.sorted(&query);
    if table.csv_wanted() {
        return Ok(table.csv_response());
    }
    let redrivable = rows.iter().filter(|r| r.can_be_redriven()).count();
    let title = tf("refused.group_title", &[("code", &key.code)]);
    let body = html! {
        (done_note(params.done.as_deref(), params.n.unwrap_or(0)))
        dl class="facts" {
            dt { (t("refused.code")) } dd { code { (key.code) } }
            dt { (t("refused.endpoint")) } dd { (key.endpoint.as_deref().unwrap_or("—")) }
            dt { (t("refused.type")) } dd { (key.message_type.as_deref().unwrap_or("—")) }
            dt { (t("refused.count")) } dd { (rows.len()) }
        }
        @if rows.is_empty() {
            (empty("refused.group_empty"))
        } @else {
            @if !viewer.is_auditor() {
                div class="actions" {
                    form method="post" action="/console/refused/redrive" {
                        (csrf(&viewer))
                        (key_fields(&key))
                        button type="submit" disabled[redrivable == 0] { (tf("refused.redrive_group", &[("n", &redrivable)])) }
                    }
                    form method="post" action="/console/refused/discard" {
                        (csrf(&viewer))
                        (key_fields(&key))
                        button type="submit" class="secondary" { (tf("refused.discard_group", &[("n", &rows.len())])) }
                    }
                }
                p class="note" { (t("refused.redrive_note")) }
            }
            (table.render())
        }
    };
    Ok(Html(page(&viewer, "/console/refused", &title, body).into_string()).into_response())
}

fn key_fields(key: &GroupKey) -> Markup {
    html! {
        input type="hidden" name="code" value=(key.code);
        @if let Some(e) = &key.endpoint { input type="hidden" name="endpoint" value=(e); }
        @if let Some(m) = &key.message_type { input type="hidden" name="type" value=(m); }
    }
}

/// An operator's reason for reading a refused message's content.
#[derive(Deserialize)]
pub(crate) struct ReasonParams {
    reason: Option<String>,
}

pub(crate) async fn one(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> PageResult {
    render_one(state, viewer, id, None).await
}

/// An operator's reason, posted with the session's CSRF token (checked
/// before this runs): a link cannot make a browser record one.
pub(crate) async fn read(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(params): Form<ReasonParams>,
) -> PageResult {
    render_one(state, viewer, id, params.reason).await
}

async fn render_one(
    state: AppState,
    viewer: Viewer,
    id: i64,
    reason: Option<String>,
) -> PageResult {
    let scope = Scope::of(&viewer.account);
    let r = refused::one(&state.pool, &scope, id)
        .await
        .or_fail(&viewer)?
        .ok_or(ConsoleError::NotFound)
        .or_fail(&viewer)?;
    // Need-to-know, as for an exchange: the body and the explanations that
    // quote it go to the sender's country's coordinators and to an operator
    // with a reason (recorded), never to an auditor.
    let area = r
        .message_type
        .as_deref()
        .and_then(|t| imi_schemas::ids::MessageType::try_from(t).ok())
        .and_then(|t| {
            state
                .registry
                .catalogue
                .current()
                .procedure(&t.procedure)
                .map(|p| p.area.to_string())
        });
    let access = scope.payload_access(&Visibility::Whole, false, area.as_deref());
    let reason = reason
        .as_deref()
        .map(str::trim)
        .filter(|r| r.chars().count() >= 10);
    let shown = match access {
        PayloadAccess::Granted => Some(serde_json::json!({})),
        PayloadAccess::WithReason => reason.map(|r| serde_json::json!({"reason": r})),
        PayloadAccess::Denied(_) => None,
    };
    let content_shown = shown.is_some();
    if let Some(detail) = shown {
        audit::record_by(
            &state.pool,
            &viewer.account,
            "view_refused",
            Some(&id.to_string()),
            detail,
        )
        .await
        .or_fail(&viewer)?;
    }
    let errors: Vec<(String, String)> = r
        .errors
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e.get("pointer")
                    .and_then(|p| p.as_str())
                    .unwrap_or("")
                    .to_owned(),
                if content_shown {
                    e.get("detail")
                        .and_then(|p| p.as_str())
                        .unwrap_or("")
                        .to_owned()
                } else {
                    String::new()
                },
            )
        })
        .collect();
    let body_text = String::from_utf8_lossy(&r.body).into_owned();
    let title = tf("refused.one_title", &[("code", &r.code)]);
    let body = html! {
        dl class="facts" {
            dt { (t("refused.received")) } dd { (time(r.received_at)) }
            dt { (t("refused.message_id")) } dd { code { (r.message_id.as_deref().unwrap_or("—")) } }
            dt { (t("refused.endpoint")) } dd { (r.user_id.as_deref().unwrap_or("—")) }
            dt { (t("refused.type")) } dd { (r.message_type.as_deref().unwrap_or("—")) }
            dt { (t("refused.correlation")) } dd { (r.correlation_id.as_deref().unwrap_or("—")) }
            dt { (t("refused.code")) } dd { code { (r.code) } }
            dt { (t("refused.detail")) } dd { (r.detail) }
            dt { (t("refused.size")) } dd { (tf("refused.bytes", &[("n", &r.body_size)])) }
            @if let Some(res) = &r.resolution {
                dt { (t("refused.resolution")) }
                dd { (t(&format!("refused.{res}"))) " · " (r.resolved_by.as_deref().unwrap_or("")) " · " (crate::console::layout::maybe_time(r.resolved_at)) }
            }
        }
        h2 { (t("refused.problems")) }
        @if errors.is_empty() {
            (empty("refused.no_problems"))
        } @else {
            table class="list" {
                thead { tr { th scope="col" { (t("refused.pointer")) } th scope="col" { (t("refused.problem")) } } }
                tbody { @for (p, d) in &errors { tr { td { code { (p) } } td { (d) } } } }
            }
        }
        @if r.can_be_redriven() && !viewer.is_auditor() {
            div class="actions" {
                form method="post" action="/console/refused/redrive" {
                    (csrf(&viewer))
                    input type="hidden" name="id" value=(r.id);
                    button type="submit" { (t("refused.redrive_one")) }
                }
                form method="post" action="/console/refused/discard" {
                    (csrf(&viewer))
                    input type="hidden" name="id" value=(r.id);
                    button type="submit" class="secondary" { (t("refused.discard_one")) }
                }
            }
        } @else if r.resolution.is_none() && r.body.len() != r.body_size.max(0) as usize {
            p class="note" { (t("refused.cannot_redrive")) }
        }
        h2 { (t("refused.body")) }
        @match (access, content_shown) {
            (PayloadAccess::Denied(why), _) => { p class="note" { (t(why)) } }
            (_, false) => {
                p class="note" { (t("exchange.reason_needed")) }
                form method="post" action={ "/console/refused/" (r.id) "/read" } class="filters" {
                    (csrf(&viewer))
                    div {
                        label for="reason" { (t("exchange.reason")) }
                        input id="reason" name="reason" size="50" required minlength="10" maxlength="500" autocomplete="off";
                    }
                    button type="submit" { (t("exchange.show_with_reason")) }
                }
            }
            (_, true) => {
                @if r.body.is_empty() { (empty("refused.body_erased")) } @else { pre class="raw" tabindex="0" aria-label=(t("refused.body")) { code { (body_text) } } }
            }
        }
    };
    Ok(Html(page(&viewer, "/console/refused", &title, body).into_string()).into_response())
}

/// A re-drive or discard names one message (`id`) or a group.
#[derive(Deserialize)]
pub(crate) struct Selection {
    id: Option<i64>,
    code: Option<String>,
    endpoint: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
}

async fn selected(
    state: &AppState,
    viewer: &Viewer,
    s: &Selection,
) -> Result<(Vec<Refused>, Option<GroupKey>), ConsoleError> {
    let scope = Scope::of(&viewer.account);
    if let Some(id) = s.id {
        let one = refused::one(&state.pool, &scope, id)
            .await?
            .ok_or(ConsoleError::NotFound)?;
        return Ok((vec![one], None));
    }
    let key = GroupKey {
        code: s
            .code
            .clone()
            .ok_or_else(|| ConsoleError::Invalid(t("refused.no_selection").into()))?,
        endpoint: s.endpoint.clone(),
        message_type: s.message_type.clone(),
    };
    Ok((
        refused::in_group(&state.pool, &scope, &key).await?,
        Some(key),
    ))
}

fn back(key: Option<&GroupKey>, id: Option<i64>, done: &str, n: usize) -> String {
    match (key, id) {
        (Some(k), _) => format!(
            "/console/refused/group?{}&done={done}&n={n}",
            group_query(k)
        ),
        (None, Some(_)) | (None, None) => format!("/console/refused?done={done}&n={n}"),
    }
}

pub(crate) async fn redrive(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(s): Form<Selection>,
) -> PageResult {
    let (rows, key) = selected(&state, &viewer, &s).await.or_fail(&viewer)?;
    let (ids, _) = match crate::refusals::redrive(
        &state.pipeline,
        &viewer.account,
        rows,
        key.as_ref(),
    )
    .await
    {
        Ok(done) => done,
        Err(crate::refusals::RedriveError::Nothing) => {
            return Err(ConsoleError::Conflict(
                t("refused.nothing_to_redrive").into(),
            ))
            .or_fail(&viewer)
        }
        Err(crate::refusals::RedriveError::Pipeline(e)) => {
            return Err(ConsoleError::Conflict(e)).or_fail(&viewer)
        }
        Err(crate::refusals::RedriveError::Database(e)) => return Err(e).or_fail(&viewer),
    };
    Ok(Redirect::to(&back(key.as_ref(), s.id, "redriven", ids.len())).into_response())
}

pub(crate) async fn discard(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(s): Form<Selection>,
) -> PageResult {
    let (rows, key) = selected(&state, &viewer, &s).await.or_fail(&viewer)?;
    let ids: Vec<i64> = rows
        .iter()
        .filter(|r| r.resolution.is_none())
        .map(|r| r.id)
        .collect();
    let n = refused::resolve(&state.pool, &ids, "discarded", &viewer.account.name)
        .await
        .or_fail(&viewer)?;
    audit::record_by(
        &state.pool,
        &viewer.account,
        "discard",
        key.as_ref().map(|k| k.code.as_str()),
        serde_json::json!({"refused": ids}),
    )
    .await
    .or_fail(&viewer)?;
    Ok(Redirect::to(&back(key.as_ref(), s.id, "discarded", n as usize)).into_response())
}

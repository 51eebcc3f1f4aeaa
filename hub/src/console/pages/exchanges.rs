//! The exchanges list: filtered by procedure, state, country, authority and
//! date, found by id, newest or oldest first, paged by keyset, every view
//! in its URL (bookmark it, share it), and the same list as CSV.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use chrono::{DateTime, NaiveDate, Utc};
use maud::html;
use uuid::Uuid;

use crate::console::auth::Viewer;
use crate::console::i18n::{t, tf};
use crate::console::layout::{csv, csv_link, empty, encode_query, page, sort_heading, time};
use crate::console::{ConsoleError, OrFail, PageResult};
use crate::http::AppState;
use crate::scope::Scope;
use crate::views::exchanges::{self, Cursor, ExchangeFilter, ExchangeRow, Order};

/// Rows per page.
const PAGE: i64 = 50;
/// Rows in a CSV download at most.
const CSV_ROWS: i64 = 10_000;

/// The list's query string, parsed.
#[derive(Debug, Default)]
struct Query {
    filter: ExchangeFilter,
    /// `created` (oldest first) or `-created` (newest first, the default).
    sort: String,
    after: Option<Cursor>,
    id: Option<String>,
    csv: bool,
    /// As given, for links that keep it.
    pairs: Vec<(String, String)>,
}

fn parse(raw: Option<&str>) -> Result<Query, ConsoleError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let mut q = Query {
        sort: "-created".into(),
        ..Query::default()
    };
    let date = |v: &str| -> Result<DateTime<Utc>, ConsoleError> {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
            .map_err(|_| ConsoleError::Invalid(tf("exchanges.bad_date", &[("value", &v)])))
    };
    for (k, v) in &pairs {
        let v = v.trim();
        match k.as_str() {
            "procedure" => q.filter.procedure = Some(v.to_owned()),
            "state" => q.filter.state = Some(v.to_owned()),
            "country" => q.filter.country = Some(v.to_ascii_uppercase()),
            "authority" => q.filter.authority = Some(v.to_ascii_uppercase()),
            "from" => q.filter.from = Some(date(v)?),
            "until" => q.filter.until = Some(date(v)? + chrono::Duration::days(1)),
            "sort" if v == "created" || v == "-created" => q.sort = v.to_owned(),
            "after" => {
                q.after = Some(
                    Cursor::decode(v)
                        .ok_or_else(|| ConsoleError::Invalid(t("exchanges.bad_cursor").into()))?,
                )
            }
            "id" => q.id = Some(v.to_owned()),
            "format" => q.csv = v == "csv",
            _ => {}
        }
    }
    q.pairs = pairs;
    Ok(q)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let q = parse(raw.as_deref()).or_fail(&viewer)?;
    // Find by id: straight to the exchange.
    if let Some(id) = &q.id {
        return match Uuid::parse_str(id) {
            Ok(id) => Ok(Redirect::to(&format!("/console/exchanges/{id}")).into_response()),
            Err(_) => Err(ConsoleError::Invalid(tf(
                "exchanges.bad_id",
                &[("value", id)],
            )))
            .or_fail(&viewer),
        };
    }
    let scope = Scope::of(&viewer.account);
    let order = if q.sort == "created" {
        Order::Oldest
    } else {
        Order::Newest
    };
    if q.csv {
        let rows = exchanges::list(&state.pool, &scope, &q.filter, order, q.after, CSV_ROWS)
            .await
            .or_fail(&viewer)?;
        let text = csv(
            &[
                "id",
                "procedure",
                "state",
                "requester",
                "responder",
                "recipients",
                "opened",
                "updated",
                "closed",
            ],
            rows.into_iter().take(CSV_ROWS as usize).map(|e| {
                vec![
                    e.id.to_string(),
                    e.procedure,
                    e.state,
                    e.requester,
                    e.responder,
                    e.recipients.map(|n| n.to_string()).unwrap_or_default(),
                    e.created_at.to_rfc3339(),
                    e.updated_at.to_rfc3339(),
                    e.closed_at.map(|c| c.to_rfc3339()).unwrap_or_default(),
                ]
            }),
        );
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"exchanges.csv\"",
                ),
            ],
            text,
        )
            .into_response());
    }
    let mut rows = exchanges::list(&state.pool, &scope, &q.filter, order, q.after, PAGE)
        .await
        .or_fail(&viewer)?;
    let next = (rows.len() as i64 > PAGE).then(|| {
        rows.truncate(PAGE as usize);
        rows.last().map(ExchangeRow::cursor)
    });
    let catalogue = state.registry.catalogue.current();
    let procedures: Vec<String> = catalogue.procedures().map(|p| p.code.to_string()).collect();
    let keep: Vec<(String, String)> = q
        .pairs
        .iter()
        .filter(|(k, _)| k != "after" && k != "format")
        .cloned()
        .collect();
    let value = |key: &str| {
        q.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let body = html! {
        form method="get" action="/console/exchanges" class="filters" role="search" aria-label=(t("exchanges.filters")) {
            div {
                label for="f-id" { (t("exchanges.find_id")) }
                input id="f-id" name="id" type="text" inputmode="text" placeholder="0193…" size="38";
            }
            div {
                label for="f-procedure" { (t("exchange.procedure")) }
                select id="f-procedure" name="procedure" {
                    option value="" { (t("filter.any")) }
                    @for p in &procedures {
                        option value=(p) selected[value("procedure") == *p] { (p) }
                    }
                }
            }
            div {
                label for="f-state" { (t("exchange.state")) }
                input id="f-state" name="state" type="text" value=(value("state")) size="14";
            }
            div {
                label for="f-country" { (t("exchange.country")) }
                input id="f-country" name="country" type="text" value=(value("country")) size="3" maxlength="2";
            }
            div {
                label for="f-authority" { (t("exchange.authority")) }
                input id="f-authority" name="authority" type="text" value=(value("authority")) size="16";
            }
            div {
                label for="f-from" { (t("filter.from")) }
                input id="f-from" name="from" type="date" value=(value("from"));
            }
            div {
                label for="f-until" { (t("filter.until")) }
                input id="f-until" name="until" type="date" value=(value("until"));
            }
            input type="hidden" name="sort" value=(q.sort);
            button type="submit" { (t("filter.apply")) }
            a href="/console/exchanges" { (t("filter.clear")) }
        }
        p class="tools" { (csv_link("/console/exchanges", &encode_query(&keep))) }
        @if rows.is_empty() {
            (empty(if q.pairs.is_empty() { "exchanges.empty" } else { "exchanges.empty_filtered" }))
        } @else {
            table class="list" {
                caption class="visually-hidden" { (t("exchanges.title")) }
                thead { tr {
                    (sort_heading(t("exchange.opened"), "created", &q.sort, &keep))
                    th scope="col" { (t("exchange.procedure")) }
                    th scope="col" { (t("exchange.state")) }
                    th scope="col" { (t("exchange.requester")) }
                    th scope="col" { (t("exchange.counterpart")) }
                    th scope="col" { (t("exchange.updated")) }
                } }
                tbody {
                    @for e in &rows {
                        tr {
                            td { a href={ "/console/exchanges/" (e.id) } { (time(e.created_at)) } }
                            td { (e.procedure) }
                            td { (e.state) }
                            td { (e.requester) }
                            td { @if let Some(n) = e.recipients { (tf("exchange.n_recipients", &[("n", &n)])) } @else { (e.responder) } }
                            td { (time(e.updated_at)) }
                        }
                    }
                }
            }
            nav class="pager" aria-label=(t("pager.label")) {
                @if q.after.is_some() {
                    a href={ "?" (encode_query(&keep)) } { (t("pager.first")) }
                }
                @if let Some(Some(cursor)) = next {
                    @let pairs = with_cursor(&keep, cursor);
                    a href={ "?" (encode_query(&pairs)) } rel="next" { (t("pager.next")) }
                }
            }
        }
    };
    Ok(
        Html(page(&viewer, "/console/exchanges", t("exchanges.title"), body).into_string())
            .into_response(),
    )
}

fn with_cursor(keep: &[(String, String)], cursor: Cursor) -> Vec<(String, String)> {
    let mut pairs = keep.to_vec();
    pairs.push(("after".to_owned(), cursor.encode()));
    pairs
}

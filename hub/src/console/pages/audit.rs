//! The audit log: registry steps, logins (failed ones too), views of
//! exchanges' content, re-drives and discards; filtered by action,
//! account, subject and dates through the URL, newest or oldest first,
//! paged by time, downloadable as CSV.

use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse};
use chrono::{DateTime, NaiveDate, Utc};
use maud::html;

use crate::console::auth::Viewer;
use crate::console::i18n::{t, tf};
use crate::console::layout::{csv, csv_link, empty, encode_query, page, sort_heading, time};
use crate::console::table::query_pairs;
use crate::console::{ConsoleError, OrFail, PageResult};
use crate::http::AppState;
use crate::views::audit::{self, AuditFilter};

const PAGE: i64 = 200;
/// Entries in a CSV download at most.
const CSV_ROWS: i64 = 10_000;

/// The page's query: filters, order (`at` oldest first, `-at` newest first,
/// the default), where the previous page ended, CSV or not.
struct Params {
    filter: AuditFilter,
    sort: &'static str,
    csv: bool,
    /// Filters and order, for links that keep them.
    keep: Vec<(String, String)>,
}

fn parse(raw: Option<&str>) -> Result<Params, ConsoleError> {
    let mut p = Params {
        filter: AuditFilter::default(),
        sort: "-at",
        csv: false,
        keep: Vec::new(),
    };
    let date = |v: &str| -> Result<DateTime<Utc>, ConsoleError> {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
            .map_err(|_| ConsoleError::Invalid(tf("exchanges.bad_date", &[("value", &v)])))
    };
    for (k, v) in query_pairs(raw) {
        let v = v.trim().to_owned();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "action" => p.filter.action = Some(v.clone()),
            "account" => p.filter.account = Some(v.clone()),
            "subject" => p.filter.subject = Some(v.clone()),
            "from" => p.filter.from = Some(date(&v)?),
            "until" => p.filter.until = Some(date(&v)? + chrono::Duration::days(1)),
            "sort" if v == "at" => p.sort = "at",
            "sort" => p.sort = "-at",
            "past" => {
                p.filter.past = Some(
                    DateTime::parse_from_rfc3339(&v)
                        .map_err(|_| ConsoleError::Invalid(t("exchanges.bad_cursor").into()))?
                        .with_timezone(&Utc),
                );
                continue;
            }
            "format" => {
                p.csv = v == "csv";
                continue;
            }
            _ => continue,
        }
        p.keep.push((k, v));
    }
    p.filter.oldest_first = p.sort == "at";
    Ok(p)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let params = parse(raw.as_deref()).or_fail(&viewer)?;
    let filter = &params.filter;
    let limit = if params.csv { CSV_ROWS } else { PAGE };
    let entries = audit::entries(&state.pool, filter, limit)
        .await
        .or_fail(&viewer)?;
    if params.csv {
        let text = csv(
            &["at", "source", "account", "action", "subject", "detail"],
            entries.into_iter().map(|e| {
                vec![
                    e.at.to_rfc3339(),
                    e.source,
                    e.account.unwrap_or_default(),
                    e.action,
                    e.subject.unwrap_or_default(),
                    e.detail.to_string(),
                ]
            }),
        );
        return Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit.csv\"",
                ),
            ],
            text,
        )
            .into_response());
    }
    let keep = &params.keep;
    let value = |key: &str| {
        keep.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let past = (entries.len() as i64 == PAGE)
        .then(|| entries.last().map(|e| e.at))
        .flatten();
    let body = html! {
        form method="get" class="filters" role="search" {
            div {
                label for="action" { (t("audit.action")) }
                input id="action" name="action" type="text" value=(value("action")) placeholder="login, view_exchange, approved…";
            }
            div {
                label for="account" { (t("audit.account")) }
                input id="account" name="account" type="text" value=(value("account"));
            }
            div {
                label for="subject" { (t("audit.subject")) }
                input id="subject" name="subject" type="text" value=(value("subject")) size="20";
            }
            div {
                label for="from" { (t("audit.from")) }
                input id="from" name="from" type="date" value=(value("from"));
            }
            div {
                label for="until" { (t("audit.until")) }
                input id="until" name="until" type="date" value=(value("until"));
            }
            input type="hidden" name="sort" value=(params.sort);
            button type="submit" { (t("filter.apply")) }
            a href="/console/audit" { (t("filter.clear")) }
        }
        p class="tools" { (csv_link("/console/audit", &encode_query(keep))) }
        @if entries.is_empty() {
            (empty("audit.empty"))
        } @else {
            table class="list" {
                caption class="visually-hidden" { (t("audit.title")) }
                thead { tr {
                    (sort_heading(t("audit.at"), "at", params.sort, keep))
                    th scope="col" { (t("audit.source")) }
                    th scope="col" { (t("audit.account")) }
                    th scope="col" { (t("audit.action")) }
                    th scope="col" { (t("audit.subject")) }
                    th scope="col" { (t("audit.detail")) }
                } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (time(e.at)) }
                            td { (t(&format!("audit.source_{}", e.source))) }
                            td { (e.account.as_deref().unwrap_or("—")) }
                            td { code { (e.action) } }
                            td { @if let Some(s) = &e.subject { @if uuid::Uuid::parse_str(s).is_ok() { a href={ "/console/exchanges/" (s) } { (s) } } @else { (s) } } }
                            td class="detail" { code { (e.detail) } }
                        }
                    }
                }
            }
            nav class="pager" aria-label=(t("pager.label")) {
                @if filter.past.is_some() {
                    a href={ "?" (encode_query(keep)) } { (t("pager.first")) }
                }
                @if let Some(at) = past {
                    @let mut pairs = keep.clone();
                    a href={ "?" (encode_query(&{ pairs.push(("past".into(), at.to_rfc3339())); pairs })) } rel="next" { (t("pager.next")) }
                }
            }
        }
    };
    Ok(Html(page(&viewer, "/console/audit", t("audit.title"), body).into_string()).into_response())
}

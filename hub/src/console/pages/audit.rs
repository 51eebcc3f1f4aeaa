//! The audit log: registry steps, logins (failed ones too), views of
//! exchanges' content, re-drives and discards, filterable by action and
//! account, newest first.

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse};
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;

use crate::console::auth::Viewer;
use crate::console::i18n::t;
use crate::console::layout::{csv, csv_link, empty, encode_query, page, time};
use crate::console::{OrFail, PageResult};
use crate::http::AppState;
use crate::views::audit::{self, AuditFilter};

const PAGE: i64 = 200;

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    action: Option<String>,
    account: Option<String>,
    before: Option<DateTime<Utc>>,
    format: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<Params>,
) -> PageResult {
    let filter = AuditFilter {
        action: params.action.clone().filter(|a| !a.is_empty()),
        account: params.account.clone().filter(|a| !a.is_empty()),
        before: params.before,
    };
    let csv_wanted = params.format.as_deref() == Some("csv");
    let limit = if csv_wanted { 10_000 } else { PAGE };
    let entries = audit::entries(&state.pool, &filter, limit)
        .await
        .or_fail(&viewer)?;
    if csv_wanted {
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
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            text,
        )
            .into_response());
    }
    let mut keep = Vec::new();
    if let Some(a) = &filter.action {
        keep.push(("action".to_owned(), a.clone()));
    }
    if let Some(a) = &filter.account {
        keep.push(("account".to_owned(), a.clone()));
    }
    let older = (entries.len() as i64 == PAGE)
        .then(|| entries.last().map(|e| e.at))
        .flatten();
    let body = html! {
        form method="get" class="filters" role="search" {
            div {
                label for="action" { (t("audit.action")) }
                input id="action" name="action" type="text" value=(filter.action.as_deref().unwrap_or("")) placeholder="login, view_exchange, approved…";
            }
            div {
                label for="account" { (t("audit.account")) }
                input id="account" name="account" type="text" value=(filter.account.as_deref().unwrap_or(""));
            }
            button type="submit" { (t("filter.apply")) }
        }
        p class="tools" { (csv_link("/console/audit", &encode_query(&keep))) }
        @if entries.is_empty() {
            (empty("audit.empty"))
        } @else {
            table class="list" {
                thead { tr {
                    th scope="col" { (t("audit.at")) }
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
            @if let Some(at) = older {
                @let mut pairs = keep.clone();
                nav class="pager" aria-label=(t("pager.label")) {
                    a href={ "?" (encode_query(&{ pairs.push(("before".into(), at.to_rfc3339())); pairs })) } rel="next" { (t("pager.older")) }
                }
            }
        }
    };
    Ok(Html(page(&viewer, "/console/audit", t("audit.title"), body).into_string()).into_response())
}

//! Statistics: the Commission's figures for requests as charts, per month
//! and per area and procedure — exchanges opened, time to accept, time to
//! answer, the share answered by the agreed date, and ratings.

use std::collections::BTreeMap;

use axum::extract::{Query, RawQuery, State};
use axum::response::{Html, IntoResponse};
use imi_schemas::ids::ProcedureCode;
use maud::html;
use serde::Deserialize;

use crate::console::auth::Viewer;
use crate::console::i18n::t;
use crate::console::layout::{csv, empty, page};
use crate::console::svg::{bar_chart, Bar};
use crate::console::table::{query_pairs, Cell, Table};
use crate::console::{OrFail, PageResult};
use crate::http::AppState;
use crate::views::figures::{self, Figures, Grouping};

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    procedure: Option<String>,
    area: Option<String>,
    format: Option<String>,
    table: Option<String>,
}

/// One month of one selection, summed over its procedures.
#[derive(Default, Clone)]
struct Month {
    opened: i64,
    accepted: i64,
    accepted_within_7_days: i64,
    hours_to_accept: (f64, i64),
    answered: i64,
    days_to_answer: (f64, i64),
    answered_by_agreed_date: i64,
    rating: (f64, i64),
}

impl Month {
    fn add(&mut self, f: &Figures) {
        self.opened += f.opened;
        self.accepted += f.accepted;
        self.accepted_within_7_days += f.accepted_within_7_days;
        if let Some(h) = f.average_hours_to_accept {
            self.hours_to_accept.0 += h * f.accepted as f64;
            self.hours_to_accept.1 += f.accepted;
        }
        self.answered += f.answered;
        if let Some(d) = f.average_days_to_answer {
            self.days_to_answer.0 += d * f.answered as f64;
            self.days_to_answer.1 += f.answered;
        }
        self.answered_by_agreed_date += f.answered_by_agreed_date;
        if let Some(r) = f.average_rating {
            self.rating.0 += r * f.rated as f64;
            self.rating.1 += f.rated;
        }
    }
    fn mean((sum, n): (f64, i64)) -> f64 {
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<Params>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let catalogue = state.registry.catalogue.current();
    let procedure = params.procedure.clone().filter(|p| !p.is_empty());
    let area = params.area.clone().filter(|a| !a.is_empty());
    let rows = figures::figures(
        &state.pool,
        procedure.as_deref(),
        Grouping::MonthAndProcedure,
    )
    .await
    .or_fail(&viewer)?;
    let in_area = |f: &Figures| {
        area.as_deref().is_none_or(|a| {
            ProcedureCode::try_from(f.procedure.as_str())
                .ok()
                .and_then(|c| catalogue.procedure(&c))
                .is_some_and(|p| p.area.as_str() == a)
        })
    };
    let rows: Vec<Figures> = rows.into_iter().filter(|f| in_area(f)).collect();
    let detail_csv =
        params.format.as_deref() == Some("csv") && params.table.as_deref() == Some("procedures");
    if detail_csv {
        let text = csv(
            &[
                "month",
                "procedure",
                "opened",
                "accepted",
                "accepted_within_7_days",
                "average_hours_to_accept",
                "answered",
                "average_days_to_answer",
                "answered_by_agreed_date",
                "rated",
                "average_rating",
            ],
            rows.iter().map(|f| {
                vec![
                    f.month
                        .map(|m| m.format("%Y-%m").to_string())
                        .unwrap_or_default(),
                    f.procedure.clone(),
                    f.opened.to_string(),
                    f.accepted.to_string(),
                    f.accepted_within_7_days.to_string(),
                    f.average_hours_to_accept
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_default(),
                    f.answered.to_string(),
                    f.average_days_to_answer
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_default(),
                    f.answered_by_agreed_date.to_string(),
                    f.rated.to_string(),
                    f.average_rating
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_default(),
                ]
            }),
        );
        return Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"statistics-by-procedure.csv\"",
                ),
            ],
            text,
        )
            .into_response());
    }
    let mut months: BTreeMap<String, Month> = BTreeMap::new();
    for f in &rows {
        let key = f
            .month
            .map(|m| m.format("%Y-%m").to_string())
            .unwrap_or_default();
        months.entry(key).or_default().add(f);
    }
    let bars = |pick: &dyn Fn(&Month) -> (f64, f64)| -> Vec<Bar> {
        months
            .iter()
            .map(|(m, v)| Bar {
                label: m.clone(),
                values: pick(v),
            })
            .collect()
    };
    let mut table = Table::new("statistics.table", "statistics-by-month")
        .column("month", "statistics.month")
        .column("opened", "statistics.opened")
        .column("hours_to_accept", "statistics.hours_to_accept")
        .column("days_to_answer", "statistics.days_to_answer")
        .column("share_by_agreed_date", "statistics.share_agreed")
        .column("rating", "statistics.rating");
    let one_decimal = |v: f64| Cell::shown(html! { (format!("{v:.1}")) }, format!("{v:.1}"));
    for (month, m) in &months {
        let share = (m.answered > 0)
            .then(|| (m.answered_by_agreed_date as f64 * 100.0 / m.answered as f64).round());
        table.row(vec![
            Cell::text(month.clone()),
            Cell::number(m.opened as f64),
            one_decimal(Month::mean(m.hours_to_accept)).class("num"),
            one_decimal(Month::mean(m.days_to_answer)).class("num"),
            Cell::maybe_number(share),
            match m.rating.1 {
                0 => Cell::maybe_number(None::<f64>),
                _ => one_decimal(Month::mean(m.rating)).class("num"),
            },
        ]);
    }
    let table = table.sorted(&query_pairs(raw.as_deref()));
    if table.csv_wanted() {
        return Ok(table.csv_response());
    }
    let query = {
        let mut pairs = Vec::new();
        if let Some(p) = &procedure {
            pairs.push(("procedure".to_owned(), p.clone()));
        }
        if let Some(a) = &area {
            pairs.push(("area".to_owned(), a.clone()));
        }
        crate::console::layout::encode_query(&pairs)
    };
    let body = html! {
        form method="get" class="filters" {
            div {
                label for="area" { (t("catalogue.area")) }
                select id="area" name="area" {
                    option value="" { (t("filter.any")) }
                    @for a in catalogue.areas() {
                        option value=(a.code.as_str()) selected[area.as_deref() == Some(a.code.as_str())] { (a.names.get("en").map(String::as_str).unwrap_or(a.code.as_str())) }
                    }
                }
            }
            div {
                label for="procedure" { (t("exchange.procedure")) }
                select id="procedure" name="procedure" {
                    option value="" { (t("filter.any")) }
                    @for p in catalogue.procedures() {
                        option value=(p.code.as_str()) selected[procedure.as_deref() == Some(p.code.as_str())] { (p.code.as_str()) }
                    }
                }
            }
            button type="submit" { (t("filter.apply")) }
        }
        p class="tools" {
            a class="download" href={ "/console/statistics?" (query) (if query.is_empty() { "" } else { "&" }) "format=csv&table=procedures" } { (t("statistics.csv_detail")) }
        }
        @if months.is_empty() {
            (empty("statistics.empty"))
        } @else {
            section aria-labelledby="opened-h" {
                h2 id="opened-h" { (t("statistics.opened")) }
                (bar_chart(t("statistics.opened"), (t("statistics.accepted_7"), t("statistics.accepted_later")),
                    &bars(&|m| (m.accepted_within_7_days as f64, (m.opened - m.accepted_within_7_days) as f64)), 1))
            }
            section aria-labelledby="answer-h" {
                h2 id="answer-h" { (t("statistics.answered")) }
                (bar_chart(t("statistics.answered"), (t("statistics.by_agreed_date"), t("statistics.after_agreed_date")),
                    &bars(&|m| (m.answered_by_agreed_date as f64, (m.answered - m.answered_by_agreed_date) as f64)), 1))
            }
            h2 { (t("statistics.table")) }
            (table.render())
        }
    };
    Ok(
        Html(page(&viewer, "/console/statistics", t("statistics.title"), body).into_string())
            .into_response(),
    )
}

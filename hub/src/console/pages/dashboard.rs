//! The dashboard: what needs attention now. Messages per minute over the
//! last hour (accepted and refused), live; each endpoint's heartbeat; the
//! counts of overdue requests, alerts awaiting acknowledgement and open
//! refusals; and the latest exchanges.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use chrono::{TimeZone, Utc};
use futures_util::stream::{self, Stream};
use maud::{html, Markup};

use crate::console::auth::Viewer;
use crate::console::i18n::{t, tf};
use crate::console::layout::{empty, page, time};
use crate::console::svg::{bar_chart, Bar};
use crate::console::table::{query_pairs, Cell, Table};
use crate::console::{OrFail, PageResult};
use crate::http::AppState;
use crate::registry::Status;
use crate::scope::Scope;
use crate::views::exchanges::{self, ExchangeFilter, Order};
use crate::views::health::{self, EndpointHealth};

/// How often the live stream looks for news.
const TICK: Duration = Duration::from_secs(2);

pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let query = query_pairs(raw.as_deref());
    let scope = Scope::of(&viewer.account);
    let live = live_parts_markup(&state, &viewer).await.or_fail(&viewer)?;
    let registry = state.registry.registry.current();
    let endpoints = health::endpoints(
        &registry,
        &state.registry.management,
        &state.registry.vhost,
        &state.activity,
        &scope,
    )
    .await;
    let endpoints = endpoint_table(&endpoints, &query);
    if endpoints.csv_wanted() {
        return Ok(endpoints.csv_response());
    }
    let body = html! {
        div id="live" data-live="/console/partials/dashboard" data-activity=(activity_mark(&state)) aria-live="polite" { (live) }
        section aria-labelledby="endpoints-h" {
            h2 id="endpoints-h" { (t("dashboard.endpoints")) }
            @if endpoints.is_empty() {
                (empty("dashboard.endpoints_empty"))
            } @else {
                (endpoints.render())
                p class="note" { (t("endpoint.last_seen_note")) }
            }
        }
    };
    Ok(Html(page(&viewer, "/console", t("dashboard.title"), body).into_string()).into_response())
}

/// The parts of the dashboard that move: refetched by the page's script
/// when the live stream says something changed.
pub(crate) async fn live_parts(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let parts = live_parts_markup(&state, &viewer).await.or_fail(&viewer)?;
    Ok(Html(parts.into_string()).into_response())
}

async fn live_parts_markup(state: &AppState, viewer: &Viewer) -> Result<Markup, sqlx::Error> {
    let scope = Scope::of(&viewer.account);
    let attention = health::attention(&state.pool, &scope).await?;
    let latest = exchanges::list(
        &state.pool,
        &scope,
        &ExchangeFilter::default(),
        Order::Newest,
        None,
        10,
    )
    .await?;
    let hour = state.activity.last_hour(Utc::now());
    let accepted: u64 = hour.iter().map(|m| m.accepted).sum();
    let refused: u64 = hour.iter().map(|m| m.refused).sum();
    let rate = if accepted + refused == 0 {
        0.0
    } else {
        refused as f64 * 100.0 / (accepted + refused) as f64
    };
    let bars: Vec<Bar> = hour
        .iter()
        .map(|m| Bar {
            label: Utc
                .timestamp_opt(m.minute * 60, 0)
                .single()
                .map(|t| t.format("%H:%M").to_string())
                .unwrap_or_default(),
            values: (m.accepted as f64, m.refused as f64),
        })
        .collect();
    Ok(html! {
        section aria-labelledby="attention-h" class="attention" {
            h2 id="attention-h" class="visually-hidden" { (t("dashboard.attention")) }
            ul class="tiles" {
                li { a href="/console/desk#overdue" { span class="n" data-count="overdue" { (attention.overdue) } span { (t("dashboard.overdue")) } } }
                li { a href="/console/exchanges?state=sent" { span class="n" data-count="unacknowledged" { (attention.awaiting_acknowledgement) } span { (t("dashboard.unacknowledged")) } } }
                li { a href="/console/refused" { span class="n" data-count="refusals" { (attention.open_refusals) } span { (t("dashboard.open_refusals")) } } }
                li { span class="n" data-count="accepted" { (accepted) } span { (t("dashboard.accepted_hour")) } }
                li { span class="n" data-count="refused" { (refused) } span { (tf("dashboard.refusal_rate", &[("rate", &format!("{rate:.1}"))])) } }
            }
        }
        section aria-labelledby="rate-h" {
            h2 id="rate-h" { (t("dashboard.rate")) }
            (bar_chart(t("dashboard.rate"), (t("dashboard.accepted"), t("dashboard.refused")), &bars, 10))
            p class="note" { (t("dashboard.rate_note")) }
        }
        section aria-labelledby="latest-h" {
            h2 id="latest-h" { (t("dashboard.latest")) }
            @if latest.is_empty() {
                (empty("dashboard.latest_empty"))
            } @else {
                table class="list" {
                    thead { tr {
                        th scope="col" { (t("exchange.opened")) }
                        th scope="col" { (t("exchange.procedure")) }
                        th scope="col" { (t("exchange.state")) }
                        th scope="col" { (t("exchange.requester")) }
                        th scope="col" { (t("exchange.counterpart")) }
                    } }
                    tbody {
                        @for e in latest.iter().take(10) {
                            tr {
                                td { a href={ "/console/exchanges/" (e.id) } { (time(e.created_at)) } }
                                td { (e.procedure) }
                                td { (e.state) }
                                td { (e.requester) }
                                td { @if let Some(n) = e.recipients { (tf("exchange.n_recipients", &[("n", &n)])) } @else { (e.responder) } }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Each endpoint's heartbeat, worst first unless the viewer sorts it.
fn endpoint_table(endpoints: &[EndpointHealth], query: &[(String, String)]) -> Table {
    let mut table = Table::named("endpoints", "dashboard.endpoints", "endpoints")
        .column("endpoint", "endpoint.id")
        .column("health", "endpoint.health")
        .column("connections", "endpoint.connections")
        .column("inbox_depth", "endpoint.inbox_depth")
        .column("consumers", "endpoint.consumers")
        .column("last_seen", "endpoint.last_seen")
        .column("authorities", "endpoint.authorities");
    for e in endpoints {
        let (badge, health) = health_badge(e);
        table.row(vec![
            Cell::code(e.id.clone()),
            Cell::shown(badge, health),
            match e.connections {
                Some(n) => Cell::number(n as f64),
                None => Cell::text(t("endpoint.unknown")),
            },
            Cell::maybe_number(e.inbox_depth.map(|n| n as f64)),
            Cell::maybe_number(e.inbox_consumers.map(|n| n as f64)),
            Cell::time(e.last_seen),
            Cell::text(e.authorities.join(", ")),
        ]);
    }
    table.sorted(query)
}

/// The badge, and its word for sorting and the CSV.
pub(super) fn health_badge(e: &EndpointHealth) -> (Markup, &'static str) {
    let (class, key) = match (e.status, e.healthy()) {
        (Status::Suspended, _) => ("badge bad", "endpoint.suspended"),
        (Status::Pending, _) => ("badge", "endpoint.pending"),
        (_, None) => ("badge", "endpoint.unknown"),
        (_, Some(true)) => ("badge good", "endpoint.up"),
        (_, Some(false)) if e.connections == Some(0) => ("badge bad", "endpoint.disconnected"),
        (_, Some(false)) => ("badge warn", "endpoint.not_consuming"),
    };
    (html! { span class=(class) { (t(key)) } }, t(key))
}

/// The last hour's totals, as the live stream sends them: the page carries
/// the mark of what it shows, so its script knows when it is behind.
fn activity_mark(state: &AppState) -> String {
    let hour = state.activity.last_hour(Utc::now());
    let accepted: u64 = hour.iter().map(|m| m.accepted).sum();
    let refused: u64 = hour.iter().map(|m| m.refused).sum();
    format!("{accepted},{refused}")
}

/// Server-sent events: at once and then every tick, the last hour's
/// totals; the page's script refetches the live parts when they differ
/// from what it shows.
pub(crate) async fn live(
    State(state): State<AppState>,
    _viewer: Viewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let activity = state.activity.clone();
    // The stream ends when the hub stops, so that shutdown need not wait
    // for the browser to go away.
    let stop = state.stopping.clone();
    let ticks = stream::unfold(true, move |first| {
        let (activity, stop) = (activity.clone(), stop.clone());
        async move {
            if !first {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.cancelled() => return None,
                }
            }
            let hour = activity.last_hour(Utc::now());
            let accepted: u64 = hour.iter().map(|m| m.accepted).sum();
            let refused: u64 = hour.iter().map(|m| m.refused).sum();
            let event = Event::default()
                .event("activity")
                .data(format!("{accepted},{refused}"));
            Some((Ok(event), false))
        }
    });
    Sse::new(ticks).keep_alive(KeepAlive::default())
}

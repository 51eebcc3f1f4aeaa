//! The page shell every console page shares (landmarks, navigation, the
//! account and its logout form) and the small pieces pages are made of:
//! times, tables' empty states, filters' pager, download links.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::auth::Viewer;
use super::i18n::t;
use crate::accounts::AccountRole;

/// The sections of the console, in the navigation's order: (path, message).
const SECTIONS: [(&str, &str); 9] = [
    ("/console", "nav.dashboard"),
    ("/console/exchanges", "nav.exchanges"),
    ("/console/refused", "nav.refused"),
    ("/console/authorities", "nav.authorities"),
    ("/console/desk", "nav.desk"),
    ("/console/catalogue", "nav.catalogue"),
    ("/console/statistics", "nav.statistics"),
    ("/console/subjects", "nav.subjects"),
    ("/console/audit", "nav.audit"),
];

/// A whole page: `title` in the tab and as the heading, `current` the
/// section's path (marked in the navigation), `body` the content.
pub(crate) fn page(viewer: &Viewer, current: &str, title: &str, body: Markup) -> Markup {
    let role = match viewer.account.role {
        AccountRole::Operator => t("role.operator"),
        AccountRole::Coordinator => t("role.coordinator"),
        AccountRole::Auditor => t("role.auditor"),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t("app.name")) }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { (t("nav.skip")) }
                header class="top" {
                    a class="brand" href="/console" { (t("app.name")) }
                    nav aria-label=(t("nav.label")) {
                        ul {
                            @for (path, key) in SECTIONS {
                                li {
                                    @if path == current {
                                        a href=(path) aria-current="page" { (t(key)) }
                                    } @else {
                                        a href=(path) { (t(key)) }
                                    }
                                }
                            }
                        }
                    }
                    div class="who" {
                        span { (viewer.account.name) " · " (role)
                            @if let Some(c) = viewer.account.country { " · " (c.as_str()) }
                        }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button type="submit" class="link" { (t("nav.logout")) }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page for someone not logged in (login, errors before a session).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t("app.name")) }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body class="bare" {
                main id="main" {
                    p class="brand" { (t("app.name")) }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A time, in UTC without script and in the viewer's time zone with it
/// (console.js rewrites every `time[data-local]`).
pub(crate) fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) data-local { (at.format("%Y-%m-%d %H:%M UTC")) }
    }
}

/// An optional time, or a dash.
pub(crate) fn maybe_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span class="none" { "—" } },
    }
}

/// What an empty list would show, and why it is empty.
pub(crate) fn empty(key: &str) -> Markup {
    html! { p class="empty" { (t(key)) } }
}

/// The hidden CSRF field every form of a session carries.
pub(crate) fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A link to the same list as CSV (the query string kept).
pub(crate) fn csv_link(path: &str, query: &str) -> Markup {
    let sep = if query.is_empty() { "" } else { "&" };
    html! {
        a class="download" href={ (path) "?" (query) (sep) "format=csv" } { (t("list.csv")) }
    }
}

/// A column heading that sorts the list by `key` (toggling the direction
/// when it already does), keeping the rest of the query.
pub(crate) fn sort_heading(
    label: &str,
    key: &str,
    current: &str,
    query: &[(String, String)],
) -> Markup {
    let (active, descending) = match current.strip_prefix('-') {
        Some(k) => (k == key, true),
        None => (current == key, false),
    };
    let next = if active && !descending {
        format!("-{key}")
    } else {
        key.to_owned()
    };
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "sort" && k != "after")
        .cloned()
        .collect();
    pairs.push(("sort".into(), next));
    let href = format!("?{}", encode_query(&pairs));
    let sort = match (active, descending) {
        (false, _) => "none",
        (true, false) => "ascending",
        (true, true) => "descending",
    };
    html! {
        th scope="col" aria-sort=(sort) { a href=(href) { (label) } }
    }
}

/// `k=v&…`, percent-encoded.
pub(crate) fn encode_query(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The CSV of a list: a header row, then rows, each field quoted.
pub(crate) fn csv(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let quote = |f: &str| format!("\"{}\"", f.replace('"', "\"\""));
    let mut out = header
        .iter()
        .map(|h| quote(h))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(|f| quote(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_quotes_doubled() {
        let text = csv(
            &["a", "b"],
            vec![vec!["x".into(), "say \"hi\"".into()]].into_iter(),
        );
        assert_eq!(text, "\"a\",\"b\"\n\"x\",\"say \"\"hi\"\"\"\n");
    }
}

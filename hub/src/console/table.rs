//! Lists as people expect them: every column of a list sorts through the
//! URL (so a sorted view can be bookmarked and shared), and every list
//! downloads as CSV with the rows and order the page shows.
//!
//! The lists built here are bounded (a country's authorities, the groups of
//! refused messages, a desk's queues), so they sort in memory. The
//! exchanges list and the audit log page through millions of rows with a
//! keyset and sort in the database instead.

use std::cmp::Ordering;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::i18n::t;
use super::layout::{csv, encode_query, maybe_time};

/// What a cell sorts by.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Text(String),
    Number(f64),
    /// `None` sorts last in either direction: "never" is not a time.
    Time(Option<DateTime<Utc>>),
    /// Not sortable (an action).
    Nothing,
}

fn compare(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Text(a), Key::Text(b)) => a.cmp(b),
        (Key::Number(a), Key::Number(b)) => a.total_cmp(b),
        (Key::Time(a), Key::Time(b)) => a.cmp(b),
        _ => Ordering::Equal,
    }
}

/// One cell: what the page shows, what it sorts by, what the CSV holds.
pub(crate) struct Cell {
    show: Markup,
    key: Key,
    csv: String,
    class: Option<&'static str>,
}

impl Cell {
    /// Plain text.
    pub(crate) fn text(value: impl Into<String>) -> Self {
        let value = value.into();
        Self {
            show: html! { (value) },
            key: Key::Text(value.to_lowercase()),
            csv: value,
            class: None,
        }
    }

    /// Text or a dash.
    pub(crate) fn maybe_text(value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => Self::text(v),
            None => Self {
                show: html! { span class="none" { "—" } },
                key: Key::Text(String::new()),
                csv: String::new(),
                class: None,
            },
        }
    }

    /// An identifier or code, in monospace.
    pub(crate) fn code(value: impl Into<String>) -> Self {
        let value = value.into();
        Self {
            show: html! { code { (value) } },
            key: Key::Text(value.to_lowercase()),
            csv: value,
            class: None,
        }
    }

    /// A number, right-aligned.
    pub(crate) fn number(value: impl Into<f64> + std::fmt::Display + Copy) -> Self {
        Self {
            show: html! { (value) },
            key: Key::Number(value.into()),
            csv: value.to_string(),
            class: Some("num"),
        }
    }

    /// A number, or a dash when it is not known (sorts first ascending).
    pub(crate) fn maybe_number<N: Into<f64> + std::fmt::Display + Copy>(value: Option<N>) -> Self {
        match value {
            Some(v) => Self::number(v),
            None => Self {
                show: html! { span class="none" { "—" } },
                key: Key::Number(f64::NEG_INFINITY),
                csv: String::new(),
                class: Some("num"),
            },
        }
    }

    /// A time (local with script, UTC without), or a dash.
    pub(crate) fn time(at: impl Into<Option<DateTime<Utc>>>) -> Self {
        let at = at.into();
        Self {
            show: maybe_time(at),
            key: Key::Time(at),
            csv: at.map(|a| a.to_rfc3339()).unwrap_or_default(),
            class: None,
        }
    }

    /// Anything else the page shows, with the text it sorts by and the CSV
    /// holds.
    pub(crate) fn shown(show: Markup, text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            show,
            key: Key::Text(text.to_lowercase()),
            csv: text,
            class: None,
        }
    }

    /// Shown as `show`, with the rest of the cell as it was: a link around
    /// a code, a badge around a state.
    pub(crate) fn wrap(self, show: impl FnOnce(Markup) -> Markup) -> Self {
        Self {
            show: show(self.show),
            ..self
        }
    }

    /// A link to `href` around the cell.
    pub(crate) fn link(self, href: impl Into<String>) -> Self {
        let href = href.into();
        self.wrap(|inner| html! { a href=(href) { (inner) } })
    }

    /// A form or button: neither sorted nor exported.
    pub(crate) fn action(show: Markup) -> Self {
        Self {
            // The flex box inside the cell: a cell that is itself a flex box
            // leaves the table's grid.
            show: html! { div class="row-actions" { (show) } },
            key: Key::Nothing,
            csv: String::new(),
            class: None,
        }
    }

    /// A CSS class for the cell (e.g. `detail` for long text).
    pub(crate) fn class(mut self, class: &'static str) -> Self {
        self.class = Some(class);
        self
    }
}

struct Column {
    /// In the URL (`sort=-count`) and the CSV header.
    name: &'static str,
    /// Message key of the heading.
    label: &'static str,
    sortable: bool,
}

/// A list: columns, rows, and the query that sorts it.
pub(crate) struct Table {
    /// Tells the lists of one page apart in the URL (`queue.sort=…`,
    /// `table=queue`); `None` when the page has one list.
    name: Option<&'static str>,
    caption: &'static str,
    filename: &'static str,
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
    /// A CSS class per row (`unread`), by the row's position when added.
    row_classes: Vec<Option<&'static str>>,
    /// The query string of the page, to keep filters in the sort links.
    query: Vec<(String, String)>,
    sorted: Option<(usize, bool)>,
}

impl Table {
    /// The one list of a page, with its caption's message key and the name
    /// of its CSV file.
    pub(crate) fn new(caption: &'static str, filename: &'static str) -> Self {
        Self {
            name: None,
            caption,
            filename,
            columns: Vec::new(),
            rows: Vec::new(),
            row_classes: Vec::new(),
            query: Vec::new(),
            sorted: None,
        }
    }

    /// One of several lists on a page.
    pub(crate) fn named(name: &'static str, caption: &'static str, filename: &'static str) -> Self {
        Self {
            name: Some(name),
            ..Self::new(caption, filename)
        }
    }

    pub(crate) fn column(mut self, name: &'static str, label: &'static str) -> Self {
        self.columns.push(Column {
            name,
            label,
            sortable: true,
        });
        self
    }

    /// A column of forms or buttons.
    pub(crate) fn actions(mut self, label: &'static str) -> Self {
        self.columns.push(Column {
            name: "",
            label,
            sortable: false,
        });
        self
    }

    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        self.row_with_class(None, cells);
    }

    /// A row with a CSS class (e.g. an unread notice).
    pub(crate) fn row_with_class(&mut self, class: Option<&'static str>, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "a cell per column");
        self.rows.push(cells);
        self.row_classes.push(class);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn sort_param(&self) -> String {
        match self.name {
            Some(n) => format!("{n}.sort"),
            None => "sort".to_owned(),
        }
    }

    /// Sorts by the page's query (`sort=name` or `sort=-name`, stable, so
    /// ties keep the view's order) and remembers the query for the links.
    pub(crate) fn sorted(mut self, query: &[(String, String)]) -> Self {
        self.query = query.to_vec();
        let param = self.sort_param();
        let wanted = query
            .iter()
            .find(|(k, _)| *k == param)
            .map(|(_, v)| v.as_str());
        if let Some(wanted) = wanted {
            let (name, descending) = match wanted.strip_prefix('-') {
                Some(n) => (n, true),
                None => (wanted, false),
            };
            if let Some(i) = self
                .columns
                .iter()
                .position(|c| c.sortable && c.name == name)
            {
                let mut rows: Vec<(Vec<Cell>, Option<&'static str>)> =
                    std::mem::take(&mut self.rows)
                        .into_iter()
                        .zip(std::mem::take(&mut self.row_classes))
                        .collect();
                rows.sort_by(|(a, _), (b, _)| {
                    let o = compare(&a[i].key, &b[i].key);
                    // A missing time stays last either way.
                    match (&a[i].key, &b[i].key) {
                        (Key::Time(None), Key::Time(Some(_))) => Ordering::Greater,
                        (Key::Time(Some(_)), Key::Time(None)) => Ordering::Less,
                        _ if descending => o.reverse(),
                        _ => o,
                    }
                });
                (self.rows, self.row_classes) = rows.into_iter().unzip();
                self.sorted = Some((i, descending));
            }
        }
        self
    }

    /// Whether the query asks for this list as CSV.
    pub(crate) fn csv_wanted(&self) -> bool {
        let format = self.query.iter().any(|(k, v)| k == "format" && v == "csv");
        let table = self
            .query
            .iter()
            .find(|(k, _)| k == "table")
            .map(|(_, v)| v.as_str());
        format && table == self.name
    }

    /// The list as CSV, in the order shown, without the action columns.
    fn csv_text(&self) -> String {
        let data: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].sortable)
            .collect();
        let header: Vec<&str> = data.iter().map(|&i| self.columns[i].name).collect();
        csv(
            &header,
            self.rows
                .iter()
                .map(|r| data.iter().map(|&i| r[i].csv.clone()).collect()),
        )
    }

    /// The list as a CSV download.
    pub(crate) fn csv_response(&self) -> Response {
        let text = self.csv_text();
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.csv\"", self.filename),
                ),
            ],
            text,
        )
            .into_response()
    }

    /// The query string of this list's CSV link (filters and sort kept).
    fn csv_query(&self) -> String {
        let mut pairs: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(k, _)| k != "format" && k != "table" && k != "done" && k != "n")
            .cloned()
            .collect();
        pairs.push(("format".into(), "csv".into()));
        if let Some(n) = self.name {
            pairs.push(("table".into(), n.into()));
        }
        encode_query(&pairs)
    }

    fn heading(&self, i: usize) -> Markup {
        let c = &self.columns[i];
        let class =
            (!self.rows.is_empty() && self.rows[0][i].class == Some("num")).then_some("num");
        if !c.sortable {
            return html! { th scope="col" class=[class] { (t(c.label)) } };
        }
        let (sort, next) = match self.sorted {
            Some((s, false)) if s == i => ("ascending", format!("-{}", c.name)),
            Some((s, true)) if s == i => ("descending", c.name.to_owned()),
            _ => ("none", c.name.to_owned()),
        };
        let param = self.sort_param();
        let mut pairs: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(k, _)| *k != param && k != "done" && k != "n")
            .cloned()
            .collect();
        pairs.push((param, next));
        let href = format!("?{}", encode_query(&pairs));
        html! {
            th scope="col" class=[class] aria-sort=(sort) { a href=(href) { (t(c.label)) } }
        }
    }

    /// The CSV link and the table; the caller shows an empty state instead
    /// when there are no rows.
    pub(crate) fn render(&self) -> Markup {
        html! {
            p class="tools" {
                a class="download" href={ "?" (self.csv_query()) } { (t("list.csv")) }
            }
            (self.render_list())
        }
    }

    /// The table alone, for a page that cannot be fetched again as CSV (the
    /// answer to a posted form).
    pub(crate) fn render_list(&self) -> Markup {
        html! {
            table class="list" {
                caption class="visually-hidden" { (t(self.caption)) }
                thead { tr { @for i in 0..self.columns.len() { (self.heading(i)) } } }
                tbody {
                    @for (row, class) in self.rows.iter().zip(&self.row_classes) {
                        tr class=[class] { @for cell in row { td class=[cell.class] { (cell.show) } } }
                    }
                }
            }
        }
    }
}

/// The pairs of a raw query string.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn q(s: &str) -> Vec<(String, String)> {
        query_pairs(Some(s))
    }

    fn table() -> Table {
        let mut t = Table::new("refused.title", "refused")
            .column("code", "refused.code")
            .column("count", "refused.count")
            .column("last_seen", "refused.last_seen");
        let at = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
        t.row(vec![Cell::code("b"), Cell::number(2), Cell::time(at(3))]);
        t.row(vec![Cell::code("a"), Cell::number(10), Cell::time(None)]);
        t.row(vec![Cell::code("c"), Cell::number(1), Cell::time(at(5))]);
        t
    }

    fn column(t: &Table, i: usize) -> Vec<String> {
        t.rows.iter().map(|r| r[i].csv.clone()).collect()
    }

    #[test]
    fn sorts_by_the_column_the_query_names_in_either_direction() {
        let t = table().sorted(&q("sort=count"));
        assert_eq!(column(&t, 1), ["1", "2", "10"], "numbers sort as numbers");
        let t = table().sorted(&q("sort=-code"));
        assert_eq!(column(&t, 0), ["c", "b", "a"]);
        let t = table().sorted(&q("sort=nonsense"));
        assert_eq!(
            column(&t, 0),
            ["b", "a", "c"],
            "an unknown column keeps the order"
        );
    }

    #[test]
    fn a_missing_time_sorts_last_both_ways() {
        let t = table().sorted(&q("sort=last_seen"));
        assert_eq!(column(&t, 0), ["b", "c", "a"]);
        let t = table().sorted(&q("sort=-last_seen"));
        assert_eq!(column(&t, 0), ["c", "b", "a"]);
    }

    #[test]
    fn headings_link_to_the_other_direction_and_keep_the_filters() {
        let t = table().sorted(&q("country=FI&sort=count"));
        let html = t.render().into_string();
        assert!(html.contains(r#"aria-sort="ascending""#), "{html}");
        assert!(html.contains("?country=FI&amp;sort=-count"), "{html}");
        assert!(
            html.contains("?country=FI&amp;sort=count&amp;format=csv"),
            "{html}"
        );
    }

    #[test]
    fn the_csv_holds_the_rows_in_the_order_shown() {
        let t = table().sorted(&q("sort=-count&format=csv"));
        assert!(t.csv_wanted());
        assert_eq!(
            t.csv_text(),
            "\"code\",\"count\",\"last_seen\"\n\"a\",\"10\",\"\"\n\"b\",\"2\",\"2026-12-01T03:00:00+00:00\"\n\"c\",\"1\",\"2026-12-01T05:00:00+00:00\"\n"
        );
        let body = t.csv_response();
        assert_eq!(
            body.headers()[header::CONTENT_DISPOSITION],
            "attachment; filename=\"refused.csv\""
        );
        let named = Table::named("queue", "refused.title", "queue").sorted(&q("format=csv"));
        assert!(!named.csv_wanted(), "another list's CSV is not this one's");
    }
}

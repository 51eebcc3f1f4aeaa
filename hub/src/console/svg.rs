//! Pictures, drawn on the server as SVG: bar charts, a conversation's
//! sequence diagram, a workflow's state diagram, progress. Each has a text
//! title and description for screen readers, and the numbers it shows are
//! also in a table or text beside it.

use maud::{html, Markup, PreEscaped};

/// One bar (or a stack of two) of a chart.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    pub(crate) label: String,
    /// The lower part (e.g. accepted) and the upper part (e.g. refused).
    pub(crate) values: (f64, f64),
}

/// A bar chart: `bars` left to right, two stacked series with their
/// legends. Labels are shown every `label_every` bars.
pub(crate) fn bar_chart(
    title: &str,
    legends: (&str, &str),
    bars: &[Bar],
    label_every: usize,
) -> Markup {
    let (width, height, left, bottom, top) = (720.0, 200.0, 40.0, 24.0, 12.0);
    let plot_h = height - bottom - top;
    let max = bars
        .iter()
        .map(|b| b.values.0 + b.values.1)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let step = (width - left) / bars.len().max(1) as f64;
    let bar_w = (step * 0.8).max(1.0);
    let y = |v: f64| top + plot_h - v / max * plot_h;
    html! {
        svg class="chart" viewBox={ "0 0 " (width) " " (height) } role="img"
            aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            line x1=(left) y1=(top + plot_h) x2=(width) y2=(top + plot_h) class="axis" {}
            text x=(left - 4.0) y=(top + 4.0) text-anchor="end" class="tick" { (fmt_number(max)) }
            text x=(left - 4.0) y=(top + plot_h) text-anchor="end" class="tick" { "0" }
            @for (i, bar) in bars.iter().enumerate() {
                @let x = left + i as f64 * step + (step - bar_w) / 2.0;
                @let (a, b) = bar.values;
                rect x=(x) y=(y(a)) width=(bar_w) height=(top + plot_h - y(a)) class="series-a" {
                    title { (bar.label) ": " (fmt_number(a)) " " (legends.0) }
                }
                @if b > 0.0 {
                    rect x=(x) y=(y(a + b)) width=(bar_w) height=(y(a) - y(a + b)) class="series-b" {
                        title { (bar.label) ": " (fmt_number(b)) " " (legends.1) }
                    }
                }
                @if label_every > 0 && i % label_every == 0 {
                    text x=(x + bar_w / 2.0) y=(height - 6.0) text-anchor="middle" class="tick" { (bar.label) }
                }
            }
            g class="legend" {
                rect x=(left + 8.0) y="2" width="10" height="8" class="series-a" {}
                text x=(left + 22.0) y="10" class="tick" { (legends.0) }
                rect x=(left + 200.0) y="2" width="10" height="8" class="series-b" {}
                text x=(left + 214.0) y="10" class="tick" { (legends.1) }
            }
        }
    }
}

fn fmt_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A progress bar: `done` of `total`, with its numbers as text.
pub(crate) fn progress(label: &str, done: usize, total: usize) -> Markup {
    let share = if total == 0 {
        0.0
    } else {
        done as f64 / total as f64
    };
    html! {
        div class="progress" {
            svg viewBox="0 0 200 12" role="img" aria-label=(label) xmlns="http://www.w3.org/2000/svg" {
                rect x="0" y="0" width="200" height="12" class="track" {}
                rect x="0" y="0" width=(200.0 * share) height="12" class="fill" {}
            }
            span class="count" { (done) " / " (total) }
        }
    }
}

/// One arrow of a sequence diagram: from a party to others, at a time.
#[derive(Debug, Clone)]
pub(crate) struct Arrow {
    pub(crate) from: String,
    pub(crate) to: Vec<String>,
    pub(crate) label: String,
    pub(crate) time: String,
    /// A person's step (dashed), not a message.
    pub(crate) by_person: bool,
}

/// A sequence diagram: one lifeline per party, one arrow per step, top to
/// bottom in time order.
pub(crate) fn sequence(title: &str, parties: &[String], arrows: &[Arrow]) -> Markup {
    let (col, left, head, row) = (170.0, 110.0, 40.0, 34.0);
    let width = left + col * parties.len().max(1) as f64;
    let height = head + row * (arrows.len() as f64 + 1.0);
    let x_of = |party: &str| {
        parties
            .iter()
            .position(|p| p == party)
            .map(|i| left + col * i as f64 + col / 2.0)
    };
    html! {
        svg class="sequence" viewBox={ "0 0 " (width) " " (height) } width=(width) role="img"
            aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            defs {
                marker id="arrowhead" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto" {
                    path d="M0,0 L8,4 L0,8 z" class="head" {}
                }
            }
            @for (i, p) in parties.iter().enumerate() {
                @let x = left + col * i as f64 + col / 2.0;
                text x=(x) y="16" text-anchor="middle" class="party" { (p) }
                line x1=(x) y1="24" x2=(x) y2=(height) class="lifeline" {}
            }
            @for (i, a) in arrows.iter().enumerate() {
                @let y = head + row * (i as f64 + 0.5);
                text x="4" y=(y + 4.0) class="tick" { (a.time) }
                @if let Some(x1) = x_of(&a.from) {
                    @if a.to.is_empty() {
                        circle cx=(x1) cy=(y) r="4" class=(if a.by_person { "step person" } else { "step" }) {}
                        text x=(x1 + 8.0) y=(y - 4.0) class="label" { (a.label) }
                    }
                    @for to in &a.to {
                        @if let Some(x2) = x_of(to) {
                            line x1=(x1) y1=(y) x2=(x2) y2=(y) marker-end="url(#arrowhead)"
                                class=(if a.by_person { "arrow person" } else { "arrow" }) {}
                            text x=((x1 + x2) / 2.0) y=(y - 5.0) text-anchor="middle" class="label" { (a.label) }
                        }
                    }
                }
            }
        }
    }
}

/// A workflow's states and the actions between them, as a diagram: states
/// top to bottom in the order the procedure lists them; a step to the next
/// state is a straight arrow, a step that skips ahead takes a lane on the
/// right, a step back a lane on the left, a step that stays a loop; actions
/// between the same two states share an arrow; the opening actions come
/// from a start dot.
pub(crate) fn states(
    title: &str,
    states: &[String],
    actions: &[(String, Vec<String>, String)],
) -> Markup {
    // (from, to) → the actions taking it, in catalogue order.
    let mut edges: Vec<(Option<usize>, usize, Vec<&str>)> = Vec::new();
    let index = |s: &str| states.iter().position(|x| x == s);
    for (code, from, to) in actions {
        let Some(t) = index(to) else { continue };
        let sources: Vec<Option<usize>> = if from.is_empty() {
            vec![None]
        } else {
            from.iter().filter_map(|f| index(f)).map(Some).collect()
        };
        for f in sources {
            match edges.iter_mut().find(|(ef, et, _)| *ef == f && *et == t) {
                Some(edge) => edge.2.push(code),
                None => edges.push((f, t, vec![code])),
            }
        }
    }
    let lane_of = |f: usize, t: usize| -> Option<bool> {
        // None: straight down; Some(true): right lane; Some(false): left lane.
        if t == f + 1 {
            None
        } else {
            Some(t >= f)
        }
    };
    let lefts = edges
        .iter()
        .filter(|(f, t, _)| f.is_some_and(|f| lane_of(f, *t) == Some(false)))
        .count();
    let rights = edges
        .iter()
        .filter(|(f, t, _)| f.is_some_and(|f| lane_of(f, *t) == Some(true)))
        .count();
    let (box_w, box_h, gap, lane) = (190.0, 30.0, 44.0, 22.0);
    let left = 30.0 + lane * lefts as f64;
    let width = left + box_w + 30.0 + lane * rights as f64 + 90.0;
    let top = 46.0;
    let y_of = |i: usize| top + i as f64 * (box_h + gap);
    let height = y_of(states.len()) + 10.0;
    let centre = left + box_w / 2.0;
    let (mut nl, mut nr) = (0usize, 0usize);
    html! {
        svg class="states" viewBox={ "0 0 " (width) " " (height) } width=(width) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            defs {
                marker id="statehead" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto" {
                    path d="M0,0 L8,4 L0,8 z" class="head" {}
                }
            }
            circle cx=(centre) cy="10" r="6" class="start" {}
            @for (i, s) in states.iter().enumerate() {
                rect x=(left) y=(y_of(i)) width=(box_w) height=(box_h) rx="6" class="state" {}
                text x=(centre) y=(y_of(i) + 19.0) text-anchor="middle" class="state-name" { (s) }
            }
            @for (f, t, codes) in &edges {
                @let label = codes.join(" / ");
                @match f {
                    None => {
                        line x1=(centre) y1="16" x2=(centre) y2=(y_of(*t)) marker-end="url(#statehead)" class="transition" {}
                        text x=(centre + 6.0) y="32" class="label halo" { (label) }
                    }
                    Some(f) => {
                        @match lane_of(*f, *t) {
                            None => {
                                line x1=(centre) y1=(y_of(*f) + box_h) x2=(centre) y2=(y_of(*t)) marker-end="url(#statehead)" class="transition" {}
                                text x=(centre + 6.0) y=(y_of(*f) + box_h + gap / 2.0 + 4.0) class="label halo" { (label) }
                            }
                            Some(right) => {
                                @let k = if right { nr += 1; nr } else { nl += 1; nl };
                                @let nudge = ((k % 3) as f64 - 1.0) * 8.0;
                                @let (ya, yb) = (y_of(*f) + box_h / 2.0 + nudge, y_of(*t) + box_h / 2.0 - nudge);
                                @let (edge, x) = if right { (left + box_w, left + box_w + 10.0 + lane * k as f64) } else { (left, left - 10.0 - lane * k as f64) };
                                @let yb = if f == t { ya + 10.0 } else { yb };
                                path d=(PreEscaped(format!("M{edge},{ya} H{x} V{yb} H{edge}"))) marker-end="url(#statehead)" class="transition" {}
                                @let mid = (ya + yb) / 2.0;
                                @if f == t {
                                    text x=(x + 4.0) y=(ya + 8.0) class="label halo" { (label) }
                                } @else {
                                    text x=(x - 3.0) y=(mid) text-anchor="middle" class="label halo"
                                        transform=(PreEscaped(format!("rotate(-90 {} {mid})", x - 3.0))) { (label) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

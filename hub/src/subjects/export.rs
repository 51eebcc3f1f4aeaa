//! A request's export: JSON for systems, and a page in the person's
//! language for the person (the catalogue's labels for forms, states and
//! procedures; `export_words.toml` for the page's own phrases). Exchanges
//! whose content the office may not read are listed by their outline only.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use imi_schemas::catalogue::{Catalogue, LANGUAGES};
use imi_schemas::ids::{MessageType, ProcedureCode};
use maud::{html, Markup, DOCTYPE};
use serde_json::{json, Value};
use uuid::Uuid;

use super::index::Found;
use super::requests::{Request, Statement};
use crate::views::exchanges::Message;

/// Everything one export holds.
pub(crate) struct Exported<'a> {
    pub(crate) request: &'a Request,
    pub(crate) found: &'a [Found],
    /// The messages of the exchanges whose content may be exported.
    pub(crate) messages: &'a HashMap<Uuid, Vec<Message>>,
    pub(crate) statements: &'a [Statement],
    pub(crate) generated_at: DateTime<Utc>,
}

type Words = HashMap<String, HashMap<String, String>>;

fn words() -> &'static Words {
    static WORDS: OnceLock<Words> = OnceLock::new();
    WORDS.get_or_init(|| {
        toml::from_str(include_str!("export_words.toml")).expect("export_words.toml is valid TOML")
    })
}

/// The phrase `key` in `lang`, else in English.
fn word(lang: &str, key: &str) -> String {
    let w = words();
    w.get(lang)
        .and_then(|l| l.get(key))
        .or_else(|| w.get("en").and_then(|l| l.get(key)))
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

/// The export's language: the request's, when the catalogue speaks it.
fn language(request: &Request) -> &str {
    if LANGUAGES.contains(&request.language.as_str()) {
        &request.language
    } else {
        "en"
    }
}

fn payload(m: &Message) -> Option<Value> {
    serde_json::from_slice::<Value>(&m.raw)
        .ok()
        .and_then(|mut v| v.get_mut("payload").map(Value::take))
}

fn procedure_name(catalogue: &Catalogue, code: &str, lang: &str) -> String {
    ProcedureCode::try_from(code)
        .ok()
        .and_then(|c| catalogue.procedure(&c))
        .and_then(|p| p.names.get(lang).or_else(|| p.names.get("en")))
        .cloned()
        .unwrap_or_else(|| code.to_owned())
}

fn state_name(catalogue: &Catalogue, procedure: &str, state: &str, lang: &str) -> String {
    ProcedureCode::try_from(procedure)
        .ok()
        .and_then(|c| catalogue.procedure(&c))
        .and_then(|p| catalogue.state_label(p, state, lang))
        .unwrap_or(state)
        .to_owned()
}

/// The export as JSON.
pub(crate) fn export_json(catalogue: &Catalogue, e: &Exported<'_>) -> Value {
    let lang = language(e.request);
    let exchanges: Vec<Value> = e
        .found
        .iter()
        .map(|f| {
            let h = &f.head;
            let messages: Option<Vec<Value>> = e.messages.get(&h.id).map(|ms| {
                ms.iter()
                    .map(|m| {
                        json!({
                            "id": m.id,
                            "message_type": m.message_type,
                            "sender": m.sender,
                            "received_at": m.received_at,
                            "payload": payload(m),
                        })
                    })
                    .collect()
            });
            json!({
                "id": h.id,
                "procedure": h.procedure,
                "procedure_name": procedure_name(catalogue, &h.procedure, lang),
                "state": h.state,
                "state_name": state_name(catalogue, &h.procedure, &h.state, lang),
                "requester": h.requester,
                "responder": (!h.responder.is_empty()).then_some(&h.responder),
                "recipients": h.recipients,
                "opened_at": h.opened_at,
                "closed_at": h.closed_at,
                "personal_data_erased_at": h.personal_data_erased_at,
                "content": if messages.is_some() { "included" } else { "not_readable_by_this_office" },
                "messages": messages,
            })
        })
        .collect();
    let statements: Vec<Value> = e
        .statements
        .iter()
        .map(|s| {
            json!({"exchange": s.exchange_id, "kind": s.kind, "statement": s.statement,
                   "recorded_at": s.recorded_at})
        })
        .collect();
    json!({
        "request": {
            "id": e.request.id,
            "kind": e.request.kind,
            "language": lang,
            "reference": e.request.reference,
            "received_at": e.request.received_at,
            "due_at": e.request.due_at,
        },
        "generated_at": e.generated_at,
        "exchanges": exchanges,
        "statements": statements,
    })
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// The export as a page in the person's language: standalone (its style
/// inline), to hand over or print.
pub(crate) fn export_html(catalogue: &Catalogue, e: &Exported<'_>) -> String {
    let lang = language(e.request);
    let w = |key: &str| word(lang, key);
    let generated = day(e.generated_at);
    let kind_key = format!("kind_{}", e.request.kind);
    let page: Markup = html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (w("title")) }
                style { (STYLE) }
            }
            body {
                main {
                    h1 { (w("title")) }
                    p { (w("intro").replace("{date}", &generated)) }
                    section {
                        h2 { (w("request")) }
                        dl {
                            dt { (w("request")) } dd { (w(&kind_key)) " — " (e.request.reference) }
                            dt { (w("received")) } dd { (day(e.request.received_at)) }
                            dt { (w("due")) } dd { (day(e.request.due_at)) }
                            dt { (w("page_language")) } dd { (lang) }
                        }
                    }
                    section {
                        h2 { (w("exchanges")) " (" (e.found.len()) ")" }
                        @if e.found.is_empty() { p { (w("none")) } }
                        @for f in e.found {
                            (exchange(catalogue, e, f, lang))
                        }
                    }
                    @if !e.statements.is_empty() {
                        section {
                            h2 { (w("statements")) }
                            ul {
                                @for s in e.statements {
                                    li {
                                        (w(&format!("statement_{}", s.kind))) " · " (day(s.recorded_at)) " · "
                                        code { (s.exchange_id) }
                                        @if let Some(text) = &s.statement { ": " (text) }
                                    }
                                }
                            }
                        }
                    }
                    footer {
                        p { (w("rights")) }
                        p { (w("retention")) }
                        p { (w("generated").replace("{date}", &generated)) }
                    }
                }
            }
        }
    };
    page.into_string()
}

fn exchange(catalogue: &Catalogue, e: &Exported<'_>, f: &Found, lang: &str) -> Markup {
    let w = |key: &str| word(lang, key);
    let h = &f.head;
    html! {
        article {
            h3 { (procedure_name(catalogue, &h.procedure, lang)) }
            dl {
                dt { (w("exchange")) } dd { code { (h.id) } }
                dt { (w("state")) } dd { (state_name(catalogue, &h.procedure, &h.state, lang)) }
                dt { (w("opened")) } dd { (day(h.opened_at)) }
                @if let Some(c) = h.closed_at { dt { (w("closed")) } dd { (day(c)) } }
                dt { (w("requester")) } dd { (h.requester) }
                @if let Some(r) = &h.recipients {
                    dt { (w("recipients")) } dd { (r.join(", ")) }
                } @else {
                    dt { (w("responder")) } dd { (h.responder) }
                }
            }
            @if h.personal_data_erased_at.is_some() { p class="note" { (w("erased")) } }
            @if let Some(messages) = e.messages.get(&h.id) {
                @for m in messages {
                    (message(catalogue, m, lang))
                }
            }
        }
    }
}

fn message(catalogue: &Catalogue, m: &Message, lang: &str) -> Markup {
    let w = |key: &str| word(lang, key);
    let rendered = MessageType::try_from(m.message_type.as_str())
        .ok()
        .zip(payload(m))
        .and_then(|(ty, p)| catalogue.render_lines(&ty, &p, lang).ok());
    html! {
        section class="message" {
            h4 { (w("message")) " · " (w("sent_by")) " " (m.sender) " · " (w("sent_at")) " " (day(m.received_at)) }
            @if let Some((title, lines)) = rendered {
                p { strong { (title) } }
                dl {
                    @for line in lines {
                        @let indent = format!("d{}", line.depth.min(6));
                        dt class=(indent) { (line.label.unwrap_or_else(|| "•".to_owned())) }
                        dd class=(indent) { (line.value.unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.45}\
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ccc;margin-top:2rem}h3{font-size:1.1rem;margin-bottom:.3rem}\
h4{font-size:.95rem;color:#333;margin:.8rem 0 .2rem}article{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.3rem 0}dt{font-weight:600}dd{margin:0}\
.d1{padding-left:1rem}.d2{padding-left:2rem}.d3{padding-left:3rem}.d4,.d5,.d6{padding-left:4rem}\
.note{background:#fff4d6;padding:.4rem .6rem;border-radius:4px}footer{margin-top:2rem;font-size:.9rem;color:#333}\
@media print{article{break-inside:avoid}}";

//! Rendering a coded message in any of the 24 languages: field names and
//! coded values (questions, answer options, other codes) become labels; free
//! text and dates stay as sent.

use std::fmt::Write;

use serde_json::Value;
use thiserror::Error;

use super::compiled::{Catalogue, Procedure, LANGUAGES};
use crate::ids::MessageType;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderError {
    #[error("`{0}` is not a message type of the catalogue")]
    UnknownMessageType(String),
    #[error("`{0}` is not one of the 24 official EU languages")]
    UnknownLanguage(String),
}

/// One line of a rendered payload: a field's label (or `None` for an item
/// of a list) and its value (or `None` when nested lines follow), indented
/// by `depth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedLine {
    pub depth: usize,
    pub label: Option<String>,
    pub value: Option<String>,
}

impl Catalogue {
    /// Renders a payload as indented text in `lang`, headed by the procedure's
    /// name and the action.
    pub fn render(
        &self,
        message_type: &MessageType,
        payload: &Value,
        lang: &str,
    ) -> Result<String, RenderError> {
        let (title, lines) = self.render_lines(message_type, payload, lang)?;
        let mut out = format!("{title}\n");
        for line in lines {
            let pad = "  ".repeat(line.depth);
            let _ = match (line.label, line.value) {
                (Some(label), Some(value)) => writeln!(out, "{pad}{label}: {value}"),
                (Some(label), None) => writeln!(out, "{pad}{label}:"),
                (None, Some(value)) => writeln!(out, "{pad}- {value}"),
                (None, None) => writeln!(out, "{pad}-"),
            };
        }
        Ok(out)
    }

    /// The title (`<procedure name> — <action>`) and the lines of a payload
    /// rendered in `lang`, for a page to lay out.
    pub fn render_lines(
        &self,
        message_type: &MessageType,
        payload: &Value,
        lang: &str,
    ) -> Result<(String, Vec<RenderedLine>), RenderError> {
        if !LANGUAGES.contains(&lang) {
            return Err(RenderError::UnknownLanguage(lang.to_owned()));
        }
        let (procedure, action) = self
            .resolve(message_type)
            .ok_or_else(|| RenderError::UnknownMessageType(message_type.to_string()))?;
        let name = procedure
            .names
            .get(lang)
            .map(String::as_str)
            .unwrap_or(procedure.code.as_str());
        let mut lines = Vec::new();
        Renderer {
            catalogue: self,
            procedure,
            lang,
        }
        .value(payload, 0, &mut lines);
        Ok((format!("{name} — {}", action.code), lines))
    }
}
struct Renderer<'a> {
    catalogue: &'a Catalogue,
    procedure: &'a Procedure,
    lang: &'a str,
}

impl Renderer<'_> {
    fn scalar(&self, v: &Value) -> String {
        match v {
            Value::String(s) => self
                .catalogue
                .code_label(self.procedure, s, self.lang)
                .map(str::to_owned)
                .unwrap_or_else(|| s.clone()),
            Value::Bool(b) => {
                let code = if *b { "YES" } else { "NO" };
                self.catalogue
                    .code_label(self.procedure, code, self.lang)
                    .map(str::to_owned)
                    .unwrap_or_else(|| b.to_string())
            }
            Value::Null => "—".to_owned(),
            other => other.to_string(),
        }
    }

    fn value(&self, v: &Value, depth: usize, out: &mut Vec<RenderedLine>) {
        let line = |label: Option<String>, value: Option<String>| RenderedLine {
            depth,
            label,
            value,
        };
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    let label = self
                        .catalogue
                        .field_label(self.procedure, key, self.lang)
                        .unwrap_or(key.as_str())
                        .to_owned();
                    if value.is_object() || value.is_array() {
                        out.push(line(Some(label), None));
                        self.value(value, depth + 1, out);
                    } else {
                        out.push(line(Some(label), Some(self.scalar(value))));
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    if item.is_object() || item.is_array() {
                        out.push(line(None, None));
                        self.value(item, depth + 1, out);
                    } else {
                        out.push(line(None, Some(self.scalar(item))));
                    }
                }
            }
            scalar => out.push(line(None, Some(self.scalar(scalar)))),
        }
    }
}

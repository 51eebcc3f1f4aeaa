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

impl Catalogue {
    /// Renders a payload as indented text in `lang`, headed by the procedure's
    /// name and the action.
    pub fn render(
        &self,
        message_type: &MessageType,
        payload: &Value,
        lang: &str,
    ) -> Result<String, RenderError> {
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
        let mut out = format!("{name} — {}\n", action.code);
        Renderer {
            catalogue: self,
            procedure,
            lang,
        }
        .value(payload, 0, &mut out);
        Ok(out)
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

    fn value(&self, v: &Value, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    let label = self
                        .catalogue
                        .field_label(self.procedure, key, self.lang)
                        .unwrap_or(key.as_str());
                    if value.is_object() || value.is_array() {
                        let _ = writeln!(out, "{pad}{label}:");
                        self.value(value, depth + 1, out);
                    } else {
                        let _ = writeln!(out, "{pad}{label}: {}", self.scalar(value));
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    if item.is_object() || item.is_array() {
                        let _ = writeln!(out, "{pad}-");
                        self.value(item, depth + 1, out);
                    } else {
                        let _ = writeln!(out, "{pad}- {}", self.scalar(item));
                    }
                }
            }
            scalar => {
                let _ = writeln!(out, "{pad}{}", self.scalar(scalar));
            }
        }
    }
}

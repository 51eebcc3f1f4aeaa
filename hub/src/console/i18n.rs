//! Every word of the console's pages comes from one message file per
//! language (`messages/<lang>.toml`, flat keys); no page writes a word of
//! its own. English is the only one for now; adding a language is adding a
//! file here.

use std::collections::HashMap;
use std::sync::OnceLock;

const EN: &str = include_str!("messages/en.toml");

fn messages() -> &'static HashMap<String, String> {
    static MESSAGES: OnceLock<HashMap<String, String>> = OnceLock::new();
    MESSAGES.get_or_init(|| toml::from_str(EN).expect("messages/en.toml is valid TOML"))
}

/// The words for `key`; the key itself if the file lacks it (a test makes
/// sure every key the pages use is there).
pub(crate) fn t(key: &str) -> &'static str {
    match messages().get(key) {
        Some(text) => text.as_str(),
        None => {
            debug_assert!(false, "message `{key}` is missing from messages/en.toml");
            // Leaked once per missing key; the test keeps the set empty.
            Box::leak(key.to_owned().into_boxed_str())
        }
    }
}

/// The words for `key` with `{name}` placeholders filled.
pub(crate) fn tf(key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut text = t(key).to_owned();
    for (name, value) in args {
        text = text.replace(&format!("{{{name}}}"), &value.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every `t("…")`/`tf("…"` key in the console's sources is in the file,
    /// and every caption and heading of a `Table`.
    #[test]
    fn every_key_the_pages_use_is_in_the_message_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
        let mut missing = Vec::new();
        let mut used = 0;
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for call in [
                    "t(\"",
                    "tf(\"",
                    "empty(\"",
                    "error_page(StatusCode::FORBIDDEN, \"",
                ] {
                    for (i, _) in text.match_indices(call) {
                        // `t(` as a call of its own, not the end of `split(`.
                        let before = text[..i].chars().next_back();
                        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                            continue;
                        }
                        let rest = &text[i + call.len()..];
                        let key = &rest[..rest.find('"').unwrap()];
                        // The doc comments above quote the pattern itself.
                        if key.contains('…') || key.is_empty() {
                            continue;
                        }
                        used += 1;
                        if !messages().contains_key(key) {
                            missing.push(format!("{}: {key}", path.display()));
                        }
                    }
                }
                // A list's caption and headings: the literals with a dot
                // (column names and file names have none).
                for call in [".column(", ".actions(", "Table::new(", "Table::named("] {
                    for (i, _) in text.match_indices(call) {
                        let rest = &text[i + call.len()..];
                        let args = &rest[..rest.find(')').unwrap()];
                        for key in args.split('"').skip(1).step_by(2) {
                            if key.contains('.') {
                                used += 1;
                                if !messages().contains_key(key) {
                                    missing.push(format!("{}: {key}", path.display()));
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(used > 100, "found only {used} keys: is the scan broken?");
        assert!(missing.is_empty(), "missing messages: {missing:#?}");
    }
}

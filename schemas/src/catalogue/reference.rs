//! The browsable catalogue reference (docs/catalogue.md), generated from the
//! catalogue so it is always true to it.

use std::fmt::Write;

use super::compiled::{Catalogue, RecipientRule, LANGUAGES};
use super::deadline::{ClockRule, DeadlineRuns};

fn en(labels: &super::Labels) -> &str {
    labels.get("en").map(String::as_str).unwrap_or("")
}

impl Catalogue {
    /// Markdown: areas, then each procedure with its workflow, deadlines,
    /// retention, personal data, questions, and names in all languages.
    pub fn reference_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# Procedure catalogue reference\n");
        let _ = writeln!(
            o,
            "Generated from `schemas/catalogue/` by `IMI_BLESS=1 cargo test -p imi-schemas`; do not edit by hand. \
             The format is described in [catalogue-format.md](catalogue-format.md); every form's JSON Schema is in \
             [`schemas/json/forms/`](../schemas/json/forms).\n"
        );
        let _ = writeln!(
            o,
            "{} areas, {} procedures, all labels in {} languages.\n",
            self.area_count(),
            self.procedures().count(),
            LANGUAGES.len()
        );
        let _ = writeln!(
            o,
            "| area | name | legal basis | procedures |\n|---|---|---|---|"
        );
        for a in self.areas() {
            let n = self.procedures().filter(|p| p.area == a.code).count();
            let _ = writeln!(
                o,
                "| [`{}`](#area-{}) | {} | {} | {n} |",
                a.code,
                a.code,
                en(&a.names),
                a.legal_basis
            );
        }
        for a in self.areas() {
            let _ = writeln!(
                o,
                "\n## <a id=\"area-{}\"></a>{} (`{}`)\n\n{}\n",
                a.code,
                en(&a.names),
                a.code,
                a.legal_basis
            );
            for p in self.procedures().filter(|p| p.area == a.code) {
                let rule = match p.recipients {
                    RecipientRule::One => "one authority",
                    RecipientRule::Explicit => "explicitly chosen authorities",
                    RecipientRule::Countries => "authorities of chosen countries",
                    RecipientRule::AllCountries => "authorities of all countries",
                    RecipientRule::None => "no recipients",
                };
                let _ = writeln!(o, "### {} (`{}`)\n", en(&p.names), p.code);
                let _ =
                    writeln!(
                    o,
                    "Kind: **{}** · recipients: {rule}{} · schema versions: {:?} · states: {}\n",
                    p.kind.as_str(),
                    if p.commission { " and the Commission" } else { "" },
                    p.schema_versions,
                    p.states.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" → ")
                );
                let _ = writeln!(
                    o,
                    "| action | by | from | to | form |\n|---|---|---|---|---|"
                );
                for act in p.actions() {
                    let from = if act.opens {
                        "(opens)".to_owned()
                    } else {
                        act.from.join(", ")
                    };
                    let _ = writeln!(
                        o,
                        "| `{}` | {} | {from} | `{}` | [`{}.{}`](../schemas/json/forms/{}.{}.schema.json) |",
                        act.code,
                        act.by.as_str(),
                        act.to,
                        p.code,
                        act.code,
                        p.code,
                        act.code
                    );
                }
                if !p.deadlines.is_empty() {
                    let _ = writeln!(o, "\nDeadlines:");
                    for d in &p.deadlines {
                        let runs = match &d.runs {
                            DeadlineRuns::InStates { states, from } => {
                                let states = states
                                    .iter()
                                    .map(|s| format!("`{s}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ");
                                match from {
                                    Some(e) => format!("from {}, while in {states}", e.as_str()),
                                    None => format!("while in {states}"),
                                }
                            }
                            DeadlineRuns::FromField(f) => format!("from the date `{f}`"),
                        };
                        let mut notes = Vec::new();
                        if d.agreed_date {
                            notes.push("or by the agreed answer date".to_owned());
                        }
                        if let Some(f) = &d.if_field {
                            notes.push(format!("only if `{f}`"));
                        }
                        match d.more_information {
                            ClockRule::Stop => {
                                notes.push("a request for more information stops the clock".into())
                            }
                            ClockRule::Restart => notes.push(
                                "a request for more information restarts the clock on receipt"
                                    .into(),
                            ),
                            ClockRule::None => {}
                        }
                        if let Some(c) = &d.consequence {
                            notes.push(format!("missing it: `{c}`"));
                        }
                        let notes = if notes.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", notes.join("; "))
                        };
                        let _ = writeln!(
                            o,
                            "- `{}`: {} {runs}{notes}. Source: {}.",
                            d.code,
                            d.period.describe(),
                            d.source_text()
                        );
                    }
                }
                let _ = writeln!(
                    o,
                    "\nRetention: personal data blocked {} months and deleted {} after formal closure{}.",
                    p.retention.block_after_closure_months,
                    p.retention.deletion_period(),
                    p.expires_with
                        .as_ref()
                        .map(|f| format!(" (the end of the date `{f}` closes it)"))
                        .unwrap_or_default()
                );
                if !p.personal_data.is_empty() {
                    let _ = writeln!(
                        o,
                        "Personal data: {}.",
                        p.personal_data
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if !p.special_categories.is_empty() {
                    let _ = writeln!(
                        o,
                        "Special categories (Regulation (EU) 1024/2012 Art. 16): {}.",
                        p.special_categories
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if !p.questions.is_empty() {
                    let _ = writeln!(o, "\n| question | text (en) | answers |\n|---|---|---|");
                    for q in &p.questions {
                        let _ = writeln!(
                            o,
                            "| `{}` | {} | {} |",
                            q.code,
                            en(&q.labels),
                            q.answers.join(", ")
                        );
                    }
                }
                let _ = writeln!(
                    o,
                    "\n<details><summary>Name in the 24 languages</summary>\n"
                );
                for lang in LANGUAGES {
                    let _ = writeln!(
                        o,
                        "- `{lang}` {}",
                        p.names.get(lang).map(String::as_str).unwrap_or("")
                    );
                }
                let _ = writeln!(o, "\n</details>\n");
            }
        }
        o
    }
}

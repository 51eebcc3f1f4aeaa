//! Loading a catalogue: each file's shape against the generated JSON Schema
//! of its format type, then areas, the shared vocabulary and procedures
//! (`compile.rs`), collecting every error with its file and path.

use std::collections::BTreeSet;

use jsonschema::Validator;

use super::compile::compile_procedure;
use super::compiled::{Area, Catalogue, CheckReport, LANGUAGES, MAX_FIELD_ERRORS};
use super::deadline::Calendar;
use super::error::{CatalogueError, CatalogueErrors};
use super::glossary::check_glossary;
use super::model::{AreaFile, CalendarFile, GlossaryFile, Labels, ProcedureFile, VocabularyFile};
use super::SourceFile;
use crate::ids::AreaCode;

/// Collects errors, and the languages with at least one gap.
pub(super) struct Checker {
    errors: Vec<CatalogueError>,
    gaps: BTreeSet<&'static str>,
}

impl Checker {
    pub(super) fn err(&mut self, file: &str, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(CatalogueError {
            file: file.to_owned(),
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn labels(&mut self, file: &str, path: &str, labels: &Labels) {
        for lang in LANGUAGES {
            if labels.get(lang).is_none_or(|l| l.trim().is_empty()) {
                self.gaps.insert(lang);
                self.err(file, path, format!("label missing in `{lang}`"));
            }
        }
        for key in labels.keys() {
            if !LANGUAGES.contains(&key.as_str()) {
                self.err(
                    file,
                    path,
                    format!("`{key}` is not one of the 24 official languages"),
                );
            }
        }
    }

    /// Checks a file's shape against the generated JSON Schema of its type,
    /// so every error has a path inside the file.
    fn shape<T: serde::de::DeserializeOwned>(
        &mut self,
        file: &SourceFile,
        validator: &Validator,
    ) -> Option<T> {
        let value: serde_json::Value = match serde_yaml_ng::from_str(&file.text) {
            Ok(v) => v,
            Err(e) => {
                let at = e
                    .location()
                    .map(|l| format!("line {} column {}", l.line(), l.column()))
                    .unwrap_or_else(|| "$".into());
                self.err(&file.path, at, format!("not valid YAML: {e}"));
                return None;
            }
        };
        let mut shaped = true;
        for e in validator.iter_errors(&value).take(MAX_FIELD_ERRORS) {
            shaped = false;
            let at = e.instance_path.as_str();
            self.err(
                &file.path,
                if at.is_empty() { "$" } else { at },
                e.to_string(),
            );
        }
        if !shaped {
            return None;
        }
        match serde_json::from_value(value) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(&file.path, "$", e.to_string());
                None
            }
        }
    }
}

fn format_validator<T: schemars::JsonSchema>() -> Validator {
    let schema = schemars::schema_for!(T).to_value();
    jsonschema::validator_for(&schema).expect("generated catalogue schemas are valid")
}

impl Catalogue {
    /// Parses and cross-checks catalogue files: `area.yaml` files declare
    /// areas, `vocabulary.yaml` the shared labels, every other file a
    /// procedure. Reports every error found.
    pub fn parse(files: &[SourceFile]) -> Result<Self, CatalogueErrors> {
        let (catalogue, report) = Self::check(files);
        if report.errors.is_empty() {
            Ok(catalogue)
        } else {
            Err(CatalogueErrors(report.errors))
        }
    }

    /// Like [`Catalogue::parse`], but returns what could be loaded together
    /// with the report (for `imi-hub catalogue check`).
    pub fn check(files: &[SourceFile]) -> (Self, CheckReport) {
        let mut ck = Checker {
            errors: Vec::new(),
            gaps: BTreeSet::new(),
        };
        let mut catalogue = Catalogue::default();
        let is = |f: &SourceFile, name: &str| f.path.rsplit(['/', '\\']).next() == Some(name);
        // `common/calendars/DE.yaml`: the folder the file is in.
        let in_dir = |f: &SourceFile, dir: &str| f.path.rsplit(['/', '\\']).nth(1) == Some(dir);

        let vocabulary_validator = format_validator::<VocabularyFile>();
        for file in files.iter().filter(|f| is(f, "vocabulary.yaml")) {
            if let Some(v) = ck.shape::<VocabularyFile>(file, &vocabulary_validator) {
                for (code, labels) in &v.answers {
                    ck.labels(&file.path, &format!("answers.{code}"), labels);
                }
                for (name, labels) in &v.fields {
                    ck.labels(&file.path, &format!("fields.{name}"), labels);
                }
                for (key, map) in [
                    ("codes", &v.codes),
                    ("states", &v.states),
                    ("actions", &v.actions),
                ] {
                    for (code, labels) in map {
                        ck.labels(&file.path, &format!("{key}.{code}"), labels);
                    }
                }
                let vocabulary = &mut catalogue.vocabulary;
                vocabulary.answers.extend(v.answers);
                vocabulary.fields.extend(v.fields);
                vocabulary.codes.extend(v.codes);
                vocabulary.states.extend(v.states);
                vocabulary.actions.extend(v.actions);
            }
        }

        let calendar_validator = format_validator::<CalendarFile>();
        for file in files.iter().filter(|f| in_dir(f, "calendars")) {
            let Some(c) = ck.shape::<CalendarFile>(file, &calendar_validator) else {
                continue;
            };
            let named = file.path.rsplit(['/', '\\']).next().unwrap_or("");
            if crate::ids::CountryCode::try_from(c.country.as_str()).is_err()
                || named != format!("{}.yaml", c.country)
            {
                ck.err(
                    &file.path,
                    "country",
                    format!(
                        "`{}` is not a country code, or not the file's name",
                        c.country
                    ),
                );
                continue;
            }
            for h in c.holidays.iter().filter(|h| h.date > c.valid_until) {
                ck.err(
                    &file.path,
                    "holidays",
                    format!("{} is after `valid_until` {}", h.date, c.valid_until),
                );
            }
            let calendar = Calendar::new(
                c.weekend.iter().map(|d| (*d).into()),
                c.holidays.iter().map(|h| h.date),
                c.valid_until,
            );
            catalogue.calendars.insert(c.country, calendar);
        }

        let area_validator = format_validator::<AreaFile>();
        for file in files.iter().filter(|f| is(f, "area.yaml")) {
            let Some(area) = ck.shape::<AreaFile>(file, &area_validator) else {
                continue;
            };
            ck.labels(&file.path, "names", &area.names);
            match AreaCode::try_from(area.code.as_str()) {
                Ok(code) if catalogue.areas.contains_key(&code) => ck.err(
                    &file.path,
                    "code",
                    format!("area `{code}` is declared twice"),
                ),
                Ok(code) => {
                    catalogue.areas.insert(
                        code.clone(),
                        Area {
                            code,
                            legal_basis: area.legal_basis,
                            names: area.names,
                        },
                    );
                }
                Err(e) => ck.err(&file.path, "code", e.to_string()),
            }
        }

        let procedure_validator = format_validator::<ProcedureFile>();
        let glossaries: Vec<&SourceFile> = files.iter().filter(|f| in_dir(f, "glossary")).collect();
        for file in files.iter().filter(|f| {
            !is(f, "area.yaml")
                && !is(f, "vocabulary.yaml")
                && !in_dir(f, "calendars")
                && !in_dir(f, "glossary")
        }) {
            let Some(raw) = ck.shape::<ProcedureFile>(file, &procedure_validator) else {
                continue;
            };
            let before = ck.errors.len();
            let procedure = compile_procedure(&file.path, raw, &catalogue, &mut ck);
            if let Some(p) = procedure.filter(|_| ck.errors.len() == before) {
                if catalogue.procedures.contains_key(&p.code) {
                    ck.err(
                        &file.path,
                        "code",
                        format!("procedure `{}` is declared twice", p.code),
                    );
                } else {
                    catalogue.procedures.insert(p.code.clone(), p);
                }
            }
        }

        // Last: a glossary names labels of every kind.
        let glossary_validator = format_validator::<GlossaryFile>();
        for file in glossaries {
            if let Some(g) = ck.shape::<GlossaryFile>(file, &glossary_validator) {
                check_glossary(&mut ck, &file.path, &g, &catalogue);
            }
        }

        let report = CheckReport {
            areas: catalogue.areas.len(),
            procedures: catalogue.procedures.len(),
            languages_complete: LANGUAGES.len() - ck.gaps.len(),
            errors: ck.errors,
        };
        (catalogue, report)
    }
}

//! The procedure catalogue: legislative areas and their procedures as data.
//!
//! Files are YAML (docs/catalogue-format.md): one folder per area
//! (`area.yaml` plus one file per procedure) and shared labels in
//! `common/vocabulary.yaml`, working-day calendars in
//! `common/calendars/`, and glossaries of the acts' terms in
//! `common/glossary/`. This module parses their *text*; reading the
//! folder is the caller's job, so the crate stays free of IO (the opt-in
//! `folder` feature adds the one reader the hub and `imi-adapter` share). Parsing checks
//! every file against the format's generated JSON Schema and every
//! cross-reference, and compiles each form's JSON Schema once.

mod check;
mod compile;
mod compiled;
mod deadline;
mod error;
#[cfg(feature = "folder")]
mod folder;
mod glossary;
mod model;
mod reference;
mod render;
mod subjects;

pub use compiled::{
    Action, Area, Catalogue, CheckReport, Procedure, ProcedureKind, Question, RecipientRule,
    Retention, Role, LANGUAGES, VALIDATION_STATE,
};
pub use deadline::{
    Calendar, Clock, ClockRule, Deadline, DeadlineEvent, DeadlineRuns, DeadlineSource, HistoryStep,
    Period,
};
pub use error::{CatalogueError, CatalogueErrors};
#[cfg(feature = "folder")]
pub use folder::read_folder;
pub use model::{
    ActionFile, AreaFile, CalendarFile, GlossaryFile, GlossaryTerm, Labels, ProcedureFile,
    QuestionFile, VocabularyFile,
};
pub use render::{RenderError, RenderedLine};
pub use subjects::{
    identifying_fields, identities, IdentifyingFields, Identity, NATIONAL_ID_FIELDS,
};

/// One catalogue file's path (for error messages) and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

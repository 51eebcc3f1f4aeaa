//! The procedure catalogue: legislative areas and their procedures as data.
//!
//! Files are YAML, one folder per area (`area.yaml` plus one file per
//! procedure). This module parses their *text*; reading the folder is the
//! caller's job, so the crate stays free of IO. Parsing compiles every form's
//! JSON Schema once; validation afterwards is allocation-light.

mod compiled;
mod error;
mod model;

pub use compiled::{Action, Catalogue, Procedure, ProcedureKind, Role};
pub use error::{CatalogueError, CatalogueErrors};
pub use model::{ActionFile, AreaFile, ProcedureFile, QuestionFile};

/// One catalogue file's path (for error messages) and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

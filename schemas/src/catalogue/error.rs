use std::fmt;

use thiserror::Error;

/// One problem in one catalogue file, with the path inside the file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}: {path}: {message}")]
pub struct CatalogueError {
    pub file: String,
    /// Where in the file, e.g. `actions[1].form` (`$` for the whole file).
    pub path: String,
    pub message: String,
}

/// All problems found in a catalogue: loading reports every one, not the first.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct CatalogueErrors(pub Vec<CatalogueError>);

impl fmt::Display for CatalogueErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} catalogue error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

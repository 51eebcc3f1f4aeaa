//! Reading the catalogue folder and holding the catalogue in force.

use std::path::Path;
use std::sync::{Arc, RwLock};

use imi_schemas::catalogue::{Catalogue, CheckReport, SourceFile};
use tracing::{info, warn};

use crate::error::HubError;

/// Reads every `*.yaml` file below `dir`.
pub fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, HubError> {
    let mut files = Vec::new();
    collect(dir, &mut files)
        .map_err(|e| HubError::Catalogue(format!("cannot read {}: {e}", dir.display())))?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn collect(dir: &Path, out: &mut Vec<SourceFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(SourceFile {
                text: std::fs::read_to_string(&path)?,
                path: path.display().to_string(),
            });
        }
    }
    Ok(())
}

/// Loads and checks a catalogue folder.
pub fn load(dir: &Path) -> Result<Catalogue, HubError> {
    Catalogue::parse(&read_dir(dir)?).map_err(|e| HubError::Catalogue(e.to_string()))
}

/// Checks a catalogue folder and reports everything found.
pub fn check(dir: &Path) -> Result<CheckReport, HubError> {
    Ok(Catalogue::check(&read_dir(dir)?).1)
}

/// The catalogue in force; replaced whole, so a batch sees one version.
#[derive(Clone)]
pub struct SharedCatalogue(Arc<RwLock<Arc<Catalogue>>>, Arc<std::path::PathBuf>);

impl SharedCatalogue {
    pub fn new(catalogue: Catalogue, dir: &Path) -> Self {
        Self(
            Arc::new(RwLock::new(Arc::new(catalogue))),
            Arc::new(dir.to_owned()),
        )
    }

    /// Reads the catalogue folder again and puts it in force atomically. A
    /// broken catalogue is refused with its errors; the one in force stays.
    pub fn reload(&self) -> Result<(), HubError> {
        match load(&self.1) {
            Ok(catalogue) => {
                let procedures = catalogue.procedures().count();
                self.replace(catalogue);
                info!(procedures, dir = %self.1.display(), "Catalogue reloaded.");
                Ok(())
            }
            Err(error) => {
                warn!(%error, "Catalogue reload refused; the previous catalogue stays in force.");
                Err(error)
            }
        }
    }
    pub fn current(&self) -> Arc<Catalogue> {
        self.0.read().expect("catalogue lock").clone()
    }
    pub fn replace(&self, catalogue: Catalogue) {
        *self.0.write().expect("catalogue lock") = Arc::new(catalogue);
    }
}

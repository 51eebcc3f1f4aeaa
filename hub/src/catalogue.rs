//! Reading the catalogue folder and holding the catalogue in force.

use std::path::Path;
use std::sync::{Arc, RwLock};

use imi_schemas::catalogue::{Catalogue, CheckReport, SourceFile};
use tracing::{info, warn};

use crate::error::HubError;

/// Reads every catalogue file below `dir`.
fn read(dir: &Path) -> Result<Vec<SourceFile>, HubError> {
    imi_schemas::catalogue::read_folder(dir).map_err(|source| HubError::Read {
        path: dir.to_owned(),
        source,
    })
}

/// Loads and checks a catalogue folder.
pub fn load(dir: &Path) -> Result<Catalogue, HubError> {
    Catalogue::parse(&read(dir)?).map_err(|source| HubError::Catalogue {
        path: dir.to_owned(),
        source,
    })
}

/// Checks a catalogue folder and reports everything found.
pub fn check(dir: &Path) -> Result<CheckReport, HubError> {
    Ok(Catalogue::check(&read(dir)?).1)
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

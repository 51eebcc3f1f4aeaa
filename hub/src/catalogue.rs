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
    let catalogue = Catalogue::parse(&read(dir)?).map_err(|source| HubError::Catalogue {
        path: dir.to_owned(),
        source,
    })?;
    warn_of_ending_calendars(&catalogue, chrono::Utc::now().date_naive());
    Ok(catalogue)
}

/// How long before a calendar's last known holiday the operators are told
/// to add the next year's.
const CALENDAR_NOTICE_DAYS: i64 = 60;

/// Working days are counted with weekends only beyond a calendar's
/// `valid_until`: say so in time for someone to add the next year.
fn warn_of_ending_calendars(catalogue: &Catalogue, today: chrono::NaiveDate) -> Vec<String> {
    let ending: Vec<String> = catalogue
        .calendars()
        .filter(|(_, c)| {
            c.valid_until
                .is_some_and(|until| until - today < chrono::Duration::days(CALENDAR_NOTICE_DAYS))
        })
        .map(|(country, _)| country.clone())
        .collect();
    if !ending.is_empty() {
        warn!(
            countries = ?ending,
            "Working-day calendars end within {CALENDAR_NOTICE_DAYS} days: add the next year's public holidays to schemas/catalogue/common/calendars/ and reload."
        );
    }
    ending
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendars_about_to_end_are_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/catalogue");
        let catalogue = Catalogue::parse(&read(&dir).unwrap()).unwrap();
        let (_, de) = catalogue.calendars().find(|(c, _)| *c == "DE").unwrap();
        let until = de.valid_until.unwrap();
        let early = until - chrono::Duration::days(365);
        assert!(!warn_of_ending_calendars(&catalogue, early).contains(&"DE".to_owned()));
        let late = until - chrono::Duration::days(30);
        assert!(warn_of_ending_calendars(&catalogue, late).contains(&"DE".to_owned()));
    }
}

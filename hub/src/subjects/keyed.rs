//! The keyed hash of an identity: HMAC-SHA256 under the hub's index key.
//! Without the key, the index says nothing about whom it lists: a guessed
//! name and birth date cannot be checked against it.

use std::path::Path;

use hmac::{Hmac, Mac};
use imi_schemas::catalogue::{identities, Identity, Procedure};
use serde_json::Value;
use sha2::Sha256;

use crate::error::HubError;

/// One identity's entry in the index.
pub(crate) type SubjectKey = [u8; 32];

/// Hashes identities with the hub's index key; cheap to clone.
#[derive(Clone)]
pub struct SubjectKeyer {
    key: [u8; 32],
}

impl std::fmt::Debug for SubjectKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKeyer(..)")
    }
}

impl SubjectKeyer {
    /// Reads the key from `path`, creating it when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, HubError> {
        let key =
            crate::key_file::load_or_create(path, "subjects.index_key_file", "subject index key")?;
        Ok(Self { key })
    }

    /// A keyer on a key of the caller's (benchmarks, unit tests).
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The index entry of one identity; `None` when it names nobody.
    pub(crate) fn key(&self, identity: &Identity) -> Option<SubjectKey> {
        let canonical = identity.canonical()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(&canonical);
        Some(mac.finalize().into_bytes().into())
    }

    /// The index entries of a payload of `procedure`, each once.
    pub(crate) fn keys_of(&self, procedure: &Procedure, payload: &Value) -> Vec<SubjectKey> {
        if procedure.identifying.is_empty() {
            return Vec::new();
        }
        let mut keys: Vec<SubjectKey> = identities(&procedure.identifying, payload)
            .iter()
            .filter_map(|i| self.key(i))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_person_gives_the_same_key_and_another_key_another() {
        let person = Identity::NameAndBirthDate {
            family_name: "Dupont".into(),
            given_names: "Marie".into(),
            date_of_birth: "1985-06-01".into(),
        };
        let a = SubjectKeyer::from_key([1; 32]);
        let b = SubjectKeyer::from_key([2; 32]);
        assert_eq!(a.key(&person), a.key(&person.clone()));
        assert_ne!(a.key(&person), b.key(&person), "the key is keyed");
        assert_eq!(a.key(&Identity::NationalId(" ".into())), None);
    }
}

//! Encryption at rest (docs/encryption.md): stored payloads
//! (`messages.raw`) sealed with AES-256-GCM under a data key of the
//! configuration, when `encryption.key_file` is set.
//!
//! A sealed value is `IMIE1` ‖ key id (8 bytes: the start of the key's
//! SHA-256) ‖ nonce (12 random bytes) ‖ ciphertext and tag. A value without
//! the prefix is plain JSON (stored before encryption was turned on, or with
//! it off) and is read as it is; the re-encryption pass seals it.
//!
//! Sealing takes the hub's current key, passed to each writer. Opening
//! takes the key the value names, from the keys this process loaded (the
//! current and the previous ones): a value names its key, so any reader
//! opens it without being handed the configuration, and a rotation's old
//! and new keys are both readable while the pass re-seals.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::error::HubError;

const MAGIC: &[u8; 5] = b"IMIE1";
const KEY_ID_LEN: usize = 8;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;

/// The first bytes of a key's SHA-256: which key sealed a value.
pub(crate) type KeyId = [u8; KEY_ID_LEN];

/// Why a stored value could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AtRestError {
    #[error("sealed with key {0} that this hub does not have (encryption.previous_key_files)")]
    UnknownKey(String),
    #[error("a sealed value is damaged")]
    Damaged,
}

fn key_id(key: &[u8; 32]) -> KeyId {
    let digest = Sha256::digest(key);
    digest[..KEY_ID_LEN].try_into().expect("8 of 32 bytes")
}

/// Every key this process loaded, by id.
fn keyring() -> &'static RwLock<HashMap<KeyId, Arc<LessSafeKey>>> {
    static KEYS: OnceLock<RwLock<HashMap<KeyId, Arc<LessSafeKey>>>> = OnceLock::new();
    KEYS.get_or_init(Default::default)
}

fn aead_key(key: &[u8; 32]) -> Arc<LessSafeKey> {
    Arc::new(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).expect("32 bytes make an AES-256 key"),
    ))
}

/// The hub's data keys: the current one seals, all of them open. Cheap to
/// clone; without a current key, values are stored plain.
#[derive(Clone, Default)]
pub struct DataKeys {
    current: Option<(KeyId, Arc<LessSafeKey>)>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.current {
            Some((id, _)) => write!(f, "DataKeys(current {})", hex::encode(id)),
            None => f.write_str("DataKeys(off)"),
        }
    }
}

impl DataKeys {
    /// The keys of `encryption.key_file` (created when missing) and
    /// `encryption.previous_key_files` (which must exist); off without a
    /// key file.
    pub fn load(key_file: Option<&PathBuf>, previous: &[PathBuf]) -> Result<Self, HubError> {
        for path in previous {
            if !path.exists() {
                return Err(HubError::Setting {
                    key: "encryption.previous_key_files",
                    problem: format!("{} does not exist", path.display()),
                });
            }
            let key = crate::key_file::load_or_create(
                path,
                "encryption.previous_key_files",
                "previous data key",
            )?;
            Self::remember(&key);
        }
        match key_file {
            None => Ok(Self::default()),
            Some(path) => {
                let key = crate::key_file::load_or_create(path, "encryption.key_file", "data key")?;
                Ok(Self::from_key(&key))
            }
        }
    }

    /// Sealing with `key` (tests, the benchmark).
    pub fn from_key(key: &[u8; 32]) -> Self {
        let (id, sealing) = Self::remember(key);
        Self {
            current: Some((id, sealing)),
        }
    }

    fn remember(key: &[u8; 32]) -> (KeyId, Arc<LessSafeKey>) {
        let id = key_id(key);
        let sealing = aead_key(key);
        keyring()
            .write()
            .expect("the keyring is never poisoned: nothing panics holding it")
            .insert(id, sealing.clone());
        (id, sealing)
    }

    /// Whether values are sealed.
    pub fn enabled(&self) -> bool {
        self.current.is_some()
    }

    /// The id of the key that seals, if any.
    pub(crate) fn current_id(&self) -> Option<KeyId> {
        self.current.as_ref().map(|(id, _)| *id)
    }

    /// `plain` sealed with the current key (`imi-bench`'s cost figure);
    /// empty when encryption is off.
    pub fn seal_for_bench(&self, plain: &[u8]) -> Vec<u8> {
        self.seal(plain).unwrap_or_default()
    }

    /// `plain` as it is to be stored: sealed with the current key, or
    /// `None` when encryption is off (store `plain` itself).
    pub(crate) fn seal(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (id, key) = self.current.as_ref()?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut body = out.split_off(HEADER_LEN);
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
            .expect("AES-GCM seals any length the hub stores");
        out.extend_from_slice(&body);
        Some(out)
    }
}

/// Whether `stored` (or its first 13 bytes) is sealed, and with which key.
pub(crate) fn sealed_with(stored: &[u8]) -> Option<KeyId> {
    (stored.len() >= MAGIC.len() + KEY_ID_LEN && stored.starts_with(MAGIC)).then(|| {
        stored[MAGIC.len()..MAGIC.len() + KEY_ID_LEN]
            .try_into()
            .expect("8 bytes")
    })
}

/// A stored value as it was written: opened when sealed, as it is when
/// plain.
pub(crate) fn open(stored: &[u8]) -> Result<Cow<'_, [u8]>, AtRestError> {
    let Some(id) = sealed_with(stored) else {
        return Ok(Cow::Borrowed(stored));
    };
    if stored.len() < HEADER_LEN {
        return Err(AtRestError::Damaged);
    }
    let key = keyring()
        .read()
        .expect("the keyring is never poisoned: nothing panics holding it")
        .get(&id)
        .cloned()
        .ok_or_else(|| AtRestError::UnknownKey(hex::encode(id)))?;
    let nonce: [u8; NONCE_LEN] = stored[MAGIC.len() + KEY_ID_LEN..HEADER_LEN]
        .try_into()
        .expect("12 bytes");
    let mut body = stored[HEADER_LEN..].to_vec();
    let plain_len = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
        .map_err(|_| AtRestError::Damaged)?
        .len();
    body.truncate(plain_len);
    Ok(Cow::Owned(body))
}

/// A stored value as it was written, for tools and tests that read the
/// tables themselves; `None` when it is sealed with a key this process has
/// not loaded, or damaged.
pub fn read_stored(stored: &[u8]) -> Option<Vec<u8>> {
    open(stored).ok().map(Cow::into_owned)
}

/// Opens `stored` in place (rows just read); a value that cannot be opened
/// becomes empty, and the reader treats it as unreadable JSON.
pub(crate) fn open_in_place(stored: &mut Vec<u8>) {
    if sealed_with(stored).is_none() {
        return;
    }
    match open(stored) {
        Ok(plain) => *stored = plain.into_owned(),
        Err(error) => {
            tracing::error!(%error, "A stored payload cannot be opened.");
            stored.clear();
        }
    }
}

/// Messages the re-encryption pass reads per page (and re-seals in one
/// transaction).
const RESEAL_PAGE: i64 = 500;

/// Seals what is stored plain (written before encryption was on) or under
/// an earlier key, page by page in short transactions while the hub runs.
/// Each hub scans the table once after it starts (and again after a
/// catalogue of keys changes, i.e. its next start); new messages are sealed
/// by the pipeline with the current key. Cheap to clone.
#[derive(Clone)]
pub struct Reencryption {
    pub(crate) pool: sqlx::PgPool,
    pub(crate) data_keys: DataKeys,
    pub(crate) progress: Arc<std::sync::Mutex<Progress>>,
}

/// How far this hub's scan got.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    after: uuid::Uuid,
    done: bool,
    finished: Option<std::time::Instant>,
}

/// A finished scan starts again after this long: what an instance still on
/// an earlier key wrote during a rolling rotation is sealed anew then.
const RESCAN_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

impl Reencryption {
    /// A pass sealing with `data_keys`' current key (`imi-hub encryption
    /// reseal` runs one to its end).
    pub fn new(pool: sqlx::PgPool, data_keys: DataKeys) -> Self {
        Self {
            pool,
            data_keys,
            progress: Default::default(),
        }
    }

    /// Runs the scan to its end (or resumes it); returns how many messages
    /// were sealed anew.
    #[tracing::instrument(skip_all, fields(resealed))]
    pub async fn run_once(&self) -> Result<usize, HubError> {
        let Some(current) = self.data_keys.current_id() else {
            return Ok(0);
        };
        let mut resealed = 0;
        loop {
            let after = {
                let mut p = self.progress.lock().expect("never poisoned");
                if p.done && p.finished.is_some_and(|f| f.elapsed() >= RESCAN_AFTER) {
                    *p = Progress::default();
                }
                if p.done {
                    break;
                }
                p.after
            };
            let page: Vec<(uuid::Uuid, Option<KeyId>)> =
                sqlx::query_as::<_, (uuid::Uuid, Vec<u8>)>(
                    "SELECT id, substring(raw from 1 for 13) FROM messages
                 WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(RESEAL_PAGE)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|(id, head)| (id, sealed_with(&head)))
                .collect();
            let Some((last, _)) = page.last() else {
                let mut p = self.progress.lock().expect("never poisoned");
                p.done = true;
                p.finished = Some(std::time::Instant::now());
                break;
            };
            let last = *last;
            let stale: Vec<uuid::Uuid> = page
                .iter()
                .filter(|(_, key)| *key != Some(current))
                .map(|(id, _)| *id)
                .collect();
            if !stale.is_empty() {
                resealed += self.reseal(&stale).await?;
            }
            self.progress.lock().expect("never poisoned").after = last;
        }
        tracing::Span::current().record("resealed", resealed);
        if resealed > 0 {
            tracing::info!(
                resealed,
                "Sealed stored payloads with the current data key."
            );
        }
        Ok(resealed)
    }

    /// Seals `ids` with the current key, reading them again under a lock
    /// (an erasure may have rewritten one since).
    async fn reseal(&self, ids: &[uuid::Uuid]) -> Result<usize, HubError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT id, raw FROM messages WHERE id = ANY($1) FOR UPDATE SKIP LOCKED",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut out_ids = Vec::with_capacity(rows.len());
        let mut out_raws = Vec::with_capacity(rows.len());
        for (id, raw) in rows {
            if sealed_with(&raw) == self.data_keys.current_id() {
                continue;
            }
            let plain = match open(&raw) {
                Ok(plain) => plain,
                Err(error) => {
                    tracing::error!(message = %id, %error, "A stored payload cannot be opened; left as it is.");
                    continue;
                }
            };
            let sealed = self.data_keys.seal(&plain).expect("a current key");
            out_ids.push(id);
            out_raws.push(sealed);
        }
        sqlx::query(
            "UPDATE messages m SET raw = u.raw
             FROM UNNEST($1::uuid[], $2::bytea[]) AS u(id, raw) WHERE m.id = u.id",
        )
        .bind(&out_ids)
        .bind(&out_raws)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(out_ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_reveals_nothing() {
        let keys = DataKeys::from_key(&[9; 32]);
        let plain = br#"{"payload":{"family_name":"Quaxelbrunn"}}"#;
        let sealed = keys.seal(plain).unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"Quaxelbrunn"));
        assert_eq!(sealed_with(&sealed), keys.current_id());
        assert_eq!(open(&sealed).unwrap().as_ref(), plain);
        // A fresh nonce each time.
        assert_ne!(keys.seal(plain).unwrap(), sealed);
    }

    #[test]
    fn plain_values_pass_and_damaged_ones_are_refused() {
        assert_eq!(open(b"{\"a\":1}").unwrap().as_ref(), b"{\"a\":1}");
        let keys = DataKeys::from_key(&[10; 32]);
        let mut sealed = keys.seal(b"{}").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(open(&sealed), Err(AtRestError::Damaged)));
        let mut unknown = keys.seal(b"{}").unwrap();
        unknown[MAGIC.len()] ^= 0xff;
        assert!(matches!(open(&unknown), Err(AtRestError::UnknownKey(_))));
        assert_eq!(DataKeys::default().seal(b"{}"), None);
    }
}

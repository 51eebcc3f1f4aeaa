//! Signed checkpoints: the chain's head (place and hash) signed with the
//! hub's Ed25519 key, in `audit_checkpoints` and, as JSON lines, in a file
//! that can live outside the database. Whoever rewrites the whole chain
//! after a checkpoint still cannot sign its new head without the key.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tracing::{info, instrument};

use super::chain::checkpoint_message;
use crate::config::AuditSettings;
use crate::error::HubError;

/// The hub's signing key.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// Reads the key (64 hex digits) from `path`, creating it (readable by
    /// its owner only) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, HubError> {
        let bytes =
            crate::key_file::load_or_create(path, "audit.signing_key_file", "audit signing key")?;
        Ok(Self {
            key: SigningKey::from_bytes(&bytes),
        })
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

/// A checkpoint as kept in the table and in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Checkpoint {
    pub seq: i64,
    #[serde(with = "hex::serde")]
    pub hash: Vec<u8>,
    pub signed_at: DateTime<Utc>,
    #[serde(with = "hex::serde")]
    pub public_key: Vec<u8>,
    #[serde(with = "hex::serde")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Is the signature the one `public_key` makes over this place and hash?
    pub fn signature_holds(&self) -> bool {
        let Ok(key_bytes) = <[u8; 32]>::try_from(self.public_key.as_slice()) else {
            return false;
        };
        let Ok(key) = VerifyingKey::from_bytes(&key_bytes) else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify_strict(&checkpoint_message(self.seq, &self.hash), &signature)
            .is_ok()
    }
}

/// Signs checkpoints when due; cheap to clone.
#[derive(Clone)]
pub struct Checkpointer {
    pub(crate) pool: PgPool,
    pub(crate) signer: Signer,
    pub(crate) every: i64,
    pub(crate) max_age: chrono::Duration,
    pub(crate) file: Option<PathBuf>,
}

impl Checkpointer {
    pub(crate) fn new(pool: PgPool, signer: Signer, settings: &AuditSettings) -> Self {
        Self {
            pool,
            signer,
            every: settings.checkpoint_every.max(1),
            max_age: chrono::Duration::seconds(settings.checkpoint_max_age_secs as i64),
            file: settings.checkpoint_file.clone(),
        }
    }

    /// Signs the chain's head if `every` entries followed the last
    /// checkpoint, or anything did and the last is older than `max_age`
    /// (`force`: whenever anything followed). Returns the place signed.
    #[instrument(skip_all)]
    pub async fn checkpoint_if_due(&self, force: bool) -> Result<Option<i64>, HubError> {
        let (seq, hash): (i64, Vec<u8>) = sqlx::query_as("SELECT seq, hash FROM audit_chain_head")
            .fetch_one(&self.pool)
            .await?;
        let last: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT seq, signed_at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let now = Utc::now();
        let (last_seq, last_at) = last.unwrap_or((0, DateTime::<Utc>::MIN_UTC));
        let due = seq > last_seq
            && (force || seq - last_seq >= self.every || now - last_at >= self.max_age);
        if !due {
            return Ok(None);
        }
        let signature = self.signer.key.sign(&checkpoint_message(seq, &hash));
        let checkpoint = Checkpoint {
            seq,
            hash,
            signed_at: now,
            public_key: self.signer.public_key().to_bytes().to_vec(),
            signature: signature.to_bytes().to_vec(),
        };
        // The copy outside the database first: a crash between the two
        // leaves a line the table lacks (harmless: the same place and hash,
        // signed), never a checkpoint the file lacks.
        if let Some(path) = &self.file {
            append_line(path, &checkpoint).map_err(|e| HubError::Setting {
                key: "audit.checkpoint_file",
                problem: format!("cannot append to {}: {e}", path.display()),
            })?;
        }
        // Two hubs may sign the same head: the first one's stays.
        let inserted = sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, signed_at, public_key, signature)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(checkpoint.signed_at)
        .bind(&checkpoint.public_key)
        .bind(&checkpoint.signature)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        info!(seq, "Audit checkpoint signed.");
        Ok(Some(seq))
    }
}

fn append_line(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut line = serde_json::to_vec(checkpoint).expect("a checkpoint serializes");
    line.push(b'\n');
    f.write_all(&line)?;
    f.sync_data()
}

/// Checkpoints kept in a file, one JSON object per line.
pub fn read_file(path: &Path) -> std::io::Result<Vec<Checkpoint>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .collect()
}

//! The hub's secret keys on disk: 32 random bytes as 64 hex digits, in a
//! file readable by its owner only, created when missing. Two hub instances
//! starting together end up with the same key: the file is written aside and
//! linked into place, and the one that loses the race reads the winner's.

use std::io::Write;
use std::path::Path;

use rand_core::RngCore;
use tracing::info;

use crate::error::HubError;

/// Reads the key at `path`, creating it when the file does not exist.
/// `setting` names the configuration key in errors; `what` names the key in
/// the log line that says it was created.
pub(crate) fn load_or_create(
    path: &Path,
    setting: &'static str,
    what: &str,
) -> Result<[u8; 32], HubError> {
    let fail = |problem: String| HubError::Setting {
        key: setting,
        problem,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| fail(format!("{} holds no 32-byte hex key", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand_core::OsRng.fill_bytes(&mut key);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
            }
            match write_private(path, &hex::encode(key)) {
                Ok(()) => {
                    info!(path = %path.display(), "Created the {what}.");
                    Ok(key)
                }
                // Another hub instance created it first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create(path, setting, what)
                }
                Err(e) => Err(fail(format!("cannot write {}: {e}", path.display()))),
            }
        }
        Err(e) => Err(fail(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Creates `path` holding `text`, readable by its owner only, whole or not
/// at all: written aside, then linked into place (`AlreadyExists` if another
/// instance was first), so nobody ever reads a half-written key.
#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let aside = path.with_extension(format!("new-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    linked
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

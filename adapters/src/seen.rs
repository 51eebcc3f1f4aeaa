//! The message ids the application acknowledged, so that the broker's
//! redeliveries of them are dropped. In memory by default; with a file, the
//! record survives a restart of the national system, which is when the
//! broker redelivers what a dead connection had not acked.
//!
//! The file is one id per line, appended and synced before the broker is
//! told: once `ack` returns, a redelivery is dropped even after a crash.
//! It is rewritten with the newest ids when it grows past twice what is
//! remembered.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How many acknowledged message ids are remembered.
pub(crate) const REMEMBERED: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
    file: Option<SeenFile>,
}

#[derive(Debug)]
struct SeenFile {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl Seen {
    /// Opens (or creates) the record at `path`, reading what it holds.
    pub(crate) fn open(path: &Path) -> io::Result<Seen> {
        let mut seen = Seen::default();
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut lines = 0;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            seen.remember(String::from_utf8_lossy(line).into_owned());
            lines += 1;
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        // A crash mid-append leaves a line without its newline: end it, so
        // the next id starts a line of its own.
        if text.last().is_some_and(|b| *b != b'\n') {
            file.write_all(b"\n")?;
        }
        seen.file = Some(SeenFile {
            path: path.to_owned(),
            file,
            lines,
        });
        if lines > 2 * REMEMBERED {
            seen.compact()?;
        }
        Ok(seen)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Records `id`; with a file, it is on disk when this returns.
    pub(crate) fn insert(&mut self, id: String) -> io::Result<()> {
        if self.set.contains(&id) {
            return Ok(());
        }
        if let Some(f) = &mut self.file {
            f.file.write_all(format!("{id}\n").as_bytes())?;
            f.file.sync_data()?;
            f.lines += 1;
        }
        self.remember(id);
        if self.file.as_ref().is_some_and(|f| f.lines > 2 * REMEMBERED) {
            self.compact()?;
        }
        Ok(())
    }

    fn remember(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// Rewrites the file with the remembered ids only (write aside, sync,
    /// rename: a crash leaves the old file or the new one).
    fn compact(&mut self) -> io::Result<()> {
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        let aside = f.path.with_extension("compacting");
        let mut out = File::create(&aside)?;
        let mut text = String::with_capacity(self.order.len() * 37);
        for id in &self.order {
            text.push_str(id);
            text.push('\n');
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&aside, &f.path)?;
        f.file = OpenOptions::new().append(true).open(&f.path)?;
        f.lines = self.order.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("imi-seen-{}-{name}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("seen")
    }

    #[test]
    fn what_was_recorded_is_known_after_reopening() {
        let p = path("reopen");
        let mut seen = Seen::open(&p).unwrap();
        seen.insert("a".into()).unwrap();
        seen.insert("b".into()).unwrap();
        seen.insert("a".into()).unwrap();
        drop(seen);
        let seen = Seen::open(&p).unwrap();
        assert!(seen.contains("a") && seen.contains("b") && !seen.contains("c"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_line_cut_short_by_a_crash_does_not_stop_the_reopening() {
        let p = path("torn");
        std::fs::write(&p, "a\nb\nc-cut-sh").unwrap();
        let mut seen = Seen::open(&p).unwrap();
        assert!(seen.contains("a") && seen.contains("b"));
        seen.insert("d".into()).unwrap();
        drop(seen);
        let seen = Seen::open(&p).unwrap();
        assert!(seen.contains("a") && seen.contains("b") && seen.contains("d"));
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_file_is_compacted_to_the_newest_ids() {
        let p = path("compact");
        let old: String = (0..2 * REMEMBERED + 1)
            .map(|i| format!("id-{i}\n"))
            .collect();
        std::fs::write(&p, old).unwrap();
        let mut seen = Seen::open(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), REMEMBERED);
        assert!(!seen.contains("id-0"));
        assert!(seen.contains(&format!("id-{}", 2 * REMEMBERED)));
        seen.insert("new".into()).unwrap();
        drop(seen);
        assert!(Seen::open(&p).unwrap().contains("new"));
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }
}

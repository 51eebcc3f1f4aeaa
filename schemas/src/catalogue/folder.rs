//! Reading a catalogue folder (feature `folder`): the one reader the hub and
//! `imi-adapter` share. Everything else in the crate parses text it is given.

use std::path::Path;

use super::SourceFile;

/// Every `.yaml`/`.yml` file under `dir`, recursively, sorted by path so that
/// errors and duplicates are reported in the same order on every machine.
pub fn read_folder(dir: &Path) -> std::io::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
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

//! Reading a catalogue folder for `imi-adapter render` (the catalogue crate
//! parses text and does no IO itself).

use std::path::Path;

use anyhow::Context;
use imi_schemas::catalogue::{Catalogue, SourceFile};

pub fn load_catalogue(dir: &Path) -> anyhow::Result<Catalogue> {
    let mut files = Vec::new();
    collect(dir, &mut files)
        .with_context(|| format!("reading the catalogue in {}", dir.display()))?;
    Catalogue::parse(&files).map_err(|e| anyhow::anyhow!("{e}"))
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

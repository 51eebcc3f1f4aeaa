//! Reading a catalogue folder for `imi-adapter render`, with the reader the
//! hub uses (the catalogue crate parses text; its `folder` feature reads).

use std::path::Path;

use anyhow::Context;
use imi_schemas::catalogue::{read_folder, Catalogue};

pub(crate) fn load_catalogue(dir: &Path) -> anyhow::Result<Catalogue> {
    let files =
        read_folder(dir).with_context(|| format!("reading the catalogue in {}", dir.display()))?;
    Catalogue::parse(&files).map_err(|e| anyhow::anyhow!("{e}"))
}

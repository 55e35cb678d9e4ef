//! What the directory's test files share: the shipped vocabularies, read from disk (the
//! crate itself does no I/O, and `imi_apps::catalogue_files` sits above it).
#![allow(clippy::unwrap_used)]

use imi_domain::Vocabulary;
use imi_domain::catalogue::{Catalogue, CatalogueFiles};
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Disk;

impl CatalogueFiles for Disk {
    fn entries(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }
    fn read(&self, path: &Path, limit: u64) -> std::io::Result<String> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(limit)
            .read_to_string(&mut text)?;
        Ok(text)
    }
}

/// The vocabularies of `configs/`, validated against the catalogue's languages.
pub fn vocabulary() -> Arc<Vocabulary> {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let catalogue = Catalogue::load(&configs.join("catalogue"), &Disk).unwrap();
    Arc::new(Vocabulary::load(&configs.join("vocabularies"), catalogue.languages(), &Disk).unwrap())
}

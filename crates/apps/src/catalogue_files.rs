//! The catalogue's files on disk, for `imi_domain::catalogue` (which does no I/O itself).
use imi_domain::catalogue::{Catalogue, CatalogueError, CatalogueFiles};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Reads catalogue files from the filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct Disk;

impl CatalogueFiles for Disk {
    fn entries(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    fn read(&self, path: &Path, limit: u64) -> std::io::Result<String> {
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(limit)
            .read_to_string(&mut text)?;
        Ok(text)
    }
}

/// Loads and validates the catalogue in `dir` from disk.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Catalogue, CatalogueError> {
    Catalogue::load(dir.as_ref(), &Disk)
}

//! Key files: hex on one line, written 0600; a node refuses to start on a key file that
//! others can read (as Garage refuses world-readable secrets).
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes a secret file with mode 0600 (creating or truncating it).
pub fn write_secret(path: &Path, contents: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Reads a secret file, refusing it if group or others may read or write it.
pub fn read_secret(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "refusing key file {}: mode {:o} lets others read it (chmod 600 it)",
            path.display(),
            mode
        );
    }
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

/// The node's data directory: created 0700 if it is missing, refused (naming it) if group or
/// others may enter, read or write it. The database holds case metadata, the access log with
/// user ids and token hashes: no other local user gets in. See also [`private_files`].
pub fn private_dir(path: &Path) -> Result<()> {
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "refusing data directory {}: mode {:o} lets others in (chmod 700 it)",
            path.display(),
            mode
        );
    }
    Ok(())
}

/// Makes every file in `path` 0600 (run after the store is opened, which writes some). Files
/// RocksDB creates later get the process's umask, inside the 0700 directory. The store's
/// background work runs meanwhile and may delete a file (an obsolete log or table) between
/// the listing and its `stat` or `chmod`: a file that is gone is skipped.
pub fn private_files(path: &Path) -> Result<()> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry.with_context(|| format!("reading {}", path.display()))?;
        let p = entry.path();
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if gone(&e) => {}
                r => r.with_context(|| format!("chmod 600 {}", p.display()))?,
            }
        }
    }
    Ok(())
}

/// Reads 32 secret bytes in hex.
pub fn read_secret32(path: &Path) -> Result<[u8; 32]> {
    let s = read_secret(path)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(&s, &mut out)
        .with_context(|| format!("{}: expected 64 hex digits", path.display()))?;
    Ok(out)
}

/// Reads a public 32-byte value in hex (no permission requirement).
pub fn read_public32(path: &Path) -> Result<[u8; 32]> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out)
        .with_context(|| format!("{}: expected 64 hex digits", path.display()))?;
    Ok(out)
}

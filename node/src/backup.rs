//! Backups of a node: `imi-node backup create|list|verify|restore`.
//!
//! A backup is one directory, `<backup.dir>/<id>/` (ids count up from 1, six digits), that
//! holds everything a restore needs besides the key files:
//!
//! | file | what |
//! |---|---|
//! | `db/` | a RocksDB checkpoint of the database as of one instant: cases, the log, the outbox, the inbox, the checkpoints; the per-case data keys, wrapped by the node's data key |
//! | `erased-cases` | the file of erased case ids as it was just after the checkpoint (a superset of the erasures in `db/`) |
//! | `manifest.json` | node, id, time, the log's size and root in `db/`, the data key's check value, every file's size and SHA-256 |
//! | `manifest.sig` | a signed note by the node's identity key over the SHA-256 of `manifest.json` |
//!
//! A backup is written under `.partial-<id>` and renamed when complete, so a listed backup
//! is whole. The checkpoint hard-links table files when the backup directory is on the
//! database's filesystem (cheap, but no protection against losing the disk: copy the
//! directory elsewhere) and copies them otherwise.
//!
//! `verify` checks every file against the manifest, the manifest's signature, and opens the
//! database read-only to recompute the log's root from its leaves and check every signed
//! checkpoint stored in it. `restore` verifies first, refuses a non-empty data directory, a
//! backup of another node or one sealed under another data key, copies `db/` and merges the
//! erased case ids of every backup in the directory and of the node's own file, so that a
//! restored older backup never brings back a case erased after it was taken.
use crate::config::NodeConfig;
use anyhow::{Context, Result, bail};
use imi_audit::merkle::{self, MemTree};
use imi_audit::note::{Checkpoint, SignedNote};
use imi_store::{ReadStore, RocksStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The manifest's format tag.
pub const FORMAT: &str = "imi-node-backup/1";

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path inside the backup directory (`db/000012.sst`, `erased-cases`).
    pub path: String,
    /// Size, bytes.
    pub bytes: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The node whose database this is.
    pub node: String,
    /// The backup's id (its directory's name without the zeros).
    pub id: u32,
    /// When it was taken, unix ms (the node's clock).
    pub created_ms: u64,
    /// Leaves in the transparency log of `db/`.
    pub log_size: u64,
    /// The log's root at that size, hex.
    pub log_root: String,
    /// Erased case ids listed in `erased-cases`.
    pub erased_cases: usize,
    /// A check value of the data key that wraps the cases' keys in `db/` (SHA-256 of a
    /// domain tag and the key, hex): a restore refuses another key.
    pub data_key_check: String,
    /// Every file, sorted by path.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Total bytes of the backup's files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// The directory of backups of the node of `cfg`.
pub fn backup_dir(cfg: &NodeConfig) -> PathBuf {
    cfg.backup.dir.clone().unwrap_or_else(|| {
        cfg.data_dir
            .parent()
            .map_or_else(|| PathBuf::from("backups"), |p| p.join("backups"))
    })
}

/// The name of a backup's directory.
pub fn dir_name(id: u32) -> String {
    format!("{id:06}")
}

/// The signed-note name of a node's backup manifests.
pub fn note_name(node: &str) -> String {
    format!("imi-federation.invalid/backup/{node}")
}

/// The check value of a data key recorded in manifests.
pub fn data_key_check(key: &[u8; 32]) -> String {
    let mut bytes = b"imi-node backup data key check\0".to_vec();
    bytes.extend_from_slice(key);
    hex::encode(imi_protocol::sha256(&bytes))
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok((n, hex::encode(h.finalize())))
}

/// Every regular file under `root`, as paths relative to it, sorted.
fn files_under(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(rel);
            } else if kind.is_file() {
                out.push(
                    rel.to_str()
                        .with_context(|| format!("non UTF-8 file name {}", rel.display()))?
                        .to_owned(),
                );
            }
        }
    }
    out.sort();
    Ok(out)
}

fn private_mkdir(path: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// One item per line, as the erased-cases file holds case ids.
fn lines<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| format!("{i}\n")).collect()
}

fn sync_dir(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

/// The ids of the complete backups in `dir`, ascending (a missing directory has none).
pub fn ids(dir: &Path) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let name = entry?.file_name();
        if let Some(id) = name
            .to_str()
            .filter(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
        {
            out.push(id);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads a backup's manifest (not verified: see [`verify`]).
pub fn manifest(dir: &Path, id: u32) -> Result<Manifest> {
    let path = dir.join(dir_name(id)).join("manifest.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// The log of a database: its size and root as stored, from the stored subtree hashes.
fn stored_log(store: &dyn ReadStore) -> Result<(u64, [u8; 32])> {
    let size = imi_engine::log::size(store)?;
    let root = merkle::root(&imi_engine::log::StoreNodes(store), size)
        .with_context(|| format!("the log's subtree hashes below size {size} are incomplete"))?;
    Ok((size, root))
}

/// Makes backup of the open database `store` in `dir`: a checkpoint, the erased-cases
/// file, the manifest and its signature by `sign` (`(body, name) → note text`).
pub fn create(
    store: &RocksStore,
    cfg: &NodeConfig,
    dir: &Path,
    now_ms: u64,
    sign: &dyn Fn(&str, &str) -> String,
) -> Result<Manifest> {
    crate::keyfile::private_dir(dir)?;
    // Partial backups of an interrupted run are removed; complete ones are never touched.
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(".partial-") {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    let id = ids(dir)?.last().map_or(1, |last| last.saturating_add(1));
    let partial = dir.join(format!(".partial-{}", dir_name(id)));
    private_mkdir(&partial)?;
    let db = partial.join("db");
    store.checkpoint(&db)?;
    // After the checkpoint: the file then lists every erasure the checkpoint holds (an
    // erasure appends to it before it deletes anything), and perhaps a few more.
    let tombstones = crate::run::tombstone_file(cfg);
    let erased = imi_apps::retention::read_tombstone_file(&tombstones)?;
    write_private(&partial.join("erased-cases"), lines(&erased).as_bytes())?;
    let (log_size, log_root) = {
        let copy = RocksStore::open_read_only(&db, &cfg.store.rocks())?;
        stored_log(&copy)?
    };
    let mut files = Vec::new();
    for rel in files_under(&partial)? {
        let (bytes, sha256) = sha256_file(&partial.join(&rel))?;
        files.push(FileEntry {
            path: rel,
            bytes,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        node: cfg.node.to_string(),
        id,
        created_ms: now_ms,
        log_size,
        log_root: hex::encode(log_root),
        erased_cases: erased.len(),
        data_key_check: data_key_check(&crate::keyfile::read_secret32(&cfg.data_key)?),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    write_private(&partial.join("manifest.json"), &json)?;
    let name = note_name(&manifest.node);
    let note = sign(&signed_body(&name, &json), &name);
    write_private(&partial.join("manifest.sig"), note.as_bytes())?;
    sync_dir(&db)?;
    sync_dir(&partial)?;
    let done = dir.join(dir_name(id));
    std::fs::rename(&partial, &done)
        .with_context(|| format!("renaming {} to {}", partial.display(), done.display()))?;
    sync_dir(dir)?;
    tracing::info!(
        backup = id,
        log_size,
        erased_cases = erased.len(),
        bytes = manifest.bytes(),
        "backup written"
    );
    prune(dir, cfg.backup.keep)?;
    Ok(manifest)
}

/// Deletes the oldest complete backups beyond the `keep` newest (0: keep all). The newest
/// backup's `erased-cases` lists every erasure of the older ones, so none is forgotten.
fn prune(dir: &Path, keep: usize) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let all = ids(dir)?;
    for id in all.iter().take(all.len().saturating_sub(keep)) {
        let p = dir.join(dir_name(*id));
        std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        tracing::info!(backup = id, "old backup removed (backup.keep)");
    }
    Ok(())
}

/// The body of a manifest's signed note: its name and the manifest's SHA-256.
fn signed_body(name: &str, manifest_json: &[u8]) -> String {
    format!(
        "{name}\nsha256 {}\n",
        hex::encode(imi_protocol::sha256(manifest_json))
    )
}

/// One line of `backup verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

impl Check {
    fn new(name: &str, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            ok,
            detail: detail.into(),
        }
    }
}

/// Verifies backup `id` in `dir` as the node of `cfg` (its trust list gives the keys the
/// manifest may be signed with). Every check is reported; the backup is good when all pass.
pub fn verify(cfg: &NodeConfig, dir: &Path, id: u32) -> Vec<Check> {
    let mut checks = Vec::new();
    let root = dir.join(dir_name(id));
    let json = match std::fs::read(root.join("manifest.json")) {
        Ok(j) => j,
        Err(e) => {
            checks.push(Check::new(
                "manifest",
                false,
                format!("{}: {e}", root.display()),
            ));
            return checks;
        }
    };
    let m: Manifest = match serde_json::from_slice(&json) {
        Ok(m) => m,
        Err(e) => {
            checks.push(Check::new("manifest", false, e.to_string()));
            return checks;
        }
    };
    checks.push(Check::new(
        "manifest",
        m.format == FORMAT && m.id == id,
        format!("format {}, id {}", m.format, m.id),
    ));
    checks.push(Check::new(
        "node",
        m.node == cfg.node.to_string(),
        format!("backup of {}, this node is {}", m.node, cfg.node),
    ));
    // The keys this node signs with, for the manifest and the log's checkpoints.
    let keys = signing_keys(cfg, &root.join("db"));
    checks.push(signature_check(cfg, &root, &m, &json, &keys));

    // Every file listed is there with its size and hash, and no other file is.
    let listed: BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    let mut bad = Vec::new();
    for f in &m.files {
        let safe = !f
            .path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
            && !f.path.starts_with('/');
        match safe.then(|| sha256_file(&root.join(&f.path))) {
            Some(Ok((bytes, sha))) if bytes == f.bytes && sha == f.sha256 => {}
            Some(Ok(_)) => bad.push(format!("{} differs", f.path)),
            Some(Err(_)) => bad.push(format!("{} is missing", f.path)),
            None => bad.push(format!("{} is not a path inside the backup", f.path)),
        }
    }
    match files_under(&root) {
        Ok(found) => bad.extend(
            found
                .iter()
                .filter(|p| !listed.contains(p.as_str()) && !p.starts_with("manifest."))
                .map(|p| format!("{p} is not in the manifest")),
        ),
        Err(e) => bad.push(e.to_string()),
    }
    checks.push(Check::new(
        "files",
        bad.is_empty(),
        if bad.is_empty() {
            format!("{} files, {} bytes, as listed", m.files.len(), m.bytes())
        } else {
            bad.join("; ")
        },
    ));
    let erased = imi_apps::retention::read_tombstone_file(&root.join("erased-cases"))
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    checks.push(Check::new(
        "erased-cases",
        erased == m.erased_cases,
        format!("{erased} erased case ids, manifest says {}", m.erased_cases),
    ));
    match crate::keyfile::read_secret32(&cfg.data_key) {
        Ok(k) => checks.push(Check::new(
            "data key",
            data_key_check(&k) == m.data_key_check,
            "the cases' keys are wrapped by the configured data key",
        )),
        Err(e) => checks.push(Check::new("data key", false, format!("{e:#}"))),
    }
    checks.extend(log_checks(
        cfg,
        &root.join("db"),
        &m,
        keys.as_ref().map(|k| k.keys.as_slice()).unwrap_or_default(),
    ));
    checks
}

/// The signing keys of `cfg.node`, with where they were found.
struct NodeKeys {
    keys: Vec<[u8; 32]>,
    /// The trust lists read, e.g. `file version 1, node database version 2`.
    sources: String,
}

/// Every signing key of `cfg.node` on the trust lists that verify under the governance key:
/// the config's file, the node's own database (members pass newer versions to each other, so
/// it may be newer than the file), and the backup's database (the list in force when the
/// backup was made: a cold standby restores with the file it was installed with). A key that
/// signed the manifest or a checkpoint stays listed after it is rotated out, so the union
/// holds every key this node signed with.
fn signing_keys(cfg: &NodeConfig, backup_db: &Path) -> Result<NodeKeys, String> {
    let mut keys: Vec<[u8; 32]> = Vec::new();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    let lists = [
        (
            "file",
            crate::init::load_trust_list(&cfg.trust_list, &cfg.governance_public_key).map(Some),
        ),
        ("node database", crate::init::stored_trust_list(cfg)),
        ("backup", crate::init::trust_list_in_db(cfg, backup_db)),
    ];
    for (source, list) in lists {
        match list {
            Ok(Some(t)) => {
                sources.push(format!("{source} version {}", t.version));
                for k in t.member(cfg.node).into_iter().flat_map(|m| &m.signing_keys) {
                    if !keys.contains(&k.public) {
                        keys.push(k.public);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("{source}: {e:#}")),
        }
    }
    if sources.is_empty() {
        return Err(format!("no trust list verifies: {}", errors.join("; ")));
    }
    Ok(NodeKeys {
        keys,
        sources: sources.join(", "),
    })
}

fn signature_check(
    cfg: &NodeConfig,
    root: &Path,
    m: &Manifest,
    json: &[u8],
    keys: &Result<NodeKeys, String>,
) -> Check {
    let name = note_name(&m.node);
    let note = match std::fs::read_to_string(root.join("manifest.sig"))
        .map_err(|e| e.to_string())
        .and_then(|t| SignedNote::parse(&t).map_err(|e| format!("{e:?}")))
    {
        Ok(n) => n,
        Err(e) => return Check::new("signature", false, format!("manifest.sig: {e}")),
    };
    if note.body != signed_body(&name, json) {
        return Check::new(
            "signature",
            false,
            "manifest.sig is not about this manifest.json",
        );
    }
    let keys = match keys {
        Ok(k) => k,
        Err(e) => return Check::new("signature", false, e.clone()),
    };
    let ok = keys.keys.iter().any(|k| note.verify(&name, k));
    Check::new(
        "signature",
        ok,
        if ok {
            format!(
                "signed by a key of {} on the trust list ({})",
                cfg.node, keys.sources
            )
        } else {
            format!(
                "no key of {} on the trust list signed it ({})",
                cfg.node, keys.sources
            )
        },
    )
}

/// Opens the backup's database read-only; recomputes the log's root from its leaves; checks
/// it against the stored subtree hashes, the manifest and every signed checkpoint stored.
fn log_checks(cfg: &NodeConfig, db: &Path, m: &Manifest, keys: &[[u8; 32]]) -> Vec<Check> {
    let store = match RocksStore::open_read_only(db, &cfg.store.rocks()) {
        Ok(s) => s,
        Err(e) => return vec![Check::new("database", false, e.to_string())],
    };
    let mut checks = vec![Check::new("database", true, "opens read-only")];
    let (size, stored_root) = match stored_log(&store) {
        Ok(x) => x,
        Err(e) => {
            checks.push(Check::new("log", false, format!("{e:#}")));
            return checks;
        }
    };
    let notes = imi_engine::checkpoint::stored(&store).unwrap_or_default();
    let origin = imi_audit::note::origin_of(cfg.node.as_str());
    let mut tree = MemTree::new();
    let mut problems = Vec::new();
    let mut next_note = notes.iter().peekable();
    let mut checkpoints = 0usize;
    let mut check_note = |tree: &MemTree, n: &(u64, String), problems: &mut Vec<String>| {
        let (at, text) = n;
        let parsed = SignedNote::parse(text).ok().and_then(|note| {
            let cp = Checkpoint::parse(&note.body).ok()?;
            let signed = keys.iter().any(|k| note.verify(&origin, k));
            Some((cp, signed))
        });
        match parsed {
            Some((cp, true)) if cp.size == *at && cp.root == tree.root() => checkpoints += 1,
            Some((_, false)) => {
                problems.push(format!("checkpoint at {at}: not signed by {}", cfg.node))
            }
            _ => problems.push(format!("checkpoint at {at}: does not match the leaves")),
        }
    };
    while let Some(n) = next_note.peek() {
        if n.0 != 0 {
            break;
        }
        check_note(&tree, n, &mut problems);
        next_note.next();
    }
    let mut start = Vec::new();
    'leaves: loop {
        let rows = match store.range(imi_engine::keys::LOG_LEAVES, &start, None, 4096) {
            Ok(r) => r,
            Err(e) => {
                problems.push(e.to_string());
                break;
            }
        };
        let done = rows.len() < 4096;
        for (k, v) in &rows {
            let expected = tree.size();
            if k.as_slice() != expected.to_be_bytes() {
                problems.push(format!("leaf {expected} is missing"));
                break 'leaves;
            }
            tree.push(merkle::leaf_hash(v));
            while let Some(n) = next_note.peek() {
                if n.0 != tree.size() {
                    break;
                }
                check_note(&tree, n, &mut problems);
                next_note.next();
            }
        }
        match rows.last() {
            Some((k, _)) if !done => {
                start = k.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    for (at, _) in next_note {
        problems.push(format!(
            "checkpoint at {at} is beyond the log's {size} leaves"
        ));
    }
    let root = tree.root();
    if tree.size() != size {
        problems.push(format!(
            "{} leaves, the log's size says {size}",
            tree.size()
        ));
    }
    if root != stored_root {
        problems.push("the leaves' root differs from the stored subtree hashes".into());
    }
    if size != m.log_size || hex::encode(root) != m.log_root {
        problems.push(format!(
            "the manifest says {} leaves with root {}",
            m.log_size, m.log_root
        ));
    }
    checks.push(Check::new(
        "log",
        problems.is_empty(),
        if problems.is_empty() {
            format!(
                "{size} leaves, root {}, {checkpoints} signed checkpoints match",
                hex::encode(root)
            )
        } else {
            problems.join("; ")
        },
    ));
    checks
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup restored.
    pub manifest: Manifest,
    /// Files copied into the data directory.
    pub files: usize,
    /// Erased case ids in the node's erased-cases file after the restore.
    pub erased_cases: usize,
}

/// Restores backup `id` of `dir` into the node's (empty or missing) data directory. The
/// backup is verified first; nothing is written unless every check passes.
pub fn restore(cfg: &NodeConfig, dir: &Path, id: u32) -> Result<Restored> {
    let failed: Vec<String> = verify(cfg, dir, id)
        .into_iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if !failed.is_empty() {
        bail!(
            "backup {id} in {} does not verify, nothing restored:\n  {}",
            dir.display(),
            failed.join("\n  ")
        );
    }
    let m = manifest(dir, id)?;
    let target = &cfg.data_dir;
    if target.exists()
        && std::fs::read_dir(target)
            .with_context(|| format!("reading {}", target.display()))?
            .next()
            .is_some()
    {
        bail!(
            "data directory {} is not empty: a restore never overwrites (stop the node and move the directory away first)",
            target.display()
        );
    }
    crate::keyfile::private_dir(target)?;
    let src = dir.join(dir_name(id)).join("db");
    let mut files = 0;
    for rel in files_under(&src)? {
        let to = target.join(&rel);
        if let Some(parent) = to.parent() {
            private_mkdir(parent)?;
        }
        let mut from =
            std::fs::File::open(src.join(&rel)).with_context(|| format!("reading {rel}"))?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&to)
            .with_context(|| format!("creating {}", to.display()))?;
        std::io::copy(&mut from, &mut out)?;
        out.sync_all()?;
        files += 1;
    }
    sync_dir(target)?;
    // Erased cases: the node's own file, this backup's and every other backup's (a newer
    // backup knows erasures made after this one was taken).
    let tombstones = crate::run::tombstone_file(cfg);
    let mut erased: BTreeSet<String> = imi_apps::retention::read_tombstone_file(&tombstones)?
        .iter()
        .map(ToString::to_string)
        .collect();
    for other in ids(dir)? {
        let f = dir.join(dir_name(other)).join("erased-cases");
        erased.extend(
            imi_apps::retention::read_tombstone_file(&f)?
                .iter()
                .map(ToString::to_string),
        );
    }
    let tmp = tombstones.with_extension("restoring");
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, lines(&erased).as_bytes())?;
    std::fs::rename(&tmp, &tombstones)
        .with_context(|| format!("writing {}", tombstones.display()))?;
    if let Some(p) = tombstones.parent() {
        sync_dir(p)?;
    }
    tracing::info!(
        backup = id,
        files,
        erased_cases = erased.len(),
        "backup restored"
    );
    Ok(Restored {
        manifest: m,
        files,
        erased_cases: erased.len(),
    })
}

/// The list of backups in `dir` as `/operator/backups` and `backup list` show it.
pub fn list_json(dir: &Path) -> Result<serde_json::Value> {
    let items = ids(dir)?
        .into_iter()
        .map(|id| manifest(dir, id))
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::json!({"dir": dir.display().to_string(), "items": items}))
}

/// The running node's backup service (`/operator/backups`): one backup at a time, signed by
/// the engine's identity key.
pub struct NodeBackups {
    store: std::sync::Arc<RocksStore>,
    cfg: NodeConfig,
    engine: imi_engine::Engine,
    one_at_a_time: std::sync::Mutex<()>,
    last_success: prometheus_client::metrics::gauge::Gauge,
    failures: prometheus_client::metrics::counter::Counter,
}

impl NodeBackups {
    /// The service for the node of `cfg`, whose open database is `store`.
    pub fn new(
        store: std::sync::Arc<RocksStore>,
        cfg: NodeConfig,
        engine: imi_engine::Engine,
    ) -> Self {
        Self {
            store,
            cfg,
            engine,
            one_at_a_time: std::sync::Mutex::new(()),
            last_success: Default::default(),
            failures: Default::default(),
        }
    }

    /// Registers `imi_backup_last_success_timestamp_seconds` (0 until this process made
    /// one) and `imi_backup_failures_total`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "imi_backup_last_success_timestamp_seconds",
            "When this node last completed a backup (unix seconds; 0: none since it started)",
            self.last_success.clone(),
        );
        registry.register(
            "imi_backup_failures",
            "Backups this node failed to make since it started",
            self.failures.clone(),
        );
    }
}

impl imi_api::Backups for NodeBackups {
    fn create(&self) -> Result<serde_json::Value, String> {
        let _one = self
            .one_at_a_time
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let engine = &self.engine;
        let made = create(
            &self.store,
            &self.cfg,
            &backup_dir(&self.cfg),
            engine.now_ms(),
            &|body, name| engine.sign_note(body, name),
        );
        match &made {
            Ok(m) => {
                self.last_success
                    .set(i64::try_from(m.created_ms / 1000).unwrap_or(i64::MAX));
            }
            Err(e) => {
                self.failures.inc();
                tracing::error!(error = %format!("{e:#}"), "backup failed");
            }
        };
        made.and_then(|m| Ok(serde_json::to_value(m)?))
            .map_err(|e| format!("{e:#}"))
    }

    fn list(&self) -> Result<serde_json::Value, String> {
        list_json(&backup_dir(&self.cfg)).map_err(|e| format!("{e:#}"))
    }
}

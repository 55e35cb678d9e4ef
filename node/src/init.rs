//! `imi-node federation init`: creates a local federation: the governance key, every
//! node's keys (0600), the signed trust list, a CA and server certificates, an operator
//! token and one `node.toml` per node with loopback addresses.
use crate::config::{HttpSection, LogSection, NetworkSection, NodeConfig, StoreSection};
use crate::keyfile::write_secret;
use crate::tls::Ca;
use anyhow::{Context, Result, bail};
use imi_engine::EngineConfig;
use imi_protocol::{
    Clock, HpkeKeyEntry, HpkeKeyPair, Member, NodeId, NodeSigner, SigningKeyEntry, SystemClock,
    TrustList,
};
use std::path::{Path, PathBuf};

/// Options of `federation init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Members, in port order.
    pub members: Vec<NodeId>,
    /// First port: member i gets libp2p port base+2i and HTTPS port base+2i+1.
    pub base_port: u16,
    /// Host (loopback by default).
    pub host: String,
    /// The catalogue directory to copy (default: the repository's `configs/catalogue`).
    pub catalogue: Option<PathBuf>,
    /// The authority directory file to copy (default: `configs/directory/authorities.toml`).
    pub directory: Option<PathBuf>,
    /// When the nodes' keys become valid (unix ms; default: a day ago). A simulation of a
    /// past year needs keys valid from before it.
    pub keys_valid_from: Option<u64>,
}

/// The repository's catalogue, the default of `federation init`.
pub fn default_catalogue() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/catalogue")
}

/// The repository's authority directory, the default of `federation init`.
pub fn default_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/directory/authorities.toml")
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The libp2p and HTTPS ports of member `i`.
pub fn ports(base: u16, i: usize) -> Result<(u16, u16)> {
    let i = u16::try_from(i)?;
    let p2p = base
        .checked_add(i.saturating_mul(2))
        .context("port out of range")?;
    Ok((p2p, p2p.checked_add(1).context("port out of range")?))
}

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Creates the federation; returns the paths of the node configs.
pub fn init(opts: &InitOptions) -> Result<Vec<PathBuf>> {
    if opts.members.is_empty() {
        bail!("no members given");
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = opts.members.iter().find(|m| !seen.insert(**m)) {
        bail!("member {dup} given twice");
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let now = SystemClock.now_ms();
    let governance = NodeSigner::generate(NodeId::EU);
    write_secret(
        &opts.out.join("governance.key"),
        &hex::encode(governance.seed()),
    )?;
    std::fs::write(
        opts.out.join("governance.pub"),
        hex::encode(governance.public()) + "\n",
    )?;
    // Every node reads the same catalogue and directory seed: validate them now, so that a
    // broken file is reported here rather than by 31 nodes at start.
    let catalogue_src = opts.catalogue.clone().unwrap_or_else(default_catalogue);
    let directory_src = opts.directory.clone().unwrap_or_else(default_directory);
    imi_apps::catalogue_files::load_dir(&catalogue_src)?;
    crate::config::load_directory(&directory_src)?;
    copy_dir(&catalogue_src, &opts.out.join("catalogue"))?;
    // The vocabularies beside the catalogue (the node's default place for them).
    let vocabularies_src = catalogue_src
        .parent()
        .map(|p| p.join("vocabularies"))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vocabularies"));
    copy_dir(&vocabularies_src, &opts.out.join("vocabularies"))?;
    std::fs::copy(&directory_src, opts.out.join("directory.toml"))
        .with_context(|| format!("copying {}", directory_src.display()))?;
    let ca = Ca::generate("IMI federation local CA")?;
    std::fs::write(opts.out.join("ca.crt"), ca.cert_pem())?;

    let mut members = Vec::new();
    let mut configs = Vec::new();
    for (i, node) in opts.members.iter().enumerate() {
        let (p2p, http) = ports(opts.base_port, i)?;
        let dir = opts.out.join(node.as_str());
        std::fs::create_dir_all(&dir)?;
        let signer = NodeSigner::generate(*node);
        let hpke = HpkeKeyPair::generate();
        write_secret(&dir.join("identity.key"), &hex::encode(signer.seed()))?;
        write_secret(&dir.join("hpke.key"), &hex::encode(hpke.secret_bytes()))?;
        write_secret(
            &dir.join("data.key"),
            &hex::encode(rand::random::<[u8; 32]>()),
        )?;
        write_secret(
            &dir.join("operator.token"),
            &hex::encode(rand::random::<[u8; 32]>()),
        )?;
        let (cert, key) = ca.issue(&format!("imi-node {node}"), &[&opts.host, "localhost"])?;
        std::fs::write(dir.join("tls.crt"), cert)?;
        write_secret(&dir.join("tls.key"), &key)?;
        let listen = format!("/ip4/{}/tcp/{p2p}", opts.host);
        let valid_from = opts
            .keys_valid_from
            .unwrap_or_else(|| now.saturating_sub(DAY_MS));
        let valid_until = now.saturating_add(2 * 365 * DAY_MS);
        members.push(Member {
            node: *node,
            role: node.default_role(),
            signing_keys: vec![SigningKeyEntry {
                public: signer.public(),
                valid_from,
                valid_until,
            }],
            hpke_keys: vec![HpkeKeyEntry {
                public: hpke.public(),
                valid_from,
                valid_until,
            }],
            addresses: vec![listen.clone()],
        });
        let cfg = NodeConfig {
            node: *node,
            data_dir: "data".into(),
            identity_key: "identity.key".into(),
            hpke_key: "hpke.key".into(),
            hpke_extra_keys: Vec::new(),
            trust_list: "../trust-list.cbor".into(),
            governance_public_key: "../governance.pub".into(),
            catalogue: "../catalogue".into(),
            directory: "../directory.toml".into(),
            vocabularies: None,
            data_key: "data.key".into(),
            network: NetworkSection {
                listen: vec![listen],
                ..NetworkSection::default()
            },
            http: HttpSection {
                listen: format!("{}:{http}", opts.host).parse()?,
                tls_cert: "tls.crt".into(),
                tls_key: "tls.key".into(),
                ca_cert: "../ca.crt".into(),
                operator_token: "operator.token".into(),
            },
            engine: EngineConfig::default(),
            store: StoreSection::default(),
            log: LogSection::default(),
            backup: crate::config::BackupSection::default(),
            runtime: crate::config::RuntimeSection::default(),
            metrics: crate::config::MetricsSection::default(),
            simulation: None,
        };
        let path = dir.join("node.toml");
        let text = format!(
            "# imi-node configuration for {node}; paths are relative to this file.\n{}",
            toml::to_string_pretty(&cfg)?
        );
        std::fs::write(&path, text)?;
        configs.push(path);
    }
    let trust = TrustList {
        version: 1,
        issued: now,
        members,
    };
    std::fs::write(opts.out.join("trust-list.cbor"), trust.sign(&governance)?)?;
    Ok(configs)
}

/// The trust list in force at a node, as its database holds it: nodes adopt newer versions
/// from each other, so it may be newer than the config's file. `None` when the data
/// directory holds no database yet. The database is opened read-only: this works while the
/// node runs.
pub fn stored_trust_list(cfg: &NodeConfig) -> Result<Option<TrustList>> {
    trust_list_in_db(cfg, &cfg.data_dir)
}

/// The trust list the database at `db` holds (a node's data directory, or a backup's copy of
/// it), verified under the config's governance key; `None` when there is no database there
/// or it holds none. Opened read-only.
pub fn trust_list_in_db(cfg: &NodeConfig, db: &Path) -> Result<Option<TrustList>> {
    use imi_store::ReadStore;
    if !db.join("CURRENT").exists() {
        return Ok(None);
    }
    let gov = crate::keyfile::read_public32(&cfg.governance_public_key)?;
    let store = imi_store::RocksStore::open_read_only(db, &cfg.store.rocks())
        .with_context(|| format!("opening {} read-only", db.display()))?;
    let Some(bytes) = store.get(imi_engine::keys::META, imi_engine::TRUST_LIST_KEY)? else {
        return Ok(None);
    };
    Ok(Some(TrustList::verify(&bytes, &gov).with_context(
        || format!("verifying the trust list in {}", db.display()),
    )?))
}

/// Reads and verifies the trust list named in a config.
pub fn load_trust_list(trust_list: &Path, governance_pub: &Path) -> Result<TrustList> {
    let gov = crate::keyfile::read_public32(governance_pub)?;
    let bytes =
        std::fs::read(trust_list).with_context(|| format!("reading {}", trust_list.display()))?;
    TrustList::verify(&bytes, &gov).with_context(|| format!("verifying {}", trust_list.display()))
}

/// Loads config keys into an engine identity.
pub fn load_identity(cfg: &NodeConfig) -> Result<imi_engine::Identity> {
    let seed = crate::keyfile::read_secret32(&cfg.identity_key)?;
    let mut hpke = Vec::new();
    for path in std::iter::once(&cfg.hpke_key).chain(&cfg.hpke_extra_keys) {
        hpke.push(HpkeKeyPair::from_secret_bytes(
            &crate::keyfile::read_secret32(path)?,
        )?);
    }
    Ok(imi_engine::Identity {
        signer: NodeSigner::from_seed(cfg.node, &seed),
        hpke,
    })
}

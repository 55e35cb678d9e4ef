//! The node's one TOML config file. Paths are relative to the file's directory. Keys live
//! in files named here, never in config values.
//!
//! Environment overrides: `IMI_LOG` (tracing filter, e.g. `info,imi_engine=debug`),
//! `IMI_LOG_JSON=1` (JSON logs).
use anyhow::{Context, Result};
use imi_engine::EngineConfig;
use imi_protocol::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A node's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id (`AT` … `SK`, `EU`).
    pub node: NodeId,
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// ed25519 identity seed (hex, 0600).
    pub identity_key: PathBuf,
    /// X25519 HPKE secret (hex, 0600).
    pub hpke_key: PathBuf,
    /// Further HPKE secrets the node also opens envelopes with (hex, 0600): during a key
    /// rotation, the previous key, for envelopes members sealed to it before the new one
    /// was listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hpke_extra_keys: Vec<PathBuf>,
    /// The signed trust list (COSE_Sign1 bytes).
    pub trust_list: PathBuf,
    /// The governance public key (hex).
    pub governance_public_key: PathBuf,
    /// The catalogue directory (`languages.toml`, `areas/*.toml`), validated at start.
    pub catalogue: PathBuf,
    /// The authority directory file (`[[authorities]]`), validated at start.
    pub directory: PathBuf,
    /// The controlled vocabularies directory (`professions.toml`, `competences.toml`);
    /// default: `vocabularies` beside the catalogue directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabularies: Option<PathBuf>,
    /// The node's data key (hex, 0600): wraps the data key of every case.
    pub data_key: PathBuf,
    /// libp2p settings.
    #[serde(default)]
    pub network: NetworkSection,
    /// HTTPS settings.
    pub http: HttpSection,
    /// Engine settings.
    #[serde(default)]
    pub engine: EngineConfig,
    /// RocksDB settings.
    #[serde(default)]
    pub store: StoreSection,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
    /// Backups (`imi-node backup`).
    #[serde(default)]
    pub backup: BackupSection,
    /// A separate metrics and health listener.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// The node's threads.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// A simulated clock (simulations only; see [`SimulationSection`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulation: Option<SimulationSection>,
}

/// `[simulation]`: the node's clock is simulated time, `start + speed × (wall − anchor)`,
/// shared by every node of a simulation that is given the same values, so that a
/// reporting year runs in minutes (`imi-sim run`). A node with this section refuses to start
/// unless every listener (`http.listen`, `network.listen`) is on a loopback address: a
/// simulated clock never runs on a reachable node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSection {
    /// The simulated instant at `anchor_ms`, RFC 3339 UTC (`2021-01-01T00:00:00Z`).
    pub start: String,
    /// The wall-clock instant (unix ms) at which the simulated clock reads `start`; before
    /// it the simulated clock reads earlier than `start`.
    pub anchor_ms: u64,
    /// Simulated milliseconds per wall-clock millisecond (1 … 10,000,000).
    pub speed: f64,
    /// The simulated instant (RFC 3339 UTC) from which the clock runs at real speed again,
    /// one simulated ms per wall ms (default: never). A simulation ends its scaled period
    /// there, so that what it checks afterwards is not dated months later by a clock still
    /// racing (and retention does not keep working through those months meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The largest `[simulation] speed`.
pub const MAX_SIMULATION_SPEED: f64 = 10_000_000.0;

impl SimulationSection {
    /// The clock, or why the section is not valid.
    pub fn clock(&self) -> Result<ScaledClock> {
        let start = imi_protocol::dates::parse_rfc3339(&self.start).with_context(|| {
            format!(
                "simulation.start: {:?} is not an RFC 3339 UTC time",
                self.start
            )
        })?;
        if !(1.0..=MAX_SIMULATION_SPEED).contains(&self.speed) {
            anyhow::bail!(
                "simulation.speed: {} is not between 1 and {MAX_SIMULATION_SPEED}",
                self.speed
            );
        }
        let until = match &self.until {
            None => u64::MAX,
            Some(u) => {
                let until = imi_protocol::dates::parse_rfc3339(u).with_context(|| {
                    format!("simulation.until: {u:?} is not an RFC 3339 UTC time")
                })?;
                if until < start {
                    anyhow::bail!("simulation.until: {u} is before simulation.start");
                }
                until
            }
        };
        Ok(ScaledClock {
            start,
            anchor: self.anchor_ms,
            speed: self.speed,
            until,
        })
    }
}

/// Simulated time: `start + speed × (wall − anchor)` in unix ms (never below 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledClock {
    /// Simulated unix ms at the anchor.
    pub start: u64,
    /// Wall-clock unix ms of the anchor.
    pub anchor: u64,
    /// Simulated ms per wall ms.
    pub speed: f64,
    /// Simulated unix ms from which the clock runs at real speed (`u64::MAX`: never).
    pub until: u64,
}

impl ScaledClock {
    /// The simulated time at wall-clock unix ms `wall`.
    pub fn at(&self, wall: u64) -> u64 {
        let elapsed = wall as f64 - self.anchor as f64;
        let t = self.start as f64 + self.speed * elapsed;
        if t > self.until as f64 {
            // Past `until`: real speed from the wall instant the clock read `until`.
            return (self.until as f64 + (wall as f64 - self.wall_of_until())) as u64;
        }
        // Saturating float-to-int conversion: negative times read 0.
        t as u64
    }

    /// The wall-clock unix ms at which the clock reads simulated unix ms `sim`.
    pub fn wall_of(&self, sim: u64) -> u64 {
        let wall = if sim > self.until {
            self.wall_of_until() + (sim - self.until) as f64
        } else {
            self.anchor as f64 + (sim as f64 - self.start as f64) / self.speed
        };
        wall.ceil() as u64
    }

    fn wall_of_until(&self) -> f64 {
        self.anchor as f64 + (self.until as f64 - self.start as f64) / self.speed
    }
}

impl imi_protocol::Clock for ScaledClock {
    fn now_ms(&self) -> imi_protocol::Timestamp {
        self.at(imi_protocol::SystemClock.now_ms())
    }
}

/// libp2p settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSection {
    /// Listen multiaddresses.
    pub listen: Vec<String>,
    /// Largest frame (envelope or receipt), bytes.
    pub max_message_bytes: usize,
    /// Request timeout, ms.
    pub request_timeout_ms: u64,
    /// Idle connection timeout, ms.
    pub idle_connection_timeout_ms: u64,
    /// Connections one peer may hold at once.
    pub max_connections_per_peer: u32,
    /// Addresses to dial a peer at instead of those on the trust list: node id →
    /// multiaddresses.
    pub peer_addresses: BTreeMap<NodeId, Vec<String>>,
    /// Bytes of inbound envelopes received and not yet answered, from all peers; beyond it
    /// an envelope is dropped unanswered (the sender retries).
    pub max_pending_inbound_bytes: usize,
    /// The same, per peer.
    pub max_pending_inbound_bytes_per_peer: usize,
    /// Peers announcing a lower IMI protocol version are refused (1 up to the version this
    /// release speaks).
    pub min_protocol_version: u16,
    /// While another peer is sending too, each peer is read at no more than this many bytes
    /// per second (0: no pacing).
    pub contended_read_bytes_per_second: u64,
    /// Serve and announce `/imi/envelopes/2` (and serve `/imi/envelopes/1`), and send envelopes queued together for a peer
    /// that announces it as one request.
    pub batching: bool,
}

impl NetworkSection {
    /// `min_protocol_version`, checked against the versions this release speaks.
    pub fn min_protocol_version(&self) -> anyhow::Result<u16> {
        let speaks = imi_protocol::PROTOCOL_VERSION;
        let min = self.min_protocol_version;
        if min == 0 || min > speaks {
            anyhow::bail!(
                "network.min_protocol_version = {min}: this release speaks IMI protocol versions 1 to {speaks}, so the minimum must be one of them"
            );
        }
        Ok(min)
    }
}

impl Default for NetworkSection {
    fn default() -> Self {
        let net = imi_network::NetworkConfig::default();
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            max_message_bytes: imi_network::DEFAULT_MAX_MESSAGE_BYTES,
            request_timeout_ms: 30_000,
            idle_connection_timeout_ms: 300_000,
            max_connections_per_peer: net.max_connections_per_peer,
            peer_addresses: BTreeMap::new(),
            max_pending_inbound_bytes: net.max_pending_inbound_bytes,
            max_pending_inbound_bytes_per_peer: net.max_pending_inbound_bytes_per_peer,
            min_protocol_version: net.min_peer_protocol_version,
            contended_read_bytes_per_second: net.contended_read_bytes_per_second,
            batching: net.batching,
        }
    }
}

/// HTTPS settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address.
    pub listen: SocketAddr,
    /// Server certificate (PEM).
    pub tls_cert: PathBuf,
    /// Server key (PEM, 0600).
    pub tls_key: PathBuf,
    /// CA certificate clients use to verify this node (PEM).
    pub ca_cert: PathBuf,
    /// Operator bearer token (0600).
    pub operator_token: PathBuf,
}

/// RocksDB settings (memory caps: 31 nodes must fit on one machine).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// Memtable size per column family, bytes.
    pub write_buffer_bytes: usize,
    /// Memtables per column family.
    pub max_write_buffers: i32,
    /// Shared block cache, bytes.
    pub block_cache_bytes: usize,
    /// Open file limit.
    pub max_open_files: i32,
}

impl Default for StoreSection {
    fn default() -> Self {
        let d = imi_store::RocksConfig::default();
        Self {
            write_buffer_bytes: d.write_buffer_bytes,
            max_write_buffers: d.max_write_buffers,
            block_cache_bytes: d.block_cache_bytes,
            max_open_files: d.max_open_files,
        }
    }
}

impl StoreSection {
    /// As the store crate's config.
    pub fn rocks(&self) -> imi_store::RocksConfig {
        imi_store::RocksConfig {
            write_buffer_bytes: self.write_buffer_bytes,
            max_write_buffers: self.max_write_buffers,
            block_cache_bytes: self.block_cache_bytes,
            max_open_files: self.max_open_files,
            filtered_columns: imi_apps::filtered_columns(),
            blob_columns: imi_engine::Engine::blob_columns().to_vec(),
        }
    }
}

/// `[metrics]`: a plain-HTTP listener of its own for `/metrics`, `/health/live` and
/// `/health/ready` (for Prometheus and the service manager, typically on loopback). When it
/// is set, the HTTPS listener no longer serves `/metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Listen address, e.g. `127.0.0.1:9464`; unset: `/metrics` is on the HTTPS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// `[backup]`: where `imi-node backup` writes and how many it keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSection {
    /// The backup directory; default `backups` beside `data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Complete backups kept; after a new one, the oldest beyond this are deleted (0: all).
    pub keep: usize,
}

/// `[runtime]`: the node's threads: async workers and the blocking pool beside them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSection {
    /// Async worker threads; `0` = one per CPU core. A machine that hosts several nodes
    /// should run each with its share of the cores: every worker a node has beyond that is
    /// one more thread to wake and switch to for each message (the simulator's 31 nodes on
    /// two cores run one each: 7 % less CPU than two, BENCHMARKS.md).
    pub worker_threads: usize,
    /// Most threads of the blocking pool (store reads, sealing, backups); `0` = two per
    /// core, at least 4 and at most 16. Each thread the pool keeps alive holds its own
    /// allocator pages and stack: with 31 nodes on two cores, the busiest kept 16 alive, and
    /// 4 each took 20 MiB less together at the same CPU (BENCHMARKS.md).
    pub blocking_threads: usize,
}

impl RuntimeSection {
    /// The number of async worker threads: `worker_threads`, or one per core.
    pub fn workers(&self) -> usize {
        match self.worker_threads {
            0 => cores(),
            n => n,
        }
    }

    /// The most threads of the blocking pool: `blocking_threads`, or two per core within
    /// 4..=16.
    pub fn blocking(&self) -> usize {
        match self.blocking_threads {
            0 => cores().saturating_mul(2).clamp(4, 16),
            n => n,
        }
    }

    /// The tokio runtime of a node or subcommand with these settings (always with an
    /// explicit worker count, so that tokio's `TOKIO_WORKER_THREADS` changes nothing).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.workers())
            .max_blocking_threads(self.blocking())
            .enable_all()
            .build()
    }
}

/// The machine's cores as the process may use them (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Logging.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// JSON lines instead of text.
    pub json: bool,
    /// tracing filter, e.g. `info`.
    pub level: Option<String>,
}

impl NodeConfig {
    /// Loads a config file and makes its paths absolute.
    pub fn load(path: &Path) -> Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut cfg: NodeConfig =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut cfg.data_dir);
        abs(&mut cfg.identity_key);
        abs(&mut cfg.hpke_key);
        for k in &mut cfg.hpke_extra_keys {
            abs(k);
        }
        abs(&mut cfg.trust_list);
        abs(&mut cfg.governance_public_key);
        abs(&mut cfg.catalogue);
        abs(&mut cfg.directory);
        if let Some(v) = cfg.vocabularies.as_mut() {
            abs(v);
        }
        abs(&mut cfg.data_key);
        abs(&mut cfg.http.tls_cert);
        abs(&mut cfg.http.tls_key);
        abs(&mut cfg.http.ca_cert);
        abs(&mut cfg.http.operator_token);
        if let Some(d) = cfg.backup.dir.as_mut() {
            abs(d);
        }
        if std::env::var("IMI_LOG_JSON").is_ok_and(|v| v == "1" || v == "true") {
            cfg.log.json = true;
        }
        if let Ok(l) = std::env::var("IMI_LOG") {
            cfg.log.level = Some(l);
        }
        cfg.engine.peer_addresses = cfg.network.peer_addresses.clone();
        Ok(cfg)
    }

    /// The simulated clock of `[simulation]`, if the section is there; an error if it is not
    /// valid or a listener is not on loopback.
    pub fn simulation_clock(&self) -> Result<Option<ScaledClock>> {
        let Some(sim) = &self.simulation else {
            return Ok(None);
        };
        let clock = sim.clock()?;
        if !self.http.listen.ip().is_loopback() {
            anyhow::bail!(
                "simulation: http.listen {} is not a loopback address (a simulated clock runs only on loopback)",
                self.http.listen
            );
        }
        for a in &self.network.listen {
            let loopback = a.starts_with("/ip4/127.") || a.starts_with("/ip6/::1/");
            if !loopback {
                anyhow::bail!(
                    "simulation: network.listen {a} is not a loopback address (a simulated clock runs only on loopback)"
                );
            }
        }
        Ok(Some(clock))
    }
}

/// The authority directory file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    authorities: Vec<imi_domain::Authority>,
}

impl NodeConfig {
    /// The vocabularies directory: the configured one, else `vocabularies` beside the
    /// catalogue directory.
    pub fn vocabularies_dir(&self) -> PathBuf {
        self.vocabularies.clone().unwrap_or_else(|| {
            self.catalogue
                .parent()
                .map_or_else(|| PathBuf::from("vocabularies"), |p| p.join("vocabularies"))
        })
    }
}

/// Loads and validates the controlled vocabularies against the catalogue's languages.
pub fn load_vocabulary(
    cfg: &NodeConfig,
    catalogue: &imi_domain::catalogue::Catalogue,
) -> Result<imi_domain::Vocabulary> {
    let dir = cfg.vocabularies_dir();
    imi_domain::Vocabulary::load(
        &dir,
        catalogue.languages(),
        &imi_apps::catalogue_files::Disk,
    )
    .map_err(|e| anyhow::anyhow!("vocabularies {}: {e}", dir.display()))
}

/// Loads and validates the authority directory file; errors name the file and the authority.
pub fn load_directory(path: &Path) -> Result<imi_domain::Directory> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading directory {}", path.display()))?;
    let file: DirectoryFile =
        toml::from_str(&text).with_context(|| format!("parsing directory {}", path.display()))?;
    let mut dir = imi_domain::Directory::new();
    for a in file.authorities {
        let id = a.id.to_string();
        if dir.contains(&a.id) {
            anyhow::bail!("{}: authority {id} is listed twice", path.display());
        }
        dir.insert(a)
            .with_context(|| format!("{}: authority {id}", path.display()))?;
    }
    Ok(dir)
}

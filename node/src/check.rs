//! `imi-node config check`: everything `imi-node run` would refuse at start, checked without
//! starting — the file and its keys, every key file and its mode, the trust list and this
//! node's place on it, TLS, the catalogue and the directory, the data directory's mode, the
//! listen ports, and settings that contradict each other. Every problem is reported, each
//! naming what is wrong, not only the first.
use crate::config::NodeConfig;
use imi_protocol::{HpkeKeyPair, NodeSigner, TrustList};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What was checked (`keys.identity`, `trust_list.member`, `http.listen`, …).
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// What was found, or what is wrong.
    pub detail: String,
}

/// The periodic jobs `[engine] job_interval_ms` may name (the kernel's and the applications').
pub const JOBS: &[&str] = imi_apps::JOBS;

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, name: &str, result: anyhow::Result<String>) -> bool {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        self.0.push(Finding {
            name: name.to_owned(),
            ok,
            detail,
        });
        ok
    }
}

/// Checks the config file at `path` at time `now_ms`; returns every check made.
pub fn check(path: &Path, now_ms: u64) -> Vec<Finding> {
    let mut f = Findings(Vec::new());
    let cfg = match NodeConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            f.add("config", Err(e));
            return f.0;
        }
    };
    f.add("config", Ok(format!("{} ({})", path.display(), cfg.node)));
    let signer = crate::keyfile::read_secret32(&cfg.identity_key)
        .map(|seed| NodeSigner::from_seed(cfg.node, &seed));
    let identity_public = signer.as_ref().ok().map(NodeSigner::public);
    f.add(
        "keys.identity",
        signer.map(|s| {
            format!(
                "{}, public key {}",
                cfg.identity_key.display(),
                hex::encode(s.public())
            )
        }),
    );
    let hpke_key = |path: &std::path::Path| {
        crate::keyfile::read_secret32(path).and_then(|s| {
            HpkeKeyPair::from_secret_bytes(&s)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        })
    };
    let hpke = hpke_key(&cfg.hpke_key);
    let hpke_public = hpke.as_ref().ok().map(HpkeKeyPair::public);
    f.add(
        "keys.hpke",
        hpke.map(|_| cfg.hpke_key.display().to_string()),
    );
    for (i, path) in cfg.hpke_extra_keys.iter().enumerate() {
        f.add(
            &format!("keys.hpke_extra[{i}]"),
            hpke_key(path).map(|_| path.display().to_string()),
        );
    }
    f.add(
        "keys.data_key",
        crate::keyfile::read_secret32(&cfg.data_key).map(|_| cfg.data_key.display().to_string()),
    );
    f.add(
        "keys.operator_token",
        crate::keyfile::read_secret(&cfg.http.operator_token).and_then(|t| {
            if t.is_empty() {
                anyhow::bail!("{} is empty", cfg.http.operator_token.display())
            }
            Ok(cfg.http.operator_token.display().to_string())
        }),
    );
    let governance = crate::keyfile::read_public32(&cfg.governance_public_key);
    let gov = governance.as_ref().ok().copied();
    f.add(
        "keys.governance",
        governance.map(|g| {
            format!(
                "{}: {}",
                cfg.governance_public_key.display(),
                hex::encode(g)
            )
        }),
    );
    // The trust list: signed by the governance key; this node on it with these keys.
    let trust: anyhow::Result<TrustList> = match gov {
        Some(g) => std::fs::read(&cfg.trust_list)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", cfg.trust_list.display()))
            .and_then(|bytes| {
                TrustList::verify(&bytes, &g).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: does not verify under the governance key: {e}",
                        cfg.trust_list.display()
                    )
                })
            }),
        None => Err(anyhow::anyhow!("no governance key to verify it with")),
    };
    match trust {
        Ok(t) => {
            f.add(
                "trust_list",
                Ok(format!(
                    "version {}, {} members",
                    t.version,
                    t.members.len()
                )),
            );
            let member = t.member(cfg.node);
            if f.add(
                "trust_list.member",
                member
                    .map(|_| format!("{} is a member", cfg.node))
                    .ok_or_else(|| anyhow::anyhow!("{} is not on the trust list", cfg.node)),
            ) && let Some(m) = member
            {
                f.add(
                    "trust_list.identity",
                    match identity_public {
                        Some(p) => m
                            .signing_keys
                            .iter()
                            .find(|k| k.public == p)
                            .ok_or_else(|| {
                                anyhow::anyhow!(
                                    "the identity key is not one of {}'s signing keys",
                                    cfg.node
                                )
                            })
                            .and_then(|k| {
                                if k.valid_from <= now_ms && now_ms < k.valid_until {
                                    Ok(format!("listed, valid until {}", k.valid_until))
                                } else {
                                    anyhow::bail!(
                                        "listed but not valid now (valid {}..{} ms)",
                                        k.valid_from,
                                        k.valid_until
                                    )
                                }
                            }),
                        None => Err(anyhow::anyhow!("no identity key to look for")),
                    },
                );
                f.add(
                    "trust_list.hpke",
                    match hpke_public {
                        Some(p) => m
                            .hpke_keys
                            .iter()
                            .any(|k| k.public == p)
                            .then(|| "listed".to_owned())
                            .ok_or_else(|| {
                                anyhow::anyhow!(
                                    "the HPKE key is not one of {}'s HPKE keys",
                                    cfg.node
                                )
                            }),
                        None => Err(anyhow::anyhow!("no HPKE key to look for")),
                    },
                );
            }
        }
        Err(e) => {
            f.add("trust_list", Err(e));
        }
    }
    f.add(
        "tls",
        crate::tls::server_config(&cfg.http.tls_cert, &cfg.http.tls_key).map(|_| {
            format!(
                "{} with {}",
                cfg.http.tls_cert.display(),
                cfg.http.tls_key.display()
            )
        }),
    );
    f.add(
        "tls.ca_cert",
        std::fs::read_to_string(&cfg.http.ca_cert)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", cfg.http.ca_cert.display()))
            .and_then(|pem| {
                if pem.contains("-----BEGIN CERTIFICATE-----") {
                    Ok(cfg.http.ca_cert.display().to_string())
                } else {
                    anyhow::bail!("{} holds no PEM certificate", cfg.http.ca_cert.display())
                }
            }),
    );
    f.add(
        "catalogue",
        imi_apps::catalogue_files::load_dir(&cfg.catalogue)
            .map(|c| format!("{}: {} areas", cfg.catalogue.display(), c.areas().len()))
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", cfg.catalogue.display())),
    );
    f.add(
        "directory",
        crate::config::load_directory(&cfg.directory).map(|d| {
            format!(
                "{}: {} authorities, {} of {}",
                cfg.directory.display(),
                d.len(),
                d.by_country(cfg.node).count(),
                cfg.node
            )
        }),
    );
    f.add(
        "vocabularies",
        imi_apps::catalogue_files::load_dir(&cfg.catalogue)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|c| crate::config::load_vocabulary(&cfg, &c))
            .map(|v| {
                format!(
                    "{}: {} professions, {} competences",
                    cfg.vocabularies_dir().display(),
                    v.professions().len(),
                    v.competences().len()
                )
            }),
    );
    f.add("data_dir", data_dir(&cfg.data_dir));
    f.add("http.listen", bindable(cfg.http.listen));
    if let Some(addr) = cfg.metrics.listen {
        f.add("metrics.listen", bindable(addr));
    }
    for (i, addr) in cfg.network.listen.iter().enumerate() {
        f.add(&format!("network.listen[{i}]"), multiaddr(addr));
    }
    for (node, addrs) in &cfg.network.peer_addresses {
        for (i, addr) in addrs.iter().enumerate() {
            f.add(
                &format!("network.peer_addresses.{node}[{i}]"),
                addr.parse::<imi_network::Multiaddr>()
                    .map(|_| addr.clone())
                    .map_err(|e| anyhow::anyhow!("{addr:?} is not a multiaddr: {e}")),
            );
        }
    }
    f.add(
        "network.min_protocol_version",
        cfg.network.min_protocol_version().map(|min| {
            format!(
                "peers below protocol {min} are refused; this release speaks {}",
                imi_protocol::PROTOCOL_VERSION
            )
        }),
    );
    f.add("engine", engine(&cfg.engine));
    if cfg.simulation.is_some() {
        f.add(
            "simulation",
            cfg.simulation_clock()
                .and_then(|c| c.ok_or_else(|| anyhow::anyhow!("no [simulation] section")))
                .map(|c| {
                    format!(
                        "simulated clock: {} at wall {} ms, speed {} (simulations only)",
                        imi_protocol::dates::rfc3339(c.start),
                        c.anchor,
                        c.speed
                    )
                }),
        );
    }
    f.0
}

/// The data directory: absent (it is created 0700 at start, so its parent must exist), or a
/// directory that only its owner may enter.
fn data_dir(path: &Path) -> anyhow::Result<String> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => anyhow::bail!("{} is not a directory", path.display()),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{}: mode {mode:o} lets others in (chmod 700 it)",
                    path.display()
                );
            }
            Ok(format!("{} (mode {mode:o})", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match path.parent() {
            Some(p) if p.is_dir() => Ok(format!("{} will be created 0700", path.display())),
            _ => anyhow::bail!("{}: neither it nor its parent exists", path.display()),
        },
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    }
}

/// A TCP address this process could listen on now (port 0: any).
fn bindable(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(format!("{addr} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            anyhow::bail!("{addr} is in use (is the node already running?)")
        }
        Err(e) => anyhow::bail!("cannot listen on {addr}: {e}"),
    }
}

/// A libp2p listen multiaddress: `/ip4|ip6/<address>/tcp/<port>`, its port free.
fn multiaddr(text: &str) -> anyhow::Result<String> {
    let _: imi_network::Multiaddr = text
        .parse()
        .map_err(|e| anyhow::anyhow!("{text:?} is not a multiaddress: {e}"))?;
    let parts: Vec<&str> = text.split('/').collect();
    let addr = match parts.as_slice() {
        ["", "ip4" | "ip6", ip, "tcp", port] => ip
            .parse::<std::net::IpAddr>()
            .ok()
            .zip(port.parse::<u16>().ok())
            .map(|(ip, port)| std::net::SocketAddr::new(ip, port)),
        _ => None,
    }
    .ok_or_else(|| anyhow::anyhow!("{text}: use /ip4/<address>/tcp/<port> or /ip6/…/tcp/…"))?;
    bindable(addr).map(|d| format!("{text}: {d}"))
}

/// Engine settings that contradict each other or name nothing.
fn engine(e: &imi_engine::EngineConfig) -> anyhow::Result<String> {
    let mut problems = Vec::new();
    if e.max_inbound_per_peer > e.max_inbound_concurrency {
        problems.push(format!(
            "max_inbound_per_peer ({}) is above max_inbound_concurrency ({})",
            e.max_inbound_per_peer, e.max_inbound_concurrency
        ));
    }
    if e.max_inbound_per_peer < e.delivery_window {
        problems.push(format!(
            "max_inbound_per_peer ({}) is below delivery_window ({}): honest senders would be refused",
            e.max_inbound_per_peer, e.delivery_window
        ));
    }
    if e.inbound_share_contended == 0 {
        problems.push("inbound_share_contended must be at least 1".to_owned());
    }
    if e.backoff_initial_ms > e.backoff_max_ms {
        problems.push(format!(
            "backoff_initial_ms ({}) is above backoff_max_ms ({})",
            e.backoff_initial_ms, e.backoff_max_ms
        ));
    }
    for job in e.job_interval_ms.keys() {
        if !JOBS.contains(&job.as_str()) {
            problems.push(format!(
                "job_interval_ms names no job: {job:?} (jobs: {})",
                JOBS.join(", ")
            ));
        }
    }
    for node in e.peer_bytes_per_day_overrides.keys() {
        if node.parse::<imi_protocol::NodeId>().is_err() {
            problems.push(format!(
                "peer_bytes_per_day_overrides names no node: {node:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok("settings agree".to_owned())
    } else {
        anyhow::bail!("{}", problems.join("; "))
    }
}

//! The node's lifecycle: load and check everything, start store → network → engine →
//! HTTPS, then on SIGTERM/SIGINT shut down in order: stop accepting HTTP, stop the network
//! and delivery, let the committer finish what is queued, flush RocksDB, exit.
use crate::config::NodeConfig;
use crate::http::{HttpState, metrics_router, router};
use crate::init::load_identity;
use anyhow::{Context, Result};
use imi_engine::Engine;
use imi_protocol::{Clock, SystemClock};
use imi_store::{RocksStore, Store};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The file of erased case ids, outside the database (next to `data_dir`), so that a
/// restored backup of the database cannot bring erased data back.
pub fn tombstone_file(cfg: &NodeConfig) -> std::path::PathBuf {
    cfg.data_dir.parent().map_or_else(
        || std::path::PathBuf::from("erased-cases"),
        |p| p.join("erased-cases"),
    )
}

/// Installs the tracing subscriber (text or JSON on stderr).
pub fn init_logging(json: bool, level: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_new(level.unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().flatten_event(true).try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Runs a node until `shutdown` fires (the binary wires it to SIGTERM/SIGINT).
pub async fn run(
    cfg: NodeConfig,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Result<()> {
    crate::install_crypto_provider();
    let identity = load_identity(&cfg)?;
    let governance = crate::keyfile::read_public32(&cfg.governance_public_key)?;
    let me = cfg.node;
    let token = crate::keyfile::read_secret(&cfg.http.operator_token)?;
    let tls = crate::tls::server_config(&cfg.http.tls_cert, &cfg.http.tls_key)?;
    // The catalogue and the directory are validated before anything else starts: an error
    // names the file and the item.
    let catalogue = Arc::new(
        imi_apps::catalogue_files::load_dir(&cfg.catalogue)
            .with_context(|| format!("catalogue {}", cfg.catalogue.display()))?,
    );
    let directory = Arc::new(crate::config::load_directory(&cfg.directory)?);
    let vocabulary = Arc::new(crate::config::load_vocabulary(&cfg, &catalogue)?);
    let data_key = imi_apps::requests::DataKey::new(crate::keyfile::read_secret32(&cfg.data_key)?);
    crate::keyfile::private_dir(&cfg.data_dir)?;
    let rocks = Arc::new(
        RocksStore::open(&cfg.data_dir, &imi_apps::columns(), &cfg.store.rocks())
            .with_context(|| format!("opening store {}", cfg.data_dir.display()))?,
    );
    let store: Arc<dyn Store> = rocks.clone();
    crate::keyfile::private_files(&cfg.data_dir)?;
    // The store decides between the file's list and a newer one accepted earlier.
    let trust =
        imi_engine::settle_trust_list(store.as_ref(), std::fs::read(&cfg.trust_list)?, &governance)
            .with_context(|| format!("trust list {}", cfg.trust_list.display()))?;
    let replica = Arc::new(
        imi_apps::directory::DirectoryApp::open(me, vocabulary, store.as_ref())
            .context("opening the directory replica")?,
    );
    let cases = imi_apps::requests::Cases::new(me, data_key, catalogue.clone(), replica.shared());
    let diagnostics = imi_apps::diagnostics::DiagnosticApp::load(store.as_ref())?;
    let tombstones = Some(tombstone_file(&cfg));
    let node_apps = if me == imi_protocol::NodeId::EU {
        imi_apps::commission_node(
            &identity.signer,
            governance,
            diagnostics,
            cases,
            replica,
            tombstones,
        )
    } else {
        // Member states report indicator facts to the Commission node when it is listed.
        let report = trust.member(imi_protocol::NodeId::EU).is_some();
        imi_apps::member_node(
            &identity.signer,
            governance,
            diagnostics,
            cases,
            replica,
            tombstones,
            report,
        )
    };
    let member = trust
        .member(me)
        .with_context(|| format!("{me} is not on the trust list"))?;
    if !member
        .signing_keys
        .iter()
        .any(|k| k.public == identity.signer.public())
    {
        anyhow::bail!("the identity key of {me} is not listed in the trust list");
    }
    tracing::info!(node = %me, trust_list_version = trust.version, members = trust.members.len(), "starting");

    let cancel = CancellationToken::new();
    let net_cfg = imi_network::NetworkConfig {
        listen: cfg
            .network
            .listen
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?,
        max_message_bytes: cfg.network.max_message_bytes,
        request_timeout: Duration::from_millis(cfg.network.request_timeout_ms),
        idle_connection_timeout: Duration::from_millis(cfg.network.idle_connection_timeout_ms),
        max_connections_per_peer: cfg.network.max_connections_per_peer,
        max_pending_inbound_bytes: cfg.network.max_pending_inbound_bytes,
        max_pending_inbound_bytes_per_peer: cfg.network.max_pending_inbound_bytes_per_peer,
        protocol_version: imi_protocol::PROTOCOL_VERSION,
        min_peer_protocol_version: cfg.network.min_protocol_version()?,
        contended_read_bytes_per_second: cfg.network.contended_read_bytes_per_second,
        batching: cfg.network.batching,
        ..imi_network::NetworkConfig::default()
    };
    let keypair = imi_engine::libp2p_keypair(&identity.signer)?;
    let (client, events, net_task) = imi_network::spawn(
        keypair,
        net_cfg,
        imi_engine::allowed_peers(&trust, me, clock.now_ms(), &cfg.engine.peer_addresses),
        cancel.child_token(),
    )?;
    tracing::info!(
        node = %me,
        areas = catalogue.areas().len(),
        authorities = directory.len(),
        own_authorities = directory.by_country(me).count(),
        "catalogue and directory loaded"
    );
    let (engine, tasks) = Engine::start(
        imi_engine::Start {
            identity,
            trust,
            store: store.clone(),
            network: client.clone(),
            events,
            apps: node_apps.apps.clone(),
            clock: clock.clone(),
            config: cfg.engine.clone(),
        },
        cancel.child_token(),
    )?;

    // The directory seed: this country's authorities become this node's first signed
    // directory change; other countries' fill what the replica has not heard of yet.
    // The Commission node takes no part in the directory.
    if me != imi_protocol::NodeId::EU {
        let (own, foreign) = node_apps
            .directory
            .bootstrap(&engine, &directory)
            .await
            .context("directory bootstrap")?;
        tracing::info!(own, foreign, "directory seed applied");
    }
    // The replica holds what the node needs of the seed now; the parsed file would otherwise
    // stay in memory for the node's lifetime.
    drop(directory);

    // Re-apply erasures before serving: a restored backup must not bring data back (the
    // retention job, which also runs at start, checks again every time).
    let re_erased = node_apps.retention.enforce_tombstones(&engine).await?;
    if re_erased > 0 {
        tracing::warn!(cases = re_erased, "erased cases re-erased at start");
    }
    let mut registry = Registry::default();
    engine.metrics().register(&mut registry);
    node_apps.apps.register_metrics(&mut registry);
    let rss = Gauge::default();
    let store_memory = Gauge::default();
    registry.register(
        "imi_process_resident_memory_bytes",
        "Resident memory of the node process",
        rss.clone(),
    );
    registry.register(
        "imi_store_memory_bytes",
        "RocksDB memtables and block cache",
        store_memory.clone(),
    );
    let trust_list_version = Gauge::default();
    let trust_list_age = Gauge::default();
    registry.register(
        "imi_trust_list_version",
        "Version of the trust list in force",
        trust_list_version.clone(),
    );
    registry.register(
        "imi_trust_list_age_seconds",
        "Seconds since the trust list in force was issued (stale after 180 days; the node keeps working)",
        trust_list_age.clone(),
    );
    let maintenance = Gauge::default();
    registry.register(
        "imi_maintenance",
        "1 while maintenance mode is on (the node reports not-ready)",
        maintenance.clone(),
    );
    let log_leaves = Gauge::default();
    registry.register(
        "imi_log_leaves",
        "Leaves in this node's transparency log",
        log_leaves.clone(),
    );
    registry.register_collector(Box::new(ReadPacingMetrics(client.clone())));
    let backups = crate::backup::NodeBackups::new(rocks, cfg.clone(), engine.clone());
    backups.register_metrics(&mut registry);
    let services = imi_apps::Services::new(engine.clone(), &node_apps, governance);
    let api = imi_api::ApiState::new(services, clock.clone())
        .with_operator_token(imi_protocol::sha256(token.as_bytes()))
        .with_backups(Arc::new(backups));
    let state = HttpState {
        api,
        store: store.clone(),
        engine: engine.clone(),
        registry: Arc::new(registry),
        rss,
        store_memory,
        trust_list_version,
        trust_list_age,
        maintenance,
        log_leaves,
    };
    let handle = axum_server::Handle::new();
    let server = axum_server::bind_rustls(
        cfg.http.listen,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls)),
    )
    .handle(handle.clone())
    .serve(router(state.clone(), cfg.metrics.listen.is_none()).into_make_service());
    let http_task = tokio::spawn(server);
    if let Some(addr) = handle.listening().await {
        tracing::info!(node = %me, http = %addr, "https listening");
    } else {
        anyhow::bail!("HTTPS listener on {} failed to start", cfg.http.listen);
    }
    let metrics_task = match cfg.metrics.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics listener on {addr}"))?;
            tracing::info!(node = %me, metrics = %listener.local_addr()?, "metrics listening (plain HTTP)");
            let stop = cancel.child_token();
            Some(tokio::spawn(async move {
                axum::serve(listener, metrics_router(state).into_make_service())
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }))
        }
        None => None,
    };
    tracing::info!(node = %me, "ready");
    crate::notify::notify(&format!("READY=1\nSTATUS=serving as {me}"));
    // The watchdog pings only while the runtime runs this task and the store answers a
    // read: a wedged node stops pinging and systemd restarts it.
    let watchdog = crate::notify::watchdog_interval().map(|every| {
        let store = store.clone();
        let stop = cancel.child_token();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let s = store.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    s.get(imi_engine::keys::META, b"watchdog-probe").is_ok()
                })
                .await
                .unwrap_or(false);
                if ok {
                    crate::notify::notify("WATCHDOG=1");
                } else {
                    tracing::error!("the store does not answer: no watchdog ping");
                }
            }
        })
    });

    shutdown.cancelled().await;
    crate::notify::notify("STOPPING=1");
    if let Some(w) = watchdog {
        w.abort();
    }
    tracing::info!(node = %me, "shutting down");
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    let _ = http_task.await;
    cancel.cancel();
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    tasks.join().await;
    drop(engine);
    let _ = net_task.await;
    if let Err(e) = store.flush() {
        tracing::warn!(error = %e, "flush at shutdown failed");
    }
    tracing::info!(node = %me, "stopped");
    Ok(())
}

/// A token that fires on SIGTERM or SIGINT.
pub fn signal_token() -> Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        t.cancel();
    });
    Ok(token)
}

/// The system clock moved by a fixed offset: for simulations and tests that need a node to
/// live in the future (overdue requests, retention), never for production.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(pub u64);

impl Clock for OffsetClock {
    fn now_ms(&self) -> imi_protocol::Timestamp {
        SystemClock.now_ms().saturating_add(self.0)
    }
}

/// The environment variable that shifts a node's clock forward (milliseconds; simulations
/// and tests only).
pub const CLOCK_OFFSET_ENV: &str = "IMI_CLOCK_OFFSET_MS";

/// The clock of the node of `cfg`: the simulated clock of its `[simulation]` section (with a
/// warning), else [`system_clock`].
pub fn clock_of(cfg: &crate::config::NodeConfig) -> Result<Arc<dyn Clock>> {
    match cfg.simulation_clock()? {
        Some(c) => {
            tracing::warn!(
                start = c.start,
                anchor_ms = c.anchor,
                speed = c.speed,
                "[simulation] is set: this node runs on simulated time (simulations only)"
            );
            Ok(Arc::new(c))
        }
        None => Ok(system_clock()),
    }
}

/// The production clock (shifted by `IMI_CLOCK_OFFSET_MS` when that is set, with a warning).
pub fn system_clock() -> Arc<dyn Clock> {
    match std::env::var(CLOCK_OFFSET_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(offset) if offset > 0 => {
            tracing::warn!(
                offset_ms = offset,
                "{CLOCK_OFFSET_ENV} is set: this node's clock runs ahead (simulations and tests only)"
            );
            Arc::new(OffsetClock(offset))
        }
        _ => Arc::new(SystemClock),
    }
}

/// `imi_network_read_pauses_total` and `imi_network_read_paused_seconds_total`, read from the
/// network's pacer at each scrape, and the batch counters (`imi_network_batches_sent_total`,
/// `imi_network_batched_envelopes_sent_total` and their `_received_` pairs).
#[derive(Debug)]
struct ReadPacingMetrics(imi_network::NetworkClient);

impl prometheus_client::collector::Collector for ReadPacingMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let pacing = self.0.read_pacing();
        let pauses = ConstCounter::new(pacing.pauses);
        pauses.encode(encoder.encode_descriptor(
            "imi_network_read_pauses",
            "Times a connection waited before reading because its peer had sent its share while another peer was sending (network.contended_read_bytes_per_second)",
            None,
            pauses.metric_type(),
        )?)?;
        let paused = ConstCounter::new(pacing.paused.as_secs_f64());
        paused.encode(encoder.encode_descriptor(
            "imi_network_read_paused_seconds",
            "Seconds connections waited under read pacing, summed over connections",
            None,
            paused.metric_type(),
        )?)?;
        let batches = self.0.batches();
        for (name, help, value) in [
            (
                "imi_network_batches_sent",
                "Requests sent on /imi/envelopes/2, each carrying several envelopes",
                batches.sent,
            ),
            (
                "imi_network_batched_envelopes_sent",
                "Envelopes sent inside batches",
                batches.sent_items,
            ),
            (
                "imi_network_batches_received",
                "Batches received on /imi/envelopes/2 or /imi/envelopes/1",
                batches.received,
            ),
            (
                "imi_network_batched_envelopes_received",
                "Envelopes received inside batches",
                batches.received_items,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

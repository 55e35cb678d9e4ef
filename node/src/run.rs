//! The node's lifecycle: load and check everything, start store → network → engine →
//! HTTPS, then on SIGTERM/SIGINT shut down in order: stop accepting HTTP, stop the network
//! and delivery, let the committer finish what is queued, flush RocksDB, exit.
use crate::config::NodeConfig;
use crate::http::{HttpState, router};
use crate::init::load_identity;
use anyhow::{Context, Result};
use imi_engine::{Applications, DiagnosticApp, Engine};
use imi_protocol::{Clock, SystemClock};
use imi_store::{RocksStore, Store};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the retention schedule runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// The file of erased case ids, outside the database (next to `data_dir`), so that a
/// restored backup of the database cannot bring erased data back.
pub fn tombstone_file(cfg: &NodeConfig) -> std::path::PathBuf {
    cfg.data_dir.parent().map_or_else(
        || std::path::PathBuf::from("erased-cases"),
        |p| p.join("erased-cases"),
    )
}

/// How often the node signs a checkpoint of its log (when it grew).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// How often the node dials listed peers it is not connected to.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(10);

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
        imi_domain::catalogue::Catalogue::load_dir(&cfg.catalogue)
            .with_context(|| format!("catalogue {}", cfg.catalogue.display()))?,
    );
    let directory = Arc::new(crate::config::load_directory(&cfg.directory)?);
    let data_key = imi_engine::cases::DataKey::new(crate::keyfile::read_secret32(&cfg.data_key)?);
    std::fs::create_dir_all(&cfg.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(
        RocksStore::open(&cfg.data_dir, Engine::columns(), &cfg.store.rocks())
            .with_context(|| format!("opening store {}", cfg.data_dir.display()))?,
    );
    // The store decides between the file's list and a newer one accepted earlier.
    let trust =
        imi_engine::settle_trust_list(store.as_ref(), std::fs::read(&cfg.trust_list)?, &governance)
            .with_context(|| format!("trust list {}", cfg.trust_list.display()))?;
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
        ..imi_network::NetworkConfig::default()
    };
    let keypair = imi_engine::libp2p_keypair(&identity.signer)?;
    let (client, events, net_task) = imi_network::spawn(
        keypair,
        net_cfg,
        imi_engine::allowed_peers(&trust, me),
        cancel.child_token(),
    )?;
    // Member states report indicator facts to the Commission node when it is a member.
    let commission = (me != imi_protocol::NodeId::EU
        && trust.member(imi_protocol::NodeId::EU).is_some())
    .then_some(imi_protocol::NodeId::EU);
    let mut cases =
        imi_engine::cases::Cases::new(me, data_key, catalogue.clone(), directory.clone());
    if commission.is_some() {
        cases = cases.with_fact_reports();
    }
    let cases = Arc::new(cases);
    tracing::info!(
        node = %me,
        areas = catalogue.areas().len(),
        authorities = directory.len(),
        own_authorities = directory.by_country(me).count(),
        "catalogue and directory loaded"
    );
    let witness_alarms = prometheus_client::metrics::family::Family::<
        imi_engine::metrics::PeerCodeLabel,
        prometheus_client::metrics::counter::Counter,
    >::default();
    let witness: Arc<dyn imi_engine::Application> = Arc::new(imi_engine::witness::WitnessApp::new(
        identity.signer.clone(),
        witness_alarms.clone(),
    ));
    let cosignatures: Arc<dyn imi_engine::Application> =
        Arc::new(imi_engine::witness::CosignatureApp);
    let apps = if me == imi_protocol::NodeId::EU {
        Applications::new(vec![
            Arc::new(DiagnosticApp),
            Arc::new(imi_engine::facts::FactApp),
            witness,
            cosignatures,
        ])
    } else {
        Applications::new(vec![
            Arc::new(DiagnosticApp),
            cases.application(),
            witness,
            cosignatures,
        ])
    };
    let (engine, tasks) = Engine::start(
        identity,
        trust,
        store.clone(),
        client.clone(),
        events,
        apps,
        clock.clone(),
        cfg.engine.clone(),
        cancel.child_token(),
    )?;

    let mut registry = Registry::default();
    engine.metrics().register(&mut registry);
    registry.register(
        "imi_witness_alarms",
        "Checkpoints this node refused to cosign as a witness (split view, rollback, inconsistent), by log node and kind",
        witness_alarms,
    );
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
    let api = imi_api::ApiState::new(engine.clone(), cases.clone(), clock.clone(), governance)?;
    let state = HttpState {
        api,
        tombstones: tombstone_file(&cfg),
        governance,
        engine: engine.clone(),
        registry: Arc::new(registry),
        token_hash: imi_protocol::sha256(token.as_bytes()),
        rss,
        store_memory,
    };
    let handle = axum_server::Handle::new();
    let server = axum_server::bind_rustls(
        cfg.http.listen,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls)),
    )
    .handle(handle.clone())
    .serve(router(state).into_make_service());
    let http_task = tokio::spawn(server);
    if let Some(addr) = handle.listening().await {
        tracing::info!(node = %me, http = %addr, "https listening");
    } else {
        anyhow::bail!("HTTPS listener on {} failed to start", cfg.http.listen);
    }
    // Dial every listed peer now and every 10 s: a peer that was down (or started after us)
    // is reconnected without waiting for traffic, so readiness recovers by itself.
    {
        let client = client.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REDIAL_INTERVAL);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        let _ = client.dial_all().await;
                    }
                }
            }
        });
    }
    // Retention: re-apply erasures (a restored backup must not bring data back), then run
    // the schedule now and every minute.
    let tombstones = tombstone_file(&cfg);
    let re_erased = engine.enforce_tombstones(&tombstones).await?;
    if re_erased > 0 {
        tracing::warn!(cases = re_erased, "erased cases re-erased at start");
    }
    match engine
        .run_retention(&cases, clock.now_ms(), Some(&tombstones))
        .await
    {
        Ok(r) => tracing::info!(
            blocked = r.blocked,
            deleted = r.deleted,
            "retention run at start"
        ),
        Err(e) => tracing::warn!(error = %e, "retention run failed"),
    }
    {
        let engine = engine.clone();
        let cases = cases.clone();
        let clock = clock.clone();
        let cancel = cancel.child_token();
        let tombstones = tombstones.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RETENTION_INTERVAL);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = engine.run_retention(&cases, clock.now_ms(), Some(&tombstones)).await {
                            tracing::warn!(error = %e, "retention run failed");
                        }
                    }
                }
            }
        });
    }
    // Checkpoints of the log, every 10 s when it grew.
    {
        let engine = engine.clone();
        let cancel = cancel.child_token();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = engine.distribute_checkpoint().await {
                            tracing::warn!(error = %e, "checkpoint or witnessing failed");
                        }
                    }
                }
            }
        });
    }
    if let Some(eu) = commission {
        tokio::spawn(imi_engine::facts::run_reporter(
            engine.clone(),
            eu,
            cancel.child_token(),
        ));
    }
    tracing::info!(node = %me, "ready");

    shutdown.cancelled().await;
    tracing::info!(node = %me, "shutting down");
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    let _ = http_task.await;
    cancel.cancel();
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

//! `imi-sim run --scenario NAME`: a federation of real `imi-node` processes on loopback
//! living through a simulated period (by default a reporting year) on a shared scaled clock.
//!
//! 1. The scenario ([`crate::model::Scenario`], `simulations/scenarios/NAME.toml`) names the
//!    members, the directory, the period, the traffic and the faults; the model plans every
//!    case in advance from it, `--scale` and `--seed` ([`crate::model::plan`]).
//! 2. `imi-node federation init` with keys valid from before the period; every node gets the
//!    same `[simulation]` clock (start, anchor, speed: the period's sending window and tail in
//!    `wall_s × scale` seconds), retention evaluated every wall second (so every simulated
//!    few days), prune off (the accounting reads every envelope), redial every wall second.
//!    A scenario with a partition routes every connection through [`proxy`] listeners.
//! 3. Users: one per authority the plan uses, added through each node's operator API.
//! 4. The plan plays through the authorities' API ([`exec`]); faults happen at their
//!    simulated days (a node stopped for a simulated week, a partition that heals, SIGKILLs
//!    with restarts). A progress line shows the simulated date, the cases and the queues.
//! 5. Then: every case finished; every outbox empty; the Commission node holds the final facts
//!    of every case; every node signs a final checkpoint that its witnesses cosign; no
//!    witness alarm; the scoreboard the Commission node computes compared country by country
//!    with the expected map.
//! 6. The nodes stop (SIGTERM) and every store is read ([`crate::torture::verify`]): per node
//!    and kind, sent = receipted = applied, lost = duplicated = 0; every checkpoint a prefix
//!    of its log and cosigned. The summary: envelopes, delivery latency, lost, duplicated,
//!    the scoreboard beside the map, memory and CPU; `--json` prints it as one JSON object.
//! 7. Without `--exit` the nodes start again and serve, with URLs and ready-made users, until
//!    Ctrl-C.
pub mod clock;
pub mod exec;
pub mod proxy;

use crate::federation::{self, Federation, procfs};
use crate::model::{self, Fault, PlannedCase, Scenario};
use crate::torture::traffic::{Client, Endpoint};
use crate::torture::{self, Check, KindRow, check};
use crate::ui::{self, Style};
use anyhow::{Context, Result, anyhow, bail};
use clock::SimTime;
use exec::Exec;
use imi_node::config::ScaledClock;
use imi_protocol::dates::{Date, rfc3339};
use imi_protocol::{Clock, Kind, NodeId, SystemClock};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `imi-sim run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The scenario: a name in simulations/scenarios/ (without .toml) or a file.
    #[arg(long, default_value = "scoreboard-2021")]
    pub scenario: String,
    /// Fraction of the scenario's traffic volume (the same period and shapes).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed of the plan (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Federation directory; removed and recreated (default: data/run/NAME).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// First port: member i gets libp2p port base+2i and HTTPS port base+2i+1; 0 picks free
    /// ports.
    /// The default lies below Linux's ephemeral port range (32768–60999), where no outgoing
    /// connection can hold a node's port while the node is down or restarting.
    #[arg(long, default_value_t = 17000)]
    pub base_port: u16,
    /// Wall seconds of the whole simulated span (period and tail), instead of the scenario's
    /// `wall_s × scale` (at least `min_wall_s`).
    #[arg(long)]
    pub wall_s: Option<f64>,
    /// Most API requests in flight at once.
    #[arg(long, default_value_t = 48)]
    pub concurrency: usize,
    /// Print the summary as one JSON object on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// End after the summary (default: restart the nodes and serve until Ctrl-C).
    #[arg(long)]
    pub exit: bool,
    /// Override a setting in every member's node.toml after the scenario's own
    /// (`--set store.block_cache_bytes=4194304`), e.g. to size the nodes for the machine.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl Default for RunArgs {
    /// The defaults of the command line, except: free ports, and an end after the summary.
    fn default() -> Self {
        Self {
            scenario: "scoreboard-2021".into(),
            scale: 1.0,
            seed: None,
            dir: None,
            base_port: 0,
            wall_s: None,
            concurrency: 48,
            json: false,
            exit: true,
            set: Vec::new(),
        }
    }
}

/// Failure guard of the start and of each final phase (not an expected duration).
const GUARD: Duration = Duration::from_secs(300);

/// How many nodes the drain asks for a final checkpoint at once (each sends it to its
/// eight witnesses): few enough that the checkpoints and their cosignatures are not queued
/// longer than a witness accepts them (about a wall second at the scenarios' speeds; four
/// nodes' checkpoints to all 30 others, 120 envelopes, were when every member witnessed).
const COSIGN_WAVE: usize = 12;
/// How long a node may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// The kinds the accounting covers, and those of them the transparency log holds.
const KINDS: &[&str] = &[
    Kind::REQUEST,
    Kind::FACT,
    Kind::FACTS,
    Kind::NOTIFICATION,
    Kind::ALERT,
    Kind::REPOSITORY_ENTRY,
    Kind::USAGE,
    Kind::USAGES,
    Kind::DIRECTORY_UPDATE,
    Kind::DIRECTORY_SYNC,
    Kind::CHECKPOINT,
    Kind::COSIGNATURE,
];
const LOGGED: &[&str] = &[
    Kind::REQUEST,
    Kind::FACT,
    Kind::FACTS,
    Kind::NOTIFICATION,
    Kind::ALERT,
    Kind::REPOSITORY_ENTRY,
    Kind::USAGE,
    Kind::USAGES,
];

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// What.
    pub fault: String,
    /// Simulated date it started.
    pub at: String,
    /// Wall seconds it lasted.
    pub wall_s: f64,
    /// For a node brought back: wall seconds from its restart to an empty outbox everywhere
    /// for it (recovery).
    pub recovery_s: Option<f64>,
}

/// One country's colours.
#[derive(Debug, Clone, Serialize)]
pub struct CountryColour {
    /// Node id.
    pub country: String,
    /// The Commission node's overall colour.
    pub computed: Option<String>,
    /// The expected map's.
    pub expected: Option<String>,
    /// The score (sum of the five indicators' colours).
    pub score: i64,
}

/// The result of a run (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Traffic fraction.
    pub scale: f64,
    /// Plan seed.
    pub seed: u64,
    /// Simulated ms per wall ms.
    pub speed: f64,
    /// Member nodes.
    pub nodes: usize,
    /// Countries on the scoreboard.
    pub countries: usize,
    /// Cases planned.
    pub cases: usize,
    /// Cases whose every step was answered.
    pub cases_finished: u64,
    /// Notifications sent through the API.
    pub notifications: u64,
    /// Alerts sent through the API.
    pub alerts: u64,
    /// Of those, marked late by their sender's node.
    pub alerts_late: u64,
    /// Repository entries notifications populated.
    pub repository_entries: u64,
    /// Whether the Commission's usage statistics count exactly those (with `EU` and
    /// notifications or alerts in the run).
    pub usage_matches: Option<bool>,
    /// Cases the simulator reached more than 6 simulated hours late and played whole days
    /// later than planned.
    pub cases_shifted: u64,
    /// Cases not played: the simulator fell so far behind the plan that, moved to a later
    /// day, they would have ended after the horizon (the machine needs a longer `--wall-s`).
    pub cases_unplayed: u64,
    /// Deadline proposals played so late that their planned date had passed.
    pub late_proposals: u64,
    /// API steps answered (create included).
    pub steps: u64,
    /// Requests answered "not yet" while a step waited for the one before it to arrive (a
    /// `404` or `409` answer, or a case page without it), polled every 25 ms: load on the
    /// nodes that a user reading the case page less often would not make.
    pub polls: u64,
    /// Envelopes × recipients stored by their senders (every kind accounted).
    pub envelopes: u64,
    /// Per kind.
    pub envelopes_by_kind: BTreeMap<String, u64>,
    /// Envelopes sent but not applied once.
    pub lost: u64,
    /// Envelopes applied more than once or never signed.
    pub duplicated: u64,
    /// Witness envelopes refused `stale` by design (signed days before they could arrive).
    pub stale_witness: u64,
    /// Delivery (signing to the receiver's decision) of request envelopes, wall ms.
    pub delivery_ms: torture::Millis,
    /// How late steps started against the plan, simulated hours.
    pub lateness_h: torture::Millis,
    /// The longest waits of the run (a step's API call, or a step to arrive), longest
    /// first: where a stall was, when the lateness says there was one.
    pub slowest_waits: Vec<exec::SlowWait>,
    /// API requests of the simulator that got no answer (a timeout, a refused or dropped
    /// connection, a node down or restarting, `503`), each sent again with the same
    /// `Idempotency-Key`: beside [`Summary::slowest_waits`], it tells a request that was
    /// lost or timed out from one that was answered late.
    pub unanswered_attempts: u64,
    /// Failed delivery attempts during the simulated period (each retried after a backoff),
    /// from the senders' `imi_delivery_retries_total`.
    pub delivery_retries: u64,
    /// The same per route, `SENDER→DESTINATION` (routes without any left out).
    pub delivery_retries_by_route: BTreeMap<String, u64>,
    /// Wall seconds from the first node's start to the summary.
    pub wall_s: f64,
    /// Wall seconds of the simulated period (traffic and faults).
    pub period_wall_s: f64,
    /// Simulated days played.
    pub simulated_days: f64,
    /// Envelopes per wall second of the simulated period.
    pub envelopes_per_s: f64,
    /// Countries whose colour equals the expected map (with a scoreboard check).
    pub map_matches: Option<usize>,
    /// Per country.
    pub scoreboard: Vec<CountryColour>,
    /// Sum over the nodes of their peak resident memory, MiB.
    pub peak_rss_mib_total: f64,
    /// Largest single node's peak resident memory, MiB.
    pub peak_rss_mib_max: f64,
    /// Each node's peak resident memory (`VmHWM`, sampled every second and before it
    /// stops), MiB.
    pub peak_rss_mib_by_node: BTreeMap<String, f64>,
    /// The nodes' resident memory summed at one instant, the largest such sum (sampled every
    /// second), MiB. Pages the nodes share (the binary's code) count once per node.
    pub peak_rss_mib_together: f64,
    /// The same for proportional set size: shared pages divided among the nodes mapping them,
    /// so this is the memory the nodes take from the machine together, MiB.
    pub peak_pss_mib_together: f64,
    /// CPU seconds of every node process together.
    pub cpu_s: f64,
    /// CPU µs per envelope (the nodes only).
    pub cpu_us_per_envelope: f64,
    /// The faults.
    pub faults: Vec<FaultRecord>,
    /// The invariants.
    pub checks: Vec<Check>,
    /// Per node and kind.
    pub messages: Vec<KindRow>,
}

impl Summary {
    /// Every invariant held (and the map matched, with a scoreboard check).
    pub fn held(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `imi-sim run`; `Ok(false)` if an invariant failed.
pub async fn run_cli(args: &RunArgs) -> Result<bool> {
    let bin = federation::node_binary()?;
    let scenario = Scenario::load(&args.scenario)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data/run").join(scenario.name()));
    let summary = run(&scenario, args, &bin, &dir).await?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(summary.held())
}

/// [`run`] on a runtime of its own (for tests): `scenario` in `dir`, ending after the
/// summary.
pub fn run_blocking(
    scenario: &Scenario,
    args: &RunArgs,
    bin: &Path,
    dir: &Path,
) -> Result<Summary> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(scenario, args, bin, dir))
}

/// Per-node process figures gathered over the run (a node killed or stopped leaves its
/// figures here before its next life starts).
#[derive(Default)]
struct ProcessFigures {
    cpu_ticks_done: u64,
    peak_kib: BTreeMap<NodeId, u64>,
    together: Arc<Together>,
}

/// The largest memory of all the nodes together at one instant, sampled every second
/// (`procfs::memory_together_kib`), in KiB.
#[derive(Default)]
struct Together {
    rss_kib: AtomicU64,
    pss_kib: AtomicU64,
}

impl Together {
    fn sample(&self, marker: &str) {
        let (rss, pss) = procfs::memory_together_kib(marker);
        self.rss_kib.fetch_max(rss, Ordering::Relaxed);
        self.pss_kib.fetch_max(pss, Ordering::Relaxed);
    }

    /// Samples every second until aborted.
    fn spawn_sampler(self: &Arc<Self>, fed: &Federation) -> tokio::task::JoinHandle<()> {
        let together = Arc::clone(self);
        let marker = fed.dir.to_string_lossy().into_owned();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (t, m) = (Arc::clone(&together), marker.clone());
                let _ = tokio::task::spawn_blocking(move || t.sample(&m)).await;
            }
        })
    }
}

impl ProcessFigures {
    fn sample(&mut self, fed: &Federation) {
        for n in &fed.nodes {
            if let Some(kib) = procfs::status_field(n.pid(), "VmHWM") {
                let e = self.peak_kib.entry(n.id).or_default();
                *e = (*e).max(kib);
            }
        }
        self.together.sample(&fed.dir.to_string_lossy());
    }

    /// Before node `id` stops: its CPU so far.
    fn retire(&mut self, fed: &Federation, id: NodeId) {
        self.sample(fed);
        if let Ok(n) = fed.node(id) {
            self.cpu_ticks_done += procfs::cpu_ticks(n.pid()).unwrap_or(0);
        }
    }

    fn cpu_s(&self, fed: &Federation) -> f64 {
        let live: u64 = fed
            .nodes
            .iter()
            .filter_map(|n| procfs::cpu_ticks(n.pid()))
            .sum();
        (self.cpu_ticks_done + live) as f64 / procfs::clk_tck()
    }
}

/// Runs `scenario` in `dir` with the node binary `bin`.
pub async fn run(scenario: &Scenario, args: &RunArgs, bin: &Path, dir: &Path) -> Result<Summary> {
    let st = Style::detect(!args.json);
    let started = Instant::now();
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--scale must be positive");
    }
    let members = scenario.members();
    let seed = args.seed.unwrap_or(scenario.seed());
    let root = repo_root();
    let directory_file = root.join(scenario.directory());
    let directory = imi_node::config::load_directory(&directory_file)?;
    let authorities: Vec<_> = directory.iter().cloned().collect();
    let catalogue = imi_apps::catalogue_files::load_dir(root.join("configs/catalogue"))
        .context("loading the catalogue configs/catalogue")?;
    let plan = model::plan_with_catalogue(scenario, args.scale, seed, &authorities, &catalogue)?;
    let broadcasts = model::plan_broadcasts(scenario, args.scale, seed, &catalogue)?;
    let speed = match args.wall_s {
        Some(w) if w > 0.0 => (scenario.horizon_ms() - scenario.start_ms()) as f64 / (w * 1000.0),
        Some(_) => bail!("--wall-s must be positive"),
        None => scenario.speed(args.scale),
    };
    let n = members.len();
    say(
        args.json,
        &format!(
            "{} — scenario {}: {} nodes, {} cases planned from {} to {} (scale {}, seed {seed}), {:.0}× real time",
            st.bold("IMI federation simulation"),
            scenario.name(),
            n,
            plan.cases.len(),
            rfc3339(scenario.start_ms()).get(..10).unwrap_or(""),
            rfc3339(scenario.horizon_ms()).get(..10).unwrap_or(""),
            args.scale,
            speed
        ),
    );

    // The federation, on a clock that reaches the period's start once the nodes are up.
    let base = if args.base_port == 0 {
        federation::free_base_port(n)?
    } else {
        federation::check_ports_free(args.base_port, n)?;
        args.base_port
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let boot = Duration::from_secs_f64(4.0 + 0.5 * n as f64);
    let lead_ms = (boot.as_secs_f64() * 1000.0 * speed * 1.5) as u64 + 30 * 86_400_000;
    let keys_from = Date::of_ms(scenario.start_ms().saturating_sub(lead_ms)).to_string();
    federation::init_federation_with(
        bin,
        dir,
        &members,
        base,
        &[
            "--directory".into(),
            directory_file.display().to_string(),
            "--keys-valid-from".into(),
            keys_from,
        ],
    )?;
    let p2p = |id: NodeId| {
        let i = members.iter().position(|m| *m == id).unwrap_or(0);
        imi_node::init::ports(base, i).map(|p| p.0).unwrap_or(0)
    };
    let partitions = scenario
        .faults()
        .iter()
        .any(|f| matches!(f, Fault::Partition { .. }));
    let proxies = if partitions {
        Some(proxy::Proxies::start(&members, p2p).await?)
    } else {
        None
    };
    // Scaled until the horizon; the drain and the checks after it run at real speed.
    let clock = ScaledClock {
        start: scenario.start_ms(),
        anchor: SystemClock.now_ms() + boot.as_millis() as u64,
        speed,
        until: scenario.horizon_ms(),
    };
    let time = SimTime { clock };
    federation::override_configs(
        dir,
        &members,
        &[
            format!(
                "simulation={{ start = \"{}\", anchor_ms = {}, speed = {speed}, until = \"{}\" }}",
                rfc3339(clock.start),
                clock.anchor,
                rfc3339(clock.until)
            ),
            // Checkpoints every 30 wall seconds (not 10): each checkpoint is 8 envelopes out
            // to its witnesses and 8 cosignatures back, a third of that traffic. Fact reports
            // every 5 s (not 0.5): a member's reports pending together go in one envelope, so
            // a tenth as many envelopes to the Commission (scale 0.05: 62,330 -> 56,262
            // envelopes in all, node CPU -13 %; BENCHMARKS.md). The end of the run waits for
            // the Commission to hold every case's final facts, however long that takes.
            format!(
                "engine.job_interval_ms={{ prune = 0, redial = 1000, retention = 5000, checkpoint = 30000, fact-report = {FACT_REPORT_MS} }}"
            ),
            "engine.backoff_max_ms=2000".into(),
            // The machine's cores shared among the nodes (one async worker each on two
            // cores), unless `--set` says otherwise.
            federation::shared_cores_setting(members.len()),
        ],
    )?;
    federation::override_configs(dir, &members, &args.set)?;
    if let Some(p) = &proxies {
        for id in &members {
            federation::override_configs(
                dir,
                &[*id],
                &[format!("network.peer_addresses={}", p.peer_addresses(*id))],
            )?;
        }
    }
    let mut fed = Federation::start(bin, dir, &members, base)?;
    let result = simulate(
        scenario,
        args,
        dir,
        &st,
        &mut fed,
        &plan.cases,
        &broadcasts,
        time,
        seed,
        speed,
        proxies.as_ref(),
        started,
    )
    .await;
    match result {
        Ok(summary) => {
            if !args.exit && summary.held() {
                serve(&mut fed, dir, &st, &members, scenario, time).await?;
            } else {
                let _ = fed.stop(STOP_GRACE).await;
            }
            Ok(summary)
        }
        Err(e) => {
            let _ = fed.stop(STOP_GRACE).await;
            Err(e.context(format!(
                "the nodes' logs are in {}",
                dir.join("<ID>").join("node.log").display()
            )))
        }
    }
}

/// How often each member's `fact-report` job runs in a scenario, wall milliseconds (the
/// node's default is 500): see the override in [`run`].
pub const FACT_REPORT_MS: u64 = 5_000;

/// The period's wall seconds that would let a machine which answered `answered` of
/// `planned` API steps in `period_wall_s` play them all, with a fifth to spare, rounded up
/// to 30 s.
fn suggested_wall_s(period_wall_s: f64, answered: u64, planned: u64) -> u64 {
    let needed = period_wall_s * planned as f64 / answered.max(1) as f64 * 1.2;
    ((needed / 30.0).ceil() as u64).max(1) * 30
}

fn say(json: bool, line: &str) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// Adds a user through the operator API of `node`; its token.
async fn add_user(
    fed: &Federation,
    node: NodeId,
    id: &str,
    authority: &str,
    role: &str,
) -> Result<String> {
    let resp = fed
        .client()
        .post(fed.url(node, "/operator/users")?)
        .bearer_auth(fed.operator_token(node)?)
        .json(&json!({"id": id, "authority": authority, "role": role}))
        .send()
        .await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if !status.is_success() {
        bail!("adding user {id} on {node}: HTTP {status}: {v}");
    }
    Ok(v["token"]
        .as_str()
        .ok_or_else(|| anyhow!("no token in {v}"))?
        .to_owned())
}

#[allow(clippy::too_many_arguments)]
async fn simulate(
    scenario: &Scenario,
    args: &RunArgs,
    dir: &Path,
    st: &Style,
    fed: &mut Federation,
    cases: &[PlannedCase],
    broadcasts: &[model::PlannedBroadcast],
    time: SimTime,
    seed: u64,
    speed: f64,
    proxies: Option<&proxy::Proxies>,
    started: Instant,
) -> Result<Summary> {
    let members: Vec<NodeId> = fed.nodes.iter().map(|n| n.id).collect();
    let up = fed.wait_live(GUARD).await?;
    fed.wait_ready(GUARD).await?;
    let mut figures = ProcessFigures::default();

    // Users: one per authority the plan uses, and an auditor per node.
    let mut tokens = HashMap::new();
    let used: BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| {
            [
                c.requester_authority.as_str(),
                c.responder_authority.as_str(),
            ]
        })
        .chain(broadcasts.iter().map(|b| b.authority.as_str()))
        .collect();
    for a in &used {
        let node: NodeId = a
            .split('-')
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("authority {a} of no country"))?;
        let token = add_user(fed, node, &format!("sim-{a}"), a, "authority_user").await?;
        tokens.insert((*a).to_owned(), token);
    }
    let mut endpoints = Vec::new();
    for id in &members {
        endpoints.push(Endpoint {
            id: *id,
            base: fed.url(*id, "")?,
            user: String::new(),
            operator: fed.operator_token(*id)?.to_owned(),
        });
    }
    let late_start = time.now().saturating_sub(scenario.start_ms());
    say(
        args.json,
        &format!(
            "  {} nodes up in {:.1} s, {} users; the simulated clock reaches {} in {:.1} s{}",
            members.len(),
            up.as_secs_f64(),
            used.len(),
            rfc3339(scenario.start_ms()).get(..10).unwrap_or(""),
            time.until(scenario.start_ms()).as_secs_f64(),
            if late_start > 0 {
                format!(
                    " (the nodes came up {:.1} simulated days late)",
                    late_start as f64 / 86_400_000.0
                )
            } else {
                String::new()
            }
        ),
    );
    let bases: BTreeMap<NodeId, String> =
        endpoints.iter().map(|e| (e.id, e.base.clone())).collect();
    let exec = Arc::new(Exec::new(
        &dir.join("ca.crt"),
        bases,
        tokens,
        time,
        scenario.horizon_ms(),
        args.concurrency,
        format!("{seed}"),
    )?);
    let client = Client::new(&dir.join("ca.crt"), endpoints, seed)?;

    // The period: the dispatcher starts each case shortly before its time, faults happen
    // at their days, a progress line every second.
    time.sleep_until(scenario.start_ms()).await;
    let period_start = Instant::now();
    let metric_urls: Vec<(NodeId, String)> = members
        .iter()
        .filter_map(|m| fed.url(*m, "/metrics").ok().map(|u| (*m, u)))
        .collect();
    let retries_before = {
        let (http, urls) = (fed.client().clone(), metric_urls.clone());
        tokio::spawn(async move { delivery_retries(&http, &urls).await })
    };
    let shared: Vec<Arc<PlannedCase>> = cases.iter().cloned().map(Arc::new).collect();
    let dispatcher = {
        let exec = exec.clone();
        tokio::spawn(async move {
            let mut handles = Vec::with_capacity(shared.len());
            for c in shared {
                // Half a simulated hour ahead: the task then waits for the exact instant.
                time.sleep_until(c.sent_ms.saturating_sub(1_800_000)).await;
                handles.push(tokio::spawn(exec.clone().play(c)));
            }
            for h in handles {
                let _ = h.await;
            }
        })
    };
    // Notifications and alerts, each at its time.
    let broadcaster = {
        let exec = exec.clone();
        let shared: Vec<Arc<model::PlannedBroadcast>> =
            broadcasts.iter().cloned().map(Arc::new).collect();
        tokio::spawn(async move {
            let mut handles = Vec::with_capacity(shared.len());
            for b in shared {
                time.sleep_until(b.at_ms.saturating_sub(1_800_000)).await;
                handles.push(tokio::spawn(exec.clone().broadcast(b)));
            }
            for h in handles {
                let _ = h.await;
            }
        })
    };
    let progress = {
        let exec = exec.clone();
        let total = cases.len() as u64;
        let horizon = scenario.horizon_ms();
        let start = scenario.start_ms();
        let tty = st.is_color();
        let http = fed.client().clone();
        let metrics = metric_urls.clone();
        tokio::spawn(async move {
            let mut last_print = Instant::now();
            let mut last_queues = Instant::now() - Duration::from_secs(10);
            let mut queues = String::new();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if last_queues.elapsed() >= Duration::from_secs(2) {
                    queues = queue_health(&http, &metrics).await;
                    last_queues = Instant::now();
                }
                let p = &exec.progress;
                let line = format!(
                    "  {} │ {} │ created {}/{total} │ finished {} │ failed {} │ steps {} │ {queues}",
                    rfc3339(time.now().min(horizon)).get(..10).unwrap_or(""),
                    bar(time.now().saturating_sub(start), horizon - start, 24),
                    p.created.load(Ordering::Relaxed),
                    p.finished.load(Ordering::Relaxed),
                    p.failed.load(Ordering::Relaxed),
                    p.steps.load(Ordering::Relaxed),
                );
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else if last_print.elapsed() >= Duration::from_secs(5) {
                    eprintln!("{line}");
                    last_print = Instant::now();
                }
            }
        })
    };
    let memory = figures.together.spawn_sampler(fed);
    let faults = play_faults(scenario, fed, time, proxies, &mut figures).await;
    let dispatched = dispatcher.await;
    let broadcast = broadcaster.await;
    progress.abort();
    memory.abort();
    if st.is_color() {
        eprintln!();
    }
    let faults = faults?;
    dispatched.map_err(|e| anyhow!("the dispatcher failed: {e}"))?;
    broadcast.map_err(|e| anyhow!("the broadcaster failed: {e}"))?;
    time.sleep_until(scenario.horizon_ms()).await;
    let period_wall_s = period_start.elapsed().as_secs_f64();
    let retries = {
        let before = retries_before.await.unwrap_or_default();
        let after = delivery_retries(fed.client(), &metric_urls).await;
        let mut by_route = BTreeMap::new();
        for (route, n) in after {
            // A node restarted by a fault counts from zero again: its count since then.
            let since = match before.get(&route) {
                Some(b) if *b <= n => n - b,
                _ => n,
            };
            if since > 0 {
                by_route.insert(route, since);
            }
        }
        by_route
    };
    let steps_in_period = exec.progress.steps.load(Ordering::Relaxed);
    let simulated_days = (time.now() - scenario.start_ms()) as f64 / 86_400_000.0;
    figures.sample(fed);

    // Drained, reported, cosigned.
    let t = Instant::now();
    let mut checks = Vec::new();
    let (finished, failed) = {
        let p = &exec.progress;
        (
            p.finished.load(Ordering::Relaxed),
            p.failed.load(Ordering::Relaxed),
        )
    };
    let errors = exec
        .ledger
        .lock()
        .map(|l| l.errors.clone())
        .unwrap_or_default();
    let unplayed = exec.progress.unplayed.load(Ordering::Relaxed);
    let behind = if unplayed > 0 {
        let planned_steps =
            cases.iter().map(|c| 1 + c.steps.len() as u64).sum::<u64>() + broadcasts.len() as u64;
        Some(format!(
            "{unplayed} cases not played: the simulator fell up to {:.0} simulated days behind the plan, and they would have ended after the horizon. This machine answered {steps_in_period} API steps in the {period_wall_s:.0} s of the period, of {planned_steps} planned; --wall-s {} or more would give it the time",
            exec.progress.unplayed_lag_ms.load(Ordering::Relaxed) as f64 / 86_400_000.0,
            suggested_wall_s(period_wall_s, steps_in_period, planned_steps)
        ))
    } else {
        None
    };
    check(
        &mut checks,
        "client.every_step_answered",
        errors
            .into_iter()
            .chain(behind)
            .chain((finished + unplayed != cases.len() as u64).then(|| {
                format!(
                    "{finished} of {} cases finished ({failed} failed)",
                    cases.len()
                )
            }))
            .collect(),
        format!(
            "{} cases, every step answered through the API as documented",
            cases.len()
        ),
    );
    torture::wait_for("every outbox empty", GUARD, || async {
        Ok((torture::queued(fed).await? == 0.0).then_some(()))
    })
    .await?;
    let drained_s = t.elapsed().as_secs_f64();
    let eu = members.contains(&NodeId::EU);
    if eu {
        let expected = exec.finals.lock().map_err(|_| anyhow!("poisoned"))?.clone();
        torture::wait_for(
            "the Commission node holds every case's final facts",
            GUARD,
            || async {
                let missing = missing_facts(fed, &expected).await?;
                Ok((missing == 0).then_some(()))
            },
        )
        .await?;
    }
    // The Commission's usage statistics count every notification and alert sent (from the
    // senders' usage facts), and the late alerts.
    let sent = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let one_to_many = (
        sent(&exec.progress.notifications),
        sent(&exec.progress.alerts),
        sent(&exec.progress.alerts_late),
        sent(&exec.progress.entries),
    );
    let mut usage_matches = None;
    if eu && !broadcasts.is_empty() {
        let url = format!(
            "{}/api/v1/scoreboard/usage?from={}&to={}",
            fed.url(NodeId::EU, "")?,
            rfc3339(scenario.start_ms()).get(..10).unwrap_or(""),
            rfc3339(scenario.horizon_ms() + 86_400_000)
                .get(..10)
                .unwrap_or("")
        );
        let counted = |v: &Value| {
            let n = |k: &str| v["totals"][k].as_u64().unwrap_or(0);
            let late: u64 = v["countries"]
                .as_object()
                .map(|m| m.values().filter_map(|c| c["alerts_late"].as_u64()).sum())
                .unwrap_or(0);
            (n("notification"), n("alert"), late, n("repository_entry"))
        };
        let http = fed.client().clone();
        let last = Arc::new(std::sync::Mutex::new(None));
        let got = torture::wait_for(
            "the Commission counts every notification and alert",
            GUARD,
            || {
                let (http, url, last) = (http.clone(), url.clone(), last.clone());
                async move {
                    let v: Value = http.get(&url).send().await?.json().await?;
                    let c = counted(&v);
                    if let Ok(mut l) = last.lock() {
                        *l = Some(c);
                    }
                    Ok((c == one_to_many).then_some(v))
                }
            },
        )
        .await;
        let problems = match got {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!(
                "{e:#}: counted (notifications, alerts, late, entries) {:?}, sent {one_to_many:?}",
                last.lock().ok().and_then(|l| *l)
            )],
        };
        usage_matches = Some(problems.is_empty());
        check(
            &mut checks,
            "usage.commission_counts",
            problems,
            format!(
                "the Commission counted the {} notifications, {} alerts ({} late) and {} register entries sent",
                one_to_many.0, one_to_many.1, one_to_many.2, one_to_many.3
            ),
        );
    }
    let facts_s = t.elapsed().as_secs_f64();
    // Retention on every node up to the horizon, now. Its job runs every 5 wall seconds,
    // and the drain may be over sooner than that after the clock slowed to real speed: the
    // cases that fell due in the job's last interval before the horizon (16 simulated days
    // at the usual speed) would then be blocked after the final checkpoints, each block a
    // log leaf no checkpoint covers. From here on nothing falls due (real speed).
    torture::post_every_node(&client, "/operator/retention/run").await?;
    torture::post_every_node(&client, "/operator/audit/checkpoint").await?;
    // Every node's last checkpoint cosigned by its witnesses (the members after it in the
    // ring of member ids, `engine.witnesses`). A checkpoint envelope that
    // waited in a queue for more than half the pruning age on the simulated clock (a wall
    // second or so) is refused `stale` by its witness; a node sends its checkpoint again,
    // in a fresh envelope, to the witnesses that have not cosigned it yet whenever asked.
    // Reading a bundle signs a checkpoint of the log as it is, and the periodic checkpoint
    // job keeps signing: this ends at a pass that finds every node's latest checkpoint
    // cosigned (the clock runs at real speed past the horizon, so retention no longer adds
    // leaves faster than checkpoints are cosigned). Nodes lacking are asked a few at a time:
    // all 31 at once put their checkpoints and cosignatures in the queues together, longer
    // than a witness accepts them.
    let want = torture::witness_count(&members);
    let cosign_start = Instant::now();
    let mut bundles: BTreeMap<usize, Value>;
    loop {
        bundles = BTreeMap::new();
        let mut lacking = Vec::new();
        for i in 0..client.nodes().len() {
            let (bundle, done) = torture::cosigned_by_its_witnesses(&client, i).await?;
            if done {
                bundles.insert(i, bundle);
            } else {
                lacking.push(i);
            }
        }
        if lacking.is_empty() && torture::queued(fed).await? == 0.0 {
            break;
        }
        if cosign_start.elapsed() > GUARD {
            bail!(
                "every node's last checkpoint cosigned by its witnesses: not within {} s",
                GUARD.as_secs()
            );
        }
        if lacking.is_empty() {
            // Every checkpoint cosigned, envelopes still queued: wait for them to drain
            // before the next pass instead of polling 31 bundles back to back.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for wave in lacking.chunks(COSIGN_WAVE) {
            for &i in wave {
                let nd = &client.nodes()[i];
                client
                    .post(i, "/operator/audit/checkpoint", &nd.operator, &json!({}))
                    .await?;
            }
            let asked = Instant::now();
            let mut waiting = wave.to_vec();
            while !waiting.is_empty() && asked.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut still = Vec::new();
                for i in waiting {
                    if !torture::cosigned_by_its_witnesses(&client, i).await?.1 {
                        still.push(i);
                    }
                }
                waiting = still;
            }
        }
    }
    let mut alarm_problems = Vec::new();
    for id in &members {
        let m = fed.metrics(*id).await?;
        for (series, v) in m.iter().filter(|(k, v)| {
            (k.starts_with("imi_witness_alarms_total") || k.starts_with("imi_fact_alarms_total"))
                && **v > 0.0
        }) {
            alarm_problems.push(format!("{id}: {series} = {v}"));
        }
    }
    check(
        &mut checks,
        "alarms.none",
        alarm_problems,
        "no witness alarm, no fact report refused as forged or impossible (/metrics)".into(),
    );
    let governance = imi_node::keyfile::read_public32(&dir.join("governance.pub"))?;
    let mut bundle_problems = Vec::new();
    for (&i, bundle) in &bundles {
        for p in torture::verify_bundle(bundle, governance, want) {
            bundle_problems.push(format!("{}: {p}", client.nodes()[i].id));
        }
    }
    check(
        &mut checks,
        "bundles.final_checkpoints",
        bundle_problems,
        format!(
            "every node's final checkpoint verifies offline with its {want} witnesses' cosignatures"
        ),
    );
    say(
        args.json,
        &format!(
            "  drained: every outbox empty ({drained_s:.1} s), the Commission's facts complete ({:.1} s), final checkpoints cosigned ({:.1} s)",
            facts_s - drained_s,
            t.elapsed().as_secs_f64() - facts_s
        ),
    );

    // The scoreboard.
    let mut scoreboard = Vec::new();
    let mut map_matches = None;
    if let Some(sc) = scenario.scoreboard() {
        let expected = model::expected_map(sc)?;
        let url = format!(
            "{}/api/v1/scoreboard?period={}",
            fed.url(NodeId::EU, "")?,
            sc.period
        );
        let board: Value = fed.client().get(&url).send().await?.json().await?;
        let mut matches = 0;
        let mut problems = Vec::new();
        for c in board["countries"].as_array().cloned().unwrap_or_default() {
            let country = c["country"].as_str().unwrap_or("").to_owned();
            let computed = c["overall"].as_str().map(str::to_owned);
            let want = expected.get(&country).map(|c| c.as_str().to_owned());
            if computed.is_some() && computed == want {
                matches += 1;
            } else if want.is_some() {
                problems.push(format!(
                    "{country}: computed {}, the map says {}",
                    computed.as_deref().unwrap_or("none"),
                    want.as_deref().unwrap_or("none")
                ));
            }
            scoreboard.push(CountryColour {
                country,
                computed,
                expected: want,
                score: c["score"].as_i64().unwrap_or(0),
            });
        }
        check(
            &mut checks,
            "scoreboard.map",
            problems,
            format!(
                "the Commission node's overall colour of all {matches} countries equals the map"
            ),
        );
        map_matches = Some(matches);
        let page = fed
            .client()
            .get(format!(
                "{}/scoreboard?period={}",
                fed.url(NodeId::EU, "")?,
                sc.period
            ))
            .send()
            .await?
            .text()
            .await?;
        std::fs::write(dir.join("scoreboard.html"), page)?;
    }

    // Stop, then read every store.
    figures.sample(fed);
    let cpu_s = figures.cpu_s(fed);
    let reports = fed.stop(STOP_GRACE).await;
    check(
        &mut checks,
        "nodes.clean_shutdown",
        reports
            .iter()
            .filter(|r| !r.clean())
            .map(|r| format!("{}: {:?}, killed {}", r.id, r.status, r.killed))
            .collect(),
        "every node exited 0 on SIGTERM at the end".into(),
    );
    let ledger = std::mem::take(&mut *exec.ledger.lock().map_err(|_| anyhow!("poisoned"))?);
    let polls = ledger.waits;
    let unanswered_attempts = ledger.unanswered_attempts;
    let findings = torture::verify::analyse_kinds(dir, &members, &ledger, KINDS, LOGGED)?;
    checks.extend(findings.checks);
    let envelopes: u64 = findings.rows.iter().map(|r| r.sent).sum();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for r in &findings.rows {
        *by_kind.entry(r.kind.clone()).or_default() += r.sent;
    }
    let delivery: Vec<f64> = findings
        .delivery_ms
        .get(Kind::REQUEST)
        .map(|v| v.iter().map(|d| *d as f64 / speed).collect())
        .unwrap_or_default();
    let lateness: Vec<f64> = exec
        .lateness
        .lock()
        .map(|v| v.iter().map(|ms| *ms as f64 / 3_600_000.0).collect())
        .unwrap_or_default();
    let peak_by_node: BTreeMap<String, f64> = figures
        .peak_kib
        .iter()
        .map(|(n, k)| (n.to_string(), crate::bench::round(*k as f64 / 1024.0, 1)))
        .collect();
    let summary = Summary {
        scenario: scenario.name().to_owned(),
        scale: args.scale,
        seed,
        speed: crate::bench::round(speed, 0),
        nodes: members.len(),
        countries: members.iter().filter(|m| **m != NodeId::EU).count(),
        cases: cases.len(),
        cases_finished: finished,
        notifications: one_to_many.0,
        alerts: one_to_many.1,
        alerts_late: one_to_many.2,
        repository_entries: one_to_many.3,
        usage_matches,
        cases_shifted: exec.progress.shifted.load(Ordering::Relaxed),
        cases_unplayed: unplayed,
        late_proposals: exec.progress.late_proposals.load(Ordering::Relaxed),
        steps: exec.progress.steps.load(Ordering::Relaxed),
        polls,
        envelopes,
        envelopes_by_kind: by_kind,
        lost: findings.rows.iter().map(|r| r.lost).sum(),
        duplicated: findings.rows.iter().map(|r| r.duplicated).sum(),
        stale_witness: findings.rows.iter().map(|r| r.stale).sum(),
        delivery_ms: torture::Millis::of(&delivery),
        lateness_h: torture::Millis::of(&lateness),
        unanswered_attempts,
        slowest_waits: std::mem::take(&mut *exec.slowest.lock().map_err(|_| anyhow!("poisoned"))?),
        delivery_retries: retries.values().sum(),
        delivery_retries_by_route: retries,
        wall_s: crate::bench::round(started.elapsed().as_secs_f64(), 1),
        period_wall_s: crate::bench::round(period_wall_s, 1),
        simulated_days: crate::bench::round(simulated_days, 1),
        envelopes_per_s: crate::bench::round(envelopes as f64 / period_wall_s.max(0.001), 1),
        map_matches,
        scoreboard,
        // From the figures by node as published, so that they add up to the total.
        peak_rss_mib_total: crate::bench::round(peak_by_node.values().sum(), 1),
        peak_rss_mib_max: peak_by_node.values().copied().fold(0.0, f64::max),
        peak_rss_mib_by_node: peak_by_node,
        peak_rss_mib_together: crate::bench::round(
            figures.together.rss_kib.load(Ordering::Relaxed) as f64 / 1024.0,
            1,
        ),
        peak_pss_mib_together: crate::bench::round(
            figures.together.pss_kib.load(Ordering::Relaxed) as f64 / 1024.0,
            1,
        ),
        cpu_s: crate::bench::round(cpu_s, 1),
        cpu_us_per_envelope: crate::bench::round(cpu_s * 1e6 / envelopes.max(1) as f64, 0),
        faults,
        checks,
        messages: findings.rows,
    };
    if !args.json {
        print_summary(st, &summary);
    }
    Ok(summary)
}

/// Every node's `/metrics`, read at once and parsed (`None` for a node that did not answer
/// within `timeout`).
async fn scrape_all(
    http: &reqwest::Client,
    nodes: &[(NodeId, String)],
    timeout: Duration,
) -> Vec<(NodeId, Option<BTreeMap<String, f64>>)> {
    let reads = nodes.iter().map(|(id, url)| async move {
        let text = async {
            http.get(url)
                .timeout(timeout)
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()
        }
        .await;
        (*id, text.map(|t| federation::parse_metrics(&t)))
    });
    futures::future::join_all(reads).await
}

/// Every node's failed delivery attempts so far (`imi_delivery_retries_total`), per route
/// `SENDER→DESTINATION`; a node that does not answer is left out.
async fn delivery_retries(
    http: &reqwest::Client,
    nodes: &[(NodeId, String)],
) -> BTreeMap<String, u64> {
    let mut routes = BTreeMap::new();
    for (id, metrics) in scrape_all(http, nodes, Duration::from_secs(10)).await {
        if let Some(m) = metrics {
            routes.extend(retries_of(id, &m));
        }
    }
    routes
}

/// The routes out of `id` and their failed delivery attempts, from its parsed `/metrics`.
fn retries_of(
    id: NodeId,
    metrics: &BTreeMap<String, f64>,
) -> impl Iterator<Item = (String, u64)> + '_ {
    metrics.iter().filter_map(move |(series, v)| {
        let peer = series
            .strip_prefix("imi_delivery_retries_total{peer=\"")?
            .strip_suffix("\"}")?;
        // A counter's value: a whole number.
        Some((format!("{id}→{peer}"), *v as u64))
    })
}

/// The outboxes of every node: envelopes queued in all, and the node with the most (a node
/// that does not answer, e.g. down for a fault, is named as such).
async fn queue_health(http: &reqwest::Client, nodes: &[(NodeId, String)]) -> String {
    let depths: Vec<(NodeId, Option<f64>)> = scrape_all(http, nodes, Duration::from_secs(2))
        .await
        .into_iter()
        .map(|(id, metrics)| {
            let depth = metrics.map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("imi_outbox_queue_depth{"))
                    .map(|(_, v)| *v)
                    .sum::<f64>()
            });
            (id, depth)
        })
        .collect();
    let total: f64 = depths.iter().filter_map(|(_, d)| *d).sum();
    let down: Vec<&str> = depths
        .iter()
        .filter(|(_, d)| d.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    let worst = depths
        .iter()
        .filter_map(|(id, d)| d.map(|d| (id, d)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let mut out = format!("queued {total:.0}");
    if let Some((id, d)) = worst.filter(|(_, d)| *d > 0.0) {
        out.push_str(&format!(" (most {id} {d:.0})"));
    }
    if !down.is_empty() {
        out.push_str(&format!(" │ down {}", down.join(",")));
    }
    out
}

/// `width` characters of progress bar for `done` of `total`.
fn bar(done: u64, total: u64, width: usize) -> String {
    let frac = (done as f64 / total.max(1) as f64).clamp(0.0, 1.0);
    let full = (frac * width as f64) as usize;
    format!(
        "{}{}",
        "█".repeat(full),
        "░".repeat(width.saturating_sub(full))
    )
}

/// How many finished cases' final facts the Commission node does not hold yet.
async fn missing_facts(
    fed: &Federation,
    expected: &BTreeMap<String, exec::FinalFact>,
) -> Result<usize> {
    let text = fed
        .client()
        .get(fed.url(NodeId::EU, "/api/v1/scoreboard/facts")?)
        .send()
        .await?
        .text()
        .await?;
    let mut held = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: imi_scoreboard::Fact = serde_json::from_str(line)?;
        held.insert(f.case.clone(), exec::FinalFact::of(&f));
    }
    Ok(expected
        .iter()
        .filter(|(id, want)| held.get(*id) != Some(*want))
        .count())
}

/// Plays the scenario's faults at their simulated days.
async fn play_faults(
    scenario: &Scenario,
    fed: &mut Federation,
    time: SimTime,
    proxies: Option<&proxy::Proxies>,
    figures: &mut ProcessFigures,
) -> Result<Vec<FaultRecord>> {
    const DAY: f64 = 86_400_000.0;
    let at = |day: f64| scenario.start_ms() + (day * DAY) as u64;
    let mut out = Vec::new();
    for f in scenario.faults() {
        match f {
            Fault::Down { node, at_day, days } => {
                time.sleep_until(at(*at_day)).await;
                let t = Instant::now();
                figures.retire(fed, *node);
                let report = fed.terminate(*node, STOP_GRACE).await?;
                if !report.clean() {
                    bail!("{node} did not stop cleanly on SIGTERM: {report:?}");
                }
                time.sleep_until(at(at_day + days)).await;
                fed.restart(*node)?;
                let back = Instant::now();
                torture::wait_reconnected(fed, *node, GUARD).await?;
                // Recovery: until no node has anything queued for it and it has nothing
                // queued.
                let recovery = torture::wait_for("the node's queues drained", GUARD, || async {
                    Ok((queued_involving(fed, *node).await? == 0.0).then_some(()))
                })
                .await;
                out.push(FaultRecord {
                    fault: format!("{node} down for {days} simulated days"),
                    at: rfc3339(at(*at_day)).get(..10).unwrap_or("").to_owned(),
                    wall_s: crate::bench::round(t.elapsed().as_secs_f64(), 1),
                    recovery_s: recovery
                        .ok()
                        .map(|()| crate::bench::round(back.elapsed().as_secs_f64(), 2)),
                });
            }
            Fault::Partition { a, b, at_day, days } => {
                let p = proxies.ok_or_else(|| anyhow!("partition without proxies"))?;
                time.sleep_until(at(*at_day)).await;
                let t = Instant::now();
                p.partition(a, b);
                time.sleep_until(at(at_day + days)).await;
                p.heal();
                out.push(FaultRecord {
                    fault: format!(
                        "partition {} | {} for {days} simulated days",
                        join(a),
                        join(b)
                    ),
                    at: rfc3339(at(*at_day)).get(..10).unwrap_or("").to_owned(),
                    wall_s: crate::bench::round(t.elapsed().as_secs_f64(), 1),
                    recovery_s: None,
                });
            }
            Fault::Kill { node, at_days } => {
                for day in at_days {
                    time.sleep_until(at(*day)).await;
                    let t = Instant::now();
                    figures.retire(fed, *node);
                    fed.kill(*node)?;
                    fed.restart(*node)?;
                    torture::wait_reconnected(fed, *node, GUARD).await?;
                    out.push(FaultRecord {
                        fault: format!("{node} killed (SIGKILL) and restarted"),
                        at: rfc3339(at(*day)).get(..10).unwrap_or("").to_owned(),
                        wall_s: crate::bench::round(t.elapsed().as_secs_f64(), 2),
                        recovery_s: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn join(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Outbox entries queued for `id` on every node, and on `id` itself.
async fn queued_involving(fed: &Federation, id: NodeId) -> Result<f64> {
    let peer = format!("\"{id}\"");
    torture::queued_where(fed, |node, series| node == id || series.contains(&peer)).await
}

fn colour_text(st: &Style, c: Option<&str>) -> String {
    match c {
        Some("green") => st.green("green "),
        Some("yellow") => st.yellow("yellow"),
        Some("red") => st.red("red   "),
        _ => "–     ".to_owned(),
    }
}

fn print_summary(st: &Style, s: &Summary) {
    println!();
    println!("{}", st.bold("Summary"));
    println!(
        "  {} cases ({} finished, {} moved to a later day because the simulator was late), {} API steps; {:.0} simulated days in {:.0} s ({:.0}× real time)",
        s.cases,
        s.cases_finished,
        s.cases_shifted,
        s.steps,
        s.simulated_days,
        s.period_wall_s,
        s.speed
    );
    if s.cases_unplayed > 0 {
        println!(
            "  {}",
            st.red(&format!(
                "{} cases not played: the simulator fell too far behind the plan (see the check client.every_step_answered)",
                s.cases_unplayed
            ))
        );
    }
    if s.notifications + s.alerts > 0 {
        let counted = match s.usage_matches {
            Some(true) => st.green("the Commission counted each"),
            Some(false) => st.red("the Commission's counts differ"),
            None => "no Commission node".to_owned(),
        };
        println!(
            "  {} notifications ({} populated the euro-cash register), {} alerts ({} late); {counted}",
            s.notifications, s.repository_entries, s.alerts, s.alerts_late
        );
    }
    let kinds: Vec<String> = s
        .envelopes_by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "  envelopes: {} ({}), {:.0}/s",
        s.envelopes,
        kinds.join(", "),
        s.envelopes_per_s
    );
    println!(
        "  delivery of request envelopes (signed → receiver's signed receipt): p50 {} ms, p99 {} ms",
        ui::ms3(s.delivery_ms.p50),
        ui::ms3(s.delivery_ms.p99)
    );
    println!(
        "  steps started against the plan: p50 {:.1}, p99 {:.1}, max {:.1} simulated hours late",
        s.lateness_h.p50, s.lateness_h.p99, s.lateness_h.max
    );
    let waits: Vec<String> = s
        .slowest_waits
        .iter()
        .take(3)
        .map(|w| {
            format!(
                "{:.1} s on {} ({}, from {})",
                w.wall_s,
                w.node,
                w.what,
                w.began.get(..16).unwrap_or(&w.began)
            )
        })
        .collect();
    if !waits.is_empty() {
        println!(
            "  longest waits: {} ({} API requests got no answer and were sent again)",
            waits.join("; "),
            s.unanswered_attempts
        );
    }
    let busiest = s
        .delivery_retries_by_route
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(route, n)| format!(" (most {route}: {n})"))
        .unwrap_or_default();
    println!(
        "  failed delivery attempts in the period, each retried: {}{busiest}",
        s.delivery_retries
    );
    let lost = if s.lost == 0 {
        st.green("0")
    } else {
        st.red(&s.lost.to_string())
    };
    let dup = if s.duplicated == 0 {
        st.green("0")
    } else {
        st.red(&s.duplicated.to_string())
    };
    let stale = if s.stale_witness > 0 {
        format!(
            " ({} witness envelopes refused stale after a partition or outage, superseded by later checkpoints)",
            s.stale_witness
        )
    } else {
        String::new()
    };
    println!("  lost {lost}, duplicated {dup}{stale}");
    println!(
        "  memory: peak RSS {:.0} MiB for the {} nodes together (each node's peak, summed; largest {:.0} MiB, {}); at one instant at most RSS {:.0} MiB, PSS {:.0} MiB (shared code counted once); CPU {:.0} s ({:.0} µs per envelope)",
        s.peak_rss_mib_total,
        s.nodes,
        s.peak_rss_mib_max,
        s.peak_rss_mib_by_node
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or("", |(n, _)| n.as_str()),
        s.peak_rss_mib_together,
        s.peak_pss_mib_together,
        s.cpu_s,
        s.cpu_us_per_envelope
    );
    for f in &s.faults {
        println!(
            "  fault: {} at {} ({:.1} s{})",
            f.fault,
            f.at,
            f.wall_s,
            f.recovery_s
                .map(|r| format!(", queues drained {r:.1} s after the restart"))
                .unwrap_or_default()
        );
    }
    if !s.scoreboard.is_empty() {
        println!();
        println!(
            "  {}",
            st.bold("Scoreboard computed by the Commission node, beside the 2021 map")
        );
        for row in s.scoreboard.chunks(3) {
            let cells: Vec<String> = row
                .iter()
                .map(|c| {
                    let mark = if c.computed.is_some() && c.computed == c.expected {
                        st.green("✓")
                    } else {
                        st.red("✗")
                    };
                    format!(
                        "{} {} {:>+2} {}  map {}",
                        c.country,
                        colour_text(st, c.computed.as_deref()),
                        c.score,
                        mark,
                        colour_text(st, c.expected.as_deref())
                    )
                })
                .collect();
            println!("    {}", cells.join("   "));
        }
        if let Some(m) = s.map_matches {
            println!("  map matches: {m} of {}", s.countries);
        }
    }
    println!();
    for c in &s.checks {
        let mark = if c.ok {
            st.green("PASS")
        } else {
            st.red("FAIL")
        };
        println!("  {mark} {:<28} {}", c.name, c.detail);
    }
}

/// Restarts the nodes and serves until Ctrl-C, printing where.
async fn serve(
    fed: &mut Federation,
    dir: &Path,
    st: &Style,
    members: &[NodeId],
    scenario: &Scenario,
    time: SimTime,
) -> Result<()> {
    // From here on time runs at its normal pace, from where the simulation left it, so that
    // what a user tries by hand keeps its dates (and retention does not sweep it away).
    let now = time.now();
    federation::override_configs(
        dir,
        members,
        &[format!(
            "simulation={{ start = \"{}\", anchor_ms = {}, speed = 1.0 }}",
            rfc3339(now),
            SystemClock.now_ms()
        )],
    )?;
    for id in members {
        fed.restart(*id)?;
    }
    fed.wait_live(GUARD).await?;
    println!();
    println!(
        "{}",
        st.bold(&format!(
            "The federation is running, its clock now at normal speed from {} (Ctrl-C stops it)",
            rfc3339(now).get(..10).unwrap_or("")
        ))
    );
    if let Some(sc) = scenario.scoreboard() {
        println!(
            "  scoreboard: {}/scoreboard?period={}   (also written to {})",
            fed.url(NodeId::EU, "")?,
            sc.period,
            dir.join("scoreboard.html").display()
        );
    }
    let mut users = Vec::new();
    for id in members.iter().filter(|m| **m != NodeId::EU).take(3) {
        let token = add_user(fed, *id, "demo", &format!("{id}-NC"), "authority_user").await?;
        users.push((*id, token));
    }
    for (id, token) in &users {
        println!(
            "  {id}: {}  user demo ({id}-NC), token {token}",
            fed.url(*id, "")?
        );
    }
    if let Some((id, _)) = users.first() {
        println!(
            "  web application: {}/web/   (sign in with a token above; the certificate is the federation's own CA, {})",
            fed.url(*id, "")?,
            dir.join("ca.crt").display()
        );
    }
    if let Some((id, token)) = users.first() {
        println!(
            "  try: curl --cacert {} -H 'Authorization: Bearer {token}' {}/api/v1/requests?limit=5",
            dir.join("ca.crt").display(),
            fed.url(*id, "")?
        );
    }
    println!(
        "  users of other nodes: imi-node users add --config {}/<ID>/node.toml --id NAME --authority <ID>-NC --role authority_user",
        dir.display()
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    let _ = fed.stop(STOP_GRACE).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{NodeId, retries_of, suggested_wall_s};
    use std::collections::BTreeMap;

    #[test]
    fn failed_deliveries_are_read_per_route() {
        let text = "# TYPE imi_delivery_retries counter\n\
            imi_delivery_retries_total{peer=\"PT\"} 12\n\
            imi_delivery_retries_total{peer=\"EU\"} 0\n\
            imi_delivered_total{peer=\"PT\"} 40\n\
            imi_store_synced_commits_total 9\n# EOF\n";
        let routes: BTreeMap<String, u64> =
            retries_of(NodeId::DE, &crate::federation::parse_metrics(text)).collect();
        assert_eq!(
            routes,
            BTreeMap::from([("DE→EU".to_owned(), 0), ("DE→PT".to_owned(), 12)])
        );
    }

    #[test]
    fn the_suggested_wall_time_gives_the_steps_the_machine_did_not_reach() {
        // Half the planned steps in 150 s: 300 s, a fifth more, 360 s.
        assert_eq!(suggested_wall_s(150.0, 50_000, 100_000), 360);
        // Rounded up to 30 s, never zero.
        assert_eq!(suggested_wall_s(100.0, 99_000, 100_000), 150);
        assert_eq!(suggested_wall_s(0.0, 0, 0), 30);
    }
}

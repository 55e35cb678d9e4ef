//! `imi-sim torture`: five real nodes under steady request traffic, a random node killed
//! with SIGKILL every few seconds and restarted on the same data directory and ports; at the
//! end every message is accounted for, per node and kind, and every checkpoint is checked.
//!
//! 1. `federation init` for `--nodes` member states; every node's `checkpoint` job runs every
//!    `--checkpoint-ms` (default 1 s instead of 10 s, so that kills land while checkpoints
//!    are signed, sent, cosigned and answered); every other setting is the default.
//! 2. Traffic ([`traffic`]): cases at `--rate` per second between random pairs (each a
//!    whole lifecycle through the authorities' API, every step idempotent), diagnostics at
//!    `--diag-rate` per second through the operator API.
//! 3. `--kills` times: wait a random `[interval/2, 3·interval/2]`, SIGKILL a random node,
//!    leave it down a random `[0, interval/4]`, restart it, wait until it serves HTTPS
//!    (`/health/live`) and is connected to every peer again (`/health/ready`). The schedule
//!    (waits, victims, down times) comes from `--seed`; what the assertions check does not
//!    depend on when kills land.
//! 4. Stop the traffic; the client finishes the cases it started (waiting on answers, not
//!    on time); wait until every outbox is empty; sign a final checkpoint on every node and
//!    wait until each carries its witnesses' cosignatures (in the five-node federation
//!    every other node witnesses each log).
//! 5. Through the API: every case the client created is `closed` on both its nodes and no
//!    node holds another; no witness alarm; the bundle of the final checkpoints and of a
//!    sample of cases verify offline ([`imi_audit::bundle::verify`]) with each log's
//!    witnesses.
//! 6. Stop every node with SIGTERM (each must exit 0), open every RocksDB and check
//!    ([`verify`]): per node and kind, sent = receipted = applied, lost = duplicated = 0;
//!    one log leaf per event; every checkpoint a prefix of its node's log; every
//!    cosignature valid; every witness's view the final root.
//!
//! The result is a table on stdout and a JSON report (`--json-out`). The federation
//! directory is kept when an invariant fails (or with `--keep`).
pub mod traffic;
pub mod verify;

use crate::federation::{self, Federation};
use crate::ui::{self, Style};
use anyhow::{Context, Result, anyhow, bail};
use imi_audit::bundle::witness_name;
use imi_audit::note::SignedNote;
use imi_protocol::NodeId;
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use traffic::{Client, Endpoint};

/// Default number of nodes.
pub const DEFAULT_NODES: usize = 5;
/// Default number of kills.
pub const DEFAULT_KILLS: u32 = 1000;
/// Default mean interval between kills, ms.
pub const DEFAULT_INTERVAL_MS: u64 = 3000;
/// Default cases started per second.
pub const DEFAULT_RATE: f64 = 4.0;
/// Default diagnostics per second.
pub const DEFAULT_DIAG_RATE: f64 = 4.0;
/// Default most cases in flight.
pub const DEFAULT_CLIENTS: usize = 16;
/// Default interval of every node's checkpoint job, ms.
pub const DEFAULT_CHECKPOINT_MS: u64 = 1000;
/// Default failure guard of each phase after the kills, seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 600;

/// Failure guard of a (re)start: until the node serves HTTPS and reaches its peers.
const START_GUARD: Duration = Duration::from_secs(120);
/// Poll interval of the waits of the final phase.
const POLL: Duration = Duration::from_millis(100);
/// Cases per node whose evidence bundle is verified at the end.
const BUNDLES_PER_NODE: usize = 2;

/// Options of `imi-sim torture`.
#[derive(Debug, Clone, clap::Args)]
pub struct TortureArgs {
    /// Member-state nodes.
    #[arg(long, default_value_t = DEFAULT_NODES)]
    pub nodes: usize,
    /// SIGKILLs (each followed by a restart).
    #[arg(long, default_value_t = DEFAULT_KILLS)]
    pub kills: u32,
    /// Mean time between a node being back and the next kill, ms (uniform in ±50 %).
    #[arg(long, default_value_t = DEFAULT_INTERVAL_MS)]
    pub interval_ms: u64,
    /// Seed of the kill schedule and of the traffic's pairs (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Cases started per second (each four request steps).
    #[arg(long, default_value_t = DEFAULT_RATE)]
    pub rate: f64,
    /// Most cases in flight at once.
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    pub clients: usize,
    /// Diagnostics per second (0: none).
    #[arg(long, default_value_t = DEFAULT_DIAG_RATE)]
    pub diag_rate: f64,
    /// Interval of every node's checkpoint job, ms.
    #[arg(long, default_value_t = DEFAULT_CHECKPOINT_MS)]
    pub checkpoint_ms: u64,
    /// Failure guard of each phase after the kills (finishing cases, draining, cosigning), s.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_S)]
    pub timeout_s: u64,
    /// Parent of the federation directory (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the federation directory even when every invariant held.
    #[arg(long)]
    pub keep: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

impl Default for TortureArgs {
    fn default() -> Self {
        Self {
            nodes: DEFAULT_NODES,
            kills: DEFAULT_KILLS,
            interval_ms: DEFAULT_INTERVAL_MS,
            seed: None,
            rate: DEFAULT_RATE,
            clients: DEFAULT_CLIENTS,
            diag_rate: DEFAULT_DIAG_RATE,
            checkpoint_ms: DEFAULT_CHECKPOINT_MS,
            timeout_s: DEFAULT_TIMEOUT_S,
            dir: None,
            keep: false,
            json_out: None,
        }
    }
}

/// One invariant and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Its name.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// What was checked, or what failed.
    pub detail: String,
}

/// The messages of one kind one node sent, and what became of them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindRow {
    /// The sending node.
    pub node: String,
    /// The message kind.
    pub kind: String,
    /// What the client asked this node to send (requests: steps answered; diagnostics:
    /// acknowledged or ambiguous sends); none for the nodes' own traffic.
    pub asked: Option<u64>,
    /// Envelopes × recipients in the sender's store.
    pub sent: u64,
    /// Of those, with a stored signed receipt (`accepted` or `duplicate`).
    pub receipted: u64,
    /// Of those, in the recipient's inbox with the same envelope hash.
    pub applied: u64,
    /// Sent (or answered to the client) but not applied.
    pub lost: u64,
    /// Applied or stored more often than asked or signed.
    pub duplicated: u64,
    /// Receipts `duplicate`: resent after a kill, already applied, answered without effect.
    pub resent: u64,
    /// Rejected by the recipient.
    pub rejected: u64,
    /// Witness envelopes (checkpoints, cosignatures) the recipient refused `stale`: signed
    /// long before they could arrive (a partition, a node down for days); the witness
    /// protocol's next checkpoint supersedes them. Neither applied nor lost.
    pub stale: u64,
}

impl KindRow {
    /// sent = receipted = applied (= asked for requests), nothing lost, duplicated or
    /// rejected.
    pub fn holds(&self) -> bool {
        self.sent == self.receipted + self.stale
            && self.sent == self.applied + self.stale
            && self.lost == 0
            && self.duplicated == 0
            && self.rejected == 0
            && (self.kind != imi_protocol::Kind::REQUEST || self.asked == Some(self.sent))
    }
}

/// Percentiles of a duration, ms.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Millis {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Millis {
    pub(crate) fn of(values: &[f64]) -> Millis {
        let mut v = values.to_vec();
        let (p50, p99) = ui::p50_p99(&mut v);
        Millis {
            p50: crate::bench::round(p50, 1),
            p99: crate::bench::round(p99, 1),
            max: crate::bench::round(v.last().copied().unwrap_or(0.0), 1),
        }
    }
}

/// What the client did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientFigures {
    /// Cases started.
    pub cases: usize,
    /// Cases whose four steps were answered.
    pub cases_completed: usize,
    /// Request steps answered (= request envelopes).
    pub steps: usize,
    /// Diagnostics acknowledged.
    pub diagnostics_acked: usize,
    /// Diagnostic sends whose outcome was unknown (killed in flight).
    pub diagnostics_ambiguous: u64,
    /// Diagnostic sends refused before reaching a node (it was down).
    pub diagnostics_refused: u64,
    /// Attempts without an answer (node down or killed in flight), each sent again.
    pub unanswered_attempts: u64,
    /// "Not yet" answers polled (the previous step had not arrived).
    pub waits: u64,
    /// A step from its first attempt to its answer.
    pub step_ms: Millis,
}

/// How long a node took to come back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryFigures {
    /// Random time a killed node stayed down before its restart.
    pub down_ms: Millis,
    /// Restart → serving HTTPS (`/health/live`): RocksDB recovery, keys, catalogue.
    pub restart_to_live_ms: Millis,
    /// Restart → connected to every peer again (`/health/ready`, no peer unreachable).
    pub restart_to_reconnected_ms: Millis,
}

/// The torture's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed (schedule and pairs).
    pub seed: u64,
    /// The nodes.
    pub nodes: Vec<String>,
    /// Kills done.
    pub kills: u32,
    /// Kills per node.
    pub kills_by_node: BTreeMap<String, u32>,
    /// Mean interval between kills, ms.
    pub interval_ms: u64,
    /// Cases started per second.
    pub rate: f64,
    /// Diagnostics per second.
    pub diag_rate: f64,
    /// Whole run, s.
    pub duration_s: f64,
    /// From the first kill to the last restart, s.
    pub torture_s: f64,
    /// From the last restart to everything delivered and cosigned, s.
    pub drain_s: f64,
    /// The client.
    pub client: ClientFigures,
    /// Restarts.
    pub recovery: RecoveryFigures,
    /// Per node and kind.
    pub messages: Vec<KindRow>,
    /// Per node: checkpoints.
    pub checkpoints: BTreeMap<String, verify::CheckpointSummary>,
    /// Every invariant.
    pub checks: Vec<Check>,
    /// The federation directory, when kept.
    pub dir: Option<String>,
}

impl Report {
    /// Whether every invariant held.
    pub fn held(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The invariants that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    /// The human-readable report.
    pub fn table(&self, st: &Style) -> String {
        let mut out = String::new();
        let by_node: Vec<String> = self
            .kills_by_node
            .iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect();
        out.push_str(&format!(
            "{} {} nodes ({}), {} kills ({}), seed {}, {:.0} s (torture {:.0} s, drain {:.1} s)\n",
            st.bold("torture:"),
            self.nodes.len(),
            self.nodes.join(" "),
            self.kills,
            by_node.join(", "),
            self.seed,
            self.duration_s,
            self.torture_s,
            self.drain_s
        ));
        let c = &self.client;
        out.push_str(&format!(
            "traffic: {} cases ({} completed), {} request steps, {} diagnostics acknowledged ({} ambiguous, {} refused); \
             {} attempts unanswered and sent again, {} not-yet polls; a step took p50 {} ms, p99 {} ms, max {} ms\n",
            c.cases,
            c.cases_completed,
            c.steps,
            c.diagnostics_acked,
            c.diagnostics_ambiguous,
            c.diagnostics_refused,
            c.unanswered_attempts,
            c.waits,
            c.step_ms.p50,
            c.step_ms.p99,
            c.step_ms.max
        ));
        let r = &self.recovery;
        out.push_str(&format!(
            "recovery after a kill: down p50 {} ms; restart → live p50 {} ms, p99 {} ms, max {} ms; \
             restart → every peer connected p50 {} ms, p99 {} ms, max {} ms\n\n",
            r.down_ms.p50,
            r.restart_to_live_ms.p50,
            r.restart_to_live_ms.p99,
            r.restart_to_live_ms.max,
            r.restart_to_reconnected_ms.p50,
            r.restart_to_reconnected_ms.p99,
            r.restart_to_reconnected_ms.max
        ));
        out.push_str(&format!(
            "{:<5}{:<17}{:>8}{:>8}{:>10}{:>9}{:>6}{:>6}{:>8}{:>9}\n",
            "node",
            "kind",
            "asked",
            "sent",
            "receipted",
            "applied",
            "lost",
            "dup",
            "resent",
            "rejected"
        ));
        for m in &self.messages {
            let line = format!(
                "{:<5}{:<17}{:>8}{:>8}{:>10}{:>9}{:>6}{:>6}{:>8}{:>9}",
                m.node,
                m.kind,
                m.asked.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                m.sent,
                m.receipted,
                m.applied,
                m.lost,
                m.duplicated,
                m.resent,
                m.rejected
            );
            out.push_str(&if m.holds() { line } else { st.red(&line) });
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&format!(
            "{:<5}{:>12}{:>16}{:>10}{:>12}{:>16}\n",
            "node", "checkpoints", "fully cosigned", "log size", "final size", "final cosigned"
        ));
        for (n, s) in &self.checkpoints {
            out.push_str(&format!(
                "{n:<5}{:>12}{:>16}{:>10}{:>12}{:>16}\n",
                s.stored, s.fully_cosigned, s.log_size, s.final_size, s.final_cosignatures
            ));
        }
        out.push('\n');
        for c in &self.checks {
            let mark = if c.ok { st.green("✓") } else { st.red("✗") };
            out.push_str(&format!("{mark} {:<26} {}\n", c.name, c.detail));
        }
        if let Some(d) = &self.dir {
            out.push_str(&format!("federation directory kept: {d}\n"));
        }
        out
    }
}

/// Runs the torture on its own runtime (for callers without one, e.g. a test).
pub fn run_blocking(args: &TortureArgs, bin: &Path) -> Result<Report> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args, bin))
}

/// `imi-sim torture`: runs, prints the table, writes the JSON; `Ok(false)` if an invariant
/// failed.
pub async fn run_cli(args: &TortureArgs) -> Result<bool> {
    let bin = federation::node_binary()?;
    // On SIGINT or SIGTERM the run is dropped: its nodes are killed (`Federation`'s Drop)
    // and its directory removed.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let report = tokio::select! {
        r = run(args, &bin) => r?,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term.recv() => bail!("terminated"),
    };
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(p) = &args.json_out {
        std::fs::write(p, format!("{text}\n"))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    print!("{}", report.table(&Style::detect(true)));
    Ok(report.held())
}

/// The first `n` member states (not `EU`: it takes no requests).
fn member_states(n: usize) -> Result<Vec<NodeId>> {
    let all: Vec<NodeId> = NodeId::ALL
        .iter()
        .copied()
        .filter(|n| *n != NodeId::EU)
        .collect();
    if n < 2 || n > all.len() {
        bail!("--nodes must be 2 to {}", all.len());
    }
    Ok(all.into_iter().take(n).collect())
}

/// Runs the torture with the `imi-node` binary `bin`.
pub async fn run(args: &TortureArgs, bin: &Path) -> Result<Report> {
    if args.rate.is_nan()
        || args.rate <= 0.0
        || args.diag_rate.is_nan()
        || args.diag_rate < 0.0
        || args.clients == 0
        || args.interval_ms < 4
    {
        bail!(
            "--rate and --clients must be positive, --diag-rate at least 0, --interval-ms at least 4"
        );
    }
    let members = member_states(args.nodes)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    let tmp = tempfile::Builder::new()
        .prefix("imi-torture-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    eprintln!(
        "imi-sim torture: {} nodes, {} kills every ~{} ms, seed {seed}, {} cases/s, {} diagnostics/s, data in {}",
        members.len(),
        args.kills,
        args.interval_ms,
        args.rate,
        args.diag_rate,
        tmp.path().display()
    );
    let result = torture(args, bin, tmp.path(), &members, seed).await;
    let keep = args.keep || !result.as_ref().is_ok_and(Report::held);
    let kept = keep.then(|| tmp.keep());
    match result {
        Ok(mut report) => {
            report.dir = kept.map(|p| p.display().to_string());
            Ok(report)
        }
        Err(e) => Err(match kept {
            Some(p) => e.context(format!("federation directory kept: {}", p.display())),
            None => e,
        }),
    }
}

/// `imi-node users add` on a running node; returns the token.
fn add_user(bin: &Path, dir: &Path, node: NodeId, user: &str, role: &str) -> Result<String> {
    let out = std::process::Command::new(bin)
        .args(["users", "add", "--config"])
        .arg(dir.join(node.as_str()).join("node.toml"))
        .args([
            "--id",
            user,
            "--authority",
            &format!("{node}-NC"),
            "--role",
            role,
            "--json",
        ])
        .stdin(std::process::Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "users add {user} on {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["token"]
        .as_str()
        .context("users add printed no token")?
        .to_owned())
}

/// Restarts measured during the kills.
#[derive(Default)]
struct Restarts {
    by_node: BTreeMap<String, u32>,
    down: Vec<f64>,
    live: Vec<f64>,
    reconnected: Vec<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Waits until node `id` is connected to every peer (`/health/ready` with none unreachable).
pub(crate) async fn wait_reconnected(
    fed: &mut Federation,
    id: NodeId,
    guard: Duration,
) -> Result<()> {
    let start = Instant::now();
    let url = fed.url(id, "/health/ready")?;
    loop {
        if let Some((n, status)) = fed.exited_nodes()?.first() {
            bail!("{n} exited ({status}) while {id} was reconnecting");
        }
        if let Ok(r) = fed
            .client()
            .get(&url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            && r.status().is_success()
            && let Ok(v) = r.json::<Value>().await
            && v["peers_unreachable"].as_array().is_some_and(Vec::is_empty)
        {
            return Ok(());
        }
        if start.elapsed() > guard {
            bail!(
                "{id} did not reach every peer within {} s of its restart",
                guard.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The kills: the schedule comes from the seed; each kill waits until the node is back.
async fn kill_loop(
    fed: &mut Federation,
    client: &Client,
    args: &TortureArgs,
    seed: u64,
    restarts: &mut Restarts,
) -> Result<()> {
    let mut rng = traffic::rng_for(seed, 3, 0);
    let members: Vec<NodeId> = fed.nodes.iter().map(|n| n.id).collect();
    let every = (args.kills / 20).max(1);
    for k in 1..=args.kills {
        let wait = rng.random_range(args.interval_ms / 2..=args.interval_ms * 3 / 2);
        let victim = members[rng.random_range(0..members.len())];
        let down = rng.random_range(0..=args.interval_ms / 4);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Some((n, status)) = fed.exited_nodes()?.first() {
            bail!(
                "{n} exited by itself ({status}); the end of its log:\n{}",
                federation::tail(&fed.dir.join(n.as_str()).join("node.log"), 30)
            );
        }
        if let Some(e) = client.ledger().errors.first() {
            bail!("the client failed: {e}");
        }
        fed.kill(victim)?;
        tokio::time::sleep(Duration::from_millis(down)).await;
        fed.restart(victim)?;
        let restarted = Instant::now();
        fed.wait_node(victim, "/health/live", START_GUARD)
            .await
            .with_context(|| format!("restart {k} of {victim}"))?;
        let live = restarted.elapsed();
        wait_reconnected(fed, victim, START_GUARD).await?;
        let reconnected = restarted.elapsed();
        *restarts.by_node.entry(victim.to_string()).or_default() += 1;
        restarts.down.push(down as f64);
        restarts.live.push(ms(live));
        restarts.reconnected.push(ms(reconnected));
        if k % every == 0 || k == args.kills {
            let l = client.ledger();
            let steps: usize = l.cases.iter().map(|c| c.steps.len()).sum();
            eprintln!(
                "  kill {k}/{}: {victim} down {down} ms, live {:.0} ms, reconnected {:.0} ms after its restart · {} cases, {steps} steps so far",
                args.kills,
                ms(live),
                ms(reconnected),
                l.cases.len()
            );
        }
    }
    Ok(())
}

/// Polls `f` every [`POLL`] until it yields `Some`; fails after `guard` with `what`.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, guard: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_error = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if start.elapsed() > guard {
            let why = last_error.map_or_else(String::new, |e| format!(" (last error: {e:#})"));
            bail!("{what}: not within {} s{why}", guard.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Outbox entries queued on every node, from `/metrics` (the gauge the committer keeps exact).
pub(crate) async fn queued(fed: &Federation) -> Result<f64> {
    queued_where(fed, |_, _| true).await
}

/// Outbox entries of the `imi_outbox_queue_depth` series `keep(node, series)` selects,
/// summed over every node.
pub(crate) async fn queued_where(
    fed: &Federation,
    keep: impl Fn(NodeId, &str) -> bool,
) -> Result<f64> {
    let mut total = 0.0;
    for n in &fed.nodes {
        let m = fed.metrics(n.id).await?;
        total += m
            .iter()
            .filter(|(k, _)| k.starts_with("imi_outbox_queue_depth{") && keep(n.id, k))
            .map(|(_, v)| *v)
            .sum::<f64>();
    }
    Ok(total)
}

/// A bundle of node `i` holding no entry, only its latest checkpoints (fetching it signs
/// a checkpoint of the log as it is now if none covers it yet).
const EMPTY_RANGE: &str =
    "/operator/audit/bundle?from=2000-01-01T00:00:00Z&to=2000-01-01T00:00:01Z";

/// `POST path` as the operator (an empty JSON body) on every node, one after another; an
/// answer other than 200 is an error naming the node.
pub(crate) async fn post_every_node(client: &Client, path: &str) -> Result<()> {
    for (i, n) in client.nodes().iter().enumerate() {
        let (status, v) = client.post(i, path, &n.operator, &json!({})).await?;
        if status != 200 {
            bail!("{}: POST {path}: HTTP {status}: {v}", n.id);
        }
    }
    Ok(())
}

/// How many witnesses each log of a federation of `members` has (`engine.witnesses` at
/// its default; every log's ring is as long).
pub(crate) fn witness_count(members: &[NodeId]) -> usize {
    members.first().map_or(0, |m| {
        imi_engine::witness_ring(*m, members, imi_engine::DEFAULT_WITNESSES).len()
    })
}

/// The members that witness node `i`'s log (`engine.witnesses` at its default).
pub(crate) fn witnesses_of(client: &Client, i: usize) -> BTreeSet<String> {
    let ids: Vec<NodeId> = client.nodes().iter().map(|n| n.id).collect();
    let me = client.nodes().get(i).map_or(NodeId::EU, |n| n.id);
    imi_engine::witness_ring(me, &ids, imi_engine::DEFAULT_WITNESSES)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Whether node `i`'s latest checkpoint carries every one of its witnesses' cosignatures;
/// with the bundle that showed it.
pub(crate) async fn cosigned_by_its_witnesses(client: &Client, i: usize) -> Result<(Value, bool)> {
    let (bundle, cosigners) = latest_cosigners(client, i).await?;
    let done = cosigners.is_superset(&witnesses_of(client, i));
    Ok((bundle, done))
}

/// The witnesses on node `i`'s latest checkpoint.
pub(crate) async fn latest_cosigners(
    client: &Client,
    i: usize,
) -> Result<(Value, BTreeSet<String>)> {
    let n = &client.nodes()[i];
    let (status, bundle) = client.get(i, EMPTY_RANGE, &n.operator).await?;
    if status != 200 {
        bail!("{}: GET {EMPTY_RANGE}: HTTP {status}: {bundle}", n.id);
    }
    let last = bundle["log"]["checkpoints"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{}: a bundle without checkpoints", n.id))?;
    let note = SignedNote::parse(last).map_err(|e| anyhow!("{}: checkpoint: {e}", n.id))?;
    let names: BTreeSet<String> = note.signatures.iter().map(|s| s.name.clone()).collect();
    let witnesses = client
        .nodes()
        .iter()
        .filter(|w| w.id != n.id && names.contains(&witness_name(w.id.as_str())))
        .map(|w| w.id.to_string())
        .collect();
    Ok((bundle, witnesses))
}

pub(crate) fn verify_bundle(bundle: &Value, governance: [u8; 32], witnesses: usize) -> Vec<String> {
    let bytes = serde_json::to_vec(bundle).unwrap_or_default();
    imi_audit::bundle::verify(
        &bytes,
        &imi_audit::bundle::Options {
            governance_key: Some(governance),
            min_witnesses: witnesses,
        },
    )
    .into_iter()
    .filter(|c| !c.ok)
    .map(|c| format!("{}: {}", c.name, c.detail))
    .collect()
}

/// Adds the check `name`: it held if there are no `problems` (the first few are its detail).
pub(crate) fn check(checks: &mut Vec<Check>, name: &str, problems: Vec<String>, ok_detail: String) {
    let ok = problems.is_empty();
    let mut detail = if ok {
        ok_detail
    } else {
        let mut d = problems
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if problems.len() > 8 {
            d.push_str(&format!("; … {} problems in all", problems.len()));
        }
        d
    };
    if detail.len() > 2000 {
        let mut cut = 2000;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
    }
    checks.push(Check {
        name: name.to_owned(),
        ok,
        detail,
    });
}

/// The final phase through the API: cases, alarms, bundles.
async fn api_checks(
    client: &Client,
    dir: &Path,
    seed: u64,
    auditors: &[String],
    checks: &mut Vec<Check>,
) -> Result<()> {
    let governance = imi_node::keyfile::read_public32(&dir.join("governance.pub"))?;
    let ids: Vec<NodeId> = client.nodes().iter().map(|n| n.id).collect();
    let witnesses = witness_count(&ids);
    // Every case on both its nodes, closed; no node holds a case the client did not make.
    let mut expected: BTreeMap<NodeId, BTreeSet<String>> = BTreeMap::new();
    for c in &client.ledger().cases {
        if let Some(id) = &c.id {
            expected.entry(c.requester).or_default().insert(id.clone());
            expected.entry(c.responder).or_default().insert(id.clone());
        }
    }
    let mut case_problems = Vec::new();
    let mut held = 0;
    let mut per_node: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for (i, n) in client.nodes().iter().enumerate() {
        let mut states: BTreeMap<String, String> = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/requests?limit=200&cursor={c}"),
                None => "/api/v1/requests?limit=200".to_owned(),
            };
            let (status, v) = client.get(i, &path, &n.user).await?;
            if status != 200 {
                bail!("{}: GET {path}: HTTP {status}: {v}", n.id);
            }
            for item in v["items"].as_array().cloned().unwrap_or_default() {
                if let (Some(id), Some(state)) = (item["id"].as_str(), item["state"].as_str()) {
                    states.insert(id.to_owned(), state.to_owned());
                }
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let want = expected.remove(&n.id).unwrap_or_default();
        for id in &want {
            match states.get(id).map(String::as_str) {
                Some("closed") => held += 1,
                Some(s) => case_problems.push(format!("{}: case {id} is {s}, not closed", n.id)),
                None => case_problems.push(format!("{}: case {id} is missing", n.id)),
            }
        }
        let extra = states.keys().filter(|id| !want.contains(*id)).count();
        if extra > 0 {
            case_problems.push(format!("{}: {extra} cases the client never created", n.id));
        }
        per_node.insert(n.id, want.into_iter().collect());
    }
    check(
        checks,
        "requests.closed_on_both",
        case_problems,
        format!(
            "{held} copies of cases, each closed, on exactly its two nodes (GET /api/v1/requests)"
        ),
    );

    // No witness alarm (auditors' route).
    let mut alarm_problems = Vec::new();
    for (i, n) in client.nodes().iter().enumerate() {
        let (status, v) = client.get(i, "/api/v1/audit/alarms", &auditors[i]).await?;
        let count = v["items"].as_array().map_or(usize::MAX, Vec::len);
        if status != 200 || count != 0 {
            alarm_problems.push(format!("{}: HTTP {status}, {v}", n.id));
        }
    }
    check(
        checks,
        "witness.no_alarm",
        alarm_problems,
        "no node raised a witness alarm (split view, rollback, inconsistent proof)".into(),
    );

    // Bundles: the final checkpoints, and a sample of cases, verified offline.
    let mut bundle_problems = Vec::new();
    let mut verified = 0;
    for (i, n) in client.nodes().iter().enumerate() {
        let (bundle, _) = latest_cosigners(client, i).await?;
        for p in verify_bundle(&bundle, governance, witnesses) {
            bundle_problems.push(format!("{} final checkpoints: {p}", n.id));
        }
        verified += 1;
        let cases = per_node.get(&n.id).cloned().unwrap_or_default();
        let mut rng = traffic::rng_for(seed, 4, i as u64);
        for _ in 0..BUNDLES_PER_NODE.min(cases.len()) {
            let id = &cases[rng.random_range(0..cases.len())];
            let path = format!("/operator/audit/bundle?case={id}");
            let (status, bundle) = client.get(i, &path, &n.operator).await?;
            if status != 200 {
                bundle_problems.push(format!("{}: GET {path}: HTTP {status}", n.id));
                continue;
            }
            for p in verify_bundle(&bundle, governance, witnesses) {
                bundle_problems.push(format!("{} case {id}: {p}", n.id));
            }
            verified += 1;
        }
    }
    check(
        checks,
        "bundles.verify",
        bundle_problems,
        format!(
            "{verified} evidence bundles (each node's final checkpoints, sampled cases) verify offline with {witnesses} witnesses"
        ),
    );
    Ok(())
}

async fn torture(
    args: &TortureArgs,
    bin: &Path,
    dir: &Path,
    members: &[NodeId],
    seed: u64,
) -> Result<Report> {
    let started = Instant::now();
    let base = federation::free_base_port(members.len())?;
    federation::init_federation(bin, dir, members, base)?;
    federation::override_configs(
        dir,
        members,
        &[format!(
            "engine.job_interval_ms={{ checkpoint = {} }}",
            args.checkpoint_ms
        )],
    )?;
    let mut fed = Federation::start(bin, dir, members, base)?;
    fed.wait_live(START_GUARD).await?;
    for id in members {
        wait_reconnected(&mut fed, *id, START_GUARD).await?;
    }
    let mut endpoints = Vec::new();
    let mut auditors = Vec::new();
    for id in members {
        endpoints.push(Endpoint {
            id: *id,
            base: fed.url(*id, "")?,
            user: add_user(bin, dir, *id, "torture", "authority_user")?,
            operator: fed.operator_token(*id)?.to_owned(),
        });
        auditors.push(add_user(bin, dir, *id, "torture-audit", "auditor")?);
    }
    let client = Client::new(&dir.join("ca.crt"), endpoints, seed)?;
    eprintln!(
        "  {} nodes up and connected, users added ({:.1} s); traffic and kills start",
        members.len(),
        started.elapsed().as_secs_f64()
    );

    let (stop, stop_rx) = watch::channel(false);
    let mut traffic = vec![tokio::spawn(traffic::requests(
        client.clone(),
        args.rate,
        args.clients,
        stop_rx.clone(),
    ))];
    if args.diag_rate > 0.0 {
        traffic.push(tokio::spawn(traffic::diagnostics(
            client.clone(),
            args.diag_rate,
            stop_rx,
        )));
    }
    let torture_start = Instant::now();
    let mut restarts = Restarts::default();
    let killed = kill_loop(&mut fed, &client, args, seed, &mut restarts).await;
    let torture_s = torture_start.elapsed().as_secs_f64();
    let _ = stop.send(true);
    killed?;

    // Drain: the client finishes its cases, the outboxes empty, final checkpoints cosigned.
    let drain_start = Instant::now();
    let guard = Duration::from_secs(args.timeout_s);
    eprintln!("  kills done ({torture_s:.0} s); finishing the cases in flight, draining");
    let finished = tokio::time::timeout(guard, futures::future::join_all(traffic)).await;
    if finished.is_err() {
        bail!(
            "the client did not finish its cases within {} s",
            guard.as_secs()
        );
    }
    if let Some((n, status)) = fed.exited_nodes()?.first() {
        bail!("{n} exited by itself ({status})");
    }
    wait_for("every outbox empty", guard, || async {
        Ok((queued(&fed).await? == 0.0).then_some(()))
    })
    .await?;
    post_every_node(&client, "/operator/audit/checkpoint").await?;
    wait_for(
        "every node's last checkpoint cosigned by its witnesses",
        guard,
        || async {
            for i in 0..client.nodes().len() {
                if !cosigned_by_its_witnesses(&client, i).await?.1 {
                    return Ok(None);
                }
            }
            Ok((queued(&fed).await? == 0.0).then_some(()))
        },
    )
    .await?;
    let drain_s = drain_start.elapsed().as_secs_f64();
    eprintln!("  drained and cosigned ({drain_s:.1} s); checking through the API");

    let mut checks = Vec::new();
    let ledger_errors = client.ledger().errors.clone();
    let (cases, completed) = {
        let l = client.ledger();
        (
            l.cases.len(),
            l.cases.iter().filter(|c| c.steps.len() == 4).count(),
        )
    };
    check(
        &mut checks,
        "client.every_step_answered",
        ledger_errors
            .into_iter()
            .chain(
                (completed != cases)
                    .then(|| format!("{} of {cases} cases unfinished", cases - completed)),
            )
            .collect(),
        format!("{cases} cases × 4 steps, every step answered as documented"),
    );
    check(
        &mut checks,
        "nodes.restarted",
        if restarts.live.len() == args.kills as usize {
            Vec::new()
        } else {
            vec![format!(
                "{} of {} restarts",
                restarts.live.len(),
                args.kills
            )]
        },
        format!(
            "{} SIGKILLs, each node back on its data and ports, serving and connected to every peer",
            args.kills
        ),
    );
    api_checks(&client, dir, seed, &auditors, &mut checks).await?;
    let diag_gauges: BTreeMap<NodeId, f64> = {
        let mut m = BTreeMap::new();
        for n in &fed.nodes {
            let v = fed
                .metrics(n.id)
                .await?
                .get("imi_diagnostic_applied")
                .copied()
                .unwrap_or(-1.0);
            m.insert(n.id, v);
        }
        m
    };

    let reports = fed.stop(Duration::from_secs(30)).await;
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
    eprintln!("  nodes stopped; reading every store");

    let ledger = std::mem::take(&mut *client.ledger());
    let findings = verify::analyse(dir, members, &ledger)?;
    checks.extend(findings.checks);
    // The persistent applied-diagnostics gauge each node exported equals its store.
    let mut gauge_problems = Vec::new();
    for (id, g) in &diag_gauges {
        let stored = findings.diagnostics_in.get(id).copied().unwrap_or(0);
        if (*g - stored as f64).abs() > 0.5 {
            gauge_problems.push(format!("{id}: imi_diagnostic_applied {g}, inbox {stored}"));
        }
    }
    check(
        &mut checks,
        "metrics.diagnostic_applied",
        gauge_problems,
        "each node's imi_diagnostic_applied (/metrics) equals the diagnostics in its store".into(),
    );

    let steps = ledger.cases.iter().map(|c| c.steps.len()).sum();
    let diag = ledger.diagnostics.values();
    let client_figures = ClientFigures {
        cases,
        cases_completed: completed,
        steps,
        diagnostics_acked: diag.clone().map(|d| d.acked.len()).sum(),
        diagnostics_ambiguous: diag.clone().map(|d| d.ambiguous).sum(),
        diagnostics_refused: diag.map(|d| d.refused).sum(),
        unanswered_attempts: ledger.unanswered_attempts,
        waits: ledger.waits,
        step_ms: Millis::of(&ledger.step_ms),
    };
    Ok(Report {
        seed,
        nodes: members.iter().map(ToString::to_string).collect(),
        kills: u32::try_from(restarts.live.len()).unwrap_or(u32::MAX),
        kills_by_node: restarts.by_node,
        interval_ms: args.interval_ms,
        rate: args.rate,
        diag_rate: args.diag_rate,
        duration_s: crate::bench::round(started.elapsed().as_secs_f64(), 1),
        torture_s: crate::bench::round(torture_s, 1),
        drain_s: crate::bench::round(drain_s, 1),
        client: client_figures,
        recovery: RecoveryFigures {
            down_ms: Millis::of(&restarts.down),
            restart_to_live_ms: Millis::of(&restarts.live),
            restart_to_reconnected_ms: Millis::of(&restarts.reconnected),
        },
        messages: findings.rows,
        checkpoints: findings.checkpoints,
        checks,
        dir: None,
    })
}

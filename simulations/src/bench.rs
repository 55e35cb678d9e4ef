//! `imi-sim bench exchange`: two real nodes (AT → DE) on loopback; throughput and latency
//! at saturation and at an offered 50 msg/s, messages per fsync, memory, CPU per message,
//! compared with the in-process cost of the cryptography and encoding of one message and
//! with the fsync latency of the data directory's disk. See `BENCHMARKS.md`.
use crate::federation::{self, Federation, procfs};
use crate::ui::{self, Style};
use anyhow::{Context, Result, anyhow, bail};
use imi_node::diag::DiagResult;
use imi_protocol::{
    AuthorityId, Clock, Draft, Envelope, HpkeKeyEntry, HpkeKeyPair, Kind, Member, NodeId,
    NodeSigner, Outcome, Receipt, ReceiptBody, SealRandomness, SigningKeyEntry, SystemClock,
    TrustList,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `imi-sim bench exchange`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExchangeArgs {
    /// Messages in the saturation run.
    #[arg(long, default_value_t = 20_000)]
    pub messages: u32,
    /// Body size of every message, bytes.
    #[arg(long, default_value_t = 1024)]
    pub body: usize,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Parent of the temporary federation directory (default: the system temp dir). Put it
    /// on the disk you want to measure.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Offered load of the latency run, messages per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Duration of the latency run, seconds.
    #[arg(long, default_value_t = 10)]
    pub rate_seconds: u32,
    /// Messages of the warm-up.
    #[arg(long, default_value_t = 1000)]
    pub warmup: u32,
    /// Iterations of the in-process primitive measurement.
    #[arg(long, default_value_t = 2000)]
    pub primitive_iterations: u32,
    /// Appends + fdatasync of the fsync probe.
    #[arg(long, default_value_t = 1000)]
    pub fsync_samples: u32,
    /// Seconds of idle time between the saturation run and the offered-load run.
    #[arg(long, default_value_t = 0)]
    pub pause: u32,
    /// Saturation run end to end: at most this many messages sent and not yet receipted
    /// (the API's `in_flight`), as the broker pair the issue compares with was driven.
    /// Default: all enqueued at once, the sender's outbox holding the backlog.
    #[arg(long)]
    pub in_flight: Option<u32>,
    /// Override a node setting in both nodes' node.toml (`--set engine.delivery_window=256`);
    /// for experiments only: the published figures use the defaults.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

const SENDER: NodeId = NodeId::AT;
const RECEIVER: NodeId = NodeId::DE;
const MIB: f64 = 1024.0 * 1024.0;

/// The in-process cost of one message, both sides, single thread.
struct Primitives {
    iterations: u32,
    /// Seconds per message of each step, in order.
    steps: Vec<(&'static str, f64)>,
    envelope_bytes: usize,
}

impl Primitives {
    fn per_message_s(&self) -> f64 {
        self.steps.iter().map(|(_, s)| s).sum()
    }
}

fn diag_body(seq: u32, len: usize) -> Vec<u8> {
    // The same body as the node's `run_diag`.
    let mut body = format!("{{\"seq\":{seq}}}").into_bytes();
    body.resize(body.len().max(len), b' ');
    body
}

fn measure_primitives(iterations: u32, body_len: usize) -> Result<Primitives> {
    const DAY: u64 = 24 * 3600 * 1000;
    let now = SystemClock.now_ms();
    let sender = NodeSigner::generate(SENDER);
    let receiver = NodeSigner::generate(RECEIVER);
    let sender_hpke = HpkeKeyPair::generate();
    let receiver_hpke = HpkeKeyPair::generate();
    let member = |s: &NodeSigner, h: &HpkeKeyPair| Member {
        node: s.node,
        role: s.node.default_role(),
        signing_keys: vec![SigningKeyEntry {
            public: s.public(),
            valid_from: now - DAY,
            valid_until: now + DAY,
        }],
        hpke_keys: vec![HpkeKeyEntry {
            public: h.public(),
            valid_from: now - DAY,
            valid_until: now + DAY,
        }],
        addresses: vec![],
    };
    let trust = TrustList {
        version: 1,
        issued: now,
        members: vec![
            member(&sender, &sender_hpke),
            member(&receiver, &receiver_hpke),
        ],
    };
    let kind = Kind::new(Kind::DIAGNOSTIC)?;
    let authority = AuthorityId::new(&format!("{SENDER}-OPERATOR"))?;
    let receiver_keys = std::slice::from_ref(&receiver_hpke);
    let mut totals = [Duration::ZERO; 5];
    let mut envelope_bytes = 0;
    let warmup = 50;
    for i in 0..iterations + warmup {
        let draft = Draft {
            kind: kind.clone(),
            step: None,
            authority: authority.clone(),
            to: vec![RECEIVER],
            case: None,
            prev: vec![],
            body: diag_body(i, body_len),
        };
        let t0 = Instant::now();
        // Sender: seal and sign.
        let rnd = SealRandomness::random(1);
        let bytes = imi_protocol::seal_and_sign(&draft, now, &sender, &trust, &rnd)?;
        envelope_bytes = bytes.len();
        let t1 = Instant::now();
        // Receiver: parse, verify, open.
        let env = Envelope::parse(bytes, imi_protocol::DEFAULT_MAX_ENVELOPE_BYTES)
            .map_err(|c| anyhow!("Envelope::parse: {c}"))?;
        let verified = env
            .verify(&trust, RECEIVER, now, 300_000)
            .map_err(|c| anyhow!("Envelope::verify: {c}"))?;
        let t2 = Instant::now();
        let opened = verified
            .open(RECEIVER, receiver_keys)
            .map_err(|c| anyhow!("open: {c}"))?;
        let t3 = Instant::now();
        // Receiver: sign the receipt.
        let receipt = ReceiptBody {
            v: imi_protocol::PROTOCOL_VERSION,
            message_id: Some(verified.header().id),
            envelope_hash: verified.hash(),
            receiver: RECEIVER,
            sender: Some(SENDER),
            received: now,
            outcome: Outcome::Accepted,
        }
        .sign(&receiver)?;
        let t4 = Instant::now();
        // Sender: verify the receipt.
        let checked = Receipt::verify(receipt, &trust, RECEIVER)
            .map_err(|c| anyhow!("Receipt::verify: {c}"))?;
        let t5 = Instant::now();
        if opened.body.len() != draft.body.len() || checked.body.message_id != Some(rnd.id) {
            bail!("the primitive round trip did not reproduce the message");
        }
        if i >= warmup {
            for (total, d) in totals
                .iter_mut()
                .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
            {
                *total += d;
            }
        }
    }
    let n = f64::from(iterations.max(1));
    let names = [
        "seal_and_sign",
        "envelope_parse_verify",
        "envelope_open",
        "receipt_sign",
        "receipt_verify",
    ];
    Ok(Primitives {
        iterations,
        steps: names
            .iter()
            .zip(totals)
            .map(|(name, d)| (*name, d.as_secs_f64() / n))
            .collect(),
        envelope_bytes,
    })
}

/// `samples` × (append 1 KiB + `fdatasync`) in `dir`; latencies in ms.
fn fsync_probe(dir: &Path, samples: u32) -> Result<Vec<f64>> {
    let path = dir.join("fsync-probe.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let block = [0x5a_u8; 1024];
    let mut out = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(out)
}

/// Median cost in µs of the two thread hand-offs a message makes many times on its way, measured
/// from an idle runtime (threads parked, as between messages at a low offered rate):
/// `spawn_blocking` and back, and a round trip to a dedicated thread over a tokio channel
/// answered on a oneshot (the committer's pattern).
async fn handoff_costs(samples: u32) -> Result<(f64, f64)> {
    let mut blocking = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let t = Instant::now();
        tokio::task::spawn_blocking(|| ()).await?;
        blocking.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
    let thread = std::thread::spawn(move || {
        while let Some(reply) = rx.blocking_recv() {
            let _ = reply.send(());
        }
    });
    let mut thread_rtt = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let t = Instant::now();
        let (reply, done) = tokio::sync::oneshot::channel();
        tx.send(reply)
            .await
            .map_err(|_| anyhow!("hand-off thread gone"))?;
        done.await?;
        thread_rtt.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    Ok((ui::p50_p99(&mut blocking).0, ui::p50_p99(&mut thread_rtt).0))
}

fn metric(m: &BTreeMap<String, f64>, name: &str) -> Result<f64> {
    m.get(name)
        .copied()
        .ok_or_else(|| anyhow!("metric {name} missing from /metrics"))
}

/// CPU snapshot of one process: total ticks and per-thread ticks.
struct CpuSnap {
    total: u64,
    threads: BTreeMap<u64, (String, u64)>,
    switches: u64,
}

fn cpu_snap(pid: u32) -> Result<CpuSnap> {
    Ok(CpuSnap {
        total: procfs::cpu_ticks(pid).with_context(|| format!("reading /proc/{pid}/stat"))?,
        threads: procfs::thread_ticks(pid),
        switches: procfs::context_switches(pid),
    })
}

/// CPU seconds between two snapshots, and per thread name (threads that exited in between
/// are reported as `exited-threads`).
fn cpu_delta(before: &CpuSnap, after: &CpuSnap, tck: f64) -> (f64, BTreeMap<String, f64>) {
    let total = after.total.saturating_sub(before.total) as f64 / tck;
    let mut by_name: BTreeMap<String, f64> = BTreeMap::new();
    let mut accounted = 0.0;
    for (tid, (name, ticks)) in &after.threads {
        let base = before.threads.get(tid).map_or(0, |(_, t)| *t);
        let s = ticks.saturating_sub(base) as f64 / tck;
        accounted += s;
        *by_name.entry(name.clone()).or_default() += s;
    }
    let rest = total - accounted;
    if rest > 0.0 {
        by_name.insert("exited-threads".into(), rest);
    }
    by_name.retain(|_, v| *v > 0.0);
    (total, by_name)
}

pub(crate) fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

async fn diag(fed: &Federation, req: Value, what: &str) -> Result<(DiagResult, Duration)> {
    let t = Instant::now();
    let r = fed
        .diag(SENDER, &req)
        .await
        .with_context(|| format!("{what}: {SENDER} → {RECEIVER}"))?;
    let elapsed = t.elapsed();
    if r.accepted != r.sent || r.rejected > 0 || r.unanswered > 0 {
        bail!(
            "{what}: sent {}, accepted {}, rejected {} {:?}, unanswered {}",
            r.sent,
            r.accepted,
            r.rejected,
            r.rejected_codes,
            r.unanswered
        );
    }
    Ok((r, elapsed))
}

/// Runs the exchange benchmark and prints its JSON result on stdout.
pub async fn exchange(args: &ExchangeArgs) -> Result<bool> {
    let st = Style::detect(false);
    let bin = federation::node_binary()?;
    let cores = imi_node::config::cores();
    let parent = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&parent)?;
    let tmp = tempfile::Builder::new()
        .prefix("imi-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let dir = tmp.path().to_path_buf();
    let members = [SENDER, RECEIVER];
    let base = federation::free_base_port(members.len())?;
    federation::init_federation(&bin, &dir, &members, base)?;
    federation::override_configs(&dir, &members, &args.set)?;
    let filesystem = procfs::filesystem_of(&dir).unwrap_or_else(|| "unknown".into());
    eprintln!(
        "{} {} (binary {}), {cores} cores, data in {} ({filesystem})",
        st.bold("imi-sim bench exchange:"),
        members.map(|m| m.as_str()).join(" + "),
        bin.display(),
        dir.display()
    );

    // 1. The disk: append + fdatasync, nothing else running.
    let mut fsync = fsync_probe(&dir, args.fsync_samples)?;
    let (fsync_p50, fsync_p99) = ui::p50_p99(&mut fsync);
    eprintln!(
        "  fsync probe: {} × (1 KiB append + fdatasync): p50 {fsync_p50:.2} ms, p99 {fsync_p99:.2} ms",
        args.fsync_samples
    );

    // 2. The primitives, single thread, in-process.
    let (iters, body) = (args.primitive_iterations.max(1), args.body);
    let prim = tokio::task::spawn_blocking(move || measure_primitives(iters, body)).await??;
    let per_msg = prim.per_message_s();
    let limit = cores as f64 / per_msg;
    eprintln!(
        "  primitives: {:.1} µs per message both sides ({} iterations, {} B envelope) → limit {limit:.0} msg/s on {cores} cores",
        per_msg * 1e6,
        prim.iterations,
        prim.envelope_bytes
    );

    let (handoff_blocking, handoff_thread) = handoff_costs(300).await?;
    eprintln!(
        "  hand-offs from an idle runtime: spawn_blocking round trip {handoff_blocking:.0} µs, thread round trip {handoff_thread:.0} µs (p50)"
    );

    // 3. The nodes.
    let mut fed = Federation::start(&bin, &dir, &members, base)?;
    let result = measure_nodes(&mut fed, args, cores).await;
    let reports = fed.stop(Duration::from_secs(20)).await;
    let clean = reports.iter().all(|r| r.clean());
    let nodes = result?;

    let throughput = nodes.throughput;
    let ratio = throughput / limit;
    let targets = json!({
        "throughput_msgs_per_s": { "target": ">= 4000", "met": throughput >= 4000.0 },
        "ratio_to_limit": { "target": ">= 0.40", "met": ratio >= 0.40 },
        "msgs_per_fsync": { "target": ">= 8", "met": nodes.msgs_per_fsync >= 8.0 },
        "p50_ms_at_50": { "target": "<= 2", "met": nodes.p50_at_rate <= 2.0 },
        "p99_ms_at_50": { "target": format!("<= fsync_p99_ms + 5 = {:.2}", fsync_p99 + 5.0), "met": nodes.p99_at_rate <= fsync_p99 + 5.0 },
        "peak_rss_mib_per_node": { "target": "<= 64", "met": nodes.peak_rss_mib <= 64.0 },
    });
    let all_targets_met = all_met(&targets);
    let mut out = json!({
        "throughput_msgs_per_s": round(throughput, 1),
        "primitive_limit_msgs_per_s": round(limit, 1),
        "ratio_to_limit": round(ratio, 4),
        "p50_ms_saturation": round(nodes.p50_sat, 3),
        "p99_ms_saturation": round(nodes.p99_sat, 3),
        "p50_ms_at_50": round(nodes.p50_at_rate, 3),
        "p99_ms_at_50": round(nodes.p99_at_rate, 3),
        "fsync_p50_ms": round(fsync_p50, 3),
        "fsync_p99_ms": round(fsync_p99, 3),
        "msgs_per_fsync": round(nodes.msgs_per_fsync, 2),
        "receipts_at_saturation": nodes.receipts,
        "peak_rss_mib_per_node": round(nodes.peak_rss_mib, 1),
        "cores": cores,
        "messages": args.messages,
        "body_bytes": args.body,
        "envelope_bytes": prim.envelope_bytes,
        "filesystem": filesystem,
        "offered_rate_per_s": args.rate,
        "offered_messages": nodes.rate_count,
        "saturation_wall_s": round(nodes.saturation_wall_s, 3),
        "saturation_in_flight": args.in_flight,
    });
    let details = json!({
        "primitive_iterations": prim.iterations,
        "primitive_us_per_msg": round(per_msg * 1e6, 2),
        "primitive_us_by_step": prim.steps.iter().map(|(k, v)| ((*k).to_owned(), json!(round(v * 1e6, 2)))).collect::<serde_json::Map<_, _>>(),
        "fsyncs_receiver": nodes.receiver_fsyncs,
        "fsyncs_sender": nodes.sender_fsyncs,
        "envelopes_per_fsync_sender": round(nodes.sender_per_fsync, 2),
        "cpu_us_per_msg": nodes.cpu_us_per_msg,
        "cpu_utilisation": round(nodes.cpu_utilisation, 3),
        "other_cpu_utilisation": round(nodes.other_utilisation, 3),
        "cpu_us_per_msg_at_offered_rate": nodes.cpu_us_per_msg_at_rate,
        "context_switches_per_msg": nodes.switches_per_msg,
        "handoff_us_p50": { "spawn_blocking_round_trip": round(handoff_blocking, 1), "thread_round_trip": round(handoff_thread, 1) },
        "cpu_s_by_thread": nodes.cpu_by_thread,
        "cpu_us_per_msg_by_thread_at_offered_rate": nodes.cpu_us_per_msg_by_thread_at_rate,
        "steady_rss_mib": nodes.steady_rss,
        "memory_at_start_mib": nodes.memory_at_start,
        "memory_after_mib": nodes.memory_after,
        "peak_rss_mib": nodes.peak_rss,
        "rss_mib_at_start": nodes.rss_at_start,
        "store_memory_mib_after": nodes.store_memory,
        "threads_after": nodes.threads,
        "clean_shutdown": clean,
        "node_config_overrides": args.set,
        "targets": targets,
        "all_targets_met": all_targets_met,
    });
    if let (Some(o), Value::Object(d)) = (out.as_object_mut(), details) {
        o.extend(d);
    }
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print_verdict(&st, &out);
    if !clean {
        eprintln!("{}", st.red("a node did not exit cleanly on SIGTERM"));
    }
    Ok(clean)
}

fn all_met(targets: &Value) -> bool {
    targets.as_object().is_some_and(|t| {
        t.values()
            .all(|v| v.get("met").and_then(Value::as_bool) == Some(true))
    })
}

fn print_verdict(st: &Style, out: &Value) {
    let Some(targets) = out.get("targets").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in targets {
        let met = v.get("met").and_then(Value::as_bool) == Some(true);
        let value = out.get(k).map_or_else(String::new, Value::to_string);
        let target = v.get("target").and_then(Value::as_str).unwrap_or("");
        let mark = if met { st.green("✓") } else { st.red("✗") };
        eprintln!("  {mark} {k:<24} {value:>10}   target {target}");
    }
}

/// What the running nodes showed.
struct NodeFigures {
    throughput: f64,
    saturation_wall_s: f64,
    p50_sat: f64,
    p99_sat: f64,
    rate_count: u32,
    p50_at_rate: f64,
    p99_at_rate: f64,
    msgs_per_fsync: f64,
    receipts: Value,
    receiver_fsyncs: f64,
    sender_fsyncs: f64,
    sender_per_fsync: f64,
    cpu_us_per_msg: Value,
    cpu_utilisation: f64,
    other_utilisation: f64,
    cpu_us_per_msg_at_rate: Value,
    switches_per_msg: Value,
    cpu_by_thread: Value,
    cpu_us_per_msg_by_thread_at_rate: Value,
    peak_rss_mib: f64,
    peak_rss: Value,
    rss_at_start: Value,
    store_memory: Value,
    threads: Value,
    steady_rss: Value,
    memory_at_start: Value,
    memory_after: Value,
}

async fn measure_nodes(
    fed: &mut Federation,
    args: &ExchangeArgs,
    cores: usize,
) -> Result<NodeFigures> {
    let st = Style::detect(false);
    fed.wait_live(Duration::from_secs(60)).await?;
    if let Err(e) = fed.wait_ready(Duration::from_secs(30)).await {
        eprintln!(
            "  {} nodes not ready ({e:#}); continuing: requests dial on demand",
            st.yellow("!")
        );
    }
    let body = args.body;
    let (sender_pid, receiver_pid) = (fed.node(SENDER)?.pid(), fed.node(RECEIVER)?.pid());
    let mut rss_at_start = serde_json::Map::new();
    let mut memory_at_start = serde_json::Map::new();
    for node in &fed.nodes {
        let kib = procfs::status_field(node.pid(), "VmRSS").unwrap_or(0);
        rss_at_start.insert(node.id.to_string(), json!(round(kib as f64 / 1024.0, 1)));
        memory_at_start.insert(node.id.to_string(), procfs::memory_mib(node.pid()));
    }

    // Warm-up: connections, RocksDB, allocator, blocking pool.
    if args.warmup > 0 {
        let (_, t) = diag(
            fed,
            json!({"to": RECEIVER, "count": args.warmup, "wait": true, "body_bytes": body}),
            "warm-up",
        )
        .await?;
        eprintln!(
            "  warm-up: {} messages in {:.2} s",
            args.warmup,
            t.as_secs_f64()
        );
    }

    // Saturation.
    let tck = procfs::clk_tck();
    let (m_recv_0, m_send_0) = (fed.metrics(RECEIVER).await?, fed.metrics(SENDER).await?);
    let (cpu_s0, cpu_r0) = (cpu_snap(sender_pid)?, cpu_snap(receiver_pid)?);
    let busy0 = procfs::machine_busy_ticks().unwrap_or(0);
    let sim0 = procfs::cpu_ticks(std::process::id()).unwrap_or(0);
    let mut saturation =
        json!({"to": RECEIVER, "count": args.messages, "wait": true, "body_bytes": body});
    if let (Some(n), Some(o)) = (args.in_flight, saturation.as_object_mut()) {
        o.insert("in_flight".into(), json!(n));
    }
    let (sat, wall) = diag(fed, saturation, "saturation").await?;
    let (cpu_s1, cpu_r1) = (cpu_snap(sender_pid)?, cpu_snap(receiver_pid)?);
    let busy1 = procfs::machine_busy_ticks().unwrap_or(0);
    let sim1 = procfs::cpu_ticks(std::process::id()).unwrap_or(0);
    let (m_recv_1, m_send_1) = (fed.metrics(RECEIVER).await?, fed.metrics(SENDER).await?);
    let wall_s = wall.as_secs_f64();
    let throughput = f64::from(args.messages) / wall_s;
    let rtt = sat
        .rtt_ms
        .clone()
        .context("the saturation run returned no round-trip times")?;
    let committed = metric(&m_recv_1, "imi_store_committed_messages_total")?
        - metric(&m_recv_0, "imi_store_committed_messages_total")?;
    let receiver_fsyncs = metric(&m_recv_1, "imi_store_synced_commits_total")?
        - metric(&m_recv_0, "imi_store_synced_commits_total")?;
    // Group receipts (0 from a node without them).
    let grouped =
        |m: &BTreeMap<String, f64>| metric(m, "imi_receipts_grouped_total").unwrap_or(0.0);
    let groups = |m: &BTreeMap<String, f64>| metric(m, "imi_receipt_groups_total").unwrap_or(0.0);
    let receipts_grouped = grouped(&m_recv_1) - grouped(&m_recv_0);
    let receipt_groups = groups(&m_recv_1) - groups(&m_recv_0);
    let sender_fsyncs = metric(&m_send_1, "imi_store_synced_commits_total")?
        - metric(&m_send_0, "imi_store_synced_commits_total")?;
    let (cpu_sender, threads_sender) = cpu_delta(&cpu_s0, &cpu_s1, tck);
    let (cpu_receiver, threads_receiver) = cpu_delta(&cpu_r0, &cpu_r1, tck);
    let n = f64::from(args.messages);
    // Everything else the machine did meanwhile: other processes, and kernel threads (some of
    // them, such as the journal's, on behalf of the nodes' fsyncs).
    let other_s = (busy1
        .saturating_sub(busy0)
        .saturating_sub(sim1.saturating_sub(sim0)) as f64
        / tck
        - cpu_sender
        - cpu_receiver)
        .max(0.0);
    let other_utilisation = other_s / (wall_s * cores as f64);
    if other_utilisation > 0.1 {
        eprintln!(
            "  {} {:.0} % of the machine's CPU went to other work during the saturation run: figures are disturbed",
            st.yellow("!"),
            other_utilisation * 100.0
        );
    }
    eprintln!(
        "  saturation: {} messages in {wall_s:.2} s = {throughput:.0} msg/s, round trip p50 {:.1} ms p99 {:.1} ms; {:.1} messages per receiver fsync",
        args.messages,
        rtt.p50,
        rtt.p99,
        committed / receiver_fsyncs.max(1.0)
    );

    // Offered load.
    if args.pause > 0 {
        tokio::time::sleep(Duration::from_secs(u64::from(args.pause))).await;
    }
    let rate_count = ((args.rate * f64::from(args.rate_seconds)).round() as u32).max(1);
    let (cpu_s2, cpu_r2) = (cpu_snap(sender_pid)?, cpu_snap(receiver_pid)?);
    let (at_rate, _) = diag(
        fed,
        json!({"to": RECEIVER, "count": rate_count, "wait": true, "body_bytes": body, "rate_per_s": args.rate}),
        "offered load",
    )
    .await?;
    let (cpu_s3, cpu_r3) = (cpu_snap(sender_pid)?, cpu_snap(receiver_pid)?);
    let rn = f64::from(rate_count);
    let (cpu_sender_rate, threads_sender_rate) = cpu_delta(&cpu_s2, &cpu_s3, tck);
    let (cpu_receiver_rate, threads_receiver_rate) = cpu_delta(&cpu_r2, &cpu_r3, tck);
    let rtt_rate = at_rate
        .rtt_ms
        .clone()
        .context("the offered-load run returned no round-trip times")?;
    eprintln!(
        "  offered {} msg/s × {} s: round trip p50 {:.2} ms, p99 {:.2} ms",
        args.rate, args.rate_seconds, rtt_rate.p50, rtt_rate.p99
    );

    // Memory.
    let mut steady = serde_json::Map::new();
    let mut store_memory = serde_json::Map::new();
    let mut threads = serde_json::Map::new();
    let mut peak = serde_json::Map::new();
    let mut peak_max: f64 = 0.0;
    let mut memory_after = serde_json::Map::new();
    for node in &fed.nodes {
        memory_after.insert(node.id.to_string(), procfs::memory_mib(node.pid()));
        let m = fed.metrics(node.id).await?;
        let rss = metric(&m, "imi_process_resident_memory_bytes")? / MIB;
        steady.insert(node.id.to_string(), json!(round(rss, 1)));
        let store = metric(&m, "imi_store_memory_bytes").unwrap_or(0.0) / MIB;
        store_memory.insert(node.id.to_string(), json!(round(store, 1)));
        threads.insert(
            node.id.to_string(),
            json!(procfs::status_field(node.pid(), "Threads")),
        );
        let hwm = procfs::status_field(node.pid(), "VmHWM")
            .with_context(|| format!("VmHWM of {}", node.id))? as f64
            / 1024.0;
        peak.insert(node.id.to_string(), json!(round(hwm, 1)));
        peak_max = peak_max.max(hwm);
    }

    let by_thread = |m: BTreeMap<String, f64>| -> Value {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, json!(round(v, 3))))
                .collect(),
        )
    };
    let per_msg_by_thread = |m: BTreeMap<String, f64>, n: f64| -> Value {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, json!(round(v / n * 1e6, 1))))
                .collect(),
        )
    };
    Ok(NodeFigures {
        throughput,
        saturation_wall_s: wall_s,
        p50_sat: rtt.p50,
        p99_sat: rtt.p99,
        rate_count,
        p50_at_rate: rtt_rate.p50,
        p99_at_rate: rtt_rate.p99,
        msgs_per_fsync: committed / receiver_fsyncs.max(1.0),
        receipts: json!({
            "grouped_share": round(receipts_grouped / committed.max(1.0), 3),
            "per_group_signature": round(receipts_grouped / receipt_groups.max(1.0), 2),
        }),
        receiver_fsyncs,
        sender_fsyncs,
        sender_per_fsync: n / sender_fsyncs.max(1.0),
        cpu_us_per_msg: json!({
            SENDER.as_str(): round(cpu_sender / n * 1e6, 1),
            RECEIVER.as_str(): round(cpu_receiver / n * 1e6, 1),
            "total": round((cpu_sender + cpu_receiver) / n * 1e6, 1),
        }),
        cpu_utilisation: (cpu_sender + cpu_receiver) / (wall_s * cores as f64),
        other_utilisation,
        cpu_us_per_msg_at_rate: json!({
            SENDER.as_str(): round(cpu_sender_rate / rn * 1e6, 1),
            RECEIVER.as_str(): round(cpu_receiver_rate / rn * 1e6, 1),
        }),
        switches_per_msg: json!({
            SENDER.as_str(): round(cpu_s1.switches.saturating_sub(cpu_s0.switches) as f64 / n, 2),
            RECEIVER.as_str(): round(cpu_r1.switches.saturating_sub(cpu_r0.switches) as f64 / n, 2),
            "at_offered_rate": {
                SENDER.as_str(): round(cpu_s3.switches.saturating_sub(cpu_s2.switches) as f64 / rn, 2),
                RECEIVER.as_str(): round(cpu_r3.switches.saturating_sub(cpu_r2.switches) as f64 / rn, 2),
            },
        }),
        cpu_by_thread: json!({
            SENDER.as_str(): by_thread(threads_sender),
            RECEIVER.as_str(): by_thread(threads_receiver),
        }),
        cpu_us_per_msg_by_thread_at_rate: json!({
            SENDER.as_str(): per_msg_by_thread(threads_sender_rate, rn),
            RECEIVER.as_str(): per_msg_by_thread(threads_receiver_rate, rn),
        }),
        peak_rss_mib: peak_max,
        peak_rss: Value::Object(peak),
        rss_at_start: Value::Object(rss_at_start),
        store_memory: Value::Object(store_memory),
        threads: Value::Object(threads),
        steady_rss: Value::Object(steady),
        memory_at_start: Value::Object(memory_at_start),
        memory_after: Value::Object(memory_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let p = measure_primitives(20, 1024).expect("primitives");
        assert_eq!(p.steps.len(), 5);
        assert!(p.per_message_s() > 0.0);
        assert!(p.envelope_bytes > 1024);
    }

    #[test]
    fn fsync_probe_measures_and_cleans_up() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = fsync_probe(tmp.path(), 5).expect("probe");
        assert_eq!(v.len(), 5);
        assert!(
            std::fs::read_dir(tmp.path())
                .expect("read_dir")
                .next()
                .is_none()
        );
    }

    #[test]
    fn cpu_delta_accounts_for_exited_threads() {
        let before = CpuSnap {
            total: 100,
            threads: BTreeMap::from([(1, ("main".into(), 50)), (2, ("gone".into(), 50))]),
            switches: 0,
        };
        let after = CpuSnap {
            total: 300,
            threads: BTreeMap::from([(1, ("main".into(), 150)), (3, ("new".into(), 20))]),
            switches: 0,
        };
        let (total, by) = cpu_delta(&before, &after, 100.0);
        assert!((total - 2.0).abs() < 1e-9);
        assert_eq!(by.get("main"), Some(&1.0));
        assert_eq!(by.get("new"), Some(&0.2));
        assert!((by.get("exited-threads").copied().unwrap_or(0.0) - 0.8).abs() < 1e-9);
    }
}

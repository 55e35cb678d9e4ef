//! `imi-sim bench api`: the authorities' API end to end. Two real nodes (DE → HU) on
//! loopback; a German authority user creates requests through `POST /api/v1/requests?wait=
//! delivered`, which answers only once the Hungarian node has stored the request durably
//! (its signed receipt is back). Measures requests per second with concurrent clients, and
//! p50/p99 latency at a fixed offered rate (open loop: each request is timed from its
//! scheduled start), then reads of one case's page (`GET /api/v1/requests/{id}`, each a
//! durable access-log record and a log leaf of the case) at a fixed rate, in three equal
//! parts: the requester node's CPU and context switches per read in each part show whether
//! a read costs more the more often the case was read. See `BENCHMARKS.md`.
use crate::bench::round;
use crate::federation::{self, Federation};
use crate::ui;
use anyhow::{Context, Result, bail};
use imi_protocol::NodeId;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Options of `imi-sim bench api`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Requests in the saturation run.
    #[arg(long, default_value_t = 2000)]
    pub requests: u32,
    /// Concurrent clients in the saturation run.
    #[arg(long, default_value_t = 32)]
    pub concurrency: u32,
    /// Offered load of the latency run, requests per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Duration of the latency run, seconds.
    #[arg(long, default_value_t = 10)]
    pub rate_seconds: u32,
    /// Requests of the warm-up.
    #[arg(long, default_value_t = 200)]
    pub warmup: u32,
    /// Reads of one case's page in the read run (three equal parts; 0: no read run).
    #[arg(long, default_value_t = 1500)]
    pub reads: u32,
    /// Offered rate of the read run, reads per second.
    #[arg(long, default_value_t = 50.0)]
    pub read_rate: f64,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

const REQUESTER: NodeId = NodeId::DE;
const RESPONDER: NodeId = NodeId::HU;

fn body(seq: u32) -> Value {
    json!({
        "responder": "HU-ENKK",
        "area": "PQ",
        "procedure": "PQ-P01",
        "questions": ["PQ-Q01", "PQ-Q02", "PQ-Q03"],
        "free_text": format!("Benchmark request {seq}: bitte bestätigen Sie die Echtheit des Diploms."),
        "subject": {
            "name": format!("Bench Subject {seq}"),
            "date_of_birth": "1984-03-09",
            "details": {"diploma": format!("BENCH-{seq}")}
        },
        "answer_by": "2099-12-31",
    })
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    /// One create-and-send; returns its latency when HU has it durably.
    async fn create(&self, seq: u32) -> Result<f64> {
        let t = Instant::now();
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&body(seq))
            .send()
            .await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        if status.as_u16() != 201 {
            bail!("create {seq}: HTTP {status}: {v}");
        }
        if v["delivery"][0]["outcome"] != "accepted" {
            bail!("create {seq}: not delivered: {v}");
        }
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }
}

/// `imi-node users add` of an authority user `bench` of `authority` on `node`; its token.
pub(crate) fn add_user(
    bin: &std::path::Path,
    dir: &std::path::Path,
    node: NodeId,
    authority: &str,
) -> Result<String> {
    let out = std::process::Command::new(bin)
        .args(["users", "add", "--config"])
        .arg(dir.join(node.as_str()).join("node.toml"))
        .args([
            "--id",
            "bench",
            "--authority",
            authority,
            "--role",
            "authority_user",
            "--json",
        ])
        .output()?;
    if !out.status.success() {
        bail!("users add: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["token"].as_str().context("token")?.to_owned())
}

/// `count` requests from `concurrency` clients; latencies in ms.
async fn closed_loop(
    client: &Arc<Client>,
    first: u32,
    count: u32,
    concurrency: u32,
) -> Result<Vec<f64>> {
    let next = Arc::new(AtomicU32::new(first));
    let end = first + count;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= end {
                    break;
                }
                lat.push(client.create(seq).await?);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::with_capacity(count as usize);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

/// Requests at a fixed rate, each timed from its scheduled start.
async fn open_loop(client: &Arc<Client>, first: u32, rate: f64, seconds: u32) -> Result<Vec<f64>> {
    let n = (rate * f64::from(seconds)).round() as u32;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let due = start + Duration::from_secs_f64(f64::from(i) / rate);
        tokio::time::sleep_until(due.into()).await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.create(first + i).await?;
            Ok::<_, anyhow::Error>(due.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut lat = Vec::with_capacity(n as usize);
    for t in tasks {
        lat.push(t.await??);
    }
    Ok(lat)
}

/// Runs the benchmark; prints one JSON object on stdout.
pub async fn run(args: &ApiArgs) -> Result<bool> {
    let bin = federation::node_binary()?;
    let tmp = tempfile::Builder::new()
        .prefix("imi-bench-api-")
        .tempdir()?;
    let dir = tmp.path().to_path_buf();
    let members = [REQUESTER, RESPONDER];
    let base = federation::free_base_port(members.len())?;
    federation::init_federation(&bin, &dir, &members, base)?;
    let mut fed = Federation::start(&bin, &dir, &members, base)?;
    let result = measure(&mut fed, &bin, &dir, args).await;
    let reports = fed.stop(Duration::from_secs(20)).await;
    let clean = reports.iter().all(|r| r.clean());
    let mut out = result?;
    out["nodes_stopped_cleanly"] = json!(clean);
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    if let Some(p) = &args.json_out {
        std::fs::write(p, &text)?;
    }
    Ok(clean)
}

async fn measure(
    fed: &mut Federation,
    bin: &std::path::Path,
    dir: &std::path::Path,
    args: &ApiArgs,
) -> Result<Value> {
    fed.wait_live(Duration::from_secs(60)).await?;
    fed.wait_ready(Duration::from_secs(60)).await?;
    let token = add_user(bin, dir, REQUESTER, "DE-BY-BLZK")?;
    let client = Arc::new(Client {
        http: fed.client().clone(),
        url: fed.url(REQUESTER, "/api/v1/requests?wait=delivered")?,
        token,
    });
    eprintln!(
        "imi-sim bench api: DE → HU, warm-up {} requests",
        args.warmup
    );
    closed_loop(&client, 0, args.warmup, 4).await?;
    let first = args.warmup;
    let t = Instant::now();
    let mut sat = closed_loop(&client, first, args.requests, args.concurrency).await?;
    let wall = t.elapsed().as_secs_f64();
    let throughput = f64::from(args.requests) / wall;
    let (sat_p50, sat_p99) = ui::p50_p99(&mut sat);
    eprintln!(
        "  saturation: {} requests, {} clients: {throughput:.0} req/s, p50 {sat_p50:.2} ms, p99 {sat_p99:.2} ms",
        args.requests, args.concurrency
    );
    let mut at_rate =
        open_loop(&client, first + args.requests, args.rate, args.rate_seconds).await?;
    let (p50, p99) = ui::p50_p99(&mut at_rate);
    eprintln!(
        "  at {} req/s for {} s: p50 {p50:.2} ms, p99 {p99:.2} ms",
        args.rate, args.rate_seconds
    );
    let reads = read_run(fed, &client, args).await?;
    Ok(json!({
        "reads": reads,
        "requests_per_s": round(throughput, 1),
        "saturation_requests": args.requests,
        "saturation_clients": args.concurrency,
        "p50_ms_saturation": round(sat_p50, 3),
        "p99_ms_saturation": round(sat_p99, 3),
        "offered_rate_per_s": args.rate,
        "offered_requests": at_rate.len(),
        "p50_ms_at_rate": round(p50, 3),
        "p99_ms_at_rate": round(p99, 3),
        "measures": "POST /api/v1/requests?wait=delivered on DE until HU's signed receipt (HU stored it durably) is back",
    }))
}

/// Reads the page of one case `args.reads` times at `args.read_rate` per second, one at a
/// time (each timed from its scheduled start), in three equal parts; per part, the
/// requester node's CPU and context switches per read.
async fn read_run(fed: &Federation, client: &Client, args: &ApiArgs) -> Result<Value> {
    let part = args.reads / 3;
    if part == 0 {
        return Ok(json!([]));
    }
    // A case of its own, read only here.
    let created: Value = client
        .http
        .post(&client.url)
        .bearer_auth(&client.token)
        .json(&body(u32::MAX))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().context("created case id")?;
    let url = fed.url(REQUESTER, &format!("/api/v1/requests/{id}"))?;
    let pid = fed.node(REQUESTER)?.pid();
    let tck = federation::procfs::clk_tck();
    let mut parts = Vec::new();
    for n in 0..3u32 {
        let (cpu0, cs0) = (
            federation::procfs::cpu_ticks(pid).unwrap_or(0),
            federation::procfs::context_switches(pid),
        );
        let start = Instant::now();
        let mut lat = Vec::with_capacity(part as usize);
        for i in 0..part {
            let due = start + Duration::from_secs_f64(f64::from(i) / args.read_rate);
            tokio::time::sleep_until(due.into()).await;
            let resp = client
                .http
                .get(&url)
                .bearer_auth(&client.token)
                .send()
                .await?;
            let status = resp.status();
            resp.bytes().await?;
            if status.as_u16() != 200 {
                bail!("read {}: HTTP {status}", n * part + i);
            }
            lat.push(due.elapsed().as_secs_f64() * 1000.0);
        }
        let cpu = federation::procfs::cpu_ticks(pid)
            .unwrap_or(0)
            .saturating_sub(cpu0);
        let cs = federation::procfs::context_switches(pid).saturating_sub(cs0);
        let (p50, p99) = ui::p50_p99(&mut lat);
        let per = f64::from(part);
        let cpu_us = cpu as f64 / tck * 1e6 / per;
        eprintln!(
            "  reads {}–{} of one case at {} per s: {cpu_us:.0} µs of CPU and {:.1} context switches per read on DE, p50 {p50:.2} ms, p99 {p99:.2} ms",
            n * part + 1,
            (n + 1) * part,
            args.read_rate,
            cs as f64 / per
        );
        parts.push(json!({
            "reads_before": n * part,
            "reads": part,
            "cpu_us_per_read": round(cpu_us, 0),
            "context_switches_per_read": round(cs as f64 / per, 2),
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
        }));
    }
    Ok(Value::Array(parts))
}

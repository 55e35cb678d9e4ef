//! `imi-sim bench flood`: one peer floods a node; do the others still get served? Three real
//! nodes on loopback: AT sends DE a steady offered load and its round trips are measured,
//! first alone, then while CY (its delivery window raised to 1024 envelopes in flight, so it
//! presses as hard as a hostile peer may) sends DE as fast as it can. The figure is the ratio
//! of AT's p99 round trip under the flood to its p99 alone (target ≤ 2), with what DE did
//! with the flood (accepted, refused `quota_exceeded`, shed). See `BENCHMARKS.md`.
use crate::bench::round;
use crate::federation::{self, Federation};
use crate::ui::Style;
use anyhow::{Context, Result, bail};
use imi_protocol::NodeId;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of `imi-sim bench flood`.
#[derive(Debug, Clone, clap::Args)]
pub struct FloodArgs {
    /// AT's offered load, messages per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of each measured run (alone, then under the flood).
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Body size of AT's messages, bytes.
    #[arg(long, default_value_t = 1024)]
    pub body: usize,
    /// Body size of the flood's messages, bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    pub flood_body: usize,
    /// Envelopes in flight from the flooding node.
    #[arg(long, default_value_t = 1024)]
    pub flood_window: usize,
    /// Envelopes of the flood (it should outlast the measured run).
    #[arg(long, default_value_t = 20_000)]
    pub flood_messages: u32,
    /// Override a node setting in every node's node.toml (`--set engine.max_inbound_per_peer=16`);
    /// for experiments only: the published figures use the defaults.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Parent of the temporary federation directory (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the flooder's data directory on the shared disk. By default it is on tmpfs
    /// (`/dev/shm`, when there is one): the flooder writes every envelope it floods (20,000 ×
    /// 16 KiB and its WAL), and on one machine those writes would queue before AT's and DE's
    /// fsyncs on the disk they share, which separate machines do not.
    #[arg(long)]
    pub flooder_on_shared_disk: bool,
}

const SENDER: NodeId = NodeId::AT;
const TARGET: NodeId = NodeId::DE;
const FLOODER: NodeId = NodeId::CY;

fn sum(m: &std::collections::BTreeMap<String, f64>, prefix: &str, needle: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(needle))
        .map(|(_, v)| v)
        .sum()
}

/// Seconds AT sends under the flood before the measured run (see `measure`).
const ONSET_SECONDS: u32 = 2;

async fn offered(fed: &Federation, args: &FloodArgs, what: &str) -> Result<(f64, f64)> {
    offered_for(fed, args, args.seconds, what).await
}

/// AT's offered load for `seconds`: p50 and p99 of the round trips, ms.
async fn offered_for(
    fed: &Federation,
    args: &FloodArgs,
    seconds: u32,
    what: &str,
) -> Result<(f64, f64)> {
    let count = ((args.rate * f64::from(seconds)).round() as u32).max(1);
    let r = fed
        .diag(
            SENDER,
            &json!({"to": TARGET, "count": count, "wait": true, "body_bytes": args.body, "rate_per_s": args.rate}),
        )
        .await
        .with_context(|| format!("{what}: {SENDER} → {TARGET}"))?;
    if r.accepted != r.sent || r.unanswered > 0 {
        bail!(
            "{what}: sent {}, accepted {}, rejected {:?}, unanswered {}",
            r.sent,
            r.accepted,
            r.rejected_codes,
            r.unanswered
        );
    }
    let rtt = r.rtt_ms.context("no round-trip times")?;
    Ok((rtt.p50, rtt.p99))
}

/// Runs the flood benchmark and prints its JSON result on stdout.
pub async fn run(args: &FloodArgs) -> Result<bool> {
    let st = Style::detect(false);
    let bin = federation::node_binary()?;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    let tmp = tempfile::Builder::new()
        .prefix("imi-bench-flood-")
        .tempdir_in(&parent)?;
    let dir = tmp.path().to_path_buf();
    let members = [SENDER, TARGET, FLOODER];
    let base = federation::free_base_port(members.len())?;
    federation::init_federation(&bin, &dir, &members, base)?;
    federation::override_configs(&dir, &members, &args.set)?;
    let mut flooder = vec![
        format!("engine.delivery_window={}", args.flood_window),
        "engine.backoff_initial_ms=10".into(),
        "engine.backoff_max_ms=100".into(),
    ];
    // The flooder's own disk (see `FloodArgs::flooder_on_shared_disk`); removed at the end.
    let shm = std::path::Path::new("/dev/shm");
    let flooder_disk = if args.flooder_on_shared_disk || !shm.is_dir() {
        None
    } else {
        let disk = tempfile::Builder::new()
            .prefix("imi-bench-flood-")
            .tempdir_in(shm)?;
        let data = disk.path().join("data");
        flooder.push(format!(
            "data_dir={}",
            toml::Value::String(data.to_string_lossy().into_owned())
        ));
        Some(disk)
    };
    federation::override_configs(&dir, &[FLOODER], &flooder)?;
    eprintln!(
        "{} {SENDER} → {TARGET} at {} msg/s, alone then while {FLOODER} floods {TARGET} ({} B bodies, {} in flight)",
        st.bold("imi-sim bench flood:"),
        args.rate,
        args.flood_body,
        args.flood_window
    );
    let mut fed = Federation::start(&bin, &dir, &members, base)?;
    let mut placement = place(&fed)?;
    if flooder_disk.is_some() {
        placement.push_str(&format!("; {FLOODER}'s data on tmpfs"));
    }
    eprintln!("  placement: {placement}");
    let result = measure(&mut fed, args).await;
    let reports = fed.stop(Duration::from_secs(20)).await;
    let clean = reports.iter().all(|r| r.clean());
    let mut out = result?;
    out["clean_shutdown"] = json!(clean);
    out["placement"] = json!(placement);
    let met = out["targets"]["p99_ratio"]["met"].as_bool() == Some(true);
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    if let Some(p) = &args.json_out {
        std::fs::write(p, &text)?;
    }
    Ok(met && clean)
}

/// On one machine the three nodes share its cores, and the flooder's own work (sealing and
/// signing its flood) would take CPU from the sender being measured, which a real
/// federation's separate machines do not. With two cores or more: DE alone on CPU 0, AT and
/// CY on CPU 1 with CY at nice 19, so the flooder's work barely touches AT's while DE bears
/// the whole flood. Every thread of each process is placed (`taskset -a`, `renice` per
/// thread).
fn place(fed: &Federation) -> Result<String> {
    let cores = imi_node::config::cores();
    if cores < 2 {
        return Ok("one core: no placement".into());
    }
    let run = |cmd: &str, args: &[String]| -> Result<()> {
        let out = std::process::Command::new(cmd).args(args).output()?;
        if !out.status.success() {
            bail!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    for (node, cpu, nice) in [(TARGET, 0, 0), (SENDER, 1, 0), (FLOODER, 1, 19)] {
        let pid = fed.node(node)?.pid();
        run(
            "taskset",
            &[
                "-a".into(),
                "-p".into(),
                "-c".into(),
                cpu.to_string(),
                pid.to_string(),
            ],
        )?;
        if nice != 0 {
            for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
                let tid = task?.file_name().to_string_lossy().into_owned();
                run("renice", &["-n".into(), nice.to_string(), "-p".into(), tid])?;
            }
        }
    }
    Ok(format!(
        "{TARGET} on CPU 0; {SENDER} on CPU 1; {FLOODER} on CPU 1 at nice 19"
    ))
}

async fn measure(fed: &mut Federation, args: &FloodArgs) -> Result<Value> {
    fed.wait_ready(Duration::from_secs(60)).await?;
    // Warm-up: connections, caches.
    fed.diag(
        SENDER,
        &json!({"to": TARGET, "count": 200, "wait": true, "body_bytes": args.body}),
    )
    .await?;
    let (alone_p50, alone_p99) = offered(fed, args, "alone").await?;
    eprintln!("  alone:       p50 {alone_p50:.2} ms, p99 {alone_p99:.2} ms");

    // The flood, beside the measurement: when it ends (all its envelopes receipted) before
    // the measurement does, that is reported; the measurement is what decides.
    let before = fed.metrics(TARGET).await?;
    let flood_req = json!({"to": TARGET, "count": args.flood_messages, "wait": true, "body_bytes": args.flood_body});
    let flood_ended = std::cell::Cell::new(None);
    let flood = async {
        let r = fed.diag(FLOODER, &flood_req).await;
        flood_ended.set(Some(r.map(|r| r.accepted)));
        std::future::pending::<()>().await;
    };
    let measurement = async {
        // Under way once DE has taken a thousand of CY's envelopes.
        let started = Instant::now();
        loop {
            let m = fed.metrics(TARGET).await?;
            let received = m.get("imi_inbound_received_total").copied().unwrap_or(0.0)
                - before
                    .get("imi_inbound_received_total")
                    .copied()
                    .unwrap_or(0.0);
            // ...and CY has sealed and queued its whole flood: on one machine that work would
            // take AT's core, which a flooder on its own machine does not.
            let c = fed.metrics(FLOODER).await?;
            let queued = sum(&c, "imi_outbox_queue_depth", &format!("peer=\"{TARGET}\""))
                + sum(&c, "imi_delivered_total", &format!("peer=\"{TARGET}\""));
            if received >= 1000.0 && queued >= f64::from(args.flood_messages) {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the flood did not reach {TARGET} within two minutes");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // AT starts sending into a node that was busy with CY alone: its first envelopes
        // meet what DE took from CY while nobody else was sending. Reported, then the steady
        // state is measured.
        let onset = offered_for(fed, args, ONSET_SECONDS, "the onset under the flood").await?;
        let at_start = fed.metrics(TARGET).await?;
        let t = Instant::now();
        let (p50, p99) = offered(fed, args, "under the flood").await?;
        let wall = t.elapsed().as_secs_f64();
        let at_end = fed.metrics(TARGET).await?;
        Ok::<_, anyhow::Error>((at_start, at_end, p50, p99, wall, onset))
    };
    let (at_start, at_end, flood_p50, flood_p99, wall, onset) = tokio::select! {
        r = measurement => r?,
        () = flood => unreachable!("the flood future never completes"),
    };
    let flood_ended_early = match flood_ended.take() {
        Some(Err(e)) => bail!("the flood failed: {e:#}"),
        Some(Ok(_)) => true,
        None => false,
    };
    let delta =
        |prefix: &str, needle: &str| sum(&at_end, prefix, needle) - sum(&at_start, prefix, needle);
    let flood_accepted = delta("imi_diagnostic_applied", "")
        - f64::from(((args.rate * f64::from(args.seconds)).round() as u32).max(1));
    let refused_slots = delta("imi_quota_refused_total", "inbound_slots");
    let refused_bytes = delta("imi_quota_refused_total", "bytes_per_day");
    let shed = delta("imi_quota_refused_total", "pending_bytes");
    let sender_refused = delta("imi_quota_refused_total", &format!("peer=\"{SENDER}\""));
    eprintln!(
        "  onset:       p50 {:.2} ms, p99 {:.2} ms (AT's first {ONSET_SECONDS} s under the flood, not measured)",
        onset.0, onset.1
    );
    eprintln!(
        "  under flood: p50 {flood_p50:.2} ms, p99 {flood_p99:.2} ms; {TARGET} took {:.0} flood msg/s, refused {refused_slots:.0} (slots) + {refused_bytes:.0} (bytes/day), shed {shed:.0}; {SENDER} refused {sender_refused:.0}",
        flood_accepted / wall
    );
    let ratio = flood_p99 / alone_p99.max(0.001);
    let rss = at_end
        .get("imi_process_resident_memory_bytes")
        .copied()
        .unwrap_or(0.0)
        / (1024.0 * 1024.0);
    Ok(json!({
        "offered_rate_per_s": args.rate,
        "seconds": args.seconds,
        "body_bytes": args.body,
        "flood_body_bytes": args.flood_body,
        "flood_window": args.flood_window,
        "settings": args.set,
        "flood_ended_before_the_measurement": flood_ended_early,
        "alone": { "p50_ms": round(alone_p50, 3), "p99_ms": round(alone_p99, 3) },
        "under_flood": { "p50_ms": round(flood_p50, 3), "p99_ms": round(flood_p99, 3) },
        "onset_seconds": ONSET_SECONDS,
        "onset": { "p50_ms": round(onset.0, 3), "p99_ms": round(onset.1, 3) },
        "p99_ratio": round(ratio, 3),
        "flood_accepted_per_s": round(flood_accepted / wall, 1),
        "flood_refused_inbound_slots": refused_slots,
        "flood_refused_bytes_per_day": refused_bytes,
        "sender_refused": sender_refused,
        "flood_shed_pending_bytes": shed,
        "target_rss_mib": round(rss, 1),
        "targets": {
            "p99_ratio": { "target": "<= 2", "met": ratio <= 2.0 },
        },
    }))
}

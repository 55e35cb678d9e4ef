//! `imi-sim bench scoreboard`: `imi-node scoreboard compute` over a generated JSON Lines file
//! of indicator facts (10 million by default), as an operator would run it: wall time and
//! peak resident memory of the process, and the same for a file a tenth the size, to show
//! that memory does not grow with the number of facts. See `BENCHMARKS.md`.
use crate::bench::round;
use crate::federation;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `imi-sim bench scoreboard`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreboardArgs {
    /// Facts in the large file.
    #[arg(long, default_value_t = 10_000_000)]
    pub facts: u64,
    /// Directory for the generated files (default: the system temp dir); needs ~3 GB.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Runs per file (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

const COUNTRIES: [&str; 30] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];
const AREAS: [&str; 5] = ["PQ", "SD", "PW", "PR", "EC"];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn time(ms: u64) -> String {
    imi_scoreboard::Fact::time(ms)
}

/// Writes `n` facts sent in 2021 to `path`.
pub fn generate(path: &Path, n: u64) -> Result<u64> {
    const Y2021: u64 = 1_609_459_200_000;
    const DAY: u64 = 86_400_000;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..n {
        let sent = Y2021 + rng.below(365 * DAY);
        let requester = COUNTRIES[rng.below(30) as usize];
        let responder = COUNTRIES[rng.below(30) as usize];
        let area = AREAS[rng.below(5) as usize];
        let accepted = (rng.below(10) < 8).then(|| sent + rng.below(12 * DAY));
        let withdrawn = (rng.below(50) == 0).then(|| sent + rng.below(20 * DAY));
        let answered = accepted
            .filter(|_| rng.below(10) < 8)
            .map(|a| a + rng.below(30 * DAY));
        let deadline = imi_protocol::dates::Date::of_ms(sent + (7 + rng.below(30)) * DAY);
        let rating = |r: &mut Rng| {
            if r.below(2) == 0 {
                "null".to_owned()
            } else {
                (1 + r.below(5)).to_string()
            }
        };
        let opt = |t: Option<u64>| t.map_or("null".to_owned(), |t| format!("\"{}\"", time(t)));
        let (ti, ef) = (rating(&mut rng), rating(&mut rng));
        writeln!(
            w,
            r#"{{"case":"{i:032x}","area":"{area}","requester":"{requester}","responder":"{responder}","sent_at":"{}","accepted_at":{},"withdrawn_at":{},"answered_at":{},"deadline":"{deadline}","timeliness":{ti},"efforts":{ef}}}"#,
            time(sent),
            opt(accepted),
            opt(withdrawn),
            opt(answered),
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// One run of `imi-node scoreboard compute`.
struct Run {
    wall_s: f64,
    /// CPU seconds of the process (user + system, all threads): unlike the wall time, not
    /// lengthened by a neighbour taking the cores.
    cpu_s: f64,
    peak_rss_mib: f64,
    stdout: String,
}

/// Runs `imi-node scoreboard compute` once: wall and CPU seconds, peak RSS (`VmHWM`).
fn run_once(bin: &Path, facts: &Path) -> Result<Run> {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["scoreboard", "compute", "--period", "2021", "--facts"])
        .arg(facts);
    measure(cmd).context("imi-node scoreboard compute")
}

/// Runs `cmd` to its end, sampling its peak RSS and CPU time; fails if it fails.
fn measure(mut cmd: std::process::Command) -> Result<Run> {
    let t = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting")?;
    let pid = child.id();
    let mut peak_kib = 0u64;
    let mut ticks = 0u64;
    let status = loop {
        if let Some(kib) = federation::procfs::status_field(pid, "VmHWM") {
            peak_kib = peak_kib.max(kib);
        }
        // Read just before each attempt to reap it: an exited child's counters stay
        // readable until it is reaped, so the last reading is its total, or misses only the
        // microseconds between the reading and the exit.
        if let Some(t) = federation::procfs::cpu_ticks(pid) {
            ticks = ticks.max(t);
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = t.elapsed().as_secs_f64();
    let out = child.wait_with_output()?;
    if !status.success() {
        bail!("failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(Run {
        wall_s: wall,
        cpu_s: ticks as f64 / federation::procfs::clk_tck(),
        peak_rss_mib: peak_kib as f64 / 1024.0,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark; prints one JSON object on stdout.
pub async fn run(args: &ScoreboardArgs) -> Result<bool> {
    let bin = federation::node_binary()?;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("imi-bench-sb-")
        .tempdir_in(&parent)?;
    let mut results = Vec::new();
    let mut answers = Vec::new();
    for n in [args.facts / 10, args.facts] {
        let path = tmp.path().join(format!("facts-{n}.jsonl"));
        let t = Instant::now();
        let bytes = generate(&path, n)?;
        eprintln!(
            "imi-sim bench scoreboard: {n} facts, {:.2} GB written in {:.1} s",
            bytes as f64 / 1e9,
            t.elapsed().as_secs_f64()
        );
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let mut peaks = Vec::new();
        for _ in 0..args.runs.max(1) {
            let r = run_once(&bin, &path)?;
            eprintln!(
                "  {n} facts: {:.2} s wall, {:.2} s CPU ({:.2} cores), peak RSS {:.1} MiB",
                r.wall_s,
                r.cpu_s,
                r.cpu_s / r.wall_s.max(1e-9),
                r.peak_rss_mib
            );
            walls.push(r.wall_s);
            cpus.push(r.cpu_s);
            peaks.push(r.peak_rss_mib);
            answers.push(r.stdout);
        }
        let cpu = median(cpus.clone());
        results.push(json!({
            "facts": n,
            "file_bytes": bytes,
            "wall_s_median": round(median(walls.clone()), 3),
            "wall_s_runs": walls.iter().map(|w| round(*w, 3)).collect::<Vec<_>>(),
            "cpu_s_median": round(cpu, 3),
            "cpu_s_runs": cpus.iter().map(|c| round(*c, 3)).collect::<Vec<_>>(),
            "cpu_us_per_fact": round(cpu * 1e6 / n.max(1) as f64, 3),
            "peak_rss_mib_median": round(median(peaks.clone()), 1),
            "facts_per_s": round(n as f64 / median(walls), 0),
        }));
        std::fs::remove_file(&path)?;
    }
    let large = results.last().cloned().unwrap_or_default();
    let small = results.first().cloned().unwrap_or_default();
    let wall = large["wall_s_median"].as_f64().unwrap_or(f64::MAX);
    let rss_ratio = large["peak_rss_mib_median"].as_f64().unwrap_or(0.0)
        / small["peak_rss_mib_median"]
            .as_f64()
            .unwrap_or(1.0)
            .max(1.0);
    let out = json!({
        "runs": results,
        "cores": imi_node::config::cores(),
        "targets": {
            "wall_s_10m": {"target": "< 10", "met": wall < 10.0},
            "memory_flat": {"target": "peak RSS with 10x the facts within 1.2x", "met": rss_ratio <= 1.2},
        },
    });
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    if let Some(p) = &args.json_out {
        std::fs::write(p, &text)?;
    }
    Ok(wall < 10.0 && rss_ratio <= 1.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU time is the child's own, read before it is reaped: a shell busy in a loop
    /// shows some, and no more than its wall time on the cores there are.
    #[test]
    fn a_run_reports_the_childs_cpu_time_beside_its_wall_time() {
        let mut cmd = std::process::Command::new("sh");
        cmd.args([
            "-c",
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done",
        ]);
        let r = measure(cmd).unwrap();
        assert_eq!(r.stdout.trim(), "done");
        let tick = 1.0 / federation::procfs::clk_tck();
        assert!(r.cpu_s >= tick, "a busy loop uses CPU: {} s", r.cpu_s);
        let cores = imi_node::config::cores() as f64;
        assert!(
            r.cpu_s <= r.wall_s * cores + tick,
            "CPU {} s within wall {} s × {cores} cores",
            r.cpu_s,
            r.wall_s
        );
        assert!(r.peak_rss_mib > 0.0);
    }
}

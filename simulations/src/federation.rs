//! Real `imi-node` processes on loopback: locating the binary, `federation init`, starting
//! the nodes, waiting for `/health/live`, calling the operator API, scraping `/metrics`,
//! and an ordered stop with SIGTERM (SIGKILL only after a grace period).
use anyhow::{Context, Result, anyhow, bail};
use imi_node::diag::DiagResult;
use imi_protocol::NodeId;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `imi-node` binary: `$IMI_NODE_BIN`, else the `imi-node` next to this executable.
pub fn node_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("IMI_NODE_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("IMI_NODE_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("locating the imi-sim executable")?;
    let dir = exe
        .parent()
        .context("the imi-sim executable has no parent directory")?;
    let p = dir.join("imi-node");
    if !p.is_file() {
        bail!(
            "the imi-node binary was not found at {}: build it in the same profile first \
             (`cargo build -p imi-node`, or `cargo build --release -p imi-node` for benchmarks) \
             or point IMI_NODE_BIN at it",
            p.display()
        );
    }
    Ok(p)
}

/// Runs `imi-node federation init` for `members` into `out`.
pub fn init_federation(bin: &Path, out: &Path, members: &[NodeId], base_port: u16) -> Result<()> {
    init_federation_with(bin, out, members, base_port, &[])
}

/// [`init_federation`] with more arguments for `federation init`.
pub fn init_federation_with(
    bin: &Path,
    out: &Path,
    members: &[NodeId],
    base_port: u16,
    extra: &[String],
) -> Result<()> {
    let mut cmd = Command::new(bin);
    cmd.args(["federation", "init", "--out"])
        .arg(out)
        .arg("--base-port")
        .arg(base_port.to_string())
        .args(extra);
    if members == NodeId::ALL {
        cmd.arg("--all");
    } else {
        let list: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
        cmd.arg("--members").arg(list.join(","));
    }
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} federation init", bin.display()))?;
    if !output.status.success() {
        bail!(
            "`imi-node federation init` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The async workers each of `nodes` nodes sharing this machine gets: its cores divided
/// among them, at least one. On two cores the 31 nodes of a scenario get one each: with two,
/// every task woken on one worker woke the other to look for work: a quarter of the year at
/// the full year's rate took 7 % more node CPU, 2.4 times the futex calls per envelope and
/// 20 MiB more memory (BENCHMARKS.md, *One async worker per node, measured again*).
pub fn workers_per_node(nodes: usize) -> usize {
    (imi_node::config::cores() / nodes.max(1)).max(1)
}

/// The `runtime.worker_threads` setting of [`workers_per_node`] for `nodes` nodes, as an
/// override for [`override_configs`] (the scenarios and the diagnostics tour write it).
pub fn shared_cores_setting(nodes: usize) -> String {
    format!("runtime.worker_threads={}", workers_per_node(nodes))
}

/// Applies `key.path=value` overrides (value in TOML syntax, e.g. `engine.delivery_window=256`)
/// to the `node.toml` of every member. The node refuses unknown keys at start.
pub fn override_configs(dir: &Path, members: &[NodeId], sets: &[String]) -> Result<()> {
    if sets.is_empty() {
        return Ok(());
    }
    for id in members {
        let path = dir.join(id.as_str()).join("node.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut doc: toml::Table = text
            .parse()
            .with_context(|| format!("parsing {}", path.display()))?;
        for set in sets {
            let (key, value) = set
                .split_once('=')
                .with_context(|| format!("--set {set}: expected key.path=value"))?;
            let value: toml::Table = format!("v = {value}")
                .parse()
                .with_context(|| format!("--set {set}: the value is not TOML"))?;
            let value = value.get("v").cloned().context("empty value")?;
            let parts: Vec<&str> = key.trim().split('.').collect();
            let (last, path_parts) = parts.split_last().context("empty key")?;
            let mut table = &mut doc;
            for part in path_parts {
                table = table
                    .entry((*part).to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .with_context(|| format!("--set {set}: {part} is not a table"))?;
            }
            table.insert((*last).to_owned(), value);
        }
        let out = format!(
            "# imi-node configuration for {id}, with imi-sim overrides: {}\n{}",
            sets.join(" "),
            toml::to_string_pretty(&doc)?
        );
        std::fs::write(&path, out)?;
    }
    Ok(())
}

/// Checks that the libp2p and HTTPS ports of `members` members from `base` are free.
pub fn check_ports_free(base: u16, members: usize) -> Result<()> {
    for i in 0..members {
        let (p2p, http) = imi_node::init::ports(base, i)?;
        for port in [p2p, http] {
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                bail!(
                    "port {port} on 127.0.0.1 is in use (another federation still running?); \
                     stop it or choose another --base-port"
                );
            }
        }
    }
    Ok(())
}

/// The ports a simulation may use: below the kernel's ephemeral range (or above it when it
/// starts low), as `[from, to)`.
pub fn port_window() -> (u16, u16) {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace();
            Some((
                it.next()?.parse::<u16>().ok()?,
                it.next()?.parse::<u16>().ok()?,
            ))
        })
        .unwrap_or((32768, 60999));
    if lo > 12_000 {
        (10_000, lo)
    } else {
        (hi.saturating_add(1), u16::MAX)
    }
}

/// A base port in [`port_window`] whose `2 * members` ports are free now.
pub fn free_base_port(members: usize) -> Result<u16> {
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    // Below the kernel's ephemeral range (where outgoing connections take their source
    // ports), so that a node restarted on its port finds it free.
    let (from, to) = port_window();
    let room = (u32::from(to.saturating_sub(from)).saturating_sub(members as u32 * 2) / 2).max(1);
    for attempt in 0..64u32 {
        let base = u32::from(from) + (seed.wrapping_add(attempt.wrapping_mul(7919)) % room) * 2;
        let Ok(base) = u16::try_from(base) else {
            continue;
        };
        if check_ports_free(base, members).is_ok() {
            return Ok(base);
        }
    }
    bail!(
        "found no {} free consecutive ports on 127.0.0.1",
        members * 2
    )
}

/// The last `n` lines of a file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts `imi-node run` for `id` (output to `dir/node.log`, appended to on a restart).
fn spawn(bin: &Path, id: NodeId, dir: &Path, append: bool) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(dir.join("node.log"))?;
    Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(dir.join("node.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} for {id}", bin.display()))
}

/// One running node process.
pub struct Node {
    /// Its node id.
    pub id: NodeId,
    /// Its directory (keys, config, `node.log`, `data/`).
    pub dir: PathBuf,
    /// Its HTTPS port.
    pub http_port: u16,
    token: String,
    pid: u32,
    child: Option<Child>,
}

impl Node {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.http_port)
    }

    fn exited(&mut self) -> Result<Option<ExitStatus>> {
        match &mut self.child {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }
}

/// How a node ended.
#[derive(Debug)]
pub struct StopReport {
    /// The node.
    pub id: NodeId,
    /// Exit status, if it exited by itself after SIGTERM.
    pub status: Option<ExitStatus>,
    /// Whether it had to be killed.
    pub killed: bool,
    /// Time from SIGTERM to exit.
    pub elapsed: Duration,
}

impl StopReport {
    /// Exited with status 0 after SIGTERM.
    pub fn clean(&self) -> bool {
        !self.killed && self.status.is_some_and(|s| s.success())
    }
}

/// A set of running nodes and an HTTPS client that trusts the federation CA.
pub struct Federation {
    /// The federation directory.
    pub dir: PathBuf,
    /// The `imi-node` binary.
    bin: PathBuf,
    /// The nodes, in member order.
    pub nodes: Vec<Node>,
    client: reqwest::Client,
}

impl Federation {
    /// Starts `imi-node run` for every member (logs to `DIR/<ID>/node.log`).
    pub fn start(bin: &Path, dir: &Path, members: &[NodeId], base_port: u16) -> Result<Federation> {
        imi_node::install_crypto_provider();
        let client = imi_node::tls::http_client(&dir.join("ca.crt"))?;
        let mut fed = Federation {
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            nodes: Vec::with_capacity(members.len()),
            client,
        };
        for (i, id) in members.iter().enumerate() {
            let (_, http_port) = imi_node::init::ports(base_port, i)?;
            let ndir = dir.join(id.as_str());
            let token = std::fs::read_to_string(ndir.join("operator.token"))
                .with_context(|| format!("reading the operator token of {id}"))?
                .trim()
                .to_owned();
            let child = spawn(bin, *id, &ndir, false)?;
            fed.nodes.push(Node {
                id: *id,
                dir: ndir,
                http_port,
                token,
                pid: child.id(),
                child: Some(child),
            });
        }
        Ok(fed)
    }

    fn node_mut(&mut self, id: NodeId) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| anyhow!("{id} is not a member"))
    }

    /// SIGKILL node `id` and reap it (no shutdown path runs: what a power cut does to
    /// the process, not to the disk).
    pub fn kill(&mut self, id: NodeId) -> Result<()> {
        let node = self.node_mut(id)?;
        let mut child = node
            .child
            .take()
            .with_context(|| format!("{id} is not running"))?;
        if let Some(status) = child.try_wait()? {
            bail!(
                "{id} had exited by itself ({status}) before it was killed; the end of {}:\n{}",
                node.log_path().display(),
                tail(&node.log_path(), 15)
            );
        }
        child.kill().with_context(|| format!("SIGKILL {id}"))?;
        child.wait().with_context(|| format!("reaping {id}"))?;
        Ok(())
    }

    /// SIGTERM node `id` and wait up to `grace` for it to exit (then SIGKILL): an operator
    /// stopping it. Its report says whether it exited cleanly.
    pub async fn terminate(&mut self, id: NodeId, grace: Duration) -> Result<StopReport> {
        let node = self.node_mut(id)?;
        let mut child = node
            .child
            .take()
            .with_context(|| format!("{id} is not running"))?;
        let signalled = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .status();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(StopReport {
                    id,
                    status: Some(status),
                    killed: false,
                    elapsed: signalled.elapsed(),
                });
            }
            if signalled.elapsed() > grace {
                let _ = child.kill();
                return Ok(StopReport {
                    id,
                    status: child.wait().ok(),
                    killed: true,
                    elapsed: signalled.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts node `id` again on its data directory and ports (its log is appended to).
    pub fn restart(&mut self, id: NodeId) -> Result<()> {
        let bin = self.bin.clone();
        let node = self.node_mut(id)?;
        if node.child.is_some() {
            bail!("{id} is still running");
        }
        let child = spawn(&bin, id, &node.dir, true)?;
        node.pid = child.id();
        node.child = Some(child);
        Ok(())
    }

    /// The nodes that exited by themselves (a crash): id and exit status.
    pub fn exited_nodes(&mut self) -> Result<Vec<(NodeId, ExitStatus)>> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let Some(status) = n.exited()? {
                out.push((n.id, status));
            }
        }
        Ok(out)
    }

    /// The operator token of node `id`.
    pub fn operator_token(&self, id: NodeId) -> Result<&str> {
        Ok(&self.node(id)?.token)
    }

    /// Waits until node `id` answers `GET path` with a success status; fails at once if the
    /// process exits meanwhile.
    pub async fn wait_node(&mut self, id: NodeId, path: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let node = self.node_mut(id)?;
            if let Some(status) = node.exited()? {
                bail!(
                    "{id} exited ({status}) before GET {path} succeeded; the end of {}:\n{}",
                    node.log_path().display(),
                    tail(&node.log_path(), 15)
                );
            }
            let url = node.url(path);
            let ok = self
                .client
                .get(url)
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "no success from GET {path} on {id} after {:.0} s",
                    timeout.as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The HTTPS client (trusts the federation CA only).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The URL of `path` on node `id`.
    pub fn url(&self, id: NodeId, path: &str) -> Result<String> {
        Ok(self.node(id)?.url(path))
    }

    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| anyhow!("{id} is not running"))
    }

    fn check_alive(&mut self) -> Result<()> {
        for n in &mut self.nodes {
            if let Some(status) = n.exited()? {
                bail!(
                    "{} exited during start-up ({status}); the end of {}:\n{}",
                    n.id,
                    n.log_path().display(),
                    tail(&n.log_path(), 15)
                );
            }
        }
        Ok(())
    }

    /// Waits until every node answers `GET path` with a success status.
    async fn wait_for(&mut self, path: &str, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let mut ok = vec![false; self.nodes.len()];
        loop {
            self.check_alive()?;
            let checks = self
                .nodes
                .iter()
                .zip(&ok)
                .filter(|(_, ok)| !**ok)
                .map(|(n, _)| {
                    let req = self.client.get(n.url(path)).timeout(Duration::from_secs(3));
                    let id = n.id;
                    async move { (id, req.send().await.is_ok_and(|r| r.status().is_success())) }
                });
            let results = futures::future::join_all(checks).await;
            for (id, good) in results {
                if good
                    && let Some(pos) = self.nodes.iter().position(|n| n.id == id)
                    && let Some(slot) = ok.get_mut(pos)
                {
                    *slot = true;
                }
            }
            if ok.iter().all(|o| *o) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                let missing: Vec<&str> = self
                    .nodes
                    .iter()
                    .zip(&ok)
                    .filter(|(_, ok)| !**ok)
                    .map(|(n, _)| n.id.as_str())
                    .collect();
                bail!(
                    "no success from GET {path} after {:.0} s on {}",
                    timeout.as_secs_f64(),
                    missing.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node answers `GET /health/live`.
    pub async fn wait_live(&mut self, timeout: Duration) -> Result<Duration> {
        self.wait_for("/health/live", timeout).await
    }

    /// Waits until every node answers `GET /health/ready` (store up, a peer connected).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        self.wait_for("/health/ready", timeout).await
    }

    /// `POST /operator/diag/send` on `from` with `req` (a `DiagRequest` as JSON).
    pub async fn diag(&self, from: NodeId, req: &serde_json::Value) -> Result<DiagResult> {
        let node = self.node(from)?;
        let resp = self
            .client
            .post(node.url("/operator/diag/send"))
            .bearer_auth(&node.token)
            .json(req)
            .send()
            .await
            .with_context(|| format!("POST /operator/diag/send on {from}"))?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("{from}: HTTP {status}: {detail}");
        }
        serde_json::from_slice(&body).with_context(|| format!("decoding the DiagResult of {from}"))
    }

    /// `GET /metrics` of `id`, as series → value.
    pub async fn metrics(&self, id: NodeId) -> Result<BTreeMap<String, f64>> {
        let node = self.node(id)?;
        let resp = self
            .client
            .get(node.url("/metrics"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("GET /metrics on {id}"))?;
        if !resp.status().is_success() {
            bail!("GET /metrics on {id}: HTTP {}", resp.status());
        }
        Ok(parse_metrics(&resp.text().await?))
    }

    /// Sends SIGTERM to every node, waits up to `grace` for each to exit, SIGKILLs the rest.
    pub async fn stop(&mut self, grace: Duration) -> Vec<StopReport> {
        let mut pids = Vec::new();
        for n in &mut self.nodes {
            if n.child.is_some() && matches!(n.exited(), Ok(None)) {
                pids.push(n.pid.to_string());
            }
        }
        let signalled = Instant::now();
        let term_ok = pids.is_empty()
            || Command::new("kill")
                .arg("-TERM")
                .args(&pids)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let deadline = signalled + if term_ok { grace } else { Duration::ZERO };
        let mut reports = Vec::with_capacity(self.nodes.len());
        for n in &mut self.nodes {
            let Some(mut child) = n.child.take() else {
                continue;
            };
            let mut report = StopReport {
                id: n.id,
                status: None,
                killed: false,
                elapsed: Duration::ZERO,
            };
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        report.status = Some(status);
                        report.elapsed = signalled.elapsed();
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => {
                        let _ = child.kill();
                        report.status = child.wait().ok();
                        report.killed = true;
                        report.elapsed = signalled.elapsed();
                        break;
                    }
                }
            }
            reports.push(report);
        }
        reports
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        // Only reached with live children if something failed before `stop`.
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                if matches!(c.try_wait(), Ok(None)) {
                    let _ = c.kill();
                }
                let _ = c.wait();
            }
        }
    }
}

/// Parses the Prometheus/OpenMetrics text format into series (name with labels) → value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, rest) = match line.rfind('}') {
            Some(end) => line.split_at(end + 1),
            None => match line.split_once(' ') {
                Some(pair) => pair,
                None => continue,
            },
        };
        if let Some(Ok(v)) = rest.split_whitespace().next().map(str::parse::<f64>) {
            out.insert(series.trim().to_owned(), v);
        }
    }
    out
}

/// Readers of `/proc` (Linux) for the benchmark.
pub mod procfs {
    use std::collections::BTreeMap;

    /// A numeric field of `/proc/<pid>/status`, e.g. `VmHWM` (in KiB) or `Threads`.
    pub fn status_field(pid: u32, field: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// A process's resident memory split by kind, in MiB: `rss`, `anon` (its own: heap,
    /// stacks), `file` (mapped files, mostly the binary's code pages, shared by every process
    /// that maps them) from `/proc/<pid>/status`, and `pss` (shared pages divided among the
    /// processes mapping them) from `/proc/<pid>/smaps_rollup`.
    pub fn memory_mib(pid: u32) -> serde_json::Value {
        let mib = |kib: Option<u64>| kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0);
        let pss = pss_kib(pid);
        serde_json::json!({
            "rss": mib(status_field(pid, "VmRSS")),
            "anon": mib(status_field(pid, "RssAnon")),
            "file": mib(status_field(pid, "RssFile")),
            "pss": mib(pss),
        })
    }

    /// A process's proportional set size in KiB, from `/proc/<pid>/smaps_rollup`.
    fn pss_kib(pid: u32) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// Resident memory of the live processes whose command line names `marker` (e.g. a
    /// federation's directory), summed at one instant, in KiB: (RSS, PSS). RSS counts every
    /// page a process maps, so pages shared by several processes (the binary's code) count
    /// once per process; PSS divides each shared page among the processes that map it, so
    /// the PSS sum is the memory the processes take from the machine together.
    pub fn memory_together_kib(marker: &str) -> (u64, u64) {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return (0, 0);
        };
        let (mut rss, mut pss) = (0, 0);
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline);
            if !cmdline.contains("imi-node") || !cmdline.contains(marker) {
                continue;
            }
            rss += status_field(pid, "VmRSS").unwrap_or(0);
            pss += pss_kib(pid).unwrap_or(0);
        }
        (rss, pss)
    }

    /// (comm, utime + stime in clock ticks) of a `stat` file.
    fn stat_ticks(path: &str) -> Option<(String, u64)> {
        let text = std::fs::read_to_string(path).ok()?;
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_owned();
        let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        // Fields after the comm start at field 3 (state); utime is field 14, stime 15.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((comm, utime + stime))
    }

    /// CPU time (user + system) of a process so far, in clock ticks.
    pub fn cpu_ticks(pid: u32) -> Option<u64> {
        stat_ticks(&format!("/proc/{pid}/stat")).map(|(_, t)| t)
    }

    /// CPU ticks of each live thread: tid → (name, ticks).
    pub fn thread_ticks(pid: u32) -> BTreeMap<u64, (String, u64)> {
        let mut out = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return out;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(tid) = name.to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            if let Some(t) = stat_ticks(&format!("/proc/{pid}/task/{tid}/stat")) {
                out.insert(tid, t);
            }
        }
        out
    }

    /// Context switches (voluntary + involuntary) of the live threads of a process.
    pub fn context_switches(pid: u32) -> u64 {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        let mut total = 0;
        for entry in dir.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            for field in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
                total += text
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }

    /// Busy CPU time of the whole machine so far (user, nice, system, irq, softirq, steal from
    /// the first line of `/proc/stat`), in clock ticks.
    pub fn machine_busy_ticks() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        Some([0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum())
    }

    /// Clock ticks per second (`getconf CLK_TCK`, else 100).
    pub fn clk_tck() -> f64 {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(100.0)
    }

    /// The filesystem type holding `path` (longest mount-point prefix in `/proc/mounts`).
    pub fn filesystem_of(path: &std::path::Path) -> Option<String> {
        let path = std::fs::canonicalize(path).ok()?;
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_dev, mnt, fs) = (f.next()?, f.next()?, f.next()?);
                path.starts_with(mnt).then(|| (mnt.len(), fs.to_owned()))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, fs)| fs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openmetrics() {
        let m = parse_metrics(
            "# HELP x y\n# TYPE imi_store_synced_commits counter\nimi_store_synced_commits_total 12\n\
             imi_delivered_total{peer=\"DE\"} 5\nimi_process_resident_memory_bytes 1.5e7\n# EOF\n",
        );
        assert_eq!(m.get("imi_store_synced_commits_total"), Some(&12.0));
        assert_eq!(m.get("imi_delivered_total{peer=\"DE\"}"), Some(&5.0));
        assert_eq!(
            m.get("imi_process_resident_memory_bytes"),
            Some(&15_000_000.0)
        );
    }

    #[test]
    fn reads_own_proc_entries() {
        let pid = std::process::id();
        assert!(procfs::status_field(pid, "VmHWM").is_some_and(|k| k > 0));
        assert!(procfs::cpu_ticks(pid).is_some());
        assert!(!procfs::thread_ticks(pid).is_empty());
        assert!(procfs::context_switches(pid) > 0);
        assert!(procfs::machine_busy_ticks().is_some_and(|t| t > 0));
    }
}

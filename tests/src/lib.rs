//! Harness for end-to-end tests that run real `imi-node` processes.
//!
//! * [`Federation::init`] runs `imi-node federation init` into a fresh temp dir on free ports.
//! * [`Federation::start`] / [`NodeProc::start`] spawn `imi-node run`, stderr/stdout into
//!   `<dir>/logs/<ID>.<n>.log`, and wait until `GET /health/live` answers 200.
//! * [`NodeClient`] talks HTTPS to a node (trusting only the federation's `ca.crt`) and
//!   checks every response of a documented route against `openapi.json` ([`openapi`]).
//! * [`Federation::wait_until`] polls; its timeout is a failure guard only and panics with the
//!   tail of every node log of the federation.
//!
//! The temp dir is kept (and its path printed) when a test panics, or always with
//! `IMI_E2E_KEEP=1`.
// A harness fails loudly on purpose: unwrap, expect, panic and indexing are allowed here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

pub mod browser;
pub mod openapi;

/// Default poll interval of the wait helpers.
pub const POLL: Duration = Duration::from_millis(50);

/// Lines of each node log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

// ---------------------------------------------------------------------------------------------
// Binary and ports
// ---------------------------------------------------------------------------------------------

/// Path of the `imi-node` binary: `$IMI_NODE_BIN`, else `$CARGO_TARGET_DIR/debug/imi-node`,
/// else `<workspace>/target/debug/imi-node`.
pub fn node_bin() -> PathBuf {
    let path = if let Some(p) = std::env::var_os("IMI_NODE_BIN") {
        PathBuf::from(p)
    } else {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from))
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("target")
            });
        target.join("debug").join("imi-node")
    };
    if !path.is_file() {
        panic!(
            "imi-node binary not found at {}: run `cargo build -p imi-node` first \
             (or set IMI_NODE_BIN)",
            path.display()
        );
    }
    path
}

/// Port ranges handed out in this process, so parallel tests never collide with each other.
static TAKEN_PORTS: Mutex<Vec<(u16, u16)>> = Mutex::new(Vec::new());

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The ports tests may use: below the kernel's ephemeral range (where outgoing connections
/// take their source ports), so that a node restarted on its port finds it free. A range
/// inside it failed once on CI: a peer's outgoing connection had taken a stopped node's
/// port before the node came back.
pub fn port_window() -> (u16, u16) {
    let (lo, hi) = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
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

/// Finds a base port `P` in [`port_window`] such that `P .. P+2n+2` are all bindable on
/// 127.0.0.1 and not handed out before in this process.
pub fn free_base_port(n_members: usize) -> u16 {
    let span = (2 * n_members + 2) as u16;
    let (from, to) = port_window();
    let room = u64::from(to.saturating_sub(from).saturating_sub(span)).max(1);
    let mut taken = lock(&TAKEN_PORTS);
    for _ in 0..500 {
        let base = from + (random_u64() % room) as u16;
        let end = base + span;
        if taken.iter().any(|&(b, e)| base < e && b < end) {
            continue;
        }
        let all_free = (base..end).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            taken.push((base, end));
            return base;
        }
    }
    panic!("no free range of {span} consecutive ports found in {from}..{to}");
}

/// Locks a mutex, ignoring poisoning (a failed test must not fail the others).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serialises CPU-heavy tests (the machine has 2 cores).
pub static HEAVY: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------------
// Federation
// ---------------------------------------------------------------------------------------------

/// A federation created with `imi-node federation init` in its own temp dir.
pub struct Federation {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    pub base_port: u16,
    pub members: Vec<String>,
    log_seq: AtomicUsize,
    watched: Mutex<Vec<(String, PathBuf, SharedChild)>>,
}

impl Federation {
    /// `imi-node federation init --out DIR --members A,B,.. --base-port P --host 127.0.0.1`.
    pub fn init(members: &[&str]) -> Federation {
        let bin = node_bin();
        let dir = tempfile::Builder::new()
            .prefix("imi-e2e-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().join("fed");
        fs::create_dir_all(dir.path().join("logs")).expect("create logs dir");
        let base_port = free_base_port(members.len());
        let out = Command::new(&bin)
            .args(["federation", "init", "--out"])
            .arg(&root)
            .args(["--members", &members.join(",")])
            .args(["--base-port", &base_port.to_string()])
            .args(["--host", "127.0.0.1"])
            .stdin(Stdio::null())
            .output()
            .expect("spawn imi-node federation init");
        if !out.status.success() {
            panic!(
                "`imi-node federation init` failed ({}):\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let fed = Federation {
            dir: Some(dir),
            root,
            base_port,
            members: members.iter().map(|s| s.to_string()).collect(),
            log_seq: AtomicUsize::new(0),
            watched: Mutex::new(Vec::new()),
        };
        for m in members {
            for f in [
                "node.toml",
                "identity.key",
                "hpke.key",
                "tls.crt",
                "tls.key",
                "operator.token",
            ] {
                let p = fed.node_dir(m).join(f);
                assert!(p.is_file(), "federation init did not write {}", p.display());
            }
        }
        for f in [
            "governance.key",
            "governance.pub",
            "trust-list.cbor",
            "ca.crt",
        ] {
            let p = fed.root.join(f);
            assert!(p.is_file(), "federation init did not write {}", p.display());
        }
        fed
    }

    /// The `--out` directory of `federation init`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.parent().expect("root has parent").join("logs")
    }

    pub fn node_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn config(&self, id: &str) -> PathBuf {
        self.node_dir(id).join("node.toml")
    }

    fn index(&self, id: &str) -> usize {
        self.members
            .iter()
            .position(|m| m == id)
            .unwrap_or_else(|| panic!("{id} is not a member of {:?}", self.members))
    }

    pub fn p2p_port(&self, id: &str) -> u16 {
        self.base_port + 2 * self.index(id) as u16
    }

    pub fn http_port(&self, id: &str) -> u16 {
        self.p2p_port(id) + 1
    }

    pub fn token(&self, id: &str) -> String {
        let p = self.node_dir(id).join("operator.token");
        fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .trim()
            .to_string()
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        let p = self.root.join("ca.crt");
        fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// HTTPS client for node `id` (works whether or not the node is running).
    pub fn client(&self, id: &str) -> NodeClient {
        NodeClient::new(
            id,
            self.http_port(id),
            &self.ca_pem(),
            Some(self.token(id)),
            self.logs_dir(),
        )
    }

    /// Starts node `id` and waits until it is live.
    pub fn start(&self, id: &str) -> NodeProc {
        NodeProc::start(self, id)
    }

    /// Runs `imi-node <args>` to completion (stdin closed), e.g. CLI subcommands.
    pub fn run_cli(&self, args: &[&str]) -> Output {
        Command::new(node_bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("spawn imi-node {args:?}: {e}"))
    }

    /// [`Federation::run_cli`], and whether it succeeded with its stdout and stderr as one text.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = self.run_cli(args);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The last lines of every node log of this federation.
    pub fn logs_tail(&self) -> String {
        logs_tail(&self.logs_dir())
    }

    /// Polls `f` every [`POLL`] until it returns `Some`; after `timeout` panics with `what`
    /// and the node log tails.
    ///
    /// Also panics at once if a running [`NodeProc`] of this federation exits unexpectedly.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let logs = self.logs_dir();
        wait_until(&logs, what, timeout, || {
            let v = f();
            if v.is_none() {
                check_watched(&self.watched, &logs);
            }
            v
        })
    }

    /// Runs a blocking call (e.g. `diag_send` with `wait=true`) while watching the nodes:
    /// panics at once if a running [`NodeProc`] of this federation exits meanwhile.
    /// (The call runs on a detached thread, so a failing test does not wait for it.)
    pub fn call<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let logs = self.logs_dir();
        let h = std::thread::spawn(f);
        while !h.is_finished() {
            check_watched(&self.watched, &logs);
            std::thread::sleep(POLL);
        }
        h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// `imi-node users add` on node `node`; returns the new user's bearer token.
    pub fn add_user(
        &self,
        node: &str,
        id: &str,
        authority: &str,
        role: &str,
        areas: &[&str],
    ) -> String {
        let config = self.config(node);
        let mut args = vec![
            "users",
            "add",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--id",
            id,
            "--authority",
            authority,
            "--role",
            role,
            "--json",
        ];
        let joined = areas.join(",");
        if !areas.is_empty() {
            args.push("--areas");
            args.push(&joined);
        }
        let out = self.run_cli(&args);
        if !out.status.success() {
            self.fail(&format!(
                "users add {id} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("users add --json output");
        v["token"].as_str().expect("token in output").to_string()
    }

    /// A client of node `node` authenticated as the user with `token`.
    pub fn user(&self, node: &str, token: &str) -> NodeClient {
        self.client(node).with_token(token)
    }

    /// Panics with `msg` and the node logs.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.logs_tail())
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        let keep = std::thread::panicking() || std::env::var_os("IMI_E2E_KEEP").is_some();
        if let Some(dir) = self.dir.take()
            && keep
        {
            let path = dir.keep();
            eprintln!("imi-e2e: kept federation dir {}", path.display());
        }
    }
}

fn logs_tail(logs: &Path) -> String {
    let mut files: Vec<PathBuf> = fs::read_dir(logs)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = String::new();
    for f in files {
        let text = fs::read(&f)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        out.push_str(&format!(
            "----- {} (last {} of {} lines) -----\n",
            f.display(),
            lines.len() - from,
            lines.len()
        ));
        for l in &lines[from..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

fn wait_until<T>(
    logs: &Path,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {:?} waiting for: {what}\n{}",
                timeout,
                logs_tail(logs)
            );
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// Node processes
// ---------------------------------------------------------------------------------------------

/// A child process shared between its [`NodeProc`] and the federation's watch list;
/// `None` once the test stopped, killed or reaped it on purpose.
type SharedChild = Arc<Mutex<Option<Child>>>;

/// A running `imi-node run` process. Dropping it kills the process (SIGKILL).
///
/// While a `NodeProc` is alive its process is *watched*: [`Federation::wait_until`] fails
/// at once if it exits without the test asking for it (crash, or a signal from outside).
pub struct NodeProc {
    pub id: String,
    pid: u32,
    child: SharedChild,
    pub log: PathBuf,
    logs_dir: PathBuf,
    pub client: NodeClient,
}

impl NodeProc {
    /// Spawns `imi-node run --config DIR/<ID>/node.toml` and waits until `/health/live` is 200.
    pub fn start(fed: &Federation, id: &str) -> NodeProc {
        let p = Self::spawn(fed, id);
        p.wait_live(Duration::from_secs(60));
        p
    }

    /// Spawns without waiting.
    pub fn spawn(fed: &Federation, id: &str) -> NodeProc {
        Self::spawn_env(fed, id, &[])
    }

    /// Starts node `id` with extra environment variables and waits until it is live.
    pub fn start_env(fed: &Federation, id: &str, env: &[(&str, &str)]) -> NodeProc {
        let p = Self::spawn_env(fed, id, env);
        p.wait_live(Duration::from_secs(60));
        p
    }

    /// Spawns with extra environment variables, without waiting.
    pub fn spawn_env(fed: &Federation, id: &str, env: &[(&str, &str)]) -> NodeProc {
        let n = fed.log_seq.fetch_add(1, Ordering::SeqCst);
        let log = fed.logs_dir().join(format!("{n:02}-{id}.log"));
        let file = fs::File::create(&log).expect("create log file");
        // Everything that can panic happens before the spawn, so no process leaks.
        let client = fed.client(id);
        let stdout = file.try_clone().expect("clone log file");
        let mut watched = lock(&fed.watched);
        let child = Command::new(node_bin())
            .arg("run")
            .arg("--config")
            .arg(fed.config(id))
            // Plain log files (tracing-subscriber honours NO_COLOR).
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn imi-node run for {id}: {e}"));
        let pid = child.id();
        let child = Arc::new(Mutex::new(Some(child)));
        watched.retain(|(_, _, c)| lock(c).is_some());
        watched.push((id.to_string(), log.clone(), child.clone()));
        NodeProc {
            id: id.to_string(),
            pid,
            child,
            log,
            logs_dir: fed.logs_dir(),
            client,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Takes the child out of the watch list (the test expects it to exit now).
    fn take_child(&self) -> Child {
        lock(&self.child)
            .take()
            .unwrap_or_else(|| panic!("{}: process already stopped", self.id))
    }

    /// Polls `GET /health/live` until 200; panics with logs if the process exits or on timeout.
    pub fn wait_live(&self, timeout: Duration) {
        let what = format!("{} /health/live == 200", self.id);
        wait_until(&self.logs_dir, &what, timeout, || {
            if let Some(Some(status)) = lock(&self.child)
                .as_mut()
                .map(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited with {status} before becoming live\n{}",
                    self.id,
                    logs_tail(&self.logs_dir)
                );
            }
            (self.client.live() == Some(200)).then_some(())
        });
    }

    /// Sends a signal (`TERM`, `INT`, ...) via `kill(1)` (the workspace forbids `unsafe`).
    /// Only valid while the process is unreaped, so the pid cannot have been reused.
    pub fn signal(&self, sig: &str) {
        let guard = lock(&self.child);
        assert!(
            guard.is_some(),
            "{}: signal {sig} after the process was reaped",
            self.id
        );
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid);
    }

    /// Waits (up to `timeout`) for the process to exit by itself, e.g. after [`Self::signal`]
    /// or when it must refuse to start.
    pub fn wait_exit(self, timeout: Duration) -> ExitStatus {
        let mut child = self.take_child();
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return st;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.id,
                    logs_tail(&self.logs_dir)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits (up to `timeout`) for the exit status.
    pub fn stop_within(self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(timeout)
    }

    /// Graceful stop: SIGTERM, expects exit status 0 within 30 s.
    pub fn stop(self) {
        let id = self.id.clone();
        let logs = self.logs_dir.clone();
        let st = self.stop_within(Duration::from_secs(30));
        if !st.success() {
            panic!("{id} exited with {st} after SIGTERM\n{}", logs_tail(&logs));
        }
    }

    /// SIGKILL (`Child::kill`) and reap.
    pub fn kill9(self) {
        let mut c = self.take_child();
        c.kill().expect("SIGKILL node");
        let _ = c.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(mut c) = lock(&self.child).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Panics if a watched node exited while the test expected it to run.
fn check_watched(watched: &Mutex<Vec<(String, PathBuf, SharedChild)>>, logs: &Path) {
    for (id, log, child) in lock(watched).iter() {
        let exited = lock(child)
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(st) = exited {
            let how = match st.signal() {
                Some(sig) => format!("was killed by signal {sig}"),
                None => format!("exited with {st}"),
            };
            panic!(
                "node {id} {how} while the test expected it to be running \
                 (crash, or a SIGTERM/SIGINT from outside the test; log {})\n{}",
                log.display(),
                logs_tail(logs)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTPS client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
pub struct Rtt {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Answer of `POST /operator/diag/send` and of `imi-node diag send --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct DiagSend {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    pub sent: u64,
    #[serde(default)]
    pub accepted: Option<u64>,
    #[serde(default)]
    pub duplicate: Option<u64>,
    #[serde(default)]
    pub rejected: Option<u64>,
    #[serde(default)]
    pub rtt_ms: Option<Rtt>,
    #[serde(default)]
    pub message_ids: Option<Vec<String>>,
}

/// Answer of `GET /operator/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub node: String,
    pub diagnostic_applied: u64,
    pub queues: BTreeMap<String, u64>,
    pub connected: Vec<String>,
    pub trust_list_version: u64,
    /// The IMI protocol version the node speaks.
    pub protocol_version: u16,
    /// Per member that connected since the node started: the version it announced and
    /// whether the node refuses it.
    pub peer_protocols: BTreeMap<String, PeerProtocol>,
}

/// A member's protocol version as `GET /operator/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PeerProtocol {
    pub version: Option<u16>,
    pub refused: bool,
}

/// One sample of the Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses Prometheus / OpenMetrics text (comments and `# EOF` skipped).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let Some(close) = line.rfind('}') else {
                    continue;
                };
                (
                    &line[..open],
                    parse_labels(&line[open + 1..close]),
                    &line[close + 1..],
                )
            }
            None => match line.split_once(char::is_whitespace) {
                Some((n, r)) => (n, BTreeMap::new(), r),
                None => continue,
            },
        };
        let Some(v) = rest.split_whitespace().next() else {
            continue;
        };
        let value = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            _ => match v.parse::<f64>() {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        if !rest.starts_with('"') {
            break;
        }
        let mut val = String::new();
        let mut chars = rest[1..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        val.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = Some(i + 2);
                    break;
                }
                c => val.push(c),
            }
        }
        out.insert(key, val);
        match end {
            Some(e) => rest = &rest[e..],
            None => break,
        }
    }
    out
}

/// HTTPS client for one node's API; trusts only the federation CA.
#[derive(Clone)]
pub struct NodeClient {
    pub id: String,
    pub base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
    logs_dir: PathBuf,
}

impl NodeClient {
    pub fn new(
        id: &str,
        port: u16,
        ca_pem: &[u8],
        token: Option<String>,
        logs_dir: PathBuf,
    ) -> Self {
        // The workspace builds rustls with the aws-lc-rs provider only and reqwest without
        // one; install it as the process default (a no-op if already installed).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ca = reqwest::Certificate::from_pem(ca_pem).expect("parse ca.crt");
        let http = reqwest::blocking::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .https_only(true)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(300))
            .build()
            .expect("build https client");
        NodeClient {
            id: id.to_string(),
            base: format!("https://127.0.0.1:{port}"),
            token,
            http,
            logs_dir,
        }
    }

    /// The same client without the operator token.
    pub fn without_token(&self) -> NodeClient {
        NodeClient {
            token: None,
            ..self.clone()
        }
    }

    /// The same client with another bearer token.
    pub fn with_token(&self, token: &str) -> NodeClient {
        NodeClient {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    fn fail(&self, msg: &str) -> ! {
        panic!("{}: {msg}\n{}", self.id, logs_tail(&self.logs_dir))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self, rb: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Fails the test unless the document describes this response of `method path`:
    /// a documented status, content type and body ([`openapi::Document::check_response`]).
    pub fn check_documented(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
        body: &str,
    ) {
        if let Err(e) = openapi::document().check_response(method, path, status, content_type, body)
        {
            self.fail(&format!(
                "{method} {path} answered {status}, which openapi.json does not describe: {e}"
            ));
        }
    }

    /// Sends a request and reads the answer: status, content type and body, checked
    /// against the document.
    fn send(
        &self,
        method: &str,
        path: &str,
        rb: reqwest::blocking::RequestBuilder,
    ) -> reqwest::Result<(u16, String, String)> {
        let r = rb.send()?;
        let st = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.text()?;
        self.check_documented(method, path, st, &ct, &body);
        Ok((st, ct, body))
    }

    /// GET with the token (if any); returns status and body.
    pub fn get(&self, path: &str) -> reqwest::Result<(u16, String)> {
        let (st, _, body) = self.send("GET", path, self.auth(self.http.get(self.url(path))))?;
        Ok((st, body))
    }

    /// POST JSON with the token (if any); returns status and body.
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Result<(u16, String)> {
        let (st, _, text) = self.send(
            "POST",
            path,
            self.auth(self.http.post(self.url(path))).json(body),
        )?;
        Ok((st, text))
    }

    /// A raw request with the token (if any): method, path, extra headers, body bytes.
    /// Returns status, content type and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> reqwest::Result<(u16, String, String)> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.auth(self.http.request(m, self.url(path)));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        self.send(method, path, rb)
    }

    /// GET a JSON document; panics (with the node logs) unless the status is `want`.
    pub fn get_json_status(&self, path: &str, want: u16) -> serde_json::Value {
        let (st, body) = self
            .get(path)
            .unwrap_or_else(|e| self.fail(&format!("GET {path}: {e}")));
        if st != want {
            self.fail(&format!("GET {path}: status {st}, wanted {want}: {body}"));
        }
        serde_json::from_str(&body)
            .unwrap_or_else(|e| self.fail(&format!("GET {path}: {e}: {body}")))
    }

    /// GET a JSON document that must answer 200.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        self.get_json_status(path, 200)
    }

    /// POST JSON; panics unless the status is `want`; returns the JSON answer.
    pub fn post_status(
        &self,
        path: &str,
        body: &serde_json::Value,
        want: u16,
    ) -> serde_json::Value {
        let (st, text) = self
            .post_json(path, body)
            .unwrap_or_else(|e| self.fail(&format!("POST {path}: {e}")));
        if st != want {
            self.fail(&format!("POST {path}: status {st}, wanted {want}: {text}"));
        }
        serde_json::from_str(&text)
            .unwrap_or_else(|e| self.fail(&format!("POST {path}: {e}: {text}")))
    }

    /// Status code of `GET /health/live`, `None` if unreachable.
    pub fn live(&self) -> Option<u16> {
        let rb = self
            .http
            .get(self.url("/health/live"))
            .timeout(Duration::from_secs(2));
        self.send("GET", "/health/live", rb)
            .ok()
            .map(|(st, _, _)| st)
    }

    /// `GET /health/ready`: status code and parsed JSON body.
    pub fn ready(&self) -> reqwest::Result<(u16, serde_json::Value)> {
        let (st, body) = self.get("/health/ready")?;
        let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
        Ok((st, v))
    }

    pub fn try_metrics(&self) -> reqwest::Result<Vec<Sample>> {
        let (st, body) = self.get("/metrics")?;
        if st != 200 {
            self.fail(&format!("GET /metrics -> {st}: {body}"));
        }
        Ok(parse_metrics(&body))
    }

    pub fn metrics(&self) -> Vec<Sample> {
        self.try_metrics()
            .unwrap_or_else(|e| self.fail(&format!("GET /metrics: {e}")))
    }

    /// Value of the sample `name` whose labels include `labels`; `Err` if the node is
    /// unreachable, `Ok(None)` if no such sample is exposed.
    pub fn try_metric(&self, name: &str, labels: &[(&str, &str)]) -> reqwest::Result<Option<f64>> {
        Ok(find_metric(&self.try_metrics()?, name, labels))
    }

    /// Like [`Self::try_metric`]; panics (with logs) if the node is unreachable.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        find_metric(&self.metrics(), name, labels)
    }

    /// Like [`Self::metric`] but panics, listing the exposed metric names, if it is absent.
    pub fn metric_required(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let samples = self.metrics();
        find_metric(&samples, name, labels).unwrap_or_else(|| {
            let names: HashSet<String> = samples
                .iter()
                .map(|s| format!("{}{:?}", s.name, s.labels))
                .collect();
            let mut names: Vec<_> = names.into_iter().collect();
            names.sort();
            self.fail(&format!(
                "metric {name}{labels:?} not exposed; exposed samples:\n  {}",
                names.join("\n  ")
            ))
        })
    }

    /// Sum of all samples named `name` (all label values).
    pub fn metric_sum(&self, name: &str) -> f64 {
        self.metrics()
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    pub fn try_status(&self) -> Result<Status, String> {
        let (st, body) = self.get("/operator/status").map_err(|e| e.to_string())?;
        if st != 200 {
            return Err(format!("GET /operator/status -> {st}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("bad /operator/status JSON ({e}): {body}"))
    }

    pub fn status(&self) -> Status {
        self.try_status().unwrap_or_else(|e| self.fail(&e))
    }

    /// `POST /operator/diag/send {"to","count","wait"}`.
    pub fn diag_send(&self, to: &str, count: u64, wait: bool) -> DiagSend {
        self.diag_send_body(serde_json::json!({"to": to, "count": count, "wait": wait}))
    }

    /// `POST /operator/diag/send {"to","count","wait":true,"in_flight"}`: at most
    /// `in_flight` unreceipted at once, end to end.
    pub fn diag_send_windowed(&self, to: &str, count: u64, in_flight: u32) -> DiagSend {
        self.diag_send_body(
            serde_json::json!({"to": to, "count": count, "wait": true, "in_flight": in_flight}),
        )
    }

    fn diag_send_body(&self, body: serde_json::Value) -> DiagSend {
        let (st, text) = self
            .post_json("/operator/diag/send", &body)
            .unwrap_or_else(|e| self.fail(&format!("POST /operator/diag/send: {e}")));
        if st != 200 {
            self.fail(&format!("POST /operator/diag/send {body} -> {st}: {text}"));
        }
        serde_json::from_str(&text)
            .unwrap_or_else(|e| self.fail(&format!("bad diag/send JSON ({e}): {text}")))
    }

    /// The node's persistent applied-diagnostics count (`imi_diagnostic_applied`).
    pub fn applied(&self) -> u64 {
        self.metric_required("imi_diagnostic_applied", &[]) as u64
    }

    pub fn try_applied(&self) -> Option<u64> {
        self.try_metric("imi_diagnostic_applied", &[])
            .ok()
            .flatten()
            .map(|v| v as u64)
    }

    /// Outbox depth towards `peer` (`imi_outbox_queue_depth{peer}`); `None` if the node is
    /// unreachable or does not expose the series (never read as 0).
    pub fn try_queue_depth(&self, peer: &str) -> Option<u64> {
        self.try_metric("imi_outbox_queue_depth", &[("peer", peer)])
            .ok()
            .flatten()
            .map(|v| v as u64)
    }
}

pub fn find_metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let text = "# HELP imi_x x\n# TYPE imi_x counter\nimi_delivered_total{peer=\"DE\"} 12\n\
                    imi_inbound_rejected_total{code=\"bad \\\"sig\\\"\",peer=\"AT\"} 3 1700000000\n\
                    imi_diagnostic_applied 10000\nimi_b 1.5e-3\n# EOF\n";
        let s = parse_metrics(text);
        assert_eq!(
            find_metric(&s, "imi_delivered_total", &[("peer", "DE")]),
            Some(12.0)
        );
        assert_eq!(
            find_metric(&s, "imi_delivered_total", &[("peer", "AT")]),
            None
        );
        assert_eq!(
            find_metric(&s, "imi_inbound_rejected_total", &[("code", "bad \"sig\"")]),
            Some(3.0)
        );
        assert_eq!(
            find_metric(&s, "imi_diagnostic_applied", &[]),
            Some(10000.0)
        );
        assert_eq!(find_metric(&s, "imi_b", &[]), Some(0.0015));
    }
}

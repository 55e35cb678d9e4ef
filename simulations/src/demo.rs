//! `imi-sim demo`: all 31 nodes on loopback; every node sends diagnostics to every other
//! node through its operator API; a 31×31 table of round-trip times; the directory: the 30
//! national replicas converge (equal digests) and a Hungarian user searches them in German,
//! Greek and French; a clean stop.
use crate::federation::{self, Federation, StopReport};
use crate::ui::{self, Style};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use imi_node::diag::DiagResult;
use imi_protocol::NodeId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `imi-sim demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Federation directory; removed and recreated.
    #[arg(long, default_value = "data/demo")]
    pub dir: PathBuf,
    /// First port: member i gets libp2p port base+2i and HTTPS port base+2i+1 (below Linux's
    /// ephemeral port range, as for `imi-sim run`).
    #[arg(long, default_value_t = 17000)]
    pub base_port: u16,
    /// Diagnostic envelopes per ordered pair of nodes.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Operator requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

/// How long one node may take to answer one pair's request.
const PAIR_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the 31 nodes may take to come up.
const LIVE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a node may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(20);

type PairResult = Result<DiagResult, String>;

/// Runs the demo; `Ok(false)` if a pair failed or a node did not stop cleanly.
pub async fn run(args: &DemoArgs) -> Result<bool> {
    let st = Style::detect(true);
    let bin = federation::node_binary()?;
    let members = NodeId::ALL;
    let n = members.len();
    let (_, last_port) = imi_node::init::ports(args.base_port, n.saturating_sub(1))?;
    println!(
        "{} — {n} nodes on 127.0.0.1, ports {}–{last_port}, data in {}",
        st.bold("IMI federation demo"),
        args.base_port,
        args.dir.display()
    );
    federation::check_ports_free(args.base_port, n)?;
    prepare_dir(&args.dir)?;

    let t = Instant::now();
    federation::init_federation(&bin, &args.dir, members, args.base_port)?;
    // The cores shared among the nodes, as in the scenarios.
    federation::override_configs(&args.dir, members, &[federation::shared_cores_setting(n)])?;
    step(
        &st,
        &format!(
            "federation initialised: governance key, {n} node identities, signed trust list, CA"
        ),
        t,
    );
    let mut fed = Federation::start(&bin, &args.dir, members, args.base_port)?;
    let exchanged = exchange(&mut fed, args, &st).await;
    let toured = match &exchanged {
        Ok(true) => directory_tour(&fed, &bin, &args.dir, &st).await,
        _ => Ok(false),
    };

    let t = Instant::now();
    let reports = fed.stop(STOP_GRACE).await;
    let clean = report_stop(&st, &reports, t);
    let pairs_ok = exchanged?;
    let toured = toured.unwrap_or_else(|e| {
        println!("{}", st.red(&format!("directory: {e:#}")));
        false
    });
    if !pairs_ok {
        let logs = fed.dir.join("<ID>").join("node.log");
        println!(
            "{}",
            st.red(&format!(
                "some pairs failed; see the node logs ({})",
                logs.display()
            ))
        );
    }
    Ok(pairs_ok && toured && clean)
}

/// The directory at work: the 30 national nodes converge to one replica (equal digests),
/// then a Hungarian user searches it in German, Greek and French.
async fn directory_tour(fed: &Federation, bin: &Path, dir: &Path, st: &Style) -> Result<bool> {
    let t = Instant::now();
    let national: Vec<NodeId> = NodeId::ALL
        .iter()
        .copied()
        .filter(|n| *n != NodeId::EU)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (count, digest) = loop {
        let mut digests = std::collections::BTreeSet::new();
        let mut counts = std::collections::BTreeSet::new();
        for n in &national {
            let v: serde_json::Value = fed
                .client()
                .get(fed.url(*n, "/operator/directory")?)
                .bearer_auth(fed.operator_token(*n)?)
                .send()
                .await?
                .json()
                .await?;
            digests.insert(v["digest"].as_str().unwrap_or("").to_owned());
            counts.insert(v["authorities"].as_u64().unwrap_or(0));
        }
        if digests.len() == 1 && counts.len() == 1 {
            let d = digests.into_iter().next().unwrap_or_default();
            break (counts.into_iter().next().unwrap_or(0), d);
        }
        if Instant::now() > deadline {
            bail!("the national nodes' directories did not converge within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    step(
        st,
        &format!(
            "directory: each node published its own authorities, signed; all 30 national replicas identical ({count} authorities, digest {}…)",
            digest.get(..12).unwrap_or("")
        ),
        t,
    );
    let token = crate::bench_api::add_user(bin, dir, NodeId::HU, "HU-NC")?;
    for (q, lang) in [("Zahnarzt", "de"), ("οδοντίατρος", "el"), ("medecin", "fr")] {
        let mut url = reqwest::Url::parse(&fed.url(NodeId::HU, "/api/v1/directory/search")?)?;
        url.query_pairs_mut()
            .append_pair("q", q)
            .append_pair("lang", lang)
            .append_pair("limit", "3");
        let v: serde_json::Value = fed
            .client()
            .get(url)
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let hits: Vec<String> = v["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| {
                        format!(
                            "{} {}",
                            i["id"].as_str().unwrap_or(""),
                            i["name"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if hits.is_empty() {
            bail!("a search for {q:?} ({lang}) on HU found nothing: {v}");
        }
        println!(
            "  search on HU, {q:?} ({lang}): {} of {} — {}",
            hits.len(),
            v["total"],
            hits.join("; ")
        );
    }
    Ok(true)
}

fn step(st: &Style, what: &str, since: Instant) {
    println!(
        "{} {what} {}",
        st.green("✓"),
        st.dim(&format!("({:.1} s)", since.elapsed().as_secs_f64()))
    );
}

/// Removes and recreates the directory, refusing anything that is not a former federation.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = dir
            .read_dir()
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        let federation = dir.join("trust-list.cbor").is_file() || dir.join("ca.crt").is_file();
        if !empty && !federation {
            bail!(
                "{} exists and does not look like a federation directory; refusing to delete it",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// The ordered pairs, interleaved so that concurrent requests involve different nodes.
fn pairs(members: &[NodeId]) -> Vec<(NodeId, NodeId)> {
    let n = members.len();
    let mut out = Vec::with_capacity(n * n.saturating_sub(1));
    for d in 1..n {
        for (i, from) in members.iter().enumerate() {
            if let Some(to) = members.get((i + d) % n) {
                out.push((*from, *to));
            }
        }
    }
    out
}

fn pair_ok(r: &PairResult, count: u32) -> bool {
    r.as_ref()
        .is_ok_and(|d| d.accepted == u64::from(count) && d.rejected == 0 && d.unanswered == 0)
}

async fn exchange(fed: &mut Federation, args: &DemoArgs, st: &Style) -> Result<bool> {
    let t = Instant::now();
    let n = fed.nodes.len();
    fed.wait_live(LIVE_TIMEOUT).await?;
    step(
        st,
        &format!("{n} imi-node processes live (GET /health/live)"),
        t,
    );

    let members: Vec<NodeId> = fed.nodes.iter().map(|x| x.id).collect();
    let pairs = pairs(&members);
    let total = pairs.len();
    let progress = Style::detect(false).is_color();
    let t = Instant::now();
    let fed_ref = &*fed;
    let count = args.count;
    let mut results: BTreeMap<(NodeId, NodeId), PairResult> = BTreeMap::new();
    let mut stream = futures::stream::iter(pairs)
        .map(|(from, to)| async move {
            let req = serde_json::json!({ "to": to, "count": count, "wait": true });
            let r = match tokio::time::timeout(PAIR_TIMEOUT, fed_ref.diag(from, &req)).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err(format!("no answer within {} s", PAIR_TIMEOUT.as_secs())),
            };
            (from, to, r)
        })
        .buffer_unordered(args.concurrency.max(1));
    while let Some((from, to, r)) = stream.next().await {
        results.insert((from, to), r);
        if progress && (results.len().is_multiple_of(10) || results.len() == total) {
            eprint!(
                "\r  exchanging diagnostics … {}/{total} pairs",
                results.len()
            );
        }
    }
    drop(stream);
    if progress {
        eprint!("\r\x1b[2K");
    }
    let elapsed = t.elapsed();
    step(
        st,
        &format!(
            "{total} ordered pairs × {count} signed diagnostic envelope{} via POST /operator/diag/send, {} at a time",
            if count == 1 { "" } else { "s" },
            args.concurrency.max(1)
        ),
        t,
    );

    let mut cells: Vec<f64> = results
        .values()
        .filter(|r| pair_ok(r, count))
        .filter_map(|r| r.as_ref().ok()?.rtt_ms.as_ref().map(|x| x.p50))
        .collect();
    let (p50, p99) = ui::p50_p99(&mut cells);
    println!();
    print_table(st, &members, &results, count, p99);

    let ok = results.values().filter(|r| pair_ok(r, count)).count();
    let sum = |f: fn(&DiagResult) -> u64| -> u64 {
        results
            .values()
            .filter_map(|r| r.as_ref().ok())
            .map(f)
            .sum()
    };
    let (sent, accepted, rejected) = (sum(|d| d.sent), sum(|d| d.accepted), sum(|d| d.rejected));
    let (duplicate, unanswered) = (sum(|d| d.duplicate), sum(|d| d.unanswered));
    let errors = results.values().filter(|r| r.is_err()).count();
    let mut extra = String::new();
    if duplicate > 0 {
        extra.push_str(&format!(" · {duplicate} duplicate"));
    }
    if unanswered > 0 {
        extra.push_str(&format!(" · {unanswered} unanswered"));
    }
    if errors > 0 {
        extra.push_str(&format!(" · {errors} requests failed"));
    }
    let pairs_txt = if ok == total {
        st.green(&format!("{total} pairs ok"))
    } else {
        st.red(&format!("{ok}/{total} pairs ok"))
    };
    let rejected_txt = if rejected > 0 {
        st.red(&format!("{rejected} rejected"))
    } else {
        format!("{rejected} rejected")
    };
    println!();
    println!(
        "{} {pairs_txt} · {sent} envelopes · {accepted} accepted · {rejected_txt}{extra} · round trip p50 {p50:.1} ms, p99 {p99:.1} ms · {:.1} s, {:.0} pairs/s",
        st.bold("summary:"),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64().max(1e-9),
    );
    let failures: Vec<String> = results
        .iter()
        .filter(|(_, r)| !pair_ok(r, count))
        .map(|((from, to), r)| match r {
            Ok(d) => {
                let codes: Vec<String> = d
                    .rejected_codes
                    .iter()
                    .map(|(c, k)| format!("{c} ×{k}"))
                    .collect();
                format!(
                    "{from} → {to}: sent {}, accepted {}, rejected {}{}, unanswered {}",
                    d.sent,
                    d.accepted,
                    d.rejected,
                    if codes.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", codes.join(", "))
                    },
                    d.unanswered
                )
            }
            Err(e) => format!("{from} → {to}: {e}"),
        })
        .collect();
    for f in failures.iter().take(12) {
        println!("  {} {f}", st.red("✗"));
    }
    if failures.len() > 12 {
        println!("  … and {} more", failures.len() - 12);
    }
    Ok(failures.is_empty())
}

fn print_table(
    st: &Style,
    members: &[NodeId],
    results: &BTreeMap<(NodeId, NodeId), PairResult>,
    count: u32,
    p99: f64,
) {
    println!(
        "{}",
        st.dim("round trip p50 in ms, sender (row) → receiver (column): seal + sign → durable outbox → libp2p →")
    );
    println!(
        "{}",
        st.dim("verify + decrypt + durable commit at the receiver → signed receipt verified by the sender;  ✗ = not all accepted")
    );
    let mut header = format!("{:>4}", "");
    for to in members {
        header.push_str(&st.bold(&format!("{:>4}", to.as_str())));
    }
    println!("{header}");
    for from in members {
        let mut line = st.bold(&format!("{:>4}", from.as_str()));
        for to in members {
            let cell = if from == to {
                st.dim(&format!("{:>4}", "·"))
            } else {
                match results.get(&(*from, *to)) {
                    Some(r) if pair_ok(r, count) => {
                        let v = r
                            .as_ref()
                            .ok()
                            .and_then(|d| d.rtt_ms.as_ref())
                            .map_or(0.0, |x| x.p50);
                        let s = format!("{:>4}", ui::ms3(v));
                        if v > p99 { st.yellow(&s) } else { s }
                    }
                    _ => st.red(&format!("{:>4}", "✗")),
                }
            };
            line.push_str(&cell);
        }
        println!("{line}");
    }
}

fn report_stop(st: &Style, reports: &[StopReport], since: Instant) -> bool {
    let clean = reports.iter().filter(|r| r.clean()).count();
    let slowest = reports.iter().max_by_key(|r| r.elapsed);
    if clean == reports.len() {
        println!(
            "{} {clean}/{} nodes stopped cleanly on SIGTERM (exit 0) {}",
            st.green("✓"),
            reports.len(),
            st.dim(&format!(
                "({:.1} s{})",
                since.elapsed().as_secs_f64(),
                slowest.map_or(String::new(), |s| format!(
                    ", slowest {} {:.1} s",
                    s.id,
                    s.elapsed.as_secs_f64()
                ))
            ))
        );
        return true;
    }
    println!(
        "{} {clean}/{} nodes stopped cleanly on SIGTERM",
        st.red("✗"),
        reports.len()
    );
    for r in reports.iter().filter(|r| !r.clean()) {
        let what = if r.killed {
            format!("still running after {} s, killed", STOP_GRACE.as_secs())
        } else {
            match r.status {
                Some(s) => format!("exited with {s}"),
                None => "exit status unknown".to_owned(),
            }
        };
        println!("  {} {}: {what}", st.red("✗"), r.id);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ordered_pair_once() {
        let p = pairs(NodeId::ALL);
        assert_eq!(p.len(), 31 * 30);
        let set: std::collections::BTreeSet<_> = p.iter().copied().collect();
        assert_eq!(set.len(), p.len());
        assert!(p.iter().all(|(a, b)| a != b));
        // The first 31 requests come from 31 different senders.
        let senders: std::collections::BTreeSet<_> = p.iter().take(31).map(|(a, _)| *a).collect();
        assert_eq!(senders.len(), 31);
    }

    #[test]
    fn refuses_foreign_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let foreign = tmp.path().join("foreign");
        std::fs::create_dir_all(&foreign).expect("mkdir");
        std::fs::write(foreign.join("precious.txt"), "x").expect("write");
        assert!(prepare_dir(&foreign).is_err());
        assert!(foreign.join("precious.txt").exists());
        std::fs::write(foreign.join("trust-list.cbor"), "x").expect("write");
        prepare_dir(&foreign).expect("former federation is replaced");
        assert!(!foreign.join("precious.txt").exists());
    }
}

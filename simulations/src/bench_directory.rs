//! `imi-sim bench directory`: the federated directory at IMI's real size (12,500 generated
//! authorities, `directory_gen`).
//!
//! 1. **Index** (in this process, the node's code): the tantivy index built from the whole
//!    directory, three times: median build time, the index's size as tantivy accounts it,
//!    and this process's resident memory before and after one build.
//! 2. **Search** (one real node, its seed the whole directory): 32 concurrent clients search
//!    through `GET /api/v1/directory/search` over HTTPS (profession names in a random one of
//!    the 26 languages, cities, one-typo names; a third with a country filter), after a
//!    warm-up; p50/p99 of the client-side round trip, searches per second, the node's peak
//!    resident memory.
//! 3. **Replication** (30 real nodes, each seeded with its own country's authorities only):
//!    the time from starting the processes until every node holds all 12,500 and the 30
//!    replicas are identical (equal digests of `GET /operator/directory`).
//!
//! Targets (issue "The federated authority directory"): search p99 < 10 ms, index build < 5 s,
//! index memory < 64 MiB, replication to 30 nodes < 60 s. One JSON object on stdout.
use crate::bench::round;
use crate::directory_gen;
use crate::federation::{self, Federation, procfs};
use anyhow::{Context, Result, bail};
use imi_domain::Authority;
use imi_protocol::NodeId;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Options of `imi-sim bench directory`.
#[derive(Debug, Clone, clap::Args)]
pub struct DirectoryArgs {
    /// Authorities generated.
    #[arg(long, default_value_t = 12_500)]
    pub authorities: usize,
    /// Seed of the generator and of the queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Concurrent search clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Searches measured.
    #[arg(long, default_value_t = 5000)]
    pub searches: usize,
    /// Searches of the warm-up.
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// Nodes of the replication run (0: skip it).
    #[arg(long, default_value_t = 30)]
    pub nodes: usize,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

fn self_rss_kib() -> u64 {
    procfs::status_field(std::process::id(), "VmRSS").unwrap_or(0)
}

/// Runs the benchmark; prints one JSON object on stdout.
pub async fn run(args: &DirectoryArgs) -> Result<bool> {
    let configs = directory_gen::repo_configs();
    let (catalogue, vocabulary) =
        directory_gen::load_inputs(&configs.join("catalogue"), &configs.join("vocabularies"))?;
    let t = Instant::now();
    let authorities = directory_gen::generate(args.authorities, args.seed, &vocabulary, &catalogue);
    eprintln!(
        "generated {} authorities in {:.2} s",
        authorities.len(),
        t.elapsed().as_secs_f64()
    );
    let vocabulary = Arc::new(vocabulary);

    // 1. The index, in this process.
    let mut builds = Vec::new();
    let rss_before = self_rss_kib();
    let mut kept = None;
    for _ in 0..3 {
        let t = Instant::now();
        let index = imi_directory::SearchIndex::build(
            vocabulary.clone(),
            authorities.iter().map(|a| (a, false)),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        builds.push(t.elapsed().as_secs_f64());
        if kept.is_none() {
            kept = Some(index);
        }
    }
    let rss_after = self_rss_kib();
    let index = kept.context("an index")?;
    let index_bytes = index.searcher_bytes();
    // The same queries as through the API, in this process, one at a time: what the index
    // costs per search, apart from HTTPS, JSON and the clients.
    let qs = queries(2000, args.seed, &authorities, &vocabulary);
    let mut inproc = Vec::with_capacity(qs.len());
    for q in &qs {
        let sq = imi_directory::SearchQuery {
            text: q.text.clone(),
            lang: Some(q.lang.to_owned()),
            country: q.country,
            limit: 20,
            ..Default::default()
        };
        let t = Instant::now();
        let _ = index.search(&sq);
        inproc.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    inproc.sort_by(f64::total_cmp);
    drop(index);
    eprintln!(
        "in-process search: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&inproc, 0.5),
        percentile(&inproc, 0.99)
    );
    let build_s = median(builds.clone());
    eprintln!("index: build median {build_s:.2} s, {index_bytes} bytes");

    let generated = tempfile::Builder::new()
        .prefix("imi-bench-directory-")
        .tempdir()?;
    let file = generated.path().join("directory.toml");
    std::fs::write(&file, directory_gen::to_toml(&authorities, args.seed))?;

    // 2. Search through one node's API.
    let search = search_run(args, &authorities, &vocabulary, &file).await?;

    // 3. Replication to N nodes.
    let replication = if args.nodes >= 2 {
        replication_run(args, &authorities).await?
    } else {
        json!(null)
    };

    let p99 = search["p99_ms"].as_f64().unwrap_or(f64::NAN);
    let index_mib = index_bytes as f64 / 1048576.0;
    let targets = json!({
        "search_p99_under_10_ms": p99 < 10.0,
        "index_build_under_5_s": build_s < 5.0,
        "index_under_64_mib": index_mib < 64.0,
        "replication_under_60_s": replication["seconds_from_start"].as_f64().is_some_and(|s| s < 60.0),
    });
    let out = json!({
        "benchmark": "directory",
        "authorities": authorities.len(),
        "index": {
            "build_s_median": round(build_s, 3),
            "build_s": builds.iter().map(|b| round(*b, 3)).collect::<Vec<_>>(),
            "index_mib": round(index_mib, 1),
            "process_rss_growth_mib": round((rss_after.saturating_sub(rss_before)) as f64 / 1024.0, 1),
            "search_in_process_p50_ms": round(percentile(&inproc, 0.5), 3),
            "search_in_process_p99_ms": round(percentile(&inproc, 0.99), 3),
        },
        "search": search,
        "replication": replication,
        "targets": targets,
    });
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    if let Some(p) = &args.json_out {
        std::fs::write(p, &text)?;
    }
    Ok(true)
}

/// A page of search results, as the clients read it.
#[derive(serde::Deserialize)]
struct Page {
    total: u64,
    items: Vec<serde::de::IgnoredAny>,
}

/// A query a case handler might type: text, language, and a country filter a third of the
/// time.
struct Query {
    text: String,
    lang: &'static str,
    country: Option<NodeId>,
}

impl Query {
    fn path(&self) -> String {
        let mut url = reqwest::Url::parse("https://node/api/v1/directory/search").expect("url");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("q", &self.text)
                .append_pair("lang", self.lang);
            if let Some(c) = self.country {
                q.append_pair("country", c.as_str());
            }
        }
        format!("{}?{}", url.path(), url.query().unwrap_or_default())
    }
}

fn queries(
    n: usize,
    seed: u64,
    authorities: &[Authority],
    vocabulary: &imi_domain::Vocabulary,
) -> Vec<Query> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let langs = [
        "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "is", "it",
        "lt", "lv", "mt", "nl", "no", "pl", "pt", "ro", "sk", "sl", "sv",
    ];
    (0..n)
        .map(|_| {
            let a = &authorities[rng.random_range(0..authorities.len())];
            let lang = langs[rng.random_range(0..langs.len())];
            let text = match rng.random_range(0..3) {
                0 => a
                    .professions
                    .first()
                    .and_then(|p| vocabulary.name(p, lang))
                    .unwrap_or("doctor")
                    .to_owned(),
                1 => a.city.clone().unwrap_or_else(|| "Wien".into()),
                _ => {
                    // A word of its name with two letters swapped: one typo.
                    let name = a.name(lang);
                    let word = name
                        .split_whitespace()
                        .max_by_key(|w| w.chars().count())
                        .unwrap_or("office");
                    let mut c: Vec<char> = word.chars().collect();
                    if c.len() > 4 {
                        c.swap(1, 2);
                    }
                    c.into_iter().collect()
                }
            };
            Query {
                text,
                lang,
                country: (rng.random_range(0..3) == 0).then_some(a.country),
            }
        })
        .collect()
}

async fn search_run(
    args: &DirectoryArgs,
    authorities: &[Authority],
    vocabulary: &imi_domain::Vocabulary,
    file: &Path,
) -> Result<Value> {
    let bin = federation::node_binary()?;
    let tmp = tempfile::Builder::new()
        .prefix("imi-bench-directory-node-")
        .tempdir()?;
    let dir = tmp.path().to_path_buf();
    let members = [NodeId::DE];
    let base = federation::free_base_port(members.len())?;
    federation::init_federation(&bin, &dir, &members, base)?;
    std::fs::copy(file, dir.join("directory.toml"))?;
    let mut fed = Federation::start(&bin, &dir, &members, base)?;
    let result = search_measure(&mut fed, &bin, &dir, args, authorities, vocabulary).await;
    let reports = fed.stop(Duration::from_secs(30)).await;
    let mut v = result?;
    v["node_stopped_cleanly"] = json!(reports.iter().all(|r| r.clean()));
    Ok(v)
}

async fn search_measure(
    fed: &mut Federation,
    bin: &Path,
    dir: &Path,
    args: &DirectoryArgs,
    authorities: &[Authority],
    vocabulary: &imi_domain::Vocabulary,
) -> Result<Value> {
    let started = Instant::now();
    fed.wait_live(Duration::from_secs(300)).await?;
    let live_s = started.elapsed().as_secs_f64();
    let token = crate::bench_api::add_user(bin, dir, NodeId::DE, "DE-G00001")?;
    let pid = fed.node(NodeId::DE)?.pid();
    let qs: Arc<Vec<String>> = Arc::new(
        queries(
            args.warmup + args.searches,
            args.seed,
            authorities,
            vocabulary,
        )
        .iter()
        .map(Query::path)
        .collect(),
    );
    let base = fed.url(NodeId::DE, "")?;
    // Its own client (connections made on the clients' runtime below).
    let http = imi_node::tls::http_client(&dir.join("ca.crt"))?;
    let run = move |from: usize, count: usize, clients: usize| {
        let (qs, http, base, token) = (qs.clone(), http.clone(), base.clone(), token.clone());
        async move {
            let next = Arc::new(AtomicUsize::new(from));
            let end = from + count;
            let mut tasks = Vec::new();
            for _ in 0..clients.max(1) {
                let (qs, http, base, token, next) = (
                    qs.clone(),
                    http.clone(),
                    base.clone(),
                    token.clone(),
                    next.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut hits = 0usize;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            break;
                        }
                        let t = Instant::now();
                        let resp = http
                            .get(format!("{base}{}", qs[i]))
                            .bearer_auth(&token)
                            .send()
                            .await?;
                        let status = resp.status();
                        let bytes = resp.bytes().await?;
                        // The whole page is parsed (and so checked), but into nothing: the
                        // clients share the node's two cores, so they keep their own work
                        // small.
                        let page = serde_json::from_slice::<Page>(&bytes);
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        if status.as_u16() != 200 {
                            bail!(
                                "search {}: HTTP {status}: {}",
                                qs[i],
                                String::from_utf8_lossy(&bytes)
                            );
                        }
                        let page = page.with_context(|| format!("search {}", qs[i]))?;
                        if page.items.len() > 20 {
                            bail!(
                                "search {}: {} items on a page of 20",
                                qs[i],
                                page.items.len()
                            );
                        }
                        hits += usize::from(page.total > 0);
                    }
                    Ok::<_, anyhow::Error>((lat, hits))
                }));
            }
            let mut lat = Vec::new();
            let mut hits = 0;
            for t in tasks {
                let (l, h) = t.await??;
                lat.extend(l);
                hits += h;
            }
            Ok::<_, anyhow::Error>((lat, hits))
        }
    };
    let (warmup, searches, clients) = (args.warmup, args.searches, args.clients);
    let measure = async move {
        run(0, warmup, clients).await?;
        let me = std::process::id();
        let cpu_before = procfs::cpu_ticks(pid).unwrap_or(0);
        let own_before = procfs::cpu_ticks(me).unwrap_or(0);
        let t = Instant::now();
        let (lat, hits) = run(warmup, searches, clients).await?;
        let secs = t.elapsed().as_secs_f64();
        let cpu_ticks = procfs::cpu_ticks(pid)
            .unwrap_or(0)
            .saturating_sub(cpu_before);
        let own_ticks = procfs::cpu_ticks(me)
            .unwrap_or(0)
            .saturating_sub(own_before);
        // One client at a time: the latency of a search on an otherwise idle node.
        let (lat1, _) = run(warmup, searches.min(1000), 1).await?;
        Ok::<_, anyhow::Error>((lat, hits, secs, (cpu_ticks, own_ticks), lat1))
    };
    // The clients run on one thread of their own: they share the machine's two cores with
    // the node, and a runtime with a worker per core would put four busy threads on two
    // cores (one client thread keeps up: its CPU per search is a fraction of the node's).
    let (mut lat, hits, secs, (cpu_ticks, own_ticks), mut lat1) =
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(measure)
        })
        .await??;
    let cpu_ms = cpu_ticks as f64 / procfs::clk_tck() * 1000.0;
    let own_cpu_ms = own_ticks as f64 / procfs::clk_tck() * 1000.0;
    lat.sort_by(f64::total_cmp);
    lat1.sort_by(f64::total_cmp);
    let rss_peak = procfs::status_field(pid, "VmHWM").unwrap_or(0);
    let rss = procfs::status_field(pid, "VmRSS").unwrap_or(0);
    eprintln!(
        "search: p50 {:.2} ms, p99 {:.2} ms, {:.0}/s",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.len() as f64 / secs
    );
    Ok(json!({
        "clients": args.clients,
        "searches": lat.len(),
        "with_results": hits,
        "p50_ms": round(percentile(&lat, 0.5), 2),
        "p99_ms": round(percentile(&lat, 0.99), 2),
        "max_ms": round(lat.last().copied().unwrap_or(f64::NAN), 2),
        "per_second": round(lat.len() as f64 / secs, 0),
        "node_cpu_ms_per_search": round(cpu_ms / lat.len() as f64, 3),
        "clients_cpu_ms_per_search": round(own_cpu_ms / lat.len() as f64, 3),
        "clients_cpu_utilisation": round(own_cpu_ms / 1000.0 / secs, 2),
        "one_client_p50_ms": round(percentile(&lat1, 0.5), 2),
        "one_client_p99_ms": round(percentile(&lat1, 0.99), 2),
        "node_live_s": round(live_s, 2),
        "node_rss_mib": round(rss as f64 / 1024.0, 1),
        "node_peak_rss_mib": round(rss_peak as f64 / 1024.0, 1),
    }))
}

async fn replication_run(args: &DirectoryArgs, authorities: &[Authority]) -> Result<Value> {
    let bin = federation::node_binary()?;
    let tmp = tempfile::Builder::new()
        .prefix("imi-bench-directory-fed-")
        .tempdir()?;
    let dir = tmp.path().to_path_buf();
    let members: Vec<NodeId> = NodeId::ALL
        .iter()
        .copied()
        .filter(|n| *n != NodeId::EU)
        .take(args.nodes)
        .collect();
    let expected = authorities
        .iter()
        .filter(|a| members.contains(&a.country))
        .count();
    let base = federation::free_base_port(members.len())?;
    federation::init_federation(&bin, &dir, &members, base)?;
    // Each node's seed holds its own country's authorities only: everything else must come
    // over the network.
    for m in &members {
        let own: Vec<Authority> = authorities
            .iter()
            .filter(|a| a.country == *m)
            .cloned()
            .collect();
        let seed = format!("seed-{m}.toml");
        std::fs::write(dir.join(&seed), directory_gen::to_toml(&own, args.seed))?;
        let cfg = dir.join(m.as_str()).join("node.toml");
        let mut doc: toml::Table = std::fs::read_to_string(&cfg)?.parse()?;
        doc.insert(
            "directory".into(),
            toml::Value::String(format!("../{seed}")),
        );
        std::fs::write(&cfg, toml::to_string_pretty(&doc)?)?;
    }
    let started = Instant::now();
    let mut fed = Federation::start(&bin, &dir, &members, base)?;
    let result = replication_measure(&mut fed, &members, expected, started).await;
    let reports = fed.stop(Duration::from_secs(30)).await;
    let mut v = result?;
    v["nodes_stopped_cleanly"] = json!(reports.iter().all(|r| r.clean()));
    Ok(v)
}

async fn replication_measure(
    fed: &mut Federation,
    members: &[NodeId],
    expected: usize,
    started: Instant,
) -> Result<Value> {
    fed.wait_live(Duration::from_secs(300)).await?;
    let live = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut complete = 0;
        let mut digests = std::collections::BTreeSet::new();
        for m in members {
            let v: Value = fed
                .client()
                .get(fed.url(*m, "/operator/directory")?)
                .bearer_auth(fed.operator_token(*m)?)
                .send()
                .await?
                .json()
                .await?;
            if v["authorities"].as_u64() == Some(expected as u64) {
                complete += 1;
            }
            digests.insert(v["digest"].as_str().unwrap_or("").to_owned());
        }
        if complete == members.len() && digests.len() == 1 {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "replication: {} nodes hold {expected} authorities each after {secs:.1} s",
                members.len()
            );
            return Ok(json!({
                "nodes": members.len(),
                "authorities_per_node": expected,
                "seconds_from_start": round(secs, 1),
                "seconds_from_all_live": round(secs - live, 1),
                "all_live_s": round(live, 1),
            }));
        }
        if Instant::now() > deadline {
            bail!(
                "replication incomplete after 600 s: {complete}/{} nodes complete",
                members.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

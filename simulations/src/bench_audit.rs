//! `imi-sim bench audit`: the transparency log's costs, in process. (1) Proof generation on
//! a RocksDB-backed log of `--leaves` leaves, written by the engine's own append code:
//! inclusion and consistency proofs at random positions. (2) `audit verify` of an evidence
//! bundle of `--envelopes` real signed envelopes (DE → HU) with their inclusion proofs.
//! The log's cost on the message path is measured by `bench exchange` (BENCHMARKS.md).
use crate::bench::round;
use anyhow::Result;
use base64::Engine as _;
use imi_audit::bundle::{Bundle, Entry, FORMAT, LogPart};
use imi_audit::merkle::{self, MemTree};
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
use imi_engine::log::{LogState, StoreNodes};
use imi_protocol::{
    AuthorityId, Draft, HpkeKeyEntry, HpkeKeyPair, Kind, Member, NodeId, NodeSigner,
    SealRandomness, SigningKeyEntry, TrustList,
};
use imi_store::{Durability, RocksStore, Store, WriteBatch};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `imi-sim bench audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Leaves in the log for the proof benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    pub leaves: u64,
    /// Envelopes in the bundle for the verify benchmark.
    #[arg(long, default_value_t = 10_000)]
    pub envelopes: usize,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark; prints one JSON object on stdout.
pub async fn run(args: &AuditArgs) -> Result<bool> {
    let args = args.clone();
    let out = tokio::task::spawn_blocking(move || measure(&args)).await??;
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    Ok(true)
}

/// Appends `n` access leaves to `store` as the committer does (groups of 1,000, each one
/// batch): each group's leaves belong to `1000 / per_case` cases, `per_case` leaves each
/// (with `per_case = 1`, every leaf has a case of its own).
fn append_all(store: &RocksStore, n: u64, per_case: u64) -> Result<()> {
    let mut log = LogState::default();
    let mut batch = WriteBatch::new();
    let open = 1000 / per_case.max(1);
    log.start_group();
    for i in 0..n {
        // Cases in rounds: `open` cases at a time, each getting `per_case` leaves.
        let case = (i / (open * per_case)) * open + i % open;
        let leaf = format!(
            "imi-leaf/1\ntype=access\nuser={i:064x}\nauthority=DE-NC\ncase={case:032x}\naction=read_request\nat={i}\nprev=-\n"
        );
        log.append(store, &mut batch, &leaf);
        if i % 1000 == 999 {
            store.write(std::mem::take(&mut batch), Durability::Buffered)?;
            log.group_written();
            log.start_group();
        }
    }
    store.write(batch, Durability::Sync)?;
    log.group_written();
    Ok(())
}

fn measure(args: &AuditArgs) -> Result<serde_json::Value> {
    // 1. A RocksDB log of `leaves` leaves, appended in batches of 1000 as the committer does.
    let dir = tempfile::tempdir()?;
    let store = RocksStore::open(
        dir.path(),
        imi_engine::Engine::columns(),
        &Default::default(),
    )?;
    // Every leaf of a case of its own: each append looks for a head that is not there.
    let t = Instant::now();
    append_all(&store, args.leaves, 1)?;
    let append_s = t.elapsed().as_secs_f64();
    eprintln!(
        "imi-sim bench audit: {} leaves appended in {append_s:.1} s (a case each)",
        args.leaves
    );
    // Ten leaves per case, cases interleaved a thousand at a time (a busy node's log).
    let cased = args.leaves / 5;
    let dir2 = tempfile::tempdir()?;
    let store2 = RocksStore::open(
        dir2.path(),
        imi_engine::Engine::columns(),
        &Default::default(),
    )?;
    let t = Instant::now();
    append_all(&store2, cased, 10)?;
    let cased_s = t.elapsed().as_secs_f64();
    drop(store2);
    eprintln!("  {cased} leaves, ten per case, appended in {cased_s:.1} s");
    let nodes = StoreNodes(&store);
    let n = args.leaves;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let root = merkle::root(&nodes, n).ok_or_else(|| anyhow::anyhow!("root"))?;
    let mut incl = Vec::new();
    for _ in 0..1000 {
        let i = rnd() % n;
        let t = Instant::now();
        let p = merkle::inclusion_proof(&nodes, i, n).ok_or_else(|| anyhow::anyhow!("proof"))?;
        incl.push(t.elapsed().as_secs_f64() * 1e6);
        let leaf = format!(
            "imi-leaf/1\ntype=access\nuser={i:064x}\nauthority=DE-NC\ncase={i:032x}\naction=read_request\nat={i}\nprev=-\n"
        );
        anyhow::ensure!(merkle::verify_inclusion(
            i,
            n,
            &merkle::leaf_hash(leaf.as_bytes()),
            &p,
            &root
        ));
    }
    let mut cons = Vec::new();
    for _ in 0..1000 {
        let m = 1 + rnd() % (n - 1);
        let t = Instant::now();
        merkle::consistency_proof(&nodes, m, n).ok_or_else(|| anyhow::anyhow!("proof"))?;
        cons.push(t.elapsed().as_secs_f64() * 1e6);
    }
    eprintln!(
        "  proofs in a log of {n}: inclusion p50 {:.1} µs, consistency p50 {:.1} µs",
        median(incl.clone()),
        median(cons.clone())
    );

    // 2. A bundle of `envelopes` real envelopes.
    let now = 1_764_000_000_000u64;
    let gov = NodeSigner::generate(NodeId::EU);
    let de = NodeSigner::generate(NodeId::DE);
    let hu = NodeSigner::generate(NodeId::HU);
    let hu_hpke = HpkeKeyPair::generate();
    let de_hpke = HpkeKeyPair::generate();
    let member = |s: &NodeSigner, h: &HpkeKeyPair| Member {
        node: s.node,
        role: s.node.default_role(),
        signing_keys: vec![SigningKeyEntry {
            public: s.public(),
            valid_from: 0,
            valid_until: u64::MAX / 2,
        }],
        hpke_keys: vec![HpkeKeyEntry {
            public: h.public(),
            valid_from: 0,
            valid_until: u64::MAX / 2,
        }],
        addresses: vec![],
    };
    let trust = TrustList {
        version: 1,
        issued: now,
        members: vec![member(&de, &de_hpke), member(&hu, &hu_hpke)],
    };
    let trust_bytes = trust.sign(&gov)?;
    let mut tree = MemTree::new();
    let mut items = Vec::with_capacity(args.envelopes);
    for i in 0..args.envelopes {
        let draft = Draft {
            kind: Kind::new("diagnostic")?,
            step: None,
            authority: AuthorityId::new("DE-IMI")?,
            to: vec![NodeId::HU],
            case: None,
            prev: vec![],
            body: vec![0u8; 512],
        };
        let created = now + i as u64;
        let rnd = SealRandomness::random(1);
        let bytes = imi_protocol::seal_and_sign(&draft, created, &de, &trust, &rnd)?;
        let env = imi_protocol::Envelope::parse(bytes.clone(), usize::MAX)
            .map_err(|c| anyhow::anyhow!("{c}"))?;
        let leaf =
            imi_engine::log::envelope_leaf(true, &imi_protocol::sha256(&bytes), env.header())
                .text();
        tree.push(merkle::leaf_hash(leaf.as_bytes()));
        items.push((leaf, bytes));
    }
    let size = tree.size();
    let cp = Checkpoint {
        origin: origin_of("DE"),
        size,
        root: tree.root(),
    };
    let note = SignedNote::sign(&cp.body(), &cp.origin, &de).text();
    let b64 = base64::engine::general_purpose::STANDARD;
    let entries: Vec<Entry> = items
        .into_iter()
        .enumerate()
        .map(|(i, (leaf, bytes))| Entry {
            index: i as u64,
            leaf,
            proof: merkle::inclusion_proof(&tree, i as u64, size)
                .unwrap_or_default()
                .iter()
                .map(hex::encode)
                .collect(),
            bytes: Some(b64.encode(bytes)),
        })
        .collect();
    let bundle = Bundle {
        format: FORMAT.into(),
        case: None,
        governance_public_key: hex::encode(gov.public()),
        trust_list: b64.encode(&trust_bytes),
        log: LogPart {
            node: "DE".into(),
            origin: origin_of("DE"),
            checkpoints: vec![note],
            consistency: vec![],
        },
        head: None,
        entries,
    };
    let json = serde_json::to_vec(&bundle)?;
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let checks = imi_audit::bundle::verify(
            &json,
            &imi_audit::bundle::Options {
                governance_key: Some(gov.public()),
                min_witnesses: 0,
            },
        );
        runs.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            checks.iter().all(|c| c.ok),
            "the benchmark bundle must verify"
        );
    }
    eprintln!(
        "  verify of a bundle of {} envelopes ({:.1} MB): {:.2} s",
        args.envelopes,
        json.len() as f64 / 1e6,
        median(runs.clone())
    );
    Ok(json!({
        "log_leaves": n,
        "append_leaves_per_s_in_process": round(n as f64 / append_s, 0),
        "append_leaves_per_s_ten_per_case": round(cased as f64 / cased_s, 0),
        "inclusion_proof_us_p50": round(median(incl.clone()), 2),
        "inclusion_proof_us_p99": round({ let mut v = incl; v.sort_by(f64::total_cmp); v[v.len() * 99 / 100] }, 2),
        "consistency_proof_us_p50": round(median(cons), 2),
        "bundle_envelopes": args.envelopes,
        "bundle_bytes": json.len(),
        "verify_s_median": round(median(runs), 3),
    }))
}

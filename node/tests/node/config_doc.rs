//! `docs/configuration.md` against `NodeConfig`: every key of the config is in the doc's
//! tables with its default, every key in the tables exists, and an unknown key in a config
//! file is an error naming the key and its line.
use imi_engine::EngineConfig;
use imi_node::config::{LogSection, NetworkSection, NodeConfig, StoreSection};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn example() -> NodeConfig {
    NodeConfig::load(&repo("configs/node.example.toml")).unwrap()
}

/// Every key path of a serialized config: top-level keys as `key`, a section's as
/// `section.key` (a table inside a section, such as `engine.job_interval_ms`, is one key).
fn key_paths(cfg: &NodeConfig) -> BTreeMap<String, toml::Value> {
    let value = toml::Value::try_from(cfg).unwrap();
    let mut out = BTreeMap::new();
    for (k, v) in value.as_table().unwrap() {
        match v {
            toml::Value::Table(section) => {
                for (sk, sv) in section {
                    out.insert(format!("{k}.{sk}"), sv.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// A config with every optional value set, so that serializing it leaves no key out.
fn full_config() -> NodeConfig {
    let mut cfg = example();
    cfg.log.level = Some("info".into());
    cfg.vocabularies = Some("../vocabularies".into());
    cfg.hpke_extra_keys = vec!["previous/hpke.key".into()];
    cfg.engine
        .peer_bytes_per_day_overrides
        .insert("EU".into(), 0);
    cfg.engine
        .job_interval_ms
        .insert("checkpoint".into(), 60_000);
    cfg.network.peer_addresses.insert(
        imi_protocol::NodeId::DE,
        vec!["/ip4/127.0.0.1/tcp/9".into()],
    );
    cfg.backup.dir = Some("/var/backups/imi-node".into());
    cfg.metrics.listen = Some("127.0.0.1:9464".parse().unwrap());
    cfg.simulation = Some(imi_node::config::SimulationSection {
        start: "2021-01-01T00:00:00Z".into(),
        anchor_ms: 1,
        speed: 1000.0,
        until: Some("2022-05-01T00:00:00Z".into()),
    });
    cfg
}

/// The keys the parser accepts in `section` ("" = top level), from its refusal of an unknown
/// key ("expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, …").
fn accepted_keys(section: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo("configs/node.example.toml")).unwrap();
    let text = if section.is_empty() {
        format!("no_such_key = 1\n{text}")
    } else {
        let header = format!("[{section}]");
        if text.contains(&header) {
            text.replacen(&header, &format!("{header}\nno_such_key = 1"), 1)
        } else {
            // An optional section the example leaves out (`[simulation]`).
            format!("{text}\n{header}\nno_such_key = 1\n")
        }
    };
    let err = toml::from_str::<NodeConfig>(&text).unwrap_err().to_string();
    let list = err
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("no key list in: {err}"));
    let list = list.trim().trim_start_matches("one of ");
    list.split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim().trim_matches('`').to_owned())
        .map(|k| {
            if section.is_empty() {
                k
            } else {
                format!("{section}.{k}")
            }
        })
        .collect()
}

struct DocRow {
    key: String,
    default: String,
    unit: String,
}

/// The rows of the doc's key tables (those headed `| key | type | default | unit | meaning |`).
fn doc_rows() -> Vec<DocRow> {
    let doc = std::fs::read_to_string(repo("docs/configuration.md")).unwrap();
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in doc.lines() {
        let line = line.trim();
        if line == "| key | type | default | unit | meaning |" {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 5, "a key row has 5 cells: {line}");
        let key = cells[0]
            .strip_prefix('`')
            .and_then(|k| k.strip_suffix('`'))
            .unwrap_or_else(|| panic!("the key cell is one `key`: {line}"));
        rows.push(DocRow {
            key: key.to_owned(),
            default: cells[2].to_owned(),
            unit: cells[3].to_owned(),
        });
    }
    rows
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let keys: BTreeSet<String> = key_paths(&full_config()).into_keys().collect();
    // The serialized walk misses nothing the parser accepts (an unset option would be).
    let mut accepted = accepted_keys("");
    let sections: Vec<String> = accepted
        .iter()
        .filter(|k| keys.iter().any(|p| p.starts_with(&format!("{k}."))))
        .cloned()
        .collect();
    for s in &sections {
        accepted.remove(s);
        accepted.extend(accepted_keys(s));
    }
    assert_eq!(keys, accepted, "serialized keys vs keys the parser accepts");

    let doc = std::fs::read_to_string(repo("docs/configuration.md")).unwrap();
    let rows = doc_rows();
    let documented: BTreeSet<String> = rows.iter().map(|r| r.key.clone()).collect();
    assert_eq!(rows.len(), documented.len(), "a key is documented twice");
    let missing: Vec<&String> = keys.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "keys of NodeConfig missing from docs/configuration.md: {missing:?}"
    );
    let unknown: Vec<&String> = documented.difference(&keys).collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys NodeConfig does not have: {unknown:?}"
    );
    for k in &keys {
        assert!(doc.contains(&format!("`{k}`")), "`{k}` not in the doc");
    }
    for r in &rows {
        assert!(!r.default.is_empty(), "{}: no default", r.key);
        assert!(!r.unit.is_empty(), "{}: no unit (— if none)", r.key);
    }
}

#[test]
fn documented_defaults_are_the_defaults() {
    // The sections with defaults, serialized; the others are required.
    let mut cfg = example();
    cfg.network = NetworkSection::default();
    cfg.engine = EngineConfig::default();
    cfg.store = StoreSection::default();
    cfg.log = LogSection::default();
    cfg.backup = imi_node::config::BackupSection::default();
    cfg.metrics = imi_node::config::MetricsSection::default();
    cfg.runtime = imi_node::config::RuntimeSection::default();
    let defaults = key_paths(&cfg);
    let optional = [
        "network.", "engine.", "store.", "log.", "backup.", "metrics.", "runtime.",
    ];
    for r in doc_rows() {
        // An optional top-level key: its default is a place, not a value.
        if r.key == "vocabularies" {
            assert_eq!(r.default, "`vocabularies` beside `catalogue`");
            assert_eq!(
                example().vocabularies_dir(),
                example().catalogue.parent().unwrap().join("vocabularies")
            );
            continue;
        }
        // The other: an empty list.
        if r.key == "hpke_extra_keys" {
            assert_eq!(r.default, "`[]`");
            assert!(example().hpke_extra_keys.is_empty());
            continue;
        }
        // The one optional key of `[simulation]`.
        if r.key == "simulation.until" {
            assert_eq!(r.default, "unset (never)");
            let s: imi_node::config::SimulationSection =
                toml::from_str("start = \"2021-01-01T00:00:00Z\"\nanchor_ms = 1\nspeed = 2.0")
                    .unwrap();
            assert_eq!(s.until, None);
            continue;
        }
        if !optional.iter().any(|p| r.key.starts_with(p)) {
            assert_eq!(r.default, "required", "{}", r.key);
            continue;
        }
        match defaults.get(&r.key) {
            // An unset option.
            None => assert!(r.default.starts_with("unset"), "{}: {}", r.key, r.default),
            Some(v) => {
                let want = format!("`{v}`");
                assert!(
                    r.default.starts_with(&want),
                    "{}: the doc says {}, the default is {want}",
                    r.key,
                    r.default
                );
            }
        }
    }
    // And leaving every optional section out of a file gives the same values.
    let text = std::fs::read_to_string(repo("configs/node.example.toml")).unwrap();
    let required_only = text.split("\n[network]").next().unwrap().to_owned()
        + "\n[http]\n"
        + text
            .split("[http]\n")
            .nth(1)
            .unwrap()
            .split("\n[engine]")
            .next()
            .unwrap();
    let parsed: NodeConfig = toml::from_str(&required_only).unwrap();
    let parsed = key_paths(&parsed);
    for (k, v) in defaults
        .iter()
        .filter(|(k, _)| optional.iter().any(|p| k.starts_with(p)))
    {
        assert_eq!(parsed.get(k), Some(v), "{k}");
    }
}

/// Writes the example config with `line` inserted after the line that starts with `after`
/// ("" = at the top); returns
/// the file and the 1-based line number of the insertion.
fn example_with(dir: &Path, after: &str, line: &str) -> (PathBuf, usize) {
    let text = std::fs::read_to_string(repo("configs/node.example.toml")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let at = if after.is_empty() {
        0
    } else {
        lines.iter().position(|l| l.starts_with(after)).unwrap() + 1
    };
    lines.insert(at, line);
    let path = dir.join("node.toml");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, at + 1)
}

#[test]
fn an_unknown_key_is_an_error_naming_the_key_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    for (after, line, key) in [
        ("", "identiy_key = \"identity.key\"", "identiy_key"),
        ("[network]", "max_mesage_bytes = 1", "max_mesage_bytes"),
        ("[engine]", "delivery_windw = 64", "delivery_windw"),
        ("[store]", "cache_bytes = 1", "cache_bytes"),
        ("[log]", "format = \"json\"", "format"),
    ] {
        let (path, n) = example_with(dir.path(), after, line);
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
        assert!(
            err.contains(&format!("line {n},")),
            "{key} on line {n}: {err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    // An unknown section is an unknown top-level key.
    let (path, n) = example_with(dir.path(), "json = false", "[netwrk]");
    let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
    assert!(err.contains("`netwrk`"), "{err}");
    assert!(err.contains(&format!("line {n},")), "{err}");
}

/// `runtime.worker_threads` is the runtime's worker count; 0 is one per core, whatever
/// `TOKIO_WORKER_THREADS` says.
#[test]
fn the_runtime_has_the_configured_workers() {
    use imi_node::config::RuntimeSection;
    let cores = std::thread::available_parallelism().unwrap().get();
    for (set, want) in [(1, 1), (3, 3), (0, cores)] {
        let rt = RuntimeSection {
            worker_threads: set,
            ..RuntimeSection::default()
        }
        .runtime()
        .unwrap();
        assert_eq!(rt.metrics().num_workers(), want, "worker_threads = {set}");
    }
    let cfg: NodeConfig = toml::from_str(
        &std::fs::read_to_string(repo("configs/node.example.toml"))
            .unwrap()
            .replace("[engine]", "[runtime]\nworker_threads = 1\n\n[engine]"),
    )
    .unwrap();
    assert_eq!(cfg.runtime.workers(), 1);
}

/// `runtime.blocking_threads` caps the blocking pool: twice as many tasks as threads, each
/// held at a gate until all are spawned, run on exactly that many threads (without the cap
/// every task would get a thread of its own); `0` is two per core within 4..=16.
#[test]
fn the_blocking_pool_has_at_most_the_configured_threads() {
    use imi_node::config::RuntimeSection;
    use std::sync::{Arc, Condvar, Mutex};
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        RuntimeSection::default().blocking(),
        (2 * cores).clamp(4, 16)
    );
    let cap = 3;
    let rt = RuntimeSection {
        blocking_threads: cap,
        ..RuntimeSection::default()
    }
    .runtime()
    .unwrap();
    // (tasks started, gate open), and the threads the tasks ran on.
    let state = Arc::new((Mutex::new((0usize, false)), Condvar::new()));
    let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let tasks: Vec<_> = (0..2 * cap)
        .map(|_| {
            let (state, threads) = (state.clone(), threads.clone());
            rt.spawn_blocking(move || {
                threads.lock().unwrap().insert(std::thread::current().id());
                let (lock, cv) = &*state;
                let mut s = lock.lock().unwrap();
                s.0 += 1;
                cv.notify_all();
                while !s.1 {
                    s = cv.wait(s).unwrap();
                }
            })
        })
        .collect();
    {
        let (lock, cv) = &*state;
        let mut s = cv.wait_while(lock.lock().unwrap(), |s| s.0 < cap).unwrap();
        s.1 = true;
        cv.notify_all();
    }
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(state.0.lock().unwrap().0, 2 * cap);
    assert_eq!(threads.lock().unwrap().len(), cap);
}

//! `imi-node config check` against the files `imi-node federation init` wrote: it passes on
//! them, and each broken thing fails its own named check (all reported, not only the
//! first); a config it passes starts, and a running node's port is reported in use.

use imi_e2e::{Federation, HEAVY, lock};
use std::os::unix::fs::PermissionsExt;

fn check(fed: &Federation, id: &str) -> (bool, String) {
    let cfg = fed.config(id);
    fed.cli(&["config", "check", "--config", cfg.to_str().unwrap()])
}

fn failed(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect()
}

#[test]
fn config_check_names_every_problem_without_starting() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU"]);
    let (ok, out) = check(&fed, "DE");
    assert!(ok, "{out}");
    for name in [
        "config",
        "keys.identity",
        "keys.hpke",
        "keys.data_key",
        "keys.operator_token",
        "keys.governance",
        "trust_list",
        "trust_list.member",
        "trust_list.identity",
        "trust_list.hpke",
        "tls",
        "tls.ca_cert",
        "catalogue",
        "directory",
        "data_dir",
        "http.listen",
        "network.min_protocol_version",
        "engine",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("PASS {name} "))),
            "{name}: {out}"
        );
    }

    // Several things broken at once on HU: each is named.
    let dir = fed.node_dir("HU");
    let key = dir.join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(dir.join("hpke.key"), "not hex\n").unwrap();
    std::fs::set_permissions(dir.join("hpke.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg_path = fed.config("HU");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    // A job name that names nothing (`federation init` writes every section).
    assert!(text.contains("[engine.job_interval_ms]\n"), "{text}");
    let broken = text.replacen(
        "[engine.job_interval_ms]\n",
        "[engine.job_interval_ms]\nredail = 0\n",
        1,
    );
    // A minimum protocol version this release does not speak.
    assert!(broken.contains("min_protocol_version = 1\n"), "{text}");
    let broken = broken.replacen(
        "min_protocol_version = 1\n",
        "min_protocol_version = 2\n",
        1,
    );
    std::fs::write(&cfg_path, &broken).unwrap();
    let (ok, out) = check(&fed, "HU");
    assert!(!ok, "{out}");
    let names = failed(&out);
    for want in [
        "keys.identity",
        "keys.hpke",
        "engine",
        "network.min_protocol_version",
    ] {
        assert!(names.iter().any(|n| n == want), "{want}: {out}");
    }
    assert!(out.contains("chmod 600"), "{out}");
    assert!(out.contains("\"redail\""), "{out}");
    assert!(out.contains("speaks IMI protocol versions 1 to 1"), "{out}");
    // Only those: the rest still passes.
    assert!(out.contains("PASS catalogue"), "{out}");

    // An unknown key: the error names the key and its line.
    std::fs::write(&cfg_path, format!("{text}\nlisten_everywhere = true\n")).unwrap();
    let (ok, out) = check(&fed, "HU");
    assert!(!ok);
    assert_eq!(failed(&out), ["config"], "{out}");
    assert!(out.contains("listen_everywhere"), "{out}");
    assert!(out.contains("line"), "{out}");

    // DE's config passes, so DE starts; while it runs, its HTTPS port is in use.
    let _de = fed.start("DE");
    let (ok, out) = check(&fed, "DE");
    assert!(!ok, "{out}");
    assert!(failed(&out).contains(&"http.listen".to_owned()), "{out}");
    assert!(out.contains("already running"), "{out}");
}

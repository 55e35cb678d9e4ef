//! Governance with the CLI against real nodes: the trust list in force shown as TOML,
//! edited and signed as the next version, handed to a running node, which takes it and
//! refuses the older one afterwards; a version that is not newer, or a malformed key, is
//! refused at signing; new keys for a rotation and a node's public keys as trust-list
//! entries. Maintenance mode on and off from the CLI, in readiness and the metrics. A
//! separate metrics listener.

use imi_e2e::{Federation, HEAVY, lock};

/// `imi-node federation show` of the signed list `list` as TOML (the federation's
/// governance key checks it).
fn show(fed: &Federation, list: &str) -> String {
    let (ok, shown) = fed.cli(&[
        "federation",
        "show",
        "--trust-list",
        list,
        "--governance-public-key",
        fed.root().join("governance.pub").to_str().unwrap(),
    ]);
    assert!(ok, "{shown}");
    shown
}

/// `imi-node federation sign --members members --previous previous --out out` with the
/// federation's governance key: whether it succeeded, and its output.
fn sign(fed: &Federation, members: &str, previous: &str, out: &str) -> (bool, String) {
    fed.cli(&[
        "federation",
        "sign",
        "--members",
        members,
        "--governance-key",
        fed.root().join("governance.key").to_str().unwrap(),
        "--previous",
        previous,
        "--out",
        out,
    ])
}

/// `imi-node federation push` of the signed list `list` to the running node `node`.
fn push(fed: &Federation, node: &str, list: &str) -> (bool, String) {
    fed.cli(&[
        "federation",
        "push",
        "--config",
        fed.config(node).to_str().unwrap(),
        "--trust-list",
        list,
    ])
}

#[test]
fn trust_list_versions_are_signed_shown_pushed_and_never_rolled_back() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU"]);
    let de = fed.start("DE");
    // Alone (HU not yet up), DE is not ready: 503 with its readiness report as JSON, as the
    // OpenAPI document says (the harness checks the answer against it).
    let (st, body) = de.client.get("/health/ready").unwrap();
    assert_eq!(st, 503, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ready"], false, "{body}");
    assert_eq!(
        report["peers_unreachable"],
        serde_json::json!(["HU"]),
        "{body}"
    );
    let _hu = fed.start("HU");
    let root = fed.root().to_path_buf();
    let p = |name: &str| root.join(name).to_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let q = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // The list in force, as TOML.
    let shown = show(&fed, &p("trust-list.cbor"));
    assert!(shown.contains("version = 1\n"), "{shown}");
    assert!(shown.contains("node = \"DE\"") && shown.contains("node = \"HU\""));

    // Signing it unchanged as version 1 again is refused: not newer.
    std::fs::write(q("v1.toml"), &shown).unwrap();
    let sign = |file: &str, out: &str| sign(&fed, file, &p("trust-list.cbor"), out);
    let (ok, out) = sign(&q("v1.toml"), &q("v1-again.cbor"));
    assert!(!ok && out.contains("not newer"), "{out}");
    // A key that is not lowercase hex: refused, naming the member.
    let first_key = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("public = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    std::fs::write(
        q("bad.toml"),
        shown
            .replacen("version = 1\n", "version = 2\n", 1)
            .replacen(&first_key, &first_key.to_uppercase(), 1),
    )
    .unwrap();
    let (ok, out) = sign(&q("bad.toml"), &q("bad.cbor"));
    assert!(!ok && out.contains("lowercase hex"), "{out}");
    assert!(!dir.path().join("bad.cbor").exists());

    // Version 2: signed, shown again identical but for the version.
    std::fs::write(
        q("v2.toml"),
        shown.replacen("version = 1\n", "version = 2\n", 1),
    )
    .unwrap();
    let (ok, out) = sign(&q("v2.toml"), &q("v2.cbor"));
    assert!(ok, "{out}");
    let shown2 = show(&fed, &q("v2.cbor"));
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("version"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&shown2), body(&shown));

    // DE takes version 2 while running, then refuses version 1.
    let cfg = fed.config("DE");
    let push = |file: &str| push(&fed, "DE", file);
    let (ok, out) = push(&q("v2.cbor"));
    assert!(ok && out.contains("version 2"), "{out}");
    assert_eq!(de.client.status().trust_list_version, 2);
    let (ok, out) = push(&p("trust-list.cbor"));
    assert!(!ok && out.contains("422"), "{out}");
    assert_eq!(de.client.status().trust_list_version, 2);
    // The rollback attempt is counted (and logged as an error); the version and the list's
    // age are in the metrics and in readiness, which an old list does not fail.
    let samples = de.client.metrics();
    let value = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v)))
            .map(|s| s.value)
            .sum::<f64>()
    };
    assert_eq!(
        value("imi_trust_list_refused_total", Some(("code", "not_newer"))),
        1.0
    );
    assert_eq!(value("imi_trust_list_version", None), 2.0);
    // Read pacing's and batching's counters are served under the names operations.md gives.
    for name in [
        "imi_network_read_pauses_total",
        "imi_network_read_paused_seconds_total",
        "imi_network_batches_sent_total",
        "imi_network_batched_envelopes_sent_total",
        "imi_network_batches_received_total",
        "imi_network_batched_envelopes_received_total",
        "imi_delivery_envelope_loads_total",
        "imi_delivery_outbox_reads_total",
    ] {
        assert!(samples.iter().any(|s| s.name == name), "{name} missing");
    }
    assert!(value("imi_trust_list_age_seconds", None) < 3600.0);
    let ready: serde_json::Value = fed.wait_until(
        "DE ready (connected to HU)",
        std::time::Duration::from_secs(60),
        || {
            let (st, body) = de.client.get("/health/ready").ok()?;
            (st == 200).then(|| serde_json::from_str(&body).unwrap())
        },
    );
    let body = ready.to_string();
    assert_eq!(ready["trust_list_version"], 2, "{body}");
    assert_eq!(ready["trust_list_stale"], false, "{body}");
    assert_eq!(ready["trust_list_age_days"], 0, "{body}");
    assert_eq!(ready["maintenance"], serde_json::Value::Null, "{body}");

    // Maintenance mode: not ready with the operator's reason while on, ready again after.
    let c = cfg.to_str().unwrap();
    let (ok, out) = fed.cli(&[
        "maintenance",
        "on",
        "--config",
        c,
        "--reason",
        "backup at 22:00",
    ]);
    assert!(ok && out.contains("backup at 22:00"), "{out}");
    let (st, body) = de.client.get("/health/ready").unwrap();
    assert_eq!(st, 503, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ready"], false, "{body}");
    assert_eq!(report["maintenance"], "backup at 22:00", "{body}");
    assert_eq!(de.client.metric_required("imi_maintenance", &[]), 1.0);
    let (ok, out) = fed.cli(&["maintenance", "status", "--config", c]);
    assert!(ok && out.contains("on: backup at 22:00"), "{out}");
    let (ok, out) = fed.cli(&[
        "maintenance",
        "on",
        "--config",
        c,
        "--reason",
        &"x".repeat(201),
    ]);
    assert!(!ok, "a 201-character reason is refused: {out}");
    let (ok, out) = fed.cli(&["maintenance", "off", "--config", c]);
    assert!(ok && out.contains("off"), "{out}");
    let (st, body) = de.client.get("/health/ready").unwrap();
    assert_eq!(st, 200, "{body}");
    assert_eq!(de.client.metric_required("imi_maintenance", &[]), 0.0);

    // The Grafana dashboard in configs/ asks only for metrics a node serves. A diagnostic first,
    // so that the receipt latency histogram has one delivery to HU to show.
    let (ok, out) = fed.cli(&["diag", "send", "--config", c, "--to", "HU"]);
    assert!(ok, "{out}");
    let (st, text) = de.client.get("/metrics").unwrap();
    assert_eq!(st, 200);
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/grafana/imi-node.json"),
    )
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut asked = std::collections::BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("imi_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                asked.insert(name);
            }
        }
    }
    assert!(asked.len() >= 20, "{asked:?}");
    for name in &asked {
        let family = ["_bucket", "_total"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        // A family of labelled series is printed only once it has a series: those that
        // count refusals and alarms have none in this healthy federation.
        if [
            "imi_fact_alarms",
            "imi_inbound_rejected",
            "imi_outbound_rejected",
            "imi_peer_protocol_refused",
            "imi_quota_refused",
            "imi_trust_list_offers_refused",
            "imi_witness_alarms",
        ]
        .contains(&family)
        {
            continue;
        }
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "the dashboard asks for {name}, which the node does not serve"
        );
    }
    // The receipt latency histogram has seen DE's deliveries to HU.
    assert!(
        text.contains("imi_receipt_latency_seconds_count{peer=\"HU\"}"),
        "no receipt latency for HU"
    );

    // Keys for a rotation: new files (never over existing ones) and their public halves.
    let (ok, out) = fed.cli(&["keys", "generate", "--node", "DE", "--out", &q("de-next")]);
    assert!(ok, "{out}");
    assert!(out.contains("signing_keys = [{ public = \""), "{out}");
    let mode = std::fs::metadata(dir.path().join("de-next/identity.key"))
        .unwrap()
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o600);
    let (ok, out) = fed.cli(&["keys", "generate", "--node", "DE", "--out", &q("de-next")]);
    assert!(!ok && out.contains("never overwritten"), "{out}");
    // The running node's own public keys, as the list holds them.
    let (ok, out) = fed.cli(&["keys", "export-public", "--config", cfg.to_str().unwrap()]);
    assert!(ok, "{out}");
    let exported = out
        .lines()
        .find_map(|l| l.strip_prefix("signing_keys = [{ public = \""))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert!(shown.contains(&exported), "{exported} not in\n{shown}");
}

/// `[metrics] listen`: `/metrics` and the health probes on a plain-HTTP listener of their
/// own (loopback here), and no longer on the HTTPS listener that case handlers reach.
#[test]
fn a_separate_metrics_listener_serves_metrics_and_health_and_https_no_longer_metrics() {
    let fed = Federation::init(&["DE"]);
    // The harness reserves two ports past the members' for each federation.
    let port = fed.base_port + 2 * fed.members.len() as u16;
    let cfg = fed.config("DE");
    // `federation init` writes the section empty.
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("\n[metrics]\n"), "{text}");
    let text = text.replacen(
        "\n[metrics]\n",
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let (ok, out) = fed.cli(&["config", "check", "--config", cfg.to_str().unwrap()]);
    assert!(ok && out.contains("PASS metrics.listen"), "{out}");
    let de = fed.start("DE");
    let plain = reqwest::blocking::Client::new();
    let get = |path: &str| {
        let r = plain
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (st, body) = get("/metrics");
    assert_eq!(st, 200, "{body}");
    assert!(
        body.contains("imi_outbox_queue_depth") || body.contains("imi_log_leaves"),
        "{body}"
    );
    assert_eq!(get("/health/live"), (200, "ok".to_string()));
    let (st, body) = get("/health/ready");
    assert!(st == 200 && body.contains("\"ready\":true"), "{st} {body}");
    // Nothing else there: the API is HTTPS only.
    assert_eq!(get("/api/v1/me").0, 404);
    // The HTTPS listener keeps the probes, not the metrics.
    let (st, _) = de.client.get("/metrics").unwrap();
    assert_eq!(st, 404);
    assert_eq!(de.client.live(), Some(200));
}

/// Propagation: a new trust-list version pushed to one node of five reaches the other four
/// over the substrate, each adopts it and keeps it across a restart; pushing the old one
/// anywhere afterwards is refused. (A member offering an older, conflicting or forged list
/// over the wire: `crates/apps/tests/apps/trust.rs`.)
#[test]
fn a_trust_list_pushed_to_one_node_reaches_all_five() {
    let _g = lock(&HEAVY);
    let members = ["AT", "DE", "FR", "HU", "PL"];
    let fed = Federation::init(&members);
    let procs: Vec<_> = members.iter().map(|m| fed.start(m)).collect();
    let root = fed.root().to_path_buf();
    let p = |name: &str| root.join(name).to_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let q = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let shown = show(&fed, &p("trust-list.cbor"));
    std::fs::write(
        q("v2.toml"),
        shown.replacen("version = 1\n", "version = 2\n", 1),
    )
    .unwrap();
    let (ok, out) = sign(&fed, &q("v2.toml"), &p("trust-list.cbor"), &q("v2.cbor"));
    assert!(ok, "{out}");
    for m in members {
        assert_eq!(fed.client(m).status().trust_list_version, 1);
    }
    let push = |node: &str, file: &str| push(&fed, node, file);
    let (ok, out) = push("DE", &q("v2.cbor"));
    assert!(ok && out.contains("version 2"), "{out}");
    for m in members {
        let c = fed.client(m);
        fed.wait_until(
            &format!("{m} adopts trust list version 2"),
            std::time::Duration::from_secs(120),
            || (c.try_status().ok()?.trust_list_version == 2).then_some(()),
        );
    }
    // Adopted means persisted: HU keeps version 2 across a restart (its file says 1).
    let mut procs = procs;
    procs.remove(3).stop();
    let _hu = fed.start("HU");
    assert_eq!(fed.client("HU").status().trust_list_version, 2);
    // The old list is refused wherever it is pushed.
    let (ok, out) = push("FR", &p("trust-list.cbor"));
    assert!(!ok && out.contains("422"), "{out}");
    assert_eq!(fed.client("FR").status().trust_list_version, 2);
}

/// `keys rotate` while HU keeps sending to DE: the new keys are listed beside the old ones,
/// DE switches to them (keeping the old HPKE key to open what was sealed to it), the old
/// keys are revoked; nothing is refused in either direction, everything sent is applied
/// once, and a case's evidence bundle exported before the rotation verifies after the
/// revocation, as does one exported after it.
#[test]
fn keys_rotate_while_messages_flow_and_old_evidence_still_verifies() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU"]);
    let de_proc = fed.start("DE");
    let _hu_proc = fed.start("HU");
    let root = fed.root().to_path_buf();
    let p = |name: &str| root.join(name).to_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let q = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let cfg_path = fed.config("DE");
    let cfg = cfg_path.to_str().unwrap().to_owned();

    // A case and its evidence bundle, before the rotation.
    let de_user = fed.user(
        "DE",
        &fed.add_user("DE", "anna", "DE-BY-BLZK", "authority_user", &[]),
    );
    let case = de_user.post_status(
        "/api/v1/requests?wait=delivered",
        &serde_json::json!({"responder": "HU-ENKK", "area": "PQ", "procedure": "PQ-P01",
            "questions": ["PQ-Q01"], "subject": {"name": "Rotation Subject"}, "answer_by": "2099-01-31"}),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let export = |out: &str| {
        let (ok, text) = fed.cli(&[
            "audit", "export", "--config", &cfg, "--case", &case, "--out", out,
        ]);
        assert!(ok, "{text}");
    };
    let verify = |file: &str| {
        fed.cli(&[
            "audit",
            "verify",
            file,
            "--governance-key",
            &p("governance.pub"),
            "--witnesses",
            "0",
        ])
    };
    export(&q("before.json"));
    let (ok, out) = verify(&q("before.json"));
    assert!(ok, "{out}");

    // HU sends to DE all along.
    let hu = fed.client("HU");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let sender = {
        let (hu, stop) = (hu.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                sent += hu.diag_send("DE", 5, false).sent;
            }
            sent
        })
    };
    let mut de_sent = fed.client("DE").diag_send("HU", 5, false).sent;

    // 1. New keys for DE, printed as trust-list entries.
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let o = fed.run_cli(&[
        "keys",
        "rotate",
        "--config",
        &cfg,
        "--out",
        &q("next"),
        "--valid-from",
        &now_ms().to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let entries = String::from_utf8(o.stdout).unwrap();
    let shown = show(&fed, &p("trust-list.cbor"));
    let old_key = shown
        .lines()
        .find_map(|l| l.strip_prefix("public = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let blocks: String = entries
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        blocks.contains("[[members.signing_keys]]") && blocks.contains("[[members.hpke_keys]]")
    );
    // Step 1: DE opens envelopes sealed to its new HPKE key before anyone may use it.
    let preload = entries
        .lines()
        .find_map(|l| l.strip_prefix("#    hpke_extra_keys = "))
        .unwrap()
        .to_string();
    assert!(preload.contains("next/hpke.key"), "{entries}");
    de_proc.stop();
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let extra_line = format!("hpke_extra_keys = {preload}");
    let preloaded = text.replacen(
        "hpke_key = \"hpke.key\"",
        &format!("hpke_key = \"hpke.key\"\n{extra_line}"),
        1,
    );
    assert_ne!(preloaded, text);
    std::fs::write(&cfg_path, &preloaded).unwrap();
    let de_proc = fed.start("DE");
    // DE is the first member: its new keys go before HU's.
    let hu_member = shown.find("[[members]]\nnode = \"HU\"").unwrap();
    let v2 = format!(
        "{}{}\n\n{}",
        &shown[..hu_member].replacen("version = 1\n", "version = 2\n", 1),
        blocks.trim(),
        &shown[hu_member..]
    );
    let sign = |toml: &str, version: u64, previous: &str| {
        let file = q(&format!("v{version}.toml"));
        std::fs::write(&file, toml).unwrap();
        let out_file = q(&format!("v{version}.cbor"));
        let (ok, out) = sign(&fed, &file, previous, &out_file);
        assert!(ok, "{out}");
        out_file
    };
    let v2_file = sign(&v2, 2, &p("trust-list.cbor"));
    let push = |node: &str, file: &str| {
        let (ok, out) = push(&fed, node, file);
        assert!(ok, "{out}");
    };
    let wait_version = |v: u64| {
        for node in ["DE", "HU"] {
            let c = fed.client(node);
            fed.wait_until(
                &format!("{node} holds trust list version {v}"),
                std::time::Duration::from_secs(120),
                || (c.try_status().ok()?.trust_list_version == v).then_some(()),
            );
        }
    };
    push("HU", &v2_file);
    wait_version(2);

    // 2. DE switches to the new keys, keeping the old HPKE key to open what was sealed to it.
    de_proc.stop();
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let switched = text
        .replacen(
            "identity_key = \"identity.key\"",
            &format!("identity_key = \"{}\"", q("next/identity.key")),
            1,
        )
        .replacen(
            "hpke_key = \"hpke.key\"",
            &format!("hpke_key = \"{}\"", q("next/hpke.key")),
            1,
        )
        .replacen(&extra_line, "hpke_extra_keys = [\"hpke.key\"]", 1);
    assert_ne!(switched, text);
    std::fs::write(&cfg_path, switched).unwrap();
    let (ok, out) = fed.cli(&["keys", "show", "--config", &cfg]);
    // The file is still version 1, which does not list the new key; `keys show` reads the
    // list in force, version 2 (adopted from HU), from DE's database.
    assert!(
        ok && out.contains("peer id") && !out.contains(&old_key),
        "{out}"
    );
    assert!(
        out.contains("version 2 (2 members), this key listed")
            && out.contains("from the node's database; the file"),
        "{out}"
    );
    let _de_proc = fed.start("DE");
    // The same while DE runs (the database read read-only beside the node).
    let (ok, out) = fed.cli(&["keys", "show", "--config", &cfg]);
    assert!(
        ok && out.contains("version 2 (2 members), this key listed"),
        "{out}"
    );
    de_sent += fed.client("DE").diag_send("HU", 5, false).sent;

    // A backup made now is signed with the new key, which only version 2 lists: `backup
    // verify` finds it on the list in DE's database, and a cold standby (no database yet,
    // the file still version 1) finds it on the list the backup itself holds.
    let (ok, out) = fed.cli(&["backup", "create", "--config", &cfg]);
    assert!(ok, "{out}");
    let (ok, out) = fed.cli(&["backup", "verify", "--config", &cfg]);
    assert!(
        ok && out.contains("PASS signature") && out.contains("node database version 2"),
        "{out}"
    );
    let standby = fed.node_dir("DE").join("standby.toml");
    let backups = fed.node_dir("DE").join("backups");
    let standby_text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replacen(
            "data_dir = \"data\"",
            &format!("data_dir = \"{}\"", q("standby-data")),
            1,
        )
        .replacen(
            "[backup]\n",
            &format!("[backup]\ndir = \"{}\"\n", backups.display()),
            1,
        );
    std::fs::write(&standby, standby_text).unwrap();
    let (ok, out) = fed.cli(&["backup", "verify", "--config", standby.to_str().unwrap()]);
    assert!(
        ok && out.contains("file version 1, backup version 2"),
        "{out}"
    );

    // 3. The old keys revoked: their validity ends now.
    let now = now_ms();
    let shown2 = show(&fed, &v2_file);
    let at = shown2.find(&old_key).unwrap();
    let until_at = at + shown2[at..].find("valid_until = ").unwrap();
    let line_end = until_at + shown2[until_at..].find('\n').unwrap();
    let v3 = format!(
        "{}valid_until = {now}{}",
        &shown2[..until_at],
        &shown2[line_end..]
    )
    .replacen("version = 2\n", "version = 3\n", 1);
    let v3_file = sign(&v3, 3, &v2_file);
    push("DE", &v3_file);
    wait_version(3);
    de_sent += fed.client("DE").diag_send("HU", 5, false).sent;
    stop.store(true, Ordering::Relaxed);
    let hu_sent = sender.join().unwrap();

    // Everything applied once, nothing refused on either side.
    let de = fed.client("DE");
    fed.wait_until(
        "DE applied everything HU sent",
        std::time::Duration::from_secs(120),
        || (de.try_applied()? == hu_sent).then_some(()),
    );
    fed.wait_until(
        "HU applied everything DE sent",
        std::time::Duration::from_secs(120),
        || (hu.try_applied()? == de_sent).then_some(()),
    );
    for c in [&de, &hu] {
        assert_eq!(c.metric_sum("imi_outbound_rejected_total"), 0.0, "{}", c.id);
        assert_eq!(c.metric_sum("imi_inbound_rejected_total"), 0.0, "{}", c.id);
    }
    // Evidence from before the rotation verifies after the revocation; so does the same
    // case's bundle exported now, its envelopes signed with the revoked key while it was valid.
    let (ok, out) = verify(&q("before.json"));
    assert!(ok, "{out}");
    export(&q("after.json"));
    let (ok, out) = verify(&q("after.json"));
    assert!(ok, "{out}");
}

//! End-to-end tests: real `imi-node` processes on loopback.
//!
//! Needs the binary: `cargo build -p imi-node` (or `IMI_NODE_BIN=...`). Every test creates
//! its own federation (temp dir, ports); the CPU-heavy ones are serialised on [`HEAVY`].

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use imi_e2e::{DiagSend, Federation, HEAVY, NodeClient, NodeProc, lock};

/// Failure guard for draining thousands of messages (not an expected duration).
const DRAIN: Duration = Duration::from_secs(600);
/// The label of the diagnostic kind on per-kind metrics.
const DIAG: &[(&str, &str)] = &[("kind", "diagnostic")];

/// Failure guard for short conditions.
const SHORT: Duration = Duration::from_secs(60);

fn wait_applied(fed: &Federation, c: &NodeClient, at_least: u64, timeout: Duration) -> u64 {
    fed.wait_until(
        &format!("{} imi_diagnostic_applied >= {at_least}", c.id),
        timeout,
        || c.try_applied().filter(|&n| n >= at_least),
    )
}

fn wait_queue_empty(fed: &Federation, sender: &NodeClient, peer: &str, timeout: Duration) {
    fed.wait_until(
        &format!(
            "{} imi_outbox_queue_depth{{peer=\"{peer}\"}} == 0",
            sender.id
        ),
        timeout,
        || (sender.try_queue_depth(peer)? == 0).then_some(()),
    );
}

/// Both sides' counters, for failure messages.
fn snapshot(sender: &NodeClient, receiver: &NodeClient) -> String {
    let r = receiver.metrics();
    let s = sender.metrics();
    let m = |v: &[imi_e2e::Sample], n: &str, l: &[(&str, &str)]| imi_e2e::find_metric(v, n, l);
    let rejected: f64 = r
        .iter()
        .filter(|x| x.name == "imi_inbound_rejected_total")
        .map(|x| x.value)
        .sum();
    format!(
        "{rid}: applied gauge {:?}, status(store) {:?}, inbound accepted {:?} duplicates {:?} rejected {rejected}; \
         {sid}: queue{{{rid}}} {:?}, delivered{{{rid}}} {:?}, retries{{{rid}}} {:?}",
        m(&r, "imi_diagnostic_applied", &[]),
        receiver.try_status().map(|st| st.diagnostic_applied),
        m(&r, "imi_inbound_accepted_total", DIAG),
        m(&r, "imi_inbound_duplicates_total", DIAG),
        m(&s, "imi_outbox_queue_depth", &[("peer", &receiver.id)]),
        m(&s, "imi_delivered_total", &[("peer", &receiver.id)]),
        m(&s, "imi_delivery_retries_total", &[("peer", &receiver.id)]),
        rid = receiver.id,
        sid = sender.id,
    )
}

/// After the sender's queue is empty the receiver must have applied exactly `n` (gauge and
/// store-backed status), and stay there.
fn assert_applied_exactly(fed: &Federation, sender: &NodeClient, receiver: &NodeClient, n: u64) {
    let got = receiver.applied();
    if got != n {
        let now = snapshot(sender, receiver);
        std::thread::sleep(Duration::from_millis(1500));
        let later = snapshot(sender, receiver);
        fed.fail(&format!(
            "{}: imi_diagnostic_applied = {got} once {}'s queue read 0, expected exactly {n}\n\
             right after: {now}\n1.5 s later: {later}",
            receiver.id, sender.id
        ));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let later = receiver.applied();
    if later != n {
        fed.fail(&format!(
            "{}: imi_diagnostic_applied moved from {n} to {later} after the queue drained\n{}",
            receiver.id,
            snapshot(sender, receiver)
        ));
    }
    let st = receiver.status();
    assert_eq!(
        st.diagnostic_applied, n,
        "/operator/status diagnostic_applied"
    );
    // The sender connected to deliver: the receiver shows the version it announced.
    assert_eq!(st.protocol_version, 1);
    assert_eq!(
        st.peer_protocols.get(sender.id.as_str()),
        Some(&imi_e2e::PeerProtocol {
            version: Some(1),
            refused: false
        }),
        "{st:?}"
    );
}

fn assert_all_accepted(fed: &Federation, r: &DiagSend, n: u64) {
    let ok =
        r.sent == n && r.accepted == Some(n) && r.duplicate == Some(0) && r.rejected == Some(0);
    if !ok {
        fed.fail(&format!(
            "diag send of {n}: expected all accepted, got {r:?}"
        ));
    }
}

/// Enqueues `total` with wait=false; returns when the receiver has applied `kill_at`.
fn enqueue_and_wait_for(
    fed: &Federation,
    sender: &NodeClient,
    receiver: &NodeClient,
    total: u64,
    kill_at: u64,
) -> u64 {
    let r = sender.diag_send(&receiver.id, total, false);
    assert_eq!(r.sent, total, "diag send (no wait): {r:?}");
    let ids = r.message_ids.as_ref().expect("message_ids with wait=false");
    assert_eq!(ids.len() as u64, total, "one message id per diagnostic");
    let started = Instant::now();
    let n = wait_applied(fed, receiver, kill_at, DRAIN);
    eprintln!(
        "{} reached {n} applied after {:?}",
        receiver.id,
        started.elapsed()
    );
    n
}

#[test]
fn ten_thousand_diagnostics_exactly_once() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["AT", "DE"]);
    let de = fed.start("DE");
    let at = fed.start("AT");

    let started = Instant::now();
    let (mut accepted, mut duplicate, mut rejected, mut sent) = (0, 0, 0, 0);
    for chunk in 0..10 {
        let c = at.client.clone();
        // Every other chunk end to end, at most 64 unreceipted at once (the bench's mode
        // that compares with a broker pair).
        let r = if chunk % 2 == 0 {
            fed.call(move || c.diag_send("DE", 1000, true))
        } else {
            fed.call(move || c.diag_send_windowed("DE", 1000, 64))
        };
        eprintln!("chunk {chunk}: {r:?}");
        assert_all_accepted(&fed, &r, 1000);
        sent += r.sent;
        accepted += r.accepted.expect("accepted with wait=true");
        duplicate += r.duplicate.expect("duplicate with wait=true");
        rejected += r.rejected.expect("rejected with wait=true");
        assert_eq!(r.node.as_deref(), Some("AT"));
        assert_eq!(r.to.as_deref(), Some("DE"));
    }
    eprintln!("10,000 diagnostics receipted in {:?}", started.elapsed());
    // A window needs the receipts waited for, and a size in range; refused sends nothing.
    for bad in [
        serde_json::json!({"to": "DE", "count": 5, "wait": false, "in_flight": 8}),
        serde_json::json!({"to": "DE", "count": 5, "in_flight": 0}),
        serde_json::json!({"to": "DE", "count": 5, "in_flight": 8, "rate_per_s": 10}),
    ] {
        let (st, text) = at
            .client
            .post_json("/operator/diag/send", &bad)
            .expect("POST /operator/diag/send");
        assert_eq!(st, 400, "{bad} -> {text}");
    }
    if (sent, accepted, duplicate, rejected) != (10_000, 10_000, 0, 0) {
        fed.fail(&format!(
            "sent {sent} accepted {accepted} duplicate {duplicate} rejected {rejected}"
        ));
    }
    // Receipts are given only after the effect is durable, so the count is already complete.
    assert_applied_exactly(&fed, &at.client, &de.client, 10_000);
    assert_eq!(at.client.try_queue_depth("DE"), Some(0), "AT queue to DE");
    // Counted per kind: the periodic checkpoints and cosignatures the nodes exchange
    // meanwhile are not diagnostics (a run outlasting the checkpoint interval read 10,002).
    assert_eq!(
        de.client
            .metric_required("imi_inbound_accepted_total", DIAG),
        10_000.0
    );
    assert_eq!(
        de.client
            .metric("imi_inbound_duplicates_total", DIAG)
            .unwrap_or(0.0),
        0.0
    );
    assert_eq!(de.client.metric_sum("imi_inbound_rejected_total"), 0.0);
    drop(at);
    drop(de);
}

#[test]
fn kill9_receiver_mid_stream() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["AT", "DE"]);
    let de = fed.start("DE");
    let at = fed.start("AT");

    let seen = enqueue_and_wait_for(&fed, &at.client, &de.client, 10_000, 2_000);
    de.kill9();
    let depth = at.client.try_queue_depth("DE");
    eprintln!("killed DE at >= {seen} applied; AT queue to DE now {depth:?}");
    if seen >= 10_000 {
        eprintln!("WARNING: DE had already applied everything before the kill");
    }

    let de = fed.start("DE");
    let after_restart = de.client.applied();
    assert!(
        after_restart >= seen,
        "applied count went back from {seen} to {after_restart} over a crash"
    );
    wait_queue_empty(&fed, &at.client, "DE", DRAIN);
    assert_applied_exactly(&fed, &at.client, &de.client, 10_000);
    eprintln!(
        "DE duplicates answered: {:?}",
        de.client.metric("imi_inbound_duplicates_total", DIAG)
    );
}

#[test]
fn kill9_sender_mid_stream() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["AT", "DE"]);
    let de = fed.start("DE");
    let at = fed.start("AT");

    let seen = enqueue_and_wait_for(&fed, &at.client, &de.client, 10_000, 2_000);
    at.kill9();
    eprintln!("killed AT when DE had >= {seen} applied");
    if seen >= 10_000 {
        eprintln!("WARNING: DE had already applied everything before the kill");
    }

    let at = fed.start("AT");
    wait_queue_empty(&fed, &at.client, "DE", DRAIN);
    assert_applied_exactly(&fed, &at.client, &de.client, 10_000);
    assert_eq!(at.client.status().queues.get("DE").copied().unwrap_or(0), 0);
}

#[test]
fn receiver_down_backoff_then_drain() {
    let fed = Federation::init(&["AT", "DE"]);
    // Only what the test counts goes to DE: AT's checkpoint job would queue a checkpoint
    // for its witness DE at each run (every 10 s) while DE is down, as many as the run is
    // slow. It is off here.
    let cfg = fed.config("AT");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[engine.job_interval_ms]\n"), "{text}");
    std::fs::write(
        &cfg,
        text.replacen(
            "[engine.job_interval_ms]\n",
            "[engine.job_interval_ms]\ncheckpoint = 0\n",
            1,
        ),
    )
    .unwrap();
    let at = fed.start("AT");
    // What AT queued for DE before serving: its directory's first change and its sync ask
    // (both enqueued before the node is live, so the count is stable).
    let c = &at.client;
    let before = c.status().queues.get("DE").copied().unwrap_or(0);
    assert_eq!(before, 2, "the directory's start-up envelopes");

    let r = at.client.diag_send("DE", 500, false);
    assert_eq!(r.sent, 500, "{r:?}");
    let want = (before + 500) as f64;
    fed.wait_until(
        "AT: retries{DE} >= 2, backoff{DE} > 0, queue{DE} == 502",
        SHORT * 2,
        || {
            let m = c.try_metrics().ok()?;
            let get = |n: &str| imi_e2e::find_metric(&m, n, &[("peer", "DE")]).unwrap_or(0.0);
            (get("imi_delivery_retries_total") >= 2.0
                && get("imi_delivery_backoff_seconds") > 0.0
                && get("imi_outbox_queue_depth") == want)
                .then_some(())
        },
    );
    assert_eq!(
        c.status().queues.get("DE").copied(),
        Some(before + 500),
        "status queues"
    );

    let de = fed.start("DE");
    wait_queue_empty(&fed, c, "DE", DRAIN);
    assert_applied_exactly(&fed, &at.client, &de.client, 500);
    fed.wait_until("AT imi_delivery_backoff_seconds{DE} == 0", SHORT, || {
        (c.try_metric("imi_delivery_backoff_seconds", &[("peer", "DE")])
            .ok()??
            == 0.0)
            .then_some(())
    });
    // Everything queued was delivered; at most one more: AT's answer to DE's directory sync
    // ask, when DE asked before AT's first change reached it.
    let delivered = c.metric_required("imi_delivered_total", &[("peer", "DE")]);
    assert!(
        delivered == want || delivered == want + 1.0,
        "imi_delivered_total{{peer=\"DE\"}} = {delivered}, queued {want}"
    );
}

#[test]
fn cli_diag_send_and_keys_show() {
    let fed = Federation::init(&["AT", "DE"]);

    // Key files are private.
    let mut secrets = vec![fed.root().join("governance.key")];
    for id in ["AT", "DE"] {
        for f in ["identity.key", "hpke.key", "tls.key", "operator.token"] {
            secrets.push(fed.node_dir(id).join(f));
        }
    }
    for p in &secrets {
        let mode = std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", p.display());
    }

    // keys show (no running node needed).
    let at_cfg = fed.config("AT");
    let at_cfg = at_cfg.to_str().expect("utf-8 path");
    let out = fed.run_cli(&["keys", "show", "--config", at_cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "keys show failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("AT"),
        "keys show does not print the node id:\n{stdout}"
    );
    assert!(
        stdout.contains("12D3KooW"),
        "keys show does not print an ed25519 peer id:\n{stdout}"
    );

    let de = fed.start("DE");
    let at = fed.start("AT");

    // Readiness: both up, each sees the other.
    for (me, peer) in [(&at, "DE"), (&de, "AT")] {
        let (st, body) = fed.wait_until(
            &format!("{} /health/ready == 200 with {peer} reachable", me.id),
            SHORT,
            || {
                let (st, body) = me.client.ready().ok()?;
                let reachable = body["peers_reachable"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p == peer));
                (st == 200 && reachable).then_some((st, body))
            },
        );
        assert_eq!(st, 200);
        assert_eq!(body["ready"], true, "{body}");
        assert_eq!(body["store"], true, "{body}");
        assert!(body["trust_list_version"].is_u64(), "{body}");
        assert!(body["peers_unreachable"].is_array(), "{body}");
    }

    // Operator API needs the bearer token; health and metrics do not.
    for c in [
        at.client.without_token(),
        at.client.with_token("not-the-token"),
    ] {
        let (st, _) = c.get("/operator/status").expect("GET /operator/status");
        assert_eq!(st, 401, "GET /operator/status without a valid token");
        let (st, _) = c
            .post_json(
                "/operator/diag/send",
                &serde_json::json!({"to":"DE","count":1,"wait":false}),
            )
            .expect("POST /operator/diag/send");
        assert_eq!(st, 401, "POST /operator/diag/send without a valid token");
        // Every operator route is behind the one authorization layer: 401 before anything
        // else is looked at (a malformed query or body included).
        for path in [
            "/operator/users",
            "/operator/audit/bundle?case=not-a-case&unknown=1",
        ] {
            let (st, _) = c.get(path).expect(path);
            assert_eq!(st, 401, "GET {path} without a valid token");
        }
        for path in [
            "/operator/users",
            "/operator/users/anna/revoke",
            "/operator/audit/checkpoint",
            "/operator/retention/run",
            "/operator/trust-list",
        ] {
            let (st, _) = c
                .post_json(path, &serde_json::json!({"garbage": true}))
                .expect(path);
            assert_eq!(st, 401, "POST {path} without a valid token");
        }
        assert_eq!(c.live(), Some(200));
        assert_eq!(c.get("/metrics").expect("GET /metrics").0, 200);
    }
    assert_eq!(de.client.applied(), 0, "nothing was sent without a token");

    // diag send through the CLI.
    let out = fed.run_cli(&[
        "diag", "send", "--config", at_cfg, "--to", "DE", "--count", "5", "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "diag send failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("diag send --json printed no single JSON object ({e}):\n{stdout}")
    });
    assert_eq!(v["node"], "AT", "{v}");
    assert_eq!(v["to"], "DE", "{v}");
    assert_eq!(v["sent"], 5, "{v}");
    assert_eq!(v["accepted"], 5, "{v}");
    assert_eq!(v["duplicate"], 0, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    let rtt = |k: &str| {
        v["rtt_ms"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("rtt_ms.{k} missing: {v}"))
    };
    assert!(
        0.0 <= rtt("p50") && rtt("p50") <= rtt("p99") && rtt("p99") <= rtt("max"),
        "rtt_ms not ordered: {v}"
    );
    assert_eq!(de.client.applied(), 5);

    let out = fed.run_cli(&[
        "diag",
        "send",
        "--config",
        at_cfg,
        "--to",
        "DE",
        "--count",
        "3",
        "--no-wait",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "diag send --no-wait failed: {}\n{stdout}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("diag send --no-wait --json: bad JSON ({e}):\n{stdout}"));
    assert_eq!(v["sent"], 3, "{v}");
    let ids = v["message_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no message_ids: {v}"));
    let distinct: std::collections::HashSet<_> = ids.iter().map(|i| i.to_string()).collect();
    assert_eq!(distinct.len(), 3, "message ids not distinct: {v}");

    wait_queue_empty(&fed, &at.client, "DE", SHORT);
    assert_applied_exactly(&fed, &at.client, &de.client, 8);
    let st = at.client.status();
    assert_eq!(st.node, "AT");
    assert!(st.connected.iter().any(|p| p == "DE"), "{st:?}");
}

#[test]
fn graceful_sigterm() {
    let fed = Federation::init(&["AT", "DE"]);
    let de = fed.start("DE");
    let at = fed.start("AT");
    // Some work in flight while shutting down.
    let r = at.client.diag_send("DE", 200, false);
    assert_eq!(r.sent, 200);

    for node in [at, de] {
        let id = node.id.clone();
        let t = Instant::now();
        let st = node.stop_within(Duration::from_secs(10));
        eprintln!("{id} exited with {st} after {:?}", t.elapsed());
        if st.code() != Some(0) {
            fed.fail(&format!("{id} exited with {st} after SIGTERM, expected 0"));
        }
    }

    // Nothing was lost: after a restart the outbox drains completely, effects exactly once.
    let de = fed.start("DE");
    let at = fed.start("AT");
    wait_queue_empty(&fed, &at.client, "DE", SHORT * 2);
    assert_applied_exactly(&fed, &at.client, &de.client, 200);

    // SIGINT is graceful too.
    let t = Instant::now();
    at.signal("INT");
    let st = at.wait_exit(Duration::from_secs(10));
    eprintln!("AT exited with {st} after SIGINT in {:?}", t.elapsed());
    assert_eq!(st.code(), Some(0), "exit status after SIGINT");
    drop(de);
}

/// DESIGN.md: "the node refuses to start on a key file that others can read".
#[test]
fn data_directory_is_private() {
    let fed = Federation::init(&["AT", "DE"]);
    // Created 0700 at the first start, files inside 0600.
    let at = fed.start("AT");
    let data = fed.node_dir("AT").join("data");
    drop(at);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    let p = NodeProc::start(&fed, "AT");
    for f in std::fs::read_dir(&data).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            assert_eq!(
                f.metadata().unwrap().permissions().mode() & 0o077,
                0,
                "{} was readable by others after the start",
                f.path().display()
            );
        }
    }
    drop(p);
    // A data directory others may enter: refused, naming it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let p = NodeProc::spawn(&fed, "AT");
    let log = p.log.clone();
    let st = p.wait_exit(Duration::from_secs(20));
    assert!(!st.success(), "node started with a 0755 data directory");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.contains("refusing data directory"),
        "the error does not name the data directory:\n{log}"
    );
}

#[test]
fn refuses_world_readable_identity_key() {
    let fed = Federation::init(&["AT", "DE"]);
    let key = fed.node_dir("AT").join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let p = NodeProc::spawn(&fed, "AT");
    let log = p.log.clone();
    let st = p.wait_exit(Duration::from_secs(20));
    assert!(
        !st.success(),
        "node started with a world-readable identity.key"
    );
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.contains("identity.key"),
        "the error does not name the offending key file:\n{log}"
    );
}

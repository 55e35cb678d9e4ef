//! Auditable trails with real `imi-node` processes: every envelope and receipt of a case is
//! in each node's log, an auditor exports the case's evidence bundle (API and CLI), and
//! `imi-node audit verify` checks it offline; a changed byte fails it, naming the check.

use imi_e2e::{Federation, HEAVY, NodeClient, lock};
use serde_json::{Value, json};

fn step(c: &NodeClient, id: &str, action: &str, body: Value) {
    c.post_status(
        &format!("/api/v1/requests/{id}/{action}?wait=delivered"),
        &body,
        200,
    );
}

/// `imi-node audit verify FILE --governance-key fed/governance.pub` and `extra`; without a
/// `--witnesses` in `extra`, `--witnesses 0` (most bundles here are not witnessed yet).
fn verify(fed: &Federation, file: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let gov = fed.root().join("governance.pub");
    let mut args = vec![
        "audit",
        "verify",
        file.to_str().unwrap(),
        "--governance-key",
        gov.to_str().unwrap(),
    ];
    if !extra.contains(&"--witnesses") {
        args.extend_from_slice(&["--witnesses", "0"]);
    }
    args.extend_from_slice(extra);
    fed.cli(&args)
}

#[test]
fn evidence_bundles_verify_offline_and_tampering_is_named() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU"]);
    let _de = fed.start("DE");
    let _hu = fed.start("HU");
    let de = fed.user(
        "DE",
        &fed.add_user("DE", "anna", "DE-BY-BLZK", "authority_user", &[]),
    );
    let hu = fed.user(
        "HU",
        &fed.add_user("HU", "bela", "HU-ENKK", "authority_user", &[]),
    );
    let auditor = fed.user("DE", &fed.add_user("DE", "audit", "DE-NC", "auditor", &[]));
    let id = de.post_status(
        "/api/v1/requests?wait=delivered",
        &json!({"responder": "HU-ENKK", "area": "PQ", "procedure": "PQ-P01", "questions": ["PQ-Q01"],
                "subject": {"name": "Audit Subject"}, "answer_by": "2099-01-31"}),
        201,
    )["id"].as_str().unwrap().to_string();
    step(&hu, &id, "accept", json!({}));
    step(
        &hu,
        &id,
        "answer",
        json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": true}]}),
    );
    de.get_json(&format!("/api/v1/requests/{id}"));
    step(&de, &id, "close", json!({"timeliness": 5}));

    // Only auditors get bundles.
    assert_eq!(
        de.get(&format!("/api/v1/audit/bundle?case={id}"))
            .unwrap()
            .0,
        403
    );
    let bundle = auditor.get_json(&format!("/api/v1/audit/bundle?case={id}"));
    let kinds: Vec<String> = bundle["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["leaf"]
                .as_str()
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()
                .to_string()
        })
        .collect();
    // DE sent create and close, received accept and answer; a receipt for each; the read.
    for (k, n) in [
        ("type=envelope_out", 2),
        ("type=envelope_in", 2),
        ("type=receipt_in", 2),
        ("type=receipt_out", 2),
        ("type=access", 1),
    ] {
        assert_eq!(
            kinds.iter().filter(|x| *x == k).count(),
            n,
            "{k}: {kinds:?}"
        );
    }
    let leaves: String = bundle["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["leaf"].as_str().unwrap())
        .collect();
    assert!(
        !leaves.contains("Audit Subject") && !leaves.contains("anna"),
        "no personal data in leaves"
    );

    let dir = tempfile::tempdir().unwrap();
    let api_file = dir.path().join("api-bundle.json");
    std::fs::write(&api_file, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let (ok, out) = verify(&fed, &api_file, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("PASS case.lifecycle"), "{out}");
    assert!(out.contains("PASS trust_list.signature"), "{out}");

    // A burst of diagnostics DE → HU travels in batches, and HU signs the receipts of the
    // envelopes it commits together once (group receipts): DE logs each, and they are in the
    // time-range bundle below, each verified on its own.
    let (st, body) = fed
        .client("DE")
        .post_json(
            "/operator/diag/send",
            &json!({"to": "HU", "count": 200, "wait": true, "body_bytes": 64}),
        )
        .expect("POST /operator/diag/send");
    assert_eq!(st, 200, "{body}");
    let sent: imi_e2e::DiagSend = serde_json::from_str(&body).unwrap();
    assert_eq!(sent.accepted, Some(200), "{body}");
    let grouped = fed
        .client("HU")
        .metric("imi_receipts_grouped_total", &[])
        .unwrap_or(0.0);
    assert!(grouped >= 2.0, "HU signed no group receipt: {grouped}");

    // A time-range bundle (everything logged in the range) verifies too.
    let range =
        auditor.get_json("/api/v1/audit/bundle?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z");
    use base64::Engine as _;
    let group_receipts = range["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["leaf"].as_str().unwrap().contains("\ntype=receipt_in\n"))
        .filter_map(|e| e["bytes"].as_str())
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
        .filter(|b| imi_protocol::Receipt::is_group(b))
        .count();
    // (DE stores a receipt just after reporting it, so the last few may not be in yet.)
    assert!(
        group_receipts >= 2 && group_receipts as f64 <= grouped,
        "the range bundle holds {group_receipts} group receipts, HU signed {grouped}"
    );
    assert!(range["case"].is_null());
    assert!(
        range["entries"].as_array().unwrap().len() >= bundle["entries"].as_array().unwrap().len()
    );
    let range_file = dir.path().join("range.json");
    std::fs::write(&range_file, serde_json::to_vec(&range).unwrap()).unwrap();
    let (ok, out) = verify(&fed, &range_file, &[]);
    assert!(ok, "{out}");
    let empty =
        auditor.get_json("/api/v1/audit/bundle?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z");
    assert!(empty["entries"].as_array().unwrap().is_empty());
    assert_eq!(
        auditor
            .get("/api/v1/audit/bundle?from=2001-01-01T00:00:00Z")
            .unwrap()
            .0,
        400
    );

    // The operator CLI export of HU's side verifies too.
    let hu_file = dir.path().join("hu-bundle.json");
    let cfg = fed.config("HU");
    let o = fed.run_cli(&[
        "audit",
        "export",
        "--config",
        cfg.to_str().unwrap(),
        "--case",
        &id,
        "--out",
        hu_file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ok, out) = verify(&fed, &hu_file, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("PASS trust.witnesses_required (0: an unwitnessed log is accepted)"),
        "{out}"
    );
    // Both sides' bundles cross-check: what each node's signed records say the other
    // received or sent is in the other's bundle.
    let (ok, out) = verify(
        &fed,
        &api_file,
        &["--counterpart", hu_file.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    for c in [
        "PASS counterpart.case.chain",
        "PASS cross.HU.envelope_in (2 envelopes",
        "PASS cross.HU.envelope_out (2 envelopes",
        "PASS cross.DE.envelope_in (2 envelopes",
        "PASS cross.DE.envelope_out (2 envelopes",
    ] {
        assert!(out.contains(c), "{c}: {out}");
    }
    // A dishonest HU re-logs the case without the close it accepted (and the receipt it
    // signed for it), with its own keys: its bundle verifies alone, the cross-check names
    // the omission, and DE holds HU's signed receipt for it.
    let hu_bundle: Value = serde_json::from_slice(&std::fs::read(&hu_file).unwrap()).unwrap();
    let hu_seed = std::fs::read_to_string(fed.node_dir("HU").join("identity.key")).unwrap();
    let mut pruned = hu_bundle.clone();
    let close_in = hu_bundle["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["leaf"].as_str().unwrap())
        .find(|l| l.contains("type=envelope_in") && l.contains("step=close"))
        .and_then(|l| l.lines().find_map(|x| x.strip_prefix("id=")))
        .unwrap()
        .to_owned();
    pruned["entries"].as_array_mut().unwrap().retain(|e| {
        !e["leaf"]
            .as_str()
            .unwrap()
            .contains(&format!("id={close_in}"))
    });
    let relinked = relink(&pruned);
    let lying = relog(&relinked, "HU", hu_seed.trim(), &|l| l.to_owned());
    let lying_file = dir.path().join("hu-lying.json");
    std::fs::write(&lying_file, serde_json::to_vec(&lying).unwrap()).unwrap();
    let (ok, out) = verify(&fed, &lying_file, &[]);
    assert!(ok, "the dishonest node's own bundle verifies alone: {out}");
    let (ok, out) = verify(
        &fed,
        &api_file,
        &["--counterpart", lying_file.to_str().unwrap()],
    );
    assert!(!ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL cross.HU.envelope_in") && l.contains(&close_in)),
        "{out}"
    );
    // The defaults: a pinned governance key is required, and one witness.
    let o = fed.run_cli(&["audit", "verify", hu_file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("--governance-key"),
        "verify ran without a pinned key: {stderr}"
    );
    let gov = fed.root().join("governance.pub");
    let o = fed.run_cli(&[
        "audit",
        "verify",
        hu_file.to_str().unwrap(),
        "--governance-key",
        gov.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success(),
        "an unwitnessed bundle passed the default: {out}"
    );
    assert!(out.contains("PASS trust.witnesses_required (1)"), "{out}");
    assert!(out.contains("PASS trust.governance_key (pinned "), "{out}");
    // Without witnesses yet, requiring one fails and says so.
    let (ok, out) = verify(&fed, &hu_file, &["--witnesses", "1"]);
    assert!(
        !ok && out.contains("FAIL checkpoint[") && out.contains(".witnesses"),
        "{out}"
    );
    // HU witnesses DE's checkpoint: DE sends it, HU sends its cosignature back.
    let checkpoint = |node: &str| {
        let cfg = fed.config(node);
        let o = fed.run_cli(&["audit", "checkpoint", "--config", cfg.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    checkpoint("DE");
    fed.wait_until(
        "HU cosigned DE's checkpoint",
        std::time::Duration::from_secs(60),
        || {
            checkpoint("HU");
            let b = auditor.get_json(&format!("/api/v1/audit/bundle?case={id}"));
            let last = b["log"]["checkpoints"]
                .as_array()?
                .last()?
                .as_str()?
                .to_string();
            last.contains("imi-federation.invalid/witness/HU")
                .then_some(())
        },
    );
    let witnessed = dir.path().join("witnessed.json");
    std::fs::write(
        &witnessed,
        serde_json::to_vec(&auditor.get_json(&format!("/api/v1/audit/bundle?case={id}"))).unwrap(),
    )
    .unwrap();
    let (ok, out) = verify(&fed, &witnessed, &["--witnesses", "1"]);
    assert!(ok, "{out}");
    assert!(out.contains("1 witnesses, 1 required"), "{out}");
    // A cosignature HU validly signs but dates an hour before the newest entry of the tree
    // it cosigns (inside its key's validity) does not count.
    {
        use imi_audit::note::SignedNote;
        let mut b: Value = serde_json::from_slice(&std::fs::read(&witnessed).unwrap()).unwrap();
        let newest = b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                e["leaf"].as_str().unwrap().lines().find_map(|l| {
                    ["created=", "received=", "at="]
                        .iter()
                        .find_map(|p| l.strip_prefix(p))
                        .and_then(|t| t.parse::<u64>().ok())
                })
            })
            .max()
            .unwrap();
        let n = b["log"]["checkpoints"].as_array().unwrap().len() - 1;
        let hu_seed = std::fs::read_to_string(fed.node_dir("HU").join("identity.key")).unwrap();
        let hu_key = imi_protocol::NodeSigner::from_seed(
            imi_protocol::NodeId::HU,
            &hex_decode(hu_seed.trim()),
        );
        // Control: the same cosignature dated a minute after the newest entry counts.
        for (at_ms, counts) in [(newest + 60_000, true), (newest - 3_600_000, false)] {
            let mut note = SignedNote::parse(b["log"]["checkpoints"][n].as_str().unwrap()).unwrap();
            note.signatures.truncate(1);
            note.cosign(
                &imi_audit::bundle::witness_name("HU"),
                &hu_key,
                at_ms / 1000,
            );
            b["log"]["checkpoints"][n] = json!(note.text());
            let f = dir.path().join("recosigned.json");
            std::fs::write(&f, serde_json::to_vec(&b).unwrap()).unwrap();
            let (ok, out) = verify(&fed, &f, &["--witnesses", "1"]);
            assert_eq!(ok, counts, "{out}");
            if !counts {
                assert!(
                    out.lines()
                        .any(|l| l.starts_with(&format!("FAIL checkpoint[{n}].cosignatures"))),
                    "{out}"
                );
            }
        }
    }
    // No alarms between honest nodes.
    assert_eq!(
        auditor.get_json("/api/v1/audit/alarms?limit=5"),
        json!({"items": [], "next_cursor": null})
    );
    assert_eq!(
        auditor.get("/api/v1/audit/alarms?cursor=x").unwrap().0,
        400,
        "a malformed cursor"
    );

    // Tampering: an envelope byte, a receipt byte, a leaf, a proof hash, the checkpoint.
    let text = std::fs::read_to_string(&api_file).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let entries = v["entries"].as_array().unwrap().clone();
    let find = |t: &str| {
        entries
            .iter()
            .position(|e| e["leaf"].as_str().unwrap().contains(t))
            .unwrap()
    };
    let mut cases: Vec<(String, Value, &str)> = Vec::new();
    {
        let i = find("type=envelope_in");
        let mut b = v.clone();
        let s = b["entries"][i]["bytes"].as_str().unwrap().to_string();
        let mut raw = base64_decode(&s);
        let mid = raw.len() / 2;
        raw[mid] ^= 1;
        b["entries"][i]["bytes"] = json!(base64_encode(&raw));
        cases.push(("envelope byte".into(), b, ".sha256"));
    }
    {
        let i = find("type=receipt_in");
        let mut b = v.clone();
        let s = b["entries"][i]["bytes"].as_str().unwrap().to_string();
        let mut raw = base64_decode(&s);
        let last = raw.len() - 1;
        raw[last] ^= 0x80;
        b["entries"][i]["bytes"] = json!(base64_encode(&raw));
        cases.push(("receipt byte".into(), b, ".sha256"));
    }
    {
        let i = find("type=access");
        let mut b = v.clone();
        let leaf = b["entries"][i]["leaf"]
            .as_str()
            .unwrap()
            .replace("action=read_request", "action=read_requesu");
        b["entries"][i]["leaf"] = json!(leaf);
        cases.push(("leaf".into(), b, ".inclusion"));
    }
    {
        let mut b = v.clone();
        let p = b["entries"][0]["proof"][0].as_str().unwrap().to_string();
        let flipped = format!("{}{}", if p.starts_with('0') { "1" } else { "0" }, &p[1..]);
        b["entries"][0]["proof"][0] = json!(flipped);
        cases.push(("proof hash".into(), b, ".inclusion"));
    }
    {
        let mut b = v.clone();
        let n = b["log"]["checkpoints"].as_array().unwrap().len() - 1;
        let cp = b["log"]["checkpoints"][n].as_str().unwrap().to_string();
        let mut lines: Vec<String> = cp.split('\n').map(str::to_string).collect();
        let size: u64 = lines[1].parse().unwrap();
        lines[1] = (size + 1).to_string();
        b["log"]["checkpoints"][n] = json!(lines.join("\n"));
        cases.push(("checkpoint size".into(), b, ".signature"));
    }
    {
        let mut b = v.clone();
        b["trust_list"] = json!(format!("A{}", &b["trust_list"].as_str().unwrap()[1..]));
        cases.push(("trust list".into(), b, "trust_list"));
    }
    {
        // The envelope a receipt answers removed: the receipt left behind names an envelope
        // that is not in the case's bundle.
        let i = find("type=receipt_in");
        let id = entries[i]["leaf"]
            .as_str()
            .unwrap()
            .split('\n')
            .find_map(|l| l.strip_prefix("id="))
            .unwrap()
            .to_owned();
        let mut b = v.clone();
        b["entries"].as_array_mut().unwrap().retain(|e| {
            let leaf = e["leaf"].as_str().unwrap();
            !(leaf.contains("type=envelope_") && leaf.contains(&format!("id={id}")))
        });
        cases.push(("a receipt without its envelope".into(), b, ".envelope"));
    }
    // Omissions: each must break the case's chain (or its head).
    let drop_where = |pred: &dyn Fn(&str) -> bool| {
        let mut b = v.clone();
        b["entries"]
            .as_array_mut()
            .unwrap()
            .retain(|e| !pred(e["leaf"].as_str().unwrap()));
        assert!(
            b["entries"].as_array().unwrap().len() < entries.len(),
            "the omission removes something"
        );
        b
    };
    let close_id = entries
        .iter()
        .map(|e| e["leaf"].as_str().unwrap())
        .find(|l| l.contains("step=close"))
        .and_then(|l| l.lines().find_map(|x| x.strip_prefix("id=")))
        .unwrap()
        .to_owned();
    let last_index = entries.last().unwrap()["index"].clone();
    for (what, b) in [
        (
            "the close envelope",
            drop_where(&|l| l.contains("step=close")),
        ),
        (
            "the close envelope and its receipt",
            drop_where(&|l| l.contains(&format!("id={close_id}"))),
        ),
        (
            "every receipt",
            drop_where(&|l| l.contains("type=receipt_")),
        ),
        (
            "the access leaf",
            drop_where(&|l| l.contains("type=access")),
        ),
        ("the newest entry", {
            let mut b = v.clone();
            b["entries"]
                .as_array_mut()
                .unwrap()
                .retain(|e| e["index"] != last_index);
            b
        }),
    ] {
        cases.push((format!("omitted: {what}"), b, "case.chain"));
    }
    {
        let mut b = v.clone();
        b["head"] = Value::Null;
        cases.push(("no head statement".into(), b, "bundle.canonical"));
    }
    for (what, b, want) in cases {
        let f = dir.path().join("tampered.json");
        std::fs::write(&f, serde_json::to_vec(&b).unwrap()).unwrap();
        let (ok, out) = verify(&fed, &f, &[]);
        assert!(!ok, "{what}: tampered bundle verified\n{out}");
        let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
        assert!(
            failed.iter().any(|l| l.contains(want)),
            "{what}: want a failed {want}: {failed:?}"
        );
    }
    // Any byte flipped anywhere in the file: never a pass, and a named check fails.
    let bytes = text.as_bytes().to_vec();
    let gov: [u8; 32] = hex_decode(
        std::fs::read_to_string(fed.root().join("governance.pub"))
            .unwrap()
            .trim(),
    );
    let opts = imi_audit::bundle::Options {
        governance_key: Some(gov),
        min_witnesses: 0,
    };
    assert!(
        imi_audit::bundle::verify(&bytes, &opts)
            .iter()
            .all(|c| c.ok)
    );
    let started = std::time::Instant::now();
    for pos in 0..bytes.len() {
        let mut b = bytes.clone();
        b[pos] ^= 0x01;
        let checks = imi_audit::bundle::verify(&b, &opts);
        assert!(
            checks.iter().any(|c| !c.ok),
            "flipping byte {pos} ({:?}) still verifies",
            bytes[pos] as char
        );
    }
    eprintln!("{} flips checked in {:?}", bytes.len(), started.elapsed());
    // Every hex letter's case changed, one at a time: a bundle has one encoding, so none
    // of these verifies either (outside hex, a case change alters the bytes anyway).
    let mut case_edits = 0;
    for pos in 0..bytes.len() {
        if !(b'a'..=b'f').contains(&bytes[pos]) {
            continue;
        }
        let mut b = bytes.clone();
        b[pos] = b[pos].to_ascii_uppercase();
        case_edits += 1;
        assert!(
            imi_audit::bundle::verify(&b, &opts).iter().any(|c| !c.ok),
            "upper-casing byte {pos} ({:?}) still verifies",
            bytes[pos] as char
        );
    }
    assert!(case_edits > 100, "{case_edits}");
    // Any one entry left out: the case's chain (or its head) names the gap.
    let full: Value = serde_json::from_slice(&bytes).unwrap();
    let n = full["entries"].as_array().unwrap().len();
    for i in 0..n {
        let mut b = full.clone();
        let gone = b["entries"].as_array_mut().unwrap().remove(i);
        let checks = imi_audit::bundle::verify(&serde_json::to_vec(&b).unwrap(), &opts);
        assert!(
            checks.iter().any(|c| !c.ok && c.name == "case.chain"),
            "leaving out entry {} passes case.chain: {}",
            gone["index"],
            gone["leaf"]
        );
    }
    // A dishonest node re-logs the case in a fresh log of its own, signs a checkpoint and a
    // head for it (it holds its keys; witnesses are not asked): labels that lie about
    // signed bytes still fail, each by name. The control (re-logged unchanged) verifies.
    let seed = std::fs::read_to_string(fed.node_dir("DE").join("identity.key")).unwrap();
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    let relogged = |edit: &dyn Fn(&str) -> String| {
        let b = relog(&original, "DE", seed.trim(), edit);
        imi_audit::bundle::verify(&serde_json::to_vec(&b).unwrap(), &opts)
    };
    let failed = |checks: Vec<imi_audit::bundle::Check>| -> Vec<String> {
        checks
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect()
    };
    assert_eq!(failed(relogged(&|l| l.to_owned())), Vec::<String>::new());
    for (what, from, to, want) in [
        (
            "a close relabelled withdraw",
            "step=close",
            "step=withdraw",
            ".metadata",
        ),
        (
            "a receipt's outcome relabelled",
            "outcome=accepted",
            "outcome=rejected",
            ".metadata",
        ),
        (
            "receipt_in relabelled receipt_out",
            "type=receipt_in",
            "type=receipt_out",
            ".direction",
        ),
        (
            "envelope_out relabelled envelope_in",
            "type=envelope_out",
            "type=envelope_in",
            ".direction",
        ),
        (
            "envelope_in relabelled envelope_out",
            "type=envelope_in",
            "type=envelope_out",
            ".direction",
        ),
    ] {
        let f = failed(relogged(&|l: &str| l.replacen(from, to, 1)));
        assert!(
            f.iter().any(|c| c.contains(want)),
            "{what}: want a failed {want}, got {f:?}"
        );
    }
    // A receipt leaf moved to another case (re-logged under a new case id) fails too.
    let other = "00000000000000000000000000000001";
    let f = failed(relogged(&|l: &str| {
        if l.contains("type=receipt_") {
            l.replace(&format!("case={id}"), &format!("case={other}"))
        } else {
            l.to_owned()
        }
    }));
    assert!(
        f.iter()
            .any(|c| c.contains(".case") || c.contains("case.chain")),
        "{f:?}"
    );
    // A checkpoint repeated, an entry duplicated: not the one encoding either.
    for what in ["checkpoint", "entry"] {
        let mut b: Value = serde_json::from_slice(&bytes).unwrap();
        let list = if what == "checkpoint" {
            b["log"]["checkpoints"].as_array_mut().unwrap()
        } else {
            b["entries"].as_array_mut().unwrap()
        };
        let first = list[0].clone();
        list.insert(0, first);
        let checks = imi_audit::bundle::verify(&serde_json::to_vec(&b).unwrap(), &opts);
        assert!(checks.iter().any(|c| !c.ok), "a duplicated {what} verifies");
    }
    let _ = &mut v;
}

/// What a node can do with its own signing key: put a bundle's leaves (each passed through
/// `edit`) in a fresh log of its own, in order, their `prev` links renumbered; sign a
/// checkpoint of that log and a head statement for the case; prove each entry in it.
fn relog(bundle: &Value, node: &str, seed_hex: &str, edit: &dyn Fn(&str) -> String) -> Value {
    use imi_audit::merkle::{self, MemTree};
    use imi_audit::note::{CaseHead, Checkpoint, SignedNote, head_origin_of, origin_of};
    let signer = imi_protocol::NodeSigner::from_seed(node.parse().unwrap(), &hex_decode(seed_hex));
    let entries = bundle["entries"].as_array().unwrap();
    let renumber: std::collections::HashMap<String, String> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e["index"].to_string(), i.to_string()))
        .collect();
    let leaves: Vec<String> = entries
        .iter()
        .map(|e| {
            edit(e["leaf"].as_str().unwrap())
                .lines()
                .map(|line| match line.strip_prefix("prev=") {
                    Some(p) if p != "-" => format!("prev={}\n", renumber[p]),
                    _ => format!("{line}\n"),
                })
                .collect()
        })
        .collect();
    let mut tree = MemTree::new();
    for l in &leaves {
        tree.push(merkle::leaf_hash(l.as_bytes()));
    }
    let size = tree.size();
    let cp = Checkpoint {
        origin: origin_of(node),
        size,
        root: tree.root(),
    };
    let head = CaseHead {
        origin: head_origin_of(node),
        case: bundle["case"].as_str().unwrap().to_owned(),
        size,
        head: Some(size - 1),
    };
    let mut b = bundle.clone();
    b["log"]["checkpoints"] = json!([SignedNote::sign(&cp.body(), &cp.origin, &signer).text()]);
    b["log"]["consistency"] = json!([]);
    b["head"] = json!(SignedNote::sign(&head.body(), &head.origin, &signer).text());
    for (i, l) in leaves.iter().enumerate() {
        b["entries"][i]["index"] = json!(i);
        b["entries"][i]["leaf"] = json!(l);
        b["entries"][i]["proof"] = json!(
            merkle::inclusion_proof(&tree, i as u64, size)
                .unwrap()
                .iter()
                .map(|h| h.iter().map(|x| format!("{x:02x}")).collect::<String>())
                .collect::<Vec<_>>()
        );
    }
    b
}

/// A bundle whose entries were removed, its `prev` links rewritten to skip them (each entry
/// linked to the previous entry that is left), as a node re-logging without them would.
fn relink(bundle: &Value) -> Value {
    let mut b = bundle.clone();
    let mut before = "-".to_owned();
    for e in b["entries"].as_array_mut().unwrap() {
        let leaf: String = e["leaf"]
            .as_str()
            .unwrap()
            .lines()
            .map(|line| {
                if line.starts_with("prev=") {
                    format!("prev={before}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        before = e["index"].to_string();
        e["leaf"] = json!(leaf);
    }
    b
}

fn hex_decode(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = T.iter().position(|t| *t == c).unwrap() as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Retention with real nodes whose clocks are moved ahead: blocked data is invisible to
/// ordinary users and readable by an auditor only through an explicit, logged action;
/// after erasure the data is gone and the case's evidence bundle still verifies.
#[test]
fn retention_blocks_then_erases_and_the_trail_still_verifies() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU"]);
    let de_proc = fed.start("DE");
    let hu_proc = fed.start("HU");
    let de = fed.user(
        "DE",
        &fed.add_user("DE", "anna", "DE-BY-BLZK", "authority_user", &[]),
    );
    let hu = fed.user(
        "HU",
        &fed.add_user("HU", "bela", "HU-ENKK", "authority_user", &[]),
    );
    let auditor = fed.user("DE", &fed.add_user("DE", "audit", "DE-NC", "auditor", &[]));
    let id = de.post_status(
        "/api/v1/requests?wait=delivered",
        &json!({"responder": "HU-ENKK", "area": "PQ", "procedure": "PQ-P01", "questions": ["PQ-Q01"],
                "subject": {"name": "Retention Subject"}, "answer_by": "2099-01-31"}),
        201,
    )["id"].as_str().unwrap().to_string();
    step(&hu, &id, "accept", json!({}));
    step(
        &hu,
        &id,
        "answer",
        json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": true}]}),
    );
    step(&de, &id, "close", json!({}));
    de_proc.stop();
    hu_proc.stop();

    // Seven months later: blocked on both sides (each node runs its own schedule at start).
    let later = (214 * 86_400_000u64).to_string();
    let de_proc = imi_e2e::NodeProc::start_env(&fed, "DE", &[("IMI_CLOCK_OFFSET_MS", &later)]);
    let hu_proc = imi_e2e::NodeProc::start_env(&fed, "HU", &[("IMI_CLOCK_OFFSET_MS", &later)]);
    for c in [&de, &hu] {
        assert_eq!(
            c.get(&format!("/api/v1/requests/{id}")).unwrap().0,
            404,
            "{}",
            c.id
        );
        assert!(
            c.get_json("/api/v1/requests")["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        de.get(&format!("/api/v1/audit/blocked/{id}")).unwrap().0,
        403
    );
    let v = auditor.get_json(&format!("/api/v1/audit/blocked/{id}"));
    assert_eq!(v["subject"]["name"], "Retention Subject");
    // The operator cannot: blocked personal data is read by auditors only, with their own
    // identity in the access log.
    let (st, body) = fed
        .client("DE")
        .get(&format!("/operator/audit/blocked/{id}"))
        .unwrap();
    assert_eq!(st, 404, "{body}");
    assert!(!body.contains("Retention Subject"));
    let log = auditor.get_json(&format!("/api/v1/audit/access-log?case={id}"));
    let readers: Vec<&Value> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "read_blocked")
        .map(|i| &i["user"])
        .collect();
    assert_eq!(readers, [&Value::from("audit")], "{log}");
    de_proc.stop();
    hu_proc.stop();

    // Three years and a bit later: erased.
    let later = (1200 * 86_400_000u64).to_string();
    let _de = imi_e2e::NodeProc::start_env(&fed, "DE", &[("IMI_CLOCK_OFFSET_MS", &later)]);
    let _hu = imi_e2e::NodeProc::start_env(&fed, "HU", &[("IMI_CLOCK_OFFSET_MS", &later)]);
    let (st, body) = auditor.get(&format!("/api/v1/audit/blocked/{id}")).unwrap();
    assert_eq!(st, 410, "{body}");
    let bundle = auditor.get_json(&format!("/api/v1/audit/bundle?case={id}"));
    let leaves: Vec<&str> = bundle["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["leaf"].as_str().unwrap())
        .collect();
    assert!(
        leaves
            .iter()
            .any(|l| l.contains("type=retention") && l.contains("action=block"))
    );
    assert!(
        leaves
            .iter()
            .any(|l| l.contains("type=retention") && l.contains("action=delete"))
    );
    assert!(
        leaves
            .iter()
            .any(|l| l.contains("type=access") && l.contains("action=read_blocked"))
    );
    // The envelope copies are gone with the data (their bodies were decryptable by the
    // node's HPKE key); the receipts, which carry no content, stay.
    for e in bundle["entries"].as_array().unwrap() {
        let leaf = e["leaf"].as_str().unwrap();
        if leaf.contains("type=envelope_") {
            assert!(
                e["bytes"].is_null(),
                "envelope bytes survived erasure: {leaf}"
            );
        }
        if leaf.contains("type=receipt_") {
            assert!(e["bytes"].is_string(), "receipts stay: {leaf}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("erased.json");
    std::fs::write(&f, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let (ok, out) = verify(&fed, &f, &[]);
    assert!(ok, "the trail verifies after erasure:\n{out}");
    assert!(
        out.contains(".erased") && out.contains("PASS case.lifecycle"),
        "{out}"
    );
    // Removing the deletion leaf makes the missing bytes a failure.
    let mut cut = bundle.clone();
    cut["entries"]
        .as_array_mut()
        .unwrap()
        .retain(|e| !e["leaf"].as_str().unwrap().contains("action=delete"));
    std::fs::write(&f, serde_json::to_vec(&cut).unwrap()).unwrap();
    let (ok, out) = verify(&fed, &f, &[]);
    assert!(!ok && out.contains("FAIL entry["), "{out}");
    // The counterpart's copy is erased by its own schedule.
    let hu_cfg = fed.config("HU");
    let o = fed.run_cli(&[
        "audit",
        "export",
        "--config",
        hu_cfg.to_str().unwrap(),
        "--case",
        &id,
        "--out",
        dir.path().join("hu.json").to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let hu_bundle = std::fs::read_to_string(dir.path().join("hu.json")).unwrap();
    assert!(hu_bundle.contains("action=delete"));
    let (ok, out) = verify(&fed, &dir.path().join("hu.json"), &[]);
    assert!(ok, "{out}");
}

//! Backups with real nodes: `imi-node backup create` while the node takes requests, `list`
//! and `verify` (and a tampered backup failing it), then a lost machine restored from the
//! older of two backups into a fresh data directory: nothing the backup holds is lost, the
//! outbox resumes and the member applies nothing twice, and a case erased after the backup
//! stays erased.
use std::collections::BTreeSet;
use std::time::Duration;

use imi_e2e::{Federation, HEAVY, NodeClient, NodeProc, lock};
use serde_json::{Value, json};

/// Failure guard (not an expected duration).
const GUARD: Duration = Duration::from_secs(120);

fn step(c: &NodeClient, id: &str, action: &str, body: Value) {
    c.post_status(
        &format!("/api/v1/requests/{id}/{action}?wait=delivered"),
        &body,
        200,
    );
}

fn new_request(c: &NodeClient, subject: &str, wait: bool) -> String {
    let path = if wait {
        "/api/v1/requests?wait=delivered"
    } else {
        "/api/v1/requests"
    };
    c.post_status(
        path,
        &json!({"responder": "HU-ENKK", "area": "PQ", "procedure": "PQ-P01", "questions": ["PQ-Q01"],
                "subject": {"name": subject}, "answer_by": "2099-01-31"}),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every request id the user sees, through the pages.
fn all_ids(c: &NodeClient) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(k) => format!("/api/v1/requests?limit=200&cursor={k}"),
            None => "/api/v1/requests?limit=200".to_string(),
        };
        let page = c.get_json(&path);
        for i in page["items"].as_array().unwrap() {
            out.push(i["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(k) => cursor = Some(k.to_string()),
            None => return out,
        }
    }
}

fn cli_ok(fed: &Federation, args: &[&str]) -> String {
    let (ok, out) = fed.cli(args);
    assert!(ok, "imi-node {args:?} failed:\n{out}\n{}", fed.logs_tail());
    out
}

#[test]
fn backup_under_load_then_restore_keeps_everything_once_and_erased_cases_erased() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU"]);
    let cfg = fed.config("DE");
    let cfg = cfg.to_str().unwrap();
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

    // A case that will be closed now and erased after the first backup.
    let erased = new_request(&de, "Erased Subject", true);
    step(&hu, &erased, "accept", json!({}));
    step(
        &hu,
        &erased,
        "answer",
        json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": true}]}),
    );
    step(&de, &erased, "close", json!({}));

    // HU down: what DE's users create waits in DE's outbox.
    hu_proc.stop();
    let mut sent: Vec<String> = (0..10)
        .map(|i| new_request(&de, &format!("Load {i}"), false))
        .collect();
    // Under load: a user keeps creating requests while the backup is taken.
    let writer = {
        let de = de.clone();
        std::thread::spawn(move || {
            (10..40)
                .map(|i| new_request(&de, &format!("Load {i}"), false))
                .collect::<Vec<_>>()
        })
    };
    let out = cli_ok(&fed, &["backup", "create", "--config", cfg]);
    assert!(out.contains("backup 1 of DE"), "{out}");
    sent.extend(writer.join().unwrap());
    assert_eq!(sent.len(), 40);

    let out = cli_ok(&fed, &["backup", "list", "--config", cfg]);
    assert!(out.contains("backup 1 of DE"), "{out}");
    let out = cli_ok(&fed, &["backup", "verify", "--config", cfg]);
    for check in ["PASS signature", "PASS files", "PASS data key", "PASS log"] {
        assert!(out.contains(check), "{check}:\n{out}");
    }
    let listed = fed.client("DE").get_json("/operator/backups");
    assert_eq!(listed["items"][0]["id"], 1, "{listed}");
    // The node says when it last made one (monitoring alerts on its age).
    let created = listed["items"][0]["created_ms"].as_u64().unwrap();
    assert_eq!(
        fed.client("DE")
            .metric_required("imi_backup_last_success_timestamp_seconds", &[]),
        (created / 1000) as f64
    );

    // HU back: DE's outbox drains; HU holds every request once.
    let hu_proc = fed.start("HU");
    let de_op = fed.client("DE");
    fed.wait_until("DE's outbox to HU drained", GUARD, || {
        (de_op.try_queue_depth("HU") == Some(0)).then_some(())
    });
    let hu_ids: BTreeSet<String> = all_ids(&hu).into_iter().collect();
    let want: BTreeSet<String> = sent.iter().cloned().chain([erased.clone()]).collect();
    assert_eq!(hu_ids, want);

    // Years later on DE's clock, retention erases the closed case; a second backup.
    de_proc.stop();
    let later = (1200 * 86_400_000u64).to_string();
    let de_proc = NodeProc::start_env(&fed, "DE", &[("IMI_CLOCK_OFFSET_MS", &later)]);
    let tombstones = fed.node_dir("DE").join("erased-cases");
    fed.wait_until("DE erased the closed case", GUARD, || {
        std::fs::read_to_string(&tombstones)
            .ok()
            .filter(|t| t.contains(&erased))
    });
    fed.wait_until("the erasure is committed", GUARD, || {
        let (st, _) = auditor
            .get(&format!("/api/v1/audit/blocked/{erased}"))
            .ok()?;
        (st == 410).then_some(())
    });
    let out = cli_ok(&fed, &["backup", "create", "--config", cfg]);
    assert!(
        out.contains("backup 2 of DE") && out.contains("1 erased cases"),
        "{out}"
    );

    // The machine is lost: no data directory, no erased-cases file.
    de_proc.kill9();
    let data = fed.node_dir("DE").join("data");
    std::fs::rename(&data, fed.node_dir("DE").join("data.lost")).unwrap();
    std::fs::remove_file(&tombstones).unwrap();

    // A tampered backup does not verify and is not restored.
    let backups = fed.node_dir("DE").join("backups");
    let one = backups.join("000001");
    let erased_file = one.join("erased-cases");
    let original = std::fs::read(&erased_file).unwrap();
    std::fs::write(&erased_file, b"tampered\n").unwrap();
    let (ok, out) = fed.cli(&["backup", "verify", "--config", cfg, "--id", "1"]);
    assert!(
        !ok && out.contains("FAIL files") && out.contains("erased-cases differs"),
        "{out}"
    );
    let (ok, out) = fed.cli(&["backup", "restore", "--config", cfg, "--id", "1"]);
    assert!(!ok && out.contains("nothing restored"), "{out}");
    assert!(!data.exists(), "a refused restore writes nothing");
    std::fs::write(&erased_file, original).unwrap();

    // Restore the older backup (taken before the erasure).
    let out = cli_ok(&fed, &["backup", "restore", "--config", cfg, "--id", "1"]);
    assert!(out.contains("restored backup 1 of DE"), "{out}");
    let (ok, out) = fed.cli(&["backup", "restore", "--config", cfg, "--id", "1"]);
    assert!(
        !ok && out.contains("is not empty"),
        "a restore never overwrites: {out}"
    );
    let hu_op = fed.client("HU");
    let duplicates_before = hu_op.metric_sum("imi_inbound_duplicates_total");
    let _de_proc = fed.start("DE");

    // Erased stays erased: the erased-cases of the newer backup came with the restore.
    let (st, body) = auditor
        .get(&format!("/api/v1/audit/blocked/{erased}"))
        .unwrap();
    assert_eq!(st, 410, "{body}");
    assert!(
        std::fs::read_to_string(&tombstones)
            .unwrap()
            .contains(&erased)
    );

    // Nothing the backup holds is lost: a prefix of what the user created, all readable.
    let restored = all_ids(&de);
    let restored_set: BTreeSet<&String> = restored.iter().collect();
    let k = sent
        .iter()
        .take_while(|id| restored_set.contains(id))
        .count();
    assert!(k >= 10, "the backup holds what was created before it: {k}");
    assert_eq!(
        restored_set.len(),
        k,
        "the backup holds exactly the requests created before it, in order"
    );
    for (i, id) in sent.iter().take(k).enumerate() {
        let v = de.get_json(&format!("/api/v1/requests/{id}"));
        assert_eq!(v["subject"]["name"], format!("Load {i}"), "{v}");
    }

    // The outbox resumes: what was queued at backup time is sent again, and HU answers
    // `duplicate` without applying anything twice.
    fed.wait_until("the restored outbox drained", GUARD, || {
        (de_op.try_queue_depth("HU") == Some(0)).then_some(())
    });
    let duplicates = hu_op.metric_sum("imi_inbound_duplicates_total") - duplicates_before;
    assert!(
        duplicates >= k as f64,
        "HU answered duplicate for the {k} resent requests: {duplicates}"
    );
    let hu_after = all_ids(&hu);
    assert_eq!(hu_after.len(), want.len(), "nothing applied twice");
    assert_eq!(hu_after.into_iter().collect::<BTreeSet<_>>(), want);

    // And the restored node works: a new request reaches HU.
    let fresh = new_request(&de, "After restore", true);
    let v = hu.get_json(&format!("/api/v1/requests/{fresh}"));
    assert_eq!(v["subject"]["name"], "After restore");
    drop(hu_proc);
}

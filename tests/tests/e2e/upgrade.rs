//! Stored data of a release opens in every later one. `tests/fixtures/node-0.1.0/` holds
//! what release 0.1.0 wrote for a DE node: a backup of its database (two requests, one
//! closed, one open), its keys and the federation's trust list, governance key and CA. The
//! test verifies and restores the backup with today's binary, starts the node on it and
//! reads the cases through the API. Regenerate the fixture only for a new release, never
//! to make this test pass: `IMI_WRITE_FIXTURE=1 cargo test -p imi-e2e --test main --
//! --ignored write_the_release_fixture`.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use imi_e2e::{Federation, HEAVY, NodeClient, lock};
use serde_json::{Value, json};

const RELEASE: &str = "0.1.0";
/// The node's key files (secrets, mode 0600 when in use; git keeps them 0644).
const NODE_FILES: &[&str] = &[
    "identity.key",
    "hpke.key",
    "data.key",
    "operator.token",
    "tls.key",
    "tls.crt",
];
/// The federation's public files.
const FEDERATION_FILES: &[&str] = &["trust-list.cbor", "governance.pub", "ca.crt"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("node-{RELEASE}"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn private(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn the_data_a_release_wrote_opens_and_serves() {
    let _g = lock(&HEAVY);
    let src = fixture();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(src.join("fixture.json")).unwrap()).unwrap();
    // A federation of today's layout; DE's keys and the federation's files are the release's.
    let fed = Federation::init(&["DE", "HU"]);
    for f in NODE_FILES {
        let to = fed.node_dir("DE").join(f);
        std::fs::copy(src.join("DE").join(f), &to).unwrap();
        private(&to);
    }
    for f in FEDERATION_FILES {
        std::fs::copy(src.join(f), fed.root().join(f)).unwrap();
    }
    std::fs::remove_dir_all(fed.node_dir("DE").join("data")).ok();
    let backups = tempfile::tempdir().unwrap();
    copy_tree(&src.join("DE").join("backups"), backups.path());
    let cfg = fed.config("DE");
    let cfg = cfg.to_str().unwrap();
    let dir = backups.path().to_str().unwrap();

    let (ok, out) = fed.cli(&["backup", "verify", "--config", cfg, "--dir", dir]);
    assert!(ok, "the release's backup verifies today:\n{out}");
    let (ok, out) = fed.cli(&["backup", "restore", "--config", cfg, "--dir", dir]);
    assert!(ok, "{out}");
    let _de = fed.start("DE");
    let anna = fed.user("DE", expected["token"].as_str().unwrap());
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let v = anna.get_json(&format!("/api/v1/requests/{id}"));
        assert_eq!(v["subject"]["name"], case["subject"], "{v}");
        assert_eq!(v["state"], case["state"], "{v}");
        assert_eq!(
            v["history"].as_array().unwrap().len(),
            case["steps"].as_u64().unwrap() as usize,
            "{v}"
        );
    }
    let listed = anna.get_json("/api/v1/requests");
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
}

fn step(c: &NodeClient, id: &str, action: &str, body: Value) {
    c.post_status(
        &format!("/api/v1/requests/{id}/{action}?wait=delivered"),
        &body,
        200,
    );
}

/// Writes `tests/fixtures/node-<RELEASE>/` (only with `IMI_WRITE_FIXTURE=1`).
#[test]
#[ignore = "writes the release fixture; run by hand for a new release"]
fn write_the_release_fixture() {
    assert_eq!(
        std::env::var("IMI_WRITE_FIXTURE").as_deref(),
        Ok("1"),
        "set IMI_WRITE_FIXTURE=1 to overwrite the fixture"
    );
    let fed = Federation::init(&["DE", "HU"]);
    let de_proc = fed.start("DE");
    let _hu = fed.start("HU");
    let token = fed.add_user("DE", "anna", "DE-BY-BLZK", "authority_user", &[]);
    let de = fed.user("DE", &token);
    let hu = fed.user(
        "HU",
        &fed.add_user("HU", "bela", "HU-ENKK", "authority_user", &[]),
    );
    let create = |subject: &str| {
        de.post_status(
            "/api/v1/requests?wait=delivered",
            &json!({"responder": "HU-ENKK", "area": "PQ", "procedure": "PQ-P01", "questions": ["PQ-Q01"],
                    "subject": {"name": subject}, "answer_by": "2099-01-31"}),
            201,
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let closed = create("Fixture Closed");
    step(&hu, &closed, "accept", json!({}));
    step(
        &hu,
        &closed,
        "answer",
        json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": true}]}),
    );
    step(&de, &closed, "close", json!({}));
    let open = create("Fixture Open");
    let cases: Vec<Value> = [(&closed, "Fixture Closed"), (&open, "Fixture Open")]
        .iter()
        .map(|(id, subject)| {
            let v = de.get_json(&format!("/api/v1/requests/{id}"));
            json!({"id": id, "subject": subject, "state": v["state"],
                   "steps": v["history"].as_array().unwrap().len()})
        })
        .collect();
    de_proc.stop();
    let cfg = fed.config("DE");
    let (ok, out) = fed.cli(&["backup", "create", "--config", cfg.to_str().unwrap()]);
    assert!(ok, "{out}");

    let out_dir = fixture();
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(out_dir.join("DE")).unwrap();
    for f in NODE_FILES {
        std::fs::copy(fed.node_dir("DE").join(f), out_dir.join("DE").join(f)).unwrap();
    }
    for f in FEDERATION_FILES {
        std::fs::copy(fed.root().join(f), out_dir.join(f)).unwrap();
    }
    copy_tree(
        &fed.node_dir("DE").join("backups"),
        &out_dir.join("DE").join("backups"),
    );
    std::fs::write(
        out_dir.join("fixture.json"),
        serde_json::to_vec_pretty(&json!({"release": RELEASE, "token": token, "cases": cases}))
            .unwrap(),
    )
    .unwrap();
}

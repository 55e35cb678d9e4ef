//! Tests of the node's set-up pieces: config files, federation init, key-file checks.
//!
//! * [`config_doc`]: `docs/configuration.md` documents every config key and its default.
//! * [`simulation`]: the `[simulation]` clock and `[network] peer_addresses`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "node/config_doc.rs"]
mod config_doc;
#[path = "node/simulation.rs"]
mod simulation;

use imi_node::config::NodeConfig;
use imi_node::init::{InitOptions, init, load_identity, load_trust_list};
use imi_protocol::NodeId;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn make(dir: &Path, members: &[NodeId]) -> Vec<std::path::PathBuf> {
    init(&InitOptions {
        out: dir.to_path_buf(),
        members: members.to_vec(),
        base_port: 41000,
        host: "127.0.0.1".into(),
        catalogue: None,
        directory: None,
        keys_valid_from: None,
    })
    .unwrap()
}

#[test]
fn example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/node.example.toml");
    let cfg = NodeConfig::load(&path).unwrap();
    assert_eq!(cfg.node, NodeId::AT);
    assert_eq!(cfg.engine.delivery_window, 256);
    assert!(cfg.data_dir.is_absolute() || cfg.data_dir.starts_with(path.parent().unwrap()));
}

#[test]
fn unknown_config_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let configs = make(dir.path(), &[NodeId::AT, NodeId::DE]);
    let text = std::fs::read_to_string(&configs[0]).unwrap() + "\n[surprise]\nx = 1\n";
    std::fs::write(&configs[0], text).unwrap();
    let err = NodeConfig::load(&configs[0]).unwrap_err();
    assert!(format!("{err:#}").contains("surprise"), "{err:#}");
}

#[test]
fn init_writes_a_consistent_federation() {
    let dir = tempfile::tempdir().unwrap();
    let members = [NodeId::AT, NodeId::DE, NodeId::EU];
    let configs = make(dir.path(), &members);
    assert_eq!(configs.len(), 3);
    for (i, c) in configs.iter().enumerate() {
        let cfg = NodeConfig::load(c).unwrap();
        assert_eq!(cfg.node, members[i]);
        assert_eq!(cfg.http.listen.port(), 41000 + 2 * i as u16 + 1);
        for secret in [
            &cfg.identity_key,
            &cfg.hpke_key,
            &cfg.http.tls_key,
            &cfg.http.operator_token,
        ] {
            let mode = std::fs::metadata(secret).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", secret.display());
        }
        let trust = load_trust_list(&cfg.trust_list, &cfg.governance_public_key).unwrap();
        let identity = load_identity(&cfg).unwrap();
        let member = trust.member(cfg.node).unwrap();
        assert_eq!(member.signing_keys[0].public, identity.signer.public());
        assert_eq!(member.hpke_keys[0].public, identity.hpke[0].public());
        assert_eq!(
            member.addresses,
            vec![format!("/ip4/127.0.0.1/tcp/{}", 41000 + 2 * i)]
        );
    }
    let mode = std::fs::metadata(dir.path().join("governance.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn readable_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let configs = make(dir.path(), &[NodeId::AT, NodeId::DE]);
    let cfg = NodeConfig::load(&configs[0]).unwrap();
    std::fs::set_permissions(&cfg.identity_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_identity(&cfg).unwrap_err();
    assert!(format!("{err:#}").contains("refusing key file"), "{err:#}");
}

#[test]
fn tampered_trust_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let configs = make(dir.path(), &[NodeId::AT, NodeId::DE]);
    let cfg = NodeConfig::load(&configs[0]).unwrap();
    let mut bytes = std::fs::read(&cfg.trust_list).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    std::fs::write(&cfg.trust_list, bytes).unwrap();
    assert!(load_trust_list(&cfg.trust_list, &cfg.governance_public_key).is_err());
}

#[test]
fn duplicate_members_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = init(&InitOptions {
        out: dir.path().to_path_buf(),
        members: vec![NodeId::AT, NodeId::AT],
        base_port: 41000,
        host: "127.0.0.1".into(),
        catalogue: None,
        directory: None,
        keys_valid_from: None,
    });
    assert!(r.is_err());
}

#[test]
fn trust_list_version_only_grows() {
    use imi_protocol::NodeSigner;
    use imi_store::{MemStore, ReadStore};
    let dir = tempfile::tempdir().unwrap();
    let configs = make(dir.path(), &[NodeId::AT, NodeId::DE]);
    let cfg = NodeConfig::load(&configs[0]).unwrap();
    let gov_seed = imi_node::keyfile::read_secret32(&dir.path().join("governance.key")).unwrap();
    let gov = NodeSigner::from_seed(NodeId::EU, &gov_seed);
    let gov_pub = gov.public();
    let v1_bytes = std::fs::read(&cfg.trust_list).unwrap();
    let mut v2 = load_trust_list(&cfg.trust_list, &cfg.governance_public_key).unwrap();
    v2.version = 2;
    let v2_bytes = v2.sign(&gov).unwrap();
    let store = MemStore::new(imi_engine::Engine::columns());

    // First start: the file's list is accepted and persisted.
    assert_eq!(
        imi_engine::settle_trust_list(&store, v1_bytes.clone(), &gov_pub)
            .unwrap()
            .version,
        1
    );
    // A newer file replaces it.
    assert_eq!(
        imi_engine::settle_trust_list(&store, v2_bytes.clone(), &gov_pub)
            .unwrap()
            .version,
        2
    );
    // An older file never replaces the accepted newer list.
    assert_eq!(
        imi_engine::settle_trust_list(&store, v1_bytes, &gov_pub)
            .unwrap()
            .version,
        2
    );
    let stored = store
        .get(imi_engine::keys::META, imi_engine::TRUST_LIST_KEY)
        .unwrap()
        .unwrap();
    assert_eq!(stored, v2_bytes);
    // A different list under the same version is refused.
    let mut other = v2.clone();
    other.issued += 1;
    assert!(imi_engine::settle_trust_list(&store, other.sign(&gov).unwrap(), &gov_pub).is_err());
    // A list signed by another key is refused.
    let rogue = NodeSigner::generate(NodeId::EU);
    let mut v3 = v2.clone();
    v3.version = 3;
    assert!(imi_engine::settle_trust_list(&store, v3.sign(&rogue).unwrap(), &gov_pub).is_err());
}

/// Every route the HTTPS listener serves is in the OpenAPI document with its method, and
/// the document describes no route that is not served.
#[test]
fn openapi_covers_every_route() {
    let doc: serde_json::Value = serde_json::from_str(imi_api::OPENAPI).unwrap();
    assert_eq!(doc["openapi"].as_str().unwrap(), "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let served: std::collections::BTreeSet<(String, String)> =
        imi_node::http::routes().into_iter().collect();
    assert!(served.len() >= 33, "{served:?}");
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        extra.is_empty(),
        "openapi.json documents routes that are not served: {extra:?}"
    );
    // Every operation documents its errors as problem+json.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post"].contains(&method.as_str()) {
                continue;
            }
            assert!(
                op.get("operationId").is_some(),
                "{method} {path} has no operationId"
            );
            let route = format!("{} {path}", method.to_uppercase());
            let responses = op["responses"].as_object().unwrap();
            for (status, r) in responses {
                let r = match r.get("$ref").and_then(|r| r.as_str()) {
                    Some(r) => doc
                        .pointer(r.trim_start_matches('#'))
                        .unwrap_or_else(|| panic!("{route} {status}: {r} does not resolve")),
                    None => r,
                };
                if status.starts_with('4')
                    || (status.starts_with('5') && r["content"].get("application/json").is_none())
                {
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{route} {status} is not a problem+json document"
                    );
                }
            }
            // The bearer token is checked before anything else: every protected route
            // documents its 401.
            let open = op["security"].as_array().is_some_and(|s| s.is_empty());
            if !open {
                assert!(
                    responses.contains_key("401"),
                    "{route} does not document 401"
                );
            }
            // Undocumented query parameters are refused on every route but the probes,
            // the metrics and this document.
            let lenient = path.starts_with("/health/")
                || path == "/metrics"
                || path == "/api/v1/openapi.json";
            if !lenient {
                assert!(
                    responses.contains_key("400"),
                    "{route} refuses unknown query parameters but does not document 400"
                );
            }
            // Every template segment is a documented path parameter.
            let params: Vec<&serde_json::Value> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| match p.get("$ref").and_then(|r| r.as_str()) {
                            Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
                            None => p,
                        })
                        .collect()
                })
                .unwrap_or_default();
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(['{', '}']);
                assert!(
                    params
                        .iter()
                        .any(|p| p["in"] == "path" && p["name"] == name),
                    "{route}: path parameter {name} is not documented"
                );
            }
            // A client can build a valid JSON body from the document alone.
            if let Some(body) = op["requestBody"]["content"].get("application/json") {
                let schema = match body["schema"].get("$ref").and_then(|r| r.as_str()) {
                    Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
                    None => &body["schema"],
                };
                assert!(
                    body.get("examples").is_some() || schema.get("examples").is_some(),
                    "{route}: the JSON request body has no example"
                );
            }
        }
    }
}

/// Found by `imi-sim torture` (restart 310 of a 1,000-kill run): a node failed to start with
/// a bare "No such file or directory". The store's background work, running as soon as it
/// is opened, deleted an obsolete file between `private_files`' listing of the data
/// directory and its `stat` of that file. A file that vanishes is no longer a file to make
/// private: the files that remain are made 0600 and nothing fails.
#[test]
fn private_files_skips_files_deleted_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    imi_node::keyfile::private_dir(&data).unwrap();
    let kept = data.join("CURRENT");
    std::fs::write(&kept, b"x").unwrap();
    // A few rounds: the race is between two threads.
    for round in 0..4 {
        const N: usize = 2_000;
        for i in 0..N {
            let p = data.join(format!("{round}-{i:06}.sst"));
            std::fs::write(&p, b"x").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Delete the tables in the reverse of the directory's listing order while it is
        // scanned from the front: the two meet, and the scan meets entries already gone.
        let mut listed: Vec<std::path::PathBuf> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p != &kept)
            .collect();
        listed.reverse();
        let deleter = std::thread::spawn(move || {
            for p in listed {
                std::fs::remove_file(p).unwrap();
            }
        });
        let scanned = imi_node::keyfile::private_files(&data);
        deleter.join().unwrap();
        scanned.unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "round {round}");
    }
}

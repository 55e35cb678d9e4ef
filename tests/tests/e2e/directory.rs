//! The replicated directory with five real nodes: every node starts from its own country's
//! seed (signed and published) and converges to the same replica (equal digests); a
//! coordinator's change reaches every node; a node that was down catches up when it is back;
//! a node whose data was wiped catches up through the sync exchange; a retired authority is
//! refused for a new request on another node; import and export from the CLI.

use imi_e2e::{Federation, HEAVY, NodeProc, lock};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const NODES: [&str; 5] = ["DE", "HU", "AT", "FR", "EL"];
const WAIT: Duration = Duration::from_secs(90);

fn status(fed: &Federation, id: &str) -> Value {
    fed.client(id).get_json("/operator/directory")
}

/// Waits until every running node has seen every other's whole sequence and all hold the
/// same replica; returns the common digest.
fn converged(fed: &Federation, running: &[&str]) -> String {
    fed.wait_until("the directory replicas to converge", WAIT, || {
        let s: BTreeMap<&str, Value> = running.iter().map(|n| (*n, status(fed, n))).collect();
        let complete = running.iter().all(|a| {
            running.iter().filter(|b| *b != a).all(|b| {
                let seq = s[b]["own_seq"].as_u64().unwrap_or(0);
                s[a]["coverage"][*b]["mark"].as_u64().unwrap_or(0) == seq
            })
        });
        let digests: std::collections::BTreeSet<&str> = s
            .values()
            .map(|v| v["digest"].as_str().unwrap_or(""))
            .collect();
        (complete && digests.len() == 1).then(|| digests.into_iter().next().unwrap().to_owned())
    })
}

/// `imi-node directory <command> --config <node's config> <args>`: success and output.
fn directory_cli(fed: &Federation, node: &str, command: &str, args: &[&str]) -> (bool, String) {
    let config = fed.config(node);
    let mut all = vec!["directory", command, "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    fed.cli(&all)
}

fn record(id: &str, name: &str) -> Value {
    json!({
        "id": id,
        "country": "DE",
        "names": {"de": name, "en": "Dental chamber (test)"},
        "level": "regional",
        "areas": ["PQ"],
        "procedures": ["PQ-P01"],
        "professions": ["PROF-DENTIST"],
        "city": "Mainz",
        "region": "Rheinland-Pfalz",
    })
}

#[test]
fn five_nodes_replicate_converge_and_catch_up() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&NODES);
    let mut procs: BTreeMap<&str, NodeProc> = NODES.iter().map(|n| (*n, fed.start(n))).collect();
    // From the seeds: every node published its own country's authorities.
    let first = converged(&fed, &NODES);
    for n in NODES {
        let s = status(&fed, n);
        assert!(s["own_seq"].as_u64().unwrap() > 0, "{n}: {s}");
    }

    // A DE coordinator adds an authority: every node finds it, in any language.
    let coord = fed.add_user("DE", "carl", "DE-NC", "coordinator", &[]);
    let created = fed.user("DE", &coord).post_status(
        "/api/v1/directory/authorities",
        &record("DE-E2E-ZK", "Zahnärztekammer Rheinhessen"),
        201,
    );
    let seq = created["seq"].as_u64().unwrap();
    let readers: BTreeMap<&str, String> = NODES
        .iter()
        .map(|n| {
            let authority = format!("{n}-NC");
            (
                *n,
                fed.add_user(n, "rita", &authority, "authority_user", &[]),
            )
        })
        .collect();
    for n in ["HU", "AT", "FR", "EL"] {
        let c = fed.user(n, &readers[n]);
        let got = fed.wait_until("DE's new authority", WAIT, || {
            let (st, body) = c.get("/api/v1/directory/authorities/DE-E2E-ZK").ok()?;
            (st == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
        });
        assert_eq!(got["seq"].as_u64(), Some(seq), "{n}: {got}");
    }
    let found = fed
        .user("EL", &readers["EL"])
        .get_json("/api/v1/directory/search?q=%CE%BF%CE%B4%CE%BF%CE%BD%CF%84%CE%AF%CE%B1%CF%84%CF%81%CE%BF%CF%82&lang=el&country=DE");
    let ids: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"DE-E2E-ZK"), "οδοντίατρος on EL: {found}");
    let second = converged(&fed, &NODES);
    assert_ne!(first, second);

    // FR is down while DE renames and HU retires one of its authorities; back, it catches up.
    procs.remove("FR").unwrap().stop();
    fed.user("DE", &coord)
        .request(
            "PUT",
            "/api/v1/directory/authorities/DE-E2E-ZK",
            &[("content-type", "application/json")],
            Some(
                record("DE-E2E-ZK", "Landeszahnärztekammer Pfalz")
                    .to_string()
                    .into_bytes(),
            ),
        )
        .unwrap();
    let hu_coord = fed.add_user("HU", "hana", "HU-NC", "coordinator", &[]);
    let retired = fed.user("HU", &hu_coord).post_status(
        "/api/v1/directory/authorities/HU-OH/retire",
        &json!({}),
        200,
    );
    assert_eq!(retired["retired"], true, "{retired}");
    let running: Vec<&str> = NODES.iter().copied().filter(|n| *n != "FR").collect();
    converged(&fed, &running);
    procs.insert("FR", fed.start("FR"));
    let third = converged(&fed, &NODES);

    // A retired authority takes no new request, on another node too.
    let anna = fed.add_user("DE", "anna", "DE-BY-BLZK", "authority_user", &[]);
    let (st, body) = fed
        .user("DE", &anna)
        .post_json(
            "/api/v1/requests",
            &json!({
                "responder": "HU-OH",
                "area": "PQ",
                "procedure": "PQ-P01",
                "questions": ["PQ-Q01"],
                "subject": {"name": "Jane Roe"},
                "answer_by": "2099-06-30",
            }),
        )
        .unwrap();
    assert_eq!(st, 422, "{body}");
    assert!(body.contains("retired_authority"), "{body}");

    // EL loses its data: at start it asks every node for what it lacks and gets it back.
    procs.remove("EL").unwrap().stop();
    std::fs::remove_dir_all(fed.node_dir("EL").join("data")).unwrap();
    procs.insert("EL", fed.start("EL"));
    assert_eq!(converged(&fed, &NODES), third);

    // The CLI: DE imports a file (one new authority, one unchanged), FR exports HU's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("de.toml");
    std::fs::write(
        &file,
        r#"
[[authorities]]
id = "DE-E2E-IMPORT"
country = "DE"
level = "local"
areas = ["PQ"]
procedures = ["PQ-P01"]
professions = ["PROF-ARCHITECT"]
city = "Kiel"
[authorities.names]
de = "Architektenkammer Kiel"
en = "Kiel chamber of architects"
"#,
    )
    .unwrap();
    let (ok, out) = directory_cli(&fed, "DE", "import", &[file.to_str().unwrap()]);
    assert!(ok && out.contains("1 created or updated"), "{out}");
    let c = fed.user("AT", &readers["AT"]);
    fed.wait_until("the imported authority on AT", WAIT, || {
        let v = c.get_json("/api/v1/directory/search?q=Architektenkammer%20Kiel");
        (v["items"][0]["id"] == "DE-E2E-IMPORT").then_some(())
    });
    let (ok, exported) = directory_cli(&fed, "FR", "export", &["--country", "HU"]);
    assert!(ok, "{exported}");
    assert!(exported.contains("id = \"HU-ENKK\""), "{exported}");
    assert!(
        !exported.contains("id = \"HU-OH\""),
        "retired ones are not exported"
    );
    assert!(!exported.contains("id = \"DE-"), "only HU's");
    // CSV both ways: FR's export of HU, and a CSV import on DE that reaches AT.
    let (ok, csv) = directory_cli(
        &fed,
        "FR",
        "export",
        &["--country", "HU", "--format", "csv"],
    );
    assert!(ok, "{csv}");
    assert!(
        csv.starts_with(
            "id,country,level,city,region,areas,procedures,professions,competences,name_"
        ),
        "{csv}"
    );
    assert!(csv.contains("\nHU-ENKK,HU,national,"), "{csv}");
    let file = dir.path().join("de.csv");
    std::fs::write(
        &file,
        "id,country,level,city,areas,procedures,professions,name_de,name_en\n\
         DE-E2E-CSV,DE,local,Lübeck,PQ,PQ-P01,PROF-MIDWIFE|PROF-NURSE,\"Hebammenverband Lübeck, e.V.\",Midwives of Lübeck\n",
    )
    .unwrap();
    let (ok, out) = directory_cli(&fed, "DE", "import", &[file.to_str().unwrap()]);
    assert!(ok && out.contains("1 created or updated"), "{out}");
    fed.wait_until("the CSV-imported authority on AT", WAIT, || {
        let v = c.get_json("/api/v1/directory/search?q=Hebamme%20L%C3%BCbeck&lang=de");
        (v["items"][0]["id"] == "DE-E2E-CSV").then_some(())
    });
    for (_, p) in procs {
        p.stop();
    }
}

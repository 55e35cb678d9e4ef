//! The Commission node and the scoreboard with real `imi-node` processes: member states
//! report indicator facts as requests advance, the `EU` node cross-checks both sides and
//! publishes the scoreboard; a member state recomputes its own figures offline from the
//! facts it exported and gets what the Commission publishes; the page renders in headless
//! Chromium with the coloured map.

use std::path::Path;
use std::time::Duration;

use imi_e2e::{Federation, HEAVY, NodeClient, lock};
use serde_json::{Value, json};

const ARRIVE: Duration = Duration::from_secs(90);

fn create(c: &NodeClient, responder: &str, name: &str) -> String {
    let v = c.post_status(
        "/api/v1/requests?wait=delivered",
        &json!({
            "responder": responder,
            "area": "PQ",
            "procedure": "PQ-P01",
            "questions": ["PQ-Q01"],
            "free_text": format!("Geheimer Freitext über {name}"),
            "subject": {"name": name, "date_of_birth": "1970-05-05"},
            "answer_by": "2099-12-31",
        }),
        201,
    );
    v["id"].as_str().unwrap().to_string()
}

fn step(c: &NodeClient, id: &str, action: &str, body: Value) {
    c.post_status(
        &format!("/api/v1/requests/{id}/{action}?wait=delivered"),
        &body,
        200,
    );
}

fn current_year() -> u64 {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    // civil_from_days, year only
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    yoe + era * 400 + u64::from(mp >= 10)
}

fn country<'a>(sb: &'a Value, code: &str) -> &'a Value {
    sb["countries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["country"] == code)
        .unwrap()
}

fn scan(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            scan(&p, needle)
        } else {
            std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// Facts reach the Commission from both sides, agree, and make the published scoreboard;
/// each member state recomputes its own figures from its export and gets the same; nothing
/// personal reaches the Commission node's store.
#[test]
fn facts_reporting_cross_check_and_recompute() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU", "EU"]);
    let _de = fed.start("DE");
    let _hu = fed.start("HU");
    let _eu = fed.start("EU");
    let de = fed.user(
        "DE",
        &fed.add_user("DE", "anna", "DE-BY-BLZK", "authority_user", &[]),
    );
    let hu = fed.user(
        "HU",
        &fed.add_user("HU", "bela", "HU-ENKK", "authority_user", &[]),
    );

    let r1 = create(&de, "HU-ENKK", "Zsófia Titkos");
    step(&hu, &r1, "accept", json!({}));
    step(
        &hu,
        &r1,
        "answer",
        json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": true}]}),
    );
    step(&de, &r1, "close", json!({"timeliness": 4, "efforts": 1}));
    let r2 = create(&de, "HU-ENKK", "Zsófia Titkos");
    step(&de, &r2, "withdraw", json!({"reason": "doppelt"}));
    let r3 = create(&hu, "DE-BY-BLZK", "Kovács Rejtett");
    step(&de, &r3, "accept", json!({}));

    let eu = fed.client("EU");
    let flags = fed.wait_until("EU has both sides' reports of 3 cases", ARRIVE, || {
        let (st, body) = eu.get("/api/v1/scoreboard/flags").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (st == 200 && v["cases"] == 3 && v["both_reported"] == 3 && v["in_flight"] == 0)
            .then_some(v)
    });
    assert!(flags["flagged"].as_array().unwrap().is_empty(), "{flags}");
    assert!(flags["one_sided"].as_array().unwrap().is_empty(), "{flags}");

    let year = current_year();
    let sb = eu.get_json(&format!("/api/v1/scoreboard?period={year}"));
    let hu_sb = country(&sb, "HU");
    // R1 accepted at once; R2 withdrawn within a week unaccepted: not counted in [1].
    assert_eq!(
        hu_sb["indicators"][0],
        json!({"id": 1, "value": 100.0, "colour": "green", "n": 1})
    );
    assert_eq!(hu_sb["indicators"][1]["n"], 1);
    assert_eq!(
        hu_sb["indicators"][2],
        json!({"id": 3, "value": 100.0, "colour": "green", "n": 1})
    );
    assert_eq!(
        hu_sb["indicators"][3],
        json!({"id": 4, "value": 0.0, "colour": "green", "n": 1})
    );
    assert_eq!(
        hu_sb["indicators"][4],
        json!({"id": 5, "value": 100.0, "colour": "red", "n": 1})
    );
    let de_sb = country(&sb, "DE");
    assert_eq!(de_sb["indicators"][0]["n"], 1);
    assert_eq!(country(&sb, "AT")["overall"], Value::Null);

    // Every member recomputes its own figures from what it exported.
    for node in ["HU", "DE"] {
        let facts = fed.root().join(format!("{node}-facts.jsonl"));
        let cfg = fed.config(node);
        let out = fed.run_cli(&[
            "scoreboard",
            "export",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            facts.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = fed.run_cli(&[
            "scoreboard",
            "compute",
            "--facts",
            facts.to_str().unwrap(),
            "--period",
            &year.to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mine: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            country(&mine, node),
            country(&sb, node),
            "{node} recomputed differs"
        );
    }
    // The Commission's own export recomputes to what it publishes.
    let (st, export) = eu.get("/api/v1/scoreboard/facts").unwrap();
    assert_eq!(st, 200);
    assert_eq!(export.lines().count(), 3);
    for line in export.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "accepted_at",
                "answered_at",
                "area",
                "case",
                "deadline",
                "efforts",
                "requester",
                "responder",
                "sent_at",
                "timeliness",
                "withdrawn_at"
            ],
            "a fact carries exactly these fields"
        );
    }
    let page = eu.get(&format!("/scoreboard?period={year}")).unwrap();
    assert_eq!(page.0, 200);
    assert!(
        page.1.contains(r#"data-country="HU" data-overall="green""#),
        "HU is green on the map"
    );

    // Nothing personal on the Commission node: its whole database, byte by byte as the
    // files hold it, and decoded (every key and value of every column: the files compress
    // blocks and share key prefixes, so a string can be stored without its bytes in a row).
    _eu.stop();
    let eu_data = fed.node_dir("EU").join("data");
    let decoded = {
        use imi_store::ReadStore;
        let store =
            imi_store::RocksStore::open(&eu_data, &imi_apps::columns(), &Default::default())
                .unwrap();
        let mut all = Vec::new();
        for col in imi_apps::columns() {
            for (k, v) in store.range(col, &[], None, usize::MAX).unwrap() {
                all.extend_from_slice(&k);
                all.push(0);
                all.extend_from_slice(&v);
                all.push(0);
            }
        }
        all
    };
    let in_rows = |needle: &[u8]| decoded.windows(needle.len()).any(|w| w == needle);
    for secret in [
        "Zsófia Titkos",
        "Kovács Rejtett",
        "Geheimer Freitext",
        "1970-05-05",
        "DE-BY-BLZK",
        "anna",
    ] {
        assert!(
            !scan(&eu_data, secret.as_bytes()) && !in_rows(secret.as_bytes()),
            "{secret:?} reached the Commission node"
        );
    }
    assert!(
        in_rows(r1.as_bytes()),
        "control: the case id is in the Commission's rows"
    );
}

fn chromium() -> &'static str {
    "/usr/bin/chromium"
}

/// The page, rendered by headless Chromium: the map shows the countries' colours.
#[test]
fn scoreboard_page_screenshot_shows_the_coloured_map() {
    let _g = lock(&HEAVY);
    let dir = tempfile::tempdir().unwrap();
    // Facts that make HU green (fast), FR red (slow, late, badly rated), IT yellow.
    let mut lines = String::new();
    let mut n = 0;
    let mut push = |responder: &str, accepted: Option<&str>, answered: Option<&str>, rating: u8| {
        n += 1;
        let f = json!({
            "case": format!("c{n}"), "area": "PQ", "requester": "DE", "responder": responder,
            "sent_at": "2021-03-01T10:00:00Z", "accepted_at": accepted, "withdrawn_at": null,
            "answered_at": answered, "deadline": "2021-03-20", "timeliness": rating, "efforts": rating,
        });
        lines.push_str(&f.to_string());
        lines.push('\n');
    };
    for _ in 0..10 {
        push(
            "HU",
            Some("2021-03-02T09:00:00Z"),
            Some("2021-03-10T12:00:00Z"),
            5,
        );
        push(
            "FR",
            Some("2021-03-20T09:00:00Z"),
            Some("2021-05-10T12:00:00Z"),
            1,
        );
        push(
            "IT",
            Some("2021-03-02T09:00:00Z"),
            Some("2021-04-20T12:00:00Z"),
            3,
        );
    }
    let facts = dir.path().join("facts.jsonl");
    std::fs::write(&facts, lines).unwrap();
    let html = dir.path().join("scoreboard.html");
    let out = std::process::Command::new(imi_e2e::node_bin())
        .args([
            "scoreboard",
            "compute",
            "--period",
            "2021",
            "--format",
            "html",
            "--facts",
        ])
        .arg(&facts)
        .arg("--out")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains(r#"data-country="HU" data-overall="green""#));
    assert!(text.contains(r#"data-country="FR" data-overall="red""#));
    assert!(text.contains(r#"data-country="IT" data-overall="yellow""#));

    assert!(
        Path::new(chromium()).exists(),
        "{} is missing: scripts/setup.sh installs Debian's chromium",
        chromium()
    );
    let png = dir.path().join("shot.png");
    let profile = dir.path().join("profile");
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,1100",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let mut counts = [0usize; 3];
    let targets = [(0x2e, 0x8b, 0x57), (0xf2, 0xc2, 0x30), (0xd6, 0x45, 0x41)];
    for px in bytes.chunks(channels) {
        for (k, (r, g, b)) in targets.iter().enumerate() {
            let close = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 6;
            if close(px[0], *r) && close(px[1], *g) && close(px[2], *b) {
                counts[k] += 1;
            }
        }
    }
    // HU, FR and IT on the map (plus small table cells and the legend): hundreds of pixels
    // of each colour; France alone is thousands.
    assert!(counts[0] > 400, "green pixels: {counts:?}");
    assert!(counts[1] > 400, "yellow pixels: {counts:?}");
    assert!(counts[2] > 2000, "red pixels (France): {counts:?}");
    let _ = std::fs::copy(&png, std::env::temp_dir().join("imi-scoreboard-shot.png"));
}

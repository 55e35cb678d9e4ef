//! Alerts with real nodes (DE, HU, AT): a German authority alerts every other member state
//! that a doctor is prohibited from practising. Each recipient's incoming-alert coordinator
//! sees the profession and the measure but not the professional; its node holds no key that
//! opens the identity (tried with every key in its store and key files). Hungary's
//! coordinator forwards the alert to HU-ENKK, whose users see the professional once the
//! German node has granted the key; the coordinator still does not. An alert reported more
//! than three days after the decision is marked late and counted, as is a closure more than
//! three days after the measure ended; closed, the alert's identity is erased by each node's
//! retention job and its trail still verifies offline. Before that, the sender modifies the
//! measure and its validity, and every recipient holds the new revision. A Services
//! Directive alert goes to the member state concerned and the Commission only: the
//! Commission's services see the measure, not the provider; Austria never gets it. The
//! Commission counts the alerts from usage facts. Bad
//! input: refused, nothing sent or stored.

use imi_e2e::{Federation, HEAVY, NodeClient, lock};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn day(offset_days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = now / 86_400 + offset_days;
    // Civil date from days since 1970 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn alert(decided: &str) -> Value {
    json!({
        "type": "PQ-P02",
        "profession": "PROF-DOCTOR",
        "fields": [
            {"question": "PQ-Q12", "type": "choice", "value": "PQ-Q12-PROHIBITION"},
            {"question": "PQ-Q13", "type": "date", "value": decided},
        ],
        "decided": decided,
        "professional": {
            "name": "Dr. Erika Mustermann",
            "date_of_birth": "1970-02-03",
            "details": {"licence": "LAEK-4711"},
        },
    })
}

fn seen(reader: &NodeClient, id: &str) -> Option<Value> {
    let (st, body) = reader.get(&format!("/api/v1/alerts/{id}")).ok()?;
    (st == 200).then(|| serde_json::from_str(&body).unwrap())
}

#[test]
fn an_alert_reaches_coordinators_sealed_and_forwarded_authorities_in_full() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU", "AT", "EU"]);
    let procs: Vec<_> = ["DE", "HU", "AT", "EU"]
        .iter()
        .map(|n| fed.start(n))
        .collect();
    let de = fed.user(
        "DE",
        &fed.add_user("DE", "d", "DE-NC", "authority_user", &[]),
    );
    let hu_coord = fed.user("HU", &fed.add_user("HU", "hc", "HU-NC", "coordinator", &[]));
    let hu_enkk = fed.user(
        "HU",
        &fed.add_user("HU", "he", "HU-ENKK", "authority_user", &[]),
    );
    let at_coord = fed.user("AT", &fed.add_user("AT", "ac", "AT-NC", "coordinator", &[]));
    let commission = fed.user(
        "EU",
        &fed.add_user("EU", "ec", "EU-COMMISSION", "authority_user", &[]),
    );

    // On time, then late (decided five days ago).
    let sent = de.post_status("/api/v1/alerts", &alert(&day(0)), 201);
    assert_eq!(sent["late"], false, "{sent}");
    assert_eq!(sent["recipient_countries"], json!(["AT", "HU"]));
    let id = sent["id"].as_str().unwrap().to_owned();
    let late = de.post_status("/api/v1/alerts", &alert(&day(-5)), 201);
    assert_eq!(late["late"], true, "{late}");
    assert_eq!(
        fed.client("DE")
            .metric_required("imi_alerts_late_total", &[]),
        1.0
    );

    // Both coordinators see profession and measure, never the professional.
    for (who, c) in [("HU", &hu_coord), ("AT", &at_coord)] {
        let v = fed.wait_until(
            &format!("{who}'s coordinator to get the alert"),
            WAIT,
            || seen(c, &id),
        );
        assert_eq!(v["role"], "coordinator", "{v}");
        assert_eq!(v["profession"], "PROF-DOCTOR");
        assert_eq!(v["fields"].as_array().unwrap().len(), 2);
        assert_eq!(v["professional"], Value::Null, "{v}");
        assert_eq!(v["identity_sealed"], true);
    }
    // HU-ENKK has nothing until it is forwarded.
    assert!(seen(&hu_enkk, &id).is_none());
    // Only the coordinator forwards.
    let (st, _) = hu_enkk
        .post_json(
            &format!("/api/v1/alerts/{id}/forward"),
            &json!({"authorities": ["HU-ENKK"]}),
        )
        .unwrap();
    assert_eq!(st, 404, "not in HU-ENKK's box yet");
    hu_coord.post_status(
        &format!("/api/v1/alerts/{id}/forward"),
        &json!({"authorities": ["HU-ENKK"]}),
        200,
    );
    let full = fed.wait_until("HU-ENKK to read the professional", WAIT, || {
        seen(&hu_enkk, &id).filter(|v| v["professional"].is_object())
    });
    assert_eq!(full["role"], "forwarded");
    assert_eq!(full["professional"]["name"], "Dr. Erika Mustermann");
    assert_eq!(full["professional"]["details"]["licence"], "LAEK-4711");
    // The coordinator still cannot.
    let coord = seen(&hu_coord, &id).unwrap();
    assert_eq!(coord["professional"], Value::Null, "{coord}");

    // The sender modifies the measure (a restriction now) and its validity: every
    // recipient holds revision 1; a modification by anyone else is a 404.
    let restriction = json!({
        "fields": [
            {"question": "PQ-Q12", "type": "choice", "value": "PQ-Q12-RESTRICTION"},
            {"question": "PQ-Q13", "type": "date", "value": day(0)},
        ],
        "valid_until": day(365),
    });
    let modified = de.post_status(&format!("/api/v1/alerts/{id}/modify"), &restriction, 200);
    assert_eq!(modified["revision"], 1, "{modified}");
    assert_eq!(modified["valid_until"], json!(day(365)));
    let (st, _) = hu_coord
        .post_json(&format!("/api/v1/alerts/{id}/modify"), &restriction)
        .unwrap();
    assert_eq!(st, 404, "only the sender modifies");
    let (st, text) = de
        .post_json(
            &format!("/api/v1/alerts/{id}/modify"),
            &json!({"fields": [], "valid_until": null}),
        )
        .unwrap();
    assert!(st == 422 && text.contains("missing_field"), "{text}");
    for (who, c) in [("HU", &hu_coord), ("AT", &at_coord)] {
        let v = fed.wait_until(&format!("{who} to hold revision 1"), WAIT, || {
            seen(c, &id).filter(|v| v["revision"] == 1)
        });
        assert_eq!(v["valid_until"], json!(day(365)), "{v}");
        assert!(v["modified_at"].is_string(), "{v}");
        assert!(
            v["fields"].to_string().contains("PQ-Q12-RESTRICTION"),
            "{v}"
        );
    }

    // The sender closes it five days after the measure ended: warned and counted. Each
    // node's retention then erases the identity; the coordinator and the forwarded
    // authority see the closure, nobody the professional; the trail still verifies.
    let closed = de.post_status(
        &format!("/api/v1/alerts/{id}/close"),
        &json!({"ended": day(-5)}),
        200,
    );
    assert!(closed["closed"].is_object(), "{closed}");
    let (st, _) = de
        .post_json(
            &format!("/api/v1/alerts/{id}/close"),
            &json!({"ended": day(-5)}),
        )
        .unwrap();
    assert_eq!(st, 409, "closed once");
    assert_eq!(
        fed.client("DE")
            .metric_required("imi_alerts_late_closures_total", &[]),
        1.0
    );
    fed.wait_until("HU to hold the closure", WAIT, || {
        seen(&hu_coord, &id).filter(|v| v["closed"].is_object())
    });
    for n in ["HU", "DE"] {
        let r = fed
            .client(n)
            .post_status("/operator/retention/run", &json!({}), 200);
        assert!(r["alerts_erased"].as_u64().unwrap() >= 1, "{n}: {r}");
    }
    let erased = seen(&hu_enkk, &id).unwrap();
    assert_eq!(erased["professional"], Value::Null, "{erased}");
    assert_eq!(erased["identity_erased"], true);
    let auditor = fed.user("HU", &fed.add_user("HU", "aud", "HU-NC", "auditor", &[]));
    let bundle = auditor.get_json(&format!("/api/v1/audit/bundle?case={id}"));
    let file = fed.root().join("alert-bundle.json");
    std::fs::write(&file, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let gov = fed.root().join("governance.pub");
    let (ok, out) = fed.cli(&[
        "audit",
        "verify",
        file.to_str().unwrap(),
        "--governance-key",
        gov.to_str().unwrap(),
        "--witnesses",
        "0",
    ]);
    assert!(ok, "the erased alert's trail verifies: {out}");
    assert!(out.contains("retention"), "{out}");

    // A Services Directive alert: to the member state concerned and the Commission. The
    // Commission's services see the measure, never the provider; AT is not concerned.
    let services = json!({
        "type": "SD-P02",
        "member_states": ["HU"],
        "fields": [
            {"question": "SD-Q10", "type": "text", "value": "Gas installations certified without inspection"},
            {"question": "SD-Q11", "type": "bool", "value": true},
        ],
        "decided": day(0),
        "professional": {"name": "Installateur GmbH", "details": {"register": "HRB 4711"}},
    });
    let sd = de.post_status("/api/v1/alerts", &services, 201);
    assert_eq!(sd["recipient_countries"], json!(["HU", "EU"]), "{sd}");
    let sd_id = sd["id"].as_str().unwrap().to_owned();
    let eu_sees = fed.wait_until("the Commission to get the alert", WAIT, || {
        seen(&commission, &sd_id)
    });
    assert_eq!(eu_sees["role"], "coordinator", "{eu_sees}");
    assert_eq!(eu_sees["professional"], Value::Null);
    assert_eq!(eu_sees["identity_sealed"], true);
    fed.wait_until("HU's coordinator to get the alert", WAIT, || {
        seen(&hu_coord, &sd_id)
    });
    assert!(seen(&at_coord, &sd_id).is_none(), "AT is not concerned");
    // The Commission counts the alerts from DE's usage facts (no personal data): three
    // sent, one late; who received them.
    let usage = fed.wait_until("the Commission to count DE's three alerts", WAIT, || {
        let (st, body) = fed.client("EU").get("/api/v1/scoreboard/usage").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (st == 200 && v["countries"]["DE"]["alerts"]["sent"] == 3).then_some(v)
    });
    assert_eq!(usage["totals"]["alert"], 3, "{usage}");
    assert_eq!(usage["countries"]["DE"]["alerts_late"], 1);
    assert_eq!(usage["countries"]["HU"]["alerts"]["received"], 3);
    assert_eq!(usage["countries"]["AT"]["alerts"]["received"], 2);
    assert_eq!(usage["countries"]["EU"]["alerts"]["received"], 1);
    let (_, facts) = fed.client("EU").get("/api/v1/scoreboard/usage").unwrap();
    assert!(!facts.contains("Mustermann") && !facts.contains("DE-NC"));

    let mut unnamed = services.clone();
    unnamed["member_states"] = json!([]);
    let (st, text) = de.post_json("/api/v1/alerts", &unnamed).unwrap();
    assert!(
        st == 422 && text.contains("missing_member_states"),
        "{text}"
    );
    let mut own = services.clone();
    own["member_states"] = json!(["DE"]);
    let (st, text) = de.post_json("/api/v1/alerts", &own).unwrap();
    assert!(st == 422 && text.contains("invalid_recipients"), "{text}");

    // Bad input: clear codes, nothing stored.
    let before = de.get_json("/api/v1/alerts")["items"]
        .as_array()
        .unwrap()
        .len();
    let mut no_profession = alert(&day(0));
    no_profession["profession"] = json!("");
    let (st, text) = de.post_json("/api/v1/alerts", &no_profession).unwrap();
    assert_eq!(st, 422, "{text}");
    assert!(text.contains("missing_profession"), "{text}");
    let mut astronaut = alert(&day(0));
    astronaut["profession"] = json!("PROF-ASTRONAUT");
    let (st, text) = de.post_json("/api/v1/alerts", &astronaut).unwrap();
    assert!(st == 422 && text.contains("unknown_profession"), "{text}");
    let mut unknown = alert(&day(0));
    unknown["type"] = json!("PQ-P01");
    let (st, text) = de.post_json("/api/v1/alerts", &unknown).unwrap();
    assert!(st == 422 && text.contains("unknown_alert_type"), "{text}");
    let mut missing = alert(&day(0));
    missing["fields"] = json!([]);
    let (st, text) = de.post_json("/api/v1/alerts", &missing).unwrap();
    assert!(st == 422 && text.contains("missing_field"), "{text}");
    let after = de.get_json("/api/v1/alerts")["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);

    // AT's coordinator never forwarded: AT's node holds no key that opens the identity
    // (AT has not run retention: it still holds the sealed copy).
    // Try every 32-byte value of its alert column and every key file on the sealed copy.
    for p in procs {
        p.stop();
    }
    let at_dir = fed.node_dir("AT");
    let store = imi_store::RocksStore::open(
        &at_dir.join("data"),
        &imi_apps::columns(),
        &Default::default(),
    )
    .unwrap();
    use imi_store::ReadStore;
    let rows = store
        .scan_prefix(imi_apps::alerts::ALERTS, b"", usize::MAX)
        .unwrap();
    let alert_id: imi_protocol::CaseId = id.parse().unwrap();
    let sealed_key = [b"s/".as_slice(), alert_id.as_bytes()].concat();
    let sealed = rows
        .iter()
        .find(|(k, _)| *k == sealed_key)
        .map(|(_, v)| v.clone())
        .expect("AT holds the sealed identity");
    let sealed: imi_protocol::fields::SealedFields =
        ciborium_decode(&sealed).expect("a sealed identity");
    assert!(
        !rows.iter().any(|(k, _)| k.starts_with(b"k/")),
        "AT holds no identity key"
    );
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    for (_, v) in &rows {
        for w in v.windows(32) {
            candidates.push(w.try_into().unwrap());
        }
    }
    for f in ["hpke.key", "identity.key", "data.key"] {
        if let Ok(text) = std::fs::read_to_string(at_dir.join(f)) {
            let mut k = [0u8; 32];
            if hex::decode_to_slice(text.trim(), &mut k).is_ok() {
                candidates.push(k);
            }
        }
    }
    let context = [alert_id.as_bytes().as_slice(), b"identity"].concat();
    assert!(candidates.len() > 3);
    for k in &candidates {
        assert!(
            imi_protocol::fields::open_fields(k, &context, &sealed).is_err(),
            "a key in AT's store opened the identity"
        );
    }
}

fn ciborium_decode(b: &[u8]) -> Option<imi_protocol::fields::SealedFields> {
    imi_protocol::fields::SealedFields::from_cbor(b).ok()
}

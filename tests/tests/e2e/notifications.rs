//! Notifications with real nodes: one notification from Germany to a national coordinator
//! in each of the 29 other EEA countries and to the Commission, with France's node down:
//! every running recipient stores it and acknowledges, the sender sees each delivery and
//! each acknowledgement, France receives and acknowledges once it is back. A second
//! notification to two countries only: a third node never receives it and its keys do not
//! open the envelope (tried on the sender's stored copy); its type populates the euro-cash
//! register, whose entry reaches the euro area. Bad input is refused with a clear
//! code, and nothing is sent or stored.

use imi_e2e::{Federation, HEAVY, NodeClient, NodeProc, lock};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const COUNTRIES: [&str; 30] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];
const SENDER: &str = "DE";
const DOWN: &str = "FR";
const WAIT: Duration = Duration::from_secs(180);

fn fields() -> Value {
    json!([
        {"question": "SD-Q12", "type": "choice", "value": "SD-Q12-TARIFFS"},
        {"question": "SD-Q13", "type": "text", "value": "Gebührenordnung für Architekten, § 7"},
        {"question": "SD-Q14", "type": "text", "value": "Minimum fees for architects' services."},
        {"question": "SD-Q15", "type": "text", "value": "Consumer protection; proportionate."},
        {"question": "SD-Q16", "type": "date", "value": "2026-11-30"},
    ])
}

fn recipient(country: &str) -> Value {
    if country == "EU" {
        json!({"country": "EU", "authorities": ["EU-COMMISSION"]})
    } else {
        json!({"country": country, "authorities": [format!("{country}-NC")]})
    }
}

/// The notification `id` as `reader` sees it, when it has it (404 until then).
fn seen(reader: &NodeClient, id: &str) -> Option<Value> {
    let (st, body) = reader.get(&format!("/api/v1/notifications/{id}")).ok()?;
    (st == 200).then(|| serde_json::from_str(&body).unwrap())
}

fn recipient_row<'a>(view: &'a Value, country: &str) -> &'a Value {
    view["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["country"] == country)
        .unwrap_or_else(|| panic!("no row for {country}: {view}"))
}

#[test]
fn a_notification_reaches_29_countries_and_the_commission_with_one_node_down() {
    let _g = lock(&HEAVY);
    let mut members: Vec<&str> = COUNTRIES.to_vec();
    members.push("EU");
    let fed = Federation::init(&members);
    let mut procs: BTreeMap<&str, NodeProc> = members
        .iter()
        .filter(|m| **m != DOWN)
        .map(|m| (*m, NodeProc::spawn(&fed, m)))
        .collect();
    for p in procs.values() {
        p.wait_live(Duration::from_secs(120));
    }
    // A user of the national coordinator's authority in every country, and the
    // Commission's services on the Commission node (FR's is added while it is down: the
    // CLI writes to its store).
    let mut users: BTreeMap<&str, NodeClient> = BTreeMap::new();
    for m in &members {
        if *m == DOWN {
            continue;
        }
        let authority = if *m == "EU" {
            "EU-COMMISSION".to_owned()
        } else {
            format!("{m}-NC")
        };
        let token = fed.add_user(m, &format!("u-{m}"), &authority, "authority_user", &[]);
        users.insert(m, fed.user(m, &token));
    }

    let recipients: Vec<Value> = members
        .iter()
        .filter(|m| **m != SENDER)
        .map(|m| recipient(m))
        .collect();
    assert_eq!(recipients.len(), 30, "29 countries and the Commission");
    let sent = users[SENDER].post_status(
        "/api/v1/notifications",
        &json!({"type": "SD-P03", "recipients": recipients, "fields": fields()}),
        201,
    );
    let id = sent["id"].as_str().unwrap().to_owned();
    assert_eq!(sent["recipients"].as_array().unwrap().len(), 30, "{sent}");

    // Every running recipient stores it for its named authority, in the reader's
    // language, and acknowledges.
    let running: Vec<&str> = members
        .iter()
        .copied()
        .filter(|m| *m != SENDER && *m != DOWN)
        .collect();
    for m in &running {
        let view = fed.wait_until(&format!("{m} to receive the notification"), WAIT, || {
            seen(&users[m], &id)
        });
        assert_eq!(view["direction"], "received", "{m}: {view}");
        assert_eq!(view["sender"]["id"], "DE-NC", "{m}: {view}");
        assert_eq!(view["type"]["code"], "SD-P03");
        assert_eq!(view["fields"].as_array().unwrap().len(), 5, "{m}: {view}");
        assert_eq!(view["read_at"], Value::Null);
        let inbox = users[m].get_json("/api/v1/notifications?box=inbox");
        assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "{m}: {inbox}");
        let ack =
            users[m].post_status(&format!("/api/v1/notifications/{id}/read"), &json!({}), 200);
        // Acknowledging again returns the first time and sends nothing new.
        let again =
            users[m].post_status(&format!("/api/v1/notifications/{id}/read"), &json!({}), 200);
        assert_eq!(ack["read_at"], again["read_at"], "{m}");
    }
    // The Commission reads it in its language: the field texts are rendered.
    let eu = seen(&users["EU"], &id).unwrap();
    assert!(eu["fields"][0]["question_text"].is_string(), "{eu}");

    // The sender: each running recipient's node receipted it and its authority
    // acknowledged; France's delivery is pending.
    let view = fed.wait_until("every running recipient's acknowledgement", WAIT, || {
        let v = seen(&users[SENDER], &id)?;
        running
            .iter()
            .all(|m| {
                let r = recipient_row(&v, m);
                r["delivered_at"].is_string() && r["authorities"][0]["acknowledged_at"].is_string()
            })
            .then_some(v)
    });
    assert_eq!(view["direction"], "sent");
    let fr = recipient_row(&view, DOWN);
    assert_eq!(fr["delivery"], "pending", "{view}");
    assert_eq!(fr["authorities"][0]["acknowledged_at"], Value::Null);

    // France comes back: it receives the notification and acknowledges.
    procs.insert(DOWN, fed.start(DOWN));
    let token = fed.add_user(DOWN, "u-FR", "FR-NC", "authority_user", &[]);
    users.insert(DOWN, fed.user(DOWN, &token));
    fed.wait_until("France to receive the notification", WAIT, || {
        seen(&users[DOWN], &id)
    });
    users[DOWN].post_status(&format!("/api/v1/notifications/{id}/read"), &json!({}), 200);
    fed.wait_until("France's acknowledgement at the sender", WAIT, || {
        let v = seen(&users[SENDER], &id)?;
        let r = recipient_row(&v, DOWN);
        (r["delivery"] == "accepted" && r["authorities"][0]["acknowledged_at"].is_string())
            .then_some(())
    });

    // A notification to HU and AT only: no other node gets it.
    let small = users[SENDER].post_status(
        "/api/v1/notifications",
        &json!({
            "type": "CIT-P02",
            "recipients": [recipient("HU"), recipient("AT")],
            "fields": [
                {"question": "CIT-Q01", "type": "text", "value": "Geldtransport GmbH"},
                {"question": "CIT-Q02", "type": "date", "value": "2026-12-01"},
                {"question": "CIT-Q03", "type": "choice", "value": "CIT-Q03-WITHDRAWN"},
                {"question": "CIT-Q04", "type": "date", "value": "2026-12-02"},
            ],
        }),
        201,
    );
    let small_id = small["id"].as_str().unwrap().to_owned();
    // CIT-P02 populates the euro-cash register CIT-P01 (held by the euro area): the entry
    // made from the notification reaches Austria; Hungary holds no such register.
    let entry = small["repository_entry"]
        .as_str()
        .expect("an entry")
        .to_owned();
    fed.wait_until("AT to hold the register entry", WAIT, || {
        let v = users["AT"].get_json("/api/v1/repositories/CIT-P01/entries");
        v["items"]
            .as_array()?
            .iter()
            .any(|e| e["id"] == entry.as_str() && e["owner"] == "DE-NC")
            .then_some(())
    });
    let (st, _) = users["HU"]
        .get("/api/v1/repositories/CIT-P01/entries")
        .unwrap();
    assert_eq!(st, 404);
    for m in ["HU", "AT"] {
        fed.wait_until(
            &format!("{m} to receive the second notification"),
            WAIT,
            || seen(&users[m], &small_id),
        );
    }
    // The Commission counts both notifications and the register entry from DE's usage
    // facts: sent by DE, received by every addressed country (FR too, once back).
    let usage = fed.wait_until("the Commission to count DE's notifications", WAIT, || {
        let (st, body) = fed.client("EU").get("/api/v1/scoreboard/usage").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (st == 200
            && v["countries"]["DE"]["notifications"]["sent"] == 2
            && v["countries"]["DE"]["repository_entries"]["sent"] == 1)
            .then_some(v)
    });
    assert_eq!(usage["totals"]["notification"], 2, "{usage}");
    assert_eq!(usage["countries"]["HU"]["notifications"]["received"], 2);
    assert_eq!(usage["countries"]["FR"]["notifications"]["received"], 1);
    assert_eq!(usage["countries"]["EU"]["notifications"]["received"], 1);
    assert_eq!(
        usage["countries"]["AT"]["repository_entries"]["received"],
        1
    );
    assert_eq!(
        usage["countries"]["HU"]["repository_entries"]["received"],
        0
    );

    // Not addressed: 404 everywhere else, like an id that does not exist.
    for m in ["FR", "PL", "EU"] {
        let (st, _) = users[m]
            .get(&format!("/api/v1/notifications/{small_id}"))
            .unwrap();
        assert_eq!(st, 404, "{m} must not have it");
    }

    // Bad input: a clear code each time, nothing sent or stored.
    let before = users[SENDER].get_json("/api/v1/notifications?box=sent&limit=200");
    let bad = |body: Value, status: u16, code: &str| {
        let (st, text) = users[SENDER]
            .post_json("/api/v1/notifications", &body)
            .unwrap();
        assert_eq!(st, status, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["code"], code, "{text}");
    };
    bad(
        json!({"type": "XX-P99", "recipients": [recipient("HU")], "fields": []}),
        422,
        "unknown_notification_type",
    );
    let many: Vec<Value> = (0..10_000)
        .map(|i| json!({"country": "HU", "authorities": [format!("HU-X{i}")]}))
        .collect();
    bad(
        json!({"type": "CIT-P02", "recipients": many, "fields": []}),
        422,
        "too_many_recipients",
    );
    // A 10 MB field: the node answers 413 from the declared length without reading the
    // body, and may close the connection while the client is still writing (then the
    // client sees a broken pipe, not an answer). Either way it is not taken; a body just
    // over the 5 MiB limit, which the socket buffers hold, gets the 413 every time.
    let field = |n: usize| {
        json!({"type": "SD-P03", "recipients": [recipient("HU")],
               "fields": [{"question": "SD-Q13", "type": "text", "value": "x".repeat(n)}]})
    };
    match users[SENDER].post_json("/api/v1/notifications", &field(10 * 1024 * 1024)) {
        Ok((st, text)) => assert_eq!(st, 413, "a 10 MB field: {text}"),
        Err(e) => assert!(e.is_request(), "a 10 MB field: {e}"),
    }
    let (st, text) = users[SENDER]
        .post_json("/api/v1/notifications", &field(5 * 1024 * 1024))
        .unwrap();
    assert_eq!(st, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    bad(
        json!({"type": "CIT-P02", "recipients": [recipient("HU"), recipient("EU")],
               "fields": small_fields()}),
        422,
        "commission_not_allowed",
    );
    bad(
        json!({"type": "SD-P03", "recipients": [recipient("HU")], "fields": fields()}),
        422,
        "commission_required",
    );
    bad(
        json!({"type": "CIT-P02", "recipients": [recipient("HU")], "fields": small_fields()[..2]}),
        422,
        "missing_field",
    );
    let after = users[SENDER].get_json("/api/v1/notifications?box=sent&limit=200");
    assert_eq!(
        before["items"], after["items"],
        "a refused notification is not stored"
    );
    assert_eq!(after["items"].as_array().unwrap().len(), 2);

    // The stores: the sender's copy of the second envelope opens for neither FR's nor the
    // Commission's key, and FR's store holds no envelope of it.
    let small_msg = small["message_id"].as_str().unwrap().to_owned();
    for (_, p) in std::mem::take(&mut procs) {
        p.stop();
    }
    let stored = stores::envelope(&fed, SENDER, &small_msg).expect("the sender keeps its envelope");
    for outsider in ["FR", "EU", "PL"] {
        let tried = stores::try_open(&fed, outsider, &stored);
        assert!(
            tried.as_ref().is_err_and(|e| e.contains("decrypt_failed")),
            "{outsider}'s key must not open a notification not addressed to it: {tried:?}"
        );
        assert!(
            stores::received(&fed, outsider, &small_msg).is_none(),
            "{outsider} must not hold the envelope"
        );
    }
    for addressed in ["HU", "AT"] {
        let body = stores::try_open(&fed, addressed, &stored)
            .unwrap_or_else(|e| panic!("{addressed}'s key must open it: {e}"));
        let name = b"Geldtransport GmbH";
        assert!(
            body.windows(name.len()).any(|w| w == name),
            "{addressed}: the fields are in the body"
        );
        assert!(stores::received(&fed, addressed, &small_msg).is_some());
    }
}

fn small_fields() -> Vec<Value> {
    vec![
        json!({"question": "CIT-Q01", "type": "text", "value": "Geldtransport GmbH"}),
        json!({"question": "CIT-Q02", "type": "date", "value": "2026-12-01"}),
        json!({"question": "CIT-Q03", "type": "choice", "value": "CIT-Q03-VALID"}),
        json!({"question": "CIT-Q04", "type": "date", "value": "2026-12-02"}),
    ]
}

/// What a sceptic checks on the data itself: a stopped node's RocksDB and its key files.
mod stores {
    use imi_e2e::Federation;
    use imi_protocol::{Envelope, HpkeKeyPair, MessageId, NodeId, TrustList};
    use imi_store::{ReadStore, RocksStore};

    fn open(fed: &Federation, node: &str) -> RocksStore {
        let path = fed.node_dir(node).join("data");
        RocksStore::open(&path, &imi_apps::columns(), &Default::default())
            .unwrap_or_else(|e| panic!("open {node}'s store: {e}"))
    }

    fn id(hex_id: &str) -> MessageId {
        hex_id.parse().expect("message id")
    }

    /// The envelope `message` as its sender stored it.
    pub fn envelope(fed: &Federation, node: &str, message: &str) -> Option<Vec<u8>> {
        let store = open(fed, node);
        store
            .get(imi_engine_keys::ENV_OUT, id(message).as_bytes())
            .unwrap()
    }

    /// The envelope `message` as `node` received it from anyone, if it did.
    pub fn received(fed: &Federation, node: &str, message: &str) -> Option<Vec<u8>> {
        let store = open(fed, node);
        let m = id(message);
        store
            .scan_prefix(imi_engine_keys::ENV_IN, b"", usize::MAX)
            .unwrap()
            .into_iter()
            .find(|(k, _)| k.ends_with(m.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Tries `node`'s HPKE key on every recipient slot of the envelope: the body it opens,
    /// or why none opened.
    pub fn try_open(fed: &Federation, node: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let secret = std::fs::read_to_string(fed.node_dir(node).join("hpke.key")).unwrap();
        let mut raw = [0u8; 32];
        hex::decode_to_slice(secret.trim(), &mut raw).unwrap();
        let key = HpkeKeyPair::from_secret_bytes(&raw).unwrap();
        let governance = std::fs::read_to_string(fed.root().join("governance.pub")).unwrap();
        let mut gov = [0u8; 32];
        hex::decode_to_slice(governance.trim(), &mut gov).unwrap();
        let trust = TrustList::verify(
            &std::fs::read(fed.root().join("trust-list.cbor")).unwrap(),
            &gov,
        )
        .unwrap();
        let env = Envelope::parse(bytes.to_vec(), usize::MAX).map_err(|c| c.to_string())?;
        let slots: Vec<NodeId> = env.header().to.clone();
        let mut why = Vec::new();
        for me in slots {
            let env = Envelope::parse(bytes.to_vec(), usize::MAX).map_err(|c| c.to_string())?;
            let verified = env
                .verify(&trust, me, now_ms(), 300_000)
                .map_err(|c| c.to_string())?;
            match verified.open(me, std::slice::from_ref(&key)) {
                Ok(body) => return Ok(body.body),
                Err(c) => why.push(format!("{me}: {c}")),
            }
        }
        Err(why.join(", "))
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    /// The kernel's column names (the test does not link the engine).
    mod imi_engine_keys {
        pub const ENV_OUT: &str = "env_out";
        pub const ENV_IN: &str = "env_in";
    }
}

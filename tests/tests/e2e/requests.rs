//! IMI requests end to end, through the authorities' HTTP API only, between real `imi-node`
//! processes (DE and HU): the seed's diploma story, every path of the lifecycle, invalid
//! transitions, idempotency, users and tokens, personal data encrypted at rest.

use std::time::Duration;

use imi_e2e::{Federation, HEAVY, NodeClient, NodeProc, lock};
use serde_json::{Value, json};

/// Failure guard for a step to reach the other node (not an expected duration).
const ARRIVE: Duration = Duration::from_secs(60);

struct Story {
    fed: Federation,
    _de: NodeProc,
    _hu: NodeProc,
    /// DE-BY-BLZK (Bavarian chamber of dentists), authority user.
    de: NodeClient,
    /// HU-ENKK, authority user.
    hu: NodeClient,
}

fn setup() -> Story {
    let fed = Federation::init(&["DE", "HU"]);
    let de_proc = fed.start("DE");
    let hu_proc = fed.start("HU");
    let de_token = fed.add_user("DE", "anna.de", "DE-BY-BLZK", "authority_user", &[]);
    let hu_token = fed.add_user("HU", "bela.hu", "HU-ENKK", "authority_user", &[]);
    let de = fed.user("DE", &de_token);
    let hu = fed.user("HU", &hu_token);
    Story {
        fed,
        _de: de_proc,
        _hu: hu_proc,
        de,
        hu,
    }
}

fn create_body(questions: &[&str], answer_by: &str) -> Value {
    json!({
        "responder": "HU-ENKK",
        "area": "PQ",
        "procedure": "PQ-P01",
        "questions": questions,
        "free_text": "Bitte bestätigen Sie die Echtheit des beigefügten Diploms.",
        "subject": {
            "name": "Dr. Kovács Éva",
            "date_of_birth": "1962-03-09",
            "details": {"diploma": "SE-FOK-2009-1234"}
        },
        "answer_by": answer_by,
    })
}

/// Polls `GET /api/v1/requests/{id}` on `c` until `pred` holds; returns the view.
fn wait_view(
    fed: &Federation,
    c: &NodeClient,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    fed.wait_until(&format!("{}: case {id} {what}", c.id), ARRIVE, || {
        let (st, body) = c.get(&format!("/api/v1/requests/{id}")).ok()?;
        if st != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        pred(&v).then_some(v)
    })
}

fn wait_state(fed: &Federation, c: &NodeClient, id: &str, state: &str) -> Value {
    wait_view(fed, c, id, &format!("in state {state}"), |v| {
        v["state"] == state
    })
}

fn step(c: &NodeClient, id: &str, action: &str, body: Value) -> Value {
    c.post_status(&format!("/api/v1/requests/{id}/{action}"), &body, 200)
}

fn kinds(v: &Value) -> Vec<String> {
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Both sides hold the same history: who did what when.
fn same_history(a: &Value, b: &Value) {
    assert_eq!(
        a["history"], b["history"],
        "histories differ:\n{a:#}\n{b:#}"
    );
    assert_eq!(a["state"], b["state"]);
    assert_eq!(a["answer_by"], b["answer_by"]);
}

/// The seed's story: a German regional chamber of dentists asks a Hungarian authority to
/// verify a diploma. The question is chosen in German, read in Hungarian, answered in
/// Hungarian, and the answer read in German, through the HTTP API only.
#[test]
fn diploma_story_de_to_hu() {
    let _g = lock(&HEAVY);
    let s = setup();
    let (fed, de, hu) = (&s.fed, &s.de, &s.hu);

    // The German user picks the question by its German text.
    let pq = de.get_json("/api/v1/catalogue/PQ?lang=de");
    assert_eq!(pq["lang"], "de");
    let question = pq["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["text"] == "Ist das beigefügte Diplom echt?")
        .unwrap_or_else(|| panic!("no German diploma question in {pq:#}"));
    let code = question["code"].as_str().unwrap().to_string();
    assert_eq!(question["answer_type"], "yes_no");
    // The German user finds the Hungarian authority in the directory.
    let found = de.get_json("/api/v1/authorities?country=HU&area=PQ&lang=hu");
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "HU-ENKK"
                && a["name"] == "Egészségügyi Nyilvántartási és Képzési Központ"),
        "{found:#}"
    );

    // `wait=delivered`: the answer comes once HU has stored the request durably.
    let created = de.post_status(
        "/api/v1/requests?wait=delivered",
        &create_body(&[&code], "2099-03-31"),
        201,
    );
    assert_eq!(created["delivery"][0]["node"], "HU", "{created}");
    assert_eq!(created["delivery"][0]["outcome"], "accepted", "{created}");
    let (st, _) = hu
        .get(&format!(
            "/api/v1/requests/{}",
            created["id"].as_str().unwrap()
        ))
        .unwrap();
    assert_eq!(
        st, 200,
        "HU holds the request as soon as DE reports it delivered"
    );
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "sent");
    assert!(created["message_id"].is_string(), "{created}");

    // Hungary reads it in Hungarian (Accept-Language), with the subject's data.
    let hu_q = hu.get_json("/api/v1/catalogue/PQ?lang=hu");
    let hu_text = hu_q["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["code"] == code.as_str())
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    let hu_client = hu.clone();
    let seen = fed.wait_until("HU receives the request", ARRIVE, || {
        let (st, _, body) = hu_client
            .request(
                "GET",
                &format!("/api/v1/requests/{id}"),
                &[("Accept-Language", "hu-HU,hu;q=0.9,en;q=0.5")],
                None,
            )
            .ok()?;
        (st == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
    });
    assert_eq!(seen["lang"], "hu");
    assert_eq!(seen["questions"][0]["code"], code.as_str());
    assert_eq!(seen["questions"][0]["text"], hu_text.as_str());
    assert_ne!(hu_text, "Ist das beigefügte Diplom echt?");
    assert_eq!(seen["subject"]["name"], "Dr. Kovács Éva");
    // The directory has no Hungarian name for the German chamber: English is the fallback.
    assert_eq!(seen["requester"]["name"], "Bavarian Chamber of Dentists");
    assert_eq!(seen["my_role"], "responder");
    assert_eq!(seen["area"]["text"], "Szakmai képesítések");

    // Hungary accepts and answers in Hungarian.
    step(hu, &id, "accept", json!({}));
    let answered = step(
        hu,
        &id,
        "answer",
        json!({
            "answers": [{"question": code, "type": "bool", "value": true}],
            "free_text": "Az oklevél hiteles, a nyilvántartásunkban szerepel."
        }),
    );
    assert_eq!(answered["state"], "answered");

    // Germany reads the answer in German.
    let de_view = wait_state(fed, de, &id, "answered");
    let de_view = {
        let (st, _, body) = de
            .request(
                "GET",
                &format!("/api/v1/requests/{id}"),
                &[("Accept-Language", "de")],
                None,
            )
            .unwrap();
        assert_eq!(st, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["history"], de_view["history"]);
        v
    };
    assert_eq!(de_view["lang"], "de");
    let a = &de_view["answers"][0]["answers"][0];
    assert_eq!(a["question"], code.as_str());
    assert_eq!(a["question_text"], "Ist das beigefügte Diplom echt?");
    assert_eq!(a["type"], "bool");
    assert_eq!(a["value"], true);
    assert_eq!(
        de_view["answers"][0]["free_text"],
        "Az oklevél hiteles, a nyilvántartásunkban szerepel."
    );
    assert_eq!(de_view["answers"][0]["by"], "HU-ENKK");
    assert_eq!(
        de_view["responder"]["name"],
        "Health Registration and Training Centre"
    );

    // Germany closes it with the scoreboard's ratings; both sides agree on everything.
    step(de, &id, "close", json!({"timeliness": 5, "efforts": 4}));
    let hu_view = wait_state(fed, hu, &id, "closed");
    let de_view = de.get_json(&format!("/api/v1/requests/{id}"));
    same_history(&de_view, &hu_view);
    assert_eq!(kinds(&hu_view), ["create", "accept", "answer", "close"]);
    assert_eq!(hu_view["ratings"]["timeliness"], 5);
    assert_eq!(hu_view["ratings"]["efforts"], 4);
    assert!(hu_view["ended_at"].is_string());

    // Lists and filters.
    let list = de.get_json("/api/v1/requests?status=closed&area=PQ&country=HU");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["items"][0]["counterpart_country"], "HU");
    assert!(
        list["items"][0].get("subject").is_none(),
        "lists carry no personal data"
    );
    let none = de.get_json("/api/v1/requests?status=sent");
    assert!(none["items"].as_array().unwrap().is_empty());
    let none = de.get_json("/api/v1/requests?country=AT");
    assert!(none["items"].as_array().unwrap().is_empty());
}

/// Forward, deadline renegotiation (refused, then accepted), additional information both
/// ways, close with ratings; then withdraw; then coordinator referral with reassign and
/// resolve. Both nodes see the same history after every path.
#[test]
fn every_lifecycle_path() {
    let _g = lock(&HEAVY);
    let s = setup();
    let (fed, de, hu) = (&s.fed, &s.de, &s.hu);
    let oh = fed.user(
        "HU",
        &fed.add_user("HU", "oh.hu", "HU-OH", "authority_user", &[]),
    );
    let coord = fed.user(
        "HU",
        &fed.add_user("HU", "coord.hu", "HU-NC", "coordinator", &[]),
    );

    // --- forward, deadlines, additional information, close ---
    let id = de.post_status(
        "/api/v1/requests",
        &create_body(&["PQ-Q01", "PQ-Q02"], "2099-06-30"),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(fed, hu, &id, "sent");
    step(hu, &id, "forward", json!({"to": "HU-OH"}));
    // The forwarding authority no longer sees the case; the new responder does.
    let v = wait_state(fed, &oh, &id, "sent");
    assert_eq!(v["responder"]["id"], "HU-OH");
    assert_eq!(hu.get(&format!("/api/v1/requests/{id}")).unwrap().0, 404);
    wait_view(fed, de, &id, "forwarded to HU-OH", |v| {
        v["responder"]["id"] == "HU-OH"
    });
    step(&oh, &id, "accept", json!({}));
    step(
        &oh,
        &id,
        "propose-deadline",
        json!({"answer_by": "2099-08-31"}),
    );
    let v = wait_state(fed, de, &id, "deadline_proposed");
    assert_eq!(v["state_detail"]["proposed"], "2099-08-31");
    step(de, &id, "refuse-deadline", json!({}));
    let v = wait_state(fed, &oh, &id, "accepted");
    assert_eq!(v["answer_by"], "2099-06-30");
    step(
        &oh,
        &id,
        "propose-deadline",
        json!({"answer_by": "2099-07-31"}),
    );
    wait_state(fed, de, &id, "deadline_proposed");
    step(de, &id, "accept-deadline", json!({}));
    let v = wait_state(fed, &oh, &id, "accepted");
    assert_eq!(v["answer_by"], "2099-07-31");
    assert_eq!(v["requested_answer_by"], "2099-06-30");
    // The responder asks for a clarification; the requester provides it.
    step(
        &oh,
        &id,
        "request-info",
        json!({"text": "Melyik évben adták ki az oklevelet?"}),
    );
    let v = wait_state(fed, de, &id, "info_requested");
    assert_eq!(v["state_detail"]["by"], "responder");
    step(de, &id, "provide-info", json!({"text": "2009."}));
    wait_state(fed, &oh, &id, "accepted");
    step(
        &oh,
        &id,
        "answer",
        json!({"answers": [
            {"question": "PQ-Q01", "type": "bool", "value": true},
            {"question": "PQ-Q02", "type": "not_available"}
        ]}),
    );
    wait_state(fed, de, &id, "answered");
    // The requester asks for further information after the answer.
    step(
        de,
        &id,
        "request-info",
        json!({"text": "Bitte senden Sie den Registerauszug."}),
    );
    wait_state(fed, &oh, &id, "info_requested");
    step(
        &oh,
        &id,
        "provide-info",
        json!({"text": "Csatolva.", "attachments": [
            {"name": "kivonat.txt", "content_base64": "UmVnaXN6dGVyIGtpdm9uYXQ="}
        ]}),
    );
    let v = wait_state(fed, de, &id, "answered");
    let sha = v["notes"].as_array().unwrap().last().unwrap()["attachments"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _, body) = de
        .request(
            "GET",
            &format!("/api/v1/requests/{id}/attachments/{sha}"),
            &[],
            None,
        )
        .unwrap();
    assert_eq!((st, body.as_str()), (200, "Regiszter kivonat"));
    step(de, &id, "close", json!({"timeliness": 2, "efforts": 3}));
    let hu_view = wait_state(fed, &oh, &id, "closed");
    let de_view = de.get_json(&format!("/api/v1/requests/{id}"));
    same_history(&de_view, &hu_view);
    assert_eq!(
        kinds(&de_view),
        [
            "create",
            "forward",
            "accept",
            "propose_deadline",
            "refuse_deadline",
            "propose_deadline",
            "accept_deadline",
            "request_info",
            "provide_info",
            "answer",
            "request_info",
            "provide_info",
            "close"
        ]
    );
    assert_eq!(de_view["ratings"], json!({"timeliness": 2, "efforts": 3}));

    // --- withdraw ---
    let id = de.post_status(
        "/api/v1/requests",
        &create_body(&["PQ-Q01"], "2099-06-30"),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(fed, hu, &id, "sent");
    step(
        de,
        &id,
        "withdraw",
        json!({"reason": "Der Antrag wurde zurückgezogen."}),
    );
    let hu_view = wait_state(fed, hu, &id, "withdrawn");
    // Nothing can happen to a withdrawn request, on either side.
    let (st, body) = hu
        .post_json(&format!("/api/v1/requests/{id}/accept"), &json!({}))
        .unwrap();
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("invalid_transition"), "{body}");
    same_history(&de.get_json(&format!("/api/v1/requests/{id}")), &hu_view);

    // --- referral to the coordinator, reassign, referral again, resolve ---
    let id = de.post_status(
        "/api/v1/requests",
        &create_body(&["PQ-Q01"], "2099-06-30"),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(fed, hu, &id, "sent");
    step(hu, &id, "accept", json!({}));
    wait_state(fed, de, &id, "accepted");
    step(
        de,
        &id,
        "refer",
        json!({"reason": "Keine Antwort auf Rückfragen."}),
    );
    let v = wait_state(fed, &coord, &id, "referred");
    assert_eq!(v["state_detail"]["coordinator_country"], "HU");
    assert_eq!(v["my_role"], "coordinator");
    // Only the coordinator may reassign: the responder's attempt is refused.
    let (st, body) = hu
        .post_json(
            &format!("/api/v1/requests/{id}/reassign"),
            &json!({"to": "HU-OH"}),
        )
        .unwrap();
    assert!(st == 403 || st == 409, "{st} {body}");
    step(&coord, &id, "reassign", json!({"to": "HU-OH"}));
    let v = wait_state(fed, de, &id, "sent");
    assert_eq!(v["responder"]["id"], "HU-OH");
    step(&oh, &id, "accept", json!({}));
    step(
        &oh,
        &id,
        "refer",
        json!({"reason": "A kérés nem egyértelmű."}),
    );
    wait_state(fed, de, &id, "referred");
    step(&coord, &id, "resolve", json!({"note": "Egyeztetve."}));
    let de_view = wait_state(fed, de, &id, "accepted");
    let hu_view = oh.get_json(&format!("/api/v1/requests/{id}"));
    same_history(&de_view, &hu_view);
    let hist = de_view["history"].as_array().unwrap();
    assert_eq!(
        kinds(&de_view),
        [
            "create", "accept", "refer", "reassign", "accept", "refer", "resolve"
        ]
    );
    assert_eq!(hist[3]["actor"], "HU-NC");
    assert_eq!(hist[3]["coordinator"], true);
}

/// A step the state machine refuses is refused by the sending node's API with nothing
/// changed on either side (the receiving node's refusal of a forged step is tested in the
/// engine's suite with a hand-made envelope).
#[test]
fn invalid_transitions_change_nothing() {
    let _g = lock(&HEAVY);
    let s = setup();
    let (fed, de, hu) = (&s.fed, &s.de, &s.hu);
    let id = de.post_status(
        "/api/v1/requests",
        &create_body(&["PQ-Q01"], "2099-06-30"),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before_hu = wait_state(fed, hu, &id, "sent");
    let before_de = de.get_json(&format!("/api/v1/requests/{id}"));
    let attempts: Vec<(&NodeClient, &str, Value, u16)> = vec![
        (
            hu,
            "answer",
            json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": true}]}),
            409,
        ),
        (hu, "close", json!({}), 403),
        (de, "accept", json!({}), 403),
        (de, "close", json!({"timeliness": 5}), 409),
        (hu, "accept-deadline", json!({}), 403),
        (de, "provide-info", json!({"text": "x"}), 409),
        (hu, "forward", json!({"to": "HU-ENKK"}), 422),
        (hu, "forward", json!({"to": "AT-NC"}), 422),
        (hu, "resolve", json!({}), 409),
    ];
    for (c, action, body, want) in attempts {
        let (st, ct, text) = c
            .request(
                "POST",
                &format!("/api/v1/requests/{id}/{action}"),
                &[("content-type", "application/json")],
                Some(body.to_string().into_bytes()),
            )
            .unwrap();
        assert_eq!(st, want, "{} {action}: {text}", c.id);
        assert!(ct.starts_with("application/problem+json"), "{ct}");
        let p: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(p["status"], want);
        assert!(p["code"].is_string() && p["detail"].is_string(), "{p}");
    }
    // A valid step afterwards still works and is the only change on both sides.
    step(hu, &id, "accept", json!({}));
    let de_after = wait_state(fed, de, &id, "accepted");
    let hu_after = hu.get_json(&format!("/api/v1/requests/{id}"));
    same_history(&de_after, &hu_after);
    assert_eq!(kinds(&de_after), ["create", "accept"]);
    assert_eq!(before_de["history"], before_hu["history"]);
}

/// `Idempotency-Key`: a retried create returns the first answer and creates nothing more;
/// the same key with another body is refused.
#[test]
fn idempotent_posts() {
    let _g = lock(&HEAVY);
    let s = setup();
    let (fed, de, hu) = (&s.fed, &s.de, &s.hu);
    let body = create_body(&["PQ-Q01"], "2099-06-30")
        .to_string()
        .into_bytes();
    let post = |b: Vec<u8>, key: &str| {
        de.request(
            "POST",
            "/api/v1/requests",
            &[
                ("content-type", "application/json"),
                ("Idempotency-Key", key),
            ],
            Some(b),
        )
        .unwrap()
    };
    let (st1, _, first) = post(body.clone(), "create-0001");
    let (st2, _, second) = post(body.clone(), "create-0001");
    assert_eq!((st1, st2), (201, 201), "{first} {second}");
    let (a, b): (Value, Value) = (
        serde_json::from_str(&first).unwrap(),
        serde_json::from_str(&second).unwrap(),
    );
    assert_eq!(a, b, "a retry answers exactly the first response");
    let id = a["id"].as_str().unwrap().to_string();
    let other = create_body(&["PQ-Q02"], "2099-06-30")
        .to_string()
        .into_bytes();
    let (st, ct, text) = post(other, "create-0001");
    assert_eq!(st, 422, "{text}");
    assert!(ct.starts_with("application/problem+json"));
    assert!(text.contains("idempotency_key_reused"), "{text}");
    // A transition retried with its key is applied once.
    wait_state(fed, hu, &id, "sent");
    for _ in 0..2 {
        let (st, _, text) = hu
            .request(
                "POST",
                &format!("/api/v1/requests/{id}/accept"),
                &[("Idempotency-Key", "accept-1")],
                None,
            )
            .unwrap();
        assert_eq!(st, 200, "{text}");
    }
    let v = wait_state(fed, de, &id, "accepted");
    assert_eq!(kinds(&v), ["create", "accept"]);
    let list = de.get_json("/api/v1/requests");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let list = hu.get_json("/api/v1/requests");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

/// `users add/list/revoke`: tokens work until revoked; the node keeps only their hashes;
/// reads of personal data are in the access log for auditors.
#[test]
fn users_tokens_and_access_log() {
    let _g = lock(&HEAVY);
    let s = setup();
    let (fed, de) = (&s.fed, &s.de);
    let auditor = fed.user(
        "DE",
        &fed.add_user("DE", "audit.de", "DE-NC", "auditor", &[]),
    );
    let me = de.get_json("/api/v1/me");
    // The scheme name is case-insensitive.
    let t = fed.add_user("DE", "case.de", "DE-NW-ZAEK", "authority_user", &[]);
    let (st, _, body) = fed
        .client("DE")
        .without_token()
        .request(
            "GET",
            "/api/v1/me",
            &[("Authorization", &format!("bearer {t}"))],
            None,
        )
        .unwrap();
    assert_eq!(st, 200, "{body}");
    assert_eq!(me["authority"], "DE-BY-BLZK");
    assert_eq!(me["role"], "authority_user");

    // A user of a foreign or unknown authority, or with a bad role, is refused.
    let cfg = fed.config("DE");
    let cfg = cfg.to_str().unwrap();
    for (authority, role) in [
        ("HU-ENKK", "authority_user"),
        ("DE-NOPE", "authority_user"),
        ("DE-NC", "king"),
    ] {
        let out = fed.run_cli(&[
            "users",
            "add",
            "--config",
            cfg,
            "--id",
            "x",
            "--authority",
            authority,
            "--role",
            role,
        ]);
        assert!(!out.status.success(), "{authority} {role} accepted");
    }
    // Duplicate ids are refused.
    let out = fed.run_cli(&[
        "users",
        "add",
        "--config",
        cfg,
        "--id",
        "anna.de",
        "--authority",
        "DE-NC",
        "--role",
        "auditor",
    ]);
    assert!(!out.status.success());

    let id = de.post_status(
        "/api/v1/requests",
        &create_body(&["PQ-Q01"], "2099-06-30"),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let log = auditor.get_json(&format!("/api/v1/audit/access-log?case={id}"));
    assert!(log["items"].as_array().unwrap().is_empty(), "{log}");
    de.get_json(&format!("/api/v1/requests/{id}"));
    de.get_json(&format!("/api/v1/requests/{id}"));
    let log = auditor.get_json(&format!("/api/v1/audit/access-log?case={id}"));
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    assert_eq!(items[0]["user"], "anna.de");
    assert_eq!(items[0]["authority"], "DE-BY-BLZK");
    assert_eq!(items[0]["action"], "read_request");
    // Lists are not reads of personal data.
    de.get_json("/api/v1/requests");
    let log = auditor.get_json(&format!("/api/v1/audit/access-log?case={id}"));
    assert_eq!(log["items"].as_array().unwrap().len(), 2);
    // Only auditors read the log.
    assert_eq!(de.get("/api/v1/audit/access-log").unwrap().0, 403);

    let out = fed.run_cli(&["users", "list", "--config", cfg, "--json"]);
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("imi_"),
        "users list must not show tokens: {text}"
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 3);

    let out = fed.run_cli(&["users", "revoke", "--config", cfg, "--id", "anna.de"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, ct, _) = de.request("GET", "/api/v1/me", &[], None).unwrap();
    assert_eq!(st, 401);
    assert!(ct.starts_with("application/problem+json"));
    let list: Value = serde_json::from_slice(
        &fed.run_cli(&["users", "list", "--config", cfg, "--json"])
            .stdout,
    )
    .unwrap();
    let anna = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "anna.de")
        .unwrap();
    assert_eq!(anna["revoked"], true);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn scan_dir(dir: &std::path::Path, needles: &[&[u8]]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            hits.extend(scan_dir(&p, needles));
        } else if let Ok(bytes) = std::fs::read(&p) {
            for n in needles {
                if contains(&bytes, n) {
                    hits.push(format!(
                        "{} contains {:?}",
                        p.display(),
                        String::from_utf8_lossy(n)
                    ));
                }
            }
        }
    }
    hits
}

/// Personal data is stored encrypted under a key of the case's own: a raw byte scan of both
/// nodes' RocksDB directories (WAL, SST, everything) finds neither the subject's name nor
/// the free text, and the data reads back after a restart.
#[test]
fn personal_data_is_encrypted_at_rest() {
    let _g = lock(&HEAVY);
    let s = setup();
    let (fed, de, hu) = (&s.fed, &s.de, &s.hu);
    let name = "Zsófia Példa-Ünnepesné";
    let marker = "Sonderkennzeichen-QX7";
    let mut body = create_body(&["PQ-Q01"], "2099-06-30");
    body["subject"]["name"] = json!(name);
    body["free_text"] = json!(marker);
    let id = de.post_status("/api/v1/requests", &body, 201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = wait_state(fed, hu, &id, "sent");
    assert_eq!(v["subject"]["name"], name);
    // Control: the ids are in the clear (the scan does find what is there).
    let Story {
        fed,
        _de,
        _hu,
        de,
        hu,
    } = s;
    _de.stop();
    _hu.stop();
    for node in ["DE", "HU"] {
        let data = fed.node_dir(node).join("data");
        let hits = scan_dir(
            &data,
            &[name.as_bytes(), marker.as_bytes(), b"SE-FOK-2009-1234"],
        );
        assert!(hits.is_empty(), "plaintext personal data at rest: {hits:?}");
        let control = scan_dir(&data, &[b"DE-BY-BLZK"]);
        assert!(
            !control.is_empty(),
            "the scan must find the clear metadata in {}",
            data.display()
        );
    }
    let _de2 = fed.start("DE");
    let _hu2 = fed.start("HU");
    assert_eq!(
        de.get_json(&format!("/api/v1/requests/{id}"))["subject"]["name"],
        name
    );
    assert_eq!(
        hu.get_json(&format!("/api/v1/requests/{id}"))["free_text"],
        marker
    );
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (Howard Hinnant's civil_from_days).
fn date_of_days(days: u64) -> String {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn today_days() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Lists paginate with a cursor; a request past its agreed date and still unanswered is
/// flagged overdue on both sides (the nodes are restarted with their clocks 4 days ahead).
#[test]
fn pagination_and_overdue_flag() {
    let _g = lock(&HEAVY);
    let s = setup();
    let Story {
        fed,
        _de,
        _hu,
        de,
        hu,
    } = s;
    let due = date_of_days(today_days() + 2);
    let mut made = Vec::new();
    for _ in 0..3 {
        let v = de.post_status(
            "/api/v1/requests?wait=delivered",
            &create_body(&["PQ-Q01"], &due),
            201,
        );
        made.push(v["id"].as_str().unwrap().to_string());
    }
    // R3 is answered in time.
    step(&hu, &made[2], "accept", json!({}));
    step(
        &hu,
        &made[2],
        "answer",
        json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": false}]}),
    );
    wait_state(&fed, &de, &made[2], "answered");

    let page1 = de.get_json("/api/v1/requests?limit=2");
    assert_eq!(ids(&page1).len(), 2, "{page1}");
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let page2 = de.get_json(&format!("/api/v1/requests?limit=2&cursor={cursor}"));
    assert_eq!(ids(&page2).len(), 1, "{page2}");
    assert!(page2["next_cursor"].is_null());
    let mut all: Vec<String> = ids(&page1).into_iter().chain(ids(&page2)).collect();
    all.sort();
    let mut want = made.clone();
    want.sort();
    assert_eq!(all, want);
    assert!(ids(&de.get_json("/api/v1/requests?overdue=true")).is_empty());
    assert_eq!(ids(&de.get_json("/api/v1/requests?overdue=false")).len(), 3);

    // Four days later.
    _de.stop();
    _hu.stop();
    let ahead = (4 * 86_400_000u64).to_string();
    let _de2 = NodeProc::start_env(&fed, "DE", &[("IMI_CLOCK_OFFSET_MS", &ahead)]);
    let _hu2 = NodeProc::start_env(&fed, "HU", &[("IMI_CLOCK_OFFSET_MS", &ahead)]);
    for c in [&de, &hu] {
        let mut overdue = ids(&c.get_json("/api/v1/requests?overdue=true"));
        overdue.sort();
        let mut want = vec![made[0].clone(), made[1].clone()];
        want.sort();
        assert_eq!(overdue, want, "{}", c.id);
        assert_eq!(
            c.get_json(&format!("/api/v1/requests/{}", made[0]))["overdue"],
            true
        );
        assert_eq!(
            c.get_json(&format!("/api/v1/requests/{}", made[2]))["overdue"],
            false
        );
    }
    let list = de.get_json("/api/v1/requests?overdue=true&status=sent");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["overdue"] == true)
    );
    // Answering late clears the flag.
    step(&hu, &made[0], "accept", json!({}));
    step(
        &hu,
        &made[0],
        "answer",
        json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": true}]}),
    );
    let v = wait_state(&fed, &de, &made[0], "answered");
    assert_eq!(v["overdue"], false);
}

/// A new legal area is a new catalogue file and no code: a copy of an area with new codes,
/// dropped into the federation's catalogue, is usable through the API after a restart. A
/// catalogue with a missing translation stops the node with an error naming the file and
/// the item.
#[test]
fn new_area_from_a_file_and_broken_catalogue() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU"]);
    let areas = fed.root().join("catalogue").join("areas");
    let co = std::fs::read_to_string(areas.join("CO.toml")).unwrap();
    let tst = co
        .replace("code = \"CO\"", "code = \"TST\"")
        .replace("\"CO-", "\"TST-");
    assert!(tst.contains("TST-Q01") && !tst.contains("\"CO-"));
    std::fs::write(areas.join("TST.toml"), &tst).unwrap();

    let _de = fed.start("DE");
    let _hu = fed.start("HU");
    let de = fed.user(
        "DE",
        &fed.add_user("DE", "anna.de", "DE-BY-BLZK", "authority_user", &[]),
    );
    let hu = fed.user(
        "HU",
        &fed.add_user("HU", "bela.hu", "HU-ENKK", "authority_user", &[]),
    );
    let cat = de.get_json("/api/v1/catalogue?lang=de");
    assert!(
        cat["areas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["code"] == "TST"),
        "{cat}"
    );
    let mut body = create_body(&["TST-Q01"], "2099-06-30");
    body["area"] = json!("TST");
    body["procedure"] = json!("TST-P01");
    let id = de.post_status("/api/v1/requests?wait=delivered", &body, 201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = hu.get_json(&format!("/api/v1/requests/{id}?lang=hu"));
    assert_eq!(v["area"]["code"], "TST");
    assert_eq!(
        v["questions"][0]["text"],
        "Ismertesse a kulturális javat: típus, anyagok, méretek és megkülönböztető jegyek."
    );
    _de.stop();

    // Drop the Hungarian text of TST-Q01: DE must refuse to start, naming file and item.
    let broken = tst.replacen(
        "hu = \"Ismertesse a kulturális javat: típus, anyagok, méretek és megkülönböztető jegyek.\"\n",
        "",
        1,
    );
    assert_ne!(broken, tst);
    std::fs::write(areas.join("TST.toml"), &broken).unwrap();
    let mut child = std::process::Command::new(imi_e2e::node_bin())
        .args(["run", "--config"])
        .arg(fed.config("DE"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > ARRIVE {
            let _ = child.kill();
            panic!("imi-node started with a broken catalogue");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("TST.toml"), "{err}");
    assert!(err.contains("TST-Q01"), "{err}");
}

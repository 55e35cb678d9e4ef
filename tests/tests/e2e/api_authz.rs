//! Authorization and input validation of the authorities' API (`/api/v1`), on real nodes.
//!
//! * `authorization_matrix`: every user of three nodes against every case route of every
//!   case they may not see answers exactly the 404 of a case that does not exist; auditors
//!   and operators get 403 on every request route; nothing of an invisible case shows in
//!   lists or in the access log, and no case changed.
//! * `bad_input_is_refused_and_stores_nothing`: malformed, oversized, unknown-field,
//!   impossible-date and out-of-catalogue input is a problem+json error with a `code`, and
//!   none of it stores or sends anything.
//! * `the_server_enforces_what_the_document_says`: 401 before any query check, 400 for an
//!   undocumented query parameter on every route the document lists, empty values checked,
//!   404 for the operator's bundle of an unknown case, ratings as integral JSON numbers.
//!
//! Every response is also checked against `openapi.json` by the harness ([`NodeClient`]).
//!
//! Needs the binary: `cargo build -p imi-node` (or `IMI_NODE_BIN=...`).

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use imi_e2e::{Federation, HEAVY, NodeClient, lock};
use serde_json::{Value, json};

/// Failure guard for asynchronous conditions (not an expected duration).
const SHORT: Duration = Duration::from_secs(60);

const PROBLEM_JSON: &str = "application/problem+json";

/// The transition routes `POST /api/v1/requests/{id}/<action>`.
const ACTIONS: &[&str] = &[
    "accept",
    "forward",
    "propose-deadline",
    "accept-deadline",
    "refuse-deadline",
    "answer",
    "request-info",
    "provide-info",
    "close",
    "withdraw",
    "refer",
    "reassign",
    "resolve",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One HTTP answer: status, content type and body (parsed as JSON when it is JSON).
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }
}

/// Sends `method path` with an optional raw body of `content_type`.
fn raw(
    fed: &Federation,
    c: &NodeClient,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Answer {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| vec![("content-type", ct)])
        .unwrap_or_default();
    let (status, content_type, text) = c
        .request(method, path, &headers, body)
        .unwrap_or_else(|e| fed.fail(&format!("{}: {method} {path}: {e}", c.id)));
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        body,
    }
}

/// Sends `method path`, with `body` as JSON if given.
fn call(
    fed: &Federation,
    c: &NodeClient,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    match body {
        Some(b) => raw(
            fed,
            c,
            method,
            path,
            Some("application/json"),
            Some(serde_json::to_vec(b).expect("serialize body")),
        ),
        None => raw(fed, c, method, path, None, None),
    }
}

/// Asserts `a` is a problem document with status `status` (and `code`, if given).
fn assert_problem(fed: &Federation, what: &str, a: &Answer, status: u16, code: Option<&str>) {
    let body_ok = ["type", "title", "detail", "code"]
        .iter()
        .all(|f| a.body.get(*f).is_some_and(Value::is_string))
        && a.body.get("status").and_then(Value::as_u64) == Some(u64::from(status));
    let ok = a.status == status
        && a.content_type.starts_with(PROBLEM_JSON)
        && body_ok
        && code.is_none_or(|c| a.code() == Some(c));
    if !ok {
        fed.fail(&format!(
            "{what}: expected a {status} {PROBLEM_JSON} document with type, title, status, \
             detail and code{}; got {a:?}",
            code.map(|c| format!(" {c:?}")).unwrap_or_default()
        ));
    }
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    let mut n: u64 = 0;
    while out.len() < 2 * bytes {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(Instant::now().elapsed().as_nanos());
        n += 1;
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(2 * bytes);
    out
}

/// A case id that does not exist (32 hex digits).
fn random_case_id() -> String {
    random_hex(16)
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// A valid create body.
fn create_body(responder: &str, subject: &str, attachment: Option<(&str, &[u8])>) -> Value {
    let mut b = json!({
        "responder": responder,
        "area": "PQ",
        "procedure": "PQ-P01",
        "questions": ["PQ-Q01", "PQ-Q02"],
        "free_text": "Please confirm the qualification.",
        "subject": {
            "name": subject,
            "date_of_birth": "1985-04-12",
            "details": {"diploma": "X-1"}
        },
        "answer_by": "2099-01-31",
    });
    if let Some((name, bytes)) = attachment {
        b["attachments"] = json!([{"name": name, "content_base64": base64(bytes)}]);
    }
    b
}

/// `POST /api/v1/requests`; expects 201 and returns the new case id.
fn create(fed: &Federation, c: &NodeClient, body: &Value) -> String {
    let r = c.post_status("/api/v1/requests", body, 201);
    assert_eq!(r["state"], "sent", "create answer {r}");
    r["id"]
        .as_str()
        .unwrap_or_else(|| fed.fail(&format!("create answer without id: {r}")))
        .to_string()
}

/// Waits until `c` can read case `id` (it arrived at `c`'s node).
fn wait_case(fed: &Federation, c: &NodeClient, id: &str) -> Value {
    let path = format!("/api/v1/requests/{id}");
    fed.wait_until(&format!("case {id} readable on {}", c.id), SHORT, || {
        let (st, body) = c.get(&path).ok()?;
        (st == 200).then(|| serde_json::from_str(&body).expect("case JSON"))
    })
}

/// Waits until case `id` is in `state` as read by `c`.
fn wait_state(fed: &Federation, c: &NodeClient, id: &str, state: &str) -> Value {
    let path = format!("/api/v1/requests/{id}");
    fed.wait_until(
        &format!("case {id} in state {state} on {}", c.id),
        SHORT,
        || {
            let (st, body) = c.get(&path).ok()?;
            let v: Value = serde_json::from_str(&body).ok()?;
            (st == 200 && v["state"] == state).then_some(v)
        },
    )
}

/// What must not change about a case: state, parties, history, answers, notes.
fn fingerprint(fed: &Federation, c: &NodeClient, id: &str) -> Value {
    let v = c.get_json(&format!("/api/v1/requests/{id}"));
    let history = v["history"]
        .as_array()
        .unwrap_or_else(|| fed.fail(&format!("case {id} on {} without history: {v}", c.id)));
    if history.is_empty() {
        fed.fail(&format!("case {id} on {}: empty history", c.id));
    }
    json!({
        "history_len": history.len(),
        "state": v["state"],
        "requester": v["requester"]["id"],
        "responder": v["responder"]["id"],
        "answer_by": v["answer_by"],
        "history": v["history"],
        "answers": v["answers"],
        "notes": v["notes"],
        "ratings": v["ratings"],
    })
}

/// The case ids of `GET /api/v1/requests` (every page).
fn list_ids(fed: &Federation, c: &NodeClient) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut path = "/api/v1/requests?limit=200".to_string();
    loop {
        let v = c.get_json(&path);
        let items = v["items"]
            .as_array()
            .unwrap_or_else(|| fed.fail(&format!("{}: list without items: {v}", c.id)));
        for it in items {
            let id = it["id"].as_str().expect("item id").to_string();
            if !ids.insert(id.clone()) {
                fed.fail(&format!("{}: case {id} listed twice", c.id));
            }
        }
        match v["next_cursor"].as_str() {
            Some(cur) => path = format!("/api/v1/requests?limit=200&cursor={cur}"),
            None => break,
        }
    }
    ids
}

/// A valid-looking body for each action.
fn action_body(action: &str) -> Value {
    match action {
        "forward" | "reassign" => json!({"to": "HU-OH"}),
        "propose-deadline" => json!({"answer_by": "2099-06-30"}),
        "answer" => json!({
            "answers": [{"question": "PQ-Q01", "type": "bool", "value": true}],
            "free_text": "Confirmed."
        }),
        "request-info" => json!({"text": "Please send the diploma supplement."}),
        "provide-info" => json!({"text": "Attached."}),
        "close" => json!({"timeliness": 4, "efforts": 5}),
        "withdraw" | "refer" => json!({"reason": "No longer needed."}),
        "resolve" => json!({"note": "Resolved."}),
        _ => json!({}),
    }
}

/// Every route on one case: method, path, JSON body.
fn case_routes(id: &str, sha: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let mut v = vec![
        ("GET", format!("/api/v1/requests/{id}"), None),
        (
            "GET",
            format!("/api/v1/requests/{id}/attachments/{sha}"),
            None,
        ),
    ];
    for a in ACTIONS {
        v.push((
            "POST",
            format!("/api/v1/requests/{id}/{a}"),
            Some(action_body(a)),
        ));
    }
    v
}

/// Every `/api/v1` route except the OpenAPI document, for case `id`.
fn all_api_routes(id: &str, sha: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let mut v = vec![
        ("GET", "/api/v1/me".to_string(), None),
        ("GET", "/api/v1/catalogue".to_string(), None),
        ("GET", "/api/v1/catalogue/PQ".to_string(), None),
        ("GET", "/api/v1/authorities".to_string(), None),
        ("GET", "/api/v1/authorities/HU-ENKK".to_string(), None),
        ("GET", "/api/v1/requests".to_string(), None),
        (
            "POST",
            "/api/v1/requests".to_string(),
            Some(create_body("HU-ENKK", "Dr. Unauthenticated", None)),
        ),
        ("GET", "/api/v1/audit/access-log".to_string(), None),
    ];
    v.extend(case_routes(id, sha));
    v
}

/// A case of the matrix.
struct Case {
    name: &'static str,
    id: String,
    sha: String,
}

/// A user of the matrix: where they log in and which cases they must see there.
struct User {
    name: &'static str,
    node: &'static str,
    token: String,
    client: NodeClient,
    /// Auditor or operator: 403 on every request route.
    no_cases: bool,
    sees: &'static [&'static str],
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn authorization_matrix() {
    let _g = lock(&HEAVY);
    let started = Instant::now();
    let fed = Federation::init(&["AT", "DE", "HU"]);
    let de = fed.start("DE");
    let hu = fed.start("HU");
    let at = fed.start("AT");

    // (name, node, authority, role, areas, sees)
    #[allow(clippy::type_complexity)]
    let spec: &[(&str, &str, &str, &str, &[&str], &[&str])] = &[
        (
            "requester",
            "DE",
            "DE-BY-BLZK",
            "authority_user",
            &[],
            &["C1"],
        ),
        ("other_de", "DE", "DE-NW-ZAEK", "authority_user", &[], &[]),
        ("de_coord", "DE", "DE-NC", "coordinator", &[], &["C1"]),
        ("de_deleg_sd", "DE", "DE-NC", "coordinator", &["SD"], &[]),
        (
            "de_deleg_pq",
            "DE",
            "DE-NC",
            "coordinator",
            &["PQ"],
            &["C1"],
        ),
        ("de_auditor", "DE", "DE-NC", "auditor", &[], &[]),
        ("de_operator", "DE", "DE-NC", "operator", &[], &[]),
        ("responder", "HU", "HU-ENKK", "authority_user", &[], &["C1"]),
        ("other_hu", "HU", "HU-OH", "authority_user", &[], &["C2"]),
        ("hu_coord", "HU", "HU-NC", "coordinator", &[], &["C1", "C2"]),
        ("at_user", "AT", "AT-AEK", "authority_user", &[], &["C2"]),
        ("at_other", "AT", "AT-BUAK", "authority_user", &[], &[]),
    ];
    let mut users: Vec<User> = Vec::new();
    for &(name, node, authority, role, areas, sees) in spec {
        let token = fed.add_user(node, name, authority, role, areas);
        users.push(User {
            name,
            node,
            client: fed.user(node, &token),
            token,
            no_cases: matches!(role, "auditor" | "operator"),
            sees,
        });
    }
    let user = |name: &str| -> &User {
        users
            .iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("no user {name}"))
    };

    // C1: DE-BY-BLZK -> HU-ENKK (on DE and HU); C2: AT-AEK -> HU-OH (on AT and HU).
    let file1: &[u8] = b"%PDF-1.4 diploma of Dr. Test Person\n";
    let file2: &[u8] = b"%PDF-1.4 certificate of good standing\n";
    let c1 = create(
        &fed,
        &user("requester").client,
        &create_body("HU-ENKK", "Dr. Test Person", Some(("diploma.pdf", file1))),
    );
    let mut b2 = create_body("HU-OH", "Dr. Other Person", Some(("cert.pdf", file2)));
    b2["free_text"] = json!("Austrian request.");
    let c2 = create(&fed, &user("at_user").client, &b2);
    let v1 = wait_case(&fed, &user("responder").client, &c1);
    let v2 = wait_case(&fed, &user("other_hu").client, &c2);
    let sha_of = |v: &Value| -> String {
        v["attachments"][0]["sha256"]
            .as_str()
            .unwrap_or_else(|| fed.fail(&format!("case without attachment: {v}")))
            .to_string()
    };
    let cases = [
        Case {
            name: "C1",
            id: c1.clone(),
            sha: sha_of(&v1),
        },
        Case {
            name: "C2",
            id: c2.clone(),
            sha: sha_of(&v2),
        },
    ];
    eprintln!("C1 {c1}, C2 {c2} (setup {:?})", started.elapsed());

    // Who holds what, read by a party user: the reference for "nothing changed".
    let holders: [(&str, &str, &str); 4] = [
        ("C1", "DE", "requester"),
        ("C1", "HU", "responder"),
        ("C2", "HU", "other_hu"),
        ("C2", "AT", "at_user"),
    ];
    let case_id =
        |name: &str| -> &str { &cases.iter().find(|c| c.name == name).expect("case name").id };
    let before: Vec<Value> = holders
        .iter()
        .map(|(c, _, u)| fingerprint(&fed, &user(u).client, case_id(c)))
        .collect();
    // C2 never reached DE: DE's national coordinator lists only C1.
    assert_eq!(
        list_ids(&fed, &user("de_coord").client),
        BTreeSet::from([c1.clone()]),
        "DE holds exactly C1"
    );

    let matrix_started = Instant::now();
    let mut checked = 0usize;
    for u in &users {
        let c = &u.client;
        let who = format!("{} on {}", u.name, u.node);

        // The access log is for auditors only.
        let log = call(&fed, c, "GET", "/api/v1/audit/access-log", None);
        if u.name == "de_auditor" {
            if log.status != 200 {
                fed.fail(&format!("{who}: access log: {log:?}"));
            }
        } else {
            assert_problem(
                &fed,
                &format!("{who}: GET access log"),
                &log,
                403,
                Some("forbidden"),
            );
        }

        if u.no_cases {
            // Role-level refusal on every request route, whatever the case.
            let mut routes = vec![
                ("GET", "/api/v1/requests".to_string(), None),
                (
                    "POST",
                    "/api/v1/requests".to_string(),
                    Some(create_body("HU-ENKK", "Dr. Operator Test", None)),
                ),
            ];
            for case in &cases {
                routes.extend(case_routes(&case.id, &case.sha));
            }
            routes.extend(case_routes(&random_case_id(), &cases[0].sha));
            for (m, p, b) in &routes {
                let a = call(&fed, c, m, p, b.as_ref());
                assert_problem(&fed, &format!("{who}: {m} {p}"), &a, 403, Some("forbidden"));
                checked += 1;
            }
            continue;
        }

        let listed = list_ids(&fed, c);
        for case in &cases {
            let visible = u.sees.contains(&case.name);
            if visible {
                if !listed.contains(&case.id) {
                    fed.fail(&format!(
                        "{who}: {} ({}) missing from the list {listed:?}",
                        case.name, case.id
                    ));
                }
                let v = c.get_json(&format!("/api/v1/requests/{}", case.id));
                assert_eq!(v["id"], case.id.as_str(), "{who}: detail of {}", case.name);
                let (st, _) = c
                    .get(&format!(
                        "/api/v1/requests/{}/attachments/{}",
                        case.id, case.sha
                    ))
                    .expect("GET attachment");
                assert_eq!(st, 200, "{who}: attachment of {}", case.name);
                // Another case's file through this case: the same 404 as an unknown digest.
                for other in cases.iter().filter(|o| o.name != case.name) {
                    let p = format!("/api/v1/requests/{}/attachments/{}", case.id, other.sha);
                    let got = call(&fed, c, "GET", &p, None);
                    let unknown = format!(
                        "/api/v1/requests/{}/attachments/{}",
                        case.id,
                        random_hex(32)
                    );
                    let absent = call(&fed, c, "GET", &unknown, None);
                    assert_problem(
                        &fed,
                        &format!("{who}: GET {p}"),
                        &got,
                        404,
                        Some("not_found"),
                    );
                    if got != absent {
                        fed.fail(&format!(
                            "{who}: GET {p} differs from an unknown digest:\n  {got:?}\n  {absent:?}"
                        ));
                    }
                    checked += 1;
                }
                continue;
            }
            if listed.contains(&case.id) {
                fed.fail(&format!(
                    "{who}: invisible case {} ({}) is listed: {listed:?}",
                    case.name, case.id
                ));
            }
            for (m, p, b) in case_routes(&case.id, &case.sha) {
                let got = call(&fed, c, m, &p, b.as_ref());
                let absent_path = p.replace(&case.id, &random_case_id());
                let absent = call(&fed, c, m, &absent_path, b.as_ref());
                assert_problem(
                    &fed,
                    &format!("{who}: {m} {absent_path} (no such case)"),
                    &absent,
                    404,
                    Some("not_found"),
                );
                if got != absent {
                    fed.fail(&format!(
                        "{who}: {m} {p} on invisible {} differs from a case that does not \
                         exist:\n  invisible: {got:?}\n  absent:    {absent:?}",
                        case.name
                    ));
                }
                checked += 1;
            }
        }
        // Lists hold nothing but the visible cases.
        let expected: BTreeSet<String> = cases
            .iter()
            .filter(|c| u.sees.contains(&c.name))
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(listed, expected, "{who}: list");
        for q in [
            "status=sent",
            "area=PQ",
            "country=HU",
            "country=AT",
            "country=DE",
            "overdue=false",
        ] {
            let v = c.get_json(&format!("/api/v1/requests?{q}&limit=200"));
            for it in v["items"].as_array().expect("items") {
                let id = it["id"].as_str().unwrap_or("");
                if !expected.contains(id) {
                    fed.fail(&format!("{who}: ?{q} lists invisible case {id}: {v}"));
                }
            }
        }
    }

    // Without a valid token: 401 problem+json on every route of every node but the OpenAPI
    // document. A token is valid on its own node only.
    for (node, case, foreign) in [
        ("DE", &cases[0], "responder"),
        ("HU", &cases[0], "requester"),
        ("AT", &cases[1], "requester"),
    ] {
        let anon = fed.client(node).without_token();
        let strangers: [(String, NodeClient); 4] = [
            ("no token".into(), anon.clone()),
            ("garbage token".into(), anon.with_token("garbage")),
            (
                "unknown imi_ token".into(),
                anon.with_token(&format!("imi_{}", random_hex(32))),
            ),
            (
                format!("{foreign}'s token (of another node)"),
                anon.with_token(&user(foreign).token),
            ),
        ];
        for (what, c) in &strangers {
            for (m, p, b) in all_api_routes(&case.id, &case.sha) {
                let a = call(&fed, c, m, &p, b.as_ref());
                assert_problem(
                    &fed,
                    &format!("{node}, {what}: {m} {p}"),
                    &a,
                    401,
                    Some("unauthorized"),
                );
                checked += 1;
            }
            let (st, ct, body) = c
                .request("GET", "/api/v1/openapi.json", &[], None)
                .expect("GET openapi");
            assert_eq!(st, 200, "{node}, {what}: GET /api/v1/openapi.json: {body}");
            assert!(
                ct.starts_with("application/json"),
                "openapi content type {ct}"
            );
            let doc: Value = serde_json::from_str(&body).expect("openapi JSON");
            assert!(doc["paths"].is_object(), "openapi paths");
        }
    }
    eprintln!(
        "{checked} refused calls checked in {:?}",
        matrix_started.elapsed()
    );

    // The DE access log: reads of C1 by the users who may see it, nothing else.
    let log = user("de_auditor")
        .client
        .get_json("/api/v1/audit/access-log?limit=200");
    let entries = log["items"].as_array().expect("access log items");
    let allowed: BTreeSet<&str> = ["requester", "de_coord", "de_deleg_pq"].into();
    let mut readers = BTreeSet::new();
    for e in entries {
        let u = e["user"].as_str().unwrap_or("");
        if !allowed.contains(u) || e["case"] != c1.as_str() {
            fed.fail(&format!(
                "DE access log has an entry no allowed read explains: {e}\nwhole log: {log}"
            ));
        }
        readers.insert(u.to_string());
    }
    assert_eq!(
        readers,
        allowed.iter().map(|s| s.to_string()).collect(),
        "every allowed read of C1 on DE is in the access log: {log}"
    );

    // Nothing changed: the same history and state on every node that holds the cases.
    let after: Vec<Value> = holders
        .iter()
        .map(|(c, _, u)| fingerprint(&fed, &user(u).client, case_id(c)))
        .collect();
    for (i, (c, node, u)) in holders.iter().enumerate() {
        if before[i] != after[i] {
            fed.fail(&format!(
                "{c} on {node} (read by {u}) changed during the matrix:\nbefore: {}\nafter:  {}",
                before[i], after[i]
            ));
        }
    }
    assert_eq!(
        list_ids(&fed, &user("hu_coord").client),
        BTreeSet::from([c1.clone(), c2.clone()]),
        "HU holds exactly C1 and C2"
    );
    assert_eq!(
        list_ids(&fed, &user("de_coord").client),
        BTreeSet::from([c1.clone()]),
        "DE holds exactly C1"
    );
    eprintln!("authorization_matrix took {:?}", started.elapsed());
    drop((de, hu, at));
}

#[test]
fn bad_input_is_refused_and_stores_nothing() {
    let _g = lock(&HEAVY);
    let started = Instant::now();
    let fed = Federation::init(&["DE", "HU"]);
    let de = fed.start("DE");
    let hu = fed.start("HU");
    let requester = fed.user(
        "DE",
        &fed.add_user("DE", "requester", "DE-BY-BLZK", "authority_user", &[]),
    );
    let de_coord = fed.user(
        "DE",
        &fed.add_user("DE", "de_coord", "DE-NC", "coordinator", &[]),
    );
    let responder = fed.user(
        "HU",
        &fed.add_user("HU", "responder", "HU-ENKK", "authority_user", &[]),
    );
    let hu_coord = fed.user(
        "HU",
        &fed.add_user("HU", "hu_coord", "HU-NC", "coordinator", &[]),
    );

    // One valid case, accepted, so that answers reach the catalogue checks.
    let v1 = create(
        &fed,
        &requester,
        &create_body("HU-ENKK", "Dr. Valid Person", None),
    );
    wait_case(&fed, &responder, &v1);
    responder.post_status(&format!("/api/v1/requests/{v1}/accept"), &json!({}), 200);
    wait_state(&fed, &requester, &v1, "accepted");
    let before_de = fingerprint(&fed, &requester, &v1);
    let before_hu = fingerprint(&fed, &responder, &v1);
    assert_eq!(
        before_de, before_hu,
        "both nodes agree on the accepted case"
    );

    // --- POST /api/v1/requests with bad input -----------------------------------------------
    let valid = create_body("HU-ENKK", "Dr. Refused Person", None);
    let with = |f: &dyn Fn(&mut Value)| -> Vec<u8> {
        let mut b = valid.clone();
        f(&mut b);
        serde_json::to_vec(&b).expect("serialize")
    };
    let json_ct = Some("application/json");
    let mut oversized = valid.clone();
    oversized["attachments"] = json!([{
        "name": "huge.pdf",
        "content_base64": "A".repeat(5 * 1024 * 1024 + 16),
    }]);
    // (what, content type, body, status, code)
    #[allow(clippy::type_complexity)]
    let creates: Vec<(&str, Option<&str>, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "malformed JSON",
            json_ct,
            br#"{"responder": "HU-ENKK", "area": "PQ","#.to_vec(),
            400,
            Some("malformed_json"),
        ),
        (
            "unknown top-level field",
            json_ct,
            with(&|b| b["priority"] = json!("urgent")),
            422,
            Some("validation_failed"),
        ),
        (
            "unknown field inside subject",
            json_ct,
            with(&|b| b["subject"]["nickname"] = json!("Doc")),
            422,
            Some("validation_failed"),
        ),
        (
            "body over 5 MiB",
            json_ct,
            serde_json::to_vec(&oversized).expect("serialize"),
            413,
            Some("payload_too_large"),
        ),
        (
            "impossible answer_by",
            json_ct,
            with(&|b| b["answer_by"] = json!("2027-02-30")),
            422,
            Some("invalid_date"),
        ),
        (
            "answer_by in the past",
            json_ct,
            with(&|b| b["answer_by"] = json!("2020-01-01")),
            422,
            Some("deadline_in_past"),
        ),
        (
            "unknown question",
            json_ct,
            with(&|b| b["questions"] = json!(["PQ-Q01", "PQ-Q99"])),
            422,
            Some("unknown_question"),
        ),
        (
            "question of another area",
            json_ct,
            with(&|b| b["questions"] = json!(["PQ-Q01", "SD-Q01"])),
            422,
            Some("unknown_question"),
        ),
        (
            "unknown responder authority",
            json_ct,
            with(&|b| b["responder"] = json!("HU-NOSUCH")),
            422,
            Some("unknown_authority"),
        ),
        (
            "text/plain body",
            Some("text/plain"),
            serde_json::to_vec(&valid).expect("serialize"),
            415,
            Some("unsupported_media_type"),
        ),
    ];
    for (what, ct, body, status, code) in creates {
        let a = raw(&fed, &requester, "POST", "/api/v1/requests", ct, Some(body));
        assert_problem(&fed, &format!("create: {what}"), &a, status, code);
    }
    for (q, code) in [
        ("limit=0", Some("bad_limit")),
        ("limit=201", Some("bad_limit")),
        ("limit=abc", None),
        ("limit=-1", None),
    ] {
        let a = call(
            &fed,
            &requester,
            "GET",
            &format!("/api/v1/requests?{q}"),
            None,
        );
        assert_problem(&fed, &format!("list ?{q}"), &a, 400, code);
    }

    // --- Transitions with bad bodies, and invalid lifecycle steps --------------------------
    let path = |action: &str| format!("/api/v1/requests/{v1}/{action}");
    // (who, what, action, body, status, code)
    #[allow(clippy::type_complexity)]
    let steps: Vec<(&NodeClient, &str, &str, Value, u16, &str)> = vec![
        (
            &responder,
            "text answer to a yes/no question",
            "answer",
            json!({"answers": [{"question": "PQ-Q01", "type": "text", "value": "yes"}]}),
            422,
            "invalid_answer",
        ),
        (
            &responder,
            "bool answer with a string value",
            "answer",
            json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": "yes"}]}),
            422,
            "invalid_answer",
        ),
        (
            &responder,
            "number answer to a yes/no question",
            "answer",
            json!({"answers": [{"question": "PQ-Q02", "type": "number", "value": 3}]}),
            422,
            "invalid_answer",
        ),
        (
            &responder,
            "impossible proposed deadline",
            "propose-deadline",
            json!({"answer_by": "2027-02-30"}),
            422,
            "invalid_date",
        ),
        (
            &requester,
            "close with rating 7",
            "close",
            json!({"timeliness": 7, "efforts": 3}),
            422,
            "invalid_rating",
        ),
        (
            &responder,
            "unknown field in accept",
            "accept",
            json!({"comment": "ok"}),
            422,
            "validation_failed",
        ),
        (
            &requester,
            "unknown field in withdraw",
            "withdraw",
            json!({"reason": "x", "urgent": true}),
            422,
            "validation_failed",
        ),
        (
            &requester,
            "close before an answer",
            "close",
            json!({"timeliness": 4, "efforts": 4}),
            409,
            "invalid_transition",
        ),
        (
            &requester,
            "the requester accepting",
            "accept",
            json!({}),
            403,
            "wrong_party",
        ),
    ];
    for (c, what, action, body, status, code) in &steps {
        let a = call(&fed, c, "POST", &path(action), Some(body));
        assert_problem(
            &fed,
            &format!("{} {action}: {what}", c.id),
            &a,
            *status,
            Some(code),
        );
    }

    // --- Nothing was stored or sent --------------------------------------------------------
    assert_eq!(
        list_ids(&fed, &requester),
        BTreeSet::from([v1.clone()]),
        "the requester's list holds only the valid case"
    );
    assert_eq!(
        fingerprint(&fed, &requester, &v1),
        before_de,
        "the valid case on DE is unchanged"
    );
    assert_eq!(
        fingerprint(&fed, &responder, &v1),
        before_hu,
        "the valid case on HU is unchanged"
    );
    // One more valid request; it travels behind anything DE might have sent meanwhile.
    let v2 = create(
        &fed,
        &requester,
        &create_body("HU-ENKK", "Dr. Second Person", None),
    );
    wait_case(&fed, &responder, &v2);
    let expected = BTreeSet::from([v1.clone(), v2.clone()]);
    assert_eq!(
        list_ids(&fed, &hu_coord),
        expected,
        "HU holds exactly 2 cases"
    );
    assert_eq!(
        list_ids(&fed, &de_coord),
        expected,
        "DE holds exactly 2 cases"
    );
    assert_eq!(list_ids(&fed, &requester), expected, "requester's list");
    eprintln!(
        "bad_input_is_refused_and_stores_nothing took {:?}",
        started.elapsed()
    );
    drop((de, hu));
}

/// What the OpenAPI document says the server enforces, on real nodes:
///
/// * the bearer token is checked first: a stranger gets 401 whatever the query, and a
///   user's role (403) comes before their query;
/// * every route but the probes, the metrics and the document refuses a query parameter it
///   does not document with 400 (the list of routes is read from the document), and empty
///   values are values like any other;
/// * the operator's evidence bundle of a case the node does not hold is the 404 the
///   document promises, not an empty bundle;
/// * a rating written as a JSON number with a zero fraction (`2.0`) is that integer, and
///   `2.5` is refused.
#[test]
fn the_server_enforces_what_the_document_says() {
    let _g = lock(&HEAVY);
    let started = Instant::now();
    let fed = Federation::init(&["DE", "HU"]);
    let de = fed.start("DE");
    let hu = fed.start("HU");
    let requester = fed.user(
        "DE",
        &fed.add_user("DE", "requester", "DE-BY-BLZK", "authority_user", &[]),
    );
    let auditor = fed.user(
        "DE",
        &fed.add_user("DE", "auditor", "DE-NC", "auditor", &[]),
    );
    let responder = fed.user(
        "HU",
        &fed.add_user("HU", "responder", "HU-ENKK", "authority_user", &[]),
    );
    let coordinator = fed.user(
        "DE",
        &fed.add_user("DE", "coordinator", "DE-NC", "coordinator", &[]),
    );
    let operator = fed.client("DE");
    let anon = operator.without_token();

    // A case answered by HU, for the bundles and the ratings.
    let id = create(
        &fed,
        &requester,
        &create_body("HU-ENKK", "Dr. Rated Person", None),
    );
    wait_case(&fed, &responder, &id);
    responder.post_status(&format!("/api/v1/requests/{id}/accept"), &json!({}), 200);
    responder.post_status(
        &format!("/api/v1/requests/{id}/answer"),
        &action_body("answer"),
        200,
    );
    wait_state(&fed, &requester, &id, "answered");
    let sha = random_hex(32);

    // --- Authentication before the query: 401, never a 400 --------------------------------
    let bad_queries: Vec<(&str, String)> = vec![
        ("GET", "/api/v1/requests?bogus=1".into()),
        ("GET", "/api/v1/requests?limit=abc".into()),
        ("GET", "/api/v1/me?lang=de&lang=fr".into()),
        ("GET", "/api/v1/authorities?country=".into()),
        ("GET", format!("/api/v1/requests/{id}?bogus=1")),
        (
            "GET",
            format!("/api/v1/requests/{id}/attachments/{sha}?x=1"),
        ),
        ("POST", format!("/api/v1/requests/{id}/accept?wait=later")),
        ("POST", "/api/v1/requests?bogus=1".into()),
        ("GET", "/api/v1/audit/access-log?cursor=".into()),
        (
            "GET",
            "/api/v1/audit/bundle?from=2026-01-01T00:00:00Z".into(),
        ),
        ("GET", "/api/v1/audit/alarms?x=1".into()),
        ("GET", "/operator/audit/bundle?bogus=1".into()),
        ("GET", "/operator/status?x=1".into()),
        ("POST", "/operator/retention/run?x=1".into()),
        ("POST", "/operator/users?x=1".into()),
    ];
    for stranger in [anon.clone(), anon.with_token("imi_garbage")] {
        for (m, p) in &bad_queries {
            let a = call(&fed, &stranger, m, p, None);
            assert_problem(
                &fed,
                &format!("stranger: {m} {p}"),
                &a,
                401,
                Some("unauthorized"),
            );
        }
    }
    // The role before the query: an auditor on a request route, a user on an audit route.
    for (c, p) in [
        (&auditor, "/api/v1/requests?bogus=1".to_string()),
        (&auditor, format!("/api/v1/requests/{id}?bogus=1")),
        (&requester, "/api/v1/audit/access-log?bogus=1".to_string()),
        (&requester, "/api/v1/audit/bundle?bogus=1".to_string()),
    ] {
        let a = call(&fed, c, "GET", &p, None);
        assert_problem(&fed, &format!("GET {p}"), &a, 403, Some("forbidden"));
    }

    // --- Every route refuses an undocumented query parameter ------------------------------
    let doc = imi_e2e::openapi::document().json();
    let mut refused = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let lenient = template.starts_with("/health/")
            || template == "/metrics"
            || template == "/api/v1/openapi.json";
        if lenient {
            continue;
        }
        let path = template
            .replace("{id}", &id)
            .replace("{sha256}", &sha)
            .replace("{area}", "PQ")
            .replace("{code}", "CIT-P01")
            .replace("{authority}", "HU-ENKK")
            .replace("{user}", "requester");
        for (method, op) in item.as_object().expect("path item") {
            let open = op["security"].as_array().is_some_and(|s| s.is_empty());
            let c = if open {
                &anon
            } else if template.starts_with("/operator/") {
                &operator
            } else if template.starts_with("/api/v1/audit/") {
                &auditor
            } else if template.starts_with("/api/v1/directory/authorities") && method != "get" {
                &coordinator
            } else {
                &requester
            };
            let m = method.to_uppercase();
            let p = format!("{path}?unknown_parameter=1");
            let a = call(&fed, c, &m, &p, None);
            assert_problem(&fed, &format!("{m} {p}"), &a, 400, None);
            refused += 1;
        }
    }
    assert!(refused >= 30, "only {refused} routes tried");
    // Empty values are values: they must match the parameter's schema.
    for (c, p, code) in [
        (&requester, "/api/v1/authorities?country=", None),
        (&requester, "/api/v1/requests?country=", None),
        (&requester, "/api/v1/requests?cursor=", Some("bad_cursor")),
        (&requester, "/api/v1/requests?limit=", None),
        (&anon, "/api/v1/scoreboard?period=", Some("bad_period")),
        (
            &anon,
            "/api/v1/scoreboard/facts?period=",
            Some("bad_period"),
        ),
        (
            &anon,
            "/api/v1/scoreboard?from=2021-01-01",
            Some("bad_period"),
        ),
        (&anon, "/scoreboard?format=csv", None),
        (&auditor, "/api/v1/audit/access-log?cursor=", None),
        (
            &auditor,
            "/api/v1/audit/bundle?from=2026-01-01T00:00:00Z",
            Some("bad_selection"),
        ),
        (
            &operator,
            "/operator/audit/bundle?to=2026-01-01T00:00:00Z",
            Some("bad_selection"),
        ),
    ] {
        let a = call(&fed, c, "GET", p, None);
        assert_problem(&fed, &format!("GET {p}"), &a, 400, code);
    }

    // --- The operator's bundle of a case the node does not hold is a 404 ------------------
    for p in [
        format!("/operator/audit/bundle?case={}", random_case_id()),
        "/operator/audit/bundle?case=not-a-case".to_string(),
    ] {
        let a = call(&fed, &operator, "GET", &p, None);
        assert_problem(
            &fed,
            &format!("operator GET {p}"),
            &a,
            404,
            Some("not_found"),
        );
        let a = call(
            &fed,
            &auditor,
            "GET",
            &p.replace("/operator/", "/api/v1/"),
            None,
        );
        assert_problem(
            &fed,
            &format!("auditor GET {p}"),
            &a,
            404,
            Some("not_found"),
        );
    }
    let held = operator.get_json(&format!("/operator/audit/bundle?case={id}"));
    assert_eq!(
        held["case"],
        id.as_str(),
        "the bundle of a case the node holds"
    );
    let range = operator
        .get_json("/operator/audit/bundle?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z");
    assert_eq!(
        range["case"],
        Value::Null,
        "a time-range bundle has no case"
    );

    // --- Ratings: 2.0 is the integer 2, 2.5 is refused --------------------------------------
    let close = format!("/api/v1/requests/{id}/close");
    for body in [
        json!({"timeliness": 2.5}),
        json!({"timeliness": 4, "efforts": 0.5}),
        json!({"timeliness": 6.0}),
    ] {
        let a = call(&fed, &requester, "POST", &close, Some(&body));
        assert_problem(
            &fed,
            &format!("close with {body}"),
            &a,
            422,
            Some("invalid_rating"),
        );
    }
    let raw_body = br#"{"timeliness": 2.0, "efforts": 5.0}"#.to_vec();
    let a = raw(
        &fed,
        &requester,
        "POST",
        &close,
        Some("application/json"),
        Some(raw_body),
    );
    assert_eq!(a.status, 200, "close with integral floats: {a:?}");
    assert_eq!(a.body["state"], "closed", "{a:?}");
    let hu_view = wait_state(&fed, &responder, &id, "closed");
    assert_eq!(
        hu_view["ratings"],
        json!({"timeliness": 2, "efforts": 5}),
        "HU holds the ratings as integers"
    );
    assert_eq!(
        requester.get_json(&format!("/api/v1/requests/{id}"))["ratings"],
        json!({"timeliness": 2, "efforts": 5})
    );
    eprintln!(
        "the_server_enforces_what_the_document_says took {:?}",
        started.elapsed()
    );
    drop((de, hu));
}

//! In-process tests of the authorities' API: the real router over the real applications and
//! kernel, on the memory store, driven request by request without a listener or another
//! process (the end-to-end suite in `tests/` covers the same API between real nodes).
//!
//! * [`authorization`]: 401 for a missing, unknown or revoked token; 403 for roles that do
//!   not work on cases; one byte-identical 404 for a case that does not exist and a case
//!   of another authority; coordinators see their country's cases.
//! * [`operator`]: one authorization layer in front of every operator route.
//! * [`idempotency`]: a retried POST gets the first response and creates nothing; the same
//!   key with another body is refused.
//! * [`pagination`]: cursor pages return every visible case exactly once.
//! * [`steps`]: a step sealed against the case as the handler read it is sealed again when
//!   another step committed meanwhile.
//! * [`facts_export`]: the scoreboard's facts stream a page at a time, each case once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use imi_api::ApiState;
use imi_api::users::NewUser;
use imi_engine::{Engine, EngineConfig, EngineTasks, Identity, Start};
use imi_protocol::{
    HpkeKeyEntry, HpkeKeyPair, Member, NodeId, NodeSigner, SigningKeyEntry, SystemClock, TrustList,
};
use imi_store::MemStore;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const DAY_MS: u64 = 24 * 3600 * 1000;
const OPERATOR_TOKEN: &str = "operator-secret";

/// One DE node (HU is on the trust list, not running: steps are committed and queued).
struct Node {
    router: Router,
    state: ApiState,
    /// The node's store, for tests that seed what no API writes.
    store: Arc<MemStore>,
    cancel: CancellationToken,
    tasks: Option<EngineTasks>,
    _engine: Engine,
}

impl Node {
    async fn start() -> Node {
        let now = imi_protocol::Clock::now_ms(&SystemClock);
        let de = NodeSigner::generate(NodeId::DE);
        let de_hpke = HpkeKeyPair::generate();
        let member = |node: NodeId, public: [u8; 32], hpke: [u8; 32], port: u16| Member {
            node,
            role: node.default_role(),
            signing_keys: vec![SigningKeyEntry {
                public,
                valid_from: now - DAY_MS,
                valid_until: now + DAY_MS,
            }],
            hpke_keys: vec![HpkeKeyEntry {
                public: hpke,
                valid_from: now - DAY_MS,
                valid_until: now + DAY_MS,
            }],
            addresses: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
        };
        let hu = NodeSigner::generate(NodeId::HU);
        let trust = TrustList {
            version: 1,
            issued: now,
            members: vec![
                member(NodeId::DE, de.public(), de_hpke.public(), 9),
                // Port 9 (discard): HU never answers; its steps wait in the outbox.
                member(NodeId::HU, hu.public(), HpkeKeyPair::generate().public(), 9),
            ],
        };
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
        let catalogue =
            Arc::new(imi_apps::catalogue_files::load_dir(format!("{root}/catalogue")).unwrap());
        #[derive(serde::Deserialize)]
        struct DirectoryFile {
            authorities: Vec<imi_domain::Authority>,
        }
        let text = std::fs::read_to_string(format!("{root}/directory/authorities.toml")).unwrap();
        let file: DirectoryFile = toml::from_str(&text).unwrap();
        let mut directory = imi_domain::Directory::new();
        for a in file.authorities {
            directory.insert(a).unwrap();
        }
        let store = Arc::new(MemStore::new(&imi_apps::columns()));
        let vocabulary = Arc::new(
            imi_domain::Vocabulary::load(
                std::path::Path::new(&format!("{root}/vocabularies")),
                catalogue.languages(),
                &imi_apps::catalogue_files::Disk,
            )
            .unwrap(),
        );
        let replica = Arc::new(
            imi_apps::directory::DirectoryApp::open(NodeId::DE, vocabulary, store.as_ref())
                .unwrap(),
        );
        let cases = imi_apps::requests::Cases::new(
            NodeId::DE,
            imi_apps::requests::DataKey::new([7; 32]),
            catalogue,
            replica.shared(),
        );
        let diagnostics = imi_apps::diagnostics::DiagnosticApp::load(store.as_ref()).unwrap();
        let apps = imi_apps::member_node(&de, [0; 32], diagnostics, cases, replica, None, false);
        let cancel = CancellationToken::new();
        let (client, events, _net) = imi_network::spawn(
            imi_engine::libp2p_keypair(&de).unwrap(),
            imi_network::NetworkConfig {
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                ..imi_network::NetworkConfig::default()
            },
            imi_engine::allowed_peers(
                &trust,
                NodeId::DE,
                imi_protocol::Clock::now_ms(&imi_protocol::SystemClock),
                &Default::default(),
            ),
            cancel.clone(),
        )
        .unwrap();
        let config = EngineConfig {
            job_interval_ms: [
                "redial",
                "checkpoint",
                "witness-answers",
                "retention",
                "fact-report",
                "prune",
                "directory-publish",
                "directory-sync",
            ]
            .into_iter()
            .map(|j| (j.to_owned(), 0))
            .collect(),
            ..EngineConfig::default()
        };
        let (engine, tasks) = Engine::start(
            Start {
                identity: Identity {
                    signer: de.clone(),
                    hpke: vec![de_hpke],
                },
                trust,
                store: store.clone(),
                network: client,
                events,
                apps: apps.apps.clone(),
                clock: Arc::new(SystemClock),
                config,
            },
            cancel.clone(),
        )
        .unwrap();
        for job in engine.job_names() {
            assert!(
                imi_apps::JOBS.contains(&job),
                "job {job} is missing from imi_apps::JOBS (what job_interval_ms may name)"
            );
        }
        // The seed as a node starts from it: DE's own authorities as its first change (sent to
        // HU, which never answers), the others preloaded.
        let rt_dir = apps.directory.clone();
        let (own, foreign) = rt_dir.bootstrap(&engine, &directory).await.unwrap();
        assert!(own > 0 && foreign > 0);
        let services = imi_apps::Services::new(engine.clone(), &apps, [0; 32]);
        let state = ApiState::new(services, Arc::new(SystemClock))
            .with_operator_token(imi_protocol::sha256(OPERATOR_TOKEN.as_bytes()));
        Node {
            router: imi_api::router(state.clone()),
            state,
            store,
            cancel,
            tasks: Some(tasks),
            _engine: engine,
        }
    }

    async fn user(&self, id: &str, authority: &str, role: &str, areas: &[&str]) -> String {
        let (_, token) = imi_api::users::add(
            &self.state,
            NewUser {
                id: id.into(),
                authority: authority.into(),
                role: role.into(),
                areas: areas.iter().map(|a| (*a).to_owned()).collect(),
            },
        )
        .await
        .unwrap();
        token
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, text)
    }

    /// A new case from `token`'s authority to `HU-ENKK` about `name`: the `201` body.
    async fn create(&self, token: &str, name: &str) -> Value {
        let body = Some(create_body("HU-ENKK", name));
        let (st, created, _) = self
            .call("POST", "/api/v1/requests", Some(token), &[], body)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{created}");
        created
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        drop(self._engine);
        self.tasks.take().unwrap().join().await;
    }
}

fn create_body(responder: &str, name: &str) -> Value {
    json!({
        "responder": responder,
        "area": "PQ",
        "procedure": "PQ-P01",
        "questions": ["PQ-Q01"],
        "subject": {"name": name},
        "answer_by": "2099-06-30",
    })
}

mod authorization {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokens_roles_and_objects() {
        let n = Node::start().await;
        let anna = n.user("anna", "DE-BY-BLZK", "authority_user", &[]).await;
        let other = n.user("otto", "DE-NW-ZAEK", "authority_user", &[]).await;
        let coord = n.user("coord", "DE-NC", "coordinator", &[]).await;
        let auditor = n.user("audit", "DE-NC", "auditor", &[]).await;

        // No token, a token that was never issued: 401.
        let (st, _, _) = n.call("GET", "/api/v1/requests", None, &[], None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        let (st, body, _) = n
            .call("GET", "/api/v1/requests", Some("imi_forged"), &[], None)
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert_eq!(body["status"], 401);

        let created = n.create(&anna, "Dr. Kovács Éva").await;
        let id = created["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/requests/{id}");

        // The requester and the national coordinator see it.
        let (st, case, _) = n.call("GET", &path, Some(&anna), &[], None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(case["subject"]["name"], "Dr. Kovács Éva");
        // What the requester may do on a sent request; the national coordinator of the
        // requesting country may do nothing (only the responder's coordinator handles a
        // referral).
        assert_eq!(case["actions"], json!(["withdraw", "refer"]), "{case}");
        let (st, seen, _) = n.call("GET", &path, Some(&coord), &[], None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(seen["actions"], json!([]), "{seen}");
        // The direction filter: outgoing for the requester, nothing incoming; a bad role.
        let count = |list: &Value| list["items"].as_array().unwrap().len();
        let (_, out, _) = n
            .call(
                "GET",
                "/api/v1/requests?role=requester",
                Some(&anna),
                &[],
                None,
            )
            .await;
        assert_eq!(count(&out), 1, "{out}");
        let (_, inc, _) = n
            .call(
                "GET",
                "/api/v1/requests?role=responder",
                Some(&anna),
                &[],
                None,
            )
            .await;
        assert_eq!(count(&inc), 0, "{inc}");
        let (_, mine, _) = n
            .call(
                "GET",
                "/api/v1/requests?role=coordinator",
                Some(&coord),
                &[],
                None,
            )
            .await;
        assert_eq!(
            count(&mine),
            1,
            "the coordinator sees it as coordinator: {mine}"
        );
        let (st, bad, _) = n
            .call("GET", "/api/v1/requests?role=boss", Some(&anna), &[], None)
            .await;
        assert_eq!(
            (st, bad["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_role"))
        );

        // Another authority: the same 404 as for a case that does not exist.
        let (st, _, hidden) = n.call("GET", &path, Some(&other), &[], None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let missing = format!("/api/v1/requests/{}", imi_protocol::CaseId::random());
        let (_, _, absent) = n.call("GET", &missing, Some(&other), &[], None).await;
        assert_eq!(hidden, absent, "a hidden case must look like no case");
        let (_, list, _) = n
            .call("GET", "/api/v1/requests", Some(&other), &[], None)
            .await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0);

        // Auditors do not work on cases.
        let (st, _, _) = n.call("GET", &path, Some(&auditor), &[], None).await;
        assert_eq!(st, StatusCode::FORBIDDEN);

        // Revoked: out at the next request.
        imi_api::users::revoke(&n.state, "anna").await.unwrap();
        let (st, _, _) = n.call("GET", &path, Some(&anna), &[], None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        n.stop().await;
    }
}

mod operator {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_layer_guards_every_operator_route() {
        let n = Node::start().await;
        let anna = n.user("anna", "DE-BY-BLZK", "authority_user", &[]).await;
        let routes: Vec<(String, String)> = imi_api::routes()
            .into_iter()
            .filter(|(_, p)| p.starts_with("/operator/"))
            .map(|(m, p)| {
                (
                    m.to_uppercase(),
                    p.replace("{user}", "anna").replace("{id}", "0"),
                )
            })
            .collect();
        assert_eq!(routes.len(), 16, "{routes:?}");
        // No token, a user's token, a wrong token: 401 before the query or body is read.
        for token in [None, Some(anna.as_str()), Some("wrong")] {
            for (method, path) in &routes {
                let path = format!("{path}?unknown=1");
                let body = (method == "POST").then(|| json!({"garbage": true}));
                let (st, problem, _) = n.call(method, &path, token, &[], body).await;
                assert_eq!(
                    st,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {token:?}"
                );
                assert_eq!(problem["code"], "unauthorized");
            }
        }
        // The operator's token opens them; the query is checked next.
        let (st, status, _) = n
            .call("GET", "/operator/status", Some(OPERATOR_TOKEN), &[], None)
            .await;
        assert_eq!(st, StatusCode::OK, "{status}");
        assert_eq!(status["node"], "DE");
        let (st, _, _) = n
            .call(
                "GET",
                "/operator/status?unknown=1",
                Some(OPERATOR_TOKEN),
                &[],
                None,
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let (st, users, _) = n
            .call("GET", "/operator/users", Some(OPERATOR_TOKEN), &[], None)
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(users["items"][0]["id"], "anna");
        // Backups are the binary's (it owns the database): without a backup service, 404.
        let (st, problem, _) = n
            .call("POST", "/operator/backups", Some(OPERATOR_TOKEN), &[], None)
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{problem}");
        n.stop().await;
    }
}

mod idempotency {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_gets_the_first_response_and_creates_nothing() {
        let n = Node::start().await;
        let anna = n.user("anna", "DE-BY-BLZK", "authority_user", &[]).await;
        let key = [("idempotency-key", "create-1")];
        let body = create_body("HU-ENKK", "Kiss Anna");
        let (st, first, first_text) = n
            .call(
                "POST",
                "/api/v1/requests",
                Some(&anna),
                &key,
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{first}");
        let (st, _, again_text) = n
            .call("POST", "/api/v1/requests", Some(&anna), &key, Some(body))
            .await;
        assert_eq!(st, StatusCode::CREATED);
        assert_eq!(again_text, first_text, "the replay is the first response");
        // The same key with another body.
        let (st, refused, _) = n
            .call(
                "POST",
                "/api/v1/requests",
                Some(&anna),
                &key,
                Some(create_body("HU-ENKK", "Someone Else")),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused["code"], "idempotency_key_reused");
        let (_, list, _) = n
            .call("GET", "/api/v1/requests", Some(&anna), &[], None)
            .await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "one case for three POSTs: {list}");
        assert_eq!(items[0]["id"], first["id"]);
        n.stop().await;
    }

    /// An alert posted again with the same key is the first alert, not a second one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retried_alert_is_the_first_alert() {
        let n = Node::start().await;
        let anna = n.user("anna", "DE-BY-BLZK", "authority_user", &[]).await;
        let key = [("idempotency-key", "alert-1")];
        let body = |name: &str| {
            serde_json::json!({
                "type": "PQ-P02",
                "profession": "PROF-DOCTOR",
                "fields": [
                    {"question": "PQ-Q12", "type": "choice", "value": "PQ-Q12-PROHIBITION"},
                    {"question": "PQ-Q13", "type": "date", "value": "2026-01-05"},
                ],
                "decided": "2026-01-05",
                "professional": {"name": name},
            })
        };
        let post = |b| n.call("POST", "/api/v1/alerts", Some(&anna), &key, Some(b));
        let (st, first, first_text) = post(body("Dr. Erika Mustermann")).await;
        assert_eq!(st, StatusCode::CREATED, "{first}");
        let (st, _, again_text) = post(body("Dr. Erika Mustermann")).await;
        assert_eq!(st, StatusCode::CREATED);
        assert_eq!(again_text, first_text, "the replay is the first response");
        let (st, refused, _) = post(body("Someone Else")).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused["code"], "idempotency_key_reused");
        let (_, list, _) = n
            .call("GET", "/api/v1/alerts", Some(&anna), &[], None)
            .await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "one alert for three POSTs: {list}");
        assert_eq!(items[0]["id"], first["id"]);
        n.stop().await;
    }
}

mod steps {
    use super::*;
    use imi_protocol::{CaseId, Envelope, MessageId};

    /// A step handler reads the case once (to check the user may see it) and seals the
    /// step against that read. If another step of the case committed in between, the read
    /// is stale: the commit thread refuses it and the step is sealed again against the case
    /// as it is, so the step's envelope names the step before it as its predecessor and
    /// the history keeps every step in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_sealed_against_an_outdated_read_is_sealed_again() {
        let n = Node::start().await;
        let anna = n.user("anna", "DE-BY-BLZK", "authority_user", &[]).await;
        let created = n.create(&anna, "Kiss Anna").await;
        let id: CaseId = created["id"].as_str().unwrap().parse().unwrap();
        let services = &n.state.services;
        let (outdated, _) = services.case(id).await.unwrap().unwrap();
        // Another step commits after that read.
        let (st, referred, _) = n
            .call(
                "POST",
                &format!("/api/v1/requests/{id}/refer"),
                Some(&anna),
                &[],
                Some(json!({"reason": "not sure who answers this"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{referred}");
        let refer_id: MessageId = referred["message_id"].as_str().unwrap().parse().unwrap();
        // The withdrawal, sealed first against the read from before the referral.
        let user = services.authenticate(anna.clone()).await.unwrap().unwrap();
        let (actor, msg) = imi_api::requests::step_message(
            &user,
            &outdated.area,
            "withdraw",
            br#"{"reason":"solved locally"}"#,
            services.now_ms(),
        )
        .unwrap();
        let respond: imi_apps::services::Respond = Box::new(|_, _| Vec::new());
        let done = services
            .submit(actor, id, msg, None, respond, false, Some(outdated.clone()))
            .await
            .unwrap();
        assert!(done.committed);
        let (now, _) = services.case(id).await.unwrap().unwrap();
        let withdrawn = now.last_message.unwrap();
        assert_ne!(Some(withdrawn), outdated.last_message);
        let bytes = services
            .engine()
            .reader()
            .get(imi_engine::keys::ENV_OUT, withdrawn.as_bytes())
            .unwrap()
            .expect("the withdrawal's envelope");
        let envelope = Envelope::parse(bytes, 1 << 20).unwrap();
        assert_eq!(
            envelope.header().prev,
            vec![refer_id],
            "the withdrawal follows the referral, not the step the outdated read saw"
        );
        let (st, page, _) = n
            .call(
                "GET",
                &format!("/api/v1/requests/{id}"),
                Some(&anna),
                &[],
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        let kinds: Vec<&str> = page["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["create", "refer", "withdraw"], "{page}");
        assert_eq!(page["state"], "withdrawn", "{page}");
        n.stop().await;
    }
}

mod pagination {
    use super::*;
    use std::collections::BTreeSet;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cursor_pages_return_every_visible_case_once() {
        let n = Node::start().await;
        let anna = n.user("anna", "DE-BY-BLZK", "authority_user", &[]).await;
        let otto = n.user("otto", "DE-NW-ZAEK", "authority_user", &[]).await;
        let mut mine = BTreeSet::new();
        for i in 0..7 {
            let c = n.create(&anna, &format!("Subject {i}")).await;
            mine.insert(c["id"].as_str().unwrap().to_owned());
        }
        // Someone else's cases are interleaved in id order and must not show.
        for i in 0..3 {
            n.create(&otto, &format!("Other {i}")).await;
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/requests?limit=2&cursor={c}"),
                None => "/api/v1/requests?limit=2".to_owned(),
            };
            let (st, page, _) = n.call("GET", &path, Some(&anna), &[], None).await;
            assert_eq!(st, StatusCode::OK, "{page}");
            pages += 1;
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            assert!(pages < 10, "pagination does not end");
        }
        assert_eq!(seen.len(), 7, "each case once: {seen:?}");
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), mine);
        let (st, _, _) = n
            .call(
                "GET",
                "/api/v1/requests?limit=1000000000",
                Some(&anna),
                &[],
                None,
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        n.stop().await;
    }
}

mod facts_export {
    use super::*;
    use imi_apps::facts::{FACTS, FactReport, REPORT_VERSION};
    use imi_scoreboard::Fact;
    use imi_scoreboard::crosscheck::Side;
    use imi_store::{Durability, Store, WriteBatch};

    /// 4,500 stored reports, more than two pages of the export: every case once, in case
    /// order, over several body frames (the body is read from the store as it is sent); a
    /// period keeps the cases sent within it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn facts_stream_a_page_at_a_time_each_case_once() {
        let n = Node::start().await;
        let mut batch = WriteBatch::new();
        for i in 0..4500 {
            let case = format!("case-{i:05}");
            let year = if i % 3 == 0 { 2021 } else { 2022 };
            let report = FactReport {
                v: REPORT_VERSION,
                side: Side::Requester,
                steps: 1,
                fact: Fact {
                    case: case.clone(),
                    area: "PQ".to_owned(),
                    requester: "DE".to_owned(),
                    responder: "HU".to_owned(),
                    sent_at: format!("{year}-03-01T10:00:00Z"),
                    accepted_at: None,
                    withdrawn_at: None,
                    answered_at: None,
                    deadline: None,
                    timeliness: None,
                    efforts: None,
                },
                signed: None,
            };
            let mut v = Vec::new();
            ciborium::into_writer(&report, &mut v).unwrap();
            batch.put(FACTS, case.into_bytes(), v);
        }
        n.store.write(batch, Durability::Sync).unwrap();

        let get = |path: &'static str| {
            let router = n.router.clone();
            async move {
                let req = Request::builder().uri(path).body(Body::empty()).unwrap();
                let resp = router.oneshot(req).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(resp.headers()["content-type"], "application/jsonl");
                assert!(resp.headers().get("content-length").is_none());
                let mut body = resp.into_body();
                let (mut frames, mut text) = (0, String::new());
                while let Some(frame) = body.frame().await {
                    let data = frame.unwrap().into_data().unwrap();
                    assert!(!data.is_empty(), "no empty chunk");
                    assert!(data.ends_with(b"\n"), "a chunk ends with a whole line");
                    frames += 1;
                    text.push_str(std::str::from_utf8(&data).unwrap());
                }
                (frames, text)
            }
        };
        let cases = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| {
                    let v: Value = serde_json::from_str(l).unwrap();
                    v["case"].as_str().unwrap().to_owned()
                })
                .collect()
        };
        let (frames, text) = get("/api/v1/scoreboard/facts").await;
        let all = cases(&text);
        let expected: Vec<String> = (0..4500).map(|i| format!("case-{i:05}")).collect();
        assert_eq!(all, expected, "every case once, in case order");
        assert_eq!(frames, 3, "pages of 2,048 stored rows");
        let (_, text) = get("/api/v1/scoreboard/facts?period=2021").await;
        let in_2021: Vec<String> = (0..4500)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("case-{i:05}"))
            .collect();
        assert_eq!(cases(&text), in_2021);
        let (_, text) = get("/api/v1/scoreboard/facts?period=2020").await;
        assert_eq!(text, "", "no case sent in 2020");
        n.stop().await;
    }
}

mod directory {
    use super::*;

    fn record(id: &str, name_de: &str) -> Value {
        json!({
            "id": id,
            "country": "DE",
            "names": {"de": name_de, "en": "Test chamber of dentists"},
            "level": "regional",
            "areas": ["PQ"],
            "procedures": ["PQ-P01"],
            "professions": ["PROF-DENTIST"],
            "competences": ["COMP-LICENSING"],
            "city": "Mainz",
            "region": "Rheinland-Pfalz",
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn search_change_and_retire_through_the_api() {
        let n = Node::start().await;
        let anna = n.user("anna", "DE-BY-BLZK", "authority_user", &[]).await;
        let coord = n.user("carl", "DE-NC", "coordinator", &[]).await;
        let get = |path: String, token: String| {
            let n = &n;
            async move { n.call("GET", &path, Some(&token), &[], None).await }
        };
        // Cross-language: German for a Hungarian authority competent for dentists.
        let (st, v, _) = get(
            "/api/v1/directory/search?q=Zahnarzt&lang=de&country=HU".into(),
            anna.clone(),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let ids: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&"HU-ENKK"), "{v}");
        // rendered in the caller's language
        let enkk = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == "HU-ENKK")
            .unwrap();
        assert!(
            enkk["professions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "Zahnarzt"),
            "{enkk}"
        );
        // Bad input: a clear 400 each, nothing changed.
        for (q, code) in [
            ("q=", "empty_query"),
            ("q=%20%2C", "empty_query"),
            (
                &format!("q={}", "a".repeat(10 * 1024)) as &str,
                "query_too_long",
            ),
            ("q=%01%02%03", "bad_query"),
            ("q=x&country=XX", "unknown_filter"),
            ("q=x&level=federal", "unknown_filter"),
            ("q=x&profession=PROF-NOSUCH", "unknown_filter"),
            ("q=x&area=NOPE", "unknown_filter"),
            ("q=x&limit=1000000000", "bad_page"),
            ("q=x&limit=0", "bad_page"),
            ("q=x&offset=99999", "bad_page"),
            ("q=x&bogus=1", "bad_request"),
            ("q=x&limit=1e99", "bad_request"),
        ] {
            let (st, p, _) = get(format!("/api/v1/directory/search?{q}"), anna.clone()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {p}");
            assert_eq!(p["code"], code, "{q}: {p}");
        }
        // Only coordinators of DE change DE's directory.
        let (st, _, _) = n
            .call(
                "POST",
                "/api/v1/directory/authorities",
                Some(&anna),
                &[],
                Some(record("DE-TEST-ZK", "Zahnärztekammer Test")),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let mut foreign = record("HU-TEST", "x");
        foreign["country"] = json!("HU");
        let (st, p, _) = n
            .call(
                "POST",
                "/api/v1/directory/authorities",
                Some(&coord),
                &[],
                Some(foreign),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{p}");
        let mut bad = record("DE-TEST-ZK", "x");
        bad["professions"] = json!(["PROF-NOSUCH"]);
        let (st, p, _) = n
            .call(
                "POST",
                "/api/v1/directory/authorities",
                Some(&coord),
                &[],
                Some(bad),
            )
            .await;
        assert_eq!(
            (st, p["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_code"))
        );
        // Created: searchable at once, with its sequence number.
        let (st, p, _) = n
            .call(
                "POST",
                "/api/v1/directory/authorities",
                Some(&coord),
                &[],
                Some(record("DE-TEST-ZK", "Zahnärztekammer Rheinhessen")),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{p}");
        let seq = p["seq"].as_u64().unwrap();
        assert!(seq > 1, "after the seed's own records: {p}");
        let (st, _, _) = n
            .call(
                "POST",
                "/api/v1/directory/authorities",
                Some(&coord),
                &[],
                Some(record("DE-TEST-ZK", "again")),
            )
            .await;
        assert_eq!(st, StatusCode::CONFLICT);
        let (_, v, _) = get(
            "/api/v1/directory/search?q=Rheinhessen".into(),
            anna.clone(),
        )
        .await;
        assert_eq!(v["items"][0]["id"], "DE-TEST-ZK", "{v}");
        let (st, one, _) = get(
            "/api/v1/directory/authorities/DE-TEST-ZK".into(),
            anna.clone(),
        )
        .await;
        assert_eq!((st, one["seq"].as_u64()), (StatusCode::OK, Some(seq)));
        // Updated: the new name is found, the old one not.
        let (st, p, _) = n
            .call(
                "PUT",
                "/api/v1/directory/authorities/DE-TEST-ZK",
                Some(&coord),
                &[],
                Some(record("DE-TEST-ZK", "Landeszahnärztekammer Pfalz")),
            )
            .await;
        assert_eq!(
            (st, p["seq"].as_u64()),
            (StatusCode::OK, Some(seq + 1)),
            "{p}"
        );
        let (_, v, _) = get(
            "/api/v1/directory/search?q=Rheinhessen".into(),
            anna.clone(),
        )
        .await;
        assert_eq!(v["total"], 0, "{v}");
        // The same record again changes nothing.
        let (_, p, _) = n
            .call(
                "PUT",
                "/api/v1/directory/authorities/DE-TEST-ZK",
                Some(&coord),
                &[],
                Some(record("DE-TEST-ZK", "Landeszahnärztekammer Pfalz")),
            )
            .await;
        assert_eq!(p["changed"], false, "{p}");
        // A search result is the authority's own view (rendered from a cache of the
        // directory's snapshot) plus its score, in the reader's language and where it has
        // no name in it (French: English, else any); the update shows.
        let mut items = Vec::new();
        for lang in ["fr", "de"] {
            let (_, v, _) = get(
                format!("/api/v1/directory/search?q=Pfalz&lang={lang}"),
                anna.clone(),
            )
            .await;
            let mut item = v["items"][0].clone();
            assert!(item["score"].as_f64().is_some_and(|s| s > 0.0), "{v}");
            item.as_object_mut().unwrap().remove("score");
            let (_, mut one, _) = get(
                format!("/api/v1/directory/authorities/DE-TEST-ZK?lang={lang}"),
                anna.clone(),
            )
            .await;
            let o = one.as_object_mut().unwrap();
            o.remove("seq");
            o.remove("updated_at");
            assert_eq!(item, one, "{lang}");
            items.push(item);
        }
        assert_eq!(
            items[0]["professions"][0]["name"], "Dentiste",
            "{}",
            items[0]
        );
        assert_eq!(items[0]["name"], items[0]["names"]["en"], "{}", items[0]);
        let item = items.pop().unwrap();
        assert_eq!(item["names"]["de"], "Landeszahnärztekammer Pfalz");
        assert_eq!(item["name"], "Landeszahnärztekammer Pfalz");
        assert_eq!(item["professions"][0]["name"], "Zahnarzt", "{item}");
        assert_eq!(item["retired"], false);
        // Retired: out of searches, and requests from or to it are refused.
        let tester = n.user("tess", "DE-TEST-ZK", "authority_user", &[]).await;
        let (st, p, _) = n
            .call(
                "POST",
                "/api/v1/directory/authorities/DE-TEST-ZK/retire",
                Some(&coord),
                &[],
                None,
            )
            .await;
        assert_eq!(
            (st, p["retired"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{p}"
        );
        let (_, v, _) = get("/api/v1/directory/search?q=Pfalz".into(), anna.clone()).await;
        assert_eq!(v["total"], 0, "{v}");
        let (_, v, _) = get(
            "/api/v1/directory/search?q=Pfalz&include_retired=true".into(),
            anna.clone(),
        )
        .await;
        assert_eq!(v["items"][0]["retired"], true, "{v}");
        let (st, p, _) = n
            .call(
                "POST",
                "/api/v1/requests",
                Some(&tester),
                &[],
                Some(create_body("HU-ENKK", "Jane Roe")),
            )
            .await;
        assert_eq!(
            (st, p["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("retired_authority")),
            "{p}"
        );
        // The operator's view: own sequence number and a digest.
        let (st, status, _) = n
            .call(
                "GET",
                "/operator/directory",
                Some(OPERATOR_TOKEN),
                &[],
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(status["own_seq"].as_u64(), Some(seq + 2), "{status}");
        assert_eq!(status["digest"].as_str().map(str::len), Some(64));
        n.stop().await;
    }
}

//! Request steps from another node. A raw endpoint with DE's identity sends hand-made
//! request envelopes to HU's engine (running the request application); HU must apply the
//! valid ones, answer every invalid one with a signed `rejected` receipt carrying the state
//! machine's (or the catalogue's) code, and change nothing for them.
use crate::rig::{Federation, Node, RawClient, now_ms, within};
use imi_apps::diagnostics::DiagnosticApp;
use imi_apps::requests::{CASE_FILES, CASE_INDEX, CASE_KEYS, CASES};
use imi_apps::requests::{CaseMessage, Cases, DataKey, KIND_REQUEST, MESSAGE_VERSION, SubjectData};
use imi_domain::request::{Transition, TransitionBody};
use imi_domain::{Authority, Directory, Level};
use imi_engine::{Applications, keys};
use imi_protocol::NodeId::{AT, DE, HU};
use imi_protocol::{
    AuthorityId, CaseId, Draft, Kind, NodeId, Outcome, RejectCode, SealRandomness, Timestamp,
};
use std::collections::BTreeMap;
use std::sync::Arc;

fn authority(id: &str, country: NodeId) -> Authority {
    Authority {
        id: AuthorityId::new(id).unwrap(),
        country,
        names: BTreeMap::from([("en".to_owned(), format!("Authority {id}"))]),
        level: Level::National,
        areas: vec!["PQ".into()],
        procedures: vec!["PQ-P01".into()],
        professions: vec![],
        competences: vec![],
        city: None,
        region: None,
    }
}

pub fn cases_for(node: NodeId) -> Arc<Cases> {
    Arc::new(cases_plain(node))
}

/// A node's request service without fact reporting.
pub fn cases_plain(node: NodeId) -> Cases {
    let catalogue = imi_apps::catalogue_files::load_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/catalogue"
    ))
    .expect("the repository's catalogue loads");
    let directory = Directory::from_authorities([
        authority("DE-BY-BLZK", DE),
        authority("HU-ENKK", HU),
        authority("HU-OH", HU),
        authority("AT-NC", AT),
    ])
    .unwrap();
    Cases::new(
        node,
        DataKey::new(rand::random()),
        Arc::new(catalogue),
        Arc::new(directory),
    )
}

/// HU's case state: nothing an invalid step may touch.
fn case_state(n: &Node) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    [CASES, CASE_INDEX, CASE_KEYS, CASE_FILES, keys::INBOX]
        .iter()
        .map(|c| n.rows(c))
        .collect()
}

pub fn subject() -> SubjectData {
    SubjectData {
        name: "Test Subject".into(),
        date_of_birth: Some("1980-01-31".into()),
        details: BTreeMap::new(),
    }
}

pub fn create(questions: &[&str], responder: &str) -> Transition {
    Transition::Create {
        requester: AuthorityId::new("DE-BY-BLZK").unwrap(),
        responder: AuthorityId::new(responder).unwrap(),
        area: "PQ".into(),
        procedure: "PQ-P01".into(),
        questions: questions.iter().map(|q| q.to_string()).collect(),
        free_text: String::new(),
        attachments: vec![],
        subject: subject().commitment(),
        answer_by: now_ms() + 30 * 86_400_000,
    }
}

pub fn message(t: Transition, subject: Option<SubjectData>) -> Vec<u8> {
    imi_apps::requests::encode_message(&CaseMessage {
        v: MESSAGE_VERSION,
        step: TransitionBody::new(t),
        coordinator: false,
        subject,
        files: vec![],
    })
}

struct Rig {
    fed: Federation,
    hu: Node,
    raw: RawClient,
}

impl Rig {
    /// Sends a request envelope from "DE" as `authority` about `case` and returns HU's
    /// verified outcome.
    async fn send(
        &self,
        authority: &str,
        case: Option<CaseId>,
        body: Vec<u8>,
        created: Timestamp,
    ) -> Outcome {
        // The header names the body's step, as an honest sender's does.
        let step = imi_domain::message::decode_message(&body)
            .map(|m| Kind::new(m.step.transition.kind().as_str()).unwrap());
        self.send_with_step(authority, case, body, created, step)
            .await
    }

    async fn send_with_step(
        &self,
        authority: &str,
        case: Option<CaseId>,
        body: Vec<u8>,
        created: Timestamp,
        step: Option<Kind>,
    ) -> Outcome {
        let draft = Draft {
            kind: Kind::new(KIND_REQUEST).unwrap(),
            step,
            authority: AuthorityId::new(authority).unwrap(),
            to: vec![HU],
            case,
            prev: vec![],
            body,
        };
        let rnd = SealRandomness::random(1);
        let bytes = imi_protocol::seal_and_sign(
            &draft,
            created,
            &self.fed.member(DE).signer,
            &self.fed.trust,
            &rnd,
        )
        .unwrap();
        self.send_bytes(bytes).await
    }

    async fn send_bytes(&self, bytes: Vec<u8>) -> Outcome {
        let peer = self.fed.member(HU).peer_id();
        let response = within("HU answers", self.raw.client.request(peer, bytes))
            .await
            .expect("HU answers with a receipt");
        self.fed.verify_receipt(response, HU).body.outcome
    }

    async fn rejected(
        &self,
        what: &str,
        authority: &str,
        case: Option<CaseId>,
        body: Vec<u8>,
        code: &str,
    ) {
        let before = case_state(&self.hu);
        let outcome = self.send(authority, case, body, now_ms()).await;
        assert_eq!(
            outcome,
            Outcome::Rejected(RejectCode::Application(code.into())),
            "{what}"
        );
        assert_eq!(case_state(&self.hu), before, "{what}: HU's state changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_steps_from_another_node_are_rejected_and_change_nothing() {
    let fed = Federation::new(&[DE, HU, AT]);
    let hu_cases = cases_for(HU);
    let hu = fed
        .start_with(
            HU,
            Applications::new(vec![
                Arc::new(DiagnosticApp::default()),
                hu_cases.application(),
            ]),
        )
        .await;
    let raw = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let r = Rig { fed, hu, raw };

    // Hostile or invalid creates.
    let id = CaseId::random();
    r.rejected(
        "unknown question",
        "DE-BY-BLZK",
        Some(id),
        message(create(&["PQ-Q99"], "HU-ENKK"), Some(subject())),
        "unknown_question",
    )
    .await;
    r.rejected(
        "question of another area",
        "DE-BY-BLZK",
        Some(id),
        message(create(&["SD-Q01"], "HU-ENKK"), Some(subject())),
        "unknown_question",
    )
    .await;
    r.rejected(
        "unknown responder",
        "DE-BY-BLZK",
        Some(id),
        message(create(&["PQ-Q01"], "HU-NOBODY"), Some(subject())),
        "unknown_authority",
    )
    .await;
    r.rejected(
        "not this node's case",
        "DE-BY-BLZK",
        Some(id),
        message(create(&["PQ-Q01"], "AT-NC"), Some(subject())),
        "not_party_node",
    )
    .await;
    let mut other = subject();
    other.name = "Someone Else".into();
    r.rejected(
        "subject does not match its commitment",
        "DE-BY-BLZK",
        Some(id),
        message(create(&["PQ-Q01"], "HU-ENKK"), Some(other)),
        "subject_mismatch",
    )
    .await;
    r.rejected(
        "create without subject",
        "DE-BY-BLZK",
        Some(id),
        message(create(&["PQ-Q01"], "HU-ENKK"), None),
        "missing_subject",
    )
    .await;
    r.rejected(
        "no case id",
        "DE-BY-BLZK",
        None,
        message(create(&["PQ-Q01"], "HU-ENKK"), Some(subject())),
        "missing_case",
    )
    .await;
    r.rejected(
        "malformed body",
        "DE-BY-BLZK",
        Some(id),
        b"\xa1\x61v\x02garbage".to_vec(),
        "malformed_body",
    )
    .await;
    // The signed header's step must be the body's: a create labelled a withdraw (what a
    // log leaf would record), or not labelled at all, is refused.
    for label in [Some("withdraw"), None] {
        let before = case_state(&r.hu);
        assert_eq!(
            r.send_with_step(
                "DE-BY-BLZK",
                Some(id),
                message(create(&["PQ-Q01"], "HU-ENKK"), Some(subject())),
                now_ms(),
                label.map(|l| Kind::new(l).unwrap()),
            )
            .await,
            Outcome::Rejected(RejectCode::Application("step_mismatch".into())),
            "header step {label:?}"
        );
        assert_eq!(case_state(&r.hu), before);
    }
    r.rejected(
        "DE signing as a Hungarian authority",
        "HU-ENKK",
        Some(id),
        message(create(&["PQ-Q01"], "HU-OH"), Some(subject())),
        "bad_actor",
    )
    .await;

    // The valid create is applied: HU holds the case, encrypted.
    let before = case_state(&r.hu);
    let created = now_ms();
    let valid = message(create(&["PQ-Q01"], "HU-ENKK"), Some(subject()));
    assert_eq!(
        r.send("DE-BY-BLZK", Some(id), valid, created).await,
        Outcome::Accepted
    );
    assert_ne!(case_state(&r.hu), before);
    let rec = hu_cases
        .read(r.hu.store(), &id)
        .unwrap()
        .expect("HU holds the case");
    assert_eq!(rec.subject, subject());
    assert_eq!(rec.case.state.name(), "sent");
    assert_eq!(
        rec.case.created, created,
        "the step's time is the envelope's signed time"
    );

    // Invalid steps on the existing case.
    r.rejected(
        "close before an answer",
        "DE-BY-BLZK",
        Some(id),
        message(
            Transition::Close {
                timeliness: None,
                efforts: None,
            },
            None,
        ),
        "invalid_transition",
    )
    .await;
    r.rejected(
        "requester accepting",
        "DE-BY-BLZK",
        Some(id),
        message(Transition::Accept, None),
        "wrong_party",
    )
    .await;
    r.rejected(
        "create again",
        "DE-BY-BLZK",
        Some(id),
        message(create(&["PQ-Q01"], "HU-ENKK"), Some(subject())),
        "invalid_transition",
    )
    .await;
    r.rejected(
        "subject on a later step",
        "DE-BY-BLZK",
        Some(id),
        message(Transition::Withdraw { reason: "x".into() }, Some(subject())),
        "unexpected_subject",
    )
    .await;
    r.rejected(
        "a third authority",
        "DE-NW-ZAEK",
        Some(id),
        message(Transition::Withdraw { reason: "x".into() }, None),
        "not_party",
    )
    .await;

    // A valid withdrawal is applied; afterwards nothing is.
    assert_eq!(
        r.send(
            "DE-BY-BLZK",
            Some(id),
            message(
                Transition::Withdraw {
                    reason: "no longer needed".into()
                },
                None
            ),
            now_ms()
        )
        .await,
        Outcome::Accepted
    );
    let rec = hu_cases.read(r.hu.store(), &id).unwrap().unwrap();
    assert_eq!(rec.case.state.name(), "withdrawn");
    assert_eq!(rec.case.history.len(), 2);
    r.rejected(
        "withdraw twice",
        "DE-BY-BLZK",
        Some(id),
        message(
            Transition::Withdraw {
                reason: "again".into(),
            },
            None,
        ),
        "invalid_transition",
    )
    .await;

    // Personal data is not in the clear in HU's store.
    for col in [CASES, CASE_INDEX, CASE_KEYS, keys::ENV_IN] {
        for (_, v) in r.hu.rows(col) {
            assert!(
                !v.windows(b"Test Subject".len())
                    .any(|w| w == b"Test Subject"),
                "subject name in the clear in column {col}"
            );
        }
    }
    r.raw.stop().await;
    r.hu.stop().await;
}

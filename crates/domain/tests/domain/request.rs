//! The request lifecycle state machine: every path, every refusal, serde, and a proptest.

use imi_domain::request::{CASE_VERSION, Digest, TRANSITION_VERSION, step, step_body};
use imi_domain::{
    Actor, AnswerPayload, AttachmentRef, CodedAnswer, Party, Rating, Ratings, RequestCase,
    RequestState, SubjectRef, Transition, TransitionBody, TransitionError, TransitionKind, actions,
    apply, create, is_overdue,
};
use imi_protocol::clock::Timestamp;
use imi_protocol::ids::{AuthorityId, CaseId, NodeId};
use proptest::prelude::*;

const T0: Timestamp = 1_700_000_000_000;
const DAY: Timestamp = 86_400_000;

fn aid(s: &str) -> AuthorityId {
    AuthorityId::new(s).unwrap()
}

fn actor(s: &str, coordinator: bool) -> Actor {
    let country = s.split('-').next().unwrap().parse().unwrap();
    Actor {
        authority: aid(s),
        country,
        coordinator,
    }
}

fn requester() -> Actor {
    actor("FR-PQ-PARIS", false)
}
fn responder() -> Actor {
    actor("DE-BY-ZAEK", false)
}
fn other_de() -> Actor {
    actor("DE-NW-AEK", false)
}
fn de_coordinator() -> Actor {
    actor("DE-NIMIC", true)
}
fn fr_coordinator() -> Actor {
    actor("FR-NIMIC", true)
}
fn stranger() -> Actor {
    actor("FR-OTHER", false)
}

fn case_id() -> CaseId {
    CaseId([7; 16])
}

fn attachment(name: &str) -> AttachmentRef {
    AttachmentRef {
        name: name.to_owned(),
        sha256: Digest([0xab; 32]),
        size: 1234,
    }
}

fn create_t(answer_by: Timestamp) -> Transition {
    Transition::Create {
        requester: requester().authority,
        responder: responder().authority,
        area: "PQ".into(),
        procedure: "PQ-REQ".into(),
        questions: vec!["PQ.Q1".into(), "PQ.Q2".into(), "PQ.Q3".into()],
        free_text: "Please confirm the diploma.".into(),
        attachments: vec![attachment("diploma.pdf")],
        subject: SubjectRef("subj:0001".into()),
        answer_by,
    }
}

fn sent() -> RequestCase {
    create(case_id(), &requester(), &create_t(T0 + 10 * DAY), T0).unwrap()
}

fn ok(case: &RequestCase, a: &Actor, t: Transition, at: Timestamp) -> RequestCase {
    match apply(case, a, &t, at) {
        Ok(c) => c,
        Err(e) => panic!(
            "{:?} by {} refused: {e} ({})",
            t.kind(),
            a.authority,
            e.code()
        ),
    }
}

/// Asserts that the transition is refused with `code` and that the case is unchanged.
fn refused(case: &RequestCase, a: &Actor, t: Transition, at: Timestamp, code: &str) {
    let before = case.clone();
    let err = apply(case, a, &t, at).expect_err("should be refused");
    assert_eq!(err.code(), code, "{err}");
    assert_eq!(case, &before, "a refused transition changed the case");
}

fn answer_t() -> Transition {
    Transition::Answer {
        answers: vec![
            CodedAnswer {
                question: "PQ.Q1".into(),
                answer: AnswerPayload::Bool(true),
            },
            CodedAnswer {
                question: "PQ.Q2".into(),
                answer: AnswerPayload::Date(T0 - 400 * DAY),
            },
        ],
        free_text: "Diploma confirmed.".into(),
        attachments: vec![attachment("certificate.pdf")],
    }
}

fn accepted() -> RequestCase {
    ok(&sent(), &responder(), Transition::Accept, T0 + DAY)
}

fn answered() -> RequestCase {
    ok(&accepted(), &responder(), answer_t(), T0 + 3 * DAY)
}

fn kinds(case: &RequestCase) -> Vec<TransitionKind> {
    case.history.iter().map(|h| h.kind).collect()
}

// -------------------------------------------------------------------------------------

#[test]
fn create_accept_answer_close_with_ratings() {
    let c = sent();
    assert_eq!(c.v, CASE_VERSION);
    assert_eq!(c.state, RequestState::Sent);
    assert_eq!(c.requester, requester().authority);
    assert_eq!(c.responder, responder().authority);
    assert_eq!(c.questions.len(), 3);
    assert_eq!(c.answer_by, T0 + 10 * DAY);
    assert_eq!(c.requested_answer_by, T0 + 10 * DAY);
    assert_eq!(c.created, T0);

    let c = ok(&c, &responder(), Transition::Accept, T0 + DAY);
    assert_eq!(c.state, RequestState::Accepted);
    assert_eq!(c.accepted_at, Some(T0 + DAY));

    let c = ok(&c, &responder(), answer_t(), T0 + 3 * DAY);
    assert_eq!(c.state, RequestState::Answered);
    assert_eq!(c.answered_at, Some(T0 + 3 * DAY));
    assert_eq!(c.answered_on_time(), Some(true));
    assert_eq!(c.answers.len(), 1);
    assert_eq!(c.answers[0].by, responder().authority);
    assert_eq!(c.answers[0].answers.len(), 2);

    let before_close = c.clone();
    let c = ok(
        &c,
        &requester(),
        Transition::Close {
            timeliness: Some(Rating::VerySatisfied),
            efforts: Some(Rating::Neutral),
        },
        T0 + 4 * DAY,
    );
    assert_eq!(c.state, RequestState::Closed);
    assert!(c.state.is_terminal());
    assert_eq!(c.ended_at, Some(T0 + 4 * DAY));
    assert_eq!(
        c.ratings,
        Ratings {
            timeliness: Some(Rating::VerySatisfied),
            efforts: Some(Rating::Neutral)
        }
    );
    // the old case is untouched
    assert_eq!(before_close.state, RequestState::Answered);
    assert_eq!(before_close.history.len(), 3);
    assert_eq!(
        kinds(&c),
        [
            TransitionKind::Create,
            TransitionKind::Accept,
            TransitionKind::Answer,
            TransitionKind::Close
        ]
    );
}

#[test]
fn close_without_ratings_is_fine() {
    let c = ok(
        &answered(),
        &requester(),
        Transition::Close {
            timeliness: None,
            efforts: None,
        },
        T0 + 4 * DAY,
    );
    assert_eq!(c.ratings, Ratings::default());
}

#[test]
fn rating_scale_has_five_points_in_order() {
    let scores: Vec<u8> = Rating::ALL.iter().map(Rating::score).collect();
    assert_eq!(scores, [1, 2, 3, 4, 5]);
    assert_eq!(
        serde_json::to_string(&Rating::VeryDissatisfied).unwrap(),
        "\"very_dissatisfied\""
    );
    assert_eq!(
        serde_json::to_string(&Rating::Neutral).unwrap(),
        "\"neutral\""
    );
    assert!(Rating::Satisfied > Rating::Dissatisfied);
}

#[test]
fn forward_within_the_country() {
    let c = ok(
        &sent(),
        &responder(),
        Transition::Forward {
            to: other_de().authority,
        },
        T0 + DAY,
    );
    assert_eq!(c.state, RequestState::Sent);
    assert_eq!(c.responder, other_de().authority);
    // the old responder is no longer a party, the new one must accept
    refused(&c, &responder(), Transition::Accept, T0 + DAY, "not_party");
    let c = ok(&c, &other_de(), Transition::Accept, T0 + 2 * DAY);
    assert_eq!(c.accepted_at, Some(T0 + 2 * DAY));

    // forwarding after acceptance is allowed too, and resets the acceptance
    let c = ok(
        &c,
        &other_de(),
        Transition::Forward {
            to: responder().authority,
        },
        T0 + 3 * DAY,
    );
    assert_eq!(c.responder, responder().authority);
    assert_eq!(c.accepted_at, None);
    assert_eq!(c.history.len(), 4);
}

#[test]
fn forward_refusals() {
    let c = sent();
    refused(
        &c,
        &responder(),
        Transition::Forward {
            to: aid("AT-W-MAG"),
        },
        T0 + DAY,
        "forward_abroad",
    );
    refused(
        &c,
        &responder(),
        Transition::Forward {
            to: responder().authority,
        },
        T0 + DAY,
        "same_authority",
    );
    refused(
        &c,
        &requester(),
        Transition::Forward {
            to: other_de().authority,
        },
        T0 + DAY,
        "wrong_party",
    );
    refused(
        &c,
        &responder(),
        Transition::Forward {
            to: aid("nocountry"),
        },
        T0 + DAY,
        "bad_authority",
    );
    // not after answering
    refused(
        &answered(),
        &responder(),
        Transition::Forward {
            to: other_de().authority,
        },
        T0 + 4 * DAY,
        "invalid_transition",
    );
}

#[test]
fn deadline_proposal_accepted() {
    let c = ok(
        &accepted(),
        &responder(),
        Transition::ProposeDeadline { new: T0 + 20 * DAY },
        T0 + 2 * DAY,
    );
    assert_eq!(
        c.state,
        RequestState::DeadlineProposed {
            proposed: T0 + 20 * DAY
        }
    );
    assert_eq!(c.answer_by, T0 + 10 * DAY, "not agreed yet");
    refused(
        &c,
        &responder(),
        Transition::AcceptDeadline,
        T0 + 2 * DAY,
        "wrong_party",
    );
    let c = ok(&c, &requester(), Transition::AcceptDeadline, T0 + 3 * DAY);
    assert_eq!(c.state, RequestState::Accepted);
    assert_eq!(c.answer_by, T0 + 20 * DAY);
    assert_eq!(c.requested_answer_by, T0 + 10 * DAY);
    // answering on day 15 is now on time
    let c = ok(&c, &responder(), answer_t(), T0 + 15 * DAY);
    assert_eq!(c.answered_on_time(), Some(true));
}

#[test]
fn deadline_proposal_refused() {
    let c = ok(
        &accepted(),
        &responder(),
        Transition::ProposeDeadline { new: T0 + 20 * DAY },
        T0 + 2 * DAY,
    );
    let c = ok(&c, &requester(), Transition::RefuseDeadline, T0 + 3 * DAY);
    assert_eq!(c.state, RequestState::Accepted);
    assert_eq!(c.answer_by, T0 + 10 * DAY);
    let c = ok(&c, &responder(), answer_t(), T0 + 15 * DAY);
    assert_eq!(c.answered_on_time(), Some(false));
}

#[test]
fn deadline_proposal_refusals() {
    let a = accepted();
    refused(
        &a,
        &responder(),
        Transition::ProposeDeadline { new: T0 + DAY },
        T0 + 2 * DAY,
        "deadline_in_past",
    );
    refused(
        &a,
        &responder(),
        Transition::ProposeDeadline { new: T0 + 10 * DAY },
        T0 + 2 * DAY,
        "deadline_unchanged",
    );
    refused(
        &a,
        &requester(),
        Transition::ProposeDeadline { new: T0 + 20 * DAY },
        T0 + 2 * DAY,
        "wrong_party",
    );
    // before acceptance, and without a pending proposal
    refused(
        &sent(),
        &responder(),
        Transition::ProposeDeadline { new: T0 + 20 * DAY },
        T0 + 2 * DAY,
        "invalid_transition",
    );
    refused(
        &a,
        &requester(),
        Transition::AcceptDeadline,
        T0 + 2 * DAY,
        "invalid_transition",
    );
    refused(
        &a,
        &requester(),
        Transition::RefuseDeadline,
        T0 + 2 * DAY,
        "invalid_transition",
    );
}

#[test]
fn answering_drops_a_pending_deadline_proposal() {
    let c = ok(
        &accepted(),
        &responder(),
        Transition::ProposeDeadline { new: T0 + 20 * DAY },
        T0 + 2 * DAY,
    );
    let c = ok(&c, &responder(), answer_t(), T0 + 3 * DAY);
    assert_eq!(c.state, RequestState::Answered);
    assert_eq!(c.answer_by, T0 + 10 * DAY);
    refused(
        &c,
        &requester(),
        Transition::AcceptDeadline,
        T0 + 4 * DAY,
        "invalid_transition",
    );
}

#[test]
fn responder_asks_requester_for_clarification() {
    let c = ok(
        &accepted(),
        &responder(),
        Transition::RequestInfo {
            text: "Which diploma year?".into(),
        },
        T0 + 2 * DAY,
    );
    assert_eq!(
        c.state,
        RequestState::InfoRequested {
            by: Party::Responder
        }
    );
    // the responder cannot answer its own question, nor answer the request meanwhile
    refused(
        &c,
        &responder(),
        Transition::ProvideInfo {
            text: "x".into(),
            attachments: vec![],
        },
        T0 + 2 * DAY,
        "wrong_party",
    );
    refused(
        &c,
        &responder(),
        answer_t(),
        T0 + 2 * DAY,
        "invalid_transition",
    );
    let c = ok(
        &c,
        &requester(),
        Transition::ProvideInfo {
            text: "2019.".into(),
            attachments: vec![attachment("transcript.pdf")],
        },
        T0 + 3 * DAY,
    );
    assert_eq!(c.state, RequestState::Accepted);
    assert_eq!(c.notes.len(), 2);
    assert_eq!(c.notes[1].by, requester().authority);
    assert_eq!(c.notes[1].kind, TransitionKind::ProvideInfo);
    assert_eq!(c.notes[1].attachments.len(), 1);
    let c = ok(&c, &responder(), answer_t(), T0 + 4 * DAY);
    assert_eq!(c.state, RequestState::Answered);
}

#[test]
fn requester_asks_for_further_information_after_the_answer() {
    let c = answered();
    refused(
        &accepted(),
        &requester(),
        Transition::RequestInfo {
            text: "More?".into(),
        },
        T0 + 2 * DAY,
        "invalid_transition",
    );
    refused(
        &c,
        &requester(),
        Transition::RequestInfo { text: "  ".into() },
        T0 + 4 * DAY,
        "missing",
    );
    let c = ok(
        &c,
        &requester(),
        Transition::RequestInfo {
            text: "Please send the transcript too.".into(),
        },
        T0 + 4 * DAY,
    );
    assert_eq!(
        c.state,
        RequestState::InfoRequested {
            by: Party::Requester
        }
    );
    refused(
        &c,
        &responder(),
        Transition::ProvideInfo {
            text: String::new(),
            attachments: vec![],
        },
        T0 + 5 * DAY,
        "missing",
    );
    let c = ok(
        &c,
        &responder(),
        Transition::ProvideInfo {
            text: String::new(),
            attachments: vec![attachment("transcript.pdf")],
        },
        T0 + 5 * DAY,
    );
    assert_eq!(c.state, RequestState::Answered);
    assert_eq!(c.answered_at, Some(T0 + 3 * DAY), "first answer time kept");
    let c = ok(
        &c,
        &requester(),
        Transition::Close {
            timeliness: Some(Rating::Satisfied),
            efforts: Some(Rating::Satisfied),
        },
        T0 + 6 * DAY,
    );
    assert_eq!(c.state, RequestState::Closed);
}

#[test]
fn requester_may_close_while_its_further_question_is_pending() {
    let c = ok(
        &answered(),
        &requester(),
        Transition::RequestInfo {
            text: "More?".into(),
        },
        T0 + 4 * DAY,
    );
    let c = ok(
        &c,
        &requester(),
        Transition::Close {
            timeliness: None,
            efforts: Some(Rating::Dissatisfied),
        },
        T0 + 5 * DAY,
    );
    assert_eq!(c.state, RequestState::Closed);
}

#[test]
fn withdraw_before_close() {
    for (c, at) in [
        (sent(), T0 + DAY),
        (accepted(), T0 + 2 * DAY),
        (answered(), T0 + 4 * DAY),
    ] {
        let prev = c.state.name();
        refused(
            &c,
            &responder(),
            Transition::Withdraw {
                reason: "no longer needed".into(),
            },
            at,
            "wrong_party",
        );
        refused(
            &c,
            &requester(),
            Transition::Withdraw { reason: "".into() },
            at,
            "missing",
        );
        let w = ok(
            &c,
            &requester(),
            Transition::Withdraw {
                reason: "no longer needed".into(),
            },
            at,
        );
        assert_eq!(w.state, RequestState::Withdrawn, "from {prev}");
        assert_eq!(w.ended_at, Some(at));
        assert!(w.state.is_terminal());
        // terminal: nothing more
        refused(
            &w,
            &responder(),
            Transition::Accept,
            at,
            "invalid_transition",
        );
        refused(
            &w,
            &requester(),
            Transition::Withdraw {
                reason: "again".into(),
            },
            at,
            "invalid_transition",
        );
        refused(
            &w,
            &requester(),
            Transition::Refer {
                reason: "dispute".into(),
            },
            at,
            "invalid_transition",
        );
    }
}

#[test]
fn withdraw_after_close_is_refused() {
    let closed = ok(
        &answered(),
        &requester(),
        Transition::Close {
            timeliness: None,
            efforts: None,
        },
        T0 + 4 * DAY,
    );
    refused(
        &closed,
        &requester(),
        Transition::Withdraw {
            reason: "oops".into(),
        },
        T0 + 5 * DAY,
        "invalid_transition",
    );
    refused(
        &closed,
        &requester(),
        Transition::Close {
            timeliness: None,
            efforts: None,
        },
        T0 + 5 * DAY,
        "invalid_transition",
    );
    refused(
        &closed,
        &responder(),
        answer_t(),
        T0 + 5 * DAY,
        "invalid_transition",
    );
}

#[test]
fn referral_and_coordinator_reassignment() {
    let a = accepted();
    refused(
        &a,
        &stranger(),
        Transition::Refer {
            reason: "dispute".into(),
        },
        T0 + 2 * DAY,
        "not_party",
    );
    let r = ok(
        &a,
        &requester(),
        Transition::Refer {
            reason: "The responder says it is not competent.".into(),
        },
        T0 + 2 * DAY,
    );
    let RequestState::Referred {
        coordinator,
        by,
        resume,
    } = &r.state
    else {
        panic!("not referred: {:?}", r.state);
    };
    assert_eq!(*coordinator, NodeId::DE, "the responder's country");
    assert_eq!(*by, Party::Requester);
    assert_eq!(**resume, RequestState::Accepted);
    // no second referral, no answering while referred
    refused(
        &r,
        &responder(),
        Transition::Refer {
            reason: "again".into(),
        },
        T0 + 2 * DAY,
        "invalid_transition",
    );
    refused(
        &r,
        &responder(),
        answer_t(),
        T0 + 2 * DAY,
        "invalid_transition",
    );

    let to_other = Transition::Reassign {
        to: other_de().authority,
    };
    // non-coordinators are refused: a party, another DE authority, another country's coordinator
    refused(
        &r,
        &responder(),
        to_other.clone(),
        T0 + 3 * DAY,
        "not_coordinator",
    );
    refused(
        &r,
        &other_de(),
        to_other.clone(),
        T0 + 3 * DAY,
        "not_coordinator",
    );
    refused(
        &r,
        &fr_coordinator(),
        to_other.clone(),
        T0 + 3 * DAY,
        "not_coordinator",
    );
    // the coordinator stays in its country and must pick a new authority
    refused(
        &r,
        &de_coordinator(),
        Transition::Reassign {
            to: aid("AT-W-MAG"),
        },
        T0 + 3 * DAY,
        "reassign_abroad",
    );
    refused(
        &r,
        &de_coordinator(),
        Transition::Reassign {
            to: responder().authority,
        },
        T0 + 3 * DAY,
        "same_authority",
    );

    let c = ok(&r, &de_coordinator(), to_other, T0 + 3 * DAY);
    assert_eq!(c.state, RequestState::Sent);
    assert_eq!(c.responder, other_de().authority);
    assert_eq!(c.accepted_at, None);
    let last = c.history.last().unwrap();
    assert_eq!(last.actor, de_coordinator().authority);
    assert!(last.coordinator);
    assert_eq!(last.kind, TransitionKind::Reassign);
    // the coordinator cannot reassign again now that the referral is over
    refused(
        &c,
        &de_coordinator(),
        Transition::Reassign {
            to: responder().authority,
        },
        T0 + 3 * DAY,
        "invalid_transition",
    );
    let c = ok(&c, &other_de(), Transition::Accept, T0 + 4 * DAY);
    let c = ok(&c, &other_de(), answer_t(), T0 + 5 * DAY);
    assert_eq!(c.answers[0].by, other_de().authority);
}

#[test]
fn referral_after_answer_resets_answer_time_on_reassign() {
    let r = ok(
        &answered(),
        &requester(),
        Transition::Refer {
            reason: "The answer is incomplete.".into(),
        },
        T0 + 4 * DAY,
    );
    let c = ok(
        &r,
        &de_coordinator(),
        Transition::Reassign {
            to: other_de().authority,
        },
        T0 + 5 * DAY,
    );
    assert_eq!(c.answered_at, None);
    assert_eq!(c.answers.len(), 1, "earlier answers stay visible");
}

#[test]
fn coordinator_resolves_without_reassigning() {
    let r = ok(
        &accepted(),
        &responder(),
        Transition::Refer {
            reason: "Disagreement on the deadline.".into(),
        },
        T0 + 2 * DAY,
    );
    refused(
        &r,
        &fr_coordinator(),
        Transition::Resolve { note: "".into() },
        T0 + 3 * DAY,
        "not_coordinator",
    );
    let c = ok(
        &r,
        &de_coordinator(),
        Transition::Resolve {
            note: "Please answer by the agreed date.".into(),
        },
        T0 + 3 * DAY,
    );
    assert_eq!(c.state, RequestState::Accepted);
    assert_eq!(c.responder, responder().authority);
    let c = ok(&c, &responder(), answer_t(), T0 + 4 * DAY);
    assert_eq!(c.state, RequestState::Answered);
}

#[test]
fn requester_may_withdraw_a_referred_request() {
    let r = ok(
        &sent(),
        &responder(),
        Transition::Refer {
            reason: "Not competent.".into(),
        },
        T0 + DAY,
    );
    let w = ok(
        &r,
        &requester(),
        Transition::Withdraw {
            reason: "Will ask elsewhere.".into(),
        },
        T0 + 2 * DAY,
    );
    assert_eq!(w.state, RequestState::Withdrawn);
}

#[test]
fn invalid_transitions_are_refused_and_change_nothing() {
    let s = sent();
    // answer before accept: the responder must accept first
    refused(&s, &responder(), answer_t(), T0 + DAY, "invalid_transition");
    // close before answer
    refused(
        &accepted(),
        &requester(),
        Transition::Close {
            timeliness: None,
            efforts: None,
        },
        T0 + 2 * DAY,
        "invalid_transition",
    );
    // accept twice
    refused(
        &accepted(),
        &responder(),
        Transition::Accept,
        T0 + 2 * DAY,
        "invalid_transition",
    );
    // the requester cannot accept its own request
    refused(
        &s,
        &requester(),
        Transition::Accept,
        T0 + DAY,
        "wrong_party",
    );
    // non-parties
    refused(&s, &stranger(), Transition::Accept, T0 + DAY, "not_party");
    refused(&s, &other_de(), Transition::Accept, T0 + DAY, "not_party");
    refused(
        &accepted(),
        &other_de(),
        answer_t(),
        T0 + 2 * DAY,
        "not_party",
    );
    refused(
        &s,
        &stranger(),
        Transition::Withdraw { reason: "x".into() },
        T0 + DAY,
        "not_party",
    );
    // a coordinator flag does not make a non-party a party
    refused(
        &s,
        &de_coordinator(),
        Transition::Accept,
        T0 + DAY,
        "not_party",
    );
    // an actor whose country does not match its authority
    let liar = Actor {
        authority: responder().authority,
        country: NodeId::FR,
        coordinator: false,
    };
    refused(&s, &liar, Transition::Accept, T0 + DAY, "bad_actor");
    // create on an existing case
    refused(
        &s,
        &requester(),
        create_t(T0 + 10 * DAY),
        T0 + DAY,
        "invalid_transition",
    );
    // a case with an unknown version
    let mut future = s.clone();
    future.v = 99;
    refused(
        &future,
        &responder(),
        Transition::Accept,
        T0 + DAY,
        "unsupported_version",
    );
}

#[test]
fn answers_must_refer_to_the_questions_asked() {
    let a = accepted();
    let one = |q: &str, p: AnswerPayload| Transition::Answer {
        answers: vec![CodedAnswer {
            question: q.into(),
            answer: p,
        }],
        free_text: String::new(),
        attachments: vec![],
    };
    refused(
        &a,
        &responder(),
        one("PQ.Q9", AnswerPayload::Bool(true)),
        T0 + 2 * DAY,
        "unknown_question",
    );
    refused(
        &a,
        &responder(),
        one("bad code!", AnswerPayload::Bool(true)),
        T0 + 2 * DAY,
        "bad_code",
    );
    refused(
        &a,
        &responder(),
        one("PQ.Q1", AnswerPayload::Choice("no spaces".into())),
        T0 + 2 * DAY,
        "bad_code",
    );
    refused(
        &a,
        &responder(),
        Transition::Answer {
            answers: vec![
                CodedAnswer {
                    question: "PQ.Q1".into(),
                    answer: AnswerPayload::NotAvailable,
                },
                CodedAnswer {
                    question: "PQ.Q1".into(),
                    answer: AnswerPayload::Bool(false),
                },
            ],
            free_text: String::new(),
            attachments: vec![],
        },
        T0 + 2 * DAY,
        "duplicate_question",
    );
    refused(
        &a,
        &responder(),
        Transition::Answer {
            answers: vec![],
            free_text: " ".into(),
            attachments: vec![],
        },
        T0 + 2 * DAY,
        "missing",
    );
    refused(
        &a,
        &responder(),
        Transition::Answer {
            answers: vec![],
            free_text: "see file".into(),
            attachments: vec![attachment("../etc/passwd")],
        },
        T0 + 2 * DAY,
        "bad_attachment",
    );
    // a partial answer is fine
    let c = ok(
        &a,
        &responder(),
        one("PQ.Q3", AnswerPayload::Text("yes".into())),
        T0 + 2 * DAY,
    );
    assert_eq!(c.answers[0].answers.len(), 1);
}

#[test]
fn create_checks_its_input() {
    let base = |f: &dyn Fn(&mut Transition)| {
        let mut t = create_t(T0 + 10 * DAY);
        f(&mut t);
        create(case_id(), &requester(), &t, T0)
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(base(&|_| {}), Ok(()));
    assert_eq!(
        create(case_id(), &requester(), &create_t(T0), T0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("deadline_in_past")
    );
    assert_eq!(
        create(case_id(), &requester(), &create_t(T0 - DAY), T0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("deadline_in_past")
    );
    assert_eq!(
        create(case_id(), &stranger(), &create_t(T0 + DAY), T0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("not_party"),
        "only the requester itself may create"
    );
    assert_eq!(
        create(case_id(), &requester(), &Transition::Accept, T0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("invalid_transition")
    );
    let set = |f: fn(&mut Transition)| base(&move |t| f(t));
    assert_eq!(
        set(|t| if let Transition::Create { responder, .. } = t {
            *responder = aid("FR-PQ-PARIS");
        }),
        Err("same_authority")
    );
    assert_eq!(
        set(|t| if let Transition::Create { questions, .. } = t {
            questions.push("PQ.Q1".into());
        }),
        Err("duplicate_question")
    );
    assert_eq!(
        set(|t| if let Transition::Create { area, .. } = t {
            *area = String::new();
        }),
        Err("bad_code")
    );
    assert_eq!(
        set(|t| {
            if let Transition::Create {
                questions,
                free_text,
                ..
            } = t
            {
                questions.clear();
                free_text.clear();
            }
        }),
        Err("missing")
    );
    assert_eq!(
        set(|t| if let Transition::Create { subject, .. } = t {
            *subject = SubjectRef(String::new());
        }),
        Err("missing")
    );
    assert_eq!(
        set(|t| if let Transition::Create { free_text, .. } = t {
            *free_text = "x".repeat(imi_domain::limits::MAX_TEXT_BYTES + 1);
        }),
        Err("too_large")
    );
    assert_eq!(
        set(|t| if let Transition::Create { responder, .. } = t {
            *responder = aid("XX-NOWHERE");
        }),
        Err("bad_authority")
    );
    // a same-country request is allowed (IMI permits it), only not to oneself
    assert_eq!(
        set(|t| if let Transition::Create { responder, .. } = t {
            *responder = aid("FR-LYON-ARS");
        }),
        Ok(())
    );
}

#[test]
fn overdue_flag() {
    let c = sent(); // answer by T0 + 10 days
    assert!(!is_overdue(&c, T0 + 5 * DAY));
    assert!(
        !is_overdue(&c, T0 + 10 * DAY),
        "due date itself is not overdue"
    );
    assert!(is_overdue(&c, T0 + 10 * DAY + 1));
    let a = accepted();
    assert!(a.is_overdue(T0 + 11 * DAY));
    // answered late: no longer flagged, but counted as late
    let late = ok(&a, &responder(), answer_t(), T0 + 12 * DAY);
    assert!(!is_overdue(&late, T0 + 12 * DAY));
    assert!(!is_overdue(&late, T0 + 100 * DAY));
    assert_eq!(late.answered_on_time(), Some(false));
    // answered in time
    let on_time = answered();
    assert!(!is_overdue(&on_time, T0 + 11 * DAY));
    // closed and withdrawn are never overdue
    let closed = ok(
        &on_time,
        &requester(),
        Transition::Close {
            timeliness: None,
            efforts: None,
        },
        T0 + 4 * DAY,
    );
    assert!(!is_overdue(&closed, T0 + 100 * DAY));
    let withdrawn = ok(
        &a,
        &requester(),
        Transition::Withdraw {
            reason: "moot".into(),
        },
        T0 + 2 * DAY,
    );
    assert!(!is_overdue(&withdrawn, T0 + 100 * DAY));
    // an accepted new deadline moves the flag
    let p = ok(
        &a,
        &responder(),
        Transition::ProposeDeadline { new: T0 + 20 * DAY },
        T0 + 2 * DAY,
    );
    assert!(
        is_overdue(&p, T0 + 11 * DAY),
        "a proposal alone changes nothing"
    );
    let p = ok(&p, &requester(), Transition::AcceptDeadline, T0 + 3 * DAY);
    assert!(!is_overdue(&p, T0 + 11 * DAY));
    assert!(is_overdue(&p, T0 + 21 * DAY));
}

#[test]
fn history_records_who_did_what_when() {
    let c = ok(
        &answered(),
        &requester(),
        Transition::Close {
            timeliness: Some(Rating::Satisfied),
            efforts: None,
        },
        T0 + 4 * DAY,
    );
    let h: Vec<(Timestamp, &str, TransitionKind)> = c
        .history
        .iter()
        .map(|e| (e.at, e.actor.as_str(), e.kind))
        .collect();
    assert_eq!(
        h,
        [
            (T0, "FR-PQ-PARIS", TransitionKind::Create),
            (T0 + DAY, "DE-BY-ZAEK", TransitionKind::Accept),
            (T0 + 3 * DAY, "DE-BY-ZAEK", TransitionKind::Answer),
            (T0 + 4 * DAY, "FR-PQ-PARIS", TransitionKind::Close),
        ]
    );
    assert!(c.history.iter().all(|e| !e.coordinator));
    assert!(c.history[0].summary.contains("DE-BY-ZAEK"));
    assert!(c.history[2].summary.contains("2 of 3"));
    assert!(c.history[3].summary.contains("timeliness: satisfied"));
    // summaries never carry free text
    assert!(c.history.iter().all(|e| !e.summary.contains("Diploma")));
}

#[test]
fn both_nodes_compute_the_same_case() {
    // the sender and the receiver apply the same transitions independently
    let run = || {
        let c = sent();
        let c = ok(&c, &responder(), Transition::Accept, T0 + DAY);
        let c = ok(
            &c,
            &responder(),
            Transition::ProposeDeadline { new: T0 + 15 * DAY },
            T0 + DAY,
        );
        let c = ok(&c, &requester(), Transition::AcceptDeadline, T0 + 2 * DAY);
        ok(&c, &responder(), answer_t(), T0 + 3 * DAY)
    };
    let a = run();
    let b = run();
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_vec(&a).unwrap(),
        serde_json::to_vec(&b).unwrap()
    );
}

fn cbor_round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
    let mut buf = Vec::new();
    ciborium::into_writer(v, &mut buf).unwrap();
    ciborium::from_reader(buf.as_slice()).unwrap()
}

#[test]
fn serde_round_trips() {
    let referred = ok(
        &answered(),
        &requester(),
        Transition::Refer {
            reason: "Incomplete.".into(),
        },
        T0 + 4 * DAY,
    );
    let proposed = ok(
        &accepted(),
        &responder(),
        Transition::ProposeDeadline { new: T0 + 20 * DAY },
        T0 + 2 * DAY,
    );
    let closed = ok(
        &answered(),
        &requester(),
        Transition::Close {
            timeliness: Some(Rating::VeryDissatisfied),
            efforts: Some(Rating::VerySatisfied),
        },
        T0 + 4 * DAY,
    );
    for c in [sent(), accepted(), proposed, answered(), referred, closed] {
        let json = serde_json::to_string(&c).unwrap();
        let back: RequestCase = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(cbor_round_trip(&c), c);
        assert!(json.contains("\"v\":1"));
    }

    let json = serde_json::to_value(answered()).unwrap();
    assert_eq!(json["state"]["state"], "answered");
    assert_eq!(json["answers"][0]["answers"][0]["answer"]["type"], "bool");
    assert_eq!(
        json["attachments"][0]["sha256"],
        "ab".repeat(32),
        "digests are hex"
    );

    let ts = [
        create_t(T0 + DAY),
        Transition::Accept,
        Transition::Forward {
            to: other_de().authority,
        },
        Transition::ProposeDeadline { new: T0 },
        Transition::AcceptDeadline,
        Transition::RefuseDeadline,
        answer_t(),
        Transition::RequestInfo { text: "q".into() },
        Transition::ProvideInfo {
            text: "a".into(),
            attachments: vec![attachment("a.pdf")],
        },
        Transition::Close {
            timeliness: Some(Rating::Satisfied),
            efforts: None,
        },
        Transition::Withdraw { reason: "r".into() },
        Transition::Refer { reason: "r".into() },
        Transition::Reassign {
            to: other_de().authority,
        },
        Transition::Resolve { note: "n".into() },
    ];
    assert_eq!(ts.len(), TransitionKind::ALL.len());
    for (t, k) in ts.iter().zip(TransitionKind::ALL) {
        assert_eq!(t.kind(), k);
        let body = TransitionBody::new(t.clone());
        assert_eq!(body.v, TRANSITION_VERSION);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["transition"]["kind"], k.as_str());
        assert_eq!(
            serde_json::from_value::<TransitionBody>(json).unwrap(),
            body
        );
        assert_eq!(cbor_round_trip(&body), body);
    }
    let close = serde_json::to_value(&ts[9]).unwrap();
    assert_eq!(close["timeliness"], "satisfied");

    // hostile input: a malformed authority id or digest does not decode
    assert!(serde_json::from_str::<Transition>(r#"{"kind":"forward","to":"a b"}"#).is_err());
    assert!(
        serde_json::from_str::<AttachmentRef>(r#"{"name":"a","sha256":"zz","size":1}"#).is_err()
    );
}

#[test]
fn step_dispatches_and_checks_versions_and_case_ids() {
    let t = create_t(T0 + DAY);
    let c = step(None, case_id(), &requester(), &t, T0).unwrap();
    assert_eq!(c.id, case_id());
    let c2 = step(
        Some(&c),
        case_id(),
        &responder(),
        &Transition::Accept,
        T0 + 1,
    )
    .unwrap();
    assert_eq!(c2.state, RequestState::Accepted);
    let e = step(
        Some(&c),
        CaseId([8; 16]),
        &responder(),
        &Transition::Accept,
        T0 + 1,
    )
    .unwrap_err();
    assert_eq!(e.code(), "wrong_case");
    let e = step(None, case_id(), &responder(), &Transition::Accept, T0).unwrap_err();
    assert_eq!(e.code(), "invalid_transition");
    let body = TransitionBody {
        v: 2,
        transition: Transition::Accept,
    };
    let e = step_body(Some(&c), case_id(), &responder(), &body, T0 + 1).unwrap_err();
    assert_eq!(e, TransitionError::UnsupportedVersion(2));
    let body = TransitionBody::new(Transition::Accept);
    assert!(step_body(Some(&c), case_id(), &responder(), &body, T0 + 1).is_ok());
}

// -------------------------------------------------------------------------------------
// Property: random sequences never panic and keep the invariants.
// -------------------------------------------------------------------------------------

fn actors() -> Vec<Actor> {
    vec![
        requester(),
        responder(),
        other_de(),
        actor("DE-HH-KAMMER", false),
        de_coordinator(),
        fr_coordinator(),
        stranger(),
        actor("AT-W-MAG", false),
        Actor {
            authority: aid("DE-BY-ZAEK"),
            country: NodeId::AT,
            coordinator: true,
        },
    ]
}

fn targets() -> Vec<AuthorityId> {
    [
        "DE-BY-ZAEK",
        "DE-NW-AEK",
        "DE-HH-KAMMER",
        "FR-PQ-PARIS",
        "AT-W-MAG",
        "nocountry",
    ]
    .iter()
    .map(|s| aid(s))
    .collect()
}

fn rating(i: u8) -> Option<Rating> {
    Rating::ALL.get(usize::from(i)).copied()
}

fn make(kind: u8, p: u8, at: Timestamp) -> Transition {
    let texts = ["", " ", "text"];
    let text = texts[usize::from(p) % texts.len()].to_owned();
    let target = targets()[usize::from(p) % targets().len()].clone();
    let deadline = at + u64::from(p % 4) * DAY / 2;
    let questions = ["PQ.Q1", "PQ.Q2", "PQ.Q9", "bad code"];
    match kind % 15 {
        0 => create_t(at + u64::from(p % 3) * DAY),
        1 | 14 => Transition::Accept,
        2 => Transition::Forward { to: target },
        3 => Transition::ProposeDeadline { new: deadline },
        4 => Transition::AcceptDeadline,
        5 => Transition::RefuseDeadline,
        6 => Transition::Answer {
            answers: (0..p % 3)
                .map(|i| CodedAnswer {
                    question: questions[usize::from(p / 3 + i) % questions.len()].into(),
                    answer: AnswerPayload::Number(i64::from(i)),
                })
                .collect(),
            free_text: text,
            attachments: vec![],
        },
        7 => Transition::RequestInfo { text },
        8 => Transition::ProvideInfo {
            text,
            attachments: if p.is_multiple_of(2) {
                vec![]
            } else {
                vec![attachment("x.pdf")]
            },
        },
        9 => Transition::Close {
            timeliness: rating(p % 6),
            efforts: rating(p / 6 % 6),
        },
        10 => Transition::Withdraw { reason: text },
        11 => Transition::Refer { reason: text },
        12 => Transition::Reassign { to: target },
        _ => Transition::Resolve { note: text },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_sequences_keep_the_invariants(
        ops in proptest::collection::vec((0u8..9, 0u8..15, 0u8..36, 0u64..(2 * DAY)), 0..60),
        start_with_create in any::<bool>(),
    ) {
        let actors = actors();
        let id = case_id();
        let mut case: Option<RequestCase> = None;
        let mut successes = 0usize;
        let mut at = T0;
        if start_with_create {
            case = Some(step(None, id, &requester(), &create_t(T0 + 5 * DAY), at).unwrap());
            successes = 1;
        }
        for (a, k, p, dt) in ops {
            at += dt;
            let actor = &actors[usize::from(a)];
            let t = make(k, p, at);
            let before = case.clone();
            let result = step(case.as_ref(), id, actor, &t, at);
            prop_assert_eq!(&case, &before, "input changed");
            let Ok(next) = result else { continue };
            // terminal states are terminal
            if let Some(prev) = &before {
                prop_assert!(!prev.state.is_terminal(), "{:?} left {:?}", t.kind(), prev.state);
                prop_assert_eq!(&next.requester, &prev.requester);
                prop_assert_eq!(next.created, prev.created);
                prop_assert_eq!(next.requested_answer_by, prev.requested_answer_by);
                prop_assert_eq!(
                    imi_domain::country_of(&next.responder),
                    imi_domain::country_of(&prev.responder),
                    "the responder never leaves its country"
                );
                prop_assert!(next.answers.len() >= prev.answers.len());
                prop_assert!(next.notes.len() >= prev.notes.len());
                prop_assert_eq!(&next.history[..prev.history.len()], &prev.history[..]);
            } else {
                prop_assert_eq!(t.kind(), TransitionKind::Create);
            }
            successes += 1;
            prop_assert_eq!(next.history.len(), successes);
            let last = next.history.last().unwrap();
            prop_assert_eq!(last.kind, t.kind());
            prop_assert_eq!(last.at, at);
            prop_assert_eq!(&last.actor, &actor.authority);
            prop_assert!(next.requester != next.responder);
            prop_assert_eq!(next.ended_at.is_some(), next.state.is_terminal());
            if matches!(next.state, RequestState::Answered | RequestState::Closed) {
                prop_assert!(next.answered_at.is_some() || !next.answers.is_empty());
            }
            if next.state == RequestState::Closed {
                prop_assert!(!next.answers.is_empty());
            }
            if let RequestState::Referred { resume, coordinator, .. } = &next.state {
                prop_assert!(!matches!(**resume, RequestState::Referred { .. }), "nested referral");
                prop_assert!(!resume.is_terminal());
                prop_assert_eq!(Some(*coordinator), imi_domain::country_of(&next.responder));
            }
            for r in &next.answers {
                for a in &r.answers {
                    prop_assert!(next.questions.contains(&a.question));
                }
            }
            if next.state.is_terminal() {
                prop_assert!(!is_overdue(&next, at + 1000 * DAY));
            }
            let json = serde_json::to_string(&next).unwrap();
            prop_assert_eq!(&serde_json::from_str::<RequestCase>(&json).unwrap(), &next);
            case = Some(next);
        }
        // once terminal, every actor and every step is refused
        if let Some(c) = &case
            && c.state.is_terminal()
        {
            for actor in &actors {
                for k in 0..15 {
                    for p in [0u8, 2, 5] {
                        prop_assert!(apply(c, actor, &make(k, p, at), at).is_err());
                    }
                }
            }
        }
    }
}

/// The random generator above reaches every transition kind and both terminal states, so
/// the property is not vacuous (deterministic pseudo-random walk).
#[test]
fn random_walks_reach_every_transition() {
    let actors = actors();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut terminal = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let mut at = T0;
        let mut case =
            Some(step(None, case_id(), &requester(), &create_t(T0 + 5 * DAY), at).unwrap());
        for _ in 0..60 {
            at += next(2 * DAY);
            let actor = &actors[next(actors.len() as u64) as usize];
            let t = make(next(15) as u8, next(36) as u8, at);
            if let Ok(c) = step(case.as_ref(), case_id(), actor, &t, at) {
                seen.insert(t.kind());
                if c.state.is_terminal() {
                    terminal.insert(c.state.name());
                }
                case = Some(c);
            }
        }
    }
    let missing: Vec<_> = TransitionKind::ALL
        .iter()
        .filter(|k| **k != TransitionKind::Create && !seen.contains(k))
        .collect();
    assert!(missing.is_empty(), "never reached: {missing:?}");
    assert_eq!(terminal.len(), 2, "{terminal:?}");
}

#[test]
fn a_step_is_not_dated_before_the_previous_one() {
    use imi_domain::request::MAX_STEP_CLOCK_SKEW_MS;
    // The responder dates its acceptance four minutes before the request was sent.
    refused(
        &sent(),
        &responder(),
        Transition::Accept,
        T0 - 4 * 60_000,
        "time_before_previous",
    );
    // Within the clock skew two nodes may have: accepted.
    ok(
        &sent(),
        &responder(),
        Transition::Accept,
        T0 - MAX_STEP_CLOCK_SKEW_MS,
    );
    refused(
        &sent(),
        &responder(),
        Transition::Accept,
        T0 - MAX_STEP_CLOCK_SKEW_MS - 1,
        "time_before_previous",
    );
}

// ---------------------------------------------------------------------------------------
// The lifecycle table of docs/request-lifecycle.md
// ---------------------------------------------------------------------------------------

const LIFECYCLE_DOC: &str = include_str!("../../../../docs/request-lifecycle.md");

/// A state cell's items: `sent`, `info_requested:requester`, `none`, `resume`.
fn lifecycle_states(cell: &str) -> Vec<String> {
    if cell.starts_with("(none") {
        return vec!["none".into()];
    }
    if cell.starts_with("the state it was referred from") {
        return vec!["resume".into()];
    }
    let mut out = Vec::new();
    for item in cell.split("`, `").flat_map(|s| s.split(", `")) {
        let name = item.trim().trim_start_matches('`');
        let (name, rest) = name.split_once('`').unwrap_or((name, ""));
        if rest.contains("by the requester") {
            out.push(format!("{name}:requester"));
        } else if rest.contains("by the responder") {
            out.push(format!("{name}:responder"));
        } else {
            out.push(name.to_owned());
        }
    }
    out
}

/// The table's rows: (step, who, from states, next state).
fn lifecycle_rows() -> Vec<(String, Vec<String>, Vec<String>, String)> {
    LIFECYCLE_DOC
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 4, "{l}");
            let who = cells[1].split(", ").map(str::to_owned).collect();
            let next = lifecycle_states(cells[3]);
            assert_eq!(next.len(), 1, "{l}");
            (
                cells[0].trim_matches('`').to_owned(),
                who,
                lifecycle_states(cells[2]),
                next[0].clone(),
            )
        })
        .collect()
}

fn state_label(s: &RequestState) -> String {
    match s {
        RequestState::InfoRequested { by } => format!("info_requested:{}", by.as_str()),
        other => other.name().to_owned(),
    }
}

/// Every step, by every party and the responder's coordinator, in every state: allowed
/// exactly where the table says, leading where it says.
#[test]
fn the_state_machine_is_the_documented_table() {
    let rows = lifecycle_rows();
    assert_eq!(rows.len(), 16);
    let info = |c: &RequestCase, a: &Actor| {
        ok(
            c,
            a,
            Transition::RequestInfo {
                text: "More, please.".into(),
            },
            T0 + 4 * DAY,
        )
    };
    let fixtures: Vec<(&str, RequestCase)> = vec![
        ("sent", sent()),
        ("accepted", accepted()),
        (
            "deadline_proposed",
            ok(
                &accepted(),
                &responder(),
                Transition::ProposeDeadline { new: T0 + 20 * DAY },
                T0 + 2 * DAY,
            ),
        ),
        ("info_requested:responder", info(&accepted(), &responder())),
        ("answered", answered()),
        ("info_requested:requester", info(&answered(), &requester())),
        (
            "referred",
            ok(
                &accepted(),
                &requester(),
                Transition::Refer {
                    reason: "We disagree.".into(),
                },
                T0 + 2 * DAY,
            ),
        ),
        (
            "closed",
            ok(
                &answered(),
                &requester(),
                Transition::Close {
                    timeliness: None,
                    efforts: None,
                },
                T0 + 4 * DAY,
            ),
        ),
        (
            "withdrawn",
            ok(
                &sent(),
                &requester(),
                Transition::Withdraw {
                    reason: "No longer needed.".into(),
                },
                T0 + DAY,
            ),
        ),
    ];
    let steps: Vec<(&str, Transition)> = vec![
        ("accept", Transition::Accept),
        (
            "forward",
            Transition::Forward {
                to: other_de().authority,
            },
        ),
        (
            "propose_deadline",
            Transition::ProposeDeadline { new: T0 + 30 * DAY },
        ),
        ("accept_deadline", Transition::AcceptDeadline),
        ("refuse_deadline", Transition::RefuseDeadline),
        ("answer", answer_t()),
        (
            "request_info",
            Transition::RequestInfo {
                text: "And this?".into(),
            },
        ),
        (
            "provide_info",
            Transition::ProvideInfo {
                text: "Here it is.".into(),
                attachments: vec![],
            },
        ),
        (
            "close",
            Transition::Close {
                timeliness: Some(Rating::Satisfied),
                efforts: None,
            },
        ),
        (
            "withdraw",
            Transition::Withdraw {
                reason: "Withdrawn.".into(),
            },
        ),
        (
            "refer",
            Transition::Refer {
                reason: "Referred.".into(),
            },
        ),
        (
            "reassign",
            Transition::Reassign {
                to: other_de().authority,
            },
        ),
        (
            "resolve",
            Transition::Resolve {
                note: String::new(),
            },
        ),
    ];
    let actors = [
        ("requester", requester()),
        ("responder", responder()),
        ("coordinator", de_coordinator()),
    ];
    let mut used = vec![false; rows.len()];
    let mut allowed = 0;
    for (state, case) in &fixtures {
        assert_eq!(&state_label(&case.state), state);
        for (step, t) in &steps {
            for (who, actor) in &actors {
                let row = rows.iter().position(|(s, by, from, _)| {
                    s == step
                        && by.iter().any(|b| b == who)
                        && from
                            .iter()
                            .any(|f| f == state || state.starts_with(&format!("{f}:")))
                });
                let got = apply(case, actor, t, T0 + 5 * DAY);
                match (row, got) {
                    (Some(i), Ok(next)) => {
                        used[i] = true;
                        allowed += 1;
                        let want = match rows[i].3.as_str() {
                            "resume" => "accepted".to_owned(), // the fixture referred from it
                            "info_requested" => format!("info_requested:{who}"),
                            other => other.to_owned(),
                        };
                        assert_eq!(state_label(&next.state), want, "{step} by {who} in {state}");
                    }
                    (None, Err(_)) => {}
                    (Some(_), Err(e)) => {
                        panic!("{step} by {who} in {state}: the table allows it, refused: {e}")
                    }
                    (None, Ok(_)) => {
                        panic!("{step} by {who} in {state}: not in the table, allowed")
                    }
                }
            }
        }
    }
    // `create` is checked by the tests above (it starts every fixture); every other row
    // was exercised.
    for (i, (step, ..)) in rows.iter().enumerate() {
        assert!(used[i] || step == "create", "row {step} never exercised");
    }
    assert!(allowed >= 20, "{allowed}");
}

/// `actions` offers exactly what `apply` accepts: every state reachable in the lifecycle,
/// every kind of actor (both parties, both coordinators, another authority of the
/// responder's country, a stranger), every kind with valid data.
#[test]
fn actions_are_exactly_what_apply_accepts() {
    let at = T0 + 4 * DAY;
    let refer = |c: &RequestCase, by: &Actor| {
        ok(
            c,
            by,
            Transition::Refer {
                reason: "dispute".into(),
            },
            T0 + 3 * DAY,
        )
    };
    let info = |c: &RequestCase, by: &Actor| {
        ok(
            c,
            by,
            Transition::RequestInfo {
                text: "Which year?".into(),
            },
            T0 + 3 * DAY,
        )
    };
    let proposed = ok(
        &accepted(),
        &responder(),
        Transition::ProposeDeadline { new: T0 + 20 * DAY },
        T0 + 2 * DAY,
    );
    let states = vec![
        sent(),
        accepted(),
        proposed.clone(),
        info(&accepted(), &responder()),
        info(&answered(), &requester()),
        answered(),
        refer(&sent(), &requester()),
        refer(&accepted(), &responder()),
        refer(&proposed, &requester()),
        ok(
            &answered(),
            &requester(),
            Transition::Close {
                timeliness: None,
                efforts: None,
            },
            T0 + 3 * DAY,
        ),
        ok(
            &accepted(),
            &requester(),
            Transition::Withdraw {
                reason: "no longer needed".into(),
            },
            T0 + 3 * DAY,
        ),
    ];
    let actors = [
        requester(),
        responder(),
        other_de(),
        de_coordinator(),
        fr_coordinator(),
        stranger(),
    ];
    let third_de = aid("DE-HH-KAMMER");
    let transition = |k: TransitionKind| -> Option<Transition> {
        Some(match k {
            TransitionKind::Create => return None,
            TransitionKind::Accept => Transition::Accept,
            TransitionKind::Forward => Transition::Forward {
                to: third_de.clone(),
            },
            TransitionKind::ProposeDeadline => Transition::ProposeDeadline { new: T0 + 30 * DAY },
            TransitionKind::AcceptDeadline => Transition::AcceptDeadline,
            TransitionKind::RefuseDeadline => Transition::RefuseDeadline,
            TransitionKind::Answer => answer_t(),
            TransitionKind::RequestInfo => Transition::RequestInfo {
                text: "More, please.".into(),
            },
            TransitionKind::ProvideInfo => Transition::ProvideInfo {
                text: "Here it is.".into(),
                attachments: vec![],
            },
            TransitionKind::Close => Transition::Close {
                timeliness: Some(Rating::Satisfied),
                efforts: None,
            },
            TransitionKind::Withdraw => Transition::Withdraw {
                reason: "not needed".into(),
            },
            TransitionKind::Refer => Transition::Refer {
                reason: "dispute".into(),
            },
            TransitionKind::Reassign => Transition::Reassign {
                to: third_de.clone(),
            },
            TransitionKind::Resolve => Transition::Resolve {
                note: String::new(),
            },
        })
    };
    let mut offered = 0;
    for case in &states {
        for a in &actors {
            let open = actions(case, a);
            for k in TransitionKind::ALL {
                let Some(t) = transition(k) else {
                    assert!(!open.contains(&k), "create is never offered");
                    continue;
                };
                let accepted = apply(case, a, &t, at).is_ok();
                assert_eq!(
                    open.contains(&k),
                    accepted,
                    "{k} by {} in state {}: offered {open:?}",
                    a.authority,
                    case.state.name()
                );
            }
            offered += open.len();
        }
    }
    // Not vacuous: every kind but create is offered somewhere.
    let all: std::collections::BTreeSet<TransitionKind> = states
        .iter()
        .flat_map(|c| actors.iter().flat_map(|a| actions(c, a)))
        .collect();
    assert_eq!(all.len(), TransitionKind::ALL.len() - 1, "{all:?}");
    assert!(offered > 30, "{offered}");
}

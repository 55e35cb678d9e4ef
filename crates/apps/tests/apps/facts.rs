//! Indicator facts. DE and HU run the request application with fact reporting and the
//! reporter; EU runs the fact application behind a recorder that decrypts and keeps
//! **every** envelope EU receives, whatever its kind. Requests go through their lifecycle;
//! then every envelope EU received is inspected: a fact report with exactly the fact fields,
//! none of the subject's data, no text. A raw endpoint with HU's identity then sends a
//! falsified report, which the cross-check flags.
use crate::cases::{cases_plain, create, subject};
use crate::rig::{Federation, Node, within};
use imi_apps::facts::{
    FactApp, FactReport, KIND_FACT, KIND_FACTS, MAX_BATCH_REPORTS, commission_cases,
};
use imi_apps::requests::{CaseMessage, Cases, KIND_REQUEST, MESSAGE_VERSION};
use imi_domain::request::{Actor, Transition, TransitionBody};
use imi_engine::{Application, Inbound, Txn};
use imi_engine::{Applications, LocalOutcome};
use imi_protocol::NodeId::{AT, DE, EU, HU};
use imi_protocol::{AuthorityId, CaseId, Draft, Kind, Outcome, RejectCode};
use imi_scoreboard::crosscheck::Side;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Decrypts and records every envelope, then lets the fact application decide.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, NodeId, Vec<u8>)>>,
    facts: FactApp,
}

use imi_protocol::NodeId;

impl Application for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn kinds(&self) -> &'static [&'static str] {
        imi_protocol::Kind::ALL
    }
    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        self.seen.lock().unwrap().push((
            msg.header.kind.to_string(),
            msg.header.from,
            msg.body.to_vec(),
        ));
        if self.facts.kinds().contains(&msg.header.kind.as_str()) {
            self.facts.apply(msg, txn)
        } else {
            Err(RejectCode::UnknownKind)
        }
    }
}

struct RecorderApp(Arc<Recorder>);

impl Application for RecorderApp {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn kinds(&self) -> &'static [&'static str] {
        self.0.kinds()
    }
    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        self.0.apply(msg, txn)
    }
}

/// DE (reporting facts) and HU (reporting them if asked) running requests; EU recording
/// every envelope it receives.
struct Recorded {
    de: Node,
    de_cases: Arc<Cases>,
    hu: Node,
    hu_cases: Arc<Cases>,
    eu: Node,
    recorder: Arc<Recorder>,
}

async fn recorded(fed: &Federation, hu_reports: bool) -> Recorded {
    let de_cases = Arc::new(cases_plain(DE).with_fact_reports());
    let hu_cases = Arc::new(if hu_reports {
        cases_plain(HU).with_fact_reports()
    } else {
        cases_plain(HU)
    });
    let de = fed
        .start_with(DE, Applications::new(vec![de_cases.application()]))
        .await;
    let hu = fed
        .start_with(HU, Applications::new(vec![hu_cases.application()]))
        .await;
    let recorder = Arc::new(Recorder::default());
    let eu = fed
        .start_with(
            EU,
            Applications::new(vec![Arc::new(RecorderApp(recorder.clone()))]),
        )
        .await;
    Recorded {
        de,
        de_cases,
        hu,
        hu_cases,
        eu,
        recorder,
    }
}

/// What the `fact-report` job does, until `stop`: every pending report to `EU`.
async fn run_reporter(engine: imi_engine::Engine, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(imi_apps::facts::REPORT_INTERVAL) => {}
        }
        let _ = imi_apps::facts::report_pending(&engine, EU).await;
    }
}

/// DE-BY-BLZK creates request `id` to HU-ENKK, with the subject's data.
async fn de_creates(de: &Node, de_cases: &Arc<Cases>, id: CaseId) {
    step(
        de,
        de_cases,
        id,
        "DE-BY-BLZK",
        create(&["PQ-Q01"], "HU-ENKK"),
        true,
    )
    .await;
}

/// A step by `authority` on `node`, committed with its envelope to the other party.
async fn step(
    node: &Node,
    cases: &Arc<Cases>,
    id: CaseId,
    authority: &str,
    t: Transition,
    with_subject: bool,
) {
    let authority = AuthorityId::new(authority).unwrap();
    let actor = Actor {
        country: node.id,
        authority: authority.clone(),
        coordinator: false,
    };
    let msg = CaseMessage {
        v: MESSAGE_VERSION,
        step: TransitionBody::new(t),
        coordinator: false,
        subject: with_subject.then(subject),
        files: vec![],
    };
    let other = if node.id == DE { HU } else { DE };
    let draft = Draft {
        kind: Kind::new(KIND_REQUEST).unwrap(),
        step: Kind::new(msg.step.transition.kind().as_str()).ok(),
        authority,
        to: vec![other],
        case: Some(id),
        prev: vec![],
        body: imi_apps::requests::encode_message(&msg),
    };
    let c = cases.clone();
    let (outcome, receivers) = node
        .engine()
        .local_step_watched(
            Some(draft),
            Box::new(move |txn, ctx| {
                c.apply_step(txn, id, &actor, &msg, ctx.at, ctx.message_id)?;
                Ok(LocalOutcome {
                    write: true,
                    result: vec![],
                })
            }),
            true,
        )
        .await
        .expect("the step is valid");
    assert!(outcome.write);
    for r in receivers {
        let report = within("the other side's receipt", r).await.unwrap();
        assert_eq!(report.receipt.outcome, Outcome::Accepted);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_reach_the_commission_carry_nothing_personal_and_falsified_sides_are_flagged() {
    let fed = Federation::new(&[DE, HU, EU, AT]);
    let Recorded {
        de,
        de_cases,
        hu,
        hu_cases,
        eu,
        recorder,
    } = recorded(&fed, true).await;
    let stop = CancellationToken::new();
    let reporters = [
        tokio::spawn(run_reporter(de.engine().clone(), stop.clone())),
        tokio::spawn(run_reporter(hu.engine().clone(), stop.clone())),
    ];

    // Two requests: one answered and closed with ratings, one withdrawn.
    let (a, b) = (CaseId::random(), CaseId::random());
    de_creates(&de, &de_cases, a).await;
    step(&hu, &hu_cases, a, "HU-ENKK", Transition::Accept, false).await;
    step(
        &hu,
        &hu_cases,
        a,
        "HU-ENKK",
        Transition::Answer {
            answers: vec![],
            free_text: "Secret answer text".into(),
            attachments: vec![],
        },
        false,
    )
    .await;
    step(
        &de,
        &de_cases,
        a,
        "DE-BY-BLZK",
        Transition::Close {
            timeliness: Some(imi_domain::request::Rating::Satisfied),
            efforts: Some(imi_domain::request::Rating::Dissatisfied),
        },
        false,
    )
    .await;
    de_creates(&de, &de_cases, b).await;
    step(
        &de,
        &de_cases,
        b,
        "DE-BY-BLZK",
        Transition::Withdraw {
            reason: "Secret reason".into(),
        },
        false,
    )
    .await;

    // EU ends up with both sides' final reports of both cases, in agreement.
    crate::rig::wait_until("EU holds both sides' final reports", || {
        let cases = commission_cases(eu.store()).unwrap();
        cases.len() == 2
            && cases.iter().all(|c| {
                c.checked.both_reported
                    && c.requester_steps == c.responder_steps
                    && c.requester_steps == Some(if c.case == a.to_string() { 4 } else { 2 })
            })
    })
    .await;
    let cases = commission_cases(eu.store()).unwrap();
    assert!(cases.iter().all(|c| !c.flagged()), "{cases:?}");
    let fa = &cases
        .iter()
        .find(|c| c.case == a.to_string())
        .unwrap()
        .checked
        .fact;
    assert_eq!((fa.timeliness, fa.efforts), (Some(4), Some(2)));
    assert!(fa.accepted_at.is_some() && fa.answered_at.is_some() && fa.withdrawn_at.is_none());
    let fb = &cases
        .iter()
        .find(|c| c.case == b.to_string())
        .unwrap()
        .checked
        .fact;
    assert!(fb.withdrawn_at.is_some());

    // Every envelope EU received: a fact report, exactly the fact's fields, nothing personal.
    let seen = recorder.seen.lock().unwrap().clone();
    // Both sides report each case; pending reports of quick successive steps coalesce, and
    // reports pending together travel in one `imi.facts` envelope.
    let mut reports = 0;
    for (kind, from, body) in &seen {
        assert!([DE, HU].contains(from));
        // Unknown fields are refused: every body is exactly a report, or a list of them.
        let batch: Vec<FactReport> = match kind.as_str() {
            KIND_FACT => vec![ciborium::from_reader(body.as_slice()).unwrap()],
            KIND_FACTS => ciborium::from_reader(body.as_slice()).unwrap(),
            other => panic!("EU received {other}"),
        };
        assert!(!batch.is_empty() && batch.len() <= MAX_BATCH_REPORTS);
        reports += batch.len();
        for report in &batch {
            let v: serde_json::Value = serde_json::to_value(&report.fact).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 11, "{keys:?}");
        }
        for secret in [
            subject().name.as_bytes(),
            b"1980-01-31".as_slice(),
            b"Secret answer text",
            b"Secret reason",
            b"DE-BY-BLZK",
            b"HU-ENKK",
        ] {
            assert!(
                !body.windows(secret.len()).any(|w| w == secret),
                "{:?} reached EU",
                String::from_utf8_lossy(secret)
            );
        }
    }
    assert!(
        reports >= 4,
        "{reports} reports in {} envelopes",
        seen.len()
    );

    // A falsified side: HU claims it accepted case `a` the moment it was sent, earlier than
    // it did (a timeline still in order; one before the sending is refused, see
    // `forged_and_impossible_fact_reports_are_refused_and_alarmed`).
    let mut forged = fa.clone();
    assert_ne!(fa.accepted_at.as_ref(), Some(&fa.sent_at));
    forged.accepted_at = Some(fa.sent_at.clone());
    let send = |report: FactReport| {
        let mut body = Vec::new();
        ciborium::into_writer(&report, &mut body).unwrap();
        fed.send_operations(HU, EU, KIND_FACT, Some(a), body)
    };
    let outcome = send(FactReport {
        v: 1,
        side: Side::Responder,
        steps: 4,
        fact: forged,
        signed: None,
    })
    .await;
    assert_eq!(outcome, Outcome::Accepted);
    let flagged: Vec<_> = commission_cases(eu.store())
        .unwrap()
        .into_iter()
        .filter(|c| c.flagged())
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].case, a.to_string());
    assert_eq!(flagged[0].checked.disagreements, ["accepted_at"]);
    assert_eq!(
        flagged[0].checked.fact.accepted_at, fa.accepted_at,
        "the requester's report is used"
    );

    // A report of fewer steps arriving after it is superseded already: accepted (it is
    // genuine and only late), kept nowhere.
    let outcome = send(FactReport {
        v: 1,
        side: Side::Responder,
        steps: 2,
        fact: fa.clone(),
        signed: None,
    })
    .await;
    assert_eq!(outcome, Outcome::Accepted);
    let held = commission_cases(eu.store())
        .unwrap()
        .into_iter()
        .find(|c| c.case == a.to_string())
        .unwrap();
    assert_eq!(held.responder_steps, Some(4));
    assert!(held.flagged(), "the forged report of 4 steps is still held");

    // HU cannot report DE's side.
    let outcome = send(FactReport {
        v: 1,
        side: Side::Requester,
        steps: 9,
        fact: fa.clone(),
        signed: None,
    })
    .await;
    assert_eq!(
        outcome,
        Outcome::Rejected(RejectCode::Application("not_own_side".into()))
    );

    stop.cancel();
    for r in reporters {
        r.await.unwrap();
    }
    de.stop().await;
    hu.stop().await;
    eu.stop().await;
}

/// A hostile member cannot rewrite the Commission's facts of a case between other
/// countries, and nobody can report an impossible timeline or an unbounded step count:
/// each is refused with its code, counted as an alarm, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_impossible_fact_reports_are_refused_and_alarmed() {
    let fed = Federation::new(&[DE, HU, AT, EU]);
    let facts = FactApp::default();
    let alarms = facts.alarm_counter().clone();
    let eu = fed
        .start_with(EU, Applications::new(vec![Arc::new(facts)]))
        .await;
    let case = CaseId::random();
    let t = |s: &str| format!("2026-11-{s}Z");
    let genuine = imi_scoreboard::Fact {
        case: case.to_string(),
        area: "PQ".into(),
        requester: "DE".into(),
        responder: "HU".into(),
        sent_at: t("02T10:00:00"),
        accepted_at: Some(t("03T10:00:00")),
        withdrawn_at: None,
        answered_at: Some(t("10T10:00:00")),
        deadline: Some("2026-12-01".into()),
        timeliness: Some(5),
        efforts: Some(5),
    };
    let fed = &fed;
    let outcome = |from: imi_protocol::NodeId,
                   side: Side,
                   steps: u32,
                   fact: imi_scoreboard::Fact,
                   signed: Option<imi_scoreboard::Fact>| {
        let mut body = Vec::new();
        ciborium::into_writer(
            &FactReport {
                v: 1,
                side,
                steps,
                fact,
                signed,
            },
            &mut body,
        )
        .unwrap();
        fed.send_operations(from, EU, KIND_FACT, Some(case), body)
    };
    let alarm = |from: &str, code: &str| {
        alarms
            .get_or_create(&imi_engine::metrics::PeerCodeLabel {
                peer: from.into(),
                code: code.into(),
            })
            .get()
    };
    let rejected = |c: &str| Outcome::Rejected(RejectCode::Application(c.into()));

    // A report whose defended time lies before the signed one (a receiver only ever moves a
    // time later, to its receipt) is impossible.
    let mut earlier = genuine.clone();
    earlier.accepted_at = Some(t("03T09:00:00"));
    assert_eq!(
        outcome(DE, Side::Requester, 6, earlier, Some(genuine.clone())).await,
        rejected("impossible_timeline")
    );
    assert_eq!(alarm("DE", "impossible_timeline"), 1);
    assert!(commission_cases(eu.store()).unwrap().is_empty());

    // DE's genuine report of its side: HU's accept reached DE two hours after HU signed it,
    // so DE defends its receipt time and reports the signed facts beside.
    let mut delayed = genuine.clone();
    delayed.accepted_at = Some(t("03T12:00:00"));
    assert_eq!(
        outcome(
            DE,
            Side::Requester,
            6,
            delayed.clone(),
            Some(genuine.clone())
        )
        .await,
        Outcome::Accepted
    );
    // One side only so far: counted, and published as one-sided.
    let one = commission_cases(eu.store()).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].one_sided(), Some(Side::Requester));
    assert!(!one[0].flagged());
    let before = commission_cases(eu.store()).unwrap();

    // AT claims to be the requester of DE's case (ratings 1/1, never accepted).
    let mut forged = genuine.clone();
    forged.requester = "AT".into();
    forged.timeliness = Some(1);
    forged.efforts = Some(1);
    forged.accepted_at = None;
    assert_eq!(
        outcome(AT, Side::Requester, 7, forged.clone(), None).await,
        rejected("parties_mismatch")
    );
    // … or its responder.
    let mut forged = genuine.clone();
    forged.responder = "AT".into();
    assert_eq!(
        outcome(AT, Side::Responder, 7, forged, None).await,
        rejected("parties_mismatch")
    );
    // HU, the real responder, cannot change who the requester is.
    let mut forged = genuine.clone();
    forged.requester = "AT".into();
    assert_eq!(
        outcome(HU, Side::Responder, 7, forged, None).await,
        rejected("parties_mismatch")
    );
    // Answered before it was sent; accepted before it was sent.
    let mut impossible = genuine.clone();
    impossible.answered_at = Some("1970-01-01T00:00:00Z".into());
    assert_eq!(
        outcome(HU, Side::Responder, 7, impossible, None).await,
        rejected("impossible_timeline")
    );
    let mut impossible = genuine.clone();
    impossible.accepted_at = Some(t("01T10:00:00"));
    assert_eq!(
        outcome(DE, Side::Requester, 7, impossible, None).await,
        rejected("impossible_timeline")
    );
    // A step count no case can reach would block every later genuine report.
    assert_eq!(
        outcome(DE, Side::Requester, u32::MAX, genuine.clone(), None).await,
        rejected("implausible_steps")
    );

    assert_eq!(alarm("AT", "parties_mismatch"), 2);
    assert_eq!(alarm("HU", "parties_mismatch"), 1);
    assert_eq!(alarm("HU", "impossible_timeline"), 1);
    assert_eq!(alarm("DE", "impossible_timeline"), 2);
    assert_eq!(alarm("DE", "implausible_steps"), 1);
    assert_eq!(
        commission_cases(eu.store()).unwrap(),
        before,
        "nothing refused changed the Commission's facts"
    );
    // The genuine responder's report is still accepted. Both sides' signed facts agree: not
    // flagged, not one-sided; the figures use the requester's defended times.
    assert_eq!(
        outcome(HU, Side::Responder, 6, genuine, None).await,
        Outcome::Accepted
    );
    let both = commission_cases(eu.store()).unwrap();
    assert_eq!(both.len(), 1);
    assert!(
        !both[0].flagged() && both[0].one_sided().is_none(),
        "{both:?}"
    );
    assert_eq!(both[0].checked.fact, delayed);
    eu.stop().await;
}

/// Reports pending together leave in one `imi.facts` envelope, cleared in the commit that
/// sends it; a lone one leaves as `imi.fact`, its case in the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_pending_together_travel_in_one_envelope() {
    let fed = Federation::new(&[DE, HU, EU]);
    let Recorded {
        de,
        de_cases,
        hu,
        eu,
        recorder,
        ..
    } = recorded(&fed, false).await;
    let from_de = || -> Vec<(String, Vec<u8>)> {
        recorder
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, from, _)| *from == DE)
            .map(|(k, _, b)| (k.clone(), b.clone()))
            .collect()
    };

    let cases: Vec<CaseId> = (0..3).map(|_| CaseId::random()).collect();
    for id in &cases {
        de_creates(&de, &de_cases, *id).await;
    }
    assert_eq!(de.rows(imi_apps::facts::FACTS_PENDING).len(), 3);
    let sent = imi_apps::facts::report_pending(de.engine(), EU)
        .await
        .unwrap();
    assert_eq!(sent, 3);
    assert!(de.rows(imi_apps::facts::FACTS_PENDING).is_empty());
    crate::rig::wait_until("EU holds the three cases", || {
        commission_cases(eu.store()).unwrap().len() == 3
    })
    .await;
    let seen = from_de();
    assert_eq!(seen.len(), 1, "one envelope for three reports");
    assert_eq!(seen[0].0, KIND_FACTS);
    let batch: Vec<FactReport> = ciborium::from_reader(seen[0].1.as_slice()).unwrap();
    let mut named: Vec<String> = batch.iter().map(|r| r.fact.case.clone()).collect();
    let mut expected: Vec<String> = cases.iter().map(ToString::to_string).collect();
    named.sort();
    expected.sort();
    assert_eq!(named, expected);

    // A lone pending report: `imi.fact`.
    let lone = CaseId::random();
    de_creates(&de, &de_cases, lone).await;
    assert_eq!(
        imi_apps::facts::report_pending(de.engine(), EU)
            .await
            .unwrap(),
        1
    );
    crate::rig::wait_until("EU holds the fourth case", || {
        commission_cases(eu.store()).unwrap().len() == 4
    })
    .await;
    let seen = from_de();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].0, KIND_FACT);
    let report: FactReport = ciborium::from_reader(seen[1].1.as_slice()).unwrap();
    assert_eq!(report.fact.case, lone.to_string());
    de.stop().await;
    hu.stop().await;
    eu.stop().await;
}

/// A batch is all or nothing: one report the sender may not make refuses the envelope and
/// keeps none of its reports; an empty or oversized list, or a batch naming a case in its
/// header, is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_refused_report_keeps_nothing() {
    let fed = Federation::new(&[DE, HU, EU]);
    let eu = fed
        .start_with(EU, Applications::new(vec![Arc::new(FactApp::default())]))
        .await;
    let report_of = |side: Side, case: CaseId| FactReport {
        v: 1,
        side,
        steps: 1,
        fact: imi_scoreboard::Fact {
            case: case.to_string(),
            area: "PQ".into(),
            requester: "DE".into(),
            responder: "HU".into(),
            sent_at: "2026-11-02T10:00:00Z".into(),
            accepted_at: None,
            withdrawn_at: None,
            answered_at: None,
            deadline: Some("2026-12-01".into()),
            timeliness: None,
            efforts: None,
        },
        signed: None,
    };
    let report = |side: Side| report_of(side, CaseId::random());
    let outcome = |reports: Vec<FactReport>, case: Option<CaseId>| {
        let mut body = Vec::new();
        ciborium::into_writer(&reports, &mut body).unwrap();
        fed.send_operations(DE, EU, KIND_FACTS, case, body)
    };
    let rejected = |c: &str| Outcome::Rejected(RejectCode::Application(c.into()));

    // DE's own side of two cases, and HU's side of a third, which DE may not report.
    let forged = vec![
        report(Side::Requester),
        report(Side::Requester),
        report(Side::Responder),
    ];
    assert_eq!(outcome(forged, None).await, rejected("not_own_side"));
    assert!(commission_cases(eu.store()).unwrap().is_empty());
    assert_eq!(outcome(vec![], None).await, rejected("malformed_report"));
    let too_many: Vec<FactReport> = (0..=MAX_BATCH_REPORTS)
        .map(|_| report(Side::Requester))
        .collect();
    assert_eq!(outcome(too_many, None).await, rejected("malformed_report"));
    let named = CaseId::random();
    assert_eq!(
        outcome(
            vec![report_of(Side::Requester, named), report(Side::Requester)],
            Some(named)
        )
        .await,
        rejected("case_mismatch")
    );
    assert!(commission_cases(eu.store()).unwrap().is_empty());

    // DE's own sides only: all kept.
    assert_eq!(
        outcome(vec![report(Side::Requester), report(Side::Requester)], None).await,
        Outcome::Accepted
    );
    assert_eq!(commission_cases(eu.store()).unwrap().len(), 2);
    eu.stop().await;
}

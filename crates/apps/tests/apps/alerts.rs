//! The alert application against hostile peers: HU runs it. Alerts from DE (a raw client):
//! a malformed one is refused and changes nothing; a valid one goes to HU's incoming-alert
//! coordinator only; a grant must come from the sender and carry the key that opens the
//! identity, and then only the authorities named read it. Forwards to an alert HU sent:
//! only the recipient's coordinator, naming the alert as predecessor, queues a grant.

use crate::cases::cases_for;
use crate::rig::Federation;
use imi_apps::alerts::{self, ALERTS, AlertApp, NewAlert};
use imi_apps::diagnostics::DiagnosticApp;
use imi_apps::requests::SubjectData;
use imi_domain::alert::{ALERT_VERSION, Alert, AlertMessage, encode, identity_context};
use imi_domain::request::{AnswerPayload, CodedAnswer};
use imi_engine::Applications;
use imi_protocol::Clock;
use imi_protocol::NodeId::{AT, DE, HU};
use imi_protocol::fields::seal_fields;
use imi_protocol::{AuthorityId, CaseId, Draft, Kind, MessageId, NodeId, Outcome, RejectCode};
use std::sync::Arc;

const DAY: u64 = 86_400_000;

fn id(s: &str) -> AuthorityId {
    AuthorityId::new(s).unwrap()
}

fn professional() -> SubjectData {
    SubjectData {
        name: "Dr. Erika Mustermann".into(),
        date_of_birth: Some("1970-02-03".into()),
        details: Default::default(),
    }
}

/// The answers of a `PQ-P02` alert: a prohibition, decided on day 20,000.
pub(crate) fn fields() -> Vec<CodedAnswer> {
    vec![
        CodedAnswer {
            question: "PQ-Q12".into(),
            answer: AnswerPayload::Choice("PQ-Q12-PROHIBITION".into()),
        },
        CodedAnswer {
            question: "PQ-Q13".into(),
            answer: AnswerPayload::Date(20_000 * DAY),
        },
    ]
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn draft(
    authority: &str,
    to: &[NodeId],
    case: CaseId,
    prev: Vec<MessageId>,
    m: &AlertMessage,
) -> Draft {
    Draft {
        kind: Kind::new(Kind::ALERT).unwrap(),
        step: Some(Kind::new(m.step()).unwrap()),
        authority: id(authority),
        to: to.to_vec(),
        case: Some(case),
        prev,
        body: encode(m),
    }
}

fn rejected(code: &str) -> Outcome {
    Outcome::Rejected(RejectCode::Application(code.into()))
}

#[tokio::test]
async fn forged_grants_and_forwards_are_refused_and_only_the_named_read_the_identity() {
    let fed = Federation::new(&[DE, HU, AT, NodeId::EU]);
    let cases = cases_for(HU);
    let professions = ["PROF-DOCTOR".to_owned(), "PROF-NURSE".to_owned()].into();
    let app = Arc::new(AlertApp::new(cases.clone(), Some(professions)));
    let hu = fed
        .start_with(
            HU,
            Applications::new(vec![Arc::new(DiagnosticApp::default()), app.clone()]),
        )
        .await;
    // HU also sends to both: their clients leave its requests unanswered.
    let de = fed.deaf_client(DE);
    let at = fed.deaf_client(AT);

    // DE's alert to HU and AT, its identity sealed under `key`.
    let alert_id = CaseId::random();
    let key = [42u8; 32];
    let alert = Alert {
        v: ALERT_VERSION,
        procedure: "PQ-P02".into(),
        profession: "PROF-DOCTOR".into(),
        fields: fields(),
        decided: 20_000 * DAY,
        valid_until: None,
        identity: seal_fields(
            &key,
            [7; 12],
            &identity_context(&alert_id),
            &cbor(&professional()),
        ),
    };
    let mut no_profession = alert.clone();
    no_profession.profession = String::new();
    let o = fed
        .send_draft(
            &de,
            DE,
            HU,
            &draft(
                "DE-NC",
                &[HU, AT],
                alert_id,
                vec![],
                &AlertMessage::Alert(no_profession),
            ),
        )
        .await;
    assert_eq!(o, rejected("missing_profession"));
    let mut unknown_profession = alert.clone();
    unknown_profession.profession = "PROF-ASTRONAUT".into();
    let o = fed
        .send_draft(
            &de,
            DE,
            HU,
            &draft(
                "DE-NC",
                &[HU, AT],
                alert_id,
                vec![],
                &AlertMessage::Alert(unknown_profession),
            ),
        )
        .await;
    assert_eq!(o, rejected("unknown_profession"));
    // A professional-qualification alert does not go to the Commission.
    let o = fed
        .send_draft(
            &de,
            DE,
            HU,
            &draft(
                "DE-NC",
                &[HU, NodeId::EU],
                alert_id,
                vec![],
                &AlertMessage::Alert(alert.clone()),
            ),
        )
        .await;
    assert_eq!(o, rejected("commission_not_allowed"));
    assert!(hu.rows(ALERTS).is_empty(), "a refused alert writes nothing");
    let o = fed
        .send_draft(
            &de,
            DE,
            HU,
            &draft(
                "DE-NC",
                &[HU, AT],
                alert_id,
                vec![],
                &AlertMessage::Alert(alert.clone()),
            ),
        )
        .await;
    assert_eq!(o, Outcome::Accepted);
    let store = hu.engine().reader();
    let ix = alerts::index(store.as_ref(), &alert_id).unwrap().unwrap();
    assert!(
        alerts::box_entry(store.as_ref(), &id("HU-NC"), &alert_id)
            .unwrap()
            .is_some()
    );
    assert!(
        alerts::box_entry(store.as_ref(), &id("HU-ENKK"), &alert_id)
            .unwrap()
            .is_none()
    );
    assert!(
        alerts::identity(&cases, store.as_ref(), &alert_id, &id("HU-NC"))
            .unwrap()
            .is_none()
    );

    // Grants: from the sender only, with the key that opens the identity.
    let grant = |k: [u8; 32]| AlertMessage::Grant {
        v: ALERT_VERSION,
        authorities: vec![id("HU-ENKK")],
        key: k.to_vec(),
    };
    let before = hu.rows(ALERTS);
    let o = fed
        .send_draft(
            &at,
            AT,
            HU,
            &draft("AT-NC", &[HU], alert_id, vec![ix.message], &grant(key)),
        )
        .await;
    assert_eq!(o, rejected("not_sender"));
    let o = fed
        .send_draft(
            &de,
            DE,
            HU,
            &draft("DE-NC", &[HU], alert_id, vec![ix.message], &grant([1; 32])),
        )
        .await;
    assert_eq!(o, rejected("invalid_key"));
    assert_eq!(hu.rows(ALERTS), before, "refused grants change nothing");
    let o = fed
        .send_draft(
            &de,
            DE,
            HU,
            &draft("DE-NC", &[HU], alert_id, vec![ix.message], &grant(key)),
        )
        .await;
    assert_eq!(o, Outcome::Accepted);
    let shown = alerts::identity(&cases, store.as_ref(), &alert_id, &id("HU-ENKK")).unwrap();
    assert_eq!(shown.unwrap().name, "Dr. Erika Mustermann");
    assert!(
        alerts::identity(&cases, store.as_ref(), &alert_id, &id("HU-NC"))
            .unwrap()
            .is_none()
    );

    // Modifications: from the sender, naming the alert, with a full measure and a higher
    // revision; anything else is refused and changes nothing.
    let modify = |revision: u32, fields: Vec<CodedAnswer>| AlertMessage::Modify {
        v: ALERT_VERSION,
        revision,
        fields,
        valid_until: Some(20_500 * DAY),
    };
    let mut restriction = fields();
    restriction[0].answer = AnswerPayload::Choice("PQ-Q12-RESTRICTION".into());
    let before = hu.rows(ALERTS);
    for (from, authority, prev, m, code) in [
        (
            AT,
            "AT-NC",
            vec![ix.message],
            modify(1, restriction.clone()),
            "not_sender",
        ),
        (
            DE,
            "DE-NC",
            vec![],
            modify(1, restriction.clone()),
            "wrong_predecessor",
        ),
        (
            DE,
            "DE-NC",
            vec![ix.message],
            modify(1, restriction[..1].to_vec()),
            "missing_field",
        ),
        (
            DE,
            "DE-NC",
            vec![ix.message],
            modify(0, restriction.clone()),
            "stale_revision",
        ),
    ] {
        let client = if from == AT { &at } else { &de };
        let o = fed
            .send_draft(
                client,
                from,
                HU,
                &draft(authority, &[HU], alert_id, prev, &m),
            )
            .await;
        assert_eq!(o, rejected(code), "{code}");
    }
    assert_eq!(
        hu.rows(ALERTS),
        before,
        "refused modifications change nothing"
    );
    let o = fed
        .send_draft(
            &de,
            DE,
            HU,
            &draft(
                "DE-NC",
                &[HU],
                alert_id,
                vec![ix.message],
                &modify(1, restriction.clone()),
            ),
        )
        .await;
    assert_eq!(o, Outcome::Accepted);
    let modified = alerts::index(store.as_ref(), &alert_id).unwrap().unwrap();
    assert_eq!(
        (modified.revision, modified.valid_until, &modified.fields),
        (1, Some(20_500 * DAY), &restriction)
    );
    let o = fed
        .send_draft(
            &de,
            DE,
            HU,
            &draft(
                "DE-NC",
                &[HU],
                alert_id,
                vec![ix.message],
                &modify(1, fields()),
            ),
        )
        .await;
    assert_eq!(o, rejected("stale_revision"), "a replayed modification");

    // HU's own alert to DE and AT (no engine answers: the envelopes wait in HU's outbox);
    // forwards signed by AT.
    let (own, own_ix) = app
        .send(
            hu.engine(),
            id("HU-ENKK"),
            NewAlert {
                procedure: "PQ-P02".into(),
                profession: "PROF-DOCTOR".into(),
                fields: fields(),
                decided: 20_000 * DAY,
                valid_until: None,
                identity: professional(),
                member_states: vec![],
                commission: false,
            },
            None,
        )
        .await
        .unwrap();
    assert!(own_ix.late, "decided long ago: late");
    assert_eq!(own_ix.recipients, vec![AT, DE], "every other member state");
    // The sender modifies it, then closes it; a closed alert is not modified.
    let m = app
        .modify(hu.engine(), own, id("HU-ENKK"), restriction.clone(), None)
        .await
        .unwrap();
    assert_eq!((m.revision, &m.fields), (1, &restriction));
    let refused = |e: imi_apps::AppError| match e {
        imi_apps::AppError::Refused(r) => r.code.label().to_owned(),
        other => panic!("not a refusal: {other}"),
    };
    let e = app
        .modify(hu.engine(), own, id("HU-OTHER"), fields(), None)
        .await
        .unwrap_err();
    assert_eq!(refused(e), "not_found", "another authority's alert");
    app.close(hu.engine(), own, id("HU-ENKK"), 20_001 * DAY)
        .await
        .unwrap();
    let e = app
        .modify(hu.engine(), own, id("HU-ENKK"), fields(), None)
        .await
        .unwrap_err();
    assert_eq!(refused(e), "already_closed");
    // A type for every other member state names none.
    let e = app
        .send(
            hu.engine(),
            id("HU-ENKK"),
            NewAlert {
                procedure: "PQ-P02".into(),
                profession: "PROF-DOCTOR".into(),
                fields: fields(),
                decided: 20_000 * DAY,
                valid_until: None,
                identity: professional(),
                member_states: vec![AT],
                commission: false,
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(refused(e), "invalid_recipients");
    let forward = AlertMessage::Forward {
        v: ALERT_VERSION,
        authorities: vec![id("AT-AEK")],
    };
    let before = hu.rows(ALERTS);
    let queued_at = hu.queue_depth(AT);
    let o = fed
        .send_draft(
            &at,
            AT,
            HU,
            &draft("AT-AEK", &[HU], own, vec![own_ix.message], &forward),
        )
        .await;
    assert_eq!(o, rejected("not_coordinator"));
    let o = fed
        .send_draft(&at, AT, HU, &draft("AT-NC", &[HU], own, vec![], &forward))
        .await;
    assert_eq!(o, rejected("wrong_predecessor"));
    let foreign = AlertMessage::Forward {
        v: ALERT_VERSION,
        authorities: vec![id("DE-NC")],
    };
    let o = fed
        .send_draft(
            &at,
            AT,
            HU,
            &draft("AT-NC", &[HU], own, vec![own_ix.message], &foreign),
        )
        .await;
    assert_eq!(o, rejected("invalid_authorities"));
    assert_eq!(hu.rows(ALERTS), before, "refused forwards change nothing");
    let o = fed
        .send_draft(
            &at,
            AT,
            HU,
            &draft("AT-NC", &[HU], own, vec![own_ix.message], &forward),
        )
        .await;
    assert_eq!(o, Outcome::Accepted);
    let pending: Vec<_> = hu
        .rows(ALERTS)
        .into_iter()
        .filter(|(k, _)| k.starts_with(b"p/"))
        .collect();
    assert_eq!(pending.len(), 1, "one grant queued for AT");
    // Sending the grant clears its row in the same commit: one fsync, and a crash cannot
    // send it twice.
    let syncs = hu.store().sync_count();
    assert_eq!(alerts::send_grants(&cases, hu.engine()).await.unwrap(), 1);
    assert_eq!(hu.store().sync_count() - syncs, 1);
    assert!(
        hu.rows(ALERTS).iter().all(|(k, _)| !k.starts_with(b"p/")),
        "the grant's row is cleared"
    );
    assert_eq!(hu.queue_depth(AT) - queued_at, 1, "the grant waits for AT");
    drop(store);
    de.stop().await;
    at.stop().await;
    hu.stop().await;
}

/// The three-day rules and expiry on a clock the test moves (HU alone: its alerts go to no
/// other node). An alert sent on the day of the decision is on time; one sent four days
/// later is late and counted; so is a closure four days after the measure ended, while one
/// on the day it ended is not. The retention pass erases the identity of the closed alert
/// and, once the clock passes its `valid_until` (extended once by the sender), of the
/// expiring one; not before. It reads the alerts' erasure times, not every alert.
#[tokio::test]
async fn the_three_day_rules_and_expiry_run_on_the_nodes_clock() {
    let fed = Federation::new(&[HU]);
    let cases = cases_for(HU);
    let app = Arc::new(AlertApp::new(cases.clone(), None));
    let t0 = (crate::rig::now_ms() / DAY) * DAY + 10 * 3_600_000;
    let clock = imi_protocol::ManualClock::new(t0);
    let hu = fed
        .start_clocked(
            HU,
            Applications::new(vec![Arc::new(DiagnosticApp::default()), app.clone()]),
            Federation::engine_config(),
            Arc::new(clock.clone()),
        )
        .await;
    let metric = |name: &str| {
        let mut registry = prometheus_client::registry::Registry::default();
        imi_engine::Application::register_metrics(app.as_ref(), &mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    let today = t0 - t0 % DAY;
    let alert = |valid_until: Option<u64>| NewAlert {
        procedure: "PQ-P02".into(),
        profession: "PROF-DOCTOR".into(),
        fields: fields(),
        decided: today,
        valid_until,
        identity: professional(),
        member_states: vec![],
        commission: false,
    };
    let send = |n: NewAlert| app.send(hu.engine(), id("HU-ENKK"), n, None);
    let (on_time, ix) = send(alert(None)).await.unwrap();
    assert!(!ix.late);
    let (expiring, _) = send(alert(Some(today + 6 * DAY))).await.unwrap();
    assert_eq!(metric("imi_alerts_late_total"), 0.0);
    clock.advance(4 * DAY);
    let (_, late) = send(alert(None)).await.unwrap();
    assert!(late.late, "sent four days after the decision");
    assert_eq!(metric("imi_alerts_late_total"), 1.0);

    // Closures: four days after the end is late; on the day of the end is not.
    app.close(hu.engine(), on_time, id("HU-ENKK"), today)
        .await
        .unwrap();
    assert_eq!(metric("imi_alerts_late_closures_total"), 1.0);
    let (prompt, _) = send(alert(None)).await.unwrap();
    app.close(
        hu.engine(),
        prompt,
        id("HU-ENKK"),
        clock.now_ms() - clock.now_ms() % DAY,
    )
    .await
    .unwrap();
    assert_eq!(metric("imi_alerts_late_closures_total"), 1.0);

    // Retention reads the alerts' erasure times (`d/` rows: closed at, or valid until), not
    // every alert the node ever stored: the two closed ones and the expiring one have a row.
    // A store written before those rows existed has none; the first run of a process gives
    // every alert its row, and erases as before.
    let due_rows = || {
        let mut ids: Vec<Vec<u8>> = hu
            .rows(ALERTS)
            .into_iter()
            .filter(|(k, _)| k.starts_with(b"d/"))
            .map(|(k, _)| k[10..].to_vec())
            .collect();
        ids.sort();
        ids
    };
    let ids = |of: &[&CaseId]| {
        let mut ids: Vec<Vec<u8>> = of.iter().map(|id| id.as_bytes().to_vec()).collect();
        ids.sort();
        ids
    };
    assert_eq!(due_rows(), ids(&[&on_time, &expiring, &prompt]));
    let mut batch = imi_store::WriteBatch::new();
    for (k, _) in hu.rows(ALERTS) {
        if k.starts_with(b"d/") {
            batch.delete(ALERTS, k);
        }
    }
    hu.store()
        .write(batch, imi_store::Durability::Sync)
        .unwrap();
    assert!(due_rows().is_empty());

    // Retention on the node's clock: the closed alerts now, the expiring one after its
    // validity.
    let store = hu.engine().reader();
    let shown = |a: &CaseId| {
        alerts::identity(&cases, store.as_ref(), a, &id("HU-ENKK"))
            .unwrap()
            .is_some()
    };
    assert!(shown(&on_time) && shown(&expiring));
    let erased = alerts::erase_expired(hu.engine(), &cases, clock.now_ms())
        .await
        .unwrap();
    assert_eq!(erased, 2, "the two closed alerts");
    assert!(!shown(&on_time) && shown(&expiring));
    assert_eq!(
        due_rows(),
        ids(&[&expiring]),
        "indexed once; the erased ones' rows gone"
    );
    clock.advance(DAY);
    assert_eq!(
        alerts::erase_expired(hu.engine(), &cases, clock.now_ms())
            .await
            .unwrap(),
        0,
        "day 5: still valid (until the start of day 6)"
    );
    // The sender extends the validity to day 8: the row of day 6 is reached and dropped,
    // the alert's identity kept until the row of day 8.
    app.modify(
        hu.engine(),
        expiring,
        id("HU-ENKK"),
        fields(),
        Some(today + 8 * DAY),
    )
    .await
    .unwrap();
    clock.advance(DAY);
    assert_eq!(
        alerts::erase_expired(hu.engine(), &cases, clock.now_ms())
            .await
            .unwrap(),
        0,
        "day 6: valid until day 8 now"
    );
    assert!(shown(&expiring));
    assert_eq!(due_rows(), ids(&[&expiring]), "the row of day 6 dropped");
    clock.advance(2 * DAY);
    assert_eq!(
        alerts::erase_expired(hu.engine(), &cases, clock.now_ms())
            .await
            .unwrap(),
        1
    );
    assert!(!shown(&expiring));
    assert!(due_rows().is_empty(), "{:?}", due_rows());
    let ix = alerts::index(store.as_ref(), &expiring).unwrap().unwrap();
    assert!(ix.erased.is_some(), "its index records the erasure");
    drop(store);
    hu.stop().await;
}

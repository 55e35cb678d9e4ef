//! Usage facts (`imi.usage`). HU runs alerts with fact reporting and the reporter; EU runs
//! the fact application. HU's alert becomes one usage fact at EU: its id, type, countries,
//! time and lateness, and nothing of the professional or the authorities. Raw clients then
//! send forged usage facts: for another sender, from the future or long ago, with the
//! sender among the recipients, for another id, with an extra field, or contradicting one
//! already held. Each is refused with its code and changes nothing; a resend of the same
//! fact is accepted and counted once. Usage facts pending together travel in one
//! `imi.usages` envelope, kept all or none.

use crate::cases::cases_plain;
use crate::rig::{Federation, Node, now_ms, within};
use imi_apps::alerts::{AlertApp, NewAlert};
use imi_apps::diagnostics::DiagnosticApp;
use imi_apps::facts::{
    FactApp, FactReporter, KIND_USAGE, KIND_USAGES, MAX_BATCH_USAGE, USAGE, USAGE_PENDING,
    report_pending, usage_facts,
};
use imi_apps::requests::SubjectData;
use imi_engine::Applications;
use imi_protocol::NodeId::{AT, DE, EU, HU};
use imi_protocol::{AuthorityId, CaseId, NodeId, Outcome, RejectCode};
use imi_scoreboard::usage::{UsageFact, UsageKind};
use std::sync::Arc;

const DAY: u64 = 86_400_000;

/// EU with `facts`; HU with alerts whose usage facts it records, and the reporter (called
/// by hand here: the rig runs no periodic job unless a test does). Returns EU, HU and
/// HU's alert application.
async fn eu_and_hu(fed: &Federation, facts: FactApp) -> (Node, Node, Arc<AlertApp>) {
    let eu = fed
        .start_with(EU, Applications::new(vec![Arc::new(facts)]))
        .await;
    let cases = Arc::new(cases_plain(HU).with_fact_reports());
    let app = Arc::new(AlertApp::new(cases, None));
    let hu = fed
        .start_with(
            HU,
            Applications::new(vec![
                Arc::new(DiagnosticApp::default()),
                app.clone(),
                Arc::new(FactReporter::new(EU)),
            ]),
        )
        .await;
    (eu, hu, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_one_usage_fact_at_the_commission_and_forged_ones_are_refused() {
    let fed = Federation::new(&[DE, HU, AT, EU]);
    let facts = FactApp::default();
    let alarms = facts.alarm_counter().clone();
    let (eu, hu, app) = eu_and_hu(&fed, facts).await;
    // HU's alert goes to DE and AT, whose clients leave it unanswered.
    let de = fed.deaf_client(DE);
    let at = fed.deaf_client(AT);
    let (id, ix) = app
        .send(
            hu.engine(),
            AuthorityId::new("HU-ENKK").unwrap(),
            doctor_alert(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(usage_facts(hu.store()).unwrap().len(), 1, "HU's own copy");
    assert_eq!(hu.rows(USAGE_PENDING).len(), 1);
    let syncs = hu.store().sync_count();
    assert_eq!(report_pending(hu.engine(), EU).await.unwrap(), 1);
    // One commit sends the fact and clears its pending row (a crash between the two could
    // otherwise send it twice): one fsync, not two.
    assert_eq!(hu.store().sync_count() - syncs, 1);
    assert!(hu.rows(USAGE_PENDING).is_empty());
    let held = within("EU to hold HU's usage fact", async {
        loop {
            let held = usage_facts(eu.store()).unwrap();
            if !held.is_empty() {
                return held;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let expected = UsageFact {
        v: 1,
        kind: UsageKind::Alert,
        id: id.to_string(),
        procedure: "PQ-P02".into(),
        sender: "HU".into(),
        recipients: vec!["AT".into(), "DE".into()],
        sent_at: UsageFact::time(ix.sent_at),
        late: true,
    };
    assert_eq!(held, vec![expected.clone()]);
    for (_, v) in eu.rows(USAGE) {
        let text = String::from_utf8_lossy(&v);
        assert!(
            !text.contains("Erika") && !text.contains("HU-ENKK"),
            "{text}"
        );
    }

    // Forged facts, each from a raw client of `from`.
    let send = |from: NodeId, case: CaseId, fact: Vec<u8>| {
        fed.send_operations(from, EU, KIND_USAGE, Some(case), fact)
    };
    let cbor = |f: &UsageFact| {
        let mut out = Vec::new();
        ciborium::into_writer(f, &mut out).unwrap();
        out
    };
    let rejected = |c: &str| Outcome::Rejected(RejectCode::Application(c.into()));
    let fresh = CaseId::random();
    let own = UsageFact {
        id: fresh.to_string(),
        sender: "AT".into(),
        recipients: vec!["DE".into(), "HU".into()],
        sent_at: UsageFact::time(now_ms() - DAY),
        late: false,
        ..expected.clone()
    };
    let mut for_de = own.clone();
    for_de.sender = "DE".into();
    for_de.recipients = vec!["AT".into(), "HU".into()];
    let mut future = own.clone();
    future.sent_at = UsageFact::time(now_ms() + DAY);
    let mut ancient = own.clone();
    ancient.sent_at = UsageFact::time(now_ms() - 400 * DAY);
    let mut to_itself = own.clone();
    to_itself.recipients = vec!["AT".into(), "DE".into()];
    let mut extra = serde_json::to_value(&own).unwrap();
    extra["authority"] = "AT-NC".into();
    let mut extra_bytes = Vec::new();
    ciborium::into_writer(&extra, &mut extra_bytes).unwrap();
    let before = eu.rows(USAGE);
    for (what, case, body, code) in [
        ("another country's", fresh, cbor(&for_de), "not_sender"),
        (
            "sent in the future",
            fresh,
            cbor(&future),
            "impossible_timeline",
        ),
        (
            "sent 400 days ago",
            fresh,
            cbor(&ancient),
            "impossible_timeline",
        ),
        (
            "to its own country",
            fresh,
            cbor(&to_itself),
            "invalid_fact",
        ),
        ("another id", CaseId::random(), cbor(&own), "case_mismatch"),
        ("an extra field", fresh, extra_bytes, "malformed_report"),
        ("HU's fact, sent by AT", id, cbor(&expected), "not_sender"),
    ] {
        assert_eq!(send(AT, case, body).await, rejected(code), "{what}");
    }
    assert_eq!(eu.rows(USAGE), before, "refused facts change nothing");
    let alarm = |code: &str| {
        alarms
            .get_or_create(&imi_engine::metrics::PeerCodeLabel {
                peer: "AT".into(),
                code: code.into(),
            })
            .get()
    };
    assert_eq!((alarm("not_sender"), alarm("impossible_timeline")), (2, 2));

    // The genuine fact, twice: held once. A different fact under the same id: refused.
    assert_eq!(send(AT, fresh, cbor(&own)).await, Outcome::Accepted);
    assert_eq!(send(AT, fresh, cbor(&own)).await, Outcome::Accepted);
    assert_eq!(usage_facts(eu.store()).unwrap().len(), 2);
    let mut changed = own.clone();
    changed.recipients = vec!["DE".into()];
    let held = eu.rows(USAGE);
    assert_eq!(
        send(AT, fresh, cbor(&changed)).await,
        rejected("conflicting_report")
    );
    assert_eq!(eu.rows(USAGE), held);
    assert_eq!(alarm("conflicting_report"), 1);
    // Half a minute "after" its report (a clock set back meanwhile): within the skew.
    let skewed_id = CaseId::random();
    let skewed = UsageFact {
        id: skewed_id.to_string(),
        sent_at: UsageFact::time(now_ms() + 30_000),
        ..own.clone()
    };
    assert_eq!(send(AT, skewed_id, cbor(&skewed)).await, Outcome::Accepted);
    assert_eq!(usage_facts(eu.store()).unwrap().len(), 3);
    de.stop().await;
    at.stop().await;
    hu.stop().await;
    eu.stop().await;
}

/// HU's alert about a doctor, to DE and AT, decided long ago (so sent late).
fn doctor_alert() -> NewAlert {
    NewAlert {
        procedure: "PQ-P02".into(),
        profession: "PROF-DOCTOR".into(),
        fields: crate::alerts::fields(),
        decided: 20_000 * DAY,
        valid_until: None,
        identity: SubjectData {
            name: "Dr. Erika Mustermann".into(),
            date_of_birth: None,
            details: Default::default(),
        },
        member_states: vec![],
        commission: false,
    }
}

/// Usage facts pending together leave in one `imi.usages` envelope, in one commit that
/// clears their rows; EU keeps every one. A batch from a raw client is all or nothing: one
/// fact the sender may not report refuses the envelope and keeps none; an empty list, one
/// over [`MAX_BATCH_USAGE`], or a batch naming a case in its header is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_facts_pending_together_travel_in_one_envelope() {
    let fed = Federation::new(&[DE, HU, AT, EU]);
    let (eu, hu, app) = eu_and_hu(&fed, FactApp::default()).await;
    let de = fed.deaf_client(DE);
    let at = fed.deaf_client(AT);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, _) = app
            .send(
                hu.engine(),
                AuthorityId::new("HU-ENKK").unwrap(),
                doctor_alert(),
                None,
            )
            .await
            .unwrap();
        ids.push(id.to_string());
    }
    assert_eq!(hu.rows(USAGE_PENDING).len(), 3);
    let (syncs, inbox) = (hu.store().sync_count(), eu.count(imi_engine::keys::INBOX));
    assert_eq!(report_pending(hu.engine(), EU).await.unwrap(), 3);
    assert_eq!(
        hu.store().sync_count() - syncs,
        1,
        "one commit for three facts"
    );
    assert!(hu.rows(USAGE_PENDING).is_empty());
    crate::rig::wait_until("EU holds HU's three usage facts", || {
        usage_facts(eu.store()).unwrap().len() == 3
    })
    .await;
    assert_eq!(
        eu.count(imi_engine::keys::INBOX) - inbox,
        1,
        "one envelope for three facts"
    );
    let mut held: Vec<String> = usage_facts(eu.store())
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    held.sort();
    ids.sort();
    assert_eq!(held, ids);

    // Raw batches from AT.
    let send =
        |body: Vec<u8>, case: Option<CaseId>| fed.send_operations(AT, EU, KIND_USAGES, case, body);
    let cbor = |facts: &[UsageFact]| {
        let mut out = Vec::new();
        ciborium::into_writer(facts, &mut out).unwrap();
        out
    };
    let own = || UsageFact {
        v: 1,
        kind: UsageKind::Notification,
        id: CaseId::random().to_string(),
        procedure: "PQ-P03".into(),
        sender: "AT".into(),
        recipients: vec!["DE".into()],
        sent_at: UsageFact::time(now_ms() - DAY),
        late: false,
    };
    let rejected = |c: &str| Outcome::Rejected(RejectCode::Application(c.into()));
    let before = eu.rows(USAGE);
    let mut hu_s = own();
    hu_s.sender = "HU".into();
    hu_s.recipients = vec!["AT".into()];
    assert_eq!(
        send(cbor(&[own(), own(), hu_s]), None).await,
        rejected("not_sender"),
        "HU's fact third in AT's batch"
    );
    let mut upper = own();
    upper.id = upper.id.to_uppercase();
    assert_eq!(
        send(cbor(&[own(), upper]), None).await,
        rejected("invalid_fact"),
        "an id that is not a case id"
    );
    assert_eq!(send(cbor(&[]), None).await, rejected("malformed_report"));
    let too_many: Vec<UsageFact> = (0..=MAX_BATCH_USAGE).map(|_| own()).collect();
    assert_eq!(
        send(cbor(&too_many), None).await,
        rejected("malformed_report")
    );
    let named = own();
    let case = named.id.parse().unwrap();
    assert_eq!(
        send(cbor(&[named, own()]), Some(case)).await,
        rejected("case_mismatch")
    );
    assert_eq!(eu.rows(USAGE), before, "refused batches keep nothing");

    // AT's own facts only: all kept.
    assert_eq!(send(cbor(&[own(), own()]), None).await, Outcome::Accepted);
    assert_eq!(usage_facts(eu.store()).unwrap().len(), 5);
    de.stop().await;
    at.stop().await;
    hu.stop().await;
    eu.stop().await;
}

//! The notification application against a hostile sender: HU runs it; a raw client signs
//! as DE. Every malformed or dishonest `notify` and `read` is a signed `rejected` receipt
//! with its code and changes nothing in HU's store; a valid one is stored for the
//! authorities named, encrypted at rest; an acknowledgement is kept once.

use crate::cases::cases_for;
use crate::rig::{Federation, Node, RawClient};
use imi_apps::diagnostics::DiagnosticApp;
use imi_apps::notifications::{self, NOTIFICATIONS, NotificationApp};
use imi_domain::notification::{
    Addressee, NOTIFICATION_VERSION, Notification, NotificationMessage, encode,
};
use imi_domain::request::{AnswerPayload, CodedAnswer};
use imi_engine::{Applications, keys};
use imi_protocol::NodeId::{AT, DE, HU};
use imi_protocol::{AuthorityId, CaseId, Draft, Kind, MessageId, NodeId, Outcome, RejectCode};
use std::sync::Arc;

fn id(s: &str) -> AuthorityId {
    AuthorityId::new(s).unwrap()
}

fn notification(recipients: Vec<Addressee>) -> Notification {
    let text = |q: &str, t: &str| CodedAnswer {
        question: q.into(),
        answer: AnswerPayload::Text(t.into()),
    };
    Notification {
        v: NOTIFICATION_VERSION,
        procedure: "CIT-P02".into(),
        recipients,
        fields: vec![
            text("CIT-Q01", "Geldtransport Sicher GmbH"),
            CodedAnswer {
                question: "CIT-Q02".into(),
                answer: AnswerPayload::Date(1_764_547_200_000),
            },
            CodedAnswer {
                question: "CIT-Q03".into(),
                answer: AnswerPayload::Choice("CIT-Q03-WITHDRAWN".into()),
            },
            CodedAnswer {
                question: "CIT-Q04".into(),
                answer: AnswerPayload::Date(1_764_547_200_000),
            },
        ],
        attachments: vec![],
        files: vec![],
    }
}

fn to(country: NodeId, authorities: &[&str]) -> Addressee {
    Addressee {
        country,
        authorities: authorities.iter().map(|a| id(a)).collect(),
    }
}

struct Rig {
    fed: Federation,
    hu: Node,
    /// Signs and sends as DE.
    raw: RawClient,
    /// Signs and sends as AT.
    raw_at: RawClient,
}

impl Rig {
    /// Seals `msg` as DE (authority `authority`) for `sealed_to`, with the header `step`,
    /// `case` and `prev` given, and sends it to HU; the receipt's outcome.
    async fn send(
        &self,
        authority: &str,
        sealed_to: &[NodeId],
        case: Option<CaseId>,
        step: &str,
        prev: Vec<MessageId>,
        body: Vec<u8>,
    ) -> Outcome {
        self.send_as(DE, authority, sealed_to, case, step, prev, body)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_as(
        &self,
        from: NodeId,
        authority: &str,
        sealed_to: &[NodeId],
        case: Option<CaseId>,
        step: &str,
        prev: Vec<MessageId>,
        body: Vec<u8>,
    ) -> Outcome {
        let draft = Draft {
            kind: Kind::new(Kind::NOTIFICATION).unwrap(),
            step: Some(Kind::new(step).unwrap()),
            authority: id(authority),
            to: sealed_to.to_vec(),
            case,
            prev,
            body,
        };
        let raw = if from == AT { &self.raw_at } else { &self.raw };
        self.fed.send_draft(raw, from, HU, &draft).await
    }

    async fn rejected(&self, what: &str, outcome: Outcome, code: &str) {
        let before = self.hu.rows(NOTIFICATIONS);
        assert_eq!(
            outcome,
            Outcome::Rejected(RejectCode::Application(code.into())),
            "{what}"
        );
        assert_eq!(
            self.hu.rows(NOTIFICATIONS),
            before,
            "{what}: nothing written"
        );
    }
}

#[tokio::test]
async fn hostile_notifications_and_acknowledgements_are_refused_and_change_nothing() {
    let fed = Federation::new(&[DE, HU, AT, NodeId::EU]);
    let cases = cases_for(HU);
    let hu = fed
        .start_with(
            HU,
            Applications::new(vec![
                Arc::new(DiagnosticApp::default()),
                Arc::new(NotificationApp(cases.clone())),
            ]),
        )
        .await;
    let raw = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    // HU notifies AT below: its delivery to this client is left unanswered.
    let raw_at = fed.deaf_client(AT);
    let r = Rig {
        fed,
        hu,
        raw,
        raw_at,
    };
    let notify = |n: Notification| encode(&NotificationMessage::Notify(n));
    let good = notification(vec![to(AT, &["AT-NC"]), to(HU, &["HU-ENKK"])]);

    // The nodes the key was sealed to must be exactly the recipients named.
    let case = CaseId::random();
    let o = r
        .send(
            "DE-BY-BLZK",
            &[HU],
            Some(case),
            "notify",
            vec![],
            notify(good.clone()),
        )
        .await;
    r.rejected("sealed to fewer nodes than named", o, "recipients_mismatch")
        .await;
    // The header's step must be the body's.
    let o = r
        .send(
            "DE-BY-BLZK",
            &[AT, HU],
            Some(case),
            "read",
            vec![],
            notify(good.clone()),
        )
        .await;
    r.rejected("step mismatch", o, "step_mismatch").await;
    // No case id.
    let o = r
        .send(
            "DE-BY-BLZK",
            &[AT, HU],
            None,
            "notify",
            vec![],
            notify(good.clone()),
        )
        .await;
    r.rejected("no case", o, "missing_case").await;
    // Garbage body.
    let o = r
        .send(
            "DE-BY-BLZK",
            &[AT, HU],
            Some(case),
            "notify",
            vec![],
            b"\xa1\x00".to_vec(),
        )
        .await;
    r.rejected("garbage", o, "malformed_body").await;
    // A sender authority of another country.
    let o = r
        .send(
            "AT-NC",
            &[AT, HU],
            Some(case),
            "notify",
            vec![],
            notify(good.clone()),
        )
        .await;
    r.rejected("another country's authority", o, "wrong_authority")
        .await;
    // Content checks run on the receiver too.
    let mut unknown = good.clone();
    unknown.procedure = "PQ-P01".into();
    let o = r
        .send(
            "DE-BY-BLZK",
            &[AT, HU],
            Some(case),
            "notify",
            vec![],
            notify(unknown),
        )
        .await;
    r.rejected("a request procedure", o, "unknown_notification_type")
        .await;
    let mut missing = good.clone();
    missing.fields.pop();
    let o = r
        .send(
            "DE-BY-BLZK",
            &[AT, HU],
            Some(case),
            "notify",
            vec![],
            notify(missing),
        )
        .await;
    r.rejected("a required field left out", o, "missing_field")
        .await;
    let mut commission = good.clone();
    commission
        .recipients
        .push(to(NodeId::EU, &["EU-COMMISSION"]));
    let o = r
        .send(
            "DE-BY-BLZK",
            &[AT, HU, NodeId::EU],
            Some(case),
            "notify",
            vec![],
            notify(commission),
        )
        .await;
    r.rejected(
        "the Commission on a type without it",
        o,
        "commission_not_allowed",
    )
    .await;

    // A valid one: stored for HU-ENKK only, its content encrypted at rest.
    let o = r
        .send(
            "DE-BY-BLZK",
            &[AT, HU],
            Some(case),
            "notify",
            vec![],
            notify(good.clone()),
        )
        .await;
    assert_eq!(o, Outcome::Accepted);
    let store = r.hu.engine().reader();
    let ix = notifications::index(store.as_ref(), &case)
        .unwrap()
        .unwrap();
    assert!(!ix.outgoing);
    assert!(
        notifications::box_entry(store.as_ref(), &id("HU-ENKK"), &case)
            .unwrap()
            .is_some()
    );
    assert!(
        notifications::box_entry(store.as_ref(), &id("HU-OH"), &case)
            .unwrap()
            .is_none()
    );
    let content = notifications::content(&cases, store.as_ref(), &case)
        .unwrap()
        .unwrap();
    assert_eq!(content.fields, good.fields);
    let name = b"Geldtransport Sicher";
    for (_, v) in r.hu.rows(NOTIFICATIONS) {
        assert!(
            !v.windows(name.len()).any(|w| w == name),
            "plaintext at rest"
        );
    }
    // The same notification id again, in a new envelope: refused.
    let o = r
        .send(
            "DE-BY-BLZK",
            &[AT, HU],
            Some(case),
            "notify",
            vec![],
            notify(good.clone()),
        )
        .await;
    r.rejected(
        "a second notification with the same id",
        o,
        "duplicate_notification",
    )
    .await;
    // An acknowledgement of a notification HU did not send.
    let read = encode(&NotificationMessage::Read {
        v: NOTIFICATION_VERSION,
    });
    let o = r
        .send(
            "DE-BY-BLZK",
            &[HU],
            Some(case),
            "read",
            vec![ix.message],
            read.clone(),
        )
        .await;
    r.rejected(
        "acknowledging an incoming notification",
        o,
        "unknown_notification",
    )
    .await;

    // HU sends one to AT (whose node is not running: the envelope waits in HU's outbox);
    // acknowledgements signed by AT.
    let sent = notifications::send(
        r.hu.engine(),
        &cases,
        id("HU-ENKK"),
        notification(vec![to(AT, &["AT-NC"])]),
        None,
        Box::new(|id, _| id.as_bytes().to_vec()),
        false,
    )
    .await
    .unwrap();
    let out = CaseId::from_slice(&sent.response).unwrap();
    let out_ix = notifications::index(store.as_ref(), &out).unwrap().unwrap();
    assert!(out_ix.outgoing);
    let ack = |authority: &'static str, prev: Vec<MessageId>| {
        r.send_as(AT, authority, &[HU], Some(out), "read", prev, read.clone())
    };
    let o = ack("AT-OTHER", vec![out_ix.message]).await;
    r.rejected("an authority not named", o, "not_addressed")
        .await;
    let o = ack("AT-NC", vec![]).await;
    r.rejected("no predecessor", o, "wrong_predecessor").await;
    let o = ack("AT-NC", vec![out_ix.message]).await;
    assert_eq!(o, Outcome::Accepted);
    let acks = notifications::acks(store.as_ref(), &out).unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!((acks[0].0, acks[0].1.as_str()), (AT, "AT-NC"));
    let o = ack("AT-NC", vec![out_ix.message]).await;
    r.rejected("a second acknowledgement", o, "already_acknowledged")
        .await;
    // Only the two accepted envelopes left a record in the kernel's inbox.
    let accepted = r.hu.rows(keys::INBOX).len();
    assert_eq!(accepted, 2, "the notification and one acknowledgement");
    drop(store);
    r.raw.stop().await;
    r.raw_at.stop().await;
    r.hu.stop().await;
}

//! Receipts on both sides: the receiver keeps the `accepted` receipt it signed in its inbox
//! record, the sender keeps the same bytes in `receipts_out`; a rejection is dead-lettered.
use crate::rig::{Federation, diag_draft, wait_until, within};
use imi_engine::keys;
use imi_protocol::NodeId::{AT, BE, CY};
use imi_protocol::{Kind, Outcome, RejectCode, sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_receipts_are_stored_by_receiver_and_sender() {
    let fed = Federation::new(&[AT, BE, CY]);
    let a = fed.start(AT).await;
    let b = fed.start(BE).await;
    let c = fed.start(CY).await;

    // One envelope to two recipients.
    let (id, reports) = a.send_diag(&[BE, CY]).await;
    assert_eq!(
        reports.iter().map(|r| r.to).collect::<Vec<_>>(),
        vec![BE, CY]
    );
    let envelope = a
        .store()
        .get(keys::ENV_OUT, id.as_bytes())
        .unwrap()
        .expect("A keeps what it signed");
    let hash = sha256(&envelope);
    // Reports are sent as soon as a receipt is verified; storing it follows.
    wait_until("A to settle both receipts", || a.count(keys::OUTBOX) == 0).await;

    for (node, report) in [(&b, &reports[0]), (&c, &reports[1])] {
        let to = node.id;
        assert_eq!(report.receipt.outcome, Outcome::Accepted);
        // The receiver's inbox record holds the receipt it signed.
        let record = node
            .inbox_record(AT, &id)
            .unwrap_or_else(|| panic!("{to} has no inbox record"));
        assert_eq!(record.envelope_hash, hash);
        assert_eq!(record.kind, Kind::DIAGNOSTIC);
        let stored = fed.verify_receipt(record.receipt.clone(), to);
        assert_eq!(stored.body.outcome, Outcome::Accepted);
        assert_eq!(stored.body.message_id, Some(id));
        assert_eq!(stored.body.envelope_hash, hash);
        assert_eq!(stored.body.sender, Some(AT));
        assert_eq!(stored.body.receiver, to);
        assert_eq!(stored.body.received, record.received);
        assert_eq!(
            stored.body, report.receipt,
            "the report carries the receipt {to} stored"
        );
        // The envelope is kept exactly as received.
        let env_in = node
            .store()
            .get(keys::ENV_IN, &keys::node_msg_key(AT, &id))
            .unwrap();
        assert_eq!(env_in.as_deref(), Some(envelope.as_slice()));
        // The sender stored the very bytes the receiver signed and recorded.
        let at_sender = a
            .store()
            .get(keys::RECEIPTS_OUT, &keys::node_msg_key(to, &id))
            .unwrap();
        assert_eq!(
            at_sender.as_deref(),
            Some(record.receipt.as_slice()),
            "A's stored receipt from {to}"
        );
        assert_eq!(
            fed.verify_receipt(at_sender.unwrap(), to).body.outcome,
            Outcome::Accepted
        );
    }
    assert_eq!(a.count(keys::RECEIPTS_OUT), 2);
    assert_eq!(a.count(keys::OUTBOX), 0);
    assert_eq!(a.count(keys::DEAD), 0);
    assert_eq!((b.applied(), c.applied()), (1, 1));

    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// An envelope the destination rejects for good is not retried: its signed `rejected`
/// receipt goes to `dead`, the outbox entry is removed, and nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_envelopes_are_dead_lettered_not_retried() {
    let fed = Federation::new(&[AT, BE]);
    let a = fed.start(AT).await;
    let b = fed.start(BE).await;

    let mut draft = diag_draft(AT, &[BE]);
    draft.kind = Kind::new("no.such.kind").unwrap();
    let (id, mut rx) = a.engine().send_watched(draft).await.expect("send");
    let report = within("the rejection report", rx.pop().unwrap())
        .await
        .expect("report");
    assert_eq!(
        report.receipt.outcome,
        Outcome::Rejected(RejectCode::UnknownKind)
    );
    // The report comes as soon as the receipt is verified; the dead letter follows.
    wait_until("A to dead-letter the envelope", || {
        a.count(keys::OUTBOX) == 0
    })
    .await;
    let dead = a
        .store()
        .get(keys::DEAD, &keys::node_msg_key(BE, &id))
        .unwrap()
        .expect("dead letter");
    let r = fed.verify_receipt(dead, BE);
    assert_eq!(r.body.outcome, Outcome::Rejected(RejectCode::UnknownKind));
    assert_eq!(r.body.message_id, Some(id));
    assert_eq!(a.count(keys::OUTBOX), 0);
    assert_eq!(a.count(keys::RECEIPTS_OUT), 0);
    assert_eq!(a.retries(BE), 0, "a final rejection is not retried");
    wait_until("A's queue depth for B to return to 0", || {
        a.queue_depth(BE) == 0
    })
    .await;
    assert_eq!(b.applied(), 0);
    assert_eq!(b.count(keys::INBOX), 0);

    // The peer is not blocked by the dead letter.
    a.send_diag_accepted(&[BE]).await;
    assert_eq!(b.applied(), 1);

    a.stop().await;
    b.stop().await;
}

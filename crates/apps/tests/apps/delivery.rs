//! Delivery between real engines: exactly once, grouped commits, outages and restarts.
use crate::rig::{Federation, diag_draft, hold_commits, wait_until, within};
use imi_engine::keys;
use imi_protocol::NodeId::{AT, BE};
use imi_protocol::Outcome;
use std::collections::HashSet;

/// 3 sequential then 500 concurrent diagnostics A→B: every one receipted `accepted` exactly
/// once, applied exactly once, the outbox drained, and B's commits grouped (> 1 message per
/// fsync on average).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_are_applied_exactly_once_with_group_commit() {
    let fed = Federation::new(&[AT, BE]);
    let a = fed.start(AT).await;
    let b = fed.start(BE).await;

    for n in 1..=3u64 {
        let (id, reports) = a.send_diag(&[BE]).await;
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.to, BE);
        assert_eq!(r.receipt.outcome, Outcome::Accepted);
        assert_eq!(r.receipt.message_id, Some(id));
        assert_eq!(r.receipt.receiver, BE);
        assert_eq!(r.receipt.sender, Some(AT));
        // The receipt is sent only after B's commit is durable.
        assert_eq!(b.applied(), n);
    }

    // Once A knows what B speaks (identify), envelopes queued together go in batches.
    wait_until("A to learn B's protocols", || {
        a.engine().peer_protocols().contains_key(&BE)
    })
    .await;
    let batches_before = b.engine().network().batches();
    let m = b.engine().metrics();
    let (groups_before, msgs_before) = (m.commit_groups_synced.get(), m.committed_messages.get());
    const N: usize = 500;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..N {
        let engine = a.engine().clone();
        set.spawn(async move {
            let (id, mut rx) = engine
                .send_watched(diag_draft(AT, &[BE]))
                .await
                .expect("send_watched");
            assert_eq!(rx.len(), 1);
            let report = rx.pop().unwrap().await.expect("delivery report");
            (id, report)
        });
    }
    let results = within("500 concurrent deliveries", set.join_all()).await;
    let mut ids = HashSet::new();
    for (id, report) in &results {
        assert_eq!(
            report.receipt.outcome,
            Outcome::Accepted,
            "{id}: {:?}",
            report.receipt
        );
        assert_eq!(report.receipt.message_id, Some(*id));
        assert!(ids.insert(*id), "message id {id} reported twice");
    }
    assert_eq!(ids.len(), N);

    let total = 3 + N as u64;
    assert_eq!(b.applied(), total);
    assert_eq!(b.count(keys::INBOX), total as usize);
    assert_eq!(b.count(keys::ENV_IN), total as usize);
    let diag = imi_engine::metrics::KindLabel::of(imi_protocol::Kind::DIAGNOSTIC);
    assert_eq!(m.accepted.get_or_create(&diag).get(), total);
    assert_eq!(
        m.duplicates.get_or_create(&diag).get(),
        0,
        "no envelope was sent twice"
    );
    assert_eq!(m.committed_by_kind.get_or_create(&diag).get(), total);
    for id in &ids {
        assert!(b.inbox_record(AT, id).is_some(), "no inbox record for {id}");
    }

    // Reports are sent as soon as a receipt is verified; storing it follows.
    wait_until("A to settle every receipt", || a.count(keys::OUTBOX) == 0).await;
    // A stored one signed `accepted` receipt from B per message.
    let stored = a.rows(keys::RECEIPTS_OUT);
    assert_eq!(stored.len(), total as usize);
    // B signed the receipts of envelopes that came in batches and were committed together
    // once per group (group receipts, each verifiable on its own, checked just below); the
    // three sent one at a time got single receipts.
    let grouped = stored
        .iter()
        .filter(|(_, bytes)| imi_protocol::Receipt::is_group(bytes))
        .count() as u64;
    let (groups, in_groups) = (m.receipt_groups.get(), m.receipts_grouped.get());
    eprintln!("group receipts: {grouped} of {total}, {groups} group signatures");
    assert_eq!(
        grouped, in_groups,
        "every group receipt B signed is stored at A"
    );
    assert!(
        groups > 0 && in_groups > groups,
        "no group of two or more receipts: {in_groups} receipts in {groups} groups"
    );
    assert!(grouped <= N as u64, "a lone envelope got a group receipt");
    for (key, bytes) in stored {
        let r = fed.verify_receipt(bytes, BE);
        assert_eq!(r.body.outcome, Outcome::Accepted);
        assert_eq!(keys::node_msg_key(BE, &r.body.message_id.unwrap()), key);
    }
    assert_eq!(a.count(keys::DEAD), 0);
    assert_eq!(a.delivered(BE), total);
    // Every envelope went out from memory, where the committer left it, none read back from
    // the store (nothing failed, so nothing was resent).
    let loads = &a.engine().metrics().delivery_loads;
    assert_eq!(
        (loads.memory.get(), loads.store.get()),
        (total, 0),
        "delivery loads (memory, store)"
    );
    wait_until("A's queue depth for B to return to 0", || {
        a.queue_depth(BE) == 0
    })
    .await;

    let groups = m.commit_groups_synced.get() - groups_before;
    let msgs = m.committed_messages.get() - msgs_before;
    assert_eq!(msgs, N as u64);
    let per_sync = msgs as f64 / groups as f64;
    eprintln!(
        "group commit on B: {msgs} messages in {groups} synced commits ({per_sync:.1} per fsync)"
    );
    assert!(
        per_sync > 1.0,
        "no group commit: {msgs} messages in {groups} synced commits"
    );
    // The backlog went in batches (`engine.delivery_batch`), each answered with its
    // receipts, and B counted what A sent.
    let sent = a.engine().network().batches();
    let received = b.engine().network().batches();
    eprintln!("batches A→B: {sent:?}");
    assert!(
        received.received_items - batches_before.received_items
            > received.received - batches_before.received,
        "no batch of two or more envelopes: {received:?}"
    );
    assert_eq!(
        (sent.sent, sent.sent_items),
        (
            received.received - batches_before.received,
            received.received_items - batches_before.received_items
        )
    );

    a.stop().await;
    b.stop().await;
}

/// B goes down; A queues 200 (persistently), retries with backoff; B comes back on the same
/// data and port; everything drains, applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_outage_queues_retries_and_drains() {
    let fed = Federation::new(&[AT, BE]);
    let a = fed.start(AT).await;
    let b = fed.start(BE).await;
    a.send_diag_accepted(&[BE]).await;
    assert_eq!(b.applied(), 1);
    b.stop().await;

    let retries_before = a.retries(BE);
    const N: usize = 200;
    let sends = (0..N).map(|_| a.engine().send(diag_draft(AT, &[BE])));
    let ids = within("200 sends", futures::future::try_join_all(sends))
        .await
        .expect("send");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), N);
    assert_eq!(a.count(keys::OUTBOX), N);
    wait_until("A's queue depth for B to be 200", || {
        a.queue_depth(BE) == N as i64
    })
    .await;
    wait_until("A to retry B at least twice", || {
        a.retries(BE) >= retries_before + 2
    })
    .await;
    assert!(
        a.backoff_seconds(BE) > 0.0,
        "backoff gauge while B is down: {}",
        a.backoff_seconds(BE)
    );
    let m = a.engine().metrics();
    let age = || {
        m.oldest_queued_age_seconds
            .get_or_create(&imi_engine::metrics::PeerLabel { peer: "BE".into() })
            .get()
    };
    wait_until("the oldest queued age to be reported", || age() > 0.0).await;
    // Nothing was delivered while B was down.
    assert_eq!(a.count(keys::OUTBOX), N);
    assert_eq!(a.delivered(BE), 1);

    let b = fed.start(BE).await;
    wait_until("B to apply all 200", || b.applied() > N as u64).await;
    wait_until("A's outbox for B to drain", || {
        a.count(keys::OUTBOX) == 0 && a.queue_depth(BE) == 0
    })
    .await;
    wait_until("A's backoff to reset", || a.backoff_seconds(BE) == 0.0).await;
    // With the queue empty the gauge falls back to 0 (without reading the store).
    wait_until("the oldest queued age to return to 0", || age() == 0.0).await;
    assert_eq!(b.applied(), 1 + N as u64, "applied exactly once");
    assert_eq!(b.count(keys::INBOX), 1 + N);
    assert_eq!(a.count(keys::RECEIPTS_OUT), 1 + N);
    assert_eq!(a.count(keys::DEAD), 0);
    for id in &ids {
        assert!(b.inbox_record(AT, id).is_some(), "{id} was not applied");
    }
    // B still works normally.
    a.send_diag_accepted(&[BE]).await;
    assert_eq!(b.applied(), 2 + N as u64);

    a.stop().await;
    b.stop().await;
}

/// A enqueues 300 while B is down, stops, restarts from its data directory (the outbox is
/// persistent, sequence numbers continue), then B starts: all delivered, applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_restart_keeps_and_delivers_its_outbox() {
    let fed = Federation::new(&[AT, BE]);
    let a = fed.start(AT).await;
    const N: usize = 300;
    let sends = (0..N).map(|_| a.engine().send(diag_draft(AT, &[BE])));
    let mut ids = within("300 sends", futures::future::try_join_all(sends))
        .await
        .expect("send");
    assert_eq!(a.count(keys::OUTBOX), N);
    assert_eq!(a.count(keys::ENV_OUT), N);
    a.stop().await;

    let a = fed.start(AT).await;
    wait_until("the restarted A to count 300 queued for B", || {
        a.queue_depth(BE) == N as i64
    })
    .await;
    assert_eq!(a.count(keys::OUTBOX), N);
    // A new entry after the restart must not overwrite a queued one.
    ids.push(
        a.engine()
            .send(diag_draft(AT, &[BE]))
            .await
            .expect("send after restart"),
    );
    assert_eq!(
        a.count(keys::OUTBOX),
        N + 1,
        "outbox sequence numbers must continue after a restart"
    );

    let b = fed.start(BE).await;
    wait_until("B to apply all 301", || b.applied() > N as u64).await;
    wait_until("A's outbox for B to drain", || {
        a.count(keys::OUTBOX) == 0 && a.queue_depth(BE) == 0
    })
    .await;
    assert_eq!(b.applied(), N as u64 + 1, "applied exactly once");
    // The 300 queued before the restart were read back from the store (the memory of the
    // node that committed them is gone).
    assert!(a.engine().metrics().delivery_loads.store.get() >= N as u64);
    assert_eq!(b.count(keys::INBOX), N + 1);
    assert_eq!(a.count(keys::RECEIPTS_OUT), N + 1);
    for id in &ids {
        assert!(b.inbox_record(AT, id).is_some(), "{id} was not applied");
    }

    a.stop().await;
    b.stop().await;
}

/// An application that applies the steps of a case only in order: a step must name the
/// case's last applied step as its predecessor (as request steps do), else it is refused.
struct InOrder;

const IN_ORDER: &str = "test.in-order";

impl imi_engine::Application for InOrder {
    fn name(&self) -> &'static str {
        "in-order"
    }
    fn kinds(&self) -> &'static [&'static str] {
        &[IN_ORDER]
    }
    fn apply(
        &self,
        msg: &imi_engine::Inbound<'_>,
        txn: &mut imi_engine::Txn<'_>,
    ) -> Result<(), imi_protocol::RejectCode> {
        let case = msg.header.case.expect("a case");
        let mut key = b"in-order/".to_vec();
        key.extend_from_slice(case.as_bytes());
        let last = txn.get(imi_apps::diagnostics::APP, &key)?;
        let prev = msg.header.prev.first().map(|p| p.as_bytes().to_vec());
        if last != prev {
            return Err(imi_protocol::RejectCode::Application("out_of_order".into()));
        }
        txn.put(
            imi_apps::diagnostics::APP,
            key,
            msg.header.id.as_bytes().to_vec(),
        );
        Ok(())
    }
}

/// A backlog of steps of a few cases (B was down) is delivered in each case's order: the
/// receiver handles the envelopes in flight concurrently, so two steps of a case in flight
/// at once could be applied the wrong way round (found by `imi-sim torture`: an `answer`
/// applied before its `accept` and refused). Every step is accepted, none is dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_delivered_in_each_cases_order() {
    use imi_engine::Applications;
    use imi_protocol::{AuthorityId, CaseId, Draft, Kind};
    use std::sync::Arc;
    let fed = Federation::new(&[AT, BE]);
    let apps = || Applications::new(vec![Arc::new(InOrder)]);
    let a = fed.start_with(AT, apps()).await;
    const CASES: usize = 6;
    const STEPS: usize = 40;
    let cases: Vec<CaseId> = (0..CASES).map(|_| CaseId::random()).collect();
    let mut last: Vec<Option<imi_protocol::MessageId>> = vec![None; CASES];
    for _ in 0..STEPS {
        for (i, case) in cases.iter().enumerate() {
            let id = a
                .engine()
                .send(Draft {
                    kind: Kind::new(IN_ORDER).unwrap(),
                    step: None,
                    authority: AuthorityId::new("AT-OPS").unwrap(),
                    to: vec![BE],
                    case: Some(*case),
                    prev: last[i].into_iter().collect(),
                    body: b"step".to_vec(),
                })
                .await
                .expect("send");
            last[i] = Some(id);
        }
    }
    let total = CASES * STEPS;
    assert_eq!(a.count(keys::OUTBOX), total);

    let b = fed.start_with(BE, apps()).await;
    wait_until("A's outbox for B to drain", || {
        a.count(keys::OUTBOX) == 0 && a.queue_depth(BE) == 0
    })
    .await;
    assert_eq!(a.count(keys::DEAD), 0, "steps refused as out of order");
    assert_eq!(a.count(keys::RECEIPTS_OUT), total);
    assert_eq!(b.count(keys::INBOX), total);
    for (i, case) in cases.iter().enumerate() {
        let mut key = b"in-order/".to_vec();
        key.extend_from_slice(case.as_bytes());
        let applied = b
            .store()
            .get(imi_apps::diagnostics::APP, &key)
            .unwrap()
            .expect("the case's last step");
        assert_eq!(applied, last[i].unwrap().as_bytes().to_vec());
    }
    a.stop().await;
    b.stop().await;
}

/// Found by `imi-sim torture`: an authority's `close` was answered `422 stale_predecessor`
/// ("another step of this case committed first") although the step was valid. The request
/// service seals a step against the case as it reads it and, if another step of the case
/// committed meanwhile, seals it again (three times at most). The committer answered a
/// refused local action at once, before the group it was decided in (holding the other
/// step) was written, so every retry read the old state again and was refused again.
/// A refusal is now answered after its group's write: what refused it is readable then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_local_step_is_answered_once_its_group_is_written() {
    use imi_apps::diagnostics::APP;
    use imi_engine::{EngineError, LocalOutcome, Refusal};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let fed = Federation::new(&[AT, BE]);
    let a = fed.start(AT).await;
    let engine = a.engine().clone();
    let reader = engine.reader();
    for round in 0..5 {
        let key = format!("test/refusal/{round}").into_bytes();
        // Hold the commit thread while two actions are queued behind it, so that they form
        // the next group: W writes the key; R sees it (in the group, not yet in the store)
        // and refuses.
        let held = hold_commits(&engine).await;
        let w_key = key.clone();
        let mut w = Box::pin(engine.local_step(
            None,
            Box::new(move |txn, _| {
                txn.put(APP, w_key, b"written".to_vec());
                Ok(LocalOutcome {
                    write: true,
                    result: Vec::new(),
                })
            }),
        ));
        let (r_key, r_reader) = (key.clone(), reader.clone());
        let saw_the_group = Arc::new(AtomicBool::new(false));
        let flag = saw_the_group.clone();
        let mut r = Box::pin(engine.local_step(
            None,
            Box::new(move |txn, _| {
                let in_group = txn.get(APP, &r_key)?.is_some();
                let in_store = r_reader.get(APP, &r_key).ok().flatten().is_some();
                flag.store(in_group && !in_store, Ordering::SeqCst);
                Err(Refusal::new("test_refused", "refused on purpose"))
            }),
        ));
        // One poll each puts W's job, then R's, in the committer's queue.
        assert!(futures::poll!(&mut w).is_pending());
        assert!(futures::poll!(&mut r).is_pending());
        held.release().await;
        let refused = within("R's answer", r).await;
        // The moment R is answered, the write that refused it is on disk.
        let visible = reader.get(APP, &key).unwrap().is_some();
        assert!(
            matches!(refused, Err(EngineError::Refused(_))),
            "{refused:?}"
        );
        assert!(
            saw_the_group.load(Ordering::SeqCst),
            "round {round}: W and R did not share a group"
        );
        assert!(
            visible,
            "round {round}: R was answered before its group was written"
        );
        within("W", w).await.unwrap();
    }
    drop((engine, reader));
    a.stop().await;
}

/// At a low rate a delivery task takes each new outbox entry as the committer hands it over,
/// without reading the outbox column (a blocking-thread hop per message): after the first,
/// twenty diagnostics sent one at a time add no store read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_sent_one_at_a_time_need_no_outbox_read() {
    let fed = Federation::new(&[AT, BE]);
    let a = fed.start(AT).await;
    let b = fed.start(BE).await;
    a.send_diag_accepted(&[BE]).await;
    let m = a.engine().metrics();
    let refills = || {
        (
            m.delivery_refills.memory.get(),
            m.delivery_refills.store.get(),
            m.delivery_loads.store.get(),
        )
    };
    let (memory, store, envelopes_read) = refills();
    for _ in 0..20 {
        a.send_diag_accepted(&[BE]).await;
    }
    let after = refills();
    assert_eq!(
        after.0 - memory,
        20,
        "refills from what the committer handed over"
    );
    assert_eq!(after.1, store, "refills that read the outbox column");
    assert_eq!(
        after.2, envelopes_read,
        "envelopes read back from the store"
    );
    assert_eq!(b.applied(), 21);
    a.stop().await;
    b.stop().await;
}

/// A refill from the committer's hand-over that stops at an envelope no longer in memory
/// reads the rest from the store at once. Two envelopes are written in one group while the
/// memory for fresh envelopes holds one: the delivery task takes the first from the
/// hand-over, and must find the second in the store without waiting for a further send to
/// wake it (it waited, once: `bench exchange` then carried half its throughput).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_cut_short_by_an_envelope_not_in_memory_reads_the_rest_at_once() {
    use imi_apps::diagnostics::DiagnosticApp;
    use imi_engine::Applications;
    use std::sync::Arc;
    let fed = Federation::new(&[AT, BE]);
    // Room for one of the envelopes below (a 2,000-byte body sealed: about 2.6 KB), not two.
    let config = imi_engine::EngineConfig {
        fresh_envelope_bytes: 4_000,
        ..Federation::engine_config()
    };
    let apps = Applications::new(vec![Arc::new(DiagnosticApp::default())]);
    let a = fed.start_configured(AT, apps, config).await;
    let b = fed.start(BE).await;
    // The delivery task has sent one entry: it takes the next ones from the hand-over.
    a.send_diag_accepted(&[BE]).await;
    let engine = a.engine().clone();
    // Hold the commit thread while both sends queue behind it, so that they share a group.
    let held = hold_commits(&engine).await;
    let draft = |fill: u8| {
        let mut d = diag_draft(AT, &[BE]);
        d.body = vec![fill; 2_000];
        d
    };
    let mut first = Box::pin(engine.send_watched(draft(1)));
    let mut second = Box::pin(engine.send_watched(draft(2)));
    // One poll each seals the envelope (small: on this worker) and queues its commit.
    assert!(futures::poll!(&mut first).is_pending());
    assert!(futures::poll!(&mut second).is_pending());
    let m = engine.metrics();
    let (from_memory, from_store) = (m.delivery_loads.memory.get(), m.delivery_loads.store.get());
    held.release().await;
    let (first_id, first_rx) = within("the first send", first).await.unwrap();
    let (second_id, second_rx) = within("the second send", second).await.unwrap();
    for (id, rx) in [(first_id, first_rx), (second_id, second_rx)] {
        for report in rx {
            let report = within("its delivery, with no further send", report)
                .await
                .unwrap();
            assert_eq!(report.receipt.outcome, Outcome::Accepted);
            assert_eq!(report.receipt.message_id, Some(id));
        }
    }
    // The first came from memory, the second was read back: the refill was cut short.
    assert_eq!(m.delivery_loads.memory.get() - from_memory, 1);
    assert_eq!(m.delivery_loads.store.get() - from_store, 1);
    assert_eq!(b.applied(), 3);
    drop(engine);
    a.stop().await;
    b.stop().await;
}

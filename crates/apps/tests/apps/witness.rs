//! The transparency log and witnessing between real engines: DE's log records what it sends
//! and receives, HU witnesses DE's checkpoints. A raw endpoint with DE's identity then shows
//! HU a split view, a rollback and an inconsistent extension, each signed with DE's real key:
//! HU refuses to cosign, records an alarm and counts it; a valid extension is still cosigned.
use crate::rig::{Federation, Node, now_ms, within};
use imi_apps::diagnostics::DiagnosticApp;
use imi_apps::witness::{CheckpointMessage, CosignatureApp, KIND_CHECKPOINT, WitnessApp};
use imi_audit::bundle::witness_name;
use imi_audit::merkle;
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
use imi_engine::Applications;
use imi_engine::log::StoreNodes;
use imi_engine::metrics::PeerCodeLabel;
use imi_protocol::NodeId::{DE, HU};
use imi_protocol::{AuthorityId, Draft, Kind, Outcome, SealRandomness};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;

fn apps(
    fed: &Federation,
    node: imi_protocol::NodeId,
) -> (Applications, Family<PeerCodeLabel, Counter>) {
    let witness = WitnessApp::new(fed.member(node).signer.clone());
    let alarms = witness.alarm_counter().clone();
    (
        Applications::new(vec![
            Arc::new(DiagnosticApp::default()),
            Arc::new(witness),
            Arc::new(CosignatureApp),
        ]),
        alarms,
    )
}

fn stored_note(n: &Node, size: u64) -> Option<SignedNote> {
    n.store()
        .get(imi_engine::keys::CHECKPOINTS, &size.to_be_bytes())
        .unwrap()
        .map(|v| SignedNote::parse(std::str::from_utf8(&v).unwrap()).unwrap())
}

/// With its `witness-answers` job on, a witness answers a checkpoint by itself, without
/// waiting for its own next checkpoint (whose job stays off here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_answers_a_checkpoint_without_its_own_checkpoint_job() {
    let fed = Federation::new(&[DE, HU]);
    let mut config = Federation::engine_config();
    config.job_interval_ms.remove("witness-answers");
    let (de_apps, _) = apps(&fed, DE);
    let (hu_apps, _) = apps(&fed, HU);
    let de = fed.start_configured(DE, de_apps, config.clone()).await;
    let _hu = fed.start_configured(HU, hu_apps, config).await;
    // Twice: the first answer may go out on the job's first run (a node starts with its
    // answers due); the second is sent only because a checkpoint was applied.
    for size in [2, 4] {
        de.send_diag_accepted(&[HU]).await;
        crate::rig::wait_until("DE's log holds the envelope and its receipt", || {
            imi_engine::log::size(de.store()).unwrap() == size
        })
        .await;
        assert_eq!(
            imi_apps::witness::distribute_checkpoint(de.engine())
                .await
                .unwrap(),
            1
        );
        crate::rig::wait_until("DE's checkpoint carries HU's cosignature", || {
            stored_note(&de, size).is_some_and(|n| n.signatures.len() == 2)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnesses_cosign_extensions_and_refuse_split_views_and_rollbacks() {
    let fed = Federation::new(&[DE, HU]);
    let (de_apps, _de_alarms) = apps(&fed, DE);
    let (hu_apps, hu_alarms) = apps(&fed, HU);
    let de = fed.start_with(DE, de_apps).await;
    let hu = fed.start_with(HU, hu_apps).await;

    // DE's log records its envelopes and the receipts it gets back.
    for _ in 0..3 {
        de.send_diag_accepted(&[HU]).await;
    }
    crate::rig::wait_until("DE's log holds 3 envelopes and 3 receipts", || {
        imi_engine::log::size(de.store()).unwrap() == 6
    })
    .await;
    // HU's log: 3 envelopes received and the 3 receipts it signed.
    assert_eq!(imi_engine::log::size(hu.store()).unwrap(), 6);

    // DE distributes its checkpoint; HU cosigns; DE keeps the cosignature.
    assert_eq!(
        imi_apps::witness::distribute_checkpoint(de.engine())
            .await
            .unwrap(),
        1
    );
    crate::rig::wait_until("HU has seen DE's checkpoint", || {
        hu.store()
            .get(imi_apps::witness::WITNESS, b"DE")
            .unwrap()
            .is_some()
    })
    .await;
    imi_apps::witness::send_witness_answers(hu.engine())
        .await
        .unwrap();
    crate::rig::wait_until("DE's checkpoint carries HU's cosignature", || {
        stored_note(&de, 6).is_some_and(|n| n.signatures.len() == 2)
    })
    .await;
    let note = stored_note(&de, 6).unwrap();
    assert!(note.verify(&origin_of("DE"), &fed.member(DE).signer.public()));
    assert!(
        note.verify_cosignature(&witness_name("HU"), &fed.member(HU).signer.public())
            .is_some()
    );
    // Witness traffic is not logged (it would grow the log it audits for ever).
    assert_eq!(imi_engine::log::size(de.store()).unwrap(), 6);

    let raw = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let peer = fed.member(HU).peer_id();
    let signer = fed.member(DE).signer.clone();
    let honest = Checkpoint::parse(&note.body).unwrap();
    // A checkpoint envelope from DE carrying `note` (signed, possibly padded).
    let send_note = |note: String, base: u64, proof: Vec<[u8; 32]>| {
        let mut body = Vec::new();
        ciborium::into_writer(&CheckpointMessage { note, base, proof }, &mut body).unwrap();
        let draft = Draft {
            kind: Kind::new(KIND_CHECKPOINT).unwrap(),
            step: None,
            authority: AuthorityId::new("DE-IMI").unwrap(),
            to: vec![HU],
            case: None,
            prev: vec![],
            body,
        };
        imi_protocol::seal_and_sign(
            &draft,
            now_ms(),
            &signer,
            &fed.trust,
            &SealRandomness::random(1),
        )
        .unwrap()
    };
    let send = |cp: Checkpoint, base: u64, proof: Vec<[u8; 32]>| {
        send_note(
            SignedNote::sign(&cp.body(), &cp.origin, &signer).text(),
            base,
            proof,
        )
    };
    // Delivers envelope bytes to HU; the outcome of its verified receipt.
    let to_hu = |bytes: Vec<u8>| {
        let (fed, raw) = (&fed, &raw);
        async move {
            let r = within("HU answers", raw.client.request(peer, bytes))
                .await
                .unwrap();
            fed.verify_receipt(r, HU).body.outcome
        }
    };
    let answer = |hu: &Node| {
        hu.store()
            .get(imi_apps::witness::WITNESS_OUT, b"DE")
            .unwrap()
            .map(|v| {
                ciborium::from_reader::<imi_apps::witness::CosignatureMessage, _>(v.as_slice())
                    .unwrap()
            })
    };
    let alarms = |kind: &str| {
        hu_alarms
            .get_or_create(&PeerCodeLabel {
                peer: "DE".into(),
                code: kind.into(),
            })
            .get()
    };
    let mut expected_alarms = 0;
    for (what, cp, base, proof) in [
        (
            "split_view",
            Checkpoint {
                root: [7; 32],
                ..honest.clone()
            },
            6,
            vec![],
        ),
        (
            "rollback",
            Checkpoint {
                size: 5,
                root: merkle::root(&StoreNodes(de.store()), 5).unwrap(),
                ..honest.clone()
            },
            6,
            vec![],
        ),
        (
            "inconsistent",
            Checkpoint {
                size: 9,
                root: [9; 32],
                ..honest.clone()
            },
            6,
            vec![[1; 32]],
        ),
    ] {
        let bytes = send(cp.clone(), base, proof);
        let outcome = to_hu(bytes).await;
        assert_eq!(outcome, Outcome::Accepted, "{what}: the alarm is committed");
        let a = answer(&hu).unwrap();
        assert_eq!(a.size, cp.size);
        assert!(a.cosignature.is_none(), "{what}: HU must not cosign");
        assert_eq!(a.known, 6, "{what}: HU still knows DE at size 6");
        assert_eq!(alarms(what), 1, "{what}: metric");
        expected_alarms += 1;
        let recorded = all_alarms(&hu);
        assert_eq!(recorded.len(), expected_alarms);
        let last = recorded.last().unwrap();
        assert_eq!((last.node.as_str(), last.kind.as_str()), ("DE", what));
        assert_eq!(last.known.0, 6);
    }
    // The same split view again: counted, not stored again.
    let split = Checkpoint {
        root: [7; 32],
        ..honest.clone()
    };
    let bytes = send(split, 6, vec![]);
    let outcome = to_hu(bytes).await;
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(alarms("split_view"), 2, "every alarm is counted");
    assert_eq!(
        all_alarms(&hu).len(),
        expected_alarms,
        "a repeated claim is not stored twice"
    );
    // A split view whose note DE padded to a megabyte with junk signature lines: the
    // record keeps the note's hash, not the megabyte.
    let padded = {
        let cp = Checkpoint {
            root: [8; 32],
            ..honest.clone()
        };
        let mut note = SignedNote::sign(&cp.body(), &cp.origin, &signer).text();
        let junk = format!("\u{2014} junk {}\n", "A".repeat(96));
        while note.len() < 1024 * 1024 {
            note.push_str(&junk);
        }
        send_note(note, 6, vec![])
    };
    let outcome = to_hu(padded).await;
    // The note parses (extra signature lines are allowed), so this is an alarm.
    assert_eq!(outcome, Outcome::Accepted);
    let recorded = all_alarms(&hu);
    assert_eq!(recorded.len(), expected_alarms + 1);
    let last = recorded.last().unwrap();
    assert!(
        last.note.starts_with("sha256:") && last.note.len() < 200,
        "{}",
        &last.note[..last.note.len().min(200)]
    );
    // Distinct claims are stored up to MAX_ALARMS_PER_NODE per log; later ones only counted.
    let stored = recorded.len() as u64;
    let extra = imi_apps::witness::MAX_ALARMS_PER_NODE - stored + 3;
    for i in 0..extra {
        let mut root = [0x40; 32];
        root[..8].copy_from_slice(&i.to_be_bytes());
        let bytes = send(
            Checkpoint {
                root,
                ..honest.clone()
            },
            6,
            vec![],
        );
        let outcome = to_hu(bytes).await;
        assert_eq!(outcome, Outcome::Accepted);
    }
    assert_eq!(
        all_alarms(&hu).len() as u64,
        imi_apps::witness::MAX_ALARMS_PER_NODE
    );
    // Read a page at a time: every record once, in order, pages no larger than asked.
    let (mut from, mut paged, mut pages) = (0, Vec::new(), 0);
    loop {
        let page = imi_apps::witness::alarms(hu.engine(), from, 7).unwrap();
        assert!(page.len() <= 7);
        let Some((last, _)) = page.last() else { break };
        from = last + 1;
        pages += 1;
        paged.extend(page.into_iter().map(|(_, a)| a));
    }
    assert_eq!(paged, all_alarms(&hu));
    assert_eq!(pages, imi_apps::witness::MAX_ALARMS_PER_NODE.div_ceil(7));
    assert_eq!(
        alarms("split_view"),
        3 + extra,
        "every alarm is still counted"
    );
    // HU still remembers DE's honest checkpoint.
    let seen: imi_apps::witness::Seen = ciborium::from_reader(
        hu.store()
            .get(imi_apps::witness::WITNESS, b"DE")
            .unwrap()
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!((seen.size, seen.root), (6, honest.root));

    // An honest extension is cosigned.
    de.send_diag_accepted(&[HU]).await;
    crate::rig::wait_until("DE's log grew", || {
        imi_engine::log::size(de.store()).unwrap() == 8
    })
    .await;
    let root8 = merkle::root(&StoreNodes(de.store()), 8).unwrap();
    let proof = merkle::consistency_proof(&StoreNodes(de.store()), 6, 8).unwrap();
    let bytes = send(
        Checkpoint {
            size: 8,
            root: root8,
            ..honest.clone()
        },
        6,
        proof,
    );
    let outcome = to_hu(bytes).await;
    assert_eq!(outcome, Outcome::Accepted);
    let a = answer(&hu).unwrap();
    assert!(a.cosignature.is_some() && a.known == 8, "{a:?}");

    raw.stop().await;
    de.stop().await;
    hu.stop().await;
}

/// Found by `imi-sim torture`: a checkpoint distributed while the log grows (steady traffic)
/// was sent with a consistency proof up to the log's size a moment later, not up to the
/// note's own size, so its witness saw an inconsistent extension and raised a false alarm.
/// DE distributes checkpoints while it sends diagnostics without pause: HU cosigns and
/// raises no alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_distributed_while_the_log_grows_raise_no_alarm() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fed = Federation::new(&[DE, HU]);
    let (de_apps, _) = apps(&fed, DE);
    let (hu_apps, hu_alarms) = apps(&fed, HU);
    let de = fed.start_with(DE, de_apps).await;
    let hu = fed.start_with(HU, hu_apps).await;
    de.send_diag_accepted(&[HU]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (engine, stop) = (de.engine().clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                engine
                    .send(crate::rig::diag_draft(DE, &[HU]))
                    .await
                    .unwrap();
                sent += 1;
            }
            sent
        })
    };
    for _ in 0..30 {
        imi_apps::witness::distribute_checkpoint(de.engine())
            .await
            .unwrap();
        imi_apps::witness::send_witness_answers(hu.engine())
            .await
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let sent = within("the traffic to stop", traffic).await.unwrap();
    assert!(sent > 0);
    crate::rig::wait_until("DE's outbox to drain", || {
        de.count(imi_engine::keys::OUTBOX) == 0
    })
    .await;
    let alarms = all_alarms(&hu);
    assert!(
        alarms.is_empty(),
        "{} false alarms, the first: {:?}",
        alarms.len(),
        alarms.first().map(|a| (&a.kind, a.claimed.0, a.known.0))
    );
    let counted: u64 = ["inconsistent", "rollback", "split_view"]
        .iter()
        .map(|k| {
            hu_alarms
                .get_or_create(&PeerCodeLabel {
                    peer: "DE".into(),
                    code: (*k).into(),
                })
                .get()
        })
        .sum();
    assert_eq!(counted, 0);
    // HU cosigned DE's checkpoints. Its answers go out only when `send_witness_answers`
    // runs (the rig turns the job off), and on a busy machine all 30 rounds above can end
    // before HU received a checkpoint: once DE's outbox is drained HU has them all, so one
    // more round, waited for until HU's outbox is drained too, must bring a cosignature.
    imi_apps::witness::send_witness_answers(hu.engine())
        .await
        .unwrap();
    crate::rig::wait_until("HU's outbox to drain", || {
        hu.count(imi_engine::keys::OUTBOX) == 0
    })
    .await;
    let cosigned = imi_engine::checkpoint::stored(de.store())
        .unwrap()
        .into_iter()
        .filter(|(_, note)| {
            SignedNote::parse(note)
                .unwrap()
                .verify_cosignature(&witness_name("HU"), &fed.member(HU).signer.public())
                .is_some()
        })
        .count();
    assert!(cosigned > 0, "HU cosigned none of DE's checkpoints");
    de.stop().await;
    hu.stop().await;
}

/// Found by `imi-sim torture`: a backlog of checkpoint envelopes is delivered concurrently, so
/// an older, smaller checkpoint can reach the witness after a newer one it cosigned; it was
/// taken for a rollback (a false alarm). A smaller checkpoint in an envelope created before
/// the one HU holds is stale: not cosigned, answered with what HU knows, no alarm. In an
/// envelope created after it, it is a rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_older_checkpoint_is_stale_and_a_newer_smaller_one_a_rollback() {
    let fed = Federation::new(&[DE, HU]);
    let (de_apps, _) = apps(&fed, DE);
    let (hu_apps, hu_alarms) = apps(&fed, HU);
    let de = fed.start_with(DE, de_apps).await;
    let hu = fed.start_with(HU, hu_apps).await;
    for _ in 0..3 {
        de.send_diag_accepted(&[HU]).await;
    }
    crate::rig::wait_until("DE's log holds 6 leaves", || {
        imi_engine::log::size(de.store()).unwrap() == 6
    })
    .await;
    let signer = fed.member(DE).signer.clone();
    let checkpoint = |size: u64| {
        let cp = Checkpoint {
            origin: origin_of("DE"),
            size,
            root: merkle::root(&StoreNodes(de.store()), size).unwrap(),
        };
        SignedNote::sign(&cp.body(), &cp.origin, &signer).text()
    };
    let raw = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let peer = fed.member(HU).peer_id();
    let deliver = |size: u64, base: u64, created: u64| {
        let mut body = Vec::new();
        ciborium::into_writer(
            &CheckpointMessage {
                note: checkpoint(size),
                base,
                proof: vec![],
            },
            &mut body,
        )
        .unwrap();
        let draft = Draft {
            kind: Kind::new(KIND_CHECKPOINT).unwrap(),
            step: None,
            authority: AuthorityId::new("DE-IMI").unwrap(),
            to: vec![HU],
            case: None,
            prev: vec![],
            body,
        };
        let bytes = imi_protocol::seal_and_sign(
            &draft,
            created,
            &signer,
            &fed.trust,
            &SealRandomness::random(1),
        )
        .unwrap();
        let (fed, raw) = (&fed, &raw);
        async move {
            let r = within("HU answers", raw.client.request(peer, bytes))
                .await
                .unwrap();
            fed.verify_receipt(r, HU).body.outcome
        }
    };
    let answer = || {
        ciborium::from_reader::<imi_apps::witness::CosignatureMessage, _>(
            hu.store()
                .get(imi_apps::witness::WITNESS_OUT, b"DE")
                .unwrap()
                .unwrap()
                .as_slice(),
        )
        .unwrap()
    };
    let rollbacks = || {
        hu_alarms
            .get_or_create(&PeerCodeLabel {
                peer: "DE".into(),
                code: "rollback".into(),
            })
            .get()
    };
    let t = now_ms();
    // Size 6, sent at t: cosigned (the first checkpoint HU sees of DE).
    assert_eq!(deliver(6, 0, t).await, Outcome::Accepted);
    assert!(answer().cosignature.is_some());
    // Size 5, sent before it and delivered late: stale.
    assert_eq!(deliver(5, 0, t - 1000).await, Outcome::Accepted);
    let a = answer();
    assert_eq!((a.size, a.known), (5, 6));
    assert!(
        a.cosignature.is_none(),
        "a stale checkpoint is not cosigned"
    );
    assert_eq!(rollbacks(), 0, "a late message is not a rollback");
    assert!(all_alarms(&hu).is_empty());
    // Size 5, sent after it: DE takes back what it logged.
    assert_eq!(deliver(5, 6, t + 1000).await, Outcome::Accepted);
    let a = answer();
    assert!(a.cosignature.is_none());
    assert_eq!(rollbacks(), 1);
    let recorded = all_alarms(&hu);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].kind, "rollback");
    de.stop().await;
    hu.stop().await;
}

/// Every witness alarm record of `node`, oldest first.
fn all_alarms(node: &crate::rig::Node) -> Vec<imi_apps::witness::Alarm> {
    imi_apps::witness::alarms(node.engine(), 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, a)| a)
        .collect()
}

/// Witness traffic is pruned to what audit needs: the checkpoint and cosignature envelopes,
/// their inbox records and receipts go; the cosigned checkpoint, the witness's view of the
/// log and the logged traffic stay. A resend too old to be de-duplicated is refused `stale`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_traffic_is_pruned_and_a_stale_resend_is_refused() {
    let fed = Federation::new(&[DE, HU]);
    let (de_apps, _) = apps(&fed, DE);
    let (hu_apps, _) = apps(&fed, HU);
    let de = fed.start_with(DE, de_apps).await;
    let hu = fed.start_with(HU, hu_apps).await;
    de.send_diag_accepted(&[HU]).await;
    crate::rig::wait_until("DE's log holds the envelope and its receipt", || {
        imi_engine::log::size(de.store()).unwrap() == 2
    })
    .await;
    imi_apps::witness::distribute_checkpoint(de.engine())
        .await
        .unwrap();
    crate::rig::wait_until("HU has seen DE's checkpoint", || {
        hu.store()
            .get(imi_apps::witness::WITNESS, b"DE")
            .unwrap()
            .is_some()
    })
    .await;
    imi_apps::witness::send_witness_answers(hu.engine())
        .await
        .unwrap();
    crate::rig::wait_until(
        "DE's checkpoint is cosigned and every outbox is empty",
        || {
            stored_note(&de, 2).is_some_and(|n| n.signatures.len() == 2)
                && de.count(imi_engine::keys::OUTBOX) == 0
                && hu.count(imi_engine::keys::OUTBOX) == 0
        },
    )
    .await;
    let kinds = |n: &Node| -> Vec<String> {
        let mut k: Vec<String> = n
            .rows(imi_engine::keys::INBOX)
            .iter()
            .map(|(_, v)| imi_engine::InboxRecord::decode(v).unwrap().kind)
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&hu), ["diagnostic", "imi.checkpoint"]);
    assert_eq!(kinds(&de), ["imi.cosignature"]);
    let (de_out, hu_out) = (
        de.count(imi_engine::keys::ENV_OUT),
        hu.count(imi_engine::keys::ENV_OUT),
    );
    assert_eq!(
        (de_out, hu_out),
        (2, 1),
        "DE: diagnostic + checkpoint; HU: cosignature"
    );

    // Nothing is old enough yet: the job's cut-off is a week back.
    let week_ago = now_ms() - imi_engine::prune::UNLOGGED_RETENTION_MS;
    assert_eq!(
        de.engine().prune_unlogged(week_ago).await.unwrap(),
        imi_engine::prune::PruneReport::default()
    );
    // A week later (the cut-off after everything): the witness traffic goes, the rest stays.
    let later = now_ms() + 1;
    let r = de.engine().prune_unlogged(later).await.unwrap();
    assert_eq!((r.inbound, r.outbound), (1, 1));
    let r = hu.engine().prune_unlogged(later).await.unwrap();
    assert_eq!((r.inbound, r.outbound), (1, 1));
    assert_eq!(kinds(&hu), ["diagnostic"]);
    assert!(kinds(&de).is_empty());
    assert_eq!(
        de.count(imi_engine::keys::ENV_OUT),
        1,
        "the diagnostic stays"
    );
    assert_eq!(hu.count(imi_engine::keys::ENV_OUT), 0);
    assert_eq!(hu.count(imi_engine::keys::ENV_IN), 1);
    assert_eq!(de.count(imi_engine::keys::RECEIPTS_OUT), 1);
    assert!(
        stored_note(&de, 2).is_some_and(|n| n.signatures.len() == 2),
        "the cosigned checkpoint audit needs stays"
    );
    assert!(
        hu.store()
            .get(imi_apps::witness::WITNESS, b"DE")
            .unwrap()
            .is_some()
    );

    // A checkpoint envelope signed four days ago (inside the key's validity) is refused.
    let raw = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let mut body = Vec::new();
    ciborium::into_writer(
        &CheckpointMessage {
            note: stored_note(&de, 2).unwrap().text(),
            base: 0,
            proof: vec![],
        },
        &mut body,
    )
    .unwrap();
    let old = imi_protocol::seal_and_sign(
        &Draft {
            kind: Kind::new(KIND_CHECKPOINT).unwrap(),
            step: None,
            authority: AuthorityId::new("DE-IMI").unwrap(),
            to: vec![HU],
            case: None,
            prev: vec![],
            body,
        },
        now_ms() - 4 * 86_400_000,
        &fed.member(DE).signer,
        &fed.trust,
        &SealRandomness::random(1),
    )
    .unwrap();
    let r = within(
        "HU answers",
        raw.client.request(fed.member(HU).peer_id(), old),
    )
    .await
    .unwrap();
    assert_eq!(
        fed.verify_receipt(r, HU).body.outcome,
        Outcome::Rejected(imi_protocol::RejectCode::Application("stale".into()))
    );
    raw.stop().await;
    de.stop().await;
    hu.stop().await;
}

/// A log's checkpoints go to its witnesses only (`engine.witnesses`): with two, DE's go to
/// the two members after it in the ring of member ids (AT BE DE HU: HU, then AT round the
/// end), both cosign, and BE, not one of them, is sent nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_goes_to_the_members_after_the_node_in_the_ring() {
    use imi_protocol::NodeId::{AT, BE};
    let fed = Federation::new(&[AT, BE, DE, HU]);
    let mut config = Federation::engine_config();
    config.witnesses = 2;
    let de = fed.start_configured(DE, apps(&fed, DE).0, config).await;
    assert_eq!(de.engine().witnesses(), [HU, AT]);
    let others = [
        fed.start_with(AT, apps(&fed, AT).0).await,
        fed.start_with(BE, apps(&fed, BE).0).await,
        fed.start_with(HU, apps(&fed, HU).0).await,
    ];
    de.send_diag_accepted(&[BE]).await;
    crate::rig::wait_until("DE's log holds the envelope and its receipt", || {
        imi_engine::log::size(de.store()).unwrap() == 2
    })
    .await;
    let sent = imi_apps::witness::distribute_checkpoint(de.engine())
        .await
        .unwrap();
    assert_eq!(sent, 2, "one checkpoint envelope per witness");
    let [at, be, hu] = &others;
    crate::rig::wait_until("AT and HU have seen DE's checkpoint", || {
        [at, hu].iter().all(|n| {
            n.store()
                .get(imi_apps::witness::WITNESS, b"DE")
                .unwrap()
                .is_some()
        })
    })
    .await;
    for n in &others {
        imi_apps::witness::send_witness_answers(n.engine())
            .await
            .unwrap();
    }
    crate::rig::wait_until("DE's checkpoint carries AT's and HU's cosignatures", || {
        stored_note(&de, 2).is_some_and(|n| n.signatures.len() == 3)
            && de.count(imi_engine::keys::OUTBOX) == 0
    })
    .await;
    let note = stored_note(&de, 2).unwrap();
    for w in [AT, HU] {
        assert!(
            note.verify_cosignature(&witness_name(w.as_str()), &fed.member(w).signer.public())
                .is_some(),
            "{w} cosigned"
        );
    }
    assert_eq!(
        be.count(imi_engine::keys::INBOX),
        1,
        "BE received the diagnostic only"
    );
    for (n, witnessed) in [(at, true), (be, false), (hu, true)] {
        let seen = n.store().get(imi_apps::witness::WITNESS, b"DE").unwrap();
        assert_eq!(seen.is_some(), witnessed, "{:?}", n.engine().node());
    }
    // A second distribution sends nothing: both witnesses cosigned this size.
    assert_eq!(
        imi_apps::witness::distribute_checkpoint(de.engine())
            .await
            .unwrap(),
        0
    );
}

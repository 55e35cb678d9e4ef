//! Retention on HU's copy of a case DE sent and withdrew: blocked after 183 days, erased
//! after 1096; after erasure a raw byte scan of HU's database directory finds neither the
//! subject's name nor the case key (raw or wrapped); a replayed create, a new step and a
//! create with the same case id are refused; restoring a backup taken before the erasure
//! does not bring the data back (the tombstone file outside the database is re-applied).
//! Along the way, the case's retention row (what a run reads instead of every case): its
//! blocking time once closed, its erasure time once blocked, none once erased; given back
//! by the first run of a process to a store that has none.
use crate::cases::{cases_for, create, message, subject};
use crate::rig::{Federation, now_ms, within};
use imi_apps::retention::RETENTION_DUE;
use imi_domain::request::Transition;
use imi_engine::{Applications, keys};
use imi_protocol::NodeId::{DE, HU};
use imi_protocol::{AuthorityId, CaseId, Draft, Kind, Outcome, RejectCode, SealRandomness};

const DAY: u64 = 86_400_000;

fn scan(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            hits.extend(scan(&p, needle));
        } else if std::fs::read(&p)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(p.display().to_string());
        }
    }
    hits
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A request step of `case` by DE-BY-BLZK to HU, signed by DE at `created`.
fn de_step(fed: &Federation, case: CaseId, body: Vec<u8>, created: u64) -> Vec<u8> {
    let draft = Draft {
        kind: Kind::new(imi_apps::requests::KIND_REQUEST).unwrap(),
        step: crate::rig::step_of(&body),
        authority: AuthorityId::new("DE-BY-BLZK").unwrap(),
        to: vec![HU],
        case: Some(case),
        prev: vec![],
        body,
    };
    imi_protocol::seal_and_sign(
        &draft,
        created,
        &fed.member(DE).signer,
        &fed.trust,
        &SealRandomness::random(1),
    )
    .unwrap()
}

/// Sends envelope bytes to HU over `raw` and returns the outcome of HU's verified receipt.
async fn to_hu(fed: &Federation, raw: &crate::rig::RawClient, bytes: Vec<u8>) -> Outcome {
    let peer = fed.member(HU).peer_id();
    let r = within("HU answers", raw.client.request(peer, bytes))
        .await
        .unwrap();
    fed.verify_receipt(r, HU).body.outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_then_erase_without_trace_or_resurrection() {
    let fed = Federation::new(&[DE, HU]);
    let cases = cases_for(HU);
    let apps = || Applications::new(vec![cases.application()]);
    let hu = fed.start_with(HU, apps()).await;
    let raw = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let seal = |case: CaseId, body: Vec<u8>| de_step(&fed, case, body, now_ms());
    let send = |bytes: Vec<u8>| to_hu(&fed, &raw, bytes);
    let id = CaseId::random();
    let create_bytes = seal(id, message(create(&["PQ-Q01"], "HU-ENKK"), Some(subject())));
    assert_eq!(send(create_bytes.clone()).await, Outcome::Accepted);
    assert_eq!(
        send(seal(
            id,
            message(
                Transition::Withdraw {
                    reason: "not needed".into()
                },
                None
            )
        ))
        .await,
        Outcome::Accepted
    );
    let ended = now_ms();
    // Its retention row: the blocking time, 183 days after its last step.
    let due_rows = |store: &dyn imi_store::ReadStore| -> Vec<u64> {
        store
            .range(RETENTION_DUE, &[], None, usize::MAX)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k.get(8..) == Some(id.as_bytes().as_slice()))
            .map(|(k, _)| u64::from_be_bytes(k[..8].try_into().unwrap()))
            .collect()
    };
    let rows = due_rows(hu.store());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0] + 60_000 > ended + 183 * DAY && rows[0] <= ended + 183 * DAY);
    let raw_key = cases.unwrap_case_key(hu.store(), &id).unwrap().unwrap();
    let wrapped = hu
        .store()
        .get(imi_apps::requests::CASE_KEYS, id.as_bytes())
        .unwrap()
        .unwrap();
    let name = subject().name.into_bytes();
    // Control: the wrapped key is in the files now (the scan does see what is there).
    assert!(!scan(&fed.data_dir(HU), &wrapped).is_empty());

    // A backup taken now (node stopped), restored later.
    let db = fed.data_dir(HU);
    let backup = tempfile::tempdir().unwrap();
    hu.stop().await;
    copy_dir(&db, backup.path());
    let hu = fed.start_with(HU, apps()).await;
    let tombstones = backup
        .path()
        .parent()
        .unwrap()
        .join(format!("erased-{}", id));
    let _ = std::fs::remove_file(&tombstones);
    // A store written before retention rows existed (or by a release that did not write
    // them: a downgrade and upgrade again) has none: the first run of a process gives every
    // case its row.
    let mut batch = imi_store::WriteBatch::new();
    for (k, _) in hu
        .store()
        .range(RETENTION_DUE, &[], None, usize::MAX)
        .unwrap()
    {
        batch.delete(RETENTION_DUE, k);
    }
    hu.store()
        .write(batch, imi_store::Durability::Sync)
        .unwrap();
    assert!(due_rows(hu.store()).is_empty());

    // Not yet due; then blocked after six months.
    let r = imi_apps::retention::run_retention(
        hu.engine(),
        &cases,
        ended + 100 * DAY,
        Some(&tombstones),
    )
    .await
    .unwrap();
    assert_eq!((r.blocked, r.deleted), (0, 0));
    assert_eq!(due_rows(hu.store()), rows, "given back");
    let r = imi_apps::retention::run_retention(
        hu.engine(),
        &cases,
        ended + 184 * DAY,
        Some(&tombstones),
    )
    .await
    .unwrap();
    assert_eq!((r.blocked, r.deleted), (1, 0));
    assert!(imi_apps::retention::is_blocked(hu.store(), &id).unwrap());
    assert_eq!(
        due_rows(hu.store()),
        [rows[0] + (1096 - 183) * DAY],
        "moved to its erasure time"
    );
    assert!(
        cases.read(hu.store(), &id).unwrap().is_some(),
        "blocked, not deleted"
    );
    // A run that cannot write the erased-cases file (a directory is in its place) fails
    // before it erases anything, and the backlog says what stays due.
    let in_the_way = tempfile::tempdir().unwrap();
    let failing =
        imi_apps::retention::Retention::new(cases.clone(), Some(in_the_way.path().to_path_buf()));
    assert!(failing.run(hu.engine(), ended + 1097 * DAY).await.is_err());
    assert_eq!(failing.metrics().backlog("erase"), 1);
    assert_eq!(failing.metrics().backlog("block"), 0);
    assert_eq!(failing.metrics().last_success.get(), 0);
    assert!(
        cases.read(hu.store(), &id).unwrap().is_some(),
        "nothing erased"
    );
    // Erased after three years.
    let r = imi_apps::retention::run_retention(
        hu.engine(),
        &cases,
        ended + 1097 * DAY,
        Some(&tombstones),
    )
    .await
    .unwrap();
    assert_eq!((r.blocked, r.deleted), (0, 1));
    assert!(cases.read(hu.store(), &id).unwrap().is_none());
    assert!(imi_apps::retention::is_erased(hu.store(), &id).unwrap());
    assert!(due_rows(hu.store()).is_empty(), "none once erased");
    // A run that completes leaves no backlog and says when.
    let working = imi_apps::retention::Retention::new(cases.clone(), Some(tombstones.clone()));
    let r = working.run(hu.engine(), ended + 1097 * DAY).await.unwrap();
    assert_eq!((r.blocked, r.deleted), (0, 0));
    assert_eq!(working.metrics().backlog("erase"), 0);
    assert_eq!(
        working.metrics().last_success.get(),
        i64::try_from((ended + 1097 * DAY) / 1000).unwrap()
    );
    // The stored envelope (whose body HU's HPKE key could open) is gone too; its inbox
    // record (hash and HU's signed receipt, no content) stays for de-duplication and audit.
    let create_id = imi_protocol::Envelope::parse(create_bytes.clone(), usize::MAX)
        .unwrap()
        .header()
        .id;
    let env_key = keys::node_msg_key(DE, &create_id);
    assert!(hu.store().get(keys::ENV_IN, &env_key).unwrap().is_none());
    assert!(hu.store().get(keys::INBOX, &env_key).unwrap().is_some());
    assert!(
        scan(&db, &create_bytes[create_bytes.len() - 64..]).is_empty(),
        "no envelope bytes left"
    );
    let leaves: Vec<String> = hu
        .rows(keys::LOG_LEAVES)
        .into_iter()
        .map(|(_, v)| String::from_utf8(v).unwrap())
        .filter(|l| l.contains("type=retention"))
        .collect();
    assert_eq!(leaves.len(), 2, "{leaves:?}");
    assert!(leaves[1].contains("action=delete") && leaves[1].contains(&id.to_string()));
    // Every leaf of the case (envelopes, receipts, retention) is on the case's `prev` chain
    // from its head, newest first: what makes the case's evidence bundle checkably complete.
    let of_case: Vec<u64> = hu
        .rows(keys::LOG_LEAVES)
        .into_iter()
        .filter(|(_, v)| String::from_utf8_lossy(v).contains(&format!("case={id}")))
        .map(|(k, _)| u64::from_be_bytes(k.try_into().unwrap()))
        .rev()
        .collect();
    let chain: Vec<u64> = imi_engine::log::case_chain(hu.store(), &id, u64::MAX)
        .unwrap()
        .into_iter()
        .map(|(i, _, _)| i)
        .collect();
    assert!(of_case.len() >= 6, "{of_case:?}");
    assert_eq!(chain, of_case);
    for (what, needle) in [
        ("subject name", name.as_slice()),
        ("case key", &raw_key[..]),
        ("wrapped case key", wrapped.as_slice()),
    ] {
        let hits = scan(&db, needle);
        assert!(hits.is_empty(), "{what} still in {hits:?}");
    }
    assert!(
        !scan(&db, id.to_string().as_bytes()).is_empty(),
        "control: the case id (log leaves) is found"
    );

    // No resurrection by replay or by a new create of the same case.
    assert_eq!(send(create_bytes).await, Outcome::Duplicate);
    assert_eq!(
        send(seal(
            id,
            message(
                Transition::Withdraw {
                    reason: "again".into()
                },
                None
            )
        ))
        .await,
        Outcome::Rejected(RejectCode::Application("case_erased".into()))
    );
    assert_eq!(
        send(seal(
            id,
            message(create(&["PQ-Q01"], "HU-ENKK"), Some(subject()))
        ))
        .await,
        Outcome::Rejected(RejectCode::Application("case_erased".into()))
    );
    assert!(cases.unwrap_case_key(hu.store(), &id).unwrap().is_none());

    // Restore the backup from before the erasure: the data is back in the files...
    hu.stop().await;
    std::fs::remove_dir_all(&db).unwrap();
    copy_dir(backup.path(), &db);
    let hu = fed.start_with(HU, apps()).await;
    assert!(
        cases.read(hu.store(), &id).unwrap().is_some(),
        "the backup holds the data"
    );
    // ...until the node re-applies its tombstone file (as imi-node does at start).
    assert_eq!(
        imi_apps::retention::enforce_tombstones(hu.engine(), &tombstones)
            .await
            .unwrap(),
        1
    );
    assert!(cases.read(hu.store(), &id).unwrap().is_none());
    // The backup predates the blocking: the re-erasure blocks too, so that users no longer
    // see a case whose data is gone.
    assert!(imi_apps::retention::is_blocked(hu.store(), &id).unwrap());
    assert!(scan(&db, &name).is_empty());
    assert!(scan(&db, &raw_key).is_empty());
    let _ = std::fs::remove_file(&tombstones);
    raw.stop().await;
    hu.stop().await;
}

/// A requester that backdates its request and withdrawal (within its key's validity) cannot
/// make the responder's node block or erase its copy early, nor date the indicator facts HU
/// reports: retention and facts count from the time HU can defend, its receipt, when the
/// signed time is older than the allowed skew (`protocol/vectors/time.json`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_step_does_not_advance_retention() {
    let fed = Federation::new(&[DE, HU]);
    let cases = std::sync::Arc::new(crate::cases::cases_plain(HU).with_fact_reports());
    let hu = fed
        .start_with(HU, Applications::new(vec![cases.application()]))
        .await;
    let raw = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    // Twenty hours ago: inside the signing key's validity (the rig's keys are a day old).
    let backdated = now_ms() - 20 * 3_600_000;
    let seal = |case: CaseId, body: Vec<u8>, created: u64| de_step(&fed, case, body, created);
    let send = |bytes: Vec<u8>| to_hu(&fed, &raw, bytes);
    let id = CaseId::random();
    let create_msg = message(create(&["PQ-Q01"], "HU-ENKK"), Some(subject()));
    let created_received = now_ms();
    assert_eq!(
        send(seal(id, create_msg, backdated)).await,
        Outcome::Accepted
    );
    let withdraw = message(
        Transition::Withdraw {
            reason: "backdated".into(),
        },
        None,
    );
    let received = now_ms();
    assert_eq!(
        send(seal(id, withdraw, backdated + 1000)).await,
        Outcome::Accepted
    );
    let ix = imi_apps::requests::Cases::index(hu.store(), &id)
        .unwrap()
        .unwrap();
    assert!(ix.terminal);
    assert!(
        ix.updated >= received,
        "retention counts from HU's receipt ({received}), not the signed {}",
        backdated + 1000
    );
    // The facts HU reports to the Commission carry HU's receipt times, not DE's claims.
    let report: imi_apps::facts::FactReport = ciborium::from_reader(
        hu.store()
            .get(imi_apps::facts::FACTS, id.as_bytes())
            .unwrap()
            .expect("HU recorded its fact report")
            .as_slice(),
    )
    .unwrap();
    // Fact times are whole seconds.
    let r = report.fact.record().unwrap();
    let second = |ms: u64| i64::try_from(ms / 1000 * 1000).unwrap();
    assert!(
        r.sent >= second(created_received) && r.sent <= second(received) + 1000,
        "sent_at is HU's receipt of the request, not the signed {backdated}"
    );
    assert!(
        r.withdrawn.unwrap() >= second(received),
        "withdrawn_at is HU's receipt"
    );
    // Six months after the signed time, but not after the receipt: nothing is blocked.
    let r = imi_apps::retention::run_retention(
        hu.engine(),
        &cases,
        backdated + 1000 + 183 * DAY + 3_600_000,
        None,
    )
    .await
    .unwrap();
    assert_eq!((r.blocked, r.deleted), (0, 0));
    assert!(!imi_apps::retention::is_blocked(hu.store(), &id).unwrap());
    // Six months after the receipt: blocked.
    let r = imi_apps::retention::run_retention(hu.engine(), &cases, received + 184 * DAY, None)
        .await
        .unwrap();
    assert_eq!(r.blocked, 1);
    raw.stop().await;
    hu.stop().await;
}

/// The erasures of one run share one purge (a purge compacts whole columns), and a purge
/// that did not happen (a crash or an error after the deletion) is done by the next run,
/// found by the mark the deletion wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasures_share_a_purge_and_a_missed_purge_is_done_next_run() {
    use imi_apps::retention::{PURGE_PENDING, TOMBSTONES};
    let fed = Federation::new(&[DE, HU]);
    let cases = cases_for(HU);
    let hu = fed
        .start_with(HU, Applications::new(vec![cases.application()]))
        .await;
    let raw = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let db = fed.data_dir(HU);
    // Two cases, each created and withdrawn; each has its own wrapped case key.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = CaseId::random();
        let create_step = message(create(&["PQ-Q01"], "HU-ENKK"), Some(subject()));
        let withdraw = message(
            Transition::Withdraw {
                reason: "not needed".into(),
            },
            None,
        );
        for body in [create_step, withdraw] {
            let bytes = de_step(&fed, id, body, now_ms());
            assert_eq!(to_hu(&fed, &raw, bytes).await, Outcome::Accepted);
        }
        ids.push(id);
    }
    let ended = now_ms();
    hu.store().flush().unwrap();
    let wrapped: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| {
            hu.store()
                .get(imi_apps::requests::CASE_KEYS, id.as_bytes())
                .unwrap()
                .unwrap()
        })
        .collect();
    for w in &wrapped {
        assert!(!scan(&db, w).is_empty(), "control: the wrapped key on disk");
    }
    let r = imi_apps::retention::run_retention(hu.engine(), &cases, ended + 1097 * DAY, None)
        .await
        .unwrap();
    assert_eq!(r.deleted, 2);
    for (id, w) in ids.iter().zip(&wrapped) {
        assert!(scan(&db, w).is_empty(), "{id}'s wrapped key still on disk");
        assert!(imi_apps::retention::is_erased(hu.store(), id).unwrap());
    }
    assert!(hu.store().get(TOMBSTONES, PURGE_PENDING).unwrap().is_none());

    // A deletion whose purge did not happen: the value is in a table file, deleted, and
    // the mark set, as a crash right after the deletion's commit leaves them.
    let key = CaseId::random().as_bytes().to_vec();
    let marker = b"LEFT-BY-AN-INTERRUPTED-ERASURE".to_vec();
    let mut b = imi_store::WriteBatch::new();
    b.put(imi_apps::requests::CASES, key.clone(), marker.clone());
    hu.store().write(b, imi_store::Durability::Sync).unwrap();
    hu.store().flush().unwrap();
    let mut b = imi_store::WriteBatch::new();
    b.delete(imi_apps::requests::CASES, key);
    b.put(TOMBSTONES, PURGE_PENDING.to_vec(), vec![1]);
    hu.store().write(b, imi_store::Durability::Sync).unwrap();
    hu.store().flush().unwrap();
    assert!(
        !scan(&db, &marker).is_empty(),
        "control: the deleted value on disk"
    );
    // The next run has nothing due, and purges.
    let r = imi_apps::retention::run_retention(hu.engine(), &cases, ended + 1098 * DAY, None)
        .await
        .unwrap();
    assert_eq!((r.blocked, r.deleted), (0, 0));
    assert!(scan(&db, &marker).is_empty(), "the deleted value is purged");
    assert!(hu.store().get(TOMBSTONES, PURGE_PENDING).unwrap().is_none());
    raw.stop().await;
    hu.stop().await;
}

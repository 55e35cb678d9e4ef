//! The replicated directory between real engines (RocksDB, libp2p on loopback): changes reach
//! every node; a forged update is refused with a signed receipt and changes nothing;
//! duplicated, reordered and equivocated deliveries converge to byte-identical replicas; a
//! node that lost its replica catches up through one sync exchange, in batches, and a second
//! sync sends nothing. The directory's jobs are off: the tests publish and sync by hand.
use crate::rig::{Federation, Node, RawClient, wait_until, within};
use imi_apps::diagnostics::DiagnosticApp;
use imi_apps::directory::{DIRECTORY, DIRECTORY_META, DirectoryApp, DirectoryApplication};
use imi_directory::update::MAX_BATCH_UPDATES;
use imi_directory::{DirectoryUpdate, UpdateBatch};
use imi_domain::catalogue::Catalogue;
use imi_domain::{Authority, Level, Vocabulary};
use imi_engine::Applications;
use imi_engine::metrics::KindLabel;
use imi_protocol::NodeId::{AT, DE, HU};
use imi_protocol::{AuthorityId, Kind, NodeId, Outcome, RejectCode};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn vocabulary() -> Arc<Vocabulary> {
    static V: OnceLock<Arc<Vocabulary>> = OnceLock::new();
    V.get_or_init(|| {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let disk = imi_apps::catalogue_files::Disk;
        let catalogue = Catalogue::load(&configs.join("catalogue"), &disk).unwrap();
        Arc::new(
            Vocabulary::load(&configs.join("vocabularies"), catalogue.languages(), &disk).unwrap(),
        )
    })
    .clone()
}

fn authority(id: &str, name: &str) -> Authority {
    let country: NodeId = id.split('-').next().unwrap().parse().unwrap();
    Authority {
        id: AuthorityId::new(id).unwrap(),
        country,
        names: BTreeMap::from([("en".to_owned(), name.to_owned())]),
        level: Level::Regional,
        areas: vec!["PQ".into()],
        procedures: vec!["PQ-P01".into()],
        professions: vec!["PROF-DENTIST".into()],
        competences: vec![],
        city: None,
        region: None,
    }
}

struct DirNode {
    node: Node,
    app: Arc<DirectoryApp>,
}

impl DirNode {
    fn replica(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.node.rows(DIRECTORY)
    }
    fn accepted(&self, kind: &str) -> u64 {
        self.node
            .engine()
            .metrics()
            .accepted
            .get_or_create(&KindLabel::of(kind))
            .get()
    }
    fn mark(&self, country: NodeId) -> u64 {
        self.app
            .coverage(self.node.engine().reader().as_ref())
            .unwrap()
            .into_iter()
            .find(|(c, _)| *c == country)
            .map_or(0, |(_, c)| c.mark)
    }
}

async fn start(fed: &Federation, id: NodeId) -> DirNode {
    let app = Arc::new(DirectoryApp::empty(id, vocabulary()).unwrap());
    let apps = Applications::new(vec![
        Arc::new(DiagnosticApp::default()),
        Arc::new(DirectoryApplication(app.clone())),
    ]);
    let mut config = Federation::engine_config();
    for job in ["directory-publish", "directory-sync"] {
        config.job_interval_ms.insert(job.to_owned(), 0);
    }
    let node = fed.start_configured(id, apps, config).await;
    // The store is open now: what a restarted node had is in memory and searchable again.
    app.reload(node.store()).unwrap();
    DirNode { node, app }
}

async fn change(n: &DirNode, records: Vec<(Authority, bool)>) {
    n.app.change(n.node.engine(), records).await.unwrap();
}

/// DE's two dental chambers, A and B.
async fn two_chambers(de: &DirNode) {
    change(
        de,
        vec![
            (authority("DE-A", "Dental chamber A"), false),
            (authority("DE-B", "Dental chamber B"), false),
        ],
    )
    .await;
}

/// DE retires chamber A and renames B, now in Saarbrücken.
async fn retire_a_rename_b(de: &DirNode) {
    let mut renamed = authority("DE-B", "Landeszahnärztekammer Saar");
    renamed.city = Some("Saarbrücken".into());
    change(
        de,
        vec![
            (authority("DE-A", "Dental chamber A"), true),
            (renamed, false),
        ],
    )
    .await;
}

/// A search for `text`, in `country` if given, five results a page.
fn query(text: &str, country: Option<NodeId>) -> imi_directory::SearchQuery {
    imi_directory::SearchQuery {
        text: text.into(),
        country,
        limit: 5,
        ..Default::default()
    }
}

async fn wait_replica(what: &str, n: &DirNode, len: usize) {
    wait_until(what, || n.replica().len() == len).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_node_and_replicas_are_identical() {
    let fed = Federation::new(&[DE, HU, AT]);
    let de = start(&fed, DE).await;
    let hu = start(&fed, HU).await;
    let at = start(&fed, AT).await;
    two_chambers(&de).await;
    change(&hu, vec![(authority("HU-A", "Fogorvosi kamara"), false)]).await;
    for n in [&de, &hu, &at] {
        wait_replica("three authorities everywhere", n, 3).await;
    }
    // DE retires one, renames the other: both reach HU and AT.
    retire_a_rename_b(&de).await;
    for n in [&hu, &at] {
        wait_until("DE's second change", || n.mark(DE) == 4).await;
    }
    assert_eq!(de.replica(), hu.replica());
    assert_eq!(de.replica(), at.replica());
    // Searchable on the replicas once the commit is durable (the index follows the
    // `committed` hook), retired ones left out.
    let de_a = AuthorityId::new("DE-A").unwrap();
    wait_until("AT's directory has DE-A retired", || {
        at.app.shared().snapshot().is_retired(&de_a)
    })
    .await;
    let q = query("Saarbrücken", None);
    wait_until("AT's index has DE-B's new city", || {
        at.app.search(&q).unwrap().total == 1
    })
    .await;
    let hits = at.app.search(&q).unwrap();
    assert_eq!(hits.hits.len(), 1);
    assert_eq!(hits.hits[0].id.as_str(), "DE-B");
    let q = query("chamber", Some(DE));
    assert_eq!(at.app.search(&q).unwrap().total, 0, "DE-A is retired");
    for n in [de, hu, at] {
        n.node.stop().await;
    }
}

/// The search index is built at a node's first search, from the replica as it is then, and
/// follows every update after that; a refused query builds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_index_is_built_at_the_first_search() {
    let fed = Federation::new(&[DE, AT]);
    let de = start(&fed, DE).await;
    let at = start(&fed, AT).await;
    two_chambers(&de).await;
    wait_replica("DE's two authorities on AT", &at, 2).await;
    wait_until("AT's directory in memory has both", || {
        at.app.shared().snapshot().len() == 2
    })
    .await;
    assert!(!de.app.index_built() && !at.app.index_built());
    let empty = query("", None);
    assert_eq!(
        at.app.search(&empty),
        Err(imi_directory::SearchError::Empty)
    );
    assert!(!at.app.index_built(), "a refused query builds nothing");

    let chamber = query("chamber", Some(DE));
    assert_eq!(at.app.search(&chamber).unwrap().total, 2);
    assert!(at.app.index_built() && !de.app.index_built());

    // Updates after the build reach the index.
    retire_a_rename_b(&de).await;
    let city = query("Saarbrücken", None);
    wait_until("AT's index has DE-B's new city", || {
        at.app.search(&city).unwrap().total == 1
    })
    .await;
    wait_until("AT's index has DE-A retired", || {
        at.app.search(&chamber).unwrap().total == 0
    })
    .await;
    // DE builds its own at its first search, with its own changes in it.
    assert_eq!(de.app.search(&city).unwrap().hits[0].id.as_str(), "DE-B");

    let mut registry = prometheus_client::registry::Registry::default();
    imi_engine::Application::register_metrics(&DirectoryApplication(at.app.clone()), &mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("imi_directory_index_builds_total 1\n"),
        "one build for every search: {text}"
    );
    for n in [de, at] {
        n.node.stop().await;
    }
}

/// A batch `(from, to]` signed by `signer`'s node.
fn batch(from: u64, to: u64, updates: Vec<DirectoryUpdate>) -> Vec<u8> {
    UpdateBatch { from, to, updates }.encode()
}

fn update(seq: u64, id: &str, name: &str) -> DirectoryUpdate {
    let a = authority(id, name);
    DirectoryUpdate {
        country: a.country,
        seq,
        time_ms: 1_700_000_000_000,
        retired: false,
        authority: a,
    }
}

async fn send(
    fed: &Federation,
    raw: &RawClient,
    as_node: NodeId,
    to: NodeId,
    body: Vec<u8>,
) -> Outcome {
    let (_, bytes) = fed.seal(
        &fed.member(as_node).signer,
        Kind::DIRECTORY_UPDATE,
        &[to],
        body,
        crate::rig::now_ms(),
    );
    let response = within(
        "an answer to a directory update",
        raw.client.request(fed.member(to).peer_id(), bytes),
    )
    .await
    .expect("a receipt");
    fed.verify_receipt(response, to).body.outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_duplicated_and_reordered_updates() {
    let fed = Federation::new(&[DE, HU, AT]);
    let hu = start(&fed, HU).await;
    let at = start(&fed, AT).await;
    // AT, a member on the trust list, signs an update about a German authority: refused by
    // name in HU's signed receipt, and nothing of HU's replica changes.
    let as_at = fed.raw_client(AT, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let forged = batch(0, 1, vec![update(1, "DE-A", "forged")]);
    let before = (hu.node.rows(DIRECTORY), hu.node.rows(DIRECTORY_META));
    assert_eq!(
        send(&fed, &as_at, AT, HU, forged).await,
        Outcome::Rejected(RejectCode::Application("not_home_node".into()))
    );
    // ...even when it claims the update is its own country's
    let mut lying = update(1, "DE-A", "forged");
    lying.country = AT;
    assert_eq!(
        send(&fed, &as_at, AT, HU, batch(0, 1, vec![lying])).await,
        Outcome::Rejected(RejectCode::Application("not_home_node".into()))
    );
    assert_eq!(
        before,
        (hu.node.rows(DIRECTORY), hu.node.rows(DIRECTORY_META))
    );
    as_at.stop().await;

    // DE's genuine updates, delivered to HU and AT in different orders, some twice, with an
    // equivocation at sequence 2 (two different records under one number).
    let as_de = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let b1 = batch(0, 1, vec![update(1, "DE-A", "one")]);
    let b2 = batch(1, 2, vec![update(2, "DE-A", "two")]);
    let b2x = batch(1, 2, vec![update(2, "DE-A", "two, equivocated")]);
    let b3 = batch(2, 3, vec![update(3, "DE-B", "three")]);
    for body in [&b1, &b2, &b3, &b2x, &b2, &b1] {
        let outcome = send(&fed, &as_de, DE, HU, body.clone()).await;
        assert_eq!(
            outcome,
            Outcome::Accepted,
            "each envelope is new, its content not"
        );
    }
    for body in [&b3, &b2x, &b1, &b2, &b3] {
        assert_eq!(
            send(&fed, &as_de, DE, AT, body.clone()).await,
            Outcome::Accepted
        );
    }
    assert_eq!(hu.replica().len(), 2);
    assert_eq!(hu.replica(), at.replica(), "byte-identical replicas");
    assert_eq!((hu.mark(DE), at.mark(DE)), (3, 3));
    as_de.stop().await;
    for n in [hu, at] {
        n.node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_replica_catches_up_by_one_sync() {
    let fed = Federation::new(&[DE, HU]);
    let de = start(&fed, DE).await;
    let hu = start(&fed, HU).await;
    // More authorities than one batch carries, then a change to some of them.
    let n = MAX_BATCH_UPDATES + 100;
    let all: Vec<(Authority, bool)> = (0..n)
        .map(|i| {
            (
                authority(&format!("DE-X{i:04}"), &format!("Office {i}")),
                false,
            )
        })
        .collect();
    change(&de, all).await;
    change(
        &de,
        (0..10)
            .map(|i| {
                (
                    authority(&format!("DE-X{i:04}"), &format!("Renamed {i}")),
                    false,
                )
            })
            .collect(),
    )
    .await;
    wait_until("HU has DE's last change", || hu.mark(DE) == n as u64 + 10).await;
    let replica = hu.replica();
    // Every batch receipted, so nothing of them waits in DE's outbox for the new HU.
    wait_until("DE's queue to HU is empty", || de.node.queue_depth(HU) == 0).await;
    // HU loses its data: a new, empty store.
    hu.node.stop().await;
    std::fs::remove_dir_all(fed.data_dir(HU)).unwrap();
    let hu = start(&fed, HU).await;
    assert!(hu.replica().is_empty());
    // One sync: HU asks DE from 0; DE answers with the newest record of each authority, in
    // batches (the renamed ten once, not twice).
    assert_eq!(hu.app.sync(hu.node.engine()).await.unwrap(), 1);
    let out = imi_apps::directory::DIRECTORY_OUT;
    wait_until("DE owes HU an answer", || {
        de.node
            .rows(out)
            .iter()
            .any(|(k, _)| k.as_slice() == b"sync/HU")
    })
    .await;
    let owed: Vec<String> = de
        .node
        .rows(out)
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(owed, ["sync/HU"], "nothing else queued");
    let syncs = de.node.store().sync_count();
    let sent = de.app.publish(de.node.engine()).await.unwrap();
    assert_eq!(sent, n.div_ceil(MAX_BATCH_UPDATES));
    // One synced commit per batch: the last one also clears the ask (a crash before it
    // answers again; a separate clearing commit would be one fsync more).
    assert_eq!(de.node.store().sync_count() - syncs, sent as u64);
    assert!(de.node.rows(out).is_empty(), "the ask is answered");
    wait_until("HU caught up", || hu.mark(DE) == n as u64 + 10).await;
    assert_eq!(hu.replica(), replica);
    wait_until("HU counted both batches", || {
        hu.accepted(Kind::DIRECTORY_UPDATE) == sent as u64
    })
    .await;
    // Nothing new: the next sync is answered with nothing.
    assert_eq!(hu.app.sync(hu.node.engine()).await.unwrap(), 1);
    wait_until("DE took the second ask", || {
        de.accepted(Kind::DIRECTORY_SYNC) == 2
    })
    .await;
    assert_eq!(de.app.publish(de.node.engine()).await.unwrap(), 0);
    assert_eq!(hu.accepted(Kind::DIRECTORY_UPDATE), sent as u64);
    // The in-memory directory follows the synced replica.
    wait_until("HU's directory in memory", || {
        hu.app.shared().snapshot().len() == n
    })
    .await;
    for x in [de, hu] {
        x.node.stop().await;
    }
}

/// Two publishes at once (the job, which also runs at start, and a change's own publish)
/// send a queued batch once: the second waits for the first and finds the row cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_at_once_send_a_queued_batch_once() {
    let fed = Federation::new(&[DE, HU]);
    let de = start(&fed, DE).await;
    let _hu = start(&fed, HU).await;
    let body = batch(0, 1, vec![update(1, "DE-A", "Dental chamber A")]);
    de.node
        .engine()
        .local_step(
            None,
            Box::new(move |txn, _| {
                txn.put(
                    imi_apps::directory::DIRECTORY_OUT,
                    [b"pub/".as_slice(), &1u64.to_be_bytes()].concat(),
                    body,
                );
                Ok(imi_engine::LocalOutcome {
                    write: true,
                    result: Vec::new(),
                })
            }),
        )
        .await
        .unwrap();
    let e = de.node.engine();
    let (first, second) = tokio::join!(de.app.publish(e), de.app.publish(e));
    assert_eq!(first.unwrap() + second.unwrap(), 1, "sent once");
    assert!(de.node.rows(imi_apps::directory::DIRECTORY_OUT).is_empty());
    assert_eq!(de.node.count(imi_engine::keys::ENV_OUT), 1, "one envelope");
}

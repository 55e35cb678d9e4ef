//! Per-peer quotas and fairness on B: a peer over its daily byte quota is refused
//! `quota_exceeded` (counted in the same batch as what it had accepted, so a restart forgets
//! nothing) while another peer with the operator's override is not; a peer flooding B holds at
//! most its share of the handler slots, its excess is refused at once, and another peer's
//! envelope is taken into process meanwhile.
use crate::rig::{Federation, Node, now_ms, within};
use imi_engine::metrics::{PeerLabel, PeerQuotaLabel};
use imi_engine::{Application, Applications, EngineConfig, Inbound, Txn, keys};
use imi_protocol::NodeId::{AT, BE, CY};
use imi_protocol::{Kind, NodeId, Outcome, RejectCode};
use std::sync::{Arc, Condvar, Mutex};

fn refused(b: &Node, peer: NodeId, quota: &str) -> u64 {
    b.engine()
        .metrics()
        .quota_refused
        .get_or_create(&PeerQuotaLabel {
            peer: peer.to_string(),
            quota: quota.to_owned(),
        })
        .get()
}

/// Sends a fresh diagnostic of `size` body bytes from `from` (a raw client with its identity)
/// to B and returns the outcome of B's verified receipt.
async fn send(fed: &Federation, raw: &crate::rig::RawClient, from: NodeId, size: usize) -> Outcome {
    fed.send_body(raw, from, BE, Kind::DIAGNOSTIC, vec![7; size])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_daily_byte_quota_is_refused_and_a_restart_forgets_nothing() {
    const QUOTA: u64 = 20_000;
    let fed = Federation::new(&[AT, BE, CY]);
    let config = || EngineConfig {
        peer_bytes_per_day: QUOTA,
        // The operator's override: no limit for AT.
        peer_bytes_per_day_overrides: [("AT".to_owned(), 0)].into_iter().collect(),
        ..Federation::engine_config()
    };
    let apps = || {
        Applications::new(vec![Arc::new(
            imi_apps::diagnostics::DiagnosticApp::default(),
        )])
    };
    let b = fed.start_configured(BE, apps(), config()).await;
    let cy = fed.raw_client(CY, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let mut accepted = 0u64;
    let first_refusal = loop {
        match send(&fed, &cy, CY, 4000).await {
            Outcome::Accepted => accepted += 1,
            other => break other,
        }
        assert!(
            accepted < 10,
            "CY's quota of {QUOTA} bytes was never enforced"
        );
    };
    assert_eq!(first_refusal, Outcome::Rejected(RejectCode::QuotaExceeded));
    assert!(
        accepted >= 3,
        "only {accepted} envelopes of ~4 kB fit in 20 kB"
    );
    let used = b
        .engine()
        .metrics()
        .peer_bytes_today
        .get_or_create(&PeerLabel { peer: "CY".into() })
        .get();
    assert!(used > 0 && u64::try_from(used).unwrap() <= QUOTA, "{used}");
    assert_eq!(refused(&b, CY, "bytes_per_day"), 1);
    let inbox = b.count(keys::INBOX);
    assert_eq!(inbox as u64, accepted, "a refused envelope wrote nothing");
    // A small envelope still fits: the quota counts bytes, not envelopes.
    assert_eq!(send(&fed, &cy, CY, 10).await, Outcome::Accepted);

    // AT, with the override, sends more than CY's quota and is served.
    let at = fed.raw_client(AT, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    for _ in 0..8 {
        assert_eq!(send(&fed, &at, AT, 4000).await, Outcome::Accepted);
    }

    // After a restart, the day's usage is still counted.
    cy.stop().await;
    at.stop().await;
    b.stop().await;
    let b = fed.start_configured(BE, apps(), config()).await;
    let cy = fed.raw_client(CY, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    assert_eq!(
        send(&fed, &cy, CY, 4000).await,
        Outcome::Rejected(RejectCode::QuotaExceeded)
    );
    cy.stop().await;
    b.stop().await;
}

/// Handles diagnostics; CY's block the commit thread until the gate opens, so that CY's
/// envelopes in process stay in process.
#[derive(Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        let (open, cv) = &*self.0;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
}

impl Application for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn kinds(&self) -> &'static [&'static str] {
        &[Kind::DIAGNOSTIC]
    }
    fn apply(&self, msg: &Inbound<'_>, _txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        if msg.header.from == CY {
            let (open, cv) = &*self.0;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_holds_only_its_share_of_the_handler_slots() {
    const SLOTS: usize = 6;
    const PER_PEER: usize = 4;
    const FLOOD: usize = 10;
    let fed = Federation::new(&[AT, BE, CY]);
    let gate = Arc::new(Gate::default());
    let b = fed
        .start_configured(
            BE,
            Applications::new(vec![gate.clone()]),
            EngineConfig {
                max_inbound_concurrency: SLOTS,
                max_inbound_per_peer: PER_PEER,
                ..Federation::engine_config()
            },
        )
        .await;
    let cy = fed.raw_client(CY, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let (tx, mut rx) = tokio::sync::mpsc::channel(FLOOD);
    for _ in 0..FLOOD {
        let (_, bytes) = fed.seal(
            &fed.member(CY).signer,
            Kind::DIAGNOSTIC,
            &[BE],
            b"flood".to_vec(),
            now_ms(),
        );
        let (client, peer, tx) = (cy.client.clone(), fed.member(BE).peer_id(), tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(client.request(peer, bytes).await).await;
        });
    }
    // CY's first PER_PEER envelopes hold their slots (blocked in commit); the rest are
    // refused at once, while those are still in process.
    for _ in 0..FLOOD - PER_PEER {
        let r = within("CY's excess is answered at once", rx.recv())
            .await
            .unwrap()
            .expect("a receipt");
        assert_eq!(
            fed.verify_receipt(r, BE).body.outcome,
            Outcome::Rejected(RejectCode::QuotaExceeded)
        );
    }
    assert_eq!(refused(&b, CY, "inbound_slots"), (FLOOD - PER_PEER) as u64);
    // AT's envelope gets one of the slots CY cannot take: it is in process while CY's flood
    // still holds its share (without the per-peer bound, CY would hold all SLOTS and AT's
    // envelope would wait for one).
    let at = fed.raw_client(AT, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let (_, bytes) = fed.seal(
        &fed.member(AT).signer,
        Kind::DIAGNOSTIC,
        &[BE],
        b"normal".to_vec(),
        now_ms(),
    );
    let at_request = tokio::spawn({
        let (client, peer) = (at.client.clone(), fed.member(BE).peer_id());
        async move { client.request(peer, bytes).await }
    });
    let in_process = b
        .engine()
        .metrics()
        .peer_inbound_in_process
        .get_or_create(&PeerLabel { peer: "AT".into() })
        .clone();
    within(
        "AT's envelope is taken into process during the flood",
        async {
            while in_process.get() != 1 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        },
    )
    .await;
    gate.open();
    for _ in 0..PER_PEER {
        let r = within("CY's admitted envelopes complete", rx.recv())
            .await
            .unwrap()
            .expect("a receipt");
        assert_eq!(fed.verify_receipt(r, BE).body.outcome, Outcome::Accepted);
    }
    let r = within("AT is answered", at_request).await.unwrap().unwrap();
    assert_eq!(fed.verify_receipt(r, BE).body.outcome, Outcome::Accepted);
    assert_eq!(b.count(keys::INBOX), PER_PEER + 1);
    cy.stop().await;
    at.stop().await;
    b.stop().await;
}

//! Trust-list propagation, the receiving side: the list in force again is accepted and
//! changes nothing; a newer one is kept and adopted by the `trust-list` job; an older one
//! (a rollback), another list under the version in force, or one not signed by the
//! governance is refused with its code, counted per member and code, and changes nothing.
use crate::rig::Federation;
use imi_apps::trust::{TRUST_OFFERS, TrustApp};
use imi_engine::Applications;
use imi_protocol::NodeId::{DE, EU, HU};
use imi_protocol::{Kind, NodeSigner, Outcome, RejectCode};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_list_is_adopted_and_an_older_conflicting_or_forged_one_refused() {
    let fed = Federation::new(&[DE, HU]);
    let governance = NodeSigner::generate(EU);
    let app = Arc::new(TrustApp::new(governance.public()));
    let de = fed
        .start_with(DE, Applications::new(vec![app.clone()]))
        .await;
    let raw = fed.raw_client(HU, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let signed = |version: u64, issued_shift: u64, by: &NodeSigner| {
        let mut t = fed.trust.clone();
        t.version = version;
        t.issued += issued_shift;
        t.sign(by).unwrap()
    };
    let offer = |bytes: Vec<u8>| fed.send_body(&raw, HU, DE, Kind::TRUST_LIST, bytes);

    // The list in force, again: accepted, nothing kept.
    let v1 = signed(1, 0, &governance);
    assert_eq!(offer(v1.clone()).await, Outcome::Accepted);
    assert_eq!(de.count(TRUST_OFFERS), 0);

    // Newer: accepted and kept; the job adopts it and clears what it dealt with.
    let v2 = signed(2, 1, &governance);
    assert_eq!(offer(v2.clone()).await, Outcome::Accepted);
    assert_eq!(de.count(TRUST_OFFERS), 1);
    // The same list again (an operator pushed it on two nodes): kept once.
    assert_eq!(offer(v2.clone()).await, Outcome::Accepted);
    assert_eq!(de.count(TRUST_OFFERS), 1);
    de.engine().run_job("trust-list").await.unwrap();
    assert_eq!(de.engine().trust_list().version, 2);
    assert_eq!(de.count(TRUST_OFFERS), 0);

    // Refused, counted, and nothing changes.
    let forger = NodeSigner::generate(EU);
    for (bytes, code) in [
        (v1, "stale_trust_list"),
        (signed(2, 2, &governance), "conflicting_trust_list"),
        (signed(3, 3, &forger), "bad_trust_list"),
        (b"not a trust list".to_vec(), "bad_trust_list"),
    ] {
        let before = app.refused(HU, code);
        assert_eq!(
            offer(bytes).await,
            Outcome::Rejected(RejectCode::Application(code.into())),
            "{code}"
        );
        assert_eq!(app.refused(HU, code), before + 1, "{code}");
        assert_eq!(de.count(TRUST_OFFERS), 0);
        de.engine().run_job("trust-list").await.unwrap();
        assert_eq!(de.engine().trust_list().version, 2);
    }
    raw.stop().await;
    de.stop().await;
}

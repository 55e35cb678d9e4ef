//! Rolling upgrades: a node that requires protocol 2 refuses a member still announcing 1
//! (counted, and the version it announced shown per peer), and accepts the same member once
//! it announces 2; its envelopes are then taken as before.
use crate::rig::{Federation, Options, wait_until};
use imi_engine::PeerProtocol;
use imi_engine::metrics::PeerLabel;
use imi_protocol::NodeId::{BE, CY};
use imi_protocol::{Kind, Outcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_below_the_minimum_protocol_version_is_refused_until_it_upgrades() {
    let fed = Federation::with(
        &[BE, CY],
        Options {
            protocol_versions: (2, 2),
            ..Options::default()
        },
    );
    let b = fed.start(BE).await;
    let cy = PeerLabel { peer: "CY".into() };
    let refused = || {
        b.engine()
            .metrics()
            .peer_protocol_refused
            .get_or_create(&cy)
            .get()
    };
    let announced = || {
        b.engine()
            .metrics()
            .peer_protocol_version
            .get_or_create(&cy)
            .get()
    };

    // CY still runs a release that speaks protocol 1.
    let old = fed.raw_client_speaking(CY, 1);
    old.client.dial_all().await.unwrap();
    wait_until("BE refusing CY's protocol 1", || refused() >= 1).await;
    assert_eq!(announced(), 1);
    assert_eq!(
        b.engine().peer_protocols().get(&CY),
        Some(&PeerProtocol {
            version: Some(1),
            refused: true
        })
    );
    old.stop().await;

    // CY upgraded: same identity, protocol 2.
    let new = fed.raw_client_speaking(CY, 2);
    new.client.dial_all().await.unwrap();
    wait_until("BE accepting CY's protocol 2", || announced() == 2).await;
    let refusals = refused();
    assert_eq!(
        b.engine().peer_protocols().get(&CY),
        Some(&PeerProtocol {
            version: Some(2),
            refused: false
        })
    );
    assert_eq!(
        fed.send_body(
            &new,
            CY,
            BE,
            Kind::DIAGNOSTIC,
            b"after the upgrade".to_vec()
        )
        .await,
        Outcome::Accepted
    );
    assert_eq!(refused(), refusals, "no refusal after the upgrade");
    new.stop().await;
    b.stop().await;
}

//! Hostile inputs on the wire. Raw bytes are sent to B by a test-driven network endpoint that
//! holds CY's identity (so it is on B's allow list; CY's engine does not run). Every one must
//! be answered with a signed `rejected` receipt carrying the right code, leave B's state
//! unchanged, and leave B serving A normally right after.
use crate::rig::{Federation, Node, Options, RawClient, now_ms, within};
use imi_engine::keys;
use imi_protocol::NodeId::{AT, BE, CY};
use imi_protocol::{Envelope, NodeSigner, Outcome, Receipt, RejectCode, sha256};

/// B's state that no hostile input may change.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    applied: u64,
    inbox: usize,
    env_in: usize,
    app: Vec<(Vec<u8>, Vec<u8>)>,
}

fn snapshot(b: &Node) -> Snapshot {
    Snapshot {
        applied: b.applied(),
        inbox: b.count(keys::INBOX),
        env_in: b.count(keys::ENV_IN),
        app: b.rows(imi_apps::diagnostics::APP),
    }
}

struct Rig {
    fed: Federation,
    a: Node,
    b: Node,
    c: RawClient,
}

impl Rig {
    fn c_signer(&self) -> &NodeSigner {
        &self.fed.member(CY).signer
    }

    /// Sends `bytes` to B from the raw client and returns B's verified receipt.
    async fn send_raw(&self, bytes: Vec<u8>) -> Receipt {
        let peer = self.fed.member(BE).peer_id();
        let response = within(
            "B answers a raw request",
            self.c.client.request(peer, bytes),
        )
        .await
        .expect("B answers every envelope with a receipt");
        let r = self.fed.verify_receipt(response, BE);
        assert_eq!(r.body.receiver, BE);
        r
    }

    /// Sends hostile `bytes`; asserts a rejection with one of `codes`, no change to B, and that
    /// B still accepts A's next diagnostic.
    async fn rejected(&self, what: &str, bytes: Vec<u8>, codes: &[RejectCode]) -> Receipt {
        let before = snapshot(&self.b);
        let hash = sha256(&bytes);
        let oversized = bytes.len() > self.fed.options.max_message_bytes;
        let r = self.send_raw(bytes).await;
        match &r.body.outcome {
            Outcome::Rejected(code) if codes.contains(code) => {}
            other => panic!(
                "{what}: expected rejected({codes:?}), got {other:?} (receipt for the bytes sent: {}): {:?}",
                r.body.envelope_hash == hash,
                r.body
            ),
        }
        if !oversized {
            assert_eq!(
                r.body.envelope_hash, hash,
                "{what}: receipt names the bytes received"
            );
        }
        assert_eq!(snapshot(&self.b), before, "{what}: B's state changed");
        self.b_still_serves_a(what, &before).await;
        r
    }

    async fn b_still_serves_a(&self, what: &str, before: &Snapshot) {
        let id = self.a.send_diag_accepted(&[BE]).await;
        assert_eq!(
            self.b.applied(),
            before.applied + 1,
            "after {what}: A's diagnostic applied once"
        );
        assert_eq!(self.b.count(keys::INBOX), before.inbox + 1, "after {what}");
        assert!(self.b.inbox_record(AT, &id).is_some(), "after {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_rejected_and_change_nothing() {
    const LIMIT: usize = 64 * 1024;
    let fed = Federation::with(
        &[AT, BE, CY],
        Options {
            max_message_bytes: LIMIT,
            expired_keys: vec![CY],
            ..Options::default()
        },
    );
    let a = fed.start(AT).await;
    let b = fed.start(BE).await;
    let c = fed.raw_client(CY, 1024 * 1024);
    let rig = Rig { fed, a, b, c };
    rig.a.send_diag_accepted(&[BE]).await;

    // Control: a well-formed envelope from CY over the same path is accepted, so every
    // rejection below is caused by what was changed.
    let before = snapshot(&rig.b);
    let (good_id, good) = rig.fed.seal(
        rig.c_signer(),
        "diagnostic",
        &[BE],
        b"hello".to_vec(),
        now_ms(),
    );
    let r = rig.send_raw(good.clone()).await;
    assert_eq!(r.body.outcome, Outcome::Accepted);
    assert_eq!(r.body.message_id, Some(good_id));
    assert_eq!(r.body.sender, Some(CY));
    assert_eq!(r.body.envelope_hash, sha256(&good));
    assert_eq!(rig.b.applied(), before.applied + 1);
    assert!(rig.b.inbox_record(CY, &good_id).is_some());

    // (a) Signed by a key that is not on the list, claiming to be CY.
    let rogue = NodeSigner::generate(CY);
    let (_, forged) = rig
        .fed
        .seal(&rogue, "diagnostic", &[BE], b"forged".to_vec(), now_ms());
    rig.rejected(
        "signature by an unlisted key",
        forged,
        &[RejectCode::BadSignature],
    )
    .await;

    // (a') CY's valid envelope with its signature zeroed.
    let (_, mut zeroed) = rig.fed.seal(
        rig.c_signer(),
        "diagnostic",
        &[BE],
        b"zeroed".to_vec(),
        now_ms(),
    );
    let n = zeroed.len();
    assert_eq!(
        &zeroed[n - 66..n - 64],
        &[0x58, 0x40],
        "the signature is the last item: a 64-byte bstr"
    );
    zeroed[n - 64..].fill(0);
    rig.rejected("zeroed signature", zeroed, &[RejectCode::BadSignature])
        .await;

    // (b) One bit flipped in the signed header: the authority CY-OPS becomes CY-OPR.
    let (_, mut flipped) = rig.fed.seal(
        rig.c_signer(),
        "diagnostic",
        &[BE],
        b"header".to_vec(),
        now_ms(),
    );
    let at = flipped
        .windows(6)
        .position(|w| w == b"CY-OPS")
        .expect("authority in the header");
    flipped[at + 5] ^= 0x01;
    let parsed = Envelope::parse(flipped.clone(), usize::MAX).expect("still well-formed");
    assert_eq!(parsed.header().authority.as_str(), "CY-OPR");
    let r = rig
        .rejected(
            "bit flip in the header",
            flipped,
            &[RejectCode::BadSignature, RejectCode::Malformed],
        )
        .await;
    assert_eq!(
        r.body.outcome,
        Outcome::Rejected(RejectCode::BadSignature),
        "the flip keeps the CBOR valid"
    );

    // (c) One bit flipped in the body ciphertext (its last byte, just before the signature).
    let (_, mut flipped) = rig.fed.seal(
        rig.c_signer(),
        "diagnostic",
        &[BE],
        b"body".to_vec(),
        now_ms(),
    );
    let n = flipped.len();
    let original = Envelope::parse(flipped.clone(), usize::MAX)
        .expect("parse")
        .header()
        .clone();
    flipped[n - 67] ^= 0x80;
    let parsed = Envelope::parse(flipped.clone(), usize::MAX).expect("still well-formed");
    assert_eq!(parsed.header(), &original, "the flip is outside the header");
    rig.rejected(
        "bit flip in the ciphertext",
        flipped,
        &[RejectCode::BadSignature, RejectCode::Malformed],
    )
    .await;

    // (d) Addressed to A only.
    let (id, to_a) = rig.fed.seal(
        rig.c_signer(),
        "diagnostic",
        &[AT],
        b"not for B".to_vec(),
        now_ms(),
    );
    let r = rig
        .rejected(
            "envelope not addressed to B",
            to_a,
            &[RejectCode::NotRecipient],
        )
        .await;
    assert_eq!((r.body.message_id, r.body.sender), (Some(id), Some(CY)));

    // (e) Signed with CY's listed key whose validity ended an hour ago.
    let expired = rig
        .fed
        .member(CY)
        .expired
        .clone()
        .expect("CY has an expired key");
    let (id, old) = rig
        .fed
        .seal(&expired, "diagnostic", &[BE], b"expired".to_vec(), now_ms());
    let r = rig
        .rejected("expired signing key", old, &[RejectCode::KeyNotValid])
        .await;
    assert_eq!((r.body.message_id, r.body.sender), (Some(id), Some(CY)));

    // (f) Replays change nothing: CY's accepted envelope, and A's envelope replayed by CY.
    let before = snapshot(&rig.b);
    let r = rig.send_raw(good.clone()).await;
    assert_eq!(r.body.outcome, Outcome::Duplicate);
    assert_eq!(
        (r.body.message_id, r.body.envelope_hash),
        (Some(good_id), sha256(&good))
    );
    assert_eq!(snapshot(&rig.b), before, "a replay changed B's state");
    let a_id = rig.a.send_diag_accepted(&[BE]).await;
    let a_env = rig
        .a
        .store()
        .get(keys::ENV_OUT, a_id.as_bytes())
        .unwrap()
        .expect("A's envelope");
    // Nodes do not relay: AT's envelope arriving over CY's connection is refused, whether B
    // holds it already or not.
    let r = rig
        .rejected("a third-party replay", a_env, &[RejectCode::WrongPeer])
        .await;
    assert_eq!((r.body.message_id, r.body.sender), (Some(a_id), Some(AT)));
    let (fresh_id, fresh) = rig.fed.seal(
        &rig.fed.member(AT).signer,
        "diagnostic",
        &[BE],
        b"relayed".to_vec(),
        now_ms(),
    );
    rig.rejected("a relayed envelope", fresh, &[RejectCode::WrongPeer])
        .await;
    assert!(rig.b.inbox_record(AT, &fresh_id).is_none());

    // (g) Not an envelope at all.
    let noise: Vec<u8> = (0..1000).map(|_| rand::random::<u8>()).collect();
    rig.rejected("random bytes", noise, &[RejectCode::Malformed])
        .await;
    rig.rejected("empty request", Vec::new(), &[RejectCode::Malformed])
        .await;
    rig.rejected(
        "truncated envelope",
        good[..good.len() / 2].to_vec(),
        &[RejectCode::Malformed],
    )
    .await;

    // (h) A valid envelope larger than B's 64 KiB frame limit: refused before decoding.
    let (_, big) = rig.fed.seal(
        rig.c_signer(),
        "diagnostic",
        &[BE],
        vec![7u8; 100 * 1024],
        now_ms(),
    );
    assert!(
        big.len() > LIMIT && big.len() < 4 * LIMIT,
        "{} bytes",
        big.len()
    );
    let r = rig
        .rejected("oversized envelope", big, &[RejectCode::Oversized])
        .await;
    assert_eq!(
        r.body.message_id, None,
        "nothing of an oversized envelope is decoded"
    );

    // (i) A kind B has no application for.
    let (id, unknown) = rig.fed.seal(
        rig.c_signer(),
        "no.such.kind",
        &[BE],
        b"?".to_vec(),
        now_ms(),
    );
    let r = rig
        .rejected("unknown kind", unknown, &[RejectCode::UnknownKind])
        .await;
    assert_eq!(r.body.message_id, Some(id));

    // Every rejection above was counted by code.
    let rejected = |code: &str| {
        rig.b
            .engine()
            .metrics()
            .inbound_rejected
            .get_or_create(&imi_engine::metrics::CodeLabel { code: code.into() })
            .get()
    };
    assert_eq!(rejected("bad_signature"), 4);
    assert_eq!(rejected("malformed"), 3);
    assert_eq!(rejected("not_recipient"), 1);
    assert_eq!(rejected("key_not_valid"), 1);
    assert_eq!(rejected("oversized"), 1);
    assert_eq!(rejected("unknown_kind"), 1);

    // (j) A peer that is not on the trust list cannot get a request through at all.
    let before = snapshot(&rig.b);
    let received = rig.b.engine().metrics().received.get();
    let stranger = rig.fed.stranger_client();
    let (_, env) = rig.fed.seal(
        &NodeSigner::generate(CY),
        "diagnostic",
        &[BE],
        b"stranger".to_vec(),
        now_ms(),
    );
    let result = within(
        "the stranger's request fails",
        stranger.client.request(rig.fed.member(BE).peer_id(), env),
    )
    .await;
    assert!(
        result.is_err(),
        "a peer off the trust list got an answer: {result:?}"
    );
    assert_eq!(
        rig.b.engine().metrics().received.get(),
        received,
        "the stranger's request reached B's engine"
    );
    assert_eq!(snapshot(&rig.b), before);
    rig.b_still_serves_a("a stranger's attempt", &before).await;
    stranger.stop().await;

    // CY's retired key (expired an hour ago) is listed, but no longer on B's allow list: a
    // connection with it as identity is refused before any request reaches B's engine.
    let retired = rig
        .fed
        .member(CY)
        .expired
        .clone()
        .expect("CY's expired key");
    let (before, received) = (snapshot(&rig.b), rig.b.engine().metrics().received.get());
    let old = rig.fed.raw_client_as(CY, &retired);
    let (_, env) = rig.fed.seal(
        rig.c_signer(),
        "diagnostic",
        &[BE],
        b"old".to_vec(),
        now_ms(),
    );
    let result = within(
        "the retired key's request fails",
        old.client.request(rig.fed.member(BE).peer_id(), env),
    )
    .await;
    assert!(
        result.is_err(),
        "a retired key's connection got an answer: {result:?}"
    );
    assert_eq!(rig.b.engine().metrics().received.get(), received);
    assert_eq!(snapshot(&rig.b), before);
    old.stop().await;

    let Rig { a, b, c, .. } = rig;
    c.stop().await;
    a.stop().await;
    b.stop().await;
}

//! Property tests: round trips, single-bit flips, parser robustness and size limits.
use crate::common::{
    Fixture, JAN_2025, JAN_2028, MEMBERS, decode, decode_cose, encode, flip, rnd, sign_raw,
};
use imi_protocol::cose::{CT_ENVELOPE, CT_RECEIPT, CT_TRUST_LIST};
use imi_protocol::{
    AuthorityId, CaseId, DEFAULT_MAX_ENVELOPE_BYTES, Draft, Envelope, Header, HpkeKeyEntry, Kind,
    MAX_RECEIPT_BYTES, MAX_TRUST_LIST_BYTES, Member, MessageId, NodeId, NodeSigner, Outcome,
    PROTOCOL_VERSION, Receipt, ReceiptBody, RejectCode, Role, SigningKeyEntry, Timestamp,
    TrustList, seal_and_sign, seal_and_sign_parts, sha256,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use std::sync::LazyLock;

static FX: LazyLock<Fixture> = LazyLock::new(Fixture::new);

const MAX: usize = DEFAULT_MAX_ENVELOPE_BYTES;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One envelope to seal: sender, draft, creation time and a seed for the randomness.
#[derive(Debug, Clone)]
struct Case {
    sender: NodeId,
    draft: Draft,
    created: Timestamp,
    rseed: [u8; 32],
}

impl Case {
    fn seal(&self) -> Vec<u8> {
        seal_and_sign(
            &self.draft,
            self.created,
            FX.signer(self.sender),
            &FX.trust,
            &rnd(&self.rseed, self.draft.to.len()),
        )
        .unwrap()
    }

    fn expected_header(&self) -> Header {
        let r = rnd(&self.rseed, self.draft.to.len());
        Header {
            v: PROTOCOL_VERSION,
            id: r.id,
            kind: self.draft.kind.clone(),
            step: self.draft.step.clone(),
            from: self.sender,
            authority: self.draft.authority.clone(),
            to: self.draft.to.clone(),
            case: self.draft.case,
            prev: self.draft.prev.clone(),
            created: self.created,
            commitment: sha256(&[r.salt.as_slice(), &self.draft.body].concat()),
        }
    }
}

fn arb_draft(max_body: usize, max_prev: usize) -> impl Strategy<Value = Draft> {
    (
        "[a-z0-9._-]{1,64}",
        proptest::option::of("[a-z0-9._-]{1,64}"),
        "[A-Z]{2}-[A-Za-z0-9._-]{0,61}",
        subsequence(MEMBERS.to_vec(), 1..=MEMBERS.len()).prop_shuffle(),
        proptest::option::of(any::<[u8; 16]>()),
        vec(any::<[u8; 16]>(), 0..=max_prev),
        vec(any::<u8>(), 0..max_body),
    )
        .prop_map(|(kind, step, authority, to, case, prev, body)| Draft {
            kind: Kind::new(&kind).unwrap(),
            step: step.map(|s| Kind::new(&s).unwrap()),
            authority: AuthorityId::new(&authority).unwrap(),
            to,
            case: case.map(CaseId),
            prev: prev.into_iter().map(MessageId).collect(),
            body,
        })
}

fn arb_case(max_body: usize, max_prev: usize) -> impl Strategy<Value = Case> {
    (
        select(MEMBERS.to_vec()),
        arb_draft(max_body, max_prev),
        JAN_2025..JAN_2028,
        any::<[u8; 32]>(),
    )
        .prop_map(|(sender, draft, created, rseed)| Case {
            sender,
            draft,
            created,
            rseed,
        })
}

fn arb_reject_code() -> impl Strategy<Value = RejectCode> {
    prop_oneof![
        select(vec![
            RejectCode::Oversized,
            RejectCode::Malformed,
            RejectCode::UnsupportedVersion,
            RejectCode::UnknownSender,
            RejectCode::BadSignature,
            RejectCode::KeyNotValid,
            RejectCode::NotRecipient,
            RejectCode::DecryptFailed,
            RejectCode::FromFuture,
            RejectCode::UnknownKind,
            RejectCode::Conflict,
            RejectCode::Internal,
        ]),
        "[a-z_]{1,32}".prop_map(RejectCode::Application),
    ]
}

fn arb_receipt_body() -> impl Strategy<Value = ReceiptBody> {
    let outcome = prop_oneof![
        Just(Outcome::Accepted),
        Just(Outcome::Duplicate),
        arb_reject_code().prop_map(Outcome::Rejected),
    ];
    (
        proptest::option::of(any::<[u8; 16]>()),
        any::<[u8; 32]>(),
        select(MEMBERS.to_vec()),
        proptest::option::of(select(NodeId::ALL.to_vec())),
        JAN_2025..JAN_2028,
        outcome,
    )
        .prop_map(
            |(message_id, envelope_hash, receiver, sender, received, outcome)| ReceiptBody {
                v: PROTOCOL_VERSION,
                message_id: message_id.map(MessageId),
                envelope_hash,
                receiver,
                sender,
                received,
                outcome,
            },
        )
}

fn arb_period() -> impl Strategy<Value = (Timestamp, Timestamp)> {
    (any::<u64>(), 1..u64::MAX).prop_map(|(from, len)| {
        let from = from.min(u64::MAX - 1);
        (from, from.saturating_add(len))
    })
}

fn arb_member(node: NodeId) -> impl Strategy<Value = Member> {
    (
        select(vec![Role::National, Role::Commission]),
        // Signing keys are strict ed25519 public keys (a trust list refuses any other).
        vec(
            (
                any::<[u8; 32]>().prop_map(move |s| NodeSigner::from_seed(node, &s).public()),
                arb_period(),
            ),
            1..3,
        ),
        vec((any::<[u8; 32]>(), arb_period()), 1..3),
        vec("[ -~]{0,40}", 0..3),
    )
        .prop_map(move |(role, signing, hpke, addresses)| Member {
            node,
            role,
            signing_keys: signing
                .into_iter()
                .map(|(public, (valid_from, valid_until))| SigningKeyEntry {
                    public,
                    valid_from,
                    valid_until,
                })
                .collect(),
            hpke_keys: hpke
                .into_iter()
                .map(|(public, (valid_from, valid_until))| HpkeKeyEntry {
                    public,
                    valid_from,
                    valid_until,
                })
                .collect(),
            addresses,
        })
}

fn arb_trust_list(max_members: usize) -> impl Strategy<Value = TrustList> {
    (
        any::<u64>(),
        any::<u64>(),
        subsequence(NodeId::ALL.to_vec(), 0..=max_members),
    )
        .prop_flat_map(|(version, issued, nodes)| {
            let members: Vec<_> = nodes.into_iter().map(arb_member).collect();
            members.prop_map(move |members| TrustList {
                version,
                issued,
                members,
            })
        })
}

/// Parse + verify as `me`; never `Ok` for a tampered envelope.
fn parse_verify(bytes: Vec<u8>, me: NodeId, now: Timestamp) -> Result<(), RejectCode> {
    Envelope::parse(bytes, MAX)?
        .verify(&FX.trust, me, now, 0)
        .map(|_| ())
}

/// Runs the whole receive pipeline as every member; must never panic.
fn pipeline(bytes: &[u8]) {
    for me in MEMBERS {
        if let Ok(env) = Envelope::parse(bytes.to_vec(), MAX) {
            let now = env.header().created;
            if let Ok(v) = env.verify(&FX.trust, me, now, 0) {
                let _ = v.open(me, &FX.hpke_keys(me));
            }
        }
    }
    let _ = Receipt::verify(bytes.to_vec(), &FX.trust, NodeId::AT);
    let _ = TrustList::verify(bytes, &FX.governance.public());
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn envelope_round_trip(c in arb_case(8 * 1024, 64)) {
        let bytes = c.seal();
        let header = c.expected_header();
        for me in MEMBERS {
            let env = Envelope::parse(bytes.clone(), MAX).unwrap();
            prop_assert_eq!(env.header(), &header);
            prop_assert_eq!(env.hash(), sha256(&bytes));
            prop_assert_eq!(env.bytes(), bytes.as_slice());
            let verified = env.verify(&FX.trust, me, c.created, 0);
            if c.draft.to.contains(&me) {
                let verified = verified.unwrap();
                prop_assert_eq!(verified.header(), &header);
                let opened = verified.open(me, &FX.hpke_keys(me)).unwrap();
                prop_assert_eq!(&opened.body, &c.draft.body);
                prop_assert_eq!(opened.salt, rnd(&c.rseed, c.draft.to.len()).salt);
                prop_assert_eq!(verified.into_bytes(), bytes.clone());
            } else {
                prop_assert_eq!(verified.unwrap_err(), RejectCode::NotRecipient);
            }
        }
    }

    #[test]
    fn envelope_is_deterministic_given_randomness(c in arb_case(256, 4)) {
        prop_assert_eq!(c.seal(), c.seal());
    }

    /// What the sender records of an envelope it sealed is what decoding the bytes gives.
    #[test]
    fn sealed_parts_are_the_bytes_own_header_and_hash(c in arb_case(2048, 16)) {
        let parts = seal_and_sign_parts(
            &c.draft,
            c.created,
            FX.signer(c.sender),
            &FX.trust,
            &rnd(&c.rseed, c.draft.to.len()),
        )
        .unwrap();
        prop_assert_eq!(&parts.bytes, &c.seal());
        let env = Envelope::parse(parts.bytes.clone(), MAX).unwrap();
        prop_assert_eq!(&parts.header, env.header());
        prop_assert_eq!(&parts.header, &c.expected_header());
        prop_assert_eq!(parts.hash, env.hash());
        prop_assert_eq!(parts.hash, sha256(&parts.bytes));
    }

    #[test]
    fn receipt_round_trip(body in arb_receipt_body()) {
        let bytes = body.sign(FX.signer(body.receiver)).unwrap();
        let r = Receipt::verify(bytes.clone(), &FX.trust, body.receiver).unwrap();
        prop_assert_eq!(&r.body, &body);
        prop_assert_eq!(&r.bytes, &bytes);
        for other in MEMBERS.into_iter().filter(|n| *n != body.receiver) {
            prop_assert!(Receipt::verify(bytes.clone(), &FX.trust, other).is_err());
        }
    }

    #[test]
    fn trust_list_round_trip(list in arb_trust_list(6)) {
        let bytes = list.sign(&FX.governance).unwrap();
        prop_assert_eq!(TrustList::verify(&bytes, &FX.governance.public()).unwrap(), list);
        prop_assert!(TrustList::verify(&bytes, &FX.signer(NodeId::AT).public()).is_err());
    }

    #[test]
    fn envelope_bit_flip_never_verifies(c in arb_case(512, 4), bit in any::<Index>()) {
        let bytes = c.seal();
        let bit = bit.index(bytes.len() * 8);
        let r = parse_verify(flip(&bytes, bit), c.draft.to[0], c.created);
        prop_assert!(r.is_err(), "bit {} of {} flipped still verifies", bit, bytes.len() * 8);
    }

    #[test]
    fn receipt_bit_flip_never_verifies(body in arb_receipt_body(), bit in any::<Index>()) {
        let bytes = body.sign(FX.signer(body.receiver)).unwrap();
        let bit = bit.index(bytes.len() * 8);
        prop_assert!(Receipt::verify(flip(&bytes, bit), &FX.trust, body.receiver).is_err(), "bit {}", bit);
    }

    #[test]
    fn trust_list_bit_flip_never_verifies(list in arb_trust_list(3), bit in any::<Index>()) {
        let bytes = list.sign(&FX.governance).unwrap();
        let bit = bit.index(bytes.len() * 8);
        prop_assert!(TrustList::verify(&flip(&bytes, bit), &FX.governance.public()).is_err(), "bit {}", bit);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn parse_never_panics_on_random_bytes(bytes in vec(any::<u8>(), 0..2048)) {
        pipeline(&bytes);
    }

    #[test]
    fn parse_never_panics_on_cose_prefixed_bytes(bytes in vec(any::<u8>(), 0..1024)) {
        pipeline(&[[0xd2, 0x84].as_slice(), &bytes].concat());
        pipeline(&[[0xd2, 0x84, 0x58].as_slice(), &bytes].concat());
    }

    #[test]
    fn parse_never_panics_on_mutated_envelopes(
        c in arb_case(256, 4),
        edits in vec((any::<Index>(), any::<u8>()), 1..16),
        cut in proptest::option::of(any::<Index>()),
        insert in proptest::option::of((any::<Index>(), vec(any::<u8>(), 1..8))),
    ) {
        let mut bytes = c.seal();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if let Some((at, extra)) = insert {
            let at = at.index(bytes.len());
            bytes.splice(at..at, extra);
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        pipeline(&bytes);
    }

    /// Mutations of the payload behind a *valid* signature: exercises header and sealed-key
    /// decoding, verification and opening past the signature check.
    #[test]
    fn validly_signed_mutated_payloads_never_panic(
        c in arb_case(128, 2),
        edits in vec((any::<Index>(), any::<u8>()), 1..6),
    ) {
        let bytes = c.seal();
        let mut payload = decode_cose(&bytes).payload;
        for (i, b) in edits {
            let i = i.index(payload.len());
            payload[i] = b;
        }
        let seed = FX.signer(c.sender).seed();
        pipeline(&sign_raw(&payload, CT_ENVELOPE, &seed));
        pipeline(&sign_raw(&payload, CT_RECEIPT, &seed));
        pipeline(&sign_raw(&payload, CT_TRUST_LIST, &FX.governance.seed()));
    }

    #[test]
    fn validly_signed_random_payloads_never_panic(payload in vec(any::<u8>(), 0..512)) {
        let seed = FX.signer(NodeId::AT).seed();
        for ct in [CT_ENVELOPE, CT_RECEIPT] {
            let bytes = sign_raw(&payload, ct, &seed);
            pipeline(&bytes);
            prop_assert!(Envelope::parse(bytes, MAX).is_err() || ct == CT_ENVELOPE);
        }
        pipeline(&sign_raw(&payload, CT_TRUST_LIST, &FX.governance.seed()));
    }
}

/// A small envelope (two recipients, case, one predecessor, 5-byte body): every single bit
/// flip of its bytes fails to parse or to verify, for every member as verifier.
#[test]
fn every_bit_flip_of_a_small_envelope_fails() {
    let c = Case {
        sender: NodeId::AT,
        draft: Draft {
            kind: Kind::new("request.create").unwrap(),
            step: None,
            authority: AuthorityId::new("AT-W-1").unwrap(),
            to: vec![NodeId::DE, NodeId::NL],
            case: Some(CaseId([7; 16])),
            prev: vec![MessageId([9; 16])],
            body: b"hello".to_vec(),
        },
        created: JAN_2025 + 1,
        rseed: [1; 32],
    };
    let bytes = c.seal();
    parse_verify(bytes.clone(), NodeId::DE, c.created).unwrap();
    for bit in 0..bytes.len() * 8 {
        let flipped = flip(&bytes, bit);
        for me in MEMBERS {
            assert!(
                parse_verify(flipped.clone(), me, c.created).is_err(),
                "bit {bit} verifies for {me}"
            );
        }
    }
}

#[test]
fn every_bit_flip_of_receipts_fails() {
    for outcome in [
        Outcome::Accepted,
        Outcome::Rejected(RejectCode::Application("x".into())),
    ] {
        let body = ReceiptBody {
            v: PROTOCOL_VERSION,
            message_id: Some(MessageId([3; 16])),
            envelope_hash: [4; 32],
            receiver: NodeId::DE,
            sender: Some(NodeId::AT),
            received: JAN_2025 + 5,
            outcome,
        };
        let bytes = body.sign(FX.signer(NodeId::DE)).unwrap();
        Receipt::verify(bytes.clone(), &FX.trust, NodeId::DE).unwrap();
        for bit in 0..bytes.len() * 8 {
            assert!(
                Receipt::verify(flip(&bytes, bit), &FX.trust, NodeId::DE).is_err(),
                "bit {bit}"
            );
        }
    }
}

#[test]
fn every_bit_flip_of_the_trust_list_fails() {
    let bytes = FX.trust.sign(&FX.governance).unwrap();
    let gov = FX.governance.public();
    assert_eq!(TrustList::verify(&bytes, &gov).unwrap(), FX.trust);
    for bit in 0..bytes.len() * 8 {
        assert!(
            TrustList::verify(&flip(&bytes, bit), &gov).is_err(),
            "bit {bit}"
        );
    }
}

/// Declared lengths far beyond the input, deep nesting, indefinite lengths: refused without
/// allocating or recursing without bound.
#[test]
fn pathological_cbor_is_refused() {
    let mut cases: Vec<Vec<u8>> = vec![
        vec![
            0xd2, 0x84, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        vec![0xd2, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![0xd2, 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![0xd2, 0x84, 0x40, 0xa0, 0x5a, 0xff, 0xff, 0xff, 0xff],
        vec![
            0xd2, 0x84, 0x40, 0xa0, 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        vec![0xd2, 0x9f, 0x40, 0xa0, 0x40, 0x40, 0xff],
        vec![0xd2, 0x84, 0x5f, 0x41, 0x00, 0xff, 0xa0, 0x40, 0x40],
        vec![0xd2; 10_000],
    ];
    let mut deep = vec![0xd2];
    deep.extend(std::iter::repeat_n(0x81, 100_000));
    cases.push(deep);
    let mut deep_map = vec![0xd2, 0x84, 0x40];
    deep_map.extend(std::iter::repeat_n([0xa1, 0x01], 50_000).flatten());
    cases.push(deep_map);
    for bytes in &cases {
        assert!(Envelope::parse(bytes.clone(), MAX).is_err());
        pipeline(bytes);
    }
    // Validly signed payloads that are deeply nested or claim huge lengths.
    let seed = FX.signer(NodeId::AT).seed();
    let mut nested = vec![0x81; 10_000];
    nested.push(0x00);
    let payloads: Vec<Vec<u8>> = vec![
        nested,
        vec![0xbf; 5_000],
        vec![
            0xa2, 0x66, b'h', b'e', b'a', b'd', b'e', b'r', 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff,
        ],
        vec![
            0xa2, 0x66, b'h', b'e', b'a', b'd', b'e', b'r', 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff,
        ],
    ];
    for p in payloads {
        let bytes = sign_raw(&p, CT_ENVELOPE, &seed);
        assert_eq!(
            Envelope::parse(bytes.clone(), MAX).unwrap_err(),
            RejectCode::Malformed
        );
        pipeline(&bytes);
    }
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    // Garbage that would be Malformed if decoded is Oversized when over the limit.
    assert_eq!(
        Envelope::parse(vec![0xff; 101], 100).unwrap_err(),
        RejectCode::Oversized
    );
    assert_eq!(
        Envelope::parse(vec![0xff; 100], 100).unwrap_err(),
        RejectCode::Malformed
    );
    assert_eq!(
        Envelope::parse(vec![0; MAX + 1], MAX).unwrap_err(),
        RejectCode::Oversized
    );
    assert_eq!(
        Receipt::verify(vec![0xff; MAX_RECEIPT_BYTES + 1], &FX.trust, NodeId::AT).unwrap_err(),
        RejectCode::Oversized
    );
    assert_eq!(
        Receipt::verify(vec![0xff; MAX_RECEIPT_BYTES], &FX.trust, NodeId::AT).unwrap_err(),
        RejectCode::Malformed
    );
    let e = TrustList::verify(
        &vec![0xff; MAX_TRUST_LIST_BYTES + 1],
        &FX.governance.public(),
    )
    .unwrap_err();
    assert_eq!(e.reject_code(), Some(&RejectCode::Oversized));

    // A valid envelope is refused by a limit one byte smaller than it, accepted at its size.
    let to = [NodeId::DE];
    let draft = crate::common::draft(&to, &[0x42; 1000]);
    let bytes = seal_and_sign(
        &draft,
        JAN_2025 + 9,
        FX.signer(NodeId::AT),
        &FX.trust,
        &rnd(b"x", 1),
    )
    .unwrap();
    assert_eq!(
        Envelope::parse(bytes.clone(), bytes.len() - 1).unwrap_err(),
        RejectCode::Oversized
    );
    let env = Envelope::parse(bytes.clone(), bytes.len()).unwrap();
    env.verify(&FX.trust, NodeId::DE, JAN_2025 + 9, 0).unwrap();
}

#[test]
fn independent_encoding_matches() {
    // The crate's payload is exactly what an independent CBOR encoder produces for the same
    // data model (definite lengths, shortest integers, maps in field order).
    let to = [NodeId::DE, NodeId::EU];
    let bytes = seal_and_sign(
        &crate::common::draft(&to, b"abc"),
        JAN_2025 + 99,
        FX.signer(NodeId::NL),
        &FX.trust,
        &rnd(b"y", 2),
    )
    .unwrap();
    let parts = decode_cose(&bytes);
    assert_eq!(encode(&decode(&parts.payload)), parts.payload);
}

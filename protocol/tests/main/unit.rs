//! Rejection paths, key rotation and trust-list updates.
use crate::common::{
    DAY, Fixture, JAN_2025, JAN_2026, JAN_2028, draft, field_mut, resign, rnd, seed,
};
use ciborium::Value;
use imi_protocol::{
    DEFAULT_MAX_ENVELOPE_BYTES, Envelope, HpkeKeyEntry, HpkeKeyPair, MAX_PREDECESSORS, MessageId,
    NodeId, NodeSigner, Outcome, ProtocolError, Receipt, ReceiptBody, RejectCode, SigningKeyEntry,
    Timestamp, TrustList, VerifiedEnvelope, seal_and_sign,
};

const MAX: usize = DEFAULT_MAX_ENVELOPE_BYTES;
const T: Timestamp = JAN_2026 + 12_345;

fn seal(fx: &Fixture, from: &NodeSigner, to: &[NodeId], created: Timestamp) -> Vec<u8> {
    seal_and_sign(
        &draft(to, b"body"),
        created,
        from,
        &fx.trust,
        &rnd(b"unit", to.len()),
    )
    .unwrap()
}

fn verify(
    trust: &TrustList,
    bytes: &[u8],
    me: NodeId,
    now: Timestamp,
) -> Result<VerifiedEnvelope, RejectCode> {
    Envelope::parse(bytes.to_vec(), MAX)?.verify(trust, me, now, 0)
}

#[test]
fn non_recipient_gets_not_recipient() {
    let fx = Fixture::new();
    let bytes = seal(&fx, fx.signer(NodeId::AT), &[NodeId::DE, NodeId::NL], T);
    for me in [NodeId::DE, NodeId::NL] {
        let v = verify(&fx.trust, &bytes, me, T).unwrap();
        assert_eq!(v.open(me, &fx.hpke_keys(me)).unwrap().body, b"body");
    }
    assert_eq!(
        verify(&fx.trust, &bytes, NodeId::EU, T).unwrap_err(),
        RejectCode::NotRecipient
    );
    assert_eq!(
        verify(&fx.trust, &bytes, NodeId::AT, T).unwrap_err(),
        RejectCode::NotRecipient
    );
    // A recipient that asks to open the slot of another node.
    let v = verify(&fx.trust, &bytes, NodeId::DE, T).unwrap();
    assert_eq!(
        v.open(NodeId::EU, &fx.hpke_keys(NodeId::EU)).unwrap_err(),
        RejectCode::NotRecipient
    );
}

#[test]
fn wrong_or_missing_hpke_key_fails_to_decrypt() {
    let fx = Fixture::new();
    let bytes = seal(&fx, fx.signer(NodeId::AT), &[NodeId::DE], T);
    let v = verify(&fx.trust, &bytes, NodeId::DE, T).unwrap();
    assert_eq!(
        v.open(NodeId::DE, &[]).unwrap_err(),
        RejectCode::DecryptFailed
    );
    assert_eq!(
        v.open(NodeId::DE, &fx.hpke_keys(NodeId::NL)).unwrap_err(),
        RejectCode::DecryptFailed
    );
}

#[test]
fn signing_key_outside_validity_gets_key_not_valid() {
    let mut fx = Fixture::new();
    let from = JAN_2026;
    let until = JAN_2026 + 10 * DAY;
    let at = fx
        .trust
        .members
        .iter_mut()
        .find(|m| m.node == NodeId::AT)
        .unwrap();
    at.signing_keys[0].valid_from = from;
    at.signing_keys[0].valid_until = until;
    let signer = fx.signer(NodeId::AT).clone();
    for (created, ok) in [
        (from - 1, false),
        (from, true),
        (until - 1, true),
        (until, false),
        (until + DAY, false),
    ] {
        let bytes = seal(&fx, &signer, &[NodeId::DE], created);
        let r = verify(&fx.trust, &bytes, NodeId::DE, created);
        if ok {
            r.unwrap();
        } else {
            assert_eq!(r.unwrap_err(), RejectCode::KeyNotValid, "created {created}");
        }
    }
}

#[test]
fn unknown_sender_gets_unknown_sender() {
    let fx = Fixture::new();
    let fr = NodeSigner::from_seed(NodeId::FR, &seed("FR signing"));
    let bytes = seal(&fx, &fr, &[NodeId::DE], T);
    assert_eq!(
        verify(&fx.trust, &bytes, NodeId::DE, T).unwrap_err(),
        RejectCode::UnknownSender
    );
    // A receipt from a non-member.
    let body = receipt_body(NodeId::FR, T);
    let bytes = body.sign(&fr).unwrap();
    assert_eq!(
        Receipt::verify(bytes, &fx.trust, NodeId::FR).unwrap_err(),
        RejectCode::UnknownSender
    );
}

#[test]
fn unlisted_key_of_a_member_gets_bad_signature() {
    let fx = Fixture::new();
    let impostor = NodeSigner::from_seed(NodeId::AT, &seed("another AT key"));
    let bytes = seal(&fx, &impostor, &[NodeId::DE], T);
    assert_eq!(
        verify(&fx.trust, &bytes, NodeId::DE, T).unwrap_err(),
        RejectCode::BadSignature
    );
    // DE's key claiming to be AT.
    let forged = NodeSigner::from_seed(NodeId::AT, &fx.signer(NodeId::DE).seed());
    let bytes = seal(&fx, &forged, &[NodeId::NL], T);
    assert_eq!(
        verify(&fx.trust, &bytes, NodeId::NL, T).unwrap_err(),
        RejectCode::BadSignature
    );
}

#[test]
fn future_envelopes_get_from_future() {
    let fx = Fixture::new();
    let bytes = seal(&fx, fx.signer(NodeId::AT), &[NodeId::DE], T);
    let env = |now, skew| {
        Envelope::parse(bytes.clone(), MAX)
            .unwrap()
            .verify(&fx.trust, NodeId::DE, now, skew)
    };
    assert_eq!(env(T - 1, 0).unwrap_err(), RejectCode::FromFuture);
    assert_eq!(env(T - 1_001, 1_000).unwrap_err(), RejectCode::FromFuture);
    env(T - 1_000, 1_000).unwrap();
    env(T, 0).unwrap();
    env(JAN_2028 + DAY, 0).unwrap();
}

#[test]
fn other_versions_get_unsupported_version() {
    let fx = Fixture::new();
    let signer = fx.signer(NodeId::AT);
    let bytes = seal(&fx, signer, &[NodeId::DE], T);
    let v2 = resign(&bytes, &signer.seed(), |p| {
        *field_mut(field_mut(p, "header"), "v") = Value::Integer(2.into());
    });
    assert_eq!(
        verify(&fx.trust, &v2, NodeId::DE, T).unwrap_err(),
        RejectCode::UnsupportedVersion
    );
    let same = resign(&bytes, &signer.seed(), |_| {});
    assert_eq!(same, bytes);
}

fn receipt_body(receiver: NodeId, received: Timestamp) -> ReceiptBody {
    ReceiptBody {
        v: 1,
        message_id: Some(MessageId([1; 16])),
        envelope_hash: [2; 32],
        receiver,
        sender: Some(NodeId::AT),
        received,
        outcome: Outcome::Accepted,
    }
}

#[test]
fn receipt_signed_by_the_wrong_node_fails() {
    let fx = Fixture::new();
    let de = fx.signer(NodeId::DE);
    let good = receipt_body(NodeId::DE, T).sign(de).unwrap();
    Receipt::verify(good.clone(), &fx.trust, NodeId::DE).unwrap();
    // A genuine DE receipt presented as AT's.
    assert_eq!(
        Receipt::verify(good, &fx.trust, NodeId::AT).unwrap_err(),
        RejectCode::UnknownSender
    );
    // A receipt claiming receiver AT, signed with DE's key.
    let forged = receipt_body(NodeId::AT, T)
        .sign(&NodeSigner::from_seed(NodeId::AT, &de.seed()))
        .unwrap();
    assert_eq!(
        Receipt::verify(forged, &fx.trust, NodeId::AT).unwrap_err(),
        RejectCode::BadSignature
    );
    // The API refuses to sign a receipt for another receiver.
    assert!(matches!(
        receipt_body(NodeId::AT, T).sign(de),
        Err(ProtocolError::Invalid(_))
    ));
}

#[test]
fn receipt_key_outside_validity_fails() {
    let fx = Fixture::new();
    let bytes = receipt_body(NodeId::DE, JAN_2028)
        .sign(fx.signer(NodeId::DE))
        .unwrap();
    assert_eq!(
        Receipt::verify(bytes, &fx.trust, NodeId::DE).unwrap_err(),
        RejectCode::KeyNotValid
    );
    let bytes = receipt_body(NodeId::DE, JAN_2025 - 1)
        .sign(fx.signer(NodeId::DE))
        .unwrap();
    assert_eq!(
        Receipt::verify(bytes, &fx.trust, NodeId::DE).unwrap_err(),
        RejectCode::KeyNotValid
    );
}

#[test]
fn check_update_refuses_same_or_older_versions() {
    let fx = Fixture::new();
    let current = TrustList {
        version: 5,
        ..fx.trust.clone()
    };
    for (v, ok) in [
        (0, false),
        (4, false),
        (5, false),
        (6, true),
        (u64::MAX, true),
    ] {
        let newer = TrustList {
            version: v,
            ..fx.trust.clone()
        };
        assert_eq!(current.check_update(&newer).is_ok(), ok, "version {v}");
    }
}

#[test]
fn trust_list_must_be_signed_by_governance_and_consistent() {
    let fx = Fixture::new();
    let gov = fx.governance.public();
    let bytes = fx.trust.sign(&fx.governance).unwrap();
    assert_eq!(TrustList::verify(&bytes, &gov).unwrap(), fx.trust);
    let by_at = fx.trust.sign(fx.signer(NodeId::AT)).unwrap();
    let e = TrustList::verify(&by_at, &gov).unwrap_err();
    assert_eq!(e.reject_code(), Some(&RejectCode::BadSignature));
    // Same kid, other key: a governance-kid header signed by someone else.
    let forged = resign(&bytes, &fx.signer(NodeId::AT).seed(), |_| {});
    assert_eq!(
        TrustList::verify(&forged, &gov).unwrap_err().reject_code(),
        Some(&RejectCode::BadSignature)
    );

    let mut dup = fx.trust.clone();
    dup.members.push(dup.members[0].clone());
    assert!(matches!(
        TrustList::verify(&dup.sign(&fx.governance).unwrap(), &gov),
        Err(ProtocolError::Invalid(_))
    ));
    let mut empty_period = fx.trust.clone();
    empty_period.members[1].signing_keys[0].valid_until =
        empty_period.members[1].signing_keys[0].valid_from;
    assert!(empty_period.validate().is_err());
    let mut no_keys = fx.trust.clone();
    no_keys.members[2].hpke_keys.clear();
    assert!(no_keys.validate().is_err());
}

#[test]
fn overlapping_signing_keys_both_verify_within_their_windows() {
    let mut fx = Fixture::new();
    let old = fx.signer(NodeId::AT).clone();
    let new = NodeSigner::from_seed(NodeId::AT, &seed("AT signing 2"));
    let (old_from, overlap_from, old_until, new_until) =
        (JAN_2025, JAN_2026, JAN_2026 + 30 * DAY, JAN_2028);
    let at = fx
        .trust
        .members
        .iter_mut()
        .find(|m| m.node == NodeId::AT)
        .unwrap();
    at.signing_keys = vec![
        SigningKeyEntry {
            public: old.public(),
            valid_from: old_from,
            valid_until: old_until,
        },
        SigningKeyEntry {
            public: new.public(),
            valid_from: overlap_from,
            valid_until: new_until,
        },
    ];
    fx.trust.validate().unwrap();
    assert_eq!(fx.trust.node_of_key(&new.public()), Some(NodeId::AT));
    assert_eq!(fx.trust.node_of_key(&old.public()), Some(NodeId::AT));
    let check = |signer: &NodeSigner, created: Timestamp| {
        let bytes = seal(&fx, signer, &[NodeId::DE], created);
        verify(&fx.trust, &bytes, NodeId::DE, created).map(|_| ())
    };
    // During the overlap both keys verify.
    for t in [overlap_from, overlap_from + DAY, old_until - 1] {
        check(&old, t).unwrap();
        check(&new, t).unwrap();
    }
    // Before the overlap only the old key, after it only the new key.
    check(&old, overlap_from - 1).unwrap();
    assert_eq!(
        check(&new, overlap_from - 1).unwrap_err(),
        RejectCode::KeyNotValid
    );
    check(&new, old_until).unwrap();
    assert_eq!(check(&old, old_until).unwrap_err(), RejectCode::KeyNotValid);
    // Receipts likewise.
    for (signer, t, ok) in [
        (&old, old_until - 1, true),
        (&new, old_until - 1, true),
        (&old, old_until, false),
    ] {
        let r = receipt_body(NodeId::AT, t).sign(signer).unwrap();
        assert_eq!(Receipt::verify(r, &fx.trust, NodeId::AT).is_ok(), ok);
    }
}

#[test]
fn hpke_rotation_seals_to_the_newest_valid_key() {
    let mut fx = Fixture::new();
    let old = fx.hpke_keys(NodeId::DE).remove(0);
    let new = HpkeKeyPair::derive(&seed("DE hpke 2"));
    let switch = JAN_2026;
    let de = fx
        .trust
        .members
        .iter_mut()
        .find(|m| m.node == NodeId::DE)
        .unwrap();
    de.hpke_keys.push(HpkeKeyEntry {
        public: new.public(),
        valid_from: switch,
        valid_until: JAN_2028,
    });
    assert_eq!(
        fx.trust.hpke_key(NodeId::DE, switch - 1).unwrap().public,
        old.public()
    );
    assert_eq!(
        fx.trust.hpke_key(NodeId::DE, switch).unwrap().public,
        new.public()
    );
    assert!(fx.trust.hpke_key(NodeId::DE, JAN_2028).is_none());
    assert!(fx.trust.hpke_key(NodeId::FR, switch).is_none());
    let both = [old.clone(), new.clone()];
    for (created, right, wrong) in [(switch - 1, &old, &new), (switch, &new, &old)] {
        let bytes = seal(&fx, fx.signer(NodeId::AT), &[NodeId::DE], created);
        let v = verify(&fx.trust, &bytes, NodeId::DE, created).unwrap();
        assert_eq!(v.open(NodeId::DE, &both).unwrap().body, b"body");
        assert_eq!(
            v.open(NodeId::DE, std::slice::from_ref(right))
                .unwrap()
                .body,
            b"body"
        );
        assert_eq!(
            v.open(NodeId::DE, std::slice::from_ref(wrong)).unwrap_err(),
            RejectCode::DecryptFailed
        );
    }
    // No valid HPKE key for a recipient: sealing refuses.
    let r = seal_and_sign(
        &draft(&[NodeId::DE], b""),
        JAN_2028,
        fx.signer(NodeId::AT),
        &fx.trust,
        &rnd(b"z", 1),
    );
    assert!(matches!(r, Err(ProtocolError::Invalid(_))));
}

#[test]
fn seal_and_sign_refuses_bad_drafts() {
    let fx = Fixture::new();
    let at = fx.signer(NodeId::AT);
    let attempt = |to: &[NodeId], prev: usize, eph: usize| {
        let mut d = draft(to, b"x");
        d.prev = vec![MessageId([0; 16]); prev];
        seal_and_sign(&d, T, at, &fx.trust, &rnd(b"bad", eph))
    };
    assert!(attempt(&[NodeId::DE], 0, 1).is_ok());
    assert!(attempt(&[NodeId::DE], MAX_PREDECESSORS, 1).is_ok());
    assert!(attempt(&[], 0, 0).is_err());
    assert!(attempt(&[NodeId::DE, NodeId::DE], 0, 2).is_err());
    assert!(attempt(&[NodeId::DE], MAX_PREDECESSORS + 1, 1).is_err());
    assert!(attempt(&[NodeId::DE], 0, 2).is_err());
    assert!(attempt(&[NodeId::DE, NodeId::NL], 0, 1).is_err());
    assert!(
        attempt(&[NodeId::FR], 0, 1).is_err(),
        "FR has no HPKE key in the trust list"
    );
    assert!(
        attempt(NodeId::ALL, 0, NodeId::ALL.len()).is_err(),
        "31 recipients but only 4 have keys"
    );
}

#[test]
fn retired_key_cannot_sign_backdated_envelopes() {
    let mut fx = Fixture::new();
    let from = JAN_2026;
    let until = JAN_2026 + 10 * DAY;
    let at = fx
        .trust
        .members
        .iter_mut()
        .find(|m| m.node == NodeId::AT)
        .unwrap();
    at.signing_keys[0].valid_from = from;
    at.signing_keys[0].valid_until = until;
    let signer = fx.signer(NodeId::AT).clone();
    // Created inside the validity period; received within the grace period: accepted.
    let bytes = seal(&fx, &signer, &[NodeId::DE], until - 1);
    let grace = imi_protocol::KEY_EXPIRY_GRACE_MS;
    imi_protocol::Envelope::parse(bytes.clone(), imi_protocol::DEFAULT_MAX_ENVELOPE_BYTES)
        .unwrap()
        .verify(&fx.trust, NodeId::DE, until + grace, 0)
        .unwrap();
    // The same envelope presented after the grace period: the retired key no longer counts.
    let err = imi_protocol::Envelope::parse(bytes, imi_protocol::DEFAULT_MAX_ENVELOPE_BYTES)
        .unwrap()
        .verify(&fx.trust, NodeId::DE, until + grace + 1, 0)
        .unwrap_err();
    assert_eq!(err, RejectCode::KeyNotValid);
}

/// Frames a COSE_Sign1 from its protected header, payload and signature.
type Frame<'a> = dyn Fn(&[u8], &[u8], &[u8]) -> Vec<u8> + 'a;

/// The COSE structure has one encoding: validly signed variants of a good envelope whose
/// protected header or framing differs (other order, an extra label, a duplicate label,
/// non-shortest lengths, an indefinite length, a non-empty unprotected map) are `malformed`,
/// and a megabyte of protected header is refused without decoding it into a value tree.
#[test]
fn cose_structure_has_one_encoding() {
    use crate::common::{decode_cose, encode, sig_structure};
    use ed25519_dalek::Signer;
    let fx = Fixture::new();
    let good = seal(&fx, fx.signer(NodeId::AT), &[NodeId::DE], T);
    assert!(verify(&fx.trust, &good, NodeId::DE, T).is_ok());
    let parts = decode_cose(&good);
    let sk = ed25519_dalek::SigningKey::from_bytes(&fx.signer(NodeId::AT).seed());
    let kid = parts.protected[parts.protected.len() - 8..].to_vec();
    let ct = "application/imi-envelope+cbor; v=1";
    let int = |i: i64| Value::Integer(i.into());
    // A signed COSE_Sign1 from raw protected bytes and raw framing of the four items.
    let build = |protected: Vec<u8>, frame: &Frame<'_>| {
        let sig = sk
            .sign(&sig_structure(&protected, &parts.payload))
            .to_bytes();
        frame(&protected, &parts.payload, &sig)
    };
    let bstr = |b: &[u8]| encode(&Value::Bytes(b.to_vec()));
    let standard = |p: &[u8], pl: &[u8], s: &[u8]| {
        let mut out = vec![0xd2, 0x84];
        out.extend(bstr(p));
        out.push(0xa0);
        out.extend(bstr(pl));
        out.extend(bstr(s));
        out
    };
    // Control: rebuilt the standard way, it verifies (the builder is right).
    let control = build(parts.protected.clone(), &standard);
    assert_eq!(control, good);
    let map = |entries: Vec<(Value, Value)>| encode(&Value::Map(entries));
    let alg = (int(1), int(-8));
    let ctv = (int(3), Value::Text(ct.into()));
    let kidv = (int(4), Value::Bytes(kid.clone()));
    let headers = [
        (
            "other key order",
            map(vec![ctv.clone(), alg.clone(), kidv.clone()]),
        ),
        (
            "an extra label",
            map(vec![
                alg.clone(),
                ctv.clone(),
                kidv.clone(),
                (int(99), int(0)),
            ]),
        ),
        (
            "a duplicate label",
            map(vec![alg.clone(), ctv.clone(), kidv.clone(), kidv.clone()]),
        ),
        ("a missing kid", map(vec![alg.clone(), ctv.clone()])),
        ("a megabyte of labels", {
            let mut e = vec![alg.clone(), ctv.clone(), kidv.clone()];
            e.extend((0..100_000).map(|i| (int(1000 + i), int(0))));
            map(e)
        }),
    ];
    for (what, protected) in headers {
        let bytes = build(protected, &standard);
        assert_eq!(
            verify(&fx.trust, &bytes, NodeId::DE, T).unwrap_err(),
            RejectCode::Malformed,
            "{what}"
        );
    }
    let long_len = |p: &[u8], pl: &[u8], s: &[u8]| {
        // The protected header's length as `59 00 nn` instead of `58 nn`.
        let mut out = vec![0xd2, 0x84, 0x59, 0x00, p.len() as u8];
        out.extend_from_slice(p);
        out.push(0xa0);
        out.extend(bstr(pl));
        out.extend(bstr(s));
        out
    };
    let indefinite = |p: &[u8], pl: &[u8], s: &[u8]| {
        let mut out = vec![0xd2, 0x9f];
        out.extend(bstr(p));
        out.push(0xa0);
        out.extend(bstr(pl));
        out.extend(bstr(s));
        out.push(0xff);
        out
    };
    let unprotected = |p: &[u8], pl: &[u8], s: &[u8]| {
        let mut out = vec![0xd2, 0x84];
        out.extend(bstr(p));
        out.extend([0xa1, 0x04, 0x48]);
        out.extend_from_slice(&kid);
        out.extend(bstr(pl));
        out.extend(bstr(s));
        out
    };
    let frames: [(&str, &Frame<'_>); 3] = [
        ("a non-shortest length", &long_len),
        ("an indefinite-length array", &indefinite),
        ("a non-empty unprotected header", &unprotected),
    ];
    for (what, frame) in frames {
        let bytes = build(parts.protected.clone(), frame);
        assert_eq!(
            verify(&fx.trust, &bytes, NodeId::DE, T).unwrap_err(),
            RejectCode::Malformed,
            "{what}"
        );
    }
}

/// An edit of a decoded payload.
type Edit<'a> = dyn FnOnce(&mut Value) + 'a;

/// A payload is accepted only in its one encoding: validly re-signed payloads with the keys
/// of the header in another order, an unknown key, a duplicated key, or an integer in a
/// longer form than needed are `malformed`.
#[test]
fn payloads_have_one_encoding() {
    let fx = Fixture::new();
    let signer = fx.signer(NodeId::AT);
    let bytes = seal(&fx, signer, &[NodeId::DE], T);
    let header = |p: &mut Value| -> Vec<(Value, Value)> {
        let Value::Map(entries) = field_mut(p, "header") else {
            panic!("header is a map")
        };
        std::mem::take(entries)
    };
    let set = |p: &mut Value, entries: Vec<(Value, Value)>| {
        *field_mut(p, "header") = Value::Map(entries);
    };
    let variants: [(&str, Box<Edit<'_>>); 3] = [
        (
            "keys in another order",
            Box::new(|p: &mut Value| {
                let mut e = header(p);
                e.reverse();
                set(p, e);
            }),
        ),
        (
            "an unknown key",
            Box::new(|p: &mut Value| {
                let mut e = header(p);
                e.push((Value::Text("extra".into()), Value::Integer(1.into())));
                set(p, e);
            }),
        ),
        (
            "a duplicated key",
            Box::new(|p: &mut Value| {
                let mut e = header(p);
                let first = e[0].clone();
                e.push(first);
                set(p, e);
            }),
        ),
    ];
    for (what, mutate) in variants {
        let edited = resign(&bytes, &signer.seed(), mutate);
        assert_ne!(edited, bytes);
        assert_eq!(
            verify(&fx.trust, &edited, NodeId::DE, T).unwrap_err(),
            RejectCode::Malformed,
            "{what}"
        );
    }
    // The version as `19 00 01` instead of `01`: same value, longer form.
    let parts = crate::common::decode_cose(&bytes);
    let needle = [0x61, b'v', 0x01];
    let at = parts
        .payload
        .windows(3)
        .position(|w| w == needle)
        .expect("the header's v");
    let mut payload = parts.payload.clone();
    payload.splice(at + 2..at + 3, [0x19, 0x00, 0x01]);
    let sk = ed25519_dalek::SigningKey::from_bytes(&signer.seed());
    let sig = ed25519_dalek::Signer::sign(
        &sk,
        &crate::common::sig_structure(&parts.protected, &payload),
    );
    let longer = crate::common::encode_cose(&parts.protected, &payload, &sig.to_bytes());
    assert_eq!(
        verify(&fx.trust, &longer, NodeId::DE, T).unwrap_err(),
        RejectCode::Malformed,
        "a non-shortest integer"
    );
}

/// Strict ed25519 (README, "Strict ed25519"): small-order and non-canonical public keys never
/// verify, and a trust list that carries one is `malformed`.
#[test]
fn small_order_and_non_canonical_signing_keys_are_refused() {
    use imi_protocol::keys::is_strict_public_key;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut y_p_plus_3 = [0xff; 32];
    y_p_plus_3[0] = 0xf0;
    y_p_plus_3[31] = 0x7f;
    let mut y_2 = [0u8; 32];
    y_2[0] = 2;
    let fx = Fixture::new();
    assert!(is_strict_public_key(&fx.signer(NodeId::AT).public()));
    for bad in [identity, y_p_plus_3, y_2, [0u8; 32]] {
        assert!(!is_strict_public_key(&bad), "{}", hex::encode(bad));
        let mut weak = fx.trust.clone();
        weak.members[0].signing_keys[0].public = bad;
        assert!(matches!(weak.validate(), Err(ProtocolError::Invalid(_))));
        assert_eq!(
            TrustList::verify(&weak.sign(&fx.governance).unwrap(), &fx.governance.public())
                .unwrap_err()
                .reject_code(),
            Some(&RejectCode::Malformed)
        );
    }

    // A list built locally (not verified) with the identity as AT's key: R = identity,
    // S = 0 satisfies [S]B = R + [k]A for every message, so a lax verifier accepts it.
    let mut weak = fx.trust.clone();
    weak.members[0].signing_keys[0].public = identity;
    let good = seal(&fx, fx.signer(NodeId::AT), &[NodeId::DE], T);
    let parts = crate::common::decode_cose(&good);
    let protected = crate::common::protected_header(
        imi_protocol::cose::CT_ENVELOPE,
        &imi_protocol::key_id(&identity),
    );
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let forged = crate::common::encode_cose(&protected, &parts.payload, &sig);
    let lax = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    assert!(
        ed25519_dalek::Verifier::verify(
            &lax,
            &crate::common::sig_structure(&protected, &parts.payload),
            &ed25519_dalek::Signature::from_bytes(&sig)
        )
        .is_ok()
    );
    let env = Envelope::parse(forged, MAX).unwrap();
    assert_eq!(
        env.verify(&weak, NodeId::DE, T + 1_000, 0).unwrap_err(),
        RejectCode::BadSignature
    );
}

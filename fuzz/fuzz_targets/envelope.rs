//! Envelopes: `Envelope::parse` → `verify` → `VerifiedEnvelope::open`, the path of every
//! inbound request (`crates/engine/src/inbound.rs`), against the vectors' trust list.
//!
//! Input: a selector byte, then the bytes. Selector bits 6-7 both set: the bytes are the
//! AEAD plaintext (in place of the CBOR `{salt, body}`), which the target encrypts into a
//! real envelope to the receiver, committed to as a lenient reader would read it and signed
//! by a valid key, so that the canonical decoding of the plaintext in
//! `VerifiedEnvelope::open` is reached. Otherwise, bit 0 clear: the bytes are the envelope
//! as received. Set: the bytes are a COSE payload that the target signs with one of the
//! vectors' keys (bits 1-3), so that mutated headers pass the signature and reach the
//! canonical check, the checks after it and the decryption. Bits 4-5 choose the receiving
//! node.
//!
//! Asserts: no panic; the size limit comes before decoding (`Oversized` one byte under the
//! length); `Envelope::parse` accepts exactly what a model accepts: the one COSE_Sign1 form
//! (rebuilt with `coset`, `fx::canon::strict_cose`), a payload that is the canonical
//! encoding of what it decodes to (and deterministic CBOR by an independent check) and the
//! structural rules of protocol/vectors/README.md; its header re-encodes to a fixed point; a
//! verified envelope is from a listed key valid at its creation time, names the receiver and
//! is not from the future; an opened body matches the signed commitment, and a plaintext
//! opens exactly when it is the canonical `{salt, body}` the header commits to.
#![no_main]

use imi_fuzz_fixtures as fx;
use imi_fuzz_fixtures::canon::{self, EnvelopePayload, Inner};
use imi_protocol::cose::CT_ENVELOPE;
use imi_protocol::{
    DEFAULT_MAX_ENVELOPE_BYTES, Envelope, HpkeKeyPair, MAX_PREDECESSORS, MAX_RECIPIENTS, NodeId,
    NodeSigner, RejectCode, TrustList, sha256,
};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::OnceLock;

struct Fixture {
    trust: TrustList,
    signers: Vec<NodeSigner>,
    hpke: Vec<(NodeId, Vec<HpkeKeyPair>)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        trust: fx::trust_list(),
        signers: fx::SIGNERS.iter().map(|n| fx::signer(n)).collect(),
        hpke: fx::MEMBERS
            .iter()
            .map(|n| (*n, fx::hpke_keys(*n)))
            .collect(),
    })
}

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    v: &T,
) {
    let bytes = fx::cbor(v);
    let back: T = ciborium::from_reader(bytes.as_slice()).expect("what we encode decodes");
    assert_eq!(&back, v, "decode(encode(x)) != x");
    assert_eq!(fx::cbor(&back), bytes, "the encoding is not a fixed point");
}

/// What `Envelope::parse` should say of `bytes` (within the size limit), by the models.
fn expected_parse(bytes: &[u8]) -> bool {
    let Some((_, payload)) = canon::strict_cose(bytes, CT_ENVELOPE) else {
        return false;
    };
    let Ok(p) = ciborium::from_reader::<EnvelopePayload, _>(payload.as_slice()) else {
        return false;
    };
    if fx::cbor(&p) != payload {
        return false;
    }
    assert!(
        canon::deterministic(&payload),
        "a canonical payload is deterministic CBOR"
    );
    let h = &p.header;
    !h.to.is_empty()
        && h.to.len() <= MAX_RECIPIENTS
        && h.to.iter().collect::<HashSet<_>>().len() == h.to.len()
        && h.prev.len() <= MAX_PREDECESSORS
        && p.sealed.keys.len() == h.to.len()
        && p.sealed
            .keys
            .iter()
            .zip(&h.to)
            .all(|(k, n)| k.node == *n && k.key.len() == 48)
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (sel, rest) = fx::split_first(data);
    let (me, keys) = &f.hpke[usize::from(sel >> 4 & 3)];
    let mut inner_model = None;
    let bytes = if sel >> 6 == 3 {
        // One of two senders other than the receiver with a key valid at the creation time.
        let created = fx::NOW - 1_000;
        let sender = f
            .signers
            .iter()
            .filter(|s| s.node != *me && f.trust.signing_key(s.node, &s.key_id(), created).is_ok())
            .nth(usize::from(sel >> 1 & 1))
            .expect("two other members with valid keys");
        let sealed = canon::seal_around(sender, *me, &f.trust, created, rest);
        inner_model = Some(
            sealed
                .lenient
                .and_then(|i| (fx::cbor(&i) == rest).then_some(i)),
        );
        sealed.bytes
    } else if sel & 1 == 1 {
        let signer = &f.signers[usize::from(sel >> 1 & 7) % f.signers.len()];
        fx::cose_sign(rest.to_vec(), CT_ENVELOPE, signer)
    } else {
        rest.to_vec()
    };

    if !bytes.is_empty() {
        assert_eq!(
            Envelope::parse(bytes.clone(), bytes.len() - 1).err(),
            Some(RejectCode::Oversized)
        );
    }
    let parsed = Envelope::parse(bytes.clone(), DEFAULT_MAX_ENVELOPE_BYTES);
    if bytes.len() <= DEFAULT_MAX_ENVELOPE_BYTES {
        assert_eq!(
            parsed.is_ok(),
            expected_parse(&bytes),
            "Envelope::parse disagrees with the model: {:?}",
            parsed.as_ref().err()
        );
    }
    let env = match parsed {
        Ok(env) => env,
        Err(code) => {
            assert!(
                code == RejectCode::Malformed
                    || (code == RejectCode::Oversized && bytes.len() > DEFAULT_MAX_ENVELOPE_BYTES),
                "parse refuses only as malformed or oversized"
            );
            return;
        }
    };
    assert_eq!(env.bytes(), bytes.as_slice());
    assert_eq!(env.hash(), sha256(&bytes));
    let h = env.header().clone();
    assert!(!h.to.is_empty() && h.to.len() <= MAX_RECIPIENTS);
    assert_eq!(h.to.iter().collect::<HashSet<_>>().len(), h.to.len());
    assert!(h.prev.len() <= MAX_PREDECESSORS);
    roundtrip(&h);

    let verified = match env.verify(&f.trust, *me, fx::NOW, fx::MAX_FUTURE_SKEW_MS) {
        Ok(v) => v,
        Err(code) => {
            assert!(
                inner_model.is_none(),
                "a sealed-around envelope verifies: {code:?}"
            );
            return;
        }
    };
    assert_eq!(verified.header(), &h);
    assert_eq!(verified.bytes(), bytes.as_slice());
    assert_eq!(h.v, imi_protocol::PROTOCOL_VERSION);
    assert!(h.to.contains(me));
    assert!(h.created <= fx::NOW + fx::MAX_FUTURE_SKEW_MS);
    let member = f
        .trust
        .member(h.from)
        .expect("verified: the sender is a member");
    assert!(
        member
            .signing_keys
            .iter()
            .any(|k| k.valid_from <= h.created && h.created < k.valid_until),
        "verified with no key valid at the creation time"
    );
    let opened = verified.open(*me, keys);
    if let Ok(opened) = &opened {
        let mut committed = opened.salt.to_vec();
        committed.extend_from_slice(&opened.body);
        assert_eq!(sha256(&committed), h.commitment);
    }
    if let Some(model) = inner_model {
        match (&opened, model) {
            (Ok(o), Some(Inner { salt, body })) => {
                assert_eq!((o.salt.as_slice(), &o.body), (salt.as_slice(), &body));
                assert!(
                    canon::deterministic(rest),
                    "a canonical plaintext is deterministic"
                );
            }
            (Err(RejectCode::DecryptFailed), None) => {}
            (o, m) => panic!("open gave {o:?}, the model {m:?}"),
        }
    }
});

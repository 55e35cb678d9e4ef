//! Envelopes: `Envelope::parse` → `verify` → `VerifiedEnvelope::open`, the path of every
//! inbound request (`crates/engine/src/inbound.rs`), against the vectors' trust list.
//!
//! Input: a selector byte, then the bytes. Selector bit 0 clear: the bytes are the
//! envelope as received. Set: the bytes are a COSE payload that the target signs with one
//! of the vectors' keys (bits 1-3), so that mutated headers pass the signature and reach the
//! checks after it and the decryption. Bits 4-5 choose the receiving node.
//!
//! Asserts: no panic; the size limit comes before decoding (`Oversized` one byte under the
//! length); a parsed envelope keeps the exact bytes and their hash and satisfies the
//! structural rules of protocol/vectors/README.md; its header re-encodes to a fixed point
//! (decode → encode → decode gives the same header and bytes); a verified envelope is from a
//! listed key valid at its creation time, names the receiver and is not from the future; an
//! opened body matches the signed commitment.
#![no_main]

use imi_fuzz_fixtures as fx;
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

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (sel, rest) = fx::split_first(data);
    let bytes = if sel & 1 == 1 {
        let signer = &f.signers[usize::from(sel >> 1 & 7) % f.signers.len()];
        fx::cose_sign(rest.to_vec(), CT_ENVELOPE, signer)
    } else {
        rest.to_vec()
    };
    let (me, keys) = &f.hpke[usize::from(sel >> 4 & 3)];

    if !bytes.is_empty() {
        assert_eq!(
            Envelope::parse(bytes.clone(), bytes.len() - 1).err(),
            Some(RejectCode::Oversized)
        );
    }
    let env = match Envelope::parse(bytes.clone(), DEFAULT_MAX_ENVELOPE_BYTES) {
        Ok(env) => env,
        Err(code) => {
            assert_eq!(
                code,
                RejectCode::Malformed,
                "parse refuses only as malformed"
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
        Err(_) => return,
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
    if let Ok(opened) = verified.open(*me, keys) {
        let mut committed = opened.salt.to_vec();
        committed.extend_from_slice(&opened.body);
        assert_eq!(sha256(&committed), h.commitment);
    }
});

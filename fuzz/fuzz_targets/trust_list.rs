//! Trust lists: `TrustList::verify` (signature, then CBOR, then consistency), which a node
//! runs on the list an operator uploads (`PUT /operator/trust-list`) and on the list inside
//! every evidence bundle; then the key look-ups every inbound message makes.
//!
//! Input: a selector byte, then the bytes. Selector bit 0 clear: the bytes are the signed
//! list. Set: they are the CBOR payload, which the target signs with the vectors' governance
//! key, so that mutated lists get past the signature.
//!
//! Asserts: no panic; anything but the one COSE_Sign1 form (rebuilt with `coset`,
//! `fx::canon::strict_cose`) is `malformed`; a list signed by the governance key is
//! `malformed` exactly when its payload is not the canonical encoding of a trust list (a
//! canonical one is also deterministic CBOR by an independent check) or names a signing key
//! that is not a strict ed25519 public key, and verifies exactly
//! when it is canonical and consistent; a verified list is its payload's canonical
//! encoding and consistent (`validate`); it round-trips (encode → sign → verify gives the
//! same list, and the encoding is a fixed point); key look-ups answer for every member, key
//! id and validity boundary without panicking, and agree with the list (a key found is
//! listed and valid at the time asked).
#![no_main]

use imi_fuzz_fixtures as fx;
use imi_fuzz_fixtures::canon;
use imi_protocol::cose::CT_TRUST_LIST;
use imi_protocol::keys::is_strict_public_key;
use imi_protocol::{
    MAX_TRUST_LIST_BYTES, NodeId, NodeSigner, ProtocolError, RejectCode, TrustList, key_id,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn governance() -> &'static (NodeSigner, [u8; 32]) {
    static G: OnceLock<(NodeSigner, [u8; 32])> = OnceLock::new();
    G.get_or_init(|| (fx::governance(), fx::governance_public()))
}

fuzz_target!(|data: &[u8]| {
    let (gov, public) = governance();
    let (sel, rest) = fx::split_first(data);
    let bytes = if sel & 1 == 1 {
        fx::cose_sign(rest.to_vec(), CT_TRUST_LIST, gov)
    } else {
        rest.to_vec()
    };
    let result = TrustList::verify(&bytes, public);
    let malformed = matches!(result, Err(ProtocolError::Rejected(RejectCode::Malformed)));
    if bytes.len() <= MAX_TRUST_LIST_BYTES {
        match canon::strict_cose(&bytes, CT_TRUST_LIST) {
            None => assert!(malformed, "not the strict form, yet {result:?}"),
            Some((kid, payload)) if sel & 1 == 1 => {
                // Signed here with the governance key: only the payload decides.
                assert_eq!(kid, key_id(public));
                let decoded = ciborium::from_reader::<TrustList, _>(payload.as_slice())
                    .ok()
                    .filter(|l| fx::cbor(l) == payload);
                if decoded.is_some() {
                    assert!(canon::deterministic(&payload));
                }
                // Canonical, but a signing key strict ed25519 cannot accept: also `malformed`
                // (README, trust list check 6).
                let weak_key = decoded.as_ref().is_some_and(|l| {
                    l.all_signing_keys()
                        .any(|(_, k)| !is_strict_public_key(&k.public))
                });
                assert_eq!(malformed, decoded.is_none() || weak_key, "{result:?}");
                assert_eq!(
                    result.is_ok(),
                    decoded.is_some_and(|l| l.validate().is_ok()),
                    "{result:?}"
                );
            }
            Some(_) => {}
        }
    }
    let list = match result {
        Ok(l) => l,
        Err(_) => return,
    };
    let payload = fx::cose_payload(&bytes).expect("a verified list is a COSE_Sign1");
    assert_eq!(
        fx::cbor(&list),
        payload,
        "a verified list is its canonical encoding"
    );
    assert!(bytes.len() <= MAX_TRUST_LIST_BYTES);
    list.validate().expect("a verified list is consistent");

    let encoded = fx::cbor(&list);
    let back: TrustList = ciborium::from_reader(encoded.as_slice()).expect("decodes");
    assert_eq!(back, list);
    assert_eq!(fx::cbor(&back), encoded);
    let resigned = list.sign(gov).expect("signs");
    if resigned.len() <= MAX_TRUST_LIST_BYTES {
        assert_eq!(
            TrustList::verify(&resigned, public).expect("verifies"),
            list
        );
    }
    assert!(
        list.check_update(&list).is_err(),
        "a list does not replace itself"
    );

    for m in &list.members {
        assert_eq!(list.member(m.node), Some(m));
        for k in &m.signing_keys {
            let kid = key_id(&k.public);
            for at in [
                0,
                k.valid_from.saturating_sub(1),
                k.valid_from,
                k.valid_until.saturating_sub(1),
                k.valid_until,
                u64::MAX,
            ] {
                if let Ok(found) = list.signing_key(m.node, &kid, at) {
                    assert!(m.signing_keys.iter().any(|e| e.public == found
                        && key_id(&e.public) == kid
                        && e.valid_from <= at
                        && at < e.valid_until));
                }
                let _ = list.signing_key_now(m.node, &kid, at, at);
                if let Some(h) = list.hpke_key(m.node, at) {
                    assert!(h.valid_from <= at && at < h.valid_until);
                    assert!(m.hpke_keys.contains(h));
                }
            }
            assert!(list.node_of_key(&k.public).is_some());
        }
    }
    for n in NodeId::ALL {
        if list.member(*n).is_none() {
            assert!(list.hpke_key(*n, fx::NOW).is_none());
        }
    }
});

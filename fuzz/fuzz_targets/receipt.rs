//! Receipts: `Receipt::verify`, which a sending node runs on every answer to a delivery
//! (`crates/engine/src/delivery.rs`) and the evidence verifier on every receipt of a bundle.
//!
//! Input: a selector byte, then the bytes. Selector bit 0 clear: the bytes are the receipt
//! as received. Set: they are a COSE payload the target signs with one of the vectors'
//! keys (bits 1-3). Bits 4-5 choose the node the receipt is expected from.
//!
//! Asserts: no panic; the 4096-byte limit; for input whose first byte is `0xd2` (a single
//! receipt; anything else is read as a group receipt, whose own vectors and rejection tests
//! are in `protocol/tests/main/group.rs`), `Receipt::verify` refuses as `malformed` exactly
//! what a model refuses: anything but the one COSE_Sign1 form (rebuilt with `coset`,
//! `fx::canon::strict_cose`) around the canonical encoding of a receipt body (which is also
//! deterministic CBOR by an independent check); a verified receipt is the bytes given, from
//! the expected receiver, version 1, signed by its key valid at `received`; its body
//! round-trips (decode → sign → verify gives the same body, and the encoding is a fixed
//! point).
#![no_main]

use imi_fuzz_fixtures as fx;
use imi_fuzz_fixtures::canon;
use imi_protocol::cose::CT_RECEIPT;
use imi_protocol::{MAX_RECEIPT_BYTES, NodeSigner, Receipt, ReceiptBody, RejectCode, TrustList};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Fixture {
    trust: TrustList,
    signers: Vec<NodeSigner>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        trust: fx::trust_list(),
        signers: fx::SIGNERS.iter().map(|n| fx::signer(n)).collect(),
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (sel, rest) = fx::split_first(data);
    let bytes = if sel & 1 == 1 {
        let signer = &f.signers[usize::from(sel >> 1 & 7) % f.signers.len()];
        fx::cose_sign(rest.to_vec(), CT_RECEIPT, signer)
    } else {
        rest.to_vec()
    };
    let expected = fx::MEMBERS[usize::from(sel >> 4 & 3)];
    let result = Receipt::verify(bytes.clone(), &f.trust, expected);
    if bytes.len() > MAX_RECEIPT_BYTES {
        assert_eq!(result.err(), Some(RejectCode::Oversized));
        return;
    }
    // The model: the strict COSE form around a canonical body, or `malformed`.
    let well_formed = canon::strict_cose(&bytes, CT_RECEIPT).is_some_and(|(_, payload)| {
        ciborium::from_reader::<ReceiptBody, _>(payload.as_slice()).is_ok_and(|b| {
            let canonical = fx::cbor(&b) == payload;
            assert!(!canonical || canon::deterministic(&payload));
            canonical
        })
    });
    if bytes.first() == Some(&0xd2) {
        assert_eq!(
            matches!(result, Err(RejectCode::Malformed)),
            !well_formed,
            "Receipt::verify disagrees with the model: {:?}",
            result.as_ref().err()
        );
    }
    let r = match result {
        Ok(r) => r,
        Err(_) => return,
    };
    assert!(bytes.len() <= MAX_RECEIPT_BYTES);
    assert_eq!(r.bytes, bytes);
    assert_eq!(r.body.receiver, expected);
    assert_eq!(r.body.v, imi_protocol::PROTOCOL_VERSION);
    let member = f.trust.member(expected).expect("a member signed it");
    assert!(
        member
            .signing_keys
            .iter()
            .any(|k| k.valid_from <= r.body.received && r.body.received < k.valid_until)
    );

    // decode → encode → decode.
    let encoded = fx::cbor(&r.body);
    let back: ReceiptBody = ciborium::from_reader(encoded.as_slice()).expect("decodes");
    assert_eq!(back, r.body);
    assert_eq!(fx::cbor(&back), encoded);
    // Signed again by a valid key of the receiver, it verifies to the same body (if it still
    // fits the size limit: a lenient encoding may have been shorter than ours).
    let signer = f
        .signers
        .iter()
        .find(|s| {
            s.node == expected
                && member.signing_keys.iter().any(|k| {
                    k.public == s.public()
                        && k.valid_from <= r.body.received
                        && r.body.received < k.valid_until
                })
        })
        .expect("the vectors hold every member's key");
    let resigned = r.body.sign(signer).expect("a receiver signs its receipt");
    if resigned.len() <= MAX_RECEIPT_BYTES {
        let again = Receipt::verify(resigned, &f.trust, expected).expect("re-signed verifies");
        assert_eq!(again.body, r.body);
    }
});

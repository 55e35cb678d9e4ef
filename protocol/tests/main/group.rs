//! Group receipts: the pinned vectors in `protocol/vectors/receipt_group.json`, their
//! generator and an independent checker that follows `protocol/vectors/README.md`
//! ("Group receipts"), and the rejection paths.
//!
//! - `group_vectors_file_is_up_to_date` checks the generator still produces the file (with
//!   `IMI_REGEN_VECTORS=1` it writes it);
//! - `group_vectors_match` recomputes every expected byte string, checks the receipts with an
//!   independent RFC 6962 tree and ed25519 check, and runs the negative vectors.
use crate::common::{
    Fixture, JAN_2026, decode, encode, entries, field, field_mut, flip, sign_raw, verify_raw,
};
use crate::vectors::{Ctx, load};
use ciborium::Value;
use imi_protocol::cose::{CT_RECEIPT, CT_RECEIPT_GROUP};
use imi_protocol::{
    GroupCache, MAX_RECEIPT_BYTES, MAX_RECEIPT_GROUP, MessageId, NodeId, Outcome, ProtocolError,
    Receipt, ReceiptBody, RejectCode, sha256,
};
use serde::{Deserialize, Serialize};

const GROUP_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/receipt_group.json");

/// The receipts of `v1.json` the group signs, in this order (all DE's, key `DE-1`).
const MEMBERS: [&str; 3] = ["accepted", "duplicate", "rejected_bad_signature"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    description: Vec<String>,
    signing_key: String,
    receipts: Vec<String>,
    expected: GroupExpected,
    negative: Vec<GroupNegative>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupExpected {
    bodies: Vec<String>,
    leaves: Vec<String>,
    root: String,
    group_payload: String,
    group: String,
    receipts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupNegative {
    name: String,
    description: String,
    bytes: String,
    verifier: NodeId,
    expected: String,
}

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn leaf(body: &[u8]) -> [u8; 32] {
    sha256(&[&[0u8][..], body].concat())
}

fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    sha256(&[&[1u8][..], l, r].concat())
}

/// RFC 6962 MTH, written out recursively (independent of `imi_protocol::merkle`).
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(b""),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 6962 PATH(m, D[n]), written out recursively.
fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn bodies(f: &crate::vectors::VectorFile) -> Vec<ReceiptBody> {
    MEMBERS
        .iter()
        .map(|name| {
            f.receipts
                .iter()
                .find(|r| r.name == *name)
                .unwrap_or_else(|| panic!("v1.json has no receipt {name}"))
                .body
                .to_body()
        })
        .collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A receipt's map with `mutate` applied, encoded again.
fn remap(bytes: &[u8], mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = decode(bytes);
    mutate(&mut v);
    encode(&v)
}

/// A receipt with its audit path (the array of hashes) changed by `edit`, encoded again.
fn edit_path(bytes: &[u8], edit: impl FnOnce(&mut Vec<Value>)) -> Vec<u8> {
    remap(bytes, |v| {
        let Value::Array(mut p) = field(v, "path").clone() else {
            panic!("path is not an array")
        };
        edit(&mut p);
        *field_mut(v, "path") = Value::Array(p);
    })
}

fn group_payload(count: u64, root: &[u8]) -> Vec<u8> {
    encode(&Value::Map(vec![
        (text("count"), Value::Integer(count.into())),
        (text("root"), Value::Bytes(root.to_vec())),
    ]))
}

fn negatives(receipts: &[Vec<u8>], seed: &[u8; 32]) -> Vec<GroupNegative> {
    let first = &receipts[0];
    let neg = |name: &str, description: &str, bytes: Vec<u8>, verifier: NodeId, expected: &str| {
        GroupNegative {
            name: name.into(),
            description: description.into(),
            bytes: h(bytes),
            verifier,
            expected: expected.into(),
        }
    };
    let root = {
        let g =
            decode(&crate::common::decode_cose(&bytes_of(field(&decode(first), "group"))).payload);
        bytes_of(field(&g, "root"))
    };
    vec![
        neg(
            "group_receipt_flipped_body_bit",
            "receipt 0 with bit 0 of the last byte of its envelope_hash flipped (the body still decodes)",
            remap(first, |v| {
                let body = bytes_of(field(v, "body"));
                let mut b = decode(&body);
                let eh = field_mut(&mut b, "envelope_hash");
                let mut x = bytes_of(eh);
                let last = x.len() - 1;
                x[last] ^= 1;
                *eh = Value::Bytes(x);
                *field_mut(v, "body") = Value::Bytes(encode(&b));
            }),
            NodeId::DE,
            "bad_signature",
        ),
        neg(
            "group_receipt_wrong_index",
            "receipt 0 claiming index 1",
            remap(first, |v| *field_mut(v, "index") = Value::Integer(1.into())),
            NodeId::DE,
            "bad_signature",
        ),
        neg(
            "group_receipt_index_not_below_count",
            "receipt 0 claiming index 3 of a group of 3",
            remap(first, |v| *field_mut(v, "index") = Value::Integer(3.into())),
            NodeId::DE,
            "malformed",
        ),
        neg(
            "group_receipt_flipped_path_bit",
            "receipt 0 with bit 0 of the first byte of its first path hash flipped",
            edit_path(first, |p| {
                let mut x = bytes_of(&p[0]);
                x[0] ^= 1;
                p[0] = Value::Bytes(x);
            }),
            NodeId::DE,
            "bad_signature",
        ),
        neg(
            "group_receipt_path_missing_hash",
            "receipt 0 without the last hash of its path",
            edit_path(first, |p| {
                p.pop();
            }),
            NodeId::DE,
            "bad_signature",
        ),
        neg(
            "group_receipt_path_extra_hash",
            "receipt 0 with its first path hash repeated at the end",
            edit_path(first, |p| p.push(p[0].clone())),
            NodeId::DE,
            "bad_signature",
        ),
        neg(
            "group_receipt_path_hash_31_bytes",
            "receipt 0 with its first path hash one byte short",
            edit_path(first, |p| {
                let mut x = bytes_of(&p[0]);
                x.pop();
                p[0] = Value::Bytes(x);
            }),
            NodeId::DE,
            "malformed",
        ),
        neg(
            "group_receipt_flipped_signature_bit",
            "receipt 0 with bit 0 of the last byte of the group signature flipped",
            remap(first, |v| {
                let g = bytes_of(field(v, "group"));
                *field_mut(v, "group") = Value::Bytes(flip(&g, (g.len() - 1) * 8));
            }),
            NodeId::DE,
            "bad_signature",
        ),
        neg(
            "group_receipt_other_receiver",
            "receipt 0 verified as a receipt expected from AT",
            first.clone(),
            NodeId::AT,
            "unknown_sender",
        ),
        neg(
            "group_receipt_keys_reordered",
            "receipt 0 with its keys in the order group, path, index, body",
            remap(first, |v| entries(v, "").reverse()),
            NodeId::DE,
            "malformed",
        ),
        neg(
            "group_receipt_unknown_key",
            "receipt 0 with a fifth key \"x\": 0 at the end",
            remap(first, |v| {
                entries(v, "").push((text("x"), Value::Integer(0.into())))
            }),
            NodeId::DE,
            "malformed",
        ),
        neg(
            "group_receipt_trailing_byte",
            "receipt 0 followed by one zero byte",
            [first.clone(), vec![0]].concat(),
            NodeId::DE,
            "malformed",
        ),
        neg(
            "group_receipt_single_content_type",
            "receipt 0 whose group is the same payload signed by DE-1 under the single receipt's content type",
            remap(first, |v| {
                let g = bytes_of(field(v, "group"));
                let payload = crate::common::decode_cose(&g).payload;
                *field_mut(v, "group") = Value::Bytes(sign_raw(&payload, CT_RECEIPT, seed));
            }),
            NodeId::DE,
            "malformed",
        ),
        neg(
            "group_receipt_count_zero",
            "receipt 0 with a group payload of count 0 (same root), signed by DE-1",
            remap(first, |v| {
                *field_mut(v, "group") =
                    Value::Bytes(sign_raw(&group_payload(0, &root), CT_RECEIPT_GROUP, seed));
            }),
            NodeId::DE,
            "malformed",
        ),
        neg(
            "group_receipt_oversized",
            "receipt 0 with a path of 130 hashes: 4,353 bytes or more, over the 4,096-byte limit",
            edit_path(first, |p| *p = vec![p[0].clone(); 130]),
            NodeId::DE,
            "oversized",
        ),
    ]
}

fn bytes_of(v: &Value) -> Vec<u8> {
    crate::common::bytes_of(v)
}

fn generate() -> GroupFile {
    let f = load();
    let ctx = Ctx::from_file(&f);
    let signer = ctx.signer("DE-1");
    let bodies = bodies(&f);
    let receipts = ReceiptBody::sign_group(&bodies, signer).unwrap();
    let encoded: Vec<Vec<u8>> = receipts
        .iter()
        .map(|r| bytes_of(field(&decode(r), "body")))
        .collect();
    let leaves: Vec<[u8; 32]> = encoded.iter().map(|b| leaf(b)).collect();
    let root = mth(&leaves);
    let group = bytes_of(field(&decode(&receipts[0]), "group"));
    GroupFile {
        description: vec![
            "Group receipts of imi-protocol v1: DE signs three receipts of v1.json (receipts named in `receipts`) with one signature. Keys and trust list are v1.json's; format in README.md next to this file, section \"Group receipts\".".into(),
        ],
        signing_key: "DE-1".into(),
        receipts: MEMBERS.iter().map(|s| (*s).to_owned()).collect(),
        expected: GroupExpected {
            bodies: encoded.iter().map(h).collect(),
            leaves: leaves.iter().map(h).collect(),
            root: h(root),
            group_payload: h(group_payload(3, &root)),
            group: h(&group),
            receipts: receipts.iter().map(h).collect(),
        },
        negative: negatives(&receipts, &signer.seed()),
    }
}

#[test]
fn group_vectors_file_is_up_to_date() {
    crate::common::check_generated(
        GROUP_PATH,
        "receipt_group.json",
        &crate::common::vectors_json(&generate()),
        "group",
    );
}

#[test]
fn group_vectors_match() {
    let file: GroupFile =
        serde_json::from_str(&std::fs::read_to_string(GROUP_PATH).unwrap()).unwrap();
    let f = load();
    let ctx = Ctx::from_file(&f);
    let de_public = ctx.signer(&file.signing_key).verifying_key().to_bytes();
    let bodies = bodies(&f);
    let e = &file.expected;
    assert_eq!(e.receipts.len(), bodies.len());

    // Independently, from README.md: the bodies' deterministic CBOR, RFC 6962 leaves and
    // root, the group payload and its COSE_Sign1 under the group content type.
    let leaves: Vec<[u8; 32]> = e.bodies.iter().map(|b| leaf(&unhex(b))).collect();
    assert_eq!(e.leaves, leaves.iter().map(h).collect::<Vec<_>>());
    assert_eq!(e.root, h(mth(&leaves)));
    let parts = verify_raw(&unhex(&e.group), &de_public);
    assert_eq!(h(&parts.payload), e.group_payload);
    assert_eq!(parts.payload, group_payload(3, &mth(&leaves)));
    assert_eq!(
        parts.protected,
        crate::common::protected_header(CT_RECEIPT_GROUP, &sha256(&de_public)[..8])
    );
    for (i, (r, body)) in e.receipts.iter().zip(&bodies).enumerate() {
        let bytes = unhex(r);
        let v = decode(&bytes);
        assert_eq!(crate::common::keys(&v), ["body", "index", "path", "group"]);
        assert_eq!(h(bytes_of(field(&v, "body"))), e.bodies[i]);
        assert_eq!(field(&v, "index"), &Value::Integer(i.into()));
        let Value::Array(p) = field(&v, "path") else {
            panic!("path")
        };
        let p: Vec<Vec<u8>> = p.iter().map(bytes_of).collect();
        assert_eq!(
            p,
            path(i, &leaves)
                .iter()
                .map(|x| x.to_vec())
                .collect::<Vec<_>>()
        );
        assert_eq!(h(bytes_of(field(&v, "group"))), e.group);
        // The body is the single receipt's payload of v1.json.
        let single = f.receipts.iter().find(|x| x.name == MEMBERS[i]).unwrap();
        assert_eq!(h(bytes_of(field(&v, "body"))), single_payload(single));
        // And the implementation accepts it as this body.
        let got = Receipt::verify(bytes.clone(), &ctx.trust, NodeId::DE).unwrap();
        assert_eq!(&got.body, body);
        assert_eq!(got.bytes, bytes);
    }
    // Regenerated byte for byte.
    assert_eq!(
        ReceiptBody::sign_group(&bodies, ctx.signer("DE-1"))
            .unwrap()
            .iter()
            .map(h)
            .collect::<Vec<_>>(),
        e.receipts
    );
    assert!(!file.negative.is_empty());
    for n in &file.negative {
        let got = Receipt::verify(unhex(&n.bytes), &ctx.trust, n.verifier)
            .map(|_| ())
            .map_err(|c| c.label().to_owned());
        assert_eq!(got, Err(n.expected.clone()), "{}", n.name);
    }
}

#[test]
fn the_readme_names_every_group_vector_with_its_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/README.md")).unwrap();
    let section = readme
        .split("## Group receipts")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Group receipts section");
    let file: GroupFile =
        serde_json::from_str(&std::fs::read_to_string(GROUP_PATH).unwrap()).unwrap();
    for n in &file.negative {
        let at = section
            .find(&format!("`{}`", n.name))
            .unwrap_or_else(|| panic!("{} not in the README's Group receipts", n.name));
        // The code named after it (the first backticked code that follows).
        let code = section[at..]
            .split(" (`")
            .nth(1)
            .and_then(|s| s.split('`').next())
            .unwrap_or("");
        assert_eq!(code, n.expected, "the README's code for {}", n.name);
    }
}

fn single_payload(r: &crate::vectors::ReceiptVector) -> String {
    crate::vectors::receipt_payload(r)
}

fn body(receiver: NodeId, n: u8) -> ReceiptBody {
    ReceiptBody {
        v: 1,
        message_id: Some(MessageId([n; 16])),
        envelope_hash: [n; 32],
        receiver,
        sender: Some(NodeId::AT),
        received: JAN_2026 + u64::from(n),
        outcome: Outcome::Accepted,
    }
}

#[test]
fn every_receipt_of_a_group_verifies_on_its_own_whatever_its_size() {
    let fx = Fixture::new();
    let de = fx.signer(NodeId::DE);
    for n in 1..=17u8 {
        let bodies: Vec<ReceiptBody> = (0..n).map(|i| body(NodeId::DE, i)).collect();
        let receipts = ReceiptBody::sign_group(&bodies, de).unwrap();
        assert_eq!(receipts.len(), usize::from(n));
        let leaves: Vec<[u8; 32]> = receipts
            .iter()
            .map(|r| leaf(&bytes_of(field(&decode(r), "body"))))
            .collect();
        for (i, (r, b)) in receipts.iter().zip(&bodies).enumerate() {
            assert!(Receipt::is_group(r));
            let v = decode(r);
            let Value::Array(p) = field(&v, "path") else {
                panic!("path")
            };
            assert_eq!(p.len(), path(i, &leaves).len(), "n {n} i {i}");
            let got = Receipt::verify(r.clone(), &fx.trust, NodeId::DE).unwrap();
            assert_eq!(&got.body, b);
        }
    }
}

#[test]
fn a_cache_checks_each_group_signature_once_and_never_accepts_a_forgery() {
    let fx = Fixture::new();
    let de = fx.signer(NodeId::DE);
    let bodies: Vec<ReceiptBody> = (0..4).map(|i| body(NodeId::DE, i)).collect();
    let receipts = ReceiptBody::sign_group(&bodies, de).unwrap();
    let mut cache = GroupCache::default();
    for r in &receipts {
        Receipt::verify_cached(r.clone(), &fx.trust, NodeId::DE, &mut cache).unwrap();
    }
    // The same group with its signature flipped: not the cached one, so checked and refused.
    let forged = remap(&receipts[1], |v| {
        let g = bytes_of(field(v, "group"));
        *field_mut(v, "group") = Value::Bytes(flip(&g, (g.len() - 1) * 8));
    });
    assert_eq!(
        Receipt::verify_cached(forged, &fx.trust, NodeId::DE, &mut cache).unwrap_err(),
        RejectCode::BadSignature
    );
    // A body that is not in the tree, under the cached (valid) group signature.
    let other = remap(&receipts[1], |v| {
        let b = ciborium_body(&body(NodeId::DE, 9));
        *field_mut(v, "body") = Value::Bytes(b);
    });
    assert_eq!(
        Receipt::verify_cached(other, &fx.trust, NodeId::DE, &mut cache).unwrap_err(),
        RejectCode::BadSignature
    );
    // A group signed by AT's key but claiming DE's bodies: DE's key does not verify it.
    let at_group = ReceiptBody::sign_group(
        &(0..4).map(|i| body(NodeId::AT, i)).collect::<Vec<_>>(),
        fx.signer(NodeId::AT),
    )
    .unwrap();
    let mixed = remap(&receipts[0], |v| {
        *field_mut(v, "group") = field(&decode(&at_group[0]), "group").clone();
    });
    assert!(Receipt::verify_cached(mixed, &fx.trust, NodeId::DE, &mut cache).is_err());
}

fn ciborium_body(b: &ReceiptBody) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(b, &mut out).unwrap();
    out
}

#[test]
fn a_group_is_signed_only_by_its_receiver_and_within_its_bounds() {
    let fx = Fixture::new();
    let de = fx.signer(NodeId::DE);
    assert!(matches!(
        ReceiptBody::sign_group(&[], de),
        Err(ProtocolError::Invalid(_))
    ));
    assert!(matches!(
        ReceiptBody::sign_group(&[body(NodeId::DE, 0), body(NodeId::AT, 1)], de),
        Err(ProtocolError::Invalid(_))
    ));
    let too_many: Vec<ReceiptBody> = (0..=MAX_RECEIPT_GROUP)
        .map(|i| ReceiptBody {
            received: JAN_2026 + i,
            ..body(NodeId::DE, 0)
        })
        .collect();
    assert!(matches!(
        ReceiptBody::sign_group(&too_many, de),
        Err(ProtocolError::Invalid(_))
    ));
    // The largest group's receipts stay within the receipt size limit.
    let largest = ReceiptBody::sign_group(&too_many[..too_many.len() - 1], de).unwrap();
    assert!(largest.iter().all(|r| r.len() <= MAX_RECEIPT_BYTES));
}

/// Every single-bit flip and every truncation of every receipt of a group is refused, by
/// `verify` and by `verify_cached` with the genuine group's signature already in the cache
/// (where a flip in the body, index or path meets a cached signature and must still fail on
/// the path); nothing panics. A group receipt has no byte outside what the checks cover.
#[test]
fn every_bit_flip_and_truncation_of_a_group_receipt_fails() {
    let fx = Fixture::new();
    let bodies: Vec<ReceiptBody> = (0..5).map(|i| body(NodeId::DE, i)).collect();
    let receipts = ReceiptBody::sign_group(&bodies, fx.signer(NodeId::DE)).unwrap();
    let mut cache = GroupCache::default();
    for r in &receipts {
        Receipt::verify_cached(r.clone(), &fx.trust, NodeId::DE, &mut cache).unwrap();
    }
    // Five leaves: the first receipt's path has three hashes, the last's (alone on the right) one.
    for r in [&receipts[0], &receipts[4]] {
        for bit in 0..r.len() * 8 {
            let flipped = flip(r, bit);
            assert!(
                Receipt::verify(flipped.clone(), &fx.trust, NodeId::DE).is_err(),
                "bit {bit} of {} verifies",
                r.len() * 8
            );
            assert!(
                Receipt::verify_cached(flipped, &fx.trust, NodeId::DE, &mut cache).is_err(),
                "bit {bit} of {} verifies against the cached group",
                r.len() * 8
            );
        }
        for len in 0..r.len() {
            let cut = r[..len].to_vec();
            assert!(Receipt::verify(cut.clone(), &fx.trust, NodeId::DE).is_err());
            assert!(Receipt::verify_cached(cut, &fx.trust, NodeId::DE, &mut cache).is_err());
        }
        // The genuine receipt still verifies from the cache after all that.
        Receipt::verify_cached(r.clone(), &fx.trust, NodeId::DE, &mut cache).unwrap();
    }
}

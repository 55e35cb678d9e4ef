//! Shared fixtures and an independent COSE_Sign1 codec (ciborium + ed25519-dalek only), used
//! to check that the wire format is what `protocol/vectors/README.md` says and to craft
//! validly signed but otherwise wrong inputs.
use ciborium::Value;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use imi_protocol::{
    AuthorityId, Draft, HpkeKeyEntry, HpkeKeyPair, Kind, Member, MessageId, NodeId, NodeSigner,
    SealRandomness, SigningKeyEntry, Timestamp, TrustList, sha256,
};

/// One day in milliseconds.
pub const DAY: u64 = 86_400_000;
/// 2025-01-01T00:00:00Z.
pub const JAN_2025: Timestamp = 1_735_689_600_000;
/// 2026-01-01T00:00:00Z.
pub const JAN_2026: Timestamp = 1_767_225_600_000;
/// 2028-01-01T00:00:00Z (2026 and 2027 are not leap years).
pub const JAN_2028: Timestamp = JAN_2026 + 730 * DAY;

/// The members of the property-test fixture.
pub const MEMBERS: [NodeId; 4] = [NodeId::AT, NodeId::DE, NodeId::NL, NodeId::EU];

/// A deterministic 32-byte value named by a label.
pub fn seed(label: &str) -> [u8; 32] {
    sha256(format!("imi/1 test {label}").as_bytes())
}

/// Deterministic seal randomness for `n` recipients, derived from a label.
pub fn rnd(label: &[u8], n: usize) -> SealRandomness {
    let part = |what: &str| {
        let mut input = label.to_vec();
        input.extend_from_slice(what.as_bytes());
        sha256(&input)
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(&part("id")[..16]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&part("nonce")[..12]);
    SealRandomness {
        id: MessageId(id),
        salt: part("salt"),
        content_key: part("content key"),
        nonce,
        ephemeral: (0..n).map(|i| part(&format!("ephemeral {i}"))).collect(),
    }
}

/// A draft of kind `diagnostic` from a fixed authority.
pub fn draft(to: &[NodeId], body: &[u8]) -> Draft {
    Draft {
        kind: Kind::new(Kind::DIAGNOSTIC).unwrap(),
        step: None,
        authority: AuthorityId::new("XX-OPS").unwrap(),
        to: to.to_vec(),
        case: None,
        prev: vec![],
        body: body.to_vec(),
    }
}

/// The bytes with one bit flipped (bit 0 is the least significant bit of byte 0).
pub fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

/// Four members (AT, DE, NL, EU), one signing key and one HPKE key each, valid
/// 2025-01-01 to 2028-01-01, and a governance key.
pub struct Fixture {
    pub governance: NodeSigner,
    pub signers: Vec<NodeSigner>,
    pub hpke: Vec<(NodeId, HpkeKeyPair)>,
    pub trust: TrustList,
}

impl Fixture {
    pub fn new() -> Self {
        let governance = NodeSigner::from_seed(NodeId::EU, &seed("governance"));
        let signers: Vec<NodeSigner> = MEMBERS
            .iter()
            .map(|n| NodeSigner::from_seed(*n, &seed(&format!("{n} signing"))))
            .collect();
        let hpke: Vec<(NodeId, HpkeKeyPair)> = MEMBERS
            .iter()
            .map(|n| (*n, HpkeKeyPair::derive(&seed(&format!("{n} hpke")))))
            .collect();
        let members = MEMBERS
            .iter()
            .map(|n| Member {
                node: *n,
                role: n.default_role(),
                signing_keys: signers
                    .iter()
                    .filter(|s| s.node == *n)
                    .map(|s| SigningKeyEntry {
                        public: s.public(),
                        valid_from: JAN_2025,
                        valid_until: JAN_2028,
                    })
                    .collect(),
                hpke_keys: hpke
                    .iter()
                    .filter(|(m, _)| m == n)
                    .map(|(_, k)| HpkeKeyEntry {
                        public: k.public(),
                        valid_from: JAN_2025,
                        valid_until: JAN_2028,
                    })
                    .collect(),
                addresses: vec![format!(
                    "/dns4/imi.{}.example/tcp/4001",
                    n.as_str().to_lowercase()
                )],
            })
            .collect();
        let trust = TrustList {
            version: 1,
            issued: JAN_2026,
            members,
        };
        Fixture {
            governance,
            signers,
            hpke,
            trust,
        }
    }

    pub fn signer(&self, node: NodeId) -> &NodeSigner {
        self.signers.iter().find(|s| s.node == node).unwrap()
    }

    pub fn hpke_keys(&self, node: NodeId) -> Vec<HpkeKeyPair> {
        self.hpke
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Independent COSE_Sign1 codec.

/// CBOR-encodes a value (ciborium: definite lengths, shortest argument encoding).
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

/// Decodes one CBOR value, refusing trailing bytes.
pub fn decode(bytes: &[u8]) -> Value {
    let mut rest = bytes;
    let v: Value = ciborium::from_reader(&mut rest).unwrap();
    assert!(rest.is_empty(), "trailing bytes after CBOR value");
    v
}

/// The four parts of a tagged COSE_Sign1.
#[derive(Debug, Clone)]
pub struct CoseParts {
    pub protected: Vec<u8>,
    pub unprotected: Vec<(Value, Value)>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Splits a tagged COSE_Sign1 (tag 18) into its parts.
pub fn decode_cose(bytes: &[u8]) -> CoseParts {
    let Value::Tag(18, inner) = decode(bytes) else {
        panic!("not tag 18")
    };
    let Value::Array(items) = *inner else {
        panic!("not an array")
    };
    let [
        Value::Bytes(protected),
        Value::Map(unprotected),
        Value::Bytes(payload),
        Value::Bytes(signature),
    ] = <[Value; 4]>::try_from(items).unwrap()
    else {
        panic!("not [bstr, map, bstr, bstr]")
    };
    CoseParts {
        protected,
        unprotected,
        payload,
        signature,
    }
}

/// Encodes a tagged COSE_Sign1 with an empty unprotected header.
pub fn encode_cose(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    encode(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected.to_vec()),
            Value::Map(vec![]),
            Value::Bytes(payload.to_vec()),
            Value::Bytes(signature.to_vec()),
        ])),
    ))
}

/// RFC 9052 Sig_structure for COSE_Sign1 with empty external AAD.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    encode(&Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(vec![]),
        Value::Bytes(payload.to_vec()),
    ]))
}

/// The protected header `{1: -8, 3: content_type, 4: kid}` as this protocol encodes it.
pub fn protected_header(content_type: &str, kid: &[u8]) -> Vec<u8> {
    encode(&Value::Map(vec![
        (Value::Integer(1.into()), Value::Integer((-8).into())),
        (Value::Integer(3.into()), Value::Text(content_type.into())),
        (Value::Integer(4.into()), Value::Bytes(kid.to_vec())),
    ]))
}

/// Signs an arbitrary payload into a tagged COSE_Sign1 with an ed25519 seed.
pub fn sign_raw(payload: &[u8], content_type: &str, seed: &[u8; 32]) -> Vec<u8> {
    let sk = SigningKey::from_bytes(seed);
    let kid = &sha256(sk.verifying_key().as_bytes())[..8];
    let protected = protected_header(content_type, kid);
    let sig = sk.sign(&sig_structure(&protected, payload));
    encode_cose(&protected, payload, &sig.to_bytes())
}

/// Checks a COSE_Sign1 signature independently; returns the parts.
pub fn verify_raw(bytes: &[u8], public: &[u8; 32]) -> CoseParts {
    let parts = decode_cose(bytes);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(public).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&parts.signature).unwrap();
    vk.verify(&sig_structure(&parts.protected, &parts.payload), &sig)
        .expect("independent signature check");
    parts
}

/// Decodes the payload of a COSE_Sign1, lets `mutate` change it, and signs it again with
/// `seed` (same protected header). With an identity `mutate` this reproduces the input.
pub fn resign(bytes: &[u8], seed: &[u8; 32], mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let parts = decode_cose(bytes);
    let mut payload = decode(&parts.payload);
    mutate(&mut payload);
    let payload = encode(&payload);
    let sk = SigningKey::from_bytes(seed);
    let sig = sk.sign(&sig_structure(&parts.protected, &payload));
    encode_cose(&parts.protected, &payload, &sig.to_bytes())
}

/// The value under text key `key` of a CBOR map.
pub fn field<'a>(map: &'a Value, key: &str) -> &'a Value {
    let Value::Map(entries) = map else {
        panic!("not a map")
    };
    entries
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key}"))
}

/// The value under text key `key` of a CBOR map, mutably.
pub fn field_mut<'a>(map: &'a mut Value, key: &str) -> &'a mut Value {
    let Value::Map(entries) = map else {
        panic!("not a map")
    };
    entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key}"))
}

/// The text keys of a CBOR map, in encoded order.
pub fn keys(map: &Value) -> Vec<String> {
    let Value::Map(entries) = map else {
        panic!("not a map")
    };
    entries
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_owned())
        .collect()
}

/// A CBOR byte string's bytes.
pub fn bytes_of(v: &Value) -> Vec<u8> {
    v.as_bytes()
        .unwrap_or_else(|| panic!("not a byte string: {v:?}"))
        .clone()
}

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

/// The entries of the map under `key` (or of the top-level map for `""`).
pub fn entries<'a>(p: &'a mut Value, key: &str) -> &'a mut Vec<(Value, Value)> {
    let m = if key.is_empty() { p } else { field_mut(p, key) };
    let Value::Map(e) = m else {
        panic!("not a map")
    };
    e
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

/// Signs `payload` under an arbitrary `protected` header with an ed25519 seed (the header is
/// taken as given, so malformed headers can be validly signed).
pub fn sign_parts(protected: &[u8], payload: &[u8], seed: &[u8; 32]) -> Vec<u8> {
    let sig = SigningKey::from_bytes(seed).sign(&sig_structure(protected, payload));
    encode_cose(protected, payload, &sig.to_bytes())
}

/// Like [`resign`], but `encode` produces the new payload bytes from the decoded payload
/// (so they can be in any encoding, canonical or not).
pub fn resign_with(
    bytes: &[u8],
    seed: &[u8; 32],
    encode: impl FnOnce(Value) -> Vec<u8>,
) -> Vec<u8> {
    let parts = decode_cose(bytes);
    let payload = encode(decode(&parts.payload));
    sign_parts(&parts.protected, &payload, seed)
}

// ---------------------------------------------------------------------------------------
// A CBOR encoder that can write one item in a non-deterministic form.

/// How [`encode_with`] writes the item it is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Its head (integer value, or string/array/map length) with an 8-byte argument
    /// (`1b`, `5b`, `7b`, `9b`, `bb` ...), which is not the shortest form.
    Long,
    /// An indefinite length (`5f`/`7f` chunks, `9f`, `bf` ... `ff`); strings are split into
    /// one chunk per byte.
    Indefinite,
}

fn put_head(out: &mut Vec<u8>, major: u8, arg: u64, long: bool) {
    let m = major << 5;
    if long {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
        return;
    }
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend([m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

fn enc(v: &Value, path: Option<&[&str]>, form: Form, out: &mut Vec<u8>) {
    let here = path.is_some_and(<[&str]>::is_empty);
    let long = here && form == Form::Long;
    let indef = here && form == Form::Indefinite;
    match v {
        Value::Integer(i) => {
            let i = i128::from(*i);
            if i >= 0 {
                put_head(out, 0, i as u64, long);
            } else {
                put_head(out, 1, (-1 - i) as u64, long);
            }
        }
        Value::Bytes(_) | Value::Text(_) if indef => {
            let (major, b) = match v {
                Value::Text(t) => (3, t.as_bytes()),
                Value::Bytes(b) => (2, b.as_slice()),
                _ => unreachable!(),
            };
            out.push((major << 5) | 31);
            for byte in b {
                put_head(out, major, 1, false);
                out.push(*byte);
            }
            out.push(0xff);
        }
        Value::Bytes(b) => {
            put_head(out, 2, b.len() as u64, long);
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            put_head(out, 3, t.len() as u64, long);
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(items) => {
            if indef {
                out.push(0x9f);
            } else {
                put_head(out, 4, items.len() as u64, long);
            }
            for item in items {
                enc(item, None, form, out);
            }
            if indef {
                out.push(0xff);
            }
        }
        Value::Map(entries) => {
            if indef {
                out.push(0xbf);
            } else {
                put_head(out, 5, entries.len() as u64, long);
            }
            for (k, item) in entries {
                enc(k, None, form, out);
                let sub = match (path, k.as_text()) {
                    (Some([first, rest @ ..]), Some(t)) if *first == t => Some(rest),
                    _ => None,
                };
                enc(item, sub, form, out);
            }
            if indef {
                out.push(0xff);
            }
        }
        Value::Tag(tag, inner) => {
            put_head(out, 6, *tag, long);
            enc(inner, None, form, out);
        }
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Null => out.push(0xf6),
        other => panic!("encode_with: unsupported {other:?}"),
    }
}

/// Encodes `v` exactly like [`encode`], except that the item reached from the top-level map
/// through the text keys of `path` is written in `form`.
pub fn encode_with(v: &Value, path: &[&str], form: Form) -> Vec<u8> {
    let mut out = Vec::new();
    enc(v, Some(path), form, &mut out);
    if path.is_empty() {
        return out;
    }
    let mut plain = Vec::new();
    enc(v, None, form, &mut plain);
    assert_eq!(plain, encode(v), "encode_with must agree with ciborium");
    assert_ne!(out, plain, "path {path:?} not found");
    out
}

// ---------------------------------------------------------------------------------------
// ed25519 arithmetic for crafting signatures that only a strict verifier refuses.

/// The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
pub const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

type U256 = [u64; 4];

fn u256(le: &[u8; 32]) -> U256 {
    std::array::from_fn(|i| u64::from_le_bytes(le[i * 8..i * 8 + 8].try_into().unwrap()))
}

fn le_bytes(x: &U256) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, limb) in x.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
    }
    out
}

fn add(a: &U256, b: &U256) -> U256 {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s, c1) = a[i].overflowing_add(b[i]);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        out[i] = s;
        carry = c1 || c2;
    }
    assert!(!carry);
    out
}

fn sub(a: &U256, b: &U256) -> U256 {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (s, b1) = a[i].overflowing_sub(b[i]);
        let (s, b2) = s.overflowing_sub(u64::from(borrow));
        out[i] = s;
        borrow = b1 || b2;
    }
    assert!(!borrow);
    out
}

fn ge(a: &U256, b: &U256) -> bool {
    a.iter().rev().cmp(b.iter().rev()) != std::cmp::Ordering::Less
}

/// `2x + bit mod L` for `x < L`.
fn double_add(x: &U256, bit: bool) -> U256 {
    let l = u256(&ED25519_L);
    let mut r = add(x, x);
    if bit {
        r = add(&r, &[1, 0, 0, 0]);
    }
    if ge(&r, &l) { sub(&r, &l) } else { r }
}

/// A little-endian integer of any length, reduced mod L.
fn mod_l(le: &[u8]) -> U256 {
    let mut r = [0u64; 4];
    for byte in le.iter().rev() {
        for bit in (0..8).rev() {
            r = double_add(&r, byte >> bit & 1 == 1);
        }
    }
    r
}

/// `a * b mod L` for `a, b < L`.
fn mul_mod_l(a: &U256, b: &U256) -> U256 {
    let l = u256(&ED25519_L);
    let mut r = [0u64; 4];
    for bit in (0..256).rev() {
        r = double_add(&r, false);
        if b[bit / 64] >> (bit % 64) & 1 == 1 {
            r = add(&r, a);
            if ge(&r, &l) {
                r = sub(&r, &l);
            }
        }
    }
    r
}

/// The 64-byte signature with `L` added to its `S` (same value mod L, not canonical).
pub fn signature_s_plus_l(sig: &[u8]) -> Vec<u8> {
    let s: [u8; 32] = sig[32..64].try_into().unwrap();
    let big = add(&u256(&s), &u256(&ED25519_L));
    [&sig[..32], le_bytes(&big).as_slice()].concat()
}

/// An ed25519 "signature" of `msg` by `seed` with the given `R` encoding and
/// `S = k * a mod L`, `k = SHA-512(R || A || msg)`. It satisfies the cofactorless equation
/// `[S]B = R + [k]A` exactly when `R` decodes to the identity, whatever its encoding.
pub fn signature_with_r(seed: &[u8; 32], r: &[u8; 32], msg: &[u8]) -> [u8; 64] {
    use sha2::Digest as _;
    let expanded = sha2::Sha512::digest(seed);
    let mut a: [u8; 32] = expanded[..32].try_into().unwrap();
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    let public = SigningKey::from_bytes(seed).verifying_key().to_bytes();
    let mut h = sha2::Sha512::new();
    h.update(r);
    h.update(public);
    h.update(msg);
    let k = mod_l(&h.finalize());
    let s = mul_mod_l(&k, &mod_l(&a));
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(&le_bytes(&s));
    out
}

// ---------------------------------------------------------------------------------------
// Vector files.

/// A vector file's JSON as the generators write it: pretty-printed, with a final newline.
pub fn vectors_json<T: serde::Serialize>(f: &T) -> String {
    let mut s = serde_json::to_string_pretty(f).unwrap();
    s.push('\n');
    s
}

/// Checks that the vector file at `path` (`protocol/vectors/<name>`) is exactly what its
/// generator produces now; with `IMI_REGEN_VECTORS=1` it writes the file first. `filter`
/// names the tests that regenerate it.
pub fn check_generated(path: &str, name: &str, generated: &str, filter: &str) {
    if std::env::var("IMI_REGEN_VECTORS").as_deref() == Ok("1") {
        std::fs::write(path, generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap();
    assert!(
        on_disk == generated,
        "protocol/vectors/{name} differs from what the generator produces: if the change \
         is intended, regenerate with IMI_REGEN_VECTORS=1 cargo test -p imi-protocol --test main {filter}"
    );
}

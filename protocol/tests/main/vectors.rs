//! The pinned test vectors in `protocol/vectors/v1.json`.
//!
//! - `regenerate_vectors` (ignored; run with `IMI_REGEN_VECTORS=1 cargo test -p imi-protocol
//!   --test main regenerate_vectors -- --ignored`) writes the file from the constants here.
//! - `vectors_match` reads the file, recomputes every expected byte string from the inputs
//!   in it, checks the expected bytes with an independent decoder that follows
//!   `protocol/vectors/README.md`, and runs the negative vectors.
//! - `vectors_file_is_up_to_date` checks that the generator still produces the file exactly.
use crate::common::{
    DAY, ED25519_L, Form, JAN_2025, JAN_2026, bytes_of, decode, decode_cose, encode, encode_cose,
    encode_with, entries, field, field_mut, flip, keys, protected_header, resign, resign_with,
    sig_structure, sign_parts, signature_s_plus_l, signature_with_r, verify_raw,
};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use ciborium::Value;
use hpke::{Deserializable as _, Kem as _, Serializable as _, kem::X25519HkdfSha256};
use imi_protocol::cose::{CT_ENVELOPE, CT_RECEIPT, CT_TRUST_LIST};
use imi_protocol::envelope::{BODY_AAD_PREFIX, HPKE_INFO};
use imi_protocol::{
    AuthorityId, CaseId, DEFAULT_MAX_ENVELOPE_BYTES, Draft, Envelope, HpkeKeyEntry, HpkeKeyPair,
    Kind, Member, MessageId, NodeId, NodeSigner, Outcome, PROTOCOL_VERSION, Receipt, ReceiptBody,
    RejectCode, Role, SealRandomness, SigningKeyEntry, Timestamp, TrustList, seal_and_sign, sha256,
};
use serde::{Deserialize, Serialize};

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/v1.json");

const FEB_2026: Timestamp = JAN_2026 + 31 * DAY;
const MAR_2026: Timestamp = JAN_2026 + 59 * DAY;
const APR_2026: Timestamp = JAN_2026 + 90 * DAY;
const JUN_2026: Timestamp = JAN_2026 + 151 * DAY;
const JUL_2026: Timestamp = JAN_2026 + 181 * DAY;
const AUG_2026: Timestamp = JAN_2026 + 212 * DAY;
const JAN_2027: Timestamp = JAN_2026 + 365 * DAY;
const JUN_2027: Timestamp = JAN_2027 + 151 * DAY;
const HOUR: u64 = 3_600_000;
const SKEW: u64 = 300_000;

// ---------------------------------------------------------------------------------------
// File format (see protocol/vectors/README.md).

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VectorFile {
    description: Vec<String>,
    protocol_version: u16,
    governance: GovernanceVector,
    signing_keys: Vec<SigningKeyVector>,
    hpke_keys: Vec<HpkeKeyVector>,
    trust_list: TrustListVector,
    envelopes: Vec<EnvelopeVector>,
    pub(crate) receipts: Vec<ReceiptVector>,
    negative: Vec<NegativeVector>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GovernanceVector {
    seed: String,
    public: String,
    kid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningKeyVector {
    name: String,
    node: NodeId,
    seed: String,
    public: String,
    kid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HpkeKeyVector {
    name: String,
    node: NodeId,
    ikm: String,
    secret: String,
    public: String,
    kid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustListVector {
    version: u64,
    issued: Timestamp,
    members: Vec<MemberVector>,
    expected: TrustListExpected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberVector {
    node: NodeId,
    role: Role,
    signing_keys: Vec<KeyPeriodVector>,
    hpke_keys: Vec<KeyPeriodVector>,
    addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPeriodVector {
    key: String,
    public: String,
    valid_from: Timestamp,
    valid_until: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustListExpected {
    protected: String,
    payload: String,
    signed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeVector {
    name: String,
    description: String,
    signing_key: String,
    created: Timestamp,
    draft: DraftVector,
    randomness: RandomnessVector,
    now: Timestamp,
    max_future_skew_ms: u64,
    expected: EnvelopeExpected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftVector {
    kind: String,
    step: Option<String>,
    authority: String,
    to: Vec<NodeId>,
    case: Option<String>,
    prev: Vec<String>,
    body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomnessVector {
    id: String,
    salt: String,
    content_key: String,
    nonce: String,
    ephemeral: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeExpected {
    commitment: String,
    inner_plaintext: String,
    recipients: Vec<RecipientExpected>,
    protected: String,
    payload: String,
    envelope: String,
    hash: String,
    opened: OpenedExpected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientExpected {
    node: NodeId,
    hpke_key: String,
    kid: String,
    enc: String,
    key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenedExpected {
    salt: String,
    body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiptVector {
    pub(crate) name: String,
    description: String,
    pub(crate) signing_key: String,
    pub(crate) body: ReceiptBodyVector,
    expected: ReceiptExpected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiptBodyVector {
    v: u16,
    message_id: Option<String>,
    envelope_hash: String,
    receiver: NodeId,
    sender: Option<NodeId>,
    received: Timestamp,
    outcome: Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptExpected {
    protected: String,
    payload: String,
    signed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NegativeVector {
    name: String,
    description: String,
    object: String,
    bytes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verifier: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    now: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_future_skew_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pad_to: Option<usize>,
    expected: String,
}

impl NegativeVector {
    /// The input: `bytes`, followed by zero bytes up to `pad_to` bytes when that is given.
    fn input(&self) -> Vec<u8> {
        let mut bytes = unhex(&self.bytes);
        if let Some(n) = self.pad_to {
            assert!(n > bytes.len(), "{}: pad_to", self.name);
            bytes.resize(n, 0);
        }
        bytes
    }
}

// ---------------------------------------------------------------------------------------
// Hex helpers.

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    unhex(s)
        .try_into()
        .unwrap_or_else(|_| panic!("expected {N} bytes: {s}"))
}

// ---------------------------------------------------------------------------------------
// Computation of expected values from inputs (shared by generator and checker).

/// Keys and trust list built from the inputs of a vector file.
pub(crate) struct Ctx {
    governance: NodeSigner,
    signing: Vec<(String, NodeSigner)>,
    hpke: Vec<(String, NodeId, HpkeKeyPair)>,
    pub(crate) trust: TrustList,
}

impl Ctx {
    pub(crate) fn from_file(f: &VectorFile) -> Ctx {
        let governance = NodeSigner::from_seed(NodeId::EU, &arr(&f.governance.seed));
        let signing = f
            .signing_keys
            .iter()
            .map(|k| (k.name.clone(), NodeSigner::from_seed(k.node, &arr(&k.seed))))
            .collect();
        let hpke = f
            .hpke_keys
            .iter()
            .map(|k| (k.name.clone(), k.node, HpkeKeyPair::derive(&arr(&k.ikm))))
            .collect();
        let tl = &f.trust_list;
        let trust = TrustList {
            version: tl.version,
            issued: tl.issued,
            members: tl
                .members
                .iter()
                .map(|m| Member {
                    node: m.node,
                    role: m.role,
                    signing_keys: m
                        .signing_keys
                        .iter()
                        .map(|k| SigningKeyEntry {
                            public: arr(&k.public),
                            valid_from: k.valid_from,
                            valid_until: k.valid_until,
                        })
                        .collect(),
                    hpke_keys: m
                        .hpke_keys
                        .iter()
                        .map(|k| HpkeKeyEntry {
                            public: arr(&k.public),
                            valid_from: k.valid_from,
                            valid_until: k.valid_until,
                        })
                        .collect(),
                    addresses: m.addresses.clone(),
                })
                .collect(),
        };
        Ctx {
            governance,
            signing,
            hpke,
            trust,
        }
    }

    pub(crate) fn signer(&self, name: &str) -> &NodeSigner {
        self.signing
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("no key {name}"))
    }

    fn hpke_keys(&self, node: NodeId) -> Vec<HpkeKeyPair> {
        self.hpke
            .iter()
            .filter(|(_, n, _)| *n == node)
            .map(|(_, _, k)| k.clone())
            .collect()
    }

    fn hpke_name(&self, kid: &[u8]) -> String {
        self.hpke
            .iter()
            .find(|(_, _, k)| k.key_id() == kid)
            .map(|(n, _, _)| n.clone())
            .expect("unknown HPKE kid")
    }

    fn signing_name(&self, public: &[u8; 32]) -> String {
        self.signing
            .iter()
            .find(|(_, s)| &s.public() == public)
            .map(|(n, _)| n.clone())
            .expect("unknown key")
    }
}

impl DraftVector {
    fn to_draft(&self) -> Draft {
        Draft {
            kind: Kind::new(&self.kind).unwrap(),
            step: self.step.as_deref().map(|s| Kind::new(s).unwrap()),
            authority: AuthorityId::new(&self.authority).unwrap(),
            to: self.to.clone(),
            case: self.case.as_deref().map(|c| CaseId(arr(c))),
            prev: self.prev.iter().map(|p| MessageId(arr(p))).collect(),
            body: unhex(&self.body),
        }
    }
}

impl RandomnessVector {
    fn to_rnd(&self) -> SealRandomness {
        SealRandomness {
            id: MessageId(arr(&self.id)),
            salt: arr(&self.salt),
            content_key: arr(&self.content_key),
            nonce: arr(&self.nonce),
            ephemeral: self.ephemeral.iter().map(|e| arr(e)).collect(),
        }
    }

    fn from_rnd(r: &SealRandomness) -> Self {
        RandomnessVector {
            id: h(r.id.0),
            salt: h(r.salt),
            content_key: h(r.content_key),
            nonce: h(r.nonce),
            ephemeral: r.ephemeral.iter().map(h).collect(),
        }
    }
}

impl ReceiptBodyVector {
    pub(crate) fn to_body(&self) -> ReceiptBody {
        ReceiptBody {
            v: self.v,
            message_id: self.message_id.as_deref().map(|m| MessageId(arr(m))),
            envelope_hash: arr(&self.envelope_hash),
            receiver: self.receiver,
            sender: self.sender,
            received: self.received,
            outcome: self.outcome.clone(),
        }
    }
}

fn expect_trust_list(ctx: &Ctx) -> TrustListExpected {
    let signed = ctx.trust.sign(&ctx.governance).unwrap();
    let parts = decode_cose(&signed);
    TrustListExpected {
        protected: h(&parts.protected),
        payload: h(&parts.payload),
        signed: h(&signed),
    }
}

/// Seals the envelope of `v`, then parses, verifies and opens it as every recipient.
fn expect_envelope(v: &EnvelopeVector, ctx: &Ctx) -> EnvelopeExpected {
    let draft = v.draft.to_draft();
    let rnd = v.randomness.to_rnd();
    let bytes = seal_and_sign(
        &draft,
        v.created,
        ctx.signer(&v.signing_key),
        &ctx.trust,
        &rnd,
    )
    .unwrap();
    let parts = decode_cose(&bytes);
    let payload = decode(&parts.payload);
    let commitment = bytes_of(field(field(&payload, "header"), "commitment"));
    let inner = encode(&Value::Map(vec![
        (Value::Text("salt".into()), Value::Bytes(rnd.salt.to_vec())),
        (Value::Text("body".into()), Value::Bytes(draft.body.clone())),
    ]));
    let Value::Array(sealed_keys) = field(field(&payload, "sealed"), "keys") else {
        panic!("keys")
    };
    let recipients = sealed_keys
        .iter()
        .map(|k| {
            let node: NodeId = field(k, "node").as_text().unwrap().parse().unwrap();
            let kid = bytes_of(field(k, "kid"));
            RecipientExpected {
                node,
                hpke_key: ctx.hpke_name(&kid),
                kid: h(&kid),
                enc: h(bytes_of(field(k, "enc"))),
                key: h(bytes_of(field(k, "key"))),
            }
        })
        .collect();
    let mut opened: Option<OpenedExpected> = None;
    for me in &draft.to {
        let env = Envelope::parse(bytes.clone(), DEFAULT_MAX_ENVELOPE_BYTES).unwrap();
        let verified = env
            .verify(&ctx.trust, *me, v.now, v.max_future_skew_ms)
            .unwrap();
        let body = verified.open(*me, &ctx.hpke_keys(*me)).unwrap();
        let this = OpenedExpected {
            salt: h(body.salt),
            body: h(&body.body),
        };
        if let Some(prev) = &opened {
            assert_eq!(prev, &this, "recipients disagree");
        }
        opened = Some(this);
    }
    EnvelopeExpected {
        commitment: h(&commitment),
        inner_plaintext: h(&inner),
        recipients,
        protected: h(&parts.protected),
        payload: h(&parts.payload),
        envelope: h(&bytes),
        hash: h(sha256(&bytes)),
        opened: opened.unwrap(),
    }
}

fn expect_receipt(v: &ReceiptVector, ctx: &Ctx) -> ReceiptExpected {
    let signed = v.body.to_body().sign(ctx.signer(&v.signing_key)).unwrap();
    let parts = decode_cose(&signed);
    ReceiptExpected {
        protected: h(&parts.protected),
        payload: h(&parts.payload),
        signed: h(&signed),
    }
}

/// Runs a negative vector: envelope = parse, verify, open; receipt = verify; trust list =
/// verify against the governance key.
fn run_negative(v: &NegativeVector, ctx: &Ctx) -> Result<(), RejectCode> {
    let bytes = v.input();
    match v.object.as_str() {
        "envelope" => {
            let me = v.verifier.expect("verifier");
            let env = Envelope::parse(bytes, v.max_bytes.unwrap_or(DEFAULT_MAX_ENVELOPE_BYTES))?;
            let verified = env.verify(
                &ctx.trust,
                me,
                v.now.expect("now"),
                v.max_future_skew_ms.expect("skew"),
            )?;
            verified.open(me, &ctx.hpke_keys(me))?;
            Ok(())
        }
        "receipt" => Receipt::verify(bytes, &ctx.trust, v.verifier.expect("verifier")).map(|_| ()),
        "trust_list" => TrustList::verify(&bytes, &ctx.governance.public())
            .map(|_| ())
            .map_err(|e| {
                e.reject_code()
                    .cloned()
                    .unwrap_or_else(|| panic!("{}: not a rejection: {e}", v.name))
            }),
        other => panic!("unknown object {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Generator.

fn vseed(label: &str) -> [u8; 32] {
    sha256(format!("imi/1 test vector {label}").as_bytes())
}

fn vrnd(label: &str, n: usize) -> SealRandomness {
    crate::common::rnd(
        format!("imi/1 test vector randomness {label}").as_bytes(),
        n,
    )
}

fn cbor_body(entries: &[(&str, Value)]) -> Vec<u8> {
    encode(&Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::Text((*k).into()), v.clone()))
            .collect(),
    ))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

const SIGNING: &[(&str, NodeId)] = &[
    ("AT-1", NodeId::AT),
    ("AT-2", NodeId::AT),
    ("DE-1", NodeId::DE),
    ("NL-1", NodeId::NL),
    ("EU-1", NodeId::EU),
    ("FR-1", NodeId::FR),
];

const HPKE: &[(&str, NodeId)] = &[
    ("AT-h1", NodeId::AT),
    ("DE-h1", NodeId::DE),
    ("DE-h2", NodeId::DE),
    ("NL-h1", NodeId::NL),
    ("EU-h1", NodeId::EU),
];

fn generate() -> VectorFile {
    let gov = NodeSigner::from_seed(NodeId::EU, &vseed("governance"));
    let signing_keys: Vec<SigningKeyVector> = SIGNING
        .iter()
        .map(|(name, node)| {
            let s = NodeSigner::from_seed(*node, &vseed(&format!("signing {name}")));
            SigningKeyVector {
                name: (*name).into(),
                node: *node,
                seed: h(s.seed()),
                public: h(s.public()),
                kid: h(s.key_id()),
            }
        })
        .collect();
    let hpke_keys: Vec<HpkeKeyVector> = HPKE
        .iter()
        .map(|(name, node)| {
            let ikm = vseed(&format!("hpke {name}"));
            let k = HpkeKeyPair::derive(&ikm);
            HpkeKeyVector {
                name: (*name).into(),
                node: *node,
                ikm: h(ikm),
                secret: h(k.secret_bytes()),
                public: h(k.public()),
                kid: h(k.key_id()),
            }
        })
        .collect();
    let period = |name: &str, from: Timestamp, until: Timestamp| {
        let public = signing_keys
            .iter()
            .map(|k| (&k.name, &k.public))
            .chain(hpke_keys.iter().map(|k| (&k.name, &k.public)))
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.clone())
            .unwrap();
        KeyPeriodVector {
            key: name.into(),
            public,
            valid_from: from,
            valid_until: until,
        }
    };
    let members = vec![
        MemberVector {
            node: NodeId::AT,
            role: Role::National,
            signing_keys: vec![
                period("AT-1", JAN_2025, JUL_2026),
                period("AT-2", JUN_2026, JUN_2027),
            ],
            hpke_keys: vec![period("AT-h1", JAN_2025, JAN_2027)],
            addresses: vec!["/dns4/imi.at.example/tcp/4001".into()],
        },
        MemberVector {
            node: NodeId::DE,
            role: Role::National,
            signing_keys: vec![period("DE-1", JAN_2025, JAN_2027)],
            hpke_keys: vec![
                period("DE-h1", JAN_2025, JAN_2027),
                period("DE-h2", MAR_2026, JUN_2027),
            ],
            addresses: vec![
                "/dns4/imi.de.example/tcp/4001".into(),
                "/ip6/2001:db8::de/tcp/4001".into(),
            ],
        },
        MemberVector {
            node: NodeId::NL,
            role: Role::National,
            signing_keys: vec![period("NL-1", JAN_2025, JAN_2027)],
            hpke_keys: vec![period("NL-h1", JAN_2025, JAN_2027)],
            addresses: vec!["/ip4/192.0.2.31/tcp/4001".into()],
        },
        MemberVector {
            node: NodeId::EU,
            role: Role::Commission,
            signing_keys: vec![period("EU-1", JAN_2025, JAN_2027)],
            hpke_keys: vec![period("EU-h1", JAN_2025, JAN_2027)],
            addresses: vec!["/dns4/imi.ec.example/tcp/4001".into()],
        },
    ];
    let mut file = VectorFile {
        description: vec![
            "imi-protocol v1 test vectors; format documented in README.md next to this file.".into(),
            "All byte strings are lowercase hex; times are milliseconds since the Unix epoch (UTC).".into(),
            "Generated by protocol/tests/main/vectors.rs (regenerate_vectors); checked by vectors_match.".into(),
        ],
        protocol_version: PROTOCOL_VERSION,
        governance: GovernanceVector { seed: h(gov.seed()), public: h(gov.public()), kid: h(gov.key_id()) },
        signing_keys,
        hpke_keys,
        trust_list: TrustListVector { version: 3, issued: JAN_2026, members, expected: TrustListExpected::default() },
        envelopes: vec![],
        receipts: vec![],
        negative: vec![],
    };
    let ctx = Ctx::from_file(&file);
    file.trust_list.expected = expect_trust_list(&ctx);

    // Envelopes.
    let case = CaseId(vseed("case 1")[..16].try_into().unwrap());
    let other_prev = MessageId(vseed("earlier message")[..16].try_into().unwrap());
    let mut envelope =
        |name: &str, description: &str, key: &str, created: Timestamp, draft: Draft| {
            let rnd = vrnd(name, draft.to.len());
            let mut v = EnvelopeVector {
                name: name.into(),
                description: description.into(),
                signing_key: key.into(),
                created,
                draft: DraftVector {
                    kind: draft.kind.as_str().into(),
                    step: draft.step.as_ref().map(|s| s.as_str().into()),
                    authority: draft.authority.as_str().into(),
                    to: draft.to.clone(),
                    case: draft.case.map(|c| h(c.0)),
                    prev: draft.prev.iter().map(|p| h(p.0)).collect(),
                    body: h(&draft.body),
                },
                randomness: RandomnessVector::from_rnd(&rnd),
                now: created + 1_000,
                max_future_skew_ms: SKEW,
                expected: EnvelopeExpected::default(),
            };
            v.expected = expect_envelope(&v, &ctx);
            file.envelopes.push(v.clone());
            v
        };
    let env1 = envelope(
        "one_recipient",
        "AT (key AT-1) to DE, no case, no predecessors; sealed to DE-h1 (DE-h2 is not yet valid).",
        "AT-1",
        FEB_2026 + 10 * HOUR,
        Draft {
            kind: Kind::new(Kind::DIAGNOSTIC).unwrap(),
            step: None,
            authority: AuthorityId::new("AT-OPS-1").unwrap(),
            to: vec![NodeId::DE],
            case: None,
            prev: vec![],
            body: cbor_body(&[
                ("ping", text("hello from AT")),
                ("seq", Value::Integer(1.into())),
            ]),
        },
    );
    let id1 = MessageId(arr(&env1.randomness.id));
    let env2 = envelope(
        "three_recipients",
        "DE to AT, NL and EU with a case id and two predecessors; DE is not itself a recipient.",
        "DE-1",
        APR_2026 + 8 * HOUR + 30 * 60_000,
        Draft {
            kind: Kind::new(Kind::REQUEST).unwrap(),
            step: Some(Kind::new("create").unwrap()),
            authority: AuthorityId::new("DE-BY-0042").unwrap(),
            to: vec![NodeId::AT, NodeId::NL, NodeId::EU],
            case: Some(case),
            prev: vec![id1, other_prev],
            body: cbor_body(&[
                ("request", text("information")),
                (
                    "subject",
                    text("professional qualification, regulated profession 'architect'"),
                ),
                ("legal_basis", text("Directive 2005/36/EC, Art. 56")),
                (
                    "attachments",
                    Value::Array(vec![Value::Bytes(vseed("attachment").to_vec())]),
                ),
            ]),
        },
    );
    let id2 = MessageId(arr(&env2.randomness.id));
    envelope(
        "rotated_keys",
        "AT signs with its new key AT-2 during the overlap with AT-1 (June 2026); DE's newer HPKE key DE-h2 is used.",
        "AT-2",
        JUN_2026 + 14 * DAY + 12 * HOUR,
        Draft {
            kind: Kind::new(Kind::REQUEST).unwrap(),
            step: Some(Kind::new("answer").unwrap()),
            authority: AuthorityId::new("AT-W-0007").unwrap(),
            to: vec![NodeId::DE],
            case: Some(case),
            prev: vec![id2],
            body: cbor_body(&[("reply", text("see attachment")), ("ok", Value::Bool(true))]),
        },
    );
    envelope(
        "empty_body",
        "EU to NL with an empty body (zero-length plaintext).",
        "EU-1",
        MAR_2026 + 9 * HOUR,
        Draft {
            kind: Kind::new("indicator.ack").unwrap(),
            step: None,
            authority: AuthorityId::new("EU-GROW-1").unwrap(),
            to: vec![NodeId::NL],
            case: None,
            prev: vec![],
            body: vec![],
        },
    );

    // Helpers for negative vectors.
    let env1_bytes = unhex(&env1.expected.envelope);
    let env2_bytes = unhex(&env2.expected.envelope);
    let at1_seed = arr::<32>(&file.signing_keys[0].seed);
    let de1_seed = ctx.signer("DE-1").seed();
    assert_eq!(
        resign(&env1_bytes, &at1_seed, |_| {}),
        env1_bytes,
        "independent re-encoding must be identical"
    );
    let seal = |label: &str, signer: &NodeSigner, created: Timestamp, to: &[NodeId]| {
        let draft = Draft {
            kind: Kind::new(Kind::DIAGNOSTIC).unwrap(),
            step: None,
            authority: AuthorityId::new(&format!("{}-OPS-1", signer.node)).unwrap(),
            to: to.to_vec(),
            case: None,
            prev: vec![],
            body: cbor_body(&[("ping", text(label))]),
        };
        seal_and_sign(&draft, created, signer, &ctx.trust, &vrnd(label, to.len())).unwrap()
    };
    let neg_env = |name: &str,
                   description: &str,
                   bytes: &[u8],
                   me: NodeId,
                   now: Timestamp,
                   expected: &str| {
        NegativeVector {
            name: name.into(),
            description: description.into(),
            object: "envelope".into(),
            bytes: h(bytes),
            verifier: Some(me),
            now: Some(now),
            max_future_skew_ms: Some(SKEW),
            max_bytes: None,
            pad_to: None,
            expected: expected.into(),
        }
    };
    let t1 = env1.now;
    let t2 = env2.now;
    let sig_start = env1_bytes.len() - 64;
    let flipped_sig = flip(&env1_bytes, (sig_start + 10) * 8);
    let truncated = env1_bytes[..env1_bytes.len() - 10].to_vec();
    let mut neg = vec![
        neg_env(
            "envelope_flipped_signature_bit",
            "one_recipient with bit 0 of signature byte 10 flipped.",
            &flipped_sig,
            NodeId::DE,
            t1,
            "bad_signature",
        ),
        neg_env(
            "envelope_flipped_payload_bit",
            "one_recipient with the lowest bit of the last byte of the body ciphertext flipped.",
            &flip(&env1_bytes, (sig_start - 3) * 8),
            NodeId::DE,
            t1,
            "bad_signature",
        ),
        neg_env(
            "envelope_truncated",
            "one_recipient without its last 10 bytes.",
            &truncated,
            NodeId::DE,
            t1,
            "malformed",
        ),
        neg_env(
            "envelope_empty",
            "Zero bytes.",
            &[],
            NodeId::DE,
            t1,
            "malformed",
        ),
        neg_env(
            "envelope_trailing_byte",
            "one_recipient followed by one extra byte 0x00.",
            &[env1_bytes.as_slice(), &[0]].concat(),
            NodeId::DE,
            t1,
            "malformed",
        ),
        neg_env(
            "envelope_untagged",
            "one_recipient without the leading tag 18 (0xd2): untagged COSE_Sign1 is refused.",
            &env1_bytes[1..],
            NodeId::DE,
            t1,
            "malformed",
        ),
        neg_env(
            "envelope_unprotected_header",
            "one_recipient with kid copied into the unprotected header (must be empty).",
            &{
                let p = decode_cose(&env1_bytes);
                let kid = ctx.signer("AT-1").key_id().to_vec();
                encode(&Value::Tag(
                    18,
                    Box::new(Value::Array(vec![
                        Value::Bytes(p.protected),
                        Value::Map(vec![(Value::Integer(4.into()), Value::Bytes(kid))]),
                        Value::Bytes(p.payload),
                        Value::Bytes(p.signature),
                    ])),
                ))
            },
            NodeId::DE,
            t1,
            "malformed",
        ),
        neg_env(
            "envelope_wrong_content_type",
            "A validly signed receipt (receipt accepted) offered as an envelope.",
            &[],
            NodeId::DE,
            t1,
            "malformed",
        ),
        NegativeVector {
            max_bytes: Some(env1_bytes.len() - 1),
            ..neg_env(
                "envelope_oversized",
                "one_recipient checked against a limit one byte smaller than it (max_bytes).",
                &env1_bytes,
                NodeId::DE,
                t1,
                "oversized",
            )
        },
        neg_env(
            "envelope_not_recipient",
            "one_recipient verified by EU, which is not among its recipients.",
            &env1_bytes,
            NodeId::EU,
            t1,
            "not_recipient",
        ),
        neg_env(
            "envelope_sender_not_recipient",
            "three_recipients verified by its sender DE, which is not among its recipients.",
            &env2_bytes,
            NodeId::DE,
            t2,
            "not_recipient",
        ),
        neg_env(
            "envelope_from_future",
            "one_recipient verified 10 minutes before its creation time with 5 minutes allowed skew.",
            &env1_bytes,
            NodeId::DE,
            env1.created - 600_000,
            "from_future",
        ),
        neg_env(
            "envelope_key_expired",
            "AT signs with AT-1 on 2026-08-01, after AT-1's validity ended (2026-07-01).",
            &seal("key expired", ctx.signer("AT-1"), AUG_2026, &[NodeId::DE]),
            NodeId::DE,
            AUG_2026 + 1_000,
            "key_not_valid",
        ),
        neg_env(
            "envelope_key_not_yet_valid",
            "AT signs with AT-2 on 2026-02-01, before AT-2's validity starts (2026-06-01).",
            &seal(
                "key not yet valid",
                ctx.signer("AT-2"),
                FEB_2026,
                &[NodeId::DE],
            ),
            NodeId::DE,
            FEB_2026 + 1_000,
            "key_not_valid",
        ),
        neg_env(
            "envelope_unknown_sender",
            "FR, not a member of the trust list, sends to DE.",
            &seal(
                "unknown sender",
                ctx.signer("FR-1"),
                FEB_2026,
                &[NodeId::DE],
            ),
            NodeId::DE,
            FEB_2026 + 1_000,
            "unknown_sender",
        ),
        neg_env(
            "envelope_forged_sender",
            "Header says from AT but the envelope is signed with DE's key DE-1 (kid not among AT's keys).",
            &seal(
                "forged sender",
                &NodeSigner::from_seed(NodeId::AT, &de1_seed),
                FEB_2026,
                &[NodeId::NL],
            ),
            NodeId::NL,
            FEB_2026 + 1_000,
            "bad_signature",
        ),
        neg_env(
            "envelope_unsupported_version",
            "one_recipient with header v = 2, validly re-signed with AT-1.",
            &resign(&env1_bytes, &at1_seed, |p| {
                *field_mut(field_mut(p, "header"), "v") = Value::Integer(2.into());
            }),
            NodeId::DE,
            t1,
            "unsupported_version",
        ),
        neg_env(
            "envelope_bad_kind",
            "one_recipient with header kind \"Diagnostic\" (upper case is not allowed), re-signed with AT-1.",
            &resign(&env1_bytes, &at1_seed, |p| {
                *field_mut(field_mut(p, "header"), "kind") = text("Diagnostic");
            }),
            NodeId::DE,
            t1,
            "malformed",
        ),
        neg_env(
            "envelope_duplicate_recipient",
            "three_recipients with to = [AT, AT, EU] (and keys[1].node = AT), re-signed with DE-1.",
            &resign(&env2_bytes, &de1_seed, |p| {
                *field_mut(field_mut(p, "header"), "to") =
                    Value::Array(vec![text("AT"), text("AT"), text("EU")]);
                let Value::Array(ks) = field_mut(field_mut(p, "sealed"), "keys") else {
                    panic!()
                };
                *field_mut(&mut ks[1], "node") = text("AT");
            }),
            NodeId::AT,
            t2,
            "malformed",
        ),
        neg_env(
            "envelope_short_sealed_key",
            "one_recipient with sealed.keys[0].key cut to 47 bytes (must be 48), re-signed with AT-1.",
            &resign(&env1_bytes, &at1_seed, |p| {
                let Value::Array(ks) = field_mut(field_mut(p, "sealed"), "keys") else {
                    panic!()
                };
                let Value::Bytes(k) = field_mut(&mut ks[0], "key") else {
                    panic!()
                };
                k.pop();
            }),
            NodeId::DE,
            t1,
            "malformed",
        ),
        neg_env(
            "envelope_commitment_mismatch",
            "one_recipient with the first commitment byte changed, re-signed with AT-1: verifies, fails to open.",
            &resign(&env1_bytes, &at1_seed, |p| {
                let Value::Bytes(c) = field_mut(field_mut(p, "header"), "commitment") else {
                    panic!()
                };
                c[0] ^= 0x01;
            }),
            NodeId::DE,
            t1,
            "decrypt_failed",
        ),
        neg_env(
            "envelope_swapped_sealed_keys",
            "three_recipients with enc and key of AT's and NL's entries swapped, re-signed with DE-1.",
            &resign(&env2_bytes, &de1_seed, |p| {
                let Value::Array(ks) = field_mut(field_mut(p, "sealed"), "keys") else {
                    panic!()
                };
                let (a, b) = ks.split_at_mut(1);
                for f in ["enc", "key"] {
                    std::mem::swap(field_mut(&mut a[0], f), field_mut(&mut b[0], f));
                }
            }),
            NodeId::AT,
            t2,
            "decrypt_failed",
        ),
    ];

    // Receipts.
    let mut receipt = |name: &str, description: &str, key: &str, body: ReceiptBody| {
        let mut v = ReceiptVector {
            name: name.into(),
            description: description.into(),
            signing_key: key.into(),
            body: ReceiptBodyVector {
                v: body.v,
                message_id: body.message_id.map(|m| h(m.0)),
                envelope_hash: h(body.envelope_hash),
                receiver: body.receiver,
                sender: body.sender,
                received: body.received,
                outcome: body.outcome,
            },
            expected: ReceiptExpected::default(),
        };
        v.expected = expect_receipt(&v, &ctx);
        file.receipts.push(v.clone());
        v
    };
    let env1_hash: [u8; 32] = arr(&env1.expected.hash);
    let accepted = receipt(
        "accepted",
        "DE accepts one_recipient.",
        "DE-1",
        ReceiptBody {
            v: 1,
            message_id: Some(id1),
            envelope_hash: env1_hash,
            receiver: NodeId::DE,
            sender: Some(NodeId::AT),
            received: env1.created + 2_000,
            outcome: Outcome::Accepted,
        },
    );
    receipt(
        "duplicate",
        "DE receives one_recipient again a minute later.",
        "DE-1",
        ReceiptBody {
            v: 1,
            message_id: Some(id1),
            envelope_hash: env1_hash,
            receiver: NodeId::DE,
            sender: Some(NodeId::AT),
            received: env1.created + 62_000,
            outcome: Outcome::Duplicate,
        },
    );
    receipt(
        "rejected_bad_signature",
        "DE rejects envelope_flipped_signature_bit.",
        "DE-1",
        ReceiptBody {
            v: 1,
            message_id: Some(id1),
            envelope_hash: sha256(&flipped_sig),
            receiver: NodeId::DE,
            sender: Some(NodeId::AT),
            received: env1.created + 3_000,
            outcome: Outcome::Rejected(RejectCode::BadSignature),
        },
    );
    receipt(
        "rejected_malformed",
        "EU rejects envelope_truncated; message id and sender could not be decoded (null).",
        "EU-1",
        ReceiptBody {
            v: 1,
            message_id: None,
            envelope_hash: sha256(&truncated),
            receiver: NodeId::EU,
            sender: None,
            received: env1.created + 4_000,
            outcome: Outcome::Rejected(RejectCode::Malformed),
        },
    );
    receipt(
        "rejected_application",
        "NL rejects three_recipients for an application reason.",
        "NL-1",
        ReceiptBody {
            v: 1,
            message_id: Some(id2),
            envelope_hash: arr(&env2.expected.hash),
            receiver: NodeId::NL,
            sender: Some(NodeId::DE),
            received: env2.created + 5_000,
            outcome: Outcome::Rejected(RejectCode::Application("invalid_transition".into())),
        },
    );
    let accepted_bytes = unhex(&accepted.expected.signed);
    for n in neg
        .iter_mut()
        .filter(|n| n.name == "envelope_wrong_content_type")
    {
        n.bytes = h(&accepted_bytes);
    }
    let neg_other = |object: &str,
                     name: &str,
                     description: &str,
                     bytes: &[u8],
                     verifier: Option<NodeId>,
                     e: &str| {
        NegativeVector {
            name: name.into(),
            description: description.into(),
            object: object.into(),
            bytes: h(bytes),
            verifier,
            now: None,
            max_future_skew_ms: None,
            max_bytes: None,
            pad_to: None,
            expected: e.into(),
        }
    };
    let de = Some(NodeId::DE);
    let at = Some(NodeId::AT);
    let late_body = ReceiptBody {
        v: 1,
        message_id: Some(id1),
        envelope_hash: env1_hash,
        receiver: NodeId::AT,
        sender: Some(NodeId::DE),
        received: AUG_2026,
        outcome: Outcome::Accepted,
    };
    let n = accepted_bytes.len();
    neg.extend([
        neg_other(
            "receipt",
            "receipt_flipped_signature_bit",
            "receipt accepted with bit 0 of its last byte flipped.",
            &flip(&accepted_bytes, (n - 1) * 8),
            de,
            "bad_signature",
        ),
        neg_other(
            "receipt",
            "receipt_truncated",
            "receipt accepted without its last byte.",
            &accepted_bytes[..n - 1],
            de,
            "malformed",
        ),
        neg_other(
            "receipt",
            "receipt_wrong_receiver",
            "receipt accepted (signed by DE) checked as a receipt expected from AT.",
            &accepted_bytes,
            at,
            "unknown_sender",
        ),
        neg_other(
            "receipt",
            "receipt_forged_receiver",
            "A receipt claiming receiver AT, signed with DE's key DE-1.",
            &late_body.clone().sign(&NodeSigner::from_seed(NodeId::AT, &de1_seed)).unwrap(),
            at,
            "bad_signature",
        ),
        neg_other(
            "receipt",
            "receipt_key_expired",
            "A receipt by AT with received = 2026-08-01, signed with AT-1 (valid until 2026-07-01).",
            &late_body.sign(ctx.signer("AT-1")).unwrap(),
            at,
            "key_not_valid",
        ),
        neg_other(
            "receipt",
            "receipt_wrong_content_type",
            "Envelope one_recipient offered as a receipt.",
            &env1_bytes,
            de,
            "malformed",
        ),
    ]);
    let tl_bytes = unhex(&file.trust_list.expected.signed);
    let m = tl_bytes.len();
    neg.extend([
        neg_other(
            "trust_list",
            "trust_list_flipped_signature_bit",
            "The trust list with bit 7 of its last byte flipped.",
            &flip(&tl_bytes, (m - 1) * 8 + 7),
            None,
            "bad_signature",
        ),
        neg_other(
            "trust_list",
            "trust_list_not_governance",
            "The same trust list signed with AT-1 instead of the governance key.",
            &ctx.trust.sign(ctx.signer("AT-1")).unwrap(),
            None,
            "bad_signature",
        ),
        neg_other(
            "trust_list",
            "trust_list_truncated",
            "The trust list without its last 64 bytes (the signature).",
            &tl_bytes[..m - 64],
            None,
            "malformed",
        ),
        neg_other(
            "trust_list",
            "trust_list_wrong_content_type",
            "Receipt accepted offered as a trust list.",
            &accepted_bytes,
            None,
            "malformed",
        ),
    ]);
    neg.extend(limit_and_encoding_vectors(&file, &ctx));
    for v in &neg {
        let got = run_negative(v, &ctx).expect_err(&v.name);
        assert_eq!(got.label(), v.expected, "{}", v.name);
    }
    file.negative = neg;
    file
}

/// The hex of a receipt vector's expected payload (its body's deterministic CBOR).
pub(crate) fn receipt_payload(r: &ReceiptVector) -> String {
    r.expected.payload.clone()
}

pub(crate) fn load() -> VectorFile {
    let text = std::fs::read_to_string(VECTORS_PATH)
        .unwrap_or_else(|e| panic!("{VECTORS_PATH}: {e}; regenerate with IMI_REGEN_VECTORS=1"));
    serde_json::from_str(&text).unwrap()
}

#[test]
#[ignore = "writes protocol/vectors/v1.json; run with --ignored (or IMI_REGEN_VECTORS=1) to regenerate"]
fn regenerate_vectors() {
    std::fs::write(VECTORS_PATH, crate::common::vectors_json(&generate())).unwrap();
}

#[test]
fn vectors_file_is_up_to_date() {
    crate::common::check_generated(
        VECTORS_PATH,
        "v1.json",
        &crate::common::vectors_json(&generate()),
        "vectors",
    );
}

// ---------------------------------------------------------------------------------------
// Checker.

#[test]
fn vectors_match() {
    let f = load();
    assert_eq!(f.protocol_version, PROTOCOL_VERSION);
    let ctx = Ctx::from_file(&f);

    // Literal constants of the README.
    assert_eq!(CT_ENVELOPE, "application/imi-envelope+cbor; v=1");
    assert_eq!(CT_RECEIPT, "application/imi-receipt+cbor; v=1");
    assert_eq!(CT_TRUST_LIST, "application/imi-trust-list+cbor; v=1");
    assert_eq!(HPKE_INFO, b"imi/1 content key");
    assert_eq!(BODY_AAD_PREFIX, b"imi/1 body");

    // Keys.
    assert_eq!(h(ctx.governance.public()), f.governance.public);
    assert_eq!(
        f.governance.kid,
        h(&sha256(&unhex(&f.governance.public))[..8])
    );
    for k in &f.signing_keys {
        let s = ctx.signer(&k.name);
        assert_eq!(h(s.public()), k.public, "{}", k.name);
        assert_eq!(k.kid, h(&sha256(&unhex(&k.public))[..8]), "{}", k.name);
    }
    for k in &f.hpke_keys {
        let kp = HpkeKeyPair::derive(&arr(&k.ikm));
        assert_eq!(h(kp.secret_bytes()), k.secret, "{}", k.name);
        assert_eq!(h(kp.public()), k.public, "{}", k.name);
        assert_eq!(k.kid, h(&sha256(&unhex(&k.public))[..8]), "{}", k.name);
        // Independently: RFC 9180 DeriveKeyPair with the hpke crate.
        let (sk, pk) = X25519HkdfSha256::derive_keypair(&unhex(&k.ikm));
        assert_eq!(h(sk.to_bytes()), k.secret);
        assert_eq!(h(pk.to_bytes()), k.public);
    }

    // Trust list.
    assert_eq!(expect_trust_list(&ctx), f.trust_list.expected);
    let tl_bytes = unhex(&f.trust_list.expected.signed);
    assert_eq!(
        TrustList::verify(&tl_bytes, &ctx.governance.public()).unwrap(),
        ctx.trust
    );
    check_trust_list_independently(&f, &tl_bytes);
    for m in &f.trust_list.members {
        for k in &m.signing_keys {
            assert_eq!(ctx.signing_name(&arr(&k.public)), k.key);
        }
    }

    // Envelopes.
    assert!(f.envelopes.len() >= 2);
    for v in &f.envelopes {
        assert_eq!(expect_envelope(v, &ctx), v.expected, "envelope {}", v.name);
        check_envelope_independently(v, &ctx);
    }
    assert!(
        f.envelopes
            .iter()
            .any(|v| v.draft.to.len() == 3 && v.draft.case.is_some() && !v.draft.prev.is_empty())
    );

    // Receipts.
    for v in &f.receipts {
        assert_eq!(expect_receipt(v, &ctx), v.expected, "receipt {}", v.name);
        let r = Receipt::verify(unhex(&v.expected.signed), &ctx.trust, v.body.receiver).unwrap();
        assert_eq!(r.body, v.body.to_body(), "receipt {}", v.name);
        check_receipt_independently(v, &ctx);
    }
    for label in ["accepted", "duplicate", "rejected"] {
        assert!(f.receipts.iter().any(|r| r.body.outcome.label() == label));
    }

    // Negative vectors.
    for v in &f.negative {
        match run_negative(v, &ctx) {
            Ok(()) => panic!("negative vector {} was accepted", v.name),
            Err(code) => assert_eq!(code.label(), v.expected, "negative vector {}", v.name),
        }
    }
    for label in [
        "bad_signature",
        "malformed",
        "not_recipient",
        "key_not_valid",
        "unknown_sender",
        "oversized",
    ] {
        assert!(
            f.negative.iter().any(|v| v.expected == label),
            "no negative vector for {label}"
        );
    }
}

fn check_protected(parts_protected: &[u8], ct: &str, public: &[u8; 32]) {
    let kid = &sha256(public)[..8];
    assert_eq!(parts_protected, protected_header(ct, kid).as_slice());
    // a3 01 27 03 78 <len> <ct> 04 48 <kid>
    let mut expect = vec![
        0xa3,
        0x01,
        0x27,
        0x03,
        0x78,
        u8::try_from(ct.len()).unwrap(),
    ];
    expect.extend_from_slice(ct.as_bytes());
    expect.extend_from_slice(&[0x04, 0x48]);
    expect.extend_from_slice(kid);
    assert_eq!(parts_protected, expect.as_slice());
}

fn uint(v: &Value) -> u64 {
    u64::try_from(v.as_integer().expect("integer")).unwrap()
}

fn check_trust_list_independently(f: &VectorFile, bytes: &[u8]) {
    let gov: [u8; 32] = arr(&f.governance.public);
    let parts = verify_raw(bytes, &gov);
    assert!(parts.unprotected.is_empty());
    check_protected(
        &parts.protected,
        "application/imi-trust-list+cbor; v=1",
        &gov,
    );
    let p = decode(&parts.payload);
    assert_eq!(keys(&p), ["version", "issued", "members"]);
    assert_eq!(uint(field(&p, "version")), f.trust_list.version);
    assert_eq!(uint(field(&p, "issued")), f.trust_list.issued);
    let Value::Array(members) = field(&p, "members") else {
        panic!()
    };
    assert_eq!(members.len(), f.trust_list.members.len());
    for (m, mv) in members.iter().zip(&f.trust_list.members) {
        assert_eq!(
            keys(m),
            ["node", "role", "signing_keys", "hpke_keys", "addresses"]
        );
        assert_eq!(field(m, "node").as_text(), Some(mv.node.as_str()));
        let role = match mv.role {
            Role::National => "national",
            Role::Commission => "commission",
        };
        assert_eq!(field(m, "role").as_text(), Some(role));
        for (list, expect) in [
            ("signing_keys", &mv.signing_keys),
            ("hpke_keys", &mv.hpke_keys),
        ] {
            let Value::Array(ks) = field(m, list) else {
                panic!()
            };
            assert_eq!(ks.len(), expect.len());
            for (k, e) in ks.iter().zip(expect) {
                assert_eq!(keys(k), ["public", "valid_from", "valid_until"]);
                assert_eq!(h(bytes_of(field(k, "public"))), e.public);
                assert_eq!(uint(field(k, "valid_from")), e.valid_from);
                assert_eq!(uint(field(k, "valid_until")), e.valid_until);
            }
        }
        let Value::Array(addrs) = field(m, "addresses") else {
            panic!()
        };
        let addrs: Vec<&str> = addrs.iter().map(|a| a.as_text().unwrap()).collect();
        assert_eq!(addrs, mv.addresses);
    }
}

/// Decodes, verifies and decrypts an expected envelope following the README only.
fn check_envelope_independently(v: &EnvelopeVector, ctx: &Ctx) {
    let e = &v.expected;
    let bytes = unhex(&e.envelope);
    assert_eq!(h(sha256(&bytes)), e.hash);
    let public = ctx.signer(&v.signing_key).public();
    let parts = verify_raw(&bytes, &public);
    assert!(parts.unprotected.is_empty());
    assert_eq!(h(&parts.protected), e.protected);
    assert_eq!(h(&parts.payload), e.payload);
    check_protected(
        &parts.protected,
        "application/imi-envelope+cbor; v=1",
        &public,
    );
    assert_eq!(
        sig_structure(&parts.protected, &parts.payload)[..12],
        [
            0x84, 0x6a, b'S', b'i', b'g', b'n', b'a', b't', b'u', b'r', b'e', b'1'
        ]
    );
    assert_eq!(
        encode_cose(&parts.protected, &parts.payload, &parts.signature),
        bytes
    );

    let p = decode(&parts.payload);
    assert_eq!(keys(&p), ["header", "sealed"]);
    let hd = field(&p, "header");
    assert_eq!(
        keys(hd),
        [
            "v",
            "id",
            "kind",
            "step",
            "from",
            "authority",
            "to",
            "case",
            "prev",
            "created",
            "commitment"
        ]
    );
    assert_eq!(uint(field(hd, "v")), 1);
    let id = bytes_of(field(hd, "id"));
    assert_eq!(h(&id), v.randomness.id);
    assert_eq!(field(hd, "kind").as_text(), Some(v.draft.kind.as_str()));
    assert_eq!(
        field(hd, "from").as_text(),
        Some(ctx.signer(&v.signing_key).node.as_str())
    );
    assert_eq!(
        field(hd, "authority").as_text(),
        Some(v.draft.authority.as_str())
    );
    let Value::Array(to) = field(hd, "to") else {
        panic!()
    };
    let to: Vec<&str> = to.iter().map(|n| n.as_text().unwrap()).collect();
    assert_eq!(
        to,
        v.draft.to.iter().map(NodeId::as_str).collect::<Vec<_>>()
    );
    match (&v.draft.case, field(hd, "case")) {
        (None, Value::Null) => {}
        (Some(c), Value::Bytes(b)) => assert_eq!(&h(b), c),
        other => panic!("case: {other:?}"),
    }
    let Value::Array(prev) = field(hd, "prev") else {
        panic!()
    };
    assert_eq!(
        prev.iter().map(|b| h(bytes_of(b))).collect::<Vec<_>>(),
        v.draft.prev
    );
    assert_eq!(uint(field(hd, "created")), v.created);
    let commitment = bytes_of(field(hd, "commitment"));
    let salt = unhex(&v.randomness.salt);
    let body = unhex(&v.draft.body);
    assert_eq!(commitment, sha256(&[salt.as_slice(), &body].concat()));
    assert_eq!(h(&commitment), e.commitment);

    let sealed = field(&p, "sealed");
    assert_eq!(keys(sealed), ["keys", "nonce", "ct"]);
    let nonce = bytes_of(field(sealed, "nonce"));
    assert_eq!(h(&nonce), v.randomness.nonce);
    let Value::Array(rks) = field(sealed, "keys") else {
        panic!()
    };
    assert_eq!(rks.len(), v.draft.to.len());
    let content_key = unhex(&v.randomness.content_key);
    for ((rk, exp), eph) in rks.iter().zip(&e.recipients).zip(&v.randomness.ephemeral) {
        assert_eq!(keys(rk), ["node", "kid", "enc", "key"]);
        let node = field(rk, "node").as_text().unwrap();
        assert_eq!(node, exp.node.as_str());
        let kid = bytes_of(field(rk, "kid"));
        assert_eq!(h(&kid), exp.kid);
        let (_, hk) = ctx
            .hpke
            .iter()
            .map(|(n, _, k)| (n, k))
            .find(|(n, _)| **n == exp.hpke_key)
            .unwrap();
        assert_eq!(kid, sha256(&hk.public())[..8]);
        // The HPKE key sealed to is the recipient's newest key valid at `created`.
        assert_eq!(
            ctx.trust.hpke_key(exp.node, v.created).unwrap().public,
            hk.public()
        );
        let enc = bytes_of(field(rk, "enc"));
        assert_eq!(h(&enc), exp.enc);
        let (_, eph_pk) = X25519HkdfSha256::derive_keypair(&unhex(eph));
        assert_eq!(
            enc,
            eph_pk.to_bytes().to_vec(),
            "enc = DeriveKeyPair(ephemeral).pk"
        );
        let sealed_key = bytes_of(field(rk, "key"));
        assert_eq!(sealed_key.len(), 48);
        assert_eq!(h(&sealed_key), exp.key);
        let sk =
            <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&hk.secret_bytes()).unwrap();
        let encapped = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
        let aad = [id.as_slice(), node.as_bytes()].concat();
        let opened = hpke::single_shot_open::<
            hpke::aead::ChaCha20Poly1305,
            hpke::kdf::HkdfSha256,
            X25519HkdfSha256,
        >(
            &hpke::OpModeR::Base,
            &sk,
            &encapped,
            b"imi/1 content key",
            &sealed_key,
            &aad,
        )
        .unwrap();
        assert_eq!(opened, content_key);
    }
    let aead = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&content_key).unwrap();
    let ct = bytes_of(field(sealed, "ct"));
    let aad = [b"imi/1 body".as_slice(), &id].concat();
    let inner = aead
        .decrypt(
            nonce.as_slice().into(),
            Payload {
                msg: &ct,
                aad: &aad,
            },
        )
        .unwrap();
    assert_eq!(h(&inner), e.inner_plaintext);
    let inner = decode(&inner);
    assert_eq!(keys(&inner), ["salt", "body"]);
    assert_eq!(h(bytes_of(field(&inner, "salt"))), e.opened.salt);
    assert_eq!(h(bytes_of(field(&inner, "body"))), e.opened.body);
    assert_eq!(e.opened.body, v.draft.body);
    assert_eq!(e.opened.salt, v.randomness.salt);
}

fn check_receipt_independently(v: &ReceiptVector, ctx: &Ctx) {
    let bytes = unhex(&v.expected.signed);
    let public = ctx.signer(&v.signing_key).public();
    let parts = verify_raw(&bytes, &public);
    assert!(parts.unprotected.is_empty());
    assert_eq!(h(&parts.protected), v.expected.protected);
    assert_eq!(h(&parts.payload), v.expected.payload);
    check_protected(
        &parts.protected,
        "application/imi-receipt+cbor; v=1",
        &public,
    );
    let p = decode(&parts.payload);
    assert_eq!(
        keys(&p),
        [
            "v",
            "message_id",
            "envelope_hash",
            "receiver",
            "sender",
            "received",
            "outcome"
        ]
    );
    assert_eq!(uint(field(&p, "v")), 1);
    match (&v.body.message_id, field(&p, "message_id")) {
        (None, Value::Null) => {}
        (Some(m), Value::Bytes(b)) => assert_eq!(&h(b), m),
        other => panic!("message_id: {other:?}"),
    }
    assert_eq!(
        h(bytes_of(field(&p, "envelope_hash"))),
        v.body.envelope_hash
    );
    assert_eq!(
        field(&p, "receiver").as_text(),
        Some(v.body.receiver.as_str())
    );
    match (&v.body.sender, field(&p, "sender")) {
        (None, Value::Null) => {}
        (Some(s), Value::Text(t)) => assert_eq!(t, s.as_str()),
        other => panic!("sender: {other:?}"),
    }
    assert_eq!(uint(field(&p, "received")), v.body.received);
    let outcome = field(&p, "outcome");
    match &v.body.outcome {
        Outcome::Accepted => assert_eq!(outcome.as_text(), Some("accepted")),
        Outcome::Duplicate => assert_eq!(outcome.as_text(), Some("duplicate")),
        Outcome::Rejected(RejectCode::Application(code)) => {
            assert_eq!(keys(outcome), ["rejected"]);
            let inner = field(outcome, "rejected");
            assert_eq!(keys(inner), ["application"]);
            assert_eq!(field(inner, "application").as_text(), Some(code.as_str()));
        }
        Outcome::Rejected(code) => {
            assert_eq!(keys(outcome), ["rejected"]);
            assert_eq!(field(outcome, "rejected").as_text(), Some(code.label()));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Negative vectors for every limit, every deviation from the one encoding, and strict
// ed25519. They are built by editing the bytes (or the decoded CBOR) of the positive vectors
// generically, never by building typed structs, so they survive additions to the format.

/// Replaces the one occurrence of `what` in `bytes` with `with`.
fn splice(bytes: &[u8], what: &[u8], with: &[u8]) -> Vec<u8> {
    let at: Vec<usize> = (0..=bytes.len() - what.len())
        .filter(|i| bytes[*i..].starts_with(what))
        .collect();
    assert_eq!(at.len(), 1, "splice: {} matches", at.len());
    [&bytes[..at[0]], with, &bytes[at[0] + what.len()..]].concat()
}

/// The first sealed recipient key entry of an envelope payload.
fn first_key(p: &mut Value) -> &mut Value {
    let Value::Array(ks) = field_mut(field_mut(p, "sealed"), "keys") else {
        panic!("keys")
    };
    &mut ks[0]
}

fn resize_bytes(v: &mut Value, len: usize) {
    let Value::Bytes(b) = v else {
        panic!("not bytes")
    };
    b.resize(len, 0xab);
}

fn limit_and_encoding_vectors(file: &VectorFile, ctx: &Ctx) -> Vec<NegativeVector> {
    let env = |name: &str| file.envelopes.iter().find(|e| e.name == name).unwrap();
    let (env1, env2) = (env("one_recipient"), env("three_recipients"));
    let env1_bytes = unhex(&env1.expected.envelope);
    let env2_bytes = unhex(&env2.expected.envelope);
    let at1 = ctx.signer("AT-1").seed();
    let de1 = ctx.signer("DE-1").seed();
    let gov = ctx.governance.seed();
    let (t1, t2) = (env1.now, env2.now);
    let accepted = unhex(
        &file
            .receipts
            .iter()
            .find(|r| r.name == "accepted")
            .unwrap()
            .expected
            .signed,
    );
    let tl_bytes = unhex(&file.trust_list.expected.signed);

    let base =
        |object: &str, name: &str, description: &str, bytes: &[u8], e: &str| NegativeVector {
            name: name.into(),
            description: description.into(),
            object: object.into(),
            bytes: h(bytes),
            verifier: None,
            now: None,
            max_future_skew_ms: None,
            max_bytes: None,
            pad_to: None,
            expected: e.into(),
        };
    // Envelope negatives derived from one_recipient (DE verifies at its `now`) or
    // three_recipients (AT verifies).
    let e1 = |name: &str, description: &str, bytes: &[u8], e: &str| NegativeVector {
        verifier: Some(NodeId::DE),
        now: Some(t1),
        max_future_skew_ms: Some(SKEW),
        ..base("envelope", name, description, bytes, e)
    };
    let e2 = |name: &str, description: &str, bytes: &[u8], e: &str| NegativeVector {
        verifier: Some(NodeId::AT),
        now: Some(t2),
        max_future_skew_ms: Some(SKEW),
        ..base("envelope", name, description, bytes, e)
    };
    let rc = |name: &str, description: &str, bytes: &[u8], e: &str| NegativeVector {
        verifier: Some(NodeId::DE),
        ..base("receipt", name, description, bytes, e)
    };
    let tl = |name: &str, description: &str, bytes: &[u8], e: &str| {
        base("trust_list", name, description, bytes, e)
    };
    let edit1 = |f: &dyn Fn(&mut Value)| resign(&env1_bytes, &at1, f);
    let form1 =
        |path: &[&str], form: Form| resign_with(&env1_bytes, &at1, |p| encode_with(&p, path, form));
    let set1 = |path: &[&str], v: Value| {
        edit1(&|p| {
            let mut m = &mut *p;
            for k in path {
                m = field_mut(m, k);
            }
            *m = v.clone();
        })
    };
    let parts1 = decode_cose(&env1_bytes);
    let kid_at1 = ctx.signer("AT-1").key_id();
    // The protected header up to (not including) the kid's head `48`.
    let prot = &parts1.protected;
    let prot_prefix = &prot[..prot.len() - 9];
    assert_eq!(prot[prot.len() - 9], 0x48);
    let ct_text = encode(&text(CT_ENVELOPE));
    let sign1 = |protected: &[u8]| sign_parts(protected, &parts1.payload, &at1);
    let bstr = |b: &[u8]| encode(&Value::Bytes(b.to_vec()));
    let sig1 = &parts1.signature;

    let mut v = vec![
        // --- COSE structure and protected header. ---
        e1(
            "envelope_signature_63_bytes",
            "one_recipient with its signature cut to 63 bytes (the byte string is 58 3f ...).",
            &encode_cose(prot, &parts1.payload, &sig1[..63]),
            "malformed",
        ),
        e1(
            "envelope_signature_65_bytes",
            "one_recipient with a byte 0x00 appended to its signature (65 bytes).",
            &encode_cose(prot, &parts1.payload, &[sig1.as_slice(), &[0]].concat()),
            "malformed",
        ),
        e1(
            "envelope_signature_empty",
            "one_recipient with an empty signature byte string (40).",
            &encode_cose(prot, &parts1.payload, &[]),
            "malformed",
        ),
        e1(
            "envelope_kid_7_bytes",
            "one_recipient with the protected kid cut to its first 7 bytes (47 ...), validly re-signed with AT-1.",
            &sign1(&[prot_prefix, &[0x47], &kid_at1[..7]].concat()),
            "malformed",
        ),
        e1(
            "envelope_kid_9_bytes",
            "one_recipient with a byte 0x00 appended to the protected kid (49 ...), validly re-signed with AT-1.",
            &sign1(&[prot_prefix, &[0x49], &kid_at1, &[0]].concat()),
            "malformed",
        ),
        e1(
            "envelope_protected_unknown_label",
            "one_recipient with an extra protected-header label 99 = 0 after the kid (a4 ... 18 63 00), validly re-signed with AT-1.",
            &sign1(&[&[0xa4], &prot[1..], &[0x18, 0x63, 0x00]].concat()),
            "malformed",
        ),
        e1(
            "envelope_protected_duplicate_label",
            "one_recipient with the alg label repeated (a4 01 27 01 27 03 ...), validly re-signed with AT-1.",
            &sign1(&[&[0xa4, 0x01, 0x27], &prot[1..]].concat()),
            "malformed",
        ),
        e1(
            "envelope_protected_reordered",
            "one_recipient with the protected header as {1: -8, 4: kid, 3: content type} (another key order), validly re-signed with AT-1.",
            &sign1(
                &[
                    &[0xa3, 0x01, 0x27, 0x04, 0x48],
                    kid_at1.as_slice(),
                    &[0x03],
                    &ct_text,
                ]
                .concat(),
            ),
            "malformed",
        ),
        e1(
            "envelope_protected_long_length",
            "one_recipient with the content type's length in a 2-byte argument (79 00 22 instead of 78 22), validly re-signed with AT-1.",
            &sign1(
                &[
                    &[0xa3, 0x01, 0x27, 0x03, 0x79, 0x00],
                    &ct_text[1..],
                    &[0x04, 0x48],
                    &kid_at1,
                ]
                .concat(),
            ),
            "malformed",
        ),
        e1(
            "envelope_protected_alg_es256",
            "one_recipient with alg -7 (ES256, 26) instead of -8 (EdDSA), validly re-signed with AT-1.",
            &sign1(&[&[0xa3, 0x01, 0x26], &prot[3..]].concat()),
            "malformed",
        ),
        e1(
            "envelope_cose_tag_long",
            "one_recipient with tag 18 written d8 12 instead of d2 (the signature still verifies: it does not cover the tag).",
            &[&[0xd8, 0x12], &env1_bytes[1..]].concat(),
            "malformed",
        ),
        e1(
            "envelope_cose_indefinite_array",
            "one_recipient with the COSE array written indefinite (9f ... ff) instead of 84; the signature still verifies.",
            &[&[0xd2, 0x9f], &env1_bytes[2..], &[0xff]].concat(),
            "malformed",
        ),
        e1(
            "envelope_cose_unprotected_indefinite",
            "one_recipient with the empty unprotected map written bf ff instead of a0; the signature still verifies.",
            &[
                &[0xd2, 0x84][..],
                &bstr(prot),
                &[0xbf, 0xff],
                &bstr(&parts1.payload),
                &bstr(sig1),
            ]
            .concat(),
            "malformed",
        ),
        e1(
            "envelope_cose_payload_long_length",
            "one_recipient with the payload byte string's length in a 4-byte argument (5a 00 00 ..) instead of 2 bytes (59 ..); the signature still verifies.",
            &{
                let len = u32::try_from(parts1.payload.len()).unwrap();
                assert!(len > 0xff && len <= 0xffff);
                [
                    &[0xd2, 0x84][..],
                    &bstr(prot),
                    &[0xa0, 0x5a],
                    &len.to_be_bytes(),
                    &parts1.payload,
                    &bstr(sig1),
                ]
                .concat()
            },
            "malformed",
        ),
        // --- Payload: the one encoding (validly re-signed, so only the encoding is wrong). ---
        e1(
            "envelope_uint_long_form",
            "one_recipient with header v = 1 written as the 8-byte integer 1b 00 00 00 00 00 00 00 01, re-signed with AT-1.",
            &form1(&["header", "v"], Form::Long),
            "malformed",
        ),
        e1(
            "envelope_text_length_long_form",
            "one_recipient with the length of header kind written 7b 00 00 00 00 00 00 00 0a, re-signed with AT-1.",
            &form1(&["header", "kind"], Form::Long),
            "malformed",
        ),
        e1(
            "envelope_indefinite_map",
            "one_recipient with the header map written indefinite (bf ... ff), re-signed with AT-1.",
            &form1(&["header"], Form::Indefinite),
            "malformed",
        ),
        e1(
            "envelope_indefinite_array",
            "one_recipient with header to written as the indefinite array 9f 62 44 45 ff, re-signed with AT-1.",
            &form1(&["header", "to"], Form::Indefinite),
            "malformed",
        ),
        e1(
            "envelope_indefinite_bytes",
            "one_recipient with sealed ct written as an indefinite byte string (5f, one-byte chunks, ff), re-signed with AT-1.",
            &form1(&["sealed", "ct"], Form::Indefinite),
            "malformed",
        ),
        e1(
            "envelope_header_keys_reordered",
            "one_recipient with the header keys v and id swapped (id first), re-signed with AT-1.",
            &edit1(&|p| entries(p, "header").swap(0, 1)),
            "malformed",
        ),
        e1(
            "envelope_header_keys_core_deterministic",
            "one_recipient with the header keys sorted as RFC 8949 §4.2.1 core deterministic encoding sorts them (bytewise by encoded key: v, id, to, case, from, kind, prev, created, authority, commitment), re-signed with AT-1.",
            &edit1(&|p| entries(p, "header").sort_by_key(|(k, _)| encode(k))),
            "malformed",
        ),
        e1(
            "envelope_header_unknown_key",
            "one_recipient with an extra header key \"x\": 0 after commitment, re-signed with AT-1.",
            &edit1(&|p| entries(p, "header").push((text("x"), Value::Integer(0.into())))),
            "malformed",
        ),
        e1(
            "envelope_payload_unknown_key",
            "one_recipient with an extra top-level payload key \"x\": null after sealed, re-signed with AT-1.",
            &edit1(&|p| entries(p, "").push((text("x"), Value::Null))),
            "malformed",
        ),
        e1(
            "envelope_header_duplicate_key",
            "one_recipient with the header entry \"v\": 1 repeated after commitment (11 entries), re-signed with AT-1.",
            &edit1(&|p| {
                let e = entries(p, "header");
                let first = e[0].clone();
                e.push(first);
            }),
            "malformed",
        ),
        e1(
            "envelope_tagged_created",
            "one_recipient with header created wrapped in tag 1 (c1 1b ...), re-signed with AT-1.",
            &edit1(&|p| {
                let c = field_mut(field_mut(p, "header"), "created");
                *c = Value::Tag(1, Box::new(c.clone()));
            }),
            "malformed",
        ),
        e1(
            "envelope_version_over_uint16",
            "one_recipient with header v = 65536 (v is a uint16: larger is malformed, not unsupported_version), re-signed with AT-1.",
            &set1(&["header", "v"], Value::Integer(65_536.into())),
            "malformed",
        ),
        // --- Depth. ---
        e1(
            "envelope_depth_17",
            "one_recipient with an extra header key \"x\" whose value is 15 nested arrays around 0: 17 nested containers counting the payload map and the header map (limit 16), re-signed with AT-1.",
            &{
                let mut deep = Value::Integer(0.into());
                for _ in 0..15 {
                    deep = Value::Array(vec![deep]);
                }
                edit1(&|p| entries(p, "header").push((text("x"), deep.clone())))
            },
            "malformed",
        ),
        e1(
            "envelope_depth_10000",
            "one_recipient with an extra header key \"x\" whose value is 10,000 nested one-element arrays (81 81 ... 00): must be refused without exhausting the stack, re-signed with AT-1.",
            &{
                let marker = b"depth marker 10000";
                let payload = encode(&{
                    let mut p = decode(&parts1.payload);
                    entries(&mut p, "header").push((text("x"), Value::Bytes(marker.to_vec())));
                    p
                });
                let deep = [vec![0x81; 10_000], vec![0x00]].concat();
                sign_parts(prot, &splice(&payload, &bstr(marker), &deep), &at1)
            },
            "malformed",
        ),
        // --- Field lengths and syntax. ---
        e1(
            "envelope_sealed_kid_7_bytes",
            "one_recipient with sealed.keys[0].kid cut to 7 bytes, re-signed with AT-1.",
            &edit1(&|p| resize_bytes(field_mut(first_key(p), "kid"), 7)),
            "malformed",
        ),
        e1(
            "envelope_sealed_kid_9_bytes",
            "one_recipient with a byte appended to sealed.keys[0].kid (9 bytes), re-signed with AT-1.",
            &edit1(&|p| resize_bytes(field_mut(first_key(p), "kid"), 9)),
            "malformed",
        ),
        e1(
            "envelope_enc_31_bytes",
            "one_recipient with sealed.keys[0].enc cut to 31 bytes, re-signed with AT-1.",
            &edit1(&|p| resize_bytes(field_mut(first_key(p), "enc"), 31)),
            "malformed",
        ),
        e1(
            "envelope_enc_33_bytes",
            "one_recipient with a byte appended to sealed.keys[0].enc (33 bytes), re-signed with AT-1.",
            &edit1(&|p| resize_bytes(field_mut(first_key(p), "enc"), 33)),
            "malformed",
        ),
        e1(
            "envelope_long_sealed_key",
            "one_recipient with a byte appended to sealed.keys[0].key (49 bytes), re-signed with AT-1.",
            &edit1(&|p| resize_bytes(field_mut(first_key(p), "key"), 49)),
            "malformed",
        ),
        e1(
            "envelope_nonce_11_bytes",
            "one_recipient with sealed.nonce cut to 11 bytes, re-signed with AT-1.",
            &edit1(&|p| resize_bytes(field_mut(field_mut(p, "sealed"), "nonce"), 11)),
            "malformed",
        ),
        e1(
            "envelope_id_15_bytes",
            "one_recipient with header id cut to 15 bytes, re-signed with AT-1.",
            &edit1(&|p| resize_bytes(field_mut(field_mut(p, "header"), "id"), 15)),
            "malformed",
        ),
        e1(
            "envelope_commitment_31_bytes",
            "one_recipient with header commitment cut to 31 bytes, re-signed with AT-1.",
            &edit1(&|p| resize_bytes(field_mut(field_mut(p, "header"), "commitment"), 31)),
            "malformed",
        ),
        e2(
            "envelope_case_15_bytes",
            "three_recipients with header case cut to 15 bytes, re-signed with DE-1.",
            &resign(&env2_bytes, &de1, |p| {
                resize_bytes(field_mut(field_mut(p, "header"), "case"), 15);
            }),
            "malformed",
        ),
        e1(
            "envelope_from_unknown_node",
            "one_recipient with header from = \"FR\" (a valid node id, not on the trust list), re-signed with AT-1.",
            &set1(&["header", "from"], text("FR")),
            "unknown_sender",
        ),
        e1(
            "envelope_from_invalid_node_id",
            "one_recipient with header from = \"GR\" (not a node id: Greece is EL), re-signed with AT-1.",
            &set1(&["header", "from"], text("GR")),
            "malformed",
        ),
        e1(
            "envelope_from_lowercase_node_id",
            "one_recipient with header from = \"at\" (node ids are upper case), re-signed with AT-1.",
            &set1(&["header", "from"], text("at")),
            "malformed",
        ),
        e1(
            "envelope_to_invalid_node_id",
            "one_recipient with header to = [\"XX\"] and sealed.keys[0].node = \"XX\", re-signed with AT-1.",
            &edit1(&|p| {
                *field_mut(field_mut(p, "header"), "to") = Value::Array(vec![text("XX")]);
                *field_mut(first_key(p), "node") = text("XX");
            }),
            "malformed",
        ),
        e1(
            "envelope_kind_65_chars",
            "one_recipient with header kind of 65 characters \"a\" (limit 64), re-signed with AT-1.",
            &set1(&["header", "kind"], text(&"a".repeat(65))),
            "malformed",
        ),
        e1(
            "envelope_kind_empty",
            "one_recipient with header kind \"\", re-signed with AT-1.",
            &set1(&["header", "kind"], text("")),
            "malformed",
        ),
        e1(
            "envelope_authority_65_chars",
            "one_recipient with header authority of 65 characters \"A\" (limit 64), re-signed with AT-1.",
            &set1(&["header", "authority"], text(&"A".repeat(65))),
            "malformed",
        ),
        e1(
            "envelope_authority_bad_char",
            "one_recipient with header authority \"AT OPS\" (a space), re-signed with AT-1.",
            &set1(&["header", "authority"], text("AT OPS")),
            "malformed",
        ),
        e1(
            "envelope_prev_65",
            "one_recipient with 65 distinct 16-byte predecessors in header prev (limit 64), re-signed with AT-1.",
            &set1(&["header", "prev"], prev_list(65)),
            "malformed",
        ),
        e1(
            "envelope_to_empty",
            "one_recipient with header to = [] and sealed keys = [], re-signed with AT-1.",
            &edit1(&|p| {
                *field_mut(field_mut(p, "header"), "to") = Value::Array(vec![]);
                *field_mut(field_mut(p, "sealed"), "keys") = Value::Array(vec![]);
            }),
            "malformed",
        ),
        e1(
            "envelope_to_32",
            "one_recipient with 32 recipients in header to (all 31 node ids, then DE again) and 32 sealed keys (copies of keys[0] with node set), re-signed with AT-1. There are only 31 node ids, so 32 recipients always repeat one.",
            &edit1(&|p| {
                let mut to: Vec<NodeId> = NodeId::ALL.to_vec();
                to.push(NodeId::DE);
                assert_eq!(to.len(), 32);
                let k0 = first_key(p).clone();
                let ks = to
                    .iter()
                    .map(|n| {
                        let mut k = k0.clone();
                        *field_mut(&mut k, "node") = text(n.as_str());
                        k
                    })
                    .collect();
                *field_mut(field_mut(p, "header"), "to") =
                    Value::Array(to.iter().map(|n| text(n.as_str())).collect());
                *field_mut(field_mut(p, "sealed"), "keys") = Value::Array(ks);
            }),
            "malformed",
        ),
        e1(
            "envelope_keys_not_in_to_order",
            "three_recipients-style mismatch on one_recipient: sealed.keys[0].node = \"NL\" while to = [\"DE\"], re-signed with AT-1.",
            &edit1(&|p| *field_mut(first_key(p), "node") = text("NL")),
            "malformed",
        ),
        e1(
            "envelope_inner_not_canonical",
            "one_recipient whose AEAD plaintext is {\"body\", \"salt\"} (keys in the other order), re-encrypted with its content key and nonce, re-signed with AT-1: the signature verifies, opening fails.",
            &{
                let key = arr::<32>(&env1.randomness.content_key);
                let nonce = arr::<12>(&env1.randomness.nonce);
                let aad = [BODY_AAD_PREFIX, &unhex(&env1.randomness.id)].concat();
                let mut inner = decode(&unhex(&env1.expected.inner_plaintext));
                entries(&mut inner, "").swap(0, 1);
                let ct = chacha20poly1305::ChaCha20Poly1305::new((&key).into())
                    .encrypt(
                        (&nonce).into(),
                        Payload {
                            msg: &encode(&inner),
                            aad: &aad,
                        },
                    )
                    .unwrap();
                edit1(&|p| *field_mut(field_mut(p, "sealed"), "ct") = Value::Bytes(ct.clone()))
            },
            "decrypt_failed",
        ),
        // --- Time. ---
        e1(
            "envelope_key_retired_beyond_grace",
            "one_recipient (signed with AT-1 in its validity) received 30 days and 1 ms after AT-1's valid_until (2026-07-01): past the grace period.",
            &env1_bytes,
            "key_not_valid",
        ),
        // --- Strict ed25519. ---
        e1(
            "envelope_signature_s_plus_l",
            "one_recipient with L added to the signature's S (same value mod L, S >= L).",
            &encode_cose(prot, &parts1.payload, &signature_s_plus_l(sig1)),
            "bad_signature",
        ),
        e1(
            "envelope_signature_r_small_order",
            "one_recipient signed with R = 01 00 .. 00 (the identity, small order) and S = k*a mod L: [S]B = R + [k]A holds (a lax verifier accepts), strict verification refuses R.",
            &encode_cose(
                prot,
                &parts1.payload,
                &forged_r(&at1, &[1], prot, &parts1.payload),
            ),
            "bad_signature",
        ),
        e1(
            "envelope_signature_r_non_canonical",
            "one_recipient signed with R = ee ff .. ff 7f (y = p + 1, a non-canonical encoding of the identity) and S = k*a mod L over these R bytes.",
            &encode_cose(
                prot,
                &parts1.payload,
                &forged_r(&at1, &NONCANONICAL_IDENTITY, prot, &parts1.payload),
            ),
            "bad_signature",
        ),
        e1(
            "envelope_signature_r_non_canonical_large_order",
            "one_recipient with R = f0 ff .. ff 7f (y = p + 3: a non-canonical encoding of a point on the curve of large order) and S = k*a mod L.",
            &encode_cose(
                prot,
                &parts1.payload,
                &forged_r(&at1, &NONCANONICAL_LARGE_ORDER, prot, &parts1.payload),
            ),
            "bad_signature",
        ),
    ];
    for n in v.iter_mut() {
        if n.name == "envelope_key_retired_beyond_grace" {
            n.now = Some(JUL_2026 + imi_protocol::KEY_EXPIRY_GRACE_MS + 1);
        }
    }

    // --- Receipts. ---
    let de_receipt = |f: &dyn Fn(&mut Value)| resign(&accepted, &de1, f);
    let big_outcome = |n: usize| {
        Value::Map(vec![(
            text("rejected"),
            Value::Map(vec![(text("application"), text(&"x".repeat(n)))]),
        )])
    };
    let sized = |n: usize| de_receipt(&|p| *field_mut(p, "outcome") = big_outcome(n));
    let at_limit = sized(4096 - (sized(1000).len() - 1000));
    assert_eq!(at_limit.len(), imi_protocol::MAX_RECEIPT_BYTES);
    Receipt::verify(at_limit.clone(), &ctx.trust, NodeId::DE).expect("a receipt of 4096 bytes");
    let over = sized(4097 - (sized(1000).len() - 1000));
    assert_eq!(over.len(), 4097);
    v.extend([
        rc(
            "receipt_oversized",
            "A receipt by DE, validly signed with DE-1, of 4097 bytes (limit 4096): outcome rejected with a long application text.",
            &over,
            "oversized",
        ),
        rc(
            "receipt_unsupported_version",
            "receipt accepted with v = 2, re-signed with DE-1.",
            &de_receipt(&|p| *field_mut(p, "v") = Value::Integer(2.into())),
            "unsupported_version",
        ),
        rc(
            "receipt_uint_long_form",
            "receipt accepted with v = 1 written 1b 00 00 00 00 00 00 00 01, re-signed with DE-1.",
            &resign_with(&accepted, &de1, |p| encode_with(&p, &["v"], Form::Long)),
            "malformed",
        ),
        rc(
            "receipt_unknown_key",
            "receipt accepted with an extra key \"x\": 0 at the end, re-signed with DE-1.",
            &de_receipt(&|p| entries(p, "").push((text("x"), Value::Integer(0.into())))),
            "malformed",
        ),
        rc(
            "receipt_unknown_reject_code",
            "receipt accepted with outcome {\"rejected\": \"no_such_code\"}, re-signed with DE-1.",
            &de_receipt(&|p| {
                *field_mut(p, "outcome") =
                    Value::Map(vec![(text("rejected"), text("no_such_code"))]);
            }),
            "malformed",
        ),
        rc(
            "receipt_receiver_invalid_node_id",
            "receipt accepted with receiver = \"XX\", re-signed with DE-1.",
            &de_receipt(&|p| *field_mut(p, "receiver") = text("XX")),
            "malformed",
        ),
        rc(
            "receipt_signature_63_bytes",
            "receipt accepted with its signature cut to 63 bytes.",
            &{
                let p = decode_cose(&accepted);
                encode_cose(&p.protected, &p.payload, &p.signature[..63])
            },
            "malformed",
        ),
    ]);

    // --- Trust lists. ---
    let tl_edit = |f: &dyn Fn(&mut Value)| resign(&tl_bytes, &gov, f);
    let with_key = |public: &[u8]| {
        tl_edit(&|p| {
            let Value::Array(ms) = field_mut(p, "members") else {
                panic!()
            };
            let Value::Array(ks) = field_mut(&mut ms[0], "signing_keys") else {
                panic!()
            };
            *field_mut(&mut ks[0], "public") = Value::Bytes(public.to_vec());
        })
    };
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut not_on_curve = [0u8; 32];
    not_on_curve[0] = 2;
    v.extend([
        NegativeVector {
            pad_to: Some(imi_protocol::MAX_TRUST_LIST_BYTES + 1),
            ..tl(
                "trust_list_oversized",
                "The trust list followed by zero bytes up to 1 MiB + 1 = 1,048,577 bytes (pad_to; limit 1 MiB): refused by size before decoding.",
                &tl_bytes,
                "oversized",
            )
        },
        tl(
            "trust_list_uint_long_form",
            "The trust list with version = 3 written 1b 00 00 00 00 00 00 00 03, re-signed with the governance key.",
            &resign_with(&tl_bytes, &gov, |p| encode_with(&p, &["version"], Form::Long)),
            "malformed",
        ),
        tl(
            "trust_list_indefinite_array",
            "The trust list with members written as an indefinite array, re-signed with the governance key.",
            &resign_with(&tl_bytes, &gov, |p| encode_with(&p, &["members"], Form::Indefinite)),
            "malformed",
        ),
        tl(
            "trust_list_member_unknown_key",
            "The trust list with an extra key \"x\": 0 in members[0], re-signed with the governance key.",
            &tl_edit(&|p| {
                let Value::Array(ms) = field_mut(p, "members") else { panic!() };
                entries(&mut ms[0], "").push((text("x"), Value::Integer(0.into())));
            }),
            "malformed",
        ),
        tl(
            "trust_list_signing_key_identity",
            "The trust list with AT-1's public key replaced by 01 00 .. 00 (the identity point, small order), re-signed with the governance key.",
            &with_key(&identity),
            "malformed",
        ),
        tl(
            "trust_list_signing_key_order_8",
            "The trust list with AT-1's public key replaced by c7 17 6a .. 03 7a (a canonical point of order 8), re-signed with the governance key.",
            &with_key(&ORDER_8_POINT),
            "malformed",
        ),
        tl(
            "trust_list_signing_key_non_canonical",
            "The trust list with AT-1's public key replaced by f0 ff .. ff 7f (y = p + 3: a non-canonical encoding of a point of large order), re-signed with the governance key.",
            &with_key(&NONCANONICAL_LARGE_ORDER),
            "malformed",
        ),
        tl(
            "trust_list_signing_key_not_on_curve",
            "The trust list with AT-1's public key replaced by 02 00 .. 00 (y = 2 is not the y of any curve point), re-signed with the governance key.",
            &with_key(&not_on_curve),
            "malformed",
        ),
        tl(
            "trust_list_signature_63_bytes",
            "The trust list with its signature cut to 63 bytes.",
            &{
                let p = decode_cose(&tl_bytes);
                encode_cose(&p.protected, &p.payload, &p.signature[..63])
            },
            "malformed",
        ),
    ]);
    // The limits are exact: one less is accepted.
    let prev64 = set1(&["header", "prev"], prev_list(64));
    let kind64 = set1(&["header", "kind"], text(&"a".repeat(64)));
    for ok in [&prev64, &kind64] {
        let e = Envelope::parse(ok.clone(), DEFAULT_MAX_ENVELOPE_BYTES).unwrap();
        e.verify(&ctx.trust, NodeId::DE, t1, SKEW).unwrap();
    }
    let in_grace = Envelope::parse(env1_bytes.clone(), DEFAULT_MAX_ENVELOPE_BYTES).unwrap();
    in_grace
        .verify(
            &ctx.trust,
            NodeId::DE,
            JUL_2026 + imi_protocol::KEY_EXPIRY_GRACE_MS,
            SKEW,
        )
        .unwrap();
    let padded = NegativeVector {
        pad_to: Some(imi_protocol::MAX_TRUST_LIST_BYTES),
        ..tl("", "", &tl_bytes, "")
    };
    assert_eq!(
        TrustList::verify(&padded.input(), &ctx.governance.public())
            .unwrap_err()
            .reject_code(),
        Some(&RejectCode::Malformed),
        "at the size limit, trailing bytes are malformed, not oversized"
    );
    // The crafted signatures really are what they claim.
    use ed25519_dalek::Verifier as _;
    let tbs = sig_structure(prot, &parts1.payload);
    let at1_vk = ed25519_dalek::VerifyingKey::from_bytes(&ctx.signer("AT-1").public()).unwrap();
    let lax = |sig: &[u8]| {
        at1_vk
            .verify(&tbs, &ed25519_dalek::Signature::from_slice(sig).unwrap())
            .is_ok()
    };
    assert!(
        lax(&forged_r(&at1, &[1], prot, &parts1.payload)),
        "R = identity passes the cofactorless equation"
    );
    assert!(lax(sig1));
    let s_plus_l = signature_s_plus_l(sig1);
    assert!(s_plus_l[63] < 0x20 && s_plus_l[32..] != sig1[32..]);
    assert_eq!(ED25519_L[31], 0x10);
    v
}

/// A point of order 8 (canonical encoding).
const ORDER_8_POINT: [u8; 32] = [
    0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
    0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
];

/// `y = p + 1`: the identity, encoded non-canonically.
const NONCANONICAL_IDENTITY: [u8; 32] = {
    let mut b = [0xff; 32];
    b[0] = 0xee;
    b[31] = 0x7f;
    b
};

/// `y = p + 3`: a point of large order, encoded non-canonically.
const NONCANONICAL_LARGE_ORDER: [u8; 32] = {
    let mut b = [0xff; 32];
    b[0] = 0xf0;
    b[31] = 0x7f;
    b
};

/// A signature over the COSE Sig_structure of (`protected`, `payload`) with the given `R`
/// (zero-extended to 32 bytes) and `S = k * a mod L`.
fn forged_r(seed: &[u8; 32], r: &[u8], protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut rb = [0u8; 32];
    rb[..r.len()].copy_from_slice(r);
    signature_with_r(seed, &rb, &sig_structure(protected, payload)).to_vec()
}

/// `n` distinct 16-byte message ids.
fn prev_list(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| Value::Bytes(vseed(&format!("prev {i}"))[..16].to_vec()))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// The README's tables against the vectors.

const README_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/README.md");

/// The rows `| `code` | yes/no | meaning | `vector`, ... |` of the README's "Reject codes"
/// table: (code, from bytes alone, vector names).
fn readme_reject_codes() -> Vec<(String, bool, Vec<String>)> {
    let readme = std::fs::read_to_string(README_PATH).unwrap();
    let section = readme
        .split("\n### Reject codes\n")
        .nth(1)
        .expect("README has a \"### Reject codes\" section")
        .split("\n#")
        .next()
        .unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cols: Vec<&str> = line.split(" | ").map(str::trim).collect();
            assert_eq!(cols.len(), 4, "row {line}");
            let code = cols[0].trim_start_matches("| ").trim_matches('`');
            let code = if code.starts_with('{') {
                "application"
            } else {
                code
            };
            let from_bytes = match cols[1] {
                "yes" => true,
                "no" => false,
                other => panic!("{code}: column 2 is {other:?}"),
            };
            let names = cols[3]
                .trim_end_matches(" |")
                .trim_end_matches('|')
                .split(',')
                .map(|n| n.trim().trim_matches('`').to_owned())
                .filter(|n| !n.is_empty() && n != "–")
                .collect();
            (code.to_owned(), from_bytes, names)
        })
        .collect()
}

/// Every reject code the README lists that can come from bytes alone has at least one
/// negative vector; the table names every negative vector under its expected code; and the
/// table lists exactly the codes of [`RejectCode`].
#[test]
fn readme_lists_every_negative_vector() {
    let f = load();
    let rows = readme_reject_codes();
    let all = [
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
        RejectCode::WrongPeer,
        RejectCode::QuotaExceeded,
        RejectCode::Internal,
        RejectCode::Application("application".into()),
    ];
    let codes: Vec<&str> = rows.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        all.iter().map(RejectCode::label).collect::<Vec<_>>(),
        "the README's reject codes"
    );
    for (code, from_bytes, names) in &rows {
        let vectors: Vec<&NegativeVector> =
            f.negative.iter().filter(|v| &v.expected == code).collect();
        if *from_bytes {
            assert!(!vectors.is_empty(), "no negative vector for {code}");
        } else {
            assert!(
                vectors.is_empty() && names.is_empty(),
                "{code} is not from bytes"
            );
        }
        let mut listed = names.clone();
        listed.sort();
        let mut actual: Vec<String> = vectors.iter().map(|v| v.name.clone()).collect();
        actual.sort();
        assert_eq!(listed, actual, "README's vectors for {code}");
    }
    // Every vector named anywhere in the README exists and has the code of its row.
    let readme = std::fs::read_to_string(README_PATH).unwrap();
    for v in &f.negative {
        assert!(
            readme.contains(&format!("`{}`", v.name)),
            "{} not in README",
            v.name
        );
    }
    for word in readme.split('`').skip(1).step_by(2) {
        let prefixed = ["envelope_", "receipt_", "trust_list_"]
            .iter()
            .any(|p| word.starts_with(p));
        // `envelope_hash` is a receipt field, not a vector.
        if prefixed
            && word != "envelope_hash"
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            assert!(
                f.negative.iter().any(|v| v.name == word),
                "README names {word}, which is not a negative vector"
            );
        }
    }
}

/// The limits in the README are the crate's constants.
#[test]
fn readme_limits_are_the_constants() {
    fn thousands(n: usize) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
    let readme = std::fs::read_to_string(README_PATH).unwrap();
    let grace = usize::try_from(imi_protocol::KEY_EXPIRY_GRACE_MS).unwrap();
    for what in [
        format!("4 MiB = {} bytes", thousands(DEFAULT_MAX_ENVELOPE_BYTES)),
        format!(
            "| receipt size | {} bytes |",
            imi_protocol::MAX_RECEIPT_BYTES
        ),
        format!(
            "1 MiB = {} bytes",
            thousands(imi_protocol::MAX_TRUST_LIST_BYTES)
        ),
        format!("1 to {}, distinct", imi_protocol::MAX_RECIPIENTS),
        format!("| at most {} |", imi_protocol::MAX_PREDECESSORS),
        format!("({} ms)", thousands(grace)),
        format!("1 to {} characters", imi_protocol::AuthorityId::MAX_LEN),
    ] {
        assert!(readme.contains(&what), "README lacks {what:?}");
    }
}

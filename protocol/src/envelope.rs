//! The signed, sealed envelope.
//!
//! Wire form: a tagged COSE_Sign1 whose payload is the CBOR map `{"header": Header,
//! "sealed": Sealed}`. The body is encrypted once with ChaCha20-Poly1305 under a random
//! content key; that key is sealed to every recipient node with HPKE base mode
//! (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305). The AEAD plaintext is the
//! CBOR map `{"salt": bstr32, "body": bstr}` and the signed header commits to it with
//! `SHA-256(salt || body)`, so an auditor can later prove what was said by revealing salt
//! and body, and nothing else.
use crate::clock::Timestamp;
use crate::cose::{self, CT_ENVELOPE};
use crate::error::{ProtocolError, RejectCode};
use crate::ids::{AuthorityId, CaseId, MessageId, NodeId};
use crate::keys::{HpkeKeyPair, KeyId, NodeSigner, key_id};
use crate::trust::TrustList;
use crate::{MAX_PREDECESSORS, MAX_RECIPIENTS, PROTOCOL_VERSION, cbor, sha256};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use serde::{Deserialize, Serialize};

/// HPKE `info` for sealing the content key.
pub const HPKE_INFO: &[u8] = b"imi/1 content key";
/// Prefix of the body AEAD's associated data (followed by the 16-byte message id).
pub const BODY_AAD_PREFIX: &[u8] = b"imi/1 body";

/// A message kind such as `diagnostic` or `request.create`: 1 to 64 characters of
/// `[a-z0-9._-]`. The engine routes on it; unknown kinds are rejected there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Kind(String);

impl Kind {
    /// The diagnostic kind used by `imi-node diag send`: the body is opaque bytes that the
    /// receiver counts and discards.
    pub const DIAGNOSTIC: &'static str = "diagnostic";
    /// A step of an IMI request's lifecycle: the body is a CBOR `CaseMessage`
    /// (`imi-domain`).
    pub const REQUEST: &'static str = "imi.request";
    /// An indicator fact report for the Commission node: the body is a CBOR `FactReport`.
    pub const FACT: &'static str = "imi.fact";
    /// Several indicator fact reports in one envelope (no case in the header): the body is
    /// a CBOR array of 1 to 64 `FactReport`s, each checked as an `imi.fact` body would be.
    pub const FACTS: &'static str = "imi.facts";
    /// A checkpoint of the sender's transparency log sent to a witness: the body is a CBOR
    /// `CheckpointMessage` (signed note, base size, consistency proof).
    pub const CHECKPOINT: &'static str = "imi.checkpoint";
    /// A witness's answer to a checkpoint: the body is a CBOR `CosignatureMessage`.
    pub const COSIGNATURE: &'static str = "imi.cosignature";
    /// A home node's signed directory changes about its own authorities: the body is a JSON
    /// `UpdateBatch` (`imi-directory`).
    pub const DIRECTORY_UPDATE: &'static str = "imi.directory.update";
    /// "I have your directory up to sequence n": the body is a JSON `SyncRequest`.
    pub const DIRECTORY_SYNC: &'static str = "imi.directory.sync";
    /// A notification (step `notify`) or a named authority's acknowledgement that it read
    /// one (step `read`): the body is a CBOR `NotificationMessage` (`imi-domain`).
    pub const NOTIFICATION: &'static str = "imi.notification";
    /// One version of a repository entry, from its owner's node to every node on the
    /// repository's access list: the body is a CBOR `EntryMessage` (`imi-domain`).
    pub const REPOSITORY_ENTRY: &'static str = "imi.repository.entry";
    /// An alert (step `alert`), a recipient's forward (`forward`), the sender's key grant
    /// (`grant`), modification (`modify`) or closure (`close`): the body is a CBOR `AlertMessage` (`imi-domain`).
    pub const ALERT: &'static str = "imi.alert";
    /// A usage fact for the Commission node (a notification, alert or repository entry
    /// sent): the body is a CBOR `UsageFact` (`imi-scoreboard`).
    pub const USAGE: &'static str = "imi.usage";
    /// Several usage facts in one envelope (no case in the header): the body is a CBOR
    /// array of 1 to 64 `UsageFact`s, each checked as an `imi.usage` body would be.
    pub const USAGES: &'static str = "imi.usages";
    /// A newer governance-signed trust list, passed on by the member that accepted it: the
    /// body is the trust list's COSE_Sign1 bytes as issued.
    pub const TRUST_LIST: &'static str = "imi.trust-list";
    /// Every kind this implementation sends or handles.
    pub const ALL: &'static [&'static str] = &[
        Self::DIAGNOSTIC,
        Self::REQUEST,
        Self::FACT,
        Self::FACTS,
        Self::CHECKPOINT,
        Self::COSIGNATURE,
        Self::DIRECTORY_UPDATE,
        Self::DIRECTORY_SYNC,
        Self::NOTIFICATION,
        Self::REPOSITORY_ENTRY,
        Self::ALERT,
        Self::USAGE,
        Self::USAGES,
        Self::TRUST_LIST,
    ];

    /// Validates a kind.
    pub fn new(s: &str) -> Result<Self, ProtocolError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ProtocolError::Invalid(format!("bad kind {s:?}")))
        }
    }
    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Kind::new(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The signed header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Protocol version.
    pub v: u16,
    /// Message id.
    pub id: MessageId,
    /// Kind.
    pub kind: Kind,
    /// The application step this message takes (for `imi.request`, the request step:
    /// `create`, `accept`, ...), in the syntax of a kind; `null` for kinds without steps.
    /// Signed so that the step a log leaf names is checkable against the sender's signature.
    pub step: Option<Kind>,
    /// Sender node.
    pub from: NodeId,
    /// Sending authority (or the node's operator identity for diagnostics).
    pub authority: AuthorityId,
    /// Every recipient node.
    pub to: Vec<NodeId>,
    /// The case this message belongs to.
    pub case: Option<CaseId>,
    /// Causal predecessors.
    pub prev: Vec<MessageId>,
    /// Creation time (ms since the epoch).
    pub created: Timestamp,
    /// `SHA-256(salt || body)`.
    #[serde(with = "crate::cbor::fixed")]
    pub commitment: [u8; 32],
}

/// The content key sealed to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientKey {
    /// Recipient node.
    pub node: NodeId,
    /// Key id of the recipient's HPKE public key used.
    #[serde(with = "crate::cbor::fixed")]
    pub kid: KeyId,
    /// HPKE encapsulated key.
    #[serde(with = "crate::cbor::fixed")]
    pub enc: [u8; 32],
    /// HPKE ciphertext of the 32-byte content key (48 bytes).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

/// The encrypted body and its sealed keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// One sealed content key per recipient, in the header's recipient order.
    pub keys: Vec<RecipientKey>,
    /// ChaCha20-Poly1305 nonce.
    #[serde(with = "crate::cbor::fixed")]
    pub nonce: [u8; 12],
    /// Ciphertext of `{"salt", "body"}`.
    #[serde(with = "serde_bytes")]
    pub ct: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EnvelopePayload {
    header: Header,
    sealed: Sealed,
}

#[derive(Serialize, Deserialize)]
struct Inner {
    #[serde(with = "crate::cbor::fixed")]
    salt: [u8; 32],
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

/// What a sender wants to send.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Kind.
    pub kind: Kind,
    /// The step, for kinds that have steps (see [`Header::step`]).
    pub step: Option<Kind>,
    /// Sending authority.
    pub authority: AuthorityId,
    /// Recipients (1 to 31, distinct).
    pub to: Vec<NodeId>,
    /// Case.
    pub case: Option<CaseId>,
    /// Causal predecessors.
    pub prev: Vec<MessageId>,
    /// Plaintext body (application CBOR).
    pub body: Vec<u8>,
}

/// The random choices of one sealing, explicit so that test vectors are reproducible.
#[derive(Debug, Clone)]
pub struct SealRandomness {
    /// Message id.
    pub id: MessageId,
    /// Commitment salt.
    pub salt: [u8; 32],
    /// Content key.
    pub content_key: [u8; 32],
    /// Body nonce.
    pub nonce: [u8; 12],
    /// HPKE ephemeral key material, one per recipient (RFC 9180 DeriveKeyPair input).
    pub ephemeral: Vec<[u8; 32]>,
}

impl SealRandomness {
    /// Fresh randomness for `recipients` recipients.
    pub fn random(recipients: usize) -> Self {
        Self {
            id: MessageId::random(),
            salt: rand::random(),
            content_key: rand::random(),
            nonce: rand::random(),
            ephemeral: (0..recipients).map(|_| rand::random()).collect(),
        }
    }
}

fn body_aad(id: &MessageId) -> Vec<u8> {
    let mut aad = BODY_AAD_PREFIX.to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

fn hpke_aad(id: &MessageId, node: NodeId) -> Vec<u8> {
    let mut aad = id.as_bytes().to_vec();
    aad.extend_from_slice(&node.as_bytes());
    aad
}

fn check_recipients(to: &[NodeId]) -> Result<(), RejectCode> {
    if to.is_empty() || to.len() > MAX_RECIPIENTS {
        return Err(RejectCode::Malformed);
    }
    let mut seen = std::collections::HashSet::new();
    if !to.iter().all(|n| seen.insert(*n)) {
        return Err(RejectCode::Malformed);
    }
    Ok(())
}

/// Encrypts, seals and signs a draft. Recipient HPKE keys come from the trust list (the
/// key valid at `created`).
pub fn seal_and_sign(
    draft: &Draft,
    created: Timestamp,
    signer: &NodeSigner,
    trust: &TrustList,
    rnd: &SealRandomness,
) -> Result<Vec<u8>, ProtocolError> {
    seal_unhashed(draft, created, signer, trust, rnd).map(|(bytes, _)| bytes)
}

/// An envelope just sealed and signed, with what a sender records of it: the same header
/// and hash that [`Envelope::parse`] of its bytes gives, without decoding them again.
#[derive(Debug, Clone)]
pub struct SealedEnvelope {
    /// The envelope's bytes.
    pub bytes: Vec<u8>,
    /// The signed header.
    pub header: Header,
    /// SHA-256 of `bytes` ([`Envelope::hash`]).
    pub hash: [u8; 32],
}

/// [`seal_and_sign`], also returning the header and the hash of the bytes.
pub fn seal_and_sign_parts(
    draft: &Draft,
    created: Timestamp,
    signer: &NodeSigner,
    trust: &TrustList,
    rnd: &SealRandomness,
) -> Result<SealedEnvelope, ProtocolError> {
    let (bytes, header) = seal_unhashed(draft, created, signer, trust, rnd)?;
    Ok(SealedEnvelope {
        hash: sha256(&bytes),
        header,
        bytes,
    })
}

/// The envelope's bytes and the header it signs.
fn seal_unhashed(
    draft: &Draft,
    created: Timestamp,
    signer: &NodeSigner,
    trust: &TrustList,
    rnd: &SealRandomness,
) -> Result<(Vec<u8>, Header), ProtocolError> {
    check_recipients(&draft.to)
        .map_err(|_| ProtocolError::Invalid("recipients: 1 to 31 distinct nodes".into()))?;
    if draft.prev.len() > MAX_PREDECESSORS {
        return Err(ProtocolError::Invalid("too many predecessors".into()));
    }
    if rnd.ephemeral.len() != draft.to.len() {
        return Err(ProtocolError::Invalid(
            "one ephemeral key per recipient".into(),
        ));
    }
    let mut committed = rnd.salt.to_vec();
    committed.extend_from_slice(&draft.body);
    let commitment = sha256(&committed);
    let inner = cbor::to_vec(&Inner {
        salt: rnd.salt,
        body: draft.body.clone(),
    })?;
    let aead = chacha20poly1305::ChaCha20Poly1305::new((&rnd.content_key).into());
    let ct = aead
        .encrypt(
            (&rnd.nonce).into(),
            Payload {
                msg: &inner,
                aad: &body_aad(&rnd.id),
            },
        )
        .map_err(|e| ProtocolError::Crypto(e.to_string()))?;
    let mut keys = Vec::with_capacity(draft.to.len());
    for (node, eph) in draft.to.iter().zip(&rnd.ephemeral) {
        let entry = trust
            .hpke_key(*node, created)
            .ok_or_else(|| ProtocolError::Invalid(format!("no valid HPKE key for {node}")))?;
        let (enc_bytes, sealed_key) = crate::dhkem::seal(
            &entry.public,
            HPKE_INFO,
            &hpke_aad(&rnd.id, *node),
            &rnd.content_key,
            eph,
        )
        .map_err(|_| ProtocolError::Crypto(format!("cannot seal to {node}'s HPKE key")))?;
        keys.push(RecipientKey {
            node: *node,
            kid: key_id(&entry.public),
            enc: enc_bytes,
            key: sealed_key,
        });
    }
    let header = Header {
        v: PROTOCOL_VERSION,
        id: rnd.id,
        kind: draft.kind.clone(),
        step: draft.step.clone(),
        from: signer.node,
        authority: draft.authority.clone(),
        to: draft.to.clone(),
        case: draft.case,
        prev: draft.prev.clone(),
        created,
        commitment,
    };
    let payload = EnvelopePayload {
        header,
        sealed: Sealed {
            keys,
            nonce: rnd.nonce,
            ct,
        },
    };
    let encoded = cbor::to_vec(&payload)?;
    let bytes = cose::sign_as(encoded, CT_ENVELOPE, signer)?;
    Ok((bytes, payload.header))
}

/// A decoded envelope whose signature is not yet checked.
#[derive(Debug, Clone)]
pub struct Envelope {
    bytes: Vec<u8>,
    hash: [u8; 32],
    cose: cose::Parsed,
    header: Header,
    sealed: Sealed,
}

impl Envelope {
    /// Decodes bytes exactly as received: size check first, then structure and header
    /// shape. Nothing is re-encoded.
    pub fn parse(bytes: Vec<u8>, max: usize) -> Result<Envelope, RejectCode> {
        if bytes.len() > max {
            return Err(RejectCode::Oversized);
        }
        let hash = sha256(&bytes);
        let cose = cose::parse(&bytes, max, CT_ENVELOPE)?;
        let payload: EnvelopePayload = cbor::from_slice_canonical(&cose.payload, max)?;
        let EnvelopePayload { header, sealed } = payload;
        check_recipients(&header.to)?;
        if header.prev.len() > MAX_PREDECESSORS {
            return Err(RejectCode::Malformed);
        }
        if sealed.keys.len() != header.to.len()
            || sealed
                .keys
                .iter()
                .zip(&header.to)
                .any(|(k, n)| k.node != *n || k.key.len() != 48)
        {
            return Err(RejectCode::Malformed);
        }
        Ok(Envelope {
            bytes,
            hash,
            cose,
            header,
            sealed,
        })
    }

    /// The header (unverified until [`Envelope::verify`]).
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// SHA-256 of the envelope bytes.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
    /// The bytes as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Verifies version, creation time, the sender's key valid at creation time, the
    /// signature, and that `me` is a recipient.
    pub fn verify(
        self,
        trust: &TrustList,
        me: NodeId,
        now: Timestamp,
        max_future_skew_ms: u64,
    ) -> Result<VerifiedEnvelope, RejectCode> {
        if self.header.v != PROTOCOL_VERSION {
            return Err(RejectCode::UnsupportedVersion);
        }
        let public =
            trust.signing_key_now(self.header.from, &self.cose.kid, self.header.created, now)?;
        self.cose.verify(&public)?;
        if self.header.created > now.saturating_add(max_future_skew_ms) {
            return Err(RejectCode::FromFuture);
        }
        if !self.header.to.contains(&me) {
            return Err(RejectCode::NotRecipient);
        }
        Ok(VerifiedEnvelope { inner: self })
    }
}

/// An envelope whose signature checked out and which names this node as a recipient.
#[derive(Debug, Clone)]
pub struct VerifiedEnvelope {
    inner: Envelope,
}

/// A decrypted body with its commitment salt.
#[derive(Debug, Clone)]
pub struct OpenedBody {
    /// The salt of the commitment.
    pub salt: [u8; 32],
    /// The plaintext body.
    pub body: Vec<u8>,
}

impl VerifiedEnvelope {
    /// The verified header.
    pub fn header(&self) -> &Header {
        &self.inner.header
    }
    /// SHA-256 of the envelope bytes.
    pub fn hash(&self) -> [u8; 32] {
        self.inner.hash
    }
    /// The bytes as received.
    pub fn bytes(&self) -> &[u8] {
        &self.inner.bytes
    }
    /// Takes the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.inner.bytes
    }

    /// Decrypts the body for `me` with whichever of `keys` the sender sealed to, and checks
    /// the commitment.
    pub fn open(&self, me: NodeId, keys: &[HpkeKeyPair]) -> Result<OpenedBody, RejectCode> {
        let id = self.inner.header.id;
        let rk = self
            .inner
            .sealed
            .keys
            .iter()
            .find(|k| k.node == me)
            .ok_or(RejectCode::NotRecipient)?;
        let kp = keys
            .iter()
            .find(|k| k.key_id() == rk.kid)
            .ok_or(RejectCode::DecryptFailed)?;
        let content_key = crate::dhkem::open(
            kp.agreement(),
            &kp.public(),
            &rk.enc,
            HPKE_INFO,
            &hpke_aad(&id, me),
            &rk.key,
        )
        .map_err(|_| RejectCode::DecryptFailed)?;
        let content_key: [u8; 32] = content_key
            .as_slice()
            .try_into()
            .map_err(|_| RejectCode::DecryptFailed)?;
        let aead = chacha20poly1305::ChaCha20Poly1305::new((&content_key).into());
        let inner = aead
            .decrypt(
                (&self.inner.sealed.nonce).into(),
                Payload {
                    msg: &self.inner.sealed.ct,
                    aad: &body_aad(&id),
                },
            )
            .map_err(|_| RejectCode::DecryptFailed)?;
        let inner: Inner = cbor::from_slice_canonical(&inner, self.inner.bytes.len())
            .map_err(|_| RejectCode::DecryptFailed)?;
        let mut committed = inner.salt.to_vec();
        committed.extend_from_slice(&inner.body);
        if sha256(&committed) != self.inner.header.commitment {
            return Err(RejectCode::DecryptFailed);
        }
        Ok(OpenedBody {
            salt: inner.salt,
            body: inner.body,
        })
    }
}

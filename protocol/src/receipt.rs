//! Signed receipts: the receiver's signed statement of what it did with an envelope.
//!
//! A receipt has one of two forms, each verifiable on its own:
//!
//! * **single**: a COSE_Sign1 over the [`ReceiptBody`] (content type [`CT_RECEIPT`]);
//! * **group**: the body, its place in an RFC 6962 Merkle tree over the bodies of several
//!   receipts, the audit path, and one COSE_Sign1 over the tree's size and root (content type
//!   [`CT_RECEIPT_GROUP`]). A receiver that commits many envelopes together signs them once;
//!   a verifier checks the path to the signed root and the signature (once per group when it
//!   keeps a [`GroupCache`]).
use crate::clock::Timestamp;
use crate::cose::{self, CT_RECEIPT, CT_RECEIPT_GROUP};
use crate::error::{ProtocolError, RejectCode};
use crate::ids::{MessageId, NodeId};
use crate::keys::NodeSigner;
use crate::merkle::{self, Hash};
use crate::trust::TrustList;
use crate::{MAX_RECEIPT_BYTES, MAX_RECEIPT_GROUP, PROTOCOL_VERSION, cbor};
use serde::{Deserialize, Serialize};

/// What the receiver did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Verified, applied and durable.
    Accepted,
    /// Already applied earlier; nothing changed.
    Duplicate,
    /// Refused; nothing changed.
    Rejected(RejectCode),
}

impl Outcome {
    /// A short label for metrics and output.
    pub fn label(&self) -> &str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected(_) => "rejected",
        }
    }
}

/// The signed content of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    /// Protocol version.
    pub v: u16,
    /// The message id, when the envelope could be decoded that far.
    pub message_id: Option<MessageId>,
    /// SHA-256 of the envelope bytes as received.
    #[serde(with = "crate::cbor::fixed")]
    pub envelope_hash: [u8; 32],
    /// The node that received (and signs this receipt).
    pub receiver: NodeId,
    /// The claimed sender, when decodable.
    pub sender: Option<NodeId>,
    /// When the receiver decided.
    pub received: Timestamp,
    /// The outcome.
    pub outcome: Outcome,
}

/// A verified receipt and its exact signed bytes.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The signed bytes as received.
    pub bytes: Vec<u8>,
    /// The verified content.
    pub body: ReceiptBody,
}

impl ReceiptBody {
    /// Signs the receipt with the receiver's key.
    pub fn sign(&self, signer: &NodeSigner) -> Result<Vec<u8>, ProtocolError> {
        if signer.node != self.receiver {
            return Err(ProtocolError::Invalid(
                "receipt must be signed by its receiver".into(),
            ));
        }
        cose::sign_as(cbor::to_vec(self)?, CT_RECEIPT, signer)
    }

    /// Decodes a receipt body (the signed payload of a single receipt, the `body` of a group
    /// receipt) in its one encoding, from `expected_receiver`, in the version spoken.
    fn decode_from(bytes: &[u8], expected_receiver: NodeId) -> Result<ReceiptBody, RejectCode> {
        let body: ReceiptBody = cbor::from_slice_canonical(bytes, MAX_RECEIPT_BYTES)?;
        if body.receiver != expected_receiver {
            return Err(RejectCode::UnknownSender);
        }
        if body.v != PROTOCOL_VERSION {
            return Err(RejectCode::UnsupportedVersion);
        }
        Ok(body)
    }

    /// Signs several receipts with one signature: group receipts, in the order of `bodies`,
    /// each verifiable on its own ([`Receipt::verify`]). Every body must name the signer
    /// as its receiver; at most [`MAX_RECEIPT_GROUP`] of them.
    pub fn sign_group(
        bodies: &[ReceiptBody],
        signer: &NodeSigner,
    ) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let count = bodies.len() as u64;
        if count == 0 || count > MAX_RECEIPT_GROUP {
            return Err(ProtocolError::Invalid(format!(
                "a receipt group holds 1 to {MAX_RECEIPT_GROUP} receipts, not {count}"
            )));
        }
        if bodies.iter().any(|b| b.receiver != signer.node) {
            return Err(ProtocolError::Invalid(
                "receipt must be signed by its receiver".into(),
            ));
        }
        let encoded = bodies
            .iter()
            .map(cbor::to_vec)
            .collect::<Result<Vec<_>, _>>()?;
        let mut tree = merkle::MemTree::new();
        for b in &encoded {
            tree.push(merkle::leaf_hash(b));
        }
        let root = tree.root();
        let group = cose::sign_as(
            cbor::to_vec(&GroupPayload { count, root })?,
            CT_RECEIPT_GROUP,
            signer,
        )?;
        encoded
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let index = i as u64;
                let path = merkle::inclusion_proof(&tree, index, count)
                    .ok_or_else(|| ProtocolError::Invalid("no audit path".into()))?;
                cbor::to_vec(&GroupReceipt {
                    body,
                    index,
                    path: path.into_iter().map(PathHash).collect(),
                    group: group.clone(),
                })
            })
            .collect()
    }
}

/// What a group signature signs: how many receipts the tree holds and its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GroupPayload {
    count: u64,
    #[serde(with = "crate::cbor::fixed")]
    root: Hash,
}

/// One hash of an audit path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PathHash(#[serde(with = "crate::cbor::fixed")] Hash);

/// A group receipt: the receipt body's exact bytes, its index among the group's leaves,
/// the audit path from it to the signed root, and the group signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GroupReceipt {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    index: u64,
    path: Vec<PathHash>,
    #[serde(with = "serde_bytes")]
    group: Vec<u8>,
}

/// Group signatures already verified, so that the receipts of one group cost one signature
/// check together: the SHA-256 of each verified group signature's bytes with the key that
/// verified it, the most recent [`GroupCache::CAPACITY`] of them. Only a signature that
/// verified is kept, so a cache never changes an answer.
#[derive(Debug, Clone, Default)]
pub struct GroupCache {
    verified: std::collections::VecDeque<Hash>,
}

impl GroupCache {
    /// Groups remembered.
    pub const CAPACITY: usize = 16;

    fn key(group: &[u8], public: &[u8; 32]) -> Hash {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(public);
        h.update(group);
        h.finalize().into()
    }

    fn contains(&self, key: &Hash) -> bool {
        self.verified.contains(key)
    }

    fn insert(&mut self, key: Hash) {
        if self.verified.len() >= Self::CAPACITY {
            self.verified.pop_front();
        }
        self.verified.push_back(key);
    }
}

impl Receipt {
    /// Parses and verifies a receipt claimed to come from `expected_receiver`, against the
    /// receiver's key valid at the receipt's time.
    ///
    /// Both forms are accepted: a COSE_Sign1 (its first byte `0xd2`, tag 18) is a single
    /// receipt, anything else must be a group receipt.
    pub fn verify(
        bytes: Vec<u8>,
        trust: &TrustList,
        expected_receiver: NodeId,
    ) -> Result<Receipt, RejectCode> {
        Self::verify_cached(bytes, trust, expected_receiver, &mut GroupCache::default())
    }

    /// As [`Receipt::verify`], checking the signature of a group receipt only if `cache`
    /// does not hold it yet (and adding it once it verified).
    pub fn verify_cached(
        bytes: Vec<u8>,
        trust: &TrustList,
        expected_receiver: NodeId,
        cache: &mut GroupCache,
    ) -> Result<Receipt, RejectCode> {
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(RejectCode::Oversized);
        }
        if Self::is_group(&bytes) {
            return Self::verify_group(bytes, trust, expected_receiver, cache);
        }
        let parsed = cose::parse(&bytes, MAX_RECEIPT_BYTES, CT_RECEIPT)?;
        let body = ReceiptBody::decode_from(&parsed.payload, expected_receiver)?;
        let public = trust.signing_key(body.receiver, &parsed.kid, body.received)?;
        parsed.verify(&public)?;
        Ok(Receipt { bytes, body })
    }

    fn verify_group(
        bytes: Vec<u8>,
        trust: &TrustList,
        expected_receiver: NodeId,
        cache: &mut GroupCache,
    ) -> Result<Receipt, RejectCode> {
        let g: GroupReceipt = cbor::from_slice_canonical(&bytes, MAX_RECEIPT_BYTES)?;
        let body = ReceiptBody::decode_from(&g.body, expected_receiver)?;
        let parsed = cose::parse(&g.group, MAX_RECEIPT_BYTES, CT_RECEIPT_GROUP)?;
        let signed: GroupPayload = cbor::from_slice_canonical(&parsed.payload, MAX_RECEIPT_BYTES)?;
        if signed.count == 0 || signed.count > MAX_RECEIPT_GROUP || g.index >= signed.count {
            return Err(RejectCode::Malformed);
        }
        let path: Vec<Hash> = g.path.iter().map(|p| p.0).collect();
        let leaf = merkle::leaf_hash(&g.body);
        if !merkle::verify_inclusion(g.index, signed.count, &leaf, &path, &signed.root) {
            return Err(RejectCode::BadSignature);
        }
        let public = trust.signing_key(body.receiver, &parsed.kid, body.received)?;
        let key = GroupCache::key(&g.group, &public);
        if !cache.contains(&key) {
            parsed.verify(&public)?;
            cache.insert(key);
        }
        Ok(Receipt { bytes, body })
    }

    /// Whether these bytes are a group receipt (else a single one); says nothing of
    /// validity.
    pub fn is_group(bytes: &[u8]) -> bool {
        bytes.first().is_some_and(|b| *b != 0xd2)
    }
}

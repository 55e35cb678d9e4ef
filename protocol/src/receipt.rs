//! Signed receipts: the receiver's signed statement of what it did with an envelope.
use crate::clock::Timestamp;
use crate::cose::{self, CT_RECEIPT};
use crate::error::{ProtocolError, RejectCode};
use crate::ids::{MessageId, NodeId};
use crate::keys::NodeSigner;
use crate::trust::TrustList;
use crate::{MAX_RECEIPT_BYTES, PROTOCOL_VERSION, cbor};
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
}

impl Receipt {
    /// Parses and verifies a receipt claimed to come from `expected_receiver`, against the
    /// receiver's key valid at the receipt's time.
    pub fn verify(
        bytes: Vec<u8>,
        trust: &TrustList,
        expected_receiver: NodeId,
    ) -> Result<Receipt, RejectCode> {
        let parsed = cose::parse(&bytes, MAX_RECEIPT_BYTES, CT_RECEIPT)?;
        let body: ReceiptBody = cbor::from_slice_canonical(&parsed.payload, MAX_RECEIPT_BYTES)?;
        if body.receiver != expected_receiver {
            return Err(RejectCode::UnknownSender);
        }
        if body.v != PROTOCOL_VERSION {
            return Err(RejectCode::UnsupportedVersion);
        }
        let public = trust.signing_key(body.receiver, &parsed.kid, body.received)?;
        parsed.verify(&public)?;
        Ok(Receipt { bytes, body })
    }
}

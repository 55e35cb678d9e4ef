//! COSE_Sign1 (RFC 9052) with EdDSA over ed25519, as used by envelopes, receipts and the
//! trust list. The protected header carries `alg` (EdDSA), `kid` (8-byte key id) and a
//! text `content type` naming what the payload is, so a signature over one kind of
//! object can never be taken for another. Signed bytes are verified exactly as received.
use crate::error::{ProtocolError, RejectCode};
use crate::keys::{KeyId, NodeSigner};
use coset::{CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};

/// Content type of an envelope payload.
pub const CT_ENVELOPE: &str = "application/imi-envelope+cbor; v=1";
/// Content type of a receipt payload.
pub const CT_RECEIPT: &str = "application/imi-receipt+cbor; v=1";
/// Content type of a trust-list payload.
pub const CT_TRUST_LIST: &str = "application/imi-trust-list+cbor; v=1";

/// Signs `payload` into a tagged COSE_Sign1.
pub(crate) fn sign(
    payload: Vec<u8>,
    content_type: &str,
    kid: KeyId,
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> Result<Vec<u8>, ProtocolError> {
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(kid.to_vec())
        .content_type(content_type.to_owned())
        .build();
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |tbs| sign(tbs).to_vec())
        .build()
        .to_tagged_vec()
        .map_err(|e| ProtocolError::Encode(e.to_string()))
}

/// Signs with a node's key.
pub(crate) fn sign_as(
    payload: Vec<u8>,
    ct: &str,
    signer: &NodeSigner,
) -> Result<Vec<u8>, ProtocolError> {
    sign(payload, ct, signer.key_id(), |m| signer.sign(m))
}

/// A parsed, not yet verified COSE_Sign1.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub kid: KeyId,
    pub payload: Vec<u8>,
    sign1: CoseSign1,
}

/// Parses a tagged COSE_Sign1 with the expected content type, refusing oversized input
/// before decoding.
pub(crate) fn parse(bytes: &[u8], max: usize, content_type: &str) -> Result<Parsed, RejectCode> {
    if bytes.len() > max {
        return Err(RejectCode::Oversized);
    }
    // Only the tagged form (tag 18) is accepted; an untagged COSE_Sign1 is malformed.
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|_| RejectCode::Malformed)?;
    let h = &sign1.protected.header;
    if h.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) {
        return Err(RejectCode::Malformed);
    }
    match &h.content_type {
        Some(coset::ContentType::Text(t)) if t == content_type => {}
        _ => return Err(RejectCode::Malformed),
    }
    let kid: KeyId = h
        .key_id
        .as_slice()
        .try_into()
        .map_err(|_| RejectCode::Malformed)?;
    if !sign1.unprotected.is_empty() {
        return Err(RejectCode::Malformed);
    }
    let payload = sign1.payload.clone().ok_or(RejectCode::Malformed)?;
    Ok(Parsed {
        kid,
        payload,
        sign1,
    })
}

impl Parsed {
    /// Verifies the signature with an ed25519 public key.
    pub(crate) fn verify(&self, public: &[u8; 32]) -> Result<(), RejectCode> {
        self.sign1.verify_signature(b"", |sig, tbs| {
            if crate::keys::verify_ed25519(public, tbs, sig) {
                Ok(())
            } else {
                Err(RejectCode::BadSignature)
            }
        })
    }
}

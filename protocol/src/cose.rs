//! COSE_Sign1 (RFC 9052) with EdDSA over ed25519, as used by envelopes, receipts and the
//! trust list. The protected header carries `alg` (EdDSA), `kid` (8-byte key id) and a
//! text `content type` naming what the payload is, so a signature over one kind of
//! object can never be taken for another. Signed bytes are verified exactly as received.
use crate::error::{ProtocolError, RejectCode};
use crate::keys::{KeyId, NodeSigner};
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};

/// Content type of an envelope payload.
pub const CT_ENVELOPE: &str = "application/imi-envelope+cbor; v=1";
/// Content type of a receipt payload.
pub const CT_RECEIPT: &str = "application/imi-receipt+cbor; v=1";
/// Content type of a receipt group's signed payload (the size and root of the tree over its
/// receipts' bodies).
pub const CT_RECEIPT_GROUP: &str = "application/imi-receipt-group+cbor; v=1";
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
    protected: Vec<u8>,
    signature: [u8; 64],
}

/// Tag 18 (COSE_Sign1).
const TAG_SIGN1: u64 = 18;

/// Reads one CBOR item head at `*pos`: major type and argument. Only definite lengths in
/// their shortest form (RFC 8949 §4.2.1) are accepted.
fn head(b: &[u8], pos: &mut usize) -> Result<(u8, u64), RejectCode> {
    let first = *b.get(*pos).ok_or(RejectCode::Malformed)?;
    *pos += 1;
    let (major, info) = (first >> 5, first & 0x1f);
    let mut take = |n: usize| -> Result<u64, RejectCode> {
        let bytes = b.get(*pos..*pos + n).ok_or(RejectCode::Malformed)?;
        *pos += n;
        Ok(bytes.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x)))
    };
    let (arg, min) = match info {
        0..=23 => (u64::from(info), 0),
        24 => (take(1)?, 24),
        25 => (take(2)?, 1 << 8),
        26 => (take(4)?, 1 << 16),
        27 => (take(8)?, 1 << 32),
        _ => return Err(RejectCode::Malformed),
    };
    if arg < min {
        return Err(RejectCode::Malformed);
    }
    Ok((major, arg))
}

/// Reads a byte string at `*pos`.
fn bstr<'a>(b: &'a [u8], pos: &mut usize) -> Result<&'a [u8], RejectCode> {
    match head(b, pos)? {
        (2, len) => {
            let len = usize::try_from(len).map_err(|_| RejectCode::Malformed)?;
            let end = pos.checked_add(len).ok_or(RejectCode::Malformed)?;
            let out = b.get(*pos..end).ok_or(RejectCode::Malformed)?;
            *pos = end;
            Ok(out)
        }
        _ => Err(RejectCode::Malformed),
    }
}

/// Appends a CBOR head in its shortest form.
fn put_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
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

/// The protected header every signed object carries, up to the key id: the map
/// `{1: -8 (EdDSA), 3: content_type, 4: kid}` in this order, and nothing else.
fn protected_prefix(content_type: &str) -> Vec<u8> {
    let mut p = vec![0xa3, 0x01, 0x27, 0x03];
    put_head(&mut p, 3, content_type.len() as u64);
    p.extend_from_slice(content_type.as_bytes());
    p.extend([0x04, 0x48]);
    p
}

/// Parses a tagged COSE_Sign1 with the expected content type, refusing oversized input
/// before decoding. The structure is read directly, without a generic CBOR value tree (a
/// hostile header cannot make decoding cost many times its size), and only in its one
/// deterministic form: tag 18, an array of four, the protected header exactly
/// `{1: -8, 3: content_type, 4: kid (8 bytes)}`, an empty unprotected map, the payload, a
/// 64-byte signature, shortest-form lengths, nothing after. Anything else is `malformed`.
pub(crate) fn parse(bytes: &[u8], max: usize, content_type: &str) -> Result<Parsed, RejectCode> {
    if bytes.len() > max {
        return Err(RejectCode::Oversized);
    }
    let mut pos = 0;
    if head(bytes, &mut pos)? != (6, TAG_SIGN1) || head(bytes, &mut pos)? != (4, 4) {
        return Err(RejectCode::Malformed);
    }
    let protected = bstr(bytes, &mut pos)?;
    if head(bytes, &mut pos)? != (5, 0) {
        return Err(RejectCode::Malformed);
    }
    let payload = bstr(bytes, &mut pos)?;
    let signature: [u8; 64] = bstr(bytes, &mut pos)?
        .try_into()
        .map_err(|_| RejectCode::Malformed)?;
    if pos != bytes.len() {
        return Err(RejectCode::Malformed);
    }
    let prefix = protected_prefix(content_type);
    let kid: KeyId = protected
        .strip_prefix(prefix.as_slice())
        .and_then(|rest| rest.try_into().ok())
        .ok_or(RejectCode::Malformed)?;
    Ok(Parsed {
        kid,
        payload: payload.to_vec(),
        protected: protected.to_vec(),
        signature,
    })
}

impl Parsed {
    /// Verifies the signature with an ed25519 public key, over the RFC 9052
    /// `Sig_structure` `["Signature1", protected, h'', payload]`.
    pub(crate) fn verify(&self, public: &[u8; 32]) -> Result<(), RejectCode> {
        let mut tbs = Vec::with_capacity(self.payload.len() + self.protected.len() + 32);
        tbs.push(0x84);
        put_head(&mut tbs, 3, 10);
        tbs.extend_from_slice(b"Signature1");
        put_head(&mut tbs, 2, self.protected.len() as u64);
        tbs.extend_from_slice(&self.protected);
        tbs.push(0x40);
        put_head(&mut tbs, 2, self.payload.len() as u64);
        tbs.extend_from_slice(&self.payload);
        if crate::keys::verify_ed25519(public, &tbs, &self.signature) {
            Ok(())
        } else {
            Err(RejectCode::BadSignature)
        }
    }
}

//! Sealed fields: a group of fields encrypted once more, inside an envelope, under a key of
//! its own.
//!
//! An IMI alert (Directive 2005/36/EC, Art. 56a) is sealed to every recipient node like any
//! envelope, but the node that opens it first (the incoming-alert coordinator's) must not read
//! the professional's identity. The sender therefore encrypts those fields with
//! ChaCha20-Poly1305 (RFC 8439) under a random 32-byte *field key*, and puts only the
//! [`SealedFields`] into the body. The field key travels later, and only inside envelopes
//! sealed to a node (a `grant` to the nodes of the authorities the alert is forwarded to);
//! never in the clear.
//!
//! The associated data is [`FIELDS_AAD_PREFIX`] followed by a `context` that binds the
//! sealed group to its place: for an alert, its 16-byte id followed by the ASCII name of the
//! group (e.g. `identity`). Sealed fields moved to another alert or another group, or opened
//! with another key, do not open. The format is in `protocol/vectors/README.md`, "Sealed
//! fields", and pinned by `protocol/vectors/fields.json`.
use crate::cbor;
use crate::error::{ProtocolError, RejectCode};
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use serde::{Deserialize, Serialize};

/// Prefix of the associated data of sealed fields (19 ASCII bytes), followed by the context.
pub const FIELDS_AAD_PREFIX: &[u8] = b"imi/1 sealed fields";

/// Upper bound on the `ct` of [`SealedFields`] (64 KiB = 65,536 bytes, the 16-byte tag
/// included), checked before decrypting; a longer `ct` is `oversized`. The plaintext is
/// therefore at most 65,520 bytes.
pub const MAX_SEALED_FIELDS_BYTES: usize = 64 * 1024;

/// Upper bound on the CBOR encoding of [`SealedFields`]: the encoding of a `ct` of exactly
/// [`MAX_SEALED_FIELDS_BYTES`] (`a2 65 "nonce" 4c <12> 62 "ct" 5a <u32 length> <ct>`, 28
/// bytes around the `ct`).
pub const MAX_SEALED_FIELDS_CBOR_BYTES: usize = MAX_SEALED_FIELDS_BYTES + 28;

/// A group of fields sealed under a field key: the CBOR map `{"nonce": bstr12, "ct": bstr}`,
/// keys in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedFields {
    /// ChaCha20-Poly1305 nonce, unique per field key.
    #[serde(with = "crate::cbor::fixed")]
    pub nonce: [u8; 12],
    /// Ciphertext of the fields followed by the 16-byte Poly1305 tag.
    #[serde(with = "serde_bytes")]
    pub ct: Vec<u8>,
}

impl SealedFields {
    /// The CBOR encoding, in the one form the crate accepts.
    pub fn to_cbor(&self) -> Result<Vec<u8>, ProtocolError> {
        cbor::to_vec(self)
    }

    /// Decodes sealed fields received on their own. Input over
    /// [`MAX_SEALED_FIELDS_CBOR_BYTES`], or a `ct` over [`MAX_SEALED_FIELDS_BYTES`], is
    /// `oversized`; anything but the one encoding (see `protocol/vectors/README.md`, "CBOR
    /// encoding rules") is `malformed`.
    pub fn from_cbor(bytes: &[u8]) -> Result<SealedFields, RejectCode> {
        let sealed: SealedFields = cbor::from_slice_canonical(bytes, MAX_SEALED_FIELDS_CBOR_BYTES)?;
        if sealed.ct.len() > MAX_SEALED_FIELDS_BYTES {
            return Err(RejectCode::Oversized);
        }
        Ok(sealed)
    }
}

fn aad(context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(FIELDS_AAD_PREFIX.len() + context.len());
    aad.extend_from_slice(FIELDS_AAD_PREFIX);
    aad.extend_from_slice(context);
    aad
}

/// Seals `plaintext` under `key` with `nonce`: ChaCha20-Poly1305 (RFC 8439) with associated
/// data `FIELDS_AAD_PREFIX || context`.
///
/// A nonce must never be used twice with one key: take [`random_nonce`], or a fresh
/// [`random_field_key`] per sealing. Keep `plaintext` at most `MAX_SEALED_FIELDS_BYTES - 16`
/// bytes; a longer one seals but is refused `oversized` when opened. (The AEAD itself
/// refuses only plaintexts of 256 GiB or more, which cannot be held in memory; such a call
/// would give an empty `ct`, which never opens.)
pub fn seal_fields(
    key: &[u8; 32],
    nonce: [u8; 12],
    context: &[u8],
    plaintext: &[u8],
) -> SealedFields {
    let ct = ChaCha20Poly1305::new(key.into())
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad: &aad(context),
            },
        )
        .unwrap_or_default();
    SealedFields { nonce, ct }
}

/// Opens sealed fields with `key` and the `context` they were sealed for.
///
/// A `ct` longer than [`MAX_SEALED_FIELDS_BYTES`] is refused `oversized` before decrypting;
/// any other failure (wrong key, wrong context, a changed nonce or `ct`, a `ct` shorter than
/// the tag) is `decrypt_failed`.
pub fn open_fields(
    key: &[u8; 32],
    context: &[u8],
    sealed: &SealedFields,
) -> Result<Vec<u8>, RejectCode> {
    if sealed.ct.len() > MAX_SEALED_FIELDS_BYTES {
        return Err(RejectCode::Oversized);
    }
    ChaCha20Poly1305::new(key.into())
        .decrypt(
            (&sealed.nonce).into(),
            Payload {
                msg: &sealed.ct,
                aad: &aad(context),
            },
        )
        .map_err(|_| RejectCode::DecryptFailed)
}

/// A fresh random field key (32 bytes).
pub fn random_field_key() -> [u8; 32] {
    rand::random()
}

/// A fresh random nonce (12 bytes).
pub fn random_nonce() -> [u8; 12] {
    rand::random()
}

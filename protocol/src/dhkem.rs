//! HPKE (RFC 9180) as the envelope uses it, and nothing more: base mode, single shot,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; key pairs derived with
//! DeriveKeyPair.
//!
//! The X25519 function is aws-lc's (through `aws-lc-rs`, already linked for TLS): it takes
//! about half the time of the portable implementation, and two of them (one to seal, one to
//! open) were a fifth of a message's cryptography. Everything around it is RFC 9180 written
//! out: LabeledExtract and LabeledExpand over HKDF-SHA256, ExtractAndExpand, the key
//! schedule, and one ChaCha20-Poly1305 seal or open with the base nonce. The `hpke` crate
//! checks this module in the tests (both directions, and the vectors).
use aws_lc_rs::agreement::{self, X25519};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use hkdf::Hkdf;
use sha2::Sha256;

/// `"KEM" || I2OSP(kem_id, 2)` for DHKEM(X25519, HKDF-SHA256) (kem_id 0x0020).
const KEM_SUITE: &[u8] = b"KEM\x00\x20";
/// `"HPKE" || kem_id || kdf_id (HKDF-SHA256, 0x0001) || aead_id (ChaCha20-Poly1305, 0x0003)`.
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x03";
/// Mode base.
const MODE_BASE: u8 = 0;

/// An HPKE failure: a key that is not one, an all-zero shared secret, or a ciphertext that
/// does not open. Deliberately without detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HpkeError;

/// `"HPKE-v1" || suite || label || ikm`, the input of LabeledExtract.
fn labeled_ikm(suite: &[u8], label: &[u8], ikm: &[u8]) -> Vec<u8> {
    [b"HPKE-v1".as_slice(), suite, label, ikm].concat()
}

/// `LabeledExtract(salt, label, ikm)`: HKDF-Extract over [`labeled_ikm`]; an empty salt is
/// HKDF's default (HashLen zero bytes, which HMAC treats the same).
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Hkdf<Sha256> {
    Hkdf::<Sha256>::new(Some(salt), &labeled_ikm(suite, label, ikm))
}

/// `LabeledExpand(prk, label, info, L)`: HKDF-Expand with `I2OSP(L, 2) || "HPKE-v1" ||
/// suite || label || info`.
fn labeled_expand<const L: usize>(
    prk: &Hkdf<Sha256>,
    suite: &[u8],
    label: &[u8],
    info: &[u8],
) -> Result<[u8; L], HpkeError> {
    let len = u16::try_from(L).map_err(|_| HpkeError)?;
    let labeled = [len.to_be_bytes().as_slice(), b"HPKE-v1", suite, label, info].concat();
    let mut out = [0u8; L];
    prk.expand(&labeled, &mut out).map_err(|_| HpkeError)?;
    Ok(out)
}

/// LabeledExtract's pseudorandom key as bytes (for a later LabeledExtract's salt or input).
fn extract_bytes(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &labeled_ikm(suite, label, ikm));
    prk.into()
}

/// The secret as aws-lc's key. Making one computes its public key (a fixed-base X25519), so
/// a key used more than once is made once: the node keeps its own in its [`HpkeKeyPair`],
/// a seal makes its ephemeral one once for both the public key and the agreement.
///
/// [`HpkeKeyPair`]: crate::HpkeKeyPair
pub(crate) fn private_key(secret: &[u8; 32]) -> Result<agreement::PrivateKey, HpkeError> {
    agreement::PrivateKey::from_private_key(&X25519, secret).map_err(|_| HpkeError)
}

/// The public key of aws-lc's key (kept from when it was made, not computed again).
pub(crate) fn public_of(sk: &agreement::PrivateKey) -> Result<[u8; 32], HpkeError> {
    let pk = sk.compute_public_key().map_err(|_| HpkeError)?;
    pk.as_ref().try_into().map_err(|_| HpkeError)
}

/// X25519(secret, 9): the public key of a secret.
#[cfg(test)]
fn public_key(secret: &[u8; 32]) -> Result<[u8; 32], HpkeError> {
    public_of(&private_key(secret)?)
}

/// X25519(secret, public); an all-zero result (a public key of small order) is an error, as
/// RFC 9180 §7.1.4 requires.
fn dh(sk: &agreement::PrivateKey, public: &[u8; 32]) -> Result<[u8; 32], HpkeError> {
    let shared = agreement::agree(
        sk,
        agreement::UnparsedPublicKey::new(&X25519, public),
        HpkeError,
        |s| <[u8; 32]>::try_from(s).map_err(|_| HpkeError),
    )?;
    if shared == [0u8; 32] {
        return Err(HpkeError);
    }
    Ok(shared)
}

/// DeriveKeyPair(ikm) for X25519 (RFC 9180 §7.1.3): the secret.
pub(crate) fn derive_secret(ikm: &[u8]) -> Result<[u8; 32], HpkeError> {
    let prk = labeled_extract(KEM_SUITE, b"", b"dkp_prk", ikm);
    labeled_expand::<32>(&prk, KEM_SUITE, b"sk", b"")
}

/// DeriveKeyPair(ikm) for X25519 (RFC 9180 §7.1.3): `(secret, public)`.
#[cfg(test)]
fn derive_key_pair(ikm: &[u8]) -> Result<([u8; 32], [u8; 32]), HpkeError> {
    let secret = derive_secret(ikm)?;
    Ok((secret, public_key(&secret)?))
}

/// ExtractAndExpand(dh, enc || pkR): the KEM's shared secret.
fn shared_secret(dh: &[u8; 32], enc: &[u8; 32], pk_r: &[u8; 32]) -> Result<[u8; 32], HpkeError> {
    let prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh);
    let context = [enc.as_slice(), pk_r.as_slice()].concat();
    labeled_expand::<32>(&prk, KEM_SUITE, b"shared_secret", &context)
}

/// The base-mode key schedule: the AEAD key and base nonce.
fn key_schedule(shared: &[u8; 32], info: &[u8]) -> Result<([u8; 32], [u8; 12]), HpkeError> {
    let psk_id_hash = extract_bytes(HPKE_SUITE, b"", b"psk_id_hash", b"");
    let info_hash = extract_bytes(HPKE_SUITE, b"", b"info_hash", info);
    let context = [[MODE_BASE].as_slice(), &psk_id_hash, &info_hash].concat();
    let secret = labeled_extract(HPKE_SUITE, shared, b"secret", b"");
    let key = labeled_expand::<32>(&secret, HPKE_SUITE, b"key", &context)?;
    let nonce = labeled_expand::<12>(&secret, HPKE_SUITE, b"base_nonce", &context)?;
    Ok((key, nonce))
}

/// Single-shot base-mode seal to `pk_r`, with the ephemeral key pair derived from
/// `ephemeral_ikm`: `(enc, ciphertext)`.
pub(crate) fn seal(
    pk_r: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    ephemeral_ikm: &[u8],
) -> Result<([u8; 32], Vec<u8>), HpkeError> {
    let sk_e = private_key(&derive_secret(ephemeral_ikm)?)?;
    let enc = public_of(&sk_e)?;
    let shared = shared_secret(&dh(&sk_e, pk_r)?, &enc, pk_r)?;
    let (key, nonce) = key_schedule(&shared, info)?;
    let ct = chacha20poly1305::ChaCha20Poly1305::new((&key).into())
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| HpkeError)?;
    Ok((enc, ct))
}

/// Single-shot base-mode open with the recipient's key pair.
pub(crate) fn open(
    sk_r: &agreement::PrivateKey,
    pk_r: &[u8; 32],
    enc: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, HpkeError> {
    let shared = shared_secret(&dh(sk_r, enc)?, enc, pk_r)?;
    let (key, nonce) = key_schedule(&shared, info)?;
    chacha20poly1305::ChaCha20Poly1305::new((&key).into())
        .decrypt(
            (&nonce).into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| HpkeError)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use hpke::{Deserializable, Kem as _, Serializable, kem::X25519HkdfSha256};

    type Aead = hpke::aead::ChaCha20Poly1305;
    type Kdf = hpke::kdf::HkdfSha256;

    /// An RNG that yields the given bytes (the `hpke` crate draws the ephemeral key's IKM).
    struct Fixed<'a>(&'a [u8]);
    impl rand_core::RngCore for Fixed<'_> {
        fn next_u32(&mut self) -> u32 {
            let mut b = [0u8; 4];
            self.fill_bytes(&mut b);
            u32::from_le_bytes(b)
        }
        fn next_u64(&mut self) -> u64 {
            let mut b = [0u8; 8];
            self.fill_bytes(&mut b);
            u64::from_le_bytes(b)
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            let (head, rest) = self.0.split_at(dst.len());
            dst.copy_from_slice(head);
            self.0 = rest;
        }
    }
    impl rand_core::CryptoRng for Fixed<'_> {}

    /// This module and the `hpke` crate agree: the same key pairs from the same IKM, the same
    /// bytes sealed from the same ephemeral IKM, and each opens what the other sealed; a
    /// changed byte anywhere does not open.
    #[test]
    fn agrees_with_the_hpke_crate() {
        for i in 0u8..40 {
            let ikm_r = [i; 32];
            let ikm_e: Vec<u8> = (0..32).map(|k| k ^ i.wrapping_mul(7)).collect();
            let (sk_r, pk_r) = derive_key_pair(&ikm_r).unwrap();
            let (theirs_sk, theirs_pk) = X25519HkdfSha256::derive_keypair(&ikm_r);
            assert_eq!(sk_r.as_slice(), theirs_sk.to_bytes().as_slice());
            assert_eq!(pk_r.as_slice(), theirs_pk.to_bytes().as_slice());
            let info = [b"info".as_slice(), &[i]].concat();
            let aad = [b"aad".as_slice(), &[i]].concat();
            let pt: Vec<u8> = (0..usize::from(i) * 3).map(|k| k as u8).collect();

            let (enc, ct) = seal(&pk_r, &info, &aad, &pt, &ikm_e).unwrap();
            let (their_enc, their_ct) = hpke::single_shot_seal::<Aead, Kdf, X25519HkdfSha256, _>(
                &hpke::OpModeS::Base,
                &theirs_pk,
                &info,
                &pt,
                &aad,
                &mut Fixed(&ikm_e),
            )
            .unwrap();
            assert_eq!(enc.as_slice(), their_enc.to_bytes().as_slice());
            assert_eq!(ct, their_ct);

            let opened = hpke::single_shot_open::<Aead, Kdf, X25519HkdfSha256>(
                &hpke::OpModeR::Base,
                &theirs_sk,
                &<X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap(),
                &info,
                &ct,
                &aad,
            )
            .unwrap();
            assert_eq!(opened, pt);
            let sk_r = private_key(&sk_r).unwrap();
            assert_eq!(
                open(&sk_r, &pk_r, &enc, &info, &aad, &their_ct).unwrap(),
                pt
            );

            let mut bad_ct = ct.clone();
            bad_ct[usize::from(i) % ct.len()] ^= 1;
            assert_eq!(
                open(&sk_r, &pk_r, &enc, &info, &aad, &bad_ct),
                Err(HpkeError)
            );
            let mut bad_enc = enc;
            bad_enc[usize::from(i) % 32] ^= 1;
            assert!(open(&sk_r, &pk_r, &bad_enc, &info, &aad, &ct).is_err());
            assert!(open(&sk_r, &pk_r, &enc, b"other info", &aad, &ct).is_err());
            assert!(open(&sk_r, &pk_r, &enc, &info, b"other aad", &ct).is_err());
        }
    }

    /// A small-order public key gives an all-zero shared secret: refused, as RFC 9180
    /// §7.1.4 requires.
    #[test]
    fn an_all_zero_shared_secret_is_refused() {
        let (sk, pk) = derive_key_pair(&[1; 32]).unwrap();
        let sk = private_key(&sk).unwrap();
        for small in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert_eq!(seal(&small, b"", b"", b"x", &[2; 32]), Err(HpkeError));
            assert_eq!(open(&sk, &pk, &small, b"", b"", &[0; 17]), Err(HpkeError));
        }
    }
}

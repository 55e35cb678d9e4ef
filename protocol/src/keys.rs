//! Key material: a node's ed25519 signing key and its X25519 HPKE key.
use crate::error::ProtocolError;
use crate::ids::NodeId;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// First 8 bytes of SHA-256 of a public key: names a key in headers.
pub type KeyId = [u8; 8];

/// The key id of a 32-byte public key.
pub fn key_id(public: &[u8; 32]) -> KeyId {
    let h = crate::sha256(public);
    let mut id = [0u8; 8];
    id.copy_from_slice(h.get(..8).unwrap_or(&[0u8; 8]));
    id
}

/// A node's signing identity: its node id and ed25519 key. The same key is its libp2p
/// identity, so its PeerId follows from the trust list.
#[derive(Clone)]
pub struct NodeSigner {
    /// The node this key signs for.
    pub node: NodeId,
    key: SigningKey,
    /// The same key in aws-lc, which signs in half the time (9 against 18 µs on the
    /// benchmark machine); ed25519 signatures are deterministic, so the bytes are the same.
    fast: Option<std::sync::Arc<aws_lc_rs::signature::Ed25519KeyPair>>,
}

impl std::fmt::Debug for NodeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NodeSigner({}, {})",
            self.node,
            hex::encode(self.key_id())
        )
    }
}

impl NodeSigner {
    /// From a 32-byte ed25519 seed.
    pub fn from_seed(node: NodeId, seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let fast = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .ok()
            .filter(|k| {
                use aws_lc_rs::signature::KeyPair as _;
                k.public_key().as_ref() == key.verifying_key().as_bytes()
            })
            .map(std::sync::Arc::new);
        Self { node, key, fast }
    }
    /// A fresh random key.
    pub fn generate(node: NodeId) -> Self {
        Self::from_seed(node, &rand::random())
    }
    /// The 32-byte seed (secret!).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
    /// The verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
    /// The key id of the public key.
    pub fn key_id(&self) -> KeyId {
        key_id(&self.public())
    }
    /// Signs bytes (RFC 8032 Ed25519: the same bytes from either implementation).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        if let Some(fast) = &self.fast
            && let Ok(sig) = <[u8; 64]>::try_from(fast.sign(msg).as_ref())
        {
            return sig;
        }
        self.key.sign(msg).to_bytes()
    }
}

/// Whether 32 bytes are an ed25519 public key that strict verification accepts: the
/// canonical encoding (RFC 8032 §5.1.2, `y < p`, no sign bit on `x = 0`) of a point on the
/// curve that is not of small order (`[8]A` is not the identity). Trust lists with any
/// other signing key are `malformed`.
pub fn is_strict_public_key(public: &[u8; 32]) -> bool {
    strict_decoded(public).is_some()
}

/// `public` decoded, if it is a strict public key ([`is_strict_public_key`]).
fn strict_decoded(public: &[u8; 32]) -> Option<VerifyingKey> {
    let vk = VerifyingKey::from_bytes(public).ok()?;
    (!vk.is_weak() && vk.to_edwards().compress().to_bytes() == *public).then_some(vk)
}

/// Most public keys [`strict_key`] keeps decoded. A node verifies with the keys of its trust
/// list (a few per member) and the governance key; beyond this many, keys are checked
/// and decoded on every use, as before the cache.
const STRICT_KEY_CACHE: usize = 1024;

/// `public` decoded, if it passes [`is_strict_public_key`]. Keys that pass are kept decoded
/// (up to [`STRICT_KEY_CACHE`] of them): checking and decoding a key (two decompressions,
/// a multiplication by the cofactor and a compression) was a third of a verification, and
/// a node verifies with the same few keys over and over. Only keys that passed are kept,
/// so the answer for every key is the same as without the cache.
fn strict_key(public: &[u8; 32]) -> Option<VerifyingKey> {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    static CACHE: OnceLock<RwLock<HashMap<[u8; 32], VerifyingKey>>> = OnceLock::new();
    let cache = CACHE.get_or_init(RwLock::default);
    if let Some(vk) = cache.read().ok().and_then(|keys| keys.get(public).copied()) {
        return Some(vk);
    }
    let vk = strict_decoded(public)?;
    if let Ok(mut keys) = cache.write()
        && keys.len() < STRICT_KEY_CACHE
    {
        keys.insert(*public, vk);
    }
    Some(vk)
}

/// Verifies an ed25519 signature strictly; `false` on any malformed input. The rules (see
/// `protocol/vectors/README.md`, "Strict ed25519"): `A` passes [`is_strict_public_key`];
/// then ed25519-dalek's `verify_strict` refuses `S >= L`, an `R` that does not decode or
/// is of small order, and accepts only if the canonical encoding of `[S]B - [k]A` equals the
/// 32 bytes of `R` (so a non-canonical `R` never verifies), with
/// `k = SHA-512(R || A || msg) mod L` over the bytes as given.
pub(crate) fn verify_ed25519(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let Some(vk) = strict_key(public) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    vk.verify_strict(msg, &sig).is_ok()
}

/// An X25519 key pair for HPKE (RFC 9180, DHKEM(X25519, HKDF-SHA256)). The secret is wiped
/// from memory when the pair is dropped.
#[derive(Clone)]
pub struct HpkeKeyPair {
    secret: zeroize::Zeroizing<[u8; 32]>,
    public: [u8; 32],
    /// The secret as aws-lc's key, made once: making it computes the public key again, a
    /// fixed-base X25519 that every open would otherwise pay.
    agreement: std::sync::Arc<aws_lc_rs::agreement::PrivateKey>,
    /// The key id of `public`, hashed once.
    kid: KeyId,
}

impl std::fmt::Debug for HpkeKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HpkeKeyPair({})", hex::encode(key_id(&self.public)))
    }
}

impl HpkeKeyPair {
    /// RFC 9180 DeriveKeyPair from input keying material.
    pub fn derive(ikm: &[u8; 32]) -> Self {
        let secret = crate::dhkem::derive_secret(ikm)
            .unwrap_or_else(|_| unreachable!("HKDF-SHA256 expands to 32 bytes"));
        Self::from_secret_bytes(&secret)
            .unwrap_or_else(|_| unreachable!("X25519 takes any 32-byte secret"))
    }
    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self::derive(&rand::random())
    }
    /// From the 32 secret bytes written by [`HpkeKeyPair::secret_bytes`].
    pub fn from_secret_bytes(b: &[u8; 32]) -> Result<Self, ProtocolError> {
        let invalid = |_| ProtocolError::Crypto("not an X25519 secret key".into());
        let agreement = crate::dhkem::private_key(b).map_err(invalid)?;
        let public = crate::dhkem::public_of(&agreement).map_err(invalid)?;
        Ok(Self {
            secret: zeroize::Zeroizing::new(*b),
            public,
            agreement: std::sync::Arc::new(agreement),
            kid: key_id(&public),
        })
    }
    /// The secret bytes (secret!).
    pub fn secret_bytes(&self) -> [u8; 32] {
        *self.secret
    }
    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }
    /// Key id of the public key.
    pub fn key_id(&self) -> KeyId {
        self.kid
    }
    pub(crate) fn agreement(&self) -> &aws_lc_rs::agreement::PrivateKey {
        &self.agreement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aws-lc and ed25519-dalek give the same signature bytes for every message.
    #[test]
    fn both_signers_give_the_same_signatures() {
        for i in 0u8..50 {
            let signer = NodeSigner::from_seed(NodeId::DE, &[i; 32]);
            assert!(signer.fast.is_some());
            let msg: Vec<u8> = (0..usize::from(i) * 7).map(|k| k as u8 ^ i).collect();
            assert_eq!(signer.sign(&msg), signer.key.sign(&msg).to_bytes());
            assert!(verify_ed25519(&signer.public(), &msg, &signer.sign(&msg)));
        }
    }

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// The decoded-key cache changes no answer: a key that fails the strict check fails
    /// every time, a cached key still refuses a wrong signature or message.
    #[test]
    fn verification_gives_the_same_answers_with_the_key_cache() {
        let signer = NodeSigner::from_seed(NodeId::DE, &[7; 32]);
        let public = signer.public();
        let sig = signer.sign(b"message");
        let mut bad = sig;
        bad[0] ^= 1;
        // An order-8 key and a non-canonical encoding (y = p + 3) of a large-order point.
        let weak = hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a");
        let non_canonical =
            hex32("f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        for _ in 0..3 {
            assert!(verify_ed25519(&public, b"message", &sig));
            assert!(!verify_ed25519(&public, b"massage", &sig));
            assert!(!verify_ed25519(&public, b"message", &bad));
            assert!(!verify_ed25519(&public, b"message", &sig[..63]));
            assert!(!verify_ed25519(&weak, b"message", &sig));
            assert!(!verify_ed25519(&non_canonical, b"message", &sig));
            assert!(!is_strict_public_key(&weak) && !is_strict_public_key(&non_canonical));
        }
    }
}

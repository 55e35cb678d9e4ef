//! Key material: a node's ed25519 signing key and its X25519 HPKE key.
use crate::error::ProtocolError;
use crate::ids::NodeId;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hpke::{Deserializable, Kem as _, Serializable, kem::X25519HkdfSha256};

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
        Self {
            node,
            key: SigningKey::from_bytes(seed),
        }
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
    /// Signs bytes.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// Whether 32 bytes are an ed25519 public key that strict verification accepts: the
/// canonical encoding (RFC 8032 §5.1.2, `y < p`, no sign bit on `x = 0`) of a point on the
/// curve that is not of small order (`[8]A` is not the identity). Trust lists with any
/// other signing key are `malformed`.
pub fn is_strict_public_key(public: &[u8; 32]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    !vk.is_weak() && vk.to_edwards().compress().to_bytes() == *public
}

/// Verifies an ed25519 signature strictly; `false` on any malformed input. The rules (see
/// `protocol/vectors/README.md`, "Strict ed25519"): `A` passes [`is_strict_public_key`];
/// then ed25519-dalek's `verify_strict` refuses `S >= L`, an `R` that does not decode or
/// is of small order, and accepts only if the canonical encoding of `[S]B - [k]A` equals the
/// 32 bytes of `R` (so a non-canonical `R` never verifies), with
/// `k = SHA-512(R || A || msg) mod L` over the bytes as given.
pub(crate) fn verify_ed25519(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    if !is_strict_public_key(public) {
        return false;
    }
    let Ok(vk) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    vk.verify_strict(msg, &sig).is_ok()
}

/// An X25519 key pair for HPKE (RFC 9180, DHKEM(X25519, HKDF-SHA256)).
#[derive(Clone)]
pub struct HpkeKeyPair {
    secret: <X25519HkdfSha256 as hpke::Kem>::PrivateKey,
    public: [u8; 32],
}

impl std::fmt::Debug for HpkeKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HpkeKeyPair({})", hex::encode(key_id(&self.public)))
    }
}

impl HpkeKeyPair {
    /// RFC 9180 DeriveKeyPair from input keying material.
    pub fn derive(ikm: &[u8; 32]) -> Self {
        let (sk, pk) = X25519HkdfSha256::derive_keypair(ikm);
        let mut public = [0u8; 32];
        public.copy_from_slice(pk.to_bytes().as_slice());
        Self { secret: sk, public }
    }
    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self::derive(&rand::random())
    }
    /// From the 32 secret bytes written by [`HpkeKeyPair::secret_bytes`].
    pub fn from_secret_bytes(b: &[u8; 32]) -> Result<Self, ProtocolError> {
        let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(b)
            .map_err(|e| ProtocolError::Crypto(e.to_string()))?;
        let pk = X25519HkdfSha256::sk_to_pk(&sk);
        let mut public = [0u8; 32];
        public.copy_from_slice(pk.to_bytes().as_slice());
        Ok(Self { secret: sk, public })
    }
    /// The secret bytes (secret!).
    pub fn secret_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.secret.to_bytes().as_slice());
        out
    }
    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }
    /// Key id of the public key.
    pub fn key_id(&self) -> KeyId {
        key_id(&self.public)
    }
    pub(crate) fn secret(&self) -> &<X25519HkdfSha256 as hpke::Kem>::PrivateKey {
        &self.secret
    }
}

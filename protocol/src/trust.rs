//! The federation trust list: every member, its role, signing keys with validity periods,
//! HPKE keys and addresses, signed by the federation's governance key. Its version only
//! grows: a node accepts a list only if it is validly signed and newer than the one it has.
use crate::cbor;
use crate::clock::Timestamp;
use crate::cose::{self, CT_TRUST_LIST};
use crate::error::{ProtocolError, RejectCode};
use crate::ids::{NodeId, Role};
use crate::keys::{KeyId, is_strict_public_key, key_id};
use serde::{Deserialize, Serialize};

/// A signing key and the period in which it may sign (milliseconds, `valid_from` inclusive,
/// `valid_until` exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyEntry {
    /// ed25519 public key.
    #[serde(with = "crate::cbor::fixed")]
    pub public: [u8; 32],
    /// First instant the key is valid.
    pub valid_from: Timestamp,
    /// First instant the key is no longer valid.
    pub valid_until: Timestamp,
}

/// An HPKE (X25519) public key and its validity period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HpkeKeyEntry {
    /// X25519 public key.
    #[serde(with = "crate::cbor::fixed")]
    pub public: [u8; 32],
    /// First instant the key is valid.
    pub valid_from: Timestamp,
    /// First instant the key is no longer valid.
    pub valid_until: Timestamp,
}

/// One member of the federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id.
    pub node: NodeId,
    /// Role.
    pub role: Role,
    /// Signing keys (also libp2p identities), possibly overlapping during rotation.
    pub signing_keys: Vec<SigningKeyEntry>,
    /// HPKE keys.
    pub hpke_keys: Vec<HpkeKeyEntry>,
    /// libp2p multiaddresses at which the node listens.
    pub addresses: Vec<String>,
}

/// The federation trust list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustList {
    /// Version; strictly increasing across published lists.
    pub version: u64,
    /// When the governance key signed it.
    pub issued: Timestamp,
    /// The members.
    pub members: Vec<Member>,
}

impl TrustList {
    /// Signs the list with the governance key into a COSE_Sign1.
    pub fn sign(&self, governance: &crate::keys::NodeSigner) -> Result<Vec<u8>, ProtocolError> {
        cose::sign_as(cbor::to_vec(self)?, CT_TRUST_LIST, governance)
    }

    /// Parses and verifies a signed list against the governance public key, in this order:
    /// size and COSE structure (`oversized`, `malformed`), the governance key id and the
    /// signature (`bad_signature`), the payload in its one encoding (`malformed`), every
    /// signing key a strict ed25519 public key (`malformed`), then consistency
    /// ([`TrustList::validate`], a local `Invalid` error).
    pub fn verify(bytes: &[u8], governance_public: &[u8; 32]) -> Result<TrustList, ProtocolError> {
        let parsed = cose::parse(bytes, crate::MAX_TRUST_LIST_BYTES, CT_TRUST_LIST)?;
        if parsed.kid != key_id(governance_public) {
            return Err(RejectCode::BadSignature.into());
        }
        parsed.verify(governance_public)?;
        let list: TrustList =
            cbor::from_slice_canonical(&parsed.payload, crate::MAX_TRUST_LIST_BYTES)?;
        list.check_signing_keys()?;
        list.validate()?;
        Ok(list)
    }

    /// Every signing key must be one that strict ed25519 verification can accept (canonical
    /// encoding of a curve point not of small order); otherwise `malformed`. A small-order key
    /// would "verify" forged signatures under lax verifiers, so it is refused where it enters.
    fn check_signing_keys(&self) -> Result<(), RejectCode> {
        let all_strict = self
            .all_signing_keys()
            .all(|(_, k)| is_strict_public_key(&k.public));
        if all_strict {
            Ok(())
        } else {
            Err(RejectCode::Malformed)
        }
    }

    /// Checks internal consistency: unique members, sane key periods, and signing keys that
    /// strict ed25519 verification can accept.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.check_signing_keys().is_err() {
            return Err(ProtocolError::Invalid(
                "a signing key is not a canonical ed25519 point of large order".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.members {
            if !seen.insert(m.node) {
                return Err(ProtocolError::Invalid(format!(
                    "member {} listed twice",
                    m.node
                )));
            }
            if m.signing_keys.is_empty() || m.hpke_keys.is_empty() {
                return Err(ProtocolError::Invalid(format!(
                    "member {} has no keys",
                    m.node
                )));
            }
            let periods = m.signing_keys.iter().map(|k| (k.valid_from, k.valid_until));
            let hpke = m.hpke_keys.iter().map(|k| (k.valid_from, k.valid_until));
            if periods.chain(hpke).any(|(from, until)| from >= until) {
                return Err(ProtocolError::Invalid(format!(
                    "member {} has an empty key period",
                    m.node
                )));
            }
        }
        Ok(())
    }

    /// Accepts `newer` in place of `self` only if its version is greater.
    pub fn check_update(&self, newer: &TrustList) -> Result<(), ProtocolError> {
        if newer.version <= self.version {
            return Err(ProtocolError::Invalid(format!(
                "trust list version {} is not newer than {}",
                newer.version, self.version
            )));
        }
        Ok(())
    }

    /// The member with this id.
    pub fn member(&self, node: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.node == node)
    }

    /// The signing key of `node` with key id `kid`, if it was valid at `at`.
    /// `Err(UnknownSender)` if the node is not a member; `Err(BadSignature)` if no key of the
    /// member has this key id; `Err(KeyNotValid)` if the key is listed but not valid at `at`.
    pub fn signing_key(
        &self,
        node: NodeId,
        kid: &KeyId,
        at: Timestamp,
    ) -> Result<[u8; 32], RejectCode> {
        self.signing_key_entry(node, kid, at).map(|k| k.public)
    }

    fn signing_key_entry(
        &self,
        node: NodeId,
        kid: &KeyId,
        at: Timestamp,
    ) -> Result<&SigningKeyEntry, RejectCode> {
        let member = self.member(node).ok_or(RejectCode::UnknownSender)?;
        let key = member
            .signing_keys
            .iter()
            .find(|k| &key_id(&k.public) == kid)
            .ok_or(RejectCode::BadSignature)?;
        if at < key.valid_from || at >= key.valid_until {
            return Err(RejectCode::KeyNotValid);
        }
        Ok(key)
    }

    /// Like [`TrustList::signing_key`], and additionally refuses a key that expired more
    /// than [`crate::KEY_EXPIRY_GRACE_MS`] before `now`: without this bound, a retired (or
    /// leaked) key could still sign messages backdated into its validity period.
    pub fn signing_key_now(
        &self,
        node: NodeId,
        kid: &KeyId,
        created: Timestamp,
        now: Timestamp,
    ) -> Result<[u8; 32], RejectCode> {
        let key = self.signing_key_entry(node, kid, created)?;
        if now > key.valid_until.saturating_add(crate::KEY_EXPIRY_GRACE_MS) {
            return Err(RejectCode::KeyNotValid);
        }
        Ok(key.public)
    }

    /// The HPKE key to seal to for `node` at `at`: the valid one that became valid last.
    pub fn hpke_key(&self, node: NodeId, at: Timestamp) -> Option<&HpkeKeyEntry> {
        self.member(node)?
            .hpke_keys
            .iter()
            .filter(|k| k.valid_from <= at && at < k.valid_until)
            .max_by_key(|k| k.valid_from)
    }

    /// Every signing public key of a member (for peer-id allow lists).
    pub fn all_signing_keys(&self) -> impl Iterator<Item = (NodeId, &SigningKeyEntry)> {
        self.members
            .iter()
            .flat_map(|m| m.signing_keys.iter().map(move |k| (m.node, k)))
    }

    /// The member whose signing key has this public key.
    pub fn node_of_key(&self, public: &[u8; 32]) -> Option<NodeId> {
        self.all_signing_keys()
            .find(|(_, k)| &k.public == public)
            .map(|(n, _)| n)
    }
}

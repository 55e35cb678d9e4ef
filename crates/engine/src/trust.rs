//! This node's keys and the federation's trust list: which list is in force, which PeerIds
//! may connect, and the libp2p identity of a node's signing key.
use crate::error::EngineError;
use crate::keys::{self, TRUST_LIST_KEY};
use imi_network::{AllowedPeer, Multiaddr, PeerId};
use imi_protocol::{HpkeKeyPair, NodeId, NodeSigner, Timestamp, TrustList};
use imi_store::Store;
use std::collections::HashMap;

/// This node's keys.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Signing key (also the libp2p identity).
    pub signer: NodeSigner,
    /// HPKE key pairs (current and, during rotation, previous).
    pub hpke: Vec<HpkeKeyPair>,
}

/// Chooses between the trust list from the config file and the one this node accepted
/// earlier (persisted in its store): the version only grows, so an older file never
/// replaces a newer accepted list. Persists the file's list when it is the newer one.
pub fn settle_trust_list(
    store: &dyn Store,
    file_bytes: Vec<u8>,
    governance_public: &[u8; 32],
) -> Result<TrustList, EngineError> {
    let from_file = TrustList::verify(&file_bytes, governance_public)?;
    let stored = match store.get(keys::META, TRUST_LIST_KEY)? {
        Some(b) => Some(TrustList::verify(&b, governance_public)?),
        None => None,
    };
    match stored {
        Some(stored) if stored.version > from_file.version => {
            tracing::warn!(
                file_version = from_file.version,
                accepted_version = stored.version,
                "the trust list file is older than the one this node accepted; using the accepted one"
            );
            Ok(stored)
        }
        Some(stored) if stored.version == from_file.version && stored != from_file => {
            Err(EngineError::Invalid(format!(
                "two different trust lists carry version {}",
                stored.version
            )))
        }
        _ => {
            let mut batch = imi_store::WriteBatch::new();
            batch.put(keys::META, TRUST_LIST_KEY.to_vec(), file_bytes);
            store.write(batch, imi_store::Durability::Sync)?;
            Ok(from_file)
        }
    }
}

/// The PeerId of an ed25519 public key (a node's libp2p identity).
pub fn peer_id_of(public: &[u8; 32]) -> Result<PeerId, EngineError> {
    let pk = libp2p_identity::ed25519::PublicKey::try_from_bytes(public)
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    Ok(libp2p_identity::PublicKey::from(pk).to_peer_id())
}

/// Whether a signing key may still hold a connection at `now`: until its `valid_until`. A
/// retired key leaves the allow list (and its connections are closed) when it expires; a
/// key valid from a later date is listed already, so a rotation needs no new list.
fn connectable(key: &imi_protocol::SigningKeyEntry, now: Timestamp) -> bool {
    now < key.valid_until
}

/// PeerId → node, for every signing key on the trust list that may connect at `now`.
pub(crate) fn peer_map(trust: &TrustList, now: Timestamp) -> HashMap<PeerId, NodeId> {
    trust
        .all_signing_keys()
        .filter(|(_, k)| connectable(k, now))
        .filter_map(|(node, k)| peer_id_of(&k.public).ok().map(|p| (p, node)))
        .collect()
}

/// The libp2p keypair of a node's signing seed.
pub fn libp2p_keypair(signer: &NodeSigner) -> Result<imi_network::Keypair, EngineError> {
    imi_network::Keypair::ed25519_from_bytes(signer.seed())
        .map_err(|e| EngineError::Invalid(e.to_string()))
}

/// The allow list for the network at `now`: every other member's unexpired signing keys and
/// its addresses.
pub fn allowed_peers(trust: &TrustList, me: NodeId, now: Timestamp) -> Vec<AllowedPeer> {
    let mut out = Vec::new();
    for m in trust.members.iter().filter(|m| m.node != me) {
        let addrs: Vec<Multiaddr> = m.addresses.iter().filter_map(|a| a.parse().ok()).collect();
        for k in m.signing_keys.iter().filter(|k| connectable(k, now)) {
            if let Ok(peer) = peer_id_of(&k.public) {
                out.push(AllowedPeer {
                    peer,
                    addrs: addrs.clone(),
                });
            }
        }
    }
    out
}

//! This node's keys and the federation's trust list: which list is in force, which PeerIds
//! may connect, and the libp2p identity of a node's signing key.
use crate::error::EngineError;
use crate::keys::{self, TRUST_LIST_KEY};
use imi_network::{AllowedPeer, Multiaddr, PeerId};
use imi_protocol::{HpkeKeyPair, NodeId, NodeSigner, Timestamp, TrustList};
use imi_store::Store;
use std::collections::{BTreeMap, HashMap};

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
/// its addresses (those of `overrides` where it names the member, else the trust list's).
pub fn allowed_peers(
    trust: &TrustList,
    me: NodeId,
    now: Timestamp,
    overrides: &BTreeMap<NodeId, Vec<String>>,
) -> Vec<AllowedPeer> {
    let mut out = Vec::new();
    for m in trust.members.iter().filter(|m| m.node != me) {
        let listed = overrides.get(&m.node).unwrap_or(&m.addresses);
        let addrs: Vec<Multiaddr> = listed.iter().filter_map(|a| a.parse().ok()).collect();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use imi_protocol::{Member, SigningKeyEntry};

    fn member(node: NodeId, addr: &str) -> Member {
        Member {
            node,
            role: node.default_role(),
            signing_keys: vec![SigningKeyEntry {
                public: NodeSigner::generate(node).public(),
                valid_from: 0,
                valid_until: u64::MAX,
            }],
            hpke_keys: Vec::new(),
            addresses: vec![addr.into()],
        }
    }

    #[test]
    fn an_address_override_replaces_the_trust_lists_addresses_of_that_peer_only() {
        let trust = TrustList {
            version: 1,
            issued: 0,
            members: vec![
                member(NodeId::AT, "/ip4/127.0.0.1/tcp/1"),
                member(NodeId::DE, "/ip4/127.0.0.1/tcp/2"),
                member(NodeId::HU, "/ip4/127.0.0.1/tcp/3"),
            ],
        };
        let listed = allowed_peers(&trust, NodeId::AT, 1, &BTreeMap::new());
        let addrs = |l: &[AllowedPeer]| -> Vec<String> {
            l.iter().map(|p| p.addrs[0].to_string()).collect()
        };
        assert_eq!(
            addrs(&listed),
            ["/ip4/127.0.0.1/tcp/2", "/ip4/127.0.0.1/tcp/3"]
        );
        let overrides = BTreeMap::from([(NodeId::HU, vec!["/ip4/127.0.0.1/tcp/9".to_owned()])]);
        let proxied = allowed_peers(&trust, NodeId::AT, 1, &overrides);
        assert_eq!(
            addrs(&proxied),
            ["/ip4/127.0.0.1/tcp/2", "/ip4/127.0.0.1/tcp/9"]
        );
        // The same peers (keys) either way: only where to dial them changed.
        let peers = |l: &[AllowedPeer]| l.iter().map(|p| p.peer).collect::<Vec<_>>();
        assert_eq!(peers(&listed), peers(&proxied));
    }
}

//! The trust list as an editable TOML file, for governance: `imi-node federation show`
//! writes the list in force in this form, an operator edits it (a member added or removed,
//! a key rotated with an overlap, a key revoked by ending its validity), and `imi-node
//! federation sign` signs it as the next version. Keys are 64 hex digits; times are ms since
//! the epoch.
//!
//! ```toml
//! version = 2
//!
//! [[members]]
//! node = "DE"
//! role = "national"
//! addresses = ["/ip4/192.0.2.10/tcp/47000"]
//! signing_keys = [{ public = "…", valid_from = 1767225600000, valid_until = 1830297600000 }]
//! hpke_keys = [{ public = "…", valid_from = 1767225600000, valid_until = 1830297600000 }]
//! ```
use anyhow::{Context, Result, bail};
use imi_protocol::{HpkeKeyEntry, Member, NodeId, Role, SigningKeyEntry, Timestamp, TrustList};
use serde::{Deserialize, Serialize};

/// The file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustListFile {
    /// The version this list will have (it must be above the one in force).
    pub version: u64,
    /// The members.
    pub members: Vec<MemberFile>,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFile {
    /// Its node id.
    pub node: NodeId,
    /// `national` or `commission`.
    pub role: Role,
    /// Where peers dial it (multiaddresses).
    pub addresses: Vec<String>,
    /// Its ed25519 signing keys (also its libp2p identities).
    pub signing_keys: Vec<KeyFile>,
    /// Its X25519 HPKE keys.
    pub hpke_keys: Vec<KeyFile>,
}

/// A public key with its validity period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// 64 lowercase hex digits.
    pub public: String,
    /// From (ms since the epoch, inclusive).
    pub valid_from: Timestamp,
    /// Until (ms since the epoch, exclusive). Revoking a key is ending its validity.
    pub valid_until: Timestamp,
}

fn key(k: &KeyFile, what: &str, node: NodeId) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    if k.public.len() != 64 || k.public.bytes().any(|b| b.is_ascii_uppercase()) {
        bail!("{node}: a {what} key is not 64 lowercase hex digits");
    }
    hex::decode_to_slice(&k.public, &mut out)
        .with_context(|| format!("{node}: a {what} key is not hex"))?;
    if k.valid_from >= k.valid_until {
        bail!("{node}: a {what} key's valid_from is not before its valid_until");
    }
    Ok(out)
}

impl TrustListFile {
    /// The editable form of a list.
    pub fn of(list: &TrustList) -> TrustListFile {
        let k = |public: &[u8; 32], valid_from, valid_until| KeyFile {
            public: hex::encode(public),
            valid_from,
            valid_until,
        };
        TrustListFile {
            version: list.version,
            members: list
                .members
                .iter()
                .map(|m| MemberFile {
                    node: m.node,
                    role: m.role,
                    addresses: m.addresses.clone(),
                    signing_keys: m
                        .signing_keys
                        .iter()
                        .map(|s| k(&s.public, s.valid_from, s.valid_until))
                        .collect(),
                    hpke_keys: m
                        .hpke_keys
                        .iter()
                        .map(|h| k(&h.public, h.valid_from, h.valid_until))
                        .collect(),
                })
                .collect(),
        }
    }

    /// The list this file describes, issued at `issued`; checked as a receiving node checks
    /// one (members distinct, every signing key a strict ed25519 key, …).
    pub fn to_trust_list(&self, issued: Timestamp) -> Result<TrustList> {
        let mut members = Vec::with_capacity(self.members.len());
        for m in &self.members {
            if members.iter().any(|x: &Member| x.node == m.node) {
                bail!("{} is listed twice", m.node);
            }
            if m.signing_keys.is_empty() || m.hpke_keys.is_empty() {
                bail!(
                    "{}: needs at least one signing key and one HPKE key",
                    m.node
                );
            }
            members.push(Member {
                node: m.node,
                role: m.role,
                addresses: m.addresses.clone(),
                signing_keys: m
                    .signing_keys
                    .iter()
                    .map(|k| {
                        Ok(SigningKeyEntry {
                            public: key(k, "signing", m.node)?,
                            valid_from: k.valid_from,
                            valid_until: k.valid_until,
                        })
                    })
                    .collect::<Result<_>>()?,
                hpke_keys: m
                    .hpke_keys
                    .iter()
                    .map(|k| {
                        Ok(HpkeKeyEntry {
                            public: key(k, "HPKE", m.node)?,
                            valid_from: k.valid_from,
                            valid_until: k.valid_until,
                        })
                    })
                    .collect::<Result<_>>()?,
            });
        }
        let list = TrustList {
            version: self.version,
            issued,
            members,
        };
        list.validate()
            .map_err(|e| anyhow::anyhow!("the list is not valid: {e}"))?;
        Ok(list)
    }
}

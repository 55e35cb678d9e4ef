//! Repositories: per-area databases of entries owned by competent authorities (for
//! example the licences for cross-border road transport of euro cash, Regulation (EU) No
//! 1214/2011). A repository is a catalogue procedure of kind `repository`: its fields are
//! the procedure's questions, its `access` list names who holds and reads the entries
//! (country codes and authority ids; absent: every member state) and its `public` fields are
//! published without authentication.
//!
//! The body of an `imi.repository.entry` envelope is an [`EntryMessage`] (CBOR): one version
//! of one entry, sent by its owner's node to every other node on the access list (the header's
//! `case` is the entry's id, its `authority` the owner). A node keeps the highest version;
//! only the owner may change or withdraw an entry. [`check_entry`] runs on the owner's node
//! before anything is sealed and on every receiving node before anything is stored. Pure.
use crate::authority::country_of;
use crate::catalogue::{Catalogue, Procedure, ProcedureKind};
use crate::message::{CodedCheck, Refused, check_fields};
use crate::request::CodedAnswer;
use imi_protocol::{AuthorityId, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The version of the [`EntryMessage`] encoding.
pub const ENTRY_VERSION: u16 = 1;

/// How an entry's fields are checked ([`check_coded`]).
const FIELD: CodedCheck = CodedCheck {
    unknown: "unknown_field",
    invalid: "invalid_field",
    of: "entry",
    not_available: false,
};

/// One version of a repository entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryMessage {
    /// Encoding version, [`ENTRY_VERSION`].
    pub v: u16,
    /// The repository (a catalogue procedure of kind `repository`).
    pub repository: String,
    /// The entry's version: 1 when created, one more with each change.
    pub version: u64,
    /// Withdrawn by its owner (kept, no longer published).
    pub withdrawn: bool,
    /// Every field of the repository, once.
    pub fields: Vec<CodedAnswer>,
}

/// Encodes an entry message (CBOR).
pub fn encode(m: &EntryMessage) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing plain data into a Vec cannot fail.
    let _ = ciborium::into_writer(m, &mut out);
    out
}

/// Decodes an entry message; `None` if it is not one.
pub fn decode(b: &[u8]) -> Option<EntryMessage> {
    ciborium::from_reader(b).ok()
}

/// Who holds and reads a repository's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every member state's authorities.
    All,
    /// The countries listed (all their authorities) and the authorities listed.
    Listed {
        /// Countries whose every authority may read.
        countries: BTreeSet<NodeId>,
        /// Further authorities that may read.
        authorities: BTreeSet<AuthorityId>,
    },
}

impl Access {
    /// The access list of a repository procedure (the loader checked its entries).
    pub fn of(procedure: &Procedure) -> Access {
        let Some(list) = procedure.access() else {
            return Access::All;
        };
        let mut countries = BTreeSet::new();
        let mut authorities = BTreeSet::new();
        for a in list {
            if let Ok(n) = a.parse::<NodeId>() {
                countries.insert(n);
            } else if let Ok(id) = AuthorityId::new(a) {
                authorities.insert(id);
            }
        }
        Access::Listed {
            countries,
            authorities,
        }
    }

    /// Whether `node` holds the entries: a member state's node that is listed or has a
    /// listed authority. The Commission's node holds none.
    pub fn holds(&self, node: NodeId) -> bool {
        if node == NodeId::EU {
            return false;
        }
        match self {
            Access::All => true,
            Access::Listed {
                countries,
                authorities,
            } => {
                countries.contains(&node) || authorities.iter().any(|a| country_of(a) == Some(node))
            }
        }
    }

    /// Whether `authority`'s users may read the entries.
    pub fn reads(&self, authority: &AuthorityId) -> bool {
        let Some(country) = country_of(authority) else {
            return false;
        };
        if country == NodeId::EU {
            return false;
        }
        match self {
            Access::All => true,
            Access::Listed {
                countries,
                authorities,
            } => countries.contains(&country) || authorities.contains(authority),
        }
    }
}

/// Checks one version of an entry owned by `owner` (an authority of `owner_country`):
/// the repository exists and the owner's node holds it, the owner may read it, the version
/// is at least 1, every field of the repository is there once and fits its question.
/// Returns the repository's procedure.
pub fn check_entry<'c>(
    catalogue: &'c Catalogue,
    owner: &AuthorityId,
    owner_country: NodeId,
    m: &EntryMessage,
) -> Result<&'c Procedure, Refused> {
    if m.v != ENTRY_VERSION {
        return Err(Refused::new(
            "unsupported_version",
            format!("entry version {}", m.v),
        ));
    }
    let procedure = catalogue
        .procedure(&m.repository)
        .filter(|p| p.kind() == ProcedureKind::Repository)
        .ok_or_else(|| {
            Refused::new(
                "unknown_repository",
                format!("{} is not a repository of the catalogue", m.repository),
            )
        })?;
    if country_of(owner) != Some(owner_country) {
        return Err(Refused::new(
            "wrong_authority",
            format!("authority {owner} is not of {owner_country}"),
        ));
    }
    let access = Access::of(procedure);
    if !access.holds(owner_country) || !access.reads(owner) {
        return Err(Refused::new(
            "not_on_access_list",
            format!("{owner} is not on the access list of {}", m.repository),
        ));
    }
    if m.version == 0 {
        return Err(Refused::new("invalid_version", "versions start at 1"));
    }
    check_fields(catalogue, procedure, &m.fields, &[], |_| true, &FIELD)?;
    Ok(procedure)
}

//! Identifiers: nodes (the 30 EEA states and the Commission), messages, cases, authorities.
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use std::fmt;
use std::str::FromStr;

macro_rules! node_ids {
    ($($code:ident),* $(,)?) => {
        /// A federation node: one of the 30 EEA states (EU country codes, `EL` for Greece)
        /// or `EU`, the Commission.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)]
        pub enum NodeId { $($code),* }

        impl NodeId {
            /// Every node id, EEA states first (alphabetical), then `EU`.
            pub const ALL: &'static [NodeId] = &[$(NodeId::$code),*];

            /// The two-letter code.
            pub fn as_str(&self) -> &'static str {
                match self { $(NodeId::$code => stringify!($code)),* }
            }
        }

        impl FromStr for NodeId {
            type Err = UnknownNode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $(stringify!($code) => Ok(NodeId::$code),)* _ => Err(UnknownNode(s.chars().take(8).collect())) }
            }
        }
    };
}

node_ids!(
    AT, BE, BG, CY, CZ, DE, DK, EE, EL, ES, FI, FR, HR, HU, IE, IS, IT, LI, LT, LU, LV, MT, NL, NO,
    PL, PT, RO, SE, SI, SK, EU
);

/// A string that is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown node id {0:?}")]
pub struct UnknownNode(pub String);

/// What a node is in the federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A Member State's national node.
    National,
    /// The Commission node (indicators and scoreboard).
    Commission,
}

impl NodeId {
    /// The natural role of this id: `EU` is the Commission, every other id a national node.
    pub fn default_role(&self) -> Role {
        if *self == NodeId::EU {
            Role::Commission
        } else {
            Role::National
        }
    }

    /// Two bytes used as a key prefix in storage.
    pub fn as_bytes(&self) -> [u8; 2] {
        let b = self.as_str().as_bytes();
        [
            b.first().copied().unwrap_or(b'?'),
            b.get(1).copied().unwrap_or(b'?'),
        ]
    }

    /// Parses the two key-prefix bytes.
    pub fn from_bytes(b: &[u8]) -> Option<NodeId> {
        std::str::from_utf8(b).ok()?.parse().ok()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        NodeId::from_str(&s).map_err(D::Error::custom)
    }
}

macro_rules! random_id {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(rand::random())
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
            /// From raw bytes (exactly 16).
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                <[u8; 16]>::try_from(b).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = hex::FromHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 16];
                hex::decode_to_slice(s, &mut out)?;
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::cbor::fixed::deserialize::<D, 16>(d).map(Self)
            }
        }
    };
}

random_id!(
    MessageId,
    "A message id: 16 random bytes, chosen by the sender, in the signed header."
);
random_id!(
    CaseId,
    "A case id: 16 random bytes, chosen by the node that opens the case."
);

/// A competent authority's id, for example `DE-BY-0042`: at most 64 characters of
/// `[A-Za-z0-9._-]`, starting with the country code of its node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AuthorityId(String);

impl AuthorityId {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates and wraps an authority id.
    pub fn new(s: &str) -> Result<Self, crate::ProtocolError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(crate::ProtocolError::Invalid(format!(
                "bad authority id {s:?}"
            )))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuthorityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AuthorityId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        AuthorityId::new(&s).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_one_nodes_round_trip() {
        assert_eq!(NodeId::ALL.len(), 31);
        for n in NodeId::ALL {
            assert_eq!(n.as_str().parse::<NodeId>(), Ok(*n));
            assert_eq!(NodeId::from_bytes(&n.as_bytes()), Some(*n));
        }
        assert!("GR".parse::<NodeId>().is_err(), "Greece is EL in EU codes");
        assert_eq!(NodeId::EU.default_role(), Role::Commission);
    }

    #[test]
    fn authority_ids_are_checked() {
        assert!(AuthorityId::new("DE-BY-0042").is_ok());
        assert!(AuthorityId::new("").is_err());
        assert!(AuthorityId::new("a b").is_err());
        assert!(AuthorityId::new(&"x".repeat(65)).is_err());
    }
}

//! Users and their roles.
//!
//! Every user belongs to one authority of the node's own country. Roles:
//!
//! * `authority_user`: works on the cases of their authority;
//! * `coordinator`: an IMI coordinator, either national (every legal area of the country)
//!   or delegated for named legal areas; acts for their own authority like an authority
//!   user and, in addition, handles referrals (see [`crate::request`]);
//! * `auditor`: reads audit evidence, never acts on cases;
//! * `operator`: runs the node (config, backups, metrics), never acts on cases.
use crate::authority::country_of;
use crate::limits::{MAX_NAME_BYTES, valid_code};
use crate::request::Actor;
use imi_protocol::ids::{AuthorityId, NodeId};
use serde::{Deserialize, Serialize};

/// The legal areas a coordinator is responsible for.
///
/// Serialized as `"national"` or `{ delegated = ["PQ", "SD"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorScope {
    /// The national IMI coordinator: every legal area.
    National,
    /// A delegated coordinator for the listed legal areas only.
    Delegated(Vec<String>),
}

impl CoordinatorScope {
    /// Whether the scope covers `area`.
    pub fn covers(&self, area: &str) -> bool {
        match self {
            CoordinatorScope::National => true,
            CoordinatorScope::Delegated(areas) => areas.iter().any(|a| a == area),
        }
    }
}

/// What a user may do.
///
/// Serialized as `"authority_user"`, `"auditor"`, `"operator"` or
/// `{ coordinator = { scope = "national" } }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works on the cases of their authority.
    AuthorityUser,
    /// An IMI coordinator.
    Coordinator {
        /// National, or delegated for some areas.
        scope: CoordinatorScope,
    },
    /// Reads audit evidence.
    Auditor,
    /// Operates the node.
    Operator,
}

impl Role {
    /// The snake_case name of the role (without the scope).
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::AuthorityUser => "authority_user",
            Role::Coordinator { .. } => "coordinator",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }
}

/// A user of a national node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login id, unique within the node.
    pub id: String,
    /// The authority the user belongs to.
    pub authority: AuthorityId,
    /// What the user may do.
    pub role: Role,
}

/// Why a user record is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The user id is empty, too long or has control characters or blanks.
    #[error("bad user id")]
    BadId,
    /// The authority id has no country prefix.
    #[error("authority {0} has no country prefix")]
    BadAuthority(String),
    /// The authority belongs to another country than the node.
    #[error("authority {0} is not of this node's country")]
    ForeignAuthority(String),
    /// A delegated coordinator without areas, or with a malformed area code.
    #[error("bad coordinator scope")]
    BadScope,
}

impl UserError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            UserError::BadId => "bad_user_id",
            UserError::BadAuthority(_) => "bad_authority",
            UserError::ForeignAuthority(_) => "foreign_authority",
            UserError::BadScope => "bad_scope",
        }
    }
}

impl User {
    /// Checks the record for a node of `country`: well-formed id, an authority of that
    /// country, a non-empty well-formed delegated scope.
    pub fn validate(&self, country: NodeId) -> Result<(), UserError> {
        if self.id.is_empty()
            || self.id.len() > MAX_NAME_BYTES
            || self.id.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(UserError::BadId);
        }
        match country_of(&self.authority) {
            None => return Err(UserError::BadAuthority(self.authority.to_string())),
            Some(c) if c != country => {
                return Err(UserError::ForeignAuthority(self.authority.to_string()));
            }
            Some(_) => {}
        }
        if let Role::Coordinator {
            scope: CoordinatorScope::Delegated(areas),
        } = &self.role
            && (areas.is_empty() || !areas.iter().all(|a| valid_code(a)))
        {
            return Err(UserError::BadScope);
        }
        Ok(())
    }

    /// The country of the user's authority.
    pub fn country(&self) -> Option<NodeId> {
        country_of(&self.authority)
    }

    /// Whether the user may act on cases on behalf of `authority`: authority users and
    /// coordinators of that very authority. Auditors and operators never act on cases.
    pub fn may_act_for(&self, authority: &AuthorityId) -> bool {
        matches!(self.role, Role::AuthorityUser | Role::Coordinator { .. })
            && &self.authority == authority
    }

    /// Whether the user is an IMI coordinator of `country` responsible for `area`.
    pub fn is_coordinator_for(&self, country: NodeId, area: &str) -> bool {
        match &self.role {
            Role::Coordinator { scope } => self.country() == Some(country) && scope.covers(area),
            _ => false,
        }
    }

    /// Whether the user is an auditor.
    pub fn is_auditor(&self) -> bool {
        self.role == Role::Auditor
    }

    /// Whether the user is an operator.
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// The [`Actor`] this user is when working on a case of legal area `area`: their
    /// authority and its country, and whether they coordinate that area there. `None` for
    /// auditors, operators and users whose authority has no country prefix.
    pub fn actor(&self, area: &str) -> Option<Actor> {
        if !matches!(self.role, Role::AuthorityUser | Role::Coordinator { .. }) {
            return None;
        }
        let country = self.country()?;
        Some(Actor {
            authority: self.authority.clone(),
            country,
            coordinator: self.is_coordinator_for(country, area),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(authority: &str, role: Role) -> User {
        User {
            id: "alice".into(),
            authority: AuthorityId::new(authority).unwrap(),
            role,
        }
    }

    #[test]
    fn permissions() {
        let de = AuthorityId::new("DE-BY-ZAEK").unwrap();
        let other = AuthorityId::new("DE-NW-AEK").unwrap();
        let u = user("DE-BY-ZAEK", Role::AuthorityUser);
        assert!(u.may_act_for(&de) && !u.may_act_for(&other));
        assert!(!u.is_coordinator_for(NodeId::DE, "PQ"));
        assert_eq!(u.actor("PQ").map(|a| a.coordinator), Some(false));

        let national = user(
            "DE-NIMIC",
            Role::Coordinator {
                scope: CoordinatorScope::National,
            },
        );
        assert!(national.is_coordinator_for(NodeId::DE, "PQ"));
        assert!(national.is_coordinator_for(NodeId::DE, "PW"));
        assert!(!national.is_coordinator_for(NodeId::AT, "PQ"));
        assert_eq!(national.actor("PW").map(|a| a.coordinator), Some(true));

        let delegated = user(
            "DE-BY-LDC",
            Role::Coordinator {
                scope: CoordinatorScope::Delegated(vec!["PQ".into()]),
            },
        );
        assert!(delegated.is_coordinator_for(NodeId::DE, "PQ"));
        assert!(!delegated.is_coordinator_for(NodeId::DE, "SD"));
        assert_eq!(delegated.actor("SD").map(|a| a.coordinator), Some(false));

        for role in [Role::Auditor, Role::Operator] {
            let u = user("DE-BY-ZAEK", role);
            assert!(!u.may_act_for(&de));
            assert!(u.actor("PQ").is_none());
        }
        assert!(user("DE-BY-ZAEK", Role::Auditor).is_auditor());
        assert!(user("DE-BY-ZAEK", Role::Operator).is_operator());
    }

    #[test]
    fn validation() {
        assert_eq!(
            user("DE-BY-ZAEK", Role::AuthorityUser).validate(NodeId::DE),
            Ok(())
        );
        assert_eq!(
            user("AT-W-MAG", Role::AuthorityUser)
                .validate(NodeId::DE)
                .unwrap_err()
                .code(),
            "foreign_authority"
        );
        assert_eq!(
            user("nocountry", Role::AuthorityUser)
                .validate(NodeId::DE)
                .unwrap_err()
                .code(),
            "bad_authority"
        );
        let empty = Role::Coordinator {
            scope: CoordinatorScope::Delegated(vec![]),
        };
        assert_eq!(
            user("DE-X", empty).validate(NodeId::DE).unwrap_err().code(),
            "bad_scope"
        );
        let mut u = user("DE-X", Role::Operator);
        u.id = "a b".into();
        assert_eq!(u.validate(NodeId::DE).unwrap_err().code(), "bad_user_id");
    }

    #[test]
    fn roles_read_naturally_in_toml() {
        let src = r#"
            [[users]]
            id = "alice"
            authority = "DE-BY-ZAEK"
            role = "authority_user"

            [[users]]
            id = "bob"
            authority = "DE-NIMIC"
            role = { coordinator = { scope = "national" } }

            [[users]]
            id = "carol"
            authority = "DE-BY-LDC"
            role = { coordinator = { scope = { delegated = ["PQ", "SD"] } } }
        "#;
        #[derive(Deserialize, Serialize)]
        struct F {
            users: Vec<User>,
        }
        let f: F = toml::from_str(src).unwrap();
        assert_eq!(f.users.len(), 3);
        assert_eq!(f.users[0].role, Role::AuthorityUser);
        assert!(f.users[2].is_coordinator_for(NodeId::DE, "SD"));
        assert_eq!(f.users[1].role.as_str(), "coordinator");
        let back: F = toml::from_str(&toml::to_string(&f).unwrap()).unwrap();
        assert_eq!(back.users, f.users);
    }
}

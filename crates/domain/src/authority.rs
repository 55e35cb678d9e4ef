//! Competent authorities and the directory that finds them.
//!
//! An [`Authority`] belongs to exactly one country: its id starts with that country's node
//! code and a dash (`DE-BY-ZAEK` is a German authority). A national node holds its own
//! country's authorities in full and knows other countries' authorities through the
//! replicated directory; [`Directory`] here is only the in-memory lookup (by id, by
//! country, by legal area) that both use. Pure data: no I/O.
use crate::limits::{MAX_NAME_BYTES, valid_code, valid_language};
use imi_protocol::ids::{AuthorityId, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The administrative level of an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A ministry or national body.
    National,
    /// A region, province, Land, canton...
    Regional,
    /// A municipality or local office.
    Local,
}

impl Level {
    /// The snake_case name used in files and messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::National => "national",
            Level::Regional => "regional",
            Level::Local => "local",
        }
    }
}

/// The country an authority id belongs to: the text before its first `-`, if that is a
/// node code (`DE-BY-ZAEK` -> `DE`). `None` for ids without a valid country prefix.
pub fn country_of(id: &AuthorityId) -> Option<NodeId> {
    let (prefix, rest) = id.as_str().split_once('-')?;
    if rest.is_empty() {
        return None;
    }
    prefix.parse().ok()
}

/// A competent authority registered in IMI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authority {
    /// Its id, starting with `country` and a dash.
    pub id: AuthorityId,
    /// The country (node) it belongs to.
    pub country: NodeId,
    /// Its name in one or more languages, keyed by ISO 639-1 code (`de`, `en`, ...).
    pub names: BTreeMap<String, String>,
    /// National, regional or local.
    pub level: Level,
    /// The legal areas it handles (catalogue area codes).
    #[serde(default)]
    pub areas: Vec<String>,
    /// The procedures it handles (catalogue procedure codes).
    #[serde(default)]
    pub procedures: Vec<String>,
    /// The regulated professions it is competent for (vocabulary codes, `PROF-DENTIST`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub professions: Vec<String>,
    /// Its competences (vocabulary codes, `COMP-LICENSING`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub competences: Vec<String>,
    /// The city of its seat, in the country's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The region (Land, county, province...) it covers or sits in, in the country's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Why an authority record is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The id does not start with the country code and a dash.
    #[error("authority id {id} does not start with {country}-")]
    IdPrefix {
        /// The offending id.
        id: String,
        /// The country it claims.
        country: NodeId,
    },
    /// No name in any language.
    #[error("authority {0} has no name")]
    NoName(String),
    /// A language key is not a 2-3 letter lowercase code.
    #[error("bad language code {0:?}")]
    BadLanguage(String),
    /// A name is empty, blank or too long.
    #[error("bad name for language {0}")]
    BadName(String),
    /// An area or procedure code is malformed.
    #[error("bad code {0:?}")]
    BadCode(String),
    /// An area or procedure code is listed twice.
    #[error("duplicate code {0:?}")]
    DuplicateCode(String),
}

impl AuthorityError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthorityError::IdPrefix { .. } => "bad_id_prefix",
            AuthorityError::NoName(_) => "no_name",
            AuthorityError::BadLanguage(_) => "bad_language",
            AuthorityError::BadName(_) => "bad_name",
            AuthorityError::BadCode(_) => "bad_code",
            AuthorityError::DuplicateCode(_) => "duplicate_code",
        }
    }
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_codes(codes: &[String]) -> Result<(), AuthorityError> {
    let mut seen = BTreeSet::new();
    for c in codes {
        if !valid_code(c) {
            return Err(AuthorityError::BadCode(short(c)));
        }
        if !seen.insert(c.as_str()) {
            return Err(AuthorityError::DuplicateCode(short(c)));
        }
    }
    Ok(())
}

impl Authority {
    /// Checks the record: id prefix matches the country, at least one name, well-formed
    /// language keys, names and codes, no duplicate codes.
    pub fn validate(&self) -> Result<(), AuthorityError> {
        if country_of(&self.id) != Some(self.country) {
            return Err(AuthorityError::IdPrefix {
                id: short(self.id.as_str()),
                country: self.country,
            });
        }
        if self.names.is_empty() {
            return Err(AuthorityError::NoName(self.id.to_string()));
        }
        for (lang, name) in &self.names {
            if !valid_language(lang) {
                return Err(AuthorityError::BadLanguage(short(lang)));
            }
            if name.trim().is_empty()
                || name.len() > MAX_NAME_BYTES
                || name.chars().any(char::is_control)
            {
                return Err(AuthorityError::BadName(short(lang)));
            }
        }
        check_codes(&self.areas)?;
        check_codes(&self.procedures)?;
        check_codes(&self.professions)?;
        check_codes(&self.competences)?;
        for (what, place) in [("city", &self.city), ("region", &self.region)] {
            if let Some(p) = place
                && (p.trim().is_empty()
                    || p.len() > MAX_NAME_BYTES
                    || p.chars().any(char::is_control))
            {
                return Err(AuthorityError::BadName(what.to_owned()));
            }
        }
        Ok(())
    }

    /// The name in `lang`, else in English, else in the first language by code.
    pub fn name(&self, lang: &str) -> &str {
        self.names
            .get(lang)
            .or_else(|| self.names.get("en"))
            .or_else(|| self.names.values().next())
            .map_or("", String::as_str)
    }

    /// Whether it handles the legal area `area`.
    pub fn handles_area(&self, area: &str) -> bool {
        self.areas.iter().any(|a| a == area)
    }

    /// Whether it handles the procedure `procedure`.
    pub fn handles_procedure(&self, procedure: &str) -> bool {
        self.procedures.iter().any(|p| p == procedure)
    }
}

/// An in-memory authority directory: lookup by id, by country, by legal area.
///
/// Ordered maps only, so iteration order is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    by_id: BTreeMap<AuthorityId, Authority>,
    #[serde(default)]
    retired: BTreeSet<AuthorityId>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a directory from records, validating each; a later record with the same id
    /// replaces an earlier one.
    pub fn from_authorities(
        authorities: impl IntoIterator<Item = Authority>,
    ) -> Result<Self, AuthorityError> {
        let mut d = Self::new();
        for a in authorities {
            d.insert(a)?;
        }
        Ok(d)
    }

    /// Validates and inserts (or replaces) a record; returns the record it replaced.
    pub fn insert(&mut self, authority: Authority) -> Result<Option<Authority>, AuthorityError> {
        authority.validate()?;
        Ok(self.by_id.insert(authority.id.clone(), authority))
    }

    /// Removes a record.
    pub fn remove(&mut self, id: &AuthorityId) -> Option<Authority> {
        self.retired.remove(id);
        self.by_id.remove(id)
    }

    /// Validates and inserts (or replaces) a record, retired or not.
    pub fn set(&mut self, authority: Authority, retired: bool) -> Result<(), AuthorityError> {
        let id = authority.id.clone();
        self.insert(authority)?;
        if retired {
            self.retired.insert(id);
        } else {
            self.retired.remove(&id);
        }
        Ok(())
    }

    /// Whether the authority is retired (it stays known, for the cases that name it, but
    /// takes no new request).
    pub fn is_retired(&self, id: &AuthorityId) -> bool {
        self.retired.contains(id)
    }

    /// Whether the authority is known and not retired.
    pub fn is_active(&self, id: &AuthorityId) -> bool {
        self.contains(id) && !self.is_retired(id)
    }

    /// The record with this id.
    pub fn get(&self, id: &AuthorityId) -> Option<&Authority> {
        self.by_id.get(id)
    }

    /// Whether an authority with this id is known.
    pub fn contains(&self, id: &AuthorityId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Every record, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Authority> {
        self.by_id.values()
    }

    /// The active authorities of one country, ordered by id.
    pub fn by_country(&self, country: NodeId) -> impl Iterator<Item = &Authority> {
        self.by_id
            .values()
            .filter(move |a| a.country == country && !self.retired.contains(&a.id))
    }

    /// The active authorities of one country that handle a legal area, ordered by id.
    pub fn handling<'a>(
        &'a self,
        country: NodeId,
        area: &'a str,
    ) -> impl Iterator<Item = &'a Authority> + 'a {
        self.by_country(country)
            .filter(move |a| a.handles_area(area))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(id: &str, country: NodeId) -> Authority {
        Authority {
            id: AuthorityId::new(id).unwrap(),
            country,
            names: BTreeMap::from([
                ("de".to_owned(), "Zentralstelle".to_owned()),
                ("en".to_owned(), "Central office".to_owned()),
            ]),
            level: Level::Regional,
            areas: vec!["PQ".into(), "SD".into()],
            procedures: vec!["PQ-REQ".into()],
            professions: vec!["PROF-DENTIST".into()],
            competences: vec![],
            city: Some("München".into()),
            region: Some("Bayern".into()),
        }
    }

    #[test]
    fn validation() {
        let a = authority("DE-BY-ZAEK", NodeId::DE);
        assert_eq!(a.validate(), Ok(()));
        assert_eq!(country_of(&a.id), Some(NodeId::DE));
        let wrong = authority("DE-BY-ZAEK", NodeId::AT);
        assert_eq!(wrong.validate().unwrap_err().code(), "bad_id_prefix");
        assert_eq!(
            authority("DEBYZAEK", NodeId::DE)
                .validate()
                .unwrap_err()
                .code(),
            "bad_id_prefix"
        );
        assert_eq!(
            authority("DE-", NodeId::DE).validate().unwrap_err().code(),
            "bad_id_prefix"
        );
        assert_eq!(
            authority("GR-X", NodeId::EL).validate().unwrap_err().code(),
            "bad_id_prefix"
        );
        let mut n = a.clone();
        n.names.clear();
        assert_eq!(n.validate().unwrap_err().code(), "no_name");
        let mut n = a.clone();
        n.names.insert("EN".into(), "x".into());
        assert_eq!(n.validate().unwrap_err().code(), "bad_language");
        let mut n = a.clone();
        n.names.insert("fr".into(), "  ".into());
        assert_eq!(n.validate().unwrap_err().code(), "bad_name");
        let mut n = a.clone();
        n.areas.push("PQ".into());
        assert_eq!(n.validate().unwrap_err().code(), "duplicate_code");
        let mut n = a;
        n.procedures.push("a b".into());
        assert_eq!(n.validate().unwrap_err().code(), "bad_code");
    }

    #[test]
    fn names_fall_back_to_english_then_first() {
        let mut a = authority("DE-BY-ZAEK", NodeId::DE);
        assert_eq!(a.name("de"), "Zentralstelle");
        assert_eq!(a.name("fr"), "Central office");
        a.names.remove("en");
        assert_eq!(a.name("fr"), "Zentralstelle");
        assert!(a.handles_area("PQ") && !a.handles_area("PW"));
        assert!(a.handles_procedure("PQ-REQ"));
    }

    #[test]
    fn directory_lookups() {
        let mut d = Directory::from_authorities([
            authority("DE-BY-ZAEK", NodeId::DE),
            authority("DE-NW-AEK", NodeId::DE),
            authority("AT-W-MAG", NodeId::AT),
        ])
        .unwrap();
        assert_eq!(d.len(), 3);
        let id = AuthorityId::new("DE-NW-AEK").unwrap();
        assert_eq!(d.get(&id).map(|a| a.country), Some(NodeId::DE));
        let de: Vec<&str> = d.by_country(NodeId::DE).map(|a| a.id.as_str()).collect();
        assert_eq!(de, ["DE-BY-ZAEK", "DE-NW-AEK"]);
        assert_eq!(d.handling(NodeId::AT, "SD").count(), 1);
        assert_eq!(d.handling(NodeId::AT, "PW").count(), 0);
        assert!(
            d.insert(authority("DE-NW-AEK", NodeId::DE))
                .unwrap()
                .is_some()
        );
        assert!(d.insert(authority("DE-X", NodeId::FR)).is_err());
        assert_eq!(d.len(), 3);
        assert!(d.remove(&id).is_some());
        assert!(!d.contains(&id));
        d.set(authority("AT-W-MAG", NodeId::AT), true).unwrap();
        let at = AuthorityId::new("AT-W-MAG").unwrap();
        assert!(d.contains(&at) && d.is_retired(&at) && !d.is_active(&at));
        assert_eq!(
            d.by_country(NodeId::AT).count(),
            0,
            "retired ones are not listed"
        );
        d.set(authority("AT-W-MAG", NodeId::AT), false).unwrap();
        assert!(d.is_active(&at));
        let json = toml::to_string(&authority("DE-BY-ZAEK", NodeId::DE)).unwrap();
        let back: Authority = toml::from_str(&json).unwrap();
        assert_eq!(back, authority("DE-BY-ZAEK", NodeId::DE));
    }
}

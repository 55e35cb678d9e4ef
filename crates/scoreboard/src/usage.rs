//! Usage facts: what the Commission node learns about the one-to-many exchanges
//! (notifications, alerts, repository entries), and the yearly statistics it publishes
//! from them ("43,948 notifications were sent through IMI in 2023", seeds 001 and 002).
//!
//! A [`UsageFact`] is one exchange's metadata and nothing else: its opaque id, what it is,
//! its catalogue type, the sending country, the recipient countries, when it was sent, and
//! for an alert whether it was late (more than three days after the decision). No
//! authority, name, field or text.
//!
//! [`Usage`] counts, per country and kind, the exchanges a country sent and those it was a
//! recipient of, sent within a [`Period`], and the late alerts it sent.

use crate::{COUNTRIES, Fact, Period};
use imi_protocol::dates::parse_rfc3339;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the [`UsageFact`] encoding.
pub const USAGE_VERSION: u16 = 1;
/// Most recipient countries an exchange has: every EEA country but the sender, and `EU`.
pub const MAX_RECIPIENTS: usize = COUNTRIES.len();

/// What kind of exchange a usage fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageKind {
    /// A notification (`imi.notification`, step `notify`).
    Notification,
    /// An alert (`imi.alert`, step `alert`).
    Alert,
    /// A new repository entry (`imi.repository.entry`, version 1).
    RepositoryEntry,
}

impl UsageKind {
    /// Every kind, in output order.
    pub const ALL: [UsageKind; 3] = [
        UsageKind::Notification,
        UsageKind::Alert,
        UsageKind::RepositoryEntry,
    ];

    /// The name used in facts and statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Notification => "notification",
            UsageKind::Alert => "alert",
            UsageKind::RepositoryEntry => "repository_entry",
        }
    }
}

/// One exchange's usage fact: the body of an `imi.usage` envelope (CBOR) and one line of
/// the export (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageFact {
    /// Encoding version, [`USAGE_VERSION`].
    pub v: u16,
    /// What it is.
    pub kind: UsageKind,
    /// The exchange's id (the envelopes' `case`), 32 lowercase hexadecimal digits.
    pub id: String,
    /// Its catalogue type (`SD-P03`, `PQ-P02`, `CIT-P01`).
    pub procedure: String,
    /// The sending country.
    pub sender: String,
    /// The recipient countries (`EU` for the Commission), each once, in increasing order;
    /// for a repository entry the other nodes holding the repository (possibly none).
    pub recipients: Vec<String>,
    /// When it was sent (the signed time of its first envelope), RFC 3339 UTC.
    pub sent_at: String,
    /// An alert sent more than three days after the decision; false for anything else.
    pub late: bool,
}

/// Why a usage fact is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The version is not [`USAGE_VERSION`].
    #[error("usage fact version {0}")]
    Version(u16),
    /// The id is not 32 lowercase hexadecimal digits.
    #[error("id is not 32 lowercase hexadecimal digits")]
    BadId,
    /// The procedure is not a catalogue code.
    #[error("procedure is not a catalogue code")]
    BadProcedure,
    /// The sender is not an EEA country.
    #[error("sender is not an EEA country")]
    BadSender,
    /// The recipients are empty (but for a repository entry), too many, unordered,
    /// repeated, unknown or the sender.
    #[error("recipients must be 1 to 30 distinct countries or EU, in order, never the sender")]
    BadRecipients,
    /// `sent_at` is not an RFC 3339 UTC time.
    #[error("sent_at is not an RFC 3339 UTC time")]
    BadTime,
    /// `late` on something other than an alert.
    #[error("only an alert can be late")]
    LateNotAlert,
}

impl UsageFact {
    /// Checks every field; `sent_at` in ms.
    pub fn validate(&self) -> Result<i64, UsageError> {
        if self.v != USAGE_VERSION {
            return Err(UsageError::Version(self.v));
        }
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if self.id.len() != 32 || !self.id.bytes().all(hex) {
            return Err(UsageError::BadId);
        }
        let code = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-';
        if self.procedure.is_empty()
            || self.procedure.len() > 32
            || !self.procedure.bytes().all(code)
        {
            return Err(UsageError::BadProcedure);
        }
        if !COUNTRIES.contains(&self.sender.as_str()) {
            return Err(UsageError::BadSender);
        }
        let known = |c: &String| c == "EU" || COUNTRIES.contains(&c.as_str());
        let ordered = self
            .recipients
            .iter()
            .zip(self.recipients.iter().skip(1))
            .all(|(a, b)| a < b);
        // A repository entry may be held by its owner's node alone.
        if (self.recipients.is_empty() && self.kind != UsageKind::RepositoryEntry)
            || self.recipients.len() > MAX_RECIPIENTS
            || !ordered
            || !self.recipients.iter().all(known)
            || self.recipients.contains(&self.sender)
        {
            return Err(UsageError::BadRecipients);
        }
        if self.late && self.kind != UsageKind::Alert {
            return Err(UsageError::LateNotAlert);
        }
        let ms = parse_rfc3339(&self.sent_at).ok_or(UsageError::BadTime)?;
        i64::try_from(ms).map_err(|_| UsageError::BadTime)
    }

    /// Formats a timestamp (ms) as the facts' time format ([`Fact::time`]).
    pub fn time(ms: u64) -> String {
        Fact::time(ms)
    }
}

/// One country's counts of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Sent by the country's authorities.
    pub sent: u64,
    /// Received by its node (it was a recipient).
    pub received: u64,
}

/// One country's usage in a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CountryUsage {
    /// Notifications.
    pub notifications: Counts,
    /// Alerts.
    pub alerts: Counts,
    /// Alerts it sent late (more than three days after the decision).
    pub alerts_late: u64,
    /// Repository entries created by its authorities (`sent`) and held by its node as a
    /// holder on the access list (`received`).
    pub repository_entries: Counts,
}

impl CountryUsage {
    fn counts(&mut self, kind: UsageKind) -> &mut Counts {
        match kind {
            UsageKind::Notification => &mut self.notifications,
            UsageKind::Alert => &mut self.alerts,
            UsageKind::RepositoryEntry => &mut self.repository_entries,
        }
    }
}

/// The usage statistics of a period: per country (the 30 EEA countries, in order, and `EU`
/// as a recipient), and the totals of exchanges sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// First day, `YYYY-MM-DD`.
    pub from: String,
    /// First day after, `YYYY-MM-DD`.
    pub to: String,
    /// Exchanges sent in the period: notifications, alerts, repository entries.
    pub totals: BTreeMap<&'static str, u64>,
    /// Per country.
    pub countries: BTreeMap<String, CountryUsage>,
}

impl Usage {
    /// The statistics of `facts` sent within `period`; invalid facts are skipped (the
    /// Commission node stores only valid ones).
    pub fn of<'a>(period: Period, facts: impl IntoIterator<Item = &'a UsageFact>) -> Self {
        let mut b = UsageBuilder::new(period);
        for f in facts {
            b.add(f);
        }
        b.finish()
    }
}

/// [`Usage::of`] one fact at a time, for facts read a chunk at a time from a store.
#[derive(Debug, Clone)]
pub struct UsageBuilder {
    from: i64,
    to: i64,
    usage: Usage,
}

impl UsageBuilder {
    /// No facts yet, for `period`.
    pub fn new(period: Period) -> Self {
        let countries: BTreeMap<String, CountryUsage> = COUNTRIES
            .iter()
            .chain(std::iter::once(&"EU"))
            .map(|c| (c.to_string(), CountryUsage::default()))
            .collect();
        let totals: BTreeMap<&'static str, u64> =
            UsageKind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
        UsageBuilder {
            from: period.start_ms(),
            to: period.end_ms(),
            usage: Usage {
                from: period.from.to_string(),
                to: period.to.to_string(),
                totals,
                countries,
            },
        }
    }

    /// Counts `f` if it is valid and was sent within the period.
    pub fn add(&mut self, f: &UsageFact) {
        let Ok(sent) = f.validate() else { return };
        if sent < self.from || sent >= self.to {
            return;
        }
        let u = &mut self.usage;
        *u.totals.entry(f.kind.as_str()).or_default() += 1;
        if let Some(c) = u.countries.get_mut(&f.sender) {
            c.counts(f.kind).sent += 1;
            if f.late {
                c.alerts_late += 1;
            }
        }
        for r in &f.recipients {
            if let Some(c) = u.countries.get_mut(r) {
                c.counts(f.kind).received += 1;
            }
        }
    }

    /// The statistics.
    pub fn finish(self) -> Usage {
        self.usage
    }
}

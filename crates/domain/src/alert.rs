//! Alerts (Directive 2005/36/EC Art. 56a; Implementing Regulation (EU) 2015/983): a
//! competent authority alerts the other member states that a professional is restricted or
//! prohibited from practising. An alert type is a catalogue procedure of kind `alert`; its
//! fields (the measure, its dates) are readable by every recipient node's incoming-alert
//! coordinator, who routes the alert to the authorities competent for the profession.
//!
//! **Need-to-know by encryption.** The professional's identity is sealed a second time,
//! inside the envelope, under a key of the alert's own (`imi_protocol::fields`): the
//! coordinator's node opens the envelope but not the identity. When the coordinator forwards
//! the alert to authorities, their node asks the sender's node for the key (step `forward`),
//! and the sender's node sends it to that node alone, sealed in an envelope, naming the
//! authorities it is for (step `grant`). Only those authorities' users are shown the
//! identity.
//!
//! The body of an `imi.alert` envelope is an [`AlertMessage`] (CBOR). Pure: no I/O, no
//! clock.
use crate::catalogue::{Addressees, Catalogue, CommissionRule, ProcedureKind, ProfessionRule};
use crate::message::{CodedCheck, Refused, SubjectData, check_fields};
use crate::request::CodedAnswer;
use imi_protocol::fields::SealedFields;
use imi_protocol::{AuthorityId, CaseId, NodeId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The version of the [`AlertMessage`] encoding.
pub const ALERT_VERSION: u16 = 1;
/// An alert is due within three days of the decision it reports (Art. 56a(3)), and its
/// closure within three days of the end of the measure.
pub const ALERT_DUE_MS: u64 = 3 * 86_400_000;
/// Most authorities one forward names.
pub const MAX_FORWARD_AUTHORITIES: usize = 200;

const FIELD: CodedCheck = CodedCheck {
    unknown: "unknown_field",
    invalid: "invalid_field",
    of: "alert",
    not_available: false,
};

/// An alert as sent to every other member state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Encoding version, [`ALERT_VERSION`].
    pub v: u16,
    /// The alert type: a catalogue procedure of kind `alert`.
    pub procedure: String,
    /// The regulated profession (vocabulary code, e.g. `PROF-DOCTOR`); empty when the type's
    /// `profession` is `optional` and none is named.
    pub profession: String,
    /// The type's fields (the measure and its scope): every question of the type once.
    pub fields: Vec<CodedAnswer>,
    /// The day of the decision, ms (start of the UTC day).
    pub decided: Timestamp,
    /// Until when the measure applies (start of the UTC day), if limited.
    pub valid_until: Option<Timestamp>,
    /// The professional's identity, a CBOR `SubjectData` sealed under the alert's key with
    /// the context [`identity_context`].
    pub identity: SealedFields,
}

/// The body of an `imi.alert` envelope; the header's `case` is the alert's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMessage {
    /// Step `alert`: the alert, from the sender to every other member state.
    Alert(Alert),
    /// Step `forward`: a recipient's coordinator forwarded the alert to these authorities
    /// of its country; to the sender's node, which answers with a `grant`.
    Forward {
        /// Encoding version.
        v: u16,
        /// The authorities.
        authorities: Vec<AuthorityId>,
    },
    /// Step `close`: the sender closes the alert (the measure ended on `ended`, the start
    /// of a UTC day); to every recipient. A closed alert's identity is erased.
    Close {
        /// Encoding version.
        v: u16,
        /// The day the measure ended.
        ended: Timestamp,
    },
    /// Step `modify`: the sender changes the measure and its scope (the type's fields) or
    /// its validity; to every recipient. `revision` counts the modifications (1 for the
    /// first); a recipient keeps the highest. The profession and the professional stay.
    Modify {
        /// Encoding version.
        v: u16,
        /// 1 for the first modification, then one more each time.
        revision: u32,
        /// Every field of the type, as for the alert.
        fields: Vec<CodedAnswer>,
        /// Until when the measure now applies.
        valid_until: Option<Timestamp>,
    },
    /// Step `grant`: the identity key, for the authorities named, to their node only.
    Grant {
        /// Encoding version.
        v: u16,
        /// The authorities the key is for.
        authorities: Vec<AuthorityId>,
        /// The alert's identity key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
}

impl AlertMessage {
    /// The header step of this message.
    pub fn step(&self) -> &'static str {
        match self {
            AlertMessage::Alert(_) => "alert",
            AlertMessage::Forward { .. } => "forward",
            AlertMessage::Grant { .. } => "grant",
            AlertMessage::Close { .. } => "close",
            AlertMessage::Modify { .. } => "modify",
        }
    }
}

/// Encodes an alert message (CBOR).
pub fn encode(m: &AlertMessage) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing plain data into a Vec cannot fail.
    let _ = ciborium::into_writer(m, &mut out);
    out
}

/// Decodes an alert message; `None` if it is not one.
pub fn decode(b: &[u8]) -> Option<AlertMessage> {
    ciborium::from_reader(b).ok()
}

/// The sealing context of an alert's identity: its 16-byte id, then `identity`.
pub fn identity_context(id: &CaseId) -> Vec<u8> {
    let mut c = id.as_bytes().to_vec();
    c.extend_from_slice(b"identity");
    c
}

/// The incoming-alert coordinator of a member state: its national IMI coordinator's
/// authority, `<CC>-NC`; on the Commission's node, `EU-COMMISSION`.
pub fn incoming_coordinator(country: NodeId) -> Option<AuthorityId> {
    if country == NodeId::EU {
        return AuthorityId::new(crate::notification::COMMISSION_AUTHORITY).ok();
    }
    AuthorityId::new(&format!("{country}-NC")).ok()
}

/// Checks an alert's recipient nodes `to` against its type: no duplicate and never the
/// sender; the Commission (`EU`) there if the type requires it, absent if it excludes it; a
/// type for the member states concerned names at least one.
pub fn check_recipients(
    catalogue: &Catalogue,
    procedure: &str,
    sender_country: NodeId,
    to: &[NodeId],
) -> Result<(), Refused> {
    let p = catalogue
        .procedure(procedure)
        .filter(|p| p.kind() == ProcedureKind::Alert)
        .ok_or_else(|| {
            Refused::new(
                "unknown_alert_type",
                format!("{procedure} is not an alert type of the catalogue"),
            )
        })?;
    let unique: BTreeSet<NodeId> = to.iter().copied().collect();
    if unique.len() != to.len() || unique.contains(&sender_country) {
        return Err(Refused::new(
            "invalid_recipients",
            "each member state once, never the sender's own",
        ));
    }
    let commission = unique.contains(&NodeId::EU);
    match (p.commission(), commission) {
        (CommissionRule::Required, false) => {
            return Err(Refused::new(
                "commission_required",
                format!("an alert of type {procedure} goes to the Commission"),
            ));
        }
        (CommissionRule::None, true) => {
            return Err(Refused::new(
                "commission_not_allowed",
                format!("an alert of type {procedure} does not go to the Commission"),
            ));
        }
        _ => {}
    }
    if p.addressees() == Addressees::Concerned && unique.len() == usize::from(commission) {
        return Err(Refused::new(
            "missing_member_states",
            format!("an alert of type {procedure} names the member states concerned"),
        ));
    }
    Ok(())
}

/// Checks an alert sent by `sender` (an authority of `sender_country`): the type is an
/// alert procedure; a profession is named where the type requires one (and, with
/// `professions`, any profession named is one of them); every field of the type is there
/// once and fits; the validity ends after the decision.
pub fn check_alert(
    catalogue: &Catalogue,
    professions: Option<&BTreeSet<String>>,
    sender: &AuthorityId,
    sender_country: NodeId,
    a: &Alert,
) -> Result<(), Refused> {
    if a.v != ALERT_VERSION {
        return Err(Refused::new(
            "unsupported_version",
            format!("alert version {}", a.v),
        ));
    }
    if crate::authority::country_of(sender) != Some(sender_country) {
        return Err(Refused::new(
            "wrong_authority",
            format!("authority {sender} is not of {sender_country}"),
        ));
    }
    let procedure = catalogue
        .procedure(&a.procedure)
        .filter(|p| p.kind() == ProcedureKind::Alert)
        .ok_or_else(|| {
            Refused::new(
                "unknown_alert_type",
                format!("{} is not an alert type of the catalogue", a.procedure),
            )
        })?;
    let named = !a.profession.is_empty();
    if a.profession.trim().is_empty()
        && (named || procedure.profession() == ProfessionRule::Required)
    {
        return Err(Refused::new(
            "missing_profession",
            "an alert names the profession",
        ));
    }
    if named
        && (a.profession.trim() != a.profession
            || professions.is_some_and(|known| !known.contains(&a.profession)))
    {
        return Err(Refused::new(
            "unknown_profession",
            format!("{} is not a profession of the vocabulary", a.profession),
        ));
    }
    check_measure(catalogue, &a.procedure, &a.fields, a.decided, a.valid_until)?;
    if a.identity.ct.is_empty()
        || a.identity.ct.len() > imi_protocol::fields::MAX_SEALED_FIELDS_BYTES
    {
        return Err(Refused::new(
            "invalid_identity",
            "the sealed identity is empty or too large",
        ));
    }
    Ok(())
}

/// Checks an alert's measure (the fields of type `procedure`, every one once) and its
/// validity (ending after the decision): for an alert and for each modification of it.
pub fn check_measure(
    catalogue: &Catalogue,
    procedure: &str,
    fields: &[CodedAnswer],
    decided: Timestamp,
    valid_until: Option<Timestamp>,
) -> Result<(), Refused> {
    let p = catalogue
        .procedure(procedure)
        .filter(|p| p.kind() == ProcedureKind::Alert)
        .ok_or_else(|| {
            Refused::new(
                "unknown_alert_type",
                format!("{procedure} is not an alert type of the catalogue"),
            )
        })?;
    check_fields(catalogue, p, fields, &[], |_| true, &FIELD)?;
    if valid_until.is_some_and(|u| u <= decided) {
        return Err(Refused::new(
            "invalid_validity",
            "valid_until must be after the decision",
        ));
    }
    Ok(())
}

/// Checks the professional's identity before it is sealed.
pub fn check_identity(identity: &SubjectData) -> Result<(), Refused> {
    identity.validate()
}

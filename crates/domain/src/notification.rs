//! Notifications: one authority informs selected authorities of other member states and/or
//! the Commission about an event, a piece of information or an action taken. A notification
//! type is a catalogue procedure of kind `notification`; its structured fields are the
//! procedure's questions (all required but those the type lists as `optional`).
//!
//! The body of an `imi.notification` envelope is a [`NotificationMessage`] (CBOR): the
//! notification itself (step `notify`, sent once to every recipient node: the envelope's
//! content key is sealed to each of them, so only the sender and the recipients can read
//! it) or a named authority's acknowledgement that it read it (step `read`, back to the
//! sender). The envelope header's `case` is the notification's id, so a notification, its
//! receipts and its acknowledgements form one chain in each node's transparency log.
//!
//! [`check_notification`] is run identically by the sending node (before anything is
//! sealed) and by every receiving node (before anything is stored). Pure: no I/O, no clock.
use crate::authority::{Directory, country_of};
use crate::catalogue::{Catalogue, CommissionRule, ProcedureKind};
use crate::message::{CodedCheck, FileBytes, Refused, check_fields, match_files};
use crate::request::{AttachmentRef, CodedAnswer};
use imi_protocol::{AuthorityId, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The version of the [`NotificationMessage`] encoding.
pub const NOTIFICATION_VERSION: u16 = 1;
/// Most authorities one notification names, over all countries (every authority of a
/// large profession in 30 countries is far fewer; a list of 10,000 is a mistake or an
/// attack, refused before anything is sealed).
pub const MAX_RECIPIENT_AUTHORITIES: usize = 1_000;
/// Most authorities one notification names in one country.
pub const MAX_AUTHORITIES_PER_COUNTRY: usize = 200;
/// Most fields of one notification.
pub const MAX_FIELDS: usize = 64;
/// How a notification's fields are checked ([`check_coded`]).
const FIELD: CodedCheck = CodedCheck {
    unknown: "unknown_field",
    invalid: "invalid_field",
    of: "notification",
    not_available: false,
};
/// The Commission's services as a recipient authority (the Commission node keeps no
/// directory; this is the one authority it serves).
pub const COMMISSION_AUTHORITY: &str = "EU-COMMISSION";

/// The authorities of one country (or the Commission) a notification is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addressee {
    /// The country's node (`EU` for the Commission).
    pub country: NodeId,
    /// Its authorities named (each of `country`).
    pub authorities: Vec<AuthorityId>,
}

/// A notification as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// Encoding version, [`NOTIFICATION_VERSION`].
    pub v: u16,
    /// The notification type: a catalogue procedure of kind `notification`.
    pub procedure: String,
    /// Whom it is for, one entry per country, in country order.
    pub recipients: Vec<Addressee>,
    /// The type's fields (catalogue question codes and values).
    pub fields: Vec<CodedAnswer>,
    /// Attached files (an `attachment` field's value is the file's SHA-256).
    #[serde(default)]
    pub attachments: Vec<AttachmentRef>,
    /// The attached files' contents, in any order.
    #[serde(default)]
    pub files: Vec<FileBytes>,
}

/// The body of an `imi.notification` envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationMessage {
    /// The notification (header step `notify`; header authority: the sender).
    Notify(Notification),
    /// A named authority read it (header step `read`; header authority: that authority).
    Read {
        /// Encoding version, [`NOTIFICATION_VERSION`].
        v: u16,
    },
}

impl NotificationMessage {
    /// The header step of this message.
    pub fn step(&self) -> &'static str {
        match self {
            NotificationMessage::Notify(_) => "notify",
            NotificationMessage::Read { .. } => "read",
        }
    }
}

/// Encodes a message body (CBOR).
pub fn encode(m: &NotificationMessage) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing plain data into a Vec cannot fail.
    let _ = ciborium::into_writer(m, &mut out);
    out
}

/// Decodes a message body; `None` if it is not a [`NotificationMessage`].
pub fn decode(b: &[u8]) -> Option<NotificationMessage> {
    ciborium::from_reader(b).ok()
}

impl Notification {
    /// The addressee entry of `country`.
    pub fn addressee(&self, country: NodeId) -> Option<&Addressee> {
        self.recipients.iter().find(|a| a.country == country)
    }

    /// The recipient nodes.
    pub fn countries(&self) -> Vec<NodeId> {
        self.recipients.iter().map(|a| a.country).collect()
    }

    /// Whether `authority` of `country` is a named recipient.
    pub fn names(&self, country: NodeId, authority: &AuthorityId) -> bool {
        self.addressee(country)
            .is_some_and(|a| a.authorities.contains(authority))
    }
}

/// Checks a notification sent by `sender` (an authority of `sender_country`): the type is
/// a notification procedure; the recipients are distinct other countries (and the Commission
/// exactly as the type allows), each with 1 to [`MAX_AUTHORITIES_PER_COUNTRY`] distinct
/// authorities of that country, at most [`MAX_RECIPIENT_AUTHORITIES`] in all; every
/// required field is there, no field twice or foreign to the type, every value of its
/// field's type; attachments match their files. With `directory` (the sending node), every
/// named member-state authority must be in it and not retired.
pub fn check_notification(
    catalogue: &Catalogue,
    directory: Option<&Directory>,
    sender: &AuthorityId,
    sender_country: NodeId,
    n: &Notification,
) -> Result<(), Refused> {
    if n.v != NOTIFICATION_VERSION {
        return Err(Refused::new(
            "unsupported_version",
            format!("notification version {}", n.v),
        ));
    }
    if country_of(sender) != Some(sender_country) {
        return Err(Refused::new(
            "wrong_authority",
            format!("authority {sender} is not of {sender_country}"),
        ));
    }
    let procedure = catalogue
        .procedure(&n.procedure)
        .filter(|p| p.kind() == ProcedureKind::Notification)
        .ok_or_else(|| {
            Refused::new(
                "unknown_notification_type",
                format!(
                    "{} is not a notification type of the catalogue",
                    n.procedure
                ),
            )
        })?;
    check_recipients(directory, sender_country, procedure.commission(), n)?;
    // Fields.
    if n.fields.len() > MAX_FIELDS {
        return Err(Refused::new(
            "too_many_fields",
            format!("at most {MAX_FIELDS} fields"),
        ));
    }
    check_fields(
        catalogue,
        procedure,
        &n.fields,
        &n.attachments,
        |q| procedure.required(q),
        &FIELD,
    )?;
    match_files(&n.attachments, &n.files)?;
    Ok(())
}

fn check_recipients(
    directory: Option<&Directory>,
    sender_country: NodeId,
    commission: CommissionRule,
    n: &Notification,
) -> Result<(), Refused> {
    let bad = |code: &'static str, d: String| Err(Refused::new(code, d));
    if n.recipients.is_empty() {
        return bad("no_recipients", "a notification needs recipients".into());
    }
    let total: usize = n.recipients.iter().map(|a| a.authorities.len()).sum();
    if total > MAX_RECIPIENT_AUTHORITIES {
        return bad(
            "too_many_recipients",
            format!("at most {MAX_RECIPIENT_AUTHORITIES} recipient authorities, not {total}"),
        );
    }
    let mut last: Option<NodeId> = None;
    for a in &n.recipients {
        if last.is_some_and(|l| l >= a.country) {
            return bad(
                "invalid_recipients",
                "recipient countries must be distinct, in order".into(),
            );
        }
        last = Some(a.country);
        if a.country == sender_country {
            return bad(
                "invalid_recipients",
                "a notification goes to other countries".into(),
            );
        }
        if a.authorities.is_empty() || a.authorities.len() > MAX_AUTHORITIES_PER_COUNTRY {
            return bad(
                "invalid_recipients",
                format!(
                    "name 1 to {MAX_AUTHORITIES_PER_COUNTRY} authorities of {}",
                    a.country
                ),
            );
        }
        let mut names = BTreeSet::new();
        for id in &a.authorities {
            if country_of(id) != Some(a.country) || !names.insert(id) {
                return bad(
                    "invalid_recipients",
                    format!("{id} is not an authority of {}, or named twice", a.country),
                );
            }
            if a.country == NodeId::EU {
                if id.as_str() != COMMISSION_AUTHORITY {
                    return bad(
                        "unknown_authority",
                        format!("the Commission is addressed as {COMMISSION_AUTHORITY}"),
                    );
                }
            } else if let Some(dir) = directory {
                if !dir.contains(id) {
                    return bad(
                        "unknown_authority",
                        format!("authority {id} is not in the directory"),
                    );
                }
                if dir.is_retired(id) {
                    return bad(
                        "retired_authority",
                        format!("authority {id} is retired from the directory"),
                    );
                }
            }
        }
    }
    let to_commission = n.addressee(NodeId::EU).is_some();
    match (commission, to_commission) {
        (CommissionRule::None, true) => bad(
            "commission_not_allowed",
            format!("{} does not go to the Commission", n.procedure),
        ),
        (CommissionRule::Required, false) => bad(
            "commission_required",
            format!("{} must name the Commission", n.procedure),
        ),
        _ => Ok(()),
    }
}

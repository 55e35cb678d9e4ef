//! The body of a request envelope ([`CaseMessage`]) and the checks the state machine leaves
//! to its callers, run identically by the sending and the receiving node: codes exist in
//! the catalogue and belong to the case's legal area, answers have the question's type,
//! authorities are in the directory, attachments match their references, the subject's
//! data is well formed. Pure: no I/O, no clock.
use crate::Directory;
use crate::catalogue::{AnswerType, AnswerValue, Catalogue, ProcedureKind};
use crate::request::{
    AnswerPayload, AttachmentRef, RequestCase, SubjectRef, Transition, TransitionBody,
};
use imi_protocol::AuthorityId;
use imi_protocol::dates::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the [`CaseMessage`] encoding.
pub const MESSAGE_VERSION: u16 = 1;
/// Most attachment bytes in one step (the envelope limit is 4 MiB).
pub const MAX_STEP_FILE_BYTES: usize = 3 * 1024 * 1024;
/// Most entries in [`SubjectData::details`].
pub const MAX_SUBJECT_DETAILS: usize = 32;
/// Longest subject detail value, bytes.
pub const MAX_DETAIL_BYTES: usize = 2048;

/// Why a step's content was refused: a stable code (the same a receiving node puts in its
/// `rejected` receipt) and what exactly was wrong, without personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The code, e.g. `unknown_question`.
    pub code: &'static str,
    /// The detail.
    pub detail: String,
}

impl Refused {
    /// A refusal.
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Refused {}

/// The bytes of an attached file in a [`CaseMessage`].
pub type FileBytes = serde_bytes::ByteBuf;

/// The personal data of a request's subject (a professional, a worker, a patient...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectData {
    /// Full name.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`.
    #[serde(default)]
    pub date_of_birth: Option<String>,
    /// Further identifying details (diploma number, registration number, ...).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

impl SubjectData {
    /// Checks sizes and formats; the error names the field (never its value).
    pub fn validate(&self) -> Result<(), Refused> {
        let bad = |detail: &str| Refused::new("invalid_subject", detail);
        if self.name.trim().is_empty() || self.name.len() > crate::limits::MAX_NAME_BYTES {
            return Err(bad("subject name must have 1 to 512 bytes"));
        }
        if let Some(d) = &self.date_of_birth
            && Date::parse(d).is_none()
        {
            return Err(bad(
                "subject date_of_birth is not a YYYY-MM-DD calendar date",
            ));
        }
        if self.details.len() > MAX_SUBJECT_DETAILS {
            return Err(bad("too many subject details"));
        }
        for (k, v) in &self.details {
            if !crate::limits::valid_code(k) {
                return Err(bad(
                    "subject detail keys must be codes ([A-Za-z0-9._-], 1-64)",
                ));
            }
            if v.len() > MAX_DETAIL_BYTES {
                return Err(bad("a subject detail is longer than 2048 bytes"));
            }
        }
        Ok(())
    }

    /// The commitment the case carries instead of the data: SHA-256 of the CBOR encoding.
    pub fn commitment(&self) -> SubjectRef {
        SubjectRef(hex::encode(imi_protocol::sha256(&cbor(self))))
    }
}

/// The body of a request envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseMessage {
    /// Encoding version, [`MESSAGE_VERSION`].
    pub v: u16,
    /// The step.
    pub step: TransitionBody,
    /// Whether the acting user is an IMI coordinator of the sending country for the area.
    pub coordinator: bool,
    /// The subject's data: with `create` only.
    #[serde(default)]
    pub subject: Option<SubjectData>,
    /// The contents of the step's attachments, in any order.
    #[serde(default)]
    pub files: Vec<FileBytes>,
}

/// Encodes a message body (CBOR).
pub fn encode_message(m: &CaseMessage) -> Vec<u8> {
    cbor(m)
}

/// Decodes a message body; `None` if it is not a [`CaseMessage`].
pub fn decode_message(b: &[u8]) -> Option<CaseMessage> {
    ciborium::from_reader(b).ok()
}

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing plain data into a Vec cannot fail.
    let _ = ciborium::into_writer(v, &mut out);
    out
}

fn authority_known(directory: &Directory, id: &AuthorityId) -> Result<(), Refused> {
    if directory.contains(id) {
        Ok(())
    } else {
        Err(Refused::new(
            "unknown_authority",
            format!("authority {id} is not in the directory"),
        ))
    }
}

/// A new request or a forward may only name an authority that is not retired.
fn authority_active(directory: &Directory, id: &AuthorityId) -> Result<(), Refused> {
    authority_known(directory, id)?;
    if directory.is_retired(id) {
        return Err(Refused::new(
            "retired_authority",
            format!("authority {id} is retired from the directory"),
        ));
    }
    Ok(())
}

/// The checks the state machine leaves to its callers, for step `t` that leads to `next`.
pub fn check_step(
    catalogue: &Catalogue,
    directory: &Directory,
    t: &Transition,
    next: &RequestCase,
) -> Result<(), Refused> {
    match t {
        Transition::Create {
            requester,
            responder,
            area,
            procedure,
            questions,
            ..
        } => {
            authority_active(directory, requester)?;
            authority_active(directory, responder)?;
            let a = catalogue.area(area).ok_or_else(|| {
                Refused::new(
                    "unknown_area",
                    format!("legal area {area} is not in the catalogue"),
                )
            })?;
            let p = a
                .procedures()
                .iter()
                .find(|p| p.code() == procedure)
                .ok_or_else(|| {
                    Refused::new(
                        "unknown_procedure",
                        format!("procedure {procedure} is not in area {area}"),
                    )
                })?;
            if p.kind() != ProcedureKind::Request {
                return Err(Refused::new(
                    "unknown_procedure",
                    format!("procedure {procedure} is not a request procedure"),
                ));
            }
            for q in questions {
                if !a.questions().iter().any(|x| x.code() == q) {
                    return Err(Refused::new(
                        "unknown_question",
                        format!("question {q} is not a question of area {area}"),
                    ));
                }
            }
        }
        Transition::Forward { to } | Transition::Reassign { to } => {
            authority_active(directory, to)?
        }
        Transition::Answer {
            answers,
            attachments,
            ..
        } => {
            for a in answers {
                check_coded(catalogue, a, attachments, &CodedCheck::ANSWER)?;
            }
        }
        _ => {}
    }
    // The state machine keeps parties in one country per side; both must be known.
    authority_known(directory, &next.responder)
}

/// How [`check_coded`] words its refusals: the codes and what the attachments belong to.
#[derive(Debug, Clone, Copy)]
pub struct CodedCheck {
    /// The code of an unknown question.
    pub unknown: &'static str,
    /// The code of a value that does not fit.
    pub invalid: &'static str,
    /// What the attachments are of (`answer`, `notification`).
    pub of: &'static str,
    /// Whether `not_available` is a value.
    pub not_available: bool,
}

impl CodedCheck {
    /// A request's answers.
    pub const ANSWER: CodedCheck = CodedCheck {
        unknown: "unknown_question",
        invalid: "invalid_answer",
        of: "answer",
        not_available: true,
    };
}

/// Checks one coded value against its catalogue question: the question exists; the value
/// has the question's type and fits it (an option of the question, a calendar date, a
/// bounded text...); an `attachment` question's value is the SHA-256 of one of
/// `attachments`.
pub fn check_coded(
    catalogue: &Catalogue,
    a: &crate::request::CodedAnswer,
    attachments: &[AttachmentRef],
    how: &CodedCheck,
) -> Result<(), Refused> {
    let qtype = catalogue
        .question(&a.question)
        .map(|q| q.answer_type())
        .ok_or_else(|| {
            Refused::new(
                how.unknown,
                format!("question {} is not in the catalogue", a.question),
            )
        })?;
    let value = match &a.answer {
        AnswerPayload::NotAvailable if how.not_available => return Ok(()),
        AnswerPayload::Text(t) if qtype == AnswerType::Attachment => {
            if attachments.iter().any(|r| r.sha256.to_string() == *t) {
                return Ok(());
            }
            return Err(Refused::new(
                how.invalid,
                format!(
                    "question {} needs the SHA-256 of an attachment of the {}",
                    a.question, how.of
                ),
            ));
        }
        AnswerPayload::Bool(b) => AnswerValue::YesNo(*b),
        AnswerPayload::Text(t) => AnswerValue::FreeText(t.clone()),
        AnswerPayload::Number(n) => AnswerValue::Number(*n as f64),
        AnswerPayload::Date(ms) => AnswerValue::Date(Date::of_ms(*ms).to_string()),
        AnswerPayload::Choice(c) => AnswerValue::Choice(c.clone()),
        AnswerPayload::Choices(_) | AnswerPayload::NotAvailable => {
            return Err(Refused::new(
                how.invalid,
                format!("question {} takes one value", a.question),
            ));
        }
    };
    catalogue
        .validate_answer(&a.question, &value)
        .map_err(|e| Refused::new(how.invalid, e.to_string()))
}

/// Checks the fields of a notification, an entry or an alert of `procedure`: each a
/// question of the procedure, none twice, each fitting its question ([`check_coded`]), and
/// every question `required` says is required present. Codes: `unknown_field`,
/// `duplicate_field`, `missing_field` and `how`'s.
pub fn check_fields(
    catalogue: &Catalogue,
    procedure: &crate::catalogue::Procedure,
    fields: &[crate::request::CodedAnswer],
    attachments: &[AttachmentRef],
    required: impl Fn(&str) -> bool,
    how: &CodedCheck,
) -> Result<(), Refused> {
    let mut seen = std::collections::BTreeSet::new();
    for f in fields {
        if !procedure.question_codes().contains(&f.question) {
            return Err(Refused::new(
                "unknown_field",
                format!("{} is not a field of {}", f.question, procedure.code()),
            ));
        }
        if !seen.insert(f.question.as_str()) {
            return Err(Refused::new(
                "duplicate_field",
                format!("field {} is given twice", f.question),
            ));
        }
        check_coded(catalogue, f, attachments, how)?;
    }
    if let Some(missing) = procedure
        .question_codes()
        .iter()
        .find(|q| required(q) && !seen.contains(q.as_str()))
    {
        return Err(Refused::new(
            "missing_field",
            format!("{} requires field {missing}", procedure.code()),
        ));
    }
    Ok(())
}

/// The attachment references a step introduces.
pub fn step_attachments(t: &Transition) -> &[AttachmentRef] {
    match t {
        Transition::Create { attachments, .. }
        | Transition::Answer { attachments, .. }
        | Transition::ProvideInfo { attachments, .. } => attachments,
        _ => &[],
    }
}

/// A file of a step: its SHA-256 and its bytes.
pub type StepFile<'a> = ([u8; 32], &'a [u8]);

/// Pairs every reference with exactly one file of the right hash and size.
pub fn match_files<'a>(
    refs: &[AttachmentRef],
    files: &'a [serde_bytes::ByteBuf],
) -> Result<Vec<StepFile<'a>>, Refused> {
    let bad = |d: &str| Refused::new("attachment_mismatch", d);
    if refs.len() != files.len() {
        return Err(bad("the step's files do not match its attachment list"));
    }
    let total: usize = files.iter().map(|f| f.len()).sum();
    if total > MAX_STEP_FILE_BYTES {
        return Err(Refused::new(
            "too_large",
            format!("attachments exceed {MAX_STEP_FILE_BYTES} bytes"),
        ));
    }
    let mut by_hash: BTreeMap<[u8; 32], &[u8]> = BTreeMap::new();
    for f in files {
        by_hash.insert(imi_protocol::sha256(f), f.as_slice());
    }
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let f = by_hash
            .get(&r.sha256.0)
            .ok_or_else(|| bad("an attachment's content is missing"))?;
        if u64::try_from(f.len()).ok() != Some(r.size) {
            return Err(bad("an attachment's size does not match"));
        }
        out.push((r.sha256.0, *f));
    }
    Ok(out)
}
